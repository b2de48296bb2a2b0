//! The in-place layout: the app runs from the repository's working tree. Builds happen in
//! `<worktrees_dir>/<hash>` (see [`releases::prepare_dir`]); `activate` checks the revision out
//! in the live tree (refusing uncommitted changes unless allowed) and moves the configured
//! build artifacts in, moving the live ones aside under the revision they belong to.

use crate::config::InPlaceOptions;
use crate::error::GitError;
use crate::releases::{self, PARKED_FILE, REVISION_FILE};
use crate::repo;
use git2::build::CheckoutBuilder;
use rollback_core::{PreparedRevision, RevisionId};
use std::fs;
use std::path::{Path, PathBuf};

/// The live revision as a prepared one: `<worktrees_dir>/<hash>` is created (with its
/// `REVISION` file) to receive the live artifacts when another revision is activated.
/// Nothing the app uses changes.
pub(crate) fn preserve(repo_path: &Path, worktrees: &Path) -> Result<PreparedRevision, GitError> {
    let repo = repo::open(repo_path)?;
    let head = repo::head_commit(&repo)?.ok_or_else(|| {
        GitError::Invalid(format!(
            "`{}` has no commit checked out: nothing runs to preserve",
            repo_path.display()
        ))
    })?;
    let dir = holder(worktrees, head.id())?;
    Ok(PreparedRevision {
        revision: RevisionId::new(head.id().to_string()),
        location: dir.display().to_string(),
        build_log_tail: vec![format!(
            "live revision {} preserved in place; its build artifacts move to {} when another revision is activated",
            head.id(),
            dir.display()
        )],
    })
}

/// `<worktrees>/<hash>` with a REVISION file, created if missing.
fn holder(worktrees: &Path, oid: git2::Oid) -> Result<PathBuf, GitError> {
    let dir = worktrees.join(repo::dir_name(oid));
    if releases::read_revision(&dir).is_none() {
        fs::create_dir_all(&dir).map_err(GitError::io("creating", &dir))?;
        fs::write(dir.join(PARKED_FILE), b"").map_err(GitError::io("marking the parking directory", &dir))?;
        fs::write(dir.join(REVISION_FILE), format!("{oid}\n"))
            .map_err(GitError::io("writing the REVISION file in", &dir))?;
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
/// already checked out is left exactly as it is (tree, HEAD, branch, artifacts), dirty or
/// not: the failure policy's switch back to [`preserve`]d code is then a no-op.
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
    if head.as_ref().map(|h| h.id()) == Some(commit.id()) {
        // Nothing to check out. Not even HEAD moves: detaching a branch checked out by the
        // last deploy, or resetting another one, would change what nobody asked to change.
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
