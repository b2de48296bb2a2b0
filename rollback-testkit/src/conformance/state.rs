use chrono::{DateTime, TimeZone, Utc};
use rollback_core::journal::{Artifacts, JournaledRequest};
use rollback_core::{
    Checkpoint, CheckpointId, CodeStrategy, Journal, JournalStatus, LockHolder, RollbackId, Scope, StateStore,
};

fn holder(token: &str) -> LockHolder {
    LockHolder {
        pid: 42,
        host: "conformance".into(),
        since: Utc::now(),
        rollback: RollbackId::new("rb-conformance"),
        token: token.into(),
    }
}

fn at(offset: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + offset, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

fn checkpoint(id: &str, offset: i64) -> Checkpoint {
    Checkpoint {
        id: CheckpointId::new(id),
        label: format!("label {offset}"),
        created_at: at(offset),
        snapshot: None,
        snapshot_taken_at: None,
        revision: None,
        config: None,
        good: false,
        warnings: Vec::new(),
        metrics_baseline: None,
    }
}

fn journal(id: &str, offset: i64) -> Journal {
    Journal {
        id: RollbackId::new(id),
        checkpoint: checkpoint("cp-of-journal", 0),
        request: JournaledRequest {
            reason: "conformance".into(),
            scope: Scope::ALL,
            scenario: None,
            code_strategy: CodeStrategy::Checkout,
            trigger: None,
        },
        started_at: at(offset),
        status: JournalStatus::Running,
        steps: Vec::new(),
        artifacts: Artifacts::default(),
        stopped_at: None,
        stop_issued_at: None,
        first_answer_at: None,
        healthy_at: None,
        health: Vec::new(),
        integrity: Vec::new(),
        verification: Vec::new(),
        log_matches: Vec::new(),
        recovery: Vec::new(),
        notes: Vec::new(),
    }
}

/// The [`StateStore`] contract. Checks:
/// - checkpoints round-trip unchanged, newest first, and saving an id again replaces it;
/// - journals round-trip, newest first, and saving an id again replaces it;
/// - the lock: free at first; of two holders trying at once exactly one gets it; a held
///   lock names its holder (to `try_lock` and `lock_holder`); `unlock` with another token
///   leaves it; its holder's token frees it, and it can be taken again.
///
/// Not checked: atomicity of the writes (it needs a crash inside one) and
/// `access_warnings`.
pub async fn state_store(store: &dyn StateStore) {
    let (old, new) = (checkpoint("cp-old", 0), checkpoint("cp-new", 1));
    store.save_checkpoint(&old).await.expect("save_checkpoint");
    store.save_checkpoint(&new).await.expect("save_checkpoint");
    let all = store.checkpoints().await.expect("checkpoints");
    let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["cp-new", "cp-old"], "checkpoints are newest first");
    assert_eq!(
        all,
        [new.clone(), old.clone()],
        "checkpoints round-trip unchanged"
    );
    let mut replaced = old.clone();
    replaced.good = true;
    store.save_checkpoint(&replaced).await.expect("save again");
    let all = store.checkpoints().await.expect("checkpoints");
    assert_eq!(all, [new, replaced], "saving a checkpoint's id again replaces it");

    let (first, second) = (journal("rb-old", 0), journal("rb-new", 1));
    store.save_journal(&first).await.expect("save_journal");
    store.save_journal(&second).await.expect("save_journal");
    let all = store.journals().await.expect("journals");
    let ids: Vec<&str> = all.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["rb-new", "rb-old"], "journals are newest first");
    let mut finished = first.clone();
    finished.notes.push("replaced".into());
    store.save_journal(&finished).await.expect("save_journal again");
    let all = store.journals().await.expect("journals");
    assert_eq!(all, [second, finished], "saving a journal's id again replaces it");

    assert_eq!(
        store.lock_holder().await.expect("lock_holder"),
        None,
        "the lock is free at first"
    );
    let (a, b) = (holder("first"), holder("second"));
    let (ra, rb) = tokio::join!(store.try_lock(&a), store.try_lock(&b));
    let (ra, rb) = (ra.expect("try_lock"), rb.expect("try_lock"));
    let (winner, loser) = match (&ra, &rb) {
        (None, Some(h)) => (&a, h),
        (Some(h), None) => (&b, h),
        _ => panic!(
            "the lock is exclusive: of two holders trying at once exactly one gets it, got {ra:?} and {rb:?}"
        ),
    };
    assert_eq!(loser, winner, "a held lock names its holder");
    assert_eq!(
        store.lock_holder().await.expect("lock_holder").as_ref(),
        Some(winner),
        "lock_holder names the holder"
    );
    let third = holder("third");
    assert_eq!(
        store.try_lock(&third).await.expect("try_lock").as_ref(),
        Some(winner),
        "a held lock is not taken again"
    );
    store
        .unlock("not-the-holders-token")
        .await
        .expect("unlock with a foreign token");
    assert_eq!(
        store.lock_holder().await.expect("lock_holder").as_ref(),
        Some(winner),
        "only the holder's token unlocks"
    );
    store.unlock(&winner.token).await.expect("unlock");
    assert_eq!(
        store.lock_holder().await.expect("lock_holder"),
        None,
        "the holder's token frees the lock"
    );
    assert_eq!(
        store.try_lock(&third).await.expect("try_lock"),
        None,
        "a freed lock can be taken again"
    );
    store.unlock(&third.token).await.expect("unlock");
}
