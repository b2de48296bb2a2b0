//! Integration tests against the real supervisord (Debian's `supervisor`), each test with
//! its own supervisord: its own config, unix socket, logs and pid file in a temp dir, shut
//! down on drop (also when the test panics). Skipped loudly without supervisord; failures
//! under `ROLLBACK_REQUIRE_INTEGRATION=1`. Serialised: two cores, and the waits are timed.

use async_trait::async_trait;
use rollback_core::{AdapterError, AppName, ErrorKind, ProcessManager, ProcessState};
use rollback_supervisord::SupervisordProcessManager;
use rollback_testkit::conformance::{self, ProcessFixture, PATTERN_NAMES};
use rollback_testkit::conformance_tests;
use rollback_testkit::integration;
use rollback_testkit::temp_pm2::{free_port, http_status, port_open};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Put into `web`'s environment: must never show up in an error or Debug output.
const CANARY: &str = "hunter2-canary";
const PYTHON: &str = "/usr/bin/python3";

/// A supervisord of the test's own, run in the foreground (`-n`) as this process's child.
struct TempSupervisord {
    dir: tempfile::TempDir,
    conf: PathBuf,
    supervisord: PathBuf,
    child: Option<Child>,
    port: u16,
}

impl TempSupervisord {
    /// Writes the config (programs `web`, `crashy`, `once`, `slow`, group `grp` of `g1`,
    /// `g2`; none autostarted) and starts supervisord; `None` after a loud skip when
    /// supervisord is not installed.
    fn start(test: &str) -> Option<Self> {
        let (Some(supervisord), Some(_)) = (
            integration::find_on_path("supervisord"),
            integration::find_on_path("supervisorctl"),
        ) else {
            integration::unavailable(test, "supervisord (apt-get install supervisor; see .ci/setup)");
            return None;
        };
        if !Path::new(PYTHON).is_file() {
            integration::unavailable(test, "/usr/bin/python3 (Debian's supervisor depends on it)");
            return None;
        }
        // Short: a unix socket's path is limited to ~100 bytes.
        let dir = tempfile::Builder::new()
            .prefix("rbsv-")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("{test}: cannot create a temp dir: {e}"));
        let d = dir.path().display().to_string();
        for sub in ["logs", "www"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create dirs");
        }
        let port = free_port();
        let conf = dir.path().join("supervisord.conf");
        let text = format!(
            r#"[unix_http_server]
file={d}/sv.sock
chmod=0700

[supervisord]
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}/logs
nodaemon=true
silent=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{d}/sv.sock

[program:web]
command={PYTHON} -m http.server {port} --bind 127.0.0.1
directory={d}/www
autostart=false
startsecs=1
stopwaitsecs=5
environment=DB_PASSWORD="{CANARY}"

[program:crashy]
command=/bin/sh -c "echo crashing on purpose >&2; exit 1"
autostart=false
startsecs=1
startretries=3

[program:once]
command=/bin/sh -c "sleep 0.3"
autostart=false
autorestart=false
startsecs=0

[program:slow]
command=/bin/sleep 1000
autostart=false
startsecs=30

[group:grp]
programs=g1,g2

[program:g1]
command=/bin/sleep 1000
autostart=false
startsecs=0

[program:g2]
command=/bin/sleep 1000
autostart=false
startsecs=0
"#
        );
        std::fs::write(&conf, text).expect("write supervisord.conf");
        let mut sv = Self {
            dir,
            conf,
            supervisord,
            child: None,
            port,
        };
        sv.launch(test);
        Some(sv)
    }

    fn launch(&mut self, test: &str) {
        let child = Command::new(&self.supervisord)
            .arg("-c")
            .arg(&self.conf)
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{test}: cannot start supervisord: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.ctl(&["status"]).is_ok_and(|o| o.contains("web")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{test}: supervisord did not come up within 15 s; its log: {}",
            std::fs::read_to_string(self.dir.path().join("supervisord.log")).unwrap_or_default()
        );
    }

    /// `supervisorctl -c <conf> <args>` (for set-up), killed after 30 s.
    fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("supervisorctl");
        cmd.arg("-c").arg(&self.conf).args(args);
        integration::run_with_timeout(&mut cmd, Duration::from_secs(30))
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn manager(&self) -> SupervisordProcessManager {
        SupervisordProcessManager::builder(&self.conf)
            .state_timeout(Duration::from_secs(20))
            .build()
            .expect("manager")
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Shuts supervisord down as a service stop would (SIGTERM: it stops its programs,
    /// then exits); SIGKILL to it and its children after 20 s.
    fn shut_down(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = Command::new("pkill").args(["-KILL", "-P", &pid]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills supervisord with SIGKILL, as a crash would: its programs live on, orphaned,
    /// and its socket file stays behind, refusing connections.
    fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TempSupervisord {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn serving(port: u16) -> bool {
    http_status(port, "/", Duration::from_secs(2)) == Some(200)
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with(['Z', 'X']))
        })
        == Some(false)
}

fn no_canary(e: &AdapterError) {
    let all = format!("{e} {e:?}");
    assert!(!all.contains(CANARY), "a secret leaked: {all}");
}

struct Fixture<'a> {
    sv: std::sync::Mutex<&'a mut TempSupervisord>,
    port: u16,
}

#[async_trait]
impl ProcessFixture for Fixture<'_> {
    fn app(&self) -> AppName {
        AppName::new("web")
    }

    async fn is_serving(&self) -> bool {
        serving(self.port)
    }

    /// `crashy` exits 1 at once; supervisord retries it (BACKOFF) 3 times, then gives up.
    fn crashing_app(&self) -> Option<AppName> {
        Some(AppName::new("crashy"))
    }

    /// Shuts supervisord down (SIGTERM, as a service stop or a reboot would).
    async fn take_manager_down(&self) -> bool {
        self.sv.lock().unwrap_or_else(|e| e.into_inner()).shut_down();
        true
    }
}

conformance_tests!(process_manager, |check, test| {
    let _serial = SERIAL.lock().await;
    let Some(mut sv) = TempSupervisord::start(test) else {
        return;
    };
    let pm = sv.manager();
    let port = sv.port;
    check(
        &pm,
        &Fixture {
            sv: std::sync::Mutex::new(&mut sv),
            port,
        },
    )
    .await;
});

#[tokio::test]
async fn a_supervisord_taken_down_takes_its_program_with_it() {
    let _serial = SERIAL.lock().await;
    let Some(mut sv) = TempSupervisord::start("a_supervisord_taken_down_takes_its_program_with_it") else {
        return;
    };
    let pm = sv.manager();
    let port = sv.port;
    let sock = sv.dir.path().join("sv.sock");
    conformance::process::a_manager_that_is_down_is_unavailable(
        &pm,
        &Fixture {
            sv: std::sync::Mutex::new(&mut sv),
            port,
        },
    )
    .await;
    // The check shut supervisord down; nothing here started it again.
    assert!(
        sv.child.is_none() && !port_open(port),
        "web went down with supervisord"
    );
    assert!(!sock.exists() || sv.ctl(&["status"]).is_ok_and(|o| o.contains("refused")));
}

#[tokio::test]
async fn stop_start_and_restart_really_change_the_process() {
    let _serial = SERIAL.lock().await;
    let Some(sv) = TempSupervisord::start("stop_start_and_restart_really_change_the_process") else {
        return;
    };
    let pm = sv.manager();
    let web = AppName::new("web");

    let s = pm.status(&web).await.expect("status");
    assert_eq!((s.state, s.pid, s.restarts), (ProcessState::Stopped, None, None));

    pm.start(&web).await.expect("start");
    assert!(serving(sv.port), "web serves once start returned");
    let s = pm.status(&web).await.expect("status");
    let first = s.pid.expect("an online app has a pid");
    assert_eq!(s.state, ProcessState::Online);
    assert!(alive(first));
    assert!(
        s.uptime.is_some_and(|u| u >= Duration::from_secs(1)),
        "RUNNING means up for startsecs: {s:?}"
    );
    assert_eq!(s.restarts, None, "supervisord counts no restarts");

    pm.restart(&web).await.expect("restart");
    let s = pm.status(&web).await.expect("status");
    let second = s.pid.expect("pid");
    assert_ne!(second, first, "restart runs a new process");
    assert!(!alive(first), "the old process is gone once restart returned");
    assert!(serving(sv.port));

    pm.stop(&web).await.expect("stop");
    assert!(!alive(second), "the process is gone once stop returned");
    assert!(!port_open(sv.port), "nothing listens once stop returned");
    let s = pm.status(&web).await.expect("status");
    assert_eq!((s.state, s.pid, s.uptime), (ProcessState::Stopped, None, None));

    // `web:web` is `web` (a program in a group of its own).
    pm.start(&AppName::new("web:web")).await.expect("start web:web");
    assert_eq!(pm.status(&web).await.expect("status").state, ProcessState::Online);
    assert!(
        !format!("{pm:?}").contains(CANARY),
        "the manager's Debug output holds no program environment"
    );
}

#[tokio::test]
async fn pattern_names_are_refused_and_a_group_member_is_one_app() {
    let _serial = SERIAL.lock().await;
    let Some(sv) = TempSupervisord::start("pattern_names_are_refused_and_a_group_member_is_one_app") else {
        return;
    };
    let pm = sv.manager();
    for name in PATTERN_NAMES
        .iter()
        .copied()
        .chain(["grp:", "g1 g2", "grp:g*", ""])
    {
        let app = AppName::new(name);
        for (what, r) in [
            ("status", pm.status(&app).await.map(drop)),
            ("stop", pm.stop(&app).await),
            ("start", pm.start(&app).await),
            ("restart", pm.restart(&app).await),
        ] {
            let e = r.expect_err(what);
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}({name:?}): {e}");
        }
    }
    assert!(
        sv.ctl(&["status"])
            .expect("status")
            .lines()
            .all(|l| l.contains("STOPPED")),
        "nothing was started by a refused name"
    );

    let g1 = AppName::new("grp:g1");
    pm.start(&g1).await.expect("start grp:g1");
    assert_eq!(pm.status(&g1).await.expect("status").state, ProcessState::Online);
    let g2 = pm.status(&AppName::new("grp:g2")).await.expect("status g2");
    assert_eq!(g2.state, ProcessState::Stopped, "only the named program started");
    pm.stop(&g1).await.expect("stop grp:g1");

    // A bare group name is no program to supervisord (it answers `no such process`).
    let e = pm.status(&AppName::new("grp")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn an_unknown_program_is_not_found_naming_the_known_ones() {
    let _serial = SERIAL.lock().await;
    let Some(sv) = TempSupervisord::start("an_unknown_program_is_not_found_naming_the_known_ones") else {
        return;
    };
    let pm = sv.manager();
    let api = AppName::new("api");
    for (what, r) in [
        ("status", pm.status(&api).await.map(drop)),
        ("stop", pm.stop(&api).await),
        ("start", pm.start(&api).await),
        ("restart", pm.restart(&api).await),
    ] {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::NotFound, "{what}: {e}");
        assert!(
            e.message().contains("`api`") && e.message().contains("crashy, grp:g1, grp:g2, once, slow, web"),
            "{what}: {e}"
        );
        no_canary(&e);
    }
    eprintln!("unknown program: {}", pm.status(&api).await.unwrap_err());
}

#[tokio::test]
async fn a_crash_loop_is_retrying_then_errored() {
    let _serial = SERIAL.lock().await;
    let Some(sv) = TempSupervisord::start("a_crash_loop_is_retrying_then_errored") else {
        return;
    };
    let pm = sv.manager();
    let crashy = AppName::new("crashy");

    let t = Instant::now();
    let e = pm.start(&crashy).await.unwrap_err();
    eprintln!("crash at start: {e}");
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(
        e.message().contains("spawn error") && e.message().contains("BACKOFF"),
        "{e}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "failed as soon as the crash was seen"
    );
    let s = pm.status(&crashy).await.expect("status");
    assert_eq!(
        (s.state, s.pid),
        (ProcessState::Retrying, None),
        "supervisord retries: {s:?}"
    );

    // startretries=3, backing off 1, 2, 3 s: then FATAL.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = vec![s.state];
    loop {
        let s = pm.status(&crashy).await.expect("status");
        if seen.last() != Some(&s.state) {
            seen.push(s.state);
        }
        assert_ne!(s.state, ProcessState::Online, "a crash loop is never online");
        if s.state == ProcessState::Errored || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("states seen: {seen:?}");
    assert_eq!(
        seen.last(),
        Some(&ProcessState::Errored),
        "supervisord gave up: {seen:?}"
    );

    // FATAL: nothing runs and nothing restarts it, so stop is Ok, but supervisord keeps it
    // FATAL (only a start leaves that state).
    pm.stop(&crashy).await.expect("stop of a FATAL program");
    let s = pm.status(&crashy).await.expect("status");
    assert_eq!((s.state, s.pid), (ProcessState::Errored, None));

    // Start again: again a failure, and a restart of it too.
    let e = pm.start(&crashy).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    let e = pm.restart(&crashy).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    // Stopped while BACKOFF: STOPPED.
    pm.stop(&crashy).await.expect("stop while retrying");
    assert_eq!(
        pm.status(&crashy).await.expect("status").state,
        ProcessState::Stopped
    );
}

#[tokio::test]
async fn an_exit_after_running_and_a_slow_start_are_reported_with_their_state() {
    let _serial = SERIAL.lock().await;
    let Some(sv) = TempSupervisord::start("an_exit_after_running_and_a_slow_start") else {
        return;
    };
    // `once` is RUNNING at once (startsecs=0) and exits 0.3 s later, not restarted.
    let pm = SupervisordProcessManager::builder(&sv.conf)
        .stability_window(Duration::from_secs(1))
        .state_timeout(Duration::from_secs(3))
        .build()
        .expect("manager");
    let e = pm.start(&AppName::new("once")).await.unwrap_err();
    eprintln!("exit after start: {e}");
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(
        e.message().contains("exited") && e.message().contains("EXITED"),
        "{e}"
    );
    let s = pm.status(&AppName::new("once")).await.expect("status");
    assert_eq!(s.state, ProcessState::Stopped, "EXITED, not restarted: {s:?}");

    // `slow` needs 30 s of startsecs: the 3 s wait runs out, naming STARTING.
    let t = Instant::now();
    let e = pm.start(&AppName::new("slow")).await.unwrap_err();
    eprintln!("slow start: {e}");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("STARTING"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    // The call was abandoned half way; the next works.
    pm.stop(&AppName::new("slow"))
        .await
        .expect("stop after a timed-out start");
    assert_eq!(
        pm.status(&AppName::new("slow")).await.expect("status").state,
        ProcessState::Stopped
    );
}

#[tokio::test]
async fn supervisord_down_is_unavailable_never_not_found() {
    let _serial = SERIAL.lock().await;
    let Some(mut sv) = TempSupervisord::start("supervisord_down_is_unavailable_never_not_found") else {
        return;
    };
    let pm = sv.manager();
    let web = AppName::new("web");
    pm.start(&web).await.expect("start");
    let pid = pm.status(&web).await.expect("status").pid.expect("pid");

    // Crashed (SIGKILL): the socket file stays and refuses; the orphaned app lives on.
    sv.crash();
    for (what, r) in [
        ("status", pm.status(&web).await.map(drop)),
        ("stop", pm.stop(&web).await),
        ("start", pm.start(&web).await),
        ("restart", pm.restart(&web).await),
        (
            "status of an unknown app",
            pm.status(&AppName::new("api")).await.map(drop),
        ),
    ] {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{what}: {e}");
        assert!(e.message().contains("refused connection"), "{what}: {e}");
        no_canary(&e);
    }
    eprintln!("crashed supervisord: {}", pm.status(&web).await.unwrap_err());
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();

    // Shut down (and its socket removed): no such file.
    std::fs::remove_file(sv.dir.path().join("sv.sock")).ok();
    let e = pm.stop(&web).await.unwrap_err();
    eprintln!("no supervisord: {e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("socket does not exist"), "{e}");

    // A configuration that went away, and a missing supervisorctl.
    let gone = sv.dir.path().join("gone.conf");
    std::fs::copy(&sv.conf, &gone).expect("copy conf");
    let pm2 = SupervisordProcessManager::builder(&gone)
        .build()
        .expect("manager");
    std::fs::remove_file(&gone).expect("remove conf");
    let e = pm2.status(&web).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let missing = SupervisordProcessManager::builder(&sv.conf)
        .binary("/nonexistent/supervisorctl")
        .build()
        .expect("manager");
    let e = missing.start(&web).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("apt-get install supervisor"), "{e}");
    assert!(sv.pid().is_none(), "nothing started supervisord again");
}
