//! The bodies a [`WebhookNotifier`](super::WebhookNotifier) sends: a generic, versioned JSON
//! schema, Slack's incoming-webhook message, and PagerDuty's Events API v2 event.

use crate::domain::{Notice, NoticeEvent, Severity};
use crate::secret::Secret;
use serde_json::{json, Map, Value};

/// What a [`WebhookNotifier`](crate::WebhookNotifier) POSTs for each [`Notice`], as
/// `application/json`.
///
/// # `Json` (the default): schema `rollback.notice/1`
///
/// ```json
/// {
///   "schema": "rollback.notice/1",
///   "audience": "devops",
///   "severity": "critical",
///   "event": "rollback_started",
///   "closes": false,
///   "subject": "rollback started: web",
///   "body": "v2.4 broke checkout",
///   "incident": "rb-20261126T101500.123456Z-0",
///   "escalation": "now: on-call engineer (Ana, +1 555 0100); next at +30 min: DevOps lead",
///   "fields": { "target": "the last good checkpoint" }
/// }
/// ```
///
/// | key | type | meaning |
/// |---|---|---|
/// | `schema` | string | always `rollback.notice/1` for this shape |
/// | `audience` | string | who it is for, e.g. `devops`, `stakeholders`, `status-page` |
/// | `severity` | string | `low`, `medium`, `high` or `critical` |
/// | `event` | string | `incident_opened`, `incident_update`, `incident_resolved`, `rollback_started`, `rollback_succeeded`, `rollback_failed`, `rollback_halted` (more may come) |
/// | `closes` | bool | true when nothing stays open after it (an alert is resolved): [`NoticeEvent::closes`] |
/// | `subject` | string | one line |
/// | `body` | string | free text |
/// | `incident` | string or null | the same for every notice of one incident or rollback: a deduplication key |
/// | `escalation` | string or null | who is responsible now and who is next |
/// | `fields` | object of strings | extra values for machines (e.g. `target`, `app`, `downtime`) |
///
/// Within `/1`, keys may be added and new `event` values may appear; a key removed, renamed
/// or given another meaning makes it `rollback.notice/2`. Receivers should ignore keys they
/// do not know and treat an unknown `event` by its `closes`.
///
/// # `Slack`: an incoming-webhook message
///
/// `text` is `[SEVERITY] subject` (what notifications and old clients show), and `blocks`
/// lay out the notice: a `header` with the subject, a `section` whose `fields` are the
/// severity, the event, the audience and the incident, a `section` with the body, one with
/// the escalation (who is on it now and who is next), and a `context` with the notice's
/// fields. Text is escaped for Slack's `mrkdwn` and cut to Slack's limits (150 characters
/// for the header, 3000 for a section). The URL is the webhook's
/// (`https://hooks.slack.com/services/...`), a secret.
///
/// # `PagerDuty`: an Events API v2 alert event
///
/// Sent to [`WebhookFormat::PAGERDUTY_EVENTS_URL`] unless another URL is given (an
/// EU account's, a proxy's). The event:
///
/// - `routing_key`: the integration key (a [`Secret`]: it is never shown);
/// - `event_action`: `resolve` when [`NoticeEvent::closes`] (incident resolved, rollback
///   succeeded), `trigger` otherwise (an opening event or an update, which PagerDuty adds
///   to the open alert);
/// - `dedup_key`: the notice's [`incident`](Notice::incident), so that the resolve closes
///   the alert the trigger opened; a notice without one gets `rollback-` and a hash of its
///   subject (which correlates nothing unless the subjects match: set the incident);
/// - `client`: `rollback`;
/// - `payload`: `summary` (the subject, at most 1024 characters), `source` (this machine's
///   host name unless set), `severity` (`critical` for critical, `error` for high,
///   `warning` for medium, `info` for low), `timestamp` (RFC 3339), `class` (the event) and
///   `custom_details` (`audience`, `body`, `event`, `incident`, `escalation`, `fields`).
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookFormat {
    /// The generic JSON body, schema `rollback.notice/1`.
    #[default]
    Json,
    /// A Slack incoming-webhook message (`text` and `blocks`).
    Slack,
    /// A PagerDuty Events API v2 event.
    PagerDuty {
        /// The Events API v2 integration key of the service (32 characters).
        routing_key: Secret,
    },
}

impl WebhookFormat {
    /// The `schema` value of the [`Json`](WebhookFormat::Json) body.
    pub const JSON_SCHEMA: &'static str = "rollback.notice/1";

    /// PagerDuty's Events API v2 endpoint, where [`WebhookFormat::PagerDuty`] events go
    /// unless another URL is given.
    pub const PAGERDUTY_EVENTS_URL: &'static str = "https://events.pagerduty.com/v2/enqueue";

    /// The PagerDuty format with this integration key.
    pub fn pagerduty(routing_key: impl Into<Secret>) -> Self {
        WebhookFormat::PagerDuty {
            routing_key: routing_key.into(),
        }
    }

    /// Its name in messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            WebhookFormat::Json => "JSON",
            WebhookFormat::Slack => "Slack",
            WebhookFormat::PagerDuty { .. } => "PagerDuty",
        }
    }

    /// The body for `notice`; `source` is the machine named in a PagerDuty event.
    pub(crate) fn body(&self, notice: &Notice, source: &str) -> Value {
        match self {
            WebhookFormat::Json => json_body(notice),
            WebhookFormat::Slack => slack_body(notice),
            WebhookFormat::PagerDuty { routing_key } => pagerduty_body(notice, routing_key, source),
        }
    }
}

fn json_body(notice: &Notice) -> Value {
    json!({
        "schema": WebhookFormat::JSON_SCHEMA,
        "audience": notice.audience,
        "severity": notice.severity,
        "event": notice.event,
        "closes": notice.event.closes(),
        "subject": notice.subject,
        "body": notice.body,
        "incident": notice.incident,
        "escalation": notice.escalation,
        "fields": notice.fields,
    })
}

/// Slack's limits on a header's and a section's text, and on a section field's.
const SLACK_HEADER_MAX: usize = 150;
const SLACK_SECTION_MAX: usize = 3000;
const SLACK_FIELD_MAX: usize = 2000;

fn slack_body(notice: &Notice) -> Value {
    let subject = if notice.subject.trim().is_empty() {
        "(no subject)"
    } else {
        notice.subject.as_str()
    };
    let mut facts = vec![
        slack_fact("Severity", severity_name(notice.severity)),
        slack_fact("Event", event_words(notice.event)),
        slack_fact("Audience", &notice.audience),
    ];
    if let Some(incident) = &notice.incident {
        facts.push(slack_fact("Incident", incident));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(subject, SLACK_HEADER_MAX)}}),
        json!({"type": "section", "fields": facts}),
    ];
    if !notice.body.trim().is_empty() {
        blocks.push(slack_section(&mrkdwn(&notice.body)));
    }
    if let Some(escalation) = &notice.escalation {
        blocks.push(slack_section(&format!("*Escalation*\n{}", mrkdwn(escalation))));
    }
    if !notice.fields.is_empty() {
        let lines: Vec<String> = notice
            .fields
            .iter()
            .map(|(k, v)| format!("*{}*: {}", mrkdwn(k), mrkdwn(v)))
            .collect();
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": clip(&lines.join("\n"), SLACK_SECTION_MAX)}],
        }));
    }
    json!({
        "text": format!("[{}] {}", severity_name(notice.severity).to_uppercase(), mrkdwn(subject)),
        "blocks": blocks,
    })
}

fn slack_fact(label: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": clip(&format!("*{label}*\n{}", mrkdwn(value)), SLACK_FIELD_MAX)})
}

fn slack_section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SLACK_SECTION_MAX)}})
}

/// Text escaped for Slack's `mrkdwn`: `&`, `<` and `>` are control characters there.
fn mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// PagerDuty's limits on `summary` and `dedup_key`.
const PAGERDUTY_SUMMARY_MAX: usize = 1024;
const PAGERDUTY_DEDUP_MAX: usize = 255;

fn pagerduty_body(notice: &Notice, routing_key: &Secret, source: &str) -> Value {
    let action = if notice.event.closes() {
        "resolve"
    } else {
        "trigger"
    };
    let summary = if notice.subject.trim().is_empty() {
        "(no subject)"
    } else {
        notice.subject.as_str()
    };
    let mut details = Map::new();
    details.insert("audience".into(), json!(notice.audience));
    details.insert("body".into(), json!(notice.body));
    details.insert("event".into(), json!(notice.event));
    if let Some(incident) = &notice.incident {
        details.insert("incident".into(), json!(incident));
    }
    if let Some(escalation) = &notice.escalation {
        details.insert("escalation".into(), json!(escalation));
    }
    if !notice.fields.is_empty() {
        details.insert("fields".into(), json!(notice.fields));
    }
    json!({
        "routing_key": routing_key.expose(),
        "event_action": action,
        "dedup_key": dedup_key(notice),
        "client": "rollback",
        "payload": {
            "summary": clip(summary, PAGERDUTY_SUMMARY_MAX),
            "source": source,
            "severity": pagerduty_severity(notice.severity),
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "class": notice.event,
            "custom_details": details,
        },
    })
}

/// The notice's incident (hashed when longer than PagerDuty takes), else a hash of its
/// subject: stable across runs and releases (FNV-1a, not std's hasher).
fn dedup_key(notice: &Notice) -> String {
    match &notice.incident {
        Some(incident) if !incident.is_empty() && incident.chars().count() <= PAGERDUTY_DEDUP_MAX => {
            incident.clone()
        }
        Some(incident) if !incident.is_empty() => format!("rollback-{:016x}", fnv1a(incident)),
        _ => format!("rollback-{:016x}", fnv1a(&notice.subject)),
    }
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn pagerduty_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "info",
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

fn event_words(event: NoticeEvent) -> &'static str {
    match event {
        NoticeEvent::IncidentOpened => "incident opened",
        NoticeEvent::IncidentUpdate => "incident update",
        NoticeEvent::IncidentResolved => "incident resolved",
        NoticeEvent::RollbackStarted => "rollback started",
        NoticeEvent::RollbackSucceeded => "rollback succeeded",
        NoticeEvent::RollbackFailed => "rollback failed",
        NoticeEvent::RollbackHalted => "rollback halted",
    }
}

/// `text` cut to at most `max` characters, ending in `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        Notice::new(
            "devops",
            Severity::High,
            "rollback started: <web> & api",
            "v2.4 broke checkout",
        )
        .event(NoticeEvent::RollbackStarted)
        .incident("rb-1")
        .escalation("now: on-call (Ana)")
        .field("target", "checkpoint c1")
    }

    #[test]
    fn json_body_has_every_schema_key() {
        let body = WebhookFormat::Json.body(&notice(), "host");
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        for key in [
            "schema",
            "audience",
            "severity",
            "event",
            "closes",
            "subject",
            "body",
            "incident",
            "escalation",
            "fields",
        ] {
            assert!(keys.contains(&key), "{key} missing from {body}");
        }
        assert_eq!(body["schema"], "rollback.notice/1");
        assert_eq!(body["event"], "rollback_started");
        assert_eq!(body["closes"], false);
        // The serde names of the events are the schema's: every one is listed in its docs.
        for event in [
            NoticeEvent::IncidentOpened,
            NoticeEvent::IncidentUpdate,
            NoticeEvent::IncidentResolved,
            NoticeEvent::RollbackStarted,
            NoticeEvent::RollbackSucceeded,
            NoticeEvent::RollbackFailed,
            NoticeEvent::RollbackHalted,
        ] {
            let name = serde_json::to_value(event).unwrap();
            assert_eq!(name.as_str().unwrap().replace('_', " "), event_words(event));
        }
    }

    #[test]
    fn slack_escapes_and_clips() {
        let body = WebhookFormat::Slack.body(&notice(), "host");
        assert_eq!(body["text"], "[HIGH] rollback started: &lt;web&gt; &amp; api");
        assert_eq!(body["blocks"][0]["text"]["text"], "rollback started: <web> & api");

        let long = Notice::new("devops", Severity::Low, "s".repeat(400), "b".repeat(5000));
        let body = WebhookFormat::Slack.body(&long, "host");
        let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), SLACK_HEADER_MAX);
        assert!(header.ends_with('…'));
        let section = body["blocks"][2]["text"]["text"].as_str().unwrap();
        assert_eq!(section.chars().count(), SLACK_SECTION_MAX);

        let empty = Notice::new("devops", Severity::Low, "", "");
        let body = WebhookFormat::Slack.body(&empty, "host");
        assert_eq!(body["blocks"][0]["text"]["text"], "(no subject)");
        assert_eq!(
            body["blocks"].as_array().unwrap().len(),
            2,
            "no empty section: {body}"
        );
    }

    #[test]
    fn pagerduty_actions_keys_and_severities() {
        let key = Secret::new("R0UTING");
        let format = WebhookFormat::pagerduty(key.clone());
        let trigger = format.body(&notice(), "web-1");
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["dedup_key"], "rb-1");
        assert_eq!(trigger["routing_key"], "R0UTING");
        assert_eq!(trigger["payload"]["severity"], "error");
        assert_eq!(trigger["payload"]["source"], "web-1");
        let resolve = format.body(&notice().event(NoticeEvent::RollbackSucceeded), "web-1");
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(resolve["dedup_key"], "rb-1");
        for (severity, name) in [
            (Severity::Critical, "critical"),
            (Severity::High, "error"),
            (Severity::Medium, "warning"),
            (Severity::Low, "info"),
        ] {
            let body = format.body(&Notice::new("a", severity, "s", "b"), "h");
            assert_eq!(body["payload"]["severity"], name);
        }
        // No incident: a stable hash of the subject, the same for the same subject.
        let a = format.body(&Notice::new("a", Severity::Low, "web down", ""), "h");
        let b = format.body(&Notice::new("a", Severity::High, "web down", "other"), "h");
        let c = format.body(&Notice::new("a", Severity::Low, "api down", ""), "h");
        assert_eq!(a["dedup_key"], b["dedup_key"]);
        assert_ne!(a["dedup_key"], c["dedup_key"]);
        assert_eq!(a["dedup_key"], format!("rollback-{:016x}", fnv1a("web down")));
        // An incident longer than PagerDuty takes is hashed, not cut (two long ids that
        // share a prefix must not collide).
        let long = "x".repeat(300);
        let body = format.body(&notice().incident(long.clone()), "h");
        assert_eq!(body["dedup_key"], format!("rollback-{:016x}", fnv1a(&long)));
        assert!(!format!("{format:?}").contains("R0UTING"));
    }

    #[test]
    fn fnv1a_is_the_published_function() {
        // FNV-1a 64 test vectors.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
