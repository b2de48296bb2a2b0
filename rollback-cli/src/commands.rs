//! Each command: load the config, wire the adapters, ask the library, print. No rollback
//! decision is made here.

use crate::args::{scenario_name, Cli, Command, ReportFormat, Target};
use crate::exit;
use crate::output::Printer;
use chrono::Utc;
use rollback_cli::config::{self, Config};
use rollback_cli::{init, wire};
use rollback_core::progress::{self, ProgressEvent};
use rollback_core::{
    Cancel, Checkpoint, Outcome, ProgressKind, RollbackError, RollbackPlan, RollbackReport, RollbackRequest,
    RollbackTarget, Scenario, Scope, Step, WatchdogEvent,
};
use serde_json::json;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

/// Runs the command; returns the exit code.
pub async fn dispatch(cli: Cli, printer: &mut Printer) -> u8 {
    if let Command::Init { dir, force } = &cli.command {
        return init_file(dir, *force, printer).await;
    }
    if let Command::Agent { stdio } = cli.command {
        return agent(&cli.config, stdio).await;
    }
    let config = match load(&cli.config).await {
        Ok(c) => c,
        Err(e) => {
            printer.warn(format!("{e}"));
            return exit::CONFIG;
        }
    };
    let code = match cli.command {
        Command::Init { .. } | Command::Agent { .. } => exit::OK,
        Command::Check => check(&config, printer).await,
        Command::Checkpoint { label } => checkpoint(&config, &label, printer).await,
        Command::MarkGood { id } => mark_good(&config, &id, printer).await,
        Command::List => list(&config, printer).await,
        Command::Prune { keep } => prune(&config, keep, printer).await,
        Command::Plan(target) => plan(&config, &target, printer).await,
        Command::Run { target, reason, yes } => run(&config, &target, &reason, yes, printer).await,
        Command::Resume { handled: None } => resume(&config, printer).await,
        Command::Resume { handled: Some(note) } => close_halted(&config, &note, printer).await,
        Command::Status => status(&config, printer).await,
        Command::Unlock { force, yes } => unlock(&config, force, yes, printer).await,
        Command::Investigate { reason } => investigate(&config, &reason, printer).await,
        Command::Watch { shadow } => watch(&config, shadow, printer).await,
        Command::Report {
            id,
            last,
            format,
            output,
            force,
        } => {
            let to = output.map(|path| Output { path, force });
            report(&config, id, last, format, to, printer).await
        }
    };
    printer.finish();
    code
}

/// Reads and checks the config file, on a blocking thread.
async fn load(path: &Path) -> Result<Config, config::ConfigError> {
    let owned = path.to_path_buf();
    match tokio::task::spawn_blocking(move || config::load(&owned)).await {
        Ok(loaded) => loaded,
        Err(e) => Err(config::ConfigError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("reading the config file stopped: {e}")),
        }),
    }
}

/// A failure of a command, printed once, with its exit code.
struct Failed(u8);

/// What a command's body returns: its exit code, or a failure already printed.
type Done = Result<u8, Failed>;

fn library(printer: &Printer, error: &RollbackError) -> Failed {
    // The library's words for embedders (resume(), clear_stale_lock()) become the
    // operator's commands.
    match error {
        RollbackError::Unfinished {
            id,
            step,
            halted: true,
            ..
        } => printer.warn(format!(
            "rollback: rollback {id} halted at step `{step}`; `rollback status` says what is live"
        )),
        RollbackError::Unfinished { id, step, holder, .. } => printer.warn(format!(
            "rollback: rollback {id} did not finish (its process stopped at step `{step}`; {})",
            holder.as_ref().map_or_else(
                || "no lock is held".to_owned(),
                |h| format!("the lock is still held by {h}")
            )
        )),
        RollbackError::Locked { holder } => printer.warn(format!(
            "rollback: another rollback is running: lock held by {holder}"
        )),
        _ => printer.warn(format!("rollback: {}", operator_words(&with_causes(error)))),
    }
    match error {
        RollbackError::Unfinished { halted: true, .. } => printer.warn(
            "once the fault is cleared, run `rollback resume`: it takes the halted rollback up and ends with every part consistent and serving",
        ),
        RollbackError::Unfinished { .. } => printer.warn("run `rollback resume` to finish it first"),
        RollbackError::Locked { .. } => printer.warn(
            "wait for it, or if its holder is gone, `rollback unlock` clears a lock whose process is dead \
             (`rollback unlock --force` one held from another host, once you have checked it is gone)",
        ),
        RollbackError::NothingToResume => printer.warn("`rollback status` shows the last rollback"),
        RollbackError::State(_) => printer.warn(
            "nothing was stopped or changed: the state directory (or state store) must be writable, with room to write; fix it and run the command again",
        ),
        _ => {}
    }
    if let RollbackError::Preflight { failures } = error {
        for f in failures {
            printer.warn(format!(
                "  {} {}: {}",
                printer.mark(false),
                f.check,
                operator_words(&f.error.to_string())
            ));
        }
    }
    if let Some(report) = error.report() {
        if let Outcome::Halted { statement, .. } = &report.outcome {
            printer.warn(format!("\nWHAT IS LIVE NOW:\n{statement}"));
        }
    }
    Failed(exit::of_error(error))
}

async fn wired(
    config: &Config,
    progress: Option<progress::ProgressSink>,
    printer: &Printer,
) -> Result<wire::Wired, Failed> {
    let wired = wire::wire(config, progress).await;
    wired.map_err(|e| wire_failed(printer, &e))
}

/// [`wired`] for commands that can do their work with the hosts that answer (the state
/// lives on this box): an unreachable host is named, never the end of the command.
async fn wired_tolerant(
    config: &Config,
    progress: Option<progress::ProgressSink>,
    printer: &Printer,
) -> Result<wire::Wired, Failed> {
    let wired = wire::wire_tolerant(config, progress).await;
    let w = wired.map_err(|e| wire_failed(printer, &e))?;
    for (host, why) in &w.unreachable {
        printer.warn(format!(
            "rollback: host {host} could not be reached ({why}): it was not asked"
        ));
    }
    Ok(w)
}

/// The library's calls named in a message (for embedders) as the commands an operator
/// types.
fn operator_words(text: &str) -> String {
    [
        ("mark_good() one", "mark one good with `rollback mark-good ID`"),
        ("checkpoint()", "`rollback checkpoint`"),
        ("checkpoints()", "`rollback list`"),
        ("clear_stale_lock()", "`rollback unlock`"),
        ("journals()", "`rollback status`"),
        ("resume()", "`rollback resume`"),
        (
            "leave the database out of the scope, or force it",
            "leave the database out (`--scope code,config`), or pass `--force`",
        ),
    ]
    .iter()
    .fold(text.to_owned(), |t, (call, command)| t.replace(call, command))
}

/// `error`'s message followed by each cause it does not already say (a full disk reads
/// "... : No space left on device", not just "cannot write ...").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(&format!(": {said}"));
        }
        cause = c.source();
    }
    text
}

/// An unreachable host is a refusal (nothing was changed, the config may well be right);
/// anything else is the config's.
fn wire_failed(printer: &Printer, e: &wire::WireError) -> Failed {
    printer.warn(format!("rollback: {}", with_causes(e)));
    if e.is_unreachable_host() {
        printer.warn("nothing was stopped or changed; once the host answers `ssh`, run the command again");
        Failed(exit::REFUSED)
    } else {
        Failed(exit::CONFIG)
    }
}

fn code_of(result: Done) -> u8 {
    match result {
        Ok(code) | Err(Failed(code)) => code,
    }
}

/// `rollback init`: looks at `dir` and writes `dir/rollback.toml`, on a blocking thread
/// (it reads the directory and writes a file).
async fn init_file(dir: &Path, force: bool, printer: &Printer) -> u8 {
    let dir = dir.to_path_buf();
    let written = tokio::task::spawn_blocking(move || -> Result<PathBuf, (u8, String)> {
        let path = dir.join("rollback.toml");
        if path.exists() && !force {
            return Err((
                exit::REFUSED,
                format!(
                    "{} exists; keep it, or overwrite it with `rollback init --force`",
                    path.display()
                ),
            ));
        }
        let text = init::init_text(&dir);
        std::fs::write(&path, text)
            .map_err(|e| (exit::SOFTWARE, format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    })
    .await
    .unwrap_or_else(|e| Err((exit::SOFTWARE, format!("writing rollback.toml stopped: {e}"))));
    match written {
        Ok(path) => {
            printer.result(
                "init",
                &json!({ "path": path }),
                format!(
                    "wrote {}: read it, fill in what is marked TODO, then run `rollback check`",
                    path.display()
                ),
            );
            exit::OK
        }
        Err((code, message)) => {
            printer.warn(message);
            code
        }
    }
}

async fn check(config: &Config, printer: &mut Printer) -> u8 {
    code_of(
        async {
            let w = wired(config, None, printer).await?;
            printer.say(format!(
                "{} config {} parses",
                printer.mark(true),
                config.file.display()
            ));
            for h in &w.hosts {
                let hello = h.hello();
                printer.say(format!(
                    "{} host {}: agent reached over ssh, serving app {} ({})",
                    printer.mark(true),
                    h.host(),
                    hello.app,
                    hello.has.join(", ")
                ));
            }
            let hosts: Vec<&str> = w.hosts.iter().map(|h| h.host()).collect();
            match w.orchestrator.check_ready().await {
                Ok(items) => {
                    for i in &items {
                        printer.say(format!("{} {}", printer.mark(true), i.text));
                    }
                    printer.result(
                        "check",
                        &json!({ "ready": true, "checks": items, "hosts": hosts }),
                        "ready to roll back",
                    );
                    Ok(exit::OK)
                }
                Err(e) => Err(library(printer, &e)),
            }
        }
        .await,
    )
}

fn describe_checkpoint(c: &Checkpoint) -> String {
    let holds: Vec<&str> = [
        c.snapshot.as_ref().map(|_| "database"),
        c.revision.as_ref().map(|_| "code"),
        c.config.as_ref().map(|_| "config"),
    ]
    .into_iter()
    .flatten()
    .collect();
    format!(
        "{} `{}` ({}){}",
        c.id,
        c.label,
        holds.join(", "),
        if c.good { ", good" } else { ", NOT good" }
    )
}

async fn checkpoint(config: &Config, label: &str, printer: &mut Printer) -> u8 {
    code_of(async {
        let w = wired(config, None, printer).await?;
        let c = w.orchestrator.checkpoint(label).await.map_err(|e| library(printer, &e))?;
        for warning in &c.warnings {
            printer.warn(format!("warning: {warning}"));
        }
        let hint = if c.good {
            String::new()
        } else {
            format!("\nnot marked good (no health probe passed): once the release is healthy, `rollback mark-good {}`", c.id)
        };
        printer.result("checkpoint", &c, format!("checkpoint {}{hint}", describe_checkpoint(&c)));
        Ok(exit::OK)
    }
    .await)
}

async fn mark_good(config: &Config, id: &str, printer: &mut Printer) -> u8 {
    code_of(
        async {
            let w = wired(config, None, printer).await?;
            let c = w
                .orchestrator
                .mark_good(&rollback_core::CheckpointId::new(id))
                .await
                .map_err(|e| library(printer, &e))?;
            printer.result(
                "checkpoint",
                &c,
                format!("marked good: {}", describe_checkpoint(&c)),
            );
            Ok(exit::OK)
        }
        .await,
    )
}

fn age(at: chrono::DateTime<Utc>) -> String {
    let secs = (Utc::now() - at).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 2 * 3600 => format!("{}m ago", s / 60),
        s if s < 2 * 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

fn size(bytes: Option<u64>) -> String {
    match bytes {
        None => "-".into(),
        Some(b) if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        Some(b) if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        Some(b) => format!("{:.1} KiB", b as f64 / 1024.0),
    }
}

async fn list(config: &Config, printer: &mut Printer) -> u8 {
    code_of(
        async {
            let w = wired_tolerant(config, None, printer).await?;
            let o = &w.orchestrator;
            let checkpoints = o.checkpoints().await.map_err(|e| library(printer, &e))?;
            let snapshots = o.snapshots().await.unwrap_or_default();
            let rows: Vec<serde_json::Value> = checkpoints
                .iter()
                .map(|c| {
                    let snap = c
                        .snapshot
                        .as_ref()
                        .and_then(|s| snapshots.iter().find(|i| &i.id == s));
                    json!({
                        "id": c.id, "label": c.label, "created_at": c.created_at, "good": c.good,
                        "revision": c.revision, "snapshot": c.snapshot, "config": c.config,
                        "snapshot_bytes": snap.and_then(|s| s.size_bytes),
                        "warnings": c.warnings,
                    })
                })
                .collect();
            let mut text = format!(
                "{:<40} {:>9} {:<5} {:<10} {:>10}  {:<16} label",
                "checkpoint", "age", "good", "revision", "snapshot", "holds"
            );
            for c in &checkpoints {
                let snap = c
                    .snapshot
                    .as_ref()
                    .and_then(|s| snapshots.iter().find(|i| &i.id == s));
                let holds: Vec<&str> = [
                    c.snapshot.as_ref().map(|_| "db"),
                    c.revision.as_ref().map(|_| "code"),
                    c.config.as_ref().map(|_| "config"),
                ]
                .into_iter()
                .flatten()
                .collect();
                let rev: String = c
                    .revision
                    .as_ref()
                    .map_or_else(|| "-".into(), |r| r.as_str().chars().take(10).collect());
                text.push_str(&format!(
                    "\n{:<40} {:>9} {:<5} {:<10} {:>10}  {:<16} {}",
                    c.id.as_str(),
                    age(c.created_at),
                    if c.good { "yes" } else { "no" },
                    rev,
                    size(snap.and_then(|s| s.size_bytes)),
                    holds.join(","),
                    c.label
                ));
            }
            if checkpoints.is_empty() {
                text = "no checkpoints yet: take one before a deploy with `rollback checkpoint --label ..`"
                    .into();
            }
            printer.result("checkpoints", &json!({ "checkpoints": rows }), text);
            Ok(exit::OK)
        }
        .await,
    )
}

async fn prune(config: &Config, keep: usize, printer: &mut Printer) -> u8 {
    code_of(
        async {
            let w = wired(config, None, printer).await?;
            let report = w
                .orchestrator
                .prune(keep)
                .await
                .map_err(|e| library(printer, &e))?;
            let mut text = format!("removed {} checkpoint(s)", report.removed.len());
            for id in &report.removed {
                text.push_str(&format!("\n  removed {id}"));
            }
            for (id, why) in &report.protected {
                text.push_str(&format!("\n  kept {id}: {why}"));
            }
            for p in &report.problems {
                printer.warn(format!("warning: {p}"));
            }
            let value =
                json!({ "removed": report.removed, "kept": report.protected, "problems": report.problems });
            printer.result("prune", &value, text);
            Ok(exit::OK)
        }
        .await,
    )
}

/// The library request for `target`.
fn request_of(target: &Target, reason: &str) -> RollbackRequest {
    let mut request = match target.scenario {
        Some(scenario) => RollbackRequest::for_scenario(scenario, target.to.clone(), reason),
        None => RollbackRequest::new(target.to.clone(), reason, Scope::ALL),
    };
    if let Some(scope) = target.scope {
        request.scope = scope;
    }
    request
        .with_force(target.force)
        .with_trigger(format!("operator {} (rollback CLI)", operator()))
}

fn operator() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into())
}

fn plan_text(plan: &RollbackPlan, target: &RollbackTarget) -> String {
    let mut text = format!("Plan: roll back {} to {target}", plan.scope);
    if let Some(s) = plan.scenario {
        text.push_str(&format!(" (scenario {})", scenario_name(s)));
    }
    for s in &plan.steps {
        let what = match &s.skipped {
            Some(why) => format!("skipped: {why}"),
            None => s.actions.join("; "),
        };
        text.push_str(&format!(
            "\n  {:>2}. {:<40} {what}",
            s.step.number(),
            s.step.describe()
        ));
    }
    text
}

async fn plan(config: &Config, target: &Target, printer: &mut Printer) -> u8 {
    code_of(
        async {
            let w = wired(config, None, printer).await?;
            let request = request_of(target, "plan");
            let plan = w
                .orchestrator
                .dry_run(&request)
                .await
                .map_err(|e| library(printer, &e))?;
            printer.result("plan", &plan, plan_text(&plan, &target.to));
            Ok(exit::OK)
        }
        .await,
    )
}

/// Drives `fut` while printing the library's progress events; `on_event` sees each first.
async fn with_progress<T>(
    fut: impl Future<Output = T>,
    events: &mut UnboundedReceiver<ProgressEvent>,
    printer: &mut Printer,
    mut on_event: impl FnMut(&ProgressEvent),
) -> T {
    tokio::pin!(fut);
    let out = loop {
        tokio::select! {
            out = &mut fut => break out,
            Some(e) = events.recv() => {
                on_event(&e);
                printer.progress(&e);
            }
        }
    };
    while let Ok(e) = events.try_recv() {
        on_event(&e);
        printer.progress(&e);
    }
    out
}

fn summary(report: &RollbackReport) -> String {
    let mut text = format!("\nrollback {}: {}", report.id, report.outcome);
    if let Some(d) = report.downtime.as_ref().and_then(|d| d.duration) {
        text.push_str(&format!("\ndowntime: {:.2}s", d.as_secs_f64()));
    }
    text.push_str(&format!("\ntotal: {:.1}s", report.total_duration.as_secs_f64()));
    for n in &report.notes {
        text.push_str(&format!("\nnote: {n}"));
    }
    for a in &report.next_actions {
        text.push_str(&format!("\nnext: {a}"));
    }
    text.push_str(&format!("\nthe full report: rollback report {}", report.id));
    text
}

/// Asks `question` on the terminal and reads the answer, on a blocking thread; only `y` or
/// `yes` is a yes.
async fn ask(question: String) -> bool {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        print!("{question} [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes" | "YES")
    })
    .await
    .unwrap_or(false)
}

/// SIGINT or SIGTERM, each time one comes.
async fn interrupt() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(config: &Config, target: &Target, reason: &str, yes: bool, printer: &mut Printer) -> u8 {
    code_of(async {
        let (sink, mut events) = progress::channel();
        let w = wired_tolerant(config, Some(sink), printer).await?;
        let o = w.orchestrator.clone();
        let request = request_of(target, reason);
        if request.scenario == Some(Scenario::PerformanceDegradation) {
            return investigate_with(&o, request, printer).await;
        }
        let plan = o.dry_run(&request).await.map_err(|e| library(printer, &e))?;
        if !yes {
            if !printer.interactive() {
                printer.warn(plan_text(&plan, &target.to));
                printer.warn("\nnot a terminal: nothing was asked, nothing was done; add --yes to roll back without asking");
                return Err(Failed(exit::USAGE));
            }
            printer.say(plan_text(&plan, &target.to));
            if !ask(format!("\nRoll `{}` back now?", w.app)).await {
                printer.say("nothing was done");
                return Err(Failed(exit::CANCELLED));
            }
        }
        let cancel = Cancel::new();
        let stop_begun = Arc::new(AtomicBool::new(false));
        let signals = {
            let (cancel, stop_begun) = (cancel.clone(), stop_begun.clone());
            tokio::spawn(async move {
                loop {
                    interrupt().await;
                    if stop_begun.load(Ordering::SeqCst) {
                        eprintln!(
                            "\nrollback: the app has been stopped, so the rollback goes on to a consistent end (finished, or the pre-rollback state put back); stopping now would leave it down. Wait for it; if this process is killed, `rollback resume` finishes it."
                        );
                    } else {
                        eprintln!("\nrollback: calling the rollback off; the app has not been stopped and nothing it uses will change");
                        cancel.cancel();
                    }
                }
            })
        };
        let flag = stop_begun.clone();
        let result = with_progress(o.rollback_with_cancel(request, cancel), &mut events, printer, |e| {
            if e.step >= Step::Stop && e.kind == ProgressKind::Started {
                flag.store(true, Ordering::SeqCst);
            }
        })
        .await;
        signals.abort();
        match result {
            Ok(report) => {
                printer.result("report", &report, summary(&report));
                Ok(exit::of_outcome(&report.outcome))
            }
            Err(e) => {
                let failed = library(printer, &e);
                if let Some(report) = e.report() {
                    printer.result("report", report, summary(report));
                }
                Err(failed)
            }
        }
    }
    .await)
}

async fn resume(config: &Config, printer: &mut Printer) -> u8 {
    code_of(
        async {
            let (sink, mut events) = progress::channel();
            let w = wired_tolerant(config, Some(sink), printer).await?;
            let result = with_progress(w.orchestrator.resume(), &mut events, printer, |_| {}).await;
            match result {
                Ok(report) => {
                    printer.result("report", &report, summary(&report));
                    Ok(exit::of_outcome(&report.outcome))
                }
                Err(e) => {
                    let failed = library(printer, &e);
                    if let Some(report) = e.report() {
                        printer.result("report", report, summary(report));
                    }
                    Err(failed)
                }
            }
        }
        .await,
    )
}

async fn close_halted(config: &Config, note: &str, printer: &mut Printer) -> u8 {
    code_of(
        async {
            let w = wired_tolerant(config, None, printer).await?;
            let journal = w
                .orchestrator
                .close_halted(note)
                .await
                .map_err(|e| library(printer, &e))?;
            printer.result(
                "closed",
                &json!({ "id": journal.id, "note": note }),
                format!(
                    "rollback {} is closed as handled by hand; nothing was changed (`rollback report {}` keeps its statement and your note)",
                    journal.id, journal.id
                ),
            );
            Ok(exit::OK)
        }
        .await,
    )
}

async fn status(config: &Config, printer: &mut Printer) -> u8 {
    code_of(async {
        let w = wired_tolerant(config, None, printer).await?;
        let o = &w.orchestrator;
        let live = o.live_revision().await;
        let holder = o.lock_holder().await.map_err(|e| library(printer, &e))?;
        let journals = o.journals().await.map_err(|e| library(printer, &e))?;
        let unfinished = journals.iter().find(|j| j.is_unfinished());
        let last = journals.first();
        let last_good = o.checkpoints().await.map_err(|e| library(printer, &e))?.into_iter().find(|c| c.good);
        let mut text = format!("app `{}`", w.app);
        match &live {
            Ok(Some(r)) => text.push_str(&format!("\nlive revision: {} {}", r.short, r.subject)),
            Ok(None) => {}
            Err(RollbackError::Preflight { failures }) => text.push_str(&format!(
                "\nlive revision: unreadable ({})",
                failures.iter().map(|f| f.error.to_string()).collect::<Vec<_>>().join("; ")
            )),
            Err(e) => text.push_str(&format!("\nlive revision: unreadable ({e})")),
        }
        match &holder {
            Some(h) => text.push_str(&format!("\nlock: held by {h}")),
            None => text.push_str("\nlock: free"),
        }
        match unfinished {
            Some(j) if j.is_halted() => {
                text.push_str(&format!(
                    "\nHALTED: rollback {} halted at `{}`: once the fault is cleared, run `rollback resume` (put right by hand? `rollback resume --handled \"what you did\"` closes it)",
                    j.id,
                    j.stopped_at_step()
                ));
                if let rollback_core::JournalStatus::Finished(Outcome::Halted { statement, .. }) = &j.status {
                    text.push_str(&format!("\nwhat is live: {statement}"));
                }
            }
            Some(j) => text.push_str(&format!(
                "\nUNFINISHED: rollback {} stopped at `{}`: run `rollback resume`",
                j.id,
                j.last_step()
            )),
            None => {}
        }
        for (host, why) in &w.unreachable {
            text.push_str(&format!("\nhost {host}: could not be reached ({why}); not asked"));
        }
        match last {
            Some(j) => {
                let outcome = match &j.status {
                    rollback_core::JournalStatus::Finished(o) => o.to_string(),
                    other => format!("{other:?}"),
                };
                text.push_str(&format!("\nlast rollback: {} ({}, {}): {outcome}", j.id, j.request.reason, age(j.started_at)));
            }
            None => text.push_str("\nlast rollback: none"),
        }
        match &last_good {
            Some(c) => text.push_str(&format!("\nlast good checkpoint: {}", describe_checkpoint(c))),
            None => text.push_str("\nlast good checkpoint: none (take one with `rollback checkpoint` while healthy)"),
        }
        let value = json!({
            "app": w.app,
            "live_revision": live.as_ref().ok().and_then(|r| r.as_ref().map(|r| &r.id)),
            "lock": holder,
            "unfinished": unfinished.map(|j| &j.id),
            "halted": unfinished.is_some_and(|j| j.is_halted()),
            "unreachable_hosts": w.unreachable.iter().map(|(h, why)| json!({ "host": h, "why": why })).collect::<Vec<_>>(),
            "last_rollback": last.map(|j| json!({ "id": j.id, "status": j.status, "reason": j.request.reason, "started_at": j.started_at })),
            "last_good_checkpoint": last_good.as_ref().map(|c| &c.id),
        });
        printer.result("status", &value, text);
        Ok(if unfinished.is_some() {
            exit::LOCKED
        } else if !w.unreachable.is_empty() {
            exit::REFUSED
        } else {
            exit::OK
        })
    }
    .await)
}

async fn unlock(config: &Config, force: bool, yes: bool, printer: &mut Printer) -> u8 {
    code_of(
        async {
            let w = wired_tolerant(config, None, printer).await?;
            if force {
                return force_unlock(&w, yes, printer).await;
            }
            match w.orchestrator.clear_stale_lock(false).await {
                Ok(Some(holder)) => {
                    printer.result(
                        "unlock",
                        &json!({ "cleared": holder, "forced": false }),
                        format!("cleared the lock of {holder} (its process is gone)"),
                    );
                    Ok(exit::OK)
                }
                Ok(None) => {
                    printer.result("unlock", &json!({ "cleared": null }), "the lock is free");
                    Ok(exit::OK)
                }
                Err(RollbackError::Locked { holder }) => {
                    let (here, _) = where_is(&holder).await;
                    let why = if here {
                        format!("its process {} is running on this host", holder.pid)
                    } else {
                        format!(
                            "it was taken on host {}, so whether its process {} is gone cannot be checked from here",
                            holder.host, holder.pid
                        )
                    };
                    printer.warn(format!("rollback: the lock is held by {holder}; not cleared: {why}"));
                    printer.warn(format!(
                        "wait for that rollback; or, if you have checked by hand that process {} on host {} is gone \
                         (its box crashed, say), `rollback unlock --force` clears the lock",
                        holder.pid, holder.host
                    ));
                    Err(Failed(exit::LOCKED))
                }
                Err(e) => Err(library(printer, &e)),
            }
        }
        .await,
    )
}

/// Whether `holder` is on this host, and whether its process runs here now (read from
/// `/proc` on a blocking thread; unknown counts as not running, for a warning only).
async fn where_is(holder: &rollback_core::LockHolder) -> (bool, bool) {
    let pid = holder.pid;
    let host = holder.host.clone();
    tokio::task::spawn_blocking(move || {
        let here = host == rollback_core::sys::host_name();
        (here, here && rollback_core::sys::pid_alive(pid))
    })
    .await
    .unwrap_or((false, false))
}

/// `rollback unlock --force`: shows the holder, says what must be checked by hand, asks
/// (or needs `--yes`), then clears the lock whoever holds it, unless it changed hands
/// meanwhile.
async fn force_unlock(w: &wire::Wired, yes: bool, printer: &mut Printer) -> Done {
    let o = &w.orchestrator;
    let Some(holder) = o.lock_holder().await.map_err(|e| library(printer, &e))? else {
        printer.result("unlock", &json!({ "cleared": null }), "the lock is free");
        return Ok(exit::OK);
    };
    let (here, alive) = where_is(&holder).await;
    let mut text = format!(
        "The rollback lock of app `{}` is held by:\n  pid       {}\n  host      {}{}\n  since     {} ({})\n  rollback  {}",
        w.app,
        holder.pid,
        holder.host,
        if here { " (this host)" } else { "" },
        holder.since.to_rfc3339(),
        age(holder.since),
        holder.rollback,
    );
    text.push_str(&format!(
        "\n--force clears it WITHOUT checking that this process is gone. Check by hand first that process {} \
         is really gone on host {} (e.g. `ssh {} ps -p {}`, or the box is down for good): clearing the lock of \
         a rollback that still runs lets a second rollback run against the same app at the same time.",
        holder.pid, holder.host, holder.host, holder.pid
    ));
    if alive {
        text.push_str(&format!(
            "\nWARNING: process {} is running on this host right now.",
            holder.pid
        ));
    }
    if !yes {
        if !printer.interactive() {
            printer.warn(text);
            printer.warn(
                "\nnot a terminal: nothing was asked, the lock was not cleared; once you have checked, add --yes",
            );
            return Err(Failed(exit::USAGE));
        }
        printer.say(text);
        let question = format!(
            "\nHave you checked that process {} on host {} is gone, and clear its lock?",
            holder.pid, holder.host
        );
        if !ask(question).await {
            printer.say("nothing was done: the lock is still held");
            return Err(Failed(exit::CANCELLED));
        }
    } else {
        printer.say(text);
    }
    // What was confirmed is this holder: a lock taken since (by a new rollback) is not it.
    match o.lock_holder().await.map_err(|e| library(printer, &e))? {
        Some(now) if now.token == holder.token => {}
        Some(now) => {
            printer.warn(format!(
                "rollback: the lock changed hands meanwhile and is now held by {now}; nothing was cleared: \
                 run `rollback unlock --force` again to look at the new holder"
            ));
            return Err(Failed(exit::LOCKED));
        }
        None => {
            printer.result(
                "unlock",
                &json!({ "cleared": null }),
                "the lock was released meanwhile: it is free",
            );
            return Ok(exit::OK);
        }
    }
    // Only the holder that was shown and confirmed: a lock taken since stays.
    if !o.clear_lock_of(&holder).await.map_err(|e| library(printer, &e))? {
        printer.warn(
            "rollback: the lock changed hands while it was being cleared; nothing of the new holder was touched: run `rollback unlock --force` again",
        );
        return Err(Failed(exit::LOCKED));
    }
    let cleared = holder;
    let mut text = format!("cleared the lock of {cleared} (forced)");
    let unfinished = o
        .journals()
        .await
        .ok()
        .and_then(|js| js.into_iter().find(|j| j.is_unfinished()));
    if let Some(j) = &unfinished {
        text.push_str(&format!(
            "\nrollback {} did not finish (it stopped at `{}`): `rollback resume` finishes it",
            j.id,
            j.last_step()
        ));
    }
    printer.result(
        "unlock",
        &json!({ "cleared": cleared, "forced": true, "unfinished": unfinished.as_ref().map(|j| &j.id) }),
        text,
    );
    Ok(exit::OK)
}

async fn investigate_with(
    o: &rollback_core::Orchestrator,
    request: RollbackRequest,
    printer: &mut Printer,
) -> Done {
    let report = o.investigate(request).await.map_err(|e| library(printer, &e))?;
    printer.result("report", &report, report.to_markdown());
    Ok(exit::OK)
}

async fn investigate(config: &Config, reason: &str, printer: &mut Printer) -> u8 {
    code_of(
        async {
            let w = wired(config, None, printer).await?;
            let request = RollbackRequest::for_scenario(
                Scenario::PerformanceDegradation,
                RollbackTarget::LastGood,
                reason,
            );
            investigate_with(&w.orchestrator, request, printer).await
        }
        .await,
    )
}

fn watchdog_line(e: &WatchdogEvent, shadow: bool) -> String {
    let prefix = if shadow { "[shadow] " } else { "" };
    let what = match e {
        WatchdogEvent::Fired { firing, decision } => format!(
            "rule `{}` fired ({}): {} ({})",
            firing.rule, firing.summary, decision.decision, decision.reason
        ),
        WatchdogEvent::RollbackStarted { rule } => {
            format!("rolling back to the last good checkpoint (rule `{rule}`)")
        }
        WatchdogEvent::RollbackFinished { outcome } => match outcome {
            Ok(o) => format!("rollback finished: {o}"),
            Err(e) => format!("rollback failed: {e}"),
        },
        WatchdogEvent::RollbackSkipped { rule, reason } => format!("no rollback for `{rule}`: {reason}"),
        WatchdogEvent::IncidentOpened { title } => format!("incident opened: {title}"),
        WatchdogEvent::IncidentResolved { summary } => format!("incident resolved: {summary}"),
        other => format!("{other:?}"),
    };
    format!("{} {prefix}{what}", Utc::now().format("%H:%M:%S"))
}

async fn watch(config: &Config, shadow: bool, printer: &mut Printer) -> u8 {
    code_of(async {
        let w = wired(config, None, printer).await?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watchdog = wire::watchdog_builder(&w, shadow).events(tx).build().map_err(|e| library(printer, &e))?;
        printer.say(format!(
            "watching `{}` every {:.0}s{}; Ctrl-C or SIGTERM stops",
            w.app,
            w.watchdog.interval.as_secs_f64(),
            if shadow { " in shadow mode: nothing is rolled back or sent" } else { "" }
        ));
        let mut run = tokio::spawn(watchdog.run(interrupt()));
        let run = loop {
            tokio::select! {
                joined = &mut run => break joined,
                Some(e) = rx.recv() => {
                    if printer.mode() == crate::output::Mode::Json {
                        crate::output::json_line("watchdog", &json!({ "shadow": shadow, "event": e }));
                    } else {
                        printer.say(watchdog_line(&e, shadow));
                    }
                }
            }
        };
        let run = run.map_err(|e| {
            printer.warn(format!("rollback: the watchdog stopped unexpectedly: {e}"));
            Failed(exit::SOFTWARE)
        })?;
        while let Ok(e) = rx.try_recv() {
            printer.say(watchdog_line(&e, shadow));
        }
        let text = format!(
            "stopped: {} event(s), {} notice(s) sent, {} rollback(s)",
            run.events.len(),
            run.notices.len(),
            run.reports.len()
        );
        let value = json!({ "events": run.events.len(), "notices": run.notices.len(), "rollbacks": run.reports.iter().map(|r| &r.id).collect::<Vec<_>>() });
        printer.result("watch", &value, text);
        Ok(exit::OK)
    }
    .await)
}

/// Where `report --output` writes.
struct Output {
    path: PathBuf,
    /// Replace an existing file.
    force: bool,
}

/// `id`, or the newest rollback without one (`--last` says so explicitly); printed, or
/// written to `output`.
async fn report(
    config: &Config,
    id: Option<String>,
    _last: bool,
    format: Option<ReportFormat>,
    output: Option<Output>,
    printer: &mut Printer,
) -> u8 {
    code_of(
        async {
            let w = wired_tolerant(config, None, printer).await?;
            let o = &w.orchestrator;
            let id = match id {
                Some(id) => rollback_core::RollbackId::new(id),
                None => match o.journals().await.map_err(|e| library(printer, &e))?.first() {
                    Some(j) => j.id.clone(),
                    None => {
                        printer.warn("no rollback has run yet");
                        return Err(Failed(exit::REFUSED));
                    }
                },
            };
            let report = o.report_of(&id).await.map_err(|e| library(printer, &e))?;
            let json_mode = printer.mode() == crate::output::Mode::Json;
            let Some(output) = output else {
                // On stdout, --json means JSON whatever the format.
                let text = match format {
                    _ if json_mode => report.to_json(),
                    Some(ReportFormat::Json) => report.to_json(),
                    Some(ReportFormat::Html) => report.to_html(),
                    Some(ReportFormat::Md) | None => report.to_markdown(),
                };
                crate::output::out(text);
                return Ok(exit::OK);
            };
            let format = format.unwrap_or(if json_mode {
                ReportFormat::Json
            } else {
                ReportFormat::Md
            });
            let text = match format {
                ReportFormat::Json => report.to_json(),
                ReportFormat::Html => report.to_html(),
                ReportFormat::Md => report.to_markdown(),
            };
            write_report(&output, text.into_bytes())
                .await
                .map_err(|(code, message)| {
                    printer.warn(message);
                    Failed(code)
                })?;
            let name = match format {
                ReportFormat::Json => "json",
                ReportFormat::Html => "html",
                ReportFormat::Md => "md",
            };
            printer.result(
                "report",
                &json!({ "id": report.id, "format": name, "path": output.path }),
                format!("wrote the report of {} to {}", report.id, output.path.display()),
            );
            Ok(exit::OK)
        }
        .await,
    )
}

/// Writes `bytes` to the new file `output.path` (readable by others: a report holds no
/// secret), or over an existing one with `force` (replaced atomically). An error is the
/// exit code and what to say.
async fn write_report(output: &Output, bytes: Vec<u8>) -> Result<(), (u8, String)> {
    const MODE: u32 = 0o644;
    let (path, force) = (output.path.clone(), output.force);
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if force {
            return rollback_core::sys::write_durable(&path, &bytes, MODE);
        }
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, MODE);
        let mut file = options.open(&path)?;
        let done = file.write_all(&bytes).and_then(|()| file.sync_all());
        if done.is_err() {
            // No half-written report left behind.
            let _ = std::fs::remove_file(&path);
        }
        done
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(format!("writing stopped: {e}"))));
    written.map_err(|e| {
        let shown = output.path.display();
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            (
                exit::REFUSED,
                format!("{shown} exists: nothing was written; name another file, or replace it with --force"),
            )
        } else {
            (exit::SOFTWARE, format!("cannot write the report to {shown}: {e}"))
        }
    })
}

/// `rollback agent`: serves this host's adapters over the agent protocol on stdin and
/// stdout until stdin ends. Nothing but protocol lines goes to stdout; what a human should
/// read goes to stderr (the log).
async fn agent(config_path: &Path, stdio: bool) -> u8 {
    if !stdio {
        eprintln!(
            "rollback agent: the agent only speaks over stdio: run `rollback agent --stdio` (an orchestrator \
             runs it through ssh, e.g. `ssh deploy@web-2 rollback agent --stdio --config /srv/web/rollback.toml`)"
        );
        return exit::USAGE;
    }
    let adapters = match load(config_path).await {
        Ok(config) => wire::host_adapters(&config)
            .await
            .map_err(|e| (e.to_string(), exit::CONFIG)),
        Err(e) => Err((e.to_string(), exit::CONFIG)),
    };
    let adapters = match adapters {
        Ok(a) => a,
        Err((message, code)) => {
            eprintln!("rollback agent: cannot serve: {message}");
            // The orchestrator reads stdout only: it is told why in the answer to its hello.
            refuse_first_request(&format!("the agent cannot serve: {message}")).await;
            return code;
        }
    };
    tracing::info!(app = %adapters.app, "agent serving on stdio");
    match rollback_fleet::serve(tokio::io::stdin(), tokio::io::stdout(), adapters).await {
        Ok(()) => exit::OK,
        Err(e @ rollback_fleet::FleetError::VersionMismatch { .. }) => {
            eprintln!("rollback agent: {e}");
            exit::REFUSED
        }
        Err(e) => {
            eprintln!("rollback agent: {e}");
            exit::SOFTWARE
        }
    }
}

/// How long an agent that cannot serve waits for the request it answers with why.
const REFUSAL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Answers the first request on stdin (the orchestrator's hello) with `message`, an error
/// of kind `invalid_input`.
async fn refuse_first_request(message: &str) {
    use rollback_fleet::protocol::{Outcome, Response, WireError};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let first = async {
        loop {
            match lines.next_line().await {
                Ok(Some(line)) if line.trim().is_empty() => continue,
                Ok(Some(line)) => return Some(line),
                Ok(None) | Err(_) => return None,
            }
        }
    };
    let Ok(Some(line)) = tokio::time::timeout(REFUSAL_WAIT, first).await else {
        return;
    };
    let id = serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
    let response = Response {
        id,
        result: Outcome::Err(WireError {
            kind: rollback_core::ErrorKind::InvalidInput,
            message: message.to_owned(),
        }),
    };
    let Ok(mut bytes) = serde_json::to_vec(&response) else {
        return;
    };
    bytes.push(b'\n');
    let mut stdout = tokio::io::stdout();
    if stdout.write_all(&bytes).await.is_ok() {
        let _ = stdout.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::with_causes;
    use rollback_core::{AdapterError, RollbackError};

    #[test]
    fn library_calls_are_named_as_commands() {
        let e = RollbackError::NoCheckpoint(
            "no checkpoint is marked good: take one with checkpoint() while healthy, or mark_good() one"
                .into(),
        );
        let text = super::operator_words(&e.to_string());
        assert!(!text.contains("()"), "{text}");
        assert!(
            text.contains("`rollback checkpoint`") && text.contains("`rollback mark-good ID`"),
            "{text}"
        );
    }

    #[test]
    fn the_cause_chain_is_printed_once() {
        let full = AdapterError::io(
            "writing the journal in /srv/state/journal",
            std::io::Error::other("No space left on device (os error 28)"),
        );
        let text = with_causes(&RollbackError::State(full));
        assert!(text.contains("No space left on device"), "{text}");
        assert_eq!(text.matches("writing the journal").count(), 1, "{text}");
    }
}
