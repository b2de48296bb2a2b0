//! The shared in-memory world the fakes act on, with call recording and fault injection.

use chrono::{DateTime, Utc};
use rollback_core::{
    AdapterError, AppName, ConfigVersion, ConfigVersionId, ErrorKind, Finding, MetricsSample, ProcessState,
    Revision, RevisionId, Secret, SnapshotId, SnapshotInfo,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// Every trait method a fake implements; names calls in the record and targets faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `DatabaseSnapshot::snapshot`.
    DbSnapshot,
    /// `DatabaseSnapshot::verify`.
    DbVerify,
    /// `DatabaseSnapshot::prepare_restore`.
    DbPrepareRestore,
    /// `DatabaseSnapshot::preserve_current`.
    DbPreserveCurrent,
    /// `DatabaseSnapshot::restore`.
    DbRestore,
    /// `DatabaseSnapshot::reinstate`.
    DbReinstate,
    /// `DatabaseSnapshot::check_integrity`.
    DbCheckIntegrity,
    /// `DatabaseSnapshot::check_prepared`.
    DbCheckPrepared,
    /// `DatabaseSnapshot::prove_unchanged`.
    DbProveUnchanged,
    /// `DatabaseSnapshot::open`.
    DbOpen,
    /// `DatabaseSnapshot::list`.
    DbList,
    /// `DatabaseSnapshot::remove`.
    DbRemove,
    /// `DatabaseSnapshot::ping`.
    DbPing,
    /// `CodeVersion::current`.
    CodeCurrent,
    /// `CodeVersion::resolve`.
    CodeResolve,
    /// `CodeVersion::history`.
    CodeHistory,
    /// `CodeVersion::prepare`.
    CodePrepare,
    /// `CodeVersion::preserve_current`.
    CodePreserveCurrent,
    /// `CodeVersion::activate`.
    CodeActivate,
    /// `CodeVersion::check_activate`.
    CodeCheckActivate,
    /// `CodeVersion::revert`.
    CodeRevert,
    /// `ConfigStore::current`.
    ConfigCurrent,
    /// `ConfigStore::backup`.
    ConfigBackup,
    /// `ConfigStore::list`.
    ConfigList,
    /// `ConfigStore::verify`.
    ConfigVerify,
    /// `ConfigStore::restore`.
    ConfigRestore,
    /// `ConfigStore::diff`.
    ConfigDiff,
    /// `ConfigStore::remove`.
    ConfigRemove,
    /// `ProcessManager::status`.
    ProcessStatus,
    /// `ProcessManager::stop`.
    ProcessStop,
    /// `ProcessManager::start`.
    ProcessStart,
    /// `ProcessManager::restart`.
    ProcessRestart,
    /// `ProcessManager::can_reload`.
    ProcessCanReload,
    /// `ProcessManager::reload`.
    ProcessReload,
    /// `ProcessManager::logs_since`.
    ProcessLogs,
    /// `DatabaseSnapshot::diagnose`.
    DbDiagnose,
    /// `HealthProbe::probe`.
    HealthProbe,
    /// `MetricsSource::sample`.
    MetricsSample,
    /// `Notifier::notify`.
    Notify,
}

impl Method {
    /// True for methods that change the world (as opposed to reading it).
    pub fn is_mutation(self) -> bool {
        matches!(
            self,
            Method::DbPrepareRestore
                | Method::DbPreserveCurrent
                | Method::DbRestore
                | Method::DbReinstate
                | Method::DbOpen
                | Method::DbRemove
                | Method::CodePrepare
                | Method::CodeActivate
                | Method::CodeRevert
                | Method::ConfigRestore
                | Method::ConfigRemove
                | Method::ProcessStop
                | Method::ProcessStart
                | Method::ProcessRestart
                | Method::ProcessReload
        )
    }
}

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Which method.
    pub method: Method,
    /// Its argument, shown (never a secret).
    pub arg: String,
}

/// Which calls a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Every call.
    Always,
    /// Only the n-th call (1-based) from when the fault was injected.
    Nth(usize),
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Return this error (the method changes nothing).
    Fail(ErrorKind),
    /// Wait this long before running the method.
    Delay(Duration),
    /// "The process dies here, before the method's effect": signal the crash and never
    /// return, so the test drops the orchestrator's future.
    CrashBefore,
    /// "The process dies here, after the method's effect": the change is made, then the
    /// crash is signalled and the call never returns.
    CrashAfter,
    /// "The adapter fails after its change": the change is made, then this error is
    /// returned (an adapter that changed something and could not record it, say). What it
    /// changed must still be found out.
    FailAfter(ErrorKind),
}

#[derive(Clone, Debug)]
struct FaultRule {
    method: Method,
    when: When,
    fault: Fault,
    seen: usize,
}

/// The live database of the world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbContent {
    /// What the data is, e.g. `"v1 data"`; tests write and read it.
    pub marker: String,
    /// How many rows (for the manifest row-count check).
    pub rows: u64,
    /// Orphan rows under a foreign key (a `NOT VALID` key over old data, say). A snapshot
    /// of content with orphans records them as its baseline and warns.
    pub orphans: u64,
}

/// The database part of the world.
#[derive(Clone, Debug, Default)]
pub struct DbWorld {
    /// The live database, `None` while set aside (as a rename leaves it).
    pub live: Option<DbContent>,
    /// Snapshots: info, content, and whether the archive is damaged.
    pub snapshots: BTreeMap<SnapshotId, (SnapshotInfo, DbContent, bool)>,
    /// Staged snapshots, ready to switch in.
    pub staged: BTreeMap<SnapshotId, DbContent>,
    /// Emergency backups by label.
    pub preserved: BTreeMap<String, DbContent>,
    /// Databases set aside when a preserved one was put back.
    pub set_aside: Vec<DbContent>,
    /// Where the live database came from: `"original"`, `"snapshot:<id>"`, `"preserved:<label>"`.
    pub live_origin: String,
    /// False makes every database call fail as unreachable.
    pub reachable: bool,
    /// True makes the foreign-key integrity check of the live database fail (orphans that
    /// no snapshot's baseline has).
    pub fk_orphans: bool,
    /// True while the live database is closed to every client but the adapter (after a
    /// switch of a verified copy, or a reinstate, until `open`): the app cannot use it.
    pub sealed: bool,
    /// Staged snapshots that `check_prepared` verified (and sealed).
    pub verified_staged: BTreeSet<SnapshotId>,
    /// Orphan rows every staged copy gains (a restore that lost parent rows): the check of
    /// the staged copy finds them while the app still serves.
    pub staging_adds_orphans: u64,
    /// Live markers that make the app unhealthy (a broken migration, say).
    pub broken_markers: BTreeSet<String>,
    /// What `diagnose` finds (the database's own statistics).
    pub diagnosis: Vec<Finding>,
}

/// A commit of the fake repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeCommit {
    /// The revision.
    pub revision: Revision,
    /// What the code is; reverts make a new commit with an old tree.
    pub tree: String,
}

/// The code part of the world.
#[derive(Clone, Debug, Default)]
pub struct CodeWorld {
    /// Commits, oldest first; the last is the branch head.
    pub commits: Vec<FakeCommit>,
    /// The revision the app runs.
    pub active: Option<RevisionId>,
    /// Revisions prepared (checked out and built).
    pub prepared: BTreeSet<RevisionId>,
    /// Revisions whose build fails.
    pub broken_builds: BTreeSet<RevisionId>,
    /// Trees that make the app unhealthy.
    pub broken_trees: BTreeSet<String>,
    /// An in-place working tree: `activate` rewrites files under the running app, so the
    /// orchestrator never reloads it gracefully (`switches_under_a_running_app` is false).
    pub in_place: bool,
    /// Uncommitted changes in the live tree (as in an in-place layout): `activate` of any
    /// other revision refuses them, and `check_activate` says so before the stop.
    pub dirty: Option<String>,
}

/// The config part of the world. Values are secrets.
#[derive(Clone, Debug, Default)]
pub struct ConfigWorld {
    /// The live config.
    pub live: BTreeMap<String, Secret>,
    /// Stored versions.
    pub versions: BTreeMap<ConfigVersionId, StoredConfig>,
    /// A syntax error in the live config at this line, if any.
    pub live_malformed_line: Option<usize>,
    /// Keys a version must have to be restored.
    pub required_keys: Vec<String>,
    /// Keys whose presence in the live config makes the app unhealthy.
    pub breaking_keys: BTreeSet<String>,
}

/// A stored config version of the fake.
#[derive(Clone, Debug)]
pub struct StoredConfig {
    /// Its metadata.
    pub version: ConfigVersion,
    /// Its values.
    pub values: BTreeMap<String, Secret>,
    /// A line that fails to parse, if any.
    pub malformed_line: Option<usize>,
}

/// One app of the fake process manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeApp {
    /// Its state.
    pub state: ProcessState,
    /// Its pid while online.
    pub pid: Option<u32>,
    /// Restarts counted.
    pub restarts: u32,
    /// When true, start ends in `Errored` (a crash loop).
    pub crashes_on_start: bool,
    /// When true, the app runs several processes that can be replaced one at a time
    /// (pm2's cluster mode): `can_reload` says yes while it is online.
    pub cluster: bool,
    /// When its process started (`status` reports the uptime from it).
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Everything the fakes share.
#[derive(Debug, Default)]
pub struct WorldState {
    /// The database.
    pub db: DbWorld,
    /// The code.
    pub code: CodeWorld,
    /// The config.
    pub config: ConfigWorld,
    /// Apps by name.
    pub apps: BTreeMap<AppName, FakeApp>,
    /// What the metrics source reports.
    pub metrics: MetricsSample,
    /// Each app's log: when each line was written, and the line.
    pub app_logs: BTreeMap<AppName, Vec<(DateTime<Utc>, String)>>,
    /// Lines an app writes to its log each time it starts (or is reloaded), e.g. an
    /// uncaught exception the release throws after its start.
    pub start_logs: BTreeMap<AppName, Vec<String>>,
    /// True makes `logs_since` answer "cannot read this manager's logs" (`None`).
    pub logs_unsupported: bool,
    /// Calls in order.
    pub calls: Vec<Call>,
    /// A counter for ids and pids.
    pub next_id: u64,
    faults: Vec<FaultRule>,
}

impl WorldState {
    /// A fresh number for ids.
    pub fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Appends `app`'s start lines ([`start_logs`](Self::start_logs)) to its log, now.
    pub fn log_start(&mut self, app: &AppName) {
        let lines = self.start_logs.get(app).cloned().unwrap_or_default();
        let now = Utc::now();
        self.app_logs
            .entry(app.clone())
            .or_default()
            .extend(lines.into_iter().map(|l| (now, l)));
    }

    /// The commit the app runs.
    pub fn active_commit(&self) -> Option<&FakeCommit> {
        let active = self.code.active.as_ref()?;
        self.code.commits.iter().find(|c| &c.revision.id == active)
    }

    /// True when the app is online and nothing live is broken.
    pub fn healthy(&self, app: &AppName) -> bool {
        let online = self
            .apps
            .get(app)
            .is_some_and(|a| a.state == ProcessState::Online);
        let code_ok = self
            .active_commit()
            .is_none_or(|c| !self.code.broken_trees.contains(&c.tree));
        // A world without a database is fine; one whose database was set aside is not.
        let db_ok = match &self.db.live {
            Some(l) => !self.db.broken_markers.contains(&l.marker) && !self.db.sealed,
            None => self.db.snapshots.is_empty() && self.db.preserved.is_empty(),
        };
        let config_ok = !self
            .config
            .live
            .keys()
            .any(|k| self.config.breaking_keys.contains(k));
        online && code_ok && db_ok && config_ok
    }
}

/// A snapshot of the world's end state, for comparing two runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndState {
    /// The live database marker (`None` when set aside).
    pub db_marker: Option<String>,
    /// The active revision's tree.
    pub code_tree: Option<String>,
    /// The live config's keys with a fingerprint of each value (never the value).
    pub config: Vec<(String, u64)>,
    /// Each app's state.
    pub apps: Vec<(AppName, ProcessState)>,
}

/// The in-memory world; cheap to clone, every clone is the same world.
#[derive(Clone, Debug)]
pub struct World {
    state: Arc<Mutex<WorldState>>,
    crashed: Arc<watch::Sender<Option<Method>>>,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// An empty world with a reachable database.
    pub fn new() -> Self {
        let mut state = WorldState::default();
        state.db.reachable = true;
        state.db.live_origin = "original".into();
        let (tx, _rx) = watch::channel(None);
        Self {
            state: Arc::new(Mutex::new(state)),
            crashed: Arc::new(tx),
        }
    }

    /// Locks the world for reading or changing it directly in a test.
    pub fn lock(&self) -> MutexGuard<'_, WorldState> {
        // A panic while holding the lock poisons it; the state is still what the test needs.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Injects a fault on `method`, hitting the calls `when` says.
    pub fn inject(&self, method: Method, when: When, fault: Fault) {
        self.lock().faults.push(FaultRule {
            method,
            when,
            fault,
            seen: 0,
        });
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// How many times `method` was called.
    pub fn count(&self, method: Method) -> usize {
        self.lock().calls.iter().filter(|c| c.method == method).count()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The world's end state, for comparing runs.
    pub fn end_state(&self) -> EndState {
        let s = self.lock();
        EndState {
            db_marker: s.db.live.as_ref().map(|l| l.marker.clone()),
            code_tree: s.active_commit().map(|c| c.tree.clone()),
            config: s
                .config
                .live
                .iter()
                .map(|(k, v)| (k.clone(), fingerprint(v.expose())))
                .collect(),
            apps: s.apps.iter().map(|(n, a)| (n.clone(), a.state)).collect(),
        }
    }

    /// Resolves when a fake reaches a crash point; gives the method that "crashed".
    pub async fn crashed(&self) -> Method {
        let mut rx = self.crashed.subscribe();
        loop {
            if let Some(m) = *rx.borrow_and_update() {
                return m;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Forgets a signalled crash (before the next run).
    pub fn reset_crash(&self) {
        self.crashed.send_replace(None);
    }

    /// Records a call and applies the faults aimed at it. Returns a gate the fake passes
    /// after making its change (for `CrashAfter`).
    pub(crate) async fn enter(&self, method: Method, arg: impl Into<String>) -> Result<Gate, AdapterError> {
        // After a crash the process is dead: no call of it gets anywhere (a concurrent probe
        // must not carry the run on past the crash point).
        if self.crashed.borrow().is_some() {
            std::future::pending::<()>().await;
        }
        let mut actions = Vec::new();
        {
            let mut s = self.lock();
            s.calls.push(Call {
                method,
                arg: arg.into(),
            });
            for rule in s.faults.iter_mut().filter(|r| r.method == method) {
                rule.seen += 1;
                let hit = match rule.when {
                    When::Always => true,
                    When::Nth(n) => rule.seen == n,
                };
                if hit {
                    actions.push(rule.fault.clone());
                }
            }
        }
        let mut gate = Gate {
            crash_after: None,
            fail_after: None,
            world: self.clone(),
        };
        for fault in actions {
            match fault {
                Fault::Delay(d) => tokio::time::sleep(d).await,
                Fault::Fail(kind) => {
                    return Err(AdapterError::new(kind, format!("injected fault in {method:?}")));
                }
                Fault::CrashBefore => self.crash(method).await,
                Fault::CrashAfter => gate.crash_after = Some(method),
                Fault::FailAfter(kind) => gate.fail_after = Some((method, kind)),
            }
        }
        Ok(gate)
    }

    async fn crash(&self, method: Method) {
        self.crashed.send_replace(Some(method));
        std::future::pending::<()>().await;
    }
}

/// Passed by a fake once its change is made: crashes there when a `CrashAfter` fault hit,
/// fails there when a `FailAfter` one did.
pub(crate) struct Gate {
    crash_after: Option<Method>,
    fail_after: Option<(Method, ErrorKind)>,
    world: World,
}

impl Gate {
    pub(crate) async fn pass(self) -> Result<(), AdapterError> {
        if let Some(m) = self.crash_after {
            self.world.crash(m).await;
        }
        match self.fail_after {
            Some((m, kind)) => Err(AdapterError::new(
                kind,
                format!("injected fault after the change of {m:?}"),
            )),
            None => Ok(()),
        }
    }
}

/// A stable, non-reversible fingerprint (FNV-1a) of a value, to compare without showing it.
pub fn fingerprint(value: &str) -> u64 {
    value.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
