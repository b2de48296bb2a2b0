//! The rollback report, as JSON (serde), Markdown and a self-contained HTML page: the
//! runbook's incident record ("Rollback Documentation").

use crate::domain::{CheckResult, Checkpoint, Finding, NoticeEvent, ProbeResult, Scenario, Scope};
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

impl StepRecord {
    /// When it ended (it started at `started_at` and took `duration`).
    pub fn ended_at(&self) -> DateTime<Utc> {
        chrono::Duration::from_std(self.duration)
            .ok()
            .and_then(|d| self.started_at.checked_add_signed(d))
            .unwrap_or(self.started_at)
    }
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
#[non_exhaustive]
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
#[non_exhaustive]
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

    /// The report as Markdown, for a ticket or a chat message: the runbook's "Rollback
    /// Documentation". In order: the outcome; when it was initiated, why and by what (the
    /// trigger), the scope and the checkpoint; the total duration and the downtime window;
    /// the steps taken, each with when it started, how long it took and how it ended, and
    /// their checklists; the verification results (health, integrity, the checks of the
    /// release after the start); the emergency backup; notes and next actions; the notices
    /// sent (when, to whom, what, delivered or why not); the post-rollback actions as a
    /// checklist (`- [ ]`) and "Lessons learned", with a placeholder until the team fills it.
    ///
    /// Text from the report is kept to one line where a line break would break the layout
    /// (list items, table cells); lessons learned are kept as written.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Rollback report `{}`\n", self.id);
        let _ = writeln!(md, "**Outcome:** {}\n", one_line(&self.outcome.to_string()));
        let _ = writeln!(md, "## Rollback documentation\n");
        let _ = writeln!(md, "- **App:** {}", one_line(&self.app));
        let _ = writeln!(md, "- **Initiated:** {}", stamp(self.started_at));
        let _ = writeln!(md, "- **Reason:** {}", one_line(&self.reason));
        if let Some(s) = self.scenario {
            let _ = writeln!(md, "- **Scenario:** {s}");
        }
        let _ = writeln!(
            md,
            "- **Trigger:** {}",
            self.trigger
                .as_deref()
                .map_or_else(|| "not recorded".to_owned(), one_line)
        );
        let _ = writeln!(md, "- **Scope:** {}", self.scope);
        let _ = writeln!(
            md,
            "- **Checkpoint:** `{}` {}",
            self.checkpoint.id,
            one_line(&self.checkpoint_details())
        );
        for w in &self.checkpoint.warnings {
            let _ = writeln!(md, "  - checkpoint warning: {}", one_line(w));
        }
        let _ = writeln!(md, "- **Finished:** {}", stamp(self.finished_at));
        let _ = writeln!(md, "- **Total duration:** {}", fmt_duration(self.total_duration));
        let _ = writeln!(md, "- **Downtime:** {}", self.downtime_text());

        let _ = writeln!(md, "\n## Steps taken\n");
        let _ = writeln!(md, "| # | step | started | duration | outcome |");
        let _ = writeln!(md, "|---|------|---------|----------|---------|");
        for r in &self.steps {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                r.step.number(),
                r.step,
                r.started_at.format("%H:%M:%S%.3f"),
                fmt_duration(r.duration),
                one_line(&step_outcome_text(&r.outcome)).replace('|', "\\|")
            );
        }
        if self.steps.iter().any(|r| !r.checklist.is_empty()) {
            let _ = writeln!(md, "\n### Checklist\n");
            for r in &self.steps {
                for item in &r.checklist {
                    let _ = writeln!(md, "- [{}] {}: {}", tick(item), r.step, one_line(&item.text));
                }
            }
        }

        let _ = writeln!(md, "\n## Verification results\n");
        if self.health.is_empty() && self.integrity.is_empty() && self.verification.is_empty() {
            let _ = writeln!(md, "None recorded: post-verify did not run.");
        }
        for (title, lines) in self.verification_groups() {
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(md, "### {title}\n");
            for (mark, text) in lines {
                let _ = writeln!(md, "- {} {}", mark.symbol(), one_line(&text));
            }
            let _ = writeln!(md);
        }
        if !self.log_matches.is_empty() {
            let _ = writeln!(md, "### Critical lines in the app's log since the start\n");
            for m in &self.log_matches {
                let _ = writeln!(
                    md,
                    "- {} (`{}`): `{}`",
                    one_line(&m.source),
                    one_line(&m.pattern).replace('`', "'"),
                    one_line(&m.line).replace('`', "'")
                );
            }
        }
        if !self.diagnosis.is_empty() {
            let _ = writeln!(md, "\n## Database diagnosis\n");
            for f in &self.diagnosis {
                let _ = writeln!(
                    md,
                    "- {} **{}**: {}",
                    if f.notable { "⚠️" } else { "ℹ️" },
                    one_line(&f.topic),
                    one_line(&f.summary)
                );
                for item in &f.items {
                    let _ = writeln!(md, "  - {}", one_line(item));
                }
            }
        }
        if !self.recovery.is_empty() {
            let _ = writeln!(md, "\n## Recovery (failure policy)\n");
            for item in &self.recovery {
                let _ = writeln!(md, "- [{}] {}", tick(item), one_line(&item.text));
            }
        }
        let _ = writeln!(md, "\n## Emergency backup\n");
        if self.emergency_backup.is_empty() {
            let _ = writeln!(md, "None taken.");
        }
        for b in &self.emergency_backup {
            let _ = writeln!(md, "- {}", one_line(b));
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {}", one_line(n));
            }
        }
        if !self.next_actions.is_empty() {
            let _ = writeln!(md, "\n## Next actions\n");
            for n in &self.next_actions {
                let _ = writeln!(md, "- {}", one_line(n));
            }
        }
        let _ = writeln!(md, "\n## Notices sent\n");
        if self.notices.is_empty() {
            let _ = writeln!(md, "None.");
        }
        for n in &self.notices {
            let _ = writeln!(
                md,
                "- {} to **{}** ({}): {}: {}",
                stamp(n.at),
                one_line(&n.audience),
                notice_event_text(n.event),
                one_line(&n.subject),
                n.error.as_deref().map_or_else(
                    || "delivered".to_owned(),
                    |e| format!("NOT delivered: {}", one_line(e))
                )
            );
        }
        let _ = writeln!(md, "\n## Post-rollback actions\n");
        for item in self.post_rollback_checklist() {
            let _ = writeln!(md, "- [{}] {}", tick(&item), one_line(&item.text));
        }
        let _ = writeln!(md, "\n## Lessons learned\n");
        if self.lessons_learned.trim().is_empty() {
            let _ = writeln!(md, "_{LESSONS_PLACEHOLDER}_");
        } else {
            let _ = writeln!(md, "{}", self.lessons_learned.trim_end());
        }
        md
    }

    /// The report as one self-contained HTML page (inline CSS and SVG, no script, no
    /// external asset), for a browser, an attachment or a printout: the same content as
    /// [`to_markdown`](Self::to_markdown), and a timeline drawing of the steps on a time
    /// axis from the rollback's start to its end, each bar coloured by how the step ended,
    /// with the window in which the app was down shaded over them.
    ///
    /// Every text from the report is escaped: a reason or a checklist line holding markup
    /// comes out as text. Stable ids and classes for tools reading the page: `#outcome`,
    /// the `svg#timeline` with one `rect.step` per step (also `.done`, `.skipped`,
    /// `.failed` or `.interrupted`, id `step-<n>`), `#downtime` (the band, `.open` while
    /// not verified healthy) and `#downtime-label`, and sections `#steps`,
    /// `#verification`, `#notices`, `#post-rollback-actions` and `#lessons-learned`.
    ///
    /// ```
    /// # fn demo(report: &rollback_core::RollbackReport) -> std::io::Result<()> {
    /// std::fs::write("rollback-report.html", report.to_html())?;
    /// # Ok(()) }
    /// ```
    pub fn to_html(&self) -> String {
        crate::report_html::render(self)
    }

    /// What the checkpoint was, after its id: `(label, data as of .., finished ..)`.
    pub(crate) fn checkpoint_details(&self) -> String {
        format!(
            "({}, data as of {}, finished {})",
            self.checkpoint.label,
            stamp(
                self.checkpoint
                    .snapshot_taken_at
                    .unwrap_or(self.checkpoint.created_at)
            ),
            stamp(self.checkpoint.created_at)
        )
    }

    /// The downtime window in words.
    pub(crate) fn downtime_text(&self) -> String {
        match &self.downtime {
            Some(DowntimeWindow {
                stopped_at,
                healthy_at,
                duration: Some(d),
                post_verify,
                ..
            }) => format!(
                "{} (from the app's last answer at {} to its first passing health probe{}){}",
                fmt_duration(*d),
                stamp(*stopped_at),
                healthy_at.map_or_else(String::new, |h| format!(" at {}", stamp(h))),
                post_verify.map_or_else(String::new, |p| format!(
                    "; post-verify took {} in all",
                    fmt_duration(p)
                ))
            ),
            Some(DowntimeWindow { stopped_at, .. }) => {
                format!("open: stopped {} and not verified healthy", stamp(*stopped_at))
            }
            None => "none (the app was not stopped)".to_owned(),
        }
    }

    /// The verification results in groups (health, integrity, the release's checks), each
    /// line with its mark.
    pub(crate) fn verification_groups(&self) -> [(&'static str, Vec<(Mark, String)>); 3] {
        let checks = |list: &[CheckResult]| {
            list.iter()
                .map(|c| (Mark::of_check(c), format!("{}: {}", c.name, c.detail)))
                .collect::<Vec<_>>()
        };
        [
            (
                "Health",
                self.health
                    .iter()
                    .map(|p| {
                        (
                            if p.healthy { Mark::Passed } else { Mark::Failed },
                            format!("{}: {} ({})", p.probe, p.detail, fmt_duration(p.latency)),
                        )
                    })
                    .collect(),
            ),
            ("Integrity", checks(&self.integrity)),
            ("Verification of the release", checks(&self.verification)),
        ]
    }

    /// The post-rollback actions to tick off: the report's, or the runbook's list when the
    /// report has none (a report written before the field existed).
    pub(crate) fn post_rollback_checklist(&self) -> Vec<ChecklistItem> {
        if self.post_rollback_actions.is_empty() {
            post_rollback_actions()
        } else {
            self.post_rollback_actions.clone()
        }
    }
}

/// What "Lessons learned" says until the team fills it in.
pub(crate) const LESSONS_PLACEHOLDER: &str =
    "To be filled in by the team: what went wrong, what went well, what to change.";

/// How a verification line ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Passed.
    Passed,
    /// Did not pass.
    Failed,
    /// Not checked (no data, not configured).
    NotChecked,
}

impl Mark {
    fn of_check(c: &CheckResult) -> Self {
        if c.passed {
            Mark::Passed
        } else if c.detail.starts_with("not checked") {
            Mark::NotChecked
        } else {
            Mark::Failed
        }
    }

    /// ✅, ❌ or ➖.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Mark::Passed => "✅",
            Mark::Failed => "❌",
            Mark::NotChecked => "➖",
        }
    }

    /// ✓, ✗ or –: in common text fonts, for a page that may be shown without an emoji font.
    pub(crate) fn plain_symbol(self) -> &'static str {
        match self {
            Mark::Passed => "✓",
            Mark::Failed => "✗",
            Mark::NotChecked => "–",
        }
    }

    /// `passed`, `failed` or `not-checked`.
    pub(crate) fn class(self) -> &'static str {
        match self {
            Mark::Passed => "passed",
            Mark::Failed => "failed",
            Mark::NotChecked => "not-checked",
        }
    }
}

/// A step's outcome in words: `ok`, `skipped: why`, `FAILED: why`, `interrupted`.
pub(crate) fn step_outcome_text(outcome: &StepOutcome) -> String {
    match outcome {
        StepOutcome::Started => "interrupted".to_owned(),
        StepOutcome::Ok => "ok".to_owned(),
        StepOutcome::Skipped(why) => format!("skipped: {why}"),
        StepOutcome::Failed(why) => format!("FAILED: {why}"),
    }
}

/// A notice's event in words (`rollback started`), from its serialized name so that a new
/// event needs no change here.
pub(crate) fn notice_event_text(event: NoticeEvent) -> String {
    serde_json::to_value(event)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_else(|| format!("{event:?}"))
}

/// A timestamp the way the report shows it: RFC 3339, UTC, to the millisecond.
pub(crate) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `x` when ticked, a space when not.
fn tick(item: &ChecklistItem) -> &'static str {
    if item.checked {
        "x"
    } else {
        " "
    }
}

/// `s` with its line breaks made spaces: a list item or table cell stays one line.
fn one_line(s: &str) -> String {
    if s.contains(['\n', '\r']) {
        s.split(['\n', '\r'])
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        s.to_owned()
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
