use super::expect_error;
use async_trait::async_trait;
use rollback_core::{AppName, ErrorKind, ProcessManager, ProcessState};

/// What the process suite needs besides the trait: the app to drive, and a real check that
/// it serves (e.g. its port answers).
#[async_trait]
pub trait ProcessFixture: Send + Sync {
    /// The app the manager knows.
    fn app(&self) -> AppName;
    /// True when the app really serves (port answers), not just what the manager says.
    async fn is_serving(&self) -> bool;
}

/// The [`ProcessManager`] contract: start/stop/restart return only once the app really is
/// in that state, repeat calls are `Ok`, unknown apps are `NotFound`.
pub async fn process_manager(pm: &dyn ProcessManager, fixture: &dyn ProcessFixture) {
    let app = fixture.app();
    pm.start(&app).await.expect("start");
    assert_eq!(pm.status(&app).await.expect("status").state, ProcessState::Online);
    assert!(fixture.is_serving().await, "after start returns, the app serves");
    pm.start(&app).await.expect("start of an online app is Ok");

    pm.stop(&app).await.expect("stop");
    assert_eq!(
        pm.status(&app).await.expect("status").state,
        ProcessState::Stopped
    );
    assert!(
        !fixture.is_serving().await,
        "after stop returns, the app no longer serves"
    );
    pm.stop(&app).await.expect("stop of a stopped app is Ok");

    pm.start(&app).await.expect("start again");
    let before = pm.status(&app).await.expect("status");
    pm.restart(&app).await.expect("restart");
    let after = pm.status(&app).await.expect("status");
    assert_eq!(after.state, ProcessState::Online, "restart ends online");
    if let (Some(a), Some(b)) = (before.pid, after.pid) {
        assert_ne!(a, b, "restart runs a new process");
    }
    assert!(
        fixture.is_serving().await,
        "after restart returns, the app serves"
    );

    let unknown = AppName::new("no-such-app-for-conformance");
    expect_error(
        pm.status(&unknown).await,
        ErrorKind::NotFound,
        "status(unknown app)",
    );
    expect_error(pm.stop(&unknown).await, ErrorKind::NotFound, "stop(unknown app)");
}
