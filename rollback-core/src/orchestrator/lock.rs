//! Taking the rollback lock, and telling a stale lock (its holder died) from a live one.

use crate::domain::LockHolder;
use crate::error::RollbackError;
use crate::ids::RollbackId;
use crate::traits::StateStore;
use chrono::Utc;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Tokens of locks held by rollbacks running in this process right now. A lock file naming
/// this process with a token not in here was left by a rollback whose future was dropped.
static ACTIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Marks a lock token as held by a running rollback of this process until dropped. Dropping
/// it does not remove the lock file: only a finished rollback does, so a crash leaves the
/// lock (and the journal) for `resume()`.
#[derive(Debug)]
pub(crate) struct ActiveLock {
    pub(crate) holder: LockHolder,
}

impl Drop for ActiveLock {
    fn drop(&mut self) {
        if let Ok(mut active) = ACTIVE.lock() {
            active.remove(&self.holder.token);
        }
    }
}

pub(crate) use crate::sys::host_name;
use crate::sys::pid_alive;

/// True when the holder provably cannot be running: same host, and either its process is
/// gone, or it is this process and no running rollback holds the token.
/// Reads `/proc` on a blocking thread.
pub(crate) async fn is_stale(holder: &LockHolder) -> bool {
    let holder = holder.clone();
    tokio::task::spawn_blocking(move || is_stale_now(&holder))
        .await
        .unwrap_or(false)
}

fn is_stale_now(holder: &LockHolder) -> bool {
    if holder.host != host_name() {
        return false;
    }
    if holder.pid == std::process::id() {
        return ACTIVE
            .lock()
            .map(|active| !active.contains(&holder.token))
            .unwrap_or(false);
    }
    !pid_alive(holder.pid)
}

fn new_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Takes the lock for `rollback`, taking over a stale one (with a warning), refusing a live one.
pub(crate) async fn acquire(
    state: &dyn StateStore,
    rollback: &RollbackId,
) -> Result<(ActiveLock, Option<LockHolder>), RollbackError> {
    let holder = LockHolder {
        pid: std::process::id(),
        host: host_name(),
        since: Utc::now(),
        rollback: rollback.clone(),
        token: new_token(),
    };
    // Register before writing the file, so a concurrent check in this process never sees
    // our fresh lock as stale.
    if let Ok(mut active) = ACTIVE.lock() {
        active.insert(holder.token.clone());
    }
    let guard = ActiveLock { holder };
    let mut taken_over = None;
    for _ in 0..2 {
        match state
            .try_lock(&guard.holder)
            .await
            .map_err(RollbackError::State)?
        {
            None => return Ok((guard, taken_over)),
            Some(current) if is_stale(&current).await => {
                tracing::warn!(holder = %current, "taking over a stale rollback lock: its holder is gone");
                state.unlock(&current.token).await.map_err(RollbackError::State)?;
                taken_over = Some(current);
            }
            Some(current) => return Err(RollbackError::Locked { holder: current }),
        }
    }
    match state.lock_holder().await.map_err(RollbackError::State)? {
        Some(holder) => Err(RollbackError::Locked { holder }),
        None => Err(RollbackError::State(crate::AdapterError::new(
            crate::ErrorKind::Conflict,
            "the rollback lock changed hands while taking it; try again",
        ))),
    }
}
