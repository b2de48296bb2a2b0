//! One rollback run: the steps, the journal writes around them, and the failure policy.

use super::lock::{self, ActiveLock};
use super::{FailurePolicy, Orchestrator, RollbackRequest};
use crate::domain::{Checkpoint, CodeStrategy, ProbeResult};
use crate::error::{AdapterError, ErrorKind, PreflightFailure, RollbackError};
use crate::ids::RollbackId;
use crate::journal::{Artifacts, Journal, JournalStatus, JournaledRequest};
use crate::plan::Step;
use crate::progress::{ProgressEvent, ProgressKind};
use crate::report::{ChecklistItem, DowntimeWindow, Outcome, RollbackReport, StepOutcome, StepRecord};
use chrono::Utc;
use futures::future::{join_all, BoxFuture};
use futures::FutureExt;
use tracing::Instrument;

/// The steps `drive` runs after the lock and the journal, in order.
const RUN_STEPS: [Step; 9] = [
    Step::Preflight,
    Step::Prepare,
    Step::Stop,
    Step::EmergencyBackup,
    Step::RestoreDatabase,
    Step::ActivateCode,
    Step::RestoreConfig,
    Step::Start,
    Step::PostVerify,
];

/// Why a step failed.
enum Failure {
    Preflight(Vec<PreflightFailure>),
    TargetIsLive(String),
    Step(String),
}

impl Failure {
    fn message(&self) -> String {
        match self {
            Failure::Preflight(failures) => failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            Failure::TargetIsLive(what) => format!("target matches what is live ({what})"),
            Failure::Step(cause) => cause.clone(),
        }
    }
}

impl From<AdapterError> for Failure {
    fn from(e: AdapterError) -> Self {
        Failure::Step(e.to_string())
    }
}

pub(super) struct Run<'a> {
    o: &'a Orchestrator,
    journal: Journal,
    lock: ActiveLock,
    /// The checklist of the step running now.
    items: Vec<ChecklistItem>,
}

impl<'a> Run<'a> {
    pub(super) async fn start(
        o: &'a Orchestrator,
        id: RollbackId,
        checkpoint: Checkpoint,
        request: RollbackRequest,
    ) -> Result<RollbackReport, RollbackError> {
        let lock_started = Utc::now();
        let (lock, taken_over) = lock::acquire(&*o.state, &id).await?;
        let unfinished = match o.unfinished().await {
            Ok(u) => u,
            Err(e) => {
                let _ = o.state.unlock(&lock.holder.token).await;
                return Err(e);
            }
        };
        if let Some(unfinished) = unfinished {
            let _ = o.state.unlock(&lock.holder.token).await;
            return Err(RollbackError::Unfinished {
                step: unfinished.last_step(),
                id: unfinished.id,
            });
        }
        let mut lock_items = vec![ChecklistItem::done(format!("lock taken: {}", lock.holder))];
        if let Some(stale) = taken_over {
            lock_items.push(ChecklistItem::done(format!(
                "took over a stale lock left by {stale}"
            )));
        }
        let journal = Journal {
            id,
            checkpoint,
            request: JournaledRequest {
                reason: request.reason,
                scope: request.scope,
                scenario: request.scenario,
                code_strategy: request.code_strategy,
                trigger: request.trigger,
            },
            started_at: lock_started,
            status: JournalStatus::Running,
            steps: vec![StepRecord {
                step: Step::Lock,
                started_at: lock_started,
                duration: elapsed_since(lock_started),
                outcome: StepOutcome::Ok,
                checklist: lock_items,
            }],
            artifacts: Artifacts::default(),
            stopped_at: None,
            healthy_at: None,
            health: Vec::new(),
            integrity: Vec::new(),
            recovery: Vec::new(),
            notes: Vec::new(),
        };
        tracing::info!(rollback = %journal.id, checkpoint = %journal.checkpoint.id, scope = %journal.request.scope, reason = %journal.request.reason, "rollback started");
        let mut run = Run {
            o,
            journal,
            lock,
            items: Vec::new(),
        };
        run.emit(Step::Lock, ProgressKind::Finished);
        if let Err(e) = run.begin(Step::Journal).await {
            let _ = o.state.unlock(&run.lock.holder.token).await;
            return Err(RollbackError::State(e));
        }
        run.items.push(ChecklistItem::done("journal `started` written"));
        if let Err(e) = run.end(StepOutcome::Ok).await {
            let _ = o.state.unlock(&run.lock.holder.token).await;
            return Err(RollbackError::State(e));
        }
        run.drive().await
    }

    pub(super) async fn resume(
        o: &'a Orchestrator,
        journal: Journal,
    ) -> Result<RollbackReport, RollbackError> {
        let (lock, taken_over) = lock::acquire(&*o.state, &journal.id).await?;
        let mut run = Run {
            o,
            journal,
            lock,
            items: Vec::new(),
        };
        let interrupted = run.journal.last_step();
        tracing::warn!(rollback = %run.journal.id, step = %interrupted, "resuming an interrupted rollback");
        run.journal.notes.push(format!(
            "resumed by {} after the process stopped during `{interrupted}`",
            run.lock.holder
        ));
        if let Some(stale) = taken_over {
            run.journal
                .notes
                .push(format!("took over the stale lock of {stale}"));
        }
        if let Err(e) = run.save().await {
            return Err(RollbackError::State(e));
        }
        run.drive().await
    }

    async fn drive(&mut self) -> Result<RollbackReport, RollbackError> {
        if let JournalStatus::Recovering { step, cause } = self.journal.status.clone() {
            return self.recover(step, cause).await;
        }
        for step in RUN_STEPS {
            if self.journal.is_done(step) {
                continue;
            }
            if let Err(e) = self.begin(step).await {
                return self.fail(step, e.into()).await;
            }
            if let Some(why) = self.skip_reason(step) {
                if let Err(e) = self.end(StepOutcome::Skipped(why)).await {
                    return self.fail(step, e.into()).await;
                }
                continue;
            }
            let span = tracing::info_span!("rollback_step", rollback = %self.journal.id, step = %step, number = step.number());
            let result = self.execute(step).instrument(span).await;
            match result {
                Ok(()) => {
                    if let Err(e) = self.end(StepOutcome::Ok).await {
                        return self.fail(step, e.into()).await;
                    }
                }
                Err(failure) => {
                    tracing::error!(rollback = %self.journal.id, step = %step, cause = %failure.message(), "rollback step failed");
                    let _ = self.end(StepOutcome::Failed(failure.message())).await;
                    return self.fail(step, failure).await;
                }
            }
        }
        Ok(self.finish(Outcome::Succeeded).await)
    }

    fn skip_reason(&self, step: Step) -> Option<String> {
        let scope = self.journal.request.scope;
        let out = |what: &str| Some(format!("{what} not in scope ({scope})"));
        match step {
            Step::RestoreDatabase if !scope.database => out("database"),
            Step::ActivateCode if !scope.code => out("code"),
            Step::RestoreConfig if !scope.config => out("config"),
            _ => None,
        }
    }

    async fn execute(&mut self, step: Step) -> Result<(), Failure> {
        match step {
            Step::Preflight => self.preflight().await,
            Step::Prepare => self.prepare().await,
            Step::Stop => self.stop().await,
            Step::EmergencyBackup => self.emergency_backup().await,
            Step::RestoreDatabase => self.restore_database().await,
            Step::ActivateCode => self.activate_code().await,
            Step::RestoreConfig => self.restore_config().await,
            Step::Start => self.start_app().await,
            Step::PostVerify => self.post_verify().await,
            Step::Lock | Step::Journal | Step::Report => Ok(()),
        }
    }

    // ---- the steps ----------------------------------------------------------------------

    async fn preflight(&mut self) -> Result<(), Failure> {
        let request = RollbackRequest {
            target: super::RollbackTarget::Checkpoint(self.journal.checkpoint.id.clone()),
            reason: self.journal.request.reason.clone(),
            scope: self.journal.request.scope,
            scenario: self.journal.request.scenario,
            code_strategy: self.journal.request.code_strategy.clone(),
            trigger: self.journal.request.trigger.clone(),
        };
        let (items, failures) = match preflight_checks(self.o, &self.journal.checkpoint, &request, true).await
        {
            Ok(found) => found,
            Err(RollbackError::TargetIsLive { what, .. }) => return Err(Failure::TargetIsLive(what)),
            Err(e) => return Err(Failure::Step(e.to_string())),
        };
        self.items = items;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Failure::Preflight(failures))
        }
    }

    async fn prepare(&mut self) -> Result<(), Failure> {
        let o = self.o;
        let scope = self.journal.request.scope;
        let cp = &self.journal.checkpoint;
        let stage_db = async {
            match (
                &o.database,
                &cp.snapshot,
                &self.journal.artifacts.prepared_restore,
            ) {
                (Some(db), Some(snapshot), None) if scope.database => Some(
                    o.timed(
                        Step::Prepare,
                        "staging the database snapshot",
                        db.prepare_restore(snapshot),
                    )
                    .await,
                ),
                _ => None,
            }
        };
        let build_code = async {
            let (Some(code), true, None) = (&o.code, scope.code, &self.journal.artifacts.prepared_revision)
            else {
                return None;
            };
            Some(match &self.journal.request.code_strategy {
                CodeStrategy::Checkout => match &cp.revision {
                    Some(rev) => o
                        .timed(Step::Prepare, "building the target revision", code.prepare(rev))
                        .await
                        .map(|p| (p, None)),
                    None => Err(AdapterError::not_found("the checkpoint has no code revision")),
                },
                CodeStrategy::Revert(commits) => {
                    match o
                        .timed(Step::Prepare, "reverting commits", code.revert(commits))
                        .await
                    {
                        Ok(head) => o
                            .timed(
                                Step::Prepare,
                                "building the reverted revision",
                                code.prepare(&head.id),
                            )
                            .await
                            .map(|p| (p, Some(head))),
                        Err(e) => Err(e),
                    }
                }
            })
        };
        let (staged, built) = tokio::join!(stage_db, build_code);
        let mut errors = Vec::new();
        match staged {
            Some(Ok(prepared)) => {
                self.items.push(ChecklistItem::done(match &prepared.staged_at {
                    Some(at) => format!(
                        "snapshot {} staged at {at} while the app serves",
                        prepared.snapshot
                    ),
                    None => format!(
                        "snapshot {} cannot be staged: it will be restored in place (slower)",
                        prepared.snapshot
                    ),
                }));
                self.journal.notes.extend(prepared.notes.iter().cloned());
                self.journal.artifacts.prepared_restore = Some(prepared);
            }
            Some(Err(e)) => errors.push(format!("staging the snapshot: {e}")),
            None => {}
        }
        match built {
            Some(Ok((prepared, reverted))) => {
                if let Some(head) = reverted {
                    self.journal.notes.push(format!(
                        "revert commits made; new head {} ({})",
                        head.short, head.subject
                    ));
                }
                self.items.push(ChecklistItem::done(format!(
                    "revision {} built at {}",
                    prepared.revision, prepared.location
                )));
                self.journal.artifacts.prepared_revision = Some(prepared);
            }
            Some(Err(e)) => errors.push(format!("building the code: {e}")),
            None => {}
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Failure::Step(errors.join("; ")))
        }
    }

    async fn stop(&mut self) -> Result<(), Failure> {
        if self.journal.stopped_at.is_none() {
            self.journal.stopped_at = Some(Utc::now());
        }
        let o = self.o;
        o.timed(Step::Stop, "stopping the app", o.process.stop(&o.app))
            .await?;
        self.items.push(ChecklistItem::done(format!(
            "`{}` stopped through the process manager",
            o.app
        )));
        Ok(())
    }

    async fn emergency_backup(&mut self) -> Result<(), Failure> {
        let o = self.o;
        let scope = self.journal.request.scope;
        let label = format!("pre-rollback-{}", self.journal.id);
        if let (Some(db), true, None) = (
            &o.database,
            scope.database,
            &self.journal.artifacts.preserved_database,
        ) {
            let preserved = o
                .timed(
                    Step::EmergencyBackup,
                    "keeping the live database aside",
                    db.preserve_current(&label),
                )
                .await?;
            self.journal.notes.extend(preserved.notes.iter().cloned());
            self.journal.artifacts.preserved_database = Some(preserved);
            self.save().await?;
        }
        if let Some(p) = &self.journal.artifacts.preserved_database {
            self.items.push(ChecklistItem::done(format!(
                "live database kept aside: {} at {}",
                p.method, p.location
            )));
        }
        if let (Some(code), true, None) = (&o.code, scope.code, &self.journal.artifacts.preserved_code) {
            let preserved = o
                .timed(
                    Step::EmergencyBackup,
                    "keeping the live release",
                    code.preserve_current(),
                )
                .await?;
            self.journal.artifacts.preserved_code = Some(preserved);
            self.save().await?;
        }
        if let Some(p) = &self.journal.artifacts.preserved_code {
            self.items.push(ChecklistItem::done(format!(
                "live release kept: revision {} at {}",
                p.revision, p.location
            )));
        }
        if let (Some(config), true, None) =
            (&o.config, scope.config, &self.journal.artifacts.preserved_config)
        {
            let backup = o
                .timed(
                    Step::EmergencyBackup,
                    "backing up the live config",
                    config.backup(&label),
                )
                .await?;
            self.journal.artifacts.preserved_config = Some(backup);
            self.save().await?;
        }
        if let Some(v) = &self.journal.artifacts.preserved_config {
            self.items.push(ChecklistItem::done(format!(
                "live config backed up as {} at {}",
                v.id, v.location
            )));
        }
        Ok(())
    }

    async fn restore_database(&mut self) -> Result<(), Failure> {
        let o = self.o;
        let (Some(db), Some(prepared)) = (&o.database, self.journal.artifacts.prepared_restore.clone())
        else {
            return Err(Failure::Step("no prepared snapshot in the journal".into()));
        };
        o.timed(
            Step::RestoreDatabase,
            "switching the snapshot in",
            db.restore(&prepared),
        )
        .await?;
        self.items.push(ChecklistItem::done(format!(
            "snapshot {} is live",
            prepared.snapshot
        )));
        let snapshot_time = self.journal.checkpoint.created_at.to_rfc3339();
        let kept = self
            .journal
            .artifacts
            .preserved_database
            .as_ref()
            .map_or_else(|| "nowhere".to_owned(), |p| p.location.clone());
        self.journal.notes.push(format!(
            "writes made after snapshot {} (taken {snapshot_time}) are not in the live database; they are kept in the pre-rollback database at {kept}",
            prepared.snapshot
        ));
        let mut checks = o.settings.integrity.clone();
        checks.expect_snapshot = Some(prepared.snapshot.clone());
        self.integrity(Step::RestoreDatabase, &checks).await
    }

    async fn integrity(
        &mut self,
        step: Step,
        checks: &crate::domain::IntegrityChecks,
    ) -> Result<(), Failure> {
        let o = self.o;
        let Some(db) = &o.database else { return Ok(()) };
        let report = o
            .timed(step, "checking integrity", db.check_integrity(checks))
            .await?;
        for c in &report.checks {
            self.items.push(ChecklistItem {
                text: format!("integrity: {} ({})", c.name, c.detail),
                checked: c.passed,
            });
        }
        self.journal.integrity.extend(report.checks.iter().cloned());
        if report.passed() {
            Ok(())
        } else {
            Err(Failure::Step(format!(
                "integrity checks failed: {}",
                report.failures().join(", ")
            )))
        }
    }

    async fn activate_code(&mut self) -> Result<(), Failure> {
        let o = self.o;
        let (Some(code), Some(prepared)) = (&o.code, self.journal.artifacts.prepared_revision.clone()) else {
            return Err(Failure::Step("no prepared revision in the journal".into()));
        };
        o.timed(
            Step::ActivateCode,
            "activating the release",
            code.activate(&prepared),
        )
        .await?;
        self.items.push(ChecklistItem::done(format!(
            "revision {} active",
            prepared.revision
        )));
        Ok(())
    }

    async fn restore_config(&mut self) -> Result<(), Failure> {
        let o = self.o;
        let (Some(config), Some(version)) = (&o.config, self.journal.checkpoint.config.clone()) else {
            return Err(Failure::Step("the checkpoint has no config version".into()));
        };
        o.timed(
            Step::RestoreConfig,
            "putting the config in place",
            config.restore(&version),
        )
        .await?;
        self.items
            .push(ChecklistItem::done(format!("config version {version} live")));
        Ok(())
    }

    async fn start_app(&mut self) -> Result<(), Failure> {
        let o = self.o;
        o.timed(Step::Start, "starting the app", o.process.start(&o.app))
            .await?;
        self.items
            .push(ChecklistItem::done(format!("`{}` started", o.app)));
        Ok(())
    }

    async fn post_verify(&mut self) -> Result<(), Failure> {
        let results = wait_healthy(self.o).await?;
        let healthy = results.iter().all(|r| r.healthy);
        for r in &results {
            self.items.push(ChecklistItem {
                text: format!("health: {} ({})", r.probe, r.detail),
                checked: r.healthy,
            });
        }
        self.journal.health = results;
        if !healthy {
            return Err(Failure::Step(format!(
                "not healthy within {}s of the start",
                self.o.settings.health_timeout.as_secs_f64()
            )));
        }
        self.journal.healthy_at = Some(Utc::now());
        if self.journal.request.scope.database {
            let checks = self.o.settings.integrity.clone();
            self.integrity(Step::PostVerify, &checks).await?;
        }
        Ok(())
    }

    // ---- failure policy -----------------------------------------------------------------

    async fn fail(&mut self, step: Step, failure: Failure) -> Result<RollbackReport, RollbackError> {
        let cause = failure.message();
        self.emit(step, ProgressKind::Failed(cause.clone()));
        match failure {
            Failure::Preflight(failures) => {
                self.finish(Outcome::Aborted { step, cause }).await;
                return Err(RollbackError::Preflight { failures });
            }
            Failure::TargetIsLive(what) => {
                self.finish(Outcome::Aborted { step, cause }).await;
                return Err(RollbackError::TargetIsLive {
                    checkpoint: self.journal.checkpoint.id.clone(),
                    what,
                });
            }
            Failure::Step(_) => {}
        }
        let outcome = if step < Step::Stop {
            Outcome::Aborted {
                step,
                cause: cause.clone(),
            }
        } else if step == Step::Stop {
            // The app may be half-stopped: make sure it runs, changing nothing else.
            let o = self.o;
            match o
                .timed(Step::Start, "starting the app again", o.process.start(&o.app))
                .await
            {
                Ok(()) => {
                    self.journal
                        .recovery
                        .push(ChecklistItem::done("app started again after the failed stop"));
                    Outcome::Aborted {
                        step,
                        cause: cause.clone(),
                    }
                }
                Err(e) => Outcome::Halted {
                    step,
                    cause: format!("{cause}; starting it again failed too: {e}"),
                    statement: "the app may be down; nothing else was changed".into(),
                },
            }
        } else {
            match self.o.settings.failure_policy {
                FailurePolicy::RestorePreRollbackState => {
                    self.journal.status = JournalStatus::Recovering {
                        step,
                        cause: cause.clone(),
                    };
                    if let Err(e) = self.save().await {
                        tracing::error!(error = %e, "could not journal the recovery; recovering anyway");
                    }
                    return self.recover(step, cause).await;
                }
                FailurePolicy::Halt => Outcome::Halted {
                    step,
                    cause: cause.clone(),
                    statement: self.state_statement(),
                },
            }
        };
        let report = self.finish(outcome).await;
        Err(RollbackError::StepFailed {
            step,
            cause,
            report: Box::new(report),
        })
    }

    /// Puts the emergency backup back and starts the app. Idempotent, so an interrupted
    /// recovery is resumed by running it again.
    async fn recover(&mut self, step: Step, cause: String) -> Result<RollbackReport, RollbackError> {
        self.emit(step, ProgressKind::Recovering);
        tracing::warn!(rollback = %self.journal.id, step = %step, "putting the pre-rollback state back");
        let o = self.o;
        let artifacts = self.journal.artifacts.clone();
        let mut items = Vec::new();
        let mut problem = None;
        macro_rules! attempt {
            ($what:expr, $step:expr, $fut:expr) => {
                if problem.is_none() {
                    match o.timed($step, $what, $fut).await {
                        Ok(_) => items.push(ChecklistItem::done($what)),
                        Err(e) => {
                            items.push(ChecklistItem::not_done($what));
                            problem = Some(format!("{}: {e}", $what));
                        }
                    }
                }
            };
        }
        attempt!("stop the app", Step::Stop, o.process.stop(&o.app));
        if let (Some(db), Some(p)) = (&o.database, &artifacts.preserved_database) {
            attempt!(
                &format!("put the pre-rollback database back from {}", p.location),
                Step::RestoreDatabase,
                db.reinstate(p)
            );
        }
        if let (Some(code), Some(p)) = (&o.code, &artifacts.preserved_code) {
            attempt!(
                &format!("activate the pre-rollback release {}", p.revision),
                Step::ActivateCode,
                code.activate(p)
            );
        }
        if let (Some(config), Some(v)) = (&o.config, &artifacts.preserved_config) {
            attempt!(
                &format!("put the pre-rollback config {} back", v.id),
                Step::RestoreConfig,
                config.restore(&v.id)
            );
        }
        attempt!("start the app", Step::Start, o.process.start(&o.app));
        if problem.is_none() {
            match wait_healthy(o).await {
                Ok(results) => {
                    let healthy = results.iter().all(|r| r.healthy);
                    items.push(ChecklistItem {
                        text: "the pre-rollback state answers its health probes".into(),
                        checked: healthy,
                    });
                    if healthy {
                        self.journal.healthy_at = Some(Utc::now());
                    } else {
                        self.journal.notes.push(
                            "after recovery the app runs the pre-rollback state but its health probes fail (as before the rollback)".into(),
                        );
                    }
                    self.journal.health = results;
                }
                Err(e) => items.push(ChecklistItem::not_done(format!(
                    "health after recovery: {}",
                    e.message()
                ))),
            }
        }
        self.journal.recovery = items;
        let outcome = match problem {
            None => Outcome::RestoredPreRollbackState {
                step,
                cause: cause.clone(),
            },
            Some(p) => Outcome::Halted {
                step,
                cause: format!("{cause}; then recovery failed: {p}"),
                statement: self.state_statement(),
            },
        };
        let report = self.finish(outcome).await;
        Err(RollbackError::StepFailed {
            step,
            cause,
            report: Box::new(report),
        })
    }

    /// What is live and where the backups are, for a human taking over.
    fn state_statement(&self) -> String {
        let j = &self.journal;
        let a = &j.artifacts;
        let mut parts = Vec::new();
        let app_state = if j.stopped_at.is_none() {
            "the app was not stopped"
        } else if j.is_done(Step::Start) {
            "the app was started on the rolled-back state"
        } else {
            "the app is STOPPED"
        };
        parts.push(app_state.to_owned());
        if let Some(p) = &a.preserved_database {
            if j.is_done(Step::RestoreDatabase) {
                parts.push(format!(
                    "the database is the restored snapshot; the pre-rollback database is kept at {}",
                    p.location
                ));
            } else {
                parts.push(format!(
                    "the live database was set aside at {} ({}) and may not be live: put it back with reinstate() or finish the restore",
                    p.location, p.method
                ));
            }
        }
        if let Some(p) = &a.preserved_code {
            if j.is_done(Step::ActivateCode) {
                parts.push(format!(
                    "the code is the target revision; the pre-rollback release {} is at {}",
                    p.revision, p.location
                ));
            } else {
                parts.push(format!("the code is unchanged (revision {})", p.revision));
            }
        }
        if let Some(v) = &a.preserved_config {
            if j.is_done(Step::RestoreConfig) {
                parts.push(format!(
                    "the config is the checkpoint's; the pre-rollback config is version {}",
                    v.id
                ));
            } else {
                parts.push(format!("the config is unchanged (backed up as {})", v.id));
            }
        }
        parts.push(format!("the journal is rollback {}", j.id));
        parts.join("; ")
    }

    // ---- journal, progress, report --------------------------------------------------------

    async fn save(&self) -> Result<(), AdapterError> {
        self.o.state.save_journal(&self.journal).await
    }

    fn emit(&self, step: Step, kind: ProgressKind) {
        if let Some(sink) = &self.o.progress {
            let _ = sink.send(ProgressEvent {
                rollback: self.journal.id.clone(),
                step,
                number: step.number(),
                kind,
            });
        }
    }

    async fn begin(&mut self, step: Step) -> Result<(), AdapterError> {
        self.items.clear();
        self.journal.steps.push(StepRecord {
            step,
            started_at: Utc::now(),
            duration: std::time::Duration::ZERO,
            outcome: StepOutcome::Started,
            checklist: Vec::new(),
        });
        tracing::info!(rollback = %self.journal.id, step = %step, "step started");
        self.emit(step, ProgressKind::Started);
        self.save().await
    }

    async fn end(&mut self, outcome: StepOutcome) -> Result<(), AdapterError> {
        let items = std::mem::take(&mut self.items);
        let Some(record) = self.journal.steps.last_mut() else {
            return Ok(());
        };
        record.duration = elapsed_since(record.started_at);
        record.checklist = items;
        let kind = match &outcome {
            StepOutcome::Skipped(_) => ProgressKind::Skipped,
            StepOutcome::Failed(cause) => ProgressKind::Failed(cause.clone()),
            _ => ProgressKind::Finished,
        };
        record.outcome = outcome;
        let step = record.step;
        self.save().await?;
        if !matches!(kind, ProgressKind::Failed(_)) {
            self.emit(step, kind);
        }
        Ok(())
    }

    /// Step 12: journal the end, write the report, release the lock.
    async fn finish(&mut self, outcome: Outcome) -> RollbackReport {
        let _ = self.begin(Step::Report).await;
        self.journal.status = JournalStatus::Finished(outcome.clone());
        if let Some(record) = self.journal.steps.last_mut() {
            record.duration = elapsed_since(record.started_at);
            record.outcome = StepOutcome::Ok;
            record.checklist = vec![ChecklistItem::done("journal `finished` written")];
        }
        if let Err(e) = self.save().await {
            tracing::error!(error = %e, "could not journal the end of the rollback");
        }
        let mut report = build_report(self.o, &self.journal);
        match self.o.state.save_report(&report).await {
            Ok(location) => {
                if let Some(r) = report.steps.last_mut() {
                    r.checklist
                        .push(ChecklistItem::done(format!("report written to {location}")));
                }
            }
            Err(e) => tracing::error!(error = %e, "could not store the rollback report"),
        }
        if let Err(e) = self.o.state.unlock(&self.lock.holder.token).await {
            tracing::error!(error = %e, "could not release the rollback lock: clear it with clear_stale_lock()");
        }
        self.emit(Step::Report, ProgressKind::Finished);
        tracing::info!(rollback = %report.id, outcome = %report.outcome, "rollback finished");
        report
    }
}

fn elapsed_since(start: chrono::DateTime<Utc>) -> std::time::Duration {
    (Utc::now() - start).to_std().unwrap_or_default()
}

/// Probes until every probe passes or the health timeout ends; returns the last results.
/// With no probe configured, the process manager's status stands in for health.
async fn wait_healthy(o: &Orchestrator) -> Result<Vec<ProbeResult>, AdapterError> {
    let deadline = tokio::time::Instant::now() + o.settings.health_timeout;
    loop {
        let results = if o.probes.is_empty() {
            let started = tokio::time::Instant::now();
            let status = o
                .timed(
                    Step::PostVerify,
                    "reading the app's status",
                    o.process.status(&o.app),
                )
                .await?;
            vec![ProbeResult {
                probe: format!(
                    "process manager status of `{}` (no health probe configured)",
                    o.app
                ),
                healthy: status.state == crate::domain::ProcessState::Online,
                latency: started.elapsed(),
                detail: format!("state {}", status.state),
            }]
        } else {
            o.timed(
                Step::PostVerify,
                "probing health",
                join_all(o.probes.iter().map(|p| p.probe())).map(Ok),
            )
            .await?
        };
        if results.iter().all(|r| r.healthy) || tokio::time::Instant::now() >= deadline {
            return Ok(results);
        }
        tokio::time::sleep(o.settings.health_interval).await;
    }
}

type Check<'b> = BoxFuture<'b, (String, Result<String, AdapterError>)>;

/// Pre-flight: every check runs (concurrently), each failure is collected. With
/// `check_live`, a target that equals what is live is refused as a no-op.
pub(super) async fn preflight_checks(
    o: &Orchestrator,
    cp: &Checkpoint,
    request: &RollbackRequest,
    check_live: bool,
) -> Result<(Vec<ChecklistItem>, Vec<PreflightFailure>), RollbackError> {
    let scope = request.scope;
    let missing = |what: &str| {
        Err(AdapterError::new(
            ErrorKind::NotFound,
            format!(
                "checkpoint `{}` has no {what}: pick another checkpoint or leave it out of the scope",
                cp.id
            ),
        ))
    };
    let mut checks: Vec<Check<'_>> = Vec::new();
    checks.push(
        async {
            let r = o
                .timed(
                    Step::Preflight,
                    "reading the app's status",
                    o.process.status(&o.app),
                )
                .await;
            (
                format!("app `{}` known to the process manager", o.app),
                r.map(|s| format!("state {}", s.state)),
            )
        }
        .boxed(),
    );
    if let (true, Some(db)) = (scope.database, &o.database) {
        checks.push(
            async {
                let r = o.timed(Step::Preflight, "pinging the database", db.ping()).await;
                (
                    "database reachable".to_owned(),
                    r.map(|d| format!("{}ms", d.as_millis())),
                )
            }
            .boxed(),
        );
        checks.push(
            async {
                match &cp.snapshot {
                    Some(s) => {
                        let r = o
                            .timed(Step::Preflight, "verifying the snapshot", db.verify(s))
                            .await;
                        (
                            format!("snapshot {s} complete and readable"),
                            r.map(|()| "verified".to_owned()),
                        )
                    }
                    None => ("database snapshot".to_owned(), missing("database snapshot")),
                }
            }
            .boxed(),
        );
    }
    if let (true, Some(code)) = (scope.code, &o.code) {
        match &request.code_strategy {
            CodeStrategy::Checkout => checks.push(
                async {
                    match &cp.revision {
                        Some(rev) => {
                            let r = o
                                .timed(
                                    Step::Preflight,
                                    "resolving the revision",
                                    code.resolve(rev.as_str()),
                                )
                                .await;
                            (
                                format!("revision {rev} resolves"),
                                r.map(|r| format!("{} {}", r.short, r.subject)),
                            )
                        }
                        None => ("code revision".to_owned(), missing("code revision")),
                    }
                }
                .boxed(),
            ),
            CodeStrategy::Revert(commits) => {
                for c in commits {
                    checks.push(
                        async move {
                            let r = o
                                .timed(
                                    Step::Preflight,
                                    "resolving a commit to revert",
                                    code.resolve(c.as_str()),
                                )
                                .await;
                            (
                                format!("commit {c} to revert resolves"),
                                r.map(|r| format!("{} {}", r.short, r.subject)),
                            )
                        }
                        .boxed(),
                    );
                }
            }
        }
    }
    if let (true, Some(config)) = (scope.config, &o.config) {
        checks.push(
            async {
                match &cp.config {
                    Some(v) => {
                        let r = o
                            .timed(Step::Preflight, "parsing the config version", config.verify(v))
                            .await;
                        (
                            format!("config version {v} parses"),
                            r.map(|c| {
                                let mut d = format!("{} keys", c.keys.len());
                                for w in c.warnings {
                                    d.push_str("; warning: ");
                                    d.push_str(&w);
                                }
                                d
                            }),
                        )
                    }
                    None => ("config version".to_owned(), missing("config version")),
                }
            }
            .boxed(),
        );
    }
    let mut items = Vec::new();
    let mut failures = Vec::new();
    for (check, result) in join_all(checks).await {
        match result {
            Ok(detail) => items.push(ChecklistItem::done(format!("{check}: {detail}"))),
            Err(error) => {
                items.push(ChecklistItem::not_done(check.clone()));
                failures.push(PreflightFailure { check, error });
            }
        }
    }
    if check_live && failures.is_empty() && !scope.database && request.code_strategy == CodeStrategy::Checkout
    {
        if let Some(what) = live_match(o, cp, request).await {
            return Err(RollbackError::TargetIsLive {
                checkpoint: cp.id.clone(),
                what,
            });
        }
    }
    Ok((items, failures))
}

/// When every part in scope already is what the checkpoint holds, says what matched.
async fn live_match(o: &Orchestrator, cp: &Checkpoint, request: &RollbackRequest) -> Option<String> {
    let mut matched = Vec::new();
    if request.scope.code {
        let code = o.code.as_ref()?;
        let current = o
            .timed(Step::Preflight, "reading the live revision", code.current())
            .await
            .ok()?;
        if Some(&current.id) != cp.revision.as_ref() {
            return None;
        }
        matched.push(format!("revision {}", current.short));
    }
    if request.scope.config {
        let config = o.config.as_ref()?;
        let wanted = cp.config.as_ref()?;
        let live = o
            .timed(Step::Preflight, "reading the live config", config.current())
            .await
            .ok()?;
        let diff = o
            .timed(
                Step::Preflight,
                "comparing configs",
                config.diff(wanted, &live.id),
            )
            .await
            .ok()?;
        if !diff.is_empty() {
            return None;
        }
        matched.push(format!("config {wanted}"));
    }
    Some(matched.join(", "))
}

pub(super) fn build_report(o: &Orchestrator, j: &Journal) -> RollbackReport {
    let finished_at = Utc::now();
    let outcome = match &j.status {
        JournalStatus::Finished(outcome) => outcome.clone(),
        JournalStatus::Running | JournalStatus::Recovering { .. } => Outcome::Halted {
            step: j.last_step(),
            cause: "the rollback has not finished".into(),
            statement: "call resume()".into(),
        },
    };
    let mut emergency_backup = Vec::new();
    if let Some(p) = &j.artifacts.preserved_database {
        emergency_backup.push(format!("database: {} at {}", p.method, p.location));
    }
    if let Some(p) = &j.artifacts.preserved_code {
        emergency_backup.push(format!("code: revision {} at {}", p.revision, p.location));
    }
    if let Some(v) = &j.artifacts.preserved_config {
        emergency_backup.push(format!("config: version {} at {}", v.id, v.location));
    }
    let mut next_actions = Vec::new();
    match &outcome {
        Outcome::Succeeded => {
            next_actions.push("watch error rate and latency for the next hour".into());
            if j.request.scope.database {
                next_actions
                    .push("decide what to do with the writes kept in the pre-rollback database".into());
            }
            next_actions.push("write the post-incident report; fix forward before the next deploy".into());
        }
        Outcome::Aborted { .. } => {
            next_actions.push("fix the cause named above and run the rollback again".into())
        }
        Outcome::RestoredPreRollbackState { .. } => next_actions.push(
            "the app runs the pre-rollback (bad) release again: fix the cause and retry, or escalate".into(),
        ),
        Outcome::Halted { .. } => next_actions.push(
            "a human must take over now: read the statement above; escalate to the on-call lead".into(),
        ),
        Outcome::Investigated => {
            next_actions.push("diagnose with the findings above; roll back if it turns into an outage".into())
        }
    }
    RollbackReport {
        id: j.id.clone(),
        app: o.app.to_string(),
        reason: j.request.reason.clone(),
        scenario: j.request.scenario,
        trigger: j.request.trigger.clone(),
        scope: j.request.scope,
        checkpoint: j.checkpoint.clone(),
        started_at: j.started_at,
        finished_at,
        total_duration: (finished_at - j.started_at).to_std().unwrap_or_default(),
        downtime: j.stopped_at.map(|stopped_at| DowntimeWindow {
            stopped_at,
            healthy_at: j.healthy_at,
            duration: j.healthy_at.and_then(|h| (h - stopped_at).to_std().ok()),
        }),
        steps: j.steps.clone(),
        health: j.health.clone(),
        integrity: j.integrity.clone(),
        recovery: j.recovery.clone(),
        emergency_backup,
        outcome,
        notes: j.notes.clone(),
        next_actions,
    }
}
