use crate::domain::{ConfigCheck, ConfigDiff, ConfigVersion};
use crate::error::AdapterError;
use crate::ids::ConfigVersionId;
use async_trait::async_trait;

/// Versions of the app's configuration (an env file, a config map).
///
/// Values are secrets: no method may put one into an error, a log line or a returned value.
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

    /// Keys added, removed and changed from `a` to `b`; values are never shown.
    async fn diff(&self, a: &ConfigVersionId, b: &ConfigVersionId) -> Result<ConfigDiff, AdapterError>;
}
