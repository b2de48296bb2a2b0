//! The in-place layout: the app runs from the repository's working tree. Builds happen in
//! `<worktrees_dir>/<hash>` (see [`releases::prepare_dir`]); `activate` checks the revision out
//! in the live tree (refusing uncommitted changes unless allowed) and moves the configured
//! build artifacts in, moving the live ones aside under the revision they belong to.

use crate::config::InPlaceOptions;
use crate::error::GitError;
use crate::releases::{self, BRANCH_FILE, PARKED_FILE, REVISION_FILE};
use crate::repo;
use git2::build::CheckoutBuilder;
use rollback_core::{PreparedRevision, RevisionId};
use std::fs;
use std::path::{Path, PathBuf};

/// The live revision as a prepared one: `<worktrees_dir>/<hash>` is created (with its
/// `REVISION` file) to receive the live artifacts when another revision is activated, and
/// the branch HEAD is attached to, if any, is recorded there ([`BRANCH_FILE`]) so that
/// [`activate`] of this revision puts HEAD back on it. Nothing the app uses changes.
pub(crate) fn preserve(repo_path: &Path, worktrees: &Path) -> Result<PreparedRevision, GitError> {
    let repo = repo::open(repo_path)?;
    let head = repo::head_commit(&repo)?.ok_or_else(|| {
        GitError::Invalid(format!(
            "`{}` has no commit checked out: nothing runs to preserve",
            repo_path.display()
        ))
    })?;
    let dir = holder(worktrees, head.id())?;
    let branch = repo::head_branch(&repo);
    record_branch(&dir, branch.as_deref())?;
    let on = match &branch {
        Some(b) => format!("on branch {b}"),
        None => "detached HEAD".to_owned(),
    };
    Ok(PreparedRevision {
        revision: RevisionId::new(head.id().to_string()),
        location: dir.display().to_string(),
        build_log_tail: vec![format!(
            "live revision {} ({on}) preserved in place; its build artifacts move to {} when another revision is activated",
            head.id(),
            dir.display()
        )],
    })
}

/// Records in `dir` the branch HEAD is attached to (`None`: detached, and a branch recorded
/// by an earlier preserve is forgotten), durably.
fn record_branch(dir: &Path, branch: Option<&str>) -> Result<(), GitError> {
    let Some(branch) = branch else {
        return releases::forget_branch(dir);
    };
    releases::write_marker(
        &dir.join(BRANCH_FILE),
        &format!("refs/heads/{branch}\n"),
        "recording the attached branch",
    )
}

/// The branch recorded by [`preserve`] in `dir` (a full ref name), if any. An unreadable or
/// malformed record is ignored with a warning: HEAD then stays detached.
fn recorded_branch(dir: &Path) -> Option<String> {
    let file = dir.join(BRANCH_FILE);
    let text = match fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read the recorded branch; HEAD stays detached");
            return None;
        }
    };
    let name = text.trim();
    if name.starts_with("refs/heads/") && git2::Reference::is_valid_name(name) {
        Some(name.to_owned())
    } else {
        tracing::warn!(file = %file.display(), "the recorded branch is not a branch name; HEAD stays detached");
        None
    }
}

/// Puts HEAD back on `branch` (a full ref name) when that branch still points at `oid`,
/// the commit just checked out; HEAD already on it is left alone. A branch that moved or
/// vanished since it was recorded is never moved back: HEAD stays where it is (detached)
/// and a warning says so.
fn reattach(repo: &git2::Repository, branch: &str, oid: git2::Oid) -> Result<(), GitError> {
    let on_it = repo
        .find_reference("HEAD")
        .ok()
        .and_then(|h| h.symbolic_target().map(|t| t == branch))
        .unwrap_or(false);
    if on_it {
        return Ok(());
    }
    let tip = match repo.find_reference(branch) {
        Ok(r) => Some(
            r.peel_to_commit()
                .map_err(GitError::git(format!("reading the tip of {branch}")))?
                .id(),
        ),
        Err(e) if e.code() == git2::ErrorCode::NotFound => None,
        Err(e) => return Err(GitError::git(format!("reading {branch}"))(e)),
    };
    match tip {
        Some(tip) if tip == oid => {
            repo.set_head(branch)
                .map_err(GitError::git(format!("putting HEAD back on {branch}")))?;
            tracing::info!(%branch, revision = %oid, "HEAD back on the branch it was on when preserved");
        }
        Some(tip) => tracing::warn!(
            %branch, revision = %oid, branch_tip = %tip,
            "the branch HEAD was on when preserved has moved since: it is not moved back and HEAD stays detached at the revision; check the branch out by hand once it is right"
        ),
        None => tracing::warn!(
            %branch, revision = %oid,
            "the branch HEAD was on when preserved no longer exists: HEAD stays detached at the revision"
        ),
    }
    Ok(())
}

/// `<worktrees>/<hash>` with a REVISION file, created if missing.
fn holder(worktrees: &Path, oid: git2::Oid) -> Result<PathBuf, GitError> {
    let dir = worktrees.join(repo::dir_name(oid));
    if releases::read_revision(&dir).is_none() {
        fs::create_dir_all(&dir).map_err(GitError::io("creating", &dir))?;
        releases::write_marker(&dir.join(PARKED_FILE), "", "marking the parking directory")?;
        releases::write_marker(
            &dir.join(REVISION_FILE),
            &format!("{oid}\n"),
            "writing the REVISION file",
        )?;
    }
    Ok(dir)
}

/// What [`activate`] would refuse `revision` for, found now and changing nothing: an
/// unknown commit, uncommitted changes or untracked files in the way (unless allowed), a
/// worktrees directory that cannot receive the live artifacts. The revision already
/// checked out passes: activating it changes nothing.
pub(crate) fn check(
    repo_path: &Path,
    worktrees: &Path,
    allow_dirty: bool,
    revision: &RevisionId,
) -> Result<(), GitError> {
    let repo = repo::open(repo_path)?;
    let commit = repo::find_commit(&repo, revision.as_str())?;
    let head = repo::head_commit(&repo)?;
    if head.as_ref().map(|h| h.id()) == Some(commit.id()) {
        return Ok(());
    }
    ensure_switchable(&repo, head.as_ref(), &commit, allow_dirty)?;
    releases::probe_creatable(worktrees)
}

/// The refusals of a switch from `head` to `target`, shared by [`check`] and [`activate`]
/// so that both say the same thing.
fn ensure_switchable(
    repo: &git2::Repository,
    head: Option<&git2::Commit<'_>>,
    target: &git2::Commit<'_>,
    allow_dirty: bool,
) -> Result<(), GitError> {
    repo::ensure_clean(repo, allow_dirty)?;
    repo::ensure_nothing_in_the_way(repo, head, target, allow_dirty)
}

/// Checks `prepared` out in the live tree and moves its artifacts in. A revision that is
/// already checked out is left exactly as it is (tree, branch, artifacts), dirty or not:
/// the failure policy's switch back to [`preserve`]d code is then a no-op.
///
/// A revision [`preserve`]d while HEAD was on a branch gets HEAD back on that branch, last
/// (after the artifacts), when the branch still points at it; also when the revision is
/// already checked out with HEAD detached (a switch back interrupted before that last
/// step). A branch that moved meanwhile is left where it is, HEAD detached, with a warning.
pub(crate) fn activate(
    repo_path: &Path,
    worktrees: &Path,
    opts: &InPlaceOptions,
    allow_dirty: bool,
    prepared: &PreparedRevision,
) -> Result<(), GitError> {
    let location = releases::check_prepared(prepared)?;
    let repo = repo::open(repo_path)?;
    let commit = repo::find_commit(&repo, prepared.revision.as_str())?;
    let head = repo::head_commit(&repo)?;
    let branch = recorded_branch(&location);
    if head.as_ref().map(|h| h.id()) == Some(commit.id()) {
        // Nothing to check out. HEAD does not move either (detaching a branch checked out by
        // the last deploy, or resetting another one, would change what nobody asked to
        // change), except back onto the branch this revision was preserved on.
        if let Some(branch) = &branch {
            if repo.head_detached().unwrap_or(false) {
                reattach(&repo, branch, commit.id())?;
            }
        }
        tracing::info!(revision = %commit.id(), "already live in place");
        return Ok(());
    }
    ensure_switchable(&repo, head.as_ref(), &commit, allow_dirty)?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| GitError::BareRepository {
            path: repo_path.to_path_buf(),
        })?
        .to_path_buf();
    // Where the live artifacts go, made before the live tree changes so that a worktrees
    // directory that cannot be written refuses the switch instead of halving it.
    let aside = head.as_ref().map(|old| holder(worktrees, old.id())).transpose()?;
    let mut cb = CheckoutBuilder::new();
    if allow_dirty {
        cb.force();
    } else {
        cb.safe();
    }
    repo.checkout_tree(commit.as_object(), Some(&mut cb))
        .map_err(GitError::git(format!(
            "checking {} out in {}",
            commit.id(),
            workdir.display()
        )))?;
    repo.set_head_detached(commit.id())
        .map_err(GitError::git("detaching HEAD"))?;
    if let Some(branch) = &opts.reset_branch {
        repo.branch(branch, &commit, true)
            .map_err(GitError::git(format!("resetting branch {branch}")))?;
        repo.set_head(&format!("refs/heads/{branch}"))
            .map_err(GitError::git(format!("checking out branch {branch}")))?;
    }
    let mut protect = vec![location.clone()];
    if let Some(aside) = aside {
        move_artifacts(&workdir, &location, &aside, &opts.artifacts)?;
        protect.push(aside);
    }
    if let Some(branch) = &branch {
        reattach(&repo, branch, commit.id())?;
    }
    releases::touch(&location);
    releases::prune(worktrees, opts.keep, &protect);
    tracing::info!(revision = %commit.id(), tree = %workdir.display(), "activated in place");
    Ok(())
}

/// For each artifact the prepared checkout has: live one -> `aside`, prepared one -> live.
fn move_artifacts(live: &Path, prepared: &Path, aside: &Path, artifacts: &[PathBuf]) -> Result<(), GitError> {
    for rel in artifacts {
        let (src, dst, parked) = (prepared.join(rel), live.join(rel), aside.join(rel));
        if fs::symlink_metadata(&src).is_err() {
            tracing::warn!(artifact = %rel.display(), "the prepared checkout has no such artifact; left as is");
            continue;
        }
        if fs::symlink_metadata(&dst).is_ok() {
            if let Some(p) = parked.parent() {
                fs::create_dir_all(p).map_err(GitError::io("creating", p))?;
            }
            if fs::symlink_metadata(&parked).is_ok() {
                remove_any(&parked)?;
            }
            fs::rename(&dst, &parked).map_err(GitError::io("moving the live artifact aside", &dst))?;
        }
        if let Some(p) = dst.parent() {
            fs::create_dir_all(p).map_err(GitError::io("creating", p))?;
        }
        fs::rename(&src, &dst).map_err(GitError::io("moving the built artifact into the live tree", &src))?;
    }
    Ok(())
}

fn remove_any(path: &Path) -> Result<(), GitError> {
    let is_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    if is_dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
    .map_err(GitError::io("removing an old parked artifact", path))
}
