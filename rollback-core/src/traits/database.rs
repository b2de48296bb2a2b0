use crate::domain::{
    CheckResult, Finding, IntegrityChecks, IntegrityReport, PreparedRestore, PreservedDatabase, PutAside,
    SnapshotInfo,
};
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
///
/// Required: `snapshot`, `verify`, `prepare_restore`, `preserve_current`, `restore`,
/// `reinstate`, `check_integrity`, `list`, `remove`, `ping`. Provided (override where the
/// adapter can do better): `check_prepared`, `prove_unchanged`, `open`, `access_warnings`,
/// `diagnose`, `check_privileges`, `preserved`, `live_source`. New capabilities are added as provided methods, so adding one never breaks
/// an adapter.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait DatabaseSnapshot: Send + Sync {
    /// Takes a consistent snapshot of the live database while it keeps serving. Never
    /// blocks writers for longer than the adapter's snapshot mechanism requires, and never
    /// changes the live data. Records the snapshot's own integrity baseline (what is
    /// already broken in it: orphan rows per foreign key, sequences behind their columns)
    /// and says so in [`SnapshotInfo::warnings`]: a database with broken keys is
    /// snapshotted, not refused. `created_at` is the consistency point.
    async fn snapshot(&self, label: &str) -> Result<SnapshotInfo, AdapterError>;

    /// Checks that the snapshot is complete and readable (checksums, archive listing) and
    /// that its metadata was not altered after it was written. A damaged snapshot gives [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt), an unknown
    /// one [`ErrorKind::NotFound`](crate::ErrorKind::NotFound). Changes nothing.
    async fn verify(&self, id: &SnapshotId) -> Result<(), AdapterError>;

    /// Makes the snapshot ready to be switched in (e.g. restores it into a staging database)
    /// without touching the live database. Safe to abandon and to call again.
    async fn prepare_restore(&self, id: &SnapshotId) -> Result<PreparedRestore, AdapterError>;

    /// Runs [`check_integrity`](Self::check_integrity)'s checks on the prepared copy
    /// instead of the live database, while the app still serves, so that whatever can be
    /// found there is found before the stop. Changes nothing the switch relies on.
    ///
    /// Optional: the provided version returns a report with no checks, which tells the
    /// orchestrator that nothing was verified online (it then relies on the check after the
    /// switch). An adapter that stages a copy should implement it.
    async fn check_prepared(
        &self,
        prepared: &PreparedRestore,
        checks: &IntegrityChecks,
    ) -> Result<IntegrityReport, AdapterError> {
        let _ = (prepared, checks);
        Ok(IntegrityReport::default())
    }

    /// The emergency backup: keeps the live database aside so that it can be put back with
    /// [`reinstate`](Self::reinstate). Must finish before anything is replaced and must
    /// itself be restorable. Calling it again with the same label returns the same
    /// preserved database and changes nothing (so an interrupted rollback can resume).
    /// The live database may be gone until [`restore`](Self::restore) or `reinstate`.
    async fn preserve_current(&self, label: &str) -> Result<PreservedDatabase, AdapterError>;

    /// Proves cheaply, while the app is stopped, that the live database is the staged copy
    /// [`check_prepared`](Self::check_prepared) verified and that nothing changed it since
    /// (for example: the same database, sealed against every connection from the end of
    /// that check until now), so that the offline window does not grow with the data.
    /// Changes nothing.
    ///
    /// Optional: the provided version returns `None` ("cannot prove it"), and the
    /// orchestrator runs the full [`check_integrity`](Self::check_integrity) instead. An
    /// adapter whose `restore` leaves the database sealed must implement it.
    async fn prove_unchanged(&self, prepared: &PreparedRestore) -> Result<Option<CheckResult>, AdapterError> {
        let _ = prepared;
        Ok(None)
    }

    /// Opens the live database to every client. [`restore`](Self::restore) and
    /// [`reinstate`](Self::reinstate) may leave what they put live sealed (closed to all but
    /// the adapter's own sessions) so that no other client (a worker, a cron job, a pool
    /// that reconnects in milliseconds) writes into a database that is not verified yet or
    /// may still be switched back; the orchestrator opens it right before it starts the app.
    /// Idempotent; returns notes for the report (who was kept out, since when).
    ///
    /// Optional: the provided version has nothing to open.
    async fn open(&self) -> Result<Vec<String>, AdapterError> {
        Ok(Vec::new())
    }

    /// Puts the prepared snapshot live. Idempotent: when the prepared snapshot already is
    /// live, returns `Ok` and changes nothing; a call interrupted half way is finished by
    /// the next one (every shortcut completes what the interrupted call would have done).
    /// Never deletes the preserved database; returns whatever else it had to put aside.
    async fn restore(&self, prepared: &PreparedRestore) -> Result<Vec<PutAside>, AdapterError>;

    /// Puts a preserved database back live (the failure policy's undo), setting aside
    /// whatever is live now. Idempotent. Never deletes anything: returns where it put what
    /// was live (with what it holds), so that no write made into it is stranded unnamed.
    async fn reinstate(&self, preserved: &PreservedDatabase) -> Result<Vec<PutAside>, AdapterError>;

    /// Checks connectivity, the configured SQL assertions, foreign keys and sequences
    /// (against [`IntegrityChecks::baseline`] when given: only what is worse than the
    /// snapshot's own baseline fails) and, when asked, exact row counts against a snapshot.
    /// Failed checks are reported in the result, not as an error; an error means the checks
    /// could not run. Changes nothing.
    async fn check_integrity(&self, checks: &IntegrityChecks) -> Result<IntegrityReport, AdapterError>;

    /// All snapshots, newest first.
    async fn list(&self) -> Result<Vec<SnapshotInfo>, AdapterError>;

    /// Deletes a snapshot. Unknown ids give [`ErrorKind::NotFound`](crate::ErrorKind::NotFound).
    async fn remove(&self, id: &SnapshotId) -> Result<(), AdapterError>;

    /// Checks the live database answers; returns the round-trip time.
    async fn ping(&self) -> Result<Duration, AdapterError>;

    /// What of the adapter's own files (snapshot archives hold every row) users other than
    /// the owner can read: one line per path, naming the fix. Pre-flight warns with these;
    /// nothing is changed (never a silent chmod of what the adapter did not create).
    /// Provided: nothing to report.
    async fn access_warnings(&self) -> Result<Vec<String>, AdapterError> {
        Ok(Vec::new())
    }

    /// The database's own view of itself, for "performance degradation: investigate
    /// first": long-running queries, sessions waiting on locks, connections by state, the
    /// cache hit ratio, the most expensive statements: whatever the adapter can read.
    /// Every query within a timeout; query text only in a form that holds no literal
    /// (secrets and personal data live in literals), and the findings say which form.
    /// Changes nothing.
    ///
    /// Optional: the provided version finds nothing.
    async fn diagnose(&self) -> Result<Vec<Finding>, AdapterError> {
        Ok(Vec::new())
    }

    /// Whether the role the adapter connects as may do everything a checkpoint and a
    /// rollback of this database will ask of it (create and rename databases, end other
    /// roles' sessions, re-apply per-role settings, read every row despite row-level
    /// security, ...), judged from the database as it is now: one catalog read, changes
    /// nothing. Run by `check`, before a checkpoint and in pre-flight, so that a missing
    /// privilege is refused before the stop instead of failing after it. Every missing
    /// privilege is named in one [`PermissionDenied`](crate::ErrorKind::PermissionDenied)
    /// error with the statement that grants it; `Ok` names what was checked.
    ///
    /// Optional: the provided version checks nothing (`Ok` with no line).
    async fn check_privileges(&self) -> Result<Vec<String>, AdapterError> {
        Ok(Vec::new())
    }

    /// What a [`preserve_current`](Self::preserve_current) call with `label` set aside,
    /// whether that call returned it, failed after its change (it could not record it, say)
    /// or was interrupted: the database that was live before, found by looking. `None` when
    /// no such call set anything aside. Changes nothing. The failure policy asks it when the
    /// emergency backup began but returned nothing, so that a database moved aside is never
    /// left unnamed and never missed by the put-back.
    ///
    /// Optional: the provided version says `None` (an adapter whose `preserve_current`
    /// changes nothing unless it returns).
    async fn preserved(&self, label: &str) -> Result<Option<PreservedDatabase>, AdapterError> {
        let _ = label;
        Ok(None)
    }

    /// The snapshot the live database was switched in from by an earlier
    /// [`restore`](Self::restore), while it still is that database (users' writes since
    /// included); `None` when it is not one this adapter switched in, or it cannot tell.
    /// Pre-flight refuses to roll back to that snapshot again unless forced: it would set
    /// those writes aside. Changes nothing.
    ///
    /// Optional: the provided version says `None`.
    async fn live_source(&self) -> Result<Option<SnapshotId>, AdapterError> {
        Ok(None)
    }
}

/// Forwards every method, provided ones included, so that an `Arc` of an adapter (or an
/// `Arc<dyn DatabaseSnapshot>`) is one too: builders take `impl DatabaseSnapshot`, and callers that keep a
/// handle (tests reading a fake's calls) pass a clone of their `Arc`.
#[async_trait]
impl<T: DatabaseSnapshot + ?Sized> DatabaseSnapshot for std::sync::Arc<T> {
    async fn snapshot(&self, label: &str) -> Result<SnapshotInfo, AdapterError> {
        (**self).snapshot(label).await
    }

    async fn verify(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        (**self).verify(id).await
    }

    async fn prepare_restore(&self, id: &SnapshotId) -> Result<PreparedRestore, AdapterError> {
        (**self).prepare_restore(id).await
    }

    async fn check_prepared(
        &self,
        prepared: &PreparedRestore,
        checks: &IntegrityChecks,
    ) -> Result<IntegrityReport, AdapterError> {
        (**self).check_prepared(prepared, checks).await
    }

    async fn preserve_current(&self, label: &str) -> Result<PreservedDatabase, AdapterError> {
        (**self).preserve_current(label).await
    }

    async fn prove_unchanged(&self, prepared: &PreparedRestore) -> Result<Option<CheckResult>, AdapterError> {
        (**self).prove_unchanged(prepared).await
    }

    async fn open(&self) -> Result<Vec<String>, AdapterError> {
        (**self).open().await
    }

    async fn restore(&self, prepared: &PreparedRestore) -> Result<Vec<PutAside>, AdapterError> {
        (**self).restore(prepared).await
    }

    async fn reinstate(&self, preserved: &PreservedDatabase) -> Result<Vec<PutAside>, AdapterError> {
        (**self).reinstate(preserved).await
    }

    async fn check_integrity(&self, checks: &IntegrityChecks) -> Result<IntegrityReport, AdapterError> {
        (**self).check_integrity(checks).await
    }

    async fn list(&self) -> Result<Vec<SnapshotInfo>, AdapterError> {
        (**self).list().await
    }

    async fn remove(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        (**self).remove(id).await
    }

    async fn ping(&self) -> Result<Duration, AdapterError> {
        (**self).ping().await
    }

    async fn access_warnings(&self) -> Result<Vec<String>, AdapterError> {
        (**self).access_warnings().await
    }

    async fn diagnose(&self) -> Result<Vec<Finding>, AdapterError> {
        (**self).diagnose().await
    }

    async fn check_privileges(&self) -> Result<Vec<String>, AdapterError> {
        (**self).check_privileges().await
    }

    async fn preserved(&self, label: &str) -> Result<Option<PreservedDatabase>, AdapterError> {
        (**self).preserved(label).await
    }

    async fn live_source(&self) -> Result<Option<SnapshotId>, AdapterError> {
        (**self).live_source().await
    }
}
