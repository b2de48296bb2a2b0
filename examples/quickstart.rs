//! The quickstart: a real rollback, end to end, in a temp dir.
//!
//! Builds a real world (a temp PostgreSQL cluster, a git repository of a small Node app with
//! a build step, the app run by a real pm2 from a releases layout, a real `.env.production`),
//! takes a checkpoint at v1, deploys a broken v2, and lets the watchdog see the health check
//! fail and roll back to the checkpoint. Then it prints the report and shows that v1 answers
//! again, the data is v1's and the pre-rollback database is kept. Everything it started is
//! stopped and deleted at the end, also on Ctrl-C or failure.
//!
//! Run: `cargo run -p rollback-examples --example quickstart`

use rollback_core::automation::WatchdogRun;
use rollback_core::{
    progress, Condition, HttpProbe, Notice, Notifier, ProgressKind, Rule, Signal, Watchdog, WatchdogEvent,
};
use rollback_examples::{missing_requirements, DemoOptions, DemoWorld, DB};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The watchdog's windows, shortened for the demo (the runbook's is 5 minutes).
const DEMO_HEALTH_WINDOW: Duration = Duration::from_secs(3);
const DEMO_POLL: Duration = Duration::from_millis(250);

/// Prints the communication plan's notices as they go out.
struct PrintNotifier(Instant);

#[async_trait::async_trait]
impl Notifier for PrintNotifier {
    async fn notify(&self, notice: &Notice) -> Result<(), rollback_core::AdapterError> {
        println!(
            "  [{:>5.1}s] notice to {:<28} {}",
            self.0.elapsed().as_secs_f64(),
            notice.audience,
            notice.subject
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let missing = missing_requirements();
    if !missing.is_empty() {
        eprintln!("The quickstart needs real PostgreSQL, git, node and pm2. Missing:");
        for m in &missing {
            eprintln!("  - {m}");
        }
        eprintln!("Install them (see README: set-up), then run this again.");
        return ExitCode::from(2);
    }
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen for SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The world lives inside `run`: on a signal that future is dropped, which drops the
    // world (pm2 killed, cluster stopped, temp dir removed). Returning from `main` (never
    // `process::exit`) lets the runtime finish a cluster start still running on a blocking
    // thread, so even that cluster is dropped and stopped.
    let result = tokio::select! {
        r = run() => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted (Ctrl-C): cleaned up".into()),
        _ = terminate.recv() => Err("terminated (SIGTERM): cleaned up".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Aborts the task when dropped (the quickstart is interrupted): the watchdog must not
/// drive pm2 while the world is being torn down.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run() -> Result<(), rollback_examples::DemoError> {
    let t0 = Instant::now();
    let step = |msg: &str| println!("[{:>5.1}s] {msg}", t0.elapsed().as_secs_f64());

    step("building the world: PostgreSQL cluster, git repo (v1, v2), pm2, .env.production");
    let world = DemoWorld::start(DemoOptions::default()).await?;
    let result = demo(&world, &step).await;
    step("cleaning up: pm2 daemon, PostgreSQL cluster, temp dir");
    drop(world);
    result
}

async fn demo(world: &DemoWorld, step: &dyn Fn(&str)) -> Result<(), rollback_examples::DemoError> {
    step(&format!(
        "v1 is live: GET {} -> {:?}",
        world.health_url(),
        world.health_status()
    ));

    let (sink, mut events) = progress::channel();
    let orchestrator = Arc::new(world.orchestrator().await?.progress(sink).build()?);
    let checkpoint = orchestrator.checkpoint("v1 release").await?;
    step(&format!(
        "checkpoint {} at v1 (snapshot {:?}, revision {:?}, config {:?}), marked good: {}",
        checkpoint.id,
        checkpoint.snapshot.as_ref().map(ToString::to_string),
        checkpoint
            .revision
            .as_ref()
            .map(|r| r.to_string().chars().take(12).collect::<String>()),
        checkpoint.config.as_ref().map(ToString::to_string),
        checkpoint.good
    ));

    step("deploying v2: migration (renames users.email), new .env, build, switch, restart");
    world.deploy_v2().await?;
    step(&format!(
        "v2 is live: GET {} -> {:?}",
        world.health_url(),
        world.health_status()
    ));

    step(&format!(
        "watchdog on: health failing for {}s rolls back (DEMO window: the runbook's is 5 min), polling every {} ms",
        DEMO_HEALTH_WINDOW.as_secs(),
        DEMO_POLL.as_millis()
    ));
    let probe = HttpProbe::new(&world.health_url(), Duration::from_secs(1))?;
    let (tx, mut watch_events) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut rules = vec![Rule::new(
        "health",
        Condition::HealthFailing,
        DEMO_HEALTH_WINDOW,
        Signal::CompleteFailure,
    )];
    let mut builder = Watchdog::builder(Arc::clone(&orchestrator)).health_probe(probe);
    // Optional: the error-rate rule over a real Prometheus that scrapes your app, e.g.
    // ROLLBACK_PROMETHEUS_URL=http://127.0.0.1:9090 ROLLBACK_PROMETHEUS_SELECTOR='job="web"'.
    if let Ok(url) = std::env::var("ROLLBACK_PROMETHEUS_URL") {
        let selector =
            std::env::var("ROLLBACK_PROMETHEUS_SELECTOR").unwrap_or_else(|_| "job=\"$app\"".into());
        let prometheus = rollback_metrics::PrometheusMetrics::builder(url.clone())
            .selector(selector)
            .build()?;
        step(&format!(
            "watchdog reads the error rate from Prometheus at {url}: above 10% for {}s rolls back (DEMO window: the runbook's is 10 min)",
            DEMO_HEALTH_WINDOW.as_secs()
        ));
        builder = builder.metrics(prometheus);
        rules.push(Rule::new(
            "error-rate",
            Condition::ErrorRateAbove(0.10),
            DEMO_HEALTH_WINDOW,
            Signal::CompleteFailure,
        ));
    }
    let watchdog = builder
        .rules(rules)
        .notifier(PrintNotifier(Instant::now()))
        .interval(DEMO_POLL)
        .auto_rollback(true)
        .events(tx)
        .build()?;
    let mut watchdog = AbortOnDrop(tokio::spawn(watchdog.run(async move {
        let _ = stopped.await;
    })));
    let mut stop = Some(stop);
    let run: WatchdogRun = loop {
        tokio::select! {
            joined = &mut watchdog.0 => break joined?,
            Some(e) = events.recv() => {
                let what = match &e.kind {
                    ProgressKind::Started => "…".to_string(),
                    ProgressKind::Finished => "done".to_string(),
                    ProgressKind::Skipped => "skipped".to_string(),
                    ProgressKind::Failed(why) => format!("FAILED: {why}"),
                    ProgressKind::Recovering => "recovering".to_string(),
                    other => format!("{other:?}"),
                };
                step(&format!("  step {:>2} {:<22} {what}", e.number, e.step.to_string()));
            }
            Some(e) = watch_events.recv() => {
                match &e {
                    WatchdogEvent::Fired { firing, decision } => step(&format!(
                        "watchdog: rule `{}` fired ({}): {} ({})", firing.rule, firing.summary, decision.decision, decision.reason)),
                    WatchdogEvent::RollbackStarted { .. } => step("watchdog: rolling back to the last good checkpoint"),
                    WatchdogEvent::RollbackFinished { outcome } => step(&format!("watchdog: rollback finished: {outcome:?}")),
                    WatchdogEvent::RollbackSkipped { reason, .. } => step(&format!("watchdog: no rollback: {reason}")),
                    WatchdogEvent::IncidentOpened { title } => step(&format!("incident opened: {title}")),
                    WatchdogEvent::IncidentResolved { summary } => {
                        step(&format!("incident resolved: {summary}"));
                        if let Some(s) = stop.take() { let _ = s.send(()); }
                    }
                    other => step(&format!("watchdog: {other:?}")),
                }
            }
        }
    };
    while let Ok(e) = events.try_recv() {
        step(&format!(
            "  step {:>2} {:<22} {:?}",
            e.number,
            e.step.to_string(),
            e.kind
        ));
    }
    let report = run.reports.first().ok_or("the watchdog did not roll back")?;

    println!("\n{}", report.to_markdown());
    // A new file each run (never an existing path or link in the shared temp dir).
    let (mut file, json_path) = tempfile::Builder::new()
        .prefix("rollback-quickstart-report-")
        .suffix(".json")
        .tempfile()?
        .keep()?;
    std::io::Write::write_all(&mut file, report.to_json().as_bytes())?;
    step(&format!("JSON report saved to {}", json_path.display()));

    step(&format!(
        "after the rollback: GET {} -> {:?}",
        world.health_url(),
        world.health_status()
    ));
    let users = world.sql("SELECT COUNT(*) FROM users")?;
    let email = world.sql(
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_name='users' AND column_name='email'",
    )?;
    let orphans = world.sql("SELECT COUNT(*) FROM notifications n WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = n.user_id)")?;
    step(&format!(
        "data is v1's: {users} users, users.email present: {}, orphan notifications: {orphans}",
        email == "1"
    ));
    let kept = world.pg.psql(
        "postgres",
        &format!("SELECT datname FROM pg_database WHERE datname LIKE '{DB}\\_\\_pre\\_rollback\\_%' ORDER BY datname"),
    )?;
    for name in kept.lines() {
        let rows = world.pg.psql(name, "SELECT COUNT(*) FROM users")?;
        step(&format!(
            "pre-rollback database kept: {name} ({rows} users, v2's signups included)"
        ));
    }
    if world.health_status() != Some(200) || email != "1" || kept.is_empty() {
        return Err("the rollback did not bring v1 back as expected".into());
    }
    Ok(())
}
