use crate::domain::ProbeResult;
use async_trait::async_trait;

/// Tells whether the app is healthy (an HTTP GET expecting 2xx, a SQL `SELECT 1`).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// The probe's name for reports, e.g. `"GET http://localhost:3000/api/health"`.
    fn name(&self) -> String;

    /// Probes once, within the probe's own timeout. Never fails: an unreachable app is an
    /// unhealthy result with the error in `detail`.
    async fn probe(&self) -> ProbeResult;

    /// The same probe over every part but `except` (a fleet's hosts, named as in
    /// [`AdapterError::parts`](crate::AdapterError::parts)), for judging the health of the
    /// parts a recovery served again with while others are unreachable.
    ///
    /// Optional: the provided version returns `None`: the probe does not look at parts (a
    /// balancer's address, a SQL probe) and is used as it is.
    fn without_parts(&self, except: &[String]) -> Option<std::sync::Arc<dyn HealthProbe>> {
        let _ = except;
        None
    }
}

/// Forwards every method, provided ones included, so that an `Arc` of an adapter (or an
/// `Arc<dyn HealthProbe>`) is one too: builders take `impl HealthProbe`, and callers that keep a
/// handle (tests reading a fake's calls) pass a clone of their `Arc`.
#[async_trait]
impl<T: HealthProbe + ?Sized> HealthProbe for std::sync::Arc<T> {
    fn name(&self) -> String {
        (**self).name()
    }

    async fn probe(&self) -> ProbeResult {
        (**self).probe().await
    }

    fn without_parts(&self, except: &[String]) -> Option<std::sync::Arc<dyn HealthProbe>> {
        (**self).without_parts(except)
    }
}
