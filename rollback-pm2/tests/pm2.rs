//! Integration tests against the real pm2 and a real Node app, each test with its own
//! `PM2_HOME` (killed on drop). Skipped loudly without pm2 or node; failures under
//! `ROLLBACK_REQUIRE_INTEGRATION=1`. Serialised: two cores, and the waits are timed.

use async_trait::async_trait;
use rollback_core::{AppName, ErrorKind, MetricsSource, ProcessManager, ProcessState};
use rollback_pm2::{AppSpec, Pm2ProcessManager, ScriptSpec};
use rollback_testkit::conformance::{self, ProcessFixture};
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

struct Fixture {
    port: u16,
}

#[async_trait]
impl ProcessFixture for Fixture {
    fn app(&self) -> AppName {
        AppName::new("web")
    }

    async fn is_serving(&self) -> bool {
        health(self.port) == Some(200)
    }
}

#[tokio::test]
async fn real_pm2_passes_the_conformance_suite_and_really_stops_and_starts() {
    let _serial = SERIAL.lock().await;
    let Some(pm2) = TempPm2::new("real_pm2_passes_the_conformance_suite") else {
        return;
    };
    let port = free_port();
    let pm = manager(&pm2, port);
    let web = AppName::new("web");

    conformance::process_manager(&pm, &Fixture { port }).await;

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
    assert!(after.restarts >= 1, "pm2 counted the restart: {after:?}");
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
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(
        e.message().contains("crash loop") && e.message().contains("restarts in"),
        "{e}"
    );
    let s = pm.status(&crashy).await.expect("status");
    assert!(s.restarts >= 3, "pm2 restarted it repeatedly: {s:?}");

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
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.message().contains("daemon not reachable")
            && e.message().contains("/proc/rollback-pm2-no-such-home"),
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
