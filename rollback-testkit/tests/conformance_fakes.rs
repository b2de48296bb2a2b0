//! The conformance suites run against the fakes (and both state stores). Real adapters run
//! the same functions in their own crates.

use async_trait::async_trait;
use rollback_core::{AppName, DirStateStore, RevisionId};
use rollback_testkit::conformance::{self, CodeFixture, ConfigFixture, DatabaseFixture, ProcessFixture};
use rollback_testkit::{
    DbContent, FakeCode, FakeConfig, FakeDatabase, FakeProcessManager, MemoryStateStore, World,
};

struct Fixture {
    world: World,
    code: FakeCode,
    config: FakeConfig,
}

impl Fixture {
    fn new() -> Self {
        let world = World::new();
        world.lock().db.live = Some(DbContent::new("initial", 10));
        let code = FakeCode::new(&world);
        let root = code.commit("root", "tree-root");
        {
            let mut s = world.lock();
            s.code.active = Some(root.clone());
            s.code.prepared.insert(root);
        }
        Self {
            config: FakeConfig::new(&world),
            code,
            world,
        }
    }
}

#[async_trait]
impl DatabaseFixture for Fixture {
    async fn write_marker(&self, marker: &str) {
        if let Some(live) = self.world.lock().db.live.as_mut() {
            live.marker = marker.to_owned();
        }
    }

    async fn read_marker(&self) -> Option<String> {
        self.world.lock().db.live.as_ref().map(|l| l.marker.clone())
    }
}

#[async_trait]
impl CodeFixture for Fixture {
    async fn commit(&self, subject: &str) -> RevisionId {
        self.code.commit(subject, &format!("tree of {subject}"))
    }

    async fn set_dirty(&self, dirty: bool) -> bool {
        self.world.lock().code.dirty = dirty.then(|| "src/edited.js".to_owned());
        true
    }
}

#[async_trait]
impl ConfigFixture for Fixture {
    async fn write_live(&self, pairs: &[(&str, &str)]) {
        self.config.set_live(pairs);
    }

    async fn write_malformed_live(&self) {
        self.world.lock().config.live_malformed_line = Some(2);
    }
}

#[async_trait]
impl ProcessFixture for Fixture {
    fn app(&self) -> AppName {
        AppName::new("web")
    }

    async fn is_serving(&self) -> bool {
        self.world.lock().healthy(&self.app())
    }
}

#[tokio::test]
async fn fake_database_passes_the_database_suite() {
    let f = Fixture::new();
    conformance::database_snapshot(&FakeDatabase::new(&f.world, "postgres://fake"), &f).await;
}

#[tokio::test]
async fn fake_code_passes_the_code_suite() {
    let f = Fixture::new();
    conformance::code_version(&f.code, &f).await;
}

#[tokio::test]
async fn fake_config_passes_the_config_suite() {
    let f = Fixture::new();
    conformance::config_store(&f.config, &f).await;
}

#[tokio::test]
async fn fake_process_manager_passes_the_process_suite() {
    let f = Fixture::new();
    let pm = FakeProcessManager::new(&f.world);
    pm.add_app("web");
    conformance::process_manager(&pm, &f).await;
}

#[tokio::test]
async fn memory_state_store_passes_the_state_suite() {
    conformance::state_store(&MemoryStateStore::new()).await;
}

#[tokio::test]
async fn dir_state_store_passes_the_state_suite() {
    let dir = tempfile::tempdir().unwrap();
    conformance::state_store(&DirStateStore::open(dir.path()).await.unwrap()).await;
}
