//! The runbook's "Rollback Decision Matrix": typed signals mapped to a [`Decision`] with the
//! reason, replaceable by the user.

use crate::plan::Decision;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What was observed about a release, in the matrix's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Signal {
    /// Data is damaged.
    DatabaseCorruption,
    /// The service does not answer at all (health failing, most requests erroring).
    CompleteFailure,
    /// The release opened a security hole.
    SecurityVulnerability,
    /// Data is being written wrong.
    DataIntegrity,
    /// Users cannot log in.
    AuthenticationBroken,
    /// Slower, not broken (memory or CPU high).
    PerformanceDegradation,
    /// A minor feature does not work.
    MinorFunctionality,
    /// A bug that hurts no one much.
    NonCriticalBug,
    /// Users are inconvenienced.
    UserExperience,
    /// A configuration value is wrong.
    ConfigurationProblem,
    /// A cosmetic problem.
    MinorUi,
    /// Documentation is wrong.
    Documentation,
    /// The alert was wrong.
    FalsePositiveAlert,
    /// Behaviour changed on purpose.
    ExpectedBehaviourChange,
}

impl Signal {
    /// Every signal, in the runbook's order.
    pub const ALL: [Signal; 14] = [
        Signal::DatabaseCorruption,
        Signal::CompleteFailure,
        Signal::SecurityVulnerability,
        Signal::DataIntegrity,
        Signal::AuthenticationBroken,
        Signal::PerformanceDegradation,
        Signal::MinorFunctionality,
        Signal::NonCriticalBug,
        Signal::UserExperience,
        Signal::ConfigurationProblem,
        Signal::MinorUi,
        Signal::Documentation,
        Signal::FalsePositiveAlert,
        Signal::ExpectedBehaviourChange,
    ];
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::DatabaseCorruption => "database corruption",
            Signal::CompleteFailure => "complete service failure",
            Signal::SecurityVulnerability => "security vulnerability",
            Signal::DataIntegrity => "data integrity issue",
            Signal::AuthenticationBroken => "authentication broken",
            Signal::PerformanceDegradation => "performance degradation",
            Signal::MinorFunctionality => "minor functionality issue",
            Signal::NonCriticalBug => "non-critical bug",
            Signal::UserExperience => "user experience issue",
            Signal::ConfigurationProblem => "configuration problem",
            Signal::MinorUi => "minor UI issue",
            Signal::Documentation => "documentation error",
            Signal::FalsePositiveAlert => "false-positive alert",
            Signal::ExpectedBehaviourChange => "expected behaviour change",
        })
    }
}

/// One row of the matrix: what to do and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixEntry {
    /// What to do.
    pub decision: Decision,
    /// Why, for the report and the notices.
    pub reason: String,
}

/// Signals to decisions. [`DecisionMatrix::runbook`] is the runbook's table; [`set`](Self::set)
/// replaces a row. A signal without a row is `InvestigateFirst` (a human looks).
///
/// ```
/// use rollback_core::{Decision, DecisionMatrix, Signal};
/// let mut matrix = DecisionMatrix::runbook();
/// assert_eq!(matrix.decide(Signal::CompleteFailure).decision, Decision::RollbackNow);
/// matrix.set(Signal::PerformanceDegradation, Decision::RollbackNow, "our SLO is strict");
/// assert_eq!(matrix.decide(Signal::PerformanceDegradation).reason, "our SLO is strict");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionMatrix {
    rows: BTreeMap<Signal, MatrixEntry>,
}

impl DecisionMatrix {
    /// An empty matrix: every signal is `InvestigateFirst` until set.
    pub fn empty() -> Self {
        Self {
            rows: BTreeMap::new(),
        }
    }

    /// The runbook's table.
    pub fn runbook() -> Self {
        use Decision::*;
        use Signal::*;
        let mut m = Self::empty();
        let now = "the runbook rolls back immediately: users or data are being hurt";
        let investigate = "the runbook investigates first: the release may be fixable forward";
        let none = "the runbook does not roll back for this";
        for s in [
            DatabaseCorruption,
            CompleteFailure,
            SecurityVulnerability,
            DataIntegrity,
            AuthenticationBroken,
        ] {
            m.set(s, RollbackNow, now);
        }
        for s in [
            PerformanceDegradation,
            MinorFunctionality,
            NonCriticalBug,
            UserExperience,
            ConfigurationProblem,
        ] {
            m.set(s, InvestigateFirst, investigate);
        }
        for s in [
            MinorUi,
            Documentation,
            FalsePositiveAlert,
            ExpectedBehaviourChange,
        ] {
            m.set(s, NoRollback, none);
        }
        m
    }

    /// Replaces the row for `signal`.
    pub fn set(&mut self, signal: Signal, decision: Decision, reason: impl Into<String>) -> &mut Self {
        self.rows.insert(
            signal,
            MatrixEntry {
                decision,
                reason: reason.into(),
            },
        );
        self
    }

    /// What to do about `signal`.
    pub fn decide(&self, signal: Signal) -> MatrixEntry {
        self.rows.get(&signal).cloned().unwrap_or_else(|| MatrixEntry {
            decision: Decision::InvestigateFirst,
            reason: format!("no row for {signal} in the decision matrix: a human decides"),
        })
    }
}

impl Default for DecisionMatrix {
    fn default() -> Self {
        Self::runbook()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runbook_signal_lands_in_the_runbook_column() {
        let m = DecisionMatrix::runbook();
        let column = |s: Signal| m.decide(s).decision;
        let expected = [
            (Signal::DatabaseCorruption, Decision::RollbackNow),
            (Signal::CompleteFailure, Decision::RollbackNow),
            (Signal::SecurityVulnerability, Decision::RollbackNow),
            (Signal::DataIntegrity, Decision::RollbackNow),
            (Signal::AuthenticationBroken, Decision::RollbackNow),
            (Signal::PerformanceDegradation, Decision::InvestigateFirst),
            (Signal::MinorFunctionality, Decision::InvestigateFirst),
            (Signal::NonCriticalBug, Decision::InvestigateFirst),
            (Signal::UserExperience, Decision::InvestigateFirst),
            (Signal::ConfigurationProblem, Decision::InvestigateFirst),
            (Signal::MinorUi, Decision::NoRollback),
            (Signal::Documentation, Decision::NoRollback),
            (Signal::FalsePositiveAlert, Decision::NoRollback),
            (Signal::ExpectedBehaviourChange, Decision::NoRollback),
        ];
        assert_eq!(expected.len(), Signal::ALL.len(), "every signal is in the table");
        for (signal, decision) in expected {
            assert_eq!(column(signal), decision, "{signal}");
            assert!(!m.decide(signal).reason.is_empty());
        }
    }

    #[test]
    fn a_replaced_or_missing_row() {
        let mut m = DecisionMatrix::empty();
        assert_eq!(
            m.decide(Signal::CompleteFailure).decision,
            Decision::InvestigateFirst
        );
        m.set(Signal::MinorUi, Decision::RollbackNow, "brand rules");
        assert_eq!(m.decide(Signal::MinorUi).decision, Decision::RollbackNow);
    }
}
