use crate::domain::{IntegrityChecks, IntegrityReport, PreparedRestore, PreservedDatabase, SnapshotInfo};
use crate::error::AdapterError;
use crate::ids::SnapshotId;
use async_trait::async_trait;
use std::time::Duration;

/// Snapshots and restores of one live database.
///
/// The two-phase rule: [`prepare_restore`](Self::prepare_restore) does the slow work while
/// the app still serves; [`preserve_current`](Self::preserve_current) and
/// [`restore`](Self::restore) run while it is stopped and must be fast.
///
/// No method may put a secret (a password, a connection string) into an error, a log line
/// or a returned value.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait DatabaseSnapshot: Send + Sync {
    /// Takes a consistent snapshot of the live database while it keeps serving. Never
    /// blocks writers for longer than the adapter's snapshot mechanism requires, and never
    /// changes the live data.
    async fn snapshot(&self, label: &str) -> Result<SnapshotInfo, AdapterError>;

    /// Checks that the snapshot is complete and readable (checksums, archive listing).
    /// A damaged snapshot gives [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt), an unknown
    /// one [`ErrorKind::NotFound`](crate::ErrorKind::NotFound). Changes nothing.
    async fn verify(&self, id: &SnapshotId) -> Result<(), AdapterError>;

    /// Makes the snapshot ready to be switched in (e.g. restores it into a staging database)
    /// without touching the live database. Safe to abandon and to call again.
    async fn prepare_restore(&self, id: &SnapshotId) -> Result<PreparedRestore, AdapterError>;

    /// The emergency backup: keeps the live database aside so that it can be put back with
    /// [`reinstate`](Self::reinstate). Must finish before anything is replaced and must
    /// itself be restorable. Calling it again with the same label returns the same
    /// preserved database and changes nothing (so an interrupted rollback can resume).
    /// The live database may be gone until [`restore`](Self::restore) or `reinstate`.
    async fn preserve_current(&self, label: &str) -> Result<PreservedDatabase, AdapterError>;

    /// Puts the prepared snapshot live. Idempotent: when the prepared snapshot already is
    /// live, returns `Ok` and changes nothing. Never deletes the preserved database.
    async fn restore(&self, prepared: &PreparedRestore) -> Result<(), AdapterError>;

    /// Puts a preserved database back live (the failure policy's undo), setting aside
    /// whatever is live now. Idempotent. Never deletes anything.
    async fn reinstate(&self, preserved: &PreservedDatabase) -> Result<(), AdapterError>;

    /// Checks connectivity, the configured SQL assertions, foreign keys and, when asked,
    /// row counts against a snapshot. Failed checks are reported in the result, not as an
    /// error; an error means the checks could not run. Changes nothing.
    async fn check_integrity(&self, checks: &IntegrityChecks) -> Result<IntegrityReport, AdapterError>;

    /// All snapshots, newest first.
    async fn list(&self) -> Result<Vec<SnapshotInfo>, AdapterError>;

    /// Deletes a snapshot. Unknown ids give [`ErrorKind::NotFound`](crate::ErrorKind::NotFound).
    async fn remove(&self, id: &SnapshotId) -> Result<(), AdapterError>;

    /// Checks the live database answers; returns the round-trip time.
    async fn ping(&self) -> Result<Duration, AdapterError>;
}
