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
