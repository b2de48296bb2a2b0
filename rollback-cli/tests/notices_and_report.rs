//! A rollback run by the `rollback` binary is announced to every `[[notify]]` target (the
//! generic JSON webhook, Slack, PagerDuty: receivers on 127.0.0.1 record what they got),
//! each notice naming who is responsible from `[watchdog.plan]`'s contacts; then its report
//! is written as HTML to a file that is never silently overwritten. A real pm2 (its own
//! `PM2_HOME`) runs the app; its env file is what is rolled back.

use rollback_testkit::temp_pm2::{free_port, http_status, NodeApp, TempPm2};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOOK_TOKEN: &str = "canary-hook-token";
const SLACK_TOKEN: &str = "canary-slack-token";
const ROUTING_KEY: &str = "canarykey0123456789abcdef0123456";

/// What the receiver got: each request's path and JSON body.
type Got = Arc<Mutex<Vec<(String, Value)>>>;

/// An HTTP receiver on 127.0.0.1 answering every POST with 202; returns its base URL.
fn receiver() -> (String, Got) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
    let port = listener.local_addr().expect("its address").port();
    let got: Got = Arc::default();
    let recorded = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let recorded = recorded.clone();
            std::thread::spawn(move || {
                let _ = serve(stream, &recorded);
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), got)
}

/// Serves the requests of one connection (keep-alive), recording each.
fn serve(mut stream: TcpStream, got: &Got) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        got.lock().unwrap().push((path, json));
        stream.write_all(
            b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        )?;
    }
}

/// The bodies received at paths starting with `prefix`.
fn bodies(got: &Got, prefix: &str) -> Vec<Value> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .map(|(_, b)| b.clone())
        .collect()
}

/// `rollback --config <config> <args>` with the notifiers' variables set; its exit code,
/// stdout and stderr.
fn rollback(config: &Path, receiver: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rollback"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("ROLLBACK_CONFIG")
        .env("ROLLBACK_TEST_HOOK", format!("{receiver}/hook/{HOOK_TOKEN}"))
        .env("ROLLBACK_TEST_SLACK", format!("{receiver}/slack/{SLACK_TOKEN}"))
        .env("ROLLBACK_TEST_PD_URL", format!("{receiver}/pagerduty"))
        .env("ROLLBACK_TEST_PD_KEY", ROUTING_KEY)
        .stdin(Stdio::null())
        .output()
        .expect("run rollback");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_for_health(port: u16, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_status(port, "/api/health", Duration::from_secs(1)) != Some(want) {
        assert!(Instant::now() < deadline, "the app never answered {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_rollback_from_the_command_line_is_announced_and_its_report_written_as_html() {
    let test = "a_rollback_from_the_command_line_is_announced_and_its_report_written_as_html";
    let Some(pm2) = TempPm2::new(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let script = pm2.write_app("web", NodeApp::HealthServer);
    let ecosystem = dir.join("ecosystem.config.js");
    std::fs::write(
        &ecosystem,
        format!(
            "module.exports = {{ apps: [{{ name: 'web', script: {script:?}, cwd: {cwd:?}, env: {{ PORT: '{port}' }} }}] }};\n",
            script = script.display().to_string(),
            cwd = dir.display().to_string(),
        ),
    )
    .unwrap();
    let started = pm2
        .run(&["start", &ecosystem.display().to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(started.status.success(), "pm2 start: {started:?}");
    wait_for_health(port, 200);

    let env = dir.join("app.env");
    let v1 = format!("PORT={port}\nFEATURE=v1\n");
    std::fs::write(&env, &v1).unwrap();
    let (url, got) = receiver();
    let config = dir.join("rollback.toml");
    std::fs::write(
        &config,
        format!(
            r#"app = "web"
state_dir = "state"

[config]
file = "app.env"
required_keys = ["PORT"]
history_dir = "env-history"

[process]
manager = "pm2"
pm2_home = "{home}"
binary = "{binary}"
ecosystem = "{ecosystem}"
stability_window = "500ms"

[[health]]
url = "http://127.0.0.1:{port}/api/health"
timeout = "2s"

[settings]
health_timeout = "30s"
health_interval = "100ms"

# Only the contacts: the runbook's escalation path stays.
[watchdog.plan]
contacts = [{{ role = "on-call engineer", name = "Ana Alves", reach = "+1 555 0100" }}]

[[notify]]
kind = "webhook"
url_env = "ROLLBACK_TEST_HOOK"

[[notify]]
kind = "slack"
url_env = "ROLLBACK_TEST_SLACK"
timeout = "5s"

[[notify]]
kind = "pagerduty"
routing_key_env = "ROLLBACK_TEST_PD_KEY"
url_env = "ROLLBACK_TEST_PD_URL"
"#,
            home = pm2.home().display(),
            binary = pm2.pm2().display(),
            ecosystem = ecosystem.display(),
        ),
    )
    .unwrap();

    let (code, out, err) = rollback(&config, &url, &["checkpoint", "--label", "v1"]);
    assert_eq!(code, 0, "checkpoint: {out}{err}");
    assert!(out.contains("good"), "{out}");

    // The bad deploy: a broken env file. Rolled back by the command line.
    std::fs::write(&env, format!("PORT={port}\nFEATURE=v2-broken\n")).unwrap();
    let (code, out, err) = rollback(
        &config,
        &url,
        &[
            "run",
            "--scope",
            "config",
            "--reason",
            "v2 env broke checkout",
            "--yes",
        ],
    );
    assert_eq!(code, 0, "run: {out}\n{err}");
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        v1,
        "v1's env file is back"
    );
    let shown = format!("{out}{err}");
    for secret in [HOOK_TOKEN, SLACK_TOKEN, ROUTING_KEY] {
        assert!(!shown.contains(secret), "`{secret}` shown:\n{shown}");
    }

    // The generic JSON: started and succeeded, one incident, the contact named.
    let json = bodies(&got, &format!("/hook/{HOOK_TOKEN}"));
    let events: Vec<&str> = json.iter().filter_map(|b| b["event"].as_str()).collect();
    assert!(
        events.contains(&"rollback_started") && events.contains(&"rollback_succeeded"),
        "{json:#?}"
    );
    for b in &json {
        assert_eq!(b["schema"], "rollback.notice/1", "{b}");
        assert_eq!(b["incident"], json[0]["incident"], "one incident: {json:#?}");
    }
    let started = json.iter().find(|b| b["event"] == "rollback_started").unwrap();
    let escalation = started["escalation"].as_str().unwrap_or_default();
    assert!(
        escalation.contains("on-call engineer (Ana Alves, +1 555 0100)") && escalation.contains("next"),
        "the notice names who is responsible now and next: {started:#}"
    );
    assert!(
        started["body"]
            .as_str()
            .unwrap_or_default()
            .contains("v2 env broke checkout"),
        "the reason is in the notice: {started:#}"
    );

    // Slack: its message shape, one per notice.
    let slack = bodies(&got, &format!("/slack/{SLACK_TOKEN}"));
    assert_eq!(slack.len(), json.len(), "{slack:#?}");
    assert!(
        slack
            .iter()
            .all(|b| b["text"].is_string() && b["blocks"].is_array()),
        "{slack:#?}"
    );

    // PagerDuty: triggered, then resolved with the same dedup key, with the routing key.
    let pd = bodies(&got, "/pagerduty");
    let actions: Vec<&str> = pd.iter().filter_map(|b| b["event_action"].as_str()).collect();
    assert_eq!(actions.first(), Some(&"trigger"), "{pd:#?}");
    assert_eq!(actions.last(), Some(&"resolve"), "{pd:#?}");
    assert!(pd
        .iter()
        .all(|b| b["routing_key"] == ROUTING_KEY && b["dedup_key"] == pd[0]["dedup_key"]));

    // The report as HTML to a new file; stdout only says where.
    let html = dir.join("incident.html");
    let html_arg = html.display().to_string();
    let (code, out, err) = rollback(
        &config,
        &url,
        &["report", "--last", "--format", "html", "--output", &html_arg],
    );
    assert_eq!(code, 0, "report: {out}{err}");
    assert!(
        out.contains("wrote the report") && !out.contains("<html"),
        "{out}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<html") && page.contains("</html>"), "{page}");
    assert!(
        page.contains("v2 env broke checkout"),
        "the reason is in the page"
    );
    for secret in [HOOK_TOKEN, SLACK_TOKEN, ROUTING_KEY] {
        assert!(!page.contains(secret), "`{secret}` in the report");
    }

    // Not overwritten without --force; replaced with it.
    let (code, _, err) = rollback(
        &config,
        &url,
        &["report", "--last", "--format", "md", "--output", &html_arg],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&html).unwrap(), page, "left as it was");
    let (code, out, err) = rollback(
        &config,
        &url,
        &[
            "report", "--last", "--format", "md", "--output", &html_arg, "--force",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let md = std::fs::read_to_string(&html).unwrap();
    assert!(
        !md.contains("<html") && md.contains("v2 env broke checkout"),
        "{md}"
    );

    // To stdout: the page itself; with --json and a file, the file is JSON and stdout one
    // JSON line naming it.
    let (code, out, err) = rollback(&config, &url, &["report", "--last", "--format", "html"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.trim_start().starts_with("<!DOCTYPE html") || out.contains("<html"),
        "{out}"
    );
    let json_file = dir.join("report.json");
    let (code, out, err) = rollback(
        &config,
        &url,
        &[
            "--json",
            "report",
            "--last",
            "--output",
            &json_file.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let line: Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(line["format"], "json", "{line}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    assert_eq!(report["outcome"], "succeeded", "{report}");

    // --force means nothing without a file.
    let (code, _, err) = rollback(&config, &url, &["report", "--last", "--force"]);
    assert_eq!(code, 64, "{err}");
}
