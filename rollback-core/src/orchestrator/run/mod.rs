//! One rollback run: the steps, the journal writes around them, and the failure policy
//! (its recovery in [`recovery`]).

mod recovery;

use super::health_gate::{wait_healthy, while_probing};
use super::lock::{self, ActiveLock};
use super::preflight::{access_warnings, preflight_checks, reload_decision};
use super::reporting::build_report;
use super::{hooks, notices};
use super::{FailurePolicy, Orchestrator, RollbackRequest};
use crate::domain::{Checkpoint, CodeStrategy};
use crate::domain::{HookPoint, Notice, NoticeEvent};
use crate::error::{AdapterError, ErrorKind, PreflightFailure, RollbackError};
use crate::ids::RollbackId;
use crate::journal::{Journal, JournalStatus};
use crate::plan::{OnFailure, Step};
use crate::progress::{ProgressEvent, ProgressKind};
use crate::report::{ChecklistItem, Outcome, RollbackReport, StepOutcome, StepRecord};
use crate::request::Cancel;
use chrono::Utc;
use tracing::Instrument;

/// Why a step failed.
enum Failure {
    Preflight(Vec<PreflightFailure>),
    /// Called off by the caller before the stop.
    Cancelled,
    TargetIsLive(String),
    Step(AdapterError),
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
            Failure::Cancelled => {
                "cancelled before the app was stopped; nothing the app uses was changed".into()
            }
            Failure::Step(error) => error.to_string(),
        }
    }
}

impl From<AdapterError> for Failure {
    fn from(e: AdapterError) -> Self {
        Failure::Step(e)
    }
}

/// A step's own failure that no adapter returned (an inconsistent journal, checks that
/// found something), as the error the caller gets.
fn failed(cause: impl Into<String>) -> Failure {
    Failure::Step(AdapterError::new(ErrorKind::Failed, cause))
}

pub(super) struct Run<'a> {
    o: &'a Orchestrator,
    journal: Journal,
    lock: ActiveLock,
    /// The checklist of the step running now.
    items: Vec<ChecklistItem>,
    /// Calls the rollback off while its steps can still be abandoned (before the stop).
    cancel: Cancel,
    /// True when this process took the rollback up from its journal (`resume()`): the app
    /// may have been started since by someone else.
    resumed: bool,
}

impl<'a> Run<'a> {
    pub(super) async fn start(
        o: &'a Orchestrator,
        id: RollbackId,
        checkpoint: Checkpoint,
        request: RollbackRequest,
        cancel: Cancel,
    ) -> Result<RollbackReport, RollbackError> {
        // An unfinished rollback is refused before the lock is touched, so that its dead
        // holder (pid, host, since) stays on record for the resume() that follows.
        o.refuse_if_unfinished().await?;
        let lock_started = Utc::now();
        let (lock, taken_over) = lock::acquire(&*o.state, &id).await?;
        // A rollback that crashed between the check above and the lock (or that another
        // process started meanwhile) is refused too; our own fresh lock is released.
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
                step: unfinished.stopped_at_step(),
                halted: unfinished.is_halted(),
                id: unfinished.id,
                holder: taken_over.map(Box::new),
            });
        }
        let mut lock_items = vec![ChecklistItem::done(format!("lock taken: {}", lock.holder))];
        if let Some(stale) = taken_over {
            lock_items.push(ChecklistItem::done(format!(
                "took over a stale lock left by {stale}"
            )));
        }
        let mut journal = Journal::new(id, checkpoint, request, lock_started);
        journal.steps.push(StepRecord {
            step: Step::Lock,
            started_at: lock_started,
            duration: elapsed_since(lock_started),
            outcome: StepOutcome::Ok,
            checklist: lock_items,
        });
        tracing::info!(rollback = %journal.id, checkpoint = %journal.checkpoint.id, scope = %journal.request.scope, reason = %journal.request.reason, "rollback started");
        let mut run = Run {
            o,
            journal,
            lock,
            items: Vec::new(),
            cancel,
            resumed: false,
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
        run.announce_start().await;
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
            cancel: Cancel::new(),
            resumed: true,
        };
        if let JournalStatus::Finished(Outcome::Halted { step, cause, .. }) = run.journal.status.clone() {
            let towards = if run.journal.artifacts.resume_towards_target {
                // Every reachable part is on the target: go on from the step that halted.
                run.journal.status = JournalStatus::Running;
                "going on towards the target"
            } else {
                // Observe and converge again: every undo is idempotent. The cause is the
                // step's own failure (what the earlier recovery met is in its report).
                let cause = cause
                    .split_once(recovery::THEN_RECOVERY_FAILED)
                    .map_or(cause.as_str(), |(own, _)| own)
                    .to_owned();
                run.journal.status = JournalStatus::Recovering {
                    step,
                    cause,
                    kind: ErrorKind::Failed,
                };
                "putting the pre-rollback state back"
            };
            tracing::warn!(rollback = %run.journal.id, step = %step, "taking up a halted rollback");
            run.journal.notes.push(format!(
                "taken up again by {} after it halted at `{step}`: {towards}",
                run.lock.holder
            ));
            run.journal.artifacts.resumed_after_halt_at = Some(Utc::now());
        } else {
            let interrupted = run.journal.last_step();
            tracing::warn!(rollback = %run.journal.id, step = %interrupted, "resuming an interrupted rollback");
            run.journal.notes.push(format!(
                "resumed by {} after the process stopped during `{interrupted}`",
                run.lock.holder
            ));
        }
        if let Some(stale) = taken_over {
            run.journal
                .notes
                .push(format!("took over the stale lock of {stale}"));
        }
        if let Err(e) = run.save().await {
            let _ = o.state.unlock(&run.lock.holder.token).await;
            return Err(RollbackError::State(e));
        }
        run.announce_start().await;
        run.drive().await
    }

    /// Tells the notifiers that the rollback started (once: a resumed rollback that
    /// already said so does not say it again).
    async fn announce_start(&mut self) {
        self.announce(
            |e| e == NoticeEvent::RollbackStarted,
            |o, j| Some(notices::started(o, j)),
        )
        .await;
    }

    /// Sends the notice `make` builds, unless a notice for which `sent` holds is journaled
    /// already, and journals it at once, so a resume after a crash does not send it twice.
    /// Without notifiers nothing is built, sent or written.
    async fn announce(
        &mut self,
        sent: fn(NoticeEvent) -> bool,
        make: impl FnOnce(&Orchestrator, &Journal) -> Option<Notice>,
    ) {
        // Taken up after a halt, the rollback gets a new outcome: its notice is sent
        // again (the start is not announced twice).
        let since = self
            .journal
            .artifacts
            .resumed_after_halt_at
            .filter(|_| !sent(NoticeEvent::RollbackStarted));
        let already = self
            .journal
            .notices
            .iter()
            .any(|n| sent(n.event) && since.is_none_or(|at| n.at >= at));
        if !notices::wanted(self.o) || already {
            return;
        }
        let Some(notice) = make(self.o, &self.journal) else {
            return;
        };
        notices::send(self.o, &mut self.journal, notice).await;
        if let Err(e) = self.save().await {
            tracing::warn!(error = %e, "could not journal the notice sent");
        }
    }

    /// Runs the after-start hooks on the pre-rollback release (after the failure policy
    /// or an abort started it again), when before-stop hooks ran: their failures are
    /// recorded, never decisive.
    async fn after_start_hooks_on_the_old_release(&mut self) -> Vec<ChecklistItem> {
        if !self.journal.artifacts.before_stop_hooks_ran {
            return Vec::new();
        }
        let run = hooks::run(
            self.o,
            &self.journal,
            HookPoint::AfterStart,
            Step::PostVerify,
            true,
            None,
        )
        .await;
        for f in &run.failures {
            self.journal
                .notes
                .push(format!("after the pre-rollback release started again, {f}"));
        }
        run.items
    }

    async fn drive(&mut self) -> Result<RollbackReport, RollbackError> {
        match self.journal.status.clone() {
            JournalStatus::Recovering { step, cause, kind } => {
                // The adapter's error did not survive the process that died; its kind and
                // text did.
                return self.recover(step, AdapterError::new(kind, cause)).await;
            }
            JournalStatus::Finishing(outcome) => return self.finish_journaled(outcome).await,
            JournalStatus::Running | JournalStatus::Finished(_) => {}
        }
        for step in crate::plan::STEPS.iter().filter(|r| r.driven).map(|r| r.step) {
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
            let result = if step.row().on_failure == OnFailure::Abort {
                // Before the stop a step can be abandoned: nothing the app uses changes.
                let cancel = self.cancel.clone();
                if cancel.is_cancelled() {
                    Err(Failure::Cancelled)
                } else {
                    tokio::select! {
                        result = self.execute(step).instrument(span) => result,
                        () = cancel.cancelled() => Err(Failure::Cancelled),
                    }
                }
            } else {
                self.execute(step).instrument(span).await
            };
            match result {
                Ok(()) => {
                    if let Err(e) = self.end(StepOutcome::Ok).await {
                        return self.fail(step, e.into()).await;
                    }
                }
                Err(failure) => {
                    tracing::error!(rollback = %self.journal.id, step = %step, cause = %failure.message(), "rollback step failed");
                    // A step over several parts (a fleet's hosts) records how each came out.
                    if let Failure::Step(e) = &failure {
                        for part in e.parts() {
                            self.items.push(ChecklistItem {
                                text: part.to_string(),
                                checked: part.is_done(),
                            });
                        }
                    }
                    let _ = self.end(StepOutcome::Failed(failure.message())).await;
                    return self.fail(step, failure).await;
                }
            }
        }
        Ok(self.finish(Outcome::Succeeded).await)
    }

    fn skip_reason(&self, step: Step) -> Option<String> {
        match step {
            Step::Stop if self.journal.artifacts.graceful_reload => Some(
                "graceful reload: the app keeps serving, its processes are replaced one at a time at the start step".into(),
            ),
            _ => step.out_of_scope(self.journal.request.scope),
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
        let (items, failures) =
            match preflight_checks(self.o, &self.journal.checkpoint, &self.journal.request, true).await {
                Ok(found) => found,
                Err(RollbackError::TargetIsLive { what, .. }) => return Err(Failure::TargetIsLive(what)),
                Err(RollbackError::State(e)) => return Err(Failure::Step(e)),
                Err(e) => return Err(failed(e.to_string())),
            };
        self.items = items;
        if failures.is_empty() {
            self.choose_graceful_reload().await;
        }
        for warning in access_warnings(self.o, self.journal.request.scope.database).await {
            tracing::warn!(%warning, "readable by others");
            self.items
                .push(ChecklistItem::not_done(format!("warning: {warning}")));
            self.journal.notes.push(format!("warning: {warning}"));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Failure::Preflight(failures))
        }
    }

    /// A rollback that leaves the database alone can replace the app's processes one at a
    /// time instead of stopping it, when the process manager can do that for this app now.
    /// Decided once, in pre-flight, and journaled (a resume keeps the decision).
    async fn choose_graceful_reload(&mut self) {
        let o = self.o;
        let (reload, item) = reload_decision(o, self.journal.request.scope).await;
        self.items.extend(item);
        if reload {
            self.journal.artifacts.graceful_reload = true;
            self.journal.notes.push(format!(
                "graceful reload: `{}` was never stopped; its processes were replaced one at a time",
                o.app
            ));
        }
    }

    async fn prepare(&mut self) -> Result<(), Failure> {
        let o = self.o;
        let scope = self.journal.request.scope;
        let cp = &self.journal.checkpoint;
        // Stage the snapshot, then run the full integrity check on the staged copy while
        // the app still serves: whatever it finds is found before the stop.
        let stage_db = async {
            let (Some(db), Some(snapshot), true) = (&o.database, &cp.snapshot, scope.database) else {
                return None;
            };
            let (prepared, fresh) = match &self.journal.artifacts.prepared_restore {
                Some(p) => (p.clone(), false),
                None => match o
                    .timed(
                        Step::Prepare,
                        "staging the database snapshot",
                        db.prepare_restore(snapshot),
                    )
                    .await
                {
                    Ok(p) => (p, true),
                    Err(e) => return Some(Err(e)),
                },
            };
            if self.journal.artifacts.staged_verified {
                return Some(Ok((prepared, fresh, None)));
            }
            let checks = o.staged_checks(snapshot);
            let checked = o
                .timed(
                    Step::Prepare,
                    "checking the staged copy's integrity",
                    db.check_prepared(&prepared, &checks),
                )
                .await;
            Some(checked.map(|report| (prepared, fresh, Some(report))))
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
            Some(Ok((prepared, fresh, report))) => {
                if fresh {
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
                }
                match report {
                    Some(report) if report.checks.is_empty() => self.journal.notes.push(format!(
                        "the staged copy of snapshot {} could not be checked online (the adapter cannot): integrity is checked after the switch only",
                        prepared.snapshot
                    )),
                    Some(report) => {
                        for c in &report.checks {
                            self.items.push(ChecklistItem {
                                text: format!("staged copy integrity: {} ({})", c.name, c.detail),
                                checked: c.passed,
                            });
                        }
                        self.journal.integrity.extend(report.checks.iter().cloned());
                        if report.passed() {
                            self.journal.artifacts.staged_verified = true;
                        } else {
                            errors.push(AdapterError::new(ErrorKind::Corrupt, format!(
                                "the staged copy of snapshot {} fails its integrity checks, so the rollback stops before the app does: {}",
                                prepared.snapshot,
                                report
                                    .checks
                                    .iter()
                                    .filter(|c| !c.passed)
                                    .map(|c| format!("{} ({})", c.name, c.detail))
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            )));
                        }
                    }
                    None => {}
                }
                self.journal.artifacts.prepared_restore = Some(prepared);
            }
            Some(Err(e)) => errors.push(e.context("staging the snapshot")),
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
            Some(Err(e)) => errors.push(e.context("building the code")),
            None => {}
        }
        if errors.is_empty() && hooks::any(o, HookPoint::BeforeStop) {
            self.journal.artifacts.before_stop_hooks_ran = true;
            self.save().await?;
            let run = hooks::run(
                o,
                &self.journal,
                HookPoint::BeforeStop,
                Step::Prepare,
                false,
                None,
            )
            .await;
            self.items.extend(run.items);
            if let Some(e) = run.stopping {
                errors.push(e);
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(Failure::Step(errors.remove(0))),
            _ => Err(failed(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    async fn stop(&mut self) -> Result<(), Failure> {
        let issued = Utc::now();
        if self.journal.stopped_at.is_none() {
            self.journal.stopped_at = Some(issued);
            self.journal.stop_issued_at = Some(issued);
        }
        let o = self.o;
        let (stopped, _, last_answer) =
            while_probing(o, o.timed(Step::Stop, "stopping the app", o.process.stop(&o.app))).await;
        stopped?;
        // A graceful stop keeps answering a while: the window starts at its last answer.
        if let (Some(last), Some(at)) = (last_answer, self.journal.stopped_at) {
            if last > at {
                self.journal.stopped_at = Some(last);
            }
        }
        self.items.push(ChecklistItem::done(format!(
            "`{}` stopped through the process manager",
            o.app
        )));
        Ok(())
    }

    async fn emergency_backup(&mut self) -> Result<(), Failure> {
        let o = self.o;
        let scope = self.journal.request.scope;
        let label = emergency_label(&self.journal);
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
                    config.preserve_current(&label),
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
            return Err(failed("no prepared snapshot in the journal"));
        };
        let aside = o
            .timed(
                Step::RestoreDatabase,
                "switching the snapshot in",
                db.restore(&prepared),
            )
            .await?;
        self.items.push(ChecklistItem::done(format!(
            "snapshot {} is live",
            prepared.snapshot
        )));
        for a in aside {
            self.items.push(ChecklistItem::done(a.to_string()));
            if !self.journal.artifacts.put_aside.contains(&a) {
                self.journal.artifacts.put_aside.push(a);
            }
        }
        self.save().await?;
        // The staged copy was verified online: a cheap proof that the live database is that
        // copy, unchanged, is enough while the app is down.
        if self.journal.artifacts.staged_verified {
            let proof = o
                .timed(
                    Step::RestoreDatabase,
                    "proving the switched-in database is the verified copy",
                    db.prove_unchanged(&prepared),
                )
                .await?;
            if let Some(proof) = proof {
                self.items.push(ChecklistItem {
                    text: format!("integrity: {} ({})", proof.name, proof.detail),
                    checked: proof.passed,
                });
                let passed = proof.passed;
                let detail = proof.detail.clone();
                self.journal.integrity.push(proof);
                return if passed {
                    Ok(())
                } else {
                    Err(failed(format!(
                        "the switched-in database is not provably the copy verified online: {detail}"
                    )))
                };
            }
        }
        // Nothing but the rollback writes yet: exact row counts hold, and foreign keys and
        // sequences are measured against the snapshot's own baseline.
        self.integrity(Step::RestoreDatabase, &o.staged_checks(&prepared.snapshot))
            .await
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
            Err(failed(format!(
                "integrity checks failed: {}",
                report.failures().join(", ")
            )))
        }
    }

    async fn activate_code(&mut self) -> Result<(), Failure> {
        let o = self.o;
        let (Some(code), Some(prepared)) = (&o.code, self.journal.artifacts.prepared_revision.clone()) else {
            return Err(failed("no prepared revision in the journal"));
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
            return Err(failed("the checkpoint has no config version"));
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
        if let (true, Some(db)) = (self.journal.request.scope.database, &o.database) {
            let notes = o
                .timed(Step::Start, "opening the database to clients", db.open())
                .await?;
            self.items
                .push(ChecklistItem::done("the database is open to clients"));
            self.journal.notes.extend(notes);
        }
        if self.journal.artifacts.graceful_reload {
            o.timed(Step::Start, "reloading the app", o.process.reload(&o.app))
                .await?;
            self.items.push(ChecklistItem::done(format!(
                "`{}` reloaded gracefully (processes replaced one at a time, never stopped)",
                o.app
            )));
            return Ok(());
        }
        // Start means running the activated release: an app already online (started by an
        // earlier recovery, a human, the manager's resurrect) whose process is older than
        // the switch of its code or config runs what was there before, and is restarted.
        let restart = self.started_before_the_switch().await;
        if restart {
            self.items.push(ChecklistItem::done(format!(
                "`{}` was online from before the code or config was switched under it: restarted onto the activated release",
                o.app
            )));
        }
        let start = async {
            if restart {
                o.timed(Step::Start, "restarting the app", o.process.restart(&o.app))
                    .await
            } else {
                o.timed(Step::Start, "starting the app", o.process.start(&o.app))
                    .await
            }
        };
        let (started, first_answer, _) = while_probing(o, start).await;
        started?;
        if first_answer.is_some() {
            self.journal.first_answer_at = first_answer;
        }
        self.items
            .push(ChecklistItem::done(format!("`{}` started", o.app)));
        Ok(())
    }

    /// True when the app is online with a process that started before this rollback
    /// switched its code or config (the manager reports the uptime; a manager of several
    /// hosts does not, and is started as it is).
    /// Asked only of a resumed rollback: in one run the app is stopped by the stop step and
    /// started here, and a status call of a manager costs downtime.
    async fn started_before_the_switch(&self) -> bool {
        if !self.resumed {
            return false;
        }
        let o = self.o;
        let switched = self
            .journal
            .steps
            .iter()
            .filter(|r| matches!(r.step, Step::ActivateCode | Step::RestoreConfig) && r.outcome.is_ok())
            .filter(|r| !matches!(r.outcome, StepOutcome::Skipped(_)))
            .map(StepRecord::ended_at)
            .max();
        let Some(switched) = switched else {
            return false;
        };
        match o
            .timed(Step::Start, "reading the app's status", o.process.status(&o.app))
            .await
        {
            Ok(status) if status.state == crate::domain::ProcessState::Online => status
                .uptime
                .and_then(|up| chrono::Duration::from_std(up).ok())
                .is_some_and(|up| Utc::now() - up < switched),
            _ => false,
        }
    }

    async fn post_verify(&mut self) -> Result<(), Failure> {
        let (results, healthy_at) = wait_healthy(self.o).await?;
        for r in &results {
            self.items.push(ChecklistItem {
                text: format!("health: {} ({})", r.probe, r.detail),
                checked: r.healthy,
            });
        }
        self.journal.health = results;
        let Some(healthy_at) = healthy_at else {
            // The app's log may say why: read it before the failure policy runs.
            self.signals(false).await;
            return Err(failed(format!(
                "not healthy within {}s of the start",
                self.o.settings.health_timeout.as_secs_f64()
            )));
        };
        // The app may have answered before the process manager's start returned.
        self.journal.healthy_at = Some(
            self.journal
                .first_answer_at
                .filter(|first| *first < healthy_at)
                .unwrap_or(healthy_at),
        );
        if self.journal.request.scope.database {
            // Other clients may write as soon as the app runs: no exact row counts here,
            // only what must hold whatever they write, measured against the baseline.
            let mut checks = self.o.settings.integrity.clone();
            checks.expect_snapshot = None;
            checks.baseline = self.journal.checkpoint.snapshot.clone();
            self.integrity(Step::PostVerify, &checks).await?;
        }
        if let Some(why) = self.signals(true).await {
            return Err(failed(why));
        }
        let run = hooks::run(
            self.o,
            &self.journal,
            HookPoint::AfterStart,
            Step::PostVerify,
            false,
            None,
        )
        .await;
        self.items.extend(run.items);
        for f in &run.failures {
            self.journal.notes.push(f.clone());
        }
        match run.stopping {
            Some(e) => Err(Failure::Step(e)),
            None => Ok(()),
        }
    }

    /// The log and performance checks of the app started in the `start` step; journals
    /// them and returns why post-verify fails, when one whose policy is to fail found
    /// something.
    async fn signals(&mut self, healthy: bool) -> Option<String> {
        let since = self
            .journal
            .steps
            .iter()
            .rev()
            .find(|r| r.step == Step::Start)
            .map_or(self.journal.started_at, |r| r.started_at);
        let found = super::signals::observe(
            self.o,
            since,
            self.journal.checkpoint.metrics_baseline.as_ref(),
            healthy,
        )
        .await;
        for c in &found.checks {
            self.items.push(ChecklistItem {
                text: format!("{}: {}", c.name, c.detail),
                checked: c.passed,
            });
        }
        self.journal.verification = found.checks;
        self.journal.log_matches = found.matches;
        (!found.failures.is_empty()).then(|| found.failures.join("; "))
    }

    // ---- failure policy -----------------------------------------------------------------

    async fn fail(&mut self, step: Step, failure: Failure) -> Result<RollbackReport, RollbackError> {
        let cause = failure.message();
        self.emit(step, ProgressKind::Failed(cause.clone()));
        let error = match failure {
            Failure::Preflight(failures) => {
                self.finish(Outcome::Aborted { step, cause }).await;
                return Err(RollbackError::Preflight { failures });
            }
            Failure::Cancelled => {
                let outcome = Outcome::Aborted { step, cause };
                self.decide(&outcome).await;
                let items = self.after_start_hooks_on_the_old_release().await;
                self.journal.recovery.extend(items);
                self.finish(outcome).await;
                return Err(RollbackError::Cancelled { step });
            }
            Failure::TargetIsLive(what) => {
                self.finish(Outcome::Aborted { step, cause }).await;
                return Err(RollbackError::TargetIsLive {
                    checkpoint: self.journal.checkpoint.id.clone(),
                    what,
                });
            }
            Failure::Step(error) => error,
        };
        let outcome = match step.row().on_failure {
            OnFailure::Abort => {
                let outcome = Outcome::Aborted {
                    step,
                    cause: cause.clone(),
                };
                self.decide(&outcome).await;
                let items = self.after_start_hooks_on_the_old_release().await;
                self.journal.recovery.extend(items);
                outcome
            }
            OnFailure::StartAgain => {
                // The app may be half-stopped: make sure it runs, changing nothing else. A
                // crash before it does leaves a recovery for resume(), which starts it.
                self.journal.status = JournalStatus::Recovering {
                    step,
                    cause: cause.clone(),
                    kind: error.kind(),
                };
                if let Err(e) = self.save().await {
                    tracing::error!(error = %e, "could not journal the restart; restarting anyway");
                }
                let o = self.o;
                match o
                    .timed(Step::Start, "starting the app again", o.process.start(&o.app))
                    .await
                {
                    Ok(()) => {
                        self.journal
                            .recovery
                            .push(ChecklistItem::done("app started again after the failed stop"));
                        let items = self.after_start_hooks_on_the_old_release().await;
                        self.journal.recovery.extend(items);
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
            }
            OnFailure::Policy => match self.o.settings.failure_policy {
                FailurePolicy::RestorePreRollbackState => {
                    if let Some(unreachable) = recovery::only_unreachable_parts_failed(step, &error) {
                        // The database and the reachable hosts are on the target already:
                        // serving with them is a consistent end; going back would stop
                        // hosts that answer for the sake of one that doesn't.
                        return self.halt_towards_target(step, error, unreachable).await;
                    }
                    self.journal.status = JournalStatus::Recovering {
                        step,
                        cause: cause.clone(),
                        kind: error.kind(),
                    };
                    if let Err(e) = self.save().await {
                        tracing::error!(error = %e, "could not journal the recovery; recovering anyway");
                    }
                    return self.recover(step, error).await;
                }
                FailurePolicy::Halt => Outcome::Halted {
                    step,
                    cause: cause.clone(),
                    statement: self.state_statement(None),
                },
            },
        };
        let report = self.finish(outcome).await;
        Err(RollbackError::StepFailed {
            step,
            error,
            report: Box::new(report),
        })
    }

    /// Journals that the rollback ends with `outcome` before anything else is done about it
    /// (hooks, a restart): a crash from here on is finished by resume() as decided, never
    /// continued.
    async fn decide(&mut self, outcome: &Outcome) {
        self.journal.status = JournalStatus::Finishing(outcome.clone());
        if let Err(e) = self.save().await {
            tracing::error!(error = %e, "could not journal the rollback's end; ending it anyway");
        }
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

    /// Step 12: journal the outcome (`finishing`), write the report, journal `finished`,
    /// release the lock. A crash anywhere in here is finished by `resume()`.
    async fn finish(&mut self, outcome: Outcome) -> RollbackReport {
        if self.journal.steps.last().map(|r| r.step) != Some(Step::Report) {
            let _ = self.begin(Step::Report).await;
        }
        self.journal.artifacts.halt_resumable = matches!(outcome, Outcome::Halted { .. });
        self.journal.status = JournalStatus::Finishing(outcome.clone());
        if let Err(e) = self.save().await {
            tracing::error!(error = %e, "could not journal the end of the rollback");
        }
        let mut items = vec![ChecklistItem::done("journal `finishing` written")];
        if let Some(record) = self.journal.steps.last_mut() {
            record.duration = elapsed_since(record.started_at);
            record.outcome = StepOutcome::Ok;
        }
        self.announce(
            |e| {
                matches!(
                    e,
                    NoticeEvent::RollbackSucceeded
                        | NoticeEvent::RollbackFailed
                        | NoticeEvent::RollbackHalted
                )
            },
            |o, j| notices::outcome(o, j, &build_report(o, j)),
        )
        .await;
        let mut report = build_report(self.o, &self.journal);
        match self.o.state.save_report(&report).await {
            Ok(location) => items.push(ChecklistItem::done(format!("report written to {location}"))),
            Err(e) => {
                tracing::error!(error = %e, "could not store the rollback report");
                items.push(ChecklistItem::not_done(format!("report not stored: {e}")));
            }
        }
        self.journal.status = JournalStatus::Finished(outcome);
        if let Some(record) = self.journal.steps.last_mut() {
            record.checklist = items.clone();
        }
        if let Some(r) = report.steps.last_mut() {
            r.checklist = items;
        }
        if let Err(e) = self.save().await {
            tracing::error!(error = %e, "could not journal the end of the rollback");
        }
        if let Err(e) = self.o.state.unlock(&self.lock.holder.token).await {
            tracing::error!(error = %e, "could not release the rollback lock: clear it with clear_stale_lock()");
        }
        self.emit(Step::Report, ProgressKind::Finished);
        tracing::info!(rollback = %report.id, outcome = %report.outcome, "rollback finished");
        if hooks::any(self.o, HookPoint::AfterReport) {
            let run = hooks::run(
                self.o,
                &self.journal,
                HookPoint::AfterReport,
                Step::Report,
                false,
                Some(&report.outcome),
            )
            .await;
            report.notes.extend(run.failures);
        }
        report
    }

    /// Finishes a rollback whose process died while finishing: writes the report of the
    /// journaled outcome and releases the lock; a failed outcome is returned as the error
    /// it was.
    async fn finish_journaled(&mut self, outcome: Outcome) -> Result<RollbackReport, RollbackError> {
        let report = self.finish(outcome.clone()).await;
        match outcome {
            Outcome::Succeeded | Outcome::Investigated => Ok(report),
            Outcome::Aborted { step, cause }
            | Outcome::RestoredPreRollbackState { step, cause }
            | Outcome::Halted { step, cause, .. } => Err(RollbackError::StepFailed {
                step,
                error: AdapterError::new(ErrorKind::Failed, cause),
                report: Box::new(report),
            }),
        }
    }
}

/// The label of a rollback's emergency backups (the same in every call, so that a repeated
/// or resumed call finds what an earlier one did).
fn emergency_label(journal: &Journal) -> String {
    format!("pre-rollback-{}", journal.id)
}

fn elapsed_since(start: chrono::DateTime<Utc>) -> std::time::Duration {
    (Utc::now() - start).to_std().unwrap_or_default()
}
