//! Waiting for the app to answer: the health gate of post-verify and of a deploy tool, and
//! the probing that measures the downtime window around the stop and the start.

use super::Orchestrator;
use crate::domain::ProbeResult;
use crate::error::AdapterError;
use crate::plan::Step;
use crate::traits::{HealthProbe, ProcessManager};
use chrono::Utc;
use futures::future::join_all;
use futures::FutureExt;
use std::sync::Arc;

/// Probes until every probe passes or the health timeout ends; returns the last results
/// and, when they passed, the moment the passing round answered (the end of the downtime
/// window, not the end of post-verify). Probes soon after a start come fast (from 20 ms,
/// doubling up to `health_interval`), so the window is not stretched by the polling.
/// With no probe configured, the process manager's status stands in for health.
pub(super) async fn wait_healthy(
    o: &Orchestrator,
) -> Result<(Vec<ProbeResult>, Option<chrono::DateTime<Utc>>), AdapterError> {
    wait_healthy_within(o, o.settings.health_timeout).await
}

/// [`wait_healthy`] with its own time limit.
pub(super) async fn wait_healthy_within(
    o: &Orchestrator,
    timeout: std::time::Duration,
) -> Result<(Vec<ProbeResult>, Option<chrono::DateTime<Utc>>), AdapterError> {
    wait_healthy_of(o, &o.process, &o.probes, timeout).await
}

/// The process manager and the probes of the parts a recovery serves with.
pub(super) type Serving = (Arc<dyn ProcessManager>, Vec<Arc<dyn HealthProbe>>);

/// The parts to judge health by when `except` are left out: the process manager without
/// them (`None` when it cannot leave parts out), and every probe without them (a probe
/// that does not look at parts, as it is).
pub(super) fn without_parts(o: &Orchestrator, except: &[String]) -> Option<Serving> {
    if except.is_empty() {
        return Some((o.process.clone(), o.probes.clone()));
    }
    let process = o.process.without_parts(except)?;
    let probes = o
        .probes
        .iter()
        .map(|p| p.without_parts(except).unwrap_or_else(|| p.clone()))
        .collect();
    Some((process, probes))
}

/// [`wait_healthy_within`] judged by `process` and `probes` (the parts a recovery served
/// again with).
pub(super) async fn wait_healthy_of(
    o: &Orchestrator,
    process: &Arc<dyn ProcessManager>,
    probes: &[Arc<dyn HealthProbe>],
    timeout: std::time::Duration,
) -> Result<(Vec<ProbeResult>, Option<chrono::DateTime<Utc>>), AdapterError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut interval = std::time::Duration::from_millis(20).min(o.settings.health_interval);
    loop {
        let results = if probes.is_empty() {
            let started = tokio::time::Instant::now();
            let status = o
                .timed(
                    Step::PostVerify,
                    "reading the app's status",
                    process.status(&o.app),
                )
                .await?;
            vec![ProbeResult {
                probe: format!(
                    "process manager status of `{}` (no health probe configured)",
                    o.app
                ),
                healthy: status.state == crate::domain::ProcessState::Online,
                latency: started.elapsed(),
                detail: format!("state {}", status.state),
            }]
        } else {
            o.timed(
                Step::PostVerify,
                "probing health",
                join_all(probes.iter().map(|p| p.probe())).map(Ok),
            )
            .await?
        };
        let answered_at = Utc::now();
        if results.iter().all(|r| r.healthy) {
            return Ok((results, Some(answered_at)));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok((results, None));
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(o.settings.health_interval);
    }
}

/// Runs `fut` while probing health every 10 ms (the HTTP probes only: the process manager
/// is busy with `fut`); returns its output with the first and the last time every probe
/// passed meanwhile. Dropping a probe in flight when `fut` ends is fine: probes only read.
pub(super) async fn while_probing<T>(
    o: &Orchestrator,
    fut: impl std::future::Future<Output = T>,
) -> (T, Option<chrono::DateTime<Utc>>, Option<chrono::DateTime<Utc>>) {
    let mut fut = std::pin::pin!(fut);
    if o.probes.is_empty() {
        return (fut.await, None, None);
    }
    let (mut first, mut last) = (None, None);
    loop {
        let round = async {
            let results = join_all(o.probes.iter().map(|p| p.probe())).await;
            (results.iter().all(|r| r.healthy), Utc::now())
        };
        tokio::select! {
            out = &mut fut => return (out, first, last),
            (healthy, at) = round => {
                if healthy {
                    first.get_or_insert(at);
                    last = Some(at);
                }
            }
        }
        tokio::select! {
            out = &mut fut => return (out, first, last),
            () = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
        }
    }
}
