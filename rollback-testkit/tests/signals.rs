//! Post-verify's checks beyond health and integrity (issue 18, points 3 and 4) and the
//! database's own statistics in an investigation (point 5), against the fakes: critical
//! lines in the app's log since the start, error rate and latency against thresholds and
//! the checkpoint's baseline, each reported, and failing post-verify only when asked to.

use chrono::Utc;
use rollback_core::{
    AppName, Checkpoint, ErrorKind, Finding, MetricsSample, Orchestrator, Outcome, RollbackError,
    RollbackReport, RollbackRequest, RollbackTarget, Scenario, Scope, Settings, SignalPolicy, Step,
};
use rollback_testkit::{Fault, Method, Rig, When, APP, CANARY_CONFIG_SECRET, CANARY_DB_PASSWORD};
use std::time::Duration;

const LOG_CHECK: &str = "no critical errors in the app's log since the start";

fn settings(edit: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Rig::settings();
    edit(&mut s);
    s
}

/// A rig at v1 with a good checkpoint, v2 deployed with broken code, and the lines the app
/// writes to its log at each start from now on.
async fn deployed(settings: Settings, start_lines: &[&str]) -> (Rig, Orchestrator) {
    let rig = Rig::new();
    let o = rig.orchestrator().settings(settings).build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::CODE);
    let mut s = rig.world.lock();
    // Written by v2 before the rollback: never part of "since the start".
    s.app_logs.insert(
        AppName::new(APP),
        vec![(Utc::now(), "FATAL: v2 cannot read its cache".into())],
    );
    s.start_logs.insert(
        AppName::new(APP),
        start_lines.iter().map(|l| (*l).to_owned()).collect(),
    );
    drop(s);
    (rig, o)
}

fn check<'a>(report: &'a RollbackReport, name: &str) -> &'a rollback_core::CheckResult {
    report
        .verification
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {:#?}", report.verification))
}

fn failed_report(e: RollbackError) -> RollbackReport {
    match e {
        RollbackError::StepFailed { step, report, .. } => {
            assert_eq!(step, Step::PostVerify);
            *report
        }
        other => panic!("expected a post-verify failure, got {other}"),
    }
}

#[tokio::test]
async fn critical_log_lines_since_the_start_are_reported_redacted_and_only_reported_by_default() {
    let secret_line = format!(
        "Uncaught TypeError: cannot read 'id' (while connecting to postgres://app:{CANARY_DB_PASSWORD}@db/app)"
    );
    let env_line = format!("FATAL: config API_KEY={CANARY_CONFIG_SECRET} rejected");
    let (rig, o) = deployed(
        Rig::settings(),
        &[
            &secret_line,
            "listening on :3000",
            &env_line,
            "GET /api/health 200",
        ],
    )
    .await;
    let plan = o
        .dry_run(&RollbackRequest::new(
            RollbackTarget::LastGood,
            "v2 broken",
            Scope::CODE,
        ))
        .await
        .unwrap();
    let post_verify = plan.steps.iter().find(|s| s.step == Step::PostVerify).unwrap();
    assert!(
        post_verify
            .actions
            .iter()
            .any(|a| a.contains("scan the app's log since the start")),
        "{post_verify:?}"
    );

    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Succeeded,
        "report only: the rollback stands"
    );
    assert_eq!(rig.world.count(Method::ProcessLogs), 1);

    let logs = check(&report, LOG_CHECK);
    assert!(!logs.passed);
    assert!(
        logs.detail.contains("2 of the 4 line(s)")
            && logs.detail.contains("`Uncaught` ×1")
            && logs.detail.contains("`FATAL` ×1")
            && logs.detail.contains("reported only"),
        "{}",
        logs.detail
    );
    let shown: Vec<(&str, &str)> = report
        .log_matches
        .iter()
        .map(|m| (m.pattern.as_str(), m.line.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "Uncaught",
                "Uncaught TypeError: cannot read 'id' (while connecting to postgres://app:[redacted]@db/app)"
            ),
            ("FATAL", "FATAL: config API_KEY=[redacted] rejected"),
        ],
        "only what the release wrote after the start, redacted"
    );
    let everything = format!("{}{}{report:?}", report.to_json(), report.to_markdown());
    for canary in [CANARY_DB_PASSWORD, CANARY_CONFIG_SECRET] {
        assert!(!everything.contains(canary), "the report leaks {canary}");
    }
    assert!(
        !everything.contains("v2 cannot read its cache"),
        "a line from before the start"
    );
    let md = report.to_markdown();
    assert!(
        md.contains("### Critical lines in the app's log since the start")
            && md.contains("❌ no critical errors in the app's log since the start"),
        "{md}"
    );
    assert!(
        report
            .next_actions
            .iter()
            .any(|a| a.contains("found something") && a.contains(LOG_CHECK)),
        "{:?}",
        report.next_actions
    );
    let checklist = &report
        .steps
        .iter()
        .find(|s| s.step == Step::PostVerify)
        .unwrap()
        .checklist;
    assert!(
        checklist
            .iter()
            .any(|i| !i.checked && i.text.starts_with(LOG_CHECK)),
        "{checklist:?}"
    );
}

#[tokio::test]
async fn a_clean_log_passes_and_a_match_fails_post_verify_when_the_caller_says_so() {
    let (_rig, o) = deployed(Rig::settings(), &["listening on :3000"]).await;
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap();
    let logs = check(&report, LOG_CHECK);
    assert!(
        logs.passed && logs.detail.starts_with("none of the 1 line(s)"),
        "{}",
        logs.detail
    );
    assert!(report.log_matches.is_empty());

    let strict = settings(|s| s.log_scan.on_match = SignalPolicy::Fail);
    let (rig, o) = deployed(strict, &["thread 'main' panicked at src/main.rs:3:5"]).await;
    let e = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap_err();
    let report = failed_report(e);
    assert!(
        matches!(&report.outcome, Outcome::RestoredPreRollbackState { cause, .. }
            if cause.contains("1 critical line(s) in the app's log since the start")),
        "{}",
        report.outcome
    );
    assert_eq!(report.log_matches.len(), 1);
    assert_eq!(report.log_matches[0].pattern, "panicked at");
    assert_eq!(
        rig.world.end_state().code_tree.as_deref(),
        Some("tree-v2"),
        "the failure policy put the pre-rollback release back"
    );
}

#[tokio::test]
async fn a_log_that_cannot_be_read_is_reported_as_not_checked_and_never_fails() {
    let strict = settings(|s| s.log_scan.on_match = SignalPolicy::Fail);
    let (rig, o) = deployed(strict.clone(), &["Uncaught Error: boom"]).await;
    rig.world.lock().logs_unsupported = true;
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap();
    let logs = check(&report, LOG_CHECK);
    assert!(
        !logs.passed && logs.detail == "not checked: the process manager cannot read the app's log",
        "{}",
        logs.detail
    );

    let (rig, o) = deployed(strict, &["Uncaught Error: boom"]).await;
    rig.world.inject(
        Method::ProcessLogs,
        When::Always,
        Fault::Fail(ErrorKind::Unavailable),
    );
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap();
    let logs = check(&report, LOG_CHECK);
    assert!(
        logs.detail
            .starts_with("not checked: reading the app's log failed"),
        "{}",
        logs.detail
    );
}

#[tokio::test]
async fn no_pattern_means_the_log_is_not_read() {
    let off = settings(|s| s.log_scan.patterns.clear());
    let (rig, o) = deployed(off, &["Uncaught Error: boom"]).await;
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap();
    assert_eq!(rig.world.count(Method::ProcessLogs), 0);
    assert!(report.verification.iter().all(|c| c.name != LOG_CHECK));
}

#[tokio::test]
async fn an_unhealthy_start_reports_the_log_lines_that_say_why() {
    let (rig, o) = deployed(Rig::settings(), &["Segmentation fault (core dumped)"]).await;
    // The target release is broken too (an environment problem): post-verify fails.
    rig.world.lock().code.broken_trees.insert("tree-v1".into());
    let e = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap_err();
    let report = failed_report(e);
    assert!(matches!(report.outcome, Outcome::RestoredPreRollbackState { .. }));
    assert_eq!(
        report
            .log_matches
            .iter()
            .map(|m| m.line.as_str())
            .collect::<Vec<_>>(),
        ["Segmentation fault (core dumped)"]
    );
}

/// A metrics sample with this error rate and p95 latency.
fn sample(rate: f64, p95_ms: u64) -> MetricsSample {
    MetricsSample {
        error_rate: Some(rate),
        latency_p95: Some(Duration::from_millis(p95_ms)),
        ..MetricsSample::default()
    }
}

#[tokio::test]
async fn performance_after_the_start_is_compared_with_thresholds_and_the_checkpoint_baseline() {
    let rig = Rig::new();
    rig.world.lock().metrics = sample(0.01, 100);
    let o = rig.orchestrator().build().unwrap();
    let cp = o.checkpoint("before v2").await.unwrap();
    let baseline = cp
        .metrics_baseline
        .clone()
        .expect("a baseline with a metrics source");
    assert_eq!(baseline.sample, sample(0.01, 100));
    rig.deploy_bad_release(Scope::CODE);

    // After the start: under the 5% threshold, but 4 points above the checkpoint's 1%, and
    // four times its latency.
    rig.world.lock().metrics = sample(0.05, 400);
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "report only by default");
    let rate = check(&report, "error rate after the start");
    assert!(
        !rate.passed
            && rate
                .detail
                .contains("5.0% (threshold 5.0%, checkpoint baseline 1.0%)")
            && rate
                .detail
                .contains("above the checkpoint's 1.0% by more than 2.0 points"),
        "{}",
        rate.detail
    );
    let p95 = check(&report, "latency p95 after the start");
    assert!(
        !p95.passed && p95.detail.contains("more than 1.50× the checkpoint's 100ms"),
        "{}",
        p95.detail
    );
    assert!(report.to_markdown().contains("❌ latency p95 after the start"));

    // Back to normal: both pass.
    let rig = Rig::new();
    rig.world.lock().metrics = sample(0.01, 100);
    let o = rig.orchestrator().build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::CODE);
    rig.world.lock().metrics = sample(0.015, 120);
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap();
    assert!(check(&report, "error rate after the start").passed);
    assert!(check(&report, "latency p95 after the start").passed);
}

#[tokio::test]
async fn a_performance_breach_fails_post_verify_when_the_caller_says_so() {
    let rig = Rig::new();
    let strict = settings(|s| {
        s.performance.on_breach = SignalPolicy::Fail;
        s.performance.max_latency_p95 = Some(Duration::from_millis(250));
    });
    let o = rig.orchestrator().settings(strict).build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::CODE);
    rig.world.lock().metrics = sample(0.2, 900);
    let e = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap_err();
    let report = failed_report(e);
    assert!(
        matches!(&report.outcome, Outcome::RestoredPreRollbackState { cause, .. }
            if cause.contains("performance not normal after the start")
                && cause.contains("error rate 20.0% above the threshold 5.0%")
                && cause.contains("latency p95 900ms above the threshold 250ms")),
        "{}",
        report.outcome
    );
}

#[tokio::test]
async fn metrics_that_cannot_be_read_never_fail_and_leave_no_baseline() {
    // No metrics source: no baseline, no performance check.
    let rig = Rig::new();
    let o = Orchestrator::builder(APP)
        .code(std::sync::Arc::new(rig.code.clone()))
        .process(std::sync::Arc::new(rig.process.clone()))
        .health_probe(std::sync::Arc::new(rig.probe.clone()))
        .state(std::sync::Arc::new(rig.state.clone()))
        .settings(Rig::settings())
        .build()
        .unwrap();
    let cp = o.checkpoint("before v2").await.unwrap();
    assert_eq!(cp.metrics_baseline, None);
    rig.deploy_bad_release(Scope::CODE);
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap();
    assert_eq!(
        report
            .verification
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        [LOG_CHECK]
    );

    // A source that fails: a checkpoint warning, then "not checked", never a failure.
    let rig = Rig::new();
    let strict = settings(|s| s.performance.on_breach = SignalPolicy::Fail);
    let o = rig.orchestrator().settings(strict).build().unwrap();
    rig.world.inject(
        Method::MetricsSample,
        When::Always,
        Fault::Fail(ErrorKind::Unavailable),
    );
    let cp = o.checkpoint("before v2").await.unwrap();
    assert_eq!(cp.metrics_baseline, None);
    assert!(
        cp.warnings
            .iter()
            .any(|w| w.starts_with("no metrics baseline recorded")),
        "{:?}",
        cp.warnings
    );
    assert!(
        cp.good,
        "a metrics source that fails does not make a checkpoint bad"
    );
    rig.deploy_bad_release(Scope::CODE);
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE)
        .await
        .unwrap();
    let rate = check(&report, "error rate after the start");
    assert!(
        rate.detail.starts_with("not checked: the metrics source failed"),
        "{}",
        rate.detail
    );
}

#[tokio::test]
async fn investigate_puts_the_database_diagnosis_next_to_the_metrics_baseline() {
    let rig = Rig::new();
    rig.world.lock().metrics = sample(0.01, 100);
    let o = rig.orchestrator().build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::CODE);
    rig.world.lock().metrics = sample(0.09, 800);
    let findings = vec![
        Finding {
            topic: "lock waits".into(),
            summary: "1 session waits on a lock".into(),
            items: vec!["pid 42 (app `web`) waits 12s for a relation lock held by pid 41".into()],
            notable: true,
        },
        Finding {
            topic: "cache hit ratio".into(),
            summary: "99.9% of reads from shared buffers".into(),
            items: Vec::new(),
            notable: false,
        },
    ];
    rig.world.lock().db.diagnosis = findings.clone();
    let report = o
        .handle_scenario(Scenario::PerformanceDegradation, RollbackTarget::LastGood, "slow")
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Investigated);
    assert_eq!(report.diagnosis, findings);
    assert_eq!(rig.world.count(Method::DbDiagnose), 1);
    let checklist = &report.steps[0].checklist;
    let text: Vec<&str> = checklist.iter().map(|i| i.text.as_str()).collect();
    assert!(
        text.contains(&"database statistics: 2 finding(s), worth a look: lock waits"),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("error rate 9.0%, latency p95 800ms")
                && t.contains("(at the checkpoint, ")
                && t.contains("error rate 1.0%, latency p95 100ms")),
        "{text:?}"
    );
    let md = report.to_markdown();
    assert!(
        md.contains("## Database diagnosis")
            && md.contains("⚠️ **lock waits**: 1 session waits on a lock")
            && md.contains("  - pid 42 (app `web`) waits 12s"),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["diagnosis"][0]["topic"], "lock waits");

    // A database that cannot be asked: said in the checklist, still an investigation.
    rig.world.inject(
        Method::DbDiagnose,
        When::Always,
        Fault::Fail(ErrorKind::Unavailable),
    );
    let report = o
        .handle_scenario(Scenario::PerformanceDegradation, RollbackTarget::LastGood, "slow")
        .await
        .unwrap();
    assert!(report.diagnosis.is_empty());
    assert!(report.steps[0]
        .checklist
        .iter()
        .any(|i| !i.checked && i.text.starts_with("database statistics: unavailable")));
}

#[test]
fn checkpoints_and_reports_written_before_these_fields_still_load() {
    let rig_cp = serde_json::json!({
        "id": "cp-1", "label": "old", "created_at": "2026-01-01T00:00:00Z",
        "snapshot": null, "revision": null, "config": null, "good": true
    });
    let cp: Checkpoint = serde_json::from_value(rig_cp.clone()).unwrap();
    assert_eq!(cp.metrics_baseline, None);
    let mut with = cp.clone();
    with.metrics_baseline = Some(rollback_core::MetricsBaseline {
        taken_at: Utc::now(),
        sample: sample(0.25, 10),
    });
    let back: Checkpoint = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
    assert_eq!(back, with, "a baseline round-trips");
}
