//! "No critical errors in logs" against the real pm2 (issue 18, point 3): `logs_since` reads
//! pm2's own log files for what the app wrote after its start, redacted, and a rollback over
//! the real pm2 reports the uncaught exception its release printed after the start. Each
//! test has its own `PM2_HOME` (killed on drop); skipped loudly without pm2 or node.

use rollback_core::{
    AppName, LogScan, Orchestrator, Outcome, ProcessManager, RollbackTarget, Scope, Settings,
};
use rollback_pm2::{AppSpec, Pm2ProcessManager, ScriptSpec};
use rollback_testkit::temp_pm2::{free_port, TempPm2};
use rollback_testkit::Rig;
use std::sync::Arc;
use std::time::Duration;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DB_PASSWORD: &str = "hunter2-log-canary";
const API_TOKEN: &str = "tok-9f8e7d6c5b4a";

/// The app: counts its boots in `boots` (in its cwd). Its first boot (the release before the
/// rollback) prints a FATAL line; every later boot prints an uncaught exception 200 ms after
/// the start, with a database URL and a token in it; with `CRASH_ONCE=1` its second boot
/// also throws for real (pm2 catches it, logs its stack, notes the exit in pm2.log and
/// restarts the app).
const APP_JS: &str = r#"const fs = require('fs');
const http = require('http');
let boots = 0;
try { boots = Number(fs.readFileSync('boots', 'utf8')) || 0; } catch (e) {}
boots += 1;
fs.writeFileSync('boots', String(boots));
http.createServer((req, res) => { res.writeHead(200); res.end('ok'); })
  .listen(Number(process.env.PORT), '127.0.0.1');
console.log(`boot ${boots}: listening`);
if (boots === 1) {
  console.error('FATAL: the release before the rollback cannot read its cache');
} else {
  setTimeout(() => {
    console.error(`Uncaught exception: Error: lost postgres://app:${process.env.DB_PASSWORD}@db:5432/app (token ${process.env.API_TOKEN})`);
  }, 200);
  if (boots === 2 && process.env.CRASH_ONCE === '1') {
    setTimeout(() => { throw new Error('boom after the start'); }, 400);
  }
}
"#;

fn manager(pm2: &TempPm2, crash_once: bool) -> Pm2ProcessManager {
    let dir = pm2.home().join("apps");
    let script = dir.join("web.js");
    std::fs::write(&script, APP_JS).expect("write the app");
    Pm2ProcessManager::builder()
        .binary(pm2.pm2())
        .home(pm2.home())
        .stability_window(Duration::from_millis(1000))
        .state_timeout(Duration::from_secs(20))
        .app(
            "web",
            AppSpec::Script(
                ScriptSpec::new(&script)
                    .cwd(&dir)
                    .env("PORT", free_port().to_string())
                    .env("DB_PASSWORD", DB_PASSWORD)
                    .env("API_TOKEN", API_TOKEN)
                    .env("CRASH_ONCE", if crash_once { "1" } else { "0" }),
            ),
        )
        .build()
        .expect("manager")
}

#[tokio::test]
async fn logs_since_reads_pm2s_files_for_what_the_app_wrote_after_the_start_redacted() {
    let _serial = SERIAL.lock().await;
    let Some(pm2) = TempPm2::new("logs_since_reads_pm2s_files") else {
        return;
    };
    let pm = manager(&pm2, true);
    let web = AppName::new("web");

    pm.start(&web).await.expect("first start");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // As in a rollback: pre-flight reads the status, then the stop, then the start.
    pm.status(&web).await.expect("status");
    pm.stop(&web).await.expect("stop");
    let since = chrono::Utc::now();
    pm.start(&web).await.expect("start after the rollback");
    // Boot 2 printed, threw and was restarted; boot 3 prints its line 200 ms after its start.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let logs = pm
        .logs_since(&web, since)
        .await
        .expect("logs_since")
        .expect("pm2 can read its logs");
    let shown = format!("{logs:?}");
    assert!(
        !logs.partial,
        "sizes were noted before the start: {:?}",
        logs.notes
    );
    for secret in [DB_PASSWORD, API_TOKEN] {
        assert!(!shown.contains(secret), "a secret in the log lines: {shown}");
    }
    assert!(
        !shown.contains("FATAL: the release before the rollback"),
        "a line written before the start: {shown}"
    );
    let uncaught = "Uncaught exception: Error: lost postgres://app:[redacted]@db:5432/app (token [redacted])";
    let texts: Vec<&str> = logs.lines.iter().map(|l| l.text.as_str()).collect();
    assert!(
        texts.iter().filter(|t| **t == uncaught).count() >= 2,
        "boots 2 and 3 both printed it: {texts:#?}"
    );
    assert!(
        logs.lines
            .iter()
            .any(|l| l.text == uncaught && l.source.starts_with("stderr (web-error")),
        "{:?}",
        logs.lines
    );
    assert!(texts.contains(&"boot 2: listening") && texts.contains(&"boot 3: listening"));
    assert!(!texts.contains(&"boot 1: listening"));
    // pm2 catches the thrown exception itself: the app's error log has only its stack,
    // and pm2's own log notes the exit, which comes back from source pm2.log.
    assert!(texts.contains(&"Error: boom after the start"), "{texts:#?}");
    let crash: Vec<&rollback_core::LogLine> = logs.lines.iter().filter(|l| l.source == "pm2.log").collect();
    assert_eq!(
        crash.len(),
        1,
        "one crash, and not the stop's exit with code 0: {crash:#?}"
    );
    assert!(
        crash[0].text.contains("App [web:0] exited with code [1]"),
        "{crash:?}"
    );
    // The default patterns catch both the logged exception and pm2's note of the crash.
    let scan = LogScan::default();
    let matched: Vec<&str> = texts.iter().filter_map(|t| scan.matches(t)).collect();
    assert!(matched.contains(&"Uncaught"), "{matched:?}");
    assert!(matched.contains(&"exited with code ["), "{texts:#?}");

    // An unknown app is NotFound, and a daemon that is down is Unavailable (never restarted).
    let e = pm.logs_since(&AppName::new("nope"), since).await.unwrap_err();
    assert_eq!(e.kind(), rollback_core::ErrorKind::NotFound, "{e}");
    pm2.kill();
    let e = pm.logs_since(&web, since).await.unwrap_err();
    assert_eq!(e.kind(), rollback_core::ErrorKind::Unavailable, "{e}");
}

#[tokio::test]
async fn a_rollback_over_the_real_pm2_reports_the_uncaught_exception_printed_after_the_start() {
    let _serial = SERIAL.lock().await;
    let Some(pm2) = TempPm2::new("a_rollback_over_the_real_pm2_reports_the_uncaught_exception") else {
        return;
    };
    let pm = manager(&pm2, false);
    let web = AppName::new("web");
    pm.start(&web)
        .await
        .expect("the release before the rollback runs");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The code is a fake; the process manager, its log files and the app are real.
    let rig = Rig::new();
    let settings = Settings::new()
        .health_timeout(Duration::from_secs(30))
        .health_interval(Duration::from_millis(50))
        .observe_after_healthy(Duration::from_millis(800));
    let o = Orchestrator::builder("web")
        .code(Arc::new(rig.code.clone()))
        .process(Arc::new(pm.clone()))
        .state(Arc::new(rig.state.clone()))
        .settings(settings)
        .build()
        .expect("orchestrator");
    let cp = o.checkpoint("before v2").await.expect("checkpoint");
    rig.deploy_release("v2: broken", "tree-v2", false);

    let report = o
        .rollback(RollbackTarget::Checkpoint(cp.id), "v2 broken", Scope::CODE)
        .await
        .expect("rollback");
    assert_eq!(report.outcome, Outcome::Succeeded, "reported only, by default");
    let lines: Vec<&str> = report.log_matches.iter().map(|m| m.line.as_str()).collect();
    assert_eq!(
        lines,
        ["Uncaught exception: Error: lost postgres://app:[redacted]@db:5432/app (token [redacted])"],
        "{:#?}",
        report.verification
    );
    let check = report
        .verification
        .iter()
        .find(|c| c.name == "no critical errors in the app's log since the start")
        .expect("the log check");
    assert!(
        !check.passed && check.detail.contains("`Uncaught` ×1") && check.detail.contains("reported only"),
        "{}",
        check.detail
    );
    let everything = format!("{}{}", report.to_json(), report.to_markdown());
    assert!(!everything.contains("FATAL: the release before"), "{everything}");
    for secret in [DB_PASSWORD, API_TOKEN] {
        assert!(!everything.contains(secret), "the report leaks a secret");
    }
}
