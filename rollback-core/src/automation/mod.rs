//! The runbook's "Rollback Automation", "Rollback Decision Matrix" and "Rollback
//! Communication Plan" as code: health probes, rules over sliding windows, the decision
//! matrix, the watchdog that acts on them, and the communication plan with its notifiers.
//!
//! HTTP parts (`HttpProbe`, `WebhookNotifier`) are behind the `http` feature, which
//! pulls in reqwest.

mod comms;
mod matrix;
mod notifiers;
mod probes;
mod rules;
mod watchdog;

pub use comms::{
    Audience, CommunicationPlan, Contact, EscalationLevel, Incident, ScheduledNotice, SentNotice,
};
pub use matrix::{DecisionMatrix, MatrixEntry, Signal};
pub use notifiers::TracingNotifier;
#[cfg(feature = "http")]
pub use notifiers::WebhookNotifier;
#[cfg(feature = "http")]
pub use probes::HttpProbe;
pub use probes::SqlProbe;
pub use rules::{Condition, Firing, Observation, Rule, RuleTracker};
pub use watchdog::{Watchdog, WatchdogBuilder, WatchdogEvent, WatchdogRun};
