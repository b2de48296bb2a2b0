//! A canary secret in the database URL and in the config never shows up in a report, a
//! log line (captured tracing output) or an error's text.

use rollback_core::{ErrorKind, RollbackError, RollbackRequest, RollbackTarget, Scenario, Scope};
use rollback_testkit::{Fault, Method, Rig, When, CANARY_CONFIG_SECRET, CANARY_DB_PASSWORD};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(what: &str, text: &str) {
    for canary in [CANARY_DB_PASSWORD, CANARY_CONFIG_SECRET] {
        assert!(!text.contains(canary), "{what} leaks a secret:\n{text}");
    }
}

#[tokio::test]
async fn canary_secrets_never_appear_in_reports_logs_or_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut err_text = |name: &str, e: &RollbackError| {
        outputs.push((name.into(), format!("{e} {e:?}")));
        if let Some(r) = e.report() {
            outputs.push((
                format!("{name} report"),
                format!("{}{}{r:?}", r.to_json(), r.to_markdown()),
            ));
        }
    };

    // A successful rollback of everything.
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    let plan = o
        .dry_run(&RollbackRequest::for_scenario(
            Scenario::ConfigurationError,
            RollbackTarget::LastGood,
            "x",
        ))
        .await
        .unwrap();
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap();
    let investigation = o
        .handle_scenario(Scenario::PerformanceDegradation, RollbackTarget::LastGood, "slow")
        .await
        .unwrap();

    // A failed one (recovered), and a pre-flight failure.
    rig.deploy_bad_release(Scope::ALL);
    rig.world.inject(
        Method::ConfigRestore,
        When::Nth(1),
        Fault::Fail(ErrorKind::Failed),
    );
    err_text(
        "step failure",
        &o.rollback(RollbackTarget::LastGood, "again", Scope::ALL)
            .await
            .unwrap_err(),
    );
    rig.world
        .lock()
        .config
        .versions
        .values_mut()
        .for_each(|v| v.malformed_line = Some(1));
    err_text(
        "pre-flight",
        &o.rollback(RollbackTarget::LastGood, "again", Scope::ALL)
            .await
            .unwrap_err(),
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("rollback started"),
        "the log capture works:\n{logs}"
    );
    outputs.push(("logs".into(), logs));
    outputs.push((
        "report".into(),
        format!("{}{}{report:?}", report.to_json(), report.to_markdown()),
    ));
    outputs.push(("investigation".into(), investigation.to_markdown()));
    outputs.push(("plan".into(), format!("{plan:?}")));
    outputs.push(("fakes' Debug".into(), format!("{rig:?}")));
    outputs.push(("journals".into(), format!("{:?}", o.unfinished().await.unwrap())));
    for (what, text) in &outputs {
        assert_clean(what, text);
    }
}
