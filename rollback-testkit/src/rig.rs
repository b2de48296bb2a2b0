//! A ready world: one app running release v1 with its database and config, the fakes
//! wired to it, and a bad deploy to roll back from.

use crate::fakes::{
    FakeCode, FakeConfig, FakeDatabase, FakeHealthProbe, FakeMetrics, FakeProcessManager, MemoryStateStore,
};
use crate::world::{DbContent, World};
use rollback_core::{Orchestrator, OrchestratorBuilder, RevisionId, Scope, Settings};
use std::time::Duration;

/// The app's name in the rig.
pub const APP: &str = "web";
/// A canary password inside the rig's database URL: it must never appear in any output.
pub const CANARY_DB_PASSWORD: &str = "canary-db-pw-7Qx9";
/// A canary config value: it must never appear in any output.
pub const CANARY_CONFIG_SECRET: &str = "canary-api-key-Zr4t";

/// One app with database, code, config, process manager, health probe and state store,
/// all fakes sharing one [`World`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use rollback_core::{RollbackTarget, Scope};
/// use rollback_testkit::Rig;
/// let rig = Rig::new();
/// let rollback = rig.orchestrator().build().unwrap();
/// rollback.checkpoint("before v2").await.unwrap();
/// rig.deploy_bad_release(Scope::ALL);
/// let report = rollback.rollback(RollbackTarget::LastGood, "v2 is broken", Scope::ALL).await.unwrap();
/// assert!(report.outcome.is_success());
/// assert_eq!(rig.world.end_state().db_marker.as_deref(), Some("v1 data"));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Rig {
    /// The shared world.
    pub world: World,
    /// The database fake.
    pub db: FakeDatabase,
    /// The code fake.
    pub code: FakeCode,
    /// The config fake.
    pub config: FakeConfig,
    /// The process manager fake.
    pub process: FakeProcessManager,
    /// The health probe fake.
    pub probe: FakeHealthProbe,
    /// The metrics fake.
    pub metrics: FakeMetrics,
    /// The state store.
    pub state: MemoryStateStore,
    /// Release v1, live at the start.
    pub v1: RevisionId,
}

impl Default for Rig {
    fn default() -> Self {
        Self::new()
    }
}

impl Rig {
    /// A rig at v1 with a good checkpoint ("before v2"), then a bad v2 deployed with the
    /// parts in `broken` broken (see [`deploy_bad_release`](Self::deploy_bad_release)), the
    /// calls recorded so far forgotten; with an orchestrator over it.
    pub async fn deployed(broken: Scope) -> (Rig, Orchestrator) {
        let rig = Rig::new();
        let o = rig.orchestrator().build().expect("the rig's orchestrator");
        let cp = o.checkpoint("before v2").await.expect("a checkpoint");
        assert!(cp.good, "a checkpoint taken while healthy is good");
        rig.deploy_bad_release(broken);
        rig.world.clear_calls();
        (rig, o)
    }

    /// Whether [`APP`] is online in the world now.
    pub fn app_online(&self) -> bool {
        self.world
            .end_state()
            .apps
            .iter()
            .any(|(a, s)| a.as_str() == APP && *s == rollback_core::ProcessState::Online)
    }

    /// v1 live and healthy: database `"v1 data"` (100 rows), revision v1 active, config with
    /// a secret, app online.
    pub fn new() -> Self {
        let world = World::new();
        let db = FakeDatabase::new(
            &world,
            format!("postgres://app:{CANARY_DB_PASSWORD}@db.internal:5432/app"),
        );
        let code = FakeCode::new(&world);
        let config = FakeConfig::new(&world);
        let process = FakeProcessManager::new(&world);
        process.add_app(APP);
        let v1 = code.commit("v1: first release", "tree-v1");
        {
            let mut s = world.lock();
            s.code.active = Some(v1.clone());
            s.code.prepared.insert(v1.clone());
            s.db.live = Some(DbContent::new("v1 data", 100));
        }
        config.set_live(&[
            ("API_KEY", CANARY_CONFIG_SECRET),
            ("DATABASE_URL", db.url().expose()),
            ("FEATURE_X", "off"),
        ]);
        Self {
            probe: FakeHealthProbe::new(&world, APP),
            metrics: FakeMetrics::new(&world),
            state: MemoryStateStore::new(),
            world,
            db,
            code,
            config,
            process,
            v1,
        }
    }

    /// Settings for tests: health checked every 5 ms for at most 300 ms.
    pub fn settings() -> Settings {
        Settings::new()
            .health_timeout(Duration::from_millis(300))
            .health_interval(Duration::from_millis(5))
    }

    /// An orchestrator builder with every fake wired in and [`Rig::settings`].
    pub fn orchestrator(&self) -> OrchestratorBuilder {
        Orchestrator::builder(APP)
            .database(self.db.clone())
            .code(self.code.clone())
            .config(self.config.clone())
            .process(self.process.clone())
            .health_probe(self.probe.clone())
            .metrics(self.metrics.clone())
            .state(self.state.clone())
            .settings(Self::settings())
    }

    /// A migration only (no new release): the live data becomes `marker` with `rows` rows;
    /// `broken` makes the app unhealthy on it.
    pub fn deploy_migration(&self, marker: &str, rows: u64, broken: bool) {
        let mut s = self.world.lock();
        s.db.live = Some(DbContent::new(marker, rows));
        if broken {
            s.db.broken_markers.insert(marker.to_owned());
        }
    }

    /// A release only (no migration, no config change): a new commit activated, its tree
    /// `tree`; `broken` makes the app unhealthy on it. Returns its revision.
    pub fn deploy_release(&self, subject: &str, tree: &str, broken: bool) -> RevisionId {
        let rev = self.code.commit(subject, tree);
        let mut s = self.world.lock();
        s.code.prepared.insert(rev.clone());
        s.code.active = Some(rev.clone());
        if broken {
            s.code.broken_trees.insert(tree.to_owned());
        }
        if let Some(app) = s.apps.get_mut(&rollback_core::AppName::new(APP)) {
            app.restarts += 1;
        }
        rev
    }

    /// A config change only: `key` set to `value` in the live config; `broken` makes the
    /// app unhealthy while the key is present.
    pub fn deploy_config(&self, key: &str, value: &str, broken: bool) {
        let mut s = self.world.lock();
        s.config.live.insert(key.to_owned(), value.into());
        if broken {
            s.config.breaking_keys.insert(key.to_owned());
        }
    }

    /// Deploys v2 the way a deploy tool would (migrate, new config, new release, restart)
    /// and breaks the parts named by `broken`: its code, its migration, its config.
    /// Returns v2's revision.
    pub fn deploy_bad_release(&self, broken: Scope) -> RevisionId {
        let v2 = self.code.commit("v2: new feature", "tree-v2");
        let mut s = self.world.lock();
        s.code.prepared.insert(v2.clone());
        s.code.active = Some(v2.clone());
        if broken.code {
            s.code.broken_trees.insert("tree-v2".into());
        }
        s.db.live = Some(DbContent::new("v2 data", 120));
        if broken.database {
            s.db.broken_markers.insert("v2 data".into());
        }
        s.config.live.insert("FEATURE_X".into(), "on".into());
        s.config.live.insert("NEW_IN_V2".into(), "1".into());
        if broken.config {
            s.config.breaking_keys.insert("NEW_IN_V2".into());
        }
        if let Some(app) = s.apps.get_mut(&rollback_core::AppName::new(APP)) {
            app.restarts += 1;
        }
        v2
    }
}
