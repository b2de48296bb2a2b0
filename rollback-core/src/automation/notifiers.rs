//! Notifiers: the tracing log, and (feature `http`) a webhook that POSTs the notice as JSON.
//! A recording notifier for tests is in `rollback-testkit`.

use crate::domain::{Notice, Severity};
use crate::error::AdapterError;
use crate::traits::Notifier;
use async_trait::async_trait;

/// Writes each notice to the `tracing` log (warn for high and critical, info otherwise).
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingNotifier;

#[async_trait]
impl Notifier for TracingNotifier {
    async fn notify(&self, notice: &Notice) -> Result<(), AdapterError> {
        if notice.severity >= Severity::High {
            tracing::warn!(audience = %notice.audience, subject = %notice.subject, body = %notice.body, "notice");
        } else {
            tracing::info!(audience = %notice.audience, subject = %notice.subject, body = %notice.body, "notice");
        }
        Ok(())
    }
}

#[cfg(feature = "http")]
pub use webhook::WebhookNotifier;

#[cfg(feature = "http")]
mod webhook {
    use super::*;
    use crate::error::ErrorKind;
    use crate::secret::redact_url;
    use std::time::Duration;

    /// POSTs each notice as JSON (the [`Notice`] fields) to a URL; a non-2xx answer is an
    /// error naming the status. The URL (which often holds a token) is never shown.
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[derive(Clone)]
    pub struct WebhookNotifier {
        client: reqwest::Client,
        url: reqwest::Url,
        shown: String,
        timeout: Duration,
    }

    impl std::fmt::Debug for WebhookNotifier {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("WebhookNotifier")
                .field("url", &self.shown)
                .finish_non_exhaustive()
        }
    }

    impl WebhookNotifier {
        /// A webhook at `url` with a `timeout` per notice.
        pub fn new(url: &str, timeout: Duration) -> Result<Self, AdapterError> {
            // Webhook URLs carry their token in the path (Slack), the user info or the
            // query: only the scheme, host and port are ever shown.
            let url = reqwest::Url::parse(url).map_err(|e| {
                AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!("the webhook URL ({}) is not a URL: {e}", redact_url(url)),
                )
            })?;
            let shown = format!(
                "{}://{}{}/[redacted]",
                url.scheme(),
                url.host_str().unwrap_or("[no host]"),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            );
            let client = crate::automation::probes::http_client(timeout)?;
            Ok(Self {
                client,
                url,
                shown,
                timeout,
            })
        }
    }

    #[async_trait]
    impl Notifier for WebhookNotifier {
        async fn notify(&self, notice: &Notice) -> Result<(), AdapterError> {
            let body = serde_json::to_vec(notice).map_err(|e| {
                AdapterError::new(ErrorKind::Failed, format!("could not encode the notice: {e}"))
            })?;
            let request = self
                .client
                .post(self.url.clone())
                .header("content-type", "application/json")
                .body(body)
                .send();
            match tokio::time::timeout(self.timeout, request).await {
                Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
                Ok(Ok(resp)) => Err(AdapterError::new(
                    ErrorKind::Failed,
                    format!("webhook {} answered HTTP {}", self.shown, resp.status().as_u16()),
                )),
                Ok(Err(e)) if e.is_connect() => Err(AdapterError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "webhook {} is unreachable (connection refused): check the URL",
                        self.shown
                    ),
                )),
                Ok(Err(e)) if !e.is_timeout() => Err(AdapterError::new(
                    ErrorKind::Failed,
                    format!("webhook {} failed: {}", self.shown, e.without_url()),
                )),
                _ => Err(AdapterError::timeout(format!(
                    "webhook {} did not answer within {} ms",
                    self.shown,
                    self.timeout.as_millis()
                ))),
            }
        }
    }
}
