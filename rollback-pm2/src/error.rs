//! The adapter's own errors; each converts into [`rollback_core::AdapterError`] with the
//! right [`ErrorKind`], keeping itself as the source.

use rollback_core::{AdapterError, ErrorKind};
use std::path::PathBuf;
use std::time::Duration;

/// The pm2 version the project pins and tests against.
pub const PM2_VERSION: &str = "7.0.4";

/// What went wrong talking to pm2. Messages never contain `pm2 jlist` output (it holds
/// every app's environment) nor the environment values given to an app.
///
/// Converts into [`AdapterError`] with [`kind`](Self::kind), keeping itself as the source:
///
/// ```
/// use rollback_core::{AdapterError, ErrorKind};
/// use rollback_pm2::Pm2Error;
/// let e = Pm2Error::UnknownApp { app: "api".into(), known: "web".into(), hint: "" };
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// let e = AdapterError::from(e);
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<Pm2Error>());
/// assert!(matches!(source, Some(Pm2Error::UnknownApp { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pm2Error {
    /// The pm2 binary is not there.
    #[error("pm2 binary `{binary}` not found: install it with `npm install -g pm2@{PM2_VERSION}` or configure its path with Pm2ProcessManager::builder().binary(..)")]
    NotInstalled {
        /// The binary that was tried.
        binary: PathBuf,
    },
    /// The pm2 binary could not be run for another reason (permissions, ...); its kind is
    /// the I/O error's ([`ErrorKind::from_io`]).
    #[error("could not run pm2 binary `{binary}`: {source}")]
    Spawn {
        /// The binary that was tried.
        binary: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The pm2 daemon did not answer (it hangs rather than failing when it cannot start).
    #[error("pm2 daemon not reachable (PM2_HOME={home}): `{command}` {why}; check that PM2_HOME is writable and see its pm2.log")]
    DaemonUnreachable {
        /// The PM2_HOME in use.
        home: String,
        /// The command, e.g. `pm2 jlist`.
        command: String,
        /// What happened.
        why: String,
    },
    /// pm2's daemon is not running (its `pm2.pid` names no live process): its apps went
    /// with it. `status`, `stop` and `restart` say so instead of starting a fresh daemon
    /// that knows no apps.
    #[error("pm2 daemon not reachable (PM2_HOME={home}): it is not running (no live process in its pm2.pid) and its apps went with it; start pm2 and restore them (`pm2 resurrect`), or start the app, which starts pm2")]
    DaemonNotRunning {
        /// The PM2_HOME in use.
        home: String,
    },
    /// A pm2 command exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command, e.g. `pm2 stop web`.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// `pm2 jlist` printed something that is not a process list. It holds where the JSON
    /// broke and how, never serde's own message (which can quote a value from an app's
    /// environment): the cause is deliberately not kept.
    #[error("`pm2 jlist` printed no readable JSON process list ({0}); is `pm2` really pm2 {PM2_VERSION}?")]
    BadJlist(String),
    /// pm2 does not know the app and it cannot be started from a configured spec.
    #[error("app `{app}` is not known to pm2 (known apps: {known}){hint}")]
    UnknownApp {
        /// The app asked for.
        app: String,
        /// The apps pm2 knows, comma separated, or `none`.
        known: String,
        /// What to do, if anything.
        hint: &'static str,
    },
    /// The app did not reach the asked state in time.
    #[error("app `{app}` did not become {wanted} within {after:?}: last state seen {last}")]
    StateTimeout {
        /// The app.
        app: String,
        /// The state asked for.
        wanted: &'static str,
        /// How long we waited.
        after: Duration,
        /// The last state seen, with pid and restarts.
        last: String,
    },
    /// The app keeps restarting after start.
    #[error("app `{app}` failed to start: crash loop: {restarts} restarts in {within:.1?}, last state {last}; see `pm2 logs {app}`")]
    CrashLoop {
        /// The app.
        app: String,
        /// Restarts seen.
        restarts: u32,
        /// Within how long.
        within: Duration,
        /// The last state seen.
        last: String,
    },
    /// The app exited after start and pm2 does not restart it.
    #[error("app `{app}` failed to start: it exited and pm2 does not restart it (autorestart off?), last state {last}; see `pm2 logs {app}`")]
    ExitedAfterStart {
        /// The app.
        app: String,
        /// The last state seen.
        last: String,
    },
    /// The app name would address several apps (or none by name): the
    /// [`ProcessManager`](rollback_core::ProcessManager) contract refuses it.
    #[error("app name `{app}` does not address exactly one app ({why}): name the app itself")]
    NotOneApp {
        /// The name given.
        app: String,
        /// How pm2 would read it.
        why: &'static str,
    },
    /// The configuration is not usable.
    #[error("invalid pm2 adapter configuration: {0}")]
    Config(String),
}

impl Pm2Error {
    /// The [`ErrorKind`] the orchestrator decides on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Pm2Error::Spawn { source, .. } => ErrorKind::from_io(source.kind()),
            Pm2Error::NotInstalled { .. }
            | Pm2Error::DaemonUnreachable { .. }
            | Pm2Error::DaemonNotRunning { .. } => ErrorKind::Unavailable,
            Pm2Error::CommandFailed { .. }
            | Pm2Error::CrashLoop { .. }
            | Pm2Error::ExitedAfterStart { .. } => ErrorKind::Failed,
            Pm2Error::BadJlist(_) => ErrorKind::Corrupt,
            Pm2Error::UnknownApp { .. } => ErrorKind::NotFound,
            Pm2Error::StateTimeout { .. } => ErrorKind::Timeout,
            Pm2Error::Config(_) | Pm2Error::NotOneApp { .. } => ErrorKind::InvalidInput,
        }
    }
}

impl From<Pm2Error> for AdapterError {
    fn from(e: Pm2Error) -> Self {
        AdapterError::new(e.kind(), e.to_string()).with_source(e)
    }
}
