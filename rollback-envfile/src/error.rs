//! The crate's errors. None of them carries a value from an env file.

use rollback_core::{AdapterError, ErrorKind};
use std::path::PathBuf;

/// What went wrong with an env file or its history. Converted into an [`AdapterError`] of
/// the [`kind`](Self::kind), keeping this error as its source.
///
/// ```
/// use rollback_core::{AdapterError, ErrorKind};
/// use rollback_envfile::EnvFileError;
/// let e = EnvFileError::LiveMissing { path: "/srv/app/.env.production".into() };
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// let adapter = AdapterError::from(e);
/// assert!(std::error::Error::source(&adapter).is_some_and(|s| s.is::<EnvFileError>()));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvFileError {
    /// The live env file does not exist.
    #[error("the env file {path} does not exist: create it, or point the store at the file the app reads")]
    LiveMissing {
        /// The configured path.
        path: PathBuf,
    },
    /// No stored version has this id.
    #[error("no env-file version `{id}` in {dir}: `list()` shows the stored versions")]
    UnknownVersion {
        /// The id asked for.
        id: String,
        /// Where versions are kept.
        dir: PathBuf,
    },
    /// A version does not parse.
    #[error("{path} does not parse: {error}; fix that line (values are not shown here)")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line and what is wrong.
        #[source]
        error: crate::SyntaxError,
    },
    /// A version lacks keys the app requires.
    #[error("env-file version `{id}` lacks required keys {}: add them to that version or choose another", keys.join(", "))]
    MissingRequired {
        /// The version.
        id: String,
        /// The missing keys.
        keys: Vec<String>,
    },
    /// A file-system operation failed.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "write the backup", ...).
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Backups would be written inside a git working tree, where `git add -A` would commit
    /// them (secrets) and leave the tree dirty.
    #[error(
        "env-file backups would be kept in {dir}, inside the git working tree {worktree}, where \
         `git add -A` would commit them: set `history_dir` to a directory outside the tree \
         (or, if git ignores that directory, also call `allow_history_in_worktree()`)"
    )]
    HistoryInWorktree {
        /// The history directory that was chosen or configured.
        dir: PathBuf,
        /// The root of the working tree it lies in.
        worktree: PathBuf,
    },
    /// The label index of the history cannot be read or written as JSON.
    #[error("the label index {path} cannot be read or written as JSON ({source}): remove it (labels are lost, versions are not)")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What the JSON reader or writer said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The configuration of the store is unusable.
    #[error("invalid env-file store setup: {0}")]
    Setup(String),
}

impl EnvFileError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }

    /// The core's error kind for this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::LiveMissing { .. } | Self::UnknownVersion { .. } => ErrorKind::NotFound,
            Self::Syntax { .. }
            | Self::MissingRequired { .. }
            | Self::HistoryInWorktree { .. }
            | Self::Setup(_) => ErrorKind::InvalidInput,
            Self::Index { .. } => ErrorKind::Corrupt,
            Self::Io { source, .. } => ErrorKind::from_io(source.kind()),
        }
    }
}

impl From<EnvFileError> for AdapterError {
    fn from(e: EnvFileError) -> Self {
        AdapterError::new(e.kind(), e.to_string()).with_source(e)
    }
}
