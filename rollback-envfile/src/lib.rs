//! # rollback-envfile
//!
//! [`ConfigStore`](rollback_core::ConfigStore) for env files such as `.env.production`:
//! - backups as `<name>.backup.<UTC timestamp>` (the runbook's naming), keeping the file's
//!   mode (0600 stays 0600) and owner where allowed, with retention of the last N;
//! - backups never where git would commit them: beside the file when it is in no git
//!   working tree; for a file inside one (an in-place deploy's `<repo>/.env.production`)
//!   outside the tree, in `<parent of the tree>/.rollback-env-history/<tree name>/`
//!   (mode 0700); a configured `history_dir` inside a tree is refused unless
//!   `allow_history_in_worktree()` is called (details on [`EnvFileStore::new`]);
//! - history ordered by the stamp in each backup's name, not by file times: the store's
//!   own `%Y%m%dT%H%M%S%.3fZ` (UTC), and the stamps of hand-made backups
//!   (`%Y%m%d_%H%M%S` as in the runbook, `%Y%m%d%H%M%S`, `%Y-%m-%dT%H:%M:%S`, read in the
//!   host's local time zone as `date` prints them; `%Y%m%dT%H%M%SZ`,
//!   `%Y-%m-%dT%H:%M:%SZ` in UTC; a date alone, `%Y%m%d` or `%Y-%m-%d`, as midnight UTC),
//!   ties broken by the store's `-2`, `-3` collision counter, then by name; a file's
//!   modification time counts only when its name carries no stamp;
//! - `verify` parses a version by a written-down grammar ([`EnvFile`]) and names the line of
//!   a syntax error, never its text; keys defined twice are warnings; required keys are
//!   checked, so a version without them is refused in pre-flight;
//! - `restore` is atomic (the core's durable write,
//!   [`write_durable_shared`](rollback_core::sys::write_durable_shared): temp file, fsync,
//!   rename, fsync of the directory) and backs up the file it replaces first;
//! - `diff` lists keys added, removed and changed, never values.
//!
//! No value from an env file appears in a `Debug`, a log line, an error or a report.
//!
//! See [`EnvFileStore`] for an example.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod error;
mod history;
mod parse;
mod store;
mod worktree;
mod write;

pub use error::EnvFileError;
pub use parse::{Entry, EnvFile, SyntaxError};
pub use store::{EnvFileStore, LIVE, PREVIOUS};
