//! `rollback-metrics`: [`MetricsSource`](rollback_core::MetricsSource)s that read the error
//! rate and the latency p95 where teams already measure them, so that the watchdog's
//! error-rate rule (the runbook's "error rate > 10% for 10+ minutes") has a real signal.
//!
//! - [`PrometheusMetrics`]: instant PromQL queries over Prometheus' HTTP API
//!   (`/api/v1/query`), with default queries for the common `http_requests_total` counter and
//!   `http_request_duration_seconds` histogram under a label selector the caller sets, or the
//!   caller's own PromQL; every query within a timeout; a query that returns nothing is the
//!   typed [`MetricsError::NoData`] naming the query and what to check.
//! - [`AccessLogMetrics`]: for teams without Prometheus, an access log (common or combined log
//!   format, or JSON lines with configurable field names) followed through rotation, giving
//!   the error rate and latency p95 over a sliding window.
//!
//! Both fill [`MetricsSample::error_rate`](rollback_core::MetricsSample::error_rate) and
//! [`MetricsSample::latency_p95`](rollback_core::MetricsSample::latency_p95) and leave memory
//! and CPU `None`: take those from the process manager (`rollback-pm2`'s metrics).
//!
//! What it is not: a metrics store or exporter (it reads, it never records or serves
//! metrics), an alerting engine (windows and thresholds are the watchdog's
//! [`Rule`](rollback_core::Rule)s), or a log shipper (lines are read for counts and durations
//! only, and never logged, since URLs may carry tokens). Prometheus is reached over plain
//! HTTP only (no TLS in this build).
//!
//! ```no_run
//! # async fn demo(orchestrator: std::sync::Arc<rollback_core::Orchestrator>) -> Result<(), Box<dyn std::error::Error>> {
//! use rollback_core::{Condition, Rule, Signal, Watchdog};
//! use rollback_metrics::PrometheusMetrics;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let prometheus = PrometheusMetrics::builder("http://127.0.0.1:9090")
//!     .selector(r#"job="shop""#)
//!     .build()?;
//! prometheus.check(orchestrator.app()).await?; // fail now, not silently at 3 a.m.
//! let watchdog = Watchdog::builder(orchestrator)
//!     .metrics(Arc::new(prometheus))
//!     .rules(vec![Rule::new(
//!         "error-rate",
//!         Condition::ErrorRateAbove(0.10),
//!         Duration::from_secs(600),
//!         Signal::CompleteFailure,
//!     )])
//!     .build()?;
//! let run = watchdog.run(tokio::time::sleep(Duration::from_secs(3600))).await;
//! tracing::info!(events = run.events.len(), "watchdog stopped");
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod access_log;
mod error;
mod prometheus;

pub use access_log::{
    AccessLogMetrics, AccessLogMetricsBuilder, JsonFields, LogFormat, TimeUnit, WindowStats,
};
pub use error::MetricsError;
pub use prometheus::{PrometheusMetrics, PrometheusMetricsBuilder, APP_PLACEHOLDER};
