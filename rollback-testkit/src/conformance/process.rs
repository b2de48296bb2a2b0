//! The [`ProcessManager`] suite (see the trait's docs): one check per promise, [`CHECKS`]
//! in the order [`process_manager`] runs them.
//!
//! The checks bring the app into the state they need themselves (`start` first, then `stop`
//! when they need it stopped), so they rely on no other check, but a broken `start` or
//! `stop` fails the checks that use them as set-up too (their message says which step).
//! [`a_manager_that_is_down_is_unavailable`] leaves the manager down (an adapter that
//! starts it on demand brings it back): the all-in-one suite runs it last.
//!
//! Not checked (no fixture can arrange it portably): the adapter's `Timeout` when a state
//! is never reached, and `PermissionDenied`.

use super::{check, expect_error, Check, CheckFuture};
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
    /// (exits with an error every time), not running now. The default, `None`, skips
    /// [`a_crashing_app_fails_to_start`].
    fn crashing_app(&self) -> Option<AppName> {
        None
    }

    /// Optional: takes the process manager itself down, as a crash or a reboot would (kills
    /// its daemon, stops its service), so that it cannot answer. Returns whether it did; the
    /// default does nothing and returns `false`, which skips
    /// [`a_manager_that_is_down_is_unavailable`]. Nothing needs the manager back after it.
    async fn take_manager_down(&self) -> bool {
        false
    }
}

/// A check of the process suite: `(check.run)(&adapter, &fixture).await`.
pub type ProcessCheck = Check<for<'a> fn(&'a dyn ProcessManager, &'a dyn ProcessFixture) -> CheckFuture<'a>>;

/// The process suite's checks, in the order [`process_manager`] runs them (the one that
/// takes the manager down last).
pub const CHECKS: &[ProcessCheck] = &[
    check!(names_for_several_apps_are_refused),
    check!(start_brings_the_app_online),
    check!(unknown_apps_are_not_found),
    check!(restart_runs_a_new_process),
    check!(stop_stops_the_app),
    check!(restart_starts_a_stopped_app),
    check!(a_crashing_app_fails_to_start),
    check!(a_manager_that_is_down_is_unavailable),
];

/// The whole [`ProcessManager`] contract: every check of [`CHECKS`], in order, on one
/// adapter and fixture. Stops at the first broken promise; run the checks one by one
/// (`conformance_tests!(process_manager, ...)`) to see them all. It ends with the manager
/// taken down when the fixture can do that.
pub async fn process_manager(pm: &dyn ProcessManager, fixture: &dyn ProcessFixture) {
    for check in CHECKS {
        (check.run)(pm, fixture).await;
    }
}

/// Names that address several apps ([`PATTERN_NAMES`]) are `InvalidInput` from every
/// method.
pub async fn names_for_several_apps_are_refused(pm: &dyn ProcessManager, fixture: &dyn ProcessFixture) {
    let _ = fixture;
    for name in PATTERN_NAMES.map(AppName::new) {
        let what = |m: &str| format!("{m}(`{name}`), a name that addresses several apps");
        expect_error(pm.status(&name).await, ErrorKind::InvalidInput, &what("status"));
        expect_error(pm.stop(&name).await, ErrorKind::InvalidInput, &what("stop"));
        expect_error(pm.start(&name).await, ErrorKind::InvalidInput, &what("start"));
        expect_error(pm.restart(&name).await, ErrorKind::InvalidInput, &what("restart"));
    }
}

/// `start` returns with the app `Online`, with a pid, and serving; `start` of an online app
/// is `Ok` and keeps the same pid.
pub async fn start_brings_the_app_online(pm: &dyn ProcessManager, fixture: &dyn ProcessFixture) {
    let app = fixture.app();
    pm.start(&app).await.expect("start");
    let started = expect_online(pm, &app, "after start returned").await;
    assert!(fixture.is_serving().await, "after start returned, the app serves");
    pm.start(&app).await.expect("start of an online app is Ok");
    let again = expect_online(pm, &app, "after start of an online app").await;
    assert_eq!(
        again.pid, started.pid,
        "start of an online app changes nothing (same process)"
    );
}

/// An unknown app is `NotFound` from every method (`start` and `restart` included). It
/// starts the fixture's app first, so that a manager that starts its daemon on demand is up.
pub async fn unknown_apps_are_not_found(pm: &dyn ProcessManager, fixture: &dyn ProcessFixture) {
    pm.start(&fixture.app())
        .await
        .expect("start (to have the manager up)");
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
}

/// `restart` of an online app returns with a new pid, online and serving, and a restart
/// count that grew by at least one when the manager counts (the count is `Some` in every
/// status, or `None` in every one). It starts the app first.
pub async fn restart_runs_a_new_process(pm: &dyn ProcessManager, fixture: &dyn ProcessFixture) {
    let app = fixture.app();
    pm.start(&app).await.expect("start (before restart)");
    let before = expect_online(pm, &app, "before restart").await;
    pm.restart(&app).await.expect("restart");
    let after = expect_online(pm, &app, "after restart returned").await;
    assert_ne!(
        after.pid, before.pid,
        "restart runs a new process: the pid must change"
    );
    let counts = [before.restarts, after.restarts];
    assert!(
        counts.iter().all(Option::is_some) || counts.iter().all(Option::is_none),
        "the restart count is either kept or not: {counts:?} before and after restart"
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
}

/// `stop` returns with the app `Stopped`, no pid, not serving; `stop` again is `Ok`. It
/// starts the app first.
pub async fn stop_stops_the_app(pm: &dyn ProcessManager, fixture: &dyn ProcessFixture) {
    let app = fixture.app();
    pm.start(&app).await.expect("start (before stop)");
    pm.stop(&app).await.expect("stop");
    expect_stopped(pm, &app, "after stop returned").await;
    assert!(
        !fixture.is_serving().await,
        "after stop returned, the app no longer serves"
    );
    pm.stop(&app).await.expect("stop of a stopped app is Ok");
    expect_stopped(pm, &app, "after stop of a stopped app").await;
}

/// `restart` of a stopped app starts it: online and serving. It starts and stops the app
/// first.
pub async fn restart_starts_a_stopped_app(pm: &dyn ProcessManager, fixture: &dyn ProcessFixture) {
    let app = fixture.app();
    pm.start(&app).await.expect("start (before stop)");
    pm.stop(&app).await.expect("stop (before restart)");
    pm.restart(&app).await.expect("restart of a stopped app");
    expect_online(pm, &app, "after restart of a stopped app returned").await;
    assert!(
        fixture.is_serving().await,
        "after restart of a stopped app returned, the app serves"
    );
}

/// With [`ProcessFixture::crashing_app`]: its `start` is `Failed`, its status then
/// `Errored` or `Retrying` (never online), and after `stop` it is `Stopped` (or `Errored`,
/// for a manager that keeps its gave-up state) with no pid, never `Retrying`. Without the
/// hook it checks nothing.
pub async fn a_crashing_app_fails_to_start(pm: &dyn ProcessManager, fixture: &dyn ProcessFixture) {
    let Some(crashing) = fixture.crashing_app() else {
        return;
    };
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

/// With [`ProcessFixture::take_manager_down`] (after starting the app): `status`, `stop`
/// and `restart` are `Unavailable` (never `NotFound`); `start` is `Unavailable` too, or,
/// from an adapter that starts its manager on demand, `Ok` with the app really online and
/// serving. Without the hook it checks nothing. Leaves the manager down.
pub async fn a_manager_that_is_down_is_unavailable(pm: &dyn ProcessManager, fixture: &dyn ProcessFixture) {
    let app = fixture.app();
    pm.start(&app)
        .await
        .expect("start (before the manager goes down)");
    if !fixture.take_manager_down().await {
        return;
    }
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
