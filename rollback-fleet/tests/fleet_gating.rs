//! What makes a fleet's health and rolling reload trustworthy: a host without a health probe
//! is judged by its process manager's status, a fleet cannot roll unless every host's return
//! is checked, a hanging probe does not outlast the deadline, and the optional methods
//! (logs, the config's emergency backup) reach every host.

use async_trait::async_trait;
use rollback_core::{
    AdapterError, AppName, ConfigCheck, ConfigDiff, ConfigStore, ConfigVersion, ConfigVersionId, ErrorKind,
    HealthProbe, ProbeResult, ProcessManager,
};
use rollback_fleet::{serve, AgentConnection, Fleet, FleetHost, HostAdapters, RemoteHost};
use rollback_testkit::{FakeConfig, FakeHealthProbe, FakeProcessManager, World};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const APP: &str = "web";

fn pm(world: &World) -> Arc<FakeProcessManager> {
    let pm = FakeProcessManager::new(world);
    pm.add_app(APP);
    Arc::new(pm)
}

/// A probe that never answers.
struct Hanging;

#[async_trait]
impl HealthProbe for Hanging {
    fn name(&self) -> String {
        "hanging".into()
    }
    async fn probe(&self) -> ProbeResult {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_host_without_a_probe_is_healthy_only_while_its_app_is_online() {
    let (w1, w2) = (World::new(), World::new());
    let (pm1, pm2) = (pm(&w1), pm(&w2));
    let fleet = Fleet::new(
        vec![
            FleetHost::new("web-1", pm1).health(Arc::new(FakeHealthProbe::new(&w1, APP))),
            FleetHost::new("web-2", pm2.clone()),
        ],
        2,
        Duration::from_secs(1),
    )
    .unwrap();
    let health = fleet.health(APP);
    let r = health.probe().await;
    assert!(r.healthy, "web-2 online: {}", r.detail);
    pm2.stop(&AppName::new(APP)).await.unwrap();
    let r = health.probe().await;
    assert!(
        !r.healthy,
        "web-2 has no probe and its app is stopped: {}",
        r.detail
    );
    assert!(r.detail.contains("web-2"), "{}", r.detail);
}

#[tokio::test]
async fn a_fleet_cannot_roll_when_a_host_lacks_a_probe_and_a_graceful_reload() {
    let app = AppName::new(APP);
    let (w1, w2) = (World::new(), World::new());
    let probed =
        |name: &str, w: &World| FleetHost::new(name, pm(w)).health(Arc::new(FakeHealthProbe::new(w, APP)));
    let all_probed = Fleet::new(
        vec![probed("web-1", &w1), probed("web-2", &w2)],
        1,
        Duration::from_secs(1),
    )
    .unwrap();
    assert!(all_probed.process().can_reload(&app).await.unwrap());

    let one_unprobed = Fleet::new(
        vec![probed("web-1", &w1), FleetHost::new("web-2", pm(&w2))],
        1,
        Duration::from_secs(1),
    )
    .unwrap();
    assert!(!one_unprobed.process().can_reload(&app).await.unwrap());

    // Without a probe but reloading gracefully on its own, the host is fine.
    let w3 = World::new();
    let cluster = FakeProcessManager::new(&w3);
    cluster.add_cluster_app(APP);
    let graceful = Fleet::new(
        vec![probed("web-1", &w1), FleetHost::new("web-3", Arc::new(cluster))],
        1,
        Duration::from_secs(1),
    )
    .unwrap();
    assert!(graceful.process().can_reload(&app).await.unwrap());
}

#[tokio::test]
async fn a_rolling_reload_waits_for_a_host_without_a_probe_to_be_online() {
    let w = World::new();
    let pm = pm(&w);
    let fleet = Fleet::new(
        vec![FleetHost::new("web-1", pm.clone())],
        1,
        Duration::from_millis(300),
    )
    .unwrap();
    fleet
        .process()
        .reload(&AppName::new(APP))
        .await
        .expect("restarted and online");
    // The host's app fails to come back: the roll stops there, in time.
    w.inject(
        rollback_testkit::Method::ProcessRestart,
        rollback_testkit::When::Always,
        rollback_testkit::Fault::Fail(ErrorKind::Failed),
    );
    assert!(fleet.process().reload(&AppName::new(APP)).await.is_err());
}

#[tokio::test]
async fn a_hanging_probe_does_not_hold_a_rolling_reload_past_its_deadline() {
    let w = World::new();
    let fleet = Fleet::new(
        vec![FleetHost::new("web-1", pm(&w)).health(Arc::new(Hanging))],
        1,
        Duration::from_millis(200),
    )
    .unwrap();
    let started = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(5), fleet.process().reload(&AppName::new(APP)))
        .await
        .expect("reload returned: the deadline held")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("web-1"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_remote_probe_that_hangs_is_unhealthy_after_the_probe_timeout() {
    let w = World::new();
    let adapters = HostAdapters::new(APP, pm(&w)).probe(Arc::new(Hanging));
    let (to_agent, agent_in) = tokio::io::duplex(1 << 16);
    let (agent_out, from_agent) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve(agent_in, agent_out, adapters));
    let conn = AgentConnection::open("web-9", to_agent, from_agent, None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(conn.probe_timeout(), rollback_fleet::DEFAULT_PROBE_TIMEOUT);
    conn.set_probe_timeout(Duration::from_millis(100));
    let started = Instant::now();
    let r = RemoteHost(conn).probe().await;
    assert!(!r.healthy);
    assert!(
        r.detail.contains("web-9") && r.detail.contains("did not answer"),
        "{}",
        r.detail
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn logs_since_merges_every_hosts_lines_prefixed_with_its_name() {
    let app = AppName::new(APP);
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    let (w1, w2) = (World::new(), World::new());
    for (w, line) in [(&w1, "ERROR one"), (&w2, "ERROR two")] {
        w.lock()
            .app_logs
            .insert(app.clone(), vec![(chrono::Utc::now(), line.to_owned())]);
    }
    let fleet = Fleet::new(
        vec![FleetHost::new("web-1", pm(&w1)), FleetHost::new("web-2", pm(&w2))],
        2,
        Duration::from_secs(1),
    )
    .unwrap();
    let logs = fleet
        .process()
        .logs_since(&app, since)
        .await
        .unwrap()
        .expect("logs");
    let lines: Vec<&str> = logs.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(lines, ["web-1: ERROR one", "web-2: ERROR two"]);

    for w in [&w1, &w2] {
        w.lock().logs_unsupported = true;
    }
    assert_eq!(fleet.process().logs_since(&app, since).await.unwrap(), None);
}

/// A config store whose emergency backup is its own (not a plain backup), recording it.
struct OwnBackup {
    inner: FakeConfig,
    calls: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl ConfigStore for OwnBackup {
    async fn current(&self) -> Result<ConfigVersion, AdapterError> {
        self.inner.current().await
    }
    async fn backup(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        self.inner.backup(label).await
    }
    async fn list(&self) -> Result<Vec<ConfigVersion>, AdapterError> {
        self.inner.list().await
    }
    async fn verify(&self, version: &ConfigVersionId) -> Result<ConfigCheck, AdapterError> {
        self.inner.verify(version).await
    }
    async fn restore(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        self.inner.restore(version).await
    }
    async fn preserve_current(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        let mut v = self.inner.backup(label).await?;
        v.location = format!("aside:{}", v.id);
        self.calls.lock().unwrap().push("preserve".into());
        Ok(v)
    }
    async fn reinstate(&self, preserved: &ConfigVersion) -> Result<(), AdapterError> {
        assert_eq!(
            preserved.location,
            format!("aside:{}", preserved.id),
            "each host gets its own whole version back"
        );
        self.calls.lock().unwrap().push("reinstate".into());
        self.inner.restore(&preserved.id).await
    }
    async fn diff(&self, a: &ConfigVersionId, b: &ConfigVersionId) -> Result<ConfigDiff, AdapterError> {
        self.inner.diff(a, b).await
    }
}

#[tokio::test]
async fn the_configs_emergency_backup_is_each_hosts_own() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let hosts = ["web-1", "web-2"]
        .into_iter()
        .map(|name| {
            let w = World::new();
            let config = FakeConfig::new(&w);
            config.set_live(&[("FEATURE_X", "off")]);
            FleetHost::new(name, pm(&w)).config(Arc::new(OwnBackup {
                inner: config,
                calls: calls.clone(),
            }))
        })
        .collect();
    let fleet = Fleet::new(hosts, 2, Duration::from_secs(1)).unwrap();
    let config = fleet.config().unwrap();
    let kept = config.preserve_current("emergency").await.unwrap();
    config.reinstate(&kept).await.unwrap();
    // What was kept is also a version like any other for the fleet.
    config.verify(&kept.id).await.unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        ["preserve", "preserve", "reinstate", "reinstate"]
    );
}
