//! The watchdog: polls probes and metrics, runs the rules, asks the decision matrix, and
//! either starts one rollback to the last checkpoint marked good or notifies and records.

use super::comms::{CommunicationPlan, Incident, SentNotice};
use super::matrix::{DecisionMatrix, MatrixEntry};
use super::rules::{Firing, Observation, Rule, RuleTracker};
use crate::domain::{ProbeResult, Scope, Severity};
use crate::error::RollbackError;
use crate::ids::AppName;
use crate::orchestrator::{Orchestrator, RollbackRequest, RollbackTarget};
use crate::plan::Decision;
use crate::report::{Outcome, RollbackReport};
use crate::traits::{HealthProbe, MetricsSource, Notifier};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the watchdog did, in order.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WatchdogEvent {
    /// A rule fired and the matrix decided.
    Fired {
        /// The firing.
        firing: Firing,
        /// The matrix's decision and reason.
        decision: MatrixEntry,
    },
    /// A rollback to the last checkpoint marked good started.
    RollbackStarted {
        /// The rule that started it.
        rule: String,
    },
    /// That rollback ended.
    RollbackFinished {
        /// Its outcome, or the error that stopped it.
        outcome: Result<Outcome, String>,
    },
    /// A firing that would have rolled back did not, and why.
    RollbackSkipped {
        /// The rule.
        rule: String,
        /// Why (running already, cooldown, auto-rollback off).
        reason: String,
    },
    /// An incident opened (the communication plan started).
    IncidentOpened {
        /// Its title.
        title: String,
    },
    /// The incident ended: no rule breached and no rollback running.
    IncidentResolved {
        /// The resolution summary sent in the post-incident report.
        summary: String,
    },
}

/// Builds a [`Watchdog`].
pub struct WatchdogBuilder {
    w: Watchdog,
}

/// Polls probes and metrics at an interval until cancelled, runs the rules, asks the
/// decision matrix, and starts at most one rollback at a time. See [`Watchdog::builder`].
pub struct Watchdog {
    orchestrator: Arc<Orchestrator>,
    probes: Vec<Arc<dyn HealthProbe>>,
    database_probe: Option<Arc<dyn HealthProbe>>,
    metrics: Option<Arc<dyn MetricsSource>>,
    rules: Vec<Rule>,
    matrix: DecisionMatrix,
    notifier: Option<Arc<dyn Notifier>>,
    plan: CommunicationPlan,
    interval: Duration,
    auto_rollback: bool,
    cooldown: Duration,
    scope: Scope,
    events: Option<mpsc::UnboundedSender<WatchdogEvent>>,
}

impl WatchdogBuilder {
    /// Health probes (the HTTP health endpoint); the `HealthFailing` rule watches them.
    pub fn health_probe(mut self, probe: impl HealthProbe + 'static) -> Self {
        let probe: Arc<dyn HealthProbe> = Arc::new(probe);
        self.w.probes.push(probe);
        self
    }
    /// The SQL probe; the `DatabaseUnreachable` rule watches it.
    pub fn database_probe(mut self, probe: impl HealthProbe + 'static) -> Self {
        let probe: Arc<dyn HealthProbe> = Arc::new(probe);
        self.w.database_probe = Some(probe);
        self
    }
    /// Where error rate, memory and CPU come from.
    pub fn metrics(mut self, metrics: impl MetricsSource + 'static) -> Self {
        let metrics: Arc<dyn MetricsSource> = Arc::new(metrics);
        self.w.metrics = Some(metrics);
        self
    }
    /// Replaces the rules (default: [`Rule::runbook`]).
    pub fn rules(mut self, rules: Vec<Rule>) -> Self {
        self.w.rules = rules;
        self
    }
    /// Replaces the decision matrix (default: [`DecisionMatrix::runbook`]).
    pub fn matrix(mut self, matrix: DecisionMatrix) -> Self {
        self.w.matrix = matrix;
        self
    }
    /// Where the communication plan's notices go.
    pub fn notifier(mut self, notifier: impl Notifier + 'static) -> Self {
        let notifier: Arc<dyn Notifier> = Arc::new(notifier);
        self.w.notifier = Some(notifier);
        self
    }
    /// Replaces the communication plan (default: [`CommunicationPlan::runbook`]).
    pub fn plan(mut self, plan: CommunicationPlan) -> Self {
        self.w.plan = plan;
        self
    }
    /// How often to poll (default 10 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.w.interval = interval;
        self
    }
    /// Whether a `RollbackNow` decision starts a rollback (default false: notify only).
    pub fn auto_rollback(mut self, enabled: bool) -> Self {
        self.w.auto_rollback = enabled;
        self
    }
    /// No second automatic rollback within this long after one ended (default 30 min).
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.w.cooldown = cooldown;
        self
    }
    /// What an automatic rollback restores (default: all of the checkpoint).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.w.scope = scope;
        self
    }
    /// Sends each event here as it happens (for a live display).
    pub fn events(mut self, tx: mpsc::UnboundedSender<WatchdogEvent>) -> Self {
        self.w.events = Some(tx);
        self
    }
    /// The watchdog; fails naming a zero polling interval.
    pub fn build(self) -> Result<Watchdog, crate::error::RollbackError> {
        if self.w.interval.is_zero() {
            return Err(crate::error::RollbackError::InvalidSettings {
                setting: "watchdog interval".into(),
                why: "is zero: the watchdog would spin; poll every few seconds".into(),
            });
        }
        Ok(self.w)
    }
}

struct OpenIncident {
    severity: Severity,
    resolve: oneshot::Sender<String>,
    comms: JoinHandle<Vec<SentNotice>>,
    rolled_back: Option<String>,
}

/// What a watchdog run did.
#[derive(Debug, Default)]
pub struct WatchdogRun {
    /// Its events, in order.
    pub events: Vec<WatchdogEvent>,
    /// The notices the communication plan sent.
    pub notices: Vec<SentNotice>,
    /// The reports of the rollbacks it started.
    pub reports: Vec<RollbackReport>,
}

impl Watchdog {
    /// A watchdog that rolls back with `orchestrator`, with the runbook's rules, matrix and
    /// plan, polling every 10 s, auto-rollback off.
    ///
    /// ```no_run
    /// # async fn demo(orchestrator: std::sync::Arc<rollback_core::Orchestrator>,
    /// #               probe: impl rollback_core::HealthProbe + 'static) {
    /// use rollback_core::Watchdog;
    /// let watchdog = Watchdog::builder(orchestrator)
    ///     .health_probe(probe)
    ///     .auto_rollback(true)
    ///     .build()
    ///     .expect("a valid interval");
    /// // Watch for an hour (a service would pass its shutdown signal instead).
    /// let run = watchdog.run(tokio::time::sleep(std::time::Duration::from_secs(3600))).await;
    /// println!("{} events, {} rollbacks", run.events.len(), run.reports.len());
    /// # }
    /// ```
    pub fn builder(orchestrator: Arc<Orchestrator>) -> WatchdogBuilder {
        WatchdogBuilder {
            w: Watchdog {
                orchestrator,
                probes: Vec::new(),
                database_probe: None,
                metrics: None,
                rules: Rule::runbook(),
                matrix: DecisionMatrix::runbook(),
                notifier: None,
                plan: CommunicationPlan::runbook(),
                interval: Duration::from_secs(10),
                auto_rollback: false,
                cooldown: Duration::from_secs(30 * 60),
                scope: Scope::ALL,
                events: None,
            },
        }
    }

    /// A probe's result within a cap: a probe must time out by itself, but one that hangs
    /// must not stall the watchdog; it counts as unhealthy.
    async fn probe_capped(&self, probe: &dyn HealthProbe) -> ProbeResult {
        let cap = self.interval.max(Duration::from_secs(10));
        match tokio::time::timeout(cap, probe.probe()).await {
            Ok(result) => result,
            Err(_) => ProbeResult {
                probe: probe.name(),
                healthy: false,
                latency: cap,
                detail: format!("the probe did not return within {} s", cap.as_secs()),
            },
        }
    }

    async fn observe(&self, app: &AppName) -> Observation {
        let health =
            futures::future::join_all(self.probes.iter().map(|p| self.probe_capped(p.as_ref()))).await;
        let database = match &self.database_probe {
            Some(p) => Some(self.probe_capped(p.as_ref()).await),
            None => None,
        };
        let metrics = match &self.metrics {
            Some(m) => {
                match tokio::time::timeout(self.interval.max(Duration::from_secs(1)), m.sample(app)).await {
                    Ok(Ok(sample)) => Some(sample),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "metrics unavailable this poll");
                        None
                    }
                    Err(_) => None,
                }
            }
            None => None,
        };
        Observation {
            health,
            database,
            metrics,
        }
    }

    fn emit(&self, run: &mut WatchdogRun, event: WatchdogEvent) {
        tracing::info!(?event, "watchdog");
        if let Some(tx) = &self.events {
            let _ = tx.send(event.clone());
        }
        run.events.push(event);
    }

    /// Polls until `shutdown` completes, then returns what it did. A rollback running at
    /// shutdown is awaited (never abandoned half way); an open incident's plan ends with
    /// a post-incident report saying the watchdog stopped.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> WatchdogRun {
        let app = self.orchestrator.app().clone();
        let mut run = WatchdogRun::default();
        let mut trackers: Vec<RuleTracker> = self.rules.iter().cloned().map(RuleTracker::new).collect();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rollback: Option<(String, JoinHandle<Result<RollbackReport, RollbackError>>)> = None;
        let mut cooldown_until: Option<Instant> = None;
        let mut incident: Option<OpenIncident> = None;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = ticker.tick() => {}
            }
            if rollback.as_ref().is_some_and(|(_, h)| h.is_finished()) {
                if let Some((rule, handle)) = rollback.take() {
                    let summary = self.finish_rollback(&mut run, &rule, handle.await);
                    cooldown_until = Some(Instant::now() + self.cooldown);
                    if let Some(open) = incident.as_mut() {
                        open.rolled_back = Some(summary);
                    }
                }
            }
            let obs = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                obs = self.observe(&app) => obs,
            };
            let now = Instant::now();
            let firings: Vec<Firing> = trackers.iter_mut().filter_map(|t| t.observe(now, &obs)).collect();
            for firing in firings {
                let decision = self.matrix.decide(firing.signal);
                self.emit(
                    &mut run,
                    WatchdogEvent::Fired {
                        firing: firing.clone(),
                        decision: decision.clone(),
                    },
                );
                let severity = severity_of(decision.decision);
                if incident.as_ref().is_some_and(|open| open.severity < severity) {
                    // A worse signal during an open incident: close it as escalated and open
                    // one at the new severity, so its notices and escalation apply.
                    if let Some(open) = incident.take() {
                        let summary = format!("escalated to {severity:?}: {}", firing.summary);
                        self.close_incident(&mut run, open, summary).await;
                    }
                }
                if incident.is_none() {
                    incident = Some(self.open_incident(&mut run, &firing, decision.decision));
                }
                if decision.decision != Decision::RollbackNow {
                    continue;
                }
                let skip = if !self.auto_rollback {
                    Some("auto-rollback is off: a human decides".to_string())
                } else if rollback.is_some() {
                    Some("a rollback is already running".to_string())
                } else {
                    cooldown_until.filter(|u| *u > now).map(|until| {
                        format!(
                            "cooling down after the last rollback for {} s more",
                            until.duration_since(now).as_secs()
                        )
                    })
                };
                if let Some(reason) = skip {
                    self.emit(
                        &mut run,
                        WatchdogEvent::RollbackSkipped {
                            rule: firing.rule.clone(),
                            reason,
                        },
                    );
                    continue;
                }
                match self
                    .orchestrator
                    .target_revision_if_live(&RollbackTarget::LastGood)
                    .await
                {
                    Ok(Some(revision)) => {
                        let reason =
                            format!("the last good checkpoint's revision {revision} is already live");
                        self.emit(
                            &mut run,
                            WatchdogEvent::RollbackSkipped {
                                rule: firing.rule.clone(),
                                reason,
                            },
                        );
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let reason = format!("cannot tell what to roll back to: {e}");
                        self.emit(
                            &mut run,
                            WatchdogEvent::RollbackSkipped {
                                rule: firing.rule.clone(),
                                reason,
                            },
                        );
                        continue;
                    }
                }
                let request = RollbackRequest::new(
                    RollbackTarget::LastGood,
                    format!("watchdog: {} ({})", firing.summary, firing.signal),
                    self.scope,
                )
                .with_trigger(format!("watchdog rule `{}`", firing.rule));
                let orchestrator = Arc::clone(&self.orchestrator);
                let handle = tokio::spawn(async move { orchestrator.rollback_with(request).await });
                self.emit(
                    &mut run,
                    WatchdogEvent::RollbackStarted {
                        rule: firing.rule.clone(),
                    },
                );
                rollback = Some((firing.rule.clone(), handle));
            }
            let calm = rollback.is_none() && trackers.iter().all(|t| !t.breached());
            if calm {
                if let Some(open) = incident.take() {
                    let summary = open
                        .rolled_back
                        .clone()
                        .unwrap_or_else(|| "the signal recovered without a rollback".to_string());
                    self.close_incident(&mut run, open, summary).await;
                }
            }
        }
        if let Some((rule, handle)) = rollback.take() {
            tracing::info!("watchdog stopping: waiting for the running rollback to finish");
            let summary = self.finish_rollback(&mut run, &rule, handle.await);
            if let Some(open) = incident.as_mut() {
                open.rolled_back = Some(summary);
            }
        }
        if let Some(open) = incident.take() {
            let summary = match &open.rolled_back {
                Some(s) => format!("{s}; the watchdog stopped before the signals cleared"),
                None => "the watchdog stopped while the incident was open".to_string(),
            };
            self.close_incident(&mut run, open, summary).await;
        }
        run
    }

    fn open_incident(&self, run: &mut WatchdogRun, firing: &Firing, decision: Decision) -> OpenIncident {
        let severity = severity_of(decision);
        let incident = Incident {
            id: format!(
                "inc-{}-{}",
                self.orchestrator.app(),
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
            ),
            title: format!("{}: {}", self.orchestrator.app(), firing.summary),
            severity,
            user_facing: decision != Decision::NoRollback,
            signal: Some(firing.signal),
        };
        self.emit(
            run,
            WatchdogEvent::IncidentOpened {
                title: incident.title.clone(),
            },
        );
        let (resolve, resolved) = oneshot::channel::<String>();
        let plan = self.plan.clone();
        let notifier = self.notifier.clone();
        let comms = tokio::spawn(async move {
            let resolved = async move { resolved.await.unwrap_or_else(|_| "the watchdog went away".into()) };
            match notifier {
                Some(n) => plan.run(&incident, n.as_ref(), resolved).await,
                None => {
                    plan.run(&incident, &super::notifiers::TracingNotifier, resolved)
                        .await
                }
            }
        });
        OpenIncident {
            severity,
            resolve,
            comms,
            rolled_back: None,
        }
    }

    async fn close_incident(&self, run: &mut WatchdogRun, open: OpenIncident, summary: String) {
        let _ = open.resolve.send(summary.clone());
        match open.comms.await {
            Ok(sent) => run.notices.extend(sent),
            Err(e) => tracing::warn!(error = %e, "the communication plan task failed"),
        }
        self.emit(run, WatchdogEvent::IncidentResolved { summary });
    }

    fn finish_rollback(
        &self,
        run: &mut WatchdogRun,
        rule: &str,
        joined: Result<Result<RollbackReport, RollbackError>, tokio::task::JoinError>,
    ) -> String {
        let (outcome, summary) = match joined {
            Ok(Ok(report)) => {
                let s = format!("rolled back automatically (rule `{rule}`): {:?}", report.outcome);
                let o = Ok(report.outcome.clone());
                run.reports.push(report);
                (o, s)
            }
            Ok(Err(e)) => {
                if let Some(report) = e.report() {
                    run.reports.push(report.clone());
                }
                (
                    Err(e.to_string()),
                    format!("automatic rollback (rule `{rule}`) did not complete: {e}"),
                )
            }
            Err(e) => (
                Err(format!("the rollback task failed: {e}")),
                "the rollback task failed".to_string(),
            ),
        };
        self.emit(run, WatchdogEvent::RollbackFinished { outcome });
        summary
    }
}

/// How serious an incident is, from the matrix's decision.
fn severity_of(decision: Decision) -> Severity {
    match decision {
        Decision::RollbackNow => Severity::Critical,
        Decision::InvestigateFirst => Severity::Medium,
        Decision::NoRollback => Severity::Low,
    }
}

impl std::fmt::Debug for WatchdogBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchdogBuilder")
            .field("watchdog", &self.w)
            .finish()
    }
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("app", self.orchestrator.app())
            .field("health_probes", &self.probes.len())
            .field("database_probe", &self.database_probe.is_some())
            .field("metrics", &self.metrics.is_some())
            .field("rules", &self.rules.len())
            .field("notifier", &self.notifier.is_some())
            .field("interval", &self.interval)
            .field("auto_rollback", &self.auto_rollback)
            .field("cooldown", &self.cooldown)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}
