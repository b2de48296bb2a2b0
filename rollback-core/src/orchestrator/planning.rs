//! The dry run: pre-flight without changing anything, and the plan it returns.

use super::{preflight, Orchestrator, RollbackRequest, SignalPolicy};
use crate::domain::{Checkpoint, CodeStrategy};
use crate::error::RollbackError;
use crate::plan::{PlannedStep, RollbackPlan, Step};

/// How the plan and the report name a [`SignalPolicy`].
pub(super) fn policy_words(policy: SignalPolicy) -> &'static str {
    match policy {
        SignalPolicy::Report => "reported only",
        SignalPolicy::Fail => "fails post-verify",
    }
}

impl Orchestrator {
    /// Runs pre-flight and returns the plan, changing nothing (no lock, no journal).
    /// Refused like a rollback while one is unfinished ([`RollbackError::Unfinished`]:
    /// `resume()` first) or running ([`RollbackError::Locked`]).
    pub async fn dry_run(&self, request: &RollbackRequest) -> Result<RollbackPlan, RollbackError> {
        let investigate = request.scenario.is_some_and(|s| s.scope().is_none());
        if !investigate {
            self.check_components(request.scope)?;
            // A plan made over a half-finished rollback describes a state that is not there
            // (the release may already be switched): say what must come first.
            self.refuse_if_unfinished().await?;
        }
        let checkpoint = self.resolve_target(&request.target).await?;
        let mut graceful = false;
        if !investigate {
            let failures = preflight::preflight_checks(self, &checkpoint, request, true)
                .await?
                .1;
            if !failures.is_empty() {
                return Err(RollbackError::Preflight { failures });
            }
            graceful = preflight::reload_decision(self, request.scope).await.0;
        }
        Ok(self.plan(request, &checkpoint, graceful))
    }

    fn plan(&self, request: &RollbackRequest, checkpoint: &Checkpoint, graceful: bool) -> RollbackPlan {
        let scope = request.scope;
        let investigate = request.scenario.is_some_and(|s| s.scope().is_none());
        let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "?".into());
        let snapshot = opt(&checkpoint.snapshot.as_ref().map(ToString::to_string));
        let revision = opt(&checkpoint.revision.as_ref().map(ToString::to_string));
        let config = opt(&checkpoint.config.as_ref().map(ToString::to_string));
        let steps = Step::ALL
            .iter()
            .map(|&step| {
                let mut actions: Vec<String> = Vec::new();
                if investigate {
                    let skipped = (step != Step::Preflight).then(|| "investigate first: no automatic rollback".to_owned());
                    if skipped.is_none() {
                        actions.push("diagnose: process status, metrics (against the checkpoint's baseline), health, integrity, the database's own statistics, config and code changes since the checkpoint".into());
                    }
                    return PlannedStep { step, actions, skipped };
                }
                match step {
                    Step::Lock => actions.push("take the rollback lock".into()),
                    Step::Journal => actions.push("journal the start".into()),
                    Step::Preflight => {
                        actions.push(format!("check app `{}` is known to the process manager", self.app));
                        if scope.database {
                            actions.push(format!("ping the database, verify snapshot {snapshot}"));
                        }
                        if scope.code {
                            actions.push(format!("resolve revision {revision}"));
                        }
                        if scope.config {
                            actions.push(format!("parse config version {config}"));
                        }
                    }
                    Step::Prepare => {
                        if scope.database {
                            actions.push(format!("stage snapshot {snapshot} while the app serves"));
                        }
                        if scope.code {
                            match &request.code_strategy {
                                CodeStrategy::Checkout => actions.push(format!("check out and build {revision} beside the live release")),
                                CodeStrategy::Revert(commits) => actions.push(format!("revert {} commit(s) and build the result", commits.len())),
                            }
                        }
                    }
                    Step::Stop if graceful => {
                        return PlannedStep {
                            step,
                            actions,
                            skipped: Some("graceful reload: the app keeps serving".into()),
                        }
                    }
                    Step::Stop => actions.push(format!("stop `{}`", self.app)),
                    Step::EmergencyBackup => {
                        if scope.database {
                            actions.push("keep the live database aside".into());
                        }
                        if scope.code {
                            actions.push("keep the live release".into());
                        }
                        if scope.config {
                            actions.push("back up the live config".into());
                        }
                    }
                    Step::RestoreDatabase if scope.database => {
                        actions.push(format!("switch snapshot {snapshot} in, check integrity"))
                    }
                    Step::ActivateCode if scope.code => actions.push("activate the built release".into()),
                    Step::RestoreConfig if scope.config => actions.push(format!("put config {config} in place")),
                    Step::Start if graceful => actions.push(format!(
                        "reload `{}` gracefully: processes replaced one at a time, never stopped",
                        self.app
                    )),
                    Step::Start => actions.push(format!("start `{}`", self.app)),
                    Step::PostVerify => {
                        actions.push(format!(
                            "probe health ({} probe(s)) until healthy or {}s",
                            self.probes.len(),
                            self.settings.health_timeout.as_secs()
                        ));
                        if !self.settings.log_scan.patterns.is_empty() {
                            actions.push(format!(
                                "scan the app's log since the start for {} pattern(s) ({})",
                                self.settings.log_scan.patterns.len(),
                                policy_words(self.settings.log_scan.on_match)
                            ));
                        }
                        if self.metrics.is_some() {
                            actions.push(format!(
                                "compare error rate and latency with the thresholds{} ({})",
                                if checkpoint.metrics_baseline.is_some() {
                                    " and the checkpoint's baseline"
                                } else {
                                    ""
                                },
                                policy_words(self.settings.performance.on_breach)
                            ));
                        }
                    }
                    Step::Report => actions.push("journal the end, write the report".into()),
                    _ => {}
                }
                let skipped = actions.is_empty().then(|| {
                    step.out_of_scope(scope)
                        .unwrap_or_else(|| format!("nothing to do for scope {scope}"))
                });
                PlannedStep { step, actions, skipped }
            })
            .collect();
        RollbackPlan {
            scenario: request.scenario,
            scope,
            code_strategy: request.code_strategy.clone(),
            steps,
        }
    }
}
