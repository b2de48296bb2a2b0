//! What a caller asks for and how the orchestrator runs: the request types and the settings.

use crate::domain::{CodeStrategy, IntegrityChecks, Scenario, Scope};
use crate::ids::CheckpointId;
use crate::plan::Step;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Which checkpoint to go back to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RollbackTarget {
    /// The newest checkpoint marked good (never blindly "the previous one").
    #[default]
    LastGood,
    /// This checkpoint, good or not.
    Checkpoint(CheckpointId),
    /// The good checkpoint `n` back from the newest good one: `GoodBack(0)` is
    /// [`LastGood`](Self::LastGood), `GoodBack(1)` the good one before it (for when the last
    /// good checkpoint turns out bad too), like git's `HEAD~n`.
    GoodBack(usize),
}

impl std::fmt::Display for RollbackTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollbackTarget::LastGood => f.write_str("the last good checkpoint"),
            RollbackTarget::Checkpoint(id) => write!(f, "checkpoint {id}"),
            RollbackTarget::GoodBack(0) => f.write_str("the last good checkpoint"),
            RollbackTarget::GoodBack(n) => write!(f, "the good checkpoint {n} before the last good one"),
        }
    }
}

/// What to do when a step after the emergency backup fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Put the emergency backup back and start the app again (the default): the app is
    /// never left stopped without a decision.
    #[default]
    RestorePreRollbackState,
    /// Leave everything as it is for a human; the report states exactly what state it is in.
    Halt,
}

/// A rollback request. The journal keeps it as it was asked (the target as named, e.g.
/// [`RollbackTarget::LastGood`]; the checkpoint it resolved to is journaled beside it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RollbackRequest {
    /// Where to go back to.
    #[serde(default)]
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
    /// Roll the database back even when the live one already is the checkpoint's copy,
    /// switched in by an earlier rollback: every write made into it since is set aside
    /// (kept, not deleted). Off by default: such a run is refused in pre-flight.
    #[serde(default)]
    pub force: bool,
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
            force: false,
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

    /// Rolls the database back even when the live one already is the checkpoint's copy
    /// (see [`force`](Self::force)).
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
}

/// Per-step time limits. A step that runs past its limit fails with a timeout error and
/// the failure policy applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepTimeouts(BTreeMap<Step, Duration>);

impl Default for StepTimeouts {
    fn default() -> Self {
        Self(
            crate::plan::STEPS
                .iter()
                .map(|r| (r.step, Duration::from_secs(r.default_limit_secs)))
                .collect(),
        )
    }
}

/// A step's limit as serde writes it: milliseconds, read also as `"30s"`.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct Limit(#[serde(with = "crate::duration_ms")] Duration);

/// A map from step (`prepare`, `emergency_backup`, ...) to its limit; steps left out keep
/// their default.
impl Serialize for StepTimeouts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(step, d)| (step, Limit(*d))))
    }
}

impl<'de> Deserialize<'de> for StepTimeouts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let given = BTreeMap::<Step, Limit>::deserialize(d)?;
        let mut timeouts = StepTimeouts::default();
        for (step, limit) in given {
            timeouts.set(step, limit.0);
        }
        Ok(timeouts)
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

/// How the orchestrator runs. Deserializes from a partial description (every field has a
/// default; unknown fields are refused), durations as milliseconds or `"30s"`:
///
/// ```
/// let settings: rollback_core::Settings = serde_json::from_str(
///     r#"{"failure_policy": "halt", "health_timeout": "90s", "timeouts": {"prepare": "30m"}}"#,
/// ).unwrap();
/// assert_eq!(settings.health_timeout, std::time::Duration::from_secs(90));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// Per-step time limits.
    pub timeouts: StepTimeouts,
    /// What to do when a step after the emergency backup fails.
    pub failure_policy: FailurePolicy,
    /// How long post-verify waits for the health probes to pass.
    #[serde(with = "crate::duration_ms")]
    pub health_timeout: Duration,
    /// How often post-verify probes.
    #[serde(with = "crate::duration_ms")]
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
    #[serde(with = "crate::duration_ms")]
    pub observe_after_healthy: Duration,
    /// Post-verify's "no critical errors in logs": the app's log since the start
    /// ([`ProcessManager::logs_since`](crate::ProcessManager::logs_since)) scanned for patterns.
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
#[non_exhaustive]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
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
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PerformanceCheck {
    /// The highest error rate (0.0..=1.0) that is normal; default 5 %.
    pub max_error_rate: Option<f64>,
    /// The highest p95 latency that is normal; default none (it depends on the app).
    #[serde(with = "crate::duration_ms::option")]
    pub max_latency_p95: Option<Duration>,
    /// How far above the baseline's error rate is still normal, in absolute terms
    /// (0.02 = two percentage points); default 0.02.
    pub baseline_error_rate_margin: f64,
    /// How many times the baseline's p95 latency is still normal; default 1.5.
    pub baseline_latency_factor: f64,
    /// Whether a breach fails post-verify (default: report only).
    pub on_breach: SignalPolicy,
    /// How long one sample may take (at checkpoint time and in post-verify); default 30 s.
    #[serde(with = "crate::duration_ms")]
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

impl Settings {
    /// The defaults: the runbook's time limits, put the pre-rollback state back on failure,
    /// a 120 s health gate probed every 500 ms, graceful reloads where possible, the default
    /// log scan and performance thresholds, both reported only.
    ///
    /// ```
    /// use rollback_core::{FailurePolicy, Settings, Step};
    /// use std::time::Duration;
    /// let settings = Settings::new()
    ///     .failure_policy(FailurePolicy::Halt)
    ///     .health_timeout(Duration::from_secs(30))
    ///     .step_timeout(Step::Prepare, Duration::from_secs(600));
    /// assert_eq!(settings.timeouts.get(Step::Prepare), Duration::from_secs(600));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets every step's time limit.
    pub fn timeouts(mut self, timeouts: StepTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets one step's time limit.
    pub fn step_timeout(mut self, step: Step, limit: Duration) -> Self {
        self.timeouts.set(step, limit);
        self
    }

    /// Sets what to do when a step after the emergency backup fails.
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// Sets how long post-verify waits for the health probes to pass.
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self
    }

    /// Sets how often post-verify probes (at most; probes come faster right after a start).
    pub fn health_interval(mut self, interval: Duration) -> Self {
        self.health_interval = interval;
        self
    }

    /// Sets the integrity checks.
    pub fn integrity(mut self, integrity: IntegrityChecks) -> Self {
        self.integrity = integrity;
        self
    }

    /// Sets whether a rollback that leaves the database alone reloads gracefully.
    pub fn graceful_reload(mut self, graceful: bool) -> Self {
        self.graceful_reload = graceful;
        self
    }

    /// Sets how long post-verify watches a healthy app before reading its log and metrics.
    pub fn observe_after_healthy(mut self, watch: Duration) -> Self {
        self.observe_after_healthy = watch;
        self
    }

    /// Sets the log scan.
    pub fn log_scan(mut self, scan: LogScan) -> Self {
        self.log_scan = scan;
        self
    }

    /// Sets the performance check.
    pub fn performance(mut self, check: PerformanceCheck) -> Self {
        self.performance = check;
        self
    }

    /// The first setting that cannot work, as the error `build()` returns.
    pub(crate) fn validate(&self) -> Result<(), crate::error::RollbackError> {
        let invalid = |setting: &str, why: &str| {
            Err(crate::error::RollbackError::InvalidSettings {
                setting: setting.to_owned(),
                why: why.to_owned(),
            })
        };
        if self.health_interval.is_zero() {
            return invalid("health_interval", "is zero: probes would spin; use e.g. 500 ms");
        }
        if let Some(step) = Step::ALL.into_iter().find(|s| self.timeouts.get(*s).is_zero()) {
            return invalid(
                &format!("timeouts[{step}]"),
                "is zero: the step could never finish; give it a limit above its slowest run",
            );
        }
        Ok(())
    }
}

/// Calls a rollback off while that still changes nothing the app uses: during pre-flight
/// and prepare (the app still serves; what prepare staged is left for the next one to reuse
/// or replace). Once the stop has begun, a rollback goes on to a consistent end whatever
/// this says: an operator's Ctrl-C must never leave the app stopped half way.
///
/// ```
/// let cancel = rollback_core::Cancel::new();
/// let for_the_signal_handler = cancel.clone();
/// for_the_signal_handler.cancel();
/// assert!(cancel.is_cancelled());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Cancel(std::sync::Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    cancelled: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Cancel {
    /// Not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls the rollback off (idempotent).
    pub fn cancel(&self) {
        self.0.cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves once cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}
