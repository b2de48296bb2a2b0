use crate::world::{FakeApp, Method, World};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rollback_core::{
    AdapterError, AppLogs, AppName, ErrorKind, LogLine, ProcessManager, ProcessState, ProcessStatus,
};

/// A fake [`ProcessManager`] over the world's apps. It keeps the trait's contract: names
/// that address several apps are refused, `Online` carries a pid and a restart gives a new
/// one, restarts are counted, a crash at start is `Failed` and leaves the app `Errored`.
/// A manager that cannot be reached is a fault away:
/// `world.inject(Method::ProcessStatus, When::Always, Fault::Fail(ErrorKind::Unavailable))`.
#[derive(Clone, Debug)]
pub struct FakeProcessManager {
    world: World,
}

impl FakeProcessManager {
    /// A fake process manager in `world`.
    pub fn new(world: &World) -> Self {
        Self { world: world.clone() }
    }

    /// Registers an app, online.
    pub fn add_app(&self, app: &str) {
        let mut s = self.world.lock();
        let pid = 1000 + s.fresh_id() as u32;
        s.apps.insert(
            AppName::new(app),
            FakeApp {
                state: ProcessState::Online,
                pid: Some(pid),
                restarts: 0,
                crashes_on_start: false,
                cluster: false,
                started_at: Some(chrono::Utc::now()),
            },
        );
    }

    /// Registers an app in cluster mode, online: it can be reloaded gracefully.
    pub fn add_cluster_app(&self, app: &str) {
        self.add_app(app);
        if let Some(a) = self.world.lock().apps.get_mut(&AppName::new(app)) {
            a.cluster = true;
        }
    }

    fn set(&self, app: &AppName, online: bool) -> Result<(), AdapterError> {
        let mut s = self.world.lock();
        let pid = 1000 + s.fresh_id() as u32;
        let a = s.apps.get_mut(app).ok_or_else(|| unknown(app))?;
        if !online {
            a.state = ProcessState::Stopped;
            a.pid = None;
            a.started_at = None;
            return Ok(());
        }
        if a.state == ProcessState::Online {
            return Ok(());
        }
        if a.crashes_on_start {
            a.state = ProcessState::Errored;
            a.pid = None;
            a.restarts += 3;
            return Err(AdapterError::new(
                ErrorKind::Failed,
                format!("app `{app}` crash-loops after start (3 restarts): last state errored"),
            ));
        }
        a.state = ProcessState::Online;
        a.pid = Some(pid);
        a.started_at = Some(chrono::Utc::now());
        s.log_start(app);
        Ok(())
    }
}

fn unknown(app: &AppName) -> AdapterError {
    AdapterError::not_found(format!(
        "app `{app}` is not known to the process manager: check its name"
    ))
}

/// Refuses a name that some process manager reads as several apps (the trait's contract).
fn one_app(app: &AppName) -> Result<(), AdapterError> {
    match app.why_not_one_app() {
        Some(why) => Err(AdapterError::new(
            ErrorKind::InvalidInput,
            format!("app name `{app}` does not address exactly one app ({why}): name the app itself"),
        )),
        None => Ok(()),
    }
}

#[async_trait]
impl ProcessManager for FakeProcessManager {
    async fn status(&self, app: &AppName) -> Result<ProcessStatus, AdapterError> {
        one_app(app)?;
        let gate = self.world.enter(Method::ProcessStatus, app.as_str()).await?;
        let status = {
            let s = self.world.lock();
            let a = s.apps.get(app).ok_or_else(|| unknown(app))?;
            ProcessStatus {
                app: app.clone(),
                state: a.state,
                pid: a.pid,
                restarts: Some(a.restarts),
                uptime: a
                    .started_at
                    .filter(|_| a.state == ProcessState::Online)
                    .and_then(|t| (chrono::Utc::now() - t).to_std().ok()),
            }
        };
        gate.pass().await?;
        Ok(status)
    }

    async fn stop(&self, app: &AppName) -> Result<(), AdapterError> {
        one_app(app)?;
        let gate = self.world.enter(Method::ProcessStop, app.as_str()).await?;
        self.set(app, false)?;
        gate.pass().await?;
        Ok(())
    }

    async fn start(&self, app: &AppName) -> Result<(), AdapterError> {
        one_app(app)?;
        let gate = self.world.enter(Method::ProcessStart, app.as_str()).await?;
        self.set(app, true)?;
        gate.pass().await?;
        Ok(())
    }

    async fn restart(&self, app: &AppName) -> Result<(), AdapterError> {
        one_app(app)?;
        let gate = self.world.enter(Method::ProcessRestart, app.as_str()).await?;
        self.set(app, false)?;
        self.set(app, true)?;
        if let Some(a) = self.world.lock().apps.get_mut(app) {
            a.restarts += 1;
        }
        gate.pass().await?;
        Ok(())
    }

    async fn can_reload(&self, app: &AppName) -> Result<bool, AdapterError> {
        one_app(app)?;
        let gate = self.world.enter(Method::ProcessCanReload, app.as_str()).await?;
        let can = {
            let s = self.world.lock();
            let a = s.apps.get(app).ok_or_else(|| unknown(app))?;
            a.cluster && a.state == ProcessState::Online
        };
        gate.pass().await?;
        Ok(can)
    }

    async fn reload(&self, app: &AppName) -> Result<(), AdapterError> {
        one_app(app)?;
        let gate = self.world.enter(Method::ProcessReload, app.as_str()).await?;
        {
            let mut s = self.world.lock();
            let pid = 1000 + s.fresh_id() as u32;
            let a = s.apps.get_mut(app).ok_or_else(|| unknown(app))?;
            if !a.cluster {
                return Err(AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!("`{app}` runs one process: it cannot be reloaded gracefully"),
                ));
            }
            // Never stopped: one process after the other is replaced.
            a.state = ProcessState::Online;
            a.pid = Some(pid);
            a.restarts += 1;
            a.started_at = Some(chrono::Utc::now());
            s.log_start(app);
        }
        gate.pass().await?;
        Ok(())
    }

    /// The world's log of the app since `since` ([`WorldState::app_logs`](crate::WorldState::app_logs)),
    /// or `None` under [`WorldState::logs_unsupported`](crate::WorldState::logs_unsupported).
    async fn logs_since(&self, app: &AppName, since: DateTime<Utc>) -> Result<Option<AppLogs>, AdapterError> {
        one_app(app)?;
        let gate = self.world.enter(Method::ProcessLogs, app.as_str()).await?;
        let logs = {
            let s = self.world.lock();
            if !s.apps.contains_key(app) {
                return Err(unknown(app));
            }
            (!s.logs_unsupported).then(|| AppLogs {
                lines: s
                    .app_logs
                    .get(app)
                    .into_iter()
                    .flatten()
                    .filter(|(at, _)| *at >= since)
                    .map(|(_, text)| LogLine {
                        source: "stdout".into(),
                        text: text.clone(),
                    })
                    .collect(),
                partial: false,
                notes: Vec::new(),
            })
        };
        gate.pass().await?;
        Ok(logs)
    }
}
