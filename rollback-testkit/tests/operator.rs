//! What an operator's tool (the `rollback` command) asks of the orchestrator besides a
//! rollback, against the fakes: calling a rollback off before the stop, targets counted
//! back from the last good checkpoint, the readiness check, reports rebuilt from journals,
//! and pruning that never removes what is still needed.

use rollback_core::{
    Cancel, ErrorKind, Outcome, RollbackError, RollbackRequest, RollbackTarget, Scope, Step,
};
use rollback_testkit::{Fault, Method, Rig, When};
use std::time::Duration;

#[tokio::test]
async fn a_rollback_called_off_during_prepare_stops_nothing_and_is_finished_aborted() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    let before = rig.world.end_state();
    // Staging the snapshot takes a while: long enough to call the rollback off during it.
    rig.world.inject(
        Method::DbPrepareRestore,
        When::Always,
        Fault::Delay(Duration::from_secs(5)),
    );
    let cancel = Cancel::new();
    let caller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        caller.cancel();
    });
    let request = RollbackRequest::new(RollbackTarget::LastGood, "v2 broken", Scope::ALL);
    let started = std::time::Instant::now();
    let err = o.rollback_with_cancel(request, cancel).await.unwrap_err();
    assert!(
        matches!(err, RollbackError::Cancelled { step: Step::Prepare }),
        "cancelled in prepare, got {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the cancel did not wait for prepare"
    );
    assert_eq!(
        rig.world.count(Method::ProcessStop),
        0,
        "the app was never stopped"
    );
    assert_eq!(rig.world.end_state(), before, "nothing the app uses changed");
    let journal = o.journals().await.unwrap().remove(0);
    assert!(
        !journal.is_unfinished(),
        "a cancelled rollback leaves nothing to resume"
    );
    let report = o.report_of(&journal.id).await.unwrap();
    assert!(matches!(
        report.outcome,
        Outcome::Aborted {
            step: Step::Prepare,
            ..
        }
    ));
    // The lock is free: the next rollback runs.
    rig.world.clear_faults();
    o.rollback(RollbackTarget::LastGood, "again", Scope::ALL)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cancel_after_the_stop_is_ignored_and_the_rollback_finishes() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    rig.world.inject(
        Method::DbRestore,
        When::Always,
        Fault::Delay(Duration::from_millis(300)),
    );
    let cancel = Cancel::new();
    let caller = cancel.clone();
    let world = rig.world.clone();
    tokio::spawn(async move {
        while world.count(Method::ProcessStop) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        caller.cancel();
    });
    let request = RollbackRequest::new(RollbackTarget::LastGood, "v2 broken", Scope::ALL);
    let report = o.rollback_with_cancel(request, cancel.clone()).await.unwrap();
    assert!(cancel.is_cancelled(), "the cancel came while the app was down");
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(rig.world.end_state().db_marker.as_deref(), Some("v1 data"));
}

#[tokio::test]
async fn good_back_counts_good_checkpoints_from_the_newest() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    let first = o.checkpoint("v1").await.unwrap();
    rig.deploy_release("v2", "tree-v2", false);
    let second = o.checkpoint("v2").await.unwrap();
    rig.deploy_release("v3", "tree-v3", true);
    let bad = o.checkpoint("v3, unhealthy").await.unwrap();
    assert!(!bad.good);
    let plan = |target| {
        let o = &o;
        async move {
            o.dry_run(&RollbackRequest::new(target, "which", Scope::CODE))
                .await
        }
    };
    // dry_run resolves the target; the plan names its revision.
    let names = |p: rollback_core::RollbackPlan| format!("{:?}", p.steps);
    let last_good = names(plan(RollbackTarget::LastGood).await.unwrap());
    assert_eq!(last_good, names(plan(RollbackTarget::GoodBack(0)).await.unwrap()));
    assert!(last_good.contains(second.revision.as_ref().unwrap().as_str()));
    let one_back = names(plan(RollbackTarget::GoodBack(1)).await.unwrap());
    assert!(one_back.contains(first.revision.as_ref().unwrap().as_str()));
    let err = plan(RollbackTarget::GoodBack(2)).await.unwrap_err();
    assert!(
        matches!(&err, RollbackError::NoCheckpoint(why) if why.contains("only 2")),
        "{err}"
    );
}

#[tokio::test]
async fn check_ready_names_every_failing_check_and_changes_nothing() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    let items = o.check_ready().await.unwrap();
    assert!(items.iter().all(|i| i.checked), "{items:?}");
    assert!(
        items.len() >= 5,
        "app, database, revision, config, probe: {items:?}"
    );

    rig.world
        .inject(Method::DbPing, When::Always, Fault::Fail(ErrorKind::Unavailable));
    rig.deploy_release("v2", "tree-v2", true);
    rig.world.clear_calls();
    let err = o.check_ready().await.unwrap_err();
    let RollbackError::Preflight { failures } = &err else {
        panic!("{err}")
    };
    let checks: Vec<&str> = failures.iter().map(|f| f.check.as_str()).collect();
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert!(checks.iter().any(|c| c.contains("database")), "{checks:?}");
    assert!(checks.iter().any(|c| c.contains("health")), "{checks:?}");
    assert!(
        rig.world.calls().iter().all(|c| !c.method.is_mutation()),
        "check_ready changed something: {:?}",
        rig.world.calls()
    );
}

#[tokio::test]
async fn prune_keeps_the_newest_the_last_good_the_live_ones_and_those_in_journals() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    // cp1 (good, v1) <- rolled back to below, so a journal refers to it
    let cp1 = o.checkpoint("v1").await.unwrap();
    rig.deploy_release("v2", "tree-v2", false);
    let cp2 = o.checkpoint("v2").await.unwrap();
    rig.deploy_release("v3", "tree-v3", false);
    let cp3 = o.checkpoint("v3").await.unwrap();
    o.rollback(RollbackTarget::Checkpoint(cp1.id.clone()), "test", Scope::CODE)
        .await
        .unwrap();
    // Live now: v1's revision. Two newer checkpoints on v1, unhealthy (not good).
    rig.world.lock().code.broken_trees.insert("tree-v1".into());
    let cp4 = o.checkpoint("v1 again").await.unwrap();
    let cp5 = o.checkpoint("v1 once more").await.unwrap();
    assert!(!cp4.good && !cp5.good);
    rig.world.lock().code.broken_trees.clear();
    let snapshots_before = o.snapshots().await.unwrap().len();

    let report = o.prune(1).await.unwrap();
    // Newest first: cp5 kept (keep 1). cp4: removable. cp3: the last good one. cp2:
    // removable. cp1: a journal refers to it (and its revision is live).
    assert_eq!(report.removed, vec![cp4.id.clone(), cp2.id.clone()], "{report:?}");
    let protected: Vec<_> = report.protected.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(protected, vec![cp3.id.clone(), cp1.id.clone()], "{report:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    let left: Vec<_> = o.checkpoints().await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(left, vec![cp5.id, cp3.id, cp1.id]);
    assert_eq!(
        o.snapshots().await.unwrap().len(),
        snapshots_before - 2,
        "the removed checkpoints' snapshots went with them"
    );
    assert_eq!(
        rig.world.count(Method::ConfigRemove),
        2,
        "and their config backups"
    );
}

#[tokio::test]
async fn a_plan_over_an_unfinished_rollback_says_resume_first() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::CODE);
    // The process dies right after the code was switched.
    rig.world
        .inject(Method::CodeActivate, When::Nth(1), Fault::CrashAfter);
    let crashed = rollback_testkit::run_until_crash(
        &rig.world,
        o.rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE),
    )
    .await;
    assert!(crashed.is_none());
    rig.world.clear_faults();
    let request = RollbackRequest::new(RollbackTarget::LastGood, "again", Scope::CODE);
    let err = o.dry_run(&request).await.unwrap_err();
    assert!(
        matches!(err, RollbackError::Unfinished { .. }),
        "the plan says to resume first, not that the target is live: {err}"
    );
    o.resume().await.unwrap();
    o.dry_run(&request)
        .await
        .expect_err("v1 is live now: nothing to roll back");
}

#[tokio::test]
async fn a_lock_is_cleared_by_hand_only_while_the_holder_that_was_checked_holds_it() {
    use rollback_core::{LockHolder, RollbackId, StateStore};
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    let holder = |token: &str| {
        let mut h: LockHolder = serde_json::from_value(serde_json::json!({
            "pid": 4242, "host": "box-a", "since": "2026-11-26T02:00:00Z",
            "rollback": "rb-a", "token": token,
        }))
        .unwrap();
        h.rollback = RollbackId::new("rb-a");
        h
    };
    let checked = holder("token-checked");
    assert!(rig.state.try_lock(&holder("token-new")).await.unwrap().is_none());
    // The lock is someone else's now: clearing the one that was checked touches nothing.
    assert!(!o.clear_lock_of(&checked).await.unwrap());
    assert_eq!(o.lock_holder().await.unwrap().unwrap().token, "token-new");
    rig.state.unlock("token-new").await.unwrap();
    assert!(rig.state.try_lock(&checked).await.unwrap().is_none());
    assert!(o.clear_lock_of(&checked).await.unwrap());
    assert!(o.lock_holder().await.unwrap().is_none());
}
