//! No dead ends on a real fleet (issue 25): the `rollback` binary on a deploy box, two app
//! hosts over a real sshd (each its own pm2, releases and env file), one real PostgreSQL,
//! a real haproxy in front with a request loop through it. Host web-2 "dies" (its ssh
//! session and agent end, and it cannot be reached again until the test brings it back) at
//! a chosen call: a small shim in front of its agent (`command` of its `[[hosts]]` entry)
//! ends both when that call arrives, deterministically.
//!
//! In a full rollback, web-2 dies at the start, at the activation and at the config: the
//! halt leaves web-1 serving one version consistent with the shared database, which is open
//! to clients; `status` (web-2 still unreachable) says halted and names web-2; `run` is
//! refused; with web-2 back, `rollback resume` ends both hosts on one version with nothing
//! done by hand. In a code-only rolling rollback web-2 dies as the roll reaches it: web-1
//! serves v1, web-2's app never stopped, the balancer loses no request, and resume rolls
//! web-2. Run with `--nocapture` to see the outputs and figures.

mod common;

use common::*;
use rollback_testkit::temp_haproxy::TempHaproxy;
use rollback_testkit::temp_sshd::TempSshd;
use rollback_testkit::TempPostgres;
use std::path::Path;
use std::time::{Duration, Instant};

/// The host's sshd and agent as the test kills them. argv[1]: the host's directory;
/// argv[2..]: the real agent command. A file `down` there: the host cannot be reached (the
/// session ends before the hello). A file `die-at` holding a protocol call: when that call
/// arrives the host dies (the call is never served, the session ends) and is `down` from
/// then on.
const SHIM: &str = r#"import os, subprocess, sys
d = sys.argv[1]
if os.path.exists(os.path.join(d, "down")):
    sys.stderr.write("host is down\n")
    sys.exit(255)
agent = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE)
die = os.path.join(d, "die-at")
for line in sys.stdin.buffer:
    if os.path.exists(die):
        call = open(die).read().strip()
        if ('"call":"%s"' % call).encode() in line:
            os.rename(die, os.path.join(d, "down"))
            agent.kill()
            os._exit(255)
    agent.stdin.write(line)
    agent.stdin.flush()
agent.stdin.close()
sys.exit(agent.wait())
"#;

fn psql(pg: &TempPostgres, sql: &str) -> String {
    pg.psql("postgres", sql).unwrap().trim().to_owned()
}

/// The shared database is open to clients and holds v2's migration or not.
fn database(pg: &TempPostgres) -> (bool, bool) {
    let open = psql(
        pg,
        &format!("SELECT datallowconn FROM pg_database WHERE datname = '{DB}'"),
    ) == "t";
    let v2 = pg
        .psql(DB, "SELECT to_regclass('v2_only') IS NOT NULL")
        .unwrap()
        .contains('t');
    (open, v2)
}

/// Versions answered through the balancer over `n` requests.
fn through(lb: &TempHaproxy, n: usize) -> std::collections::BTreeSet<String> {
    (0..n)
        .filter_map(|_| get(lb.port(), "/", Duration::from_secs(2)))
        .map(|b| version_of(&b).to_owned())
        .collect()
}

fn assert_operator_words(out: &str, err: &str, what: &str) {
    let all = format!("{out}{err}");
    for library in [
        "reinstate()",
        "open()",
        "resume()",
        "DatabaseSnapshot",
        "clear_stale_lock()",
    ] {
        assert!(!all.contains(library), "{what}: names `{library}`:\n{all}");
    }
}

#[test]
fn a_host_dying_mid_rollback_leaves_the_others_serving_and_resume_leads_out() {
    let test = "fleet_dead_host";
    let Some(sshd) = TempSshd::start(test) else { return };
    let pg = match TempPostgres::start(test) {
        Ok(Some(pg)) => pg,
        Ok(None) => return,
        Err(e) => panic!("{test}: {e}"),
    };
    for tool in ["git", "python3"] {
        if rollback_testkit::integration::find_on_path(tool).is_none() {
            rollback_testkit::integration::unavailable(test, tool);
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    pg.create_database(DB).unwrap();
    pg.psql(DB, "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL); INSERT INTO users (email) VALUES ('a@example.com');").unwrap();
    let db_url = pg.url(DB).expose().to_owned();
    let (repo, v1, v2) = app_repo(root);
    let Some(hosts) = start_hosts(test, root, &["web-1", "web-2"], &repo, &v1) else {
        return;
    };
    let Some(lb) = balancer(test, &hosts) else {
        return;
    };

    // The deploy box: web-2's agent behind the shim.
    let deploy = root.join("deploy");
    std::fs::create_dir_all(&deploy).unwrap();
    let shim = deploy.join("host-shim.py");
    std::fs::write(&shim, SHIM).unwrap();
    let web2 = &hosts[1];
    let bin = env!("CARGO_BIN_EXE_rollback");
    let real = format!(
        r#"command = ["{bin}", "agent", "--stdio", "--config", "{}"]"#,
        web2.config().display()
    );
    let shimmed = format!(
        r#"command = ["python3", "{}", "{}", "{bin}", "agent", "--stdio", "--config", "{}"]"#,
        shim.display(),
        web2.dir.display(),
        web2.config().display()
    );
    let text = deploy_config(&deploy, &pg, &sshd, &hosts, &lb, None);
    assert!(text.contains(&real), "{text}");
    let config = deploy.join("rollback.toml");
    std::fs::write(&config, text.replace(&real, &shimmed)).unwrap();
    let (down, die_at) = (web2.dir.join("down"), web2.dir.join("die-at"));

    let (code, out, err) = run(rollback(&config, &db_url, &["checkpoint", "--label", "v1"]));
    assert_eq!(code, 0, "checkpoint: {out}\n{err}\nsshd: {}", sshd.log());

    let deploy_v2 = || {
        for h in &hosts {
            h.deploy(&repo, &v2, "2.0.0");
        }
        pg.psql(DB, "CREATE TABLE IF NOT EXISTS v2_only (id int); INSERT INTO users (email) VALUES ('v2@example.com');")
            .unwrap();
        wait_until("haproxy sees both hosts", Duration::from_secs(20), || {
            through(&lb, 6).len() == 1 && hosts.iter().all(|h| h.health().is_some())
        });
    };

    // (call web-2 dies at, where the fleet ends, exit code of the resume)
    let deaths = [
        ("process_start", "1.0.0", 0),
        ("code_activate", "2.0.0", 1),
        ("config_restore", "2.0.0", 1),
    ];
    let mut table = Vec::new();
    for (call, end, resume_code) in deaths {
        deploy_v2();
        std::fs::write(&die_at, call).unwrap();
        let load = Load::start(lb.port());
        let (code, out, err) = run(rollback(
            &config,
            &db_url,
            // --force: the test's bad deploy migrates the database an earlier scenario
            // switched in from this same checkpoint, which is refused without it.
            &[
                "run",
                "--scope",
                "all",
                "--force",
                "--yes",
                "--reason",
                "v2 broke users",
            ],
        ));
        println!("--- rollback run, web-2 dies at {call} (exit {code}) ---\n{out}{err}");
        assert_eq!(code, 2, "{call}: halted expected:\n{out}\n{err}");
        assert!(down.exists(), "{call}: web-2 did not die at {call}");
        assert!(
            (out.clone() + &err).contains("web-2") && (out.clone() + &err).contains("`rollback resume`"),
            "{call}:\n{out}\n{err}"
        );
        assert_operator_words(&out, &err, call);

        // web-1 serves `end`, consistent with the open database; web-2 is stopped.
        let web1 = hosts[0]
            .health()
            .unwrap_or_else(|| panic!("{call}: web-1 serves"));
        assert_eq!(version_of(&web1), end, "{call}: {web1}");
        assert!(
            web2.health().is_none(),
            "{call}: web-2's app was stopped by the stop step"
        );
        let (open, has_v2) = database(&pg);
        assert!(open, "{call}: the live database is open to clients");
        assert_eq!(
            has_v2,
            end == "2.0.0",
            "{call}: the database matches web-1's version"
        );
        wait_until(
            &format!("{call}: haproxy answers from web-1"),
            Duration::from_secs(20),
            || {
                let seen = through(&lb, 4);
                seen.len() == 1 && seen.contains(end)
            },
        );
        let (sent, failed, longest, _) = load.finish();

        // status, with web-2 still unreachable: halted, what is live, web-2 named.
        let (code, out, err) = run(rollback(&config, &db_url, &["status"]));
        println!("--- rollback status, web-2 down (exit {code}) ---\n{out}{err}");
        assert_eq!(code, 4, "{call}: status of a halted rollback:\n{out}\n{err}");
        assert!(
            out.contains("HALTED") && out.contains("rollback resume"),
            "{call}: {out}"
        );
        assert!(out.contains("host web-2: could not be reached"), "{call}: {out}");
        assert!(out.contains("last rollback"), "{call}: {out}");
        // A new run is refused, naming resume; nothing changes.
        let (code, out, err) = run(rollback(&config, &db_url, &["run", "--scope", "all", "--yes"]));
        assert_eq!(code, 4, "{call}: run over a halted rollback:\n{out}\n{err}");
        assert!(err.contains("rollback resume"), "{call}: {err}");
        assert_operator_words(&out, &err, call);

        // web-2 is back: resume leads out.
        std::fs::remove_file(&down).unwrap();
        let started = Instant::now();
        let (code, out, err) = run(rollback(&config, &db_url, &["resume"]));
        let took = started.elapsed();
        println!("--- rollback resume, web-2 back (exit {code}) ---\n{out}{err}");
        assert_eq!(code, resume_code, "{call}: resume:\n{out}\n{err}");
        for h in &hosts {
            let body = h
                .health()
                .unwrap_or_else(|| panic!("{call}: {} serves after resume", h.name));
            assert_eq!(version_of(&body), end, "{call}: {} after resume: {body}", h.name);
        }
        let (open, has_v2) = database(&pg);
        assert!(
            open && has_v2 == (end == "2.0.0"),
            "{call}: database after resume"
        );
        let (code, out, _) = run(rollback(&config, &db_url, &["status"]));
        assert_eq!(code, 0, "{call}: status after resume: {out}");
        table.push(format!(
            "web-2 dies at {call}: halted with web-1 on {end} and the database open; through haproxy {sent} sent, {failed} failed (both hosts stop in a full rollback), longest gap {longest:?}; resume with web-2 back: exit {resume_code}, {took:?}, both on {end}"
        ));
    }

    // A code-only rolling rollback: web-2 dies as the roll reaches it. Its app keeps
    // running v2 (only its sshd and agent died): the balancer loses nothing.
    deploy_v2();
    std::fs::write(&die_at, "process_restart").unwrap();
    let load = Load::start(lb.port());
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, err) = run(rollback(
        &config,
        &db_url,
        &["run", "--scope", "code", "--yes", "--reason", "v2 broke checkout"],
    ));
    println!("--- rollback run --scope code, web-2 dies at its restart (exit {code}) ---\n{out}{err}");
    assert_eq!(code, 2, "rolling: halted expected:\n{out}\n{err}");
    let web1 = hosts[0].health().expect("web-1 serves");
    assert_eq!(version_of(&web1), "1.0.0", "{web1}");
    let web2_body = web2.health().expect("web-2's app never stopped");
    assert_eq!(version_of(&web2_body), "2.0.0", "{web2_body}");
    assert!(
        out.contains("web-2 could not be reached") || err.contains("web-2 could not be reached"),
        "{out}\n{err}"
    );
    std::fs::remove_file(&down).unwrap();
    let (code, out, err) = run(rollback(&config, &db_url, &["resume"]));
    std::thread::sleep(Duration::from_millis(300));
    let (sent, failed, longest, _) = load.finish();
    println!("--- rollback resume (exit {code}) ---\n{out}{err}");
    assert_eq!(code, 0, "rolling resume:\n{out}\n{err}");
    for h in &hosts {
        let body = h.health().expect("serves");
        assert_eq!(version_of(&body), "1.0.0", "{}: {body}", h.name);
    }
    assert_eq!(
        failed,
        0,
        "requests failed through haproxy in a rolling rollback\nhaproxy: {}",
        lb.log()
    );
    table.push(format!(
        "web-2 dies at its restart in a rolling code rollback: halted with web-1 on v1, web-2 still serving v2; through haproxy {sent} sent, {failed} failed, longest gap {longest:?}; resume rolls web-2: both on v1"
    ));
    // Nothing unfinished, web-2 down: status still answers from this box, names web-2 and
    // exits 3 (a host could not be asked).
    std::fs::write(&down, "").unwrap();
    let (code, out, err) = run(rollback(&config, &db_url, &["status"]));
    println!("--- rollback status, nothing unfinished, web-2 down (exit {code}) ---\n{out}{err}");
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(
        out.contains("host web-2: could not be reached")
            && out.contains("lock: free")
            && out.contains("last rollback"),
        "{out}"
    );
    std::fs::remove_file(&down).unwrap();
    println!("FIGURES\n{}", table.join("\n"));
    let _ = Path::new(&shim);
}
