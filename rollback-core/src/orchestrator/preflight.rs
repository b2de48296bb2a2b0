//! Pre-flight: every check that can be made before anything is stopped or changed, also
//! used by the dry run; and the decision between a graceful reload and a stop.

use super::{Orchestrator, RollbackRequest};
use crate::domain::{Checkpoint, CodeStrategy};
use crate::error::{AdapterError, ErrorKind, PreflightFailure, RollbackError};
use crate::plan::Step;
use crate::report::ChecklistItem;
use futures::future::{join_all, BoxFuture};
use futures::FutureExt;

/// Whether a rollback of `scope` reloads the app gracefully instead of stopping it: never
/// with the database in scope or with the setting off (no explanation then), never when the
/// code adapter would switch files under the running app, else as the process manager says.
/// Returns the decision and the checklist line that explains it. Changes nothing.
pub(super) async fn reload_decision(
    o: &Orchestrator,
    scope: crate::domain::Scope,
) -> (bool, Option<ChecklistItem>) {
    if scope.database || !o.settings.graceful_reload {
        return (false, None);
    }
    if let (true, Some(code)) = (scope.code, &o.code) {
        if !code.switches_under_a_running_app() {
            return (
                false,
                Some(ChecklistItem::done(format!(
                    "the code adapter cannot switch under a running app (a working tree, say): `{}` will be stopped and started",
                    o.app
                ))),
            );
        }
    }
    match o
        .timed(
            Step::Preflight,
            "asking whether the app can reload gracefully",
            o.process.can_reload(&o.app),
        )
        .await
    {
        Ok(true) => (
            true,
            Some(ChecklistItem::done(format!(
                "`{}` can reload gracefully: it will keep serving (no stop)",
                o.app
            ))),
        ),
        Ok(false) => (
            false,
            Some(ChecklistItem::done(format!(
                "`{}` cannot reload gracefully (e.g. a single process): it will be stopped and started",
                o.app
            ))),
        ),
        Err(e) => (
            false,
            Some(ChecklistItem::not_done(format!(
                "graceful reload not possible ({e}): `{}` will be stopped and started",
                o.app
            ))),
        ),
    }
}

/// What the state store and (when in scope) the database adapter keep where others can
/// read it. Warnings only: a failure to look is itself a warning.
pub(super) async fn access_warnings(o: &Orchestrator, database: bool) -> Vec<String> {
    let mut out = match o.state.access_warnings().await {
        Ok(w) => w,
        Err(e) => vec![format!("could not check who can read the state directory: {e}")],
    };
    if let (true, Some(db)) = (database, &o.database) {
        match db.access_warnings().await {
            Ok(w) => out.extend(w),
            Err(e) => out.push(format!("could not check who can read the snapshots: {e}")),
        }
    }
    out
}

type Check<'b> = BoxFuture<'b, (String, Result<String, AdapterError>)>;

/// Runs every check at once; the checklist in order, and each failure.
async fn run_checks(checks: Vec<Check<'_>>) -> (Vec<ChecklistItem>, Vec<PreflightFailure>) {
    let mut items = Vec::new();
    let mut failures = Vec::new();
    for (check, result) in join_all(checks).await {
        match result {
            Ok(detail) => items.push(ChecklistItem::done(format!("{check}: {detail}"))),
            Err(error) => {
                items.push(ChecklistItem::not_done(check.clone()));
                failures.push(PreflightFailure { check, error });
            }
        }
    }
    (items, failures)
}

fn app_known(o: &Orchestrator) -> Check<'_> {
    async {
        let r = o
            .timed(
                Step::Preflight,
                "reading the app's status",
                o.process.status(&o.app),
            )
            .await;
        (
            format!("app `{}` known to the process manager", o.app),
            r.map(|s| format!("state {}", s.state)),
        )
    }
    .boxed()
}

fn database_reachable<'b>(o: &'b Orchestrator, db: &'b dyn crate::traits::DatabaseSnapshot) -> Check<'b> {
    async move {
        let r = o.timed(Step::Preflight, "pinging the database", db.ping()).await;
        (
            "database reachable".to_owned(),
            r.map(|d| format!("{}ms", d.as_millis())),
        )
    }
    .boxed()
}

/// The database role's privileges for a checkpoint and a rollback of this database.
fn database_privileges<'b>(o: &'b Orchestrator, db: &'b dyn crate::traits::DatabaseSnapshot) -> Check<'b> {
    async move {
        let r = o
            .timed(
                Step::Preflight,
                "checking the database role's privileges",
                db.check_privileges(),
            )
            .await;
        (
            "the database role may do what a rollback asks of it".to_owned(),
            r.map(|checked| {
                if checked.is_empty() {
                    "nothing to check".to_owned()
                } else {
                    checked.join("; ")
                }
            }),
        )
    }
    .boxed()
}

/// The checks that need no rollback target (`rollback check`): the app known to the
/// process manager, the database reachable, the live revision and the live config
/// readable, every health probe passing. Changes nothing.
pub(super) async fn readiness_checks(o: &Orchestrator) -> (Vec<ChecklistItem>, Vec<PreflightFailure>) {
    let mut checks: Vec<Check<'_>> = vec![app_known(o)];
    if let Some(db) = &o.database {
        checks.push(database_reachable(o, db.as_ref()));
        checks.push(database_privileges(o, db.as_ref()));
    }
    if let Some(code) = &o.code {
        checks.push(
            async move {
                let r = o
                    .timed(Step::Preflight, "reading the live revision", code.current())
                    .await;
                (
                    "live revision readable".to_owned(),
                    r.map(|rev| format!("{} {}", rev.short, rev.subject)),
                )
            }
            .boxed(),
        );
    }
    if let Some(config) = &o.config {
        checks.push(
            async move {
                let r = o
                    .timed(Step::Preflight, "reading the live config", config.current())
                    .await;
                (
                    "live config readable".to_owned(),
                    r.map(|v| format!("version {}", v.id)),
                )
            }
            .boxed(),
        );
    }
    for probe in &o.probes {
        checks.push(
            async move {
                let r = probe.probe().await;
                let name = format!("health probe {}", r.probe);
                let result = if r.healthy {
                    Ok(format!("healthy in {}ms", r.latency.as_millis()))
                } else {
                    Err(AdapterError::new(ErrorKind::Unavailable, r.detail))
                };
                (name, result)
            }
            .boxed(),
        );
    }
    run_checks(checks).await
}

/// Pre-flight: every check runs (concurrently), each failure is collected. With
/// `check_live`, a target that equals what is live is refused as a no-op.
pub(super) async fn preflight_checks(
    o: &Orchestrator,
    cp: &Checkpoint,
    request: &RollbackRequest,
    check_live: bool,
) -> Result<(Vec<ChecklistItem>, Vec<PreflightFailure>), RollbackError> {
    let scope = request.scope;
    let missing = |what: &str| {
        Err(AdapterError::new(
            ErrorKind::NotFound,
            format!(
                "checkpoint `{}` has no {what}: pick another checkpoint or leave it out of the scope",
                cp.id
            ),
        ))
    };
    let mut checks: Vec<Check<'_>> = Vec::new();
    checks.push(app_known(o));
    if let (true, Some(db)) = (scope.database, &o.database) {
        checks.push(database_reachable(o, db.as_ref()));
        checks.push(database_privileges(o, db.as_ref()));
        checks.push(
            async {
                match &cp.snapshot {
                    Some(s) => {
                        let r = o
                            .timed(Step::Preflight, "verifying the snapshot", db.verify(s))
                            .await;
                        (
                            format!("snapshot {s} complete and readable"),
                            r.map(|()| "verified".to_owned()),
                        )
                    }
                    None => ("database snapshot".to_owned(), missing("database snapshot")),
                }
            }
            .boxed(),
        );
    }
    if let (true, Some(code)) = (scope.code, &o.code) {
        match &request.code_strategy {
            CodeStrategy::Checkout => checks.push(
                async {
                    match &cp.revision {
                        Some(rev) => {
                            let r = o
                                .timed(
                                    Step::Preflight,
                                    "resolving the revision",
                                    code.resolve(rev.as_str()),
                                )
                                .await;
                            let r = match r {
                                Ok(found) => o
                                    .timed(
                                        Step::Preflight,
                                        "checking the revision can be activated",
                                        code.check_activate(&found.id),
                                    )
                                    .await
                                    .map(|()| format!("{} {}; can be activated", found.short, found.subject)),
                                Err(e) => Err(e),
                            };
                            (format!("revision {rev} resolves and can be activated"), r)
                        }
                        None => ("code revision".to_owned(), missing("code revision")),
                    }
                }
                .boxed(),
            ),
            CodeStrategy::Revert(commits) => {
                for c in commits {
                    checks.push(
                        async move {
                            let r = o
                                .timed(
                                    Step::Preflight,
                                    "resolving a commit to revert",
                                    code.resolve(c.as_str()),
                                )
                                .await;
                            (
                                format!("commit {c} to revert resolves"),
                                r.map(|r| format!("{} {}", r.short, r.subject)),
                            )
                        }
                        .boxed(),
                    );
                }
            }
        }
    }
    if let (true, Some(config)) = (scope.config, &o.config) {
        checks.push(
            async {
                match &cp.config {
                    Some(v) => {
                        let r = o
                            .timed(Step::Preflight, "parsing the config version", config.verify(v))
                            .await;
                        (
                            format!("config version {v} parses"),
                            r.map(|c| {
                                let mut d = format!("{} keys", c.keys.len());
                                for w in c.warnings {
                                    d.push_str("; warning: ");
                                    d.push_str(&w);
                                }
                                d
                            }),
                        )
                    }
                    None => ("config version".to_owned(), missing("config version")),
                }
            }
            .boxed(),
        );
    }
    if let (true, false, Some(db), Some(snapshot)) =
        (scope.database, request.force, &o.database, &cp.snapshot)
    {
        checks.push(
            async move {
                let r = o
                    .timed(
                        Step::Preflight,
                        "asking where the live database comes from",
                        db.live_source(),
                    )
                    .await;
                let r = match r {
                    Ok(Some(live)) if &live == snapshot => Err(AdapterError::new(
                        ErrorKind::Conflict,
                        format!(
                            "the live database already is snapshot {snapshot} of checkpoint {}, switched in by an earlier \
                             rollback, with every write made into it since: rolling back to it again would set those \
                             writes aside (kept, not deleted); leave the database out of the scope, or force it",
                            cp.id
                        ),
                    )),
                    Ok(_) => Ok("not already this checkpoint's copy".to_owned()),
                    Err(e) => Ok(format!("cannot tell ({e})")),
                };
                (
                    "the live database is not already the target's copy".to_owned(),
                    r,
                )
            }
            .boxed(),
        );
    }
    let (items, failures) = run_checks(checks).await;
    if check_live && failures.is_empty() && !scope.database && request.code_strategy == CodeStrategy::Checkout
    {
        if let Some(what) = live_match(o, cp, request).await {
            return Err(RollbackError::TargetIsLive {
                checkpoint: cp.id.clone(),
                what,
            });
        }
    }
    Ok((items, failures))
}

/// When every part in scope already is what the checkpoint holds, says what matched.
async fn live_match(o: &Orchestrator, cp: &Checkpoint, request: &RollbackRequest) -> Option<String> {
    let mut matched = Vec::new();
    if request.scope.code {
        let code = o.code.as_ref()?;
        let current = o
            .timed(Step::Preflight, "reading the live revision", code.current())
            .await
            .ok()?;
        if Some(&current.id) != cp.revision.as_ref() {
            return None;
        }
        matched.push(format!("revision {}", current.short));
    }
    if request.scope.config {
        let config = o.config.as_ref()?;
        let wanted = cp.config.as_ref()?;
        let live = o
            .timed(Step::Preflight, "reading the live config", config.current())
            .await
            .ok()?;
        let diff = o
            .timed(
                Step::Preflight,
                "comparing configs",
                config.diff(wanted, &live.id),
            )
            .await
            .ok()?;
        if !diff.is_empty() {
            return None;
        }
        matched.push(format!("config {wanted}"));
    }
    Some(matched.join(", "))
}
