//! The orchestrator's side: a connection to one host's agent, and the library's traits
//! implemented over it, so that a host's code, config, process manager and health probes
//! are adapters like any other.

use crate::protocol::{Call, Hello, Outcome, Request, Response, PROTOCOL_VERSION};
use crate::FleetError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rollback_core::{
    AdapterError, AppLogs, AppName, CodeVersion, ConfigCheck, ConfigDiff, ConfigStore, ConfigVersion,
    ConfigVersionId, ErrorKind, HealthProbe, PreparedRevision, ProbeResult, ProcessManager, ProcessStatus,
    Revision, RevisionId,
};
use serde::de::DeserializeOwned;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, Lines};
use tokio::sync::Mutex;

type Reader = Lines<BufReader<Pin<Box<dyn AsyncRead + Send>>>>;
type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// A connection to one host's agent. Calls are answered in order, one at a time; a call
/// whose future was dropped half way leaves its answer behind, which the next call skips
/// (by id), so the connection stays usable.
pub struct AgentConnection {
    host: String,
    hello: Hello,
    io: Mutex<(Writer, Reader)>,
    next: AtomicU64,
    /// How long a health probe through the agent may take, in milliseconds.
    probe_timeout_ms: AtomicU64,
    /// Keeps the transport (an `ssh` child) alive as long as the connection.
    _transport: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for AgentConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConnection")
            .field("host", &self.host)
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

impl AgentConnection {
    /// Speaks to an agent over `writer` (its stdin) and `reader` (its stdout); `host`
    /// names it in errors. Says hello within `timeout` and refuses an agent of another
    /// protocol version, naming both. `transport` is kept alive with the connection.
    pub async fn open(
        host: impl Into<String>,
        writer: impl AsyncWrite + Send + 'static,
        reader: impl AsyncRead + Send + 'static,
        transport: Option<Box<dyn std::any::Any + Send + Sync>>,
        timeout: Duration,
    ) -> Result<Arc<Self>, FleetError> {
        let host = host.into();
        let reader: Pin<Box<dyn AsyncRead + Send>> = Box::pin(reader);
        let mut conn = Self {
            hello: Hello {
                version: PROTOCOL_VERSION,
                host: host.clone(),
                app: AppName::new(""),
                has: Vec::new(),
                switches_under_a_running_app: false,
            },
            host,
            io: Mutex::new((Box::pin(writer), BufReader::new(reader).lines())),
            next: AtomicU64::new(1),
            probe_timeout_ms: AtomicU64::new(millis(DEFAULT_PROBE_TIMEOUT)),
            _transport: transport,
        };
        let hello = tokio::time::timeout(
            timeout,
            conn.raw_call::<Hello>(Call::Hello {
                version: PROTOCOL_VERSION,
            }),
        )
        .await
        .map_err(|_| FleetError::Unreachable {
            host: conn.host.clone(),
            why: format!(
                "its agent did not answer the hello within {}s",
                timeout.as_secs_f64()
            ),
        })?
        .map_err(|e| match e.kind() {
            ErrorKind::Unsupported => FleetError::Refused {
                host: conn.host.clone(),
                why: e.message().to_owned(),
            },
            _ => FleetError::Unreachable {
                host: conn.host.clone(),
                why: e.message().to_owned(),
            },
        })?;
        conn.hello = hello;
        Ok(Arc::new(conn))
    }

    /// What the agent said about itself.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The host, as the caller named it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// How long [`RemoteHost`]'s health probe waits for the agent's answer before the
    /// host counts as unhealthy (default 30 s).
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms.load(Ordering::Relaxed))
    }

    /// Sets [`probe_timeout`](Self::probe_timeout) (at least a millisecond).
    pub fn set_probe_timeout(&self, timeout: Duration) {
        self.probe_timeout_ms
            .store(millis(timeout).max(1), Ordering::Relaxed);
    }

    async fn raw_call<T: DeserializeOwned>(&self, call: Call) -> Result<T, AdapterError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let unreachable = |why: String| {
            AdapterError::new(
                ErrorKind::Unavailable,
                format!(
                    "host {}: {why}; check that it is up and that `rollback agent --stdio` runs there",
                    self.host
                ),
            )
        };
        let mut line = serde_json::to_vec(&Request { id, call })
            .map_err(|e| AdapterError::new(ErrorKind::Failed, format!("cannot encode a request: {e}")))?;
        line.push(b'\n');
        let mut io = self.io.lock().await;
        let (writer, reader) = &mut *io;
        writer
            .write_all(&line)
            .await
            .map_err(|e| unreachable(format!("cannot send to its agent ({e})")))?;
        writer
            .flush()
            .await
            .map_err(|e| unreachable(format!("cannot send to its agent ({e})")))?;
        loop {
            let Some(text) = reader
                .next_line()
                .await
                .map_err(|e| unreachable(format!("cannot read from its agent ({e})")))?
            else {
                return Err(unreachable("its agent closed the connection".into()));
            };
            let response: Response = serde_json::from_str(&text).map_err(|e| {
                AdapterError::new(
                    ErrorKind::Failed,
                    format!("host {}: its agent answered something that is not protocol version {PROTOCOL_VERSION}: {e}", self.host),
                )
            })?;
            if response.id < id {
                continue; // the answer to a call that was abandoned
            }
            return match response.result {
                Outcome::Ok(value) => serde_json::from_value(value).map_err(|e| {
                    AdapterError::new(
                        ErrorKind::Failed,
                        format!("host {}: an answer of an unexpected shape: {e}", self.host),
                    )
                }),
                Outcome::Err(e) => Err(AdapterError::new(
                    e.kind,
                    format!("host {}: {}", self.host, e.message),
                )),
            };
        }
    }
}

/// How long a health probe through an agent may take unless set
/// ([`AgentConnection::set_probe_timeout`]).
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(30);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One host's code, config, process manager and health, as the library's adapters.
#[derive(Clone, Debug)]
pub struct RemoteHost(pub Arc<AgentConnection>);

impl RemoteHost {
    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T, AdapterError> {
        self.0.raw_call(call).await
    }
}

#[async_trait]
impl CodeVersion for RemoteHost {
    async fn current(&self) -> Result<Revision, AdapterError> {
        self.call(Call::CodeCurrent).await
    }
    async fn resolve(&self, spec: &str) -> Result<Revision, AdapterError> {
        self.call(Call::CodeResolve { spec: spec.into() }).await
    }
    async fn history(&self, n: usize) -> Result<Vec<Revision>, AdapterError> {
        self.call(Call::CodeHistory { n }).await
    }
    async fn prepare(&self, revision: &RevisionId) -> Result<PreparedRevision, AdapterError> {
        self.call(Call::CodePrepare {
            revision: revision.clone(),
        })
        .await
    }
    async fn check_activate(&self, revision: &RevisionId) -> Result<(), AdapterError> {
        self.call(Call::CodeCheckActivate {
            revision: revision.clone(),
        })
        .await
    }
    fn switches_under_a_running_app(&self) -> bool {
        // Told once, in the hello.
        self.0.hello.switches_under_a_running_app
    }
    async fn preserve_current(&self) -> Result<PreparedRevision, AdapterError> {
        self.call(Call::CodePreserveCurrent).await
    }
    async fn activate(&self, prepared: &PreparedRevision) -> Result<(), AdapterError> {
        self.call(Call::CodeActivate {
            prepared: prepared.clone(),
        })
        .await
    }
    async fn reinstate(&self, preserved: &PreparedRevision) -> Result<(), AdapterError> {
        self.call(Call::CodeReinstate {
            preserved: preserved.clone(),
        })
        .await
    }
    async fn revert(&self, commits: &[RevisionId]) -> Result<Revision, AdapterError> {
        self.call(Call::CodeRevert {
            commits: commits.to_vec(),
        })
        .await
    }
}

#[async_trait]
impl ConfigStore for RemoteHost {
    async fn current(&self) -> Result<ConfigVersion, AdapterError> {
        self.call(Call::ConfigCurrent).await
    }
    async fn backup(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        self.call(Call::ConfigBackup { label: label.into() }).await
    }
    async fn list(&self) -> Result<Vec<ConfigVersion>, AdapterError> {
        self.call(Call::ConfigList).await
    }
    async fn verify(&self, version: &ConfigVersionId) -> Result<ConfigCheck, AdapterError> {
        self.call(Call::ConfigVerify {
            version: version.clone(),
        })
        .await
    }
    async fn restore(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        self.call(Call::ConfigRestore {
            version: version.clone(),
        })
        .await
    }
    async fn diff(&self, a: &ConfigVersionId, b: &ConfigVersionId) -> Result<ConfigDiff, AdapterError> {
        self.call(Call::ConfigDiff {
            a: a.clone(),
            b: b.clone(),
        })
        .await
    }
    async fn preserve_current(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        self.call(Call::ConfigPreserveCurrent { label: label.into() })
            .await
    }
    async fn reinstate(&self, preserved: &ConfigVersion) -> Result<(), AdapterError> {
        self.call(Call::ConfigReinstate {
            preserved: preserved.clone(),
        })
        .await
    }
    async fn remove(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        self.call(Call::ConfigRemove {
            version: version.clone(),
        })
        .await
    }
}

#[async_trait]
impl ProcessManager for RemoteHost {
    async fn status(&self, app: &AppName) -> Result<ProcessStatus, AdapterError> {
        self.call(Call::ProcessStatus { app: app.clone() }).await
    }
    async fn stop(&self, app: &AppName) -> Result<(), AdapterError> {
        self.call(Call::ProcessStop { app: app.clone() }).await
    }
    async fn start(&self, app: &AppName) -> Result<(), AdapterError> {
        self.call(Call::ProcessStart { app: app.clone() }).await
    }
    async fn restart(&self, app: &AppName) -> Result<(), AdapterError> {
        self.call(Call::ProcessRestart { app: app.clone() }).await
    }
    async fn can_reload(&self, app: &AppName) -> Result<bool, AdapterError> {
        self.call(Call::ProcessCanReload { app: app.clone() }).await
    }
    async fn reload(&self, app: &AppName) -> Result<(), AdapterError> {
        self.call(Call::ProcessReload { app: app.clone() }).await
    }
    async fn logs_since(&self, app: &AppName, since: DateTime<Utc>) -> Result<Option<AppLogs>, AdapterError> {
        self.call(Call::ProcessLogsSince {
            app: app.clone(),
            since,
        })
        .await
    }
}

#[async_trait]
impl HealthProbe for RemoteHost {
    fn name(&self) -> String {
        format!("health of {} (its own probes)", self.0.host)
    }

    /// Healthy when every probe of the host passed; an unreachable agent, or one that does
    /// not answer within the connection's [probe timeout](AgentConnection::probe_timeout),
    /// is unhealthy.
    async fn probe(&self) -> ProbeResult {
        let started = tokio::time::Instant::now();
        let limit = self.0.probe_timeout();
        let answer = tokio::time::timeout(limit, self.call::<Vec<ProbeResult>>(Call::Probe))
            .await
            .unwrap_or_else(|_| {
                Err(AdapterError::new(
                    ErrorKind::Timeout,
                    format!(
                        "host {}: its agent did not answer the health probe within {}s",
                        self.0.host,
                        limit.as_secs_f64()
                    ),
                ))
            });
        match answer {
            Ok(results) => ProbeResult {
                probe: self.name(),
                healthy: results.iter().all(|r| r.healthy),
                latency: started.elapsed(),
                detail: results
                    .iter()
                    .map(|r| format!("{}: {}", r.probe, r.detail))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            Err(e) => ProbeResult {
                probe: self.name(),
                healthy: false,
                latency: started.elapsed(),
                detail: e.to_string(),
            },
        }
    }
}
