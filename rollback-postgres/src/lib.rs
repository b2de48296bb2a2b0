//! # rollback-postgres
//!
//! [`DatabaseSnapshot`](rollback_core::DatabaseSnapshot) for PostgreSQL 13 and newer:
//! snapshots are `pg_dump` archives (custom format, or directory format with parallel jobs;
//! never plain SQL, which `pg_restore` cannot read) with a manifest of checksums and row
//! counts; a rollback restores the snapshot into a staging database while the app still
//! serves, then switches it in by two renames, so the offline window is that of a rename,
//! not of a restore.
//!
//! - [`PostgresSnapshot`]: the adapter; [`PgConfig`]: connection settings (the password is
//!   a [`Secret`](rollback_core::Secret), never shown by `Debug`); [`PgTools`]: where
//!   `pg_dump`/`pg_restore` are; [`Options`]: archive format, parallel jobs, time limits;
//!   [`PgError`]: what went wrong, converted into [`AdapterError`](rollback_core::AdapterError)
//!   with itself as the source.
//! - The live database is never deleted: `preserve_current` renames it to
//!   `<db>__pre_rollback_<utc>` (writes made after the snapshot live on there), `reinstate`
//!   puts it back and sets the failed one aside as `<db>__rollback_failed_<utc>`. Old ones
//!   go only through the explicit [`PostgresSnapshot::apply_retention`].
//! - Consistency: `pg_dump` works in one MVCC snapshot, so the archive is consistent while
//!   the app keeps writing; the manifest's row counts and integrity baseline (orphan rows
//!   per foreign key, sequences behind their columns) are taken in that same snapshot, and
//!   later checks fail only on what is worse than that baseline.
//! - `check_prepared` seals the staged copy (connections refused, every other session
//!   terminated) and runs the integrity checks on it while the app serves; a copy that
//!   passed is switched in still sealed by `restore`, `prove_unchanged` proves from the
//!   maintenance database that it is that copy, untouched (no recount while the app is
//!   down), and `open` opens it right before the app starts. `reinstate` leaves what it
//!   puts live sealed too. `restore` and `reinstate` return every database they renamed
//!   aside, with what it holds.
//! - Data at rest: the snapshot root and snapshot directories are `0700`, every file in
//!   them (archives, manifests, the state file) `0600`, whatever the umask;
//!   `access_warnings` reports what others can read and changes nothing. Manifests and the
//!   state file are replaced durably (temporary file, fsync, rename, fsync of the
//!   directory), so a crash never leaves one torn.
//!
//! - TLS: `sslmode` disable / prefer (the default) / require / verify-ca / verify-full with
//!   libpq's meaning (see [`SslMode`]: `require` encrypts without checking the server
//!   unless a root certificate is given; `verify-full` checks the CA and the host name),
//!   `sslrootcert`, and a client certificate (`sslcert`, `sslkey`), from the URL's query or
//!   the [`PgConfig`] setters. The adapter's own connections use rustls (pure Rust);
//!   `pg_dump` and `pg_restore` get the same settings as `PGSSLMODE`, `PGSSLROOTCERT`,
//!   `PGSSLCERT` and `PGSSLKEY` in their environment, never on their command line. A
//!   refused connection (`ping`, in pre-flight) says which TLS problem it was: a server
//!   certificate not signed by the given CA, a host name the certificate does not hold, a
//!   server without TLS, a server that takes TLS only, a key file others may read.
//!
//! - Shared state: [`PgStateStore`] is a [`StateStore`](rollback_core::StateStore) in
//!   PostgreSQL (checkpoints, journals, reports and the rollback lock in the tables of one
//!   schema), for teams that roll back from more than one deploy box: they share one lock,
//!   so two operators cannot run at once, and either box resumes what the other left
//!   unfinished. Keep it in a database of its own, never the app's live one.
//!
//! What it is not: a physical backup (no WAL archiving, no point-in-time recovery), and it
//! does not capture roles, which are cluster-wide.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rollback_core::DatabaseSnapshot;
//! use rollback_postgres::{PgConfig, PgTools, PostgresSnapshot};
//! let config = PgConfig::from_url("postgres://app:secret@127.0.0.1:5432/shop")?;
//! let db = PostgresSnapshot::new(config, "/var/lib/rollback/snapshots", PgTools::discover().await?);
//! let snap = db.snapshot("before v2").await?;
//! db.verify(&snap.id).await?;
//! # Ok(()) }
//! ```
//!
//! Over TLS, checking the server's certificate against its CA and host name (a managed
//! service publishes its CA bundle):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rollback_core::DatabaseSnapshot;
//! use rollback_postgres::{PgConfig, PgTools, PostgresSnapshot};
//! let config = PgConfig::from_url(
//!     "postgres://app:secret@db.example.com:5432/shop?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem",
//! )?;
//! let db = PostgresSnapshot::new(config, "/var/lib/rollback/snapshots", PgTools::discover().await?);
//! db.ping().await?; // a wrong CA or host name is refused here, saying which
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod adapter;
mod config;
mod dbprops;
mod diagnose;
mod error;
mod files;
mod ident;
mod integrity;
mod manifest;
mod privileges;
mod seal;
mod snapshot;
mod state;
mod state_store;
mod switch;
mod tls;
mod tools;

#[cfg(test)]
mod tests;

pub use adapter::{Options, PostgresSnapshot, RetentionReport, METHOD_DUMP, METHOD_RENAME};
pub use config::{PgConfig, SslMode};
pub use error::PgError;
pub use manifest::DumpFormat;
pub use seal::PROOF_CHECK;
pub use state_store::PgStateStore;
pub use tools::PgTools;
