//! The runbook's automatic triggers as rules over sliding windows: a condition must hold at
//! every poll for a whole window before its rule fires; it fires once per incident; a poll
//! where the condition does not hold resets it.

use super::matrix::Signal;
use crate::domain::{MetricsSample, ProbeResult};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// What a rule watches, with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Condition {
    /// Any health probe is unhealthy.
    HealthFailing,
    /// The database does not answer its ping (the SQL probe).
    DatabaseUnreachable,
    /// The error rate (0.0..=1.0) is above this.
    ErrorRateAbove(f64),
    /// Memory use in percent is above this.
    MemoryAbove(f64),
    /// CPU use in percent is above this.
    CpuAbove(f64),
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::HealthFailing => write!(f, "health check failing"),
            Condition::DatabaseUnreachable => write!(f, "database connection failing"),
            Condition::ErrorRateAbove(t) => write!(f, "error rate above {:.0}%", t * 100.0),
            Condition::MemoryAbove(t) => write!(f, "memory above {t:.0}%"),
            Condition::CpuAbove(t) => write!(f, "CPU above {t:.0}%"),
        }
    }
}

/// What one poll saw: health probe results, the SQL probe's, and a metrics sample.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// Results of the HTTP (or other) health probes.
    pub health: Vec<ProbeResult>,
    /// The SQL probe's result, when there is one.
    pub database: Option<ProbeResult>,
    /// The metrics sample, when the source answered.
    pub metrics: Option<MetricsSample>,
}

impl Condition {
    /// Whether the condition holds in `obs`; `None` when `obs` has nothing to say about it
    /// (no such probe, metric not measured): an unknown never fires and never resets.
    pub fn holds(&self, obs: &Observation) -> Option<bool> {
        let metric = |pick: fn(&MetricsSample) -> Option<f64>| obs.metrics.as_ref().and_then(pick);
        match *self {
            Condition::HealthFailing if obs.health.is_empty() => None,
            Condition::HealthFailing => Some(obs.health.iter().any(|p| !p.healthy)),
            Condition::DatabaseUnreachable => obs.database.as_ref().map(|p| !p.healthy),
            Condition::ErrorRateAbove(t) => metric(|m| m.error_rate).map(|v| v > t),
            Condition::MemoryAbove(t) => metric(|m| m.memory_percent).map(|v| v > t),
            Condition::CpuAbove(t) => metric(|m| m.cpu_percent).map(|v| v > t),
        }
    }
}

/// A rule: a condition held for a window means a signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Its name in reports and notices.
    pub name: String,
    /// What it watches.
    pub condition: Condition,
    /// How long the condition must hold.
    #[serde(with = "crate::duration_ms")]
    pub window: Duration,
    /// What it means when it fires (the decision matrix says what to do).
    pub signal: Signal,
}

impl Rule {
    /// A rule.
    pub fn new(name: impl Into<String>, condition: Condition, window: Duration, signal: Signal) -> Self {
        Self {
            name: name.into(),
            condition,
            window,
            signal,
        }
    }

    /// The runbook's automatic triggers: health failing 5+ minutes, error rate above 10%
    /// for 10+ minutes, database connection failures (1 minute: the runbook gives no
    /// window), memory above 90% (5 minutes: the runbook gives no window), CPU above 95% for
    /// 15+ minutes. Health, errors and the database mean a complete failure (roll back
    /// now); memory and CPU mean performance degradation, which the runbook's own matrix
    /// says to investigate first; set the rule's signal to change that.
    pub fn runbook() -> Vec<Rule> {
        const MIN: u64 = 60;
        vec![
            Rule::new(
                "health",
                Condition::HealthFailing,
                Duration::from_secs(5 * MIN),
                Signal::CompleteFailure,
            ),
            Rule::new(
                "error-rate",
                Condition::ErrorRateAbove(0.10),
                Duration::from_secs(10 * MIN),
                Signal::CompleteFailure,
            ),
            Rule::new(
                "database",
                Condition::DatabaseUnreachable,
                Duration::from_secs(MIN),
                Signal::CompleteFailure,
            ),
            Rule::new(
                "memory",
                Condition::MemoryAbove(90.0),
                Duration::from_secs(5 * MIN),
                Signal::PerformanceDegradation,
            ),
            Rule::new(
                "cpu",
                Condition::CpuAbove(95.0),
                Duration::from_secs(15 * MIN),
                Signal::PerformanceDegradation,
            ),
        ]
    }
}

/// A rule that fired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    /// The rule's name.
    pub rule: String,
    /// Its signal.
    pub signal: Signal,
    /// What held, e.g. "health check failing for 300s".
    pub summary: String,
}

/// A rule's window over the polls.
#[derive(Clone, Debug)]
pub struct RuleTracker {
    rule: Rule,
    breached_since: Option<Instant>,
    fired: bool,
}

impl RuleTracker {
    /// A tracker with nothing seen yet.
    pub fn new(rule: Rule) -> Self {
        Self {
            rule,
            breached_since: None,
            fired: false,
        }
    }

    /// The rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// True while the condition holds (since the last poll that saw it).
    pub fn breached(&self) -> bool {
        self.breached_since.is_some()
    }

    /// Feeds one poll taken at `now`; returns a firing the first time the condition has
    /// held for the whole window. A poll where it does not hold ends the incident and
    /// resets the window.
    pub fn observe(&mut self, now: Instant, obs: &Observation) -> Option<Firing> {
        match self.rule.condition.holds(obs) {
            None => None,
            Some(false) => {
                self.breached_since = None;
                self.fired = false;
                None
            }
            Some(true) => {
                let since = *self.breached_since.get_or_insert(now);
                let held = now.saturating_duration_since(since);
                if self.fired || held < self.rule.window {
                    return None;
                }
                self.fired = true;
                Some(Firing {
                    rule: self.rule.name.clone(),
                    signal: self.rule.signal,
                    summary: format!("{} for {}s", self.rule.condition, held.as_secs()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(healthy: bool) -> Observation {
        Observation {
            health: vec![ProbeResult {
                probe: "GET /api/health".into(),
                healthy,
                latency: Duration::from_millis(3),
                detail: String::new(),
            }],
            ..Observation::default()
        }
    }

    fn cpu(percent: f64) -> Observation {
        Observation {
            metrics: Some(MetricsSample {
                cpu_percent: Some(percent),
                ..MetricsSample::default()
            }),
            ..Observation::default()
        }
    }

    /// Polls every second from t=0 for `secs` seconds; returns when (in s) it fired.
    fn fires_at(rule: &Rule, secs: u64, obs_at: impl Fn(u64) -> Observation) -> Vec<u64> {
        let start = Instant::now();
        let mut t = RuleTracker::new(rule.clone());
        (0..=secs)
            .filter(|s| t.observe(start + Duration::from_secs(*s), &obs_at(*s)).is_some())
            .collect()
    }

    fn rule(name: &str) -> Rule {
        Rule::runbook().into_iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn health_failing_fires_at_five_minutes_not_before_and_once() {
        assert_eq!(
            fires_at(&rule("health"), 299, |_| health(false)),
            Vec::<u64>::new()
        );
        assert_eq!(fires_at(&rule("health"), 900, |_| health(false)), [300]);
    }

    #[test]
    fn error_rate_and_cpu_windows() {
        let errors = |rate: f64| Observation {
            metrics: Some(MetricsSample {
                error_rate: Some(rate),
                ..MetricsSample::default()
            }),
            ..Observation::default()
        };
        assert_eq!(fires_at(&rule("error-rate"), 1000, |_| errors(0.11)), [600]);
        assert!(
            fires_at(&rule("error-rate"), 1000, |_| errors(0.10)).is_empty(),
            "10% is not above 10%"
        );
        assert_eq!(fires_at(&rule("cpu"), 2000, |_| cpu(96.0)), [900]);
        assert!(fires_at(&rule("cpu"), 899, |_| cpu(99.0)).is_empty());
    }

    #[test]
    fn a_flapping_signal_never_fires_and_recovery_starts_a_new_incident() {
        let flapping = |s: u64| health(s % 240 == 239);
        assert!(fires_at(&rule("health"), 3600, flapping).is_empty());
        // Fails 0..=400, healthy at 401, fails again from 402: a second incident.
        assert_eq!(fires_at(&rule("health"), 800, |s| health(s == 401)), [300, 702]);
    }

    #[test]
    fn unknown_metrics_neither_fire_nor_reset() {
        let obs = |s: u64| {
            if s.is_multiple_of(2) {
                cpu(99.0)
            } else {
                Observation::default()
            }
        };
        assert_eq!(fires_at(&rule("cpu"), 1000, obs), [900]);
    }
}
