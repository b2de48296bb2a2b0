//! The orchestrator against the fakes: end states, not just calls.

use rollback_core::{
    CodeStrategy, ErrorKind, FailurePolicy, Orchestrator, Outcome, RollbackError, RollbackRequest,
    RollbackTarget, Scenario, Scope, Step, StepOutcome,
};
use rollback_testkit::{EndState, Fault, Method, Rig, When, APP};
use std::time::Duration;

fn healthy(rig: &Rig) -> bool {
    rig.world.lock().healthy(&APP.into())
}

fn mutations(rig: &Rig) -> Vec<Method> {
    rig.world
        .calls()
        .into_iter()
        .map(|c| c.method)
        .filter(|m| m.is_mutation())
        .collect()
}

fn steps_of(report: &rollback_core::RollbackReport) -> Vec<Step> {
    report.steps.iter().map(|s| s.step).collect()
}

// ---- happy paths per scenario -------------------------------------------------------------

#[tokio::test]
async fn migration_failure_restores_database_and_code_and_keeps_the_v2_data() {
    let (rig, o) = Rig::deployed(Scope::DATABASE_AND_CODE).await;
    assert!(!healthy(&rig));
    let report = o
        .handle_scenario(
            Scenario::DatabaseMigrationFailure,
            RollbackTarget::LastGood,
            "migration 42 broke users",
        )
        .await
        .unwrap();

    assert_eq!(report.outcome, Outcome::Succeeded);
    let end = rig.world.end_state();
    assert_eq!(end.db_marker.as_deref(), Some("v1 data"));
    assert_eq!(end.code_tree.as_deref(), Some("tree-v1"));
    assert!(
        end.config.iter().any(|(k, _)| k == "NEW_IN_V2"),
        "config is out of scope and stays v2's"
    );
    assert!(rig.app_online() && healthy(&rig));
    {
        let s = rig.world.lock();
        let kept: Vec<&str> = s.db.preserved.values().map(|c| c.marker.as_str()).collect();
        assert_eq!(kept, ["v2 data"], "the pre-rollback database is kept");
    }
    assert_eq!(
        steps_of(&report),
        Step::ALL.to_vec(),
        "every step, in order, once"
    );
    for r in &report.steps {
        match r.step {
            Step::RestoreConfig => assert!(matches!(r.outcome, StepOutcome::Skipped(_))),
            _ => assert_eq!(r.outcome, StepOutcome::Ok, "{:?}", r.step),
        }
    }
    let prepare = report.steps.iter().find(|r| r.step == Step::Prepare).unwrap();
    assert!(
        prepare
            .checklist
            .iter()
            .any(|i| i.checked && i.text.contains("staged copy integrity: foreign keys")),
        "the full check runs on the staged copy, online"
    );
    let restore = report
        .steps
        .iter()
        .find(|r| r.step == Step::RestoreDatabase)
        .unwrap();
    assert!(
        restore
            .checklist
            .iter()
            .any(|i| i.checked && i.text.contains("switched-in copy unchanged")),
        "offline, a cheap proof that it is the verified copy"
    );
    let downtime = report.downtime.as_ref().expect("the app was stopped");
    assert!(
        downtime.duration.is_some(),
        "the downtime window closed when healthy"
    );
    assert!(report.emergency_backup.iter().any(|b| b.starts_with("database:")));
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("writes made after snapshot")));
    assert!(report.to_markdown().contains("| 7 | restore database |"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["outcome"], "succeeded");
    assert_eq!(rig.state.reports().len(), 1, "the report is stored");
    assert_eq!(o.lock_holder().await.unwrap(), None, "the lock is released");
}

#[tokio::test]
async fn critical_bug_switches_code_only() {
    let (rig, o) = Rig::deployed(Scope::CODE).await;
    let report = o
        .handle_scenario(
            Scenario::CriticalBug,
            RollbackTarget::LastGood,
            "500s on checkout",
        )
        .await
        .unwrap();
    assert!(report.outcome.is_success());
    let end = rig.world.end_state();
    assert_eq!(end.code_tree.as_deref(), Some("tree-v1"));
    assert_eq!(
        end.db_marker.as_deref(),
        Some("v2 data"),
        "the database is not rolled back for a bug"
    );
    assert!(healthy(&rig));
    assert_eq!(rig.world.count(Method::DbRestore), 0);
    assert_eq!(rig.world.count(Method::DbPreserveCurrent), 0);
    assert_eq!(rig.world.count(Method::ConfigRestore), 0);
}

#[tokio::test]
async fn critical_bug_by_revert_adds_commits_and_runs_the_old_tree() {
    let (rig, o) = Rig::deployed(Scope::CODE).await;
    let v2 = rig.world.lock().code.active.clone().unwrap();
    let request = RollbackRequest::for_scenario(Scenario::CriticalBug, RollbackTarget::LastGood, "bug")
        .with_code_strategy(CodeStrategy::Revert(vec![v2.clone()]));
    let report = o.rollback_with(request).await.unwrap();
    assert!(report.outcome.is_success());
    let s = rig.world.lock();
    assert_eq!(s.active_commit().unwrap().tree, "tree-v1");
    assert_ne!(s.code.active.as_ref(), Some(&v2));
    assert_ne!(
        s.code.active.as_ref(),
        Some(&rig.v1),
        "a new revert commit runs, not v1 itself"
    );
    assert!(
        s.code.commits.iter().any(|c| c.revision.id == v2),
        "history is kept"
    );
}

#[tokio::test]
async fn configuration_error_restores_config_only() {
    let (rig, o) = Rig::deployed(Scope::CONFIG).await;
    let report = o
        .handle_scenario(
            Scenario::ConfigurationError,
            RollbackTarget::LastGood,
            "bad FEATURE_X",
        )
        .await
        .unwrap();
    assert!(report.outcome.is_success());
    let end = rig.world.end_state();
    assert!(!end.config.iter().any(|(k, _)| k == "NEW_IN_V2"));
    assert_eq!(end.code_tree.as_deref(), Some("tree-v2"));
    assert_eq!(end.db_marker.as_deref(), Some("v2 data"));
    assert!(healthy(&rig));
}

#[tokio::test]
async fn performance_degradation_investigates_and_changes_nothing() {
    let (rig, o) = Rig::deployed(Scope::CODE).await;
    rig.world.lock().metrics.cpu_percent = Some(97.0);
    let before = rig.world.end_state();
    let report = o
        .handle_scenario(
            Scenario::PerformanceDegradation,
            RollbackTarget::LastGood,
            "p99 doubled",
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Investigated);
    assert_eq!(rig.world.end_state(), before);
    assert!(mutations(&rig).is_empty(), "no mutation: {:?}", mutations(&rig));
    let text = report.to_markdown();
    assert!(
        text.contains("v2: new feature"),
        "lists the commits since the checkpoint:\n{text}"
    );
    assert!(text.contains("CPU 97.0%"), "{text}");
    assert!(text.contains("NEW_IN_V2"), "lists config keys changed:\n{text}");
}

// ---- failures -----------------------------------------------------------------------------

/// Faults that make each step after the emergency backup fail, first call only.
fn step_faults() -> Vec<(Step, Method)> {
    vec![
        (Step::EmergencyBackup, Method::DbPreserveCurrent),
        (Step::EmergencyBackup, Method::CodePreserveCurrent),
        (Step::EmergencyBackup, Method::ConfigBackup),
        (Step::RestoreDatabase, Method::DbRestore),
        (Step::RestoreDatabase, Method::DbProveUnchanged),
        (Step::Start, Method::DbOpen),
        (Step::PostVerify, Method::DbCheckIntegrity),
        (Step::ActivateCode, Method::CodeActivate),
        (Step::RestoreConfig, Method::ConfigRestore),
        (Step::Start, Method::ProcessStart),
    ]
}

#[tokio::test]
async fn a_failure_after_the_emergency_backup_puts_the_pre_rollback_state_back() {
    for (step, method) in step_faults() {
        let (rig, o) = Rig::deployed(Scope::ALL).await;
        let before = rig.world.end_state();
        rig.world
            .inject(method, When::Nth(1), Fault::Fail(ErrorKind::Failed));
        let err = o
            .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
            .await
            .unwrap_err();
        let RollbackError::StepFailed {
            step: failed, report, ..
        } = err
        else {
            panic!("{method:?}: expected StepFailed, got {err}");
        };
        assert_eq!(failed, step, "{method:?}");
        assert!(
            matches!(report.outcome, Outcome::RestoredPreRollbackState { .. }),
            "{method:?}: {}",
            report.outcome
        );
        assert_eq!(
            rig.world.end_state(),
            before,
            "{method:?}: the world is back where it was"
        );
        assert!(rig.app_online(), "{method:?}: the app runs again");
        assert!(
            report
                .recovery
                .iter()
                .all(|i| i.checked || i.text.contains("health")),
            "{method:?}"
        );
        assert_eq!(o.lock_holder().await.unwrap(), None);
        assert!(
            o.unfinished().await.unwrap().is_none(),
            "{method:?}: the journal is finished"
        );
    }
}

#[tokio::test]
async fn unhealthy_after_start_puts_the_pre_rollback_state_back() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    let before = rig.world.end_state();
    // v1's tree is broken too: the rollback target does not come up healthy.
    rig.world.lock().code.broken_trees.insert("tree-v1".into());
    let err = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap_err();
    let report = err.report().expect("a report");
    assert!(matches!(
        report.outcome,
        Outcome::RestoredPreRollbackState {
            step: Step::PostVerify,
            ..
        }
    ));
    assert_eq!(rig.world.end_state(), before);
    assert!(rig.app_online());
}

#[tokio::test]
async fn halt_policy_leaves_a_documented_state_and_deletes_nothing() {
    for (step, method) in step_faults() {
        let rig = Rig::new();
        let mut settings = Rig::settings();
        settings.failure_policy = FailurePolicy::Halt;
        let o = rig.orchestrator().settings(settings).build().unwrap();
        o.checkpoint("before v2").await.unwrap();
        rig.deploy_bad_release(Scope::ALL);
        rig.world
            .inject(method, When::Nth(1), Fault::Fail(ErrorKind::Failed));
        let err = o
            .rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
            .await
            .unwrap_err();
        let report = err.report().expect("a report");
        let Outcome::Halted {
            step: at, statement, ..
        } = &report.outcome
        else {
            panic!("{method:?}: expected Halted, got {}", report.outcome);
        };
        assert_eq!(*at, step);
        let expected = if step == Step::PostVerify {
            "the app was started on the rolled-back state"
        } else {
            "the app is STOPPED"
        };
        assert!(statement.contains(expected), "{method:?}: {statement}");
        assert_eq!(
            rig.world.count(Method::DbReinstate),
            0,
            "halt changes nothing more"
        );
        let s = rig.world.lock();
        if s.db.live.is_none() {
            assert!(
                statement.contains("set aside"),
                "{method:?}: a set-aside database is stated: {statement}"
            );
        }
        let v2_kept = s.db.live.as_ref().is_some_and(|l| l.marker == "v2 data")
            || s.db.preserved.values().any(|c| c.marker == "v2 data");
        assert!(v2_kept, "{method:?}: the pre-rollback data is never lost");
    }
}

#[tokio::test]
async fn failures_before_the_emergency_backup_leave_the_app_running_untouched() {
    for method in [Method::DbPrepareRestore, Method::CodePrepare, Method::ProcessStop] {
        let (rig, o) = Rig::deployed(Scope::ALL).await;
        let before = rig.world.end_state();
        rig.world
            .inject(method, When::Nth(1), Fault::Fail(ErrorKind::Failed));
        let err = o
            .rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
            .await
            .unwrap_err();
        let report = err.report().expect("a report");
        assert!(
            matches!(report.outcome, Outcome::Aborted { .. }),
            "{method:?}: {}",
            report.outcome
        );
        assert_eq!(rig.world.end_state(), before, "{method:?}");
        assert!(rig.app_online());
        assert_eq!(rig.world.count(Method::DbPreserveCurrent), 0);
        assert_eq!(rig.world.count(Method::DbRestore), 0);
    }
}

#[tokio::test]
async fn preflight_failures_stop_nothing_and_change_nothing() {
    type Break = fn(&Rig);
    let cases: Vec<(&str, Break, &str)> = vec![
        (
            "missing snapshot",
            |r| r.world.lock().db.snapshots.clear(),
            "snapshot",
        ),
        (
            "unknown revision",
            |r| r.world.lock().code.commits.retain(|c| c.tree != "tree-v1"),
            "revision",
        ),
        (
            "bad config",
            |r| {
                r.world
                    .lock()
                    .config
                    .versions
                    .values_mut()
                    .for_each(|v| v.malformed_line = Some(3))
            },
            "line 3",
        ),
        ("unknown app", |r| r.world.lock().apps.clear(), "app `web`"),
        (
            "database down",
            |r| r.world.lock().db.reachable = false,
            "database reachable",
        ),
        (
            "damaged snapshot",
            |r| r.world.lock().db.snapshots.values_mut().for_each(|s| s.2 = true),
            "damaged",
        ),
    ];
    for (name, break_it, expected) in cases {
        let (rig, o) = Rig::deployed(Scope::ALL).await;
        break_it(&rig);
        let before = rig.world.end_state();
        let err = o
            .rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
            .await
            .unwrap_err();
        let RollbackError::Preflight { failures } = &err else {
            panic!("{name}: expected a pre-flight error, got {err}");
        };
        assert!(!failures.is_empty());
        assert!(
            err.to_string().contains(expected),
            "{name}: `{err}` should name `{expected}`"
        );
        assert!(err.to_string().contains("nothing was stopped or changed"));
        assert!(mutations(&rig).is_empty(), "{name}: {:?}", mutations(&rig));
        assert_eq!(rig.world.end_state(), before, "{name}");
        assert_eq!(o.lock_holder().await.unwrap(), None, "{name}: lock released");
        assert!(
            o.unfinished().await.unwrap().is_none(),
            "{name}: a new rollback may start"
        );
    }
}

#[tokio::test]
async fn a_target_equal_to_what_is_live_is_a_typed_error_not_a_silent_success() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    o.checkpoint("v1").await.unwrap();
    let err = o
        .rollback(RollbackTarget::LastGood, "oops", Scope::CODE)
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::TargetIsLive { .. }), "{err}");
    assert!(mutations(&rig).is_empty());
}

#[tokio::test]
async fn only_good_checkpoints_are_rollback_targets() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    rig.world.lock().code.broken_trees.insert("tree-v1".into());
    let cp = o.checkpoint("taken while unhealthy").await.unwrap();
    assert!(!cp.good);
    let err = o
        .rollback(RollbackTarget::LastGood, "x", Scope::ALL)
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::NoCheckpoint(_)), "{err}");
    assert!(o.mark_good(&cp.id).await.unwrap().good);
}

#[tokio::test]
async fn a_scope_without_its_adapter_is_refused_before_anything_runs() {
    let rig = Rig::new();
    let o = Orchestrator::builder(APP)
        .process(std::sync::Arc::new(rig.process.clone()))
        .state(std::sync::Arc::new(rig.state.clone()))
        .build()
        .unwrap();
    let err = o
        .rollback(RollbackTarget::LastGood, "x", Scope::ALL)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("DatabaseSnapshot"), "{err}");
}

// ---- crash and resume ---------------------------------------------------------------------

/// Methods the run calls, each a place the process can die.
const CRASH_POINTS: [(Method, When); 17] = [
    (Method::DbProveUnchanged, When::Nth(1)),
    (Method::DbOpen, When::Nth(1)),
    (Method::ProcessStatus, When::Nth(1)),
    (Method::DbPrepareRestore, When::Nth(1)),
    (Method::DbCheckPrepared, When::Nth(1)),
    (Method::CodeCheckActivate, When::Nth(1)),
    (Method::CodePrepare, When::Nth(1)),
    (Method::ProcessStop, When::Nth(1)),
    (Method::DbPreserveCurrent, When::Nth(1)),
    (Method::CodePreserveCurrent, When::Nth(1)),
    (Method::ConfigBackup, When::Nth(1)),
    (Method::DbRestore, When::Nth(1)),
    (Method::CodeActivate, When::Nth(1)),
    (Method::ConfigRestore, When::Nth(1)),
    (Method::ProcessStart, When::Nth(1)),
    (Method::HealthProbe, When::Nth(1)),
    (Method::DbCheckIntegrity, When::Nth(1)),
];

async fn uninterrupted_end_state() -> EndState {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    o.rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap();
    rig.world.end_state()
}

#[tokio::test]
async fn a_crash_at_any_step_then_resume_ends_like_an_uninterrupted_run() {
    let expected = uninterrupted_end_state().await;
    for (method, when) in CRASH_POINTS {
        for fault in [Fault::CrashBefore, Fault::CrashAfter] {
            let (rig, o) = Rig::deployed(Scope::ALL).await;
            rig.world.inject(method, when, fault.clone());
            let finished = rollback_testkit::run_until_crash(
                &rig.world,
                o.rollback(RollbackTarget::LastGood, "v2", Scope::ALL),
            )
            .await;
            assert!(
                finished.is_none(),
                "{method:?} {fault:?}: the run should have crashed"
            );
            drop(o);
            rig.world.clear_faults();
            rig.world.reset_crash();

            // A new process: a new orchestrator over the same state store and world.
            let o = rig.orchestrator().build().unwrap();
            let refused = o
                .rollback(RollbackTarget::LastGood, "again", Scope::ALL)
                .await
                .unwrap_err();
            assert!(
                matches!(refused, RollbackError::Unfinished { .. }),
                "{method:?} {fault:?}: a new rollback is refused while one is unfinished: {refused}"
            );
            let report = o
                .resume()
                .await
                .unwrap_or_else(|e| panic!("{method:?} {fault:?}: resume failed: {e}"));
            assert!(
                report.outcome.is_success(),
                "{method:?} {fault:?}: {}",
                report.outcome
            );
            assert_eq!(rig.world.end_state(), expected, "{method:?} {fault:?}");
            assert!(report.notes.iter().any(|n| n.contains("resumed")), "{method:?}");
            assert_eq!(
                rig.world.lock().db.preserved.len(),
                1,
                "{method:?} {fault:?}: one emergency backup"
            );
            assert!(matches!(o.resume().await, Err(RollbackError::NothingToResume)));
        }
    }
}

#[tokio::test]
async fn a_crash_during_recovery_is_resumed_as_recovery() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    let before = rig.world.end_state();
    rig.world
        .inject(Method::CodeActivate, When::Nth(1), Fault::Fail(ErrorKind::Failed));
    rig.world
        .inject(Method::DbReinstate, When::Nth(1), Fault::CrashAfter);
    let run = o.rollback(RollbackTarget::LastGood, "v2", Scope::ALL);
    assert!(rollback_testkit::run_until_crash(&rig.world, run).await.is_none());
    rig.world.clear_faults();
    rig.world.reset_crash();
    let o = rig.orchestrator().build().unwrap();
    let err = o.resume().await.unwrap_err();
    let report = err.report().unwrap();
    assert!(matches!(
        report.outcome,
        Outcome::RestoredPreRollbackState {
            step: Step::ActivateCode,
            ..
        }
    ));
    assert_eq!(rig.world.end_state(), before);
}

#[tokio::test]
async fn the_journal_survives_in_a_state_directory_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let rig = Rig::new();
    let build = || async {
        let store = rollback_core::DirStateStore::open(dir.path()).await.unwrap();
        rig.orchestrator()
            .state(std::sync::Arc::new(store))
            .build()
            .unwrap()
    };
    let o = build().await;
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    rig.world
        .inject(Method::CodeActivate, When::Nth(1), Fault::CrashAfter);
    let run = o.rollback(RollbackTarget::LastGood, "v2", Scope::ALL);
    assert!(rollback_testkit::run_until_crash(&rig.world, run).await.is_none());
    drop(o);
    rig.world.clear_faults();
    let o = build().await;
    let journal = o.unfinished().await.unwrap().expect("the journal is on disk");
    assert_eq!(journal.last_step(), Step::ActivateCode);
    let report = o.resume().await.unwrap();
    assert!(report.outcome.is_success());
    assert_eq!(rig.world.end_state().db_marker.as_deref(), Some("v1 data"));
    assert!(dir
        .path()
        .join("reports")
        .join(format!("{}.md", report.id))
        .exists());
    assert_eq!(o.lock_holder().await.unwrap(), None);
}

// ---- lock ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_second_rollback_at_once_is_refused_naming_the_holder() {
    let (rig, first) = Rig::deployed(Scope::ALL).await;
    let second = rig.orchestrator().build().unwrap();
    rig.world.inject(
        Method::DbPrepareRestore,
        When::Always,
        Fault::Delay(Duration::from_millis(200)),
    );
    let (a, b) = tokio::join!(
        first.rollback(RollbackTarget::LastGood, "first", Scope::ALL),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            second
                .rollback(RollbackTarget::LastGood, "second", Scope::ALL)
                .await
        }
    );
    let report = a.unwrap();
    let RollbackError::Locked { holder } = b.unwrap_err() else {
        panic!("the second rollback must be refused with Locked");
    };
    assert_eq!(
        holder.rollback, report.id,
        "the holder named is the first rollback"
    );
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(
        rig.world.count(Method::ProcessStop),
        1,
        "only one rollback stopped the app"
    );
}

#[tokio::test]
async fn a_lock_left_by_a_dead_process_is_taken_over_and_a_foreign_host_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let store = rollback_core::DirStateStore::open(dir.path()).await.unwrap();
    let rig = Rig::new();
    let o = rig
        .orchestrator()
        .state(std::sync::Arc::new(store.clone()))
        .build()
        .unwrap();
    o.checkpoint("v1").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    let lock = |pid: u32, host: &str| {
        format!(
            r#"{{"pid":{pid},"host":"{host}","since":"2026-01-01T00:00:00Z","rollback":"rb-old","token":"t-{pid}"}}"#
        )
    };
    std::fs::write(dir.path().join("lock.json"), lock(4_000_000, "elsewhere")).unwrap();
    let err = o
        .rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("host elsewhere"), "{err}");
    assert!(
        o.clear_stale_lock(false).await.is_err(),
        "a foreign host is not provably stale"
    );
    assert_eq!(o.clear_stale_lock(true).await.unwrap().unwrap().host, "elsewhere");

    std::fs::write(dir.path().join("lock.json"), lock(4_000_000, &host)).unwrap();
    let report = o
        .rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap();
    let lock_step = &report.steps[0];
    assert!(
        lock_step.checklist.iter().any(|i| i.text.contains("stale lock")),
        "{lock_step:?}"
    );
}

// ---- dry run, progress --------------------------------------------------------------------

#[tokio::test]
async fn dry_run_returns_the_plan_and_changes_nothing() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    let before = rig.world.end_state();
    let request =
        RollbackRequest::for_scenario(Scenario::DatabaseMigrationFailure, RollbackTarget::LastGood, "x");
    let plan = o.dry_run(&request).await.unwrap();
    assert_eq!(plan.steps.len(), 12);
    let restore_config = plan.steps.iter().find(|s| s.step == Step::RestoreConfig).unwrap();
    assert!(
        restore_config.skipped.is_some(),
        "config is not in this scenario's scope"
    );
    assert!(
        plan.steps
            .iter()
            .find(|s| s.step == Step::Prepare)
            .unwrap()
            .actions
            .len()
            == 2
    );
    assert!(mutations(&rig).is_empty());
    assert_eq!(rig.world.end_state(), before);
    assert!(o.unfinished().await.unwrap().is_none());
    assert_eq!(o.lock_holder().await.unwrap(), None);

    rig.world.lock().db.reachable = false;
    assert!(matches!(
        o.dry_run(&request).await,
        Err(RollbackError::Preflight { .. })
    ));
}

#[tokio::test]
async fn progress_events_follow_the_steps_in_order() {
    let rig = Rig::new();
    let (sink, mut events) = rollback_core::progress::channel();
    let o = rig.orchestrator().progress(sink).build().unwrap();
    o.checkpoint("v1").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    o.rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap();
    drop(o);
    let mut started = Vec::new();
    let mut finished = Vec::new();
    while let Some(e) = events.recv().await {
        match e.kind {
            rollback_core::ProgressKind::Started => started.push(e.step),
            rollback_core::ProgressKind::Finished => finished.push(e.step),
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(finished, Step::ALL.to_vec());
    assert_eq!(
        started,
        Step::ALL[1..].to_vec(),
        "every step after the lock reports its start"
    );
}
