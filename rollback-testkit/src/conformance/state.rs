//! The [`StateStore`] suite: one check per promise, [`CHECKS`] in the order
//! [`state_store`] runs them. A state store needs no fixture: each check takes the store
//! only.
//!
//! Every check saves checkpoints and journals of its own ids and looks only at those, and
//! every check that takes the lock frees it again, so it relies on no other check (and
//! passes on a store that already holds other records). The lock checks need the lock free
//! when they start.
//!
//! Not checked: atomicity of the writes (it needs a crash inside one) and
//! `access_warnings`.

use super::{Check, CheckFuture};
use chrono::{DateTime, TimeZone, Utc};
use rollback_core::{Checkpoint, CheckpointId, Journal, LockHolder, RollbackId, Scope, StateStore};

/// The `CHECKS` entry of a check that takes no fixture.
macro_rules! state_check {
    ($f:ident) => {
        Check {
            name: stringify!($f),
            run: |store, ()| Box::pin($f(store)),
        }
    };
}

/// A check of the state suite: `(check.run)(&store, &()).await` (the fixture is `()`).
pub type StateCheck = Check<for<'a> fn(&'a dyn StateStore, &'a ()) -> CheckFuture<'a>>;

/// The state suite's checks, in the order [`state_store`] runs them.
pub const CHECKS: &[StateCheck] = &[
    state_check!(checkpoints_round_trip_newest_first),
    state_check!(saving_a_checkpoint_again_replaces_it),
    state_check!(journals_round_trip_newest_first),
    state_check!(saving_a_journal_again_replaces_it),
    state_check!(the_lock_is_exclusive_and_names_its_holder),
    state_check!(only_the_holders_token_unlocks),
    state_check!(remove_checkpoint_forgets_only_it),
];

/// The whole [`StateStore`] contract: every check of [`CHECKS`], in order, on one store.
/// Stops at the first broken promise; run the checks one by one
/// (`conformance_tests!(state_store, ...)`) to see them all.
pub async fn state_store(store: &dyn StateStore) {
    for check in CHECKS {
        (check.run)(store, &()).await;
    }
}

/// Checkpoints round-trip unchanged, newest first (by `created_at`).
pub async fn checkpoints_round_trip_newest_first(store: &dyn StateStore) {
    let (old, new) = (checkpoint("cp-order-old", 0), checkpoint("cp-order-new", 1));
    store.save_checkpoint(&old).await.expect("save_checkpoint");
    store.save_checkpoint(&new).await.expect("save_checkpoint");
    let mine = checkpoints_of(store, "cp-order-").await;
    let ids: Vec<&str> = mine.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        ["cp-order-new", "cp-order-old"],
        "checkpoints are newest first"
    );
    assert_eq!(mine, [new, old], "checkpoints round-trip unchanged");
}

/// Saving a checkpoint's id again replaces it (and keeps its place).
pub async fn saving_a_checkpoint_again_replaces_it(store: &dyn StateStore) {
    let (old, new) = (checkpoint("cp-again-old", 0), checkpoint("cp-again-new", 1));
    store.save_checkpoint(&old).await.expect("save_checkpoint");
    store.save_checkpoint(&new).await.expect("save_checkpoint");
    let mut replaced = old.clone();
    replaced.good = true;
    store.save_checkpoint(&replaced).await.expect("save again");
    let mine = checkpoints_of(store, "cp-again-").await;
    assert_eq!(
        mine,
        [new, replaced],
        "saving a checkpoint's id again replaces it"
    );
}

/// Journals round-trip unchanged, newest first (by `started_at`).
pub async fn journals_round_trip_newest_first(store: &dyn StateStore) {
    let (first, second) = (journal("rb-order-old", 0), journal("rb-order-new", 1));
    store.save_journal(&first).await.expect("save_journal");
    store.save_journal(&second).await.expect("save_journal");
    let mine = journals_of(store, "rb-order-").await;
    let ids: Vec<&str> = mine.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["rb-order-new", "rb-order-old"], "journals are newest first");
    assert_eq!(mine, [second, first], "journals round-trip unchanged");
}

/// Saving a journal's id again replaces it (and keeps its place).
pub async fn saving_a_journal_again_replaces_it(store: &dyn StateStore) {
    let (first, second) = (journal("rb-again-old", 0), journal("rb-again-new", 1));
    store.save_journal(&first).await.expect("save_journal");
    store.save_journal(&second).await.expect("save_journal");
    let mut finished = first.clone();
    finished.notes.push("replaced".into());
    store.save_journal(&finished).await.expect("save_journal again");
    let mine = journals_of(store, "rb-again-").await;
    assert_eq!(
        mine,
        [second, finished],
        "saving a journal's id again replaces it"
    );
}

/// The lock is free at first; of two holders trying at once exactly one gets it; a held
/// lock names its holder (to `try_lock` and `lock_holder`) and is not taken again. Frees
/// it at the end.
pub async fn the_lock_is_exclusive_and_names_its_holder(store: &dyn StateStore) {
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
    store.unlock(&winner.token).await.expect("unlock");
}

/// `unlock` with another token leaves the lock held; its holder's token frees it, and it
/// can be taken again. Frees it at the end.
pub async fn only_the_holders_token_unlocks(store: &dyn StateStore) {
    let (a, b) = (holder("unlock-first"), holder("unlock-second"));
    assert_eq!(
        store.try_lock(&a).await.expect("try_lock"),
        None,
        "a free lock can be taken"
    );
    store
        .unlock("not-the-holders-token")
        .await
        .expect("unlock with a foreign token");
    assert!(
        store.try_lock(&b).await.expect("try_lock").is_some(),
        "only the holder's token unlocks: after unlock with another token the lock is still held"
    );
    store.unlock(&a.token).await.expect("unlock");
    assert_eq!(
        store.try_lock(&b).await.expect("try_lock"),
        None,
        "the holder's token frees the lock: a freed lock can be taken again"
    );
    store.unlock(&b.token).await.expect("unlock");
}

/// The stored checkpoints whose id starts with `prefix`, in the store's order.
async fn checkpoints_of(store: &dyn StateStore, prefix: &str) -> Vec<Checkpoint> {
    let mut all = store.checkpoints().await.expect("checkpoints");
    all.retain(|c| c.id.as_str().starts_with(prefix));
    all
}

/// The stored journals whose id starts with `prefix`, in the store's order.
async fn journals_of(store: &dyn StateStore, prefix: &str) -> Vec<Journal> {
    let mut all = store.journals().await.expect("journals");
    all.retain(|j| j.id.as_str().starts_with(prefix));
    all
}

fn holder(token: &str) -> LockHolder {
    LockHolder {
        pid: 42,
        host: "conformance".into(),
        since: Utc::now(),
        rollback: RollbackId::new("rb-conformance"),
        token: token.into(),
        machine: None,
        boot: None,
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
    Journal::new(
        RollbackId::new(id),
        checkpoint("cp-of-journal", 0),
        rollback_core::RollbackRequest::new(
            rollback_core::RollbackTarget::LastGood,
            "conformance",
            Scope::ALL,
        ),
        at(offset),
    )
}

/// `remove_checkpoint` (optional: a store without it says `Unsupported` and the check ends
/// there) forgets that checkpoint and no other; removing it again is not an error.
pub async fn remove_checkpoint_forgets_only_it(store: &dyn StateStore) {
    let (gone, kept) = (checkpoint("cp-remove-gone", 0), checkpoint("cp-remove-kept", 1));
    store.save_checkpoint(&gone).await.expect("save_checkpoint");
    store.save_checkpoint(&kept).await.expect("save_checkpoint");
    match store.remove_checkpoint(&gone.id).await {
        Err(e) if e.kind() == rollback_core::ErrorKind::Unsupported => return,
        other => other.expect("remove_checkpoint"),
    }
    let mine = checkpoints_of(store, "cp-remove-").await;
    assert_eq!(
        mine,
        [kept],
        "remove_checkpoint forgets that checkpoint and no other"
    );
    store
        .remove_checkpoint(&gone.id)
        .await
        .expect("removing a checkpoint again is not an error");
}
