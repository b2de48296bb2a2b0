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

/// Forwards every method, provided ones included, so that an `Arc` of an adapter (or an
/// `Arc<dyn MetricsSource>`) is one too: builders take `impl MetricsSource`, and callers that keep a
/// handle (tests reading a fake's calls) pass a clone of their `Arc`.
#[async_trait]
impl<T: MetricsSource + ?Sized> MetricsSource for std::sync::Arc<T> {
    async fn sample(&self, app: &AppName) -> Result<MetricsSample, AdapterError> {
        (**self).sample(app).await
    }
}
