//! The `rollback` binary as an operator runs it, against the real world the quickstart
//! builds (PostgreSQL, a git repository with a build, the app under a real pm2, an env
//! file): init, check, checkpoint, a bad deploy, plan, a run called off with Ctrl-C before
//! the stop, a run to the end with a Ctrl-C during the stop, status, report, list. Each
//! command is a real process; its exit code, stdout and stderr are what is checked.

use rollback_examples::{missing_requirements, DemoOptions, DemoWorld};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const DB_ENV: &str = "ROLLBACK_JOURNEY_DATABASE_URL";

fn rollback(config: &Path, db_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollback"));
    cmd.arg("--config")
        .arg(config)
        .env(DB_ENV, db_url)
        .env_remove("ROLLBACK_CONFIG")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run rollback");
    let (out, err) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    (status.code().unwrap_or(-1), out, err)
}

/// Runs `cmd`, sends SIGINT once a line of its stdout matches `when`, and returns what
/// `run` does.
fn run_interrupted(cmd: &mut Command, when: impl Fn(&str) -> bool) -> (i32, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rollback");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut out = String::new();
    let mut sent = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_default();
        if !sent && when(&line) {
            // SAFETY: kill(2) with a pid we own and a valid signal number.
            let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            assert_eq!(rc, 0, "could not send SIGINT");
            sent = true;
        }
        out.push_str(&line);
        out.push('\n');
    }
    let status = child.wait().expect("wait");
    let err = err_reader.join().unwrap_or_default();
    assert!(sent, "the line to interrupt at never came:\n{out}\n{err}");
    (status.code().unwrap_or(-1), out, err)
}

fn config_text(world: &DemoWorld, state: &Path) -> String {
    let p = |rel: &str| world.path(rel).display().to_string();
    format!(
        r#"app = "web"
state_dir = "{state}"

[database]
url_env = "{DB_ENV}"
snapshots_dir = "{snapshots}"
bindir = "{bindir}"

[[database.assertions]]
name = "users exist"
sql = "SELECT COUNT(*) FROM users"

[code]
repo = "{repo}"
layout = "releases"
releases_dir = "{releases}"
current_link = "{current}"
# A slow first build step, so that a Ctrl-C during prepare comes before the stop.
build = [["sleep", "3"], ["npm", "run", "build"]]
build_timeout = "10m"

[config]
file = "{env}"
required_keys = ["DATABASE_URL"]

[process]
manager = "pm2"
app = "web"
pm2_home = "{pm2_home}"
binary = "{pm2}"
stability_window = "500ms"

[[health]]
url = "{health}"
timeout = "2s"

[settings]
health_timeout = "30s"
health_interval = "50ms"
"#,
        state = state.display(),
        snapshots = p("cli-snapshots"),
        bindir = world.pg.bindir().display(),
        repo = p("repo"),
        releases = p("releases"),
        current = p("current"),
        env = world.env_path().display(),
        pm2_home = world.pm2.home().display(),
        pm2 = world.pm2.pm2().display(),
        health = world.health_url(),
    )
}

fn requirements_met() -> bool {
    let missing = missing_requirements();
    if missing.is_empty() {
        return true;
    }
    rollback_testkit::integration::unavailable(
        "an_operator_rolls_a_bad_deploy_back_with_the_command_line",
        &missing.join("; "),
    );
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rolls_a_bad_deploy_back_with_the_command_line() {
    if !requirements_met() {
        return;
    }
    let world = DemoWorld::start(DemoOptions::default())
        .await
        .expect("the demo world");
    let url = world.database_url().expose().to_owned();
    let ops: PathBuf = world.path("ops");
    std::fs::create_dir_all(&ops).unwrap();
    let config = ops.join("rollback.toml");

    // init writes a commented file that the operator then edits.
    let (code, out, err) = run(rollback(&config, &url).args(["init", "--dir"]).arg(&ops));
    assert_eq!(code, 0, "init: {out}{err}");
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("rollback check"));
    let (code, _, err) = run(rollback(&config, &url).args(["init", "--dir"]).arg(&ops));
    assert_eq!(code, 3, "init refuses to overwrite: {err}");
    std::fs::write(&config, config_text(&world, &ops.join("state"))).unwrap();

    // check: everything reachable, nothing changed.
    let (code, out, err) = run(rollback(&config, &url).arg("check"));
    assert_eq!(code, 0, "check: {out}{err}");
    for what in [
        "database reachable",
        "live revision readable",
        "live config readable",
        "known to the process manager",
        "ready to roll back",
    ] {
        assert!(out.contains(what), "check names `{what}`:\n{out}");
    }
    assert!(
        !format!("{out}{err}").contains(&url),
        "the connection string never shows"
    );

    // checkpoint while v1 is healthy: good.
    let (code, out, err) = run(rollback(&config, &url).args(["checkpoint", "--label", "before v2"]));
    assert_eq!(code, 0, "checkpoint: {out}{err}");
    assert!(
        out.contains("good") && out.contains("database, code, config"),
        "{out}"
    );

    // The bad deploy: v2's migration, env, build; its health check fails.
    world.deploy_v2().await.expect("deploy v2");
    assert_eq!(world.health_status(), Some(500), "v2 is broken");

    // plan: the twelve steps, nothing changed.
    let (code, out, err) = run(rollback(&config, &url).args(["plan", "--to", "last-good"]));
    assert_eq!(code, 0, "plan: {out}{err}");
    assert_eq!(
        out.lines()
            .filter(|l| l
                .trim_start()
                .split('.')
                .next()
                .is_some_and(|n| n.parse::<u8>().is_ok()))
            .count(),
        12,
        "{out}"
    );
    assert!(out.contains("stop `web`"), "{out}");

    // run without a terminal and without --yes: refused, nothing done.
    let (code, _, err) = run(rollback(&config, &url).args(["run", "--to", "last-good"]));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(world.health_status(), Some(500), "nothing was done");

    // Ctrl-C during prepare (the app still serves): called off, nothing changed.
    let (code, out, err) = run_interrupted(
        rollback(&config, &url).args(["run", "--yes", "--reason", "v2 broken"]),
        |line| line.contains("prepare while the app still serves") && line.trim_end().ends_with("started"),
    );
    assert_eq!(code, 5, "cancelled before the stop:\n{out}\n{err}");
    assert!(err.contains("nothing it uses will change"), "{err}");
    assert!(!out.contains("stop the app"), "the app was never stopped:\n{out}");
    assert_eq!(world.health_status(), Some(500), "v2 still live: nothing changed");
    let (code, out, err) = run(rollback(&config, &url).arg("status"));
    assert_eq!(code, 0, "nothing unfinished after a cancel: {out}{err}");

    // The real run; a Ctrl-C during the stop is explained, not obeyed.
    let started = Instant::now();
    let (code, out, err) = run_interrupted(
        rollback(&config, &url).args(["run", "--yes", "--reason", "v2 broken"]),
        |line| line.contains("stop the app") && line.trim_end().ends_with("started"),
    );
    assert_eq!(code, 0, "the rollback succeeds:\n{out}\n{err}");
    assert!(
        err.contains("goes on to a consistent end"),
        "the Ctrl-C is told why:\n{err}"
    );
    assert!(out.contains("downtime:"), "{out}");
    assert_eq!(world.health_status(), Some(200), "v1 answers again");
    assert!(started.elapsed() < Duration::from_secs(300));
    let email = world
        .sql("SELECT COUNT(*) FROM information_schema.columns WHERE table_name='users' AND column_name='email'")
        .unwrap();
    assert_eq!(email.trim(), "1", "v1's schema is back");

    // status, report, list.
    let (code, out, err) = run(rollback(&config, &url).arg("status"));
    assert_eq!(code, 0, "status: {out}{err}");
    assert!(
        out.contains("lock: free") && out.contains("last rollback") && out.contains("v2 broken"),
        "{out}"
    );
    let (code, out, err) = run(rollback(&config, &url).args(["report", "--last", "--format", "json"]));
    assert_eq!(code, 0, "report: {err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("the report is JSON");
    assert_eq!(report["outcome"], serde_json::json!("succeeded"), "{out}");
    assert!(
        report["total_duration"].is_u64(),
        "durations are milliseconds: {}",
        report["total_duration"]
    );
    let (code, out, _) = run(rollback(&config, &url).args(["list", "--json"]));
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(out.trim()).expect("list --json is one JSON line");
    assert!(
        list["checkpoints"].as_array().is_some_and(|c| !c.is_empty()),
        "{out}"
    );
}
