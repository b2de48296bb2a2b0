use crate::domain::ProcessStatus;
use crate::error::AdapterError;
use crate::ids::AppName;
use async_trait::async_trait;

/// Starts and stops the app through its process manager (never through the release's own
/// scripts: stopping must not depend on the broken release).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ProcessManager: Send + Sync {
    /// The app's status. An app the manager does not know gives
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound).
    async fn status(&self, app: &AppName) -> Result<ProcessStatus, AdapterError>;

    /// Stops the app and returns once it really is stopped, or a timeout error naming the
    /// last state seen. Stopping a stopped app is `Ok`.
    async fn stop(&self, app: &AppName) -> Result<(), AdapterError>;

    /// Starts the app and returns once it really is online (not crash-looping), or an error
    /// naming the last state seen. Starting an online app is `Ok`.
    async fn start(&self, app: &AppName) -> Result<(), AdapterError>;

    /// Restarts the app and returns once the new process is online.
    async fn restart(&self, app: &AppName) -> Result<(), AdapterError>;
}
