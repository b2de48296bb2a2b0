//! The failure policy's recovery: put the pre-rollback state back and serve again with every
//! part that is consistent; or, when only unreachable parts failed the start, stay on the
//! target with the parts that answer. Either end that leaves a part behind halts with a
//! statement of what is where, part by part, and `resume()` takes it up again.

use super::Run;
use crate::error::{AdapterError, PartOutcome, PartState, RollbackError};
use crate::journal::JournalStatus;
use crate::orchestrator::health_gate::{wait_healthy_of, without_parts};
use crate::plan::Step;
use crate::progress::ProgressKind;
use crate::report::RollbackReport;
use crate::report::{ChecklistItem, Outcome};
use crate::traits::ProcessManager;
use std::sync::Arc;

/// Joins a halted rollback's own failure to what its recovery then met, in the outcome's
/// cause; a resume of the recovery splits it off again (the step's own failure is its
/// cause).
pub(super) const THEN_RECOVERY_FAILED: &str = "; then recovery failed: ";

/// The parts that failed `step`, when that step is the start, at least one part started,
/// and every part that did not could not be reached (its host or agent gone): the database
/// and the reachable hosts are on the target then. `None` otherwise.
pub(super) fn only_unreachable_parts_failed(step: Step, error: &AdapterError) -> Option<Vec<String>> {
    let parts = error.parts();
    if step != Step::Start || !parts.iter().any(PartOutcome::is_done) {
        return None;
    }
    let failed: Vec<&PartOutcome> = parts.iter().filter(|p| !p.is_done()).collect();
    (!failed.is_empty() && failed.iter().all(|p| p.is_unreachable()))
        .then(|| failed.iter().map(|p| p.part.clone()).collect())
}

/// Why `part` was left out, as the error of the call that left it out said.
fn why(error_parts: &[PartOutcome], part: &str) -> String {
    error_parts
        .iter()
        .find(|p| p.part == part)
        .map_or_else(|| PartState::NotReached.to_string(), |p| p.state.to_string())
}

/// What a recovery did, undo by undo: `None` where an undo was not needed.
#[derive(Default)]
pub(super) struct RecoveryLog {
    stop: Option<Result<(), AdapterError>>,
    database: Option<Result<(), AdapterError>>,
    opened: Option<Result<(), AdapterError>>,
    /// The live database's answer before the start.
    answers: Option<Result<(), AdapterError>>,
    code: Option<Result<(), AdapterError>>,
    config: Option<Result<(), AdapterError>>,
    start: Option<Result<(), AdapterError>>,
    items: Vec<ChecklistItem>,
    /// Failures that leave no part consistent to serve with (the shared database, an undo
    /// of an adapter of one part).
    problems: Vec<String>,
    /// Parts an undo could not bring back (each with why): left out of the start, never
    /// touched again by this recovery.
    left_out: Vec<(String, String)>,
}

impl RecoveryLog {
    fn record<T>(&mut self, what: &str, result: &Result<T, AdapterError>) {
        match result {
            Ok(_) => self.items.push(ChecklistItem::done(what)),
            Err(e) => {
                self.items.push(ChecklistItem::not_done(format!("{what}: {e}")));
                self.problems.push(format!("{what}: {e}"));
            }
        }
    }

    /// Records an undo of an adapter that may act on several parts: a failure that says
    /// which parts failed leaves those parts out; one that does not is a problem of the
    /// whole.
    fn record_parts<T>(&mut self, what: &str, result: &Result<T, AdapterError>) {
        match result {
            Err(e) if e.parts().iter().any(|p| !p.is_done()) => {
                for p in e.parts() {
                    if p.is_done() {
                        self.items
                            .push(ChecklistItem::done(format!("{what}: {}", p.part)));
                    } else {
                        self.items.push(ChecklistItem::not_done(format!("{what}: {p}")));
                        if !self.left_out.iter().any(|(name, _)| name == &p.part) {
                            self.left_out.push((p.part.clone(), format!("{what}: {p}")));
                        }
                    }
                }
            }
            other => self.record(what, other),
        }
    }

    fn left_out_names(&self) -> Vec<String> {
        self.left_out.iter().map(|(n, _)| n.clone()).collect()
    }
}

impl Run<'_> {
    /// The start failed only on parts that cannot be reached: serve on the target with the
    /// others when they answer (halted, `resume()` brings the missing parts to the target
    /// later); when they do not, put the pre-rollback state back as usual.
    pub(super) async fn halt_towards_target(
        &mut self,
        step: Step,
        error: AdapterError,
        unreachable: Vec<String>,
    ) -> Result<RollbackReport, RollbackError> {
        let o = self.o;
        let cause = error.to_string();
        let served: Vec<String> = error
            .parts()
            .iter()
            .filter(|p| p.is_done())
            .map(|p| p.part.clone())
            .collect();
        if let Some((process, probes)) = without_parts(o, &unreachable) {
            match wait_healthy_of(o, &process, &probes, o.settings.health_timeout).await {
                Ok((results, Some(at))) => {
                    self.journal.healthy_at.get_or_insert(at);
                    self.journal.health = results;
                    let mut items = vec![ChecklistItem::done(format!(
                        "kept serving on the target with {}: started and answering",
                        served.join(", ")
                    ))];
                    for part in &unreachable {
                        items.push(ChecklistItem::not_done(format!(
                            "{part} could not be reached ({}): left alone",
                            why(error.parts(), part)
                        )));
                    }
                    self.journal.recovery = items;
                    self.journal.artifacts.unreached_parts = unreachable.clone();
                    self.journal.artifacts.resume_towards_target = true;
                    let statement = self.towards_target_statement(&served, &unreachable, error.parts());
                    let report = self
                        .finish(Outcome::Halted {
                            step,
                            cause,
                            statement,
                        })
                        .await;
                    return Err(RollbackError::StepFailed {
                        step,
                        error,
                        report: Box::new(report),
                    });
                }
                Ok((_, None)) => self.journal.notes.push(format!(
                    "{} started on the target but did not answer: putting the pre-rollback state back",
                    served.join(", ")
                )),
                Err(e) => self.journal.notes.push(format!(
                    "the health of {} could not be read ({e}): putting the pre-rollback state back",
                    served.join(", ")
                )),
            }
        }
        self.journal.status = JournalStatus::Recovering {
            step,
            cause,
            kind: error.kind(),
        };
        if let Err(e) = self.save().await {
            tracing::error!(error = %e, "could not journal the recovery; recovering anyway");
        }
        self.recover(step, error).await
    }

    /// Undoes exactly the steps whose changes may have happened (the journal says which
    /// began), opens the live database once it is the pre-rollback one again, and starts
    /// the app on every part whose undo succeeded (a part an undo could not reach is left
    /// out and named). Idempotent, so an interrupted or halted recovery is taken up by
    /// running it again.
    pub(super) async fn recover(
        &mut self,
        step: Step,
        error: AdapterError,
    ) -> Result<RollbackReport, RollbackError> {
        let cause = error.to_string();
        self.emit(step, ProgressKind::Recovering);
        tracing::warn!(rollback = %self.journal.id, step = %step, "putting the pre-rollback state back");
        let o = self.o;
        let mut log = RecoveryLog::default();
        let graceful = self.journal.artifacts.graceful_reload;
        if self.journal.began(Step::Start) && !graceful {
            let r = o
                .timed(Step::Stop, "stopping the app", o.process.stop(&o.app))
                .await;
            log.record_parts("stop the app (it was started on the rolled-back state)", &r);
            log.stop = Some(r.map(drop));
        }
        // The database: preserve_current may already have moved the live database aside,
        // so it is put back whenever it was kept (reinstate is idempotent). An emergency
        // backup that began but returned nothing may have moved it all the same (it failed
        // after its change): the adapter is asked what it set aside.
        if let (Some(db), None, true, true) = (
            &o.database,
            &self.journal.artifacts.preserved_database,
            self.journal.request.scope.database,
            self.journal.began(Step::EmergencyBackup),
        ) {
            let label = super::emergency_label(&self.journal);
            let r = o
                .timed(
                    Step::EmergencyBackup,
                    "finding what the emergency backup set aside",
                    db.preserved(&label),
                )
                .await;
            match r {
                Ok(Some(p)) => {
                    log.items.push(ChecklistItem::done(format!(
                        "found what the interrupted emergency backup set aside: {} at {}",
                        p.method, p.location
                    )));
                    self.journal.artifacts.preserved_database = Some(p);
                }
                Ok(None) => {}
                Err(e) => log.record("find out what the emergency backup set aside", &Err::<(), _>(e)),
            }
        }
        let artifacts = self.journal.artifacts.clone();
        if let (Some(db), Some(p)) = (&o.database, &artifacts.preserved_database) {
            let r = o
                .timed(
                    Step::RestoreDatabase,
                    "putting the pre-rollback database back",
                    db.reinstate(p),
                )
                .await;
            log.record(
                &format!("put the pre-rollback database back from {}", p.location),
                &r,
            );
            if let Ok(aside) = &r {
                for a in aside {
                    if !self.journal.artifacts.put_aside.contains(a) {
                        self.journal.artifacts.put_aside.push(a.clone());
                    }
                }
            }
            log.database = Some(r.map(drop));
        }
        // The code and the config: only when their step began (an undo of a step that never
        // ran is a change of its own, and can fail on what it never touched).
        if let (Some(code), Some(p), true) = (
            &o.code,
            &artifacts.preserved_code,
            self.journal.began(Step::ActivateCode),
        ) {
            let r = o
                .timed(
                    Step::ActivateCode,
                    "activating the pre-rollback release",
                    code.reinstate(p),
                )
                .await;
            log.record_parts(&format!("activate the pre-rollback release {}", p.revision), &r);
            log.code = Some(r);
        }
        if let (Some(config), Some(v), true) = (
            &o.config,
            &artifacts.preserved_config,
            self.journal.began(Step::RestoreConfig),
        ) {
            let r = o
                .timed(
                    Step::RestoreConfig,
                    "putting the pre-rollback config back",
                    config.reinstate(v),
                )
                .await;
            log.record_parts(&format!("put the pre-rollback config {} back", v.id), &r);
            log.config = Some(r);
        }
        if let Err(e) = self.save().await {
            tracing::error!(error = %e, "could not journal the recovery's progress");
        }
        // The pre-rollback database is live again: it is opened whatever else failed (a
        // recovery never leaves the live database closed to its clients).
        if let (Some(db), Some(Ok(()))) = (&o.database, &log.database) {
            let r = o
                .timed(Step::Start, "opening the database to clients", db.open())
                .await;
            log.record("open the pre-rollback database to clients", &r);
            if let Ok(notes) = &r {
                self.journal.notes.extend(notes.iter().cloned());
            }
            log.opened = Some(r.map(drop));
        }
        // Before the app starts on it: the live database answers (an undo that reported
        // success is checked against what is there).
        if let (Some(db), true, true, true) = (
            &o.database,
            self.journal.request.scope.database,
            self.journal.began(Step::EmergencyBackup),
            log.problems.is_empty(),
        ) {
            let r = o
                .timed(Step::Start, "checking the live database answers", db.ping())
                .await;
            log.record("the live database answers", &r);
            log.answers = Some(r.map(drop));
        }
        // The app: on every part whose undo succeeded, never on one left out.
        let serving: Option<Arc<dyn ProcessManager>> = if !log.problems.is_empty() {
            log.items.push(ChecklistItem::not_done(
                "start the app: not attempted, the state is not consistent (see above)",
            ));
            None
        } else {
            match without_parts(o, &log.left_out_names()) {
                Some((process, _)) => Some(process),
                None => {
                    let what = format!(
                        "start the app: not attempted, this process manager cannot leave out {}",
                        log.left_out_names().join(", ")
                    );
                    log.items.push(ChecklistItem::not_done(what.clone()));
                    log.problems.push(what);
                    None
                }
            }
        };
        if let Some(process) = &serving {
            if graceful {
                // The app never stopped: reload it onto the pre-rollback state when the
                // start step began (its reload may have replaced processes already). Before
                // that, the processes still run the pre-rollback state: the code and config
                // put back under them are what they run.
                if self.journal.began(Step::Start) {
                    let r = o
                        .timed(Step::Start, "reloading the app", process.reload(&o.app))
                        .await;
                    log.record_parts("reload the app onto the pre-rollback state (gracefully)", &r);
                    log.start = Some(r.map(drop));
                } else {
                    log.items
                        .push(ChecklistItem::done("the app kept serving the pre-rollback state"));
                    log.start = Some(Ok(()));
                }
            } else {
                let r = o
                    .timed(Step::Start, "starting the app", process.start(&o.app))
                    .await;
                log.record_parts("start the app", &r);
                log.start = Some(r.map(drop));
            }
        }
        if serving.is_some() && log.problems.is_empty() {
            self.health_after_recovery(&mut log).await;
        }
        self.journal.recovery = log.items.clone();
        let left_out = log.left_out_names();
        self.journal.artifacts.unreached_parts = left_out.clone();
        self.journal.artifacts.resume_towards_target = false;
        let outcome = if log.problems.is_empty() && left_out.is_empty() {
            Outcome::RestoredPreRollbackState {
                step,
                cause: cause.clone(),
            }
        } else {
            let mut why: Vec<String> = log.problems.clone();
            why.extend(log.left_out.iter().map(|(_, w)| w.clone()));
            Outcome::Halted {
                step,
                cause: format!("{cause}{THEN_RECOVERY_FAILED}{}", why.join("; ")),
                statement: self.state_statement(Some(&log)),
            }
        };
        let report = self.finish(outcome).await;
        Err(RollbackError::StepFailed {
            step,
            error,
            report: Box::new(report),
        })
    }

    /// Waits for the parts the recovery served again with to answer, and runs the after-start
    /// hooks on the old release.
    async fn health_after_recovery(&mut self, log: &mut RecoveryLog) {
        let o = self.o;
        let Some((process, probes)) = without_parts(o, &log.left_out_names()) else {
            return;
        };
        match wait_healthy_of(o, &process, &probes, o.settings.health_timeout).await {
            Ok((results, healthy_at)) => {
                let healthy = healthy_at.is_some();
                log.items.push(ChecklistItem {
                    text: "the pre-rollback state answers its health probes".into(),
                    checked: healthy,
                });
                if healthy {
                    self.journal.healthy_at = healthy_at;
                } else {
                    self.journal.notes.push(
                        "after recovery the app runs the pre-rollback state but its health probes fail (as before the rollback)".into(),
                    );
                }
                self.journal.health = results;
            }
            Err(e) => log
                .items
                .push(ChecklistItem::not_done(format!("health after recovery: {e}"))),
        }
        let items = self.after_start_hooks_on_the_old_release().await;
        log.items.extend(items);
    }

    /// The statement of a rollback that halted on the target with the parts that answer.
    fn towards_target_statement(
        &self,
        served: &[String],
        unreachable: &[String],
        parts: &[PartOutcome],
    ) -> String {
        let j = &self.journal;
        let a = &j.artifacts;
        let mut out = Vec::new();
        if j.request.scope.database && a.preserved_database.is_some() {
            out.push("the database is the restored snapshot, open to clients".to_owned());
        }
        out.push(format!(
            "{} run{} the target (revision, config and process) and answer{} its health probes",
            served.join(", "),
            if served.len() == 1 { "s" } else { "" },
            if served.len() == 1 { "s" } else { "" },
        ));
        for part in unreachable {
            out.push(format!(
                "{part} could not be reached ({}): what it runs is unknown (it got the steps before the start; it may be stopped)",
                why(parts, part)
            ));
        }
        if let Some(p) = &a.preserved_database {
            out.push(format!(
                "the pre-rollback database is kept at {} ({})",
                p.location, p.method
            ));
        }
        for p in &a.put_aside {
            out.push(p.to_string());
        }
        out.push(format!(
            "once {} can be reached, resume the rollback (`rollback resume`): it brings {} to the target and verifies every part",
            unreachable.join(", "),
            if unreachable.len() == 1 { "it" } else { "them" }
        ));
        out.push(format!("the journal is rollback {}", j.id));
        out.join("; ")
    }

    /// Exactly what is live and where the backups are, for a human taking over: built from
    /// the journal (which steps began and ended) and, after a recovery, from what each undo
    /// did, part by part. Every action it asks for is a `rollback` command.
    pub(super) fn state_statement(&self, recovery: Option<&RecoveryLog>) -> String {
        let j = &self.journal;
        let a = &j.artifacts;
        let mut parts = Vec::new();
        let graceful = a.graceful_reload;
        let left_out = recovery.map(|r| r.left_out_names()).unwrap_or_default();
        let but = if left_out.is_empty() {
            String::new()
        } else {
            format!(" on every host but {}", left_out.join(", "))
        };
        let app_state = match recovery.and_then(|r| r.start.as_ref()) {
            Some(Ok(())) if graceful => format!("the app kept serving and runs the pre-rollback state again{but}"),
            Some(Err(_)) if graceful => {
                "the app was never stopped, but reloading it onto the pre-rollback state failed: some of its processes may run the target revision or config".to_owned()
            }
            None if graceful && recovery.is_some() => {
                "the app was never stopped and was not reloaded onto the pre-rollback state: processes replaced before the failure run the target, the others the pre-rollback state".to_owned()
            }
            Some(Ok(())) => format!("the app was started again on the pre-rollback state{but}"),
            Some(Err(_)) => "the app is STOPPED (starting it again failed)".to_owned(),
            None if j.stopped_at.is_none() => "the app was not stopped".to_owned(),
            None if recovery.and_then(|r| r.stop.as_ref()).is_some_and(Result::is_ok) => {
                "the app is STOPPED (recovery stopped it and did not start it again)".to_owned()
            }
            None if j.is_done(Step::Start) && recovery.is_none() => {
                "the app was started on the rolled-back state".to_owned()
            }
            None => "the app is STOPPED".to_owned(),
        };
        parts.push(app_state);
        if let Some(r) = recovery {
            for (part, why) in &r.left_out {
                parts.push(format!(
                    "{part} was left alone ({why}): what it runs is unknown, and this recovery did not start or reload it"
                ));
            }
        }
        let opened = recovery.and_then(|r| r.opened.as_ref());
        if let Some(p) = &a.preserved_database {
            match recovery.and_then(|r| r.database.as_ref()) {
                Some(Ok(())) => parts.push(format!(
                    "the pre-rollback database is live again (put back from {}){}",
                    p.location,
                    match opened {
                        Some(Ok(())) => ", open to clients".to_owned(),
                        Some(Err(e)) => format!(", but still CLOSED to clients (opening it failed: {e})"),
                        None => ", possibly still closed to clients".to_owned(),
                    }
                )),
                Some(Err(e)) => parts.push(format!(
                    "the pre-rollback database could NOT be put back ({e}): it is kept at {} ({}); {}",
                    p.location,
                    p.method,
                    if j.is_done(Step::RestoreDatabase) {
                        "the live database is still the restored snapshot"
                    } else if j.began(Step::RestoreDatabase) {
                        "the live database may be missing or the snapshot (the switch was interrupted)"
                    } else {
                        "no database is live under its name"
                    }
                )),
                None if j.is_done(Step::RestoreDatabase) => parts.push(format!(
                    "the database is the restored snapshot{}; the pre-rollback database is kept at {}",
                    if j.is_done(Step::Start) {
                        ""
                    } else {
                        ", possibly still closed to clients"
                    },
                    p.location
                )),
                None if j.began(Step::RestoreDatabase) => parts.push(format!(
                    "the switch to the snapshot was interrupted, so the live database may be missing or the snapshot; the pre-rollback database is at {} ({})",
                    p.location, p.method
                )),
                None => parts.push(format!(
                    "the live database was kept aside at {} ({}) and the snapshot was not switched in",
                    p.location, p.method
                )),
            }
        }
        if let Some(Err(e)) = recovery.and_then(|r| r.answers.as_ref()) {
            parts.push(format!(
                "the live database does not answer ({e}), so the app was not started on it{}",
                if a.preserved_database.is_none() {
                    "; the emergency backup may have set it aside without saying where"
                } else {
                    ""
                }
            ));
        }
        if let Some(p) = &a.preserved_code {
            match recovery.and_then(|r| r.code.as_ref()) {
                Some(Ok(())) => parts.push(format!("the code is the pre-rollback release {} again", p.revision)),
                Some(Err(e)) if !e.parts().is_empty() => parts.push(format!(
                    "the code is the pre-rollback release {} again{but}",
                    p.revision
                )),
                Some(Err(e)) => parts.push(format!(
                    "the pre-rollback release {} could NOT be activated again ({e}); it is at {}",
                    p.revision, p.location
                )),
                None if j.is_done(Step::ActivateCode) => parts.push(format!(
                    "the code is the target revision; the pre-rollback release {} is at {}",
                    p.revision, p.location
                )),
                None if j.began(Step::ActivateCode) => parts.push(format!(
                    "activating the target revision was interrupted (activation is atomic: either it or the pre-rollback release {} at {} is active)",
                    p.revision, p.location
                )),
                None => parts.push(format!("the code is unchanged (revision {})", p.revision)),
            }
        }
        if let Some(v) = &a.preserved_config {
            match recovery.and_then(|r| r.config.as_ref()) {
                Some(Ok(())) => parts.push("the config is the pre-rollback version again".to_owned()),
                Some(Err(e)) if !e.parts().is_empty() => parts.push(format!(
                    "the config is the pre-rollback version again{but}"
                )),
                Some(Err(e)) => parts.push(format!(
                    "the pre-rollback config could NOT be put back ({e}); it is at {}",
                    v.location
                )),
                None if j.is_done(Step::RestoreConfig) => parts.push(format!(
                    "the config is the checkpoint's; the pre-rollback config is kept at {}",
                    v.location
                )),
                None if j.began(Step::RestoreConfig) => parts.push(format!(
                    "putting the checkpoint's config in place was interrupted (atomic: either it or the pre-rollback config kept at {} is live)",
                    v.location
                )),
                None => parts.push(format!("the config is unchanged (backed up at {})", v.location)),
            }
        }
        for p in &a.put_aside {
            parts.push(p.to_string());
        }
        parts.push(if recovery.is_some() {
            "once the fault is cleared, resume the rollback (`rollback resume`): it puts back what is still missing and starts what is still stopped".to_owned()
        } else {
            "resume the rollback (`rollback resume`) to put the pre-rollback state back and start the app".to_owned()
        });
        parts.push(format!("the journal is rollback {}", j.id));
        parts.join("; ")
    }
}
