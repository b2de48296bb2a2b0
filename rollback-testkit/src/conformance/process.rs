use super::expect_error;
use async_trait::async_trait;
use rollback_core::{AppName, ErrorKind, ProcessManager, ProcessState, ProcessStatus};

/// Names that some process manager reads as several apps; every adapter must refuse them.
pub const PATTERN_NAMES: [&str; 5] = ["all", "*", "group:*", "web?", "/web/"];

/// What the process suite needs besides the trait: the app to drive, a real check that it
/// serves, and (optionally) what only the adapter's test can arrange.
#[async_trait]
pub trait ProcessFixture: Send + Sync {
    /// The app the manager knows.
    fn app(&self) -> AppName;

    /// True when the app really serves (port answers), not just what the manager says.
    async fn is_serving(&self) -> bool;

    /// Optional: another app the manager can start that crashes as soon as it starts
    /// (exits with an error every time), not running now. The default, `None`, skips the
    /// crash part of the suite.
    fn crashing_app(&self) -> Option<AppName> {
        None
    }

    /// Optional: takes the process manager itself down, as a crash or a reboot would (kills
    /// its daemon, stops its service), so that it cannot answer. Returns whether it did; the
    /// default does nothing and returns `false`, which skips that part of the suite. The
    /// suite calls it last and does not need the manager back.
    async fn take_manager_down(&self) -> bool {
        false
    }
}

/// The [`ProcessManager`] contract (see the trait's docs). Checks, in this order:
/// 1. names that address several apps ([`PATTERN_NAMES`]) are `InvalidInput` from every
///    method;
/// 2. `start` returns with the app `Online`, with a pid, and serving; `start` of an online
///    app is `Ok` and keeps the same pid;
/// 3. an unknown app is `NotFound` from every method (`start` and `restart` included);
/// 4. `stop` returns with the app `Stopped`, no pid, not serving; `stop` again is `Ok`;
/// 5. `restart` of a stopped app starts it;
/// 6. `restart` returns with a new pid, online and serving, and a restart count that grew
///    by at least one when the manager counts (the count is `Some` in every status, or
///    `None` in every one);
/// 7. with [`ProcessFixture::crashing_app`]: its `start` is `Failed`, its status then
///    `Errored` or `Retrying` (never online), and after `stop` it is `Stopped` (or `Errored`,
///    for a manager that keeps its gave-up state) with no pid, never `Retrying`;
/// 8. with [`ProcessFixture::take_manager_down`]: `status`, `stop` and `restart` are
///    `Unavailable` (never `NotFound`); `start` is `Unavailable` too, or, from an adapter
///    that starts its manager on demand, `Ok` with the app really online and serving.
///
/// Not checked (no fixture can arrange it portably): the adapter's `Timeout` when a state
/// is never reached, and `PermissionDenied`.
pub async fn process_manager(pm: &dyn ProcessManager, fixture: &dyn ProcessFixture) {
    let app = fixture.app();

    for name in PATTERN_NAMES.map(AppName::new) {
        let what = |m: &str| format!("{m}(`{name}`), a name that addresses several apps");
        expect_error(pm.status(&name).await, ErrorKind::InvalidInput, &what("status"));
        expect_error(pm.stop(&name).await, ErrorKind::InvalidInput, &what("stop"));
        expect_error(pm.start(&name).await, ErrorKind::InvalidInput, &what("start"));
        expect_error(pm.restart(&name).await, ErrorKind::InvalidInput, &what("restart"));
    }

    pm.start(&app).await.expect("start");
    let started = expect_online(pm, &app, "after start returned").await;
    assert!(fixture.is_serving().await, "after start returned, the app serves");
    pm.start(&app).await.expect("start of an online app is Ok");
    let again = expect_online(pm, &app, "after start of an online app").await;
    assert_eq!(
        again.pid, started.pid,
        "start of an online app changes nothing (same process)"
    );

    // With the manager up (the start above may have brought it up): unknown is NotFound.
    let unknown = AppName::new("no-such-app-for-conformance");
    expect_error(
        pm.status(&unknown).await,
        ErrorKind::NotFound,
        "status(unknown app)",
    );
    expect_error(pm.stop(&unknown).await, ErrorKind::NotFound, "stop(unknown app)");
    expect_error(
        pm.start(&unknown).await,
        ErrorKind::NotFound,
        "start(unknown app)",
    );
    expect_error(
        pm.restart(&unknown).await,
        ErrorKind::NotFound,
        "restart(unknown app)",
    );

    pm.stop(&app).await.expect("stop");
    expect_stopped(pm, &app, "after stop returned").await;
    assert!(
        !fixture.is_serving().await,
        "after stop returned, the app no longer serves"
    );
    pm.stop(&app).await.expect("stop of a stopped app is Ok");
    expect_stopped(pm, &app, "after stop of a stopped app").await;

    pm.restart(&app).await.expect("restart of a stopped app");
    expect_online(pm, &app, "after restart of a stopped app returned").await;
    assert!(
        fixture.is_serving().await,
        "after restart of a stopped app returned, the app serves"
    );

    let before = expect_online(pm, &app, "before restart").await;
    pm.restart(&app).await.expect("restart");
    let after = expect_online(pm, &app, "after restart returned").await;
    assert_ne!(
        after.pid, before.pid,
        "restart runs a new process: the pid must change"
    );
    let counts = [started.restarts, before.restarts, after.restarts];
    assert!(
        counts.iter().all(Option::is_some) || counts.iter().all(Option::is_none),
        "the restart count is either kept or not: {counts:?} after the first start, before and after restart"
    );
    if let (Some(b), Some(a)) = (before.restarts, after.restarts) {
        assert!(
            a > b,
            "restart adds at least one to the restart count: {b} before, {a} after"
        );
    }
    assert!(
        fixture.is_serving().await,
        "after restart returned, the app serves"
    );

    if let Some(crashing) = fixture.crashing_app() {
        match pm.start(&crashing).await {
            Ok(()) => panic!("start of an app that crashes at start must fail, got Ok"),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::Failed,
                "start of an app that crashes at start is `failed`: {e}"
            ),
        }
        let s = pm.status(&crashing).await.expect("status of the crashed app");
        assert!(
            matches!(s.state, ProcessState::Errored | ProcessState::Retrying),
            "a start that failed leaves the app errored or retrying: {s:?}"
        );
        pm.stop(&crashing).await.expect("stop of a crashed app");
        let s = pm
            .status(&crashing)
            .await
            .unwrap_or_else(|e| panic!("status after stop of a crashed app: {e}"));
        assert!(
            matches!(s.state, ProcessState::Stopped | ProcessState::Errored) && s.pid.is_none(),
            "after stop of a crashed app returned, no process runs and none is being restarted: \
             `Stopped` (or `Errored` for a manager that keeps its gave-up state), no pid: {s:?}"
        );
    }

    if fixture.take_manager_down().await {
        let what = |m: &str| format!("{m} while the process manager is down");
        expect_error(pm.status(&app).await, ErrorKind::Unavailable, &what("status"));
        expect_error(pm.stop(&app).await, ErrorKind::Unavailable, &what("stop"));
        expect_error(pm.restart(&app).await, ErrorKind::Unavailable, &what("restart"));
        match pm.start(&app).await {
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::Unavailable,
                "{}: wrong error kind: {e}",
                what("start")
            ),
            Ok(()) => {
                expect_online(pm, &app, "after start brought the manager back").await;
                assert!(
                    fixture.is_serving().await,
                    "after start brought the manager back, the app serves"
                );
            }
        }
    }
}

/// The app's status, asserting it is `Online` with a pid.
async fn expect_online(pm: &dyn ProcessManager, app: &AppName, when: &str) -> ProcessStatus {
    let s = pm
        .status(app)
        .await
        .unwrap_or_else(|e| panic!("status {when}: {e}"));
    assert_eq!(
        s.state,
        ProcessState::Online,
        "{when}, the status says online: {s:?}"
    );
    assert!(
        s.pid.is_some(),
        "{when}: an online app's status carries its pid: {s:?}"
    );
    s
}

/// Asserts the app's status is `Stopped` with no pid.
async fn expect_stopped(pm: &dyn ProcessManager, app: &AppName, when: &str) {
    let s = pm
        .status(app)
        .await
        .unwrap_or_else(|e| panic!("status {when}: {e}"));
    assert_eq!(
        (s.state, s.pid),
        (ProcessState::Stopped, None),
        "{when}, the status says stopped with no pid: {s:?}"
    );
}
