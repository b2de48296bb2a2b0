use crate::domain::MetricsSample;
use crate::error::AdapterError;
use crate::ids::AppName;
use async_trait::async_trait;

/// Reads the app's error rate, memory and CPU, for the watchdog's rules.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait MetricsSource: Send + Sync {
    /// One sample now; fields the source cannot measure are `None`.
    async fn sample(&self, app: &AppName) -> Result<MetricsSample, AdapterError>;
}
