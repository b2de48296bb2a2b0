//! Zero downtime for a rollback that leaves the database alone: a code + config rollback
//! of the same app run (d) in pm2's fork mode (one process: stop, switch, start) and (e) in
//! pm2's cluster mode with two instances (the orchestrator reloads it one instance at a
//! time), each under a steady request loop on 127.0.0.1, alternating, in one run.
//!
//! A request is one `GET /api/health` (HTTP/1.0, 1 s timeout) every 5 ms from a thread of
//! its own; failed = no 200. The window is the longest gap between two 200s. After each
//! rollback the answering process must run v1 (version 1.0.0, channel stable).
//!
//! Run: `cargo run --release -p rollback-examples --example reload_benchmark [rounds]`
//! (default 5).

use rollback_core::{RollbackRequest, RollbackTarget, Scope};
use rollback_examples::{DemoError, DemoOptions, DemoWorld};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CODE_AND_CONFIG: Scope = Scope {
    database: false,
    code: true,
    config: true,
};

/// Requests every 5 ms until stopped: (answered, failed, longest gap between two 200s).
struct RequestLoop {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u32, u32, Duration)>,
}

impl RequestLoop {
    fn start(world: &DemoWorld) -> Self {
        let port = world.port;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, 0u32);
            let mut last_ok = Instant::now();
            let mut gap = Duration::ZERO;
            while !flag.load(Ordering::SeqCst) {
                let answered =
                    rollback_testkit::temp_pm2::http_status(port, "/api/health", Duration::from_secs(1));
                if answered == Some(200) {
                    ok += 1;
                    gap = gap.max(last_ok.elapsed());
                    last_ok = Instant::now();
                } else {
                    failed += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (ok, failed, gap)
        });
        Self { stop, thread }
    }

    fn finish(self) -> Result<(u32, u32, Duration), DemoError> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().map_err(|_| "the request loop panicked".into())
    }
}

#[derive(Default)]
struct Series {
    failed: Vec<u32>,
    answered: Vec<u32>,
    window: Vec<Duration>,
    total: Vec<Duration>,
}

fn median<T: Copy + PartialOrd>(v: &[T]) -> Option<T> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    s.get(s.len() / 2).copied()
}

async fn world(
    instances: Option<u32>,
) -> Result<(DemoWorld, rollback_core::Orchestrator, rollback_core::Checkpoint), DemoError> {
    let world = DemoWorld::start(DemoOptions {
        users: 1000,
        pgbench_scale: None,
        build_seconds: 0.5,
        v2_health_fails: false,
        instances,
    })
    .await?;
    let orchestrator = world.orchestrator().await?.build()?;
    let checkpoint = orchestrator.checkpoint("v1 (reload benchmark)").await?;
    Ok((world, orchestrator, checkpoint))
}

async fn one_round(
    world: &DemoWorld,
    orchestrator: &rollback_core::Orchestrator,
    checkpoint: &rollback_core::Checkpoint,
    series: &mut Series,
    label: &str,
) -> Result<(), DemoError> {
    world.deploy_v2_code_and_config().await?;
    for _ in 0..200 {
        if world.health_body().is_some_and(|b| b.contains("2.0.0")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = RequestLoop::start(world);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let report = orchestrator
        .rollback_with(RollbackRequest::new(
            RollbackTarget::Checkpoint(checkpoint.id.clone()),
            "reload benchmark",
            CODE_AND_CONFIG,
        ))
        .await?;
    let total = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (answered, failed, window) = requests.finish()?;
    let body = world.health_body().unwrap_or_default();
    if !(body.contains("1.0.0") && body.contains("stable")) {
        return Err(format!("{label}: v1 is not what answers after the rollback: {body}").into());
    }
    let how = if report.notes.iter().any(|n| n.contains("graceful reload")) {
        "reload"
    } else {
        "stop+start"
    };
    println!(
        "{label}: {how:<10} failed {failed:>4} of {:>5} requests, longest gap {:>5.0} ms, rollback {:>5.0} ms",
        answered + failed,
        window.as_secs_f64() * 1000.0,
        total.as_secs_f64() * 1000.0
    );
    series.failed.push(failed);
    series.answered.push(answered + failed);
    series.window.push(window);
    series.total.push(total);
    Ok(())
}

#[tokio::main]
async fn main() {
    rollback_examples::run_benchmark(bench).await;
}

async fn bench() -> Result<(), DemoError> {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    println!("setting up two worlds: fork mode, and cluster mode with 2 instances");
    let (fork_world, fork_o, fork_cp) = world(None).await?;
    let (cluster_world, cluster_o, cluster_cp) = world(Some(2)).await?;
    let (mut d, mut e) = (Series::default(), Series::default());
    for round in 1..=rounds {
        one_round(
            &fork_world,
            &fork_o,
            &fork_cp,
            &mut d,
            &format!("round {round} (d) fork   "),
        )
        .await?;
        one_round(
            &cluster_world,
            &cluster_o,
            &cluster_cp,
            &mut e,
            &format!("round {round} (e) cluster"),
        )
        .await?;
    }
    println!("\n| run | failed requests, median (min-max) | longest gap median | rollback median |");
    println!("|---|---|---|---|");
    for (name, s) in [
        ("(d) fork mode: stop, switch, start", &d),
        ("(e) cluster mode x2: graceful reload", &e),
    ] {
        println!(
            "| {name} | {} ({}-{}) of ~{} | {:.0} ms | {:.0} ms |",
            median(&s.failed).unwrap_or(0),
            s.failed.iter().min().unwrap_or(&0),
            s.failed.iter().max().unwrap_or(&0),
            median(&s.answered).unwrap_or(0),
            median(&s.window).unwrap_or_default().as_secs_f64() * 1000.0,
            median(&s.total).unwrap_or_default().as_secs_f64() * 1000.0,
        );
    }
    println!("\ncode + config rollbacks, {rounds} rounds alternating, a request every 5 ms");
    Ok(())
}
