//! Notifiers: the tracing log, and (feature `http`) a webhook that POSTs the notice as JSON:
//! a generic schema, Slack's incoming-webhook message or a PagerDuty Events API v2 event.
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
pub use webhook::{WebhookNotifier, WebhookNotifierBuilder};

#[cfg(feature = "http")]
mod webhook {
    use super::*;
    use crate::automation::http_client::{self, RootCa};
    use crate::automation::webhook_format::WebhookFormat;
    use crate::error::ErrorKind;
    use crate::secret::{redact_text, Secret};
    use std::path::PathBuf;
    use std::time::Duration;

    /// POSTs each notice to a URL as JSON in a [`WebhookFormat`]: the generic schema
    /// (the default), Slack's incoming-webhook message or a PagerDuty Events API v2 event.
    /// HTTP or HTTPS (rustls, trusting Mozilla's root CAs and the CAs given to
    /// [`WebhookNotifierBuilder::root_ca_pem`] or [`WebhookNotifierBuilder::root_ca_file`]).
    ///
    /// A non-2xx answer is an error naming the status and the start of what the receiver
    /// said (`HTTP 400: invalid_payload`). The URL (which often holds a token) and
    /// PagerDuty's routing key are never shown: errors and `Debug` name the scheme, host
    /// and port only.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), rollback_core::AdapterError> {
    /// use rollback_core::{Secret, WebhookFormat, WebhookNotifier};
    /// use std::time::Duration;
    /// let timeout = Duration::from_secs(5);
    ///
    /// // The generic JSON body (schema `rollback.notice/1`) to an internal receiver.
    /// let internal = WebhookNotifier::builder("https://hooks.internal/rollback", timeout)
    ///     .root_ca_file("/etc/ssl/company-ca.pem")
    ///     .build()?;
    ///
    /// // Slack: the URL is the secret.
    /// let slack_url = Secret::new(std::env::var("SLACK_WEBHOOK_URL").unwrap_or_default());
    /// let slack = WebhookNotifier::builder(slack_url, timeout)
    ///     .format(WebhookFormat::Slack)
    ///     .build()?;
    ///
    /// // PagerDuty: the routing key is the secret; events go to PagerDuty's endpoint.
    /// let key = Secret::new(std::env::var("PAGERDUTY_ROUTING_KEY").unwrap_or_default());
    /// let pagerduty = WebhookNotifier::pagerduty(key, timeout).build()?;
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[derive(Clone)]
    pub struct WebhookNotifier {
        client: reqwest::Client,
        url: reqwest::Url,
        shown: String,
        format: WebhookFormat,
        source: String,
        timeout: Duration,
    }

    impl std::fmt::Debug for WebhookNotifier {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("WebhookNotifier")
                .field("url", &self.shown)
                .field("format", &self.format)
                .field("timeout", &self.timeout)
                .finish_non_exhaustive()
        }
    }

    impl WebhookNotifier {
        /// A webhook at `url` with a `timeout` per notice, sending the generic JSON body:
        /// `WebhookNotifier::builder(url, timeout).build()`.
        pub fn new(url: &str, timeout: Duration) -> Result<Self, AdapterError> {
            Self::builder(url, timeout).build()
        }

        /// A webhook at `url` (a secret: it often holds a token) with a `timeout` per
        /// notice, to be given more settings (a format, a private CA).
        pub fn builder(url: impl Into<Secret>, timeout: Duration) -> WebhookNotifierBuilder {
            WebhookNotifierBuilder {
                url: url.into(),
                timeout,
                format: WebhookFormat::default(),
                cas: Vec::new(),
                source: None,
            }
        }

        /// PagerDuty Events API v2 events for the integration with `routing_key`, sent to
        /// [`WebhookFormat::PAGERDUTY_EVENTS_URL`] (another with
        /// [`url`](WebhookNotifierBuilder::url)).
        pub fn pagerduty(routing_key: impl Into<Secret>, timeout: Duration) -> WebhookNotifierBuilder {
            Self::builder(WebhookFormat::PAGERDUTY_EVENTS_URL, timeout)
                .format(WebhookFormat::pagerduty(routing_key))
        }

        /// The body it sends.
        pub fn format(&self) -> &WebhookFormat {
            &self.format
        }

        /// `text` with every secret this notifier holds replaced: its URL, the URL's
        /// path, query and user info, and the routing key.
        fn scrub(&self, text: &str) -> String {
            let mut secrets: Vec<String> = vec![self.url.as_str().to_owned()];
            let path = self.url.path();
            if path.len() > 1 {
                secrets.push(path.to_owned());
            }
            if let Some(query) = self.url.query() {
                secrets.push(query.to_owned());
            }
            if !self.url.username().is_empty() {
                secrets.push(self.url.username().to_owned());
            }
            if let Some(password) = self.url.password() {
                secrets.push(password.to_owned());
            }
            if let WebhookFormat::PagerDuty { routing_key } = &self.format {
                if !routing_key.is_empty() {
                    secrets.push(routing_key.expose().to_owned());
                }
            }
            let mut text = text.to_owned();
            for secret in secrets {
                text = text.replace(&secret, "[redacted]");
            }
            redact_text(&text)
        }
    }

    /// Settings of a [`WebhookNotifier`]; [`build`](WebhookNotifierBuilder::build) checks
    /// them.
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[derive(Clone)]
    pub struct WebhookNotifierBuilder {
        url: Secret,
        timeout: Duration,
        format: WebhookFormat,
        cas: Vec<RootCa>,
        source: Option<String>,
    }

    impl std::fmt::Debug for WebhookNotifierBuilder {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("WebhookNotifierBuilder")
                .field("url", &self.url)
                .field("format", &self.format)
                .field("timeout", &self.timeout)
                .field("root_cas", &self.cas)
                .field("source", &self.source)
                .finish()
        }
    }

    impl WebhookNotifierBuilder {
        /// What to send (default: [`WebhookFormat::Json`]).
        pub fn format(mut self, format: WebhookFormat) -> Self {
            self.format = format;
            self
        }

        /// Where to send it instead (e.g. PagerDuty's EU endpoint, or a proxy).
        pub fn url(mut self, url: impl Into<Secret>) -> Self {
            self.url = url.into();
            self
        }

        /// Also trusts the CA certificate(s) in `pem` (one or more `-----BEGIN
        /// CERTIFICATE-----` blocks), e.g. an internal CA's. May be called more than once.
        pub fn root_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
            self.cas.push(RootCa::Pem(pem.into()));
            self
        }

        /// Also trusts the CA certificate(s) in the PEM file at `path`, read by
        /// [`build`](WebhookNotifierBuilder::build). May be called more than once.
        pub fn root_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
            self.cas.push(RootCa::File(path.into()));
            self
        }

        /// The machine a PagerDuty event names as its `source` (default: this host's name).
        pub fn source(mut self, source: impl Into<String>) -> Self {
            self.source = Some(source.into());
            self
        }

        /// The notifier. Fails when the URL is not an `http` or `https` URL, when the
        /// PagerDuty routing key is empty, or when a CA cannot be read or holds no valid
        /// certificate (the error names the file).
        ///
        /// Reads the CA files (and, for PagerDuty without a [`source`](Self::source), the
        /// host name): build notifiers when the program starts, not on a runtime's thread
        /// in the middle of async work.
        pub fn build(self) -> Result<WebhookNotifier, AdapterError> {
            // Webhook URLs carry their token in the path (Slack), the user info or the
            // query: only the scheme, host and port are ever shown.
            let url = reqwest::Url::parse(self.url.expose()).map_err(|e| {
                AdapterError::new(
                    ErrorKind::InvalidInput,
                    // Not even redacted: a URL that does not parse cannot be told apart
                    // into the parts that are safe to show.
                    format!("the webhook URL is not a URL ({e}); check the variable that holds it"),
                )
            })?;
            let shown = format!(
                "{}://{}{}/[redacted]",
                url.scheme(),
                url.host_str().unwrap_or("[no host]"),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            );
            if !matches!(url.scheme(), "http" | "https") {
                return Err(AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!("the webhook URL {shown} is not an http:// or https:// URL"),
                ));
            }
            if let WebhookFormat::PagerDuty { routing_key } = &self.format {
                if routing_key.expose().trim().is_empty() {
                    return Err(AdapterError::new(
                        ErrorKind::InvalidInput,
                        "the PagerDuty routing key is empty: give the integration key of the \
                         service's Events API v2 integration",
                    ));
                }
            }
            let source = match (&self.format, self.source) {
                (_, Some(source)) => source,
                (WebhookFormat::PagerDuty { .. }, None) => crate::sys::host_name(),
                (_, None) => String::new(),
            };
            let client = http_client::client(self.timeout, &self.cas)
                .map_err(|e| e.context(format_args!("the webhook {shown}")))?;
            Ok(WebhookNotifier {
                client,
                url,
                shown,
                format: self.format,
                source,
                timeout: self.timeout,
            })
        }
    }

    /// How much of a refusing receiver's answer goes into the error.
    const ANSWER_SHOWN: usize = 200;

    #[async_trait]
    impl Notifier for WebhookNotifier {
        async fn notify(&self, notice: &Notice) -> Result<(), AdapterError> {
            let body = serde_json::to_vec(&self.format.body(notice, &self.source)).map_err(|e| {
                AdapterError::new(
                    ErrorKind::Failed,
                    format!("could not encode the notice as {}: {e}", self.format.name()),
                )
            })?;
            let exchange = async {
                let resp = self
                    .client
                    .post(self.url.clone())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = resp.status();
                if status.is_success() {
                    return Ok((status, String::new()));
                }
                // What the receiver says is why (Slack: `invalid_payload`, PagerDuty: a
                // JSON list of errors); an unreadable answer is no reason to hide the status.
                let said = resp.text().await.unwrap_or_default();
                Ok::<_, reqwest::Error>((status, said))
            };
            match tokio::time::timeout(self.timeout, exchange).await {
                Ok(Ok((status, _))) if status.is_success() => Ok(()),
                Ok(Ok((status, said))) => {
                    let said: String = said.split_whitespace().collect::<Vec<_>>().join(" ");
                    let said: String = said.chars().take(ANSWER_SHOWN).collect();
                    let said = if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", self.scrub(&said))
                    };
                    Err(AdapterError::new(
                        ErrorKind::Failed,
                        format!(
                            "webhook {} ({}) answered HTTP {}{said}",
                            self.shown,
                            self.format.name(),
                            status.as_u16()
                        ),
                    ))
                }
                Ok(Err(e)) => match http_client::describe_failure(&e) {
                    Some(failure) => {
                        let what = match failure.kind {
                            ErrorKind::Unavailable => {
                                "is unreachable; check the URL and that the receiver is up"
                            }
                            _ => "failed",
                        };
                        Err(AdapterError::new(
                            failure.kind,
                            format!("webhook {} {what}: {}", self.shown, self.scrub(&failure.detail)),
                        )
                        .with_source(e.without_url()))
                    }
                    None => Err(self.timed_out()),
                },
                Err(_) => Err(self.timed_out()),
            }
        }
    }

    impl WebhookNotifier {
        fn timed_out(&self) -> AdapterError {
            AdapterError::timeout(format!(
                "webhook {} did not answer within {} ms",
                self.shown,
                self.timeout.as_millis()
            ))
        }
    }
}
