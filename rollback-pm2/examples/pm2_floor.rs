//! Measures the floor of the downtime pm2 adds, with a real pm2 and a real Node app in a
//! throw-away `PM2_HOME`: how long `stop()` and `start()` take, and the gaps from `stop`
//! returning to the port refusing and from `start` returning to the health endpoint
//! answering (both should be ~0: the methods return only once the state is real).
//!
//! Run: `cargo run -p rollback-pm2 --example pm2_floor [runs]` (default 5 runs).

use rollback_core::{AppName, ProcessManager};
use rollback_pm2::{AppSpec, Pm2ProcessManager, ScriptSpec};
use rollback_testkit::temp_pm2::{free_port, http_status, port_open, NodeApp, TempPm2};
use std::time::{Duration, Instant};

fn summary(name: &str, mut xs: Vec<Duration>) {
    xs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<42} median {:>8.1} ms   min {:>8.1} ms   max {:>8.1} ms",
        ms(xs[xs.len() / 2]),
        ms(xs[0]),
        ms(xs[xs.len() - 1])
    );
}

/// Polls `cond` every millisecond; the time until it holds and the number of polls
/// (gives up after 10 s).
fn until(cond: impl Fn() -> bool) -> (Duration, u32) {
    let t = Instant::now();
    let mut polls = 1;
    while !cond() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
        polls += 1;
    }
    (t.elapsed(), polls)
}

fn healthy(port: u16) -> bool {
    http_status(port, "/api/health", Duration::from_secs(1)) == Some(200)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args().nth(1).map_or(Ok(5), |s| s.parse())?.max(1);
    let Some(pm2) = TempPm2::new("pm2_floor") else {
        return Ok(());
    };
    let port = free_port();
    let script = pm2.write_app("web", NodeApp::HealthServer);
    let stability = Duration::from_millis(1500);
    let pm = Pm2ProcessManager::builder()
        .binary(pm2.pm2())
        .home(pm2.home())
        .stability_window(stability)
        .app(
            "web",
            AppSpec::Script(ScriptSpec::new(&script).env("PORT", port.to_string())),
        )
        .build()?;
    let web = AppName::new("web");
    pm.start(&web).await?;

    let (mut stop_call, mut stop_gap, mut start_call, mut start_gap, mut serving) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut max_polls = 0;
    for _ in 0..runs {
        let t = Instant::now();
        pm.stop(&web).await?;
        stop_call.push(t.elapsed());
        let (gap, polls) = until(|| !port_open(port));
        stop_gap.push(gap);
        max_polls = max_polls.max(polls);

        // A probe thread times when the app really answers, while start() still watches.
        let t = Instant::now();
        let probe = std::thread::spawn(move || until(|| healthy(port)).0);
        pm.start(&web).await?;
        start_call.push(t.elapsed());
        let (gap, polls) = until(|| healthy(port));
        start_gap.push(gap);
        max_polls = max_polls.max(polls);
        serving.push(probe.join().map_err(|_| "probe thread panicked")?);
    }
    println!(
        "pm2 floor over {runs} runs (stability window {stability:?}, pm2 at {}):",
        pm2.pm2().display()
    );
    summary("stop() call", stop_call);
    summary("stop() returned -> port refuses", stop_gap);
    summary("start() call (incl. stability window)", start_call);
    summary("start() returned -> /api/health 200", start_gap);
    summary("start() called -> app first answers 200", serving);
    println!("(at most {max_polls} poll(s) were needed after a call returned; 1 = already true)");
    Ok(())
}
