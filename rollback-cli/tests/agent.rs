//! `rollback agent --stdio` as an orchestrator reaches it: the built binary spawned as a
//! real process (as ssh would run it), spoken to through `rollback_fleet`'s
//! `AgentConnection` and `RemoteHost`, serving a real pm2 (its own `PM2_HOME`) and an env
//! file. Only protocol lines may reach its stdout (a stray line would fail the connection),
//! and closing its stdin ends it.

use rollback_core::{AppName, ConfigStore, ErrorKind, ProcessManager};
use rollback_fleet::protocol::PROTOCOL_VERSION;
use rollback_fleet::{AgentConnection, FleetError, RemoteHost};
use rollback_testkit::temp_pm2::TempPm2;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// The agent, spawned with `args` after `rollback`, stdin and stdout piped, stderr
/// collected by a task. `-v`: it logs, and the log must stay off stdout.
fn spawn_agent(args: &[&str], config: &Path) -> (tokio::process::Child, tokio::task::JoinHandle<String>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollback"))
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("-v")
        .env_remove("ROLLBACK_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rollback agent");
    let mut stderr = child.stderr.take().expect("stderr");
    let log = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    (child, log)
}

/// Waits until process `pid` is gone (or a zombie: it exited and is not yet reaped).
async fn exited_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !rollback_core::sys::pid_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_reaches_the_hosts_adapters_through_the_agent() {
    let test = "an_orchestrator_reaches_the_hosts_adapters_through_the_agent";
    let Some(pm2) = TempPm2::new(test) else {
        return;
    };
    // The daemon runs (an app host's does); it knows no app.
    let ping = pm2.run(&["ping"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(ping.status.success(), "pm2 ping: {ping:?}");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("app.env"),
        "PORT=3000\nAPI_TOKEN=canary-agent-secret\n",
    )
    .unwrap();
    let config = tmp.path().join("rollback.toml");
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
"#,
            home = pm2.home().display(),
            binary = pm2.pm2().display()
        ),
    )
    .unwrap();

    let (mut child, log) = spawn_agent(&["agent", "--stdio"], &config);
    let pid = child.id().expect("a pid");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let conn = AgentConnection::open(
        "web-1",
        stdin,
        stdout,
        Some(Box::new(child)),
        Duration::from_secs(30),
    )
    .await
    .unwrap_or_else(|e| panic!("hello: {e}"));
    let hello = conn.hello().clone();
    assert_eq!(hello.version, PROTOCOL_VERSION);
    assert_eq!(hello.app.as_str(), "web", "the hello names the app");
    assert_eq!(
        hello.has,
        ["config", "process"],
        "what the config names, nothing else"
    );
    let host = RemoteHost(conn);

    // The config adapter answers through the agent; values never travel.
    let current = host
        .current()
        .await
        .unwrap_or_else(|e| panic!("config current: {e}"));
    let shown = serde_json::to_string(&current).unwrap();
    assert!(!shown.contains("canary-agent-secret"), "{shown}");
    let version = host
        .backup("before v2")
        .await
        .unwrap_or_else(|e| panic!("config backup: {e}"));
    host.verify(&version.id)
        .await
        .unwrap_or_else(|e| panic!("config verify: {e}"));

    // The real pm2 answers: its daemon knows no app yet, so the served app is NotFound.
    let e = host.status(&AppName::new("web")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.message().contains("web") && e.message().starts_with("host web-1: "),
        "{e}"
    );

    // An app other than the one it serves is not on this host (NotFound), naming both.
    let e = host.status(&AppName::new("no-such-app")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.message().contains("no-such-app")
            && e.message().contains("`web`")
            && e.message().starts_with("host web-1: "),
        "{e}"
    );

    // Dropping the connection closes the agent's stdin: it ends by itself.
    drop(host);
    assert!(
        exited_within(pid, Duration::from_secs(20)).await,
        "the agent is still running after its stdin closed"
    );
    let log = log.await.unwrap();
    assert!(log.contains("agent serving"), "-v logs go to stderr:\n{log}");
    assert!(!log.contains("canary-agent-secret"), "{log}");
}

#[tokio::test]
async fn an_agent_that_cannot_serve_says_why_in_its_answer_to_the_hello() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("rollback.toml");
    std::fs::write(
        &config,
        "app = \"web\"\nstate_dir = \"state\"\n[process]\nmanager = \"systemd\"\n",
    )
    .unwrap();
    let (mut child, log) = spawn_agent(&["agent", "--stdio"], &config);
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let e = AgentConnection::open("web-1", stdin, stdout, None, Duration::from_secs(30))
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, FleetError::Unreachable { .. }), "{m}");
    assert!(
        m.contains("the agent cannot serve") && m.contains("rollback.toml:4:11") && m.contains("systemd"),
        "the orchestrator is told which line of the host's config is wrong: {m}"
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the agent exits")
        .unwrap();
    assert_eq!(status.code(), Some(78), "a config error: {}", log.await.unwrap());
}

#[test]
fn the_agent_only_speaks_over_stdio() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rollback"))
        .args(["agent", "--config", "/nonexistent/rollback.toml"])
        .env_remove("ROLLBACK_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run rollback agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("only speaks over stdio") && err.contains("ssh"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout");
}
