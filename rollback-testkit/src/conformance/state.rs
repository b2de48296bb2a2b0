use chrono::{TimeZone, Utc};
use rollback_core::{Checkpoint, CheckpointId, LockHolder, RollbackId, StateStore};

fn holder(token: &str) -> LockHolder {
    LockHolder {
        pid: 42,
        host: "conformance".into(),
        since: Utc::now(),
        rollback: RollbackId::new("rb-conformance"),
        token: token.into(),
    }
}

/// The [`StateStore`] contract: checkpoints round-trip newest first and replace by id; the
/// lock is exclusive, names its holder, and only its token removes it.
pub async fn state_store(store: &dyn StateStore) {
    for (i, id) in ["cp-old", "cp-new"].into_iter().enumerate() {
        let checkpoint = Checkpoint {
            id: CheckpointId::new(id),
            label: format!("label {i}"),
            created_at: Utc
                .timestamp_opt(1_700_000_000 + i as i64, 0)
                .single()
                .expect("valid time"),
            snapshot: None,
            snapshot_taken_at: None,
            revision: None,
            config: None,
            good: false,
            warnings: Vec::new(),
        };
        store.save_checkpoint(&checkpoint).await.expect("save_checkpoint");
    }
    let all = store.checkpoints().await.expect("checkpoints");
    let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["cp-new", "cp-old"], "checkpoints are newest first");
    let mut replaced = all[1].clone();
    replaced.good = true;
    store.save_checkpoint(&replaced).await.expect("save again");
    let all = store.checkpoints().await.expect("checkpoints");
    assert_eq!(all.len(), 2, "saving the same id replaces it");
    assert!(all.iter().any(|c| c.id.as_str() == "cp-old" && c.good));

    assert_eq!(store.lock_holder().await.expect("lock_holder"), None);
    assert_eq!(
        store.try_lock(&holder("first")).await.expect("try_lock"),
        None,
        "a free lock is taken"
    );
    let held = store.try_lock(&holder("second")).await.expect("try_lock");
    assert_eq!(
        held.map(|h| h.token),
        Some("first".to_owned()),
        "a held lock names its holder"
    );
    store.unlock("second").await.expect("unlock with a foreign token");
    assert!(
        store.lock_holder().await.expect("lock_holder").is_some(),
        "only the holder's token unlocks"
    );
    store.unlock("first").await.expect("unlock");
    assert_eq!(store.lock_holder().await.expect("lock_holder"), None);
}
