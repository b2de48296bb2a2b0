//! The promise under real-world state (issue 12), against the fakes: nothing fails after the
//! stop that could be known before it, recovery undoes exactly what happened, the app is
//! never left stopped without a statement that is true, and a crash while finishing is
//! finished by `resume()`.

use async_trait::async_trait;
use rollback_core::{
    AdapterError, Checkpoint, ErrorKind, FailurePolicy, Journal, LockHolder, Orchestrator, Outcome,
    RollbackError, RollbackReport, RollbackRequest, RollbackTarget, Scope, StateStore, Step,
};
use rollback_testkit::{DbContent, Fault, MemoryStateStore, Method, Rig, When, APP};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

// ---- 1. the snapshot's own baseline ---------------------------------------------------------

#[tokio::test]
async fn orphans_already_there_at_checkpoint_time_warn_and_do_not_fail_the_rollback() {
    let rig = Rig::new();
    rig.world.lock().db.live = Some(DbContent::new("v1 data", 100).with_orphans(3));
    let o = rig.orchestrator().build().unwrap();
    let cp = o.checkpoint("before v2").await.unwrap();
    assert!(cp.good, "broken keys are recorded, not refused");
    assert!(
        cp.warnings.iter().any(|w| w.contains("3 orphan rows")),
        "the checkpoint says so: {:?}",
        cp.warnings
    );
    assert!(cp.snapshot_taken_at.is_some_and(|t| t <= cp.created_at));
    rig.deploy_bad_release(Scope::ALL);
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert!(report
        .to_markdown()
        .contains("checkpoint warning: foreign keys: 3 orphan rows"));
}

#[tokio::test]
async fn a_staged_copy_worse_than_its_baseline_is_refused_before_the_stop() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    let before = rig.world.end_state();
    rig.world.lock().db.staging_adds_orphans = 2;
    let err = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap_err();
    let report = err.report().expect("a report");
    assert!(
        matches!(
            report.outcome,
            Outcome::Aborted {
                step: Step::Prepare,
                ..
            }
        ),
        "{}",
        report.outcome
    );
    assert!(
        report.outcome.to_string().contains("foreign keys"),
        "{}",
        report.outcome
    );
    assert_eq!(
        rig.world.count(Method::ProcessStop),
        0,
        "the app was never stopped"
    );
    assert_eq!(rig.world.end_state(), before, "nothing changed");
}

#[tokio::test]
async fn the_staged_copy_is_checked_while_the_app_serves_and_post_start_checks_use_the_baseline() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    o.rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap();
    let calls: Vec<Method> = rig.world.calls().into_iter().map(|c| c.method).collect();
    let checked = calls.iter().position(|m| *m == Method::DbCheckPrepared);
    let stopped = calls.iter().position(|m| *m == Method::ProcessStop);
    assert!(
        checked.is_some() && checked < stopped,
        "check_prepared runs before the stop: {calls:?}"
    );
}

// ---- 2. recovery undoes exactly what happened ---------------------------------------------

/// Every mutation after the stop that can fail, with the scopes that reach it.
fn failures_after_the_stop() -> Vec<(Method, When, Scope)> {
    let all = [Scope::ALL, Scope::CODE, Scope::CONFIG, Scope::DATABASE_AND_CODE];
    let mut out = Vec::new();
    for scope in all {
        if scope.database {
            out.push((Method::DbPreserveCurrent, When::Nth(1), scope));
            out.push((Method::DbRestore, When::Nth(1), scope));
            out.push((Method::DbProveUnchanged, When::Nth(1), scope));
            out.push((Method::DbOpen, When::Nth(1), scope));
            out.push((Method::DbCheckIntegrity, When::Nth(1), scope));
        }
        if scope.code {
            out.push((Method::CodePreserveCurrent, When::Nth(1), scope));
            out.push((Method::CodeActivate, When::Nth(1), scope));
        }
        if scope.config {
            out.push((Method::ConfigBackup, When::Nth(1), scope));
            out.push((Method::ConfigRestore, When::Nth(1), scope));
        }
        out.push((Method::ProcessStart, When::Nth(1), scope));
    }
    out
}

#[tokio::test]
async fn a_failure_at_every_step_after_the_stop_leaves_the_app_answering_and_undoes_only_what_ran() {
    for (method, when, scope) in failures_after_the_stop() {
        let (rig, o) = Rig::deployed(Scope::ALL).await;
        let before = rig.world.end_state();
        rig.world.inject(method, when, Fault::Fail(ErrorKind::Failed));
        let err = o
            .rollback(RollbackTarget::LastGood, "v2 broken", scope)
            .await
            .unwrap_err();
        let report = err.report().expect("a report");
        assert!(
            matches!(report.outcome, Outcome::RestoredPreRollbackState { .. }),
            "{method:?} {when:?} {scope}: {}",
            report.outcome
        );
        assert!(
            rig.app_online(),
            "{method:?} {when:?} {scope}: the app answers again"
        );
        assert_eq!(rig.world.end_state(), before, "{method:?} {when:?} {scope}");
        let failed = match report.outcome {
            Outcome::RestoredPreRollbackState { step, .. } => step,
            _ => unreachable!(),
        };
        // An undo of a step that never began is a change of its own: never made.
        let activations = rig.world.count(Method::CodeActivate);
        let config_restores = rig.world.count(Method::ConfigRestore);
        if failed < Step::ActivateCode {
            assert_eq!(
                activations, 0,
                "{method:?} {scope}: code never touched, never undone"
            );
        }
        if failed < Step::RestoreConfig {
            assert_eq!(
                config_restores, 0,
                "{method:?} {scope}: config never touched, never undone"
            );
        }
    }
}

#[tokio::test]
async fn recovery_after_a_database_failure_does_not_reactivate_an_in_place_tree_it_never_touched() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    // An in-place tree with uncommitted changes: re-activating "the pre-rollback release"
    // would be refused and leave the app stopped.
    rig.world
        .inject(Method::DbRestore, When::Nth(1), Fault::Fail(ErrorKind::Failed));
    rig.world.inject(
        Method::CodeActivate,
        When::Always,
        Fault::Fail(ErrorKind::Conflict),
    );
    let err = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap_err();
    let report = err.report().unwrap();
    assert!(
        matches!(
            report.outcome,
            Outcome::RestoredPreRollbackState {
                step: Step::RestoreDatabase,
                ..
            }
        ),
        "{}",
        report.outcome
    );
    assert!(rig.app_online());
}

// ---- 3. what activate would refuse is found in pre-flight ---------------------------------

#[tokio::test]
async fn a_dirty_live_tree_is_refused_in_preflight_and_dry_run_before_the_stop() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    rig.world.lock().code.dirty = Some("src/app.js".into());
    let request = RollbackRequest::new(RollbackTarget::LastGood, "v2 broken", Scope::CODE);
    let Err(RollbackError::Preflight { failures }) = o.dry_run(&request).await else {
        panic!("dry_run must refuse a dirty tree");
    };
    assert!(failures[0].to_string().contains("src/app.js"), "{}", failures[0]);
    let err = o.rollback_with(request).await.unwrap_err();
    let RollbackError::Preflight { failures } = err else {
        panic!("pre-flight must refuse a dirty tree: {err}");
    };
    assert!(failures.iter().any(|f| f.error.kind() == ErrorKind::InvalidInput));
    assert_eq!(rig.world.count(Method::ProcessStop), 0);
    assert_eq!(rig.world.count(Method::CodeActivate), 0);
}

// ---- 5. the halted statement is true ------------------------------------------------------

#[tokio::test]
async fn a_halted_statement_says_what_recovery_actually_did() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    // The config cannot be put in place, nor put back: recovery halts, after the database
    // and the code were put back.
    rig.world.inject(
        Method::ConfigRestore,
        When::Always,
        Fault::Fail(ErrorKind::PermissionDenied),
    );
    let err = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap_err();
    let report = err.report().unwrap();
    let Outcome::Halted { statement, .. } = &report.outcome else {
        panic!("expected Halted, got {}", report.outcome);
    };
    assert_eq!(
        rig.world.end_state().db_marker.as_deref(),
        Some("v2 data"),
        "put back"
    );
    assert!(
        statement.contains("pre-rollback database is live again"),
        "{statement}"
    );
    assert!(!statement.contains("restored snapshot"), "{statement}");
    assert!(!statement.contains("may not be live"), "{statement}");
    assert!(
        statement.contains("the code is the pre-rollback release"),
        "{statement}"
    );
    assert!(statement.contains("could NOT be put back"), "{statement}");
    assert!(statement.contains("STOPPED"), "{statement}");
    assert!(
        report
            .emergency_backup
            .iter()
            .any(|e| e.contains("set aside, not deleted") && e.contains("snapshot:")),
        "the restored copy set aside by reinstate is named: {:?}",
        report.emergency_backup
    );
}

#[tokio::test]
async fn halt_policy_names_a_set_aside_database_that_was_never_switched() {
    let rig = Rig::new();
    let mut settings = Rig::settings();
    settings.failure_policy = FailurePolicy::Halt;
    let o = rig.orchestrator().settings(settings).build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    rig.world.inject(
        Method::CodePreserveCurrent,
        When::Nth(1),
        Fault::Fail(ErrorKind::Failed),
    );
    let err = o
        .rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap_err();
    let Outcome::Halted { statement, .. } = &err.report().unwrap().outcome else {
        panic!("expected Halted");
    };
    assert!(
        statement.contains("kept aside") && statement.contains("`rollback resume`"),
        "{statement}"
    );
    assert!(
        statement.contains("the code is unchanged") || !statement.contains("target revision"),
        "{statement}"
    );
}

// ---- 8. downtime ends at the first passing probe ------------------------------------------

#[tokio::test]
async fn downtime_ends_when_the_first_probe_passes_not_a_polling_interval_later() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    let mut settings = Rig::settings();
    settings.health_interval = Duration::from_secs(10);
    settings.health_timeout = Duration::from_secs(30);
    let o2 = rig.orchestrator().settings(settings).build().unwrap();
    drop(o);
    // The first probe after the start fails (the app is still binding its port).
    rig.world.inject(
        Method::HealthProbe,
        When::Nth(1),
        Fault::Fail(ErrorKind::Unavailable),
    );
    let report = o2
        .rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap();
    let window = report.downtime.expect("a downtime window");
    let downtime = window.duration.expect("closed");
    assert!(
        downtime < Duration::from_secs(5),
        "the window must not include a 10 s polling interval: {downtime:?}"
    );
    assert!(window.post_verify.is_some());
    assert!(rig.world.count(Method::HealthProbe) >= 2);
}

// ---- 9. a crash while finishing -------------------------------------------------------------

/// A state store whose `save_report` never returns once armed: the process "dies" while
/// writing the report.
#[derive(Clone)]
struct DiesWritingTheReport {
    inner: MemoryStateStore,
    armed: Arc<AtomicBool>,
}

#[async_trait]
impl StateStore for DiesWritingTheReport {
    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), AdapterError> {
        self.inner.save_checkpoint(checkpoint).await
    }
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, AdapterError> {
        self.inner.checkpoints().await
    }
    async fn save_journal(&self, journal: &Journal) -> Result<(), AdapterError> {
        self.inner.save_journal(journal).await
    }
    async fn journals(&self) -> Result<Vec<Journal>, AdapterError> {
        self.inner.journals().await
    }
    async fn save_report(&self, report: &RollbackReport) -> Result<String, AdapterError> {
        if self.armed.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.save_report(report).await
    }
    async fn try_lock(&self, holder: &LockHolder) -> Result<Option<LockHolder>, AdapterError> {
        self.inner.try_lock(holder).await
    }
    async fn lock_holder(&self) -> Result<Option<LockHolder>, AdapterError> {
        self.inner.lock_holder().await
    }
    async fn unlock(&self, token: &str) -> Result<(), AdapterError> {
        self.inner.unlock(token).await
    }
}

#[tokio::test]
async fn a_crash_while_writing_the_report_is_finished_by_resume() {
    let rig = Rig::new();
    let store = DiesWritingTheReport {
        inner: MemoryStateStore::new(),
        armed: Arc::new(AtomicBool::new(false)),
    };
    let o = rig.orchestrator().state(Arc::new(store.clone())).build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    store.armed.store(true, Ordering::SeqCst);
    let died = tokio::time::timeout(
        Duration::from_secs(5),
        o.rollback(RollbackTarget::LastGood, "v2", Scope::ALL),
    )
    .await;
    assert!(died.is_err(), "the run hangs in save_report and is dropped");
    drop(o);
    store.armed.store(false, Ordering::SeqCst);

    let o = rig
        .orchestrator()
        .state(Arc::new(store.inner.clone()))
        .build()
        .unwrap();
    assert!(o.unfinished().await.unwrap().is_some(), "finishing is resumable");
    assert!(
        o.lock_holder().await.unwrap().is_some(),
        "the dead run's lock is still there"
    );
    let report = o.resume().await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(
        store.inner.reports().len(),
        1,
        "the report is written once resumed"
    );
    assert_eq!(o.lock_holder().await.unwrap(), None, "the lock is released");
    assert!(o.unfinished().await.unwrap().is_none());
    assert_eq!(rig.world.end_state().db_marker.as_deref(), Some("v1 data"));
}

// ---- 11. refusing a new rollback changes nothing ------------------------------------------

#[tokio::test]
async fn a_refusal_because_of_an_unfinished_rollback_names_the_dead_holder_and_keeps_its_lock() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    rig.world
        .inject(Method::CodeActivate, When::Nth(1), Fault::CrashBefore);
    let crashed =
        rollback_testkit::run_until_crash(&rig.world, o.rollback(RollbackTarget::LastGood, "v2", Scope::ALL))
            .await;
    assert!(crashed.is_none());
    drop(o);
    rig.world.clear_faults();
    rig.world.reset_crash();

    let o = rig.orchestrator().build().unwrap();
    let dead = o.lock_holder().await.unwrap().expect("the dead run's lock");
    let refused = o
        .rollback(RollbackTarget::LastGood, "again", Scope::ALL)
        .await
        .unwrap_err();
    let RollbackError::Unfinished { step, holder, .. } = &refused else {
        panic!("expected Unfinished, got {refused}");
    };
    assert_eq!(*step, Step::ActivateCode);
    assert_eq!(holder.as_deref(), Some(&dead), "the dead holder is named");
    let text = refused.to_string();
    assert!(
        text.contains(&format!("pid {}", dead.pid)) || text.contains(&dead.pid.to_string()),
        "{text}"
    );
    assert_eq!(
        o.lock_holder().await.unwrap().as_ref(),
        Some(&dead),
        "refusing changed nothing: the lock is still there for resume()"
    );
    let report = o.resume().await.unwrap();
    assert!(report.outcome.is_success());
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("took over the stale lock")),
        "{:?}",
        report.notes
    );
}

// ---- issue 20: the switched-in database stays closed until the app starts ------------------

fn order_of(rig: &Rig) -> Vec<Method> {
    rig.world.calls().into_iter().map(|c| c.method).collect()
}

#[tokio::test]
async fn the_switched_in_database_is_opened_only_right_before_the_start() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    o.rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap();
    let calls = order_of(&rig);
    let at = |m: Method| {
        calls
            .iter()
            .position(|c| *c == m)
            .unwrap_or_else(|| panic!("{m:?} in {calls:?}"))
    };
    assert!(at(Method::DbRestore) < at(Method::DbProveUnchanged));
    assert!(at(Method::DbProveUnchanged) < at(Method::DbOpen));
    assert!(at(Method::DbOpen) < at(Method::ProcessStart));
    assert!(
        !calls[at(Method::DbRestore)..at(Method::DbOpen)].contains(&Method::DbCheckIntegrity),
        "no connection to the sealed copy before it opens: {calls:?}"
    );
    assert!(!rig.world.lock().db.sealed);
}

#[tokio::test]
async fn recovery_opens_the_put_back_database_right_before_the_start() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    rig.world
        .inject(Method::ProcessStart, When::Nth(1), Fault::Fail(ErrorKind::Failed));
    let err = o
        .rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap_err();
    let report = err.report().unwrap();
    assert!(
        matches!(
            report.outcome,
            Outcome::RestoredPreRollbackState {
                step: Step::Start,
                ..
            }
        ),
        "{}",
        report.outcome
    );
    let calls = order_of(&rig);
    let reinstate = calls.iter().position(|c| *c == Method::DbReinstate).unwrap();
    let open = calls.iter().rposition(|c| *c == Method::DbOpen).unwrap();
    let start = calls.iter().rposition(|c| *c == Method::ProcessStart).unwrap();
    assert!(reinstate < open && open < start, "{calls:?}");
    assert!(!rig.world.lock().db.sealed);
    assert!(rig.app_online());
    assert!(
        report
            .emergency_backup
            .iter()
            .any(|e| e.contains("set aside, not deleted")),
        "the restored copy that was live (and open) is named: {:?}",
        report.emergency_backup
    );
}

// ---- issue 21: no checkpoint on an unfinished rollback; the health gate; partial deploys ---

#[tokio::test]
async fn a_checkpoint_is_refused_while_a_rollback_is_unfinished() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    rig.world
        .inject(Method::DbRestore, When::Nth(1), Fault::CrashBefore);
    let crashed =
        rollback_testkit::run_until_crash(&rig.world, o.rollback(RollbackTarget::LastGood, "v2", Scope::ALL))
            .await;
    assert!(crashed.is_none());
    drop(o);
    rig.world.clear_faults();
    rig.world.reset_crash();
    let o = rig.orchestrator().build().unwrap();
    let before = o.checkpoints().await.unwrap().len();
    let err = o.checkpoint("while stopped").await.unwrap_err();
    assert!(matches!(err, RollbackError::Unfinished { .. }), "{err}");
    assert_eq!(o.checkpoints().await.unwrap().len(), before, "nothing was stored");
    assert_eq!(
        rig.world.count(Method::DbSnapshot),
        0,
        "no snapshot of a half-switched database"
    );
    o.resume().await.unwrap();
    o.checkpoint("after the rollback").await.unwrap();
}

#[tokio::test]
async fn the_health_gate_is_exposed_with_its_results() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    let gate = o.wait_for_healthy(Duration::from_millis(200)).await.unwrap();
    assert!(gate.healthy && gate.healthy_at.is_some());
    assert_eq!(gate.results.len(), 1);
    rig.deploy_release("v2: broken", "tree-v2", true);
    let gate = o.wait_for_healthy(Duration::from_millis(100)).await.unwrap();
    assert!(!gate.healthy && gate.healthy_at.is_none());
    assert!(!gate.results[0].healthy);
}

#[tokio::test]
async fn partial_deploys_roll_back_with_their_own_scope() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    o.checkpoint("before").await.unwrap();
    rig.deploy_migration("v2 data", 120, true);
    let report = o
        .rollback(RollbackTarget::LastGood, "migration broke it", Scope::DATABASE)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(rig.world.end_state().db_marker.as_deref(), Some("v1 data"));
    assert_eq!(rig.world.count(Method::CodeActivate), 0);

    o.checkpoint("before the config change").await.unwrap();
    rig.deploy_config("NEW_FLAG", "on", true);
    let report = o
        .rollback(RollbackTarget::LastGood, "config broke it", Scope::CONFIG)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert!(!rig.world.end_state().config.iter().any(|(k, _)| k == "NEW_FLAG"));
}

// ---- issue 16: zero downtime for rollbacks that leave the database alone ------------------

async fn deployed_cluster() -> (Rig, Orchestrator) {
    let rig = Rig::new();
    if let Some(a) = rig.world.lock().apps.get_mut(&rollback_core::AppName::new(APP)) {
        a.cluster = true;
    }
    let o = rig.orchestrator().build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_release("v2: broken", "tree-v2", true);
    rig.deploy_config("NEW_FLAG", "on", false);
    rig.world.clear_calls();
    (rig, o)
}

#[tokio::test]
async fn a_code_and_config_rollback_of_a_cluster_app_reloads_it_and_never_stops_it() {
    let (rig, o) = deployed_cluster().await;
    let scope = Scope {
        database: false,
        code: true,
        config: true,
    };
    let plan = o
        .dry_run(&RollbackRequest::new(RollbackTarget::LastGood, "v2", scope))
        .await
        .unwrap();
    let stop = plan.steps.iter().find(|s| s.step == Step::Stop).unwrap();
    assert!(
        stop.skipped
            .as_deref()
            .is_some_and(|w| w.contains("graceful reload")),
        "{stop:?}"
    );
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", scope)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(rig.world.count(Method::ProcessStop), 0, "never stopped");
    assert_eq!(rig.world.count(Method::ProcessStart), 0);
    assert_eq!(rig.world.count(Method::ProcessReload), 1);
    assert!(
        report.downtime.is_none(),
        "no downtime window: {:?}",
        report.downtime
    );
    assert!(
        report.notes.iter().any(|n| n.contains("graceful reload")),
        "{:?}",
        report.notes
    );
    assert_eq!(rig.world.end_state().code_tree.as_deref(), Some("tree-v1"));
    assert!(rig.app_online());
}

#[tokio::test]
async fn a_database_rollback_of_a_cluster_app_still_stops_it() {
    let (rig, o) = deployed_cluster().await;
    o.rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap();
    assert_eq!(rig.world.count(Method::ProcessReload), 0);
    assert_eq!(rig.world.count(Method::ProcessStop), 1);
}

#[tokio::test]
async fn a_failed_reload_is_undone_by_reloading_the_pre_rollback_state() {
    let (rig, o) = deployed_cluster().await;
    let before = rig.world.end_state();
    rig.world.inject(
        Method::ProcessReload,
        When::Nth(1),
        Fault::Fail(ErrorKind::Failed),
    );
    let err = o
        .rollback(RollbackTarget::LastGood, "v2", Scope::CODE)
        .await
        .unwrap_err();
    let report = err.report().unwrap();
    assert!(
        matches!(
            report.outcome,
            Outcome::RestoredPreRollbackState {
                step: Step::Start,
                ..
            }
        ),
        "{}",
        report.outcome
    );
    assert_eq!(
        rig.world.count(Method::ProcessStop),
        0,
        "never stopped, not even to undo"
    );
    assert_eq!(rig.world.count(Method::ProcessReload), 2);
    assert_eq!(rig.world.end_state(), before);
}

#[tokio::test]
async fn an_in_place_tree_is_never_switched_under_a_running_cluster() {
    let (rig, o) = deployed_cluster().await;
    rig.world.lock().code.in_place = true;
    let report = o
        .rollback(RollbackTarget::LastGood, "v2", Scope::CODE)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(rig.world.count(Method::ProcessReload), 0);
    assert_eq!(
        rig.world.count(Method::ProcessStop),
        1,
        "stopped, switched, started"
    );
}
