//! The durable journal of one rollback: written before and after every step, so that a
//! rollback whose process died is resumed from where it was, never re-run blindly.

use crate::domain::{
    CheckResult, Checkpoint, ConfigVersion, PreparedRestore, PreparedRevision, PreservedDatabase,
    ProbeResult, PutAside,
};
use crate::error::ErrorKind;
use crate::ids::RollbackId;
use crate::plan::Step;
use crate::report::{ChecklistItem, LogMatch, Outcome, StepRecord};
use crate::request::RollbackRequest;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a rollback stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JournalStatus {
    /// Running, or interrupted: `resume()` picks it up.
    Running,
    /// A step failed after the emergency backup and the failure policy is putting the
    /// pre-rollback state back; `resume()` finishes that.
    Recovering {
        /// The failed step.
        step: Step,
        /// Why it failed.
        cause: String,
        /// What kind of failure it was.
        #[serde(default)]
        kind: ErrorKind,
    },
    /// Every step has ended with this outcome; the report is being written and the lock
    /// released. `resume()` finishes that (a crash here never leaves a stale lock and no
    /// report).
    Finishing(Outcome),
    /// Ended; the outcome says how. The report is written.
    Finished(Outcome),
}

/// Everything made along the way that a later step, the failure policy or `resume()` needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Artifacts {
    /// The staged snapshot.
    pub prepared_restore: Option<PreparedRestore>,
    /// The built target revision.
    pub prepared_revision: Option<PreparedRevision>,
    /// The emergency backup of the database.
    pub preserved_database: Option<PreservedDatabase>,
    /// The emergency backup of the code (the release live before).
    pub preserved_code: Option<PreparedRevision>,
    /// The emergency backup of the config.
    pub preserved_config: Option<ConfigVersion>,
    /// True once the staged snapshot passed the full integrity check online (prepare).
    #[serde(default)]
    pub staged_verified: bool,
    /// True when pre-flight chose a graceful reload (no database in scope, and the process
    /// manager can replace the app's processes one at a time): the app is never stopped.
    #[serde(default)]
    pub graceful_reload: bool,
    /// What the switch or the failure policy put aside (never deleted), with what it holds.
    #[serde(default)]
    pub put_aside: Vec<PutAside>,
    /// True once the before-stop hooks began: the after-start hooks must run whatever
    /// happens next (to take a maintenance page down, say).
    #[serde(default)]
    pub before_stop_hooks_ran: bool,
    /// The parts (a fleet's hosts) the rollback or its recovery could not bring in line
    /// when it halted: unreachable, or not put back. Every other part serves. `resume()`
    /// brings them in line once they are back.
    #[serde(default)]
    pub unreached_parts: Vec<String>,
    /// True when the rollback halted with every reachable part on the target (the database
    /// switched and open, the reachable hosts started on the target and healthy) and only
    /// unreachable parts missing: `resume()` goes on towards the target instead of putting
    /// the pre-rollback state back.
    #[serde(default)]
    pub resume_towards_target: bool,
    /// When `resume()` last took up this rollback after it halted (the notices of its new
    /// outcome are sent again).
    #[serde(default)]
    pub resumed_after_halt_at: Option<DateTime<Utc>>,
    /// True while a halt of this rollback waits for `resume()` (set when it halts, cleared by
    /// [`Orchestrator::close_halted`](crate::Orchestrator::close_halted) once a human put
    /// things right by hand). A journal written before halts were resumable has it false.
    #[serde(default)]
    pub halt_resumable: bool,
}

/// The journal of one rollback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Journal {
    /// The rollback.
    pub id: RollbackId,
    /// The checkpoint it goes back to.
    pub checkpoint: Checkpoint,
    /// The request.
    pub request: RollbackRequest,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Where it stands.
    pub status: JournalStatus,
    /// Step records, in the order they ran (a resumed step appears again).
    pub steps: Vec<StepRecord>,
    /// What was made along the way.
    pub artifacts: Artifacts,
    /// When the app stopped answering (start of the downtime window): the last passing
    /// health probe while the stop ran, or when the stop was issued (without HTTP probes,
    /// or when none passed).
    pub stopped_at: Option<DateTime<Utc>>,
    /// When the stop was issued (a graceful stop keeps answering a while after).
    #[serde(default)]
    pub stop_issued_at: Option<DateTime<Utc>>,
    /// The first passing health probe while the start step ran (the process manager may
    /// wait out a stability window after the app already answers).
    #[serde(default)]
    pub first_answer_at: Option<DateTime<Utc>>,
    /// When the first health probe passed after the start (end of the downtime window).
    pub healthy_at: Option<DateTime<Utc>>,
    /// Health probe results of post-verify (or of the recovery).
    pub health: Vec<ProbeResult>,
    /// Integrity check results after the restore and in post-verify.
    pub integrity: Vec<CheckResult>,
    /// Post-verify's log and performance checks (see [`RollbackReport::verification`](crate::RollbackReport::verification)).
    #[serde(default)]
    pub verification: Vec<CheckResult>,
    /// The log lines behind the log check, redacted.
    #[serde(default)]
    pub log_matches: Vec<LogMatch>,
    /// What the failure policy did, when it ran.
    pub recovery: Vec<ChecklistItem>,
    /// Notes for the report, in order.
    pub notes: Vec<String>,
    /// The notices sent about this rollback.
    #[serde(default)]
    pub notices: Vec<crate::report::NoticeRecord>,
}

impl Journal {
    /// The journal of a rollback that starts now: running, nothing done yet.
    pub fn new(
        id: RollbackId,
        checkpoint: Checkpoint,
        request: RollbackRequest,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            checkpoint,
            request,
            started_at,
            status: JournalStatus::Running,
            steps: Vec::new(),
            artifacts: Artifacts::default(),
            stopped_at: None,
            stop_issued_at: None,
            first_answer_at: None,
            healthy_at: None,
            health: Vec::new(),
            integrity: Vec::new(),
            verification: Vec::new(),
            log_matches: Vec::new(),
            recovery: Vec::new(),
            notes: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// True when `step` finished successfully (in this run or before a resume).
    pub fn is_done(&self, step: Step) -> bool {
        self.steps.iter().any(|r| r.step == step && r.outcome.is_ok())
    }

    /// The last step journaled.
    pub fn last_step(&self) -> Step {
        self.steps.last().map_or(Step::Journal, |r| r.step)
    }

    /// Where it stopped: the step it halted at, or the last step journaled.
    pub fn stopped_at_step(&self) -> Step {
        match &self.status {
            JournalStatus::Finished(Outcome::Halted { step, .. }) => *step,
            _ => self.last_step(),
        }
    }

    /// True while `resume()` has something to do: the rollback is running, was
    /// interrupted, or halted (a halted rollback is taken up again by `resume()` once the
    /// fault is cleared, and a new rollback is refused until it is).
    pub fn is_unfinished(&self) -> bool {
        !matches!(self.status, JournalStatus::Finished(_)) || self.is_halted()
    }

    /// True when the rollback ended halted and waits for `resume()`: some part could not be
    /// brought to a consistent end; the report's statement says what is where.
    pub fn is_halted(&self) -> bool {
        matches!(self.status, JournalStatus::Finished(Outcome::Halted { .. }))
            && self.artifacts.halt_resumable
    }

    /// True when `step` began (in this run or before a resume), whatever its outcome: its
    /// changes may have happened, so the failure policy must consider undoing them.
    pub fn began(&self, step: Step) -> bool {
        self.steps.iter().any(|r| r.step == step)
    }
}
