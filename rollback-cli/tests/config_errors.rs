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

#[test]
fn a_routing_key_is_refused_without_showing_it() {
    let text = format!(
        "{BASE}\n[[notify]]\nkind = \"pagerduty\"\nrouting_key = \"c0ffee00canary00000000000000beef\"\n"
    );
    let m = message(&text);
    assert!(!m.contains("canary"), "{m}");
    insta::assert_snapshot!(m);
}

#[test]
fn a_routing_key_in_routing_key_env_is_refused_without_showing_it() {
    let text = format!(
        "{BASE}\n[[notify]]\nkind = \"pagerduty\"\nrouting_key_env = \"c0ffee0012345678900000000000beef\"\n"
    );
    let m = message(&text);
    assert!(!m.contains("c0ffee"), "{m}");
    insta::assert_snapshot!(m);
}

#[test]
fn a_secret_in_an_inline_table_is_not_quoted_with_another_error() {
    // The error is the timeout's; the line quoted holds the routing key and a URL.
    let text = format!(
        "notify = [{{ kind = \"pagerduty\", routing_key_env = \"PD_KEY\", timeout = \"soon\", routing_key = \"c0ffee-canary\" }}, {{ kind = \"webhook\", \"url\" = 'https://hooks.example/canary-token' }}]\n{BASE}"
    );
    let m = message(&text);
    assert!(!m.contains("canary"), "{m}");
    assert!(m.contains("timeout") && m.contains("not a duration"), "{m}");
    insta::assert_snapshot!(m);
}

#[test]
fn unknown_key_in_notify() {
    let m = message(&format!(
        "{BASE}\n[[notify]]\nkind = \"slack\"\nurl_env = \"SLACK_WEBHOOK_URL\"\nchannel = \"#ops\"\n"
    ));
    assert!(
        !m.contains(" url,") && !m.contains("routing_key,"),
        "refused keys are not offered: {m}"
    );
    insta::assert_snapshot!(m);
}

#[test]
fn unknown_notification_kind() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[[notify]]\nkind = \"opsgenie\"\nurl_env = \"OPSGENIE_URL\"\n"
    )));
}

#[test]
fn pagerduty_without_routing_key_env() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[[notify]]\nkind = \"pagerduty\"\nurl_env = \"PAGERDUTY_EVENTS_URL\"\n"
    )));
}

#[test]
fn a_routing_key_env_with_a_slack_webhook() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[[notify]]\nkind = \"slack\"\nurl_env = \"SLACK_WEBHOOK_URL\"\nrouting_key_env = \"PAGERDUTY_ROUTING_KEY\"\n"
    )));
}

#[test]
fn a_ca_file_on_an_http_probe() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[[health]]\nurl = \"http://127.0.0.1:3000/api/health\"\nca_file = \"/etc/ssl/company-ca.pem\"\n"
    )));
}

#[test]
fn an_emergency_contact_without_a_way_to_reach_them() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[watchdog.plan]\ncontacts = [\n  {{ role = \"DevOps lead\", name = \"Bo Berg\", reach = \"\" }},\n]\n"
    )));
}

#[test]
fn unknown_key_in_an_emergency_contact() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[watchdog.plan]\ncontacts = [{{ role = \"DevOps lead\", name = \"Bo Berg\", phone = \"+1 555 0101\" }}]\n"
    )));
}

#[test]
fn notifiers_and_contacts_resolve() {
    use rollback_cli::config::{HealthConfig, NotifyConfig};
    use std::time::Duration;
    let c = config::parse(
        &format!(
            "{BASE}\n[[health]]\nurl = \"https://web.internal/health\"\nca_file = \"certs/ca.pem\"\n\n\
             [watchdog.plan]\ncontacts = [{{ role = \"on-call engineer\", name = \"Ana\", reach = \"+1 555 0100\" }}]\n\n\
             [[notify]]\nkind = \"pagerduty\"\nrouting_key_env = \"PAGERDUTY_ROUTING_KEY\"\nca_file = \"certs/ca.pem\"\n\n\
             [[notify]]\nkind = \"slack\"\nurl_env = \"SLACK_WEBHOOK_URL\"\ntimeout = \"3s\"\n"
        ),
        Path::new("/etc/rollback/rollback.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ca = Path::new("/etc/rollback/certs/ca.pem").to_path_buf();
    assert!(matches!(&c.health[0], HealthConfig::Http { ca_file: Some(f), .. } if *f == ca));
    assert_eq!(
        c.notify[0],
        NotifyConfig::PagerDuty {
            routing_key_env: "PAGERDUTY_ROUTING_KEY".into(),
            url_env: None,
            timeout: Duration::from_secs(10),
            ca_file: Some(ca),
        }
    );
    assert_eq!(
        c.notify[1],
        NotifyConfig::Slack {
            url_env: "SLACK_WEBHOOK_URL".into(),
            timeout: Duration::from_secs(3),
            ca_file: None,
        }
    );
    // Only the contacts given: the runbook's notices and escalation path stay.
    let runbook = rollback_core::CommunicationPlan::runbook();
    assert_eq!(c.watchdog.plan.notices, runbook.notices);
    assert_eq!(c.watchdog.plan.escalation, runbook.escalation);
    assert_eq!(c.watchdog.plan.contacts[0].name, "Ana");
    assert_eq!(
        c.watchdog
            .plan
            .escalation_line(Duration::ZERO, rollback_core::Severity::High)
            .as_deref(),
        Some("now: on-call engineer (Ana, +1 555 0100); next at +30 min: DevOps lead")
    );
}

#[test]
fn an_emergency_contact_without_a_name() {
    insta::assert_snapshot!(message(&format!(
        "{BASE}\n[watchdog.plan]\ncontacts = [{{ role = \"DevOps lead\", reach = \"+1 555 0101\" }}]\n"
    )));
}

/// A deploy box's file for two hosts: no [process] here, each host's file has its own.
const FLEET: &str = r#"app = "web"
state_dir = "/srv/web/rollback"

[[hosts]]
name = "web-1"
ssh = "deploy@web-1"
config = "/srv/web/rollback.toml"

[[hosts]]
name = "web-2"
ssh = "deploy@web-2"
port = 2222
host_key_policy = "accept_new"
config = "/srv/web/rollback.toml"
command = ["/opt/rollback/bin/rollback", "agent", "--stdio", "--config", "/srv/web/rollback.toml"]

[fleet]
parallelism = 1
health_timeout = "90s"
"#;

#[test]
fn a_fleet_file_without_process_is_valid() {
    let c = config::parse(FLEET, Path::new("/etc/rollback/rollback.toml")).unwrap();
    assert_eq!(c.hosts.len(), 2);
    assert_eq!(c.hosts[1].port, Some(2222));
    assert_eq!(c.hosts[1].host_key_policy, config::HostKeyPolicy::AcceptNew);
    assert_eq!(c.fleet.parallelism, 1);
    assert_eq!(c.fleet.health_timeout, std::time::Duration::from_secs(90));
    assert_eq!(c.process.app, "web");
    assert!(c.code.is_none() && c.env_file.is_none());
}

#[test]
fn a_host_without_ssh() {
    insta::assert_snapshot!(message(
        "app = \"web\"\nstate_dir = \"/srv/web/rollback\"\n\n[[hosts]]\nname = \"web-1\"\nconfig = \"/srv/web/rollback.toml\"\n"
    ));
}

#[test]
fn two_hosts_with_the_same_name() {
    insta::assert_snapshot!(message(&FLEET.replace("name = \"web-2\"", "name = \"web-1\"")));
}

#[test]
fn hosts_together_with_process() {
    insta::assert_snapshot!(message(&format!("{FLEET}\n[process]\nmanager = \"pm2\"\n")));
}

#[test]
fn hosts_together_with_code() {
    let m = message(&format!(
        "{FLEET}\n[code]\nrepo = \"/srv/web/repo\"\nlayout = \"in-place\"\n"
    ));
    assert!(m.contains("[code] together with [[hosts]]"), "{m}");
}

#[test]
fn a_relative_host_config_and_a_zero_parallelism() {
    let m = message(&FLEET.replacen(
        "config = \"/srv/web/rollback.toml\"",
        "config = \"rollback.toml\"",
        1,
    ));
    assert!(
        m.contains("`config` of host `web-1` is not an absolute path"),
        "{m}"
    );
    let m = message(&FLEET.replace("parallelism = 1", "parallelism = 0"));
    assert!(m.contains("`parallelism` is 0"), "{m}");
}

#[test]
fn fleet_without_hosts() {
    let m = message(&format!("{BASE}\n[fleet]\nparallelism = 2\n"));
    assert!(m.contains("[fleet] without [[hosts]]"), "{m}");
}

#[test]
fn a_postgres_state_store_without_url_env() {
    insta::assert_snapshot!(message(&format!("{BASE}\n[state]\nstore = \"postgres\"\n")));
}

#[test]
fn an_unknown_state_store() {
    insta::assert_snapshot!(message(&format!("{BASE}\n[state]\nstore = \"redis\"\n")));
}
