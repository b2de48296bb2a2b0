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
    let here = host_name();
    // Another host, or a host that cannot be named: a human decides (`clear_stale_lock(true)`).
    if holder.host != here || here == "unknown-host" {
        return false;
    }
    let (machine, boot) = (crate::sys::machine_id(), crate::sys::boot_id());
    // The same name on another machine (cloned VMs, containers sharing a state store).
    if let (Some(theirs), Some(ours)) = (&holder.machine, &machine) {
        if theirs != ours {
            return false;
        }
    }
    // This machine, an earlier boot: its process is gone whatever the pid says now.
    if let (Some(theirs), Some(ours)) = (&holder.boot, &boot) {
        if theirs != ours {
            return true;
        }
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
    // Read off the runtime's threads (/proc, /etc).
    let (host, machine, boot) =
        tokio::task::spawn_blocking(|| (host_name(), crate::sys::machine_id(), crate::sys::boot_id()))
            .await
            .unwrap_or_else(|_| ("unknown-host".to_owned(), None, None));
    let holder = LockHolder {
        pid: std::process::id(),
        host,
        since: Utc::now(),
        rollback: rollback.clone(),
        token: new_token(),
        machine,
        boot,
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
            Some(current) => {
                return Err(RollbackError::Locked {
                    holder: Box::new(current),
                })
            }
        }
    }
    match state.lock_holder().await.map_err(RollbackError::State)? {
        Some(holder) => Err(RollbackError::Locked {
            holder: Box::new(holder),
        }),
        None => Err(RollbackError::State(crate::AdapterError::new(
            crate::ErrorKind::Conflict,
            "the rollback lock changed hands while taking it; try again",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_holder_here() -> LockHolder {
        LockHolder {
            // A pid that is not running (pid_max is at most 4194304).
            pid: 4_194_399,
            host: host_name(),
            since: Utc::now(),
            rollback: RollbackId::new("rb-test"),
            token: "t".into(),
            machine: crate::sys::machine_id(),
            boot: crate::sys::boot_id(),
        }
    }

    #[test]
    fn a_dead_process_of_this_machine_and_boot_is_stale() {
        assert!(is_stale_now(&dead_holder_here()));
    }

    #[test]
    fn the_same_host_name_on_another_machine_is_never_judged_here() {
        let mut h = dead_holder_here();
        if h.machine.is_none() {
            return; // no machine id on this system: nothing to tell apart
        }
        h.machine = Some("another-machine".into());
        assert!(!is_stale_now(&h), "a box with our name but another machine id");
    }

    #[test]
    fn a_holder_of_an_earlier_boot_is_stale_whatever_its_pid() {
        let mut h = dead_holder_here();
        if h.boot.is_none() {
            return;
        }
        h.pid = 1; // init: alive now
        assert!(!is_stale_now(&h), "a live pid of this boot is not stale");
        h.boot = Some("an-earlier-boot".into());
        assert!(is_stale_now(&h));
    }

    #[test]
    fn another_host_is_never_stale() {
        let mut h = dead_holder_here();
        h.host = "elsewhere".into();
        assert!(!is_stale_now(&h));
    }
}
