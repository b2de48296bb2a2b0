//! Health probes: SQL over [`DatabaseSnapshot::ping`], and (feature `http`) an HTTP or HTTPS
//! GET that expects a 2xx, the runbook's `curl -f http://localhost:3000/api/health`.

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
pub use http::{HttpProbe, HttpProbeBuilder};

#[cfg(feature = "http")]
mod http {
    use super::*;
    use crate::automation::http_client::{self, RootCa};
    use crate::error::{AdapterError, ErrorKind};
    use crate::secret::redact_url;
    use std::path::PathBuf;

    /// `GET url`, healthy on a 2xx within the timeout. HTTP or HTTPS (rustls, trusting
    /// Mozilla's root CAs and the CAs given to [`HttpProbeBuilder::root_ca_pem`] or
    /// [`HttpProbeBuilder::root_ca_file`]).
    ///
    /// An unhealthy result's detail says why: `HTTP 503`, `no answer within 2000 ms`,
    /// `connection refused or unreachable (..)`, or `TLS handshake failed: ..` naming the
    /// certificate problem (an unknown CA, a host name the certificate does not list, an
    /// expired certificate).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rollback_core::AdapterError> {
    /// use rollback_core::{HealthProbe, HttpProbe};
    /// use std::time::Duration;
    /// let probe = HttpProbe::new("http://localhost:3000/api/health", Duration::from_secs(2))?;
    /// let result = probe.probe().await;
    /// println!("{} healthy={} in {:?}: {}", result.probe, result.healthy, result.latency, result.detail);
    ///
    /// // An internal endpoint whose certificate is signed by the company's CA.
    /// let internal = HttpProbe::builder("https://app.internal:8443/health", Duration::from_secs(2))
    ///     .root_ca_file("/etc/ssl/company-ca.pem")
    ///     .build()?;
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

    impl std::fmt::Debug for HttpProbe {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("HttpProbe")
                .field("url", &self.shown)
                .field("timeout", &self.timeout)
                .finish_non_exhaustive()
        }
    }

    impl HttpProbe {
        /// A probe of `url` (credentials in it are never shown) with a `timeout`, trusting
        /// the built-in root CAs: `HttpProbe::builder(url, timeout).build()`.
        pub fn new(url: &str, timeout: Duration) -> Result<Self, AdapterError> {
            Self::builder(url, timeout).build()
        }

        /// A probe of `url` with a `timeout`, to be given more settings (a private CA).
        pub fn builder(url: impl Into<String>, timeout: Duration) -> HttpProbeBuilder {
            HttpProbeBuilder {
                url: url.into(),
                timeout,
                cas: Vec::new(),
            }
        }
    }

    /// Settings of an [`HttpProbe`]; [`build`](HttpProbeBuilder::build) checks them.
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[derive(Clone)]
    pub struct HttpProbeBuilder {
        url: String,
        timeout: Duration,
        cas: Vec<RootCa>,
    }

    impl std::fmt::Debug for HttpProbeBuilder {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("HttpProbeBuilder")
                .field("url", &redact_url(&self.url))
                .field("timeout", &self.timeout)
                .field("root_cas", &self.cas)
                .finish()
        }
    }

    impl HttpProbeBuilder {
        /// Also trusts the CA certificate(s) in `pem` (one or more `-----BEGIN
        /// CERTIFICATE-----` blocks), e.g. an internal CA's. May be called more than once.
        pub fn root_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
            self.cas.push(RootCa::Pem(pem.into()));
            self
        }

        /// Also trusts the CA certificate(s) in the PEM file at `path`, read by
        /// [`build`](HttpProbeBuilder::build). May be called more than once.
        pub fn root_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
            self.cas.push(RootCa::File(path.into()));
            self
        }

        /// The probe. Fails when the URL is not an `http` or `https` URL, or when a CA
        /// cannot be read or holds no valid certificate (the error names the file).
        ///
        /// Reads the CA files: build probes when the program starts, not on a runtime's
        /// thread in the middle of async work.
        pub fn build(self) -> Result<HttpProbe, AdapterError> {
            let url = reqwest::Url::parse(&self.url).map_err(|e| {
                // Not shown: a URL that does not parse cannot be split into safe parts.
                AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!("the health URL is not a URL: {e}"),
                )
            })?;
            let shown = redact_url(&self.url);
            if !matches!(url.scheme(), "http" | "https") {
                return Err(AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!("health URL {shown} is not an http:// or https:// URL"),
                ));
            }
            let client = http_client::client(self.timeout, &self.cas)
                .map_err(|e| e.context(format_args!("the health probe of {shown}")))?;
            Ok(HttpProbe {
                client,
                url,
                shown,
                timeout: self.timeout,
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
            let no_answer = || format!("no answer within {} ms", self.timeout.as_millis());
            let (healthy, detail) = match tokio::time::timeout(self.timeout, request).await {
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    (status.is_success(), format!("HTTP {}", status.as_u16()))
                }
                Ok(Err(e)) => match http_client::describe_failure(&e) {
                    Some(failure) => (false, failure.detail),
                    None => (false, no_answer()),
                },
                Err(_) => (false, no_answer()),
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
