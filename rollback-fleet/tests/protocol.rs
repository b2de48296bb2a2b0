//! A host's adapters through the agent protocol are adapters like any other: the code,
//! config and process conformance suites pass against [`RemoteHost`] talking to an agent
//! that serves the fakes; a version mismatch is refused naming both versions; an agent
//! that is gone is `Unavailable`, naming the host.

use rollback_core::{AppName, CodeVersion, ErrorKind, ProcessManager};
use rollback_fleet::protocol::PROTOCOL_VERSION;
use rollback_fleet::{serve, AgentConnection, FleetError, HostAdapters, RemoteHost};
use rollback_testkit::{conformance_tests, FakeFixture, FakeHealthProbe, FakeProcessManager};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// An agent serving the fixture's fakes, in this process, over in-memory pipes.
async fn remote(f: &FakeFixture) -> RemoteHost {
    let pm = FakeProcessManager::new(&f.world);
    pm.add_app("web");
    let adapters = HostAdapters::new("web", Arc::new(pm))
        .code(Arc::new(f.code.clone()))
        .config(Arc::new(f.config.clone()))
        .probe(Arc::new(FakeHealthProbe::new(&f.world, "web")));
    let (to_agent, agent_in) = tokio::io::duplex(1 << 16);
    let (agent_out, from_agent) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve(agent_in, agent_out, adapters));
    let conn = AgentConnection::open("host-a", to_agent, from_agent, None, Duration::from_secs(5))
        .await
        .expect("hello");
    assert_eq!(conn.hello().version, PROTOCOL_VERSION);
    assert_eq!(conn.hello().has, ["code", "config", "process", "health"]);
    RemoteHost(conn)
}

conformance_tests!(code_version, |check| {
    let f = FakeFixture::new();
    check(&remote(&f).await, &f).await;
});

conformance_tests!(config_store, |check| {
    let f = FakeFixture::new();
    check(&remote(&f).await, &f).await;
});

conformance_tests!(process_manager, |check| {
    let f = FakeFixture::new();
    check(&remote(&f).await, &f).await;
});

#[tokio::test]
async fn errors_keep_their_kind_and_name_the_host() {
    let f = FakeFixture::new();
    let host = remote(&f).await;
    let e = host.resolve("no-such-revision").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().starts_with("host host-a: "), "{e}");
    let e = host.status(&AppName::new("all")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn an_agent_of_another_version_is_refused_naming_both() {
    let f = FakeFixture::new();
    let pm = FakeProcessManager::new(&f.world);
    let adapters = HostAdapters::new("web", Arc::new(pm));
    // An orchestrator of a future version says hello to this agent.
    let (mut to_agent, agent_in) = tokio::io::duplex(1 << 16);
    let (agent_out, from_agent) = tokio::io::duplex(1 << 16);
    let agent = tokio::spawn(serve(agent_in, agent_out, adapters));
    to_agent
        .write_all(
            format!(
                "{{\"id\":1,\"call\":\"hello\",\"version\":{}}}\n",
                PROTOCOL_VERSION + 1
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    BufReader::new(from_agent).read_line(&mut answer).await.unwrap();
    assert!(
        answer.contains(&format!("version {}", PROTOCOL_VERSION + 1))
            && answer.contains(&format!("version {PROTOCOL_VERSION}")),
        "{answer}"
    );
    let ended = agent.await.unwrap();
    assert!(
        matches!(ended, Err(FleetError::VersionMismatch { .. })),
        "{ended:?}"
    );
}

#[tokio::test]
async fn an_agent_that_is_gone_is_unavailable_naming_the_host() {
    let f = FakeFixture::new();
    let (to_agent, agent_in) = tokio::io::duplex(1 << 16);
    let (agent_out, from_agent) = tokio::io::duplex(1 << 16);
    let pm = FakeProcessManager::new(&f.world);
    pm.add_app("web");
    let adapters = HostAdapters::new("web", Arc::new(pm));
    let agent = tokio::spawn(serve(agent_in, agent_out, adapters));
    let host = RemoteHost(
        AgentConnection::open("host-b", to_agent, from_agent, None, Duration::from_secs(5))
            .await
            .unwrap(),
    );
    host.status(&AppName::new("web")).await.expect("served");
    let e = host.current().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "no code adapter there: {e}");
    agent.abort();
    let _ = agent.await;
    let e = host.status(&AppName::new("web")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("host-b"), "{e}");
}

#[tokio::test]
async fn an_agent_refuses_another_app_naming_both() {
    let f = FakeFixture::new();
    let pm = FakeProcessManager::new(&f.world);
    pm.add_app("web");
    pm.add_app("api"); // the manager knows it: the agent must refuse it anyway
    let adapters = HostAdapters::new("web", Arc::new(pm));
    let (to_agent, agent_in) = tokio::io::duplex(1 << 16);
    let (agent_out, from_agent) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve(agent_in, agent_out, adapters));
    let host = RemoteHost(
        AgentConnection::open("host-c", to_agent, from_agent, None, Duration::from_secs(5))
            .await
            .unwrap(),
    );
    let api = AppName::new("api");
    let e = host.stop(&api).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.message().contains("serves `web`") && e.message().contains("asked for `api`"),
        "{e}"
    );
    assert_eq!(host.status(&api).await.unwrap_err().kind(), ErrorKind::NotFound);
    let e = host.logs_since(&api, chrono::Utc::now()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(
        f.world.count(rollback_testkit::Method::ProcessStop),
        0,
        "nothing reached the manager"
    );
    host.status(&AppName::new("web"))
        .await
        .expect("its own app is served");
}
