//! `rollback unlock` and `rollback unlock --force` as real processes against a state
//! directory whose `lock.json` is held by a live process: the test's own, once as if on
//! another deploy box (which this box cannot check) and once on this host. Plain `unlock`
//! refuses both (exit 4); `--force` without a terminal needs `--yes` (exit 64) and leaves
//! the lock; `--force --yes` shows the holder, says what to check by hand, and clears it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("rollback.toml");
    let text = format!(
        r#"app = "web"
state_dir = "{state}"

[process]
manager = "pm2"
pm2_home = "{pm2}"
"#,
        state = dir.join("state").display(),
        pm2 = dir.join("pm2").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `rollback --config <config> <args>` without a terminal (stdin closed).
fn rollback(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rollback"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("ROLLBACK_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run rollback");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes the `DirStateStore`'s `lock.json` (a `LockHolder`: pid, host, since, rollback,
/// token), owner-only as the store writes it.
fn hold_lock(state: &Path, pid: u32, host: &str, rollback: &str, token: &str) {
    use std::os::unix::fs::PermissionsExt;
    let since = chrono::Utc::now() - chrono::Duration::minutes(12);
    let holder = serde_json::json!({
        "pid": pid,
        "host": host,
        "since": since,
        "rollback": rollback,
        "token": token,
    });
    let path = state.join("lock.json");
    std::fs::write(&path, serde_json::to_vec(&holder).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_live_holders_lock_is_refused_by_unlock_and_cleared_by_unlock_force() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let state = tmp.path().join("state");
    let lock = state.join("lock.json");

    // No lock: free, and the state directory now exists.
    let (code, out, err) = rollback(&config, &["unlock"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("the lock is free"), "{out}");
    assert!(state.is_dir());

    // Held by a live process (this test's) on another deploy box: that box's process
    // cannot be checked from here, so plain `unlock` refuses.
    let me = std::process::id();
    let other = "crashed-deploy-box-b";
    hold_lock(&state, me, other, "rb-20261126T101500.123456Z-0", "token-b");
    let (code, out, err) = rollback(&config, &["unlock"]);
    assert_eq!(code, 4, "refused as locked: {out}{err}");
    assert!(
        err.contains(other) && err.contains(&me.to_string()) && err.contains("unlock --force"),
        "names the holder and the way out: {err}"
    );
    assert!(lock.exists(), "plain unlock left the lock");

    // --force without a terminal and without --yes: shows the holder, asks nothing,
    // clears nothing.
    let (code, out, err) = rollback(&config, &["unlock", "--force"]);
    assert_eq!(code, 64, "needs --yes without a terminal: {out}{err}");
    assert!(err.contains("--yes") && err.contains(other), "{err}");
    assert!(lock.exists(), "nothing was cleared without confirmation");

    // --yes needs --force: clap refuses it alone.
    let (code, _, err) = rollback(&config, &["unlock", "--yes"]);
    assert_eq!(code, 64, "a usage error: {err}");
    assert!(err.contains("--force"), "{err}");
    assert!(lock.exists());

    // --force --yes: the holder is printed (pid, host, since, rollback) with what must be
    // checked by hand, and the lock is cleared.
    let (code, out, err) = rollback(&config, &["unlock", "--force", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    for part in [
        &me.to_string(),
        other,
        "rb-20261126T101500.123456Z-0",
        "since",
        "12m ago",
        "Check by hand",
        "cleared the lock",
    ] {
        assert!(out.contains(part), "`{part}` in:\n{out}");
    }
    assert!(!lock.exists(), "the lock is gone");
    let (code, out, err) = rollback(&config, &["unlock"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("the lock is free"), "{out}");

    // Held by a live process on this host: refused too (its process runs), and --force
    // warns that it runs. With --json the result is one JSON line naming the holder.
    let host = rollback_core::sys::host_name();
    hold_lock(&state, me, &host, "rb-20261126T111500.123456Z-0", "token-here");
    let (code, out, err) = rollback(&config, &["unlock"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.contains("running on this host"), "{err}");
    assert!(lock.exists());
    let (code, out, err) = rollback(&config, &["--json", "unlock", "--force", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("is running on this host right now"), "{err}");
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(line["event"], "unlock", "{line}");
    assert_eq!(line["forced"], true, "{line}");
    assert_eq!(line["cleared"]["pid"], me, "{line}");
    assert_eq!(line["cleared"]["host"], host.as_str(), "{line}");
    assert!(!lock.exists());
}
