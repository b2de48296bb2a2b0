//! The adapters a [`Config`] names, built and handed to the library's [`Orchestrator`].
//!
//! [`wire`] builds them: [`PostgresSnapshot`] (its connection from the environment variable
//! or the pgpass file the config names), [`GitCode`], [`EnvFileStore`],
//! [`Pm2ProcessManager`] with its metrics, the health probes, the [`DirStateStore`] and the
//! notifiers (webhooks in the generic JSON, Slack or PagerDuty format, the log);
//! [`watchdog`] puts the watchdog over them. [`host_adapters`] builds what
//! `rollback agent --stdio` serves for one host. Nothing here decides anything about a
//! rollback: that is the orchestrator's.
//!
//! Errors name what could not be built and what to do. No secret appears in an error or in
//! `Debug` output: not the connection string, not the password from a pgpass file, not a
//! webhook URL, not a routing key.

use crate::config::{
    CodeLayout, Config, Connection, DatabaseConfig, HealthConfig, HostConfig, NotifyConfig,
    ProcessManagerKind, WatchdogConfig,
};
use async_trait::async_trait;
use rollback_core::automation::WatchdogBuilder;
use rollback_core::progress::ProgressSink;
use rollback_core::{
    AdapterError, AppName, CodeVersion, ConfigStore, DatabaseSnapshot, DirStateStore, ErrorKind, HealthProbe,
    HttpProbe, MetricsSource, Notice, Notifier, Orchestrator, ProcessManager, RollbackError, Secret,
    SqlProbe, StateStore, TracingNotifier, Watchdog, WebhookFormat, WebhookNotifier,
};
use rollback_envfile::EnvFileStore;
use rollback_fleet::{ssh, AgentConnection, Fleet, FleetError, FleetHost, HostAdapters, RemoteHost, SshHost};
use rollback_git::{GitCode, InPlaceOptions};
use rollback_pm2::{AppSpec, Pm2ProcessManager};
use rollback_postgres::{Options, PgConfig, PgTools, PostgresSnapshot};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything a command needs, built from a [`Config`] by [`wire`].
#[non_exhaustive]
pub struct Wired {
    /// The app's name as the process manager knows it (the orchestrator's app).
    pub app: AppName,
    /// The orchestrator over the adapters below.
    pub orchestrator: Arc<Orchestrator>,
    /// The database adapter (`[database]`).
    pub database: Option<Arc<dyn DatabaseSnapshot>>,
    /// The code adapter (`[code]`).
    pub code: Option<Arc<dyn CodeVersion>>,
    /// The env file store (`[config]`).
    pub config_store: Option<Arc<dyn ConfigStore>>,
    /// The process manager (`[process]`).
    pub process: Arc<dyn ProcessManager>,
    /// The process manager's metrics (memory and CPU), for checkpoints and the watchdog.
    pub metrics: Option<Arc<dyn MetricsSource>>,
    /// The state directory (`state_dir`).
    pub state: Arc<dyn StateStore>,
    /// The HTTP health probes (`[[health]] url = ...`); the watchdog's "health failing"
    /// rule watches them.
    pub probes: Vec<Arc<dyn HealthProbe>>,
    /// The SQL probe (`[[health]] sql = true`); the watchdog's "database unreachable" rule
    /// watches it.
    pub database_probe: Option<Arc<dyn HealthProbe>>,
    /// Where notices go (`[[notify]]`; the log when there is none).
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// The watchdog's settings (`[watchdog]`).
    pub watchdog: WatchdogConfig,
    /// The agents of `[[hosts]]`, connected, in the file's order (empty for one local
    /// host). The orchestrator's code, config, process and health are theirs, as a fleet.
    pub hosts: Vec<Arc<AgentConnection>>,
    /// The `[[hosts]]` that could not be reached, with what ssh or the agent said (only
    /// from [`wire_tolerant`]: they stand in the fleet as hosts whose every call fails).
    pub unreachable: Vec<(String, String)>,
}

impl fmt::Debug for Wired {
    /// Which parts are wired, never their connection settings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wired")
            .field("app", &self.app)
            .field("orchestrator", &self.orchestrator)
            .field("database", &self.database.is_some())
            .field("code", &self.code.is_some())
            .field("config_store", &self.config_store.is_some())
            .field("metrics", &self.metrics.is_some())
            .field(
                "probes",
                &self.probes.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .field("database_probe", &self.database_probe.is_some())
            .field("notifiers", &self.notifiers.len())
            .field("watchdog", &self.watchdog)
            .field("hosts", &self.hosts.iter().map(|h| h.host()).collect::<Vec<_>>())
            .field("unreachable", &self.unreachable)
            .finish()
    }
}

/// Why the adapters could not be built. Each names what failed and what to do; none holds
/// a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// An environment variable the config names is not usable.
    #[error(
        "environment variable {var} {problem}: it must hold {holds} (`{key}` in {}); export it where rollback runs, e.g. in the service's environment file",
        file.display()
    )]
    Env {
        /// The variable.
        var: String,
        /// "is not set", "is empty", "is not valid UTF-8".
        problem: String,
        /// What it must hold, e.g. "the database connection string".
        holds: String,
        /// The config key naming it, e.g. `[database] url_env`.
        key: String,
        /// The config file.
        file: PathBuf,
    },
    /// The pgpass file the config names could not be used.
    #[error("pgpass file {}: {problem}", path.display())]
    Pgpass {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
        /// The I/O error, when reading failed.
        #[source]
        source: Option<std::io::Error>,
    },
    /// An adapter refused its settings or could not start.
    #[error("{part}: {source}; check {section} in {}", file.display())]
    Adapter {
        /// What was being built, e.g. "the code adapter (git)".
        part: String,
        /// The config section to fix, e.g. `[code]`.
        section: String,
        /// The config file.
        file: PathBuf,
        /// The adapter's error (boxed: it is large, and every wiring result carries it).
        #[source]
        source: Box<AdapterError>,
    },
    /// The orchestrator refused its parts or settings.
    #[error("the orchestrator: {source}; check [settings] in {}", file.display())]
    Orchestrator {
        /// The config file.
        file: PathBuf,
        /// Its error.
        #[source]
        source: Box<RollbackError>,
    },
    /// A host of `[[hosts]]` could not be reached (ssh failed, its agent did not answer
    /// or refused); the error names the host and what ssh or the agent said.
    #[error("{source}; check its [[hosts]] entry in {}", file.display())]
    Host {
        /// The host's name.
        host: String,
        /// The config file.
        file: PathBuf,
        /// Why.
        #[source]
        source: FleetError,
    },
    /// A host of `[[hosts]]` answered, but its agent serves another app than this deploy
    /// box's: its `config` names another app's rollback.toml (or `[process] app` differs).
    #[error(
        "host `{host}`: its agent serves app `{serves}`, but this deploy box rolls back app `{app}`; \
         point the `config` of its [[hosts]] entry (`{host}`) at `{app}`'s rollback.toml on that host, \
         or make `[process] app` the same on both, in {}",
        file.display()
    )]
    HostApp {
        /// The host's name (its `[[hosts]]` entry).
        host: String,
        /// The app its agent serves (from its hello).
        serves: String,
        /// This deploy box's app (`[process] app`).
        app: String,
        /// The config file.
        file: PathBuf,
    },
    /// The watchdog refused its settings.
    #[error("the watchdog: {source}; check [watchdog]")]
    Watchdog {
        /// Its error.
        #[source]
        source: Box<RollbackError>,
    },
}

impl WireError {
    /// True when a `[[hosts]]` entry could not be reached (the config may be right: the
    /// host is down, or ssh refused): a refusal before anything changed, not a config error.
    pub fn is_unreachable_host(&self) -> bool {
        matches!(
            self,
            WireError::Host {
                source: FleetError::Unreachable { .. },
                ..
            }
        )
    }
}

/// Builds every adapter `config` names and the orchestrator over them; progress events go
/// to `progress` when given.
///
/// Touches the system only to check: the state directory is created if missing, the git
/// repository and build tools are looked at, `pg_dump`/`pg_restore` are found (in
/// `[database] bindir`, else on the system), the pgpass file and the CA files (`ca_file`)
/// are read. No database, pm2 or HTTP connection is made.
///
/// Every `[[notify]]` target is given to the orchestrator as well as to the watchdog: every
/// rollback is announced (started, finished or failed, halted), naming who is responsible
/// now and next by `[watchdog.plan]`'s escalation path and emergency contacts.
pub async fn wire(config: &Config, progress: Option<ProgressSink>) -> Result<Wired, WireError> {
    wire_with(config, progress, Reach::Every).await
}

/// [`wire`] for what can be done with the hosts that answer (the status, the journal and
/// reports live on this box; a resume leaves an unreachable host out and names it): a
/// `[[hosts]]` entry that cannot be reached stands in the fleet as a host whose every call
/// fails `Unavailable` naming it, and is listed in [`Wired::unreachable`].
pub async fn wire_tolerant(config: &Config, progress: Option<ProgressSink>) -> Result<Wired, WireError> {
    wire_with(config, progress, Reach::Answering).await
}

/// Which hosts a command needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Every host: one that cannot be reached is the error.
    Every,
    /// Those that answer; the others stand in as unreachable.
    Answering,
}

async fn wire_with(
    config: &Config,
    progress: Option<ProgressSink>,
    reach: Reach,
) -> Result<Wired, WireError> {
    let app = AppName::new(config.process.app.as_str());

    let state = state_store(config, &app).await?;

    let database: Option<Arc<dyn DatabaseSnapshot>> = match &config.database {
        Some(db) => Some(Arc::new(postgres(config, db).await?)),
        None => None,
    };
    let (code, config_store, process, metrics, probes, hosts, unreachable) = if config.hosts.is_empty() {
        let code = code_adapter(config).await?;
        let config_store = config_store(config);
        let (process, metrics) = process_manager(config, &app)?;
        let probes = http_probes(config).await?;
        (
            code,
            config_store,
            process,
            metrics,
            probes,
            Vec::new(),
            Vec::new(),
        )
    } else {
        let connected = connect_hosts(config, reach).await?;
        let mut hosts = Vec::new();
        let mut unreachable = Vec::new();
        let mut members = Vec::new();
        for (name, c) in connected {
            match c {
                Ok(conn) => {
                    members.push(FleetHost::remote(RemoteHost(conn.clone())));
                    hosts.push(conn);
                }
                Err(why) => {
                    members.push(FleetHost::unreachable(&name, &why));
                    unreachable.push((name, why));
                }
            }
        }
        let fleet = Fleet::new(members, config.fleet.parallelism, config.fleet.health_timeout)
            .map_err(adapter_error(config, "the fleet", "[[hosts]]"))?;
        let code = fleet.code().map(|c| Arc::new(c) as Arc<dyn CodeVersion>);
        let store = fleet.config().map(|c| Arc::new(c) as Arc<dyn ConfigStore>);
        let process: Arc<dyn ProcessManager> = Arc::new(fleet.process());
        // Every host's own health first, then this file's (the balancer's URL, say).
        let mut probes: Vec<Arc<dyn HealthProbe>> = vec![Arc::new(fleet.health(app.clone()))];
        probes.extend(http_probes(config).await?);
        (code, store, process, None, probes, hosts, unreachable)
    };

    let mut database_probe: Option<Arc<dyn HealthProbe>> = None;
    for h in &config.health {
        if let HealthConfig::Sql { timeout } = h {
            // config::parse refuses `sql = true` without a [database].
            let Some(db) = &database else {
                return Err(adapter_error(config, "the SQL health probe", "[[health]]")(
                    AdapterError::new(
                        ErrorKind::InvalidInput,
                        "`sql = true` needs a [database] to probe",
                    ),
                ));
            };
            database_probe = Some(Arc::new(SqlProbe::new(db.clone(), *timeout)));
        }
    }

    let notifiers = notifiers(config).await?;

    let mut settings = config.settings.clone();
    if let Some(db) = &config.database {
        let mut assertions = db.assertions.clone();
        assertions.extend(settings.integrity.assertions.iter().cloned());
        settings.integrity.assertions = assertions;
    }

    let mut builder = Orchestrator::builder(app.clone())
        .process(process.clone())
        .state(state.clone())
        .settings(settings);
    if let Some(db) = &database {
        builder = builder.database(db.clone());
    }
    if let Some(code) = &code {
        builder = builder.code(code.clone());
    }
    if let Some(store) = &config_store {
        builder = builder.config(store.clone());
    }
    if let Some(m) = &metrics {
        builder = builder.metrics(m.clone());
    }
    for p in probes.iter().chain(&database_probe) {
        builder = builder.health_probe(p.clone());
    }
    if let Some(sink) = progress {
        builder = builder.progress(sink);
    }
    // Every rollback, not only the watchdog's, is announced to the [[notify]] targets,
    // naming who is responsible by the plan's escalation path and contacts.
    for n in &notifiers {
        builder = builder.notifier(n.clone());
    }
    builder = builder.communication_plan(config.watchdog.plan.clone());
    // The orchestrator's limit per notice is a backstop: each webhook's own `timeout` (and
    // its error, which says what happened) comes first.
    if let Some(longest) = config.notify.iter().filter_map(NotifyConfig::timeout).max() {
        builder = builder.notice_timeout(longest + NOTICE_TIMEOUT_MARGIN);
    }
    let orchestrator = builder.build().map_err(|source| WireError::Orchestrator {
        file: config.file.clone(),
        source: Box::new(source),
    })?;

    Ok(Wired {
        app,
        orchestrator: Arc::new(orchestrator),
        database,
        code,
        config_store,
        process,
        metrics,
        state,
        probes,
        database_probe,
        notifiers,
        watchdog: config.watchdog.clone(),
        hosts,
        unreachable,
    })
}

/// Connects to every `[[hosts]]` agent over ssh, all at once, each within
/// `[fleet] hello_timeout`; each host in the file's order with its connection, or (with
/// [`Reach::Answering`]) what ssh or its agent said. With [`Reach::Every`] the first host
/// that cannot be reached is the error, naming it and what ssh or its agent said; an agent
/// that serves another app than `[process] app` is always the error. The other
/// connections are dropped then (their agents end).
async fn connect_hosts(
    config: &Config,
    reach: Reach,
) -> Result<Vec<(String, Result<Arc<AgentConnection>, String>)>, WireError> {
    let mut ssh_hosts = Vec::with_capacity(config.hosts.len());
    for h in &config.hosts {
        ssh_hosts.push(ssh_host(config, h)?);
    }
    let hello = config.fleet.hello_timeout;
    let connected = futures::future::join_all(ssh_hosts.iter().map(|h| async move {
        // The hello's limit also bounds ssh's own connection and login.
        match tokio::time::timeout(hello + HELLO_MARGIN, ssh::connect(h, hello)).await {
            Ok(result) => result,
            Err(_) => Err(FleetError::Unreachable {
                host: h.name().to_owned(),
                why: format!("no answer within {}s", (hello + HELLO_MARGIN).as_secs()),
            }),
        }
    }))
    .await;
    let app = AppName::new(config.process.app.as_str());
    let mut hosts = Vec::with_capacity(connected.len());
    for (h, result) in config.hosts.iter().zip(connected) {
        match result {
            Ok(conn) if conn.hello().app != app => {
                return Err(WireError::HostApp {
                    host: h.name.clone(),
                    serves: conn.hello().app.as_str().to_owned(),
                    app: app.as_str().to_owned(),
                    file: config.file.clone(),
                })
            }
            Ok(conn) => hosts.push((h.name.clone(), Ok(conn))),
            Err(FleetError::Unreachable { why, .. }) if reach == Reach::Answering => {
                hosts.push((h.name.clone(), Err(why)));
            }
            Err(source) => {
                return Err(WireError::Host {
                    host: h.name.clone(),
                    file: config.file.clone(),
                    source,
                })
            }
        }
    }
    Ok(hosts)
}

/// How much longer than the hello's limit the whole connection (ssh's login included) may
/// take.
const HELLO_MARGIN: Duration = Duration::from_secs(5);

/// The ssh settings of one `[[hosts]]` entry.
fn ssh_host(config: &Config, h: &HostConfig) -> Result<SshHost, WireError> {
    let mut builder = SshHost::builder(h.ssh.as_str(), h.config.as_str())
        .name(h.name.as_str())
        .host_key_policy(h.host_key_policy);
    if let Some(p) = h.port {
        builder = builder.port(p);
    }
    if let Some(f) = &h.identity_file {
        builder = builder.identity_file(f);
    }
    if let Some(f) = &h.ssh_config {
        builder = builder.config_file(f);
    }
    if let Some(f) = &h.known_hosts {
        builder = builder.known_hosts_file(f);
    }
    if let Some(dir) = &config.fleet.control_dir {
        builder = builder.control_directory(dir);
    }
    if let Some(argv) = &h.command {
        builder = builder.command(argv.iter().cloned());
    }
    builder
        .build()
        .map_err(adapter_error(config, &format!("host `{}`", h.name), "[[hosts]]"))
}

/// How much longer than the longest `[[notify]] timeout` the orchestrator waits for a
/// notice.
const NOTICE_TIMEOUT_MARGIN: Duration = Duration::from_secs(2);

/// The adapters `rollback agent --stdio` serves for this host: `[code]`, `[config]`,
/// `[process]` and the HTTP `[[health]]` probes (the app's own endpoint, probed from the
/// host itself).
///
/// What the orchestrator's host does once is not built: no `[database]` (nor its SQL
/// probe), no state directory, no notifiers. So the agent needs none of their secrets and
/// creates nothing; like [`wire`], it connects to nothing.
pub async fn host_adapters(config: &Config) -> Result<HostAdapters, WireError> {
    let app = AppName::new(config.process.app.as_str());
    let code = code_adapter(config).await?;
    let store = config_store(config);
    let (process, _) = process_manager(config, &app)?;
    let probes = http_probes(config).await?;
    let mut adapters = HostAdapters::new(app, process).probes(probes);
    if let Some(code) = code {
        adapters = adapters.code(code);
    }
    if let Some(store) = store {
        adapters = adapters.config(store);
    }
    Ok(adapters)
}

/// Makes a [`WireError::Adapter`] for `part`, to fix in `section` of the config file.
fn adapter_error(config: &Config, part: &str, section: &str) -> impl FnOnce(AdapterError) -> WireError {
    let (part, section, file) = (part.to_owned(), section.to_owned(), config.file.clone());
    move |source| WireError::Adapter {
        part,
        section,
        file,
        source: Box::new(source),
    }
}

/// Runs `build` (which reads files: CA certificates, the repository) on a blocking
/// thread.
async fn blocking<T: Send + 'static>(
    build: impl FnOnce() -> Result<T, AdapterError> + Send + 'static,
) -> Result<T, AdapterError> {
    tokio::task::spawn_blocking(build)
        .await
        .map_err(|e| AdapterError::new(ErrorKind::Failed, format!("the check stopped: {e}")))
        .and_then(|built| built)
}

/// The code adapter of `[code]`.
async fn code_adapter(config: &Config) -> Result<Option<Arc<dyn CodeVersion>>, WireError> {
    let Some(c) = &config.code else {
        return Ok(None);
    };
    let mut builder = GitCode::builder(&c.repo).allow_dirty(c.allow_dirty);
    builder = match &c.layout {
        CodeLayout::Releases {
            releases_dir,
            current_link,
        } => builder.releases(releases_dir, current_link),
        CodeLayout::InPlace {
            worktrees_dir,
            artifacts,
            reset_branch,
        } => {
            let mut options = InPlaceOptions::new().artifacts(artifacts.iter().cloned());
            if let Some(dir) = worktrees_dir {
                options = options.worktrees_dir(dir);
            }
            if let Some(branch) = reset_branch {
                options = options.reset_branch(branch);
            }
            builder.in_place(options)
        }
    };
    for argv in &c.build {
        builder = builder.build_command(argv.iter().cloned());
    }
    if let Some(t) = c.build_timeout {
        builder = builder.build_timeout(t);
    }
    if let Some(n) = c.keep {
        builder = builder.keep(n);
    }
    if let Some(b) = &c.branch {
        builder = builder.branch(b);
    }
    // Checking the repository and the build tools is blocking file system work.
    let code = blocking(move || builder.build()).await.map_err(adapter_error(
        config,
        "the code adapter (git)",
        "[code]",
    ))?;
    Ok(Some(Arc::new(code)))
}

/// The env file store of `[config]`.
fn config_store(config: &Config) -> Option<Arc<dyn ConfigStore>> {
    config.env_file.as_ref().map(|e| {
        let mut store = EnvFileStore::new(&e.file).require_keys(e.required_keys.iter().cloned());
        if let Some(dir) = &e.history_dir {
            store = store.history_dir(dir);
        }
        if e.allow_history_in_worktree {
            store = store.allow_history_in_worktree();
        }
        if let Some(n) = e.keep {
            store = store.keep_last(n);
        }
        Arc::new(store) as Arc<dyn ConfigStore>
    })
}

/// The process manager of `[process]`, with its metrics.
#[allow(clippy::type_complexity)]
fn process_manager(
    config: &Config,
    app: &AppName,
) -> Result<(Arc<dyn ProcessManager>, Option<Arc<dyn MetricsSource>>), WireError> {
    match config.process.manager {
        ProcessManagerKind::Pm2 => {
            let p = &config.process;
            let mut builder = Pm2ProcessManager::builder();
            if let Some(home) = &p.pm2_home {
                builder = builder.home(home);
            }
            if let Some(binary) = &p.binary {
                builder = builder.binary(binary);
            }
            if let Some(t) = p.state_timeout {
                builder = builder.state_timeout(t);
            }
            if let Some(t) = p.stability_window {
                builder = builder.stability_window(t);
            }
            if let Some(t) = p.command_timeout {
                builder = builder.command_timeout(t);
            }
            if let Some(file) = &p.ecosystem {
                builder = builder.app(app.clone(), AppSpec::Ecosystem { file: file.clone() });
            }
            let pm2 =
                builder
                    .build()
                    .map_err(adapter_error(config, "the process manager (pm2)", "[process]"))?;
            let metrics: Arc<dyn MetricsSource> = Arc::new(pm2.metrics());
            Ok((Arc::new(pm2), Some(metrics)))
        }
    }
}

/// The HTTP probes of `[[health]]` (`url = ...`), each trusting its `ca_file` too.
async fn http_probes(config: &Config) -> Result<Vec<Arc<dyn HealthProbe>>, WireError> {
    let mut probes: Vec<Arc<dyn HealthProbe>> = Vec::new();
    for h in &config.health {
        if let HealthConfig::Http {
            url,
            timeout,
            ca_file,
        } = h
        {
            let mut builder = HttpProbe::builder(url.clone(), *timeout);
            if let Some(ca) = ca_file {
                builder = builder.root_ca_file(ca);
            }
            let probe = blocking(move || builder.build()).await.map_err(adapter_error(
                config,
                "an HTTP health probe",
                "[[health]]",
            ))?;
            probes.push(Arc::new(probe));
        }
    }
    Ok(probes)
}

/// The `[[notify]]` targets (the log when there is none). The URLs and routing keys are
/// read from their environment variables as secrets, and never shown.
async fn notifiers(config: &Config) -> Result<Vec<Arc<dyn Notifier>>, WireError> {
    let mut notifiers: Vec<Arc<dyn Notifier>> = Vec::new();
    for n in &config.notify {
        let (part, builder, ca_file) = match n {
            NotifyConfig::Webhook {
                url_env,
                timeout,
                ca_file,
            } => {
                let url = env_value(config, url_env, "a webhook URL", "[[notify]] url_env")?;
                (
                    format!("the webhook in {url_env}"),
                    WebhookNotifier::builder(url, *timeout).format(WebhookFormat::Json),
                    ca_file,
                )
            }
            NotifyConfig::Slack {
                url_env,
                timeout,
                ca_file,
            } => {
                let url = env_value(
                    config,
                    url_env,
                    "a Slack incoming webhook's URL (https://hooks.slack.com/services/...)",
                    "[[notify]] url_env",
                )?;
                (
                    format!("the Slack webhook in {url_env}"),
                    WebhookNotifier::builder(url, *timeout).format(WebhookFormat::Slack),
                    ca_file,
                )
            }
            NotifyConfig::PagerDuty {
                routing_key_env,
                url_env,
                timeout,
                ca_file,
            } => {
                let key = env_value(
                    config,
                    routing_key_env,
                    "a PagerDuty Events API v2 routing key (the integration key)",
                    "[[notify]] routing_key_env",
                )?;
                let mut builder = WebhookNotifier::pagerduty(key, *timeout);
                if let Some(var) = url_env {
                    let url = env_value(config, var, "the PagerDuty Events API URL", "[[notify]] url_env")?;
                    builder = builder.url(url);
                }
                (
                    format!("PagerDuty (the routing key in {routing_key_env})"),
                    builder,
                    ca_file,
                )
            }
            NotifyConfig::Log => {
                notifiers.push(Arc::new(TracingNotifier));
                continue;
            }
        };
        let builder = match ca_file {
            Some(ca) => builder.root_ca_file(ca),
            None => builder,
        };
        let hook =
            blocking(move || builder.build())
                .await
                .map_err(adapter_error(config, &part, "[[notify]]"))?;
        notifiers.push(Arc::new(hook));
    }
    if notifiers.is_empty() {
        notifiers.push(Arc::new(TracingNotifier));
    }
    Ok(notifiers)
}

/// The watchdog over `wired`: its probes, metrics, rules, plan and notifiers. With
/// `shadow`, auto-rollback is off and no notifier is attached: it only records what would
/// have fired (its events and the notices the plan would have sent).
pub fn watchdog(wired: &Wired, shadow: bool) -> Result<Watchdog, WireError> {
    watchdog_builder(wired, shadow)
        .build()
        .map_err(|source| WireError::Watchdog {
            source: Box::new(source),
        })
}

/// The same as [`watchdog`], before `build()`: to add an events channel
/// ([`WatchdogBuilder::events`]) for a live display.
pub fn watchdog_builder(wired: &Wired, shadow: bool) -> WatchdogBuilder {
    let w = &wired.watchdog;
    let mut builder = Watchdog::builder(wired.orchestrator.clone())
        .rules(w.rules.clone())
        .plan(w.plan.clone())
        .interval(w.interval)
        .cooldown(w.cooldown)
        .scope(w.scope)
        .auto_rollback(w.auto_rollback && !shadow);
    for p in &wired.probes {
        builder = builder.health_probe(p.clone());
    }
    if let Some(p) = &wired.database_probe {
        builder = builder.database_probe(p.clone());
    }
    if let Some(m) = &wired.metrics {
        builder = builder.metrics(m.clone());
    }
    if !shadow {
        builder = builder.notifier(FanOut(wired.notifiers.clone()));
    }
    builder
}

/// Sends each notice to every target; fails (naming each failure) when any failed.
struct FanOut(Vec<Arc<dyn Notifier>>);

#[async_trait]
impl Notifier for FanOut {
    async fn notify(&self, notice: &Notice) -> Result<(), AdapterError> {
        let mut failures = Vec::new();
        for n in &self.0 {
            if let Err(e) = n.notify(notice).await {
                failures.push(e);
            }
        }
        match failures.len() {
            0 => Ok(()),
            1 => Err(failures.remove(0)),
            k => {
                let all: Vec<String> = failures.iter().map(ToString::to_string).collect();
                Err(AdapterError::new(
                    failures[0].kind(),
                    format!(
                        "{k} of {} notification targets failed: {}",
                        self.0.len(),
                        all.join("; ")
                    ),
                ))
            }
        }
    }
}

/// The value of the environment variable `var`, as a secret.
fn env_value(config: &Config, var: &str, holds: &str, key: &str) -> Result<Secret, WireError> {
    let problem = match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => return Ok(Secret::new(v)),
        Ok(_) => "is empty",
        Err(std::env::VarError::NotPresent) => "is not set",
        Err(std::env::VarError::NotUnicode(_)) => "is not valid UTF-8",
    };
    Err(WireError::Env {
        var: var.to_owned(),
        problem: problem.to_owned(),
        holds: holds.to_owned(),
        key: key.to_owned(),
        file: config.file.clone(),
    })
}

/// The PostgreSQL adapter of `[database]`.
async fn postgres(config: &Config, db: &DatabaseConfig) -> Result<PostgresSnapshot, WireError> {
    let adapter = |source: AdapterError| WireError::Adapter {
        part: "the database adapter (PostgreSQL)".into(),
        section: "[database]".into(),
        file: config.file.clone(),
        source: Box::new(source),
    };
    let pg = match &db.connection {
        Connection::UrlEnv { var } => {
            let url = env_value(
                config,
                var,
                "the database connection string (postgres://user:password@host:port/dbname)",
                "[database] url_env",
            )?;
            PgConfig::from_url(url.expose()).map_err(|e| {
                adapter(AdapterError::from(e).context(format!("the connection string in {var}")))
            })?
        }
        Connection::Pgpass {
            file,
            host,
            port,
            user,
            dbname,
        } => {
            let pg = PgConfig::new(host.clone(), *port, user.clone(), dbname.clone());
            let (path, host, port, user, dbname) =
                (file.clone(), host.clone(), *port, user.clone(), dbname.clone());
            let password =
                tokio::task::spawn_blocking(move || pgpass::lookup(&path, &host, port, &dbname, &user))
                    .await
                    .map_err(|e| WireError::Pgpass {
                        path: file.clone(),
                        problem: format!("reading it stopped: {e}"),
                        source: None,
                    })??;
            pg.password(password)
        }
    };
    let tools = match &db.bindir {
        Some(dir) => PgTools::in_dir(dir),
        None => PgTools::discover().await.map_err(|e| {
            adapter(AdapterError::from(e).context("set [database] bindir to the directory holding them, or"))
        })?,
    };
    let mut options = Options::new().format(db.format);
    if let Some(jobs) = db.jobs {
        options = options.jobs(jobs);
    }
    if let Some(t) = db.dump_timeout {
        options = options.dump_timeout(t);
    }
    if let Some(t) = db.restore_timeout {
        options = options.restore_timeout(t);
    }
    Ok(PostgresSnapshot::new(pg, &db.snapshots_dir, tools).with_options(options))
}

/// libpq's password file: `hostname:port:database:username:password` lines, `*` matching
/// anything, `\:` and `\\` escapes, `#` comments; the first matching line wins. Like libpq,
/// a file others can read is refused, and a unix socket directory matches `localhost`.
mod pgpass {
    use super::WireError;
    use rollback_core::Secret;
    use std::path::Path;

    /// The password for this connection in the pgpass file at `path`. Blocking.
    pub(super) fn lookup(
        path: &Path,
        host: &str,
        port: u16,
        dbname: &str,
        user: &str,
    ) -> Result<Secret, WireError> {
        let error = |problem: String, source: Option<std::io::Error>| WireError::Pgpass {
            path: path.to_path_buf(),
            problem,
            source,
        };
        let meta = std::fs::metadata(path).map_err(|e| {
            error(
                "cannot be read: create it (libpq's format, hostname:port:database:username:password) or fix [database] pgpass".into(),
                Some(e),
            )
        })?;
        if !meta.is_file() {
            return Err(error(
                "is not a file: point [database] pgpass at the pgpass file".into(),
                None,
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(error(
                    format!("can be read by others (mode {mode:04o}), and libpq would ignore it: run `chmod 0600` on it"),
                    None,
                ));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| error("cannot be read".into(), Some(e)))?;
        // libpq matches a socket directory as `localhost`.
        let host = if host.is_empty() || host.starts_with('/') {
            "localhost"
        } else {
            host
        };
        find(&text, host, &port.to_string(), dbname, user)
            .map(Secret::new)
            .ok_or_else(|| {
                error(
                    format!(
                        "has no line for {host}:{port}:{dbname}:{user}: add one (hostname:port:database:username:password; `*` matches anything)"
                    ),
                    None,
                )
            })
    }

    /// The password of the first line matching the four fields.
    pub(super) fn find(text: &str, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
        text.lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .find_map(|line| {
                let fields = split(line);
                let [h, p, d, u, pw, ..] = fields.as_slice() else {
                    return None;
                };
                let matches = |field: &Field, value: &str| field.any || field.text == value;
                (matches(h, host) && matches(p, port) && matches(d, dbname) && matches(u, user))
                    .then(|| pw.text.clone())
            })
    }

    /// One field: its text with escapes resolved, and whether it was a bare `*`.
    struct Field {
        text: String,
        any: bool,
    }

    /// A line's fields, split at unescaped `:`; the fifth (the password) ends at the next
    /// unescaped `:`, as in libpq.
    fn split(line: &str) -> Vec<Field> {
        let mut fields = Vec::new();
        let (mut text, mut raw) = (String::new(), String::new());
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(next) => {
                        text.push(next);
                        raw.push('\\');
                        raw.push(next);
                    }
                    None => {
                        text.push('\\');
                        raw.push('\\');
                    }
                },
                ':' => {
                    fields.push(Field {
                        any: raw == "*",
                        text: std::mem::take(&mut text),
                    });
                    raw.clear();
                }
                c => {
                    text.push(c);
                    raw.push(c);
                }
            }
        }
        fields.push(Field {
            any: raw == "*",
            text,
        });
        fields
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_first_matching_line_wins_with_wildcards_and_escapes() {
            let file = "# comment\n\
                        other:5432:shop:app:nope\n\
                        db.internal:5432:shop:app:p\\:w\\\\1\n\
                        *:*:*:app:fallback\n";
            assert_eq!(
                find(file, "db.internal", "5432", "shop", "app").as_deref(),
                Some("p:w\\1")
            );
            assert_eq!(
                find(file, "elsewhere", "5433", "x", "app").as_deref(),
                Some("fallback")
            );
            assert_eq!(find(file, "elsewhere", "5433", "x", "bob"), None);
            // A literal `*` (escaped) matches only `*`.
            assert_eq!(find("\\*:*:*:*:lit\n", "h", "1", "d", "u"), None);
            // The password ends at the next unescaped `:`.
            assert_eq!(
                find("h:1:d:u:pw:extra\n", "h", "1", "d", "u").as_deref(),
                Some("pw")
            );
            // Too few fields: skipped.
            assert_eq!(find("h:1:d\n", "h", "1", "d", "u"), None);
        }

        #[test]
        fn lookup_refuses_a_file_others_can_read_and_names_a_missing_line_without_secrets() {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("pgpass");
            std::fs::write(&path, "localhost:5432:shop:app:canary-pw\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = lookup(&path, "localhost", 5432, "shop", "app").unwrap_err();
            assert!(e.to_string().contains("chmod 0600"), "{e}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            // A socket directory matches `localhost`.
            let pw = lookup(&path, "/run/postgresql", 5432, "shop", "app").unwrap();
            assert_eq!(pw.expose(), "canary-pw");
            let e = lookup(&path, "db", 5432, "shop", "app").unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(shown.contains("db:5432:shop:app"), "{shown}");
            assert!(!shown.contains("canary-pw"), "{shown}");
        }
    }
}

/// The state store `[state]` names: the state directory, or a PostgreSQL database several
/// deploy boxes share (never the app's own: a rollback renames that one).
async fn state_store(config: &Config, app: &AppName) -> Result<Arc<dyn StateStore>, WireError> {
    match &config.state {
        crate::config::StateConfig::Postgres { url_env, schema } => {
            let url = env_value(
                config,
                url_env,
                "the state database's connection string",
                "[state] url_env",
            )?;
            let adapter = |e| adapter_error(config, "the shared state store (PostgreSQL)", "[state]")(e);
            let pg = PgConfig::from_url(url.expose()).map_err(|e| {
                adapter(AdapterError::from(e).context(format!("the connection string in {url_env}")))
            })?;
            let same = app_database(config).is_some_and(|(host, port, dbname)| {
                dbname == pg.dbname && same_server(&host, port, &pg.host, pg.port)
            });
            if same {
                return Err(adapter(AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "{url_env} names the app's own database `{}` (the one [database] rolls back): a rollback renames and restores that one, which would take the journal with it; give the state store a database of its own (e.g. `rollback_state`)",
                        pg.dbname
                    ),
                )));
            }
            let mut store = rollback_postgres::PgStateStore::new(pg, app.as_str());
            if let Some(schema) = schema {
                store = store.schema(schema.as_str());
            }
            Ok(Arc::new(store))
        }
        _ => {
            let store = DirStateStore::open(&config.state_dir)
                .await
                .map_err(adapter_error(config, "the state directory", "state_dir"))?;
            Ok(Arc::new(store))
        }
    }
}

/// Where the app's own database is (`[database]`): host, port and name, from its
/// connection string's variable or its pgpass settings. `None` without a `[database]`, or
/// when its variable is unset or does not parse (wiring the database names that).
fn app_database(config: &Config) -> Option<(String, u16, String)> {
    match &config.database.as_ref()?.connection {
        Connection::UrlEnv { var } => {
            let pg = PgConfig::from_url(&std::env::var(var).ok()?).ok()?;
            Some((pg.host, pg.port, pg.dbname))
        }
        Connection::Pgpass {
            host, port, dbname, ..
        } => Some((host.clone(), *port, dbname.clone())),
    }
}

/// True when `a` and `b` name the same PostgreSQL server: the same port, and the same host
/// once names of this machine are made one (`localhost`, `127.0.0.1`, `::1`, and a unix
/// socket directory, which libpq also treats as `localhost`). Host names compare without
/// case, brackets or a trailing dot.
fn same_server(a_host: &str, a_port: u16, b_host: &str, b_port: u16) -> bool {
    fn canonical(host: &str) -> String {
        let host = host.trim();
        if host.is_empty() || host.starts_with('/') {
            return "localhost".into();
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        match host.as_str() {
            "127.0.0.1" | "::1" | "0:0:0:0:0:0:0:1" | "localhost" => "localhost".into(),
            _ => host,
        }
    }
    a_port == b_port && canonical(a_host) == canonical(b_host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::path::Path;

    #[test]
    fn the_same_server_is_recognised_under_its_local_names() {
        for (a, b) in [
            ("localhost", "127.0.0.1"),
            ("127.0.0.1", "::1"),
            ("[::1]", "LOCALHOST"),
            ("/run/postgresql", "localhost"),
            ("db.internal", "DB.internal."),
        ] {
            assert!(same_server(a, 5432, b, 5432), "{a} = {b}");
        }
        assert!(!same_server("localhost", 5432, "127.0.0.1", 5433), "another port");
        assert!(!same_server("db-a", 5432, "db-b", 5432), "another host");
        assert!(
            !same_server("10.0.0.1", 5432, "localhost", 5432),
            "a remote address"
        );
    }

    fn config_with_state_store(dir: &Path, state_var: &str, database: &str) -> Config {
        let text = format!(
            r#"app = "web"
state_dir = "state"

[state]
store = "postgres"
url_env = "{state_var}"

{database}
snapshots_dir = "snapshots"
bindir = "/usr/lib/postgresql/16/bin"

[process]
manager = "pm2"
pm2_home = "pm2"
"#
        );
        config::parse(&text, &dir.join("rollback.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn the_state_store_is_refused_in_the_apps_own_database_however_it_is_configured() {
        let tmp = tempfile::tempdir().unwrap();
        let pgpass = tmp.path().join("pgpass");
        std::fs::write(&pgpass, "*:*:*:app:canary-pw\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let var = "ROLLBACK_CLI_TEST_STATE_SAME";
        std::env::set_var(var, "postgres://state:canary-state@127.0.0.1:5433/shop");
        let by_pgpass = |host: &str, port: u16, dbname: &str| {
            format!(
                "[database]\npgpass = \"pgpass\"\nhost = \"{host}\"\nport = {port}\nuser = \"app\"\ndbname = \"{dbname}\""
            )
        };
        // The app's database through pgpass, on `localhost` where the state URL says
        // 127.0.0.1: the same server and database, refused, naming both.
        for host in ["localhost", "127.0.0.1", "::1"] {
            let c = config_with_state_store(tmp.path(), var, &by_pgpass(host, 5433, "shop"));
            let e = wire(&c, None).await.unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(
                shown.contains(var) && shown.contains("own database `shop`") && shown.contains("[state]"),
                "{host}: {shown}"
            );
            assert!(!shown.contains("canary"), "{shown}");
        }
        // Another database, or another port, on the same server: accepted.
        for (port, dbname) in [(5433, "rollback_state"), (5434, "shop")] {
            let c = config_with_state_store(tmp.path(), var, &by_pgpass("localhost", port, dbname));
            wire(&c, None)
                .await
                .unwrap_or_else(|e| panic!("{port}/{dbname}: {e}"));
        }
        // The app's database through its own variable, named `localhost`: refused too.
        let app_var = "ROLLBACK_CLI_TEST_STATE_SAME_APP";
        std::env::set_var(app_var, "postgres://app:canary-pw@localhost:5433/shop");
        let c = config_with_state_store(tmp.path(), var, &format!("[database]\nurl_env = \"{app_var}\""));
        let e = wire(&c, None).await.unwrap_err();
        assert!(e.to_string().contains("own database `shop`"), "{e}");
    }

    fn config_with_database(dir: &Path, var: &str) -> Config {
        let text = format!(
            r#"app = "web"
state_dir = "state"

[database]
url_env = "{var}"
snapshots_dir = "snapshots"
bindir = "/usr/lib/postgresql/16/bin"

[process]
manager = "pm2"
pm2_home = "pm2"

[[health]]
sql = true

[[notify]]
kind = "webhook"
url_env = "{var}_HOOK"
"#
        );
        config::parse(&text, &dir.join("rollback.toml")).unwrap()
    }

    #[tokio::test]
    async fn a_missing_variable_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let c = config_with_database(tmp.path(), "ROLLBACK_CLI_TEST_UNSET_URL");
        let e = wire(&c, None).await.unwrap_err();
        let m = e.to_string();
        assert!(m.contains("ROLLBACK_CLI_TEST_UNSET_URL is not set"), "{m}");
        assert!(
            m.contains("[database] url_env") && m.contains("rollback.toml"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn the_password_in_the_connection_string_never_shows() {
        let tmp = tempfile::tempdir().unwrap();
        // A connection string that does not parse: the error names the variable, not the value.
        std::env::set_var(
            "ROLLBACK_CLI_TEST_BAD_URL",
            "postgres://app:canary-pw@db:notaport/shop",
        );
        let c = config_with_database(tmp.path(), "ROLLBACK_CLI_TEST_BAD_URL");
        let e = wire(&c, None).await.unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("ROLLBACK_CLI_TEST_BAD_URL"), "{shown}");
        assert!(!shown.contains("canary-pw"), "{shown}");

        // A good one, and a webhook whose URL holds a token: wired, and nothing shows them.
        std::env::set_var(
            "ROLLBACK_CLI_TEST_URL",
            "postgres://app:canary-pw@127.0.0.1:5432/shop",
        );
        std::env::set_var(
            "ROLLBACK_CLI_TEST_URL_HOOK",
            "https://hooks.example/T0/canary-token",
        );
        let c = config_with_database(tmp.path(), "ROLLBACK_CLI_TEST_URL");
        let wired = wire(&c, None).await.unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{wired:?} {wired:#?} {c:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(wired.database.is_some() && wired.database_probe.is_some());
        assert_eq!(wired.app.as_str(), "web");
        assert!(tmp.path().join("state/checkpoints").is_dir());
        watchdog(&wired, true).unwrap();
        watchdog(&wired, false).unwrap();

        // A webhook variable that is missing is named.
        std::env::remove_var("ROLLBACK_CLI_TEST_URL_HOOK");
        let e = wire(&c, None).await.unwrap_err();
        assert!(
            e.to_string().contains("ROLLBACK_CLI_TEST_URL_HOOK is not set"),
            "{e}"
        );
    }

    fn config_with_notifiers(dir: &Path, prefix: &str, extra: &str) -> Config {
        let text = format!(
            r#"app = "web"
state_dir = "state"

[process]
manager = "pm2"
pm2_home = "pm2"

[[notify]]
kind = "slack"
url_env = "{prefix}_SLACK"

[[notify]]
kind = "pagerduty"
routing_key_env = "{prefix}_PD_KEY"
url_env = "{prefix}_PD_URL"
timeout = "20s"
{extra}"#
        );
        config::parse(&text, &dir.join("rollback.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn slack_and_pagerduty_are_wired_from_their_variables_and_never_shown() {
        let tmp = tempfile::tempdir().unwrap();
        let p = "ROLLBACK_CLI_TEST_NOTIFY";
        std::env::set_var(
            format!("{p}_SLACK"),
            "https://hooks.slack.example/services/T0/B0/canary-slack",
        );
        std::env::set_var(format!("{p}_PD_KEY"), "canarykey0123456789abcdef0123456");
        std::env::set_var(
            format!("{p}_PD_URL"),
            "https://events.eu.example/v2/enqueue?canary-q",
        );
        let c = config_with_notifiers(tmp.path(), p, "");
        let wired = wire(&c, None).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            wired.notifiers.len(),
            2,
            "the log is not added when targets are given"
        );
        let shown = format!("{wired:?} {wired:#?} {c:?} {:?}", wired.notifiers.len());
        assert!(!shown.contains("canary"), "{shown}");

        // A missing routing key is named by its variable, with what it must hold.
        let q = "ROLLBACK_CLI_TEST_NOTIFY_UNSET";
        std::env::set_var(
            format!("{q}_SLACK"),
            "https://hooks.slack.example/services/T0/B0/canary-slack",
        );
        let e = wire(&config_with_notifiers(tmp.path(), q, ""), None)
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains(&format!("{q}_PD_KEY is not set"))
                && m.contains("routing key")
                && m.contains("routing_key_env"),
            "{m}"
        );

        // An Events API URL that is not http(s) is refused, its value not shown.
        std::env::set_var(format!("{q}_PD_KEY"), "canarykey0123456789abcdef0123456");
        std::env::set_var(format!("{q}_PD_URL"), "ftp://events.example/canary-path");
        let e = wire(&config_with_notifiers(tmp.path(), q, ""), None)
            .await
            .unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(
            shown.contains("PagerDuty") && shown.contains("[[notify]]"),
            "{shown}"
        );
        assert!(!shown.contains("canary"), "{shown}");
    }

    #[tokio::test]
    async fn a_ca_file_is_read_and_one_without_a_certificate_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let p = "ROLLBACK_CLI_TEST_CA";
        std::env::set_var(
            format!("{p}_SLACK"),
            "https://hooks.slack.example/services/T0/B0/x",
        );
        std::env::set_var(format!("{p}_PD_KEY"), "k");
        std::env::set_var(format!("{p}_PD_URL"), "https://events.example/v2/enqueue");
        let not_a_ca = tmp.path().join("not-a-ca.pem");
        std::fs::write(&not_a_ca, "no certificate here\n").unwrap();

        // Without the CA files, it wires: the file is what is refused below.
        wire(&config_with_notifiers(tmp.path(), p, ""), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        let hook = "[[notify]]\nkind = \"webhook\"\nurl_env = \"ROLLBACK_CLI_TEST_CA_SLACK\"\nca_file = \"not-a-ca.pem\"\n";
        let e = wire(&config_with_notifiers(tmp.path(), p, hook), None)
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("not-a-ca.pem") && m.contains("[[notify]]"), "{m}");

        let probe = "[[health]]\nurl = \"https://127.0.0.1:3443/health\"\nca_file = \"missing-ca.pem\"\n";
        let e = wire(&config_with_notifiers(tmp.path(), p, probe), None)
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("missing-ca.pem") && m.contains("[[health]]"), "{m}");
    }

    #[tokio::test]
    async fn an_agent_gets_the_hosts_adapters_and_needs_no_database_secret() {
        let tmp = tempfile::tempdir().unwrap();
        let text = r#"app = "web"
state_dir = "state"

[database]
url_env = "ROLLBACK_CLI_TEST_AGENT_UNSET_URL"
snapshots_dir = "snapshots"

[config]
file = "app.env"

[process]
manager = "pm2"
app = "web-api"
pm2_home = "pm2"

[[health]]
url = "http://127.0.0.1:3000/api/health"

[[health]]
sql = true

[[notify]]
kind = "webhook"
url_env = "ROLLBACK_CLI_TEST_AGENT_UNSET_HOOK"
"#;
        let c = config::parse(text, &tmp.path().join("rollback.toml")).unwrap();
        let host = host_adapters(&c).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(host.app.as_str(), "web-api");
        assert!(host.config.is_some() && host.code.is_none());
        assert_eq!(
            host.probes.len(),
            1,
            "the HTTP probe only: the database is not the host's"
        );
        assert!(
            !tmp.path().join("state").exists(),
            "an agent creates no state directory"
        );
        // The whole wiring needs the database's variable.
        let e = wire(&c, None).await.unwrap_err();
        assert!(e.to_string().contains("ROLLBACK_CLI_TEST_AGENT_UNSET_URL"), "{e}");
    }

    #[tokio::test]
    async fn pgpass_gives_the_password_and_bad_settings_are_named() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let pgpass = tmp.path().join("pgpass");
        std::fs::write(&pgpass, "127.0.0.1:5433:shop:app:canary-pw\n").unwrap();
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = r#"app = "web"
state_dir = "state"
[database]
pgpass = "pgpass"
host = "127.0.0.1"
port = 5433
user = "app"
dbname = "shop"
snapshots_dir = "snapshots"
bindir = "/usr/lib/postgresql/16/bin"
[process]
manager = "pm2"
state_timeout = "1s"
stability_window = "2s"
"#;
        let c = config::parse(text, &tmp.path().join("rollback.toml")).unwrap();
        // The pgpass file was read; then pm2's settings are refused, naming the section.
        let e = wire(&c, None).await.unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(
            shown.contains("[process]") && shown.contains("stability window"),
            "{shown}"
        );
        assert!(!shown.contains("canary-pw"), "{shown}");
    }
}
