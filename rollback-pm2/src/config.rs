//! How to reach pm2 and how to start apps it does not know yet.

use crate::error::Pm2Error;
use rollback_core::{AppName, Secret};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// When repeated restarts after a start count as a crash loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrashLoopPolicy {
    /// This many restarts ...
    pub restarts: u32,
    /// ... within this window is a crash loop.
    pub window: Duration,
}

impl CrashLoopPolicy {
    /// `restarts` restarts within `window` after a start is a crash loop.
    pub fn new(restarts: u32, window: Duration) -> Self {
        Self { restarts, window }
    }
}

impl Default for CrashLoopPolicy {
    fn default() -> Self {
        Self {
            restarts: 3,
            window: Duration::from_secs(10),
        }
    }
}

/// How to start an app pm2 does not know yet (after `pm2 delete`, on a fresh daemon).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AppSpec {
    /// `pm2 start <file> --only <app>`: an ecosystem file that declares the app.
    Ecosystem {
        /// The ecosystem file (`ecosystem.config.js`, `.json`, `.yml`).
        file: PathBuf,
    },
    /// `pm2 start <script> --name <app> [--cwd ..] [--interpreter ..] [-- args..]`.
    Script(ScriptSpec),
}

/// A script pm2 runs as the app: [`new`](Self::new), then the setters. Its `Debug` shows
/// the environment's keys, never its values.
///
/// ```
/// use rollback_pm2::ScriptSpec;
/// let spec = ScriptSpec::new("dist/server.js").cwd("/srv/app/current").env("DB_PASSWORD", "hunter2");
/// assert!(!format!("{spec:?}").contains("hunter2"));
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ScriptSpec {
    /// The script or binary.
    pub script: PathBuf,
    /// Its working directory.
    pub cwd: Option<PathBuf>,
    /// pm2's `--interpreter` (e.g. `none` for a binary); pm2 guesses when absent.
    pub interpreter: Option<String>,
    /// Arguments after `--`.
    pub args: Vec<String>,
    /// Environment for the app, given to pm2 through its environment (never on a command
    /// line, never logged).
    pub env: Vec<(String, Secret)>,
    /// pm2's cluster mode with this many instances (`-i N`), which can be reloaded
    /// gracefully (one instance at a time); fork mode (one process) when absent.
    pub instances: Option<u32>,
}

impl ScriptSpec {
    /// Runs `script`.
    pub fn new(script: impl Into<PathBuf>) -> Self {
        Self {
            script: script.into(),
            ..Self::default()
        }
    }

    /// In working directory `cwd`.
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// With pm2's `--interpreter`.
    pub fn interpreter(mut self, interpreter: impl Into<String>) -> Self {
        self.interpreter = Some(interpreter.into());
        self
    }

    /// In pm2's cluster mode with `n` instances (`-i n`): the rollback can then reload the
    /// app one instance at a time, without downtime, when the database is not in scope.
    pub fn instances(mut self, n: u32) -> Self {
        self.instances = Some(n);
        self
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds an environment variable; the value is a secret.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// Everything the adapter needs; built with [`Pm2Builder`](crate::Pm2Builder) (or
/// [`Pm2Config::default`] and its fields, then
/// [`Pm2ProcessManager::new`](crate::Pm2ProcessManager::new)).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Pm2Config {
    /// The pm2 binary (default `pm2`, looked up on `PATH`).
    pub binary: PathBuf,
    /// `PM2_HOME` for every command; pm2's default (`~/.pm2`) when absent.
    pub home: Option<PathBuf>,
    /// How long one pm2 command may take.
    pub command_timeout: Duration,
    /// How long `stop`/`start`/`restart` wait for the asked state.
    pub state_timeout: Duration,
    /// How long an app must stay online without restarting before `start` returns.
    pub stability_window: Duration,
    /// What counts as a crash loop.
    pub crash_loop: CrashLoopPolicy,
    /// How to start apps pm2 does not know.
    pub apps: BTreeMap<AppName, AppSpec>,
}

impl Default for Pm2Config {
    fn default() -> Self {
        Self {
            binary: PathBuf::from("pm2"),
            home: None,
            command_timeout: Duration::from_secs(30),
            state_timeout: Duration::from_secs(30),
            stability_window: Duration::from_millis(1500),
            crash_loop: CrashLoopPolicy::default(),
            apps: BTreeMap::new(),
        }
    }
}

impl Pm2Config {
    /// [`Pm2Error::Config`] for settings that cannot work.
    pub(crate) fn check(&self) -> Result<(), Pm2Error> {
        if self.crash_loop.restarts == 0 {
            return Err(Pm2Error::Config("crash_loop restarts must be at least 1".into()));
        }
        if self.command_timeout.is_zero() {
            return Err(Pm2Error::Config("command timeout must not be zero".into()));
        }
        if self.stability_window >= self.state_timeout {
            return Err(Pm2Error::Config(format!(
                "stability window {:?} must be shorter than the state timeout {:?}",
                self.stability_window, self.state_timeout
            )));
        }
        Ok(())
    }
}
