//! The twelve steps of a rollback and the plan a scenario maps to.

use crate::domain::{CodeStrategy, Scenario, Scope};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One step of a rollback, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// 1. Take the lock; a second rollback at once is refused.
    Lock,
    /// 2. Journal `started`.
    Journal,
    /// 3. Check everything that can be checked without changing anything.
    Preflight,
    /// 4. Slow work while the app still serves: stage the snapshot, build the revision.
    Prepare,
    /// 5. Stop the app through the process manager.
    Stop,
    /// 6. Keep the current database, code and config aside.
    EmergencyBackup,
    /// 7. Put the snapshot live and check integrity.
    RestoreDatabase,
    /// 8. Switch the code.
    ActivateCode,
    /// 9. Put the config version live.
    RestoreConfig,
    /// 10. Start the app.
    Start,
    /// 11. Health probes until healthy or timeout; integrity again.
    PostVerify,
    /// 12. Journal `finished`, write the report.
    Report,
}

impl Step {
    /// All twelve, in order.
    pub const ALL: [Step; 12] = [
        Step::Lock,
        Step::Journal,
        Step::Preflight,
        Step::Prepare,
        Step::Stop,
        Step::EmergencyBackup,
        Step::RestoreDatabase,
        Step::ActivateCode,
        Step::RestoreConfig,
        Step::Start,
        Step::PostVerify,
        Step::Report,
    ];

    /// 1-based position, as the design numbers them.
    pub fn number(self) -> usize {
        Step::ALL.iter().position(|s| *s == self).map_or(0, |i| i + 1)
    }

    /// True for steps after the emergency backup: a failure there triggers the failure policy.
    pub fn after_emergency_backup(self) -> bool {
        self > Step::EmergencyBackup && self < Step::Report
    }

    /// What the step does, for plans and progress bars.
    pub fn describe(self) -> &'static str {
        match self {
            Step::Lock => "take the rollback lock",
            Step::Journal => "journal the start",
            Step::Preflight => "pre-flight checks (nothing changes)",
            Step::Prepare => "prepare while the app still serves",
            Step::Stop => "stop the app",
            Step::EmergencyBackup => "emergency backup of the current state",
            Step::RestoreDatabase => "restore the database and check integrity",
            Step::ActivateCode => "activate the code",
            Step::RestoreConfig => "restore the config",
            Step::Start => "start the app",
            Step::PostVerify => "verify health and integrity",
            Step::Report => "journal the end and write the report",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Lock => "lock",
            Step::Journal => "journal",
            Step::Preflight => "pre-flight",
            Step::Prepare => "prepare",
            Step::Stop => "stop",
            Step::EmergencyBackup => "emergency backup",
            Step::RestoreDatabase => "restore database",
            Step::ActivateCode => "activate code",
            Step::RestoreConfig => "restore config",
            Step::Start => "start",
            Step::PostVerify => "post-verify",
            Step::Report => "report",
        })
    }
}

/// What a rollback will do, step by step; returned by `dry_run` and kept in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackPlan {
    /// The scenario it came from, if any.
    pub scenario: Option<Scenario>,
    /// What goes back.
    pub scope: Scope,
    /// How code goes back.
    pub code_strategy: CodeStrategy,
    /// Each step with the actions it will take, or why it is skipped.
    pub steps: Vec<PlannedStep>,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// The step.
    pub step: Step,
    /// What it will do; empty when skipped.
    pub actions: Vec<String>,
    /// Why it does nothing, when it does nothing.
    pub skipped: Option<String>,
}

/// What to do about an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Roll back now.
    RollbackNow,
    /// Diagnose first; no automatic rollback.
    InvestigateFirst,
    /// Do not roll back.
    NoRollback,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::RollbackNow => "roll back now",
            Decision::InvestigateFirst => "investigate first",
            Decision::NoRollback => "no rollback",
        })
    }
}
