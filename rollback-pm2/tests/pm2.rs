//! Integration tests against the real pm2 and a real Node app, each test with its own
//! `PM2_HOME` (killed on drop). Skipped loudly without pm2 or node; failures under
//! `ROLLBACK_REQUIRE_INTEGRATION=1`. Serialised: two cores, and the waits are timed.

use async_trait::async_trait;
use rollback_core::{AppName, ErrorKind, MetricsSource, ProcessManager, ProcessState};
use rollback_pm2::{AppSpec, Pm2ProcessManager, ScriptSpec};
use rollback_testkit::conformance::ProcessFixture;
use rollback_testkit::conformance_tests;
use rollback_testkit::temp_pm2::{free_port, http_status, port_open, NodeApp, TempPm2};
use std::time::Duration;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn health(port: u16) -> Option<u16> {
    http_status(port, "/api/health", Duration::from_secs(2))
}

/// A manager over `pm2` whose app `web` is the health server on `port`.
fn manager(pm2: &TempPm2, port: u16) -> Pm2ProcessManager {
    let script = pm2.write_app("web", NodeApp::HealthServer);
    let crash = pm2.write_app("crashy", NodeApp::CrashesAtStart);
    Pm2ProcessManager::builder()
        .binary(pm2.pm2())
        .home(pm2.home())
        .stability_window(Duration::from_millis(1000))
        .state_timeout(Duration::from_secs(20))
        .app(
            "web",
            AppSpec::Script(
                ScriptSpec::new(&script)
                    .cwd(pm2.home())
                    .env("PORT", port.to_string())
                    .env("DB_PASSWORD", "hunter2-canary"),
            ),
        )
        .app("crashy", AppSpec::Script(ScriptSpec::new(&crash).cwd(pm2.home())))
        .build()
        .expect("manager")
}

struct Fixture<'a> {
    port: u16,
    pm2: &'a TempPm2,
}

#[async_trait]
impl ProcessFixture for Fixture<'_> {
    fn app(&self) -> AppName {
        AppName::new("web")
    }

    async fn is_serving(&self) -> bool {
        health(self.port) == Some(200)
    }

    /// `crashy` exits at once; the manager starts it from its spec.
    fn crashing_app(&self) -> Option<AppName> {
        Some(AppName::new("crashy"))
    }

    /// `pm2 kill`: the daemon and its apps are gone, as after a crash or a reboot.
    async fn take_manager_down(&self) -> bool {
        self.pm2.kill();
        true
    }
}

conformance_tests!(process_manager, |check, test| {
    let _serial = SERIAL.lock().await;
    let Some(pm2) = TempPm2::new(test) else { return };
    let port = free_port();
    check(&manager(&pm2, port), &Fixture { port, pm2: &pm2 }).await;
});

#[tokio::test]
async fn real_pm2_really_stops_and_starts() {
    let _serial = SERIAL.lock().await;
    let Some(pm2) = TempPm2::new("real_pm2_really_stops_and_starts") else {
        return;
    };
    let port = free_port();
    let pm = manager(&pm2, port);
    let web = AppName::new("web");
    // The conformance suite runs check by check above; here, what a user sees.
    pm.start(&web).await.expect("start");

    // stop: when it returns, the port refuses connections.
    pm.stop(&web).await.expect("stop");
    assert!(
        !port_open(port),
        "port {port} still accepts connections after stop returned"
    );
    let s = pm.status(&web).await.expect("status");
    assert_eq!((s.state, s.pid, s.uptime), (ProcessState::Stopped, None, None));

    // start: when it returns, the health endpoint answers 200.
    pm.start(&web).await.expect("start");
    assert_eq!(health(port), Some(200), "health endpoint after start returned");
    let s = pm.status(&web).await.expect("status");
    assert_eq!(s.state, ProcessState::Online);
    assert!(
        s.uptime.is_some_and(|u| u >= Duration::from_millis(900)),
        "uptime covers the stability window: {s:?}"
    );

    // restart: a new pid, serving.
    let before = s.pid.expect("pid when online");
    pm.restart(&web).await.expect("restart");
    let after = pm.status(&web).await.expect("status");
    assert_ne!(after.pid, Some(before), "restart runs a new process");
    assert!(
        after.restarts.is_some_and(|n| n >= 1),
        "pm2 counted the restart: {after:?}"
    );
    assert_eq!(health(port), Some(200));

    // metrics: real memory and a sane percentage.
    let m = pm.metrics().sample(&web).await.expect("metrics");
    assert!(
        m.memory_bytes.is_some_and(|b| b > 1_000_000),
        "node uses more than 1 MB: {m:?}"
    );
    assert!(m.memory_percent.is_some_and(|p| p > 0.0 && p < 100.0), "{m:?}");
    assert!(m.cpu_percent.is_some_and(|c| c >= 0.0), "{m:?}");
    assert_eq!(m.error_rate, None);

    // unknown app: NotFound naming it and the apps pm2 knows; the env never leaks.
    let e = pm.status(&AppName::new("api")).await.unwrap_err();
    eprintln!("unknown app: {e}");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.message().contains("`api`") && e.message().contains("known apps: web"),
        "{e}"
    );
    let e = pm.start(&AppName::new("api")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains("no start spec"), "{e}");
    let e = pm.metrics().sample(&AppName::new("api")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        !format!("{e} {e:?} {pm:?}").contains("hunter2-canary"),
        "a secret leaked"
    );
}

#[tokio::test]
async fn a_crashing_app_is_a_crash_loop_not_online() {
    let _serial = SERIAL.lock().await;
    let Some(pm2) = TempPm2::new("a_crashing_app_is_a_crash_loop_not_online") else {
        return;
    };
    let pm = manager(&pm2, free_port());
    let crashy = AppName::new("crashy");

    let e = pm.start(&crashy).await.unwrap_err();
    eprintln!("crash loop: {e}");
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(
        e.message().contains("crash loop") && e.message().contains("restarts in"),
        "{e}"
    );
    let s = pm.status(&crashy).await.expect("status");
    assert!(
        s.restarts.is_some_and(|n| n >= 3),
        "pm2 restarted it repeatedly: {s:?}"
    );
    assert!(
        matches!(s.state, ProcessState::Retrying | ProcessState::Errored),
        "a crash loop is retrying (pm2 still restarts it) or errored (pm2 gave up), never online: {s:?}"
    );

    // Once stopped, it stays stopped; starting it again is again a crash loop.
    pm.stop(&crashy).await.expect("stop a crash-looping app");
    assert_eq!(
        pm.status(&crashy).await.expect("status").state,
        ProcessState::Stopped
    );
    let e = pm.start(&crashy).await.unwrap_err();
    assert!(e.message().contains("crash loop"), "{e}");
}

#[tokio::test]
async fn unknown_apps_start_from_an_ecosystem_file_and_a_bad_script_carries_pm2s_stderr() {
    let _serial = SERIAL.lock().await;
    let Some(pm2) = TempPm2::new("unknown_apps_start_from_an_ecosystem_file") else {
        return;
    };
    let port = free_port();
    let script = pm2.write_app("eco", NodeApp::HealthServer);
    let once = pm2.write_app("once", NodeApp::CrashesAtStart);
    let ecosystem = pm2.home().join("apps").join("ecosystem.json");
    let apps = serde_json::json!({"apps": [
        {"name": "eco", "script": script, "env": {"PORT": port.to_string()}},
        {"name": "other", "script": script, "env": {"PORT": free_port().to_string()}},
        {"name": "once", "script": once, "autorestart": false},
    ]});
    std::fs::write(&ecosystem, apps.to_string()).expect("write ecosystem file");
    let pm = Pm2ProcessManager::builder()
        .binary(pm2.pm2())
        .home(pm2.home())
        .stability_window(Duration::from_millis(500))
        .app(
            "eco",
            AppSpec::Ecosystem {
                file: ecosystem.clone(),
            },
        )
        .app("once", AppSpec::Ecosystem { file: ecosystem })
        .app(
            "ghost",
            AppSpec::Script(ScriptSpec::new(pm2.home().join("no-such-script.js"))),
        )
        .build()
        .expect("manager");

    let eco = AppName::new("eco");
    pm.start(&eco).await.expect("start from the ecosystem file");
    assert_eq!(health(port), Some(200));
    assert_eq!(pm.status(&eco).await.expect("status").state, ProcessState::Online);
    let e = pm.status(&AppName::new("other")).await.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::NotFound,
        "--only started just the asked app: {e}"
    );

    // An app that exits and is not restarted fails at once, not after the state timeout.
    let t = std::time::Instant::now();
    let e = pm.start(&AppName::new("once")).await.unwrap_err();
    eprintln!("exited: {e}");
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(
        e.message().contains("exited") && t.elapsed() < Duration::from_secs(10),
        "{e}"
    );

    let e = pm.start(&AppName::new("ghost")).await.unwrap_err();
    eprintln!("bad script: {e}");
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(
        e.message().contains("pm2 start ghost") && e.message().contains("no-such-script.js"),
        "{e}"
    );
}

#[tokio::test]
async fn a_killed_daemon_is_unavailable_not_an_unknown_app_and_start_brings_it_back() {
    let _serial = SERIAL.lock().await;
    let Some(pm2) = TempPm2::new("a_killed_daemon_is_unavailable_not_an_unknown_app") else {
        return;
    };
    let port = free_port();
    let pm = manager(&pm2, port);
    let web = AppName::new("web");
    pm.start(&web).await.expect("start");
    pm2.kill();
    assert!(!port_open(port), "pm2 kill took the app down with the daemon");
    for (what, result) in [
        ("status", pm.status(&web).await.map(drop)),
        ("stop", pm.stop(&web).await),
        ("restart", pm.restart(&web).await),
    ] {
        let e = result.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{what}: {e}");
        assert!(e.message().contains("not running"), "{what}: {e}");
    }
    assert!(
        !pm2.home().join("pm2.pid").exists(),
        "status, stop and restart did not start a fresh daemon"
    );
    pm.start(&web).await.expect("start brings pm2 and the app back");
    assert_eq!(health(port), Some(200));
    assert_eq!(pm.status(&web).await.expect("status").state, ProcessState::Online);
}

#[tokio::test]
async fn a_daemon_that_cannot_start_is_unavailable_not_a_hang() {
    let _serial = SERIAL.lock().await;
    let Some(pm2) = TempPm2::new("a_daemon_that_cannot_start_is_unavailable") else {
        return;
    };
    // A PM2_HOME that cannot be created: pm2 hangs instead of failing.
    let pm = Pm2ProcessManager::builder()
        .binary(pm2.pm2())
        .home("/proc/rollback-pm2-no-such-home")
        .command_timeout(Duration::from_secs(3))
        .build()
        .expect("manager");
    let e = pm.status(&AppName::new("web")).await.unwrap_err();
    eprintln!("unreachable daemon: {e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.message().contains("daemon not reachable")
            && e.message().contains("/proc/rollback-pm2-no-such-home"),
        "{e}"
    );
    // `start` is the one call that starts pm2's daemon: here pm2 hangs, and the command
    // timeout turns that into an unreachable daemon.
    let t = std::time::Instant::now();
    let e = pm.start(&AppName::new("web")).await.unwrap_err();
    eprintln!("daemon that cannot start: {e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.message().contains("did not finish within") && t.elapsed() < Duration::from_secs(15),
        "{e}"
    );

    let missing = Pm2ProcessManager::builder()
        .binary("/nonexistent/bin/pm2")
        .build()
        .expect("manager");
    let e = missing.stop(&AppName::new("web")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().contains("npm install -g pm2@7.0.4"), "{e}");
}

/// Cluster mode with two instances: `can_reload` says yes (fork mode says no), and `reload`
/// replaces both instances while a request loop never sees the app down.
#[tokio::test]
async fn a_cluster_app_reloads_one_instance_at_a_time_without_a_failed_request() {
    let _serial = SERIAL.lock().await;
    let Some(pm2) = TempPm2::new("a_cluster_app_reloads_without_a_failed_request") else {
        return;
    };
    let port = free_port();
    let script = pm2.write_app("web", NodeApp::HealthServer);
    let pm = Pm2ProcessManager::builder()
        .binary(pm2.pm2())
        .home(pm2.home())
        .stability_window(Duration::from_millis(1000))
        .state_timeout(Duration::from_secs(30))
        .app(
            "web",
            AppSpec::Script(
                ScriptSpec::new(&script)
                    .cwd(pm2.home())
                    .env("PORT", port.to_string())
                    .instances(2),
            ),
        )
        .app(
            "single",
            AppSpec::Script(
                ScriptSpec::new(&script)
                    .cwd(pm2.home())
                    .env("PORT", free_port().to_string()),
            ),
        )
        .build()
        .expect("manager");
    let web = AppName::new("web");
    let single = AppName::new("single");
    pm.start(&web).await.expect("start the cluster");
    pm.start(&single).await.expect("start the fork-mode app");
    assert!(
        pm.can_reload(&web).await.unwrap(),
        "two cluster instances can reload"
    );
    assert!(
        !pm.can_reload(&single).await.unwrap(),
        "one fork-mode process cannot"
    );
    let before = pm.status(&web).await.unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // (answered, failed, the longest run of failures in a row)
            let (mut ok, mut failed, mut run, mut longest) = (0u32, 0u32, 0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match health(port) {
                    Some(200) => {
                        ok += 1;
                        run = 0;
                    }
                    _ => {
                        failed += 1;
                        run += 1;
                        longest = longest.max(run);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (ok, failed, longest)
        })
    };
    pm.reload(&web).await.expect("reload");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed, longest) = prober.join().unwrap();
    assert!(ok > 10, "the prober ran: {ok} answers");
    // The app never stops answering: at most one isolated connection lost to node's cluster
    // race (the primary hands a new connection to a worker that is closing; seen once in
    // many runs, never two in a row), where a restart loses every request of its window.
    assert!(
        longest <= 1 && failed <= 1,
        "the app kept answering during the reload: {failed} failed ({longest} in a row), {ok} answered"
    );
    let after = pm.status(&web).await.unwrap();
    assert_eq!(after.state, ProcessState::Online);
    assert_ne!(after.pid, before.pid, "new processes");
    let refused = pm.reload(&AppName::new("all")).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidInput);
}

/// Issue 30: the daemon dies between a rollback's stop and its start (SIGKILL, as a crash or
/// the OOM killer would). The warm client kept from the stop talks to a daemon that is gone;
/// the start notices at once and goes through the CLI, which brings pm2 and the app back,
/// instead of waiting out the command timeout.
#[tokio::test]
async fn a_daemon_killed_after_the_stop_costs_the_start_no_timeout() {
    let _serial = SERIAL.lock().await;
    let Some(pm2) = TempPm2::new("a_daemon_killed_after_the_stop_costs_the_start_no_timeout") else {
        return;
    };
    let port = free_port();
    let command_timeout = Duration::from_secs(60);
    let script = pm2.write_app("web", NodeApp::HealthServer);
    let pm = Pm2ProcessManager::builder()
        .binary(pm2.pm2())
        .home(pm2.home())
        .stability_window(Duration::from_millis(1000))
        .state_timeout(Duration::from_secs(20))
        .command_timeout(command_timeout)
        .app(
            "web",
            AppSpec::Script(
                ScriptSpec::new(&script)
                    .cwd(pm2.home())
                    .env("PORT", port.to_string()),
            ),
        )
        .build()
        .expect("manager");
    let web = AppName::new("web");
    pm.start(&web).await.expect("start");
    pm.stop(&web)
        .await
        .expect("stop (the warm client stays for the start)");
    let pid: i32 = std::fs::read_to_string(pm2.home().join("pm2.pid"))
        .expect("pm2.pid")
        .trim()
        .parse()
        .expect("a pid");
    // The pm2 daemon this test started in its own PM2_HOME.
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = std::time::Instant::now();
    pm.start(&web).await.expect("start brings pm2 and the app back");
    let took = started.elapsed();
    println!("FIGURES start after the daemon was killed: {took:?} (command timeout {command_timeout:?})");
    assert!(
        took < command_timeout / 3,
        "the start waited on the dead daemon: {took:?}"
    );
    assert_eq!(health(port), Some(200));
}
