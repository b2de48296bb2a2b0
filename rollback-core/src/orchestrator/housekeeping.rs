//! What an operator asks of the orchestrator besides a rollback: is everything ready (the
//! checks that need no target), what is there (snapshots, journals, reports, the live
//! revision), and pruning old checkpoints.

use super::{preflight, reporting, Orchestrator};
use crate::domain::{Checkpoint, Revision, SnapshotInfo};
use crate::error::{ErrorKind, PreflightFailure, RollbackError};
use crate::ids::{CheckpointId, ConfigVersionId, RollbackId, SnapshotId};
use crate::journal::Journal;
use crate::plan::Step;
use crate::report::{ChecklistItem, RollbackReport};
use std::collections::BTreeSet;

/// What [`Orchestrator::prune`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// The checkpoints removed, with their snapshots and config backups.
    pub removed: Vec<CheckpointId>,
    /// Older checkpoints kept anyway, each with why.
    pub protected: Vec<(CheckpointId, String)>,
    /// What could not be removed (a snapshot the adapter refused to delete, say); the
    /// checkpoint itself is gone, its data is left.
    pub problems: Vec<String>,
}

impl Orchestrator {
    /// Every check that needs no rollback target, changing nothing: the app known to the
    /// process manager, the database reachable with its tools, the live revision readable,
    /// the live config readable, each health probe. Returns the checklist when every check
    /// passed, else [`RollbackError::Preflight`] naming each failure.
    pub async fn check_ready(&self) -> Result<Vec<ChecklistItem>, RollbackError> {
        let (items, failures) = preflight::readiness_checks(self).await;
        if failures.is_empty() {
            Ok(items)
        } else {
            Err(RollbackError::Preflight { failures })
        }
    }

    /// The database's snapshots, newest first (empty without a database adapter).
    pub async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, RollbackError> {
        let Some(db) = &self.database else {
            return Ok(Vec::new());
        };
        self.timed(Step::Preflight, "listing the snapshots", db.list())
            .await
            .map_err(|error| preflight_failure("listing the snapshots", error))
    }

    /// The revision live now (`None` without a code adapter).
    pub async fn live_revision(&self) -> Result<Option<Revision>, RollbackError> {
        let Some(code) = &self.code else {
            return Ok(None);
        };
        self.timed(Step::Preflight, "reading the live revision", code.current())
            .await
            .map(Some)
            .map_err(|error| preflight_failure("reading the live revision", error))
    }

    /// Every journaled rollback, newest first.
    pub async fn journals(&self) -> Result<Vec<Journal>, RollbackError> {
        self.state.journals().await.map_err(RollbackError::State)
    }

    /// The report of rollback `id`, rebuilt from its journal.
    pub async fn report_of(&self, id: &RollbackId) -> Result<RollbackReport, RollbackError> {
        let journal = self
            .journals()
            .await?
            .into_iter()
            .find(|j| &j.id == id)
            .ok_or_else(|| RollbackError::UnknownRollback(id.clone()))?;
        Ok(reporting::build_report(self, &journal))
    }

    /// Removes the checkpoints older than the newest `keep`, each with its database
    /// snapshot and its config backup, except a checkpoint that is still needed: the newest
    /// good one, the newest one of the revision live now, and any one a journal refers to.
    /// The checkpoint record goes first, so a crash half way leaves unreferenced data, never
    /// a checkpoint whose snapshot is gone. Refused while a rollback is unfinished.
    pub async fn prune(&self, keep: usize) -> Result<PruneReport, RollbackError> {
        self.refuse_if_unfinished().await?;
        let checkpoints = self.checkpoints().await?;
        let in_journals: BTreeSet<CheckpointId> = self
            .journals()
            .await?
            .into_iter()
            .map(|j| j.checkpoint.id)
            .collect();
        let live = self.live_revision().await?.map(|r| r.id);
        let last_good = checkpoints.iter().find(|c| c.good).map(|c| c.id.clone());
        let live_one = live
            .as_ref()
            .and_then(|rev| checkpoints.iter().find(|c| c.revision.as_ref() == Some(rev)))
            .map(|c| c.id.clone());
        let mut report = PruneReport::default();
        let (_newest, older) = checkpoints.split_at(keep.min(checkpoints.len()));
        let mut removed: Vec<&Checkpoint> = Vec::new();
        for c in older {
            let why = if Some(&c.id) == last_good.as_ref() {
                Some("the last good checkpoint")
            } else if Some(&c.id) == live_one.as_ref() {
                Some("the checkpoint of the revision live now")
            } else if in_journals.contains(&c.id) {
                Some("a rollback's journal refers to it")
            } else {
                None
            };
            match why {
                Some(why) => report.protected.push((c.id.clone(), why.to_owned())),
                None => removed.push(c),
            }
        }
        // Data another remaining checkpoint still points at stays.
        let removing: BTreeSet<&CheckpointId> = removed.iter().map(|c| &c.id).collect();
        let staying = || checkpoints.iter().filter(|c| !removing.contains(&c.id));
        let used_snapshots: BTreeSet<&SnapshotId> = staying().filter_map(|c| c.snapshot.as_ref()).collect();
        let used_configs: BTreeSet<&ConfigVersionId> = staying().filter_map(|c| c.config.as_ref()).collect();
        for c in removed {
            match self.state.remove_checkpoint(&c.id).await {
                Ok(()) => report.removed.push(c.id.clone()),
                Err(e) if e.kind() == ErrorKind::Unsupported => {
                    report
                        .protected
                        .push((c.id.clone(), format!("the state store keeps it: {e}")));
                    continue;
                }
                Err(e) => return Err(RollbackError::State(e)),
            }
            if let (Some(db), Some(snapshot)) = (
                &self.database,
                c.snapshot.as_ref().filter(|s| !used_snapshots.contains(s)),
            ) {
                if let Err(e) = self
                    .timed(Step::Preflight, "removing a snapshot", db.remove(snapshot))
                    .await
                {
                    report
                        .problems
                        .push(format!("snapshot {snapshot} of checkpoint {} left: {e}", c.id));
                }
            }
            if let (Some(config), Some(version)) = (
                &self.config,
                c.config.as_ref().filter(|v| !used_configs.contains(v)),
            ) {
                if let Err(e) = self
                    .timed(
                        Step::Preflight,
                        "removing a config backup",
                        config.remove(version),
                    )
                    .await
                {
                    report.problems.push(format!(
                        "config backup {version} of checkpoint {} left: {e}",
                        c.id
                    ));
                }
            }
        }
        tracing::info!(
            removed = report.removed.len(),
            protected = report.protected.len(),
            "checkpoints pruned"
        );
        Ok(report)
    }
}

fn preflight_failure(check: &str, error: crate::error::AdapterError) -> RollbackError {
    RollbackError::Preflight {
        failures: vec![PreflightFailure {
            check: check.to_owned(),
            error,
        }],
    }
}
