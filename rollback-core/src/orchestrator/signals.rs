//! Post-verify's checks of the release after the start, beyond health and integrity:
//! critical lines in the app's log since the start ("no critical errors in logs") and
//! error rate and latency against thresholds and the checkpoint's baseline ("performance
//! metrics normal"). Whether a finding fails post-verify is the caller's choice
//! ([`SignalPolicy`]); a check that could not run is reported and never fails.

use super::planning::policy_words;
use super::{Orchestrator, SignalPolicy};
use crate::domain::{CheckResult, MetricsBaseline, MetricsSample};
use crate::plan::Step;
use crate::report::LogMatch;
use crate::secret::redact_text;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// The name of the log check in the report.
pub(crate) const LOG_CHECK: &str = "no critical errors in the app's log since the start";
/// The name of the error-rate check in the report.
pub(crate) const ERROR_RATE_CHECK: &str = "error rate after the start";
/// The name of the latency check in the report.
pub(crate) const LATENCY_CHECK: &str = "latency p95 after the start";

/// How many characters of a matched line the report keeps.
const MAX_LINE_CHARS: usize = 300;

/// What the checks found.
#[derive(Debug, Default)]
pub(super) struct Signals {
    /// One result per check run.
    pub(super) checks: Vec<CheckResult>,
    /// The log lines behind the log check (redacted, at most `max_shown`).
    pub(super) matches: Vec<LogMatch>,
    /// Why post-verify fails: findings whose policy is [`SignalPolicy::Fail`].
    pub(super) failures: Vec<String>,
}

/// Runs the checks for the app started at `since`. When `healthy`, waits
/// `observe_after_healthy` first and checks the metrics too; otherwise (the health gate
/// failed) reads only the log, which may say why.
pub(super) async fn observe(
    o: &Orchestrator,
    since: DateTime<Utc>,
    baseline: Option<&MetricsBaseline>,
    healthy: bool,
) -> Signals {
    let wait = o.settings.observe_after_healthy;
    if healthy && !wait.is_zero() {
        tracing::info!(wait = ?wait, "watching the app before reading its log and metrics");
        tokio::time::sleep(wait).await;
    }
    let (logs, performance) = tokio::join!(log_check(o, since), async {
        if healthy {
            performance_check(o, baseline).await
        } else {
            (Vec::new(), None)
        }
    });
    let mut out = Signals::default();
    if let Some((check, matches, failure)) = logs {
        out.checks.push(check);
        out.matches = matches;
        out.failures.extend(failure);
    }
    let (checks, failure) = performance;
    out.checks.extend(checks);
    out.failures.extend(failure);
    out
}

/// The log check; `None` when it is turned off (no pattern).
async fn log_check(
    o: &Orchestrator,
    since: DateTime<Utc>,
) -> Option<(CheckResult, Vec<LogMatch>, Option<String>)> {
    let scan = &o.settings.log_scan;
    if scan.patterns.is_empty() {
        return None;
    }
    let not_checked = |why: String| {
        Some((
            CheckResult {
                name: LOG_CHECK.to_owned(),
                passed: false,
                detail: format!("not checked: {why}"),
            },
            Vec::new(),
            None,
        ))
    };
    let read = o
        .timed(
            Step::PostVerify,
            "reading the app's log",
            o.process.logs_since(&o.app, since),
        )
        .await;
    let logs = match read {
        Ok(Some(logs)) => logs,
        Ok(None) => return not_checked("the process manager cannot read the app's log".into()),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the app's log");
            return not_checked(format!("reading the app's log failed: {e}"));
        }
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut shown = Vec::new();
    for line in &logs.lines {
        let Some(pattern) = scan.matches(&line.text) else {
            continue;
        };
        *counts.entry(pattern).or_default() += 1;
        if shown.len() < scan.max_shown {
            shown.push(LogMatch {
                pattern: pattern.to_owned(),
                source: redact_text(&line.source),
                line: shorten(&redact_text(&line.text), MAX_LINE_CHARS),
            });
        }
    }
    let total: usize = counts.values().sum();
    let mut detail = if total == 0 {
        format!(
            "none of the {} line(s) written since {} matches the {} pattern(s)",
            logs.lines.len(),
            since.to_rfc3339_opts(SecondsFormat::Millis, true),
            scan.patterns.len()
        )
    } else {
        let by_pattern = counts
            .iter()
            .map(|(p, n)| format!("`{p}` ×{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{total} of the {} line(s) written since {} match: {by_pattern}{}; {}",
            logs.lines.len(),
            since.to_rfc3339_opts(SecondsFormat::Millis, true),
            if total > shown.len() {
                format!(" (the first {} shown)", shown.len())
            } else {
                String::new()
            },
            policy_words(scan.on_match)
        )
    };
    if logs.partial {
        detail.push_str("; partial read");
    }
    for note in &logs.notes {
        detail.push_str("; ");
        detail.push_str(&redact_text(note));
    }
    if total > 0 {
        tracing::warn!(matches = total, "critical lines in the app's log since the start");
    }
    let failure = (total > 0 && scan.on_match == SignalPolicy::Fail)
        .then(|| format!("{total} critical line(s) in the app's log since the start"));
    Some((
        CheckResult {
            name: LOG_CHECK.to_owned(),
            passed: total == 0,
            detail,
        },
        shown,
        failure,
    ))
}

/// The performance checks; nothing without a metrics source.
async fn performance_check(
    o: &Orchestrator,
    baseline: Option<&MetricsBaseline>,
) -> (Vec<CheckResult>, Option<String>) {
    let Some(metrics) = &o.metrics else {
        return (Vec::new(), None);
    };
    let p = &o.settings.performance;
    let sample = match tokio::time::timeout(p.sample_timeout, metrics.sample(&o.app)).await {
        Ok(Ok(sample)) => sample,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not sample the metrics after the start");
            return (
                vec![CheckResult {
                    name: ERROR_RATE_CHECK.to_owned(),
                    passed: false,
                    detail: format!("not checked: the metrics source failed: {e}"),
                }],
                None,
            );
        }
        Err(_) => {
            return (
                vec![CheckResult {
                    name: ERROR_RATE_CHECK.to_owned(),
                    passed: false,
                    detail: format!(
                        "not checked: the metrics source did not answer within {}s",
                        p.sample_timeout.as_secs_f64()
                    ),
                }],
                None,
            )
        }
    };
    let (checks, breaches) = judge(&sample, baseline, p);
    let failure = (!breaches.is_empty() && p.on_breach == SignalPolicy::Fail)
        .then(|| format!("performance not normal after the start: {}", breaches.join("; ")));
    (checks, failure)
}

/// Compares a sample with the thresholds and the baseline; returns the checks and the
/// breaches (empty when normal).
pub(super) fn judge(
    sample: &MetricsSample,
    baseline: Option<&MetricsBaseline>,
    p: &super::PerformanceCheck,
) -> (Vec<CheckResult>, Vec<String>) {
    let policy = policy_words(p.on_breach);
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let mut checks = Vec::new();
    let mut breaches = Vec::new();

    let base_rate = baseline.and_then(|b| b.sample.error_rate);
    match sample.error_rate {
        None if p.max_error_rate.is_some() || base_rate.is_some() => checks.push(CheckResult {
            name: ERROR_RATE_CHECK.to_owned(),
            passed: false,
            detail: "not checked: the metrics source does not measure the error rate".into(),
        }),
        None => {}
        Some(rate) => {
            let mut why = Vec::new();
            if let Some(max) = p.max_error_rate.filter(|max| rate > *max) {
                why.push(format!("above the threshold {}", pct(max)));
            }
            if let Some(b) = base_rate.filter(|b| rate > b + p.baseline_error_rate_margin) {
                why.push(format!(
                    "above the checkpoint's {} by more than {:.1} points",
                    pct(b),
                    p.baseline_error_rate_margin * 100.0
                ));
            }
            let mut detail = format!(
                "{} (threshold {}, checkpoint baseline {})",
                pct(rate),
                p.max_error_rate.map_or_else(|| "none".to_owned(), pct),
                base_rate.map_or_else(|| "not recorded".to_owned(), pct)
            );
            if !why.is_empty() {
                detail.push_str(&format!(": {}; {policy}", why.join(", ")));
                breaches.push(format!("error rate {} {}", pct(rate), why.join(", ")));
            }
            checks.push(CheckResult {
                name: ERROR_RATE_CHECK.to_owned(),
                passed: why.is_empty(),
                detail,
            });
        }
    }

    let base_p95 = baseline.and_then(|b| b.sample.latency_p95);
    match sample.latency_p95 {
        None if p.max_latency_p95.is_some() || base_p95.is_some() => checks.push(CheckResult {
            name: LATENCY_CHECK.to_owned(),
            passed: false,
            detail: "not checked: the metrics source does not measure latency".into(),
        }),
        None => {}
        Some(p95) => {
            let mut why = Vec::new();
            if let Some(max) = p.max_latency_p95.filter(|max| p95 > *max) {
                why.push(format!("above the threshold {}", ms(max)));
            }
            if let Some(b) =
                base_p95.filter(|b| p95.as_secs_f64() > b.as_secs_f64() * p.baseline_latency_factor)
            {
                why.push(format!(
                    "more than {:.2}× the checkpoint's {}",
                    p.baseline_latency_factor,
                    ms(b)
                ));
            }
            let mut detail = format!(
                "{} (threshold {}, checkpoint baseline {})",
                ms(p95),
                p.max_latency_p95.map_or_else(|| "none".to_owned(), ms),
                base_p95.map_or_else(|| "not recorded".to_owned(), ms)
            );
            if !why.is_empty() {
                detail.push_str(&format!(": {}; {policy}", why.join(", ")));
                breaches.push(format!("latency p95 {} {}", ms(p95), why.join(", ")));
            }
            checks.push(CheckResult {
                name: LATENCY_CHECK.to_owned(),
                passed: why.is_empty(),
                detail,
            });
        }
    }
    (checks, breaches)
}

/// `text` cut to `max` characters (with `…` when cut).
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::PerformanceCheck;

    fn sample(rate: Option<f64>, p95_ms: Option<u64>) -> MetricsSample {
        MetricsSample {
            error_rate: rate,
            latency_p95: p95_ms.map(Duration::from_millis),
            ..MetricsSample::default()
        }
    }

    #[test]
    fn thresholds_and_baseline_each_name_their_breach() {
        let p = PerformanceCheck {
            max_latency_p95: Some(Duration::from_millis(500)),
            ..PerformanceCheck::default()
        };
        let baseline = MetricsBaseline {
            taken_at: Utc::now(),
            sample: sample(Some(0.01), Some(100)),
        };
        // Normal on every count.
        let (checks, breaches) = judge(&sample(Some(0.02), Some(120)), Some(&baseline), &p);
        assert!(
            breaches.is_empty() && checks.iter().all(|c| c.passed),
            "{checks:?}"
        );
        // Under the thresholds, but far worse than the baseline.
        let (checks, breaches) = judge(&sample(Some(0.04), Some(400)), Some(&baseline), &p);
        assert_eq!(breaches.len(), 2, "{breaches:?}");
        assert!(
            checks
                .iter()
                .all(|c| !c.passed && c.detail.contains("checkpoint's")),
            "{checks:?}"
        );
        assert!(checks[0].detail.contains("reported only"), "{}", checks[0].detail);
        // Above the thresholds, no baseline.
        let (checks, breaches) = judge(&sample(Some(0.2), Some(900)), None, &p);
        assert_eq!(breaches.len(), 2);
        assert!(
            checks[0].detail.contains("above the threshold 5.0%"),
            "{}",
            checks[0].detail
        );
        assert!(
            checks[1].detail.contains("above the threshold 500ms"),
            "{}",
            checks[1].detail
        );
        // Not measured: said, never a breach; nothing to compare with: not shown.
        let (checks, breaches) = judge(&sample(None, None), None, &p);
        assert!(breaches.is_empty());
        assert!(
            checks.iter().all(|c| c.detail.starts_with("not checked")),
            "{checks:?}"
        );
        let quiet = PerformanceCheck {
            max_error_rate: None,
            ..PerformanceCheck::default()
        };
        assert!(judge(&sample(None, None), None, &quiet).0.is_empty());
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        assert_eq!(shorten("äöü", 2), "äö…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
