//! Two deploy boxes with `[state] store = "postgres"` share one lock, one set of
//! checkpoints and one journal: what one takes, the other lists. The state store refuses the
//! app's own database (a rollback renames it). Real PostgreSQL, real `rollback` processes.

use rollback_testkit::TempPostgres;
use std::path::Path;
use std::process::Command;

fn config(dir: &Path, box_name: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{box_name}.toml"));
    let text = format!(
        r#"app = "web"
state_dir = "{state}"

[state]
store = "postgres"
url_env = "ROLLBACK_STATE_URL"

[process]
manager = "pm2"
"#,
        state = dir.join(format!("{box_name}-state")).display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn rollback(config: &Path, state_url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rollback"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("ROLLBACK_STATE_URL", state_url)
        .env_remove("ROLLBACK_CONFIG")
        .output()
        .expect("run rollback");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn two_deploy_boxes_share_checkpoints_through_postgres() {
    let pg = match TempPostgres::start("two_deploy_boxes_share_checkpoints_through_postgres") {
        Ok(Some(pg)) => pg,
        Ok(None) => return,
        Err(e) => panic!("{e}"),
    };
    pg.psql("postgres", "CREATE DATABASE rollback_state").unwrap();
    let url = pg.url("rollback_state").expose().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (config(dir.path(), "box-a"), config(dir.path(), "box-b"));

    let (code, out, err) = rollback(&a, &url, &["checkpoint", "--label", "taken on box A"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = rollback(&b, &url, &["list", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("taken on box A"),
        "box B sees box A's checkpoint: {out}"
    );
    let (code, out, err) = rollback(&b, &url, &["status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("lock: free"), "{out}");
    assert!(
        !format!("{out}{err}").contains(&url),
        "the connection string never shows"
    );
    assert!(
        !dir.path().join("box-a-state").join("checkpoints").exists(),
        "nothing went to the state directory"
    );
}
