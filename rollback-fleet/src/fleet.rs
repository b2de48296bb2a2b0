//! A fleet of app hosts as one set of adapters, so that one orchestrator (and one
//! journal) rolls them all back: the database, shared, is switched once by the
//! orchestrator's own database adapter; code, config and the process manager act on every
//! host, a bounded number at a time; health is every host's.
//!
//! What each composite does:
//! - reads (`current`, `resolve`, `status`, `verify`, `diff`) ask every host and refuse when
//!   hosts disagree, naming them: pre-flight covers every host before anything stops;
//! - changes (`prepare`, `activate`, `stop`, `start`, `restore`) run on every host; each
//!   adapter's change is idempotent, so a resumed or repeated call finishes the hosts that
//!   had not done it, and the failure policy's `reinstate` puts every host back;
//! - what a host prepared or kept aside is remembered per host inside the value the
//!   journal stores (a [`PreparedRevision`]'s location, a [`ConfigVersion`]'s id, as JSON
//!   keyed by host), so a resume after a crash knows each host's;
//! - [`ProcessManager::reload`] rolls: one host at a time, each health-gated before the
//!   next, so a load balancer keeps serving from the others. The orchestrator reloads
//!   instead of stopping when the database is not in scope and the code switches
//!   atomically under a running app (a releases layout).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rollback_core::{
    AdapterError, AppLogs, AppName, CodeVersion, ConfigCheck, ConfigDiff, ConfigStore, ConfigVersion,
    ConfigVersionId, ErrorKind, HealthProbe, LogLine, PartOutcome, PartState, PreparedRevision, ProbeResult,
    ProcessManager, ProcessState, ProcessStatus, Revision, RevisionId,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One host of a fleet: its name and its adapters (a [`RemoteHost`](crate::RemoteHost)
/// for each, or local ones in tests). Made with [`FleetHost::remote`], or
/// [`FleetHost::new`] and its setters.
#[derive(Clone)]
#[non_exhaustive]
pub struct FleetHost {
    /// How errors and reports name it.
    pub name: String,
    /// Its code adapter.
    pub code: Option<Arc<dyn CodeVersion>>,
    /// Its config adapter.
    pub config: Option<Arc<dyn ConfigStore>>,
    /// Its process manager.
    pub process: Arc<dyn ProcessManager>,
    /// Its health (its own app, probed from the host or through the balancer's view of it).
    pub health: Option<Arc<dyn HealthProbe>>,
}

impl std::fmt::Debug for FleetHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetHost")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FleetHost {
    /// A host named `name` (how errors and reports name it) with its process manager, and
    /// no code, config or health adapter until set.
    pub fn new(name: impl Into<String>, process: Arc<dyn ProcessManager>) -> Self {
        Self {
            name: name.into(),
            code: None,
            config: None,
            process,
            health: None,
        }
    }

    /// Its code adapter.
    pub fn code(mut self, code: Arc<dyn CodeVersion>) -> Self {
        self.code = Some(code);
        self
    }

    /// Its config adapter.
    pub fn config(mut self, config: Arc<dyn ConfigStore>) -> Self {
        self.config = Some(config);
        self
    }

    /// Its health probe. A host without one is judged by its process manager's status of
    /// the app, and makes the fleet unable to reload gracefully unless its own manager can.
    pub fn health(mut self, health: Arc<dyn HealthProbe>) -> Self {
        self.health = Some(health);
        self
    }

    /// A host that could not be reached ([`UnreachableHost`](crate::UnreachableHost)): every
    /// adapter of it fails `Unavailable` naming it and `why`, so that a fleet works with the
    /// hosts that answer wherever it can, and names this one wherever it cannot.
    pub fn unreachable(name: impl Into<String>, why: impl Into<String>) -> Self {
        let name = name.into();
        let host = Arc::new(crate::UnreachableHost::new(name.clone(), why));
        Self {
            name,
            code: Some(host.clone()),
            config: Some(host.clone()),
            process: host.clone(),
            health: Some(host),
        }
    }

    /// A host served by its agent: every adapter through the one connection.
    pub fn remote(host: crate::RemoteHost) -> Self {
        let has = |what: &str| host.0.hello().has.iter().any(|h| h == what);
        let shared = Arc::new(host.clone());
        Self {
            name: host.0.host().to_owned(),
            code: has("code").then(|| shared.clone() as Arc<dyn CodeVersion>),
            config: has("config").then(|| shared.clone() as Arc<dyn ConfigStore>),
            process: shared.clone(),
            health: has("health").then_some(shared as Arc<dyn HealthProbe>),
        }
    }
}

/// The hosts, and how many change at once.
#[derive(Clone, Debug)]
pub struct Fleet {
    hosts: Arc<Vec<FleetHost>>,
    parallelism: usize,
    health_timeout: Duration,
}

impl Fleet {
    /// A fleet of `hosts` (at least one, names unique), changing `parallelism` hosts at
    /// once (at least 1), waiting at most `health_timeout` for each host in a rolling
    /// reload.
    pub fn new(
        hosts: Vec<FleetHost>,
        parallelism: usize,
        health_timeout: Duration,
    ) -> Result<Self, AdapterError> {
        if hosts.is_empty() {
            return Err(AdapterError::new(
                ErrorKind::InvalidInput,
                "a fleet needs at least one host",
            ));
        }
        let mut names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(AdapterError::new(
                ErrorKind::InvalidInput,
                format!("host `{}` is named twice: give every host its own name", w[0]),
            ));
        }
        Ok(Self {
            hosts: Arc::new(hosts),
            parallelism: parallelism.max(1),
            health_timeout,
        })
    }

    /// The hosts.
    pub fn hosts(&self) -> &[FleetHost] {
        &self.hosts
    }

    /// The fleet's code, when every host has a code adapter.
    pub fn code(&self) -> Option<FleetCode> {
        self.hosts
            .iter()
            .all(|h| h.code.is_some())
            .then(|| FleetCode(self.clone()))
    }

    /// The fleet's config, when every host has a config adapter.
    pub fn config(&self) -> Option<FleetConfig> {
        self.hosts
            .iter()
            .all(|h| h.config.is_some())
            .then(|| FleetConfig(self.clone()))
    }

    /// The fleet's process manager.
    pub fn process(&self) -> FleetProcess {
        FleetProcess(self.clone())
    }

    /// The fleet's health for `app`: healthy when every host is. A host without a health
    /// probe counts as healthy only when its process manager says `app` is online.
    pub fn health(&self, app: impl Into<AppName>) -> FleetHealth {
        FleetHealth {
            fleet: self.clone(),
            app: app.into(),
        }
    }

    /// Runs `f` on every host, `parallelism` at once; each result with its host's name, in
    /// the hosts' order.
    async fn each<'a, T, F, Fut>(&'a self, f: F) -> Vec<(&'a str, Result<T, AdapterError>)>
    where
        F: Fn(&'a FleetHost) -> Fut,
        Fut: Future<Output = Result<T, AdapterError>> + 'a,
    {
        let limit = tokio::sync::Semaphore::new(self.parallelism);
        let limit = &limit;
        let runs = self.hosts.iter().map(|h| {
            let fut = f(h);
            async move {
                // A closed semaphore cannot happen (it lives here); run anyway if it did.
                let _permit = limit.acquire().await.ok();
                (h.name.as_str(), fut.await)
            }
        });
        futures::future::join_all(runs).await
    }

    /// Every host's result, or one error naming each host that failed (with the kind of the
    /// first failure, and how each host came out in its [`parts`](AdapterError::parts), so
    /// that a recovery serves again with the hosts that did the work).
    async fn all<'a, T, F, Fut>(&'a self, what: &str, f: F) -> Result<BTreeMap<String, T>, AdapterError>
    where
        F: Fn(&'a FleetHost) -> Fut,
        Fut: Future<Output = Result<T, AdapterError>> + 'a,
    {
        let mut ok = BTreeMap::new();
        let mut failed: Vec<(String, AdapterError)> = Vec::new();
        let mut parts = Vec::new();
        for (name, r) in self.each(f).await {
            match r {
                Ok(v) => {
                    ok.insert(name.to_owned(), v);
                    parts.push(PartOutcome::new(name, PartState::Done));
                }
                Err(e) => {
                    parts.push(PartOutcome::failed(name, &e));
                    failed.push((name.to_owned(), e));
                }
            }
        }
        match failed.first() {
            None => Ok(ok),
            Some((_, first)) => Err(AdapterError::new(
                first.kind(),
                format!(
                    "{what} failed on {} of {} host(s): {}",
                    failed.len(),
                    self.hosts.len(),
                    failed
                        .iter()
                        .map(|(n, e)| format!("{n}: {e}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )
            .with_parts(parts)),
        }
    }

    /// The fleet without the hosts named in `except`; `None` when none would be left.
    pub fn without(&self, except: &[String]) -> Option<Fleet> {
        let hosts: Vec<FleetHost> = self
            .hosts
            .iter()
            .filter(|h| !except.contains(&h.name))
            .cloned()
            .collect();
        (!hosts.is_empty()).then(|| Fleet {
            hosts: Arc::new(hosts),
            parallelism: self.parallelism,
            health_timeout: self.health_timeout,
        })
    }
}

/// The prefix of values that hold one value per host.
const PER_HOST: &str = "fleet:";

fn pack<T: Serialize>(per_host: &BTreeMap<String, T>) -> Result<String, AdapterError> {
    serde_json::to_string(per_host)
        .map(|json| format!("{PER_HOST}{json}"))
        .map_err(|e| AdapterError::new(ErrorKind::Failed, format!("cannot record the hosts' values: {e}")))
}

fn unpack<T: DeserializeOwned>(packed: &str, fleet: &Fleet) -> Result<BTreeMap<String, T>, AdapterError> {
    let json = packed.strip_prefix(PER_HOST).ok_or_else(|| {
        AdapterError::new(
            ErrorKind::InvalidInput,
            format!(
                "`{packed}` was not made by this fleet (it holds no value per host): take a new checkpoint"
            ),
        )
    })?;
    let map: BTreeMap<String, T> = serde_json::from_str(json)
        .map_err(|e| AdapterError::new(ErrorKind::Corrupt, format!("a fleet value is damaged: {e}")))?;
    let missing: Vec<&str> = fleet
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .filter(|n| !map.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        return Err(AdapterError::new(
            ErrorKind::NotFound,
            format!(
                "the checkpoint holds nothing for host(s) {}: they joined the fleet after it was taken; take a new checkpoint",
                missing.join(", ")
            ),
        ));
    }
    Ok(map)
}

fn one<'a, T>(map: &'a BTreeMap<String, T>, host: &FleetHost) -> Result<&'a T, AdapterError> {
    map.get(&host.name)
        .ok_or_else(|| AdapterError::not_found(format!("nothing recorded for host {}", host.name)))
}

/// Every host must agree on `key`; else an error naming what each has.
fn agree<T, K: PartialEq + std::fmt::Display>(
    what: &str,
    map: BTreeMap<String, T>,
    key: impl Fn(&T) -> K,
) -> Result<T, AdapterError> {
    let mut values = map.into_iter();
    let Some((_, first)) = values.next() else {
        return Err(AdapterError::new(
            ErrorKind::InvalidInput,
            "a fleet needs at least one host",
        ));
    };
    let rest: Vec<(String, T)> = values.collect();
    if rest.iter().all(|(_, v)| key(v) == key(&first)) {
        return Ok(first);
    }
    let mut seen = vec![format!("{}", key(&first))];
    seen.extend(rest.iter().map(|(n, v)| format!("{n}: {}", key(v))));
    Err(AdapterError::new(
        ErrorKind::Conflict,
        format!(
            "the hosts disagree on {what} ({}): bring them to one before rolling back",
            seen.join(", ")
        ),
    ))
}

fn code(h: &FleetHost) -> Result<&Arc<dyn CodeVersion>, AdapterError> {
    h.code
        .as_ref()
        .ok_or_else(|| AdapterError::unsupported(format!("host {} has no code adapter", h.name)))
}

fn config(h: &FleetHost) -> Result<&Arc<dyn ConfigStore>, AdapterError> {
    h.config
        .as_ref()
        .ok_or_else(|| AdapterError::unsupported(format!("host {} has no config adapter", h.name)))
}

/// Every host's code ([`CodeVersion`]).
#[derive(Clone, Debug)]
pub struct FleetCode(Fleet);

#[async_trait]
impl CodeVersion for FleetCode {
    async fn current(&self) -> Result<Revision, AdapterError> {
        let all = self
            .0
            .all("reading the live revision", |h| async move {
                code(h)?.current().await
            })
            .await?;
        agree("the live revision", all, |r| r.id.clone())
    }

    async fn resolve(&self, spec: &str) -> Result<Revision, AdapterError> {
        let all = self
            .0
            .all(&format!("resolving `{spec}`"), |h| async move {
                code(h)?.resolve(spec).await
            })
            .await?;
        agree(&format!("what `{spec}` is"), all, |r| r.id.clone())
    }

    async fn history(&self, n: usize) -> Result<Vec<Revision>, AdapterError> {
        code(&self.0.hosts[0])?.history(n).await
    }

    async fn prepare(&self, revision: &RevisionId) -> Result<PreparedRevision, AdapterError> {
        let all = self
            .0
            .all("preparing the revision", |h| async move {
                code(h)?.prepare(revision).await
            })
            .await?;
        per_host_revision(revision, &all)
    }

    async fn check_activate(&self, revision: &RevisionId) -> Result<(), AdapterError> {
        self.0
            .all("checking the switch", |h| async move {
                code(h)?.check_activate(revision).await
            })
            .await
            .map(drop)
    }

    fn switches_under_a_running_app(&self) -> bool {
        self.0
            .hosts
            .iter()
            .all(|h| h.code.as_ref().is_some_and(|c| c.switches_under_a_running_app()))
    }

    async fn preserve_current(&self) -> Result<PreparedRevision, AdapterError> {
        let all = self
            .0
            .all("keeping the live release", |h| async move {
                code(h)?.preserve_current().await
            })
            .await?;
        let revision = all
            .values()
            .next()
            .map(|p| p.revision.clone())
            .unwrap_or_else(|| RevisionId::new(""));
        per_host_revision(&revision, &all)
    }

    async fn activate(&self, prepared: &PreparedRevision) -> Result<(), AdapterError> {
        let map: BTreeMap<String, PreparedRevision> = unpack(&prepared.location, &self.0)?;
        let map = &map;
        self.0
            .all("activating the release", |h| async move {
                code(h)?.activate(one(map, h)?).await
            })
            .await
            .map(drop)
    }

    async fn reinstate(&self, preserved: &PreparedRevision) -> Result<(), AdapterError> {
        let map: BTreeMap<String, PreparedRevision> = unpack(&preserved.location, &self.0)?;
        let map = &map;
        self.0
            .all("putting the previous release back", |h| async move {
                code(h)?.reinstate(one(map, h)?).await
            })
            .await
            .map(drop)
    }

    async fn revert(&self, commits: &[RevisionId]) -> Result<Revision, AdapterError> {
        let _ = commits;
        Err(AdapterError::unsupported(
            "reverting commits across a fleet would make different commits on every host: revert in the shared repository, deploy that, or check out a previous revision",
        ))
    }
}

fn per_host_revision(
    revision: &RevisionId,
    all: &BTreeMap<String, PreparedRevision>,
) -> Result<PreparedRevision, AdapterError> {
    Ok(PreparedRevision {
        revision: revision.clone(),
        location: pack(all)?,
        build_log_tail: all
            .iter()
            .flat_map(|(host, p)| p.build_log_tail.iter().map(move |l| format!("{host}: {l}")))
            .collect(),
    })
}

/// Every host's config ([`ConfigStore`]). A version of the fleet is one version per host;
/// its id holds them all.
#[derive(Clone, Debug)]
pub struct FleetConfig(Fleet);

impl FleetConfig {
    fn versions(&self, all: BTreeMap<String, ConfigVersion>) -> Result<ConfigVersion, AdapterError> {
        let ids: BTreeMap<String, ConfigVersionId> =
            all.iter().map(|(n, v)| (n.clone(), v.id.clone())).collect();
        let first = all
            .values()
            .next()
            .cloned()
            .ok_or_else(|| AdapterError::new(ErrorKind::InvalidInput, "no host"))?;
        Ok(ConfigVersion {
            id: ConfigVersionId::new(pack(&ids)?),
            label: first.label,
            created_at: all
                .values()
                .map(|v| v.created_at)
                .max()
                .unwrap_or(first.created_at),
            location: all
                .iter()
                .map(|(n, v)| format!("{n}: {}", v.location))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    fn ids(&self, id: &ConfigVersionId) -> Result<BTreeMap<String, ConfigVersionId>, AdapterError> {
        let map: BTreeMap<String, PerHostVersion> = unpack(id.as_str(), &self.0)?;
        Ok(map.into_iter().map(|(n, v)| (n, v.id().clone())).collect())
    }
}

/// What a fleet's config version holds for one host: its id, or (for what
/// [`ConfigStore::preserve_current`] kept, which each host's
/// [`reinstate`](ConfigStore::reinstate) takes whole) its whole version.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(untagged)]
enum PerHostVersion {
    Id(ConfigVersionId),
    Whole(ConfigVersion),
}

impl PerHostVersion {
    fn id(&self) -> &ConfigVersionId {
        match self {
            Self::Id(id) => id,
            Self::Whole(v) => &v.id,
        }
    }
}

#[async_trait]
impl ConfigStore for FleetConfig {
    async fn current(&self) -> Result<ConfigVersion, AdapterError> {
        let all = self
            .0
            .all("reading the live config", |h| async move {
                config(h)?.current().await
            })
            .await?;
        self.versions(all)
    }

    async fn backup(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        let all = self
            .0
            .all("backing the config up", |h| async move {
                config(h)?.backup(label).await
            })
            .await?;
        self.versions(all)
    }

    async fn list(&self) -> Result<Vec<ConfigVersion>, AdapterError> {
        Err(AdapterError::unsupported(
            "a fleet keeps one version per host: list each host's versions on the host (`rollback list` there)",
        ))
    }

    async fn verify(&self, version: &ConfigVersionId) -> Result<ConfigCheck, AdapterError> {
        let ids = self.ids(version)?;
        let ids = &ids;
        let all = self
            .0
            .all("verifying the config", |h| async move {
                config(h)?.verify(one(ids, h)?).await
            })
            .await?;
        let mut check = ConfigCheck::default();
        for (host, c) in all {
            for k in c.keys {
                if !check.keys.contains(&k) {
                    check.keys.push(k);
                }
            }
            check
                .warnings
                .extend(c.warnings.into_iter().map(|w| format!("{host}: {w}")));
        }
        Ok(check)
    }

    async fn restore(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        let ids = self.ids(version)?;
        let ids = &ids;
        self.0
            .all("restoring the config", |h| async move {
                config(h)?.restore(one(ids, h)?).await
            })
            .await
            .map(drop)
    }

    async fn diff(&self, a: &ConfigVersionId, b: &ConfigVersionId) -> Result<ConfigDiff, AdapterError> {
        let (a, b) = (self.ids(a)?, self.ids(b)?);
        let (a, b) = (&a, &b);
        let all = self
            .0
            .all("comparing configs", |h| async move {
                config(h)?.diff(one(a, h)?, one(b, h)?).await
            })
            .await?;
        let mut diff = ConfigDiff::default();
        for (host, d) in all {
            let tag = |keys: Vec<String>| {
                keys.into_iter()
                    .map(|k| format!("{host}: {k}"))
                    .collect::<Vec<_>>()
            };
            diff.added.extend(tag(d.added));
            diff.removed.extend(tag(d.removed));
            diff.changed.extend(tag(d.changed));
        }
        Ok(diff)
    }

    /// Each host's own [`preserve_current`](ConfigStore::preserve_current); the version's
    /// id holds every host's whole version, for [`reinstate`](ConfigStore::reinstate).
    async fn preserve_current(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        let all = self
            .0
            .all("keeping the live config aside", |h| async move {
                config(h)?.preserve_current(label).await
            })
            .await?;
        let whole: BTreeMap<String, PerHostVersion> = all
            .iter()
            .map(|(n, v)| (n.clone(), PerHostVersion::Whole(v.clone())))
            .collect();
        let mut version = self.versions(all)?;
        version.id = ConfigVersionId::new(pack(&whole)?);
        Ok(version)
    }

    /// Each host's own [`reinstate`](ConfigStore::reinstate) of what it kept.
    async fn reinstate(&self, preserved: &ConfigVersion) -> Result<(), AdapterError> {
        let map: BTreeMap<String, PerHostVersion> = unpack(preserved.id.as_str(), &self.0)?;
        let map: BTreeMap<String, ConfigVersion> = map
            .into_iter()
            .map(|(n, v)| {
                let v = match v {
                    PerHostVersion::Whole(v) => v,
                    // A version made by `backup`: only its id is known.
                    PerHostVersion::Id(id) => ConfigVersion {
                        id,
                        label: preserved.label.clone(),
                        created_at: preserved.created_at,
                        location: String::new(),
                    },
                };
                (n, v)
            })
            .collect();
        let map = &map;
        self.0
            .all("putting the previous config back", |h| async move {
                config(h)?.reinstate(one(map, h)?).await
            })
            .await
            .map(drop)
    }

    async fn remove(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        let ids = self.ids(version)?;
        let ids = &ids;
        self.0
            .all("removing a config backup", |h| async move {
                config(h)?.remove(one(ids, h)?).await
            })
            .await
            .map(drop)
    }
}

/// Every host's process manager ([`ProcessManager`]); `reload` rolls host by host.
#[derive(Clone, Debug)]
pub struct FleetProcess(Fleet);

fn worst(a: ProcessState, b: ProcessState) -> ProcessState {
    let rank = |s: ProcessState| match s {
        ProcessState::Online => 0,
        ProcessState::Stopped => 1,
        ProcessState::Retrying => 2,
        ProcessState::Errored => 3,
        _ => 4,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

#[async_trait]
impl ProcessManager for FleetProcess {
    /// Online only when every host is; otherwise the worst state, the detail naming each
    /// host's. No pid (there are several).
    async fn status(&self, app: &AppName) -> Result<ProcessStatus, AdapterError> {
        let all = self
            .0
            .all("reading the app's status", |h| async move {
                h.process.status(app).await
            })
            .await?;
        let mut statuses = all.into_iter();
        let Some((_, mut status)) = statuses.next() else {
            return Err(AdapterError::new(
                ErrorKind::InvalidInput,
                "a fleet needs at least one host",
            ));
        };
        let mut restarts = status.restarts;
        for (_, s) in statuses {
            status.state = worst(status.state, s.state);
            restarts = match (restarts, s.restarts) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
        status.restarts = restarts;
        if self.0.hosts.len() > 1 {
            status.pid = None;
            status.uptime = None;
        }
        Ok(status)
    }

    async fn stop(&self, app: &AppName) -> Result<(), AdapterError> {
        self.0
            .all("stopping the app", |h| async move { h.process.stop(app).await })
            .await
            .map(drop)
    }

    async fn start(&self, app: &AppName) -> Result<(), AdapterError> {
        self.0
            .all("starting the app", |h| async move { h.process.start(app).await })
            .await
            .map(drop)
    }

    async fn restart(&self, app: &AppName) -> Result<(), AdapterError> {
        self.0
            .all(
                "restarting the app",
                |h| async move { h.process.restart(app).await },
            )
            .await
            .map(drop)
    }

    /// One host can when its manager can. Several hosts can roll (the others serve
    /// meanwhile) only when each host's return is checked before the next: every host has
    /// a health probe, or its own manager reloads gracefully.
    async fn can_reload(&self, app: &AppName) -> Result<bool, AdapterError> {
        if self.0.hosts.len() == 1 {
            return self.0.hosts[0].process.can_reload(app).await;
        }
        for h in self.0.hosts.iter() {
            if h.health.is_none() && !h.process.can_reload(app).await? {
                tracing::debug!(host = %h.name, "no health probe and no graceful reload: the fleet cannot roll");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Host by host: the host's graceful reload where its manager has one, else a restart;
    /// then its health (its probe, or without one its manager's status of the app until
    /// online), before the next host. A host that cannot be reached is passed over (the
    /// others still roll); the first host that does not come back healthy ends the roll
    /// (the hosts after it still run the previous release). Either way the error names
    /// each host's outcome in its [`parts`](AdapterError::parts).
    async fn reload(&self, app: &AppName) -> Result<(), AdapterError> {
        let mut parts = Vec::with_capacity(self.0.hosts.len());
        let mut problems = Vec::new();
        let mut first_kind = None;
        let mut ended = false;
        for h in self.0.hosts.iter() {
            if ended {
                parts.push(PartOutcome::new(&h.name, PartState::NotReached));
                continue;
            }
            let result = async {
                let graceful = h.process.can_reload(app).await?;
                if graceful {
                    h.process.reload(app).await?;
                } else {
                    h.process.restart(app).await?;
                }
                wait_healthy(h, app, self.0.health_timeout).await
            }
            .await;
            match result {
                Ok(()) => {
                    tracing::info!(host = %h.name, "host reloaded and healthy");
                    parts.push(PartOutcome::new(&h.name, PartState::Done));
                }
                Err(e) => {
                    let outcome = PartOutcome::failed(&h.name, &e);
                    // A host that cannot be reached says nothing about the release: roll
                    // on. One that came back unhealthy ends the roll.
                    ended = !outcome.is_unreachable();
                    first_kind.get_or_insert(e.kind());
                    problems.push(format!("{}: {e}", h.name));
                    parts.push(outcome);
                }
            }
        }
        match first_kind {
            None => Ok(()),
            Some(kind) => {
                let not_reached: Vec<&str> = parts
                    .iter()
                    .filter(|p| p.state == PartState::NotReached)
                    .map(|p| p.part.as_str())
                    .collect();
                let tail = if not_reached.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; not reloaded, still running the previous release: {}",
                        not_reached.join(", ")
                    )
                };
                Err(
                    AdapterError::new(kind, format!("rolling reload: {}{tail}", problems.join("; ")))
                        .with_parts(parts),
                )
            }
        }
    }

    fn without_parts(&self, except: &[String]) -> Option<Arc<dyn ProcessManager>> {
        self.0
            .without(except)
            .map(|f| Arc::new(FleetProcess(f)) as Arc<dyn ProcessManager>)
    }

    /// Every host's lines, each prefixed with the host's name; `None` when no host has
    /// logs. Partial when any host's are; the notes name their host.
    async fn logs_since(&self, app: &AppName, since: DateTime<Utc>) -> Result<Option<AppLogs>, AdapterError> {
        let all = self
            .0
            .all("reading the app's logs", |h| async move {
                h.process.logs_since(app, since).await
            })
            .await?;
        let mut merged: Option<AppLogs> = None;
        for h in self.0.hosts.iter() {
            let Some(Some(logs)) = all.get(&h.name) else {
                continue;
            };
            let into = merged.get_or_insert_with(AppLogs::default);
            into.partial |= logs.partial;
            into.notes
                .extend(logs.notes.iter().map(|n| format!("{}: {n}", h.name)));
            into.lines.extend(logs.lines.iter().map(|l| LogLine {
                source: l.source.clone(),
                text: format!("{}: {}", h.name, l.text),
            }));
        }
        Ok(merged)
    }
}

/// One probe of a host's health: its probe's, or without one its manager's status of `app`
/// (healthy when online).
async fn host_health(h: &FleetHost, app: &AppName) -> ProbeResult {
    let started = tokio::time::Instant::now();
    match &h.health {
        Some(p) => p.probe().await,
        None => {
            let (healthy, detail) = match h.process.status(app).await {
                Ok(s) if s.state == ProcessState::Online => {
                    (true, format!("no health probe; `{app}` online"))
                }
                Ok(s) => (
                    false,
                    format!("no health probe; `{app}` is {:?}", s.state).to_lowercase(),
                ),
                Err(e) => (false, format!("no health probe; its status: {e}")),
            };
            ProbeResult {
                probe: format!("status of `{app}` on {}", h.name),
                healthy,
                latency: started.elapsed(),
                detail,
            }
        }
    }
}

/// Waits until host `h` is healthy ([`host_health`]), at most `timeout`, even when a
/// probe hangs.
async fn wait_healthy(h: &FleetHost, app: &AppName, timeout: Duration) -> Result<(), AdapterError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        // A probe that does not answer may be a host that is gone (`Timeout`); one that
        // answers unhealthy is a host that is there (`Failed`).
        let (kind, detail) = match tokio::time::timeout(remaining, host_health(h, app)).await {
            Ok(r) if r.healthy => return Ok(()),
            Ok(r) => (ErrorKind::Failed, r.detail),
            Err(_) => (
                ErrorKind::Timeout,
                format!(
                    "its health probe did not answer within the {}s left",
                    remaining.as_secs_f64()
                ),
            ),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(AdapterError::new(
                kind,
                format!(
                    "not healthy within {}s after its reload ({detail})",
                    timeout.as_secs_f64(),
                ),
            ));
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(tokio::time::Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Every host's health ([`HealthProbe`]) for one app: a host with a probe by its probe, a
/// host without one by its process manager's status of the app (healthy only when online).
#[derive(Clone, Debug)]
pub struct FleetHealth {
    fleet: Fleet,
    app: AppName,
}

#[async_trait]
impl HealthProbe for FleetHealth {
    fn name(&self) -> String {
        format!("health of all {} host(s)", self.fleet.hosts.len())
    }

    async fn probe(&self) -> ProbeResult {
        let started = tokio::time::Instant::now();
        let app = &self.app;
        let results = self
            .fleet
            .each(|h| async move { Ok::<_, AdapterError>(host_health(h, app).await) })
            .await;
        let mut healthy = true;
        let mut detail = Vec::new();
        for (host, r) in results {
            let (ok, text) = match r {
                Ok(r) if r.healthy => (true, "healthy".to_owned()),
                Ok(r) => (false, r.detail),
                Err(e) => (false, e.to_string()),
            };
            healthy &= ok;
            detail.push(format!("{host}: {text}"));
        }
        ProbeResult {
            probe: self.name(),
            healthy,
            latency: started.elapsed(),
            detail: detail.join("; "),
        }
    }

    fn without_parts(&self, except: &[String]) -> Option<Arc<dyn HealthProbe>> {
        self.fleet.without(except).map(|fleet| {
            Arc::new(FleetHealth {
                fleet,
                app: self.app.clone(),
            }) as Arc<dyn HealthProbe>
        })
    }
}
