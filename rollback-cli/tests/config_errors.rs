//! The messages of config errors, as an operator reads them: snapshot tests (`insta`).
//! Review a changed message with `INSTA_UPDATE=always cargo test -p rollback-cli --test
//! config_errors` and `git diff rollback-cli/tests/snapshots`.

use rollback_cli::config::{self, ConfigError};
use std::path::Path;

/// The minimal valid file every case starts from.
const BASE: &str = r#"app = "web"
state_dir = "/srv/web/rollback"

[process]
manager = "pm2"
"#;

/// The message for `text`, read as `/etc/rollback/rollback.toml`.
fn message(text: &str) -> String {
    match config::parse(text, Path::new("/etc/rollback/rollback.toml")) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_base_file_is_valid() {
    let c = config::parse(BASE, Path::new("/etc/rollback/rollback.toml")).unwrap();
    assert_eq!(c.app, "web");
}

#[test]
fn unknown_key_at_the_top_level() {
    insta::assert_snapshot!(message(&format!("statedir = \"/srv/web/rollback\"\n{BASE}")));
}

#[test]
fn unknown_key_in_a_table() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[database]\nurl_env = \"DATABASE_URL\"\nsnapshot_dir = \"/srv/web/snapshots\"\n"
    )));
}

#[test]
fn unknown_key_in_settings() {
    insta::assert_snapshot!(message(&format!("{BASE}\n[settings]\nhealth_timout = \"90s\"\n")));
}

#[test]
fn unknown_step_in_settings_timeouts() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[settings]\ntimeouts = {{ prepar = \"30m\" }}\n"
    )));
}

#[test]
fn wrong_type() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[database]\nurl_env = \"DATABASE_URL\"\nsnapshots_dir = \"/srv/web/snapshots\"\njobs = \"four\"\n"
    )));
}

#[test]
fn missing_required_key_at_the_top_level() {
    insta::assert_snapshot!(message("app = \"web\"\n\n[process]\nmanager = \"pm2\"\n"));
}

#[test]
fn missing_required_key_in_a_table() {
    insta::assert_snapshot!(message(
        "app = \"web\"\nstate_dir = \"/srv/web/rollback\"\n\n[process]\napp = \"web-api\"\n"
    ));
}

#[test]
fn missing_required_table() {
    insta::assert_snapshot!(message("app = \"web\"\nstate_dir = \"/srv/web/rollback\"\n"));
}

#[test]
fn bad_duration() {
    insta::assert_snapshot!(message(&format!("{BASE}state_timeout = \"30 secs please\"\n")));
}

#[test]
fn bad_duration_in_settings() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[settings]\nhealth_timeout = \"2 fortnights\"\n"
    )));
}

#[test]
fn a_password_key_is_refused_without_showing_it() {
    let text = format!(
        "{BASE}\n[database]\npassword = \"hunter2-canary\"\nsnapshots_dir = \"/srv/web/snapshots\"\n"
    );
    let m = message(&text);
    assert!(!m.contains("hunter2-canary"), "{m}");
    insta::assert_snapshot!(m);
}

#[test]
fn a_url_key_is_refused_without_showing_it() {
    let text = format!(
        "{BASE}\n[database]\nurl = \"postgres://app:hunter2-canary@db/shop\"\nsnapshots_dir = \"/srv/web/snapshots\"\n"
    );
    let m = message(&text);
    assert!(!m.contains("hunter2-canary"), "{m}");
    insta::assert_snapshot!(m);
}

#[test]
fn a_connection_string_in_url_env_is_refused_without_showing_it() {
    let text = format!(
        "{BASE}\n[database]\nurl_env = \"postgres://app:hunter2-canary@db/shop\"\nsnapshots_dir = \"/srv/web/snapshots\"\n"
    );
    let m = message(&text);
    assert!(!m.contains("hunter2-canary"), "{m}");
    insta::assert_snapshot!(m);
}

#[test]
fn unknown_process_manager() {
    insta::assert_snapshot!(message(
        "app = \"web\"\nstate_dir = \"/srv/web/rollback\"\n\n[process]\nmanager = \"systemd\"\n"
    ));
}

#[test]
fn releases_layout_without_releases_dir() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[code]\nrepo = \"/srv/web/repo\"\nlayout = \"releases\"\ncurrent_link = \"/srv/web/current\"\n"
    )));
}

#[test]
fn sql_health_without_a_database() {
    insta::assert_snapshot!(message(&format!("{BASE}\n[[health]]\nsql = true\n")));
}

#[test]
fn a_shell_string_as_a_build_step() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[code]\nrepo = \"/srv/web/repo\"\nlayout = \"in-place\"\nbuild = [\"npm ci && npm run build\"]\n"
    )));
}

#[test]
fn unknown_key_in_a_watchdog_rule() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[[watchdog.rules]]\nname = \"cpu\"\ncondition = {{ cpu_above = 95.0 }}\nwindow = \"15m\"\nsignal = \"performance_degradation\"\nwindw = \"1m\"\n"
    )));
}

#[test]
fn invalid_toml() {
    insta::assert_snapshot!(message(&format!("{BASE}\n[database\n")));
}

#[test]
fn an_unreadable_file_names_it_and_what_to_do() {
    let e = config::load(Path::new("/nonexistent/rollback.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    let m = e.to_string();
    assert!(
        m.contains("/nonexistent/rollback.toml") && m.contains("rollback init"),
        "{m}"
    );
}

#[test]
fn errors_name_line_and_column() {
    let e = config::parse(
        &format!("{BASE}\n[[health]]\nurl = \"http://127.0.0.1:3000/health\"\ntimeout = \"soon\"\n"),
        Path::new("/etc/rollback/rollback.toml"),
    )
    .unwrap_err();
    let at = e.location().expect("a location");
    assert_eq!((at.line, at.column), (9, 11), "{e}");
}
