//! Domain types shared by the traits, the orchestrator and the report.

use crate::ids::{AppName, CheckpointId, ConfigVersionId, RevisionId, RollbackId, SnapshotId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The state of the world before a deploy: what a rollback goes back to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Unique id, chosen by the orchestrator.
    pub id: CheckpointId,
    /// Free text from the deploy tool, e.g. `"before v2.4.0"`.
    pub label: String,
    /// When it was finished (after the snapshot, the revision and the config backup).
    pub created_at: DateTime<Utc>,
    /// The database snapshot, when the orchestrator has a database.
    pub snapshot: Option<SnapshotId>,
    /// The snapshot's consistency point ([`SnapshotInfo::created_at`]): writes after this
    /// moment are not in the snapshot. Earlier than `created_at` by the length of the dump.
    #[serde(default)]
    pub snapshot_taken_at: Option<DateTime<Utc>>,
    /// The code revision that was live.
    pub revision: Option<RevisionId>,
    /// The config version that was live.
    pub config: Option<ConfigVersionId>,
    /// True once the release passed its health gate. Rollback goes to the newest good one,
    /// never blindly to "the previous".
    pub good: bool,
    /// What was already wrong when it was taken (orphan rows under a `NOT VALID` foreign
    /// key, say): recorded, not refused. A rollback to it is measured against this baseline.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// One metrics sample taken with the checkpoint (when a metrics source is configured):
    /// what "normal" looked like, for post-verify's comparison after a rollback to it.
    #[serde(default)]
    pub metrics_baseline: Option<MetricsBaseline>,
}

/// A metrics sample recorded at checkpoint time: the error rate and latency a rollback to
/// that checkpoint is compared with ([`Settings::performance`](crate::Settings::performance)).
///
/// Two baselines are equal when they were taken at the same moment with bit-for-bit the
/// same values (so that [`Checkpoint`] stays `Eq`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricsBaseline {
    /// When the sample was taken.
    pub taken_at: DateTime<Utc>,
    /// The sample.
    pub sample: MetricsSample,
}

impl PartialEq for MetricsBaseline {
    fn eq(&self, other: &Self) -> bool {
        let bits = |v: Option<f64>| v.map(f64::to_bits);
        let (a, b) = (&self.sample, &other.sample);
        self.taken_at == other.taken_at
            && bits(a.error_rate) == bits(b.error_rate)
            && bits(a.memory_percent) == bits(b.memory_percent)
            && bits(a.cpu_percent) == bits(b.cpu_percent)
            && a.memory_bytes == b.memory_bytes
            && a.latency_p95 == b.latency_p95
    }
}

impl Eq for MetricsBaseline {}

/// Which parts of the world a rollback touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Restore the database snapshot.
    pub database: bool,
    /// Switch the code back.
    pub code: bool,
    /// Restore the config version.
    pub config: bool,
}

impl Scope {
    /// Database, code and config.
    pub const ALL: Scope = Scope {
        database: true,
        code: true,
        config: true,
    };
    /// Code only (e.g. after an irreversible migration, or for a critical bug).
    pub const CODE: Scope = Scope {
        database: false,
        code: true,
        config: false,
    };
    /// Config only.
    pub const CONFIG: Scope = Scope {
        database: false,
        code: false,
        config: true,
    };
    /// Database only (a data fix gone wrong, with code that reads both shapes).
    pub const DATABASE: Scope = Scope {
        database: true,
        code: false,
        config: false,
    };
    /// Database and code (a failed migration).
    pub const DATABASE_AND_CODE: Scope = Scope {
        database: true,
        code: true,
        config: false,
    };

    /// True when nothing is selected.
    pub fn is_empty(&self) -> bool {
        !(self.database || self.code || self.config)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = [
            (self.database, "database"),
            (self.code, "code"),
            (self.config, "config"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        if parts.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&parts.join(" + "))
        }
    }
}

/// The runbook's four scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Scenario {
    /// A migration broke the schema or data: database and code go back together.
    DatabaseMigrationFailure,
    /// A bug in the code: code only (check out the previous release, or revert commits).
    CriticalBug,
    /// A bad config value: config only.
    ConfigurationError,
    /// Slow, not broken: investigate first, diagnose and report, no automatic rollback.
    PerformanceDegradation,
}

impl Scenario {
    /// The scope the runbook rolls back in this scenario; `None` means investigate first.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Scenario::DatabaseMigrationFailure => Some(Scope::DATABASE_AND_CODE),
            Scenario::CriticalBug => Some(Scope::CODE),
            Scenario::ConfigurationError => Some(Scope::CONFIG),
            Scenario::PerformanceDegradation => None,
        }
    }

    /// All four, in the runbook's order.
    pub const ALL: [Scenario; 4] = [
        Scenario::DatabaseMigrationFailure,
        Scenario::CriticalBug,
        Scenario::ConfigurationError,
        Scenario::PerformanceDegradation,
    ];
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scenario::DatabaseMigrationFailure => "database migration failure",
            Scenario::CriticalBug => "critical bug",
            Scenario::ConfigurationError => "configuration error",
            Scenario::PerformanceDegradation => "performance degradation",
        })
    }
}

/// How code goes back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CodeStrategy {
    /// Prepare the checkpoint's revision and activate it (the default).
    #[default]
    Checkout,
    /// Make revert commits for these revisions (newest first) on the current branch,
    /// prepare the resulting revision and activate it. History is never rewritten.
    Revert(Vec<RevisionId>),
}

/// A snapshot as listed by its adapter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its id.
    pub id: SnapshotId,
    /// The label it was taken with.
    pub label: String,
    /// Its consistency point: the moment of the data it holds (for `pg_dump`, the start of
    /// the dump's transaction, not its end).
    pub created_at: DateTime<Utc>,
    /// Size on disk in bytes, when known.
    pub size_bytes: Option<u64>,
    /// Where it lives (a directory, a bucket key), for humans.
    pub location: String,
    /// What was already wrong in the data when it was taken (orphan rows under a foreign
    /// key, a sequence behind its column): its integrity baseline, for humans. Never a
    /// secret or row data.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A snapshot made ready to be switched in (e.g. restored into a staging database).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedRestore {
    /// The snapshot it holds.
    pub snapshot: SnapshotId,
    /// Where it was staged, or `None` when the adapter could not stage and will restore in
    /// place during the switch (slower; the report says so).
    pub staged_at: Option<String>,
    /// Adapter notes for the report (e.g. "no CREATEDB privilege: restoring in place").
    pub notes: Vec<String>,
}

/// The emergency backup of the live database, taken before anything is replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreservedDatabase {
    /// The label it was taken with.
    pub label: String,
    /// Where it lives (a renamed database, a dump directory), for humans and for `reinstate`.
    pub location: String,
    /// How it was kept, e.g. `"renamed database"` or `"pg_dump archive"`.
    pub method: String,
    /// Adapter notes for the report (e.g. which sessions were disconnected).
    pub notes: Vec<String>,
}

/// Something a switch or an undo put aside instead of deleting (a renamed database, an
/// archive), named so that the report can say where it is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutAside {
    /// Where it is now (a database name, a directory), for humans.
    pub location: String,
    /// What it holds and why it is kept, e.g. "the restored snapshot with the writes other
    /// clients made into it after the switch; set aside because the rollback was undone".
    pub holds: String,
}

impl std::fmt::Display for PutAside {
    /// How reports, checklists and statements name it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "set aside, not deleted: {} ({})", self.location, self.holds)
    }
}

/// What a database integrity check should look at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct IntegrityChecks {
    /// SQL assertions: each query must return one row whose first column is true or a
    /// number greater than zero (the runbook's `SELECT COUNT(*) FROM users`).
    pub assertions: Vec<SqlAssertion>,
    /// Compare exact row counts with this snapshot's (only sound while nothing else writes:
    /// on a staged copy, or a switched-in database no client can reach yet).
    pub expect_snapshot: Option<SnapshotId>,
    /// Measure foreign keys and sequences against this snapshot's own integrity baseline:
    /// what was already broken when it was taken (orphan rows under a `NOT VALID` key) is
    /// reported but passes; only what is worse fails. `None` means every orphan row and
    /// every sequence behind its column fails.
    #[serde(default)]
    pub baseline: Option<SnapshotId>,
}

impl IntegrityChecks {
    /// No assertions, no row-count comparison, no baseline.
    ///
    /// ```
    /// use rollback_core::{IntegrityChecks, SnapshotId};
    /// let s1 = SnapshotId::new("s1");
    /// let checks = IntegrityChecks::new()
    ///     .assertion("users exist", "SELECT COUNT(*) FROM users")
    ///     .baseline(Some(s1.clone()));
    /// assert_eq!(checks.assertions.len(), 1);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a SQL assertion.
    pub fn assertion(mut self, name: impl Into<String>, sql: impl Into<String>) -> Self {
        self.assertions.push(SqlAssertion {
            name: name.into(),
            sql: sql.into(),
        });
        self
    }

    /// Sets the assertions.
    pub fn assertions(mut self, assertions: Vec<SqlAssertion>) -> Self {
        self.assertions = assertions;
        self
    }

    /// Sets the snapshot whose exact row counts must match.
    pub fn expect_snapshot(mut self, snapshot: Option<SnapshotId>) -> Self {
        self.expect_snapshot = snapshot;
        self
    }

    /// Sets the snapshot whose integrity baseline foreign keys and sequences are measured
    /// against.
    pub fn baseline(mut self, snapshot: Option<SnapshotId>) -> Self {
        self.baseline = snapshot;
        self
    }
}

/// A named SQL assertion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlAssertion {
    /// A short name shown in the report.
    pub name: String,
    /// The query.
    pub sql: String,
}

/// The outcome of one integrity check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// What was checked, e.g. `"foreign keys"`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was seen (no secrets, no row data).
    pub detail: String,
}

/// The outcome of [`DatabaseSnapshot::check_integrity`](crate::DatabaseSnapshot::check_integrity).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityReport {
    /// Every check run, passed or not.
    pub checks: Vec<CheckResult>,
}

impl IntegrityReport {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The names of the checks that failed.
    pub fn failures(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// A code revision with what `git log --oneline` would show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// Full id.
    pub id: RevisionId,
    /// Short form for humans.
    pub short: String,
    /// First line of the message.
    pub subject: String,
    /// Author name.
    pub author: String,
    /// Commit time.
    pub time: DateTime<Utc>,
}

/// A revision checked out and built where it will run, ready to be activated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedRevision {
    /// The revision.
    pub revision: RevisionId,
    /// Where it was prepared (a release directory, a worktree).
    pub location: String,
    /// The last lines of the install/build output, for the report.
    pub build_log_tail: Vec<String>,
}

/// A stored configuration version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    /// Its id.
    pub id: ConfigVersionId,
    /// The label it was stored with (empty for the live file).
    pub label: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// Where it lives, for humans.
    pub location: String,
}

/// What [`ConfigStore::verify`](crate::ConfigStore::verify) found. Never holds values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigCheck {
    /// The keys defined.
    pub keys: Vec<String>,
    /// Warnings (duplicate keys, ...), never containing values.
    pub warnings: Vec<String>,
}

/// Differences between two config versions: key names only, values are never shown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDiff {
    /// Keys only in the second version.
    pub added: Vec<String>,
    /// Keys only in the first version.
    pub removed: Vec<String>,
    /// Keys in both whose values differ.
    pub changed: Vec<String>,
}

impl ConfigDiff {
    /// True when the two versions hold the same keys and values.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The state a process manager reports for an app (see the
/// [`ProcessManager`](crate::ProcessManager) contract for what each must mean).
///
/// The serde names (`online`, `stopped`, `launching`, `stopping`, `errored`, `retrying`,
/// `unknown`) are stable: journals and reports keep them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProcessState {
    /// Running and (as far as the manager knows) serving; the status carries its pid.
    Online,
    /// Not running, and the manager will not start it by itself: stopped on request, or
    /// exited and not to be restarted. A crashed app is `Stopped` once `stop` returned.
    Stopped,
    /// Starting up.
    Launching,
    /// Stopping.
    Stopping,
    /// Crashed, and the manager gave up restarting it (pm2's `errored`, supervisord's
    /// `FATAL`, systemd's `failed`): it stays down until someone starts it.
    Errored,
    /// Crashed, and the manager is still restarting it (pm2's `waiting restart` or a crash
    /// loop under way, supervisord's `BACKOFF`, systemd's `activating (auto-restart)`): it
    /// may come back by itself, or end [`Errored`](Self::Errored).
    Retrying,
    /// A state the adapter cannot map (a status its manager added later, say).
    Unknown,
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProcessState::Online => "online",
            ProcessState::Stopped => "stopped",
            ProcessState::Launching => "launching",
            ProcessState::Stopping => "stopping",
            ProcessState::Errored => "errored",
            ProcessState::Retrying => "retrying",
            ProcessState::Unknown => "unknown",
        })
    }
}

/// An app's status as its process manager sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStatus {
    /// The app.
    pub app: AppName,
    /// Its state.
    pub state: ProcessState,
    /// OS process id while a process runs; always `Some` when [`ProcessState::Online`],
    /// and a different one after each restart.
    pub pid: Option<u32>,
    /// Restarts counted by the manager, every restart it made or was asked for (so each
    /// [`restart`](crate::ProcessManager::restart) adds at least one). `None` when the
    /// manager keeps no such count (supervisord) or counts something else (systemd's
    /// `NRestarts` counts only its automatic restarts): managers do not count alike, so a
    /// count is never made up.
    pub restarts: Option<u32>,
    /// Time since the last start, when running.
    #[serde(with = "crate::duration_ms::option", default)]
    pub uptime: Option<Duration>,
}

/// What an app wrote to its process manager's log (stdout and stderr) since a moment, as
/// [`ProcessManager::logs_since`](crate::ProcessManager::logs_since) returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppLogs {
    /// The lines, in the order each source got them (one source after the other), with
    /// what looked like a secret already redacted by the adapter.
    pub lines: Vec<LogLine>,
    /// True when not exactly what was written since the moment was read: a size bound cut
    /// it, or it may start with lines written before the moment. `notes` say which.
    pub partial: bool,
    /// What was read and what could not be, for the report (file names, sizes; never a
    /// line's content).
    pub notes: Vec<String>,
}

/// One line of an app's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Where it came from, e.g. `"stderr"` or a log file's name.
    pub source: String,
    /// The line, without its line break.
    pub text: String,
}

/// One thing a diagnosis found
/// ([`DatabaseSnapshot::diagnose`](crate::DatabaseSnapshot::diagnose)): a topic, a
/// one-line summary and the items behind it, for a human deciding whether to roll back.
/// Never a secret or row data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What was looked at, e.g. `"long-running queries"`, `"lock waits"`.
    pub topic: String,
    /// What was seen, in one line.
    pub summary: String,
    /// One line per item (a query, a waiting session, a statement), most telling first.
    pub items: Vec<String>,
    /// True when it is worth a look (a query running for long, a session waiting on a
    /// lock, a low cache hit ratio); false when it is context.
    pub notable: bool,
}

/// One health probe's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Which probe.
    pub probe: String,
    /// Healthy or not.
    pub healthy: bool,
    /// How long it took.
    #[serde(with = "crate::duration_ms")]
    pub latency: Duration,
    /// Status code or error (no secrets).
    pub detail: String,
}

/// A metrics sample for one app; absent values were not measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSample {
    /// Fraction of requests that failed, 0.0..=1.0.
    pub error_rate: Option<f64>,
    /// Memory used as a percentage of the limit or of the machine.
    pub memory_percent: Option<f64>,
    /// Resident memory in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU use in percent of one core.
    pub cpu_percent: Option<f64>,
    /// The 95th percentile of request latency over the source's window.
    #[serde(with = "crate::duration_ms::option", default)]
    pub latency_p95: Option<Duration>,
}

/// How serious an incident is; drives who is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Minor.
    Low,
    /// Degraded.
    Medium,
    /// Users are hurt.
    High,
    /// Outage or data at risk.
    Critical,
}

/// What a [`Notice`] is about, for receivers that open and close alerts (PagerDuty
/// triggers on an opening event and resolves on a closing one, by [`Notice::incident`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoticeEvent {
    /// The watchdog opened an incident.
    IncidentOpened,
    /// A scheduled update or an escalation while the incident lasts.
    #[default]
    IncidentUpdate,
    /// The incident is over (the post-incident report).
    IncidentResolved,
    /// A rollback started (an opening event: the app is about to go down).
    RollbackStarted,
    /// A rollback finished well (a closing event).
    RollbackSucceeded,
    /// A rollback failed and the pre-rollback state was put back, or it was refused or
    /// aborted: the app runs what it ran before, and the problem it was for is still there.
    RollbackFailed,
    /// A rollback halted: a human must take over now.
    RollbackHalted,
}

impl NoticeEvent {
    /// True for events after which nothing is open any more (a receiver resolves its
    /// alert): the incident resolved, or a rollback that succeeded.
    pub fn closes(self) -> bool {
        matches!(
            self,
            NoticeEvent::IncidentResolved | NoticeEvent::RollbackSucceeded
        )
    }
}

/// A message for a [`Notifier`](crate::Notifier).
///
/// ```
/// use rollback_core::{Notice, NoticeEvent, Severity};
/// let notice = Notice::new("devops", Severity::High, "rollback started: web", "v2.4 broke checkout")
///     .event(NoticeEvent::RollbackStarted)
///     .incident("rb-20261126T101500.123456Z-0")
///     .field("target", "the last good checkpoint");
/// assert_eq!(notice.fields["target"], "the last good checkpoint");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Notice {
    /// Who it is for, e.g. `"devops"`, `"stakeholders"`, `"status-page"`.
    pub audience: String,
    /// Severity of the incident.
    pub severity: Severity,
    /// One line.
    pub subject: String,
    /// Body text (no secrets).
    pub body: String,
    /// Extra fields for machine consumers.
    pub fields: BTreeMap<String, String>,
    /// What it is about.
    #[serde(default)]
    pub event: NoticeEvent,
    /// The incident or rollback it belongs to: the same for every notice of one incident
    /// (a receiver's deduplication key).
    #[serde(default)]
    pub incident: Option<String>,
    /// Who is responsible now and who is next in the escalation path, with how to reach
    /// them, e.g. `"now: on-call engineer (Ana, +1 555 0100); next at +30 min: DevOps lead (Bo, @bo)"`.
    #[serde(default)]
    pub escalation: Option<String>,
}

impl Notice {
    /// A notice with no fields, about an incident update, of no incident.
    pub fn new(
        audience: impl Into<String>,
        severity: Severity,
        subject: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self {
            audience: audience.into(),
            severity,
            subject: subject.into(),
            body: body.into(),
            fields: BTreeMap::new(),
            event: NoticeEvent::default(),
            incident: None,
            escalation: None,
        }
    }

    /// Sets what it is about.
    pub fn event(mut self, event: NoticeEvent) -> Self {
        self.event = event;
        self
    }

    /// Sets the incident (or rollback) it belongs to.
    pub fn incident(mut self, id: impl Into<String>) -> Self {
        self.incident = Some(id.into());
        self
    }

    /// Sets who is responsible now and next.
    pub fn escalation(mut self, who: impl Into<String>) -> Self {
        self.escalation = Some(who.into());
        self
    }

    /// Adds a field for machine consumers.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }
}

/// Who holds the rollback lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// Since when.
    pub since: DateTime<Utc>,
    /// The rollback it is running.
    pub rollback: RollbackId,
    /// A token unique to this acquisition; only its holder removes the lock.
    pub token: String,
    /// The machine (`/etc/machine-id`), when known: two deploy boxes that share a state
    /// store and a host name are still told apart.
    #[serde(default)]
    pub machine: Option<String>,
    /// The boot (`/proc/sys/kernel/random/boot_id`), when known: a holder from an earlier
    /// boot of the same machine is gone, whatever its pid says now.
    #[serde(default)]
    pub boot: Option<String>,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} on host {} since {} (rollback {})",
            self.pid,
            self.host,
            self.since.to_rfc3339(),
            self.rollback
        )
    }
}

/// Where in a rollback a [`Hook`](crate::Hook) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HookPoint {
    /// Right before the app is stopped (end of prepare): nothing changed yet.
    BeforeStop,
    /// Once the app answers again (post-verify, or after the pre-rollback state was put
    /// back).
    AfterStart,
    /// Once the report is stored.
    AfterReport,
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookPoint::BeforeStop => "before the stop",
            HookPoint::AfterStart => "after the start",
            HookPoint::AfterReport => "after the report",
        })
    }
}
