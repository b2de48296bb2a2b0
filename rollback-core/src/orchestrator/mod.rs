//! The orchestrator: checkpoints before a deploy, and the twelve-step rollback.

mod health_gate;
mod hooks;
mod housekeeping;
mod investigate;
mod lock;
mod notices;
mod planning;
mod preflight;
mod reporting;
mod run;
mod signals;

pub(crate) use crate::request::{
    Cancel, FailurePolicy, PerformanceCheck, RollbackRequest, RollbackTarget, Settings, SignalPolicy,
};
pub use housekeeping::PruneReport;

use crate::domain::LockHolder;
use crate::domain::{Checkpoint, IntegrityChecks, Scenario, Scope};
use crate::error::{AdapterError, RollbackError};
use crate::ids::{AppName, CheckpointId, RevisionId, RollbackId};
use crate::journal::Journal;
use crate::plan::Step;
use crate::progress::ProgressSink;
use crate::report::RollbackReport;
use crate::traits::StateStore;
use crate::traits::{CodeVersion, ConfigStore, DatabaseSnapshot, HealthProbe, MetricsSource, ProcessManager};
use chrono::Utc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// What [`Orchestrator::wait_for_healthy`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthGate {
    /// True when every probe passed before the timeout.
    pub healthy: bool,
    /// When the passing round answered.
    pub healthy_at: Option<chrono::DateTime<Utc>>,
    /// The last results, one per probe.
    pub results: Vec<crate::domain::ProbeResult>,
}

/// Builds an [`Orchestrator`]. A process manager and a state store are required; the
/// database, code and config adapters are needed only by rollbacks whose scope uses them.
///
/// Setters take the adapter itself (`impl DatabaseSnapshot`, ...); an `Arc` of one is one
/// too, for callers that keep a handle. [`build`](Self::build) checks what is missing and
/// the settings.
pub struct OrchestratorBuilder {
    app: AppName,
    database: Option<Arc<dyn DatabaseSnapshot>>,
    code: Option<Arc<dyn CodeVersion>>,
    config: Option<Arc<dyn ConfigStore>>,
    process: Option<Arc<dyn ProcessManager>>,
    probes: Vec<Arc<dyn HealthProbe>>,
    metrics: Option<Arc<dyn MetricsSource>>,
    state: Option<Arc<dyn StateStore>>,
    settings: Settings,
    progress: Option<ProgressSink>,
    communication: notices::Communication,
    hooks: Vec<hooks::Registered>,
}

impl OrchestratorBuilder {
    /// Adds a notifier: every rollback is announced to it when it starts and when it ends
    /// (finished, failed, halted), each notice naming who is responsible now and next.
    pub fn notifier(mut self, notifier: impl crate::traits::Notifier + 'static) -> Self {
        self.communication.notifiers.push(Arc::new(notifier));
        self
    }

    /// The communication plan whose escalation path and emergency contacts the notices
    /// name (default: the runbook's, without contacts).
    pub fn communication_plan(mut self, plan: crate::automation::CommunicationPlan) -> Self {
        self.communication.plan = plan;
        self
    }

    /// How long one notifier may take per notice (default 10 s); a slow one is recorded as
    /// not delivered and never holds the rollback up longer.
    pub fn notice_timeout(mut self, timeout: Duration) -> Self {
        self.communication.timeout = timeout;
        self
    }

    /// Adds a hook at `point` (see [`Hook`](crate::Hook) for what its failure does). Hooks
    /// of one point run in the order they are added.
    pub fn hook(mut self, point: crate::domain::HookPoint, hook: impl crate::traits::Hook + 'static) -> Self {
        self.hooks.push(hooks::Registered {
            point,
            hook: Arc::new(hook),
            required: false,
        });
        self
    }

    /// Adds an after-start hook whose failure fails post-verify (a smoke test the
    /// rolled-back release must pass): the failure policy then applies.
    pub fn required_hook(
        mut self,
        point: crate::domain::HookPoint,
        hook: impl crate::traits::Hook + 'static,
    ) -> Self {
        self.hooks.push(hooks::Registered {
            point,
            hook: Arc::new(hook),
            required: true,
        });
        self
    }

    /// The database adapter.
    pub fn database(mut self, db: impl DatabaseSnapshot + 'static) -> Self {
        self.database = Some(Arc::new(db));
        self
    }

    /// The code adapter.
    pub fn code(mut self, code: impl CodeVersion + 'static) -> Self {
        self.code = Some(Arc::new(code));
        self
    }

    /// The config adapter.
    pub fn config(mut self, config: impl ConfigStore + 'static) -> Self {
        self.config = Some(Arc::new(config));
        self
    }

    /// The process manager (required).
    pub fn process(mut self, process: impl ProcessManager + 'static) -> Self {
        self.process = Some(Arc::new(process));
        self
    }

    /// Adds a health probe; post-verify waits until every probe passes.
    pub fn health_probe(mut self, probe: impl HealthProbe + 'static) -> Self {
        self.probes.push(Arc::new(probe));
        self
    }

    /// A metrics source: sampled with each checkpoint (its baseline), after a rollback's
    /// start (post-verify's performance check) and when investigating.
    pub fn metrics(mut self, metrics: impl MetricsSource + 'static) -> Self {
        self.metrics = Some(Arc::new(metrics));
        self
    }

    /// The state store (required), e.g. a [`DirStateStore`](crate::DirStateStore).
    pub fn state(mut self, state: impl StateStore + 'static) -> Self {
        self.state = Some(Arc::new(state));
        self
    }

    /// Settings (timeouts, failure policy, health gate, integrity checks).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Sends progress events to this channel.
    pub fn progress(mut self, sink: ProgressSink) -> Self {
        self.progress = Some(sink);
        self
    }

    /// Builds the orchestrator: fails naming a missing process manager or state store, or a
    /// setting that cannot work (a zero health interval or step limit).
    pub fn build(self) -> Result<Orchestrator, RollbackError> {
        let missing = |component, setter| RollbackError::MissingComponent {
            scope: "any rollback".into(),
            component,
            setter,
        };
        self.settings.validate()?;
        Ok(Orchestrator {
            process: self.process.ok_or_else(|| missing("ProcessManager", "process"))?,
            state: self.state.ok_or_else(|| missing("StateStore", "state"))?,
            app: self.app,
            database: self.database,
            code: self.code,
            config: self.config,
            probes: self.probes,
            metrics: self.metrics,
            settings: self.settings,
            progress: self.progress,
            communication: self.communication,
            hooks: self.hooks,
        })
    }
}

/// Runs checkpoints and rollbacks for one app.
///
/// ```no_run
/// # async fn demo(db: impl rollback_core::DatabaseSnapshot + 'static,
/// #   code: impl rollback_core::CodeVersion + 'static,
/// #   pm: impl rollback_core::ProcessManager + 'static) -> Result<(), Box<dyn std::error::Error>> {
/// use rollback_core::{DirStateStore, Orchestrator, RollbackTarget, Scope};
/// let rollback = Orchestrator::builder("web")
///     .database(db)
///     .code(code)
///     .process(pm)
///     .state(DirStateStore::open("/var/lib/web/rollback").await?)
///     .build()?;
/// let checkpoint = rollback.checkpoint("before v2").await?;   // before the deploy
/// // ... the deploy goes bad ...
/// let report = rollback
///     .rollback(RollbackTarget::Checkpoint(checkpoint.id), "health failing", Scope::DATABASE_AND_CODE)
///     .await?;
/// println!("{}", report.to_markdown());
/// # Ok(()) }
/// ```
pub struct Orchestrator {
    app: AppName,
    database: Option<Arc<dyn DatabaseSnapshot>>,
    code: Option<Arc<dyn CodeVersion>>,
    config: Option<Arc<dyn ConfigStore>>,
    process: Arc<dyn ProcessManager>,
    probes: Vec<Arc<dyn HealthProbe>>,
    metrics: Option<Arc<dyn MetricsSource>>,
    state: Arc<dyn StateStore>,
    settings: Settings,
    progress: Option<ProgressSink>,
    communication: notices::Communication,
    hooks: Vec<hooks::Registered>,
}

fn unique_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Orchestrator {
    /// Starts building an orchestrator for `app`.
    pub fn builder(app: impl Into<AppName>) -> OrchestratorBuilder {
        OrchestratorBuilder {
            app: app.into(),
            database: None,
            code: None,
            config: None,
            process: None,
            probes: Vec::new(),
            metrics: None,
            state: None,
            settings: Settings::default(),
            progress: None,
            communication: notices::Communication::default(),
            hooks: Vec::new(),
        }
    }

    /// The app this orchestrator rolls back.
    pub fn app(&self) -> &AppName {
        &self.app
    }

    /// Takes a checkpoint of what is live now, before a deploy: a database snapshot, the
    /// live revision and a backup of the live config. It is marked good when every health
    /// probe passes now (and there is at least one probe); otherwise call
    /// [`mark_good`](Self::mark_good) once the release has passed its health gate.
    ///
    /// Finish it before the deploy migrates: a dump holds locks a migration waits for.
    ///
    /// Refused while a rollback is unfinished ([`RollbackError::Unfinished`], or
    /// [`RollbackError::Locked`] while it runs): the app may be stopped and the database
    /// switched half way, which is no state to go back to.
    ///
    /// Holds the rollback lock while it runs: a rollback started meanwhile is refused
    /// ([`RollbackError::Locked`], naming the checkpoint), as a checkpoint is while a
    /// rollback runs.
    pub async fn checkpoint(&self, label: &str) -> Result<Checkpoint, RollbackError> {
        self.refuse_if_unfinished().await?;
        let id = CheckpointId::new(unique_id("cp"));
        let (lock, _) = lock::acquire(&*self.state, &RollbackId::new(format!("checkpoint {id}"))).await?;
        let span = tracing::info_span!("checkpoint", checkpoint = %id, label);
        let taken = self.take_checkpoint(id, label).instrument(span).await;
        if let Err(e) = self.state.unlock(&lock.holder.token).await {
            tracing::error!(error = %e, "could not release the lock taken for the checkpoint: `rollback unlock` clears it");
        }
        taken
    }

    async fn take_checkpoint(&self, id: CheckpointId, label: &str) -> Result<Checkpoint, RollbackError> {
        let (snapshot, snapshot_taken_at, mut warnings) = match &self.database {
            Some(db) => {
                // A privilege a later rollback needs is missing now: say so before a
                // snapshot that could not be put back (or not be taken at all).
                db.check_privileges()
                    .await
                    .map_err(|error| RollbackError::Checkpoint {
                        what: "the database role's privileges",
                        error,
                    })?;
                let info = db
                    .snapshot(label)
                    .await
                    .map_err(|error| RollbackError::Checkpoint {
                        what: "database snapshot",
                        error,
                    })?;
                for w in &info.warnings {
                    tracing::warn!(snapshot = %info.id, warning = %w, "checkpoint: already true when the snapshot was taken");
                }
                (Some(info.id), Some(info.created_at), info.warnings)
            }
            None => (None, None, Vec::new()),
        };
        let revision = match &self.code {
            Some(code) => Some(
                code.current()
                    .await
                    .map_err(|error| RollbackError::Checkpoint {
                        what: "code revision",
                        error,
                    })?
                    .id,
            ),
            None => None,
        };
        let config = match &self.config {
            Some(config) => Some(
                config
                    .backup(label)
                    .await
                    .map_err(|error| RollbackError::Checkpoint {
                        what: "config backup",
                        error,
                    })?
                    .id,
            ),
            None => None,
        };
        let mut good = !self.probes.is_empty();
        for probe in &self.probes {
            let result = probe.probe().await;
            if !result.healthy {
                tracing::warn!(probe = %result.probe, detail = %result.detail, "checkpoint taken while unhealthy: not marked good");
                warnings.push(format!(
                    "taken while unhealthy ({}: {}): not marked good",
                    result.probe, result.detail
                ));
                good = false;
            }
        }
        let metrics_baseline = match &self.metrics {
            Some(metrics) => {
                let limit = self.settings.performance.sample_timeout;
                match tokio::time::timeout(limit, metrics.sample(&self.app)).await {
                    Ok(Ok(sample)) => Some(crate::domain::MetricsBaseline {
                        taken_at: Utc::now(),
                        sample,
                    }),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "checkpoint: no metrics baseline recorded");
                        warnings.push(format!("no metrics baseline recorded: {e}"));
                        None
                    }
                    Err(_) => {
                        tracing::warn!(limit = ?limit, "checkpoint: the metrics source did not answer; no baseline recorded");
                        warnings.push(format!(
                            "no metrics baseline recorded: the metrics source did not answer within {}s",
                            limit.as_secs_f64()
                        ));
                        None
                    }
                }
            }
            None => None,
        };
        let checkpoint = Checkpoint {
            id,
            label: label.to_owned(),
            created_at: Utc::now(),
            snapshot,
            snapshot_taken_at,
            revision,
            config,
            good,
            warnings,
            metrics_baseline,
        };
        self.state
            .save_checkpoint(&checkpoint)
            .await
            .map_err(RollbackError::State)?;
        tracing::info!(good, "checkpoint taken");
        Ok(checkpoint)
    }

    /// The health gate, for a deploy tool's own use (after a deploy, before
    /// [`mark_good`](Self::mark_good)): probes until every configured probe passes or
    /// `timeout` ends, fast at first (from 20 ms up to the settings' `health_interval`).
    /// Returns the last results and whether they all passed. With no probe configured, the
    /// process manager's status stands in for health. Changes nothing.
    pub async fn wait_for_healthy(&self, timeout: Duration) -> Result<HealthGate, RollbackError> {
        let (results, healthy_at) = health_gate::wait_healthy_within(self, timeout)
            .await
            .map_err(RollbackError::HealthGate)?;
        Ok(HealthGate {
            healthy: healthy_at.is_some(),
            healthy_at,
            results,
        })
    }

    /// Pre-stages a checkpoint's database while the app serves: restores its snapshot into a
    /// ready copy and runs the full integrity check on it (as a rollback's prepare step
    /// would), so that a later rollback to this checkpoint finds it staged, verified and
    /// sealed, and its prepare is a check, not a restore. Costs the disk of one copy of the
    /// database; a newer pre-staged checkpoint replaces it (adapters keep one staged copy).
    /// Changes nothing the app uses. Run it in the background after a checkpoint:
    ///
    /// ```no_run
    /// # async fn demo(o: std::sync::Arc<rollback_core::Orchestrator>) -> Result<(), rollback_core::RollbackError> {
    /// let checkpoint = o.checkpoint("before v2.4.0").await?;
    /// let background = std::sync::Arc::clone(&o);
    /// tokio::spawn(async move { background.prestage(&checkpoint.id).await });
    /// # Ok(()) }
    /// ```
    pub async fn prestage(&self, id: &CheckpointId) -> Result<crate::domain::IntegrityReport, RollbackError> {
        let checkpoint = self
            .resolve_target(&RollbackTarget::Checkpoint(id.clone()))
            .await?;
        let (Some(db), Some(snapshot)) = (&self.database, &checkpoint.snapshot) else {
            return Err(RollbackError::MissingComponent {
                scope: "prestage".into(),
                component: "DatabaseSnapshot",
                setter: "database",
            });
        };
        let failed = |error| RollbackError::Checkpoint {
            what: "pre-staging the snapshot",
            error,
        };
        let prepared = self
            .timed(
                Step::Prepare,
                "staging the database snapshot",
                db.prepare_restore(snapshot),
            )
            .await
            .map_err(failed)?;
        let report = self
            .timed(
                Step::Prepare,
                "checking the staged copy's integrity",
                db.check_prepared(&prepared, &self.staged_checks(snapshot)),
            )
            .await
            .map_err(failed)?;
        tracing::info!(checkpoint = %id, passed = report.passed(), "checkpoint pre-staged");
        Ok(report)
    }

    /// The checks of a copy of `snapshot` nothing but the rollback has written to (staged,
    /// or just switched in): the configured ones, exact row counts and the snapshot's own
    /// baseline.
    pub(crate) fn staged_checks(&self, snapshot: &crate::ids::SnapshotId) -> IntegrityChecks {
        let mut checks = self.settings.integrity.clone();
        checks.expect_snapshot = Some(snapshot.clone());
        checks.baseline = Some(snapshot.clone());
        checks
    }

    /// Refuses, changing nothing, while a rollback is unfinished: [`RollbackError::Locked`]
    /// while it still runs (here or elsewhere), else [`RollbackError::Unfinished`] naming
    /// the lock's dead holder, whose lock stays for `resume()`.
    pub(crate) async fn refuse_if_unfinished(&self) -> Result<(), RollbackError> {
        let Some(unfinished) = self.unfinished().await? else {
            return Ok(());
        };
        let holder = self.lock_holder().await?;
        if let Some(holder) = &holder {
            if !lock::is_stale(holder).await {
                return Err(RollbackError::Locked {
                    holder: Box::new(holder.clone()),
                });
            }
        }
        Err(RollbackError::Unfinished {
            step: unfinished.stopped_at_step(),
            halted: unfinished.is_halted(),
            id: unfinished.id,
            holder: holder.map(Box::new),
        })
    }

    /// Marks a checkpoint good (its release passed the health gate).
    pub async fn mark_good(&self, id: &CheckpointId) -> Result<Checkpoint, RollbackError> {
        let mut checkpoint = self
            .checkpoints()
            .await?
            .into_iter()
            .find(|c| &c.id == id)
            .ok_or_else(|| {
                RollbackError::NoCheckpoint(format!("no checkpoint `{id}`; list them with checkpoints()"))
            })?;
        checkpoint.good = true;
        self.state
            .save_checkpoint(&checkpoint)
            .await
            .map_err(RollbackError::State)?;
        Ok(checkpoint)
    }

    /// All checkpoints, newest first.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, RollbackError> {
        self.state.checkpoints().await.map_err(RollbackError::State)
    }

    /// Rolls `scope` back to `target`. See [`rollback_with`](Self::rollback_with).
    pub async fn rollback(
        &self,
        target: RollbackTarget,
        reason: &str,
        scope: Scope,
    ) -> Result<RollbackReport, RollbackError> {
        self.rollback_with(RollbackRequest::new(target, reason, scope))
            .await
    }

    /// Handles a runbook scenario: rolls back with the scenario's scope, or, for
    /// performance degradation, investigates and reports without changing anything.
    pub async fn handle_scenario(
        &self,
        scenario: Scenario,
        target: RollbackTarget,
        reason: &str,
    ) -> Result<RollbackReport, RollbackError> {
        let request = RollbackRequest::for_scenario(scenario, target, reason);
        if scenario.scope().is_none() {
            return self.investigate(request).await;
        }
        self.rollback_with(request).await
    }

    /// Runs the twelve steps. Pre-flight problems are returned as
    /// [`RollbackError::Preflight`] before anything is stopped or changed; a step failing
    /// after that returns [`RollbackError::StepFailed`] with the report of what was done
    /// about it.
    pub async fn rollback_with(&self, request: RollbackRequest) -> Result<RollbackReport, RollbackError> {
        self.rollback_with_cancel(request, Cancel::new()).await
    }

    /// [`rollback_with`](Self::rollback_with) that `cancel` can call off before the app is
    /// stopped ([`RollbackError::Cancelled`], nothing the app uses changed); after that it
    /// runs to a consistent end. For an operator's Ctrl-C:
    ///
    /// ```no_run
    /// # async fn ctrl_c() {}
    /// # async fn demo(o: rollback_core::Orchestrator, request: rollback_core::RollbackRequest) {
    /// let cancel = rollback_core::Cancel::new();
    /// let on_ctrl_c = cancel.clone();
    /// tokio::spawn(async move {
    ///     ctrl_c().await; // tokio::signal::ctrl_c() in a binary
    ///     on_ctrl_c.cancel();
    /// });
    /// let result = o.rollback_with_cancel(request, cancel).await;
    /// # }
    /// ```
    pub async fn rollback_with_cancel(
        &self,
        request: RollbackRequest,
        cancel: Cancel,
    ) -> Result<RollbackReport, RollbackError> {
        if request.scenario.is_some_and(|s| s.scope().is_none()) {
            return self.investigate(request).await;
        }
        self.check_components(request.scope)?;
        let checkpoint = self.resolve_target(&request.target).await?;
        let id = RollbackId::new(unique_id("rb"));
        run::Run::start(self, id, checkpoint, request, cancel).await
    }

    /// Continues a rollback whose process died, from its journal: finished steps are not
    /// run again, the interrupted step is run again (every adapter step is idempotent).
    ///
    /// Takes up a halted rollback too, once the fault that halted it is cleared: where it
    /// halted with every reachable part on the target it goes on towards the target (the
    /// parts it could not reach are brought to it, then verified); otherwise it runs the
    /// recovery again (every undo is idempotent: what is back already stays), and ends with
    /// every part consistent and serving, or halts again saying what is still where.
    pub async fn resume(&self) -> Result<RollbackReport, RollbackError> {
        let journal = self.unfinished().await?.ok_or(RollbackError::NothingToResume)?;
        run::Run::resume(self, journal).await
    }

    /// Closes a halted rollback that a human put right by hand, so that it is no longer
    /// resumed (a `resume()` would converge every part again, undoing what the human did).
    /// Changes nothing but the journal: `note` (what was done) goes into it and its report.
    /// [`RollbackError::NothingToResume`] when no rollback is halted; a running or
    /// interrupted one is not closed this way (`resume()` finishes it).
    pub async fn close_halted(&self, note: &str) -> Result<Journal, RollbackError> {
        let Some(mut journal) = self.unfinished().await?.filter(Journal::is_halted) else {
            return Err(RollbackError::NothingToResume);
        };
        let (lock, _) = lock::acquire(&*self.state, &journal.id).await?;
        journal.artifacts.halt_resumable = false;
        journal.notes.push(format!(
            "halt closed by hand by {} (nothing changed by the tool): {note}",
            lock.holder
        ));
        let saved = self
            .state
            .save_journal(&journal)
            .await
            .map_err(RollbackError::State);
        if let Err(e) = self.state.unlock(&lock.holder.token).await {
            tracing::error!(error = %e, "could not release the lock taken to close the halt");
        }
        saved?;
        tracing::warn!(rollback = %journal.id, "halted rollback closed by hand");
        Ok(journal)
    }

    /// The journal of an unfinished (running, interrupted or halted) rollback, if there is
    /// one.
    pub async fn unfinished(&self) -> Result<Option<Journal>, RollbackError> {
        Ok(self
            .state
            .journals()
            .await
            .map_err(RollbackError::State)?
            .into_iter()
            .find(Journal::is_unfinished))
    }

    /// The target checkpoint's revision when it already is the live revision (so rolling
    /// back to it would not change the code), `None` otherwise or without a code adapter.
    /// The watchdog uses it never to roll back to the revision that is live. Changes nothing.
    pub async fn target_revision_if_live(
        &self,
        target: &RollbackTarget,
    ) -> Result<Option<RevisionId>, RollbackError> {
        let checkpoint = self.resolve_target(target).await?;
        let Some(wanted) = checkpoint.revision else {
            return Ok(None);
        };
        let Some(current) = self.live_revision().await? else {
            return Ok(None);
        };
        Ok((current.id == wanted).then_some(wanted))
    }

    /// Who holds the rollback lock, if anyone.
    pub async fn lock_holder(&self) -> Result<Option<LockHolder>, RollbackError> {
        self.state.lock_holder().await.map_err(RollbackError::State)
    }

    /// Clears the rollback lock when its holder provably is gone (same host, process
    /// dead), or always when `force` is set (for a holder on another host that you have
    /// checked yourself). Returns the holder that was cleared.
    pub async fn clear_stale_lock(&self, force: bool) -> Result<Option<LockHolder>, RollbackError> {
        match self.lock_holder().await? {
            Some(holder) if force || lock::is_stale(&holder).await => {
                self.state
                    .unlock(&holder.token)
                    .await
                    .map_err(RollbackError::State)?;
                tracing::warn!(%holder, force, "rollback lock cleared");
                Ok(Some(holder))
            }
            Some(holder) => Err(RollbackError::Locked {
                holder: Box::new(holder),
            }),
            None => Ok(None),
        }
    }

    /// Clears the lock only if `holder` (as a human checked it) still holds it: a lock taken
    /// since by another rollback is left alone. Returns whether it was cleared. For a holder
    /// on another host whose process you have checked yourself.
    pub async fn clear_lock_of(&self, holder: &LockHolder) -> Result<bool, RollbackError> {
        match self.lock_holder().await? {
            Some(now) if now.token == holder.token => {
                // The store removes the lock only while it holds this token (its contract),
                // so a lock taken between the read and the unlock stays.
                self.state
                    .unlock(&holder.token)
                    .await
                    .map_err(RollbackError::State)?;
                let cleared = self
                    .lock_holder()
                    .await?
                    .is_none_or(|after| after.token != holder.token);
                tracing::warn!(%holder, cleared, "rollback lock cleared by hand");
                Ok(cleared)
            }
            _ => Ok(false),
        }
    }

    fn check_components(&self, scope: Scope) -> Result<(), RollbackError> {
        let missing = |component, setter| RollbackError::MissingComponent {
            scope: scope.to_string(),
            component,
            setter,
        };
        if scope.is_empty() {
            return Err(RollbackError::EmptyScope);
        }
        if scope.database && self.database.is_none() {
            return Err(missing("DatabaseSnapshot", "database"));
        }
        if scope.code && self.code.is_none() {
            return Err(missing("CodeVersion", "code"));
        }
        if scope.config && self.config.is_none() {
            return Err(missing("ConfigStore", "config"));
        }
        Ok(())
    }

    async fn resolve_target(&self, target: &RollbackTarget) -> Result<Checkpoint, RollbackError> {
        let checkpoints = self.checkpoints().await?;
        match target {
            RollbackTarget::LastGood => checkpoints.into_iter().find(|c| c.good).ok_or_else(|| {
                RollbackError::NoCheckpoint(
                    "no checkpoint is marked good: take one with checkpoint() while healthy, or mark_good() one".into(),
                )
            }),
            RollbackTarget::Checkpoint(id) => crate::state::find_checkpoint(&checkpoints, id)
                .cloned()
                .ok_or_else(|| RollbackError::NoCheckpoint(format!("no checkpoint `{id}`; list them with checkpoints()"))),
            RollbackTarget::GoodBack(n) => {
                let good = checkpoints.iter().filter(|c| c.good).count();
                checkpoints.into_iter().filter(|c| c.good).nth(*n).ok_or_else(|| {
                    RollbackError::NoCheckpoint(format!(
                        "asked for the good checkpoint {n} back, but only {good} checkpoint(s) are marked good"
                    ))
                })
            }
        }
    }

    async fn timed<T>(
        &self,
        step: Step,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, AdapterError>>,
    ) -> Result<T, AdapterError> {
        let limit = self.settings.timeouts.get(step);
        match tokio::time::timeout(limit, fut).await {
            Ok(result) => result,
            Err(_) => Err(AdapterError::timeout(format!(
                "{what} did not finish within {}s (the `{step}` step's limit; raise it with Settings::timeouts)",
                limit.as_secs_f64()
            ))),
        }
    }
}

/// The names of the adapters that are configured, for `Debug` (adapters are trait objects:
/// their own `Debug`, which could show a connection string, is not asked for).
fn configured(parts: [(&'static str, bool); 6]) -> Vec<&'static str> {
    parts
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name)
        .collect()
}

impl std::fmt::Debug for OrchestratorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (db, code, config) = (
            self.database.is_some(),
            self.code.is_some(),
            self.config.is_some(),
        );
        let (pm, metrics, state) = (
            self.process.is_some(),
            self.metrics.is_some(),
            self.state.is_some(),
        );
        f.debug_struct("OrchestratorBuilder")
            .field("app", &self.app)
            .field(
                "configured",
                &configured([
                    ("database", db),
                    ("code", code),
                    ("config", config),
                    ("process", pm),
                    ("metrics", metrics),
                    ("state", state),
                ]),
            )
            .field("health_probes", &self.probes.len())
            .field("settings", &self.settings)
            .field("notifiers", &self.communication.notifiers.len())
            .field("hooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Orchestrator {
    /// Shows the app, which adapters are configured and the settings.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (db, code, config) = (
            self.database.is_some(),
            self.code.is_some(),
            self.config.is_some(),
        );
        let all = [
            ("database", db),
            ("code", code),
            ("config", config),
            ("process", true),
            ("metrics", self.metrics.is_some()),
            ("state", true),
        ];
        let mut d = f.debug_struct("Orchestrator");
        d.field("app", &self.app).field("configured", &configured(all));
        d.field("health_probes", &self.probes.len())
            .field("settings", &self.settings);
        d.field("notifiers", &self.communication.notifiers.len())
            .field("hooks", &self.hooks.len());
        d.finish_non_exhaustive()
    }
}
