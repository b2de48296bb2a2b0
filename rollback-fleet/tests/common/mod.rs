//! The fleet rig of these tests: three hosts, each an agent serving its own fakes over the
//! protocol, one shared database; a host can die (its agents with it) at a chosen call and
//! come back.
#![allow(dead_code)]

use rollback_core::{Orchestrator, ProcessState, Settings};
use rollback_fleet::{serve, AgentConnection, Fleet, FleetHost, HostAdapters, RemoteHost};
use rollback_testkit::{
    DbContent, FakeCode, FakeConfig, FakeDatabase, FakeHealthProbe, FakeProcessManager, Fault,
    MemoryStateStore, Method, When, World,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;

pub const APP: &str = "web";

/// One host: its world and fakes, v1 and v2 committed in the same order on every host (so
/// revision ids agree), v1 live.
pub struct Host {
    pub name: String,
    pub world: World,
    adapters: HostAdapters,
    /// The agents serving this host now: a host that dies takes them with it.
    agents: Arc<Mutex<Vec<AbortHandle>>>,
}

fn host(name: &str) -> Host {
    let world = World::new();
    let code = FakeCode::new(&world);
    let config = FakeConfig::new(&world);
    let pm = FakeProcessManager::new(&world);
    pm.add_app(APP);
    let v1 = code.commit("v1", "tree-v1");
    let v2 = code.commit("v2", "tree-v2");
    {
        let mut s = world.lock();
        s.code.active = Some(v1.clone());
        s.code.prepared.insert(v1);
        s.code.prepared.insert(v2);
    }
    config.set_live(&[("FEATURE_X", "off")]);
    let adapters = HostAdapters::new(APP, Arc::new(pm))
        .code(Arc::new(code))
        .config(Arc::new(config))
        .probe(Arc::new(FakeHealthProbe::new(&world, APP)));
    Host {
        name: name.into(),
        world,
        adapters,
        agents: Arc::default(),
    }
}

impl Host {
    /// The host dies (its sshd and agent with it) when `method` is first called on it, before
    /// the call does anything: the call never answers and the connection drops.
    pub fn dies_at(&self, method: Method) {
        self.world.inject(method, When::Nth(1), Fault::CrashBefore);
        let world = self.world.clone();
        let agents = self.agents.clone();
        tokio::spawn(async move {
            world.crashed().await;
            for agent in agents.lock().unwrap().drain(..) {
                agent.abort();
            }
        });
    }

    /// The host is back (as it was when it died): a new agent can be reached.
    pub fn comes_back(&self) {
        self.world.clear_faults();
        self.world.reset_crash();
    }

    /// Whether `APP` runs here.
    pub fn online(&self) -> bool {
        self.world
            .end_state()
            .apps
            .iter()
            .any(|(a, s)| a.as_str() == APP && *s == ProcessState::Online)
    }

    /// The active revision's tree.
    pub fn tree(&self) -> Option<String> {
        self.world.end_state().code_tree
    }

    /// A new agent on the host (as `ssh host rollback agent --stdio` starts one per
    /// orchestrator process) and the fleet's view of it.
    pub async fn connect(&self) -> FleetHost {
        let (to_agent, agent_in) = tokio::io::duplex(1 << 16);
        let (agent_out, from_agent) = tokio::io::duplex(1 << 16);
        let agent = tokio::spawn(serve(agent_in, agent_out, self.adapters.clone()));
        self.agents.lock().unwrap().push(agent.abort_handle());
        let conn = AgentConnection::open(&self.name, to_agent, from_agent, None, Duration::from_secs(5))
            .await
            .expect("hello");
        FleetHost::remote(RemoteHost(conn))
    }
}

pub struct Rig {
    pub hosts: Vec<Host>,
    pub db_world: World,
    pub state: MemoryStateStore,
}

impl Rig {
    pub async fn new(n: usize) -> Self {
        let db_world = World::new();
        db_world.lock().db.live = Some(DbContent::new("v1 data", 100));
        Self {
            hosts: (1..=n).map(|i| host(&format!("web-{i}"))).collect(),
            db_world,
            state: MemoryStateStore::new(),
        }
    }

    /// An orchestrator process: its own connections to every host.
    pub async fn orchestrator(&self) -> Orchestrator {
        let mut hosts = Vec::new();
        for h in &self.hosts {
            hosts.push(h.connect().await);
        }
        let fleet = Fleet::new(hosts, 2, Duration::from_secs(2)).unwrap();
        Orchestrator::builder(APP)
            .database(FakeDatabase::new(&self.db_world, "postgres://shared"))
            .code(fleet.code().unwrap())
            .config(fleet.config().unwrap())
            .process(fleet.process())
            .health_probe(fleet.health(APP))
            .state(self.state.clone())
            .settings(
                Settings::new()
                    .health_timeout(Duration::from_millis(500))
                    .health_interval(Duration::from_millis(5)),
            )
            .build()
            .unwrap()
    }

    /// The bad deploy on every host: v2's code and config, and its migration once.
    pub fn deploy_v2(&self) {
        for h in &self.hosts {
            let mut s = h.world.lock();
            let v2 = s.code.commits[1].revision.id.clone();
            s.code.active = Some(v2);
            s.code.broken_trees.insert("tree-v2".into());
            s.config.live.insert("FEATURE_X".into(), "on".into());
        }
        self.db_world.lock().db.live = Some(DbContent::new("v2 data", 120));
    }

    pub fn trees(&self) -> Vec<Option<String>> {
        self.hosts.iter().map(|h| h.world.end_state().code_tree).collect()
    }

    pub fn all_online(&self) -> bool {
        self.hosts.iter().all(|h| {
            h.world
                .end_state()
                .apps
                .iter()
                .any(|(a, s)| a.as_str() == APP && *s == ProcessState::Online)
        })
    }

    pub fn count(&self, m: Method) -> Vec<usize> {
        self.hosts.iter().map(|h| h.world.count(m)).collect()
    }
}
