use crate::domain::{ConfigCheck, ConfigDiff, ConfigVersion};
use crate::error::AdapterError;
use crate::ids::ConfigVersionId;
use async_trait::async_trait;

/// Versions of the app's configuration (an env file, a config map).
///
/// Values are secrets: no method may put one into an error, a log line or a returned value.
///
/// A checkpoint keeps the live config with [`backup`](Self::backup), a rollback makes a
/// version live with [`restore`](Self::restore); the emergency backup and its undo are
/// [`preserve_current`](Self::preserve_current) and [`reinstate`](Self::reinstate), the same
/// pair as the database's and the code's.
///
/// Required: `current`, `backup`, `list`, `verify`, `restore`, `diff`. Provided:
/// `preserve_current`, `reinstate`, `remove`. New capabilities are added as provided methods.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// The live configuration as a version. Does not store anything.
    async fn current(&self) -> Result<ConfigVersion, AdapterError>;

    /// Stores a copy of the live configuration and returns its version.
    async fn backup(&self, label: &str) -> Result<ConfigVersion, AdapterError>;

    /// Stored versions, newest first.
    async fn list(&self) -> Result<Vec<ConfigVersion>, AdapterError>;

    /// Parses a version and checks required keys. A syntax error names the line, never the
    /// value. Changes nothing.
    async fn verify(&self, version: &ConfigVersionId) -> Result<ConfigCheck, AdapterError>;

    /// Makes a version live, atomically (the live config is always the old or the new one,
    /// never partial). Idempotent.
    async fn restore(&self, version: &ConfigVersionId) -> Result<(), AdapterError>;

    /// Keeps the live configuration aside before a rollback changes it (the emergency
    /// backup) and returns its version.
    ///
    /// Optional: the provided version is a [`backup`](Self::backup).
    async fn preserve_current(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        self.backup(label).await
    }

    /// Puts back what [`preserve_current`](Self::preserve_current) kept (the failure
    /// policy's undo of the config). Idempotent.
    ///
    /// Optional: the provided version restores it.
    async fn reinstate(&self, preserved: &ConfigVersion) -> Result<(), AdapterError> {
        self.restore(&preserved.id).await
    }

    /// Keys added, removed and changed from `a` to `b`; values are never shown.
    async fn diff(&self, a: &ConfigVersionId, b: &ConfigVersionId) -> Result<ConfigDiff, AdapterError>;

    /// Deletes a stored version (never the live config); deleting one that is not there is
    /// not an error.
    ///
    /// Optional: the provided version says [`Unsupported`](crate::ErrorKind::Unsupported),
    /// and pruning keeps the backups.
    async fn remove(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        let _ = version;
        Err(AdapterError::unsupported(
            "this config store cannot delete stored versions",
        ))
    }
}

/// Forwards every method, provided ones included, so that an `Arc` of an adapter (or an
/// `Arc<dyn ConfigStore>`) is one too: builders take `impl ConfigStore`, and callers that keep a
/// handle (tests reading a fake's calls) pass a clone of their `Arc`.
#[async_trait]
impl<T: ConfigStore + ?Sized> ConfigStore for std::sync::Arc<T> {
    async fn current(&self) -> Result<ConfigVersion, AdapterError> {
        (**self).current().await
    }

    async fn backup(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        (**self).backup(label).await
    }

    async fn list(&self) -> Result<Vec<ConfigVersion>, AdapterError> {
        (**self).list().await
    }

    async fn verify(&self, version: &ConfigVersionId) -> Result<ConfigCheck, AdapterError> {
        (**self).verify(version).await
    }

    async fn restore(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        (**self).restore(version).await
    }

    async fn preserve_current(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        (**self).preserve_current(label).await
    }

    async fn reinstate(&self, preserved: &ConfigVersion) -> Result<(), AdapterError> {
        (**self).reinstate(preserved).await
    }

    async fn diff(&self, a: &ConfigVersionId, b: &ConfigVersionId) -> Result<ConfigDiff, AdapterError> {
        (**self).diff(a, b).await
    }

    async fn remove(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        (**self).remove(version).await
    }
}
