//! The runbook's "Rollback Communication Plan": who is told what, when, on the incident's
//! clock, and the escalation path.

use super::matrix::Signal;
use crate::domain::{Notice, NoticeEvent, Severity};
use crate::traits::Notifier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

const MIN: u64 = 60;

/// Which incidents a scheduled notice is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Audience {
    /// Every incident.
    Always,
    /// Incidents users can see.
    UserFacing,
    /// Critical incidents.
    Critical,
}

/// One notice of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledNotice {
    /// When, after the incident opened.
    #[serde(with = "crate::duration_ms")]
    pub offset: Duration,
    /// Who (the [`Notice::audience`]), e.g. `"devops"`.
    pub audience: String,
    /// For which incidents.
    pub only: Audience,
    /// Sent again at this interval while the incident lasts.
    #[serde(with = "crate::duration_ms::option", default)]
    pub repeat: Option<Duration>,
    /// What it is, e.g. "status update".
    pub subject: String,
}

/// One level of the escalation path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    /// Reached this long after the incident opened.
    #[serde(with = "crate::duration_ms")]
    pub after: Duration,
    /// Who, e.g. "on-call engineer".
    pub role: String,
    /// Only for critical incidents (the CTO).
    pub critical_only: bool,
}

/// Someone to reach in an emergency: the runbook's "Emergency Contacts".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Contact {
    /// The role, as the escalation path names it (`"on-call engineer"`, `"DevOps lead"`,
    /// `"database admin"`, `"engineering manager"`).
    pub role: String,
    /// Who.
    pub name: String,
    /// How to reach them (a phone number, a chat handle, a pager).
    pub reach: String,
}

/// The communication plan: scheduled notices, the escalation path and who fills each role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CommunicationPlan {
    /// The notices, any order.
    pub notices: Vec<ScheduledNotice>,
    /// The escalation path, by `after`.
    pub escalation: Vec<EscalationLevel>,
    /// The emergency contacts: who fills each role of the path, and others to call
    /// (the database admin). Empty in the runbook's plan: fill it in.
    #[serde(default)]
    pub contacts: Vec<Contact>,
}

/// An incident the plan runs for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Incident {
    /// Unique to this incident: every notice of it carries it ([`Notice::incident`]).
    #[serde(default)]
    pub id: String,
    /// One line, e.g. "health check failing for 300s".
    pub title: String,
    /// How serious.
    pub severity: Severity,
    /// Whether users can see it (status page).
    pub user_facing: bool,
    /// What was observed, when known.
    pub signal: Option<Signal>,
}

/// A notice the plan sent (or tried to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentNotice {
    /// After how long on the incident's clock.
    pub at: Duration,
    /// The notice.
    pub notice: Notice,
    /// Delivery error, if any.
    pub error: Option<String>,
}

impl Contact {
    /// Who fills `role` (as the escalation path names it), and how to reach them.
    pub fn new(role: impl Into<String>, name: impl Into<String>, reach: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            name: name.into(),
            reach: reach.into(),
        }
    }
}

impl Incident {
    /// An incident: `id` (the same on every notice of it), a one-line title, its severity,
    /// whether users can see it, and the signal behind it when known.
    pub fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        severity: Severity,
        user_facing: bool,
        signal: Option<Signal>,
    ) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            severity,
            user_facing,
            signal,
        }
    }
}

impl CommunicationPlan {
    /// Adds an emergency contact.
    pub fn contact(mut self, contact: Contact) -> Self {
        self.contacts.push(contact);
        self
    }

    /// The runbook's plan: at once the DevOps channel (and the status page when
    /// user-facing, a user notice when critical), +15 min the development team, +30
    /// stakeholders, +60 a status update (then hourly), the post-incident report at the
    /// end. Escalation: on-call engineer from 0, DevOps lead from 30 min, engineering
    /// manager from 60 min, CTO from 60 min for critical incidents only.
    pub fn runbook() -> Self {
        let n = |min: u64, audience: &str, only, repeat: Option<u64>, subject: &str| ScheduledNotice {
            offset: Duration::from_secs(min * MIN),
            audience: audience.into(),
            only,
            repeat: repeat.map(|m| Duration::from_secs(m * MIN)),
            subject: subject.into(),
        };
        let e = |min: u64, role: &str, critical_only| EscalationLevel {
            after: Duration::from_secs(min * MIN),
            role: role.into(),
            critical_only,
        };
        Self {
            notices: vec![
                n(0, "devops", Audience::Always, None, "incident opened"),
                n(
                    0,
                    "status-page",
                    Audience::UserFacing,
                    None,
                    "we are investigating a problem",
                ),
                n(0, "users", Audience::Critical, None, "service disruption"),
                n(
                    15,
                    "development",
                    Audience::Always,
                    None,
                    "incident: development team engaged",
                ),
                n(
                    30,
                    "stakeholders",
                    Audience::Always,
                    None,
                    "incident: stakeholder briefing",
                ),
                n(60, "status-update", Audience::Always, Some(60), "status update"),
            ],
            escalation: vec![
                e(0, "on-call engineer", false),
                e(30, "DevOps lead", false),
                e(60, "engineering manager", false),
                e(60, "CTO", true),
            ],
            contacts: Vec::new(),
        }
    }

    /// A role with its contact, when one is configured: `"DevOps lead (Bo, @bo)"`.
    fn who(&self, role: &str) -> String {
        match self.contacts.iter().find(|c| c.role.eq_ignore_ascii_case(role)) {
            Some(c) => format!("{role} ({}, {})", c.name, c.reach),
            None => role.to_owned(),
        }
    }

    /// Who is responsible `elapsed` into an incident of `severity`, and who is next with
    /// when, each with their contact: what every notice says about the escalation.
    ///
    /// ```
    /// use rollback_core::automation::{CommunicationPlan, Contact};
    /// use rollback_core::Severity;
    /// use std::time::Duration;
    /// let plan = CommunicationPlan::runbook();
    /// let plan = plan.contact(Contact::new("DevOps lead", "Bo", "@bo"));
    /// let line = plan.escalation_line(Duration::ZERO, Severity::High).unwrap();
    /// assert_eq!(line, "now: on-call engineer; next at +30 min: DevOps lead (Bo, @bo)");
    /// ```
    pub fn escalation_line(&self, elapsed: Duration, severity: Severity) -> Option<String> {
        let now: Vec<String> = self
            .escalation_at(elapsed, severity)
            .iter()
            .map(|r| self.who(r))
            .collect();
        let next_at = self
            .escalation
            .iter()
            .filter(|l| l.after > elapsed && (!l.critical_only || severity == Severity::Critical))
            .map(|l| l.after)
            .min();
        let next: Vec<String> = self
            .escalation
            .iter()
            .filter(|l| Some(l.after) == next_at && (!l.critical_only || severity == Severity::Critical))
            .map(|l| self.who(&l.role))
            .collect();
        let mut parts = Vec::new();
        if !now.is_empty() {
            parts.push(format!("now: {}", now.join(" and ")));
        }
        if let Some(at) = next_at {
            parts.push(format!(
                "next at +{} min: {}",
                at.as_secs() / MIN,
                next.join(" and ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Who is responsible `elapsed` into an incident of `severity`: the roles of the
    /// highest level reached (two when the CTO joins the engineering manager).
    pub fn escalation_at(&self, elapsed: Duration, severity: Severity) -> Vec<String> {
        let reached: Vec<&EscalationLevel> = self
            .escalation
            .iter()
            .filter(|l| l.after <= elapsed && (!l.critical_only || severity == Severity::Critical))
            .collect();
        let top = reached.iter().map(|l| l.after).max();
        reached
            .into_iter()
            .filter(|l| Some(l.after) == top)
            .map(|l| l.role.clone())
            .collect()
    }

    fn applies(only: Audience, incident: &Incident) -> bool {
        match only {
            Audience::Always => true,
            Audience::UserFacing => incident.user_facing,
            Audience::Critical => incident.severity == Severity::Critical,
        }
    }

    /// Runs the plan for `incident` from now until `resolved` gives the resolution
    /// summary; then sends the post-incident report (audience `"post-incident"`) and
    /// returns what was sent. A notifier error is logged and recorded, and the plan goes
    /// on. Cancel-safe: dropping the future stops the plan.
    pub async fn run(
        &self,
        incident: &Incident,
        notifier: &dyn Notifier,
        resolved: impl Future<Output = String>,
    ) -> Vec<SentNotice> {
        let start = Instant::now();
        // (due, order, audience, subject, repeat)
        let mut queue: Vec<(Duration, usize, String, String, Option<Duration>)> = Vec::new();
        for (i, n) in self.notices.iter().enumerate() {
            if Self::applies(n.only, incident) {
                queue.push((n.offset, i, n.audience.clone(), n.subject.clone(), n.repeat));
            }
        }
        for (i, l) in self.escalation.iter().enumerate() {
            if !l.critical_only || incident.severity == Severity::Critical {
                let audience = format!("escalation:{}", l.role);
                queue.push((
                    l.after,
                    1000 + i,
                    audience,
                    format!("escalated to {}", l.role),
                    None,
                ));
            }
        }
        let mut sent = Vec::new();
        tokio::pin!(resolved);
        loop {
            queue.sort_by_key(|q| (q.0, q.1));
            let Some(due) = queue.first().map(|q| q.0) else {
                let summary = resolved.as_mut().await;
                sent.push(self.send_report(incident, notifier, start, &summary).await);
                return sent;
            };
            tokio::select! {
                biased;
                summary = &mut resolved => {
                    sent.push(self.send_report(incident, notifier, start, &summary).await);
                    return sent;
                }
                _ = tokio::time::sleep_until(start + due) => {
                    let (at, order, audience, subject, repeat) = queue.remove(0);
                    let body = format!(
                        "{} (severity {:?}, {} min into the incident; responsible: {})",
                        incident.title,
                        incident.severity,
                        at.as_secs() / MIN,
                        self.escalation_at(at, incident.severity).join(" and "),
                    );
                    sent.push(send(self, incident, notifier, at, &audience, &subject, body).await);
                    if let Some(every) = repeat.filter(|d| !d.is_zero()) {
                        queue.push((at + every, order, audience, subject, repeat));
                    }
                }
            }
        }
    }

    async fn send_report(
        &self,
        incident: &Incident,
        notifier: &dyn Notifier,
        start: Instant,
        summary: &str,
    ) -> SentNotice {
        let at = start.elapsed();
        let body = format!("{}\n\nResolution: {summary}", incident.title);
        send(
            self,
            incident,
            notifier,
            at,
            "post-incident",
            "post-incident report",
            body,
        )
        .await
    }
}

impl Default for CommunicationPlan {
    fn default() -> Self {
        Self::runbook()
    }
}

async fn send(
    plan: &CommunicationPlan,
    incident: &Incident,
    notifier: &dyn Notifier,
    at: Duration,
    audience: &str,
    subject: &str,
    body: String,
) -> SentNotice {
    let mut fields = BTreeMap::new();
    fields.insert(
        "minutes_into_incident".to_string(),
        (at.as_secs() / MIN).to_string(),
    );
    if let Some(signal) = incident.signal {
        fields.insert("signal".to_string(), signal.to_string());
    }
    let event = match (audience, at.is_zero()) {
        ("post-incident", _) => NoticeEvent::IncidentResolved,
        (_, true) => NoticeEvent::IncidentOpened,
        _ => NoticeEvent::IncidentUpdate,
    };
    let mut notice = Notice::new(
        audience,
        incident.severity,
        format!("{subject}: {}", incident.title),
        body,
    )
    .event(event)
    .incident(incident.id.clone());
    notice.fields = fields;
    if let Some(who) = plan.escalation_line(at, incident.severity) {
        notice = notice.escalation(who);
    }
    let error = match tokio::time::timeout(Duration::from_secs(30), notifier.notify(&notice)).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("the notifier did not answer within 30 s".to_string()),
    };
    if let Some(e) = &error {
        tracing::warn!(audience, error = %e, "a notice could not be delivered");
    }
    SentNotice { at, notice, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_follows_the_path() {
        let plan = CommunicationPlan::runbook();
        let at = |m: u64, s| plan.escalation_at(Duration::from_secs(m * MIN), s);
        assert_eq!(at(0, Severity::High), ["on-call engineer"]);
        assert_eq!(at(29, Severity::Critical), ["on-call engineer"]);
        assert_eq!(at(30, Severity::High), ["DevOps lead"]);
        assert_eq!(at(59, Severity::High), ["DevOps lead"]);
        assert_eq!(at(60, Severity::High), ["engineering manager"]);
        assert_eq!(
            at(240, Severity::High),
            ["engineering manager"],
            "the CTO is for critical only"
        );
        assert_eq!(at(60, Severity::Critical), ["engineering manager", "CTO"]);
    }
}
