//! A reader that goes away (`rollback status | head -0`, a pager quit early) ends the command
//! quietly: no panic, its own exit code.

use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("rollback.toml");
    std::fs::write(
        &config,
        format!(
            "app = \"web\"\nstate_dir = \"{}\"\n\n[process]\nmanager = \"pm2\"\npm2_home = \"{}\"\n",
            tmp.path().join("state").display(),
            tmp.path().join("pm2").display()
        ),
    )
    .unwrap();
    for _ in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rollback"))
            .arg("--config")
            .arg(&config)
            .arg("status")
            .env_remove("ROLLBACK_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rollback status");
        // The reader goes away before anything is read.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(out.status.code(), Some(0), "{stderr}");
    }
}
