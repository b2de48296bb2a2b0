//! No dead ends on one host (issue 25), against the fakes: a fault in each undo of the
//! recovery halts with a statement the test checks against the world (the database opened
//! whenever it is back, no library names asked of an operator), a new rollback is refused
//! while one is halted, and `resume()` once the fault is cleared ends consistent and serving.

use rollback_core::{ErrorKind, FailurePolicy, Outcome, RollbackError, RollbackTarget, Scope};
use rollback_testkit::{Fault, Method, Rig, When, APP};

/// Each undo of the recovery, as the call the fakes see: the code's and the config's
/// put-back are their second `activate` / `restore` (the first is the rollback's own), the
/// recovery's start the second `start`.
fn undo_faults() -> Vec<(&'static str, Method, When)> {
    vec![
        ("the database's put-back", Method::DbReinstate, When::Nth(1)),
        ("the code's put-back", Method::CodeActivate, When::Nth(2)),
        ("the config's put-back", Method::ConfigRestore, When::Nth(2)),
        ("the start after the put-back", Method::ProcessStart, When::Nth(2)),
    ]
}

/// Asks nothing of an operator that is not a `rollback` command.
fn assert_operator_words(statement: &str, what: &str) {
    for library in ["()", "reinstate", "DatabaseSnapshot", "Orchestrator"] {
        assert!(
            !statement.contains(library),
            "{what}: the statement names `{library}`: {statement}"
        );
    }
    assert!(
        statement.contains("`rollback resume`"),
        "{what}: the statement leads out: {statement}"
    );
}

/// A rollback whose target does not come up healthy, so that it must be undone, and whose
/// undo `method` (its `when`-th call) meets a fault nobody planned for: the rig, its
/// orchestrator, the world before the rollback, and the rollback's error.
async fn halted_in_undo(
    method: Method,
    when: When,
) -> (
    Rig,
    rollback_core::Orchestrator,
    rollback_testkit::EndState,
    RollbackError,
) {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    let before = rig.world.end_state();
    rig.world.lock().code.broken_trees.insert("tree-v1".into());
    rig.world
        .inject(method, when, Fault::Fail(ErrorKind::Unavailable));
    let err = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap_err();
    (rig, o, before, err)
}

#[tokio::test]
async fn a_fault_in_each_undo_halts_truthfully_and_resume_ends_consistent_and_serving() {
    for (what, method, when) in undo_faults() {
        let (rig, o, before, err) = halted_in_undo(method, when).await;
        let report = err.report().expect("a report");
        let Outcome::Halted { statement, .. } = &report.outcome else {
            panic!("{what}: expected Halted, got {}", report.outcome);
        };
        assert_operator_words(statement, what);

        // The statement, part by part, against the world.
        let (marker, sealed) = {
            let s = rig.world.lock();
            (s.db.live.as_ref().map(|l| l.marker.clone()), s.db.sealed)
        };
        assert!(!rig.app_online(), "{what}: an inconsistent app stays stopped");
        assert!(statement.contains("STOPPED"), "{what}: {statement}");
        if method == Method::DbReinstate {
            assert_eq!(marker.as_deref(), Some("v1 data"), "{what}");
            assert!(
                statement.contains("could NOT be put back")
                    && statement.contains("the live database is still the restored snapshot"),
                "{what}: {statement}"
            );
        } else {
            assert_eq!(marker.as_deref(), Some("v2 data"), "{what}: the database is back");
            assert!(!sealed, "{what}: the live database was opened to its clients");
            assert!(
                statement.contains("pre-rollback database is live again")
                    && statement.contains("open to clients"),
                "{what}: {statement}"
            );
            assert!(!statement.contains("database could NOT"), "{what}: {statement}");
        }
        if method == Method::CodeActivate {
            assert!(
                statement.contains("could NOT be activated again"),
                "{what}: {statement}"
            );
        } else if method == Method::ConfigRestore {
            assert!(
                statement.contains("config") && statement.contains("could NOT be put back"),
                "{what}: {statement}"
            );
        } else if method == Method::ProcessStart {
            assert!(
                statement.contains("starting it again failed"),
                "{what}: {statement}"
            );
        }

        // Halted is a state the tool leads out of: nothing new starts over it...
        let refused = o
            .rollback(RollbackTarget::LastGood, "again", Scope::ALL)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, RollbackError::Unfinished { halted: true, .. }),
            "{what}: {refused}"
        );
        assert!(
            o.unfinished().await.unwrap().is_some_and(|j| j.is_halted()),
            "{what}"
        );

        // ... and resume, once the fault is cleared, ends consistent and serving.
        rig.world.clear_faults();
        let o = rig.orchestrator().build().unwrap(); // a new process
        let err = o.resume().await.unwrap_err();
        let report = err.report().expect("a report");
        assert!(
            matches!(report.outcome, Outcome::RestoredPreRollbackState { .. }),
            "{what}: {}",
            report.outcome
        );
        assert_eq!(rig.world.end_state(), before, "{what}: the pre-rollback state");
        assert!(rig.app_online(), "{what}: serving");
        assert!(!rig.world.lock().db.sealed, "{what}: open to clients");
        assert!(
            report.notes.iter().any(|n| n.contains("taken up again")),
            "{what}: {:?}",
            report.notes
        );
        assert!(
            matches!(o.resume().await, Err(RollbackError::NothingToResume)),
            "{what}: resume is a no-op once everything matches"
        );
        // And a new rollback may run again.
        assert!(o.unfinished().await.unwrap().is_none(), "{what}");
    }
}

#[tokio::test]
async fn a_rollback_halted_by_policy_is_put_back_by_resume() {
    let rig = Rig::new();
    let mut settings = Rig::settings();
    settings.failure_policy = FailurePolicy::Halt;
    let o = rig.orchestrator().settings(settings).build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    let before = rig.world.end_state();
    rig.world.inject(
        Method::ConfigRestore,
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
    assert_operator_words(statement, "halt policy");
    assert!(!rig.app_online());
    rig.world.clear_faults();
    let err = rig.orchestrator().build().unwrap().resume().await.unwrap_err();
    assert!(
        matches!(
            err.report().unwrap().outcome,
            Outcome::RestoredPreRollbackState { .. }
        ),
        "{err}"
    );
    assert_eq!(rig.world.end_state(), before);
    assert!(rig.app_online());
}

#[tokio::test]
async fn an_emergency_backup_that_fails_after_moving_the_database_is_found_and_put_back() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    let before = rig.world.end_state();
    // The adapter renames the live database aside, then cannot record it (its state
    // directory turned read-only, say) and fails.
    rig.world.inject(
        Method::DbPreserveCurrent,
        When::Nth(1),
        Fault::FailAfter(ErrorKind::PermissionDenied),
    );
    let err = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap_err();
    let report = err.report().expect("a report");
    assert!(
        matches!(report.outcome, Outcome::RestoredPreRollbackState { .. }),
        "{}",
        report.outcome
    );
    assert_eq!(rig.world.end_state(), before, "the database moved aside is back");
    assert!(rig.app_online());
    assert!(
        report.recovery.iter().any(|i| i.checked
            && i.text
                .contains("found what the interrupted emergency backup set aside")),
        "{:?}",
        report.recovery
    );
}

/// The fake database, except that it cannot say what an emergency backup set aside (the
/// trait's provided `preserved`): the recovery must still never start the app without a live
/// database, and must say so.
struct Forgetful(rollback_testkit::FakeDatabase);

#[async_trait::async_trait]
impl rollback_core::DatabaseSnapshot for Forgetful {
    async fn snapshot(
        &self,
        label: &str,
    ) -> Result<rollback_core::SnapshotInfo, rollback_core::AdapterError> {
        self.0.snapshot(label).await
    }
    async fn verify(&self, id: &rollback_core::SnapshotId) -> Result<(), rollback_core::AdapterError> {
        self.0.verify(id).await
    }
    async fn prepare_restore(
        &self,
        id: &rollback_core::SnapshotId,
    ) -> Result<rollback_core::PreparedRestore, rollback_core::AdapterError> {
        self.0.prepare_restore(id).await
    }
    async fn preserve_current(
        &self,
        label: &str,
    ) -> Result<rollback_core::PreservedDatabase, rollback_core::AdapterError> {
        self.0.preserve_current(label).await
    }
    async fn restore(
        &self,
        prepared: &rollback_core::PreparedRestore,
    ) -> Result<Vec<rollback_core::PutAside>, rollback_core::AdapterError> {
        self.0.restore(prepared).await
    }
    async fn reinstate(
        &self,
        preserved: &rollback_core::PreservedDatabase,
    ) -> Result<Vec<rollback_core::PutAside>, rollback_core::AdapterError> {
        self.0.reinstate(preserved).await
    }
    async fn check_integrity(
        &self,
        checks: &rollback_core::IntegrityChecks,
    ) -> Result<rollback_core::IntegrityReport, rollback_core::AdapterError> {
        self.0.check_integrity(checks).await
    }
    async fn list(&self) -> Result<Vec<rollback_core::SnapshotInfo>, rollback_core::AdapterError> {
        self.0.list().await
    }
    async fn remove(&self, id: &rollback_core::SnapshotId) -> Result<(), rollback_core::AdapterError> {
        self.0.remove(id).await
    }
    async fn ping(&self) -> Result<std::time::Duration, rollback_core::AdapterError> {
        self.0.ping().await
    }
}

#[tokio::test]
async fn without_a_live_database_the_recovery_never_starts_the_app_and_says_so() {
    let rig = Rig::new();
    let o = rig
        .orchestrator()
        .database(Forgetful(rig.db.clone()))
        .build()
        .unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    rig.world.inject(
        Method::DbPreserveCurrent,
        When::Nth(1),
        Fault::FailAfter(ErrorKind::PermissionDenied),
    );
    let err = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap_err();
    let report = err.report().expect("a report");
    let Outcome::Halted { statement, .. } = &report.outcome else {
        panic!("never a false 'put back and started': {}", report.outcome);
    };
    assert!(rig.world.lock().db.live.is_none(), "the test's premise");
    assert!(!rig.app_online(), "the app is not started without its database");
    assert!(statement.contains("STOPPED"), "{statement}");
    assert!(
        statement.contains("the live database does not answer"),
        "{statement}"
    );
    assert!(
        report
            .recovery
            .iter()
            .any(|i| !i.checked && i.text.contains("the live database answers")),
        "{:?}",
        report.recovery
    );
}

#[tokio::test]
async fn resume_restarts_an_app_someone_started_on_the_release_before_the_switch() {
    let (rig, o) = Rig::deployed(Scope::ALL).await;
    // The process dies right after the code was switched; the app is brought back by hand
    // (`pm2 resurrect`, say) before the rollback is resumed: it runs what it loaded before.
    rig.world
        .inject(Method::CodeActivate, When::Nth(1), Fault::CrashAfter);
    let crashed = rollback_testkit::run_until_crash(
        &rig.world,
        o.rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL),
    )
    .await;
    assert!(crashed.is_none(), "crashed");
    drop(o);
    rig.world.clear_faults();
    rollback_core::ProcessManager::start(&rig.process, &rollback_core::AppName::new(APP))
        .await
        .unwrap();
    assert!(rig.app_online(), "the premise: online before the resume");
    let restarts = rig.world.count(Method::ProcessRestart);
    let report = rig.orchestrator().build().unwrap().resume().await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(
        rig.world.count(Method::ProcessRestart),
        restarts + 1,
        "restarted onto the activated release, not left running the old one"
    );
    let start = report
        .steps
        .iter()
        .rev()
        .find(|s| s.step == rollback_core::Step::Start)
        .unwrap();
    assert!(
        start
            .checklist
            .iter()
            .any(|i| i.text.contains("restarted onto the activated release")),
        "{:?}",
        start.checklist
    );
}

#[tokio::test]
async fn a_halt_put_right_by_hand_is_closed_without_changing_anything() {
    let (rig, o, _, err) = halted_in_undo(Method::DbReinstate, When::Nth(1)).await;
    let id = err.report().unwrap().id.clone();
    assert!(o.unfinished().await.unwrap().is_some_and(|j| j.is_halted()));
    rig.world.clear_faults();
    let calls = rig.world.calls().len();
    let closed = o
        .close_halted("renamed the databases back by hand")
        .await
        .unwrap();
    assert_eq!(closed.id, id);
    assert_eq!(rig.world.calls().len(), calls, "nothing was asked of any adapter");
    assert!(o.unfinished().await.unwrap().is_none(), "no longer resumed");
    assert!(matches!(o.resume().await, Err(RollbackError::NothingToResume)));
    assert!(
        o.report_of(&id)
            .await
            .unwrap()
            .notes
            .iter()
            .any(|n| n.contains("closed by hand") && n.contains("renamed the databases back by hand")),
        "the note is in the report"
    );
    assert!(matches!(
        o.close_halted("again").await,
        Err(RollbackError::NothingToResume)
    ));
}

#[tokio::test]
async fn a_halt_journaled_before_halts_were_resumable_is_not_resumed() {
    let (rig, o, _, _) = halted_in_undo(Method::DbReinstate, When::Nth(1)).await;
    // As an earlier version wrote it: no `halt_resumable` field.
    let mut journal = o.unfinished().await.unwrap().expect("halted");
    journal.artifacts.halt_resumable = false;
    rollback_core::StateStore::save_journal(&rig.state, &journal)
        .await
        .unwrap();
    assert!(
        o.unfinished().await.unwrap().is_none(),
        "an old halt is history, not resumed"
    );
    let json = serde_json::to_value(&journal).unwrap();
    let mut old = json.clone();
    old["artifacts"].as_object_mut().unwrap().remove("halt_resumable");
    let read: rollback_core::Journal = serde_json::from_value(old).unwrap();
    assert!(!read.is_halted(), "an old journal reads as not resumable");
}
