//! Notices about every rollback, not only the watchdog's: started (reason, target, who),
//! finished or failed (outcome, downtime, the report's summary), halted (the state
//! statement, loudly). Each says who is responsible now and next in the escalation path.
//! Delivery never decides anything: a notifier that fails or hangs is recorded, and the
//! rollback goes on.

use super::Orchestrator;
use crate::automation::CommunicationPlan;
use crate::domain::{Notice, NoticeEvent, Severity};
use crate::journal::Journal;
use crate::report::{NoticeRecord, Outcome, RollbackReport};
use crate::traits::Notifier;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;

/// Who is told about rollbacks, and the plan that names who is responsible.
#[derive(Clone)]
pub(super) struct Communication {
    pub(super) notifiers: Vec<Arc<dyn Notifier>>,
    pub(super) plan: CommunicationPlan,
    pub(super) timeout: Duration,
}

impl Default for Communication {
    fn default() -> Self {
        Self {
            notifiers: Vec::new(),
            plan: CommunicationPlan::runbook(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The audience of rollback notices in the runbook's plan (the DevOps channel).
const AUDIENCE: &str = "devops";

/// True when there is anyone to tell: without notifiers no notice is built or journaled.
pub(super) fn wanted(o: &Orchestrator) -> bool {
    !o.communication.notifiers.is_empty()
}

/// Sends `notice` to every notifier (at once, each within the timeout) and records it.
pub(super) async fn send(o: &Orchestrator, journal: &mut Journal, notice: Notice) {
    let c = &o.communication;
    let deliveries = c.notifiers.iter().map(|n| async {
        match tokio::time::timeout(c.timeout, n.notify(&notice)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "the notifier did not answer within {}s",
                c.timeout.as_secs_f64()
            )),
        }
    });
    let errors: Vec<String> = futures::future::join_all(deliveries)
        .await
        .into_iter()
        .flatten()
        .collect();
    for e in &errors {
        tracing::warn!(subject = %notice.subject, error = %e, "a rollback notice could not be delivered");
    }
    journal.notices.push(NoticeRecord {
        at: Utc::now(),
        audience: notice.audience.clone(),
        subject: notice.subject.clone(),
        event: notice.event,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    });
}

fn escalation(o: &Orchestrator, journal: &Journal, severity: Severity) -> Option<String> {
    let elapsed = (Utc::now() - journal.started_at).to_std().unwrap_or_default();
    o.communication.plan.escalation_line(elapsed, severity)
}

fn with_escalation(notice: Notice, line: Option<String>) -> Notice {
    match line {
        Some(line) => notice.escalation(line),
        None => notice,
    }
}

/// "Rollback started": why, to what, who asked, what goes back.
pub(super) fn started(o: &Orchestrator, journal: &Journal) -> Notice {
    let r = &journal.request;
    let cp = &journal.checkpoint;
    let who = r
        .trigger
        .clone()
        .unwrap_or_else(|| "a caller of the library".into());
    let body = format!(
        "Rolling `{}` back ({}) to checkpoint {} `{}` of {}.\nReason: {}\nStarted by: {who}\nThe app may be down until the rollback ends.",
        o.app,
        r.scope,
        cp.id,
        cp.label,
        cp.created_at.to_rfc3339(),
        r.reason,
    );
    let severity = Severity::High;
    let notice = Notice::new(AUDIENCE, severity, format!("rollback started: {}", o.app), body)
        .event(NoticeEvent::RollbackStarted)
        .incident(journal.id.as_str())
        .field("target", r.target.to_string())
        .field("checkpoint", cp.id.as_str())
        .field("scope", r.scope.to_string())
        .field("trigger", who);
    with_escalation(notice, escalation(o, journal, severity))
}

/// The outcome's notice: finished, failed (put back, or aborted), halted (loudly).
pub(super) fn outcome(o: &Orchestrator, journal: &Journal, report: &RollbackReport) -> Option<Notice> {
    let downtime = report
        .downtime
        .as_ref()
        .and_then(|d| d.duration)
        .map(|d| format!("{:.1}s", d.as_secs_f64()))
        .unwrap_or_else(|| "none measured".into());
    let total = format!("{:.1}s", report.total_duration.as_secs_f64());
    let next = report.next_actions.first().cloned().unwrap_or_default();
    let (event, severity, subject, body) = match &report.outcome {
        Outcome::Succeeded => (
            NoticeEvent::RollbackSucceeded,
            Severity::Medium,
            format!("rollback finished: {} runs checkpoint {}", o.app, journal.checkpoint.id),
            format!("Outcome: {}\nDowntime: {downtime}; total {total}.\nNext: {next}", report.outcome),
        ),
        Outcome::RestoredPreRollbackState { .. } | Outcome::Aborted { .. } => (
            NoticeEvent::RollbackFailed,
            Severity::High,
            format!("rollback FAILED: {}", o.app),
            format!(
                "Outcome: {}\nThe app runs what it ran before the rollback; the problem it was for is still there.\nDowntime: {downtime}; total {total}.\nNext: {next}",
                report.outcome
            ),
        ),
        Outcome::Halted { statement, .. } => (
            NoticeEvent::RollbackHalted,
            Severity::Critical,
            format!("ROLLBACK HALTED: {}: a human must take over NOW", o.app),
            format!("Outcome: {}\n\nWHAT IS LIVE NOW:\n{statement}\n\nNext: {next}", report.outcome),
        ),
        _ => return None,
    };
    let notice = Notice::new(AUDIENCE, severity, subject, body)
        .event(event)
        .incident(journal.id.as_str())
        .field("outcome", report.outcome.to_string())
        .field("downtime", downtime)
        .field("total", total);
    Some(with_escalation(notice, escalation(o, journal, severity)))
}
