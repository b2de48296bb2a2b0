//! [`PrometheusMetrics`]: error rate and latency p95 from instant PromQL queries over
//! Prometheus' HTTP API (`GET /api/v1/query`).

use crate::error::MetricsError;
use async_trait::async_trait;
use rollback_core::secret::redact_url;
use rollback_core::{AdapterError, AppName, MetricsSample, MetricsSource};
use std::fmt;
use std::time::Duration;

/// The placeholder replaced by the sampled app's name (escaped for a PromQL string) in the
/// label selector and in custom queries.
///
/// ```
/// use rollback_core::AppName;
/// use rollback_metrics::{PrometheusMetrics, APP_PLACEHOLDER};
/// let p = PrometheusMetrics::builder("http://prometheus:9090")
///     .latency_p95_query(format!(r#"max(p95_seconds{{service="{APP_PLACEHOLDER}"}})"#))
///     .build()
///     .unwrap();
/// assert_eq!(p.latency_p95_query(&AppName::from("shop")).unwrap(), r#"max(p95_seconds{service="shop"})"#);
/// ```
pub const APP_PLACEHOLDER: &str = "$app";

const ERROR_RATE: &str = "error rate";
const LATENCY: &str = "latency p95";

/// Which query a field comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum QuerySpec {
    /// Built from the metric names, the selector and the rate window.
    Default,
    /// The caller's PromQL (`$app` replaced).
    Custom(String),
    /// Not queried: the field stays `None`.
    Off,
}

/// Builds a [`PrometheusMetrics`]; see [`PrometheusMetrics::builder`].
///
/// ```
/// use rollback_core::AppName;
/// use rollback_metrics::PrometheusMetrics;
/// // Go's promhttp names: `code` for the status, its own request counter and histogram.
/// let p = PrometheusMetrics::builder("http://prometheus:9090")
///     .requests_metric("promhttp_metric_handler_requests_total")
///     .status_label("code")
///     .duration_histogram("http_server_request_duration_seconds")
///     .selector(r#"service="$app""#)
///     .build()
///     .unwrap();
/// assert!(p.error_rate_query(&AppName::from("api")).unwrap().contains(r#"code=~"5..",service="api""#));
/// ```
#[derive(Clone)]
pub struct PrometheusMetricsBuilder {
    url: String,
    selector: String,
    requests_metric: String,
    status_label: String,
    duration_histogram: String,
    rate_window: Duration,
    error_rate: QuerySpec,
    latency: QuerySpec,
    timeout: Duration,
}

impl fmt::Debug for PrometheusMetricsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusMetricsBuilder")
            .field("url", &redact_url(&self.url))
            .field("selector", &self.selector)
            .field("rate_window", &self.rate_window)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A [`MetricsSource`] over Prometheus: each [`sample`](MetricsSource::sample) runs two
/// instant queries (`/api/v1/query`), one for the error rate (0.0..=1.0) and one for the
/// latency p95, each within the timeout (also sent to Prometheus as the query's own
/// `timeout`). Memory and CPU are left `None`: take them from the process manager.
///
/// The default queries, for the common names (`http_requests_total` with a `status` label,
/// the `http_request_duration_seconds` histogram), with `{S}` the label selector and `[W]`
/// the rate window (1 m by default):
///
/// ```text
/// (sum(rate(http_requests_total{status=~"5..",S}[W])) or vector(0)) / sum(rate(http_requests_total{S}[W]))
/// histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{S}[W])))
/// ```
///
/// The `or vector(0)` is there because an app that never served a 5xx has no 5xx series at
/// all, and the plain quotient would then return nothing instead of 0.
///
/// What the values mean: no traffic in the window makes the quotient `NaN`, reported as
/// `error_rate: None` (nothing measured: a rule neither fires nor resets on it); a p95 above
/// the histogram's highest finite bucket (`+Inf`) is reported as [`Duration::MAX`]. A query
/// that returns no series is the typed [`MetricsError::NoData`] naming the query and what to
/// check. When one query fails and the other answers, the sample carries what answered and
/// the failure is logged (a missing histogram must not blind the error-rate rule); when every
/// query fails, `sample` returns the error-rate query's error. [`check`](Self::check) is
/// the strict form for start-up: it fails on any query's error.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use rollback_core::{AppName, MetricsSource};
/// use rollback_metrics::PrometheusMetrics;
/// let prometheus = PrometheusMetrics::builder("http://127.0.0.1:9090")
///     .selector(r#"job="shop""#)
///     .timeout(std::time::Duration::from_secs(3))
///     .build()?;
/// let app = AppName::from("shop");
/// prometheus.check(&app).await?; // every query answers: the configuration is right
/// let sample = prometheus.sample(&app).await?;
/// tracing::info!(error_rate = ?sample.error_rate, p95 = ?sample.latency_p95, "shop");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PrometheusMetrics {
    client: reqwest::Client,
    query_url: reqwest::Url,
    shown: String,
    config: PrometheusMetricsBuilder,
}

impl fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusMetrics")
            .field("url", &self.shown)
            .field("selector", &self.config.selector)
            .field("rate_window", &self.config.rate_window)
            .field("timeout", &self.config.timeout)
            .finish_non_exhaustive()
    }
}

impl PrometheusMetricsBuilder {
    /// A builder for the Prometheus server at `url`: see [`PrometheusMetrics::builder`] for
    /// the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            selector: String::new(),
            requests_metric: "http_requests_total".into(),
            status_label: "status".into(),
            duration_histogram: "http_request_duration_seconds".into(),
            rate_window: Duration::from_secs(60),
            error_rate: QuerySpec::Default,
            latency: QuerySpec::Default,
            timeout: Duration::from_secs(5),
        }
    }

    /// The label matchers added to every metric of the default queries, in PromQL syntax
    /// without braces, e.g. `job="shop"` or `app="$app",env="prod"` (`$app` is replaced by the
    /// sampled app's name). Default: none (every series of the metric counts).
    pub fn selector(mut self, matchers: impl Into<String>) -> Self {
        self.selector = matchers.into();
        self
    }

    /// The request counter of the default error-rate query (default `http_requests_total`).
    pub fn requests_metric(mut self, name: impl Into<String>) -> Self {
        self.requests_metric = name.into();
        self
    }

    /// The counter's status-code label (default `status`; Go's promhttp uses `code`).
    pub fn status_label(mut self, name: impl Into<String>) -> Self {
        self.status_label = name.into();
        self
    }

    /// The histogram of the default latency query, without `_bucket` (default
    /// `http_request_duration_seconds`; its unit must be seconds).
    pub fn duration_histogram(mut self, name: impl Into<String>) -> Self {
        self.duration_histogram = name.into();
        self
    }

    /// The `rate()` window of the default queries (default 1 min; whole seconds, at least
    /// twice the scrape interval for `rate()` to see two samples).
    pub fn rate_window(mut self, window: Duration) -> Self {
        self.rate_window = window;
        self
    }

    /// Replaces the error-rate query: PromQL returning one value in 0.0..=1.0 (`$app` is
    /// replaced by the sampled app's name).
    pub fn error_rate_query(mut self, promql: impl Into<String>) -> Self {
        self.error_rate = QuerySpec::Custom(promql.into());
        self
    }

    /// Replaces the latency query: PromQL returning one value in seconds (`$app` is
    /// replaced by the sampled app's name).
    pub fn latency_p95_query(mut self, promql: impl Into<String>) -> Self {
        self.latency = QuerySpec::Custom(promql.into());
        self
    }

    /// Does not query latency (the app has no duration histogram): `latency_p95` stays `None`.
    pub fn without_latency(mut self) -> Self {
        self.latency = QuerySpec::Off;
        self
    }

    /// How long one query may take, end to end (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The source, after checking the URL, the names, the selector and the durations.
    pub fn build(self) -> Result<PrometheusMetrics, MetricsError> {
        let shown = redact_url(&self.url);
        let invalid = |what: String| Err(MetricsError::InvalidConfig(what));
        let base = match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            Ok(_) => return invalid(format!("Prometheus URL {shown} is not an http(s) URL")),
            Err(e) => return invalid(format!("Prometheus URL {shown} is not a URL: {e}")),
        };
        if base.scheme() == "https" {
            return invalid(format!(
                "Prometheus URL {shown}: https is not supported by this build (plain http only); \
                 reach Prometheus over http inside the network"
            ));
        }
        if self.selector.contains(['{', '}']) {
            return invalid(format!(
                "label selector `{}` must be the matchers only, without braces, e.g. job=\"shop\"",
                self.selector
            ));
        }
        for (what, name) in [
            ("requests metric", &self.requests_metric),
            ("status label", &self.status_label),
            ("duration histogram", &self.duration_histogram),
        ] {
            let ok = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            if !ok {
                return invalid(format!(
                    "{what} `{name}` is not a Prometheus metric or label name"
                ));
            }
        }
        if self.rate_window < Duration::from_secs(1) || self.rate_window.subsec_nanos() != 0 {
            return invalid(format!(
                "rate window {:?} must be whole seconds, at least 1 s",
                self.rate_window
            ));
        }
        if self.timeout.is_zero() {
            return invalid("the timeout must be above zero".to_string());
        }
        for q in [&self.error_rate, &self.latency] {
            if matches!(q, QuerySpec::Custom(s) if s.trim().is_empty()) {
                return invalid("a custom query is empty".to_string());
            }
        }
        if self.error_rate == QuerySpec::Off && self.latency == QuerySpec::Off {
            return invalid("no query left to run".to_string());
        }
        // `join` drops the last path segment unless the base ends in `/`: keep any prefix
        // Prometheus is served under (`--web.route-prefix`, a proxy path).
        let mut base = base;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let query_url = base.join("api/v1/query").map_err(|e| {
            MetricsError::InvalidConfig(format!("Prometheus URL {shown} cannot take a path: {e}"))
        })?;
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .build()
            .map_err(|e| MetricsError::InvalidConfig(format!("could not build an HTTP client: {e}")))?;
        Ok(PrometheusMetrics {
            client,
            query_url,
            shown,
            config: self,
        })
    }
}

/// `s` as the inside of a PromQL double-quoted string.
fn promql_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl PrometheusMetrics {
    /// A builder for the Prometheus server at `url` (its base URL, e.g.
    /// `http://127.0.0.1:9090`; credentials in it are never shown), with the default queries,
    /// no selector, a 1 min rate window and a 5 s timeout.
    ///
    /// ```
    /// use rollback_core::AppName;
    /// use rollback_metrics::PrometheusMetrics;
    /// let p = PrometheusMetrics::builder("http://127.0.0.1:9090")
    ///     .selector(r#"app="$app""#)
    ///     .rate_window(std::time::Duration::from_secs(120))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(
    ///     p.error_rate_query(&AppName::from("shop")).unwrap(),
    ///     r#"(sum(rate(http_requests_total{status=~"5..",app="shop"}[120s])) or vector(0)) / sum(rate(http_requests_total{app="shop"}[120s]))"#
    /// );
    /// assert!(PrometheusMetrics::builder("not a url").build().is_err());
    /// ```
    pub fn builder(url: impl Into<String>) -> PrometheusMetricsBuilder {
        PrometheusMetricsBuilder::new(url)
    }

    fn selector_for(&self, app: &AppName) -> String {
        self.config
            .selector
            .replace(APP_PLACEHOLDER, &promql_escape(app.as_str()))
    }

    /// The error-rate PromQL sent when sampling `app`; `None` when it is not queried.
    ///
    /// ```
    /// use rollback_core::AppName;
    /// use rollback_metrics::PrometheusMetrics;
    /// let p = PrometheusMetrics::builder("http://prometheus:9090")
    ///     .error_rate_query(r#"sum(rate(errors_total{app="$app"}[5m])) / sum(rate(requests_total{app="$app"}[5m]))"#)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(
    ///     p.error_rate_query(&AppName::from("shop")).unwrap(),
    ///     r#"sum(rate(errors_total{app="shop"}[5m])) / sum(rate(requests_total{app="shop"}[5m]))"#
    /// );
    /// ```
    pub fn error_rate_query(&self, app: &AppName) -> Option<String> {
        let c = &self.config;
        match &c.error_rate {
            QuerySpec::Off => None,
            QuerySpec::Custom(q) => Some(q.replace(APP_PLACEHOLDER, &promql_escape(app.as_str()))),
            QuerySpec::Default => {
                let sel = self.selector_for(app);
                let w = c.rate_window.as_secs();
                let errors = if sel.is_empty() {
                    format!("{}=~\"5..\"", c.status_label)
                } else {
                    format!("{}=~\"5..\",{sel}", c.status_label)
                };
                Some(format!(
                    "(sum(rate({m}{{{errors}}}[{w}s])) or vector(0)) / sum(rate({m}{{{sel}}}[{w}s]))",
                    m = c.requests_metric
                ))
            }
        }
    }

    /// The latency-p95 PromQL sent when sampling `app`; `None` when it is not queried.
    ///
    /// ```
    /// use rollback_core::AppName;
    /// use rollback_metrics::PrometheusMetrics;
    /// let p = PrometheusMetrics::builder("http://prometheus:9090").selector(r#"job="shop""#).build().unwrap();
    /// assert_eq!(
    ///     p.latency_p95_query(&AppName::from("shop")).unwrap(),
    ///     r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job="shop"}[60s])))"#
    /// );
    /// let off = PrometheusMetrics::builder("http://prometheus:9090").without_latency().build().unwrap();
    /// assert_eq!(off.latency_p95_query(&AppName::from("shop")), None);
    /// ```
    pub fn latency_p95_query(&self, app: &AppName) -> Option<String> {
        let c = &self.config;
        match &c.latency {
            QuerySpec::Off => None,
            QuerySpec::Custom(q) => Some(q.replace(APP_PLACEHOLDER, &promql_escape(app.as_str()))),
            QuerySpec::Default => Some(format!(
                "histogram_quantile(0.95, sum by (le) (rate({h}_bucket{{{sel}}}[{w}s])))",
                h = c.duration_histogram,
                sel = self.selector_for(app),
                w = c.rate_window.as_secs()
            )),
        }
    }

    /// Runs every configured query once for `app` and fails on the first error (no data, a
    /// refused query, an unreachable server): the strict check to run before arming a
    /// watchdog, where [`sample`](MetricsSource::sample) tolerates one failing query.
    pub async fn check(&self, app: &AppName) -> Result<(), MetricsError> {
        if let Some(q) = self.error_rate_query(app) {
            self.instant(ERROR_RATE, &q).await?;
        }
        if let Some(q) = self.latency_p95_query(app) {
            self.instant(LATENCY, &q).await?;
        }
        Ok(())
    }

    /// Both fields for `app`: see the type's documentation for partial failures.
    pub async fn read(&self, app: &AppName) -> Result<MetricsSample, MetricsError> {
        let error_q = self.error_rate_query(app);
        let latency_q = self.latency_p95_query(app);
        let (errors, latency) = tokio::join!(
            async {
                match &error_q {
                    Some(q) => Some(self.instant(ERROR_RATE, q).await),
                    None => None,
                }
            },
            async {
                match &latency_q {
                    Some(q) => Some(self.instant(LATENCY, q).await),
                    None => None,
                }
            }
        );
        let mut sample = MetricsSample::default();
        let mut first_error = None;
        let mut answered = false;
        match errors {
            Some(Ok(v)) => {
                answered = true;
                sample.error_rate = rate_of(v);
                if sample.error_rate.is_none() {
                    tracing::debug!(
                        value = v,
                        "error rate not measurable (no requests in the window?)"
                    );
                }
            }
            Some(Err(e)) => first_error = Some(e),
            None => {}
        }
        match latency {
            Some(Ok(v)) => {
                answered = true;
                sample.latency_p95 = latency_of(v);
            }
            Some(Err(e)) => match &first_error {
                None if !answered => first_error = Some(e),
                _ => tracing::warn!(error = %e, "latency p95 unavailable this sample"),
            },
            None => {}
        }
        match first_error {
            Some(e) if !answered => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, "error rate unavailable this sample");
                Ok(sample)
            }
            None => Ok(sample),
        }
    }

    /// One instant query, its single value.
    async fn instant(&self, what: &'static str, promql: &str) -> Result<f64, MetricsError> {
        let timeout = self.config.timeout;
        let mut url = self.query_url.clone();
        url.query_pairs_mut()
            .append_pair("query", promql)
            .append_pair("timeout", &format!("{}ms", timeout.as_millis().max(1)));
        let timed_out = || MetricsError::Timeout {
            url: self.shown.clone(),
            what,
            after: timeout,
        };
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                timed_out()
            } else {
                MetricsError::Unreachable {
                    url: self.shown.clone(),
                    source: Box::new(e.without_url()),
                }
            }
        };
        let exchange = async {
            let resp = self.client.get(url).send().await.map_err(transport)?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(transport)?;
            Ok::<_, MetricsError>((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| timed_out())??;
        tracing::debug!(what, query = promql, status = status.as_u16(), "prometheus query");
        let json: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) if status.is_success() => {
                return Err(MetricsError::Malformed {
                    url: self.shown.clone(),
                    what,
                    reason: format!("the body is not JSON ({e})"),
                })
            }
            Err(_) => {
                return Err(MetricsError::HttpStatus {
                    url: self.shown.clone(),
                    what,
                    status: status.as_u16(),
                    detail: excerpt(&body),
                })
            }
        };
        let field = |name: &str| {
            json.get(name)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        if field("status") == "error" {
            return Err(MetricsError::QueryRejected {
                what,
                query: promql.to_string(),
                error_type: field("errorType"),
                message: field("error"),
            });
        }
        let malformed = |reason: &str| MetricsError::Malformed {
            url: self.shown.clone(),
            what,
            reason: reason.to_string(),
        };
        if !status.is_success() {
            return Err(MetricsError::HttpStatus {
                url: self.shown.clone(),
                what,
                status: status.as_u16(),
                detail: excerpt(&body),
            });
        }
        if field("status") != "success" {
            return Err(malformed("its status is neither success nor error"));
        }
        let data = json.get("data").ok_or_else(|| malformed("it has no `data`"))?;
        let result = data
            .get("result")
            .ok_or_else(|| malformed("it has no `data.result`"))?;
        let pair = match data.get("resultType").and_then(|v| v.as_str()) {
            Some("vector") => {
                let series = result
                    .as_array()
                    .ok_or_else(|| malformed("`data.result` is not a list"))?;
                match series.as_slice() {
                    [] => {
                        return Err(MetricsError::NoData {
                            what,
                            query: promql.to_string(),
                            selector: self.config.selector.clone(),
                        })
                    }
                    [one] => one
                        .get("value")
                        .ok_or_else(|| malformed("a series has no `value`"))?,
                    many => {
                        return Err(MetricsError::TooManySeries {
                            what,
                            query: promql.to_string(),
                            count: many.len(),
                        })
                    }
                }
            }
            Some("scalar") => result,
            Some(other) => {
                return Err(MetricsError::QueryRejected {
                    what,
                    query: promql.to_string(),
                    error_type: "bad_data".into(),
                    message: format!(
                        "it returns a {other}, not one number: use an instant-vector expression"
                    ),
                })
            }
            None => return Err(malformed("it has no `data.resultType`")),
        };
        let text = pair
            .get(1)
            .and_then(|v| v.as_str())
            .ok_or_else(|| malformed("a value is not a [time, \"number\"] pair"))?;
        parse_sample_value(text).ok_or_else(|| malformed(&format!("value `{text}` is not a number")))
    }
}

/// Prometheus' text for a sample value: a float, `NaN`, `+Inf` or `-Inf`.
fn parse_sample_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        t => t.parse::<f64>().ok(),
    }
}

/// An error rate from a query value: not measurable when not finite (no traffic: 0/0).
fn rate_of(v: f64) -> Option<f64> {
    if v.is_finite() {
        if !(0.0..=1.0).contains(&v) {
            tracing::warn!(value = v, "the error-rate query returned a value outside 0..=1");
        }
        Some(v)
    } else {
        None
    }
}

/// A latency from a query value in seconds: `+Inf` (above the top bucket) is the longest
/// duration; `NaN` (no observations) and negatives are not measurable.
fn latency_of(v: f64) -> Option<Duration> {
    if v == f64::INFINITY {
        return Some(Duration::MAX);
    }
    if v.is_nan() || v < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(v).unwrap_or(Duration::MAX))
}

/// The start of a body, printable, for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut shown: String = text.chars().take(200).filter(|c| !c.is_control()).collect();
    if text.chars().count() > 200 {
        shown.push('…');
    }
    if shown.trim().is_empty() {
        "(empty body)".to_string()
    } else {
        shown
    }
}

#[async_trait]
impl MetricsSource for PrometheusMetrics {
    async fn sample(&self, app: &AppName) -> Result<MetricsSample, AdapterError> {
        Ok(self.read(app).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_escaping() {
        assert!(parse_sample_value("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_sample_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_sample_value("0.25"), Some(0.25));
        assert_eq!(parse_sample_value("x"), None);
        assert_eq!(rate_of(f64::NAN), None);
        assert_eq!(latency_of(f64::INFINITY), Some(Duration::MAX));
        assert_eq!(latency_of(0.5), Some(Duration::from_millis(500)));
        assert_eq!(promql_escape(r#"a"b\c"#), r#"a\"b\\c"#);
    }

    #[test]
    fn build_refuses_what_it_cannot_use() {
        let bad = [
            PrometheusMetrics::builder("ftp://x").build(),
            PrometheusMetrics::builder("https://x").build(),
            PrometheusMetrics::builder("http://x")
                .selector("{job=\"a\"}")
                .build(),
            PrometheusMetrics::builder("http://x")
                .requests_metric("bad name")
                .build(),
            PrometheusMetrics::builder("http://x")
                .rate_window(Duration::from_millis(1500))
                .build(),
            PrometheusMetrics::builder("http://x")
                .timeout(Duration::ZERO)
                .build(),
            PrometheusMetrics::builder("http://x")
                .error_rate_query(" ")
                .build(),
        ];
        for b in bad {
            assert!(matches!(b, Err(MetricsError::InvalidConfig(_))), "{b:?}");
        }
    }

    #[test]
    fn a_path_prefix_is_kept_and_credentials_are_never_shown() {
        let p = PrometheusMetrics::builder("http://u:secretpw@host:9090/prom")
            .build()
            .unwrap();
        assert_eq!(p.query_url.path(), "/prom/api/v1/query");
        assert!(!format!("{p:?}").contains("secretpw"));
        let no_sel = PrometheusMetrics::builder("http://h").build().unwrap();
        assert_eq!(
            no_sel.error_rate_query(&AppName::from("a")).unwrap(),
            r#"(sum(rate(http_requests_total{status=~"5.."}[60s])) or vector(0)) / sum(rate(http_requests_total{}[60s]))"#
        );
    }
}
