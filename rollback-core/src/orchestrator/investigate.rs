//! Performance degradation: investigate first. Diagnose and report, change nothing.

use super::{reporting, Orchestrator, RollbackRequest};
use crate::error::RollbackError;
use crate::ids::RollbackId;
use crate::journal::{Journal, JournalStatus};
use crate::plan::Step;
use crate::report::{ChecklistItem, Outcome, RollbackReport, StepOutcome, StepRecord};
use chrono::Utc;
use futures::future::join_all;

impl Orchestrator {
    /// Diagnoses without changing anything: process status, metrics (beside the
    /// checkpoint's baseline), health probes, database integrity, the database's own
    /// statistics ([`DatabaseSnapshot::diagnose`](crate::DatabaseSnapshot::diagnose), in
    /// the report's `diagnosis`), config keys changed and commits made since the checkpoint.
    /// Returns a report whose outcome is [`Outcome::Investigated`]. Takes no lock.
    pub async fn investigate(&self, request: RollbackRequest) -> Result<RollbackReport, RollbackError> {
        let checkpoint = self.resolve_target(&request.target).await?;
        let started_at = Utc::now();
        let step = Step::Preflight;
        let mut items = Vec::new();
        let mut notes = Vec::new();
        let line = |r: Result<String, String>, what: &str| match r {
            Ok(found) => ChecklistItem::done(format!("{what}: {found}")),
            Err(e) => ChecklistItem::not_done(format!("{what}: {e}")),
        };
        let status = self
            .timed(step, "reading the app's status", self.process.status(&self.app))
            .await
            .map(|s| {
                let restarts = s
                    .restarts
                    .map_or_else(|| "restarts not counted".to_owned(), |n| format!("{n} restarts"));
                format!("{}, {restarts}, pid {:?}", s.state, s.pid)
            })
            .map_err(|e| e.to_string());
        items.push(line(status, "process status"));
        if let Some(metrics) = &self.metrics {
            let sample = self
                .timed(step, "sampling metrics", metrics.sample(&self.app))
                .await
                .map(|m| {
                    let pct = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.1}%"));
                    let rate = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{:.1}%", v * 100.0));
                    let p95 = |v: Option<std::time::Duration>| {
                        v.map_or("n/a".to_owned(), |d| format!("{}ms", d.as_millis()))
                    };
                    let mut line = format!(
                        "error rate {}, latency p95 {}, memory {}, CPU {}",
                        rate(m.error_rate),
                        p95(m.latency_p95),
                        pct(m.memory_percent),
                        pct(m.cpu_percent)
                    );
                    if let Some(b) = &checkpoint.metrics_baseline {
                        line.push_str(&format!(
                            " (at the checkpoint, {}: error rate {}, latency p95 {}, memory {}, CPU {})",
                            b.taken_at.to_rfc3339(),
                            rate(b.sample.error_rate),
                            p95(b.sample.latency_p95),
                            pct(b.sample.memory_percent),
                            pct(b.sample.cpu_percent)
                        ));
                    }
                    line
                })
                .map_err(|e| e.to_string());
            items.push(line(sample, "metrics"));
        }
        let health = join_all(self.probes.iter().map(|p| p.probe())).await;
        for r in &health {
            items.push(ChecklistItem {
                text: format!("health: {} ({}, {}ms)", r.probe, r.detail, r.latency.as_millis()),
                checked: r.healthy,
            });
        }
        let mut integrity = Vec::new();
        if let Some(db) = &self.database {
            match self
                .timed(
                    step,
                    "checking integrity",
                    db.check_integrity(&self.settings.integrity),
                )
                .await
            {
                Ok(report) => integrity = report.checks,
                Err(e) => items.push(ChecklistItem::not_done(format!("database integrity: {e}"))),
            }
        }
        let mut diagnosis = Vec::new();
        if let Some(db) = &self.database {
            match self
                .timed(step, "reading the database's statistics", db.diagnose())
                .await
            {
                Ok(found) => {
                    let notable: Vec<&str> = found
                        .iter()
                        .filter(|f| f.notable)
                        .map(|f| f.topic.as_str())
                        .collect();
                    items.push(ChecklistItem::done(format!(
                        "database statistics: {} finding(s){}",
                        found.len(),
                        if notable.is_empty() {
                            String::new()
                        } else {
                            format!(", worth a look: {}", notable.join(", "))
                        }
                    )));
                    diagnosis = found;
                }
                Err(e) => items.push(ChecklistItem::not_done(format!("database statistics: {e}"))),
            }
        }
        if let (Some(config), Some(version)) = (&self.config, &checkpoint.config) {
            let diff = async {
                let live = config.current().await?;
                config.diff(version, &live.id).await
            };
            let found = self
                .timed(step, "comparing configs", diff)
                .await
                .map(|d| {
                    format!(
                        "added {:?}, removed {:?}, changed {:?}",
                        d.added, d.removed, d.changed
                    )
                })
                .map_err(|e| e.to_string());
            items.push(line(found, "config keys changed since the checkpoint"));
        }
        if let (Some(code), Some(rev)) = (&self.code, &checkpoint.revision) {
            let found = self
                .timed(step, "reading history", code.history(50))
                .await
                .map(|history| {
                    let since: Vec<String> = history
                        .iter()
                        .take_while(|r| &r.id != rev)
                        .map(|r| format!("{} {}", r.short, r.subject))
                        .collect();
                    if since.is_empty() {
                        "none".to_owned()
                    } else {
                        since.join("; ")
                    }
                })
                .map_err(|e| e.to_string());
            items.push(line(found, "commits since the checkpoint"));
        }
        notes.push("performance degradation: investigate first; nothing was stopped or changed".to_owned());
        let mut journal = Journal::new(
            RollbackId::new(super::unique_id("inv")),
            checkpoint,
            request,
            started_at,
        );
        journal.status = JournalStatus::Finished(Outcome::Investigated);
        journal.steps.push(StepRecord {
            step,
            started_at,
            duration: (Utc::now() - started_at).to_std().unwrap_or_default(),
            outcome: StepOutcome::Ok,
            checklist: items,
        });
        journal.health = health;
        journal.integrity = integrity;
        journal.notes = notes;
        let mut report = reporting::build_report(self, &journal);
        report.diagnosis = diagnosis;
        if let Err(e) = self.state.save_report(&report).await {
            tracing::error!(error = %e, "could not store the investigation report");
        }
        Ok(report)
    }
}
