//! # rollback-pm2
//!
//! The real pm2 as rollback's process manager: [`Pm2ProcessManager`] implements
//! [`ProcessManager`](rollback_core::ProcessManager) over the pm2 CLI, and [`Pm2Metrics`]
//! implements [`MetricsSource`](rollback_core::MetricsSource) (memory and CPU per app).
//!
//! - Every pm2 command runs as an argument vector with a timeout, with `PM2_HOME` and the
//!   binary configurable; stderr goes into errors. A pm2 that hangs (its daemon cannot
//!   start) is reported as an unreachable daemon, a missing binary with the install command.
//! - `stop` returns once pm2 says `stopped` *and* the old pids are gone; `start` and
//!   `restart` return once the app is online (a new pid for `restart`) and stayed so, without
//!   restarting, for a stability window. An app that keeps restarting is a crash loop
//!   ([`ErrorKind::Failed`](rollback_core::ErrorKind::Failed)), never "online".
//! - `start` of an app pm2 does not know (a fresh daemon, after `pm2 delete`) uses the
//!   [`AppSpec`] configured for it: an ecosystem file or a script with cwd, args and env (env
//!   values are [`Secret`](rollback_core::Secret)s, passed through pm2's environment).
//! - `pm2 jlist` prints every app's environment, secrets included: it is parsed for the few
//!   fields needed and never logged or quoted in an error.
//!
//! What it is not: a pm2 installer or a deploy tool. It needs pm2 (tested with pm2
//! [`PM2_VERSION`], `npm install -g pm2@7.0.4`) and drives only the apps it is asked about.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rollback_core::AdapterError> {
//! use rollback_core::{AppName, ProcessManager};
//! use rollback_pm2::{AppSpec, Pm2ProcessManager, ScriptSpec};
//! let pm2 = Pm2ProcessManager::builder()
//!     .home("/srv/app/.pm2")
//!     .app("web", AppSpec::Script(ScriptSpec::new("server.js").cwd("/srv/app/current").env("PORT", "3000")))
//!     .build()?;
//! pm2.restart(&AppName::new("web")).await?;
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod cli;
mod config;
mod error;
mod jlist;
mod log_sizes;
mod logs;
mod manager;
mod metrics;
mod select;
mod warm;

pub use config::{AppSpec, CrashLoopPolicy, Pm2Config, ScriptSpec};
pub use error::{Pm2Error, PM2_VERSION};
pub use manager::{Pm2Builder, Pm2ProcessManager};
pub use metrics::Pm2Metrics;
