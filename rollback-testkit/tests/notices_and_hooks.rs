//! Every rollback is announced (started; finished, failed or halted), each notice naming
//! who is responsible now and next; notifiers never decide anything. The caller's hooks run
//! around the steps: a before-stop failure aborts with nothing changed and the after-start
//! hooks undo what was done; a required after-start failure puts the pre-rollback state
//! back; after-report hooks see the outcome.

use async_trait::async_trait;
use rollback_core::automation::{CommunicationPlan, Contact};
use rollback_core::{
    AdapterError, ErrorKind, FailurePolicy, Hook, HookContext, HookPoint, Notice, NoticeEvent, Notifier,
    Outcome, ProcessState, RollbackError, RollbackTarget, Scope, Severity, Step,
};
use rollback_testkit::{Fault, Method, RecordingNotifier, Rig, When, APP};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn plan_with_contacts() -> CommunicationPlan {
    CommunicationPlan::runbook()
        .contact(Contact::new("on-call engineer", "Ana", "+1 555 0100"))
        .contact(Contact::new("DevOps lead", "Bo", "@bo"))
}

#[tokio::test]
async fn a_rollback_is_announced_when_it_starts_and_when_it_ends_naming_who_is_next() {
    let rig = Rig::new();
    let notifier = RecordingNotifier::new();
    let o = rig
        .orchestrator()
        .notifier(notifier.clone())
        .communication_plan(plan_with_contacts())
        .build()
        .unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    let report = o
        .rollback_with(
            rollback_core::RollbackRequest::new(RollbackTarget::LastGood, "v2 broke checkout", Scope::ALL)
                .with_trigger("operator ana"),
        )
        .await
        .unwrap();

    let sent = notifier.notices();
    let events: Vec<NoticeEvent> = sent.iter().map(|n| n.event).collect();
    assert_eq!(
        events,
        [NoticeEvent::RollbackStarted, NoticeEvent::RollbackSucceeded]
    );
    let (started, finished) = (&sent[0], &sent[1]);
    for n in &sent {
        assert_eq!(
            n.incident.as_deref(),
            Some(report.id.as_str()),
            "one incident key per rollback"
        );
    }
    assert!(
        started.body.contains("v2 broke checkout") && started.body.contains("operator ana"),
        "{started:?}"
    );
    assert!(
        started.body.contains(report.checkpoint.id.as_str()),
        "names the target: {started:?}"
    );
    assert_eq!(
        started.escalation.as_deref(),
        Some("now: on-call engineer (Ana, +1 555 0100); next at +30 min: DevOps lead (Bo, @bo)")
    );
    assert!(finished.body.contains("Downtime"), "{finished:?}");
    assert!(finished.event.closes());
    // The incident record keeps them.
    assert_eq!(report.notices.len(), 2);
    assert!(report.notices.iter().all(|n| n.error.is_none()));
    assert!(
        !report.post_rollback_actions.is_empty() && report.post_rollback_actions.iter().all(|a| !a.checked)
    );
}

#[tokio::test]
async fn a_halted_rollback_is_announced_loudly_with_what_is_live() {
    let rig = Rig::new();
    let notifier = RecordingNotifier::new();
    let o = rig
        .orchestrator()
        .notifier(notifier.clone())
        .settings(Rig::settings().failure_policy(FailurePolicy::Halt))
        .build()
        .unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    rig.world
        .inject(Method::CodeActivate, When::Always, Fault::Fail(ErrorKind::Failed));
    let err = o
        .rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap_err();
    assert!(
        matches!(err.report().map(|r| &r.outcome), Some(Outcome::Halted { .. })),
        "{err}"
    );
    let last = notifier.notices().pop().unwrap();
    assert_eq!(last.event, NoticeEvent::RollbackHalted);
    assert_eq!(last.severity, Severity::Critical);
    assert!(
        last.subject.contains("HALTED") && last.body.contains("WHAT IS LIVE NOW"),
        "{last:?}"
    );
}

/// A notifier that fails, or never answers.
struct Broken(bool);

#[async_trait]
impl Notifier for Broken {
    async fn notify(&self, _: &Notice) -> Result<(), AdapterError> {
        if self.0 {
            std::future::pending::<()>().await;
        }
        Err(AdapterError::new(ErrorKind::Unavailable, "the chat is down"))
    }
}

#[tokio::test]
async fn notifiers_that_fail_or_hang_are_recorded_and_never_hold_the_rollback() {
    let rig = Rig::new();
    let o = rig
        .orchestrator()
        .notifier(Broken(false))
        .notifier(Broken(true))
        .notice_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::CODE);
    let report = o
        .rollback(RollbackTarget::LastGood, "v2", Scope::CODE)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(report.notices.len(), 2);
    for n in &report.notices {
        let e = n.error.as_deref().unwrap_or_default();
        assert!(
            e.contains("the chat is down") && e.contains("did not answer"),
            "{e}"
        );
    }
}

/// What a hook saw: its name, where it ran, whether the app was online, whether it ran on
/// the pre-rollback release, the outcome it was told.
type Seen = Arc<Mutex<Vec<(String, HookPoint, bool, bool, Option<Outcome>)>>>;

/// A hook that records what it saw and may fail.
#[derive(Clone)]
struct Probe {
    name: &'static str,
    rig_app_online: Arc<dyn Fn() -> bool + Send + Sync>,
    seen: Seen,
    fail: bool,
}

#[async_trait]
impl Hook for Probe {
    fn name(&self) -> String {
        self.name.into()
    }

    async fn run(&self, ctx: &HookContext) -> Result<(), AdapterError> {
        self.seen.lock().unwrap().push((
            self.name.into(),
            ctx.point,
            (self.rig_app_online)(),
            ctx.pre_rollback_release,
            ctx.outcome.clone(),
        ));
        if self.fail {
            return Err(AdapterError::new(
                ErrorKind::Failed,
                format!("{} failed", self.name),
            ));
        }
        Ok(())
    }
}

fn hooks(rig: &Rig) -> (impl Fn(&'static str, bool) -> Probe, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let world = rig.world.clone();
    let online: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(move || {
        world
            .end_state()
            .apps
            .iter()
            .any(|(a, s)| a.as_str() == APP && *s == ProcessState::Online)
    });
    let s = seen.clone();
    let make = move |name, fail| Probe {
        name,
        rig_app_online: online.clone(),
        seen: s.clone(),
        fail,
    };
    (make, seen)
}

#[tokio::test]
async fn hooks_run_around_the_stop_and_after_the_report() {
    let rig = Rig::new();
    let (hook, seen) = hooks(&rig);
    let o = rig
        .orchestrator()
        .hook(HookPoint::BeforeStop, hook("maintenance page up", false))
        .required_hook(HookPoint::AfterStart, hook("smoke test", false))
        .hook(HookPoint::AfterStart, hook("maintenance page down", false))
        .hook(HookPoint::AfterReport, hook("publish the report", false))
        .build()
        .unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    let report = o
        .rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "maintenance page up",
            "smoke test",
            "maintenance page down",
            "publish the report"
        ]
    );
    assert!(seen[0].2, "before the stop the app still runs");
    assert!(seen[1].2 && seen[2].2, "after the start it runs again");
    assert!(!seen[1].3, "on the rolled-back release");
    assert_eq!(
        seen[3].4,
        Some(Outcome::Succeeded),
        "the report hook sees the outcome"
    );
    let prepare = report.steps.iter().find(|s| s.step == Step::Prepare).unwrap();
    assert!(prepare
        .checklist
        .iter()
        .any(|i| i.text.contains("maintenance page up") && i.checked));
}

#[tokio::test]
async fn a_failing_before_stop_hook_aborts_with_nothing_changed_and_the_after_start_hooks_undo_it() {
    let rig = Rig::new();
    let (hook, seen) = hooks(&rig);
    let o = rig
        .orchestrator()
        .hook(HookPoint::BeforeStop, hook("maintenance page up", false))
        .hook(HookPoint::BeforeStop, hook("drain the queue", true))
        .hook(HookPoint::BeforeStop, hook("never reached", false))
        .hook(HookPoint::AfterStart, hook("maintenance page down", false))
        .build()
        .unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    let before = rig.world.end_state();
    let err = o
        .rollback(RollbackTarget::LastGood, "v2", Scope::ALL)
        .await
        .unwrap_err();
    let RollbackError::StepFailed { step, error, report } = &err else {
        panic!("{err}")
    };
    assert_eq!(*step, Step::Prepare);
    assert!(error.to_string().contains("drain the queue"), "{error}");
    assert!(matches!(report.outcome, Outcome::Aborted { .. }));
    assert_eq!(rig.world.count(Method::ProcessStop), 0, "never stopped");
    assert_eq!(rig.world.end_state(), before, "nothing changed");
    let names: Vec<String> = seen.lock().unwrap().iter().map(|s| s.0.clone()).collect();
    assert_eq!(
        names,
        ["maintenance page up", "drain the queue", "maintenance page down"]
    );
    assert!(
        seen.lock().unwrap()[2].3,
        "told it runs on the pre-rollback release"
    );
}

#[tokio::test]
async fn a_required_after_start_hook_that_fails_puts_the_pre_rollback_state_back() {
    let rig = Rig::new();
    let (hook, seen) = hooks(&rig);
    let o = rig
        .orchestrator()
        .hook(HookPoint::BeforeStop, hook("maintenance page up", false))
        .required_hook(HookPoint::AfterStart, hook("smoke test", true))
        .hook(HookPoint::AfterStart, hook("maintenance page down", false))
        .build()
        .unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::CODE);
    let err = o
        .rollback(RollbackTarget::LastGood, "v2", Scope::CODE)
        .await
        .unwrap_err();
    let report = err.report().unwrap();
    assert!(
        matches!(
            report.outcome,
            Outcome::RestoredPreRollbackState {
                step: Step::PostVerify,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        rig.world.end_state().code_tree.as_deref(),
        Some("tree-v2"),
        "v2 is back"
    );
    let seen = seen.lock().unwrap().clone();
    let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    // After the rolled-back start: the smoke test fails, the page comes down; after the
    // recovery's start both run again on the old release (the smoke test's failure there
    // is recorded, never decisive).
    assert_eq!(
        names,
        [
            "maintenance page up",
            "smoke test",
            "maintenance page down",
            "smoke test",
            "maintenance page down"
        ]
    );
    assert!(
        seen[3].3 && seen[4].3,
        "the second round knows it runs on the pre-rollback release"
    );
    assert!(
        report.notes.iter().any(|n| n.contains("smoke test")),
        "{:?}",
        report.notes
    );
}

/// An after-start hook that never returns (the process dies while it runs).
struct Hangs;

#[async_trait]
impl Hook for Hangs {
    fn name(&self) -> String {
        "hangs".into()
    }

    async fn run(&self, _: &HookContext) -> Result<(), AdapterError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn an_abort_is_journaled_before_its_hooks_so_a_crash_there_is_not_continued_by_resume() {
    let rig = Rig::new();
    let (hook, _) = hooks(&rig);
    let o = rig
        .orchestrator()
        .hook(HookPoint::BeforeStop, hook("drain the queue", true))
        .hook(HookPoint::AfterStart, Hangs)
        .build()
        .unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    // The before-stop hook fails: the rollback aborts, and the process dies in the
    // after-start hook that runs after that.
    let died = tokio::time::timeout(
        Duration::from_millis(300),
        o.rollback(RollbackTarget::LastGood, "v2", Scope::ALL),
    )
    .await;
    assert!(died.is_err(), "the process died in the hook");
    let journal = o.unfinished().await.unwrap().expect("an unfinished journal");
    assert!(
        matches!(
            journal.status,
            rollback_core::JournalStatus::Finishing(Outcome::Aborted { .. })
        ),
        "the abort was journaled before the hooks: {:?}",
        journal.status
    );
    o.clear_stale_lock(true).await.unwrap();
    let err = o.resume().await.unwrap_err();
    assert!(
        matches!(err.report().map(|r| &r.outcome), Some(Outcome::Aborted { .. })),
        "{err}"
    );
    assert_eq!(
        rig.world.count(Method::ProcessStop),
        0,
        "resume did not go on to stop the app"
    );
}
