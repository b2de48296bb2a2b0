//! The downtime benchmark: the runbook's manual rollback against this library's, with a bare
//! `pm2 restart` as the floor, in one run, alternating.
//!
//! The world is the quickstart's with a bigger database (`pgbench -i -s 20`, about 300 MB,
//! plus the app's tables) and a build of 5 s. Here v2's health endpoint answers 200 (its bug
//! is one the health check does not see), so the downtime measured is only the time nothing
//! answers. An external prober polls the health endpoint every 10 ms; downtime is the longest
//! window between two 2xx answers.
//!
//! (a) the runbook as a shell script: `pm2 stop`; `pg_dump -Fc` of the current state;
//!     `pg_restore --clean --if-exists` of the pre-deploy dump; `git checkout` of v1;
//!     `npm install`; `npm run build`; copy of the previous env file; `pm2 start`.
//! (b) `Orchestrator::rollback_with` to the v1 checkpoint (all of database, code, config).
//! (c) `pm2 restart` of the same app: the floor.
//! (f) (b) again, the checkpoint pre-staged beforehand (`Orchestrator::prestage`): the
//!     rollback's prepare is a check, not a restore; its time to roll back is compared.
//!
//! Run: `cargo run --release -p rollback-examples --example downtime_benchmark [rounds] [scales]`
//! (defaults: 3 rounds, scale 20). Several comma-separated scales (`20,100,200`: about 0.3,
//! 1.5 and 3 GB) run one world each and end with a table by size and an SVG chart
//! (`downtime-by-size.svg`, or the path in `DOWNTIME_CHART`).

use rollback_core::{HealthProbe, HttpProbe, RollbackRequest, RollbackTarget, Scope, Step};
use rollback_examples::{run, DemoError, DemoOptions, DemoWorld, DB};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BUILD_SECONDS: f64 = 5.0;

const RUNBOOK_SH: &str = r#"#!/usr/bin/env bash
# The runbook's manual rollback, step by step (pg_restore cannot read the runbook's plain-SQL
# dump, so both dumps are custom format).
set -euo pipefail
pm2 stop web >/dev/null
pg_dump -Fc -h "$PGSOCK" -p "$PGPORT" -U "$PGUSER" -f "$BACKUPS/pre_rollback_$(date +%s%N).dump" "$DB"
pg_restore --clean --if-exists -h "$PGSOCK" -p "$PGPORT" -U "$PGUSER" -d "$DB" "$V1_DUMP"
cd "$APP_DIR"
git checkout -q v1
npm install --no-audit --no-fund --silent >/dev/null
npm run build --silent >/dev/null
cp "$ENV_PREVIOUS" "$ENV_FILE"
pm2 start web >/dev/null
"#;

/// Health probes every 10 ms; the longest gap between two 2xx answers.
struct Prober {
    oks: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Prober {
    fn start(url: &str) -> Result<Self, DemoError> {
        let probe = HttpProbe::new(url, Duration::from_millis(200))?;
        let oks = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&oks);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                if probe.probe().await.healthy {
                    seen.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Instant::now());
                }
            }
        });
        Ok(Self { oks, task })
    }

    /// Waits for a 2xx after `since` (the end of the operation), then stops and returns the
    /// longest gap between two 2xx answers.
    async fn finish(self, since: Instant) -> Result<Duration, DemoError> {
        Ok(self.finish_window(since).await?.1)
    }

    /// Like [`finish`](Self::finish), also returning when the longest gap began.
    async fn finish_window(self, since: Instant) -> Result<(Instant, Duration), DemoError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = self
                .oks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .last()
                .is_some_and(|t| *t > since);
            if up {
                break;
            }
            if Instant::now() > deadline {
                return Err("the app did not answer 2xx within 60 s of the rollback's end".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.task.abort();
        let oks = self.oks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(oks
            .windows(2)
            .map(|w| (w[0], w[1] - w[0]))
            .max_by_key(|(_, gap)| *gap)
            .unwrap_or((since, Duration::ZERO)))
    }
}

#[derive(Default)]
struct Series {
    downtime: Vec<Duration>,
    total: Vec<Duration>,
    /// (f) only: how long pre-staging took in the background.
    staging: Vec<Duration>,
    /// (f) only: the staged copy's size in bytes.
    disk: f64,
}

fn stats(v: &[Duration]) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let median = if ms.is_empty() { 0.0 } else { ms[ms.len() / 2] };
    (
        median,
        ms.first().copied().unwrap_or(0.0),
        ms.last().copied().unwrap_or(0.0),
    )
}

fn live_version(world: &DemoWorld) -> String {
    std::fs::read_to_string(world.path("current/dist/build.json")).unwrap_or_default()
}

fn check_v1_live(world: &DemoWorld, what: &str) -> Result<(), DemoError> {
    let email = world.sql(
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_name='users' AND column_name='email'",
    )?;
    if world.health_status() != Some(200) || email != "1" || !live_version(world).contains("1.0.0") {
        return Err(format!("{what}: v1 is not live after the rollback").into());
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    rollback_examples::run_benchmark(bench).await;
}

/// What one database size gave.
struct SizeResult {
    scale: u32,
    bytes: f64,
    size: String,
    a: Series,
    b: Series,
    c: Series,
    f: Series,
}

async fn bench() -> Result<(), DemoError> {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let scales: Vec<u32> = args
        .get(2)
        .map(|a| a.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![20]);
    let mut results = Vec::new();
    for scale in scales {
        results.push(bench_scale(rounds, scale).await?);
    }
    if results.len() > 1 {
        println!(
            "
## downtime by database size (medians of {rounds} rounds)
"
        );
        println!("| pgbench scale | database | (a) runbook | (b) library | (c) pm2 restart | a/b | b/c |");
        println!("|---|---|---|---|---|---|---|");
        for r in &results {
            let (ad, bd, cd) = (
                stats(&r.a.downtime).0,
                stats(&r.b.downtime).0,
                stats(&r.c.downtime).0,
            );
            println!(
                "| {} | {} | {ad:.0} ms | {bd:.0} ms | {cd:.0} ms | {:.1}x | {:.2}x |",
                r.scale,
                r.size,
                ad / bd,
                bd / cd
            );
        }
        println!("\n## time to roll back (call to healthy, medians) by database size\n");
        println!("| pgbench scale | database | (b) staged during the rollback | (f) pre-staged | pre-staging (background) | disk kept |");
        println!("|---|---|---|---|---|---|");
        for r in &results {
            println!(
                "| {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} MB |",
                r.scale,
                r.size,
                stats(&r.b.total).0,
                stats(&r.f.total).0,
                stats(&r.f.staging).0,
                r.f.disk / 1e6
            );
        }
        let chart = std::env::var("DOWNTIME_CHART").unwrap_or_else(|_| "downtime-by-size.svg".into());
        std::fs::write(&chart, svg_chart(&results))?;
        println!(
            "
chart written to {chart}"
        );
    }
    Ok(())
}

/// Downtime (log scale) against database size: the runbook's, this library's and a bare
/// restart's medians, one line each.
fn svg_chart(results: &[SizeResult]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 80.0, 200.0, 40.0, 60.0);
    let max_gb = results.iter().map(|r| r.bytes / 1e9).fold(0.1f64, f64::max) * 1.1;
    let series: [(&str, &str, Vec<f64>); 3] = [
        (
            "runbook script",
            "#d62728",
            results.iter().map(|r| stats(&r.a.downtime).0).collect(),
        ),
        (
            "rollback library",
            "#1f77b4",
            results.iter().map(|r| stats(&r.b.downtime).0).collect(),
        ),
        (
            "bare pm2 restart",
            "#7f7f7f",
            results.iter().map(|r| stats(&r.c.downtime).0).collect(),
        ),
    ];
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .filter(|v| *v > 0.0)
        .collect();
    let lo = all
        .iter()
        .copied()
        .fold(f64::MAX, f64::min)
        .max(1.0)
        .log10()
        .floor();
    let hi = all
        .iter()
        .copied()
        .fold(1.0f64, f64::max)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let x = |gb: f64| left + (w - left - right) * gb / max_gb;
    let y = |ms: f64| top + (h - top - bottom) * (1.0 - (ms.max(1.0).log10() - lo) / (hi - lo));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"15\">Downtime of a full rollback against database size</text>\n"
    );
    let mut decade = lo;
    while decade <= hi {
        let ms = 10f64.powf(decade);
        let yy = y(ms);
        svg.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            w - right,
            left - 6.0,
            yy + 4.0,
            if ms >= 1000.0 { format!("{} s", ms / 1000.0) } else { format!("{ms} ms") }
        ));
        decade += 1.0;
    }
    for r in results {
        let xx = x(r.bytes / 1e9);
        svg.push_str(&format!(
            "<text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            h - bottom + 18.0,
            r.size
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">database size</text>\n<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">downtime (log scale)</text>\n",
        (left + w - right) / 2.0,
        h - 14.0,
        h / 2.0,
        h / 2.0
    ));
    for (i, (name, color, values)) in series.iter().enumerate() {
        let points: Vec<String> = results
            .iter()
            .zip(values)
            .map(|(r, v)| format!("{:.1},{:.1}", x(r.bytes / 1e9), y(*v)))
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2.5\" points=\"{}\"/>\n",
            points.join(" ")
        ));
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            svg.push_str(&format!(
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"4\" fill=\"{color}\"/>\n"
            ));
        }
        let ly = top + 20.0 + 22.0 * i as f64;
        svg.push_str(&format!(
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2.5\"/><text x=\"{:.1}\" y=\"{:.1}\">{name}</text>\n",
            w - right + 15.0,
            w - right + 40.0,
            w - right + 46.0,
            ly + 4.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

async fn bench_scale(rounds: usize, scale: u32) -> Result<SizeResult, DemoError> {
    let t0 = Instant::now();
    println!("setting up: pgbench scale {scale}, build {BUILD_SECONDS} s, {rounds} rounds of (a), (b), (c)");
    let world = DemoWorld::start(DemoOptions {
        users: 10_000,
        pgbench_scale: Some(scale),
        build_seconds: BUILD_SECONDS,
        v2_health_fails: false,
        instances: None,
    })
    .await?;
    let size = world.sql(&format!("SELECT pg_size_pretty(pg_database_size('{DB}'))"))?;
    let bytes: f64 = world
        .sql(&format!("SELECT pg_database_size('{DB}')"))?
        .parse()
        .unwrap_or(0.0);
    println!(
        "world ready in {:.0} s: database {size}",
        t0.elapsed().as_secs_f64()
    );

    // The runbook's own pre-deploy backups: a dump of v1 and a copy of v1's env file.
    let bindir = world.pg.bindir().to_path_buf();
    let v1_dump = world.path("runbook/v1.dump");
    std::fs::create_dir_all(world.path("runbook/backups"))?;
    pg_tool(
        &world,
        &bindir.join("pg_dump"),
        &["-Fc", "-f", &v1_dump.display().to_string(), DB],
    )?;
    std::fs::copy(world.env_path(), world.path("shared/.env.production.previous"))?;
    // The runbook's app directory: a clone the app runs from in place.
    let app_dir = world.path("runbook/app");
    run(Command::new("git")
        .args(["clone", "-q"])
        .arg(world.path("repo"))
        .arg(&app_dir))?;

    let orchestrator = world.orchestrator().await?.build()?;
    let checkpoint = orchestrator.checkpoint("v1 (benchmark)").await?;
    let (mut a, mut b, mut c) = (Series::default(), Series::default(), Series::default());
    let mut f = Series::default();

    for round in 1..=rounds {
        // (a) the runbook.
        world.deploy_v2().await?;
        run(Command::new("git")
            .arg("-C")
            .arg(&app_dir)
            .args(["checkout", "-q", "v2"]))?;
        run(Command::new("npm")
            .args(["run", "build", "--silent"])
            .current_dir(&app_dir)
            .env("DEMO_BUILD_SECONDS", BUILD_SECONDS.to_string()))?;
        swap_current(&world, &app_dir)?;
        world.pm2.run(&["restart", "web"])?;
        wait_healthy(&world).await?;
        let users_before = world.sql("SELECT COUNT(*) FROM users")?;
        let prober = Prober::start(&world.health_url())?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(RUNBOOK_SH)
            .env("PM2_HOME", world.pm2.home())
            .env("PATH", path_with(&bindir))
            .env("PGSOCK", world.pg.socket_dir())
            .env("PGPORT", world.pg.port().to_string())
            .env("PGUSER", world.pg.superuser())
            .env("DB", DB)
            .env("BACKUPS", world.path("runbook/backups"))
            .env("V1_DUMP", &v1_dump)
            .env("APP_DIR", &app_dir)
            .env("DEMO_BUILD_SECONDS", BUILD_SECONDS.to_string())
            .env("ENV_PREVIOUS", world.path("shared/.env.production.previous"))
            .env("ENV_FILE", world.env_path());
        let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
        let total = started.elapsed();
        if !out.status.success() {
            return Err(format!(
                "the runbook script failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let downtime = prober.finish(started + total).await?;
        check_v1_live(&world, "(a)")?;
        let kept = preserved_users_in_dump(&world, &bindir)?;
        if kept != users_before {
            return Err(
                format!("(a): the pre-rollback dump holds {kept} users, {users_before} were live").into(),
            );
        }
        println!(
            "round {round} (a) runbook:  downtime {:>8.0} ms, total {:>8.0} ms",
            ms(downtime),
            ms(total)
        );
        a.downtime.push(downtime);
        a.total.push(total);

        // (b) this library.
        world.deploy_v2().await?;
        wait_healthy(&world).await?;
        let users_before = world.sql("SELECT COUNT(*) FROM users")?;
        let prober = Prober::start(&world.health_url())?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let request = RollbackRequest::new(
            RollbackTarget::Checkpoint(checkpoint.id.clone()),
            "benchmark",
            Scope::ALL,
        );
        let started_wall = std::time::SystemTime::now();
        let report = orchestrator.rollback_with(request).await?;
        let total = started.elapsed();
        let (gap_start, downtime) = prober.finish_window(started + total).await?;
        check_v1_live(&world, "(b)")?;
        let preserved = world.pg.psql(
            "postgres",
            &format!("SELECT datname FROM pg_database WHERE datname LIKE '{DB}\\_\\_pre\\_rollback\\_%' ORDER BY datname DESC LIMIT 1"),
        )?;
        if preserved.is_empty() {
            return Err("(b): no pre-rollback database was kept".into());
        }
        let kept = world.pg.psql(&preserved, "SELECT COUNT(*) FROM users")?;
        if kept != users_before {
            return Err(format!("(b): {preserved} holds {kept} users, {users_before} were live").into());
        }
        println!(
            "round {round} (b) library:  downtime {:>8.0} ms, total {:>8.0} ms (report's stop-to-healthy {:?})",
            ms(downtime),
            ms(total),
            report.downtime.as_ref().map(|d| d.duration)
        );
        // Where the window without a 2xx falls among the steps (ms from the last 2xx).
        let gap_from = ms(gap_start.saturating_duration_since(started));
        let offline: Vec<String> = report
            .steps
            .iter()
            .filter(|r| {
                !matches!(
                    r.step,
                    Step::Lock | Step::Journal | Step::Preflight | Step::Prepare | Step::Report
                )
            })
            .map(|r| {
                let at = std::time::SystemTime::from(r.started_at)
                    .duration_since(started_wall)
                    .map_or(0.0, ms);
                format!("{} @{:.0} +{:.0}", r.step, at - gap_from, ms(r.duration))
            })
            .collect();
        println!(
            "          (b) steps (@ms from the last 2xx, +duration ms): {}",
            offline.join(", ")
        );
        b.downtime.push(downtime);
        b.total.push(total);

        // (c) a bare restart.
        let prober = Prober::start(&world.health_url())?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        world.pm2.run(&["restart", "web"])?;
        let total = started.elapsed();
        let downtime = prober.finish(started + total).await?;
        println!(
            "round {round} (c) restart:  downtime {:>8.0} ms, total {:>8.0} ms",
            ms(downtime),
            ms(total)
        );
        c.downtime.push(downtime);
        c.total.push(total);

        // (f) this library again, the checkpoint pre-staged in the background beforehand.
        world.deploy_v2().await?;
        wait_healthy(&world).await?;
        let staging_started = Instant::now();
        orchestrator.prestage(&checkpoint.id).await?;
        let staging_took = staging_started.elapsed();
        let staged_bytes: f64 = world
            .sql(&format!("SELECT pg_database_size('{DB}__rollback_staging')"))?
            .parse()
            .unwrap_or(0.0);
        let prober = Prober::start(&world.health_url())?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let report = orchestrator
            .rollback_with(RollbackRequest::new(
                RollbackTarget::Checkpoint(checkpoint.id.clone()),
                "benchmark (pre-staged)",
                Scope::ALL,
            ))
            .await?;
        let total = started.elapsed();
        let downtime = prober.finish(started + total).await?;
        check_v1_live(&world, "(f)")?;
        if !report.notes.iter().any(|n| n.contains("pre-staged")) {
            return Err("(f): the rollback did not use the pre-staged copy".into());
        }
        println!(
            "round {round} (f) pre-staged: downtime {:>8.0} ms, total {:>8.0} ms (pre-staging took {:.0} ms in the background, {:.0} MB of disk)",
            ms(downtime),
            ms(total),
            ms(staging_took),
            staged_bytes / 1e6
        );
        f.downtime.push(downtime);
        f.total.push(total);
        f.staging.push(staging_took);
        f.disk = staged_bytes;
    }

    println!("\n| run | downtime median | min | max | total median | min | max |");
    println!("|---|---|---|---|---|---|---|");
    for (name, s) in [
        ("(a) runbook script", &a),
        ("(b) rollback library", &b),
        ("(c) pm2 restart (floor)", &c),
        ("(f) rollback library, checkpoint pre-staged", &f),
    ] {
        let (dm, dmin, dmax) = stats(&s.downtime);
        let (tm, tmin, tmax) = stats(&s.total);
        println!("| {name} | {dm:.0} ms | {dmin:.0} | {dmax:.0} | {tm:.0} ms | {tmin:.0} | {tmax:.0} |");
    }
    let (ad, bd, cd) = (stats(&a.downtime).0, stats(&b.downtime).0, stats(&c.downtime).0);
    println!(
        "\ndowntime a/b = {:.1}x (target >= 10x), b/c = {:.2}x (target <= 2x)",
        ad / bd,
        bd / cd
    );
    println!("database {size}, build {BUILD_SECONDS} s, {rounds} rounds, prober every 10 ms");
    println!(
        "time to roll back (call to healthy): {:.0} ms without pre-staging, {:.0} ms with (pre-staging took {:.0} ms in the background and keeps {:.0} MB)",
        stats(&b.total).0,
        stats(&f.total).0,
        stats(&f.staging).0,
        f.disk / 1e6
    );
    Ok(SizeResult {
        scale,
        bytes,
        size,
        a,
        b,
        c,
        f,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn path_with(bindir: &Path) -> String {
    format!(
        "{}:{}",
        bindir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn pg_tool(world: &DemoWorld, bin: &Path, args: &[&str]) -> Result<String, DemoError> {
    run(Command::new(bin)
        .arg("-h")
        .arg(world.pg.socket_dir())
        .args(["-p", &world.pg.port().to_string(), "-U", world.pg.superuser()])
        .args(args))
}

/// Points `current` at `target` (new link, rename over the old).
fn swap_current(world: &DemoWorld, target: &Path) -> Result<(), DemoError> {
    let tmp = world.path("current.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, world.path("current"))?;
    Ok(())
}

async fn wait_healthy(world: &DemoWorld) -> Result<(), DemoError> {
    for _ in 0..600 {
        if world.health_status() == Some(200) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the app did not become healthy within 30 s".into())
}

/// Restores the newest runbook pre-rollback dump into a scratch database and counts users.
fn preserved_users_in_dump(world: &DemoWorld, bindir: &Path) -> Result<String, DemoError> {
    let newest = std::fs::read_dir(world.path("runbook/backups"))?
        .filter_map(Result::ok)
        .max_by_key(|e| e.file_name())
        .ok_or("(a): the runbook made no pre-rollback dump")?
        .path();
    let _ = world.pg.psql("postgres", "DROP DATABASE IF EXISTS runbook_check");
    world.pg.create_database("runbook_check")?;
    pg_tool(
        world,
        &bindir.join("pg_restore"),
        &["-d", "runbook_check", &newest.display().to_string()],
    )?;
    let users = world.pg.psql("runbook_check", "SELECT COUNT(*) FROM users")?;
    world.pg.psql("postgres", "DROP DATABASE runbook_check")?;
    std::fs::remove_file(&newest)?;
    Ok(users)
}
