//! # rollback-envfile
//!
//! [`ConfigStore`](rollback_core::ConfigStore) for env files such as `.env.production`:
//! - backups beside the file as `<name>.backup.<UTC timestamp>` (the runbook's naming) or in
//!   a configured directory, keeping the file's mode (0600 stays 0600) and owner where
//!   allowed, with retention of the last N;
//! - `verify` parses a version by a written-down grammar ([`parse`]) and names the line of
//!   a syntax error, never its text; keys defined twice are warnings; required keys are
//!   checked, so a version without them is refused in pre-flight;
//! - `restore` is atomic (temp file, fsync, rename, fsync of the directory) and backs up the
//!   file it replaces first;
//! - `diff` lists keys added, removed and changed, never values.
//!
//! No value from an env file appears in a `Debug`, a log line, an error or a report.
//!
//! See [`EnvFileStore`] for an example.

#![warn(missing_docs)]

mod atomic;
mod error;
mod history;
pub mod parse;
mod store;

pub use error::EnvFileError;
pub use parse::{Entry, EnvFile, SyntaxError};
pub use store::{EnvFileStore, LIVE, PREVIOUS};
