use async_trait::async_trait;
use rollback_core::{
    AdapterError, Checkpoint, CheckpointId, Journal, LockHolder, RollbackReport, StateStore,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Stored {
    checkpoints: BTreeMap<String, Checkpoint>,
    journals: BTreeMap<String, Journal>,
    reports: BTreeMap<String, RollbackReport>,
    lock: Option<LockHolder>,
}

/// An in-memory [`StateStore`]; clones share the same state, so it survives a "crash"
/// (a dropped orchestrator future) for `resume()` tests.
#[derive(Clone, Debug, Default)]
pub struct MemoryStateStore {
    stored: Arc<Mutex<Stored>>,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Stored> {
        self.stored.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reports stored so far.
    pub fn reports(&self) -> Vec<RollbackReport> {
        self.lock().reports.values().cloned().collect()
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), AdapterError> {
        self.lock()
            .checkpoints
            .insert(checkpoint.id.to_string(), checkpoint.clone());
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, AdapterError> {
        let mut all: Vec<Checkpoint> = self.lock().checkpoints.values().cloned().collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(all)
    }

    async fn remove_checkpoint(&self, id: &CheckpointId) -> Result<(), AdapterError> {
        self.lock().checkpoints.remove(id.as_str());
        Ok(())
    }

    async fn save_journal(&self, journal: &Journal) -> Result<(), AdapterError> {
        self.lock()
            .journals
            .insert(journal.id.to_string(), journal.clone());
        Ok(())
    }

    async fn journals(&self) -> Result<Vec<Journal>, AdapterError> {
        let mut all: Vec<Journal> = self.lock().journals.values().cloned().collect();
        all.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        Ok(all)
    }

    async fn save_report(&self, report: &RollbackReport) -> Result<String, AdapterError> {
        self.lock().reports.insert(report.id.to_string(), report.clone());
        Ok(format!("memory://reports/{}", report.id))
    }

    async fn try_lock(&self, holder: &LockHolder) -> Result<Option<LockHolder>, AdapterError> {
        let mut s = self.lock();
        match &s.lock {
            Some(current) => Ok(Some(current.clone())),
            None => {
                s.lock = Some(holder.clone());
                Ok(None)
            }
        }
    }

    async fn lock_holder(&self) -> Result<Option<LockHolder>, AdapterError> {
        Ok(self.lock().lock.clone())
    }

    async fn unlock(&self, token: &str) -> Result<(), AdapterError> {
        let mut s = self.lock();
        if s.lock.as_ref().is_some_and(|h| h.token == token) {
            s.lock = None;
        }
        Ok(())
    }
}
