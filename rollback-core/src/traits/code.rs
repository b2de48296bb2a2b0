use crate::domain::{PreparedRevision, Revision};
use crate::error::AdapterError;
use crate::ids::RevisionId;
use async_trait::async_trait;

/// The application's code and which revision of it runs.
///
/// [`prepare`](Self::prepare) checks out and builds while the app still runs;
/// [`activate`](Self::activate) switches what the app runs from, fast, while it is stopped.
/// The emergency backup keeps the live release with
/// [`preserve_current`](Self::preserve_current), and the failure policy puts it back with
/// [`reinstate`](Self::reinstate) (the same pair as the database's and the config's).
///
/// Required: `current`, `resolve`, `history`, `prepare`, `preserve_current`, `activate`,
/// `revert`. Provided (override where the adapter can do better): `check_activate`,
/// `switches_under_a_running_app`, `reinstate`. New capabilities are added as provided
/// methods, so adding one never breaks an adapter.
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

    /// Puts back what [`preserve_current`](Self::preserve_current) kept (the failure
    /// policy's undo of the code). Idempotent.
    ///
    /// Optional: the provided version activates it.
    async fn reinstate(&self, preserved: &PreparedRevision) -> Result<(), AdapterError> {
        self.activate(preserved).await
    }

    /// Makes revert commits for `commits` (newest first) on the current line, never
    /// rewriting history, and returns the new head. A conflict gives
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) naming the paths and leaves the
    /// repository as it was.
    async fn revert(&self, commits: &[RevisionId]) -> Result<Revision, AdapterError>;
}

/// Forwards every method, provided ones included, so that an `Arc` of an adapter (or an
/// `Arc<dyn CodeVersion>`) is one too: builders take `impl CodeVersion`, and callers that keep a
/// handle (tests reading a fake's calls) pass a clone of their `Arc`.
#[async_trait]
impl<T: CodeVersion + ?Sized> CodeVersion for std::sync::Arc<T> {
    async fn current(&self) -> Result<Revision, AdapterError> {
        (**self).current().await
    }

    async fn resolve(&self, spec: &str) -> Result<Revision, AdapterError> {
        (**self).resolve(spec).await
    }

    async fn history(&self, n: usize) -> Result<Vec<Revision>, AdapterError> {
        (**self).history(n).await
    }

    async fn prepare(&self, revision: &RevisionId) -> Result<PreparedRevision, AdapterError> {
        (**self).prepare(revision).await
    }

    async fn check_activate(&self, revision: &RevisionId) -> Result<(), AdapterError> {
        (**self).check_activate(revision).await
    }

    fn switches_under_a_running_app(&self) -> bool {
        (**self).switches_under_a_running_app()
    }

    async fn preserve_current(&self) -> Result<PreparedRevision, AdapterError> {
        (**self).preserve_current().await
    }

    async fn activate(&self, prepared: &PreparedRevision) -> Result<(), AdapterError> {
        (**self).activate(prepared).await
    }

    async fn reinstate(&self, preserved: &PreparedRevision) -> Result<(), AdapterError> {
        (**self).reinstate(preserved).await
    }

    async fn revert(&self, commits: &[RevisionId]) -> Result<Revision, AdapterError> {
        (**self).revert(commits).await
    }
}
