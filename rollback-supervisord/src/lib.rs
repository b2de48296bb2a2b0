//! # rollback-supervisord
//!
//! supervisord as rollback's process manager: [`SupervisordProcessManager`] implements
//! [`ProcessManager`](rollback_core::ProcessManager) over `supervisorctl -c <config>`
//! (`status`, `stop`, `start`, `restart` of one program), so that a rollback stops and starts
//! the app through supervisord, never through the release's own scripts.
//!
//! - Every supervisorctl call is an argument vector with a timeout; the socket, and any
//!   credentials, come from the configuration file, never from a command line.
//! - A call returns once the state is real: `stop` once supervisord says stopped and the
//!   old pid is gone, `start` once the program is `RUNNING` (up for its `startsecs`), and
//!   `restart` once a new process is. A program that exits at start is
//!   [`ErrorKind::Failed`](rollback_core::ErrorKind::Failed) at once, left `BACKOFF`
//!   ([`Retrying`](rollback_core::ProcessState::Retrying)) or `FATAL`
//!   ([`Errored`](rollback_core::ProcessState::Errored)).
//! - supervisord down (socket missing or refusing, supervisorctl hanging) is
//!   [`ErrorKind::Unavailable`](rollback_core::ErrorKind::Unavailable), never "not found".
//! - supervisord counts no restarts: [`ProcessStatus::restarts`](rollback_core::ProcessStatus::restarts)
//!   is always `None`.
//!
//! What it is not: a supervisord installer or configurator. It does not start supervisord,
//! add or remove programs (`reread`/`update`), nor drive groups or `numprocs` instances as
//! one app: a name is one program (`program` or `group:program`), and names that address
//! several (`all`, `group:*`, `group:`) are refused. It needs supervisor 4 (tested with
//! Debian's `supervisor` 4.2.5).
//!
//! ```no_run
//! # async fn demo() -> Result<(), rollback_core::AdapterError> {
//! use rollback_core::{AppName, ProcessManager, ProcessState};
//! use rollback_supervisord::SupervisordProcessManager;
//! use std::time::Duration;
//! let pm = SupervisordProcessManager::builder("/etc/supervisor/supervisord.conf")
//!     .state_timeout(Duration::from_secs(20))
//!     .build()?;
//! let web = AppName::new("web");
//! pm.stop(&web).await?;
//! assert_eq!(pm.status(&web).await?.state, ProcessState::Stopped);
//! pm.start(&web).await?;
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod ctl;
mod error;
mod manager;
mod status;

pub use error::SupervisordError;
pub use manager::{SupervisordBuilder, SupervisordConfig, SupervisordProcessManager};
