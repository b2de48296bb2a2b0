//! The adapter's own errors; each converts into [`rollback_core::AdapterError`] with the
//! right [`ErrorKind`], keeping itself as the source.

use rollback_core::{AdapterError, ErrorKind};
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong talking to supervisord. Messages quote supervisorctl's own words about
/// the one program asked for (a result line, a status line, a connection error with any
/// password in a URL redacted), never a program's environment nor the config file.
///
/// ```
/// use rollback_core::ErrorKind;
/// use rollback_supervisord::SupervisordError;
/// let e = SupervisordError::UnknownApp { app: "api".into(), known: "web, worker".into() };
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// assert!(e.to_string().contains("known programs: web, worker"));
/// let e: rollback_core::AdapterError = e.into();
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<SupervisordError>());
/// assert!(matches!(source, Some(SupervisordError::UnknownApp { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisordError {
    /// The supervisorctl binary is not there.
    #[error("supervisorctl binary `{binary}` not found: install supervisor (`apt-get install supervisor`) or configure its path with SupervisordProcessManager::builder(..).binary(..)")]
    NotInstalled {
        /// The binary that was tried.
        binary: PathBuf,
    },
    /// supervisorctl could not be run for another reason (permissions, ...); its kind is
    /// the I/O error's ([`ErrorKind::from_io`]).
    #[error("could not run supervisorctl binary `{binary}`: {source}")]
    Spawn {
        /// The binary that was tried.
        binary: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file supervisorctl is given is gone.
    #[error("supervisorctl cannot read its configuration `{config}`: {detail}")]
    ConfigUnreadable {
        /// The file.
        config: PathBuf,
        /// supervisorctl's words.
        detail: String,
    },
    /// supervisord is not running or does not answer: its socket is missing or refuses, or
    /// supervisorctl hung. supervisord is never started in its place.
    #[error("supervisord not reachable (config {config}): `{command}` {why}; is supervisord running with this configuration? (`supervisord -c {config}`)")]
    Unreachable {
        /// The configuration in use.
        config: PathBuf,
        /// The command, e.g. `supervisorctl status`.
        command: String,
        /// What happened, in supervisorctl's words.
        why: String,
    },
    /// supervisord refused the credentials (or the socket's permissions refused us).
    #[error("supervisord refused `{command}`: {detail}; check the [supervisorctl] username/password in {config} and the socket's permissions")]
    PermissionDenied {
        /// The configuration in use.
        config: PathBuf,
        /// The command.
        command: String,
        /// supervisorctl's words.
        detail: String,
    },
    /// supervisorctl ran but the command failed.
    #[error("`{command}` failed: {detail}")]
    CommandFailed {
        /// The command, e.g. `supervisorctl stop web`.
        command: String,
        /// supervisorctl's words about the program.
        detail: String,
    },
    /// supervisord does not know the program.
    #[error("program `{app}` is not known to supervisord (known programs: {known}): check the name (`group:program` for a program in a group), and `supervisorctl reread` + `update` after a config change")]
    UnknownApp {
        /// The name asked for.
        app: String,
        /// The programs supervisord knows, comma separated, or `none`.
        known: String,
    },
    /// The name would address several programs (or none by name): the
    /// [`ProcessManager`](rollback_core::ProcessManager) contract refuses it.
    #[error("program name `{app}` does not address exactly one program ({why}): name the program itself (`program` or `group:program`)")]
    NotOneApp {
        /// The name given.
        app: String,
        /// How supervisorctl would read it.
        why: &'static str,
    },
    /// The program did not reach the asked state within the adapter's wait.
    #[error("program `{app}` did not become {wanted} within {after:?}: last state seen {last}")]
    StateTimeout {
        /// The program.
        app: String,
        /// The state asked for.
        wanted: &'static str,
        /// How long the adapter waited.
        after: Duration,
        /// The last state seen.
        last: String,
    },
    /// The program crashed at start: supervisord saw it exit before `startsecs`, or the
    /// command could not be spawned.
    #[error("program `{app}` failed to start ({why}): last state {last}; see its log (`supervisorctl tail {app} stderr`)")]
    CrashedAtStart {
        /// The program.
        app: String,
        /// supervisorctl's result, e.g. `spawn error`.
        why: String,
        /// The last state seen.
        last: String,
    },
    /// The program reached `RUNNING` and then exited (or was replaced by a new process)
    /// within the stability window.
    #[error("program `{app}` failed to start: it was running, then {what} within the stability window of {window:?}; last state {last}")]
    ExitedAfterStart {
        /// The program.
        app: String,
        /// What happened.
        what: &'static str,
        /// The stability window.
        window: Duration,
        /// The last state seen.
        last: String,
    },
    /// supervisorctl printed something this adapter cannot read.
    #[error("`{command}` printed nothing readable about `{app}`: {detail}")]
    BadOutput {
        /// The command.
        command: String,
        /// The program.
        app: String,
        /// The end of what it printed.
        detail: String,
    },
    /// The configuration is not usable.
    #[error("invalid supervisord adapter configuration: {0}")]
    Config(String),
}

impl SupervisordError {
    /// The [`ErrorKind`] the orchestrator decides on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Spawn { source, .. } => ErrorKind::from_io(source.kind()),
            Self::NotInstalled { .. } | Self::ConfigUnreadable { .. } | Self::Unreachable { .. } => {
                ErrorKind::Unavailable
            }
            Self::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Self::CommandFailed { .. }
            | Self::CrashedAtStart { .. }
            | Self::ExitedAfterStart { .. }
            | Self::BadOutput { .. } => ErrorKind::Failed,
            Self::UnknownApp { .. } => ErrorKind::NotFound,
            Self::NotOneApp { .. } | Self::Config(_) => ErrorKind::InvalidInput,
            Self::StateTimeout { .. } => ErrorKind::Timeout,
        }
    }
}

impl From<SupervisordError> for AdapterError {
    fn from(e: SupervisordError) -> Self {
        AdapterError::new(e.kind(), e.to_string()).with_source(e)
    }
}
