//! The runbook's "Rollback Automation", "Rollback Decision Matrix" and "Rollback
//! Communication Plan" as code: health probes, rules over sliding windows, the decision
//! matrix, the watchdog that acts on them, and the communication plan with its notifiers.
//!
//! HTTP parts (`HttpProbe`, `WebhookNotifier`, `WebhookFormat`) are behind the `http`
//! feature, which pulls in reqwest and rustls (HTTPS with the built-in roots and private CAs).

mod comms;
#[cfg(feature = "http")]
mod http_client;
mod matrix;
mod notifiers;
mod probes;
mod rules;
mod watchdog;
#[cfg(feature = "http")]
mod webhook_format;

pub use comms::{
    Audience, CommunicationPlan, Contact, EscalationLevel, Incident, ScheduledNotice, SentNotice,
};
pub use matrix::{DecisionMatrix, MatrixEntry, Signal};
pub use notifiers::TracingNotifier;
#[cfg(feature = "http")]
pub use notifiers::{WebhookNotifier, WebhookNotifierBuilder};
pub use probes::SqlProbe;
#[cfg(feature = "http")]
pub use probes::{HttpProbe, HttpProbeBuilder};
pub use rules::{Condition, Firing, Observation, Rule, RuleTracker};
pub use watchdog::{Watchdog, WatchdogBuilder, WatchdogEvent, WatchdogRun};
#[cfg(feature = "http")]
pub use webhook_format::WebhookFormat;
