//! The orchestrator: checkpoints before a deploy, and the twelve-step rollback.

mod investigate;
mod lock;
mod run;
mod signals;

use crate::domain::{Checkpoint, CodeStrategy, IntegrityChecks, Scenario, Scope};
use crate::error::{AdapterError, RollbackError};
use crate::ids::{AppName, CheckpointId, RevisionId, RollbackId};
use crate::journal::Journal;
use crate::plan::{PlannedStep, RollbackPlan, Step};
use crate::progress::ProgressSink;
use crate::report::RollbackReport;
use crate::state::{LockHolder, StateStore};
use crate::traits::{CodeVersion, ConfigStore, DatabaseSnapshot, HealthProbe, MetricsSource, ProcessManager};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Which checkpoint to go back to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RollbackTarget {
    /// The newest checkpoint marked good (never blindly "the previous one").
    LastGood,
    /// This checkpoint, good or not.
    Checkpoint(CheckpointId),
}

/// What to do when a step after the emergency backup fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Put the emergency backup back and start the app again (the default): the app is
    /// never left stopped without a decision.
    #[default]
    RestorePreRollbackState,
    /// Leave everything as it is for a human; the report states exactly what state it is in.
    Halt,
}

/// A rollback request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackRequest {
    /// Where to go back to.
    pub target: RollbackTarget,
    /// Why (goes into the journal and the report).
    pub reason: String,
    /// What goes back.
    pub scope: Scope,
    /// The runbook scenario, if one applies.
    pub scenario: Option<Scenario>,
    /// How code goes back.
    pub code_strategy: CodeStrategy,
    /// What triggered it (an operator's name, a watchdog rule).
    pub trigger: Option<String>,
}

impl RollbackRequest {
    /// A request with the default code strategy and no scenario.
    pub fn new(target: RollbackTarget, reason: impl Into<String>, scope: Scope) -> Self {
        Self {
            target,
            reason: reason.into(),
            scope,
            scenario: None,
            code_strategy: CodeStrategy::Checkout,
            trigger: None,
        }
    }

    /// A request for a runbook scenario, with the scenario's scope.
    /// [`Scenario::PerformanceDegradation`] has no scope: it is investigated, not rolled back.
    pub fn for_scenario(scenario: Scenario, target: RollbackTarget, reason: impl Into<String>) -> Self {
        let scope = scenario.scope().unwrap_or(Scope {
            database: false,
            code: false,
            config: false,
        });
        Self {
            scenario: Some(scenario),
            ..Self::new(target, reason, scope)
        }
    }

    /// Sets what triggered it.
    pub fn with_trigger(mut self, trigger: impl Into<String>) -> Self {
        self.trigger = Some(trigger.into());
        self
    }

    /// Sets the code strategy.
    pub fn with_code_strategy(mut self, strategy: CodeStrategy) -> Self {
        self.code_strategy = strategy;
        self
    }
}

/// What [`Orchestrator::wait_for_healthy`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthGate {
    /// True when every probe passed before the timeout.
    pub healthy: bool,
    /// When the passing round answered.
    pub healthy_at: Option<chrono::DateTime<Utc>>,
    /// The last results, one per probe.
    pub results: Vec<crate::domain::ProbeResult>,
}

/// Per-step time limits. A step that runs past its limit fails with a timeout error and
/// the failure policy applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepTimeouts(BTreeMap<Step, Duration>);

impl Default for StepTimeouts {
    fn default() -> Self {
        let secs = Duration::from_secs;
        Self(BTreeMap::from([
            (Step::Lock, secs(30)),
            (Step::Journal, secs(30)),
            (Step::Preflight, secs(120)),
            (Step::Prepare, secs(60 * 60)),
            (Step::Stop, secs(120)),
            (Step::EmergencyBackup, secs(30 * 60)),
            (Step::RestoreDatabase, secs(60 * 60)),
            (Step::ActivateCode, secs(120)),
            (Step::RestoreConfig, secs(60)),
            (Step::Start, secs(180)),
            (Step::PostVerify, secs(10 * 60)),
            (Step::Report, secs(60)),
        ]))
    }
}

impl StepTimeouts {
    /// The limit of a step.
    pub fn get(&self, step: Step) -> Duration {
        self.0.get(&step).copied().unwrap_or(Duration::from_secs(600))
    }

    /// Sets the limit of a step.
    pub fn set(&mut self, step: Step, limit: Duration) -> &mut Self {
        self.0.insert(step, limit);
        self
    }
}

/// How the orchestrator runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Per-step time limits.
    pub timeouts: StepTimeouts,
    /// What to do when a step after the emergency backup fails.
    pub failure_policy: FailurePolicy,
    /// How long post-verify waits for the health probes to pass.
    pub health_timeout: Duration,
    /// How often post-verify probes.
    pub health_interval: Duration,
    /// Integrity checks run after the restore and in post-verify.
    pub integrity: IntegrityChecks,
    /// Use the process manager's graceful reload when the scope leaves the database alone
    /// and the app runs in a mode that supports it (zero downtime); `false` always stops
    /// and starts.
    pub graceful_reload: bool,
    /// How long post-verify watches the app once it is healthy before it reads the app's
    /// log and samples its metrics (default: not at all, they are read at once). Errors
    /// that come a few seconds after the start, and metrics over a window (a Prometheus
    /// `rate(..[1m])`), need this: set it to at least the metrics source's window, or the
    /// sample still describes the release before the rollback. Not downtime: the app is
    /// already healthy.
    pub observe_after_healthy: Duration,
    /// Post-verify's "no critical errors in logs": the app's log since the start
    /// ([`ProcessManager::logs_since`]) scanned for patterns.
    pub log_scan: LogScan,
    /// Post-verify's "performance metrics normal": error rate and latency after the start
    /// against thresholds and the checkpoint's [`MetricsBaseline`](crate::MetricsBaseline).
    pub performance: PerformanceCheck,
}

/// What post-verify does when one of its checks beyond health and integrity (the log scan,
/// the performance check) finds something. Failing post-verify applies the failure policy,
/// which by default puts the pre-rollback release back: choose `Fail` only where a match
/// really means the rollback made things worse. A check that could not run (logs the
/// manager cannot read, a metrics source that does not answer) is reported and never fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalPolicy {
    /// Show it in the report's verification; the rollback still succeeds (the default).
    #[default]
    Report,
    /// Fail post-verify.
    Fail,
}

/// The patterns [`LogScan::default`] looks for: uncaught exceptions and fatal errors of
/// Node (`^Node.js v` is the last line Node prints when an uncaught exception kills it),
/// Rust, Python, the JVM, PostgreSQL clients and native crashes, and a process manager's
/// note of a crash (pm2 catches a Node app's uncaught exception itself, logs only its
/// stack, and notes `App [web:0] exited with code [1]`; the pm2 adapter returns only such
/// notes with a code other than 0).
pub const DEFAULT_LOG_PATTERNS: &[&str] = &[
    "Uncaught",
    "UnhandledPromiseRejection",
    "^Node.js v",
    "exited with code [",
    "FATAL",
    "panicked at",
    "Segmentation fault",
    "Traceback (most recent call last)",
    "OutOfMemoryError",
    "heap out of memory",
];

/// "No critical errors in logs" after a rollback: which lines of the app's log since the
/// start count as critical, and whether one fails post-verify.
///
/// A pattern matches a line that contains it (case-sensitive); a pattern starting with `^`
/// matches a line that starts with the rest. Matched lines are shown in the report with
/// what looks like a secret redacted ([`redact_text`](crate::secret::redact_text)), on top
/// of the adapter's own redaction of the app's environment values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogScan {
    /// The patterns; empty turns the scan off (the log is not read).
    pub patterns: Vec<String>,
    /// Whether a match fails post-verify (default: report only).
    pub on_match: SignalPolicy,
    /// How many matched lines the report shows (the count is always complete).
    pub max_shown: usize,
}

impl Default for LogScan {
    fn default() -> Self {
        Self {
            patterns: DEFAULT_LOG_PATTERNS.iter().map(|p| (*p).to_owned()).collect(),
            on_match: SignalPolicy::Report,
            max_shown: 20,
        }
    }
}

impl LogScan {
    /// The first pattern `line` matches, if any.
    pub fn matches<'a>(&'a self, line: &str) -> Option<&'a str> {
        self.patterns
            .iter()
            .find(|p| match p.strip_prefix('^') {
                Some(start) => line.starts_with(start),
                None => !p.is_empty() && line.contains(p.as_str()),
            })
            .map(String::as_str)
    }
}

/// "Performance metrics normal" after a rollback: one sample from the metrics source after
/// the start, compared with fixed thresholds and, when the checkpoint recorded one, with its
/// [`MetricsBaseline`](crate::MetricsBaseline). Values the source does not measure are
/// reported as not checked.
///
/// Equality compares the floats bit for bit (so that [`Settings`] stays `Eq`).
#[derive(Clone, Debug)]
pub struct PerformanceCheck {
    /// The highest error rate (0.0..=1.0) that is normal; default 5 %.
    pub max_error_rate: Option<f64>,
    /// The highest p95 latency that is normal; default none (it depends on the app).
    pub max_latency_p95: Option<Duration>,
    /// How far above the baseline's error rate is still normal, in absolute terms
    /// (0.02 = two percentage points); default 0.02.
    pub baseline_error_rate_margin: f64,
    /// How many times the baseline's p95 latency is still normal; default 1.5.
    pub baseline_latency_factor: f64,
    /// Whether a breach fails post-verify (default: report only).
    pub on_breach: SignalPolicy,
    /// How long one sample may take (at checkpoint time and in post-verify); default 30 s.
    pub sample_timeout: Duration,
}

impl Default for PerformanceCheck {
    fn default() -> Self {
        Self {
            max_error_rate: Some(0.05),
            max_latency_p95: None,
            baseline_error_rate_margin: 0.02,
            baseline_latency_factor: 1.5,
            on_breach: SignalPolicy::Report,
            sample_timeout: Duration::from_secs(30),
        }
    }
}

impl PartialEq for PerformanceCheck {
    fn eq(&self, other: &Self) -> bool {
        self.max_error_rate.map(f64::to_bits) == other.max_error_rate.map(f64::to_bits)
            && self.max_latency_p95 == other.max_latency_p95
            && self.baseline_error_rate_margin.to_bits() == other.baseline_error_rate_margin.to_bits()
            && self.baseline_latency_factor.to_bits() == other.baseline_latency_factor.to_bits()
            && self.on_breach == other.on_breach
            && self.sample_timeout == other.sample_timeout
    }
}

impl Eq for PerformanceCheck {}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeouts: StepTimeouts::default(),
            failure_policy: FailurePolicy::default(),
            health_timeout: Duration::from_secs(120),
            health_interval: Duration::from_millis(500),
            integrity: IntegrityChecks::default(),
            graceful_reload: true,
            observe_after_healthy: Duration::ZERO,
            log_scan: LogScan::default(),
            performance: PerformanceCheck::default(),
        }
    }
}

/// Builds an [`Orchestrator`]. A process manager and a state store are required; the
/// database, code and config adapters are needed only by rollbacks whose scope uses them.
pub struct OrchestratorBuilder {
    app: AppName,
    database: Option<Arc<dyn DatabaseSnapshot>>,
    code: Option<Arc<dyn CodeVersion>>,
    config: Option<Arc<dyn ConfigStore>>,
    process: Option<Arc<dyn ProcessManager>>,
    probes: Vec<Arc<dyn HealthProbe>>,
    metrics: Option<Arc<dyn MetricsSource>>,
    state: Option<Arc<dyn StateStore>>,
    settings: Settings,
    progress: Option<ProgressSink>,
}

impl OrchestratorBuilder {
    /// The database adapter.
    pub fn database(mut self, db: Arc<dyn DatabaseSnapshot>) -> Self {
        self.database = Some(db);
        self
    }

    /// The code adapter.
    pub fn code(mut self, code: Arc<dyn CodeVersion>) -> Self {
        self.code = Some(code);
        self
    }

    /// The config adapter.
    pub fn config(mut self, config: Arc<dyn ConfigStore>) -> Self {
        self.config = Some(config);
        self
    }

    /// The process manager (required).
    pub fn process(mut self, process: Arc<dyn ProcessManager>) -> Self {
        self.process = Some(process);
        self
    }

    /// Adds a health probe; post-verify waits until every probe passes.
    pub fn health_probe(mut self, probe: Arc<dyn HealthProbe>) -> Self {
        self.probes.push(probe);
        self
    }

    /// A metrics source: sampled with each checkpoint (its baseline), after a rollback's
    /// start (post-verify's performance check) and when investigating.
    pub fn metrics(mut self, metrics: Arc<dyn MetricsSource>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The state store (required), e.g. a [`DirStateStore`](crate::DirStateStore).
    pub fn state(mut self, state: Arc<dyn StateStore>) -> Self {
        self.state = Some(state);
        self
    }

    /// Settings (timeouts, failure policy, health gate, integrity checks).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Sends progress events to this channel.
    pub fn progress(mut self, sink: ProgressSink) -> Self {
        self.progress = Some(sink);
        self
    }

    /// Builds the orchestrator.
    pub fn build(self) -> Result<Orchestrator, RollbackError> {
        let missing = |component, setter| RollbackError::MissingComponent {
            scope: "any rollback".into(),
            component,
            setter,
        };
        Ok(Orchestrator {
            process: self.process.ok_or_else(|| missing("ProcessManager", "process"))?,
            state: self.state.ok_or_else(|| missing("StateStore", "state"))?,
            app: self.app,
            database: self.database,
            code: self.code,
            config: self.config,
            probes: self.probes,
            metrics: self.metrics,
            settings: self.settings,
            progress: self.progress,
        })
    }
}

/// Runs checkpoints and rollbacks for one app.
///
/// ```no_run
/// # async fn demo(db: std::sync::Arc<dyn rollback_core::DatabaseSnapshot>,
/// #   code: std::sync::Arc<dyn rollback_core::CodeVersion>,
/// #   pm: std::sync::Arc<dyn rollback_core::ProcessManager>) -> Result<(), Box<dyn std::error::Error>> {
/// use rollback_core::{DirStateStore, Orchestrator, RollbackTarget, Scope};
/// use std::sync::Arc;
/// let rollback = Orchestrator::builder("web")
///     .database(db)
///     .code(code)
///     .process(pm)
///     .state(Arc::new(DirStateStore::open("/var/lib/web/rollback").await?))
///     .build()?;
/// let checkpoint = rollback.checkpoint("before v2").await?;   // before the deploy
/// // ... the deploy goes bad ...
/// let report = rollback
///     .rollback(RollbackTarget::Checkpoint(checkpoint.id), "health failing", Scope::DATABASE_AND_CODE)
///     .await?;
/// println!("{}", report.to_markdown());
/// # Ok(()) }
/// ```
pub struct Orchestrator {
    app: AppName,
    database: Option<Arc<dyn DatabaseSnapshot>>,
    code: Option<Arc<dyn CodeVersion>>,
    config: Option<Arc<dyn ConfigStore>>,
    process: Arc<dyn ProcessManager>,
    probes: Vec<Arc<dyn HealthProbe>>,
    metrics: Option<Arc<dyn MetricsSource>>,
    state: Arc<dyn StateStore>,
    settings: Settings,
    progress: Option<ProgressSink>,
}

/// How the plan and the report name a [`SignalPolicy`].
fn policy_words(policy: SignalPolicy) -> &'static str {
    match policy {
        SignalPolicy::Report => "reported only",
        SignalPolicy::Fail => "fails post-verify",
    }
}

fn unique_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Orchestrator {
    /// Starts building an orchestrator for `app`.
    pub fn builder(app: impl Into<AppName>) -> OrchestratorBuilder {
        OrchestratorBuilder {
            app: app.into(),
            database: None,
            code: None,
            config: None,
            process: None,
            probes: Vec::new(),
            metrics: None,
            state: None,
            settings: Settings::default(),
            progress: None,
        }
    }

    /// The app this orchestrator rolls back.
    pub fn app(&self) -> &AppName {
        &self.app
    }

    /// Takes a checkpoint of what is live now, before a deploy: a database snapshot, the
    /// live revision and a backup of the live config. It is marked good when every health
    /// probe passes now (and there is at least one probe); otherwise call
    /// [`mark_good`](Self::mark_good) once the release has passed its health gate.
    ///
    /// Finish it before the deploy migrates: a dump holds locks a migration waits for.
    ///
    /// Refused while a rollback is unfinished ([`RollbackError::Unfinished`], or
    /// [`RollbackError::Locked`] while it runs): the app may be stopped and the database
    /// switched half way, which is no state to go back to.
    pub async fn checkpoint(&self, label: &str) -> Result<Checkpoint, RollbackError> {
        self.refuse_if_unfinished().await?;
        let id = CheckpointId::new(unique_id("cp"));
        let span = tracing::info_span!("checkpoint", checkpoint = %id, label);
        let _entered = span.enter();
        let (snapshot, snapshot_taken_at, mut warnings) = match &self.database {
            Some(db) => {
                let info = db
                    .snapshot(label)
                    .await
                    .map_err(|error| RollbackError::Checkpoint {
                        what: "database snapshot",
                        error,
                    })?;
                for w in &info.warnings {
                    tracing::warn!(snapshot = %info.id, warning = %w, "checkpoint: already true when the snapshot was taken");
                }
                (Some(info.id), Some(info.created_at), info.warnings)
            }
            None => (None, None, Vec::new()),
        };
        let revision = match &self.code {
            Some(code) => Some(
                code.current()
                    .await
                    .map_err(|error| RollbackError::Checkpoint {
                        what: "code revision",
                        error,
                    })?
                    .id,
            ),
            None => None,
        };
        let config = match &self.config {
            Some(config) => Some(
                config
                    .backup(label)
                    .await
                    .map_err(|error| RollbackError::Checkpoint {
                        what: "config backup",
                        error,
                    })?
                    .id,
            ),
            None => None,
        };
        let mut good = !self.probes.is_empty();
        for probe in &self.probes {
            let result = probe.probe().await;
            if !result.healthy {
                tracing::warn!(probe = %result.probe, detail = %result.detail, "checkpoint taken while unhealthy: not marked good");
                warnings.push(format!(
                    "taken while unhealthy ({}: {}): not marked good",
                    result.probe, result.detail
                ));
                good = false;
            }
        }
        let metrics_baseline = match &self.metrics {
            Some(metrics) => {
                let limit = self.settings.performance.sample_timeout;
                match tokio::time::timeout(limit, metrics.sample(&self.app)).await {
                    Ok(Ok(sample)) => Some(crate::domain::MetricsBaseline {
                        taken_at: Utc::now(),
                        sample,
                    }),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "checkpoint: no metrics baseline recorded");
                        warnings.push(format!("no metrics baseline recorded: {e}"));
                        None
                    }
                    Err(_) => {
                        tracing::warn!(limit = ?limit, "checkpoint: the metrics source did not answer; no baseline recorded");
                        warnings.push(format!(
                            "no metrics baseline recorded: the metrics source did not answer within {}s",
                            limit.as_secs_f64()
                        ));
                        None
                    }
                }
            }
            None => None,
        };
        let checkpoint = Checkpoint {
            id,
            label: label.to_owned(),
            created_at: Utc::now(),
            snapshot,
            snapshot_taken_at,
            revision,
            config,
            good,
            warnings,
            metrics_baseline,
        };
        self.state
            .save_checkpoint(&checkpoint)
            .await
            .map_err(RollbackError::State)?;
        tracing::info!(good, "checkpoint taken");
        Ok(checkpoint)
    }

    /// The health gate, for a deploy tool's own use (after a deploy, before
    /// [`mark_good`](Self::mark_good)): probes until every configured probe passes or
    /// `timeout` ends, fast at first (from 20 ms up to the settings' `health_interval`).
    /// Returns the last results and whether they all passed. With no probe configured, the
    /// process manager's status stands in for health. Changes nothing.
    pub async fn wait_for_healthy(&self, timeout: Duration) -> Result<HealthGate, RollbackError> {
        let (results, healthy_at) = run::wait_healthy_within(self, timeout)
            .await
            .map_err(RollbackError::HealthGate)?;
        Ok(HealthGate {
            healthy: healthy_at.is_some(),
            healthy_at,
            results,
        })
    }

    /// Pre-stages a checkpoint's database while the app serves: restores its snapshot into a
    /// ready copy and runs the full integrity check on it (as a rollback's prepare step
    /// would), so that a later rollback to this checkpoint finds it staged, verified and
    /// sealed, and its prepare is a check, not a restore. Costs the disk of one copy of the
    /// database; a newer pre-staged checkpoint replaces it (adapters keep one staged copy).
    /// Changes nothing the app uses. Run it in the background after a checkpoint:
    ///
    /// ```no_run
    /// # async fn demo(o: std::sync::Arc<rollback_core::Orchestrator>) -> Result<(), rollback_core::RollbackError> {
    /// let checkpoint = o.checkpoint("before v2.4.0").await?;
    /// let background = std::sync::Arc::clone(&o);
    /// tokio::spawn(async move { background.prestage(&checkpoint.id).await });
    /// # Ok(()) }
    /// ```
    pub async fn prestage(&self, id: &CheckpointId) -> Result<crate::domain::IntegrityReport, RollbackError> {
        let checkpoint = self
            .resolve_target(&RollbackTarget::Checkpoint(id.clone()))
            .await?;
        let (Some(db), Some(snapshot)) = (&self.database, &checkpoint.snapshot) else {
            return Err(RollbackError::MissingComponent {
                scope: "prestage".into(),
                component: "DatabaseSnapshot",
                setter: "database",
            });
        };
        let failed = |error| RollbackError::Checkpoint {
            what: "pre-staging the snapshot",
            error,
        };
        let prepared = self
            .timed(
                Step::Prepare,
                "staging the database snapshot",
                db.prepare_restore(snapshot),
            )
            .await
            .map_err(failed)?;
        let report = self
            .timed(
                Step::Prepare,
                "checking the staged copy's integrity",
                db.check_prepared(&prepared, &self.staged_checks(snapshot)),
            )
            .await
            .map_err(failed)?;
        tracing::info!(checkpoint = %id, passed = report.passed(), "checkpoint pre-staged");
        Ok(report)
    }

    /// The checks of a copy of `snapshot` nothing but the rollback has written to (staged,
    /// or just switched in): the configured ones, exact row counts and the snapshot's own
    /// baseline.
    pub(crate) fn staged_checks(&self, snapshot: &crate::ids::SnapshotId) -> IntegrityChecks {
        let mut checks = self.settings.integrity.clone();
        checks.expect_snapshot = Some(snapshot.clone());
        checks.baseline = Some(snapshot.clone());
        checks
    }

    /// Refuses, changing nothing, while a rollback is unfinished: [`RollbackError::Locked`]
    /// while it still runs (here or elsewhere), else [`RollbackError::Unfinished`] naming
    /// the lock's dead holder, whose lock stays for `resume()`.
    pub(crate) async fn refuse_if_unfinished(&self) -> Result<(), RollbackError> {
        let Some(unfinished) = self.unfinished().await? else {
            return Ok(());
        };
        let holder = self.lock_holder().await?;
        if let Some(holder) = holder.clone().filter(|h| !lock::is_stale(h)) {
            return Err(RollbackError::Locked { holder });
        }
        Err(RollbackError::Unfinished {
            step: unfinished.last_step(),
            id: unfinished.id,
            holder,
        })
    }

    /// Marks a checkpoint good (its release passed the health gate).
    pub async fn mark_good(&self, id: &CheckpointId) -> Result<Checkpoint, RollbackError> {
        let mut checkpoint = self
            .checkpoints()
            .await?
            .into_iter()
            .find(|c| &c.id == id)
            .ok_or_else(|| {
                RollbackError::NoCheckpoint(format!("no checkpoint `{id}`; list them with checkpoints()"))
            })?;
        checkpoint.good = true;
        self.state
            .save_checkpoint(&checkpoint)
            .await
            .map_err(RollbackError::State)?;
        Ok(checkpoint)
    }

    /// All checkpoints, newest first.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, RollbackError> {
        self.state.checkpoints().await.map_err(RollbackError::State)
    }

    /// Rolls `scope` back to `target`. See [`rollback_with`](Self::rollback_with).
    pub async fn rollback(
        &self,
        target: RollbackTarget,
        reason: &str,
        scope: Scope,
    ) -> Result<RollbackReport, RollbackError> {
        self.rollback_with(RollbackRequest::new(target, reason, scope))
            .await
    }

    /// Handles a runbook scenario: rolls back with the scenario's scope, or, for
    /// performance degradation, investigates and reports without changing anything.
    pub async fn handle_scenario(
        &self,
        scenario: Scenario,
        target: RollbackTarget,
        reason: &str,
    ) -> Result<RollbackReport, RollbackError> {
        let request = RollbackRequest::for_scenario(scenario, target, reason);
        if scenario.scope().is_none() {
            return self.investigate(request).await;
        }
        self.rollback_with(request).await
    }

    /// Runs the twelve steps. Pre-flight problems are returned as
    /// [`RollbackError::Preflight`] before anything is stopped or changed; a step failing
    /// after that returns [`RollbackError::StepFailed`] with the report of what was done
    /// about it.
    pub async fn rollback_with(&self, request: RollbackRequest) -> Result<RollbackReport, RollbackError> {
        if request.scenario.is_some_and(|s| s.scope().is_none()) {
            return self.investigate(request).await;
        }
        self.check_components(request.scope)?;
        let checkpoint = self.resolve_target(&request.target).await?;
        let id = RollbackId::new(unique_id("rb"));
        run::Run::start(self, id, checkpoint, request).await
    }

    /// Continues a rollback whose process died, from its journal: finished steps are not
    /// run again, the interrupted step is run again (every adapter step is idempotent).
    pub async fn resume(&self) -> Result<RollbackReport, RollbackError> {
        let journal = self.unfinished().await?.ok_or(RollbackError::NothingToResume)?;
        run::Run::resume(self, journal).await
    }

    /// The journal of an unfinished rollback, if there is one.
    pub async fn unfinished(&self) -> Result<Option<Journal>, RollbackError> {
        Ok(self
            .state
            .journals()
            .await
            .map_err(RollbackError::State)?
            .into_iter()
            .find(Journal::is_unfinished))
    }

    /// Runs pre-flight and returns the plan, changing nothing (no lock, no journal).
    pub async fn dry_run(&self, request: &RollbackRequest) -> Result<RollbackPlan, RollbackError> {
        let investigate = request.scenario.is_some_and(|s| s.scope().is_none());
        if !investigate {
            self.check_components(request.scope)?;
        }
        let checkpoint = self.resolve_target(&request.target).await?;
        let mut graceful = false;
        if !investigate {
            let failures = run::preflight_checks(self, &checkpoint, request, true).await?.1;
            if !failures.is_empty() {
                return Err(RollbackError::Preflight { failures });
            }
            graceful = run::reload_decision(self, request.scope).await.0;
        }
        Ok(self.plan(request, &checkpoint, graceful))
    }

    /// The target checkpoint's revision when it already is the live revision (so rolling
    /// back to it would not change the code), `None` otherwise or without a code adapter.
    /// The watchdog uses it never to roll back to the revision that is live. Changes nothing.
    pub async fn target_revision_if_live(
        &self,
        target: &RollbackTarget,
    ) -> Result<Option<RevisionId>, RollbackError> {
        let checkpoint = self.resolve_target(target).await?;
        let (Some(code), Some(wanted)) = (self.code.as_ref(), checkpoint.revision) else {
            return Ok(None);
        };
        let current = self
            .timed(Step::Preflight, "reading the live revision", code.current())
            .await
            .map_err(|error| RollbackError::Preflight {
                failures: vec![crate::error::PreflightFailure {
                    check: "reading the live revision".into(),
                    error,
                }],
            })?;
        Ok((current.id == wanted).then_some(wanted))
    }

    /// Who holds the rollback lock, if anyone.
    pub async fn lock_holder(&self) -> Result<Option<LockHolder>, RollbackError> {
        self.state.lock_holder().await.map_err(RollbackError::State)
    }

    /// Clears the rollback lock when its holder provably is gone (same host, process
    /// dead), or always when `force` is set (for a holder on another host that you have
    /// checked yourself). Returns the holder that was cleared.
    pub async fn clear_stale_lock(&self, force: bool) -> Result<Option<LockHolder>, RollbackError> {
        match self.lock_holder().await? {
            Some(holder) if force || lock::is_stale(&holder) => {
                self.state
                    .unlock(&holder.token)
                    .await
                    .map_err(RollbackError::State)?;
                tracing::warn!(%holder, force, "rollback lock cleared");
                Ok(Some(holder))
            }
            Some(holder) => Err(RollbackError::Locked { holder }),
            None => Ok(None),
        }
    }

    fn check_components(&self, scope: Scope) -> Result<(), RollbackError> {
        let missing = |component, setter| RollbackError::MissingComponent {
            scope: scope.to_string(),
            component,
            setter,
        };
        if scope.is_empty() {
            return Err(RollbackError::NoCheckpoint(
                "the scope is empty: name at least one of database, code, config".into(),
            ));
        }
        if scope.database && self.database.is_none() {
            return Err(missing("DatabaseSnapshot", "database"));
        }
        if scope.code && self.code.is_none() {
            return Err(missing("CodeVersion", "code"));
        }
        if scope.config && self.config.is_none() {
            return Err(missing("ConfigStore", "config"));
        }
        Ok(())
    }

    async fn resolve_target(&self, target: &RollbackTarget) -> Result<Checkpoint, RollbackError> {
        let checkpoints = self.checkpoints().await?;
        match target {
            RollbackTarget::LastGood => checkpoints.into_iter().find(|c| c.good).ok_or_else(|| {
                RollbackError::NoCheckpoint(
                    "no checkpoint is marked good: take one with checkpoint() while healthy, or mark_good() one".into(),
                )
            }),
            RollbackTarget::Checkpoint(id) => crate::state::find_checkpoint(&checkpoints, id)
                .cloned()
                .ok_or_else(|| RollbackError::NoCheckpoint(format!("no checkpoint `{id}`; list them with checkpoints()"))),
        }
    }

    fn plan(&self, request: &RollbackRequest, checkpoint: &Checkpoint, graceful: bool) -> RollbackPlan {
        let scope = request.scope;
        let investigate = request.scenario.is_some_and(|s| s.scope().is_none());
        let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "?".into());
        let snapshot = opt(&checkpoint.snapshot.as_ref().map(ToString::to_string));
        let revision = opt(&checkpoint.revision.as_ref().map(ToString::to_string));
        let config = opt(&checkpoint.config.as_ref().map(ToString::to_string));
        let steps = Step::ALL
            .iter()
            .map(|&step| {
                let mut actions: Vec<String> = Vec::new();
                if investigate {
                    let skipped = (step != Step::Preflight).then(|| "investigate first: no automatic rollback".to_owned());
                    if skipped.is_none() {
                        actions.push("diagnose: process status, metrics (against the checkpoint's baseline), health, integrity, the database's own statistics, config and code changes since the checkpoint".into());
                    }
                    return PlannedStep { step, actions, skipped };
                }
                match step {
                    Step::Lock => actions.push("take the rollback lock".into()),
                    Step::Journal => actions.push("journal the start".into()),
                    Step::Preflight => {
                        actions.push(format!("check app `{}` is known to the process manager", self.app));
                        if scope.database {
                            actions.push(format!("ping the database, verify snapshot {snapshot}"));
                        }
                        if scope.code {
                            actions.push(format!("resolve revision {revision}"));
                        }
                        if scope.config {
                            actions.push(format!("parse config version {config}"));
                        }
                    }
                    Step::Prepare => {
                        if scope.database {
                            actions.push(format!("stage snapshot {snapshot} while the app serves"));
                        }
                        if scope.code {
                            match &request.code_strategy {
                                CodeStrategy::Checkout => actions.push(format!("check out and build {revision} beside the live release")),
                                CodeStrategy::Revert(commits) => actions.push(format!("revert {} commit(s) and build the result", commits.len())),
                            }
                        }
                    }
                    Step::Stop if graceful => {
                        return PlannedStep {
                            step,
                            actions,
                            skipped: Some("graceful reload: the app keeps serving".into()),
                        }
                    }
                    Step::Stop => actions.push(format!("stop `{}`", self.app)),
                    Step::EmergencyBackup => {
                        if scope.database {
                            actions.push("keep the live database aside".into());
                        }
                        if scope.code {
                            actions.push("keep the live release".into());
                        }
                        if scope.config {
                            actions.push("back up the live config".into());
                        }
                    }
                    Step::RestoreDatabase if scope.database => {
                        actions.push(format!("switch snapshot {snapshot} in, check integrity"))
                    }
                    Step::ActivateCode if scope.code => actions.push("activate the built release".into()),
                    Step::RestoreConfig if scope.config => actions.push(format!("put config {config} in place")),
                    Step::Start if graceful => actions.push(format!(
                        "reload `{}` gracefully: processes replaced one at a time, never stopped",
                        self.app
                    )),
                    Step::Start => actions.push(format!("start `{}`", self.app)),
                    Step::PostVerify => {
                        actions.push(format!(
                            "probe health ({} probe(s)) until healthy or {}s",
                            self.probes.len(),
                            self.settings.health_timeout.as_secs()
                        ));
                        if !self.settings.log_scan.patterns.is_empty() {
                            actions.push(format!(
                                "scan the app's log since the start for {} pattern(s) ({})",
                                self.settings.log_scan.patterns.len(),
                                policy_words(self.settings.log_scan.on_match)
                            ));
                        }
                        if self.metrics.is_some() {
                            actions.push(format!(
                                "compare error rate and latency with the thresholds{} ({})",
                                if checkpoint.metrics_baseline.is_some() {
                                    " and the checkpoint's baseline"
                                } else {
                                    ""
                                },
                                policy_words(self.settings.performance.on_breach)
                            ));
                        }
                    }
                    Step::Report => actions.push("journal the end, write the report".into()),
                    _ => {}
                }
                let skipped = actions.is_empty().then(|| format!("not in scope ({scope})"));
                PlannedStep { step, actions, skipped }
            })
            .collect();
        RollbackPlan {
            scenario: request.scenario,
            scope,
            code_strategy: request.code_strategy.clone(),
            steps,
        }
    }

    async fn timed<T>(
        &self,
        step: Step,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, AdapterError>>,
    ) -> Result<T, AdapterError> {
        let limit = self.settings.timeouts.get(step);
        match tokio::time::timeout(limit, fut).await {
            Ok(result) => result,
            Err(_) => Err(AdapterError::timeout(format!(
                "{what} did not finish within {}s (the `{step}` step's limit; raise it with Settings::timeouts)",
                limit.as_secs_f64()
            ))),
        }
    }
}
