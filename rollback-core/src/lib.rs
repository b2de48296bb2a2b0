//! # rollback-core
//!
//! A production rollback runbook as code: the traits adapters implement
//! ([`DatabaseSnapshot`], [`CodeVersion`], [`ConfigStore`], [`ProcessManager`],
//! [`HealthProbe`], [`MetricsSource`], [`Notifier`], [`StateStore`]), the domain types,
//! and the [`Orchestrator`] that takes checkpoints before a deploy and rolls back in twelve
//! journaled steps: lock, journal, pre-flight, prepare (app still up), stop, emergency
//! backup, restore + integrity, activate code, restore config, start, post-verify, report.
//!
//! What it is not: an adapter. It does no I/O beyond its state directory and tokio timers;
//! PostgreSQL, git, pm2 and env files live in their own crates, and `rollback-testkit` has
//! in-memory fakes and the conformance suites every adapter must pass.
//!
//! Under the `mock` feature every trait has a `mockall` mock (`MockDatabaseSnapshot`, ...).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod automation;
pub mod domain;
pub mod duration_ms;
pub mod error;
pub mod ids;
pub mod journal;
mod orchestrator;
pub mod plan;
pub mod private_files;
pub mod progress;
pub mod report;
mod report_html;
pub mod request;
pub mod secret;
pub mod state;
pub mod sys;
mod traits;

pub use automation::{
    CommunicationPlan, Condition, DecisionMatrix, Incident, Rule, Signal, SqlProbe, TracingNotifier,
    Watchdog, WatchdogEvent,
};
#[cfg(feature = "http")]
pub use automation::{HttpProbe, HttpProbeBuilder, WebhookFormat, WebhookNotifier, WebhookNotifierBuilder};
pub use domain::*;
pub use error::{AdapterError, ErrorKind, PartOutcome, PartState, PreflightFailure, RollbackError};
pub use ids::{AppName, CheckpointId, ConfigVersionId, RevisionId, RollbackId, SnapshotId};
pub use journal::{Journal, JournalStatus};
pub use orchestrator::{HealthGate, Orchestrator, OrchestratorBuilder, PruneReport};
pub use plan::{Decision, PlannedStep, RollbackPlan, Step};
pub use progress::{ProgressEvent, ProgressKind};
pub use report::{
    ChecklistItem, DowntimeWindow, LogMatch, NoticeRecord, Outcome, RollbackReport, StepOutcome, StepRecord,
};
pub use request::{
    Cancel, FailurePolicy, LogScan, PerformanceCheck, RollbackRequest, RollbackTarget, Settings,
    SignalPolicy, StepTimeouts, DEFAULT_LOG_PATTERNS,
};
pub use secret::Secret;
pub use state::DirStateStore;
pub use traits::*;
// Named again (the glob above has them too) so that the docs mark them `mock`-only: rustdoc
// keeps a `doc(cfg)` only from the re-export that inlines an item.
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use traits::{
    MockCodeVersion, MockConfigStore, MockDatabaseSnapshot, MockHealthProbe, MockMetricsSource, MockNotifier,
    MockProcessManager, MockStateStore,
};
