//! [`FakeFixture`]: the fakes and the conformance fixtures over one world.

use crate::conformance::{CodeFixture, ConfigFixture, DatabaseFixture, ProcessFixture};
use crate::{DbContent, FakeCode, FakeConfig, World};
use async_trait::async_trait;
use rollback_core::{AppName, RevisionId};

/// Every fake over one [`World`], with the fixture hooks every conformance suite needs:
/// run a suite against the fakes, or against an adapter that wraps them (the fleet's remote
/// adapters over the agent protocol).
#[derive(Clone, Debug)]
pub struct FakeFixture {
    /// The world the fakes share.
    pub world: World,
    /// The code fake.
    pub code: FakeCode,
    /// The config fake.
    pub config: FakeConfig,
}

impl Default for FakeFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeFixture {
    /// A world with a live database, one commit active, and an empty config.
    pub fn new() -> Self {
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
impl DatabaseFixture for FakeFixture {
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
impl CodeFixture for FakeFixture {
    async fn commit(&self, subject: &str) -> RevisionId {
        self.code.commit(subject, &format!("tree of {subject}"))
    }

    async fn set_dirty(&self, dirty: bool) -> bool {
        self.world.lock().code.dirty = dirty.then(|| "src/edited.js".to_owned());
        true
    }
}

#[async_trait]
impl ConfigFixture for FakeFixture {
    async fn write_live(&self, pairs: &[(&str, &str)]) {
        self.config.set_live(pairs);
    }

    async fn write_malformed_live(&self) {
        self.world.lock().config.live_malformed_line = Some(2);
    }
}

#[async_trait]
impl ProcessFixture for FakeFixture {
    fn app(&self) -> AppName {
        AppName::new("web")
    }

    async fn is_serving(&self) -> bool {
        self.world.lock().healthy(&self.app())
    }
}
