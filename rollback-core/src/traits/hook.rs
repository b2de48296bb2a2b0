use crate::domain::{HookPoint, Scope};
use crate::error::AdapterError;
use crate::ids::{AppName, CheckpointId, RollbackId};
use crate::report::Outcome;
use async_trait::async_trait;

/// Work of the caller's own around a rollback's steps, the equivalent of Capistrano's
/// `deploy:reverting` / `deploy:reverted`: a maintenance page and draining a queue before
/// the stop, a cache purge and a smoke test after the start, publishing the report after it
/// is written. Registered for a [`HookPoint`](crate::HookPoint) with
/// [`OrchestratorBuilder::hook`](crate::OrchestratorBuilder::hook).
///
/// When each runs and what its failure does:
/// - [`HookPoint::BeforeStop`](crate::HookPoint::BeforeStop): at the end of prepare, right before the app is stopped (or
///   reloaded). A failure aborts the rollback with nothing changed; the after-start hooks
///   then run, so that what the earlier before-stop hooks did (a maintenance page) is
///   undone.
/// - [`HookPoint::AfterStart`](crate::HookPoint::AfterStart): in post-verify, once the app is healthy; also after the
///   failure policy started the pre-rollback release again, and after an aborted rollback
///   whose before-stop hooks ran. A failure is recorded in the report; a hook registered
///   as required fails post-verify, and the failure policy applies.
/// - [`HookPoint::AfterReport`](crate::HookPoint::AfterReport): once the report is stored; a failure is recorded in the
///   returned report's notes.
///
/// Each run is bounded by its step's time limit. Required: `name`, `run`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Hook: Send + Sync {
    /// How reports name it, e.g. `"maintenance page"`.
    fn name(&self) -> String;

    /// Does the work. Must be idempotent: a resumed rollback may run it again.
    async fn run(&self, context: &HookContext) -> Result<(), AdapterError>;
}

/// What a [`Hook`](crate::Hook) is told about the rollback it runs in.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct HookContext {
    /// Where it runs.
    pub point: HookPoint,
    /// The rollback.
    pub rollback: RollbackId,
    /// The app.
    pub app: AppName,
    /// The checkpoint rolled back to.
    pub checkpoint: CheckpointId,
    /// What goes back.
    pub scope: Scope,
    /// Why.
    pub reason: String,
    /// True when the app is reloaded, never stopped.
    pub graceful_reload: bool,
    /// True when the release running is the pre-rollback one again (the failure policy
    /// put it back, or the rollback was aborted): a hook undoes what its before-stop
    /// counterpart did, and does not treat this as the rolled-back release.
    pub pre_rollback_release: bool,
    /// How the rollback ended (after the report only).
    pub outcome: Option<Outcome>,
}

/// Forwards every method, so that an `Arc` of a hook is one too.
#[async_trait]
impl<T: Hook + ?Sized> Hook for std::sync::Arc<T> {
    fn name(&self) -> String {
        (**self).name()
    }

    async fn run(&self, context: &HookContext) -> Result<(), AdapterError> {
        (**self).run(context).await
    }
}
