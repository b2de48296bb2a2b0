//! A `[[hosts]]` entry whose agent serves another app than the deploy box's is refused
//! when wiring, naming both apps and the entry, before anything is asked of any host. A real
//! sshd on 127.0.0.1 (its own keys) runs the real `rollback agent --stdio`.

use rollback_testkit::temp_sshd::TempSshd;
use std::path::Path;
use std::process::{Command, Stdio};

/// A host's rollback.toml serving `app` (a pm2 that is never started: `check` stops at
/// the hello).
fn host_toml(dir: &Path, app: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{app}-host.toml"));
    let text = format!(
        r#"app = "{app}"
state_dir = "state"

[process]
manager = "pm2"
pm2_home = "{pm2}"
"#,
        pm2 = dir.join("pm2").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn deploy_toml(dir: &Path, sshd: &TempSshd, host_config: &Path) -> std::path::PathBuf {
    let path = dir.join("rollback.toml");
    let text = format!(
        r#"app = "web"
state_dir = "{state}"

[fleet]
hello_timeout = "30s"
control_dir = "{control}"

[[hosts]]
name = "web-7"
ssh = "{alias}"
ssh_config = "{ssh_config}"
config = "{config}"
command = ["{bin}", "agent", "--stdio", "--config", "{config}"]
"#,
        state = dir.join("state").display(),
        control = sshd.dir().display(),
        alias = sshd.alias(),
        ssh_config = sshd.ssh_config().display(),
        config = host_config.display(),
        bin = env!("CARGO_BIN_EXE_rollback"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_host_whose_agent_serves_another_app_is_refused_naming_both_and_the_entry() {
    let test = "a_host_whose_agent_serves_another_app_is_refused_naming_both_and_the_entry";
    let Some(sshd) = TempSshd::start(test) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let host_config = host_toml(tmp.path(), "billing");
    let config = deploy_toml(tmp.path(), &sshd, &host_config);
    let out = Command::new(env!("CARGO_BIN_EXE_rollback"))
        .arg("--config")
        .arg(&config)
        .arg("check")
        .env_remove("ROLLBACK_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run rollback");
    let (code, stdout, stderr) = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        code,
        78,
        "refused as a config error: {stdout}{stderr}\nsshd: {}",
        sshd.log()
    );
    for part in ["web-7", "`billing`", "`web`", "[[hosts]]", "rollback.toml"] {
        assert!(stderr.contains(part), "`{part}` in: {stderr}");
    }
    assert!(!stdout.contains("ready to roll back"), "{stdout}");

    // The same host serving `web`: reached and checked past the hello.
    let same = host_toml(tmp.path(), "web");
    let config = deploy_toml(tmp.path(), &sshd, &same);
    let out = Command::new(env!("CARGO_BIN_EXE_rollback"))
        .arg("--config")
        .arg(&config)
        .arg("check")
        .env_remove("ROLLBACK_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run rollback");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("host web-7: agent reached over ssh, serving app web"),
        "{stdout}{stderr}"
    );
    assert!(!stderr.contains("serves app"), "{stderr}");
}
