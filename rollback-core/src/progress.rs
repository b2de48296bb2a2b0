//! Progress events, so a caller can draw a progress bar or stream a log.

use crate::ids::RollbackId;
use crate::plan::Step;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProgressKind {
    /// A step started.
    Started,
    /// A step finished well.
    Finished,
    /// A step was not needed.
    Skipped,
    /// A step failed; the failure policy takes over.
    Failed(String),
    /// The failure policy is putting the pre-rollback state back.
    Recovering,
}

/// One progress event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// The rollback.
    pub rollback: RollbackId,
    /// The step.
    pub step: Step,
    /// 1-based position of the step, out of [`Step::ALL`]'s twelve.
    pub number: usize,
    /// What happened.
    pub kind: ProgressKind,
}

/// Where progress events go: an unbounded channel the caller reads from.
///
/// ```
/// use rollback_core::progress::channel;
/// let (sink, mut events) = channel();
/// # drop(sink); drop(events.try_recv());
/// ```
pub type ProgressSink = UnboundedSender<ProgressEvent>;

/// A progress channel: give the sender to the orchestrator's builder, read the receiver.
pub fn channel() -> (ProgressSink, tokio::sync::mpsc::UnboundedReceiver<ProgressEvent>) {
    tokio::sync::mpsc::unbounded_channel()
}
