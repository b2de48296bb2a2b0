//! [`Pm2ProcessManager`]: the [`ProcessManager`] over the pm2 CLI.

use crate::cli::Pm2Cli;
use crate::config::{AppSpec, CrashLoopPolicy, Pm2Config};
use crate::error::Pm2Error;
use crate::jlist::{Instance, Pm2Process};
use crate::metrics::Pm2Metrics;
use crate::select::{instances_of, one_app, unknown_app, NAME_HINT, START_HINT};
use crate::warm::WarmClient;
use async_trait::async_trait;
use rollback_core::sys::{pids_alive, Backoff};
use rollback_core::{AdapterError, AppName, ProcessManager, ProcessState, ProcessStatus};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A [`ProcessManager`] over the real pm2 CLI (`pm2 jlist`, `stop`, `start`, `restart`),
/// keeping the trait's contract:
///
/// - Each method returns only once the app really is in the asked state: `stop` waits for
///   pm2 to say `stopped` and for the old pids to be gone; `start` and `restart` wait for
///   `online` (a new pid for `restart`) and then for a stability window without restarts,
///   so a crash-looping app is an error ("crash loop: N restarts in Xs",
///   [`ErrorKind::Failed`](rollback_core::ErrorKind::Failed)), not a success. Not reached
///   within the state timeout: [`ErrorKind::Timeout`](rollback_core::ErrorKind::Timeout).
/// - A name addresses one app: `all`, patterns, `/regex/` and numbers (pm2 reads them as
///   every app, several, or a process id) are refused with
///   [`ErrorKind::InvalidInput`](rollback_core::ErrorKind::InvalidInput) before pm2 runs.
/// - States: pm2's `errored` (it gave up) is `Errored`; a crash loop pm2 is still restarting
///   (`waiting restart`, an instance that exited and is being restarted, or one running for
///   less than pm2's `min_uptime` after unstable restarts) is `Retrying`, never `Online`.
///   `restarts` is pm2's `restart_time`, summed over the instances (it counts `pm2 restart`).
/// - `status`, `stop` and `restart` never start pm2's daemon: one that is not running is
///   [`ErrorKind::Unavailable`](rollback_core::ErrorKind::Unavailable) (a fresh daemon
///   knows no apps; its answer would be "not found"). `start` starts it, as pm2 does, and
///   then the app from its [`AppSpec`].
#[derive(Clone, Debug)]
pub struct Pm2ProcessManager {
    cfg: Pm2Config,
    cli: Pm2Cli,
    /// The instances this manager stopped last, so that `start` can restart them by id
    /// without a `pm2 jlist` first: in a rollback the app is down between the two, and each
    /// pm2 CLI call costs a Node start-up (~250 ms).
    stopped: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<AppName, Vec<Pm2Process>>>>,
    /// A warm pm2 client, alive from the start of a `stop` to the end of the next `start`.
    warm: WarmSlot,
}

/// How long the warm client's status call may take before the CLI is used instead.
const WARM_STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The shared warm client slot (see [`crate::warm`]).
#[derive(Clone, Default)]
struct WarmSlot(std::sync::Arc<tokio::sync::Mutex<Option<WarmClient>>>);

impl std::fmt::Debug for WarmSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WarmSlot")
    }
}

/// Builds a [`Pm2ProcessManager`]: [`new`](Self::new), setters, then
/// [`build`](Self::build), which refuses settings that cannot work. Every setting has a
/// default (see [`Pm2Config`]).
///
/// ```
/// use rollback_pm2::Pm2Builder;
/// use std::time::Duration;
/// let pm2 = Pm2Builder::new()
///     .home("/srv/app/.pm2")
///     .state_timeout(Duration::from_secs(20))
///     .build()
///     .unwrap();
/// assert_eq!(pm2.config().state_timeout, Duration::from_secs(20));
/// let e = Pm2Builder::new().command_timeout(Duration::ZERO).build().unwrap_err();
/// assert_eq!(e.kind(), rollback_core::ErrorKind::InvalidInput);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Pm2Builder {
    cfg: Pm2Config,
}

impl Pm2Builder {
    /// A builder with the defaults (see [`Pm2Config::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The pm2 binary (default `pm2` on `PATH`).
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.cfg.binary = binary.into();
        self
    }

    /// `PM2_HOME` for every pm2 command (default: pm2's own, `~/.pm2`).
    pub fn home(mut self, home: impl Into<PathBuf>) -> Self {
        self.cfg.home = Some(home.into());
        self
    }

    /// How long one pm2 command may take (default 30 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.command_timeout = timeout;
        self
    }

    /// How long `stop`/`start`/`restart` wait for the asked state (default 30 s).
    pub fn state_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.state_timeout = timeout;
        self
    }

    /// How long an app must stay online without restarting before `start` returns
    /// (default 1.5 s).
    pub fn stability_window(mut self, window: Duration) -> Self {
        self.cfg.stability_window = window;
        self
    }

    /// `restarts` restarts within `window` after a start is a crash loop (default 3 in 10 s).
    pub fn crash_loop(mut self, restarts: u32, window: Duration) -> Self {
        self.cfg.crash_loop = CrashLoopPolicy::new(restarts, window);
        self
    }

    /// How to start `app` when pm2 does not know it.
    pub fn app(mut self, app: impl Into<AppName>, spec: AppSpec) -> Self {
        self.cfg.apps.insert(app.into(), spec);
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &Pm2Config {
        &self.cfg
    }

    /// The manager, once the settings are checked (see [`Pm2ProcessManager::new`]).
    pub fn build(self) -> Result<Pm2ProcessManager, AdapterError> {
        Pm2ProcessManager::new(self.cfg)
    }
}

impl Pm2ProcessManager {
    /// A builder with the defaults: [`Pm2Builder::new`].
    pub fn builder() -> Pm2Builder {
        Pm2Builder::new()
    }

    /// A manager with this configuration, once it is checked: the command timeout is not
    /// zero, the stability window is shorter than the state timeout, a crash loop takes at
    /// least one restart. pm2 is not run here.
    ///
    /// ```
    /// use rollback_pm2::{Pm2Config, Pm2ProcessManager};
    /// let mut cfg = Pm2Config::default();
    /// cfg.home = Some("/srv/app/.pm2".into());
    /// assert!(Pm2ProcessManager::new(cfg.clone()).is_ok());
    /// cfg.stability_window = cfg.state_timeout;
    /// assert!(Pm2ProcessManager::new(cfg).is_err());
    /// ```
    pub fn new(cfg: Pm2Config) -> Result<Self, AdapterError> {
        cfg.check()?;
        let cli = Pm2Cli {
            binary: cfg.binary.clone(),
            home: cfg.home.clone(),
            timeout: cfg.command_timeout,
        };
        Ok(Self {
            cfg,
            cli,
            stopped: Default::default(),
            warm: WarmSlot::default(),
        })
    }

    /// Starts the warm client if it is not running (while the app still serves).
    async fn warm_up(&self) {
        let mut slot = self.warm.0.lock().await;
        if slot.is_none() {
            match WarmClient::start(
                &self.cfg.binary,
                self.cfg.home.as_deref(),
                self.cfg.command_timeout,
            )
            .await
            {
                Ok(client) => *slot = Some(client),
                Err(why) => tracing::debug!(%why, "no warm pm2 client; using the CLI"),
            }
        }
    }

    /// Runs `verb` on the instances through the warm client when there is one, else (or
    /// when it fails) through the CLI.
    async fn run_warm<P: AsRef<Pm2Process>>(
        &self,
        verb: &str,
        app: &AppName,
        procs: &[P],
    ) -> Result<(), Pm2Error> {
        let mut slot = self.warm.0.lock().await;
        if let Some(client) = slot.as_mut() {
            let mut failed = None;
            for p in procs {
                if let Err(why) = client
                    .call(verb, p.as_ref().pm_id, self.cfg.command_timeout)
                    .await
                {
                    failed = Some(why);
                    break;
                }
            }
            match failed {
                None => return Ok(()),
                Some(why) => {
                    tracing::debug!(%why, verb, "the warm pm2 client failed; using the CLI");
                    *slot = None;
                }
            }
        }
        drop(slot);
        self.run_on(verb, app, procs).await
    }

    /// Closes the warm client (kills its node process).
    async fn cool_down(&self) {
        *self.warm.0.lock().await = None;
    }

    fn stopped_by_us(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<AppName, Vec<Pm2Process>>> {
        self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration in use.
    pub fn config(&self) -> &Pm2Config {
        &self.cfg
    }

    /// A [`MetricsSource`](rollback_core::MetricsSource) reading the same pm2.
    pub fn metrics(&self) -> Pm2Metrics {
        Pm2Metrics::new(self.cli.clone())
    }

    /// The app's instances; never starts pm2's daemon (see [`Pm2Cli::jlist_running`]).
    async fn instances(&self, app: &AppName) -> Result<Vec<Instance>, Pm2Error> {
        instances_of(self.cli.jlist_running().await?, app, NAME_HINT)
    }

    async fn run_on<P: AsRef<Pm2Process>>(
        &self,
        verb: &str,
        app: &AppName,
        procs: &[P],
    ) -> Result<(), Pm2Error> {
        // By pm_id, never by name: pm2 reads a name as "all", a namespace or a regex.
        let mut args: Vec<OsString> = vec![verb.into()];
        args.extend(procs.iter().map(|p| OsString::from(p.as_ref().pm_id.to_string())));
        self.cli
            .run(&format!("pm2 {verb} {app}"), &args, &[])
            .await
            .map(drop)
    }

    async fn start_from_spec(&self, app: &AppName, spec: &AppSpec) -> Result<(), Pm2Error> {
        let label = format!("pm2 start {app}");
        match spec {
            AppSpec::Ecosystem { file } => {
                let args = ["start".into(), file.into(), "--only".into(), app.as_str().into()];
                self.cli.run(&label, &args, &[]).await?;
            }
            AppSpec::Script(s) => {
                let mut args: Vec<OsString> = vec![
                    "start".into(),
                    (&s.script).into(),
                    "--name".into(),
                    app.as_str().into(),
                ];
                if let Some(cwd) = &s.cwd {
                    args.extend(["--cwd".into(), cwd.into()]);
                }
                if let Some(i) = &s.interpreter {
                    args.extend(["--interpreter".into(), i.into()]);
                }
                if let Some(n) = s.instances {
                    args.extend(["-i".into(), n.to_string().into()]);
                }
                if !s.args.is_empty() {
                    args.push("--".into());
                    args.extend(s.args.iter().map(OsString::from));
                }
                self.cli.run(&label, &args, &s.env).await?;
            }
        }
        Ok(())
    }

    /// Polls until every instance is online with a pid not in `old_pids` and has stayed so,
    /// without restarts, for the stability window; a crash loop or `errored` is an error.
    async fn wait_online(&self, app: &AppName, old_pids: &[u32]) -> Result<(), Pm2Error> {
        let started = Instant::now();
        let deadline = started + self.cfg.state_timeout;
        let policy = self.cfg.crash_loop;
        let mut backoff = Backoff::new();
        let mut prev_total: Option<u32> = None;
        let mut restarts: VecDeque<(Instant, u32)> = VecDeque::new();
        let mut stable_since: Option<Instant> = None;
        let mut stopped_samples = 0;
        loop {
            let procs = self.instances(app).await?;
            let now = Instant::now();
            let total: u32 = procs.iter().map(|p| p.restarts).sum();
            if let Some(prev) = prev_total.filter(|p| total > *p) {
                restarts.push_back((now, total - prev));
                stable_since = None;
            }
            prev_total = Some(total);
            while restarts
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > policy.window)
            {
                restarts.pop_front();
            }
            let recent: u32 = restarts.iter().map(|(_, n)| n).sum();
            let state = aggregate_state(&procs, now_ms());
            // `stopped` after a start: the app exited and pm2 will not restart it
            // (autorestart off). Twice in a row, to not trip on a transition.
            stopped_samples = if state == ProcessState::Stopped {
                stopped_samples + 1
            } else {
                0
            };
            if stopped_samples >= 2 {
                return Err(Pm2Error::ExitedAfterStart {
                    app: app.to_string(),
                    last: describe(&procs),
                });
            }
            if recent >= policy.restarts || state == ProcessState::Errored {
                return Err(Pm2Error::CrashLoop {
                    app: app.to_string(),
                    restarts: recent,
                    within: now.duration_since(started).min(policy.window),
                    last: describe(&procs),
                });
            }
            let fresh = state == ProcessState::Online
                && procs
                    .iter()
                    .all(|p| p.pid.is_some_and(|pid| !old_pids.contains(&pid)));
            if fresh {
                let since = *stable_since.get_or_insert(now);
                if now.duration_since(since) >= self.cfg.stability_window {
                    tracing::debug!(app = %app, waited = ?started.elapsed(), "pm2 app online and stable");
                    return Ok(());
                }
            } else {
                stable_since = None;
            }
            if now >= deadline {
                return Err(Pm2Error::StateTimeout {
                    app: app.to_string(),
                    wanted: "online and stable",
                    after: self.cfg.state_timeout,
                    last: describe(&procs),
                });
            }
            backoff.sleep(deadline).await;
        }
    }

    async fn stop_app(&self, app: &AppName) -> Result<(), Pm2Error> {
        let result = self.stop_inner(app).await;
        if !self.stopped_by_us().contains_key(app) {
            // Only a stop confirmed on the fast path keeps the warm client for the start.
            self.cool_down().await;
        }
        result
    }

    async fn stop_inner(&self, app: &AppName) -> Result<(), Pm2Error> {
        self.stopped_by_us().remove(app);
        let procs = self.instances(app).await?;
        if procs.iter().all(|p| p.state() == ProcessState::Stopped) {
            return Ok(());
        }
        let pids: Vec<u32> = procs.iter().filter_map(|p| p.pid).collect();
        self.warm_up().await;
        self.run_warm("stop", app, &procs).await?;
        let deadline = Instant::now() + self.cfg.state_timeout;
        // `pm2 stop` returned success: pm2 has stopped the instances and turned their
        // autorestart off. What is left to confirm is that the processes are gone, which
        // /proc tells without another pm2 call.
        if !pids.is_empty() {
            let mut alive = pids_alive(&pids).await;
            while !alive.is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
                alive = pids_alive(&alive).await;
            }
            if alive.is_empty() {
                let procs = procs.into_iter().map(|i| i.process).collect();
                self.stopped_by_us().insert(app.clone(), procs);
                return Ok(());
            }
        }
        let mut backoff = Backoff::new();
        loop {
            let procs = self.instances(app).await?;
            let alive = pids_alive(&pids).await;
            if alive.is_empty() && procs.iter().all(|p| p.state() == ProcessState::Stopped) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut last = describe(&procs);
                if !alive.is_empty() {
                    last.push_str(&format!("; old pid(s) {alive:?} still alive"));
                }
                return Err(Pm2Error::StateTimeout {
                    app: app.to_string(),
                    wanted: "stopped",
                    after: self.cfg.state_timeout,
                    last,
                });
            }
            backoff.sleep(deadline).await;
        }
    }

    async fn start_app(&self, app: &AppName) -> Result<(), Pm2Error> {
        let stopped = self.stopped_by_us().remove(app);
        let mut warm = self.warm.0.lock().await.take();
        if warm.is_some() && self.cli.daemon_up().await == Some(false) {
            // The daemon the warm client talked to is gone (killed, crashed): its calls
            // would wait out the command timeout. Straight to the CLI, which starts one.
            tracing::warn!(app = %app, "pm2's daemon is not running: starting through the CLI");
            warm = None;
        }
        if let (Some(procs), Some(mut client)) = (stopped, warm) {
            // The fast path of a rollback: restart what this manager stopped, by id,
            // through the warm client, if pm2 still says it is stopped (nobody started or
            // deleted it since). Anything else falls back to looking it up.
            // `wait_online` checks the app by name, so a wrong id can never pass as a start.
            let timeout = self.cfg.command_timeout;
            // A live daemon answers a status at once: a short limit, so that a daemon that
            // died since the check above costs seconds, not the command timeout.
            let status_timeout = timeout.min(WARM_STATUS_TIMEOUT);
            let mut fast = true;
            for p in &procs {
                fast = fast
                    && matches!(client.status(p.pm_id, status_timeout).await, Ok(Some(s)) if s == "stopped")
                    && client.call("restart", p.pm_id, timeout).await.is_ok();
            }
            drop(client);
            if fast {
                return self.wait_online(app, &[]).await;
            }
        }
        self.cool_down().await;
        // The one call that may start pm2's daemon: starting is how pm2 is brought up.
        let all = self.cli.jlist_instances().await?;
        let procs: Vec<Instance> = all.iter().filter(|p| p.name == app.as_str()).cloned().collect();
        let now = now_ms();
        if procs.is_empty() {
            let spec = match self.cfg.apps.get(app) {
                Some(spec) => spec,
                None => return Err(unknown_app(&all, app, START_HINT)),
            };
            self.start_from_spec(app, spec).await?;
        } else if procs.iter().all(|p| p.state_at(now) == ProcessState::Online) {
            return Ok(());
        } else {
            self.run_on("restart", app, &procs).await?;
        }
        self.wait_online(app, &[]).await
    }

    /// Cluster mode with two or more instances, every one online: `pm2 reload` keeps one
    /// serving while it replaces the others.
    async fn can_reload_app(&self, app: &AppName) -> Result<bool, Pm2Error> {
        let procs = instances_of(self.cli.jlist_running().await?, app, "")?;
        let now = now_ms();
        Ok(procs.len() >= 2
            && procs
                .iter()
                .all(|p| p.cluster && p.state_at(now) == ProcessState::Online))
    }

    /// `pm2 reload <app>`: pm2 replaces the cluster's instances one at a time (a new one is
    /// online before the old one goes); returns once every instance is online with a new
    /// pid and stayed so.
    async fn reload_app(&self, app: &AppName) -> Result<(), Pm2Error> {
        self.stopped_by_us().remove(app);
        self.cool_down().await;
        let procs = self.instances(app).await?;
        let old: Vec<u32> = procs.iter().filter_map(|p| p.pid).collect();
        // `pm2 reload` takes one id (never the name: pm2 reads a name as a namespace or a
        // regex too): one instance after the other, each replaced before the next goes.
        for p in &procs {
            self.run_on("reload", app, std::slice::from_ref(p)).await?;
        }
        self.wait_online(app, &old).await
    }

    async fn restart_app(&self, app: &AppName) -> Result<(), Pm2Error> {
        self.stopped_by_us().remove(app);
        self.cool_down().await;
        let procs = self.instances(app).await?;
        let old: Vec<u32> = procs.iter().filter_map(|p| p.pid).collect();
        self.run_on("restart", app, &procs).await?;
        self.wait_online(app, &old).await
    }
}

/// One state for all instances at `now_ms`: errored if any is, else retrying if any is,
/// the common state if they agree, otherwise in transition.
fn aggregate_state(procs: &[Instance], now_ms: u64) -> ProcessState {
    let states: Vec<ProcessState> = procs.iter().map(|p| p.state_at(now_ms)).collect();
    if states.contains(&ProcessState::Errored) {
        ProcessState::Errored
    } else if states.contains(&ProcessState::Retrying) {
        ProcessState::Retrying
    } else if let Some(first) = states.first().filter(|s| states.iter().all(|x| x == *s)) {
        *first
    } else if states.contains(&ProcessState::Stopping) {
        ProcessState::Stopping
    } else {
        ProcessState::Launching
    }
}

fn aggregate(app: &AppName, procs: &[Instance], now_ms: u64) -> ProcessStatus {
    let state = aggregate_state(procs, now_ms);
    let online = state == ProcessState::Online;
    ProcessStatus {
        app: app.clone(),
        state,
        pid: procs.iter().find_map(|p| p.running_pid()),
        restarts: Some(procs.iter().map(|p| p.restarts).sum()),
        uptime: procs
            .iter()
            .filter_map(|p| p.started_at_ms)
            .map(|t| Duration::from_millis(now_ms.saturating_sub(t)))
            .min()
            .filter(|_| online),
    }
}

/// "online (pm_id 0, pid 123, 2 restarts)" for each instance.
fn describe<P: AsRef<Pm2Process>>(procs: &[P]) -> String {
    procs
        .iter()
        .map(|p| {
            let p = p.as_ref();
            let pid = p
                .pid
                .map_or_else(|| "no pid".to_owned(), |pid| format!("pid {pid}"));
            format!("{} (pm_id {}, {pid}, {} restarts)", p.status, p.pm_id, p.restarts)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[async_trait]
impl ProcessManager for Pm2ProcessManager {
    async fn status(&self, app: &AppName) -> Result<ProcessStatus, AdapterError> {
        one_app(app)?;
        let procs = self.instances(app).await?;
        Ok(aggregate(app, &procs, now_ms()))
    }

    async fn stop(&self, app: &AppName) -> Result<(), AdapterError> {
        one_app(app)?;
        Ok(self.stop_app(app).await?)
    }

    async fn start(&self, app: &AppName) -> Result<(), AdapterError> {
        one_app(app)?;
        Ok(self.start_app(app).await?)
    }

    async fn restart(&self, app: &AppName) -> Result<(), AdapterError> {
        one_app(app)?;
        Ok(self.restart_app(app).await?)
    }

    async fn can_reload(&self, app: &AppName) -> Result<bool, AdapterError> {
        one_app(app)?;
        Ok(self.can_reload_app(app).await?)
    }

    async fn reload(&self, app: &AppName) -> Result<(), AdapterError> {
        one_app(app)?;
        Ok(self.reload_app(app).await?)
    }

    /// pm2's log files of the app (`pm_out_log_path`, `pm_err_log_path` from `pm2 jlist`)
    /// since `since`, the app spec's environment values redacted: see `crate::logs` for
    /// how "since" is told. Never starts pm2's daemon.
    async fn logs_since(
        &self,
        app: &AppName,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<rollback_core::AppLogs>, AdapterError> {
        one_app(app)?;
        let env = match self.cfg.apps.get(app) {
            Some(AppSpec::Script(s)) => s.env.as_slice(),
            _ => &[],
        };
        Ok(Some(crate::logs::logs_since(&self.cli, app, since, env).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, id: u32, pid: Option<u32>, status: &str, restarts: u32) -> Pm2Process {
        Pm2Process {
            name: name.into(),
            pm_id: id,
            pid,
            status: status.into(),
            restarts,
            started_at_ms: Some(1_000),
            memory_bytes: None,
            cpu_percent: None,
        }
    }

    fn i(name: &str, id: u32, pid: Option<u32>, status: &str, restarts: u32) -> Instance {
        Instance {
            process: p(name, id, pid, status, restarts),
            unstable_restarts: 0,
            min_uptime_ms: 1000,
            cluster: false,
            out_log: None,
            err_log: None,
        }
    }

    #[test]
    fn instances_aggregate_into_one_status() {
        let app = AppName::new("web");
        let two = [
            i("web", 0, Some(10), "online", 1),
            i("web", 1, Some(11), "online", 2),
        ];
        let s = aggregate(&app, &two, 4_000);
        assert_eq!(
            (s.state, s.pid, s.restarts, s.uptime),
            (
                ProcessState::Online,
                Some(10),
                Some(3),
                Some(Duration::from_secs(3))
            )
        );
        let mixed = [
            i("web", 0, Some(10), "online", 0),
            i("web", 1, None, "stopped", 0),
        ];
        assert_eq!(aggregate(&app, &mixed, 0).state, ProcessState::Launching);
        let bad = [
            i("web", 0, Some(10), "online", 0),
            i("web", 1, None, "errored", 0),
        ];
        assert_eq!(aggregate(&app, &bad, 0).state, ProcessState::Errored);
        let stopped = [i("web", 0, None, "stopped", 0)];
        let s = aggregate(&app, &stopped, 5_000);
        assert_eq!((s.state, s.pid, s.uptime), (ProcessState::Stopped, None, None));
    }

    #[test]
    fn a_crash_loop_pm2_has_not_given_up_on_is_retrying_not_online() {
        let app = AppName::new("web");
        // Exited by itself, pm2 about to restart it: the old pid is still in jlist.
        let exited = [i("web", 0, Some(10), "stopped", 4)];
        let s = aggregate(&app, &exited, 5_000);
        assert_eq!((s.state, s.pid), (ProcessState::Retrying, None));
        // A restart delay after a crash.
        let waiting = [i("web", 0, None, "waiting restart", 4)];
        assert_eq!(aggregate(&app, &waiting, 5_000).state, ProcessState::Retrying);
        // Online for less than min_uptime after unstable restarts: the loop goes on.
        let mut young = i("web", 0, Some(11), "online", 5);
        young.unstable_restarts = 5;
        assert_eq!(young.state_at(1_500), ProcessState::Retrying);
        let s = aggregate(&app, std::slice::from_ref(&young), 1_500);
        assert_eq!(
            (s.state, s.pid, s.uptime),
            (ProcessState::Retrying, Some(11), None)
        );
        // Up for longer than min_uptime: it came back.
        assert_eq!(young.state_at(2_000), ProcessState::Online);
        // pm2 gave up.
        let gave_up = [i("web", 0, None, "errored", 16)];
        assert_eq!(aggregate(&app, &gave_up, 5_000).state, ProcessState::Errored);
        // Stopped on request after a crash loop: pm2 clears the pid.
        let mut stopped = i("web", 0, None, "stopped", 16);
        stopped.unstable_restarts = 3;
        assert_eq!(aggregate(&app, &[stopped], 5_000).state, ProcessState::Stopped);
    }

    #[test]
    fn builder_refuses_unworkable_settings() {
        let e = Pm2ProcessManager::builder()
            .crash_loop(0, Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), rollback_core::ErrorKind::InvalidInput);
        let e = Pm2ProcessManager::builder()
            .stability_window(Duration::from_secs(5))
            .state_timeout(Duration::from_secs(2))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("stability window"), "{e}");
        let e = Pm2ProcessManager::builder()
            .command_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("command timeout"), "{e}");
    }

    #[test]
    fn debug_output_never_shows_an_apps_env_values() {
        let spec = crate::ScriptSpec::new("server.js").env("DB_PASSWORD", "hunter2-canary");
        let builder = Pm2ProcessManager::builder().app("web", AppSpec::Script(spec));
        let shown = format!(
            "{builder:?} {:?} {:?}",
            builder.config(),
            builder.clone().build().unwrap()
        );
        assert!(
            shown.contains("DB_PASSWORD") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
