//! [`MetricsError`]: everything this crate's sources can fail with, each converted into an
//! [`AdapterError`] of the right [`ErrorKind`] (keeping the `MetricsError` as its source).

use rollback_core::{AdapterError, ErrorKind};
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong, named so that a human knows what to check.
///
/// ```
/// use rollback_core::{AdapterError, ErrorKind};
/// use rollback_metrics::MetricsError;
/// let e = MetricsError::InvalidConfig("the rate window must be at least 1 s".into());
/// assert_eq!(e.kind(), ErrorKind::InvalidInput);
/// let adapter: AdapterError = e.into();
/// assert_eq!(adapter.kind(), ErrorKind::InvalidInput);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The source was configured with something it cannot use.
    #[error("invalid metrics configuration: {0}")]
    InvalidConfig(String),
    /// Prometheus could not be reached (connection refused, DNS, reset).
    #[error("Prometheus at {url} cannot be reached: {source}; check the URL and that Prometheus runs")]
    Unreachable {
        /// The server, credentials redacted.
        url: String,
        /// What the HTTP client said, with the URL (which may hold credentials) removed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Prometheus did not answer within the timeout.
    #[error("Prometheus at {url} did not answer the {what} query within {} ms: raise the timeout or simplify the query", .after.as_millis())]
    Timeout {
        /// The server, credentials redacted.
        url: String,
        /// Which query (`error rate`, `latency p95`).
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// Prometheus answered with an HTTP status that is not a query result.
    #[error("Prometheus at {url} answered HTTP {status} to the {what} query: {detail}")]
    HttpStatus {
        /// The server, credentials redacted.
        url: String,
        /// Which query.
        what: &'static str,
        /// The status code.
        status: u16,
        /// The start of the body, or why it is missing.
        detail: String,
    },
    /// Prometheus refused the query (bad PromQL, an evaluation error or timeout).
    #[error("Prometheus refused the {what} query `{query}` ({error_type}): {message}")]
    QueryRejected {
        /// Which query.
        what: &'static str,
        /// The PromQL sent.
        query: String,
        /// Prometheus' `errorType` (`bad_data`, `execution`, `timeout`, ...).
        error_type: String,
        /// Prometheus' `error`.
        message: String,
    },
    /// The query ran but returned no series: the metric, the label selector or the scrape is
    /// not what the query expects.
    #[error("the {what} query `{query}` returned no data: check that Prometheus scrapes the app (its targets page), that the metric names exist (the app exposes them on /metrics), and that the label selector `{selector}` matches its series; or set the query explicitly")]
    NoData {
        /// Which query.
        what: &'static str,
        /// The PromQL sent.
        query: String,
        /// The label selector in use (may be empty).
        selector: String,
    },
    /// The query returned more than one series: it must aggregate to one value.
    #[error("the {what} query `{query}` returned {count} series, not one: aggregate it (wrap it in `sum(...)` or narrow the label selector)")]
    TooManySeries {
        /// Which query.
        what: &'static str,
        /// The PromQL sent.
        query: String,
        /// How many series came back.
        count: usize,
    },
    /// Prometheus' answer could not be read as a query result.
    #[error("Prometheus at {url} sent an answer to the {what} query that is not a query result: {reason}; is the URL Prometheus' (or a compatible API's) base URL?")]
    Malformed {
        /// The server, credentials redacted.
        url: String,
        /// Which query.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The access log does not exist (and no earlier copy of it is open).
    #[error("access log `{path}` does not exist: check the path, and that the app (or its proxy) writes it")]
    LogMissing {
        /// The configured path.
        path: PathBuf,
    },
    /// The access log could not be read.
    #[error("access log `{path}`: {action} failed: {source}")]
    LogIo {
        /// The configured path.
        path: PathBuf,
        /// What was being done (`open`, `read`, `stat`).
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Every line read was skipped as not in the configured format, and the window is empty.
    #[error("access log `{path}`: none of the {lines} lines read is in the configured format ({format}): check the format (and, for JSON lines, the field names)")]
    LogUnparseable {
        /// The configured path.
        path: PathBuf,
        /// The configured format's name.
        format: &'static str,
        /// How many lines were read.
        lines: usize,
    },
    /// Reading the access log took longer than the timeout.
    #[error("reading access log `{path}` took longer than {} ms: the log grows faster than it can be read, or the disk hangs", .after.as_millis())]
    LogTimeout {
        /// The configured path.
        path: PathBuf,
        /// The timeout.
        after: Duration,
    },
    /// The reading task panicked or was cancelled.
    #[error("the access-log reading task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl MetricsError {
    /// The [`ErrorKind`] the orchestrator and the watchdog decide on.
    ///
    /// ```
    /// use rollback_core::ErrorKind;
    /// use rollback_metrics::MetricsError;
    /// let e = MetricsError::NoData { what: "error rate", query: "up".into(), selector: String::new() };
    /// assert_eq!(e.kind(), ErrorKind::NotFound);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            MetricsError::InvalidConfig(_)
            | MetricsError::TooManySeries { .. }
            | MetricsError::LogUnparseable { .. } => ErrorKind::InvalidInput,
            MetricsError::QueryRejected { error_type, .. } => match error_type.as_str() {
                "bad_data" => ErrorKind::InvalidInput,
                "timeout" | "canceled" => ErrorKind::Timeout,
                "unavailable" => ErrorKind::Unavailable,
                _ => ErrorKind::Failed,
            },
            MetricsError::Unreachable { .. } => ErrorKind::Unavailable,
            MetricsError::Timeout { .. } | MetricsError::LogTimeout { .. } => ErrorKind::Timeout,
            MetricsError::HttpStatus { status, .. } => match status {
                401 | 403 => ErrorKind::PermissionDenied,
                404 => ErrorKind::NotFound,
                500..=599 => ErrorKind::Unavailable,
                _ => ErrorKind::Failed,
            },
            MetricsError::NoData { .. } | MetricsError::LogMissing { .. } => ErrorKind::NotFound,
            MetricsError::LogIo { source, .. } => ErrorKind::from_io(source.kind()),
            MetricsError::Malformed { .. } | MetricsError::Task(_) => ErrorKind::Failed,
        }
    }
}

impl From<MetricsError> for AdapterError {
    fn from(e: MetricsError) -> Self {
        AdapterError::new(e.kind(), e.to_string()).with_source(e)
    }
}
