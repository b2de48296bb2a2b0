//! The `rollback.toml` schema: one app, its state directory, and the adapters that roll it
//! back.
//!
//! [`load`] reads a file and [`parse`] a text; either returns a [`Config`] whose paths are
//! absolute (relative ones are resolved against the config file's directory), or a
//! [`ConfigError`] that names `file:line:column`, quotes the offending line with a caret
//! under the culprit, and says what is expected. Unknown keys are errors everywhere (the
//! message lists the keys allowed there), and so are wrong types, missing required keys,
//! bad durations and values that cannot work (a relative `artifacts` path outside the tree,
//! a releases layout without its directories, an SQL health probe without a database).
//!
//! Secrets never live in the file: the database connection string comes from an
//! environment variable ([`Connection::UrlEnv`]) or a pgpass file ([`Connection::Pgpass`]),
//! a webhook URL and a PagerDuty routing key from environment variables. A `url` or
//! `password` key in `[database]`, and a `url` or `routing_key` key in `[[notify]]`, are
//! refused with their own error, and a quoted line never shows such a value.
//!
//! ```
//! use std::path::Path;
//! let config = rollback_cli::config::parse(
//!     r#"
//! app = "web"
//! state_dir = "state"
//!
//! [process]
//! manager = "pm2"
//! "#,
//!     Path::new("/srv/web/rollback.toml"),
//! )
//! .unwrap();
//! assert_eq!(config.state_dir, Path::new("/srv/web/state"));
//! assert_eq!(config.process.app, "web");
//!
//! let e = rollback_cli::config::parse("app = \"web\"\nstate_dir = \"/x\"\nstatedir = 1\n", Path::new("/r.toml"))
//!     .unwrap_err();
//! assert!(e.to_string().starts_with("/r.toml:3:1: unknown key `statedir`"), "{e}");
//! ```

use rollback_core::automation::{Contact, EscalationLevel, ScheduledNotice};
use rollback_core::{CommunicationPlan, Rule, Scope, Settings, SqlAssertion};
use serde::Deserialize;
use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

// ---------------------------------------------------------------------------------------
// The resolved configuration
// ---------------------------------------------------------------------------------------

/// A `rollback.toml`, checked and with every path absolute.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The file it was read from (absolute).
    pub file: PathBuf,
    /// The app's name (`app`): names its checkpoints, reports and, unless `[process] app`
    /// says otherwise, the app the process manager runs.
    pub app: String,
    /// Where checkpoints, journals, reports and the lock live (`state_dir`).
    pub state_dir: PathBuf,
    /// `[database]`: the PostgreSQL database to snapshot and restore.
    pub database: Option<DatabaseConfig>,
    /// `[code]`: the git repository and how the app runs from it.
    pub code: Option<CodeConfig>,
    /// `[config]`: the env file and its required keys.
    pub env_file: Option<EnvFileConfig>,
    /// `[process]`: the process manager.
    pub process: ProcessConfig,
    /// `[[health]]`: the health probes post-verify and the watchdog use.
    pub health: Vec<HealthConfig>,
    /// `[settings]`: how the orchestrator runs ([`rollback_core::Settings`] itself).
    pub settings: Settings,
    /// `[watchdog]`: what `rollback watch` watches and does.
    pub watchdog: WatchdogConfig,
    /// `[[notify]]`: where the communication plan's notices go.
    pub notify: Vec<NotifyConfig>,
    /// `[[hosts]]`: the app hosts, each reached over ssh and configured by its own
    /// `rollback.toml` there. Empty for one local host. With hosts, this file has no
    /// `[code]`, `[config]` or `[process]` (each host's file configures its own), and
    /// [`Config::process`] only carries the top-level `app`.
    pub hosts: Vec<HostConfig>,
    /// `[fleet]`: how the hosts are rolled (used only with `[[hosts]]`).
    pub fleet: FleetSettings,
    /// Where the lock, checkpoints, journals and reports live (`[state]`).
    pub state: StateConfig,
}

impl Config {
    /// The directory the config file is in (relative paths in it were resolved there).
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("/"))
    }
}

/// Where the lock, checkpoints, journals and reports live (`[state]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateConfig {
    /// `state_dir` (the default): one deploy box.
    #[default]
    Dir,
    /// `store = "postgres"`: a database of its own that several deploy boxes share, so two
    /// operators cannot roll back at once.
    Postgres {
        /// The variable holding its connection string (`url_env`).
        url_env: String,
        /// The schema of its tables (`schema`, default `rollback`).
        schema: Option<String>,
    },
}

/// One `[[hosts]]` entry: an app host, reached over the system `ssh`, running
/// `rollback agent --stdio` over its own `rollback.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostConfig {
    /// How errors, progress and reports name it (`name`; the ssh destination when absent).
    pub name: String,
    /// The ssh destination (`ssh`): `user@host`, `host`, or an alias of the ssh config.
    pub ssh: String,
    /// The ssh port (`port`; ssh's configured one when absent).
    pub port: Option<u16>,
    /// The only identity offered (`identity_file`).
    pub identity_file: Option<PathBuf>,
    /// The ssh configuration file read instead of `~/.ssh/config` (`ssh_config`).
    pub ssh_config: Option<PathBuf>,
    /// The `known_hosts` file checked instead of ssh's (`known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// How the host's key is checked (`host_key_policy`: `"strict"`, the default, or
    /// `"accept_new"`).
    pub host_key_policy: HostKeyPolicy,
    /// The `rollback.toml` on that host (`config`, an absolute path there), which
    /// configures its `[code]`, `[config]`, `[process]` and `[[health]]`.
    pub config: String,
    /// The agent's command on that host (`command`; default
    /// `rollback agent --stdio --config <config>`).
    pub command: Option<Vec<String>>,
}

/// `host_key_policy` in `[[hosts]]`: the fleet's own type (`strict`, `accept_new`).
pub use rollback_fleet::HostKeyPolicy;

/// `[fleet]`: how the `[[hosts]]` are rolled.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetSettings {
    /// How many hosts change at once (`parallelism`, default 2).
    pub parallelism: usize,
    /// How long a host may take to become healthy in a rolling reload, before the next
    /// (`health_timeout`, default 60 s).
    pub health_timeout: Duration,
    /// How long connecting to a host's agent and its hello may take (`hello_timeout`,
    /// default 30 s).
    pub hello_timeout: Duration,
    /// Where ssh's control sockets are made (`control_dir`; the `openssh` crate's default,
    /// `$XDG_STATE_HOME` or `~/.local/state`, when absent). Keep it short: a unix socket
    /// path has about 100 bytes.
    pub control_dir: Option<PathBuf>,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self {
            parallelism: 2,
            health_timeout: Duration::from_secs(60),
            hello_timeout: Duration::from_secs(30),
            control_dir: None,
        }
    }
}

/// `[database]`: a PostgreSQL database, snapshotted with `pg_dump`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// Where the connection (and its password) comes from.
    pub connection: Connection,
    /// Where snapshots are kept (`snapshots_dir`).
    pub snapshots_dir: PathBuf,
    /// Archive format of new snapshots (`format`, default `custom`).
    pub format: DumpFormat,
    /// Parallel jobs for `pg_restore` and directory-format `pg_dump` (`jobs`).
    pub jobs: Option<u32>,
    /// The directory holding `pg_dump` and `pg_restore` (`bindir`); found on the system
    /// when absent.
    pub bindir: Option<PathBuf>,
    /// How long one `pg_dump` may run (`dump_timeout`).
    pub dump_timeout: Option<Duration>,
    /// How long one `pg_restore` may run (`restore_timeout`).
    pub restore_timeout: Option<Duration>,
    /// SQL assertions checked after a restore (`[[database.assertions]]`).
    pub assertions: Vec<SqlAssertion>,
}

/// Where the database connection comes from. Never the password itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Connection {
    /// `url_env = "DATABASE_URL"`: an environment variable holding
    /// `postgres://user:password@host:port/dbname`.
    UrlEnv {
        /// The variable's name.
        var: String,
    },
    /// `pgpass = "/path/.pgpass"` with `host`, `port`, `user`, `dbname`: the password is
    /// looked up in the pgpass file (libpq's format).
    Pgpass {
        /// The pgpass file.
        file: PathBuf,
        /// Host name, IP address or unix socket directory.
        host: String,
        /// TCP port (default 5432).
        port: u16,
        /// Role to connect as.
        user: String,
        /// The live database.
        dbname: String,
    },
}

/// `format` in `[database]`: the adapter's own type (`custom`, `directory`).
pub use rollback_postgres::DumpFormat;

/// `[code]`: a git repository and the layout the app runs from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CodeConfig {
    /// The repository's working tree (`repo`).
    pub repo: PathBuf,
    /// Releases or in place (`layout` and its keys).
    pub layout: CodeLayout,
    /// Build steps, each an argument vector (`build = [["npm", "ci"], ["npm", "run", "build"]]`).
    pub build: Vec<Vec<String>>,
    /// The limit for each build step (`build_timeout`; the adapter's default when absent).
    pub build_timeout: Option<Duration>,
    /// How many releases (or prepared checkouts) to keep (`keep`).
    pub keep: Option<usize>,
    /// The branch history lists and reverts commit onto (`branch`; HEAD's when absent).
    pub branch: Option<String>,
    /// In place: overwrite uncommitted changes in the live tree (`allow_dirty`).
    pub allow_dirty: bool,
}

/// How the app runs from the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeLayout {
    /// `layout = "releases"`: one directory per release, a symlink the app runs from.
    Releases {
        /// `releases_dir`: where releases are built.
        releases_dir: PathBuf,
        /// `current_link`: the symlink the process manager runs from.
        current_link: PathBuf,
    },
    /// `layout = "in-place"`: the app runs from the repository's working tree.
    InPlace {
        /// `worktrees_dir`: where revisions are built before activation (inside `.git`
        /// when absent).
        worktrees_dir: Option<PathBuf>,
        /// `artifacts`: build outputs moved into the live tree (relative paths such as
        /// `node_modules`, `dist`).
        artifacts: Vec<PathBuf>,
        /// `reset_branch`: reset this branch to the activated revision instead of detaching.
        reset_branch: Option<String>,
    },
}

/// `[config]`: an env file (`.env.production`) with versions kept beside or outside it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EnvFileConfig {
    /// The live env file (`file`).
    pub file: PathBuf,
    /// Keys every version must define (`required_keys`).
    pub required_keys: Vec<String>,
    /// Where backups go (`history_dir`; outside any git tree by default).
    pub history_dir: Option<PathBuf>,
    /// Accept a `history_dir` inside a git working tree (`allow_history_in_worktree`).
    pub allow_history_in_worktree: bool,
    /// How many backups to keep (`keep`; all when absent).
    pub keep: Option<usize>,
}

/// `[process]`: the process manager that stops and starts the app.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProcessConfig {
    /// Which manager (`manager`).
    pub manager: ProcessManagerKind,
    /// The app's name in the manager (`app`; the top-level `app` when absent).
    pub app: String,
    /// `PM2_HOME` (`pm2_home`; pm2's own default when absent).
    pub pm2_home: Option<PathBuf>,
    /// The manager's binary (`binary`; `pm2` on `PATH` when absent).
    pub binary: Option<PathBuf>,
    /// The ecosystem file that declares the app, to start it when pm2 does not know it
    /// (`ecosystem`).
    pub ecosystem: Option<PathBuf>,
    /// How long stop and start wait for the asked state (`state_timeout`).
    pub state_timeout: Option<Duration>,
    /// How long the app must stay up after a start (`stability_window`).
    pub stability_window: Option<Duration>,
    /// How long one manager command may take (`command_timeout`).
    pub command_timeout: Option<Duration>,
}

/// The process managers `rollback` can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessManagerKind {
    /// pm2.
    Pm2,
}

/// The names `manager` accepts, for messages.
pub const PROCESS_MANAGERS: &[&str] = &["pm2"];

/// One `[[health]]` probe.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthConfig {
    /// `url = "http://127.0.0.1:3000/api/health"`: a GET that must answer 2xx.
    Http {
        /// The URL (shown with any credentials redacted).
        url: String,
        /// How long one probe may take (`timeout`, default 5 s).
        timeout: Duration,
        /// A PEM file of CA certificates trusted besides the system's, for an `https://`
        /// URL served with an internal CA's certificate (`ca_file`).
        ca_file: Option<PathBuf>,
    },
    /// `sql = true`: the database answers a ping.
    Sql {
        /// How long one probe may take (`timeout`, default 5 s).
        timeout: Duration,
    },
}

impl fmt::Debug for HealthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthConfig::Http {
                url,
                timeout,
                ca_file,
            } => f
                .debug_struct("Http")
                .field("url", &rollback_core::secret::redact_url(url))
                .field("timeout", timeout)
                .field("ca_file", ca_file)
                .finish(),
            HealthConfig::Sql { timeout } => f.debug_struct("Sql").field("timeout", timeout).finish(),
        }
    }
}

/// `[watchdog]`: what `rollback watch` polls and what it may do.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WatchdogConfig {
    /// How often to poll (`interval`, default 10 s).
    pub interval: Duration,
    /// No second automatic rollback within this long after one (`cooldown`, default 30 min).
    pub cooldown: Duration,
    /// Whether a rule that means "roll back now" starts a rollback (`auto_rollback`,
    /// default false: notify only).
    pub auto_rollback: bool,
    /// What an automatic rollback restores (`scope`, default everything).
    pub scope: Scope,
    /// The rules (`[[watchdog.rules]]`, default the runbook's, [`Rule::runbook`]).
    pub rules: Vec<Rule>,
    /// The communication plan (`[watchdog.plan]`): its scheduled notices, escalation path
    /// and emergency contacts. `notices` and `escalation` default to the runbook's
    /// ([`CommunicationPlan::runbook`]) when the table does not give them, so that a file
    /// may give only its `contacts`. Every rollback's notices (not only the watchdog's)
    /// name who is responsible now and next from it.
    pub plan: CommunicationPlan,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            cooldown: Duration::from_secs(30 * 60),
            auto_rollback: false,
            scope: Scope::ALL,
            rules: Rule::runbook(),
            plan: CommunicationPlan::runbook(),
        }
    }
}

/// One `[[notify]]` target. Each rollback's notices (started, finished or failed, halted)
/// and the watchdog's go to every target.
///
/// The URLs and the routing key are secrets: the file names the environment variables
/// that hold them, never the values.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotifyConfig {
    /// `kind = "webhook"`: notices POSTed to the URL in an environment variable as the
    /// generic JSON body, schema `rollback.notice/1` ([`rollback_core::WebhookFormat::Json`]).
    Webhook {
        /// The variable holding the URL (`url_env`).
        url_env: String,
        /// How long one notice may take (`timeout`, default 10 s).
        timeout: Duration,
        /// A PEM file of CA certificates trusted besides the system's (`ca_file`).
        ca_file: Option<PathBuf>,
    },
    /// `kind = "slack"`: a Slack incoming-webhook message, to the webhook URL
    /// (`https://hooks.slack.com/services/...`) in an environment variable.
    Slack {
        /// The variable holding the webhook URL (`url_env`).
        url_env: String,
        /// How long one notice may take (`timeout`, default 10 s).
        timeout: Duration,
        /// A PEM file of CA certificates trusted besides the system's (`ca_file`).
        ca_file: Option<PathBuf>,
    },
    /// `kind = "pagerduty"`: PagerDuty Events API v2 events (trigger on an incident or a
    /// failed rollback, resolve on recovery, one dedup key per incident).
    PagerDuty {
        /// The variable holding the integration's routing key (`routing_key_env`).
        routing_key_env: String,
        /// The variable holding another Events API URL (`url_env`: an EU account's, a
        /// proxy's); PagerDuty's own when absent.
        url_env: Option<String>,
        /// How long one notice may take (`timeout`, default 10 s).
        timeout: Duration,
        /// A PEM file of CA certificates trusted besides the system's (`ca_file`).
        ca_file: Option<PathBuf>,
    },
    /// `kind = "log"`: notices written to the log.
    Log,
}

impl NotifyConfig {
    /// How long one notice may take (none for the log).
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            NotifyConfig::Webhook { timeout, .. }
            | NotifyConfig::Slack { timeout, .. }
            | NotifyConfig::PagerDuty { timeout, .. } => Some(*timeout),
            NotifyConfig::Log => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A place in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Why a config file could not be used.
///
/// `Invalid` displays as
/// ```text
/// /srv/web/rollback.toml:7:1: unknown key `snapshot_dir` in [database]
///   |
/// 7 | snapshot_dir = "/srv/web/snapshots"
///   | ^^^^^^^^^^^^
///   = expected: one of the keys of [database]: url_env, pgpass, host, ...
/// ```
/// The parser's own error is not kept as the source: it holds the whole document. The
/// quoted line never shows a password or a connection string's credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read the config file {}: {source}; create one with `rollback init`, or name it with --config or ROLLBACK_CONFIG",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file does not describe a config that can work.
    #[error("{at}: {problem}{}", details(.at, .excerpt, .expected))]
    Invalid {
        /// Where.
        at: Location,
        /// What is wrong, e.g. "unknown key `jobz` in `[database]`".
        problem: String,
        /// What is expected there, when it can be said.
        expected: Option<String>,
        /// The offending line with a caret under the culprit (empty when there is no line
        /// to show, e.g. a required table missing from the whole file).
        excerpt: String,
    },
}

/// The excerpt and the expectation under the first line of an `Invalid` error.
fn details(at: &Location, excerpt: &str, expected: &Option<String>) -> String {
    let mut out = String::new();
    if !excerpt.is_empty() {
        out.push('\n');
        out.push_str(excerpt);
    }
    if let Some(e) = expected {
        let gutter = if excerpt.is_empty() {
            1
        } else {
            at.line.to_string().len()
        };
        out.push_str(&format!("\n{} = expected: {e}", " ".repeat(gutter)));
    }
    out
}

impl ConfigError {
    /// Where in the file, for an `Invalid` file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Invalid { at, .. } => Some(at),
            ConfigError::Read { .. } => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

/// Reads and checks the config file at `path`.
///
/// Blocking (one file read); call it before the runtime starts or in `spawn_blocking`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Checks `text` as the config file at `origin` (which need not exist: it names the file in
/// errors, and relative paths are resolved against its directory).
pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let file = absolute(origin);
    let doc = Doc { text, file: &file };
    let raw: RawConfig = toml::from_str(text).map_err(|e| doc.toml_error(&e))?;
    raw.resolve(&doc)
}

/// `path` made absolute against the current directory, `.` components dropped.
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// The text being checked, to turn spans into located errors.
struct Doc<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Doc<'_> {
    fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("/"))
    }

    /// An `Invalid` error at `span`.
    fn error(&self, span: Range<usize>, problem: impl Into<String>, expected: Option<String>) -> ConfigError {
        self.located(span, false, problem.into(), expected)
    }

    /// An `Invalid` error at `span`, whose text (a secret, maybe) is not quoted.
    fn error_hiding(
        &self,
        span: Range<usize>,
        problem: impl Into<String>,
        expected: Option<String>,
    ) -> ConfigError {
        self.located(span, true, problem.into(), expected)
    }

    fn located(
        &self,
        span: Range<usize>,
        hide: bool,
        problem: String,
        expected: Option<String>,
    ) -> ConfigError {
        let (line, column, excerpt) = self.excerpt(span, hide);
        ConfigError::Invalid {
            at: Location {
                file: self.file.to_path_buf(),
                line,
                column,
            },
            problem: rollback_core::secret::redact_text(&problem),
            expected,
            excerpt,
        }
    }

    /// 1-based line and column of `span.start`, and the line with a caret under the span
    /// (the span's text replaced by `[redacted]` when `hide`).
    fn excerpt(&self, span: Range<usize>, hide: bool) -> (usize, usize, String) {
        let text = self.text;
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line_no = text[..line_start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let content_end = line_start + text[line_start..line_end].trim_end_matches('\r').len();
        let end = floor_char_boundary(text, span.end.clamp(start, content_end));
        let (shown, width) = if hide {
            let shown = format!(
                "{}{REDACTED}{}",
                &text[line_start..start],
                &text[end..content_end]
            );
            (redact_line(&shown), REDACTED.len())
        } else {
            let shown = redact_line(&text[line_start..content_end]);
            // A redacted line is shorter: keep the caret on it.
            let room = shown.chars().count().saturating_sub(column - 1);
            (shown, text[start..end].chars().count().min(room).max(1))
        };
        let gutter = " ".repeat(line_no.to_string().len());
        let excerpt = format!(
            "{gutter} |\n{line_no} | {shown}\n{gutter} | {}{}",
            " ".repeat(column - 1),
            "^".repeat(width)
        );
        (line_no, column, excerpt)
    }

    /// A located error from the TOML parser's (syntax, unknown key, wrong type, missing
    /// key, bad value).
    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        let keys = error_keys(e);
        let table = keys.clone();
        let message = e.message();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let (key, allowed) = rest.split_once('`').unwrap_or((rest, ""));
            // `url`, `password` and `routing_key` are known to [database] and [[notify]]
            // only to refuse them.
            let allowed: Vec<&str> = backticked(allowed)
                .into_iter()
                .filter(|k| !(REFUSED_KEYS.contains(k) && allowed.contains("`url_env`")))
                .collect();
            let place = where_(&table);
            let expected = if allowed.is_empty() {
                format!("no keys {place}")
            } else {
                format!("one of the keys allowed {place}: {}", allowed.join(", "))
            };
            return self.error(span, format!("unknown key `{key}` {place}"), Some(expected));
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let key = rest.split('`').next().unwrap_or(rest);
            let what = if TABLES.contains(&key) {
                format!("table [{key}]")
            } else {
                format!("key `{key}`")
            };
            let problem = format!("missing required {what} {}", where_(&table));
            let expected = Some(missing_hint(key, &table));
            if table.is_empty() {
                // No line to point at: the whole file lacks it.
                return ConfigError::Invalid {
                    at: Location {
                        file: self.file.to_path_buf(),
                        line: 1,
                        column: 1,
                    },
                    problem,
                    expected,
                    excerpt: String::new(),
                };
            }
            return self.error(span, problem, expected);
        }
        let key = keys.join(".");
        let subject = if key.is_empty() {
            String::new()
        } else {
            format!("`{key}`: ")
        };
        if let Some(rest) = message.strip_prefix("invalid type: ") {
            let (found, wanted) = rest.split_once(", expected ").unwrap_or((rest, "another type"));
            return self.error(
                span,
                format!("{subject}wrong type: found {found}"),
                Some(type_name(wanted)),
            );
        }
        if let Some(rest) = message.strip_prefix("unknown variant `") {
            let (value, allowed) = rest.split_once('`').unwrap_or((rest, ""));
            return self.error(
                span,
                format!("{subject}`{value}` is not allowed here"),
                Some(format!("one of: {}", backticked(allowed).join(", "))),
            );
        }
        if message.contains("untagged enum Millis") {
            return self.error(
                span,
                format!("{subject}not a duration"),
                Some(DURATION.to_owned()),
            );
        }
        if key.is_empty() {
            // A syntax error: the parser's message says what it expected.
            return self.error(span, format!("invalid TOML: {message}"), None);
        }
        self.error(span, format!("{subject}{message}"), None)
    }

    /// A path value: absolute, or resolved against the config file's directory.
    fn path(&self, value: &Spanned<String>, key: &str) -> Result<PathBuf, ConfigError> {
        let s = value.get_ref();
        if s.trim().is_empty() {
            return Err(self.error(
                value.span(),
                format!("`{key}` is empty"),
                Some("a path, absolute or relative to the config file's directory".into()),
            ));
        }
        if s.starts_with('~') {
            return Err(self.error(
                value.span(),
                format!("`{key}` starts with `~`, which is not expanded"),
                Some("the full path, e.g. \"/home/deploy/...\", or one relative to the config file".into()),
            ));
        }
        Ok(absolute(&self.dir().join(s)))
    }

    fn opt_path(&self, value: &Option<Spanned<String>>, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        value.as_ref().map(|v| self.path(v, key)).transpose()
    }

    /// The span of the `[table]` header line's name, when the file has one.
    fn table_header(&self, table: &str) -> Option<Range<usize>> {
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if let Some(rest) = trimmed.strip_prefix('[') {
                let name = rest.split(']').next().unwrap_or("").trim();
                if name == table && !rest.starts_with('[') {
                    let start = offset + indent;
                    let end = start + trimmed.find(']').map_or(1, |i| i + 1);
                    return Some(start..end);
                }
            }
            offset += line.len();
        }
        None
    }
}

/// The required keys that are tables.
const TABLES: &[&str] = &["process"];

/// What a hidden value is shown as.
const REDACTED: &str = "[redacted]";

/// Keys of `[database]` and `[[notify]]` that exist only to be refused (their values are
/// secrets, never quoted).
const REFUSED_KEYS: &[&str] = &["url", "password", "routing_key"];

/// How a duration is written, for messages.
const DURATION: &str = "a duration such as \"30s\", \"5m\", \"1h 30m\", \"250ms\", or whole milliseconds";

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The words between backticks in `s`.
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// The table path the parser's error is in (`["database"]`, `["settings", "timeouts"]`):
/// shown by its `Display` when it has no input to quote.
fn error_keys(e: &toml::de::Error) -> Vec<String> {
    let mut bare = e.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    shown
        .trim_end()
        .rsplit_once("\nin `")
        .map(|(_, keys)| keys.trim_end_matches('`').split('.').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `at the top level` or `in [database]`.
fn where_(keys: &[String]) -> String {
    if keys.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in [{}]", keys.join("."))
    }
}

/// A serde type name as an operator reads it.
fn type_name(wanted: &str) -> String {
    match wanted {
        "u8" | "u16" | "u32" | "u64" | "usize" => match wanted {
            "u8" => "a whole number from 0 to 255".to_owned(),
            "u16" => "a whole number from 0 to 65535".to_owned(),
            _ => "a whole number (0 or more)".to_owned(),
        },
        "i64" | "i32" => "a whole number".to_owned(),
        "f64" | "f32" => "a number".to_owned(),
        "a sequence" => "a list, e.g. [\"a\", \"b\"]".to_owned(),
        w if w.starts_with("struct ") => "a table".to_owned(),
        w => w.to_owned(),
    }
}

/// What a missing key looks like when given.
fn missing_hint(key: &str, table: &[String]) -> String {
    let in_contacts = table.last().is_some_and(|t| t == "contacts");
    let example = match key {
        "role" if in_contacts => "role = \"DevOps lead\" (as the escalation path names it)",
        "name" if in_contacts => "name = \"Bo Berg\" (who fills the role)",
        "reach" if in_contacts => "reach = \"+1 555 0101, @bo\" (how to reach them)",
        "app" => "app = \"web\" (the app's name)",
        "state_dir" => "state_dir = \"/srv/web/rollback\" (checkpoints, journals, reports and the lock)",
        "process" => "[process] with at least manager = \"pm2\"",
        "manager" => "manager = \"pm2\"",
        "snapshots_dir" => "snapshots_dir = \"/srv/web/snapshots\" (where pg_dump archives are kept)",
        "repo" => "repo = \"/srv/web/repo\" (the git repository)",
        "layout" => "layout = \"releases\" (with releases_dir and current_link) or layout = \"in-place\"",
        "file" => "file = \"/srv/web/shared/.env.production\"",
        "name" => "name = \"users exist\"",
        "sql" => "sql = \"SELECT COUNT(*) > 0 FROM users\"",
        "kind" => {
            "kind = \"webhook\" or \"slack\" (with url_env), \"pagerduty\" (with routing_key_env) or \"log\""
        }
        _ => "",
    };
    if example.is_empty() {
        format!("`{key} = ...`")
    } else {
        example.to_owned()
    }
}

/// A line as quoted in an error: secrets in it hidden. The value of a refused key
/// (`url`, `password`, `routing_key`) is hidden wherever it is on the line (`key = value`
/// or in an inline table `{ kind = "pagerduty", routing_key = "..." }`).
fn redact_line(line: &str) -> String {
    let key = line.trim_start().split(['=', ' ', '\t']).next().unwrap_or("");
    if REFUSED_KEYS.contains(&key.trim_matches('"')) {
        if let Some((head, _)) = line.split_once('=') {
            return format!("{head}= {REDACTED}");
        }
    }
    rollback_core::secret::redact_text(&redact_inline_values(line))
}

/// `line` with the value after each `<refused key> =` (a quoted string, or a bare word up
/// to `,`, `}` or a space) replaced by `[redacted]`.
fn redact_inline_values(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    'scan: while !rest.is_empty() {
        for key in REFUSED_KEYS {
            let Some(after_key) = rest.strip_prefix(key) else {
                continue;
            };
            // A whole key: not the end of a longer name (`db_url`), not the start of one.
            let before = out.chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                continue;
            }
            let spaced = after_key.trim_start_matches([' ', '\t', '"']);
            let Some(value) = spaced.strip_prefix('=') else {
                continue;
            };
            let value = value.trim_start_matches([' ', '\t']);
            let end = match value.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let mut escaped = false;
                    value
                        .char_indices()
                        .skip(1)
                        .find(|&(_, c)| {
                            let closes = c == q && !escaped;
                            escaped = q == '"' && c == '\\' && !escaped;
                            closes
                        })
                        .map_or(value.len(), |(i, _)| i + 1)
                }
                _ => value.find([',', '}', ' ', '\t']).unwrap_or(value.len()),
            };
            out.push_str(&rest[..rest.len() - value.len()]);
            out.push_str(REDACTED);
            rest = &value[end..];
            continue 'scan;
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// Whether `name` can be an environment variable's name (and so is not a URL pasted in).
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------------------
// The raw schema, as written
// ---------------------------------------------------------------------------------------

/// A duration in this crate's own tables: a human form (`"30s"`) or whole milliseconds.
#[derive(Clone, Copy)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de;
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION)
            }

            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Dur, E> {
                Ok(Dur(Duration::from_millis(ms)))
            }

            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Dur, E> {
                u64::try_from(ms)
                    .map(|ms| Dur(Duration::from_millis(ms)))
                    .map_err(|_| E::custom(format!("{ms} is negative: write {DURATION}")))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Dur, E> {
                humantime::parse_duration(text)
                    .map(Dur)
                    .map_err(|e| E::custom(format!("`{text}` is not a duration ({e}): write {DURATION}")))
            }
        }
        d.deserialize_any(V)
    }
}

fn dur(d: Option<Dur>) -> Option<Duration> {
    d.map(|d| d.0)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    app: Spanned<String>,
    state_dir: Spanned<String>,
    database: Option<RawDatabase>,
    code: Option<RawCode>,
    config: Option<RawEnvFile>,
    process: Option<RawProcess>,
    #[serde(default)]
    health: Vec<Spanned<RawHealth>>,
    #[serde(default)]
    hosts: Vec<Spanned<RawHost>>,
    fleet: Option<RawFleet>,
    state: Option<Spanned<RawState>>,
    #[serde(default)]
    settings: Settings,
    #[serde(default)]
    watchdog: RawWatchdog,
    #[serde(default)]
    notify: Vec<Spanned<RawNotify>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    store: Spanned<String>,
    url_env: Option<Spanned<String>>,
    schema: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Option<Spanned<String>>,
    ssh: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    identity_file: Option<Spanned<String>>,
    ssh_config: Option<Spanned<String>>,
    known_hosts: Option<Spanned<String>>,
    #[serde(default)]
    host_key_policy: HostKeyPolicy,
    config: Option<Spanned<String>>,
    command: Option<Spanned<Argv>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    parallelism: Option<Spanned<usize>>,
    health_timeout: Option<Spanned<Dur>>,
    hello_timeout: Option<Spanned<Dur>>,
    control_dir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url_env: Option<Spanned<String>>,
    pgpass: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    user: Option<Spanned<String>>,
    dbname: Option<Spanned<String>>,
    snapshots_dir: Spanned<String>,
    #[serde(default)]
    format: DumpFormat,
    jobs: Option<Spanned<u32>>,
    bindir: Option<Spanned<String>>,
    dump_timeout: Option<Dur>,
    restore_timeout: Option<Dur>,
    #[serde(default)]
    assertions: Vec<RawAssertion>,
    // Refused with their own error: the file never holds a connection string or password.
    url: Option<Spanned<toml::Value>>,
    password: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssertion {
    name: String,
    sql: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum LayoutKind {
    #[serde(rename = "releases")]
    Releases,
    #[serde(rename = "in-place")]
    InPlace,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCode {
    repo: Spanned<String>,
    layout: Spanned<LayoutKind>,
    releases_dir: Option<Spanned<String>>,
    current_link: Option<Spanned<String>>,
    worktrees_dir: Option<Spanned<String>>,
    #[serde(default)]
    artifacts: Vec<Spanned<String>>,
    reset_branch: Option<String>,
    #[serde(default)]
    build: Vec<Spanned<Argv>>,
    build_timeout: Option<Dur>,
    keep: Option<Spanned<usize>>,
    branch: Option<String>,
    #[serde(default)]
    allow_dirty: bool,
}

/// One build step: an argument vector, never a shell string.
struct Argv(Vec<String>);

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Argv;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an argument list such as [\"npm\", \"run\", \"build\"]")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Argv, E> {
                let words: Vec<String> = s.split_whitespace().map(|w| format!("{w:?}")).collect();
                Err(E::custom(format!(
                    "a build step is an argument list, not a shell string: write [{}]",
                    words.join(", ")
                )))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Argv, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                Ok(Argv(argv))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvFile {
    file: Spanned<String>,
    #[serde(default)]
    required_keys: Vec<String>,
    history_dir: Option<Spanned<String>>,
    #[serde(default)]
    allow_history_in_worktree: bool,
    keep: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    manager: Spanned<String>,
    app: Option<Spanned<String>>,
    pm2_home: Option<Spanned<String>>,
    binary: Option<Spanned<String>>,
    ecosystem: Option<Spanned<String>>,
    state_timeout: Option<Dur>,
    stability_window: Option<Dur>,
    command_timeout: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    url: Option<Spanned<String>>,
    sql: Option<Spanned<bool>>,
    timeout: Option<Dur>,
    ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ScopePart {
    Database,
    Code,
    Config,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWatchdog {
    interval: Option<Spanned<Dur>>,
    cooldown: Option<Dur>,
    #[serde(default)]
    auto_rollback: bool,
    scope: Option<Spanned<Vec<ScopePart>>>,
    rules: Option<Vec<Rule>>,
    plan: Option<RawPlan>,
}

/// `[watchdog.plan]`: the runbook's notices and escalation path unless given.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    notices: Option<Vec<ScheduledNotice>>,
    escalation: Option<Vec<EscalationLevel>>,
    #[serde(default)]
    contacts: Vec<Spanned<Contact>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    kind: Spanned<String>,
    url_env: Option<Spanned<String>>,
    routing_key_env: Option<Spanned<String>>,
    timeout: Option<Dur>,
    ca_file: Option<Spanned<String>>,
    // Refused with their own error: webhook URLs carry their token, and a routing key is
    // one.
    url: Option<Spanned<toml::Value>>,
    routing_key: Option<Spanned<toml::Value>>,
}

// ---------------------------------------------------------------------------------------
// Checking and resolving
// ---------------------------------------------------------------------------------------

const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

impl RawConfig {
    fn resolve(self, doc: &Doc<'_>) -> Result<Config, ConfigError> {
        check_app_name(doc, &self.app, "app")?;
        let state_dir = doc.path(&self.state_dir, "state_dir")?;
        let database = self.database.map(|d| d.resolve(doc)).transpose()?;
        if !self.hosts.is_empty() {
            // Each host's own file configures its code, config and process manager.
            let local = [
                ("process", self.process.as_ref().map(|p| p.manager.span())),
                ("code", self.code.as_ref().map(|c| c.repo.span())),
                ("config", self.config.as_ref().map(|c| c.file.span())),
            ];
            if let Some((table, Some(fallback))) = local.into_iter().find(|(_, s)| s.is_some()) {
                let span = doc.table_header(table).unwrap_or(fallback);
                return Err(doc.error(
                    span,
                    format!(
                        "[{table}] together with [[hosts]]: with hosts, each host's own rollback.toml (its `config`) configures its [{table}]"
                    ),
                    Some(format!(
                        "either [[hosts]] with [database], [[health]] and [fleet] here, and [{table}] in each host's file; or no [[hosts]] (one local host)"
                    )),
                ));
            }
        }
        if let (None, Some(fleet)) = (self.hosts.first(), &self.fleet) {
            if let Some(span) = doc.table_header("fleet").or_else(|| fleet.first_span()) {
                return Err(doc.error(
                    span,
                    "[fleet] without [[hosts]]: it says how hosts are rolled, and there are none",
                    Some("[[hosts]] entries with name, ssh and config, or no [fleet]".into()),
                ));
            }
        }
        let hosts = resolve_hosts(doc, self.hosts)?;
        let fleet = match self.fleet {
            Some(f) => f.resolve(doc)?,
            None => FleetSettings::default(),
        };
        let code = self.code.map(|c| c.resolve(doc)).transpose()?;
        let env_file = self.config.map(|c| c.resolve(doc)).transpose()?;
        let process = match self.process {
            Some(p) => p.resolve(doc, self.app.get_ref())?,
            None if !hosts.is_empty() => ProcessConfig {
                manager: ProcessManagerKind::Pm2,
                app: self.app.get_ref().clone(),
                pm2_home: None,
                binary: None,
                ecosystem: None,
                state_timeout: None,
                stability_window: None,
                command_timeout: None,
            },
            None => {
                // No line to point at: the whole file lacks it.
                return Err(ConfigError::Invalid {
                    at: Location {
                        file: doc.file.to_path_buf(),
                        line: 1,
                        column: 1,
                    },
                    problem: "missing required table [process] at the top level".into(),
                    expected: Some(missing_hint("process", &[])),
                    excerpt: String::new(),
                });
            }
        };
        let health = self
            .health
            .into_iter()
            .map(|h| resolve_health(doc, h, database.is_some()))
            .collect::<Result<Vec<_>, _>>()?;
        let watchdog = self.watchdog.resolve(doc)?;
        let state = match self.state {
            None => StateConfig::Dir,
            Some(st) => {
                let span = st.span();
                let st = st.into_inner();
                match st.store.get_ref().as_str() {
                    "dir" => StateConfig::Dir,
                    "postgres" => {
                        let var = st.url_env.as_ref().ok_or_else(|| {
                            doc.error(
                                span,
                                "store = \"postgres\" needs `url_env`",
                                Some("url_env = \"ROLLBACK_STATE_DATABASE_URL\", an environment variable holding postgres://user:password@host/rollback_state (a database of its own, never the app's: a rollback renames the app's)".into()),
                            )
                        })?;
                        StateConfig::Postgres {
                            url_env: check_env_name(doc, var, "url_env", "the state database's connection string")?,
                            schema: st.schema,
                        }
                    }
                    other => {
                        return Err(doc.error(
                            st.store.span(),
                            format!("unknown state store `{other}`"),
                            Some("\"dir\" (state_dir, the default) or \"postgres\" (shared by several deploy boxes)".into()),
                        ))
                    }
                }
            }
        };
        let notify = self
            .notify
            .into_iter()
            .map(|n| resolve_notify(doc, n))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            file: doc.file.to_path_buf(),
            app: self.app.into_inner(),
            state_dir,
            database,
            code,
            env_file,
            process,
            health,
            settings: self.settings,
            watchdog,
            notify,
            hosts,
            state,
            fleet,
        })
    }
}

impl RawFleet {
    /// The span of its first key, to point at when its header cannot be found.
    fn first_span(&self) -> Option<Range<usize>> {
        self.parallelism
            .as_ref()
            .map(Spanned::span)
            .or_else(|| self.health_timeout.as_ref().map(Spanned::span))
            .or_else(|| self.hello_timeout.as_ref().map(Spanned::span))
            .or_else(|| self.control_dir.as_ref().map(Spanned::span))
    }

    fn resolve(self, doc: &Doc<'_>) -> Result<FleetSettings, ConfigError> {
        let defaults = FleetSettings::default();
        let parallelism = match self.parallelism {
            Some(p) if *p.get_ref() == 0 => {
                return Err(doc.error(
                    p.span(),
                    "`parallelism` is 0: no host would ever change",
                    Some("1 or more hosts changed at once (default 2)".into()),
                ))
            }
            Some(p) => p.into_inner(),
            None => defaults.parallelism,
        };
        let positive = |d: Option<Spanned<Dur>>, key: &str, default: Duration| match d {
            Some(d) if d.get_ref().0 < Duration::from_secs(1) => Err(doc.error(
                d.span(),
                format!("`{key}` is under a second"),
                Some(format!("{DURATION}, of at least a second")),
            )),
            Some(d) => Ok(d.into_inner().0),
            None => Ok(default),
        };
        Ok(FleetSettings {
            parallelism,
            health_timeout: positive(self.health_timeout, "health_timeout", defaults.health_timeout)?,
            hello_timeout: positive(self.hello_timeout, "hello_timeout", defaults.hello_timeout)?,
            control_dir: doc.opt_path(&self.control_dir, "control_dir")?,
        })
    }
}

/// The `[[hosts]]`: each with an ssh destination and its config path, names unique.
fn resolve_hosts(doc: &Doc<'_>, raw: Vec<Spanned<RawHost>>) -> Result<Vec<HostConfig>, ConfigError> {
    let mut hosts: Vec<HostConfig> = Vec::with_capacity(raw.len());
    let mut names: Vec<(String, Range<usize>)> = Vec::new();
    for entry in raw {
        let span = entry.span();
        let h = entry.into_inner();
        let shown = h.name.as_ref().map_or_else(
            || "a [[hosts]] entry".to_owned(),
            |n| format!("host `{}`", n.get_ref()),
        );
        let Some(ssh) = h.ssh else {
            let at = h.name.as_ref().map_or(span, Spanned::span);
            return Err(doc.error(
                at,
                format!("{shown} has no `ssh`: how would it be reached?"),
                Some(
                    "ssh = \"deploy@web-2\" (what `ssh` takes: user@host, host, or an alias of your ssh config)"
                        .into(),
                ),
            ));
        };
        let destination = ssh.get_ref();
        if destination.is_empty()
            || destination.starts_with('-')
            || destination.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(doc.error(
                ssh.span(),
                format!("`ssh` of {shown} is not an ssh destination"),
                Some(
                    "user@host, host, or an alias of your ssh config (no spaces, not starting with `-`)"
                        .into(),
                ),
            ));
        }
        let (name, name_span) = match &h.name {
            Some(n) if n.get_ref().trim().is_empty() => {
                return Err(doc.error(
                    n.span(),
                    "a host's `name` is empty",
                    Some("name = \"web-1\" (how errors and reports name the host)".into()),
                ))
            }
            Some(n) => (n.get_ref().clone(), n.span()),
            None => (destination.clone(), ssh.span()),
        };
        if names.iter().any(|(n, _)| *n == name) {
            return Err(doc.error(
                name_span,
                format!("host `{name}` is named twice in [[hosts]]"),
                Some("a name of its own for every host (`name`; the ssh destination when absent)".into()),
            ));
        }
        if let Some(p) = &h.port {
            if *p.get_ref() == 0 {
                return Err(doc.error(
                    p.span(),
                    "`port` is 0",
                    Some("the host's ssh port, e.g. 22".into()),
                ));
            }
        }
        let Some(config) = h.config else {
            return Err(doc.error(
                ssh.span(),
                format!("host `{name}` has no `config`"),
                Some(
                    "config = \"/srv/web/rollback.toml\": the rollback.toml on that host, configuring its [code], [config], [process] and [[health]]"
                        .into(),
                ),
            ));
        };
        if !config.get_ref().starts_with('/') {
            return Err(doc.error(
                config.span(),
                format!("`config` of host `{name}` is not an absolute path"),
                Some(
                    "the absolute path of the rollback.toml on that host, e.g. \"/srv/web/rollback.toml\""
                        .into(),
                ),
            ));
        }
        let command = match h.command {
            Some(c) => {
                let span = c.span();
                let argv = c.into_inner().0;
                if argv.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err(doc.error(
                        span,
                        format!("the `command` of host `{name}` names no program"),
                        Some(
                            "an argument list such as [\"/usr/local/bin/rollback\", \"agent\", \"--stdio\", \"--config\", \"/srv/web/rollback.toml\"]"
                                .into(),
                        ),
                    ));
                }
                Some(argv)
            }
            None => None,
        };
        names.push((name.clone(), name_span));
        hosts.push(HostConfig {
            name,
            ssh: destination.clone(),
            port: h.port.map(Spanned::into_inner),
            identity_file: doc.opt_path(&h.identity_file, "identity_file")?,
            ssh_config: doc.opt_path(&h.ssh_config, "ssh_config")?,
            known_hosts: doc.opt_path(&h.known_hosts, "known_hosts")?,
            host_key_policy: h.host_key_policy,
            config: config.into_inner(),
            command,
        });
    }
    Ok(hosts)
}

fn check_app_name(doc: &Doc<'_>, name: &Spanned<String>, key: &str) -> Result<(), ConfigError> {
    let app = rollback_core::AppName::new(name.get_ref().as_str());
    let why = app.why_not_one_app().or_else(|| {
        (!name.get_ref().is_empty() && name.get_ref().chars().all(|c| c.is_ascii_digit()))
            .then_some("pm2 reads a number as a process id")
    });
    match why {
        Some(why) => Err(doc.error(
            name.span(),
            format!("`{key}` cannot name one app: {why}"),
            Some("the app's name, e.g. \"web\"".into()),
        )),
        None => Ok(()),
    }
}

fn check_env_name(
    doc: &Doc<'_>,
    var: &Spanned<String>,
    key: &str,
    holds: &str,
) -> Result<String, ConfigError> {
    let name = var.get_ref();
    if is_env_name(name) {
        return Ok(name.clone());
    }
    let problem = if name.contains("://") {
        format!("`{key}` holds a URL: it names the environment variable that holds {holds}, never the value")
    } else {
        format!("`{key}` is not an environment variable's name")
    };
    // The value is not quoted: it may be the secret itself.
    Err(doc.error_hiding(
        var.span(),
        problem,
        Some(format!(
            "a variable name such as \"DATABASE_URL\" (letters, digits and `_`), exported where rollback runs, holding {holds}"
        )),
    ))
}

impl RawDatabase {
    fn resolve(self, doc: &Doc<'_>) -> Result<DatabaseConfig, ConfigError> {
        let refuse_expected = "`url_env = \"DATABASE_URL\"` (an environment variable holding \
             postgres://user:password@host:port/dbname), or `pgpass = \"/path/.pgpass\"` with \
             host, port, user and dbname (the password looked up in that file)";
        if let Some(v) = self.url.as_ref().or(self.password.as_ref()) {
            let key = if self.url.is_some() { "url" } else { "password" };
            return Err(doc.error_hiding(
                v.span(),
                format!(
                    "`{key}` in [database]: the config file never holds a connection string or a password"
                ),
                Some(refuse_expected.into()),
            ));
        }
        let connection = match (&self.url_env, &self.pgpass) {
            (Some(var), None) => {
                let given = [
                    ("host", self.host.as_ref().map(Spanned::span)),
                    ("port", self.port.as_ref().map(Spanned::span)),
                    ("user", self.user.as_ref().map(Spanned::span)),
                    ("dbname", self.dbname.as_ref().map(Spanned::span)),
                ];
                if let Some((key, Some(span))) = given.into_iter().find(|(_, s)| s.is_some()) {
                    return Err(doc.error(
                        span,
                        format!("`{key}` goes with `pgpass`; with `url_env` the connection string names it"),
                        Some("either url_env alone, or pgpass with host, port, user and dbname".into()),
                    ));
                }
                Connection::UrlEnv {
                    var: check_env_name(doc, var, "url_env", "the connection string")?,
                }
            }
            (None, Some(file)) => {
                let file = doc.path(file, "pgpass")?;
                let need = |v: &Option<Spanned<String>>, key: &str| {
                    v.as_ref().map(|s| s.get_ref().clone()).ok_or_else(|| {
                        let span = self.pgpass.as_ref().map(Spanned::span).unwrap_or(0..0);
                        doc.error(
                            span,
                            format!("`pgpass` needs `{key}` too"),
                            Some("pgpass with host, user and dbname (port defaults to 5432)".into()),
                        )
                    })
                };
                Connection::Pgpass {
                    host: need(&self.host, "host")?,
                    user: need(&self.user, "user")?,
                    dbname: need(&self.dbname, "dbname")?,
                    port: self.port.map(Spanned::into_inner).unwrap_or(5432),
                    file,
                }
            }
            (Some(var), Some(_)) => {
                return Err(doc.error(
                    var.span(),
                    "[database] has both `url_env` and `pgpass`",
                    Some("one of them".into()),
                ))
            }
            (None, None) => {
                return Err(doc.error(
                    self.snapshots_dir.span(),
                    "[database] does not say how to connect",
                    Some(refuse_expected.into()),
                ))
            }
        };
        if let Some(jobs) = &self.jobs {
            if *jobs.get_ref() == 0 {
                return Err(doc.error(jobs.span(), "`jobs` is 0", Some("1 or more parallel jobs".into())));
            }
        }
        Ok(DatabaseConfig {
            connection,
            snapshots_dir: doc.path(&self.snapshots_dir, "snapshots_dir")?,
            format: self.format,
            jobs: self.jobs.map(Spanned::into_inner),
            bindir: doc.opt_path(&self.bindir, "bindir")?,
            dump_timeout: dur(self.dump_timeout),
            restore_timeout: dur(self.restore_timeout),
            assertions: self
                .assertions
                .into_iter()
                .map(|a| SqlAssertion {
                    name: a.name,
                    sql: a.sql,
                })
                .collect(),
        })
    }
}

impl RawCode {
    fn resolve(self, doc: &Doc<'_>) -> Result<CodeConfig, ConfigError> {
        let layout_span = self.layout.span();
        let layout = match *self.layout.get_ref() {
            LayoutKind::Releases => {
                if let Some(w) = &self.worktrees_dir {
                    return Err(doc.error(
                        w.span(),
                        "`worktrees_dir` goes with layout = \"in-place\"",
                        Some("releases_dir and current_link for layout = \"releases\"".into()),
                    ));
                }
                if let Some(a) = self.artifacts.first() {
                    return Err(doc.error(
                        a.span(),
                        "`artifacts` goes with layout = \"in-place\" (a release is built where it runs)",
                        Some("no artifacts with layout = \"releases\"".into()),
                    ));
                }
                let needed = |v: &Option<Spanned<String>>, key: &str| match v {
                    Some(v) => doc.path(v, key),
                    None => Err(doc.error(
                        layout_span.clone(),
                        format!("layout = \"releases\" needs `{key}`"),
                        Some(
                            "releases_dir (where each release is built, e.g. \"/srv/web/releases\") and \
                             current_link (the symlink the app runs from, e.g. \"/srv/web/current\")"
                                .into(),
                        ),
                    )),
                };
                CodeLayout::Releases {
                    releases_dir: needed(&self.releases_dir, "releases_dir")?,
                    current_link: needed(&self.current_link, "current_link")?,
                }
            }
            LayoutKind::InPlace => {
                if let Some(v) = self.releases_dir.as_ref().or(self.current_link.as_ref()) {
                    return Err(doc.error(
                        v.span(),
                        "`releases_dir` and `current_link` go with layout = \"releases\"",
                        Some("layout = \"releases\", or in place without them".into()),
                    ));
                }
                let mut artifacts = Vec::new();
                for a in &self.artifacts {
                    let p = Path::new(a.get_ref());
                    if a.get_ref().is_empty()
                        || p.is_absolute()
                        || p.components().any(|c| matches!(c, Component::ParentDir))
                    {
                        return Err(doc.error(
                            a.span(),
                            format!("artifact `{}` is not a path inside the tree", a.get_ref()),
                            Some(
                                "a path relative to the repository, e.g. \"node_modules\" or \"dist\"".into(),
                            ),
                        ));
                    }
                    artifacts.push(p.to_path_buf());
                }
                CodeLayout::InPlace {
                    worktrees_dir: doc.opt_path(&self.worktrees_dir, "worktrees_dir")?,
                    artifacts,
                    reset_branch: self.reset_branch,
                }
            }
        };
        let mut build = Vec::new();
        for step in self.build {
            let span = step.span();
            let argv = step.into_inner().0;
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(doc.error(
                    span,
                    "a build step without a program",
                    Some("an argument list such as [\"npm\", \"ci\"]".into()),
                ));
            }
            build.push(argv);
        }
        if let Some(keep) = &self.keep {
            if *keep.get_ref() == 0 {
                return Err(doc.error(
                    keep.span(),
                    "`keep` is 0: the live release would be removed",
                    Some("2 or more".into()),
                ));
            }
        }
        Ok(CodeConfig {
            repo: doc.path(&self.repo, "repo")?,
            layout,
            build,
            build_timeout: dur(self.build_timeout),
            keep: self.keep.map(Spanned::into_inner),
            branch: self.branch,
            allow_dirty: self.allow_dirty,
        })
    }
}

impl RawEnvFile {
    fn resolve(self, doc: &Doc<'_>) -> Result<EnvFileConfig, ConfigError> {
        Ok(EnvFileConfig {
            file: doc.path(&self.file, "file")?,
            required_keys: self.required_keys,
            history_dir: doc.opt_path(&self.history_dir, "history_dir")?,
            allow_history_in_worktree: self.allow_history_in_worktree,
            keep: self.keep,
        })
    }
}

impl RawProcess {
    fn resolve(self, doc: &Doc<'_>, top_app: &str) -> Result<ProcessConfig, ConfigError> {
        let manager = match self.manager.get_ref().as_str() {
            "pm2" => ProcessManagerKind::Pm2,
            other => {
                return Err(doc.error(
                    self.manager.span(),
                    format!("unknown process manager `{other}`"),
                    Some(format!(
                        "one of: {} (the only one the `rollback` command drives today)",
                        PROCESS_MANAGERS.join(", ")
                    )),
                ))
            }
        };
        let app = match &self.app {
            Some(app) => {
                check_app_name(doc, app, "app")?;
                app.get_ref().clone()
            }
            None => top_app.to_owned(),
        };
        // A bare name (`pm2`) is looked up on PATH; a path is resolved like any other.
        let binary = match &self.binary {
            Some(b) if !b.get_ref().contains('/') => Some(PathBuf::from(b.get_ref())),
            other => doc.opt_path(other, "binary")?,
        };
        Ok(ProcessConfig {
            manager,
            app,
            pm2_home: doc.opt_path(&self.pm2_home, "pm2_home")?,
            binary,
            ecosystem: doc.opt_path(&self.ecosystem, "ecosystem")?,
            state_timeout: dur(self.state_timeout),
            stability_window: dur(self.stability_window),
            command_timeout: dur(self.command_timeout),
        })
    }
}

fn resolve_health(
    doc: &Doc<'_>,
    h: Spanned<RawHealth>,
    has_database: bool,
) -> Result<HealthConfig, ConfigError> {
    let span = h.span();
    let h = h.into_inner();
    let timeout = dur(h.timeout).unwrap_or(DEFAULT_PROBE_TIMEOUT);
    let expected = || {
        Some("either url = \"http://127.0.0.1:3000/api/health\" or sql = true (with a [database])".to_owned())
    };
    if timeout.is_zero() {
        return Err(doc.error(
            span,
            "a health probe with a zero timeout",
            Some(DURATION.to_owned()),
        ));
    }
    let sql = h.sql.as_ref().filter(|s| *s.get_ref());
    match (h.url, sql) {
        (Some(url), None) => {
            let parsed = url.get_ref().split_once("://");
            if !matches!(parsed, Some(("http" | "https", rest)) if !rest.is_empty()) {
                return Err(doc.error(
                    url.span(),
                    "the health URL is not an http:// URL",
                    Some("a URL such as \"http://127.0.0.1:3000/api/health\"".into()),
                ));
            }
            let ca_file = match &h.ca_file {
                Some(ca) if !matches!(parsed, Some(("https", _))) => {
                    return Err(doc.error(
                        ca.span(),
                        "`ca_file` is for an https:// probe, and this URL is http://",
                        Some("an https:// URL, or no ca_file".into()),
                    ))
                }
                other => doc.opt_path(other, "ca_file")?,
            };
            Ok(HealthConfig::Http {
                url: url.into_inner(),
                timeout,
                ca_file,
            })
        }
        (None, Some(_)) if h.ca_file.is_some() => Err(doc.error(
            h.ca_file.as_ref().map_or(span, Spanned::span),
            "`ca_file` goes with an https:// probe, not `sql = true`",
            Some("url = \"https://...\" with ca_file, or sql = true alone".into()),
        )),
        (None, Some(sql)) if !has_database => Err(doc.error(
            sql.span(),
            "`sql = true` probes the database, and there is no [database]",
            Some("a [database] table (url_env or pgpass, snapshots_dir), or an HTTP probe: url = \"http://...\"".into()),
        )),
        (None, Some(_)) => Ok(HealthConfig::Sql { timeout }),
        (Some(url), Some(_)) => Err(doc.error(
            url.span(),
            "a [[health]] probe with both `url` and `sql = true`",
            expected(),
        )),
        (None, None) => Err(doc.error(span, "a [[health]] probe with neither `url` nor `sql = true`", expected())),
    }
}

impl RawWatchdog {
    fn resolve(self, doc: &Doc<'_>) -> Result<WatchdogConfig, ConfigError> {
        let defaults = WatchdogConfig::default();
        let scope = match self.scope {
            None => defaults.scope,
            Some(parts) => {
                let span = parts.span();
                let parts = parts.into_inner();
                let scope = Scope {
                    database: parts.contains(&ScopePart::Database),
                    code: parts.contains(&ScopePart::Code),
                    config: parts.contains(&ScopePart::Config),
                };
                if scope.is_empty() {
                    return Err(doc.error(
                        span,
                        "`scope` is empty: an automatic rollback would restore nothing",
                        Some("a list of \"database\", \"code\", \"config\"".into()),
                    ));
                }
                scope
            }
        };
        let interval = match self.interval {
            Some(i) if i.get_ref().0.is_zero() => {
                return Err(doc.error(
                    i.span(),
                    "`interval` is zero: the watchdog would spin",
                    Some("a polling interval such as \"10s\"".into()),
                ))
            }
            Some(i) => i.into_inner().0,
            None => defaults.interval,
        };
        Ok(WatchdogConfig {
            interval,
            cooldown: dur(self.cooldown).unwrap_or(defaults.cooldown),
            auto_rollback: self.auto_rollback,
            scope,
            rules: self.rules.unwrap_or(defaults.rules),
            plan: match self.plan {
                Some(plan) => plan.resolve(doc)?,
                None => defaults.plan,
            },
        })
    }
}

impl RawPlan {
    fn resolve(self, doc: &Doc<'_>) -> Result<CommunicationPlan, ConfigError> {
        let mut plan = CommunicationPlan::runbook();
        if let Some(notices) = self.notices {
            plan.notices = notices;
        }
        if let Some(escalation) = self.escalation {
            plan.escalation = escalation;
        }
        for contact in self.contacts {
            let span = contact.span();
            let c = contact.into_inner();
            let blank = [("role", &c.role), ("name", &c.name), ("reach", &c.reach)]
                .into_iter()
                .find(|(_, v)| v.trim().is_empty());
            if let Some((key, _)) = blank {
                return Err(doc.error(
                    span,
                    format!("an emergency contact with an empty `{key}`"),
                    Some(
                        "{ role = \"DevOps lead\", name = \"Bo Berg\", reach = \"+1 555 0101, @bo\" }: \
                         the role as the escalation path names it, who, and how to reach them"
                            .into(),
                    ),
                ));
            }
            plan.contacts.push(c);
        }
        Ok(plan)
    }
}

fn resolve_notify(doc: &Doc<'_>, n: Spanned<RawNotify>) -> Result<NotifyConfig, ConfigError> {
    let span = n.span();
    let n = n.into_inner();
    if let Some(url) = &n.url {
        return Err(doc.error_hiding(
            url.span(),
            "`url` in [[notify]]: a webhook URL carries its token and never goes in the config file",
            Some("url_env = \"ROLLBACK_WEBHOOK_URL\", an environment variable holding the URL".into()),
        ));
    }
    if let Some(key) = &n.routing_key {
        return Err(doc.error_hiding(
            key.span(),
            "`routing_key` in [[notify]]: a PagerDuty routing key is a secret and never goes in the config file",
            Some(ROUTING_KEY_ENV.into()),
        ));
    }
    let kind = n.kind.get_ref().as_str();
    let goes_with = |key: &str, at: Range<usize>, with: &str, instead: &str| {
        doc.error(at, format!("`{key}` goes with {with}"), Some(instead.to_owned()))
    };
    let timeout = || {
        let timeout = dur(n.timeout).unwrap_or(DEFAULT_NOTIFY_TIMEOUT);
        if timeout.is_zero() {
            return Err(doc.error(
                span.clone(),
                format!("a {kind} notifier with a zero timeout"),
                Some(DURATION.to_owned()),
            ));
        }
        Ok(timeout)
    };
    match kind {
        "webhook" | "slack" => {
            if let Some(v) = &n.routing_key_env {
                return Err(goes_with(
                    "routing_key_env",
                    v.span(),
                    "kind = \"pagerduty\"",
                    &format!("url_env alone for kind = \"{kind}\""),
                ));
            }
            let var = n.url_env.as_ref().ok_or_else(|| {
                doc.error(
                    n.kind.span(),
                    format!("kind = \"{kind}\" needs `url_env`"),
                    Some(if kind == "slack" {
                        "url_env = \"SLACK_WEBHOOK_URL\", an environment variable holding the incoming \
                         webhook's URL (https://hooks.slack.com/services/...)"
                            .into()
                    } else {
                        "url_env = \"ROLLBACK_WEBHOOK_URL\", an environment variable holding the URL".into()
                    }),
                )
            })?;
            let holds = if kind == "slack" {
                "the Slack webhook URL"
            } else {
                "the webhook URL"
            };
            let url_env = check_env_name(doc, var, "url_env", holds)?;
            let (timeout, ca_file) = (timeout()?, doc.opt_path(&n.ca_file, "ca_file")?);
            Ok(if kind == "slack" {
                NotifyConfig::Slack {
                    url_env,
                    timeout,
                    ca_file,
                }
            } else {
                NotifyConfig::Webhook {
                    url_env,
                    timeout,
                    ca_file,
                }
            })
        }
        "pagerduty" => {
            let var = n.routing_key_env.as_ref().ok_or_else(|| {
                doc.error(
                    n.kind.span(),
                    "kind = \"pagerduty\" needs `routing_key_env`",
                    Some(ROUTING_KEY_ENV.into()),
                )
            })?;
            if looks_like_a_routing_key(var.get_ref()) {
                return Err(doc.error_hiding(
                    var.span(),
                    "`routing_key_env` holds what looks like a routing key: it names the environment \
                     variable that holds the key, never the key",
                    Some(ROUTING_KEY_ENV.into()),
                ));
            }
            let routing_key_env = check_env_name(doc, var, "routing_key_env", "the PagerDuty routing key")?;
            let url_env = n
                .url_env
                .as_ref()
                .map(|v| check_env_name(doc, v, "url_env", "the Events API URL, when not PagerDuty's own"))
                .transpose()?;
            Ok(NotifyConfig::PagerDuty {
                routing_key_env,
                url_env,
                timeout: timeout()?,
                ca_file: doc.opt_path(&n.ca_file, "ca_file")?,
            })
        }
        "log" => {
            let http_only = [
                ("url_env", &n.url_env),
                ("routing_key_env", &n.routing_key_env),
                ("ca_file", &n.ca_file),
            ];
            if let Some((key, Some(v))) = http_only.into_iter().find(|(_, v)| v.is_some()) {
                return Err(goes_with(
                    key,
                    v.span(),
                    "kind = \"webhook\", \"slack\" or \"pagerduty\"",
                    "kind = \"log\" alone",
                ));
            }
            Ok(NotifyConfig::Log)
        }
        other => Err(doc.error(
            n.kind.span(),
            format!("unknown notification kind `{other}`"),
            Some(format!("one of: {}", NOTIFY_KINDS.join(", "))),
        )),
    }
}

/// The `kind`s of `[[notify]]`.
pub const NOTIFY_KINDS: &[&str] = &["webhook", "slack", "pagerduty", "log"];

/// What `routing_key_env` should look like, for messages.
const ROUTING_KEY_ENV: &str = "routing_key_env = \"PAGERDUTY_ROUTING_KEY\", an environment variable holding \
     the integration key of the service's Events API v2 integration";

/// Whether `name` looks like a PagerDuty integration key (32 hexadecimal characters)
/// rather than a variable's name.
fn looks_like_a_routing_key(name: &str) -> bool {
    name.len() == 32 && name.chars().all(|c| c.is_ascii_hexdigit())
}
