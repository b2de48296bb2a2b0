use crate::domain::Notice;
use crate::error::AdapterError;
use async_trait::async_trait;

/// Sends notices of the communication plan (a chat channel, a webhook, a status page).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers one notice, within the notifier's timeout.
    async fn notify(&self, notice: &Notice) -> Result<(), AdapterError>;
}

/// Forwards every method, provided ones included, so that an `Arc` of an adapter (or an
/// `Arc<dyn Notifier>`) is one too: builders take `impl Notifier`, and callers that keep a
/// handle (tests reading a fake's calls) pass a clone of their `Arc`.
#[async_trait]
impl<T: Notifier + ?Sized> Notifier for std::sync::Arc<T> {
    async fn notify(&self, notice: &Notice) -> Result<(), AdapterError> {
        (**self).notify(notice).await
    }
}
