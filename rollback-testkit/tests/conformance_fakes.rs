//! The conformance suites run against the fakes (and both state stores), one test per named
//! check. Real adapters run the same checks in their own crates.

use async_trait::async_trait;
use rollback_core::{AppName, DirStateStore, RevisionId};
use rollback_testkit::conformance::{self, CodeFixture, ConfigFixture, DatabaseFixture, ProcessFixture};
use rollback_testkit::{
    conformance_tests, DbContent, FakeCode, FakeConfig, FakeDatabase, FakeProcessManager, MemoryStateStore,
    World,
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

// One test per named check: `database_snapshot::restore_puts_the_snapshot_live`, ...; each
// with a fresh world.

conformance_tests!(database_snapshot, |check| {
    let f = Fixture::new();
    check(&FakeDatabase::new(&f.world, "postgres://fake"), &f).await;
});

conformance_tests!(code_version, |check| {
    let f = Fixture::new();
    check(&f.code, &f).await;
});

conformance_tests!(config_store, |check| {
    let f = Fixture::new();
    check(&f.config, &f).await;
});

conformance_tests!(process_manager, |check| {
    let f = Fixture::new();
    let pm = FakeProcessManager::new(&f.world);
    pm.add_app("web");
    check(&pm, &f).await;
});

conformance_tests!(state_store as memory_state_store, |check| {
    check(&MemoryStateStore::new()).await;
});

conformance_tests!(state_store as dir_state_store, |check, test| {
    let dir = tempfile::Builder::new()
        .prefix(&test.replace("::", "-"))
        .tempdir()
        .unwrap();
    check(&DirStateStore::open(dir.path()).await.unwrap()).await;
});

/// The macro's lists of checks are the suites' `CHECKS`, in order: every check has a test.
#[test]
fn the_macro_has_a_test_for_every_check() {
    fn names<R>(checks: &[conformance::Check<R>]) -> Vec<&'static str> {
        checks.iter().map(|c| c.name).collect()
    }
    assert_eq!(
        database_snapshot::CHECK_NAMES,
        names(conformance::database::CHECKS)
    );
    assert_eq!(code_version::CHECK_NAMES, names(conformance::code::CHECKS));
    assert_eq!(config_store::CHECK_NAMES, names(conformance::config::CHECKS));
    assert_eq!(process_manager::CHECK_NAMES, names(conformance::process::CHECKS));
    assert_eq!(memory_state_store::CHECK_NAMES, names(conformance::state::CHECKS));
    assert_eq!(dir_state_store::CHECK_NAMES, names(conformance::state::CHECKS));
}
