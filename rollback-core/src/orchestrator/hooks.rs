//! The caller's hooks around the steps (see [`Hook`](crate::Hook) for when each runs and
//! what its failure does).

use super::Orchestrator;
use crate::domain::HookPoint;
use crate::error::AdapterError;
use crate::journal::Journal;
use crate::plan::Step;
use crate::report::{ChecklistItem, Outcome};
use crate::traits::{Hook, HookContext};
use std::sync::Arc;

/// A hook and where it runs.
#[derive(Clone)]
pub(super) struct Registered {
    pub(super) point: HookPoint,
    pub(super) hook: Arc<dyn Hook>,
    /// For after-start hooks: a failure fails post-verify.
    pub(super) required: bool,
}

/// What the hooks of one point did.
#[derive(Default)]
pub(super) struct HookRun {
    /// One line per hook.
    pub(super) items: Vec<ChecklistItem>,
    /// The first failure that must stop the step (every before-stop failure, a required
    /// after-start failure).
    pub(super) stopping: Option<AdapterError>,
    /// Every failure, as text.
    pub(super) failures: Vec<String>,
}

fn context(
    o: &Orchestrator,
    journal: &Journal,
    point: HookPoint,
    pre_rollback_release: bool,
    outcome: Option<&Outcome>,
) -> HookContext {
    HookContext {
        point,
        rollback: journal.id.clone(),
        app: o.app.clone(),
        checkpoint: journal.checkpoint.id.clone(),
        scope: journal.request.scope,
        reason: journal.request.reason.clone(),
        graceful_reload: journal.artifacts.graceful_reload,
        pre_rollback_release,
        outcome: outcome.cloned(),
    }
}

/// Runs the hooks of `point` in the order they were registered, each within `step`'s
/// limit. Before the stop, the first failure ends the run (nothing else is done); after
/// it, every hook runs.
pub(super) async fn run(
    o: &Orchestrator,
    journal: &Journal,
    point: HookPoint,
    step: Step,
    pre_rollback_release: bool,
    outcome: Option<&Outcome>,
) -> HookRun {
    let ctx = context(o, journal, point, pre_rollback_release, outcome);
    let mut run = HookRun::default();
    for r in o.hooks.iter().filter(|r| r.point == point) {
        let name = r.hook.name();
        let what = format!("hook `{name}` ({point})");
        match o.timed(step, &what, r.hook.run(&ctx)).await {
            Ok(()) => run.items.push(ChecklistItem::done(what)),
            Err(e) => {
                tracing::warn!(hook = %name, %point, error = %e, "a hook failed");
                run.items.push(ChecklistItem::not_done(format!("{what}: {e}")));
                run.failures.push(format!("{what}: {e}"));
                let stops = point == HookPoint::BeforeStop || (r.required && !pre_rollback_release);
                if stops && run.stopping.is_none() {
                    run.stopping = Some(e.context(format!("{what} failed")));
                }
                if point == HookPoint::BeforeStop {
                    break;
                }
            }
        }
    }
    run
}

/// True when hooks are registered for `point`.
pub(super) fn any(o: &Orchestrator, point: HookPoint) -> bool {
    o.hooks.iter().any(|r| r.point == point)
}
