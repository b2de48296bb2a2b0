//! The ssh transport against a real sshd (Debian's openssh-server, started by
//! rollback-testkit's `TempSshd` on 127.0.0.1 with keys it generates): hello and calls
//! through `ssh`, host keys checked strictly, refused keys, closed ports and missing agents
//! named as such, and the agent ending when the connection is dropped.
//!
//! The "agent" on the far side is `examples/fake_agent.rs` (rollback-testkit's fakes served
//! with `rollback_fleet::serve`) until `rollback agent --stdio` exists: `cargo test -p
//! rollback-fleet` builds the package's examples next to its test binaries
//! (`target/<profile>/examples/`); when it is not there (`cargo test --test ssh`), it is
//! built with `cargo build --example fake_agent`.

use rollback_core::{AppName, CodeVersion, ProcessManager, ProcessState};
use rollback_fleet::protocol::PROTOCOL_VERSION;
use rollback_fleet::{ssh, FleetError, HostKeyPolicy, RemoteHost, SshHost, SshHostBuilder};
use rollback_testkit::integration::{is_executable, run_with_timeout};
use rollback_testkit::temp_pm2::free_port;
use rollback_testkit::temp_sshd::TempSshd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const HELLO: Duration = Duration::from_secs(20);

/// The fake agent's binary: built by `cargo test` with the package's examples, else built here.
fn fake_agent() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        // target/<profile>/deps/ssh-<hash> -> target/<profile>/examples/fake_agent
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            let built = profile_dir.join("examples").join("fake_agent");
            if is_executable(&built) {
                return built;
            }
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--example",
            "fake_agent",
            "--message-format",
            "json",
            "--manifest-path",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
        let out =
            run_with_timeout(&mut cmd, Duration::from_secs(900)).expect("cargo build --example fake_agent");
        assert!(
            out.status.success(),
            "cargo build --example fake_agent: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|m| m["target"]["name"] == "fake_agent" && m["executable"].is_string())
            .and_then(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo named the fake agent's executable")
    })
}

/// A host reached through the sshd's own `ssh_config` (alias, port, key, known_hosts),
/// running the fake agent serving `app`.
fn via_config(sshd: &TempSshd, name: &str, agent_args: &[&str]) -> SshHostBuilder {
    SshHost::builder(sshd.alias(), "/unused/rollback.toml")
        .name(name)
        .config_file(sshd.ssh_config())
        .control_directory(sshd.dir())
        .connect_timeout(Duration::from_secs(5))
        .command(
            [fake_agent().to_string_lossy().into_owned()]
                .into_iter()
                .chain(agent_args.iter().map(|a| a.to_string())),
        )
}

/// A host reached by `user@127.0.0.1`, port and options given one by one (no ssh config of
/// the user's: `-F /dev/null`).
fn by_hand(sshd: &TempSshd, name: &str) -> SshHostBuilder {
    SshHost::builder(sshd.destination(), "/unused/rollback.toml")
        .name(name)
        .config_file("/dev/null")
        .port(sshd.port())
        .identity_file(sshd.identity())
        .known_hosts_file(sshd.known_hosts())
        .control_directory(sshd.dir())
        .connect_timeout(Duration::from_secs(5))
        .command([fake_agent().to_string_lossy().into_owned()])
}

fn unreachable_why(e: FleetError, name: &str) -> String {
    let text = e.to_string();
    match e {
        FleetError::Unreachable { host, why } => {
            eprintln!("{text}");
            assert_eq!(host, name);
            assert!(text.contains(name), "{text}");
            why
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

fn pid_alive(pid: u32) -> bool {
    // Gone, or a zombie its parent has not reaped yet.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < deadline, "{what} did not happen within 15 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn control_dirs(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".ssh-connection"))
            .count()
    })
}

#[tokio::test]
async fn hello_and_calls_over_ssh_and_dropping_the_connection_ends_the_agent() {
    let Some(sshd) = TempSshd::start("hello_and_calls_over_ssh") else {
        return;
    };
    let pid_file = sshd.dir().join("agent.pid");
    let host = via_config(
        &sshd,
        "web-1",
        &["--app", "shop", "--pid-file", &pid_file.to_string_lossy()],
    )
    .build()
    .unwrap();
    let conn = ssh::connect(&host, HELLO)
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd's log:\n{}", sshd.log()));
    assert_eq!(conn.host(), "web-1");
    let hello = conn.hello();
    assert_eq!(hello.version, PROTOCOL_VERSION);
    assert_eq!(
        hello.app,
        AppName::new("shop"),
        "the host's app, named by its agent"
    );
    assert_eq!(hello.host, rollback_core::sys::host_name());
    assert_eq!(hello.has, ["code", "config", "process", "health"]);
    assert_eq!(control_dirs(sshd.dir()), 1, "one master connection");

    let remote = RemoteHost(conn.clone());
    let status = remote.status(&AppName::new("shop")).await.unwrap();
    assert_eq!(status.state, ProcessState::Online, "{status:?}");
    assert!(status.pid.is_some());
    // Another app than the agent's own is refused, naming both.
    let e = remote.status(&AppName::new("nope")).await.unwrap_err();
    assert_eq!(e.kind(), rollback_core::ErrorKind::NotFound, "{e}");
    assert!(
        e.message().contains("serves `shop`") && e.message().contains("`nope`"),
        "{e}"
    );
    assert!(e.message().starts_with("host web-1: "), "{e}");
    let current = CodeVersion::current(&remote).await.unwrap();
    assert_eq!(
        CodeVersion::resolve(&remote, current.id.as_str())
            .await
            .unwrap()
            .id,
        current.id
    );

    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid), "the agent runs while connected");
    drop(remote);
    drop(conn);
    eventually("the remote agent ending", || !pid_alive(pid)).await;
    eventually("the master connection closing", || control_dirs(sshd.dir()) == 0).await;
    assert!(sshd.log().contains("Accepted publickey for"), "{}", sshd.log());
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_under_strict_checking_and_accepted_new_on_request() {
    let Some(sshd) = TempSshd::start("an_unknown_host_key_is_refused") else {
        return;
    };
    let empty = sshd.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();

    let strict = by_hand(&sshd, "web-2").known_hosts_file(&empty).build().unwrap();
    assert_eq!(
        strict.host_key_policy(),
        HostKeyPolicy::Strict,
        "strict by default"
    );
    let why = unreachable_why(ssh::connect(&strict, HELLO).await.unwrap_err(), "web-2");
    assert!(why.contains("host key is unknown"), "{why}");
    assert!(
        why.contains(&format!("[127.0.0.1]:{} is not in", sshd.port())),
        "{why}"
    );
    assert!(
        why.contains("Host key verification failed"),
        "ssh's own words: {why}"
    );
    assert_eq!(std::fs::read_to_string(&empty).unwrap(), "", "nothing was added");

    // Trust on first use, when asked: the key is recorded, and strict checking passes after.
    let accept = by_hand(&sshd, "web-2")
        .known_hosts_file(&empty)
        .host_key_policy(HostKeyPolicy::AcceptNew)
        .build()
        .unwrap();
    let conn = ssh::connect(&accept, HELLO).await.unwrap();
    assert_eq!(conn.hello().app, AppName::new("web"));
    drop(conn);
    assert!(
        std::fs::read_to_string(&empty).unwrap().contains("[127.0.0.1]:"),
        "accept-new records the host's key"
    );
    let conn = ssh::connect(&strict, HELLO).await.unwrap();
    drop(conn);

    // A known host whose key changed is refused, even with accept-new.
    let stranger = sshd.stranger_key("host");
    let other_key = std::fs::read_to_string(stranger.with_extension("pub")).unwrap();
    let changed = sshd.dir().join("changed_known_hosts");
    let fields: Vec<&str> = other_key.split_whitespace().take(2).collect();
    std::fs::write(
        &changed,
        format!("[127.0.0.1]:{} {}\n", sshd.port(), fields.join(" ")),
    )
    .unwrap();
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        let host = by_hand(&sshd, "web-2")
            .known_hosts_file(&changed)
            .host_key_policy(policy)
            .build()
            .unwrap();
        let why = unreachable_why(ssh::connect(&host, HELLO).await.unwrap_err(), "web-2");
        assert!(why.contains("host key has CHANGED"), "{policy:?}: {why}");
        assert!(
            why.contains(&format!("ssh-keygen -R '[127.0.0.1]:{}'", sshd.port())),
            "{why}"
        );
    }
}

#[tokio::test]
async fn a_refused_key_and_a_closed_port_are_unreachable_naming_the_host_without_key_material() {
    let Some(sshd) = TempSshd::start("a_refused_key_and_a_closed_port") else {
        return;
    };
    let stranger = sshd.stranger_key("client");
    let key_texts = [
        std::fs::read_to_string(&stranger).unwrap(),
        std::fs::read_to_string(sshd.identity()).unwrap(),
    ];
    // Every line of the private keys' base64 (the armour lines are not secret).
    let secret_lines: Vec<String> = key_texts
        .iter()
        .flat_map(|k| {
            k.lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!secret_lines.is_empty());

    let host = by_hand(&sshd, "web-3").identity_file(&stranger).build().unwrap();
    let e = ssh::connect(&host, HELLO).await.unwrap_err();
    let shown = format!("{e} {e:?} {host:?}");
    let why = unreachable_why(e, "web-3");
    assert!(why.contains("refused our key"), "{why}");
    assert!(why.contains("Permission denied (publickey)"), "{why}");
    for line in &secret_lines {
        assert!(!shown.contains(line.as_str()), "key material in {shown}");
    }

    let closed = by_hand(&sshd, "web-4").port(free_port()).build().unwrap();
    let why = unreachable_why(ssh::connect(&closed, HELLO).await.unwrap_err(), "web-4");
    assert!(why.contains("connection refused"), "{why}");

    let missing_key = by_hand(&sshd, "web-5")
        .identity_file(sshd.dir().join("no-such-key"))
        .build()
        .unwrap();
    let why = unreachable_why(ssh::connect(&missing_key, HELLO).await.unwrap_err(), "web-5");
    assert!(
        why.contains("identity file") && why.contains("no-such-key"),
        "{why}"
    );
}

#[tokio::test]
async fn a_missing_agent_program_and_an_agent_that_exits_are_named() {
    let Some(sshd) = TempSshd::start("a_missing_agent_program") else {
        return;
    };
    let host = SshHost::builder(sshd.alias(), "/etc/rollback/rollback.toml")
        .name("web-6")
        .config_file(sshd.ssh_config())
        .control_directory(sshd.dir())
        .command(["rollback-not-installed-here", "agent", "--stdio"])
        .build()
        .unwrap();
    let why = unreachable_why(ssh::connect(&host, HELLO).await.unwrap_err(), "web-6");
    assert!(
        why.contains("`rollback-not-installed-here` was not found there"),
        "{why}"
    );
    assert!(why.contains("install `rollback`"), "{why}");

    let failing = via_config(&sshd, "web-7", &["--fail", "cannot read /srv/app/rollback.toml"])
        .build()
        .unwrap();
    let why = unreachable_why(ssh::connect(&failing, HELLO).await.unwrap_err(), "web-7");
    assert!(why.contains("exited"), "{why}");
    assert!(
        why.contains("cannot read /srv/app/rollback.toml"),
        "its stderr: {why}"
    );

    // A program that never answers: the hello's time limit, then the connection is closed.
    let silent = SshHost::builder(sshd.alias(), "/unused")
        .name("web-8")
        .config_file(sshd.ssh_config())
        .control_directory(sshd.dir())
        .command(["sleep", "5"])
        .build()
        .unwrap();
    let why = unreachable_why(
        ssh::connect(&silent, Duration::from_secs(1)).await.unwrap_err(),
        "web-8",
    );
    assert!(why.contains("did not answer the hello within 1s"), "{why}");

    // Nothing is left behind by the failures: the master connections are closed.
    eventually("the master connections closing", || control_dirs(sshd.dir()) == 0).await;
}

#[tokio::test]
async fn hosts_are_served_at_once_over_one_sshd() {
    let Some(sshd) = TempSshd::start("hosts_are_served_at_once") else {
        return;
    };
    let hosts: Vec<SshHost> = (0..3)
        .map(|i| {
            via_config(&sshd, &format!("web-{i}"), &["--app", &format!("app-{i}")])
                .build()
                .unwrap()
        })
        .collect();
    let conns = futures::future::try_join_all(hosts.iter().map(|h| ssh::connect(h, HELLO)))
        .await
        .unwrap();
    for (i, conn) in conns.iter().enumerate() {
        assert_eq!(conn.host(), format!("web-{i}"));
        let status = RemoteHost(conn.clone())
            .status(&AppName::new(format!("app-{i}")))
            .await
            .unwrap();
        assert_eq!(status.state, ProcessState::Online);
    }
}
