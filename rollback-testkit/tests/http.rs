//! The HTTP probe and the webhook notifier against a real HTTP server on 127.0.0.1: each
//! webhook format's body as the receiver gets it, refusals, and secrets never shown.
//! HTTPS is in `https.rs`.

mod http_server;

use http_server::{refused_url, serve};
use rollback_core::{
    ErrorKind, HealthProbe, HttpProbe, Notice, NoticeEvent, Notifier, Secret, Severity, WebhookFormat,
    WebhookNotifier,
};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_millis(400);

#[tokio::test]
async fn http_probe_200_500_slow_and_refused() {
    let server = serve().await;
    let timeout = TIMEOUT;
    let probe = |path: &str| HttpProbe::new(&format!("{}{path}", server.base), timeout).unwrap();

    let ok = probe("/ok").probe().await;
    assert!(ok.healthy && ok.detail == "HTTP 200", "{ok:?}");
    assert!(ok.latency < timeout);

    let fail = probe("/fail").probe().await;
    assert!(!fail.healthy && fail.detail == "HTTP 500", "{fail:?}");

    let slow = probe("/slow").probe().await;
    assert!(
        !slow.healthy && slow.detail.contains("no answer within 400 ms"),
        "{slow:?}"
    );
    assert!(
        slow.latency >= timeout && slow.latency < Duration::from_secs(2),
        "{slow:?}"
    );

    let refused = HttpProbe::new(&refused_url().await, timeout)
        .unwrap()
        .probe()
        .await;
    assert!(
        !refused.healthy && refused.detail.contains("refused"),
        "{refused:?}"
    );

    let err = HttpProbe::new("not a url", timeout).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = HttpProbe::new("ftp://127.0.0.1/health", timeout).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("http:// or https://"), "{err}");
}

#[tokio::test]
async fn http_probe_never_shows_credentials() {
    let server = serve().await;
    let url = format!("{}/ok", server.base).replace("http://", "http://user:probe-pw-canary@");
    let probe = HttpProbe::new(&url, TIMEOUT).unwrap();
    let result = probe.probe().await;
    assert!(result.healthy, "{result:?}");
    let builder = HttpProbe::builder(url.clone(), TIMEOUT);
    let refused = HttpProbe::new(
        &refused_url()
            .await
            .replace("http://", "http://u:probe-pw-canary@"),
        TIMEOUT,
    )
    .unwrap()
    .probe()
    .await;
    assert!(!refused.healthy);
    let shown = format!("{} {result:?} {probe:?} {builder:?} {refused:?}", probe.name());
    assert!(!shown.contains("probe-pw-canary"), "{shown}");
}

fn notice() -> Notice {
    Notice::new(
        "devops",
        Severity::Critical,
        "incident opened: web down",
        "health failing for 300s",
    )
    .event(NoticeEvent::IncidentOpened)
    .incident("rb-20261126T101500.123456Z-0")
    .escalation("now: on-call engineer (Ana, +1 555 0100); next at +30 min: DevOps lead (Bo, @bo)")
    .field("signal", "complete service failure")
}

#[tokio::test]
async fn webhook_json_body_is_the_documented_schema() {
    let server = serve().await;
    let hook =
        WebhookNotifier::new(&format!("{}/hook?token=hook-token-canary", server.base), TIMEOUT).unwrap();
    assert_eq!(hook.format(), &WebhookFormat::Json);
    hook.notify(&notice()).await.unwrap();
    hook.notify(&Notice::new("stakeholders", Severity::Low, "all clear", ""))
        .await
        .unwrap();
    let got = server.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/hook?token=hook-token-canary");
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let body = got[0].json();
    assert_eq!(body["schema"], "rollback.notice/1");
    assert_eq!(body["schema"], WebhookFormat::JSON_SCHEMA);
    assert_eq!(body["audience"], "devops");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["event"], "incident_opened");
    assert_eq!(body["closes"], false);
    assert_eq!(body["subject"], "incident opened: web down");
    assert_eq!(body["body"], "health failing for 300s");
    assert_eq!(body["incident"], "rb-20261126T101500.123456Z-0");
    assert_eq!(
        body["escalation"],
        "now: on-call engineer (Ana, +1 555 0100); next at +30 min: DevOps lead (Bo, @bo)"
    );
    assert_eq!(
        body["fields"],
        serde_json::json!({"signal": "complete service failure"})
    );
    assert_eq!(body.as_object().unwrap().len(), 10, "{body}");
    // The schema holds a Notice's fields under the same names: a receiver in Rust reads it back.
    let back: Notice = serde_json::from_value(body).unwrap();
    assert_eq!(back, notice());

    // Absent values are null, not missing; an update is not a closing event.
    let body = got[1].json();
    assert_eq!(body["incident"], serde_json::Value::Null);
    assert_eq!(body["escalation"], serde_json::Value::Null);
    assert_eq!(body["event"], "incident_update");
    assert_eq!(body["fields"], serde_json::json!({}));
}

#[tokio::test]
async fn webhook_slack_body() {
    let server = serve().await;
    let url = Secret::new(format!(
        "{}/slack/services/T000/B000/slack-token-canary",
        server.base
    ));
    let hook = WebhookNotifier::builder(url, TIMEOUT)
        .format(WebhookFormat::Slack)
        .build()
        .unwrap();
    hook.notify(&notice()).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let body = got[0].json();
    assert_eq!(body["text"], "[CRITICAL] incident opened: web down");
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 5, "{body}");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[0]["text"]["text"], "incident opened: web down");
    assert_eq!(blocks[1]["type"], "section");
    let facts: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["type"], "mrkdwn");
            f["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        facts,
        [
            "*Severity*\ncritical",
            "*Event*\nincident opened",
            "*Audience*\ndevops",
            "*Incident*\nrb-20261126T101500.123456Z-0",
        ]
    );
    assert_eq!(blocks[2]["type"], "section");
    assert_eq!(blocks[2]["text"]["type"], "mrkdwn");
    assert_eq!(blocks[2]["text"]["text"], "health failing for 300s");
    assert_eq!(
        blocks[3]["text"]["text"],
        "*Escalation*\nnow: on-call engineer (Ana, +1 555 0100); next at +30 min: DevOps lead (Bo, @bo)"
    );
    assert_eq!(blocks[4]["type"], "context");
    assert_eq!(
        blocks[4]["elements"][0]["text"],
        "*signal*: complete service failure"
    );
    assert!(!format!("{hook:?}").contains("slack-token-canary"));
}

#[tokio::test]
async fn webhook_pagerduty_triggers_then_resolves_with_one_dedup_key() {
    let server = serve().await;
    let key = "R0UTINGKEYCANARY0123456789abcdef";
    let builder = WebhookNotifier::pagerduty(Secret::new(key), TIMEOUT)
        .url(format!("{}/pagerduty/v2/enqueue", server.base))
        .source("web-1.example.com");
    assert!(!format!("{builder:?}").contains(key), "{builder:?}");
    let hook = builder.build().unwrap();
    let opened = notice();
    let resolved = Notice::new(
        "devops",
        Severity::Critical,
        "rollback succeeded: web",
        "v2.3 is back",
    )
    .event(NoticeEvent::RollbackSucceeded)
    .incident("rb-20261126T101500.123456Z-0");
    hook.notify(&opened).await.unwrap();
    hook.notify(&opened.clone().event(NoticeEvent::IncidentUpdate))
        .await
        .unwrap();
    hook.notify(&resolved).await.unwrap();

    let got = server.received();
    assert_eq!(got.len(), 3);
    assert!(got
        .iter()
        .all(|r| r.path == "/pagerduty/v2/enqueue" && r.header("content-type") == Some("application/json")));
    let (trigger, update, resolve) = (got[0].json(), got[1].json(), got[2].json());
    assert_eq!(trigger["routing_key"], key);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "rb-20261126T101500.123456Z-0");
    assert_eq!(trigger["client"], "rollback");
    let payload = &trigger["payload"];
    assert_eq!(payload["summary"], "incident opened: web down");
    assert_eq!(payload["source"], "web-1.example.com");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["class"], "incident_opened");
    let stamp = payload["timestamp"].as_str().unwrap();
    assert!(chrono_like(stamp), "{stamp}");
    let details = &payload["custom_details"];
    assert_eq!(details["body"], "health failing for 300s");
    assert_eq!(details["audience"], "devops");
    assert_eq!(details["incident"], "rb-20261126T101500.123456Z-0");
    assert_eq!(
        details["escalation"],
        "now: on-call engineer (Ana, +1 555 0100); next at +30 min: DevOps lead (Bo, @bo)"
    );
    assert_eq!(details["fields"]["signal"], "complete service failure");

    assert_eq!(update["event_action"], "trigger");
    assert_eq!(update["dedup_key"], trigger["dedup_key"]);

    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert_eq!(resolve["routing_key"], key);
    assert_eq!(resolve["payload"]["summary"], "rollback succeeded: web");

    // Severities map onto PagerDuty's four.
    for (severity, name) in [
        (Severity::Critical, "critical"),
        (Severity::High, "error"),
        (Severity::Medium, "warning"),
        (Severity::Low, "info"),
    ] {
        hook.notify(&Notice::new("devops", severity, "s", "b").incident("i"))
            .await
            .unwrap();
        let last = server.received().pop().unwrap().json();
        assert_eq!(last["payload"]["severity"], name);
    }

    // By default the source is this machine's name, and events go to PagerDuty.
    let default = WebhookNotifier::pagerduty(Secret::new(key), TIMEOUT)
        .build()
        .unwrap();
    let shown = format!("{default:?}");
    assert!(
        shown.contains("https://events.pagerduty.com/[redacted]"),
        "{shown}"
    );
    assert!(!shown.contains(key), "{shown}");
    assert!(!format!("{hook:?} {:?}", hook.format()).contains(key));

    // An empty routing key is refused when built.
    let err = WebhookNotifier::pagerduty(Secret::new(" "), TIMEOUT)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("routing key is empty"), "{err}");
}

/// `2026-11-26T10:15:00.123Z`: RFC 3339 in UTC with milliseconds.
fn chrono_like(stamp: &str) -> bool {
    let b = stamp.as_bytes();
    stamp.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && stamp.ends_with('Z')
}

#[tokio::test]
async fn webhook_refusals_name_the_status_and_never_a_secret() {
    let server = serve().await;
    let key = "R0UTINGKEYCANARY0123456789abcdef";

    // 5xx: the status is named, the query token is not.
    let err = WebhookNotifier::new(
        &format!("{}/hook-fail?token=hook-token-canary", server.base),
        TIMEOUT,
    )
    .unwrap()
    .notify(&notice())
    .await
    .unwrap_err();
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Failed);

    // 4xx from a Slack-like receiver: the status and what it said.
    let slack_url = Secret::new(format!("{}/reject/T000/B000/slack-token-canary", server.base));
    let slack_err = WebhookNotifier::builder(slack_url, TIMEOUT)
        .format(WebhookFormat::Slack)
        .build()
        .unwrap()
        .notify(&notice())
        .await
        .unwrap_err();
    assert!(
        slack_err.to_string().contains("HTTP 400: invalid_payload"),
        "{slack_err}"
    );
    assert!(slack_err.to_string().contains("Slack"), "{slack_err}");

    // A receiver that quotes the body back (the routing key in it) and has a token in its
    // path, its user info and its query.
    let echo = WebhookNotifier::pagerduty(Secret::new(key), TIMEOUT)
        .url(
            format!(
                "{}/echo-reject/path-token-canary?token=query-token-canary",
                server.base
            )
            .replace("http://", "http://user-token-canary:pw-token-canary@"),
        )
        .build()
        .unwrap();
    let echo_err = echo.notify(&notice()).await.unwrap_err();
    assert!(echo_err.to_string().contains("HTTP 400"), "{echo_err}");
    assert!(
        echo_err.to_string().contains("invalid event"),
        "what the receiver said is kept: {echo_err}"
    );

    // Unreachable, over time, and the notifiers and builders themselves.
    let refused = WebhookNotifier::pagerduty(Secret::new(key), TIMEOUT)
        .url(refused_url().await.replace("/ok", "/path-token-canary"))
        .build()
        .unwrap()
        .notify(&notice())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unavailable, "{refused}");
    assert!(refused.to_string().contains("unreachable"), "{refused}");
    let slow = WebhookNotifier::new(&format!("{}/slow?token=hook-token-canary", server.base), TIMEOUT)
        .unwrap()
        .notify(&notice())
        .await
        .unwrap_err();
    assert_eq!(slow.kind(), ErrorKind::Timeout, "{slow}");

    let not_a_url = WebhookNotifier::new("hooks.example.com/T000/path-token-canary", TIMEOUT).unwrap_err();
    assert_eq!(not_a_url.kind(), ErrorKind::InvalidInput);

    let builder = WebhookNotifier::builder(
        format!("{}/hook/path-token-canary?token=query-token-canary", server.base),
        TIMEOUT,
    )
    .format(WebhookFormat::pagerduty(key));
    let everything = format!(
        "{err} {err:?} {slack_err} {slack_err:?} {echo_err} {echo_err:?} {refused} {refused:?} {slow} \
         {slow:?} {not_a_url} {not_a_url:?} {echo:?} {builder:?} {:?}",
        builder.clone().build().unwrap()
    );
    for secret in [
        "hook-token-canary",
        "slack-token-canary",
        "path-token-canary",
        "query-token-canary",
        "user-token-canary",
        "pw-token-canary",
        key,
    ] {
        assert!(!everything.contains(secret), "{secret} shown in: {everything}");
    }
}
