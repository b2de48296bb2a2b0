//! The twelve steps of a rollback and the plan a scenario maps to.

use crate::domain::{CodeStrategy, Scenario, Scope};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One step of a rollback, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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

/// The part of the scope a step needs; without it the step is skipped as "not in scope".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Runs whatever the scope.
    Always,
    /// Runs when the database is in scope.
    Database,
    /// Runs when code is in scope.
    Code,
    /// Runs when config is in scope.
    Config,
}

/// What the orchestrator does when a step fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Nothing has changed yet: end the rollback, aborted.
    Abort,
    /// The stop may have half happened: start the app again, change nothing else.
    StartAgain,
    /// Something was changed: the failure policy applies (put the pre-rollback state back,
    /// or halt).
    Policy,
}

/// Everything about a step that is not its code, one row per step, in the order they run.
/// Adding a step is a variant of [`Step`], a row here, its code in the runner's `execute`
/// and its line in the plan.
pub(crate) struct StepRow {
    pub(crate) step: Step,
    /// How reports and logs name it.
    pub(crate) name: &'static str,
    /// What it does, for plans and progress bars.
    pub(crate) describe: &'static str,
    /// Its default time limit, in seconds.
    pub(crate) default_limit_secs: u64,
    /// What it needs in scope.
    pub(crate) needs: Needs,
    /// False for the bookkeeping steps the runner does around the others (lock, journal,
    /// report).
    pub(crate) driven: bool,
    /// What a failure of it leads to.
    pub(crate) on_failure: OnFailure,
}

const fn row(
    step: Step,
    name: &'static str,
    describe: &'static str,
    default_limit_secs: u64,
    needs: Needs,
    driven: bool,
    on_failure: OnFailure,
) -> StepRow {
    StepRow {
        step,
        name,
        describe,
        default_limit_secs,
        needs,
        driven,
        on_failure,
    }
}

#[rustfmt::skip]
pub(crate) const STEPS: [StepRow; 12] = {
    use Needs::*;
    use OnFailure::*;
    [
        row(Step::Lock, "lock", "take the rollback lock", 30, Always, false, Abort),
        row(Step::Journal, "journal", "journal the start", 30, Always, false, Abort),
        row(Step::Preflight, "pre-flight", "pre-flight checks (nothing changes)", 120, Always, true, Abort),
        row(Step::Prepare, "prepare", "prepare while the app still serves", 60 * 60, Always, true, Abort),
        row(Step::Stop, "stop", "stop the app", 120, Always, true, StartAgain),
        row(Step::EmergencyBackup, "emergency backup", "emergency backup of the current state", 30 * 60, Always, true, Policy),
        row(Step::RestoreDatabase, "restore database", "restore the database and check integrity", 60 * 60, Database, true, Policy),
        row(Step::ActivateCode, "activate code", "activate the code", 120, Code, true, Policy),
        row(Step::RestoreConfig, "restore config", "restore the config", 60, Config, true, Policy),
        row(Step::Start, "start", "start the app", 180, Always, true, Policy),
        row(Step::PostVerify, "post-verify", "verify health and integrity", 10 * 60, Always, true, Policy),
        row(Step::Report, "report", "journal the end and write the report", 60, Always, false, Policy),
    ]
};

impl Step {
    /// All twelve, in order.
    pub const ALL: [Step; 12] = {
        let mut all = [Step::Lock; 12];
        let mut i = 0;
        while i < 12 {
            all[i] = STEPS[i].step;
            i += 1;
        }
        all
    };

    /// Its row in [`STEPS`].
    pub(crate) fn row(self) -> &'static StepRow {
        // Every step has its row (checked by a test); Lock's is the fallback.
        STEPS.iter().find(|r| r.step == self).unwrap_or(&STEPS[0])
    }

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
        self.row().describe
    }

    /// Why this step does nothing for `scope` ("database not in scope (code)"), or `None`
    /// when it runs.
    pub fn out_of_scope(self, scope: Scope) -> Option<String> {
        let (inside, what) = match self.row().needs {
            Needs::Always => return None,
            Needs::Database => (scope.database, "database"),
            Needs::Code => (scope.code, "code"),
            Needs::Config => (scope.config, "config"),
        };
        (!inside).then(|| format!("{what} not in scope ({scope})"))
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.row().name)
    }
}

#[cfg(test)]
mod step_table_tests {
    use super::*;

    #[test]
    fn every_step_has_one_row_in_order() {
        for (i, row) in STEPS.iter().enumerate() {
            assert_eq!(row.step.number(), i + 1, "{} is out of order", row.name);
            let rows = STEPS.iter().filter(|r| r.step == row.step).count();
            assert_eq!(rows, 1, "{} has {rows} rows", row.name);
        }
        let mut sorted = Step::ALL;
        sorted.sort();
        assert_eq!(sorted, Step::ALL, "the enum order is the run order");
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
#[non_exhaustive]
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
