//! The report of a rollback, built from its journal (also used by `investigate`).

use super::Orchestrator;
use crate::journal::{Journal, JournalStatus};
use crate::plan::Step;
use crate::report::{DowntimeWindow, Outcome, RollbackReport, StepRecord};
use chrono::Utc;

pub(super) fn build_report(o: &Orchestrator, j: &Journal) -> RollbackReport {
    // A finished rollback ended when its last step (the report's) did: read again later, its
    // report says the same (never the time of reading).
    let finished_at = match &j.status {
        JournalStatus::Finished(_) => j.steps.last().map_or_else(Utc::now, StepRecord::ended_at),
        _ => Utc::now(),
    };
    let outcome = match &j.status {
        JournalStatus::Finished(outcome) | JournalStatus::Finishing(outcome) => outcome.clone(),
        JournalStatus::Running | JournalStatus::Recovering { .. } => Outcome::Halted {
            step: j.last_step(),
            cause: "the rollback has not finished".into(),
            statement: "resume the rollback (`rollback resume`) to finish it".into(),
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
    for p in &j.artifacts.put_aside {
        emergency_backup.push(p.to_string());
    }
    let mut notes = j.notes.clone();
    if let (Some(snapshot), Some(p)) = (&j.checkpoint.snapshot, &j.artifacts.preserved_database) {
        let taken = j
            .checkpoint
            .snapshot_taken_at
            .unwrap_or(j.checkpoint.created_at)
            .to_rfc3339();
        let database_live = match &outcome {
            Outcome::RestoredPreRollbackState { .. } => false,
            _ => j.is_done(Step::RestoreDatabase),
        };
        if database_live {
            notes.push(format!(
                "writes made after snapshot {snapshot} (its data is as of {taken}) are not in the live database; they are kept in the pre-rollback database at {}",
                p.location
            ));
        } else if j.began(Step::RestoreDatabase)
            && matches!(outcome, Outcome::RestoredPreRollbackState { .. })
        {
            notes.push(
                "the pre-rollback database is live again, with every write made before the rollback; writes made into the restored copy while it was live are in the set-aside databases listed with the emergency backup".to_owned(),
            );
        }
    }
    let mut next_actions = Vec::new();
    match &outcome {
        Outcome::Succeeded => {
            let unmet: Vec<&str> = j
                .verification
                .iter()
                .filter(|c| !c.passed && !c.detail.starts_with("not checked"))
                .map(|c| c.name.as_str())
                .collect();
            if !unmet.is_empty() {
                next_actions.push(format!(
                    "read the verification checks that found something (reported, not failed): {}",
                    unmet.join(", ")
                ));
            }
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
            stop_issued_at: j.stop_issued_at,
            healthy_at: j.healthy_at,
            duration: j.healthy_at.and_then(|h| (h - stopped_at).to_std().ok()),
            post_verify: j
                .steps
                .iter()
                .rev()
                .find(|r| r.step == Step::PostVerify && r.outcome.is_ok())
                .map(|r| r.duration),
        }),
        steps: j.steps.clone(),
        health: j.health.clone(),
        integrity: j.integrity.clone(),
        verification: j.verification.clone(),
        log_matches: j.log_matches.clone(),
        diagnosis: Vec::new(),
        recovery: j.recovery.clone(),
        emergency_backup,
        outcome,
        notes,
        next_actions,
        notices: j.notices.clone(),
        post_rollback_actions: crate::report::post_rollback_actions(),
        lessons_learned: String::new(),
    }
}
