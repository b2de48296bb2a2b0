//! [`SupervisordProcessManager`]: the [`ProcessManager`] over supervisorctl.

use crate::ctl::{detail, Ctl};
use crate::error::SupervisordError;
use crate::status::{ProgramStatus, SupervisordState};
use async_trait::async_trait;
use rollback_core::sys::{pids_alive, Backoff};
use rollback_core::{AdapterError, AppName, ProcessManager, ProcessStatus};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a [`SupervisordProcessManager`] runs and how long it waits. Build one with
/// [`SupervisordProcessManager::builder`], which checks it.
///
/// ```
/// use rollback_supervisord::SupervisordConfig;
/// let c = SupervisordConfig::new("/etc/supervisor/supervisord.conf");
/// assert_eq!(c.binary.to_str(), Some("supervisorctl"));
/// assert_eq!(c.state_timeout, std::time::Duration::from_secs(30));
/// assert!(c.stability_window.is_zero());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SupervisordConfig {
    /// The configuration file every supervisorctl command gets (`-c`): it names
    /// supervisord's socket (`[supervisorctl] serverurl`) and any credentials, so that
    /// none of them is ever on a command line.
    pub config: PathBuf,
    /// The supervisorctl binary (default `supervisorctl` on `PATH`).
    pub binary: PathBuf,
    /// How long a `supervisorctl status` may take (default 10 s); longer means supervisord
    /// does not answer ([`ErrorKind::Unavailable`](rollback_core::ErrorKind::Unavailable)).
    pub command_timeout: Duration,
    /// How long `stop`, `start` and `restart` wait for the asked state (default 30 s),
    /// supervisorctl's own waits (`stopwaitsecs`, `startsecs`) included; then
    /// [`ErrorKind::Timeout`](rollback_core::ErrorKind::Timeout) naming the last state.
    pub state_timeout: Duration,
    /// How long a program must stay `RUNNING` with the same pid before `start`/`restart`
    /// return, on top of supervisord's own `startsecs` (default zero: `RUNNING` already
    /// means it stayed up for `startsecs`, so set `startsecs` in the program's section).
    pub stability_window: Duration,
}

impl SupervisordConfig {
    /// The defaults, with supervisorctl reading `config`.
    pub fn new(config: impl Into<PathBuf>) -> Self {
        Self {
            config: config.into(),
            binary: PathBuf::from("supervisorctl"),
            command_timeout: Duration::from_secs(10),
            state_timeout: Duration::from_secs(30),
            stability_window: Duration::ZERO,
        }
    }

    fn check(&self) -> Result<(), SupervisordError> {
        let bad = |m: String| Err(SupervisordError::Config(m));
        if !self.config.is_file() {
            return bad(format!(
                "the supervisord configuration `{}` is not a readable file: give the file supervisord runs with (`supervisord -c <file>`)",
                self.config.display()
            ));
        }
        if self.binary.as_os_str().is_empty() {
            return bad("the supervisorctl binary must not be empty".into());
        }
        if self.command_timeout.is_zero() {
            return bad("the command timeout must not be zero".into());
        }
        if self.state_timeout.is_zero() {
            return bad("the state timeout must not be zero".into());
        }
        if self.stability_window >= self.state_timeout {
            return bad(format!(
                "the stability window {:?} must be shorter than the state timeout {:?}",
                self.stability_window, self.state_timeout
            ));
        }
        Ok(())
    }
}

/// Builds a [`SupervisordProcessManager`]: [`new`](Self::new), setters, then
/// [`build`](Self::build), which refuses settings that cannot work.
///
/// ```
/// use rollback_core::ErrorKind;
/// use rollback_supervisord::{SupervisordBuilder, SupervisordProcessManager};
/// use std::time::Duration;
/// let conf = tempfile::NamedTempFile::new().unwrap();
/// let pm = SupervisordBuilder::new(conf.path())
///     .state_timeout(Duration::from_secs(20))
///     .stability_window(Duration::from_secs(2))
///     .build()
///     .unwrap();
/// assert_eq!(pm.config().state_timeout, Duration::from_secs(20));
///
/// let e = SupervisordProcessManager::builder("/nonexistent/supervisord.conf").build().unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::InvalidInput);
/// let e = SupervisordProcessManager::builder(conf.path())
///     .stability_window(Duration::from_secs(60))
///     .build()
///     .unwrap_err();
/// assert!(e.to_string().contains("stability window"));
/// ```
#[derive(Clone, Debug)]
pub struct SupervisordBuilder {
    cfg: SupervisordConfig,
}

impl SupervisordBuilder {
    /// A builder with the defaults, supervisorctl reading `config` (see
    /// [`SupervisordConfig::new`]).
    pub fn new(config: impl Into<PathBuf>) -> Self {
        Self {
            cfg: SupervisordConfig::new(config),
        }
    }

    /// The supervisorctl binary (default `supervisorctl` on `PATH`).
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.cfg.binary = binary.into();
        self
    }

    /// How long one `supervisorctl status` may take (default 10 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.command_timeout = timeout;
        self
    }

    /// How long `stop`/`start`/`restart` wait for the asked state (default 30 s).
    pub fn state_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.state_timeout = timeout;
        self
    }

    /// How long a program must stay `RUNNING`, same pid, before `start`/`restart` return,
    /// on top of supervisord's `startsecs` (default zero).
    pub fn stability_window(mut self, window: Duration) -> Self {
        self.cfg.stability_window = window;
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &SupervisordConfig {
        &self.cfg
    }

    /// The manager, once the settings are checked: the configuration file exists, the
    /// timeouts are not zero, the stability window is shorter than the state timeout.
    /// Neither supervisorctl nor supervisord is run here.
    pub fn build(self) -> Result<SupervisordProcessManager, AdapterError> {
        SupervisordProcessManager::new(self.cfg)
    }
}

/// A [`ProcessManager`] over supervisord (`supervisorctl -c <config> status|stop|start|
/// restart <program>`), keeping the trait's contract:
///
/// - **One program.** An [`AppName`] is a program's namespec, `program` or `group:program`.
///   Names supervisorctl reads as several programs are refused with
///   [`ErrorKind::InvalidInput`](rollback_core::ErrorKind::InvalidInput) before it runs:
///   `all`, an empty name, `group:` and patterns (`*`, `?`, `[`, so `group:*`), names with
///   whitespace (supervisorctl splits them into several names), and `/…/` (the contract's).
/// - **States**: `RUNNING` is `Online` with its pid,
///   `BACKOFF` `Retrying`, `FATAL` `Errored`, `STOPPED` and `EXITED` `Stopped`, `STARTING`
///   `Launching`, `STOPPING` `Stopping`. `restarts` is always `None`: supervisord counts
///   no restarts.
/// - **Waits.** `stop` returns once supervisord says the program is stopped and its old
///   pid is gone; `start` once it is `RUNNING` (supervisord's `RUNNING` means it stayed up
///   for `startsecs`) and, with a [stability window](SupervisordBuilder::stability_window),
///   stayed so with the same pid; `restart` once a new process is. A program that exits
///   before `startsecs` is [`ErrorKind::Failed`](rollback_core::ErrorKind::Failed) as soon
///   as supervisorctl reports it (`spawn error`, `abnormal termination`) and is left
///   `Retrying` (`BACKOFF`) or `Errored` (`FATAL`). Not reached within the state timeout:
///   [`ErrorKind::Timeout`](rollback_core::ErrorKind::Timeout) naming the last state.
/// - **`stop` of a crashed program.** A `BACKOFF` program is stopped (`STOPPED`). A
///   `FATAL` one is not running and supervisord will not restart it, so `stop` is `Ok` and
///   changes nothing, but supervisord keeps it `FATAL` (only a `start` leaves that state),
///   so `status` still says `Errored`, not `Stopped`.
/// - **supervisord down.** A missing or refusing socket, a supervisorctl that hangs, a
///   missing binary or configuration: [`ErrorKind::Unavailable`](rollback_core::ErrorKind::Unavailable),
///   from every method, never `NotFound`. This adapter never starts supervisord.
///   Refused credentials: `PermissionDenied`. An unknown program: `NotFound`, naming the
///   programs supervisord knows.
///
/// supervisorctl's output holds no program environment; what goes into an error is its
/// words about the one program (or its connection error, with any URL password redacted).
#[derive(Clone, Debug)]
pub struct SupervisordProcessManager {
    cfg: SupervisordConfig,
    ctl: Ctl,
}

impl SupervisordProcessManager {
    /// A builder with the defaults, supervisorctl reading `config`: [`SupervisordBuilder::new`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rollback_core::AdapterError> {
    /// use rollback_core::{AppName, ProcessManager};
    /// use rollback_supervisord::SupervisordProcessManager;
    /// let pm = SupervisordProcessManager::builder("/etc/supervisor/supervisord.conf").build()?;
    /// pm.restart(&AppName::new("web")).await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(config: impl Into<PathBuf>) -> SupervisordBuilder {
        SupervisordBuilder::new(config)
    }

    /// A manager with this configuration, once it is checked (as
    /// [`SupervisordBuilder::build`] does). Blocking (one `stat` of the configuration
    /// file): call it at startup.
    ///
    /// ```
    /// use rollback_supervisord::{SupervisordConfig, SupervisordProcessManager};
    /// let mut cfg = SupervisordConfig::new("/nonexistent.conf");
    /// assert!(SupervisordProcessManager::new(cfg.clone()).is_err());
    /// let conf = tempfile::NamedTempFile::new().unwrap();
    /// cfg.config = conf.path().to_path_buf();
    /// assert!(SupervisordProcessManager::new(cfg).is_ok());
    /// ```
    pub fn new(cfg: SupervisordConfig) -> Result<Self, AdapterError> {
        cfg.check()?;
        let ctl = Ctl {
            binary: cfg.binary.clone(),
            config: cfg.config.clone(),
            command_timeout: cfg.command_timeout,
        };
        Ok(Self { cfg, ctl })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SupervisordConfig {
        &self.cfg
    }

    /// The configuration file supervisorctl reads.
    pub fn config_file(&self) -> &Path {
        &self.cfg.config
    }

    /// The program's status line, or [`SupervisordError::UnknownApp`].
    async fn find(&self, app: &str) -> Result<ProgramStatus, SupervisordError> {
        let all = self.ctl.status_all().await?;
        if let Some(p) = all.iter().find(|p| p.name == app) {
            return Ok(p.clone());
        }
        let mut known: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
        known.sort_unstable();
        Err(SupervisordError::UnknownApp {
            app: app.to_owned(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        })
    }

    /// Runs `supervisorctl <verb> <app>` within what is left until `deadline`; its lines
    /// about `app` (`app: started`, `app: ERROR (…)`), or the last state seen as a
    /// [`SupervisordError::StateTimeout`] when it did not finish in time.
    async fn act(
        &self,
        verb: &str,
        app: &str,
        wanted: &'static str,
        deadline: Instant,
    ) -> Result<Vec<String>, SupervisordError> {
        let label = format!("supervisorctl {verb} {app}");
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match self.ctl.run_within(&label, &[verb, app], left).await? {
            Some(out) => {
                let prefix = format!("{app}: ");
                let lines: Vec<String> = out
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix(&prefix).map(str::to_owned))
                    .collect();
                if lines.is_empty() {
                    return Err(SupervisordError::BadOutput {
                        command: label,
                        app: app.to_owned(),
                        detail: detail(&out),
                    });
                }
                Ok(lines)
            }
            None => Err(self.timeout(app, wanted).await),
        }
    }

    /// A [`SupervisordError::StateTimeout`] naming the state now (or why it is unknown).
    async fn timeout(&self, app: &str, wanted: &'static str) -> SupervisordError {
        let last = match self.find(app).await {
            Ok(p) => p.describe(),
            Err(e) => format!("unknown ({e})"),
        };
        SupervisordError::StateTimeout {
            app: app.to_owned(),
            wanted,
            after: self.cfg.state_timeout,
            last,
        }
    }

    async fn stop_app(&self, app: &str) -> Result<(), SupervisordError> {
        let deadline = Instant::now() + self.cfg.state_timeout;
        let first = self.find(app).await?;
        self.stop_until(app, first, deadline).await
    }

    /// Stops `app`, seen as `seen`, and waits until it is stopped and its pid gone.
    async fn stop_until(
        &self,
        app: &str,
        mut seen: ProgramStatus,
        deadline: Instant,
    ) -> Result<(), SupervisordError> {
        let mut pids: Vec<u32> = seen.pid.into_iter().collect();
        let mut exited_samples = 0;
        let mut backoff = Backoff::new();
        loop {
            match seen.state {
                SupervisordState::Running | SupervisordState::Starting | SupervisordState::Backoff => {
                    pids.extend(seen.pid);
                    let lines = self.act("stop", app, "stopped", deadline).await?;
                    let result = lines.last().map_or("", String::as_str);
                    match result {
                        "stopped" | "ERROR (not running)" => {
                            // supervisorctl waited for a stopped state; /proc confirms.
                            if result == "stopped" && pids_alive(&pids).await.is_empty() {
                                return Ok(());
                            }
                        }
                        "ERROR (no such process)" => {
                            return Err(self.find(app).await.err().unwrap_or_else(|| unknown(app)))
                        }
                        other => {
                            return Err(SupervisordError::CommandFailed {
                                command: format!("supervisorctl stop {app}"),
                                detail: detail(other),
                            })
                        }
                    }
                }
                SupervisordState::Stopped | SupervisordState::Fatal => {
                    if pids_alive(&pids).await.is_empty() {
                        return Ok(());
                    }
                }
                // EXITED is left at once when supervisord restarts the program: twice in a
                // row, it stays.
                SupervisordState::Exited => {
                    exited_samples += 1;
                    if exited_samples >= 2 && pids_alive(&pids).await.is_empty() {
                        return Ok(());
                    }
                }
                SupervisordState::Stopping | SupervisordState::Unknown => {}
            }
            if seen.state != SupervisordState::Exited {
                exited_samples = 0;
            }
            if Instant::now() >= deadline {
                let mut last = seen.describe();
                let alive = pids_alive(&pids).await;
                if !alive.is_empty() {
                    last.push_str(&format!("; old pid(s) {alive:?} still alive"));
                }
                return Err(SupervisordError::StateTimeout {
                    app: app.to_owned(),
                    wanted: "stopped",
                    after: self.cfg.state_timeout,
                    last,
                });
            }
            backoff.sleep(deadline).await;
            seen = self.find(app).await?;
        }
    }

    async fn start_app(&self, app: &str) -> Result<(), SupervisordError> {
        let deadline = Instant::now() + self.cfg.state_timeout;
        let seen = self.find(app).await?;
        match seen.state {
            SupervisordState::Running => return Ok(()),
            // Someone else's start under way: wait for its outcome.
            SupervisordState::Starting => return self.wait_online(app, None, deadline).await,
            // A crash loop under way, or a stop: a fresh start, from STOPPED.
            SupervisordState::Backoff | SupervisordState::Stopping => {
                self.stop_until(app, seen, deadline).await?;
            }
            SupervisordState::Stopped
            | SupervisordState::Exited
            | SupervisordState::Fatal
            | SupervisordState::Unknown => {}
        }
        let lines = self.act("start", app, "online", deadline).await?;
        self.after_start(app, lines.last().map_or("", String::as_str), None, deadline)
            .await
    }

    async fn restart_app(&self, app: &str) -> Result<(), SupervisordError> {
        let deadline = Instant::now() + self.cfg.state_timeout;
        let seen = self.find(app).await?;
        let old = seen.pid;
        // supervisorctl's restart is its stop then its start, in one run.
        let lines = self.act("restart", app, "online", deadline).await?;
        let stop = lines.first().map_or("", String::as_str);
        if !matches!(stop, "stopped" | "ERROR (not running)") {
            return Err(SupervisordError::CommandFailed {
                command: format!("supervisorctl restart {app}"),
                detail: detail(&lines.join("; ")),
            });
        }
        if let Some(pid) = old {
            // The old process must be gone, not only replaced in supervisord's table.
            let mut backoff = Backoff::new();
            while !pids_alive(&[pid]).await.is_empty() && Instant::now() < deadline {
                backoff.sleep(deadline).await;
            }
        }
        let start = if lines.len() > 1 {
            lines.last().map_or("", String::as_str)
        } else {
            ""
        };
        self.after_start(app, start, old, deadline).await
    }

    /// Reads supervisorctl's start result and waits for the program to be online (with a
    /// pid other than `old`) and stable.
    async fn after_start(
        &self,
        app: &str,
        result: &str,
        old: Option<u32>,
        deadline: Instant,
    ) -> Result<(), SupervisordError> {
        match result {
            // supervisord's RUNNING: up for startsecs, a new process.
            "started" if self.cfg.stability_window.is_zero() => Ok(()),
            "started" | "ERROR (already started)" => self.wait_online(app, old, deadline).await,
            "ERROR (spawn error)"
            | "ERROR (abnormal termination)"
            | "ERROR (no such file)"
            | "ERROR (file is not executable)" => {
                let last = match self.find(app).await {
                    Ok(p) => p.describe(),
                    Err(e) => format!("unknown ({e})"),
                };
                Err(SupervisordError::CrashedAtStart {
                    app: app.to_owned(),
                    why: result
                        .trim_start_matches("ERROR (")
                        .trim_end_matches(')')
                        .to_owned(),
                    last,
                })
            }
            "ERROR (no such process)" => Err(self.find(app).await.err().unwrap_or_else(|| unknown(app))),
            other => Err(SupervisordError::CommandFailed {
                command: format!("supervisorctl start {app}"),
                detail: if other.is_empty() {
                    "it printed no start result".to_owned()
                } else {
                    detail(other)
                },
            }),
        }
    }

    /// Polls until `app` is `RUNNING` with a pid other than `old` and stayed so, same pid,
    /// for the stability window. A crash, an exit or a new pid meanwhile is an error.
    async fn wait_online(
        &self,
        app: &str,
        old: Option<u32>,
        deadline: Instant,
    ) -> Result<(), SupervisordError> {
        let window = self.cfg.stability_window;
        let mut online: Option<(Instant, u32)> = None;
        let mut down_samples = 0;
        let mut backoff = Backoff::new();
        loop {
            let seen = self.find(app).await?;
            let now = Instant::now();
            match (seen.state, seen.pid) {
                (SupervisordState::Running, Some(pid)) if Some(pid) != old => match online {
                    Some((since, p)) if p == pid => {
                        if now.duration_since(since) >= window {
                            return Ok(());
                        }
                    }
                    Some(_) => return Err(self.exited(app, "exited and supervisord restarted it", &seen)),
                    None if window.is_zero() => return Ok(()),
                    None => online = Some((now, pid)),
                },
                (SupervisordState::Backoff | SupervisordState::Fatal, _) => {
                    if online.is_some() {
                        return Err(self.exited(app, "crashed", &seen));
                    }
                    return Err(SupervisordError::CrashedAtStart {
                        app: app.to_owned(),
                        why: "it exited before startsecs".to_owned(),
                        last: seen.describe(),
                    });
                }
                (SupervisordState::Stopped | SupervisordState::Exited, _) => {
                    down_samples += 1;
                    if online.is_some() || down_samples >= 2 {
                        return Err(self.exited(app, "exited", &seen));
                    }
                }
                _ => {}
            }
            if now >= deadline {
                return Err(SupervisordError::StateTimeout {
                    app: app.to_owned(),
                    wanted: "online",
                    after: self.cfg.state_timeout,
                    last: seen.describe(),
                });
            }
            backoff.sleep(deadline).await;
        }
    }

    fn exited(&self, app: &str, what: &'static str, seen: &ProgramStatus) -> SupervisordError {
        SupervisordError::ExitedAfterStart {
            app: app.to_owned(),
            what,
            window: self.cfg.stability_window,
            last: seen.describe(),
        }
    }
}

/// An unknown program whose list of known programs could not be had.
fn unknown(app: &str) -> SupervisordError {
    SupervisordError::UnknownApp {
        app: app.to_owned(),
        known: "not listed".into(),
    }
}

/// The namespec to give supervisorctl for `app`, or [`SupervisordError::NotOneApp`] for a
/// name it would read as several programs (the [`ProcessManager`] contract). `web:web` is
/// `web` (supervisorctl prints a program in a group of its own without the group).
pub(crate) fn one_program(app: &AppName) -> Result<String, SupervisordError> {
    let name = app.as_str();
    let why = if let Some(why) = app.why_not_one_app() {
        why
    } else if name.ends_with(':') {
        "supervisorctl reads `group:` as every program of the group"
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "supervisorctl splits a name at whitespace into several names"
    } else {
        return Ok(match name.split_once(':') {
            Some((group, program)) if group == program => program.to_owned(),
            _ => name.to_owned(),
        });
    };
    Err(SupervisordError::NotOneApp {
        app: name.to_owned(),
        why,
    })
}

#[async_trait]
impl ProcessManager for SupervisordProcessManager {
    async fn status(&self, app: &AppName) -> Result<ProcessStatus, AdapterError> {
        let name = one_program(app)?;
        Ok(self.find(&name).await?.to_status(app))
    }

    async fn stop(&self, app: &AppName) -> Result<(), AdapterError> {
        let name = one_program(app)?;
        Ok(self.stop_app(&name).await?)
    }

    async fn start(&self, app: &AppName) -> Result<(), AdapterError> {
        let name = one_program(app)?;
        Ok(self.start_app(&name).await?)
    }

    async fn restart(&self, app: &AppName) -> Result<(), AdapterError> {
        let name = one_program(app)?;
        Ok(self.restart_app(&name).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollback_core::ErrorKind;

    #[test]
    fn names_that_address_several_programs_are_refused() {
        for name in [
            "all", "*", "web*", "group:*", "grp:", "web?", "web[12]", "/web/", "", "a b", "web\t", "web\n",
        ] {
            let e = one_program(&AppName::new(name)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name:?}: {e}");
            assert!(e.to_string().contains("exactly one program"), "{e}");
        }
        for (name, spec) in [
            ("web", "web"),
            ("grp:g1", "grp:g1"),
            ("web:web", "web"),
            ("api-2", "api-2"),
            ("0", "0"),
            ("/", "/"),
        ] {
            assert_eq!(one_program(&AppName::new(name)).unwrap(), spec, "{name}");
        }
    }

    #[test]
    fn the_builder_refuses_unworkable_settings() {
        let conf = tempfile::NamedTempFile::new().unwrap();
        let b = || SupervisordProcessManager::builder(conf.path());
        for (builder, expected) in [
            (b().command_timeout(Duration::ZERO), "command timeout"),
            (b().state_timeout(Duration::ZERO), "state timeout"),
            (b().stability_window(Duration::from_secs(30)), "stability window"),
            (b().binary(""), "binary"),
            (
                SupervisordProcessManager::builder("/nonexistent/sv.conf"),
                "/nonexistent/sv.conf",
            ),
        ] {
            let e = builder.build().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains(expected), "{e}");
        }
        assert!(b().build().is_ok());
    }

    #[tokio::test]
    async fn pattern_names_are_refused_before_supervisorctl_runs() {
        let conf = tempfile::NamedTempFile::new().unwrap();
        // Were it run, a missing binary would be `Unavailable`.
        let pm = SupervisordProcessManager::builder(conf.path())
            .binary("/nonexistent/supervisorctl")
            .build()
            .unwrap();
        let app = AppName::new("group:*");
        assert_eq!(pm.status(&app).await.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(pm.stop(&app).await.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(pm.start(&app).await.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(
            pm.restart(&app).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let e = pm.status(&AppName::new("web")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    }
}
