//! Health probes: SQL over [`DatabaseSnapshot::ping`], and (feature `http`) an HTTP GET that
//! expects a 2xx, the runbook's `curl -f http://localhost:3000/api/health`.

use crate::domain::ProbeResult;
use crate::traits::{DatabaseSnapshot, HealthProbe};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Healthy when the database answers its ping within the timeout.
pub struct SqlProbe {
    database: Arc<dyn DatabaseSnapshot>,
    timeout: Duration,
}

impl SqlProbe {
    /// A probe of `database` with a `timeout`.
    pub fn new(database: impl DatabaseSnapshot + 'static, timeout: Duration) -> Self {
        Self {
            database: Arc::new(database),
            timeout,
        }
    }
}

impl std::fmt::Debug for SqlProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database adapter is not shown: its own Debug is not asked for.
        f.debug_struct("SqlProbe")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl HealthProbe for SqlProbe {
    fn name(&self) -> String {
        "SQL ping".into()
    }

    async fn probe(&self) -> ProbeResult {
        let started = tokio::time::Instant::now();
        let (healthy, detail) = match tokio::time::timeout(self.timeout, self.database.ping()).await {
            Ok(Ok(rtt)) => (true, format!("answered in {} ms", rtt.as_millis())),
            Ok(Err(e)) => (false, e.to_string()),
            Err(_) => (false, format!("no answer within {} ms", self.timeout.as_millis())),
        };
        ProbeResult {
            probe: self.name(),
            healthy,
            latency: started.elapsed(),
            detail,
        }
    }
}

#[cfg(feature = "http")]
pub(crate) use http::http_client;
#[cfg(feature = "http")]
pub use http::HttpProbe;

#[cfg(feature = "http")]
mod http {
    use super::*;
    use crate::error::{AdapterError, ErrorKind};
    use crate::secret::redact_url;

    /// `GET url`, healthy on a 2xx within the timeout. Built on reqwest (plain HTTP).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rollback_core::AdapterError> {
    /// use rollback_core::{HealthProbe, HttpProbe};
    /// let probe = HttpProbe::new("http://localhost:3000/api/health", std::time::Duration::from_secs(2))?;
    /// let result = probe.probe().await;
    /// println!("{} healthy={} in {:?}: {}", result.probe, result.healthy, result.latency, result.detail);
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[derive(Clone)]
    pub struct HttpProbe {
        client: reqwest::Client,
        url: reqwest::Url,
        shown: String,
        timeout: Duration,
    }

    /// A plain-HTTP client whose every request gives up after `timeout`.
    pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, AdapterError> {
        reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| AdapterError::new(ErrorKind::Failed, format!("could not build an HTTP client: {e}")))
    }

    impl std::fmt::Debug for HttpProbe {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("HttpProbe")
                .field("url", &self.shown)
                .field("timeout", &self.timeout)
                .finish_non_exhaustive()
        }
    }

    impl HttpProbe {
        /// A probe of `url` (credentials in it are never shown) with a `timeout`.
        pub fn new(url: &str, timeout: Duration) -> Result<Self, AdapterError> {
            let shown = redact_url(url);
            let url = reqwest::Url::parse(url).map_err(|e| {
                AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!("health URL {shown} is not a URL: {e}"),
                )
            })?;
            let client = http_client(timeout)?;
            Ok(Self {
                client,
                url,
                shown,
                timeout,
            })
        }
    }

    #[async_trait]
    impl HealthProbe for HttpProbe {
        fn name(&self) -> String {
            format!("GET {}", self.shown)
        }

        async fn probe(&self) -> ProbeResult {
            let started = tokio::time::Instant::now();
            let request = self.client.get(self.url.clone()).send();
            let (healthy, detail) = match tokio::time::timeout(self.timeout, request).await {
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    (status.is_success(), format!("HTTP {}", status.as_u16()))
                }
                Ok(Err(e)) if e.is_timeout() => {
                    (false, format!("no answer within {} ms", self.timeout.as_millis()))
                }
                Ok(Err(e)) if e.is_connect() => (false, "connection refused or unreachable".to_string()),
                Ok(Err(e)) => (false, format!("request failed: {}", e.without_url())),
                Err(_) => (false, format!("no answer within {} ms", self.timeout.as_millis())),
            };
            ProbeResult {
                probe: self.name(),
                healthy,
                latency: started.elapsed(),
                detail,
            }
        }
    }
}
