use crate::domain::{AppLogs, ProcessStatus};
use crate::error::AdapterError;
use crate::ids::AppName;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Starts and stops the app through its process manager (pm2, systemd, supervisord, a
/// container runtime, a supervisor of one's own), never through the release's own scripts:
/// stopping must not depend on the broken release.
///
/// # The contract
///
/// Every adapter keeps it, whatever its manager does natively;
/// `rollback_testkit::conformance::process_manager` checks it.
///
/// **One name, one app.** An [`AppName`] addresses exactly one app (every instance of a
/// clustered app is that one app). A name that some manager reads as several apps is
/// refused by every method with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput),
/// before the manager is asked and whatever this adapter's own manager would make of it:
/// `all`, a name containing `*`, `?` or `[` (a glob, supervisord's `group:*`), and a name
/// written `/…/` (pm2's regular expressions). An adapter also refuses whatever else its
/// manager reads as a group or an id (pm2 reads a number as a process id).
///
/// **A call returns once the state is real.** [`stop`](Self::stop) returns once no process
/// of the app runs, [`start`](Self::start) once it is online and stayed so (not
/// crash-looping), [`restart`](Self::restart) once a new process is. What
/// [`status`](Self::status) says afterwards agrees: [`Stopped`](crate::ProcessState::Stopped)
/// with no pid after `stop`; [`Online`](crate::ProcessState::Online) with the pid after
/// `start`, a different pid after `restart`.
///
/// **States** ([`ProcessState`](crate::ProcessState)):
/// - `Online` always carries the pid.
/// - A crashed app the manager is still restarting is
///   [`Retrying`](crate::ProcessState::Retrying); one it gave up on is
///   [`Errored`](crate::ProcessState::Errored). A start that failed leaves one of the two,
///   never `Online`.
/// - After `stop`, no process of the app runs and none is being restarted: `Stopped`, or
///   `Errored` with no pid for a manager that keeps its gave-up state until the next start
///   (supervisord's `FATAL`, systemd's `failed`); never `Retrying`, never a pid.
///
/// **Restart counts.** [`ProcessStatus::restarts`] is `Some` only when the count includes
/// the restarts `restart` asks for: each `restart` then adds at least one. An adapter whose
/// manager counts nothing, or counts only its own automatic restarts, reports `None`.
///
/// **Timeouts: whose is which.** The adapter owns the wait for the state it was asked for:
/// it polls its manager until that state is reached or its own configurable limit runs
/// out, then fails with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) naming the last
/// state seen. The orchestrator owns the step limit ([`StepTimeouts`](crate::StepTimeouts)
/// in [`Settings::timeouts`](crate::Settings::timeouts)): it wraps every call of a step and
/// abandons the call when the step runs past its limit. An adapter's wait should be
/// shorter than the step's limit, so that the error reported is the adapter's, which says
/// what state the app was in. A call abandoned half way (by the step's limit, by a
/// crash) must leave the next call working.
///
/// **Errors** (the [`ErrorKind`](crate::ErrorKind) of each failure):
/// - an app the manager does not know: `NotFound`, from every method;
/// - a name that addresses several apps: `InvalidInput`, from every method;
/// - the manager cannot be reached (its daemon is down, its socket refuses, its binary is
///   missing): `Unavailable`, never `NotFound` (a manager that cannot be asked cannot say
///   an app is unknown). `status`, `stop` and `restart` never start the manager in its place
///   (a fresh one knows no apps and would answer for one that exists); `start` may, where
///   that is how the manager works (pm2 spawns its daemon on demand), and then starts the
///   app or fails as below;
/// - the app crashes at start (a crash loop, an exit): `Failed`, naming the last state and
///   the restarts seen, as soon as the crash is seen, not at the end of the wait;
/// - the asked state was not reached within the adapter's wait: `Timeout`, naming the last
///   state seen;
/// - credentials refused: `PermissionDenied`; the manager refused the command for another
///   reason: `Failed`, with the manager's own message (never an app's environment: it holds
///   secrets).
///
/// **Required and provided methods.** Required: `status`, `stop`, `start`, `restart`.
/// Provided (override where the manager can): `can_reload`, `reload`, `logs_since`,
/// `without_parts` (a manager of several hosts). New
/// capabilities are added as provided methods, so adding one never breaks an adapter.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ProcessManager: Send + Sync {
    /// The app's status now. Changes nothing, and never starts the manager.
    async fn status(&self, app: &AppName) -> Result<ProcessStatus, AdapterError>;

    /// Stops the app (and keeps the manager from restarting it) and returns once no process
    /// of it runs; [`status`](Self::status) then says `Stopped` (or `Errored`, see the
    /// states above) with no pid, a crashed app
    /// included. Stopping a stopped app is `Ok` and changes nothing. Not done within the
    /// adapter's wait: `Timeout` naming the last state seen.
    async fn stop(&self, app: &AppName) -> Result<(), AdapterError>;

    /// Starts the app and returns once it really is online and stayed so (not
    /// crash-looping); [`status`](Self::status) then says `Online` with its pid. Starting
    /// an online app is `Ok` and changes nothing (same pid). An app that crashes at start
    /// is `Failed` and left `Errored` or `Retrying`; not online within the adapter's wait:
    /// `Timeout` naming the last state seen.
    async fn start(&self, app: &AppName) -> Result<(), AdapterError>;

    /// Replaces the app's process with a new one and returns once the new one is online:
    /// a different pid, and (when counted) one restart more. A stopped app is started.
    /// Fails as [`start`](Self::start) does.
    async fn restart(&self, app: &AppName) -> Result<(), AdapterError>;

    /// True when [`reload`](Self::reload) can replace `app`'s processes now without a
    /// moment where none serves (pm2's cluster mode with two or more instances online, say).
    /// Changes nothing.
    ///
    /// Optional: the provided version says `false`, and the orchestrator stops and starts.
    async fn can_reload(&self, app: &AppName) -> Result<bool, AdapterError> {
        let _ = app;
        Ok(false)
    }

    /// The graceful reload: replaces `app`'s processes one at a time with new ones that run
    /// the code and config active now, at least one serving throughout, and returns once
    /// every new process is online (new pids) and stayed so. Fails as
    /// [`start`](Self::start) does; the orchestrator calls it only after
    /// [`can_reload`](Self::can_reload) said yes.
    ///
    /// Optional: the provided version refuses (`InvalidInput`).
    async fn reload(&self, app: &AppName) -> Result<(), AdapterError> {
        Err(AdapterError::new(
            crate::ErrorKind::InvalidInput,
            format!("this process manager cannot reload `{app}` gracefully: stop and start it"),
        ))
    }

    /// What the app wrote to the manager's log (stdout and stderr) since `since`, for
    /// post-verify's "no critical errors in logs". Reads only what was written since then
    /// (saying so in [`AppLogs::partial`] and its notes when that cannot be told exactly)
    /// and a bounded amount of it; redacts what the adapter knows to be secret (the app's
    /// environment values) before returning. Changes nothing, never starts the manager.
    ///
    /// Optional: the provided version returns `None` ("this manager's logs cannot be
    /// read"), which the report shows as not checked.
    async fn logs_since(&self, app: &AppName, since: DateTime<Utc>) -> Result<Option<AppLogs>, AdapterError> {
        let _ = (app, since);
        Ok(None)
    }

    /// The same manager over every part but `except` (parts named as this manager's errors
    /// name them in [`AdapterError::parts`]): a recovery serves again with the parts that
    /// are consistent while the others are unreachable or not put back, and never starts,
    /// stops or reloads a part it left out. Changes nothing.
    ///
    /// Optional: the provided version returns `None` (a manager of one part cannot leave
    /// one out), and the recovery then starts nothing rather than a part it must leave
    /// alone.
    fn without_parts(&self, except: &[String]) -> Option<std::sync::Arc<dyn ProcessManager>> {
        let _ = except;
        None
    }
}

/// Forwards every method, provided ones included, so that an `Arc` of an adapter (or an
/// `Arc<dyn ProcessManager>`) is one too: builders take `impl ProcessManager`, and callers that keep a
/// handle (tests reading a fake's calls) pass a clone of their `Arc`.
#[async_trait]
impl<T: ProcessManager + ?Sized> ProcessManager for std::sync::Arc<T> {
    async fn status(&self, app: &AppName) -> Result<ProcessStatus, AdapterError> {
        (**self).status(app).await
    }

    async fn stop(&self, app: &AppName) -> Result<(), AdapterError> {
        (**self).stop(app).await
    }

    async fn start(&self, app: &AppName) -> Result<(), AdapterError> {
        (**self).start(app).await
    }

    async fn restart(&self, app: &AppName) -> Result<(), AdapterError> {
        (**self).restart(app).await
    }

    async fn can_reload(&self, app: &AppName) -> Result<bool, AdapterError> {
        (**self).can_reload(app).await
    }

    async fn reload(&self, app: &AppName) -> Result<(), AdapterError> {
        (**self).reload(app).await
    }

    async fn logs_since(&self, app: &AppName, since: DateTime<Utc>) -> Result<Option<AppLogs>, AdapterError> {
        (**self).logs_since(app, since).await
    }

    fn without_parts(&self, except: &[String]) -> Option<std::sync::Arc<dyn ProcessManager>> {
        (**self).without_parts(except)
    }
}
