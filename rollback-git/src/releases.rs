//! Release directories: a prepared revision lives in `<base>/<12-hex hash>` with a `REVISION`
//! file (full hash, written last, only after the build passed, as Capistrano does); the
//! `current` symlink is swapped atomically (new link under a temporary name, renamed over
//! the old one); old releases are pruned, never the live one nor the one being activated.

use crate::build::Runner;
use crate::error::GitError;
use crate::repo;
use rollback_core::{PreparedRevision, RevisionId};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file naming the revision a release directory holds.
pub const REVISION_FILE: &str = "REVISION";

/// Marks a directory that only holds a live revision's parked artifacts (in place): it can
/// be activated, but `prepare` still builds there.
pub(crate) const PARKED_FILE: &str = ".rollback-parked";

/// In place: the branch HEAD was attached to when the live revision was preserved (a full
/// ref name), beside its `REVISION` file; activating that preserved revision puts HEAD back
/// on it. `prepare` of the revision forgets it: a prepared revision is activated detached.
pub(crate) const BRANCH_FILE: &str = ".rollback-branch";

/// Mode of the marker files ([`REVISION_FILE`], [`PARKED_FILE`], [`BRANCH_FILE`]): they
/// name revisions and branches, nothing secret, and the app's user may read them.
pub(crate) const MARKER_MODE: u32 = 0o644;

/// Writes a marker file durably (the core's [`write_durable`](rollback_core::sys::write_durable)):
/// a crash leaves the old content or the new one, never a torn file. Blocking.
pub(crate) fn write_marker(path: &Path, content: &str, what: &str) -> Result<(), GitError> {
    rollback_core::sys::write_durable(path, content.as_bytes(), MARKER_MODE).map_err(GitError::io(what, path))
}

/// Prefix of the directories failed builds are moved to (kept for debugging).
const FAILED_PREFIX: &str = "failed-";

/// How many failed builds to keep.
const KEEP_FAILED: usize = 3;

fn unique_suffix() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}-{}{:09}",
        std::process::id(),
        now.as_secs(),
        now.subsec_nanos()
    )
}

/// The full hash recorded in a release directory, if it is a finished release.
pub(crate) fn read_revision(dir: &Path) -> Option<String> {
    fs::read_to_string(dir.join(REVISION_FILE))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Checks `dir` is writable by creating and removing a probe file (creating `dir` if needed).
pub(crate) fn ensure_writable(dir: &Path) -> Result<(), GitError> {
    if dir.exists() && !dir.is_dir() {
        return Err(not_writable(dir, "it exists and is not a directory".into()));
    }
    fs::create_dir_all(dir).map_err(|e| not_writable(dir, format!("cannot create it ({e})")))?;
    probe_writable(dir)
}

/// Checks that the existing directory `dir` is writable, changing nothing lasting: a probe
/// file with a fresh name is created and removed at once. Unlike permission bits, the
/// probe also sees read-only mounts, ACLs and a full disk.
pub(crate) fn probe_writable(dir: &Path) -> Result<(), GitError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_writable(dir, "it exists and is not a directory".into())),
        Err(e) => return Err(not_writable(dir, format!("cannot read it ({e})"))),
    }
    let probe = dir.join(format!(".write-probe-{}", unique_suffix()));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| not_writable(dir, format!("cannot create a file in it ({e})")))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// [`probe_writable`] for a directory that may not exist yet (`prepare` and `activate`
/// create it): then its nearest existing ancestor must be a writable directory. Creates
/// nothing lasting.
pub(crate) fn probe_creatable(dir: &Path) -> Result<(), GitError> {
    match dir.ancestors().find(|a| fs::symlink_metadata(a).is_ok()) {
        Some(existing) if existing != dir => probe_writable(existing).map_err(|e| match e {
            GitError::NotWritable { path, reason } => not_writable(
                dir,
                format!(
                    "it does not exist and cannot be created in `{}` ({reason})",
                    path.display()
                ),
            ),
            other => other,
        }),
        _ => probe_writable(dir),
    }
}

fn not_writable(dir: &Path, reason: String) -> GitError {
    GitError::NotWritable {
        path: dir.to_path_buf(),
        reason,
    }
}

/// Checks a revision out into `<base>/<hash>` and builds it there. Idempotent: a finished
/// release of the same revision is returned as is. A failed build is moved to
/// `<base>/failed-<hash>-<time>` and nothing else changes.
pub(crate) async fn prepare_dir(
    repo_path: &Path,
    base: &Path,
    revision: &RevisionId,
    runner: &Runner,
) -> Result<PreparedRevision, GitError> {
    let (repo_path, base_owned, rev) = (repo_path.to_path_buf(), base.to_path_buf(), revision.clone());
    let checked_out = crate::blocking(move || -> Result<Option<(PathBuf, bool)>, GitError> {
        let repo = repo::open(&repo_path)?;
        let commit = repo::find_commit(&repo, rev.as_str())?;
        let dir = base_owned.join(repo::dir_name(commit.id()));
        let parked = dir.join(PARKED_FILE).exists();
        match read_revision(&dir) {
            Some(r) if r == rev.as_str() && parked => {}
            Some(r) if r == rev.as_str() => {
                forget_branch(&dir)?;
                return Ok(None);
            }
            Some(other) => {
                return Err(GitError::Invalid(format!(
                    "`{}` already holds revision {other}, not {rev}: move it away",
                    dir.display()
                )))
            }
            None if dir.exists() => {
                tracing::warn!(dir = %dir.display(), "removing an unfinished checkout left by an interrupted prepare");
                fs::remove_dir_all(&dir).map_err(GitError::io("removing an unfinished checkout", &dir))?;
            }
            None => {}
        }
        repo::checkout_into(&repo, &commit, &dir)?;
        Ok(Some((dir, parked)))
    })
    .await?;
    let name = &revision.as_str()[..repo::DIR_HASH_LEN.min(revision.as_str().len())];
    let dir = base.join(name);
    let Some((dir, parked)) = checked_out else {
        return Ok(PreparedRevision {
            revision: revision.clone(),
            location: dir.display().to_string(),
            build_log_tail: vec![format!("already prepared at {}; not rebuilt", dir.display())],
        });
    };
    let failed = if parked {
        // The live build of this revision is parked here: leave it for activate.
        dir.clone()
    } else {
        base.join(format!("{FAILED_PREFIX}{name}-{}", unique_suffix()))
    };
    let tail = match runner
        .run(&dir, revision.as_str(), &failed.display().to_string())
        .await
    {
        Ok(tail) => tail,
        Err(e) if parked => return Err(e),
        Err(e) => {
            if let Err(mv) = tokio::fs::rename(&dir, &failed).await {
                tracing::warn!(error = %mv, dir = %dir.display(), "could not move the failed build aside");
                let _ = tokio::fs::remove_dir_all(&dir).await;
            }
            return Err(e);
        }
    };
    // Written last, and durably: a REVISION file marks a finished build.
    let (finished, text) = (dir.clone(), format!("{revision}\n"));
    crate::blocking(move || {
        write_marker(&finished.join(REVISION_FILE), &text, "writing the REVISION file")?;
        if parked {
            fs::remove_file(finished.join(PARKED_FILE)).map_err(GitError::io("unmarking", &finished))?;
            forget_branch(&finished)?;
        }
        Ok(())
    })
    .await?;
    tracing::info!(%revision, dir = %dir.display(), "revision prepared");
    Ok(PreparedRevision {
        revision: revision.clone(),
        location: dir.display().to_string(),
        build_log_tail: tail,
    })
}

/// Removes the [`BRANCH_FILE`] a preserve left in `dir`, if any.
pub(crate) fn forget_branch(dir: &Path) -> Result<(), GitError> {
    let file = dir.join(BRANCH_FILE);
    match fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(GitError::io("forgetting the branch recorded in", &file)(e)),
    }
}

/// Checks that `prepared` is a finished release and returns its directory.
pub(crate) fn check_prepared(prepared: &PreparedRevision) -> Result<PathBuf, GitError> {
    let dir = PathBuf::from(&prepared.location);
    let not_prepared = |reason: String| GitError::NotPrepared {
        revision: prepared.revision.to_string(),
        location: prepared.location.clone(),
        reason,
    };
    match read_revision(&dir) {
        Some(r) if r == prepared.revision.as_str() => Ok(dir),
        Some(r) => Err(not_prepared(format!("it holds revision {r}"))),
        None if dir.is_dir() => Err(not_prepared("its build never finished (no REVISION file)".into())),
        None => Err(not_prepared("the directory does not exist".into())),
    }
}

/// Where the `current` link points (made absolute), `None` when there is no link.
pub(crate) fn link_target(link: &Path) -> Result<Option<PathBuf>, GitError> {
    match fs::read_link(link) {
        Ok(t) if t.is_absolute() => Ok(Some(t)),
        Ok(t) => Ok(Some(link.parent().unwrap_or(Path::new("/")).join(t))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Err(GitError::Invalid(format!(
            "`{}` is not a symlink: move it away so it can become the link to the live release",
            link.display()
        ))),
        Err(e) => Err(GitError::io("reading the link", link)(e)),
    }
}

/// Points `link` at `target` atomically: a new symlink under a temporary name in the same
/// directory, renamed over the old link (rename(2) replaces it in one step).
pub(crate) fn swap_link(link: &Path, target: &Path) -> Result<(), GitError> {
    if fs::symlink_metadata(link).is_ok_and(|m| !m.file_type().is_symlink()) {
        return Err(GitError::Invalid(format!(
            "`{}` exists and is not a symlink: move it away so it can become the link to the live release",
            link.display()
        )));
    }
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = link.with_file_name(format!(".{name}.tmp-{}", unique_suffix()));
    std::os::unix::fs::symlink(target, &tmp).map_err(GitError::io("creating the new link", &tmp))?;
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(GitError::io("switching the link", link)(e));
    }
    // The switch is done; a failed fsync of the directory only weakens its durability.
    if let Err(e) = rollback_core::sys::sync_dir_of(link) {
        tracing::warn!(error = %e, link = %link.display(), "could not sync the link's directory");
    }
    Ok(())
}

/// Marks a release as just used, so that retention keeps the most recently activated.
pub(crate) fn touch(dir: &Path) {
    let file = dir.join(REVISION_FILE);
    if let Ok(f) = fs::File::options().append(true).open(&file) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Removes old releases beyond `keep` (most recently activated or built first) and failed
/// builds beyond the last few. Never removes a directory in `protect`. Failures are logged.
pub(crate) fn prune(base: &Path, keep: usize, protect: &[PathBuf]) {
    let Ok(entries) = fs::read_dir(base) else { return };
    let mut releases = Vec::new();
    let mut failed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if name.starts_with(FAILED_PREFIX) {
            let at = entry.metadata().and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH);
            failed.push((at, path));
        } else if name.len() == repo::DIR_HASH_LEN && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let Ok(at) = fs::metadata(path.join(REVISION_FILE)).and_then(|m| m.modified()) else {
                continue;
            };
            releases.push((at, path));
        }
    }
    let same = |a: &Path, b: &Path| a == b || fs::canonicalize(a).ok() == fs::canonicalize(b).ok();
    for (list, keep) in [(&mut releases, keep), (&mut failed, KEEP_FAILED)] {
        list.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (_, path) in list.iter().skip(keep) {
            if protect.iter().any(|p| same(p, path)) {
                continue;
            }
            tracing::info!(dir = %path.display(), "removing an old release");
            if let Err(e) = fs::remove_dir_all(path) {
                tracing::warn!(error = %e, dir = %path.display(), "could not remove an old release");
            }
        }
    }
}
