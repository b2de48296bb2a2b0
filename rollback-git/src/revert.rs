//! Revert commits: each revert is computed in memory (`git2::Repository::revert_commit`,
//! mainline parent 1 for merges) on top of the line's tip, so a conflict leaves HEAD, index
//! and working tree exactly as they were. Only when every revert applies cleanly is the line
//! moved, never rewriting history.

use crate::error::GitError;
use crate::repo;
use git2::{Commit, Repository, Signature};
use rollback_core::{Revision, RevisionId};
use std::path::Path;

/// Where the revert commits go.
pub(crate) struct Line<'a> {
    /// The branch, or `None` for HEAD itself.
    pub branch: Option<&'a str>,
    /// The app runs from this repository's working tree: never touch it (HEAD is detached
    /// at what runs if it was on the branch).
    pub live_tree: bool,
}

/// Makes one revert commit per entry of `commits` (newest first) and returns the new tip.
pub(crate) fn revert(repo_path: &Path, line: Line<'_>, commits: &[RevisionId]) -> Result<Revision, GitError> {
    if commits.is_empty() {
        return Err(GitError::Invalid(
            "no commits to revert: give at least one revision".into(),
        ));
    }
    let repo = repo::open(repo_path)?;
    if line.live_tree && line.branch.is_none() {
        return Err(GitError::Invalid(format!(
            "`{}` has a detached HEAD and no branch is configured: set GitCodeConfig::branch to the branch revert commits go on",
            repo_path.display()
        )));
    }
    let refname = line.branch.map(|b| format!("refs/heads/{b}"));
    let base = match &refname {
        Some(r) => repo
            .find_reference(r)
            .and_then(|r| r.peel_to_commit())
            .map_err(GitError::git(format!("reading the tip of {r}")))?,
        None => repo::head_commit(&repo)?
            .ok_or_else(|| GitError::Invalid("HEAD has no commit: nothing to revert on".into()))?,
    };
    let targets = commits
        .iter()
        .map(|c| repo::find_commit(&repo, c.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    let sig = repo
        .signature()
        .or_else(|_| Signature::now("rollback", "rollback@localhost"))
        .map_err(GitError::git("making the commit signature"))?;

    let mut ours = base.clone();
    for target in &targets {
        ours = revert_one(&repo, target, &ours, &sig)?;
    }

    let head_on_line = match line.branch {
        Some(b) => repo::head_branch(&repo).as_deref() == Some(b),
        None => true,
    };
    if line.live_tree {
        if head_on_line {
            // What runs stays what runs: HEAD keeps pointing at it, detached.
            repo.set_head_detached(base.id())
                .map_err(GitError::git("detaching HEAD at the live revision"))?;
        }
    } else if head_on_line {
        // Keep the source clone's working tree in step with its HEAD.
        let mut cb = git2::build::CheckoutBuilder::new();
        cb.safe();
        repo.checkout_tree(ours.as_object(), Some(&mut cb))
            .map_err(GitError::git(
                "updating the repository's working tree to the revert commit",
            ))?;
    }
    match &refname {
        Some(r) => {
            repo.reference_matching(r, ours.id(), true, base.id(), "rollback: revert")
                .map_err(GitError::git(format!("moving {r} to the revert commit")))?;
        }
        None => repo
            .set_head_detached(ours.id())
            .map_err(GitError::git("moving HEAD to the revert commit"))?,
    }
    tracing::info!(head = %ours.id(), reverted = targets.len(), "revert commits made");
    Ok(repo::revision_of(&ours))
}

fn revert_one<'r>(
    repo: &'r Repository,
    target: &Commit<'r>,
    ours: &Commit<'r>,
    sig: &Signature<'_>,
) -> Result<Commit<'r>, GitError> {
    let merge = target.parent_count() > 1;
    let mainline = if merge { 1 } else { 0 };
    let mut index = repo
        .revert_commit(target, ours, mainline, None)
        .map_err(GitError::git(format!("reverting {}", target.id())))?;
    if index.has_conflicts() {
        let mut paths = Vec::new();
        for c in index
            .conflicts()
            .map_err(GitError::git("listing conflicts"))?
            .flatten()
        {
            if let Some(e) = c.our.or(c.their).or(c.ancestor) {
                let p = String::from_utf8_lossy(&e.path).into_owned();
                if !paths.contains(&p) {
                    paths.push(p);
                }
            }
        }
        return Err(GitError::Conflict {
            commit: format!("{} \"{}\"", target.id(), target.summary().unwrap_or_default()),
            paths: paths.join(", "),
        });
    }
    let tree_id = index
        .write_tree_to(repo)
        .map_err(GitError::git("writing the reverted tree"))?;
    if tree_id == ours.tree_id() {
        return Err(GitError::Invalid(format!(
            "reverting {} changes nothing on the line (is it already reverted, or not on this branch?)",
            target.id()
        )));
    }
    let tree = repo
        .find_tree(tree_id)
        .map_err(GitError::git("reading the reverted tree"))?;
    let mut message = format!(
        "Revert \"{}\"\n\nThis reverts commit {}",
        target.summary().unwrap_or_default(),
        target.id()
    );
    if merge {
        if let Ok(p) = target.parent_id(0) {
            message.push_str(&format!(", reversing\nchanges made to {p}"));
        }
    }
    message.push_str(".\n");
    let id = repo
        .commit(None, sig, sig, &message, &tree, &[ours])
        .map_err(GitError::git("making the revert commit"))?;
    repo.find_commit(id)
        .map_err(GitError::git("reading the revert commit"))
}
