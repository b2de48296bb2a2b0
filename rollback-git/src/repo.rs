//! Reading the repository: open it, resolve specs, list history, check a tree out into a
//! directory, list uncommitted changes. Everything here is blocking (git2).

use crate::error::GitError;
use chrono::{DateTime, TimeZone, Utc};
use git2::{Commit, Delta, ErrorCode, ObjectType, Oid, Repository, Sort, StatusOptions};
use rollback_core::{Revision, RevisionId};
use std::path::Path;

/// Length of the hash prefix naming release and worktree directories.
pub(crate) const DIR_HASH_LEN: usize = 12;

/// Opens a non-bare repository at exactly `path` (no search upwards).
pub(crate) fn open(path: &Path) -> Result<Repository, GitError> {
    let repo = Repository::open(path).map_err(|source| GitError::NotARepository {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    if repo.is_bare() {
        return Err(GitError::BareRepository {
            path: path.to_path_buf(),
        });
    }
    Ok(repo)
}

/// The directory name for a revision: the first [`DIR_HASH_LEN`] hex digits.
pub(crate) fn dir_name(oid: Oid) -> String {
    oid.to_string()[..DIR_HASH_LEN].to_owned()
}

/// A commit as the core's [`Revision`].
pub(crate) fn revision_of(commit: &Commit<'_>) -> Revision {
    let short = commit
        .as_object()
        .short_id()
        .ok()
        .and_then(|b| b.as_str().map(str::to_owned))
        .unwrap_or_else(|| commit.id().to_string()[..7].to_owned());
    let time: DateTime<Utc> = Utc
        .timestamp_opt(commit.time().seconds(), 0)
        .single()
        .unwrap_or_default();
    Revision {
        id: RevisionId::new(commit.id().to_string()),
        short,
        subject: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned(),
        author: String::from_utf8_lossy(commit.author().name_bytes()).into_owned(),
        time,
    }
}

/// Finds a commit by full id.
pub(crate) fn find_commit<'r>(repo: &'r Repository, id: &str) -> Result<Commit<'r>, GitError> {
    let unknown = |hint: String| GitError::UnknownRevision {
        spec: id.to_owned(),
        hint,
    };
    let oid = Oid::from_str(id).map_err(|e| unknown(format!("not a commit hash ({})", e.message())))?;
    repo.find_commit(oid)
        .map_err(|_| unknown("no such commit in the repository; fetch it or check the id".into()))
}

/// The HEAD commit, `None` on an unborn branch.
pub(crate) fn head_commit(repo: &Repository) -> Result<Option<Commit<'_>>, GitError> {
    match repo.head() {
        Ok(head) => head
            .peel_to_commit()
            .map(Some)
            .map_err(GitError::git("reading the HEAD commit")),
        Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => Ok(None),
        Err(e) => Err(GitError::git("reading HEAD")(e)),
    }
}

/// The branch HEAD is attached to, if any.
pub(crate) fn head_branch(repo: &Repository) -> Option<String> {
    let head = repo.find_reference("HEAD").ok()?;
    let target = head.symbolic_target()?;
    target.strip_prefix("refs/heads/").map(str::to_owned)
}

/// Resolves `spec` to a commit. `live` (the revision that runs) replaces a leading `HEAD`,
/// so `HEAD~1` means the parent of what runs, as in the runbook.
pub(crate) fn resolve(repo: &Repository, spec: &str, live: Option<Oid>) -> Result<Revision, GitError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(GitError::Invalid(
            "an empty revision spec: give a commit hash, tag, branch or HEAD~N".into(),
        ));
    }
    let effective = match (live, spec.strip_prefix("HEAD")) {
        (Some(live), Some(rest)) if rest.is_empty() || rest.starts_with(['~', '^']) => {
            format!("{live}{rest}")
        }
        _ => spec.to_owned(),
    };
    refs_ambiguity(repo, spec)?;
    let object = match repo.revparse_single(&effective) {
        Ok(o) => o,
        Err(e) if e.code() == ErrorCode::Ambiguous => {
            return Err(GitError::AmbiguousRevision {
                spec: spec.to_owned(),
                candidates: prefix_candidates(repo, spec),
            })
        }
        Err(e) => {
            return Err(GitError::UnknownRevision {
                spec: spec.to_owned(),
                hint: unknown_hint(repo, &e),
            })
        }
    };
    let kind = object.kind();
    let commit = object.peel_to_commit().map_err(|_| GitError::NotACommit {
        spec: spec.to_owned(),
        kind: kind.map_or("object".to_owned(), |k| k.to_string()),
    })?;
    Ok(revision_of(&commit))
}

/// A name that is both a tag and a branch pointing at different commits is ambiguous.
fn refs_ambiguity(repo: &Repository, spec: &str) -> Result<(), GitError> {
    let peel = |r: &str| {
        repo.find_reference(r)
            .ok()
            .and_then(|r| r.peel_to_commit().ok())
            .map(|c| c.id())
    };
    let (tag, branch) = (
        peel(&format!("refs/tags/{spec}")),
        peel(&format!("refs/heads/{spec}")),
    );
    match (tag, branch) {
        (Some(t), Some(b)) if t != b => Err(GitError::AmbiguousRevision {
            spec: spec.to_owned(),
            candidates: format!(
                "tag {spec} -> {}, branch {spec} -> {}",
                &t.to_string()[..10],
                &b.to_string()[..10]
            ),
        }),
        _ => Ok(()),
    }
}

/// The objects whose id starts with `prefix`, for an ambiguity error.
fn prefix_candidates(repo: &Repository, prefix: &str) -> String {
    let prefix = prefix.to_ascii_lowercase();
    let mut oids = Vec::new();
    if let Ok(odb) = repo.odb() {
        let _ = odb.foreach(|oid| {
            if oid.to_string().starts_with(&prefix) {
                oids.push(*oid);
            }
            oids.len() < 50
        });
    }
    oids.sort();
    let listed: Vec<String> = oids
        .iter()
        .take(10)
        .map(|oid| match repo.find_object(*oid, None) {
            Ok(o) if o.kind() == Some(ObjectType::Commit) => match o.peel_to_commit() {
                Ok(c) => {
                    let c = revision_of(&c);
                    format!(
                        "commit {} \"{}\" ({})",
                        &oid.to_string()[..12],
                        c.subject,
                        c.author
                    )
                }
                Err(_) => format!("commit {}", &oid.to_string()[..12]),
            },
            Ok(o) => format!(
                "{} {}",
                o.kind().map_or("object".into(), |k| k.to_string()),
                &oid.to_string()[..12]
            ),
            Err(_) => oid.to_string()[..12].to_owned(),
        })
        .collect();
    let more = oids.len().saturating_sub(listed.len());
    let mut out = listed.join(", ");
    if more > 0 {
        out.push_str(&format!(" and {more} more"));
    }
    out
}

/// What exists, for an unknown-revision error: branches and tags.
fn unknown_hint(repo: &Repository, e: &git2::Error) -> String {
    let mut names = Vec::new();
    if let Ok(refs) = repo.references() {
        for r in refs.flatten() {
            if let Some(name) = r.shorthand() {
                if r.is_branch() || r.is_tag() {
                    names.push(name.to_owned());
                }
            }
        }
    }
    names.sort();
    let total = names.len();
    names.truncate(10);
    let more = if total > names.len() {
        format!(" and {} more", total - names.len())
    } else {
        String::new()
    };
    format!(
        "not a commit hash, tag, branch or HEAD~N of this repository ({}); known branches and tags: {}{more}",
        e.message(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )
}

/// The last `n` commits reachable from `branch` (or HEAD), newest first.
pub(crate) fn history(repo: &Repository, branch: Option<&str>, n: usize) -> Result<Vec<Revision>, GitError> {
    let mut walk = repo.revwalk().map_err(GitError::git("walking history"))?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)
        .map_err(GitError::git("walking history"))?;
    match branch {
        Some(b) => walk.push_ref(&format!("refs/heads/{b}")),
        None => walk.push_head(),
    }
    .map_err(GitError::git(format!(
        "reading the tip of {}",
        branch.unwrap_or("HEAD")
    )))?;
    walk.take(n)
        .map(|oid| {
            let oid = oid.map_err(GitError::git("walking history"))?;
            let c = repo.find_commit(oid).map_err(GitError::git("reading a commit"))?;
            Ok(revision_of(&c))
        })
        .collect()
}

/// Writes the commit's tree into `dir` (created if missing) without touching the
/// repository's index, HEAD or working tree.
pub(crate) fn checkout_into(repo: &Repository, commit: &Commit<'_>, dir: &Path) -> Result<(), GitError> {
    std::fs::create_dir_all(dir).map_err(GitError::io("creating the checkout directory", dir))?;
    let mut cb = git2::build::CheckoutBuilder::new();
    cb.force()
        .recreate_missing(true)
        .update_index(false)
        .target_dir(dir);
    repo.checkout_tree(commit.as_object(), Some(&mut cb))
        .map_err(GitError::git(format!(
            "checking {} out into {}",
            commit.id(),
            dir.display()
        )))
}

/// Tracked files with uncommitted changes (staged or not). Untracked and ignored files are
/// not counted: a checkout never loses them (it refuses to overwrite them instead).
pub(crate) fn dirty_files(repo: &Repository) -> Result<Vec<String>, GitError> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(false)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(GitError::git("reading the working tree status"))?;
    Ok(statuses
        .iter()
        .filter(|s| s.status() != git2::Status::CURRENT)
        .map(|s| String::from_utf8_lossy(s.path_bytes()).into_owned())
        .collect())
}

/// Refuses a dirty live tree unless allowed.
pub(crate) fn ensure_clean(repo: &Repository, allow_dirty: bool) -> Result<(), GitError> {
    if allow_dirty {
        return Ok(());
    }
    let dirty = dirty_files(repo)?;
    if dirty.is_empty() {
        return Ok(());
    }
    Err(GitError::DirtyTree {
        path: repo.workdir().unwrap_or(repo.path()).to_path_buf(),
        files: list_files(&dirty),
    })
}

/// Refuses untracked files standing where `target` has files that `head` does not track
/// (a safe checkout would refuse them without naming them) unless allowed. Ignored files
/// are not counted: a checkout overwrites them, as git does.
pub(crate) fn ensure_nothing_in_the_way(
    repo: &Repository,
    head: Option<&Commit<'_>>,
    target: &Commit<'_>,
    allow_dirty: bool,
) -> Result<(), GitError> {
    if allow_dirty {
        return Ok(());
    }
    let Some(workdir) = repo.workdir() else {
        return Ok(());
    };
    let old_tree = head
        .map(Commit::tree)
        .transpose()
        .map_err(GitError::git("reading the live tree"))?;
    let new_tree = target
        .tree()
        .map_err(GitError::git(format!("reading the tree of {}", target.id())))?;
    let diff = repo
        .diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), None)
        .map_err(GitError::git("comparing the live tree with the revision"))?;
    let tracked = |p: &Path| old_tree.as_ref().is_some_and(|t| t.get_path(p).is_ok());
    let mut in_the_way: Vec<String> = Vec::new();
    for delta in diff.deltas() {
        if delta.status() != Delta::Added {
            continue;
        }
        let Some(path) = delta.new_file().path() else {
            continue;
        };
        // The added file's own path, or a directory on its way that is a file here.
        let blocker = std::iter::once(path)
            .chain(path.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()))
            .find(|p| {
                let Ok(meta) = std::fs::symlink_metadata(workdir.join(p)) else {
                    return false;
                };
                if *p == path {
                    !meta.is_dir() || std::fs::read_dir(workdir.join(p)).is_ok_and(|mut d| d.next().is_some())
                } else {
                    !meta.is_dir() && !tracked(p)
                }
            });
        if let Some(b) = blocker {
            if !repo.is_path_ignored(b).unwrap_or(false) {
                let b = b.to_string_lossy().into_owned();
                if !in_the_way.contains(&b) {
                    in_the_way.push(b);
                }
            }
        }
    }
    if in_the_way.is_empty() {
        return Ok(());
    }
    Err(GitError::UntrackedInTheWay {
        path: workdir.to_path_buf(),
        revision: target.id().to_string(),
        files: list_files(&in_the_way),
    })
}

/// The first ten names, then how many more.
fn list_files(files: &[String]) -> String {
    let shown: Vec<&str> = files.iter().take(10).map(String::as_str).collect();
    let more = files.len() - shown.len();
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
