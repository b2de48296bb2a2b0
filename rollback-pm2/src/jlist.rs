//! Parsing `pm2 jlist`: only the fields we need are read; everything else (including every
//! app's environment, secrets and all) is skipped by serde and never kept.

use crate::error::Pm2Error;
use rollback_core::ProcessState;
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;

/// One pm2 process (one instance of an app) as `pm2 jlist` describes it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pm2Process {
    /// The app name.
    pub(crate) name: String,
    /// pm2's id of this instance.
    pub(crate) pm_id: u32,
    /// The OS pid, when running (pm2 says 0 otherwise).
    pub(crate) pid: Option<u32>,
    /// pm2's status string, e.g. `online`, `stopped`, `errored`, `launching`.
    pub(crate) status: String,
    /// pm2's restart count (`restart_time`).
    pub(crate) restarts: u32,
    /// When the process last started, in ms since the epoch (`pm_uptime`).
    pub(crate) started_at_ms: Option<u64>,
    /// Resident memory in bytes (`monit.memory`).
    pub(crate) memory_bytes: Option<u64>,
    /// CPU in percent of one core (`monit.cpu`).
    pub(crate) cpu_percent: Option<f64>,
}

impl Pm2Process {
    /// pm2's status as a [`ProcessState`] (see [`map_status`]); a `stopped` instance that
    /// still has a pid exited by itself and pm2 is restarting it:
    /// [`Retrying`](ProcessState::Retrying).
    pub(crate) fn state(&self) -> ProcessState {
        match map_status(&self.status) {
            ProcessState::Stopped if self.pid.is_some() => ProcessState::Retrying,
            state => state,
        }
    }

    /// The pid while a process of this instance runs (pm2 keeps the pid of an instance that
    /// exited until it restarts it).
    pub(crate) fn running_pid(&self) -> Option<u32> {
        self.pid.filter(|_| {
            matches!(
                self.status.as_str(),
                "online" | "launching" | "one-launch-status" | "stopping"
            )
        })
    }
}

/// Maps a pm2 status string to a [`ProcessState`]: `waiting restart` (a restart delay after
/// a crash) is [`Retrying`](ProcessState::Retrying), `errored` (pm2 gave up) is
/// [`Errored`](ProcessState::Errored). Unknown strings map to [`ProcessState::Unknown`].
pub(crate) fn map_status(status: &str) -> ProcessState {
    match status {
        "online" => ProcessState::Online,
        "stopped" => ProcessState::Stopped,
        "stopping" => ProcessState::Stopping,
        "launching" | "one-launch-status" => ProcessState::Launching,
        "waiting restart" => ProcessState::Retrying,
        "errored" => ProcessState::Errored,
        _ => ProcessState::Unknown,
    }
}

/// pm2's own default `min_uptime`: a process that exits sooner was an unstable start.
const PM2_MIN_UPTIME_MS: u64 = 1000;

/// One instance with pm2's crash-loop bookkeeping, which tells a crash loop under way from
/// a process that is simply online (read by the manager; [`Pm2Process`] keeps the fields
/// every reader needs).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Instance {
    /// The instance.
    pub(crate) process: Pm2Process,
    /// pm2's `unstable_restarts`: restarts after less than `min_uptime` since the app was
    /// (re)started by a command; pm2 gives up (`errored`) at `max_restarts`.
    pub(crate) unstable_restarts: u32,
    /// pm2's `min_uptime` for the app, in ms.
    pub(crate) min_uptime_ms: u64,
    /// True in pm2's cluster mode (`exec_mode: cluster_mode`): instances share the port
    /// and `pm2 reload` replaces them one at a time.
    pub(crate) cluster: bool,
    /// The file pm2 writes the instance's stdout to (`pm_out_log_path`).
    pub(crate) out_log: Option<PathBuf>,
    /// The file pm2 writes the instance's stderr to (`pm_err_log_path`).
    pub(crate) err_log: Option<PathBuf>,
}

impl std::ops::Deref for Instance {
    type Target = Pm2Process;

    fn deref(&self) -> &Pm2Process {
        &self.process
    }
}

impl AsRef<Pm2Process> for Pm2Process {
    fn as_ref(&self) -> &Pm2Process {
        self
    }
}

impl AsRef<Pm2Process> for Instance {
    fn as_ref(&self) -> &Pm2Process {
        &self.process
    }
}

impl Instance {
    /// The state at `now_ms` (ms since the epoch): [`Pm2Process::state`], except that a
    /// process running for less than `min_uptime` after unstable restarts is a crash loop
    /// pm2 has not given up on yet: [`Retrying`](ProcessState::Retrying), not online.
    pub(crate) fn state_at(&self, now_ms: u64) -> ProcessState {
        let state = self.process.state();
        let young = self
            .process
            .started_at_ms
            .is_none_or(|t| now_ms.saturating_sub(t) < self.min_uptime_ms);
        match state {
            ProcessState::Online | ProcessState::Launching if self.unstable_restarts > 0 && young => {
                ProcessState::Retrying
            }
            state => state,
        }
    }
}

#[derive(Deserialize)]
struct RawProcess {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pm_id: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pid: Option<f64>,
    #[serde(default)]
    monit: Option<RawMonit>,
    #[serde(default)]
    pm2_env: Option<RawEnv>,
}

#[derive(Deserialize)]
struct RawMonit {
    #[serde(default, deserialize_with = "lenient")]
    memory: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    cpu: Option<f64>,
}

#[derive(Deserialize)]
struct RawEnv {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    restart_time: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pm_uptime: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    unstable_restarts: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    min_uptime: Option<f64>,
    #[serde(default)]
    exec_mode: Option<String>,
    #[serde(default)]
    pm_out_log_path: Option<serde_json::Value>,
    #[serde(default)]
    pm_err_log_path: Option<serde_json::Value>,
}

/// A non-empty string, or nothing (a path pm2 wrote as something else is not a path).
fn text(v: Option<serde_json::Value>) -> Option<String> {
    match v {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// A number, a numeric string, or anything else (read as absent).
fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(f64),
        Str(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match N::deserialize(d)? {
        N::Num(n) => Some(n),
        N::Str(s) => s.trim().parse().ok(),
        N::Other(_) => None,
    })
}

fn to_u32(n: Option<f64>) -> Option<u32> {
    n.filter(|n| n.is_finite() && *n >= 0.0 && *n <= f64::from(u32::MAX))
        .map(|n| n as u32)
}

fn to_u64(n: Option<f64>) -> Option<u64> {
    n.filter(|n| n.is_finite() && *n >= 0.0).map(|n| n as u64)
}

impl RawProcess {
    fn into_instance(self) -> Option<Instance> {
        let env = self.pm2_env;
        let name = self.name.or_else(|| env.as_ref().and_then(|e| e.name.clone()))?;
        let cluster = env
            .as_ref()
            .and_then(|e| e.exec_mode.as_deref())
            .is_some_and(|m| m == "cluster_mode");
        let (status, restarts, started, unstable, min_uptime, out_log, err_log) = match env {
            Some(e) => (
                e.status,
                e.restart_time,
                e.pm_uptime,
                e.unstable_restarts,
                e.min_uptime,
                text(e.pm_out_log_path).map(PathBuf::from),
                text(e.pm_err_log_path).map(PathBuf::from),
            ),
            None => (None, None, None, None, None, None, None),
        };
        let process = Pm2Process {
            name,
            pm_id: to_u32(self.pm_id)?,
            pid: to_u32(self.pid).filter(|p| *p != 0),
            status: status.unwrap_or_else(|| "unknown".to_owned()),
            restarts: to_u32(restarts).unwrap_or(0),
            started_at_ms: to_u64(started).filter(|t| *t != 0),
            memory_bytes: to_u64(self.monit.as_ref().and_then(|m| m.memory)),
            cpu_percent: self.monit.and_then(|m| m.cpu).filter(|c| c.is_finite()),
        };
        Some(Instance {
            process,
            unstable_restarts: to_u32(unstable).unwrap_or(0),
            min_uptime_ms: to_u64(min_uptime).unwrap_or(PM2_MIN_UPTIME_MS),
            cluster,
            out_log,
            err_log,
        })
    }
}

/// Parses the output of `pm2 jlist` into instances with pm2's crash-loop bookkeeping. pm2
/// may print noise before the JSON (its banner, "Spawning PM2 daemon" lines): the list is
/// read from the first line that starts a JSON array which parses. Entries without a name
/// or id are skipped; unknown fields are ignored. The error never quotes the output (nor
/// serde's message, which can quote a value: only its category and line).
pub(crate) fn parse_instances(output: &str) -> Result<Vec<Instance>, Pm2Error> {
    let mut last_error = None;
    let mut offset = 0;
    for line in output.split_inclusive('\n') {
        let start = offset + (line.len() - line.trim_start().len());
        offset += line.len();
        if !output[start..].starts_with('[') {
            continue;
        }
        let mut stream = serde_json::Deserializer::from_str(&output[start..]).into_iter::<Vec<RawProcess>>();
        match stream.next() {
            Some(Ok(raw)) => return Ok(raw.into_iter().filter_map(RawProcess::into_instance).collect()),
            Some(Err(e)) => {
                last_error = Some(format!("{} at line {}", e.classify_name(), e.line()));
            }
            None => {}
        }
    }
    Err(Pm2Error::BadJlist(last_error.unwrap_or_else(|| {
        format!("no line starts a JSON array in {} bytes", output.len())
    })))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "JSON syntax error",
            serde_json::error::Category::Data => "unexpected JSON shape",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`parse_instances`], the processes alone.
    fn parse(output: &str) -> Result<Vec<Pm2Process>, Pm2Error> {
        Ok(parse_instances(output)?.into_iter().map(|i| i.process).collect())
    }

    const ONE: &str = r#"[{"pid":3092,"name":"web","pm2_env":{"name":"web","status":"online","env":{"DB_PASSWORD":"hunter2"},"restart_time":2,"pm_uptime":1795617420141,"unstable_restarts":0,"axm_options":{"x":[1,2]}},"pm_id":0,"monit":{"memory":54263808,"cpu":43.8},"new_field":{"nested":[true]}}]"#;

    #[test]
    fn reads_the_fields_we_need_and_ignores_extra_ones() {
        let p = parse(ONE).unwrap();
        assert_eq!(
            p,
            vec![Pm2Process {
                name: "web".into(),
                pm_id: 0,
                pid: Some(3092),
                status: "online".into(),
                restarts: 2,
                started_at_ms: Some(1_795_617_420_141),
                memory_bytes: Some(54_263_808),
                cpu_percent: Some(43.8),
            }]
        );
        assert_eq!(p[0].state(), ProcessState::Online);
    }

    #[test]
    fn skips_noise_before_the_json() {
        let noisy = format!(
            "\n   banner -------------\n\u{1b}[32m[PM2] \u{1b}[39mSpawning PM2 daemon with pm2_home=/tmp/x\n[PM2] PM2 Successfully daemonized\n{ONE}\n"
        );
        let p = parse(&noisy).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "web");
        assert_eq!(parse("[PM2] Spawning PM2 daemon\n[]").unwrap(), vec![]);
    }

    #[test]
    fn stopped_process_has_no_pid_and_statuses_map() {
        let j = r#"[{"pid":0,"name":"a","pm_id":1,"monit":{"memory":0,"cpu":0},"pm2_env":{"status":"stopped","restart_time":"3"}},
                   {"pid":12,"name":"b","pm_id":"2","pm2_env":{"status":"one-launch-status"}},
                   {"name":"c","pm_id":3,"pm2_env":{"status":"some-future-status","pm_uptime":null}},
                   {"pm_id":4,"pm2_env":{"name":"d","status":"errored"}},
                   {"name":"no-id"}]"#;
        let p = parse(j).unwrap();
        let got: Vec<_> = p
            .iter()
            .map(|p| (p.name.as_str(), p.pid, p.state(), p.restarts))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", None, ProcessState::Stopped, 3),
                ("b", Some(12), ProcessState::Launching, 0),
                ("c", None, ProcessState::Unknown, 0),
                ("d", None, ProcessState::Errored, 0),
            ]
        );
        assert_eq!(map_status("stopping"), ProcessState::Stopping);
        assert_eq!(map_status("launching"), ProcessState::Launching);
    }

    #[test]
    fn reads_pm2s_crash_loop_bookkeeping() {
        let j = r#"[{"pid":7,"name":"a","pm_id":0,"pm2_env":{"status":"online","unstable_restarts":3,"min_uptime":500,"pm_uptime":10000}},
                   {"pid":0,"name":"b","pm_id":1,"pm2_env":{"status":"waiting restart","min_uptime":"1m"}},
                   {"pid":9,"name":"c","pm_id":2,"pm2_env":{"status":"stopped"}}]"#;
        let got = parse_instances(j).unwrap();
        assert_eq!(
            got.iter()
                .map(|i| (i.name.as_str(), i.unstable_restarts, i.min_uptime_ms))
                .collect::<Vec<_>>(),
            vec![("a", 3, 500), ("b", 0, 1000), ("c", 0, 1000)]
        );
        assert_eq!(got[0].state_at(10_400), ProcessState::Retrying);
        assert_eq!(got[0].state_at(10_600), ProcessState::Online);
        assert_eq!(got[1].state(), ProcessState::Retrying);
        assert_eq!(
            (got[2].state(), got[2].running_pid()),
            (ProcessState::Retrying, None)
        );
        assert_eq!(parse(j).unwrap().len(), 3);
    }

    #[test]
    fn garbage_is_an_error_that_does_not_quote_the_output() {
        for bad in [
            "",
            "no json here",
            "[PM2] only noise\n",
            "[{\"name\":\"x\",\"pm2_env\":{\"env\":{\"K\":\"hunter2\"}",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, Pm2Error::BadJlist(_)), "{bad:?}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }
}
