//! The watchdog and the communication plan under paused tokio time, over the fakes.

use rollback_core::{
    AppName, CommunicationPlan, Condition, Decision, Incident, Orchestrator, Outcome, ProcessState, Rule,
    Scope, Severity, Signal, Watchdog, WatchdogEvent,
};
use rollback_testkit::{Fault, Method, RecordingNotifier, Rig, When, APP};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const MIN: u64 = 60;

struct Running {
    events: mpsc::UnboundedReceiver<WatchdogEvent>,
    seen: Vec<WatchdogEvent>,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<rollback_core::automation::WatchdogRun>,
}

impl Running {
    /// Drains the events seen so far.
    fn drain(&mut self) -> &[WatchdogEvent] {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        &self.seen
    }

    fn count(&mut self, pred: impl Fn(&WatchdogEvent) -> bool) -> usize {
        self.drain().iter().filter(|e| pred(e)).count()
    }

    /// Waits (in virtual time) until an event matches.
    async fn until(&mut self, pred: impl Fn(&WatchdogEvent) -> bool) {
        for _ in 0..100_000 {
            if self.drain().iter().any(&pred) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("the awaited event never came: {:#?}", self.seen);
    }

    async fn stop(self) -> rollback_core::automation::WatchdogRun {
        let _ = self.stop.send(());
        self.handle.await.unwrap()
    }
}

fn started(e: &WatchdogEvent) -> bool {
    matches!(e, WatchdogEvent::RollbackStarted { .. })
}

fn skipped(e: &WatchdogEvent) -> bool {
    matches!(e, WatchdogEvent::RollbackSkipped { .. })
}

fn finished(e: &WatchdogEvent) -> bool {
    matches!(e, WatchdogEvent::RollbackFinished { .. })
}

async fn rig_with_good_checkpoint() -> (Rig, Arc<Orchestrator>) {
    let rig = Rig::new();
    let o = Arc::new(rig.orchestrator().build().unwrap());
    let cp = o.checkpoint("v1").await.unwrap();
    assert!(cp.good, "a checkpoint of a healthy app is marked good");
    (rig, o)
}

fn start(
    rig: &Rig,
    o: &Arc<Orchestrator>,
    notifier: &RecordingNotifier,
    rules: Vec<Rule>,
    cooldown: Duration,
) -> Running {
    let (tx, events) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let watchdog = Watchdog::builder(Arc::clone(o))
        .health_probe(Arc::new(rig.probe.clone()))
        .metrics(Arc::new(rig.metrics.clone()))
        .rules(rules)
        .notifier(Arc::new(notifier.clone()))
        .interval(Duration::from_secs(1))
        .auto_rollback(true)
        .cooldown(cooldown)
        .events(tx)
        .build()
        .unwrap();
    let handle = tokio::spawn(watchdog.run(async move {
        let _ = stopped.await;
    }));
    Running {
        events,
        seen: Vec::new(),
        stop,
        handle,
    }
}

#[tokio::test(start_paused = true)]
async fn health_failing_for_4m59s_does_nothing_and_5m_rolls_back_once() {
    let (rig, o) = rig_with_good_checkpoint().await;
    rig.deploy_bad_release(Scope::CODE);
    let notifier = RecordingNotifier::new();
    let mut w = start(
        &rig,
        &o,
        &notifier,
        Rule::runbook(),
        Duration::from_secs(30 * MIN),
    );

    tokio::time::sleep(Duration::from_millis(299_500)).await;
    assert_eq!(
        w.count(started),
        0,
        "4m59s of failing health does not roll back: {:#?}",
        w.seen
    );
    assert_eq!(rig.world.count(Method::ProcessStop), 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        w.count(started),
        1,
        "5m of failing health rolls back: {:#?}",
        w.seen
    );

    w.until(|e| matches!(e, WatchdogEvent::IncidentResolved { .. }))
        .await;
    let run = w.stop().await;
    assert_eq!(run.reports.len(), 1);
    assert_eq!(run.reports[0].outcome, Outcome::Succeeded);
    assert_eq!(
        run.events.iter().filter(|e| started(e)).count(),
        1,
        "exactly one rollback"
    );
    assert_eq!(
        rig.world.end_state().code_tree.as_deref(),
        Some("tree-v1"),
        "v1 is live again"
    );
    let fired = run
        .events
        .iter()
        .find_map(|e| match e {
            WatchdogEvent::Fired { firing, decision } => Some((firing.clone(), decision.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (fired.0.rule.as_str(), fired.0.signal),
        ("health", Signal::CompleteFailure)
    );
    assert_eq!(fired.1.decision, Decision::RollbackNow);
    let audiences: Vec<String> = notifier.notices().into_iter().map(|n| n.audience).collect();
    assert_eq!(
        audiences.first().map(String::as_str),
        Some("devops"),
        "{audiences:?}"
    );
    assert_eq!(
        audiences.last().map(String::as_str),
        Some("post-incident"),
        "{audiences:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_fire_during_a_rollback_starts_none() {
    let (rig, o) = rig_with_good_checkpoint().await;
    rig.deploy_bad_release(Scope::CODE);
    rig.world.lock().metrics.error_rate = Some(0.5);
    // The rollback's slow online phase takes 10 minutes.
    rig.world.inject(
        Method::CodePrepare,
        When::Nth(1),
        Fault::Delay(Duration::from_secs(10 * MIN)),
    );
    let rules = vec![
        Rule::new(
            "health",
            Condition::HealthFailing,
            Duration::from_secs(5 * MIN),
            Signal::CompleteFailure,
        ),
        Rule::new(
            "errors",
            Condition::ErrorRateAbove(0.10),
            Duration::from_secs(6 * MIN),
            Signal::CompleteFailure,
        ),
    ];
    let notifier = RecordingNotifier::new();
    let mut w = start(&rig, &o, &notifier, rules, Duration::from_secs(30 * MIN));
    w.until(skipped).await;
    assert_eq!(w.count(started), 1);
    let reason = w
        .seen
        .iter()
        .find_map(|e| match e {
            WatchdogEvent::RollbackSkipped { rule, reason } => Some(format!("{rule}: {reason}")),
            _ => None,
        })
        .unwrap();
    assert_eq!(reason, "errors: a rollback is already running");
    w.until(finished).await;
    let run = w.stop().await;
    assert_eq!(run.events.iter().filter(|e| started(e)).count(), 1);
    assert_eq!(
        rig.world.count(Method::ProcessStop),
        1,
        "one rollback stopped the app once"
    );
    assert_eq!(run.reports[0].outcome, Outcome::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn never_rolls_back_to_the_revision_already_live() {
    let (rig, o) = rig_with_good_checkpoint().await;
    rig.deploy_bad_release(Scope::CODE);
    let notifier = RecordingNotifier::new();
    let mut w = start(&rig, &o, &notifier, Rule::runbook(), Duration::ZERO);
    w.until(|e| matches!(e, WatchdogEvent::IncidentResolved { .. }))
        .await;
    // v1 is live again; now the app goes down for a reason a rollback cannot fix.
    if let Some(app) = rig.world.lock().apps.get_mut(&AppName::new(APP)) {
        app.state = ProcessState::Errored;
    }
    w.until(skipped).await;
    let run = w.stop().await;
    assert_eq!(
        run.events.iter().filter(|e| started(e)).count(),
        1,
        "{:#?}",
        run.events
    );
    let reason = run
        .events
        .iter()
        .find_map(|e| match e {
            WatchdogEvent::RollbackSkipped { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(reason.contains("already live"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn cpu_high_for_15_minutes_is_investigated_not_rolled_back() {
    let (rig, o) = rig_with_good_checkpoint().await;
    rig.world.lock().metrics.cpu_percent = Some(97.0);
    let notifier = RecordingNotifier::new();
    let mut w = start(&rig, &o, &notifier, Rule::runbook(), Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(899_500)).await;
    assert!(
        w.drain().is_empty(),
        "14m59s of high CPU fires nothing: {:#?}",
        w.seen
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fired: Vec<Decision> = w
        .drain()
        .iter()
        .filter_map(|e| match e {
            WatchdogEvent::Fired { decision, .. } => Some(decision.decision),
            _ => None,
        })
        .collect();
    assert_eq!(fired, [Decision::InvestigateFirst]);
    rig.world.lock().metrics.cpu_percent = Some(20.0);
    w.until(|e| matches!(e, WatchdogEvent::IncidentResolved { .. }))
        .await;
    let run = w.stop().await;
    assert!(
        run.reports.is_empty() && rig.world.count(Method::ProcessStop) == 0,
        "no rollback"
    );
    assert!(
        notifier.notices().iter().any(|n| n.audience == "devops"),
        "the DevOps channel was told"
    );
}

#[tokio::test(start_paused = true)]
async fn notices_go_out_at_their_offsets_in_order_and_stop_at_resolution() {
    let plan = CommunicationPlan::runbook();
    let notifier = RecordingNotifier::new();
    let incident = Incident::new(
        "inc-test",
        "web: health check failing for 300s",
        Severity::Critical,
        true,
        Some(Signal::CompleteFailure),
    );
    let resolved = async {
        tokio::time::sleep(Duration::from_secs(125 * MIN)).await;
        "rolled back to v1".to_string()
    };
    let sent = plan.run(&incident, &notifier, resolved).await;
    let got: Vec<(u64, String)> = sent
        .iter()
        .map(|s| (s.at.as_secs() / MIN, s.notice.audience.clone()))
        .collect();
    let want: Vec<(u64, String)> = [
        (0, "devops"),
        (0, "status-page"),
        (0, "users"),
        (0, "escalation:on-call engineer"),
        (15, "development"),
        (30, "stakeholders"),
        (30, "escalation:DevOps lead"),
        (60, "status-update"),
        (60, "escalation:engineering manager"),
        (60, "escalation:CTO"),
        (120, "status-update"),
        (125, "post-incident"),
    ]
    .into_iter()
    .map(|(m, a)| (m, a.to_string()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        notifier.notices().len(),
        want.len(),
        "nothing after the post-incident report"
    );
    assert!(sent.last().unwrap().notice.body.contains("rolled back to v1"));

    let minor = Incident::new(
        "inc-minor",
        incident.title.clone(),
        Severity::Medium,
        false,
        incident.signal,
    );
    let quiet = RecordingNotifier::new();
    let resolved = async {
        tokio::time::sleep(Duration::from_secs(61 * MIN)).await;
        "recovered".to_string()
    };
    let audiences: Vec<String> = plan
        .run(&minor, &quiet, resolved)
        .await
        .into_iter()
        .map(|s| s.notice.audience)
        .collect();
    for absent in ["status-page", "users", "escalation:CTO"] {
        assert!(
            !audiences.iter().any(|a| a == absent),
            "{absent} is not told of a minor incident"
        );
    }
    assert!(audiences.iter().any(|a| a == "escalation:engineering manager"));
}

#[tokio::test(start_paused = true)]
async fn a_worse_signal_during_an_open_incident_escalates_it() {
    let (rig, o) = rig_with_good_checkpoint().await;
    rig.world.lock().metrics.cpu_percent = Some(99.0);
    let rules = vec![
        Rule::new(
            "cpu",
            Condition::CpuAbove(95.0),
            Duration::from_secs(60),
            Signal::PerformanceDegradation,
        ),
        Rule::new(
            "health",
            Condition::HealthFailing,
            Duration::from_secs(5 * MIN),
            Signal::CompleteFailure,
        ),
    ];
    let notifier = RecordingNotifier::new();
    let mut w = start(&rig, &o, &notifier, rules, Duration::from_secs(30 * MIN));
    w.until(|e| matches!(e, WatchdogEvent::IncidentOpened { .. }))
        .await;
    rig.deploy_bad_release(Scope::CODE);
    w.until(finished).await;
    let run = w.stop().await;
    let opened = run
        .events
        .iter()
        .filter(|e| matches!(e, WatchdogEvent::IncidentOpened { .. }))
        .count();
    assert_eq!(
        opened, 2,
        "the critical signal opened a critical incident: {:#?}",
        run.events
    );
    let escalated = run.events.iter().any(|e| {
        matches!(e, WatchdogEvent::IncidentResolved { summary } if summary.starts_with("escalated to Critical"))
    });
    assert!(escalated, "{:#?}", run.events);
    let users: Vec<Severity> = notifier
        .notices()
        .into_iter()
        .filter(|n| n.audience == "users")
        .map(|n| n.severity)
        .collect();
    assert_eq!(
        users,
        [Severity::Critical],
        "users are told once the incident is critical"
    );
    assert_eq!(run.events.iter().filter(|e| started(e)).count(), 1);
}

/// A probe that never answers (a broken probe implementation).
struct HangingProbe;

#[async_trait::async_trait]
impl rollback_core::HealthProbe for HangingProbe {
    fn name(&self) -> String {
        "hangs".into()
    }
    async fn probe(&self) -> rollback_core::ProbeResult {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_probe_counts_as_unhealthy_and_never_blocks_shutdown() {
    let (_rig, o) = rig_with_good_checkpoint().await;
    let rules = vec![Rule::new(
        "health",
        Condition::HealthFailing,
        Duration::from_secs(60),
        Signal::MinorUi,
    )];
    let (tx, mut events) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let watchdog = Watchdog::builder(Arc::clone(&o))
        .health_probe(Arc::new(HangingProbe))
        .rules(rules)
        .interval(Duration::from_secs(1))
        .events(tx)
        .build()
        .unwrap();
    let handle = tokio::spawn(watchdog.run(async move {
        let _ = stopped.await;
    }));
    let mut fired = false;
    for _ in 0..2_000 {
        if let Ok(WatchdogEvent::Fired { firing, .. }) = events.try_recv() {
            assert_eq!(firing.rule, "health");
            fired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(fired, "a probe that never returns is unhealthy after its cap");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(1), handle)
        .await
        .expect("shutdown does not wait for a hanging probe")
        .unwrap();
}
