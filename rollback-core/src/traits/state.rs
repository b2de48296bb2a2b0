use crate::domain::{Checkpoint, LockHolder};
use crate::error::AdapterError;
use crate::ids::CheckpointId;
use crate::journal::Journal;
use crate::report::RollbackReport;
use async_trait::async_trait;

/// Durable state: checkpoints, the journal of each rollback, reports, and the lock.
///
/// Every write is atomic: a reader (or a process that restarts after a crash) sees the old
/// or the new content, never a partial one.
///
/// Required: every method but `remove_checkpoint` and `access_warnings`, which are
/// provided.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Stores (or replaces) a checkpoint.
    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), AdapterError>;

    /// All checkpoints, newest first.
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, AdapterError>;

    /// Forgets a checkpoint (its snapshot and config backup are the adapters'); removing
    /// one that is not there is not an error.
    ///
    /// Optional: the provided version says [`Unsupported`](crate::ErrorKind::Unsupported),
    /// and pruning keeps every checkpoint.
    async fn remove_checkpoint(&self, id: &CheckpointId) -> Result<(), AdapterError> {
        let _ = id;
        Err(AdapterError::unsupported(
            "this state store cannot remove checkpoints",
        ))
    }

    /// Stores (or replaces) a rollback's journal.
    async fn save_journal(&self, journal: &Journal) -> Result<(), AdapterError>;

    /// All journals, newest first.
    async fn journals(&self) -> Result<Vec<Journal>, AdapterError>;

    /// Stores a report; returns where it lives.
    async fn save_report(&self, report: &RollbackReport) -> Result<String, AdapterError>;

    /// Takes the lock for `holder` if nobody holds it (atomically). Returns `None` when
    /// taken, or the current holder when someone else has it.
    async fn try_lock(&self, holder: &LockHolder) -> Result<Option<LockHolder>, AdapterError>;

    /// The current holder, if any.
    async fn lock_holder(&self) -> Result<Option<LockHolder>, AdapterError>;

    /// Removes the lock if its token is `token`; a lock held by another token stays.
    async fn unlock(&self, token: &str) -> Result<(), AdapterError>;

    /// What in the store users other than its owner can read (a journal names databases and
    /// paths; a report, what was restored): one line per path, naming the fix. Pre-flight
    /// warns with these; nothing is changed. Provided: nothing to report (a store that
    /// keeps nothing on a shared disk).
    async fn access_warnings(&self) -> Result<Vec<String>, AdapterError> {
        Ok(Vec::new())
    }
}

/// Forwards every method, provided ones included, so that an `Arc` of an adapter (or an
/// `Arc<dyn StateStore>`) is one too: builders take `impl StateStore`, and callers that keep a
/// handle (tests reading a fake's calls) pass a clone of their `Arc`.
#[async_trait]
impl<T: StateStore + ?Sized> StateStore for std::sync::Arc<T> {
    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), AdapterError> {
        (**self).save_checkpoint(checkpoint).await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, AdapterError> {
        (**self).checkpoints().await
    }

    async fn remove_checkpoint(&self, id: &CheckpointId) -> Result<(), AdapterError> {
        (**self).remove_checkpoint(id).await
    }

    async fn save_journal(&self, journal: &Journal) -> Result<(), AdapterError> {
        (**self).save_journal(journal).await
    }

    async fn journals(&self) -> Result<Vec<Journal>, AdapterError> {
        (**self).journals().await
    }

    async fn save_report(&self, report: &RollbackReport) -> Result<String, AdapterError> {
        (**self).save_report(report).await
    }

    async fn try_lock(&self, holder: &LockHolder) -> Result<Option<LockHolder>, AdapterError> {
        (**self).try_lock(holder).await
    }

    async fn lock_holder(&self) -> Result<Option<LockHolder>, AdapterError> {
        (**self).lock_holder().await
    }

    async fn unlock(&self, token: &str) -> Result<(), AdapterError> {
        (**self).unlock(token).await
    }

    async fn access_warnings(&self) -> Result<Vec<String>, AdapterError> {
        (**self).access_warnings().await
    }
}
