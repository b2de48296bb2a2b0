//! The agent's side: serves one host's adapters over a reader and a writer (the agent's
//! stdin and stdout; `rollback agent --stdio` calls [`serve`]).

use crate::protocol::{Call, Hello, Outcome, Request, Response, WireError, PROTOCOL_VERSION};
use crate::FleetError;
use rollback_core::{
    AdapterError, AppName, CodeVersion, ConfigStore, ErrorKind, HealthProbe, ProcessManager,
};
use serde::Serialize;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// The adapters configured on one host: [`HostAdapters::new`] and its setters.
#[derive(Clone)]
#[non_exhaustive]
pub struct HostAdapters {
    /// The app they serve.
    pub app: AppName,
    /// The code adapter, if the host has one.
    pub code: Option<Arc<dyn CodeVersion>>,
    /// The config adapter, if the host has one.
    pub config: Option<Arc<dyn ConfigStore>>,
    /// The process manager.
    pub process: Arc<dyn ProcessManager>,
    /// The host's health probes (its own app's endpoint, from the host itself).
    pub probes: Vec<Arc<dyn HealthProbe>>,
}

impl std::fmt::Debug for HostAdapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostAdapters")
            .field("app", &self.app)
            .field("code", &self.code.is_some())
            .field("config", &self.config.is_some())
            .field("probes", &self.probes.len())
            .finish_non_exhaustive()
    }
}

impl HostAdapters {
    /// The adapters serving `app` with its process manager, and no code, config or health
    /// probe until set.
    pub fn new(app: impl Into<AppName>, process: Arc<dyn ProcessManager>) -> Self {
        Self {
            app: app.into(),
            code: None,
            config: None,
            process,
            probes: Vec::new(),
        }
    }

    /// The code adapter.
    pub fn code(mut self, code: Arc<dyn CodeVersion>) -> Self {
        self.code = Some(code);
        self
    }

    /// The config adapter.
    pub fn config(mut self, config: Arc<dyn ConfigStore>) -> Self {
        self.config = Some(config);
        self
    }

    /// The host's health probes (replacing any set before).
    pub fn probes(mut self, probes: Vec<Arc<dyn HealthProbe>>) -> Self {
        self.probes = probes;
        self
    }

    /// Adds one health probe.
    pub fn probe(mut self, probe: Arc<dyn HealthProbe>) -> Self {
        self.probes.push(probe);
        self
    }

    /// Refuses an app other than the one served here before the manager is asked: a name
    /// for several apps is `InvalidInput` (the contract), any other app `NotFound` (it is
    /// not on this host), naming both.
    fn check_app(&self, asked: &AppName) -> Result<(), Outcome> {
        if *asked == self.app || asked.why_not_one_app().is_some() {
            // The adapter refuses several-app names itself, with the contract's kind.
            return Ok(());
        }
        Err(Outcome::Err(WireError {
            kind: ErrorKind::NotFound,
            message: format!(
                "this agent serves `{}`, the orchestrator asked for `{asked}`: the [[hosts]] entry and the host's rollback.toml must name the same app",
                self.app
            ),
        }))
    }

    fn has(&self) -> Vec<String> {
        let mut has = Vec::new();
        if self.code.is_some() {
            has.push("code".into());
        }
        if self.config.is_some() {
            has.push("config".into());
        }
        has.push("process".into());
        if !self.probes.is_empty() {
            has.push("health".into());
        }
        has
    }
}

/// Serves requests from `input` on `output` until `input` ends. The first request must be
/// a hello of this protocol's version: any other is answered with an error naming both
/// versions, and the agent stops. Each request is answered before the next is read.
pub async fn serve(
    input: impl AsyncRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
    adapters: HostAdapters,
) -> Result<(), FleetError> {
    let mut lines = BufReader::new(input).lines();
    let mut greeted = false;
    // Read once, off the runtime's threads (/proc).
    let host = tokio::task::spawn_blocking(rollback_core::sys::host_name)
        .await
        .unwrap_or_else(|_| "unknown-host".to_owned());
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(FleetError::io("read a request"))?
    {
        if line.trim().is_empty() {
            continue;
        }
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                let id = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
                    .unwrap_or(0);
                let err = WireError {
                    kind: ErrorKind::InvalidInput,
                    message: format!("not a request of protocol version {PROTOCOL_VERSION}: {e}"),
                };
                write(
                    &mut output,
                    &Response {
                        id,
                        result: Outcome::Err(err),
                    },
                )
                .await?;
                continue;
            }
        };
        let result = match (&request.call, greeted) {
            (Call::Hello { version }, _) if *version == PROTOCOL_VERSION => {
                greeted = true;
                ok(Hello {
                    version: PROTOCOL_VERSION,
                    host: host.clone(),
                    app: adapters.app.clone(),
                    has: adapters.has(),
                    switches_under_a_running_app: adapters
                        .code
                        .as_ref()
                        .is_some_and(|c| c.switches_under_a_running_app()),
                })
            }
            (Call::Hello { version }, _) => {
                let err = WireError {
                    kind: ErrorKind::Unsupported,
                    message: format!(
                        "protocol version mismatch: the orchestrator speaks version {version}, this agent ({}) speaks version {PROTOCOL_VERSION}; install the same `rollback` on both",
                        host
                    ),
                };
                write(
                    &mut output,
                    &Response {
                        id: request.id,
                        result: Outcome::Err(err),
                    },
                )
                .await?;
                return Err(FleetError::VersionMismatch {
                    ours: PROTOCOL_VERSION,
                    theirs: *version,
                });
            }
            (_, false) => Outcome::Err(WireError {
                kind: ErrorKind::InvalidInput,
                message: "the first request must be a hello with the protocol version".into(),
            }),
            (call, true) => dispatch(&adapters, call.clone()).await,
        };
        write(
            &mut output,
            &Response {
                id: request.id,
                result,
            },
        )
        .await?;
    }
    Ok(())
}

async fn write(output: &mut (impl AsyncWrite + Unpin), response: &Response) -> Result<(), FleetError> {
    let mut line = serde_json::to_vec(response)
        .map_err(|e| FleetError::Protocol(format!("cannot encode a response: {e}")))?;
    line.push(b'\n');
    output
        .write_all(&line)
        .await
        .map_err(FleetError::io("write a response"))?;
    output.flush().await.map_err(FleetError::io("write a response"))
}

fn ok(value: impl Serialize) -> Outcome {
    match serde_json::to_value(value) {
        Ok(v) => Outcome::Ok(v),
        Err(e) => Outcome::Err(WireError {
            kind: ErrorKind::Failed,
            message: format!("cannot encode the result: {e}"),
        }),
    }
}

fn answer<T: Serialize>(result: Result<T, AdapterError>) -> Outcome {
    match result {
        Ok(v) => ok(v),
        Err(e) => {
            tracing::debug!(error = ?e, "adapter error sent to the orchestrator");
            Outcome::Err(WireError {
                kind: e.kind(),
                message: e.message().to_owned(),
            })
        }
    }
}

fn missing(what: &str) -> Outcome {
    Outcome::Err(WireError {
        kind: ErrorKind::Unsupported,
        message: format!("this host's agent has no {what} adapter: configure it in the host's rollback.toml"),
    })
}

async fn dispatch(a: &HostAdapters, call: Call) -> Outcome {
    macro_rules! code {
        ($c:ident => $e:expr) => {
            match &a.code {
                Some($c) => answer($e.await),
                None => missing("code"),
            }
        };
    }
    macro_rules! config {
        ($c:ident => $e:expr) => {
            match &a.config {
                Some($c) => answer($e.await),
                None => missing("config"),
            }
        };
    }
    // A call for another app than the one served here is refused before it reaches the
    // manager (which may well know an app of that name).
    macro_rules! served {
        ($app:ident => $e:expr) => {
            match a.check_app(&$app) {
                Ok(()) => answer($e.await),
                Err(refused) => refused,
            }
        };
    }
    let p = &a.process;
    match call {
        Call::Hello { .. } => missing("second hello"),
        Call::CodeCurrent => code!(c => c.current()),
        Call::CodeResolve { spec } => code!(c => c.resolve(&spec)),
        Call::CodeHistory { n } => code!(c => c.history(n)),
        Call::CodePrepare { revision } => code!(c => c.prepare(&revision)),
        Call::CodeCheckActivate { revision } => code!(c => c.check_activate(&revision)),
        Call::CodeSwitchesUnderARunningApp => match &a.code {
            Some(c) => ok(c.switches_under_a_running_app()),
            None => missing("code"),
        },
        Call::CodePreserveCurrent => code!(c => c.preserve_current()),
        Call::CodeActivate { prepared } => code!(c => c.activate(&prepared)),
        Call::CodeReinstate { preserved } => code!(c => c.reinstate(&preserved)),
        Call::CodeRevert { commits } => code!(c => c.revert(&commits)),
        Call::ConfigCurrent => config!(c => c.current()),
        Call::ConfigBackup { label } => config!(c => c.backup(&label)),
        Call::ConfigList => config!(c => c.list()),
        Call::ConfigVerify { version } => config!(c => c.verify(&version)),
        Call::ConfigRestore { version } => config!(c => c.restore(&version)),
        Call::ConfigDiff { a: x, b } => config!(c => c.diff(&x, &b)),
        Call::ConfigPreserveCurrent { label } => config!(c => c.preserve_current(&label)),
        Call::ConfigReinstate { preserved } => config!(c => c.reinstate(&preserved)),
        Call::ConfigRemove { version } => config!(c => c.remove(&version)),
        Call::ProcessStatus { app } => served!(app => p.status(&app)),
        Call::ProcessStop { app } => served!(app => p.stop(&app)),
        Call::ProcessStart { app } => served!(app => p.start(&app)),
        Call::ProcessRestart { app } => served!(app => p.restart(&app)),
        Call::ProcessCanReload { app } => served!(app => p.can_reload(&app)),
        Call::ProcessReload { app } => served!(app => p.reload(&app)),
        Call::ProcessLogsSince { app, since } => served!(app => p.logs_since(&app, since)),
        Call::Probe => ok(futures::future::join_all(a.probes.iter().map(|p| p.probe())).await),
    }
}
