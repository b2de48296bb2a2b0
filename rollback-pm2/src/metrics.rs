//! [`Pm2Metrics`]: memory and CPU per app from `pm2 jlist`.

use crate::cli::Pm2Cli;
use crate::jlist::Pm2Process;
use crate::select::instances_of;
use async_trait::async_trait;
use rollback_core::{AdapterError, AppName, MetricsSample, MetricsSource};
use std::path::{Path, PathBuf};

/// A [`MetricsSource`] over `pm2 jlist`: resident memory (bytes, and percent of the
/// machine's `MemTotal`) and CPU (percent of one core), summed over the app's instances.
/// pm2 knows nothing of error rates: `error_rate` is `None`. An app with no running
/// instance has no memory or CPU figures (`None`, not zero).
///
/// Get one from [`Pm2ProcessManager::metrics`](crate::Pm2ProcessManager::metrics).
#[derive(Clone, Debug)]
pub struct Pm2Metrics {
    cli: Pm2Cli,
    meminfo: PathBuf,
}

impl Pm2Metrics {
    pub(crate) fn new(cli: Pm2Cli) -> Self {
        Self {
            cli,
            meminfo: PathBuf::from("/proc/meminfo"),
        }
    }

    /// Reads the machine's total memory from this file instead of `/proc/meminfo`.
    pub fn meminfo_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.meminfo = path.into();
        self
    }
}

/// `MemTotal` from a `/proc/meminfo`-style file, in bytes.
pub(crate) async fn total_memory_bytes(path: &Path) -> Option<u64> {
    let text = tokio::fs::read_to_string(path).await.ok()?;
    parse_mem_total(&text)
}

fn parse_mem_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | Some("KB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

fn sample_of(procs: &[Pm2Process], total_memory: Option<u64>) -> MetricsSample {
    let running: Vec<&Pm2Process> = procs.iter().filter(|p| p.pid.is_some()).collect();
    if running.is_empty() {
        return MetricsSample::default();
    }
    let memory: Option<u64> = running.iter().map(|p| p.memory_bytes).sum();
    let cpu: Option<f64> = running.iter().map(|p| p.cpu_percent).sum();
    MetricsSample {
        error_rate: None,
        memory_percent: memory
            .zip(total_memory.filter(|t| *t > 0))
            .map(|(m, t)| m as f64 * 100.0 / t as f64),
        memory_bytes: memory,
        cpu_percent: cpu,
        latency_p95: None,
    }
}

#[async_trait]
impl MetricsSource for Pm2Metrics {
    async fn sample(&self, app: &AppName) -> Result<MetricsSample, AdapterError> {
        // Never in place of a daemon that is down: pm2 would start an empty one and every
        // app would look unknown (NotFound instead of Unavailable).
        let running: Vec<Pm2Process> = self
            .cli
            .jlist_running()
            .await?
            .into_iter()
            .map(|i| i.process)
            .collect();
        let procs = instances_of(running, app, "")?;
        let total = total_memory_bytes(&self.meminfo).await;
        if total.is_none() {
            tracing::debug!(path = %self.meminfo.display(), "no MemTotal: memory_percent not measured");
        }
        Ok(sample_of(&procs, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: Option<u32>, mem: Option<u64>, cpu: Option<f64>) -> Pm2Process {
        Pm2Process {
            name: "web".into(),
            pm_id: 0,
            pid,
            status: "online".into(),
            restarts: 0,
            started_at_ms: None,
            memory_bytes: mem,
            cpu_percent: cpu,
        }
    }

    #[test]
    fn mem_total_is_read_in_bytes() {
        let text = "MemFree:  10 kB\nMemTotal:       16314028 kB\n";
        assert_eq!(parse_mem_total(text), Some(16_314_028 * 1024));
        assert_eq!(parse_mem_total("nothing"), None);
    }

    #[test]
    fn samples_sum_running_instances() {
        let procs = [
            p(Some(1), Some(100), Some(1.5)),
            p(Some(2), Some(300), Some(2.0)),
            p(None, Some(0), Some(0.0)),
        ];
        let s = sample_of(&procs, Some(1000));
        assert_eq!(s.memory_bytes, Some(400));
        assert_eq!(s.memory_percent, Some(40.0));
        assert_eq!(s.cpu_percent, Some(3.5));
        assert_eq!(s.error_rate, None);
        assert_eq!(
            sample_of(&[p(None, Some(0), Some(0.0))], Some(1000)),
            MetricsSample::default()
        );
        assert_eq!(sample_of(&procs, None).memory_percent, None);
    }
}
