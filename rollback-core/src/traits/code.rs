use crate::domain::{PreparedRevision, Revision};
use crate::error::AdapterError;
use crate::ids::RevisionId;
use async_trait::async_trait;

/// The application's code and which revision of it runs.
///
/// [`prepare`](Self::prepare) checks out and builds while the app still runs;
/// [`activate`](Self::activate) switches what the app runs from, fast, while it is stopped.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CodeVersion: Send + Sync {
    /// The revision the app runs now.
    async fn current(&self) -> Result<Revision, AdapterError>;

    /// Resolves a spec (full or short hash, tag, branch, `HEAD~N`) to one revision.
    /// Unknown or ambiguous specs give an error naming the candidates. Changes nothing.
    async fn resolve(&self, spec: &str) -> Result<Revision, AdapterError>;

    /// The last `n` revisions of the current line, newest first.
    async fn history(&self, n: usize) -> Result<Vec<Revision>, AdapterError>;

    /// Checks the revision out where it will run and builds it, leaving what the app runs
    /// from untouched. A failed build changes nothing the app uses. Safe to call again.
    async fn prepare(&self, revision: &RevisionId) -> Result<PreparedRevision, AdapterError>;

    /// Checks now, changing nothing, that [`activate`](Self::activate) would not refuse
    /// `revision` for a reason that is already knowable (a working tree with uncommitted
    /// changes, a release directory that cannot be written): pre-flight and `dry_run()`
    /// call it so that the refusal comes before the app is stopped. A revision that already
    /// is live passes.
    ///
    /// Optional: the provided version accepts everything. An adapter whose `activate` can
    /// refuse should implement it.
    async fn check_activate(&self, revision: &RevisionId) -> Result<(), AdapterError> {
        let _ = revision;
        Ok(())
    }

    /// True when [`activate`](Self::activate) can run under a serving app without mixing
    /// versions in it: the running processes keep the files they started from, and only
    /// new ones see the activated revision (an atomic release switch). The orchestrator
    /// reloads an app gracefully, never stopping it, only when this holds: a working tree
    /// checked out under a running app could serve files of two revisions at once.
    ///
    /// Optional: the provided version says `false` (stop, activate, start).
    fn switches_under_a_running_app(&self) -> bool {
        false
    }

    /// The revision live now as a prepared revision, kept so that `activate` can switch
    /// back to it without a build (the emergency backup of the code). Changes nothing
    /// the app uses.
    async fn preserve_current(&self) -> Result<PreparedRevision, AdapterError>;

    /// Makes the app run from a prepared revision on its next start. Atomic (never a
    /// half-switched tree) and idempotent.
    async fn activate(&self, prepared: &PreparedRevision) -> Result<(), AdapterError>;

    /// Makes revert commits for `commits` (newest first) on the current line, never
    /// rewriting history, and returns the new head. A conflict gives
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) naming the paths and leaves the
    /// repository as it was.
    async fn revert(&self, commits: &[RevisionId]) -> Result<Revision, AdapterError>;
}
