//! [`GitError`]: everything this adapter can fail with, each converted into an
//! [`AdapterError`] of the right [`ErrorKind`] (keeping the `GitError` as its source).

use rollback_core::{AdapterError, ErrorKind};
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong, named so that a human knows what to do.
///
/// ```
/// use rollback_core::{AdapterError, ErrorKind};
/// use rollback_git::GitError;
/// let e = GitError::NoCurrentRelease { link: "/srv/app/current".into() };
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// let adapter = AdapterError::from(e);
/// assert!(std::error::Error::source(&adapter).is_some_and(|s| s.is::<GitError>()));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// The configured path does not hold a git repository.
    #[error("`{path}` is not a git repository: point GitCodeConfig at the app's clone (the directory holding `.git`)")]
    NotARepository {
        /// The path given.
        path: PathBuf,
        /// What libgit2 said (a `git2::Error`, boxed so that git2's types stay out of this
        /// crate's API).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The repository has no working tree.
    #[error(
        "`{path}` is a bare repository: it has no working tree to build from or run; use a non-bare clone"
    )]
    BareRepository {
        /// The path given.
        path: PathBuf,
    },
    /// No revision matches the spec.
    #[error("revision `{spec}` not found: {hint}")]
    UnknownRevision {
        /// The spec asked for.
        spec: String,
        /// What exists instead (branches and tags), or libgit2's reason.
        hint: String,
    },
    /// More than one revision matches the spec.
    #[error("revision `{spec}` is ambiguous, it matches {candidates}: give more of the hash, or a full ref such as refs/tags/{spec}")]
    AmbiguousRevision {
        /// The spec asked for.
        spec: String,
        /// The matching objects, for humans.
        candidates: String,
    },
    /// The spec names something that is not a commit.
    #[error("`{spec}` names a {kind}, not a commit: give a commit hash, tag, branch or HEAD~N")]
    NotACommit {
        /// The spec asked for.
        spec: String,
        /// What it names (tree, blob).
        kind: String,
    },
    /// A build command's program cannot be found.
    #[error("build tool `{tool}` (build command `{command}`) is not on PATH and is not an executable file: install it or fix the command")]
    MissingTool {
        /// The first argument of the command.
        tool: String,
        /// The whole command, for humans.
        command: String,
    },
    /// The releases (or worktrees) directory cannot be written.
    #[error("directory `{path}` is not writable: {reason}; create it and give this user write access, or configure another directory")]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The live working tree has uncommitted changes.
    #[error("the working tree `{path}` has uncommitted changes ({files}): commit them, or stash them (`git stash`), or set allow_dirty(true) to overwrite them")]
    DirtyTree {
        /// The working tree.
        path: PathBuf,
        /// The changed files.
        files: String,
    },
    /// Untracked files in the live working tree stand where the revision to activate has
    /// files: checking it out would overwrite them.
    #[error("the working tree `{path}` has untracked files where revision {revision} has files ({files}): move them away or commit them, or set allow_dirty(true) to overwrite them")]
    UntrackedInTheWay {
        /// The working tree.
        path: PathBuf,
        /// The revision that would be checked out.
        revision: String,
        /// The untracked files in the way.
        files: String,
    },
    /// A build command exited unsuccessfully.
    #[error("build command `{command}` failed ({status}) building {revision}; nothing the app runs was touched; the failed build is kept at `{kept}`; last output:\n{tail}")]
    BuildFailed {
        /// The command.
        command: String,
        /// The revision being built.
        revision: String,
        /// How it ended.
        status: String,
        /// Where the failed checkout was moved, for debugging.
        kept: String,
        /// The last lines of its output.
        tail: String,
    },
    /// A build command ran longer than the configured timeout.
    #[error("build command `{command}` did not finish within {timeout:?} and was killed; nothing the app runs was touched; raise build_timeout or speed the build up; last output:\n{tail}")]
    BuildTimeout {
        /// The command.
        command: String,
        /// The timeout.
        timeout: Duration,
        /// The last lines of its output.
        tail: String,
    },
    /// A build command could not be started.
    #[error("build command `{command}` could not start in `{dir}`: {source}")]
    BuildSpawn {
        /// The command.
        command: String,
        /// Its working directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A revert would conflict.
    #[error("reverting {commit} conflicts in {paths}: nothing was changed (no commit, index and working tree as before); revert by hand or choose other commits")]
    Conflict {
        /// The commit whose revert conflicts.
        commit: String,
        /// The conflicting paths.
        paths: String,
    },
    /// No release is live yet.
    #[error("no current release: `{link}` does not exist; prepare and activate a revision first")]
    NoCurrentRelease {
        /// The `current` link.
        link: PathBuf,
    },
    /// A prepared revision is not (or no longer) where it says.
    #[error("revision {revision} is not prepared at `{location}`: {reason}; call prepare() again")]
    NotPrepared {
        /// The revision.
        revision: String,
        /// Where it should be.
        location: String,
        /// Why it is not usable.
        reason: String,
    },
    /// The input cannot be used (the message says why and what to do).
    #[error("{0}")]
    Invalid(String),
    /// libgit2 failed.
    #[error("{what}: {source}")]
    Git {
        /// What we were doing.
        what: String,
        /// What libgit2 said (a `git2::Error`, boxed so that git2's types stay out of this
        /// crate's API).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A file system operation failed.
    #[error("{what} `{path}`: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// On what.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The blocking task running git2 panicked or was cancelled.
    #[error("the git task did not finish: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl GitError {
    /// A libgit2 failure while doing `what`.
    pub(crate) fn git(what: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
        let what = what.into();
        move |source| GitError::Git {
            what,
            source: Box::new(source),
        }
    }

    /// A file system failure while doing `what` on `path`.
    pub(crate) fn io(
        what: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> GitError {
        let (what, path) = (what.into(), path.into());
        move |source| GitError::Io { what, path, source }
    }

    /// The [`ErrorKind`] the orchestrator sees.
    pub fn kind(&self) -> ErrorKind {
        match self {
            GitError::NotARepository { .. }
            | GitError::BareRepository { .. }
            | GitError::AmbiguousRevision { .. }
            | GitError::NotACommit { .. }
            | GitError::DirtyTree { .. }
            | GitError::UntrackedInTheWay { .. }
            | GitError::Invalid(_) => ErrorKind::InvalidInput,
            GitError::UnknownRevision { .. }
            | GitError::NoCurrentRelease { .. }
            | GitError::NotPrepared { .. } => ErrorKind::NotFound,
            GitError::MissingTool { .. } => ErrorKind::Unavailable,
            GitError::NotWritable { .. } => ErrorKind::PermissionDenied,
            GitError::BuildTimeout { .. } => ErrorKind::Timeout,
            GitError::Conflict { .. } => ErrorKind::Conflict,
            GitError::BuildFailed { .. } | GitError::BuildSpawn { .. } | GitError::Task(_) => {
                ErrorKind::Failed
            }
            GitError::Git { source, .. } => match source.downcast_ref::<git2::Error>().map(git2::Error::code)
            {
                Some(git2::ErrorCode::NotFound) => ErrorKind::NotFound,
                Some(git2::ErrorCode::Locked | git2::ErrorCode::Modified | git2::ErrorCode::Conflict) => {
                    ErrorKind::Conflict
                }
                _ => ErrorKind::Failed,
            },
            GitError::Io { source, .. } => ErrorKind::from_io(source.kind()),
        }
    }
}

impl From<GitError> for AdapterError {
    fn from(e: GitError) -> Self {
        AdapterError::new(e.kind(), e.to_string()).with_source(e)
    }
}
