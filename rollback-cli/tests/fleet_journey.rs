//! The `rollback` binary on a deploy box driving a fleet of two app hosts over ssh, behind a
//! real load balancer, for real: a TempSshd on 127.0.0.1 (its generated keys and
//! ssh_config), two "hosts" as two directory trees on this machine (each its own pm2 home,
//! its own releases of the same tiny Node app on its own port, its own env file and its own
//! host rollback.toml), one shared PostgreSQL and git repository, and a real haproxy in front
//! (HTTP checks on /api/health, retries and redispatch).
//!
//! Scenarios: `check` covers both hosts; a code-only rollback rolls host by host while a
//! request loop through haproxy counts failures (must be zero); a full rollback stops both,
//! switches the shared database once and starts both (the window in which the balancer
//! answered nothing is measured); a host that cannot be reached is refused at `check` and
//! `plan`, naming it, with nothing changed; a rolling code rollback whose `rollback` is
//! SIGKILLed after web-1 switched and before web-2 did is named by `status`, refused by
//! `run` and finished by `resume`. Run with `--nocapture` to see the figures.

mod common;

use common::*;
use rollback_testkit::temp_pm2::free_port;
use rollback_testkit::temp_sshd::TempSshd;
use rollback_testkit::TempPostgres;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stand-in, under the test's control, for one host's own health endpoint (the one its
/// agent probes in a rolling reload): it passes the app's `/api/health` through, except
/// that while held it answers 503 to an app that already runs 1.0.0. A rolling reload that
/// restarted that host onto v1 then waits at its health gate, before the next host: the
/// deterministic point "between two hosts" at which scenario (e) kills `rollback`.
struct HealthGate {
    port: u16,
    hold: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HealthGate {
    fn start(upstream: u16) -> Self {
        let listener =
            std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).expect("bind the gate");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let port = listener.local_addr().expect("the gate's address").port();
        let (hold, held, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let thread = {
            let (hold, held, stop) = (hold.clone(), held.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (hold, held) = (hold.clone(), held.clone());
                            std::thread::spawn(move || gate_answer(stream, upstream, &hold, &held));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            port,
            hold,
            held,
            stop,
            thread: Some(thread),
        }
    }

    fn hold(&self, hold: bool) {
        self.hold.store(hold, Ordering::SeqCst);
    }

    /// How many probes it has answered 503 because it was held.
    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

impl Drop for HealthGate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn gate_answer(mut stream: std::net::TcpStream, upstream: u16, hold: &AtomicBool, held: &AtomicUsize) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let (status, body) = match get(upstream, "/api/health", Duration::from_secs(2)) {
        Some(body) if hold.load(Ordering::SeqCst) && version_of(&body) == "1.0.0" => {
            held.fetch_add(1, Ordering::SeqCst);
            (
                "503 Service Unavailable",
                r#"{"ok":false,"held":"by the test"}"#.to_owned(),
            )
        }
        Some(body) => ("200 OK", body),
        None => ("503 Service Unavailable", r#"{"ok":false}"#.to_owned()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn a_fleet_behind_haproxy_rolls_back_code_without_a_failed_request_and_everything_with_one_switch() {
    let test = "fleet_journey";
    let Some(sshd) = TempSshd::start(test) else { return };
    let pg = match TempPostgres::start(test) {
        Ok(Some(pg)) => pg,
        Ok(None) => return,
        Err(e) => panic!("{test}: {e}"),
    };
    if rollback_testkit::integration::find_on_path("git").is_none() {
        rollback_testkit::integration::unavailable(test, "git");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();

    // The shared database and repository.
    pg.create_database(DB).unwrap();
    pg.psql(DB, "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL); INSERT INTO users (email) VALUES ('a@example.com'), ('b@example.com');").unwrap();
    let db_url = pg.url(DB).expose().to_owned();
    let (repo, v1, v2) = app_repo(root);

    // Two hosts, each deployed at v1 and started by its own pm2.
    let Some(hosts) = start_hosts(test, root, &["web-1", "web-2"], &repo, &v1) else {
        return;
    };

    let Some(lb) = balancer(test, &hosts) else {
        return;
    };

    let deploy = root.join("deploy");
    std::fs::create_dir_all(&deploy).unwrap();
    let config = deploy.join("rollback.toml");
    std::fs::write(&config, deploy_config(&deploy, &pg, &sshd, &hosts, &lb, None)).unwrap();

    // (a) check covers both hosts.
    let (code, out, err) = run(rollback(&config, &db_url, &["check"]));
    println!("--- rollback check ---\n{out}{err}");
    assert_eq!(code, 0, "check: {out}\n{err}\nsshd: {}", sshd.log());
    assert!(out.contains("host web-1") && out.contains("host web-2"), "{out}");

    // The good state: checkpoint at v1, "stable".
    let (code, out, err) = run(rollback(&config, &db_url, &["checkpoint", "--label", "v1"]));
    assert_eq!(code, 0, "checkpoint: {out}\n{err}");
    assert!(!out.contains("not marked good"), "{out}");

    // A bad deploy on every host: v2's code and "beta" config, a migration.
    let deploy_v2 = |hosts: &[Host]| {
        for h in hosts {
            h.deploy(&repo, &v2, "2.0.0");
        }
    };
    deploy_v2(&hosts);
    pg.psql(
        DB,
        "CREATE TABLE v2_only (id int); INSERT INTO users (email) VALUES ('v2@example.com');",
    )
    .unwrap();
    wait_until("haproxy sees both hosts", Duration::from_secs(10), || {
        get(lb.port(), "/api/health", Duration::from_secs(2)).is_some()
    });

    // (b) a code-only rollback, rolling, under load.
    let load = Load::start(lb.port());
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (code, out, err) = run(rollback(
        &config,
        &db_url,
        &["run", "--scope", "code", "--yes", "--reason", "v2 broke checkout"],
    ));
    let code_duration = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let (sent, failed, longest, seen) = load.finish();
    println!("--- rollback run --scope code ---\n{out}{err}");
    println!(
        "FIGURES code-only rolling rollback: {sent} requests sent through haproxy, {failed} failed, longest gap between answers {longest:?}, rollback took {code_duration:?}"
    );
    assert_eq!(code, 0, "run --scope code: {out}\n{err}");
    let versions: std::collections::BTreeSet<&str> = seen
        .iter()
        .filter_map(|(_, b)| b.as_deref())
        .map(version_of)
        .collect();
    println!("versions answered during the roll: {versions:?}");
    assert_eq!(
        failed,
        0,
        "requests failed during a rolling code rollback\nhaproxy: {}",
        lb.log()
    );
    for h in &hosts {
        let body = h.health().expect("host answers after the rollback");
        assert_eq!(version_of(&body), "1.0.0", "{}: {body}", h.name);
        assert!(body.contains("beta"), "config was not in scope: {body}");
    }
    assert!(
        pg.psql(DB, "SELECT to_regclass('v2_only') IS NOT NULL")
            .unwrap()
            .contains('t'),
        "the database was not in scope"
    );

    // (c) a full rollback: both stop, the database is switched once, both start.
    let load = Load::start(lb.port());
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (code, out, err) = run(rollback(
        &config,
        &db_url,
        &[
            "--json",
            "run",
            "--scope",
            "all",
            "--yes",
            "--reason",
            "v2 migration broke users",
        ],
    ));
    let full_duration = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let (sent, failed, longest, _) = load.finish();
    let downtime = out
        .lines()
        .last()
        .and_then(|l| l.split("\"downtime\":").nth(1))
        .and_then(|d| d.split('}').next())
        .unwrap_or("?");
    println!("--- rollback run --scope all: the report's downtime {downtime}}}");
    println!(
        "FIGURES full rollback: {sent} requests sent through haproxy, {failed} failed, longest window without an answer {longest:?}, rollback took {full_duration:?}"
    );
    assert_eq!(code, 0, "run --scope all: {out}\n{err}");
    let restores = out
        .lines()
        .filter(|l| {
            l.starts_with("{\"event\":\"step\"")
                && l.contains("\"step\":\"restore_database\"")
                && l.contains("\"kind\":\"finished\"")
        })
        .count();
    println!("database restore steps finished: {restores}");
    assert_eq!(restores, 1, "the database was not switched exactly once:\n{out}");
    assert!(
        pg.psql(DB, "SELECT to_regclass('v2_only') IS NULL")
            .unwrap()
            .contains('t'),
        "the database was not switched back"
    );
    assert_eq!(pg.psql(DB, "SELECT COUNT(*) FROM users").unwrap().trim(), "2");
    for h in &hosts {
        let body = h.health().expect("host answers after the full rollback");
        assert_eq!(version_of(&body), "1.0.0", "{}: {body}", h.name);
        assert!(
            body.contains("stable"),
            "config not rolled back on {}: {body}",
            h.name
        );
    }

    // (d) one host unreachable: refused at check and plan, naming it; nothing changed.
    deploy_v2(&hosts);
    let closed = free_port();
    let broken = deploy.join("unreachable.toml");
    std::fs::write(
        &broken,
        deploy_config(&deploy, &pg, &sshd, &hosts, &lb, Some(closed)),
    )
    .unwrap();
    let env_before: Vec<String> = hosts
        .iter()
        .map(|h| std::fs::read_to_string(h.dir.join("app.env")).unwrap())
        .collect();
    for args in [&["check"][..], &["plan", "--scope", "code"][..]] {
        let (code, out, err) = run(rollback(&broken, &db_url, args));
        println!("--- rollback {args:?} with web-2 unreachable (exit {code}) ---\n{out}{err}");
        assert_ne!(code, 0, "{args:?} passed with a host unreachable");
        assert!(err.contains("web-2") || out.contains("web-2"), "{out}\n{err}");
    }
    let (code, out, err) = run(rollback(&broken, &db_url, &["run", "--scope", "code", "--yes"]));
    assert_ne!(code, 0, "run passed with a host unreachable: {out}\n{err}");
    for (h, before) in hosts.iter().zip(&env_before) {
        let body = h.health().expect("host still answers");
        assert_eq!(version_of(&body), "2.0.0", "{} changed: {body}", h.name);
        assert_eq!(&std::fs::read_to_string(h.dir.join("app.env")).unwrap(), before);
    }
    // (e) `rollback` killed (SIGKILL) between two hosts of a rolling code rollback, then
    // resumed. The hosts run v2 again (from (d)). web-1's agent now probes web-1 through a
    // HealthGate, held: the roll restarts web-1 onto v1 and then waits at web-1's health
    // gate, before web-2 is touched, for as long as the gate holds (up to the fleet's
    // 60 s). That is where the process is killed: deterministic, no timing guess.
    let gate = HealthGate::start(hosts[0].port);
    std::fs::write(hosts[0].config(), host_toml(&repo, &hosts[0], gate.port)).unwrap();
    gate.hold(true);
    let web2_before = hosts[1].health().expect("web-2 answers before (e)");
    assert_eq!(version_of(&web2_before), "2.0.0", "{web2_before}");
    let load = Load::start(lb.port());
    let (killed_out, killed_err) = (deploy.join("killed-run.out"), deploy.join("killed-run.err"));
    let mut cmd = rollback(
        &config,
        &db_url,
        &[
            "run",
            "--scope",
            "code",
            "--yes",
            "--reason",
            "v2 broke checkout again",
        ],
    );
    // Files, not pipes: ssh processes the killed `rollback` leaves behind must not keep a
    // pipe of ours open.
    cmd.stdout(std::fs::File::create(&killed_out).unwrap())
        .stderr(std::fs::File::create(&killed_err).unwrap());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("start rollback run");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("poll rollback run") {
            panic!(
                "rollback run ended ({status}) before web-1 was switched and held:\n{}\n{}",
                read(&killed_out),
                read(&killed_err)
            );
        }
        let web1_on_v1 = hosts[0].health().is_some_and(|b| version_of(&b) == "1.0.0");
        if web1_on_v1 && gate.held() > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web-1 was not switched and held within 120 s:\n{}\n{}",
            read(&killed_out),
            read(&killed_err)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let until_kill = started.elapsed();
    let web2 = hosts[1].health().expect("web-2 answers while web-1 is held");
    assert_eq!(
        version_of(&web2),
        "2.0.0",
        "web-2 was touched before web-1 passed: {web2}"
    );
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -KILL {}", child.id());
    let status = child.wait().expect("wait for the killed rollback");
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }
    println!(
        "--- rollback run --scope code, SIGKILLed {until_kill:?} after its start, web-1 on v1 and held at its health gate ({} probe(s) held), web-2 on v2 ---\n{}{}",
        gate.held(),
        read(&killed_out),
        read(&killed_err)
    );
    // The crash landed between the hosts: web-1 runs v1, web-2 still v2.
    std::thread::sleep(Duration::from_millis(500));
    let web1 = hosts[0].health().expect("web-1 answers after the kill");
    let web2 = hosts[1].health().expect("web-2 answers after the kill");
    assert_eq!(version_of(&web1), "1.0.0", "{web1}");
    assert_eq!(version_of(&web2), "2.0.0", "web-2 changed after the kill: {web2}");
    gate.hold(false);

    // status names the unfinished rollback; run is refused and points at resume.
    let (code, out, err) = run(rollback(&config, &db_url, &["status"]));
    println!("--- rollback status after the kill (exit {code}) ---\n{out}{err}");
    assert_eq!(code, 4, "status after the kill: {out}\n{err}");
    assert!(out.contains("UNFINISHED: rollback "), "{out}");
    assert!(out.contains("rollback resume"), "{out}");
    let (code, out, err) = run(rollback(
        &config,
        &db_url,
        &["run", "--scope", "code", "--yes", "--reason", "again"],
    ));
    println!("--- rollback run after the kill (exit {code}) ---\n{out}{err}");
    assert_eq!(
        code, 4,
        "run after the kill was not refused as unfinished: {out}\n{err}"
    );
    assert!(
        out.contains("rollback resume") || err.contains("rollback resume"),
        "{out}\n{err}"
    );
    let web2 = hosts[1].health().expect("web-2 answers after the refused run");
    assert_eq!(
        version_of(&web2),
        "2.0.0",
        "the refused run changed web-2: {web2}"
    );

    // resume finishes it.
    let started = Instant::now();
    let (code, out, err) = run(rollback(&config, &db_url, &["resume"]));
    let resume_duration = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let (sent, failed, longest, _) = load.finish();
    println!("--- rollback resume (exit {code}) ---\n{out}{err}");
    println!(
        "FIGURES killed mid-roll then resumed: killed {until_kill:?} after the start; resume took {resume_duration:?}; through haproxy from the start of the killed run to the end of the resume: {sent} requests sent, {failed} failed, longest gap between answers {longest:?}"
    );
    assert_eq!(code, 0, "resume: {out}\n{err}");
    for h in &hosts {
        let body = h.health().expect("host answers after the resume");
        assert_eq!(version_of(&body), "1.0.0", "{} after the resume: {body}", h.name);
    }
    // Every host answers through the balancer (round robin), each on v1.
    let mut through_lb = std::collections::BTreeSet::new();
    wait_until(
        "both hosts answer through haproxy",
        Duration::from_secs(10),
        || {
            if let Some(body) = get(lb.port(), "/", Duration::from_secs(2)) {
                through_lb.insert((field(&body, "host").to_owned(), version_of(&body).to_owned()));
            }
            through_lb.iter().any(|(h, _)| h == "web-1") && through_lb.iter().any(|(h, _)| h == "web-2")
        },
    );
    for _ in 0..10 {
        let body = get(lb.port(), "/", Duration::from_secs(2)).expect("haproxy answers");
        through_lb.insert((field(&body, "host").to_owned(), version_of(&body).to_owned()));
    }
    println!("answers through haproxy after the resume (host, version): {through_lb:?}");
    assert!(
        through_lb.iter().all(|(_, v)| v == "1.0.0"),
        "a host answered other than v1 through haproxy: {through_lb:?}"
    );
    let (code, out, err) = run(rollback(&config, &db_url, &["status"]));
    println!("--- rollback status after the resume (exit {code}) ---\n{out}{err}");
    assert_eq!(code, 0, "status after the resume: {out}\n{err}");
    assert!(out.contains("lock: free"), "{out}");
    assert!(!out.contains("UNFINISHED"), "{out}");
    drop(gate);
    drop(lb);
}
