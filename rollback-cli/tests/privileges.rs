//! A missing database privilege, as an operator meets it (issue 26): `rollback check` and
//! `rollback checkpoint` refuse (exit 3, never "internal") naming the statement that grants
//! it, and nothing is created; with the grant both pass. Against a real PostgreSQL, the tool
//! connecting as the database's owner with CREATEDB (not a superuser), a table under FORCE
//! ROW LEVEL SECURITY.

use rollback_testkit::temp_pm2::TempPm2;
use rollback_testkit::TempPostgres;
use std::path::Path;
use std::process::{Command, Stdio};

const DB_ENV: &str = "ROLLBACK_PRIVILEGES_DATABASE_URL";

fn rollback(config: &Path, url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rollback"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env(DB_ENV, url)
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

#[test]
fn a_missing_privilege_is_refused_by_check_and_checkpoint_naming_the_grant() {
    let test = "rollback-cli missing privilege";
    let pg = match TempPostgres::start(test) {
        Ok(Some(pg)) => pg,
        Ok(None) => return,
        Err(e) => panic!("{test}: {e}"),
    };
    let Some(pm2) = TempPm2::new(test) else { return };
    pg.psql(
        "postgres",
        &format!(
            "CREATE ROLE shop_owner LOGIN CREATEDB PASSWORD '{0}'; CREATE ROLE reporting LOGIN PASSWORD '{0}'",
            pg.password().expose()
        ),
    )
    .unwrap();
    pg.psql("postgres", "CREATE DATABASE shop OWNER shop_owner")
        .unwrap();
    pg.psql(
        "shop",
        "SET ROLE shop_owner; CREATE TABLE notes (id int, who text); INSERT INTO notes VALUES (1, 'a'); \
         ALTER TABLE notes ENABLE ROW LEVEL SECURITY; ALTER TABLE notes FORCE ROW LEVEL SECURITY; \
         CREATE POLICY mine ON notes USING (who = current_user);",
    )
    .unwrap();
    let url = pg
        .url("shop")
        .expose()
        .replacen(&format!("//{}:", pg.superuser()), "//shop_owner:", 1);
    assert!(url.contains("shop_owner"), "the URL names the role");

    let tmp = tempfile::tempdir().unwrap();
    let snapshots = tmp.path().join("snapshots");
    let config = tmp.path().join("rollback.toml");
    std::fs::write(
        &config,
        format!(
            r#"app = "web"
state_dir = "{state}"

[database]
url_env = "{DB_ENV}"
snapshots_dir = "{snapshots}"
bindir = "{bindir}"

[process]
manager = "pm2"
app = "web"
pm2_home = "{home}"
binary = "{pm2}"
"#,
            state = tmp.path().join("state").display(),
            snapshots = snapshots.display(),
            bindir = pg.bindir().display(),
            home = pm2.home().display(),
            pm2 = pm2.pm2().display(),
        ),
    )
    .unwrap();

    let (code, out, err) = rollback(&config, &url, &["check"]);
    println!("--- rollback check (exit {code}) ---\n{out}{err}");
    assert_eq!(code, 3, "check refuses:\n{out}\n{err}");
    assert!(err.contains(r#"ALTER ROLE "shop_owner" BYPASSRLS;"#), "{err}");
    assert!(err.contains("notes"), "{err}");

    let (code, out, err) = rollback(&config, &url, &["checkpoint", "--label", "v1"]);
    println!("--- rollback checkpoint (exit {code}) ---\n{out}{err}");
    assert_eq!(code, 3, "a refusal, never internal:\n{out}\n{err}");
    assert!(err.contains(r#"ALTER ROLE "shop_owner" BYPASSRLS;"#), "{err}");
    let dumped = std::fs::read_dir(&snapshots)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(dumped, 0, "no snapshot was taken");

    pg.psql("postgres", "ALTER ROLE shop_owner BYPASSRLS").unwrap();
    let (code, out, err) = rollback(&config, &url, &["checkpoint", "--label", "v1"]);
    println!("--- rollback checkpoint with BYPASSRLS (exit {code}) ---\n{out}{err}");
    assert_eq!(code, 0, "with the grant:\n{out}\n{err}");
    let checkpoint = out
        .split_whitespace()
        .find(|w| w.starts_with("cp-"))
        .expect("the checkpoint's id")
        .to_owned();

    // A reporting session the role may not end: the run is refused in pre-flight, before
    // anything is stopped or renamed, naming the grant.
    pg.psql("shop", "GRANT SELECT ON notes TO reporting").unwrap();
    let mut session = Command::new(pg.bindir().join("psql"))
        .args(["-X", "-q", "-h"])
        .arg(pg.socket_dir())
        .args([
            "-p",
            &pg.port().to_string(),
            "-U",
            "reporting",
            "-d",
            "shop",
            "-c",
            "SELECT pg_sleep(120)",
        ])
        .env("PGPASSWORD", pg.password().expose())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("a reporting session");
    let connected = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'reporting'",
        )
        .is_ok_and(|n| n.trim() == "1")
    });
    assert!(connected, "the reporting session is there");
    let (code, out, err) = rollback(
        &config,
        &url,
        &[
            "run",
            "--to",
            &checkpoint,
            "--scope",
            "db",
            "--yes",
            "--reason",
            "v2",
        ],
    );
    println!("--- rollback run with a session it may not end (exit {code}) ---\n{out}{err}");
    assert_eq!(code, 3, "refused in pre-flight:\n{out}\n{err}");
    assert!(
        err.contains(r#"GRANT pg_signal_backend TO "shop_owner";"#),
        "{err}"
    );
    assert!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop%'"
        )
        .unwrap()
        .trim()
            == "1",
        "nothing renamed or staged"
    );
    let _ = session.kill();
    let _ = session.wait();
}
