//! The rollback report, as JSON (serde) and Markdown.

use crate::domain::{CheckResult, Checkpoint, Finding, ProbeResult, Scenario, Scope};
use crate::ids::RollbackId;
use crate::plan::Step;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::{self, Write as _};
use std::time::Duration;

/// One checklist line of a step, ticked when done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// What was checked or done.
    pub text: String,
    /// Whether it was.
    pub checked: bool,
}

impl ChecklistItem {
    /// A ticked item.
    pub fn done(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            checked: true,
        }
    }

    /// An unticked item.
    pub fn not_done(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            checked: false,
        }
    }
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepOutcome {
    /// Started, not (yet) finished: the process died here if this is in a final report.
    Started,
    /// Done.
    Ok,
    /// Not needed for this scope or plan.
    Skipped(String),
    /// Failed with this message.
    Failed(String),
}

impl StepOutcome {
    /// True for `Ok` and `Skipped`.
    pub fn is_ok(&self) -> bool {
        matches!(self, StepOutcome::Ok | StepOutcome::Skipped(_))
    }
}

/// One step in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step.
    pub step: Step,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    #[serde(with = "crate::duration_ms")]
    pub duration: Duration,
    /// How it ended.
    pub outcome: StepOutcome,
    /// What it checked and did.
    pub checklist: Vec<ChecklistItem>,
}

/// How the rollback ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Rolled back and verified healthy.
    Succeeded,
    /// Stopped before changing anything; the app was not touched (or is running again).
    Aborted {
        /// The step that failed.
        step: Step,
        /// Why.
        cause: String,
    },
    /// A step after the emergency backup failed and the pre-rollback state was put back
    /// and started again (the default failure policy).
    RestoredPreRollbackState {
        /// The step that failed.
        step: Step,
        /// Why.
        cause: String,
    },
    /// Left for a human: the statement says exactly what state things are in.
    Halted {
        /// The step that failed.
        step: Step,
        /// Why.
        cause: String,
        /// What is live, what is stopped, where the backups are.
        statement: String,
    },
    /// Performance degradation: diagnosed and reported, nothing rolled back.
    Investigated,
}

impl Outcome {
    /// True only for `Succeeded`.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Succeeded => f.write_str("rolled back and verified"),
            Outcome::Aborted { step, cause } => {
                write!(
                    f,
                    "aborted at `{step}` before anything was replaced ({cause}); the app runs as before"
                )
            }
            Outcome::RestoredPreRollbackState { step, cause } => write!(
                f,
                "failed at `{step}` ({cause}); the pre-rollback state was put back and the app started again"
            ),
            Outcome::Halted {
                step,
                cause,
                statement,
            } => write!(f, "HALTED at `{step}` ({cause}); needs a human: {statement}"),
            Outcome::Investigated => f.write_str("investigated: no automatic rollback"),
        }
    }
}

/// A line of the app's log since the start that matched one of
/// [`LogScan::patterns`](crate::LogScan::patterns), redacted and cut to a readable length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMatch {
    /// The pattern it matched.
    pub pattern: String,
    /// Where it was written (stdout, stderr, a file name).
    pub source: String,
    /// The line, with what looks like a secret redacted.
    pub line: String,
}

/// The window the app was not serving: from its last answer while it was being stopped to
/// the first passing health probe after the start (during the start step included). Post-verify's later checks (integrity after the
/// start) are not downtime: they are reported on their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DowntimeWindow {
    /// When the app stopped answering: its last passing health probe while the stop ran
    /// (a graceful stop answers a while), else when the stop was issued.
    pub stopped_at: DateTime<Utc>,
    /// When the stop was issued.
    #[serde(default)]
    pub stop_issued_at: Option<DateTime<Utc>>,
    /// When the first passing health probe answered after the start, if one did.
    pub healthy_at: Option<DateTime<Utc>>,
    /// The length of the window, when it closed.
    #[serde(with = "crate::duration_ms::option", default)]
    pub duration: Option<Duration>,
    /// How long post-verify took in all (health gate and the checks after it), for
    /// comparison; not part of the downtime.
    #[serde(with = "crate::duration_ms::option", default)]
    pub post_verify: Option<Duration>,
}

/// Everything about one rollback, for humans (Markdown) and machines (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackReport {
    /// The rollback.
    pub id: RollbackId,
    /// The app.
    pub app: String,
    /// Why it was started.
    pub reason: String,
    /// The scenario, if one was named.
    pub scenario: Option<Scenario>,
    /// What triggered it (an operator, a watchdog rule).
    pub trigger: Option<String>,
    /// What went back.
    pub scope: Scope,
    /// The checkpoint it went back to.
    pub checkpoint: Checkpoint,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Total duration.
    #[serde(with = "crate::duration_ms")]
    pub total_duration: Duration,
    /// Stop to healthy.
    pub downtime: Option<DowntimeWindow>,
    /// Each step.
    pub steps: Vec<StepRecord>,
    /// Health probe results after the start.
    pub health: Vec<ProbeResult>,
    /// Integrity checks after the restore.
    pub integrity: Vec<CheckResult>,
    /// Post-verify's checks of the release after the start beyond health and integrity:
    /// critical lines in the app's log, error rate and latency against the thresholds and
    /// the checkpoint's baseline. A check that did not pass failed the rollback only where
    /// [`Settings`](crate::Settings) say so; its detail says which.
    #[serde(default)]
    pub verification: Vec<CheckResult>,
    /// The log lines behind the log check (at most `LogScan::max_shown`), redacted.
    #[serde(default)]
    pub log_matches: Vec<LogMatch>,
    /// What the database said about itself when investigating
    /// ([`DatabaseSnapshot::diagnose`](crate::DatabaseSnapshot::diagnose)).
    #[serde(default)]
    pub diagnosis: Vec<Finding>,
    /// What the failure policy did to put the pre-rollback state back, when it ran.
    pub recovery: Vec<ChecklistItem>,
    /// Where the emergency backup lives (database, code, config).
    pub emergency_backup: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Notes from the adapters and the orchestrator.
    pub notes: Vec<String>,
    /// What a human should do next.
    pub next_actions: Vec<String>,
    /// The notices sent about this rollback (started, finished, failed, halted), delivered
    /// or not: the incident record's communication log.
    #[serde(default)]
    pub notices: Vec<NoticeRecord>,
    /// The runbook's "post-rollback actions", to be ticked off by the team: document the
    /// incident, find the root cause, plan preventive measures, update the procedures, hold
    /// the post-mortem.
    #[serde(default)]
    pub post_rollback_actions: Vec<ChecklistItem>,
    /// Lessons learned: empty until the team fills it in (the report is theirs to edit).
    #[serde(default)]
    pub lessons_learned: String,
}

/// One notice sent about a rollback, as the incident record keeps it (no body: who, what,
/// when, and whether it arrived).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// To whom.
    pub audience: String,
    /// Its subject.
    pub subject: String,
    /// What it was about.
    pub event: crate::domain::NoticeEvent,
    /// Why it did not arrive, when it did not.
    pub error: Option<String>,
}

/// The runbook's post-rollback actions, none done yet.
pub fn post_rollback_actions() -> Vec<ChecklistItem> {
    [
        "document the incident (this report is its start)",
        "identify the root cause",
        "plan preventive measures",
        "update the deployment and rollback procedures",
        "hold the post-mortem",
    ]
    .into_iter()
    .map(ChecklistItem::not_done)
    .collect()
}

impl RollbackReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Every field is a plain serde type; serialization cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as Markdown, for a ticket or a chat message.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Rollback report `{}`\n", self.id);
        let _ = writeln!(md, "- **Outcome:** {}", self.outcome);
        let _ = writeln!(md, "- **App:** {}", self.app);
        let _ = writeln!(md, "- **Reason:** {}", self.reason);
        if let Some(s) = self.scenario {
            let _ = writeln!(md, "- **Scenario:** {s}");
        }
        if let Some(t) = &self.trigger {
            let _ = writeln!(md, "- **Trigger:** {t}");
        }
        let _ = writeln!(md, "- **Scope:** {}", self.scope);
        let _ = writeln!(
            md,
            "- **Checkpoint:** `{}` ({}, data as of {}, finished {})",
            self.checkpoint.id,
            self.checkpoint.label,
            self.checkpoint
                .snapshot_taken_at
                .unwrap_or(self.checkpoint.created_at)
                .to_rfc3339(),
            self.checkpoint.created_at.to_rfc3339()
        );
        for w in &self.checkpoint.warnings {
            let _ = writeln!(md, "  - checkpoint warning: {w}");
        }
        let _ = writeln!(md, "- **Started:** {}", self.started_at.to_rfc3339());
        let _ = writeln!(md, "- **Total duration:** {}", fmt_duration(self.total_duration));
        match &self.downtime {
            Some(DowntimeWindow {
                stopped_at,
                duration: Some(d),
                post_verify,
                ..
            }) => {
                let _ = writeln!(
                    md,
                    "- **Downtime:** {} (from the app's last answer at {} to its first passing health probe){}",
                    fmt_duration(*d),
                    stopped_at.to_rfc3339(),
                    post_verify.map_or_else(String::new, |p| format!(
                        "; post-verify took {} in all",
                        fmt_duration(p)
                    ))
                );
            }
            Some(DowntimeWindow { stopped_at, .. }) => {
                let _ = writeln!(
                    md,
                    "- **Downtime:** open: stopped {} and not verified healthy",
                    stopped_at.to_rfc3339()
                );
            }
            None => {
                let _ = writeln!(md, "- **Downtime:** none (the app was not stopped)");
            }
        }
        let _ = writeln!(md, "\n## Steps\n");
        let _ = writeln!(md, "| # | step | started | duration | outcome |");
        let _ = writeln!(md, "|---|------|---------|----------|---------|");
        for r in &self.steps {
            let outcome = match &r.outcome {
                StepOutcome::Started => "interrupted".to_owned(),
                StepOutcome::Ok => "ok".to_owned(),
                StepOutcome::Skipped(why) => format!("skipped: {why}"),
                StepOutcome::Failed(why) => format!("FAILED: {why}"),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                r.step.number(),
                r.step,
                r.started_at.format("%H:%M:%S%.3f"),
                fmt_duration(r.duration),
                outcome.replace('|', "\\|")
            );
        }
        let _ = writeln!(md, "\n## Checklist\n");
        for r in &self.steps {
            for item in &r.checklist {
                let _ = writeln!(
                    md,
                    "- [{}] {}: {}",
                    if item.checked { "x" } else { " " },
                    r.step,
                    item.text
                );
            }
        }
        if !self.health.is_empty() || !self.integrity.is_empty() || !self.verification.is_empty() {
            let _ = writeln!(md, "\n## Verification\n");
            for p in &self.health {
                let _ = writeln!(
                    md,
                    "- {} {}: {} ({})",
                    if p.healthy { "✅" } else { "❌" },
                    p.probe,
                    p.detail,
                    fmt_duration(p.latency)
                );
            }
            for c in self.integrity.iter().chain(&self.verification) {
                let mark = if c.passed {
                    "✅"
                } else if c.detail.starts_with("not checked") {
                    "➖"
                } else {
                    "❌"
                };
                let _ = writeln!(md, "- {} {}: {}", mark, c.name, c.detail);
            }
            if !self.log_matches.is_empty() {
                let _ = writeln!(md, "\n### Critical lines in the app's log since the start\n");
                for m in &self.log_matches {
                    let _ = writeln!(
                        md,
                        "- {} (`{}`): `{}`",
                        m.source,
                        m.pattern.replace('`', "'"),
                        m.line.replace('`', "'")
                    );
                }
            }
        }
        if !self.diagnosis.is_empty() {
            let _ = writeln!(md, "\n## Database diagnosis\n");
            for f in &self.diagnosis {
                let _ = writeln!(
                    md,
                    "- {} **{}**: {}",
                    if f.notable { "⚠️" } else { "ℹ️" },
                    f.topic,
                    f.summary
                );
                for item in &f.items {
                    let _ = writeln!(md, "  - {}", item);
                }
            }
        }
        if !self.recovery.is_empty() {
            let _ = writeln!(md, "\n## Recovery (failure policy)\n");
            for item in &self.recovery {
                let _ = writeln!(md, "- [{}] {}", if item.checked { "x" } else { " " }, item.text);
            }
        }
        if !self.emergency_backup.is_empty() {
            let _ = writeln!(md, "\n## Emergency backup\n");
            for b in &self.emergency_backup {
                let _ = writeln!(md, "- {b}");
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        if !self.next_actions.is_empty() {
            let _ = writeln!(md, "\n## Next actions\n");
            for n in &self.next_actions {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }
}

/// `1.234s`, `56ms`: durations the way the report shows them.
pub fn fmt_duration(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{:.3}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}
