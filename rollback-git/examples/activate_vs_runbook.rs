//! Time-while-down: the runbook's order (app stopped, then `git checkout` + build) against this
//! adapter's (build while the app runs, then only `activate` while it is stopped).
//!
//! The "app" is a small C program generated into the repository; its build is real work: four
//! translation units compiled with `cc -O2` and linked (argument vectors, no shell), a named
//! stand-in for `npm ci && npm run build`. Both sides switch between the same two revisions,
//! alternating, so every iteration is a real change.
//!
//! Run: `cargo run --release -p rollback-git --example activate_vs_runbook [iterations]`

use rollback_core::{CodeVersion, RevisionId};
use rollback_git::GitCode;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const UNITS: usize = 4;
const FUNCTIONS_PER_UNIT: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(iterations))
}

fn build_steps() -> Vec<Vec<String>> {
    let mut steps: Vec<Vec<String>> = (0..UNITS)
        .map(|k| {
            [
                "cc",
                "-O2",
                "-c",
                &format!("gen{k}.c"),
                "-o",
                &format!("gen{k}.o"),
            ]
            .map(String::from)
            .to_vec()
        })
        .collect();
    let mut link = vec![
        "cc".to_owned(),
        "-O2".into(),
        "-o".into(),
        "app".into(),
        "main.c".into(),
    ];
    link.extend((0..UNITS).map(|k| format!("gen{k}.o")));
    steps.push(link);
    steps
}

/// Writes the C sources for `version` and commits them.
fn write_version(repo: &Path, version: u32) -> Result<RevisionId, Box<dyn std::error::Error>> {
    for k in 0..UNITS {
        let mut src = String::new();
        for i in 0..FUNCTIONS_PER_UNIT {
            src.push_str(&format!(
                "int f{k}_{i}(int x) {{\n  int acc = {i} + {version};\n  for (int j = 0; j < x; j++) {{\n    \
                 if ((j ^ acc) & 1) acc = acc * 31 + j; else acc = (acc >> 1) ^ (j * {m});\n    \
                 switch (j % 5) {{ case 0: acc += 3; break; case 1: acc -= 7; break; case 2: acc ^= 0x5a5a; break; default: acc *= 3; }}\n  \
                 }}\n  return acc;\n}}\n",
                m = i + 7
            ));
        }
        std::fs::write(repo.join(format!("gen{k}.c")), src)?;
    }
    std::fs::write(
        repo.join("main.c"),
        format!("#include <stdio.h>\nint f0_1(int);\nint main(void) {{ printf(\"version {version} %d\\n\", f0_1(10)); return 0; }}\n"),
    )?;
    std::fs::write(repo.join(".gitignore"), "*.o\napp\n")?;
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", &format!("version {version}")])?;
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()?;
    Ok(RevisionId::new(String::from_utf8(out.stdout)?.trim()))
}

fn git(dir: &Path, args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let status = Command::new("git")
        .args(["-c", "user.name=bench", "-c", "user.email=bench@example.com"])
        .args(args)
        .current_dir(dir)
        .status()?;
    if !status.success() {
        return Err(format!("git {args:?} failed: {status}").into());
    }
    Ok(())
}

fn run_steps(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    for step in build_steps() {
        let status = Command::new(&step[0])
            .args(&step[1..])
            .current_dir(dir)
            .status()?;
        if !status.success() {
            return Err(format!("{step:?} failed: {status}").into());
        }
    }
    Ok(())
}

struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2
    };
    Stats {
        median,
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn run(iterations: usize) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo)?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    let v1 = write_version(&repo, 1)?;
    let v2 = write_version(&repo, 2)?;
    let targets = [&v1, &v2];

    // Runbook: the app runs from a clone's working tree; while it is stopped:
    // `git checkout <rev>` then the full build.
    let live = tmp.path().join("live");
    git(tmp.path(), &["clone", "-q", repo.to_str().ok_or("path")?, "live"])?;
    git(&live, &["checkout", "-q", "--detach", v2.as_str()])?;
    run_steps(&live)?;
    let mut runbook = Vec::new();
    for i in 0..iterations {
        let target = targets[i % 2];
        let started = Instant::now();
        git(&live, &["checkout", "-q", "--detach", target.as_str()])?;
        run_steps(&live)?;
        runbook.push(started.elapsed());
        eprintln!(
            "runbook  #{i}: {} (checkout + build of {})",
            ms(runbook[i]),
            &target.as_str()[..8]
        );
    }

    // This adapter: build both revisions while the app runs, then only activate while stopped.
    let mut builder =
        GitCode::builder(&repo).releases(tmp.path().join("releases"), tmp.path().join("current"));
    for step in build_steps() {
        builder = builder.build_command(step);
    }
    let code = builder.build()?;
    let started = Instant::now();
    let p1 = code.prepare(&v1).await?;
    let p2 = code.prepare(&v2).await?;
    let prepare_both = started.elapsed();
    code.activate(&p2).await?;
    let prepared = [&p1, &p2];
    let adapter_iterations = iterations.max(50);
    let mut adapter = Vec::new();
    for i in 0..adapter_iterations {
        let started = Instant::now();
        code.activate(prepared[i % 2]).await?;
        adapter.push(started.elapsed());
    }
    let out = Command::new(tmp.path().join("current/app")).output()?;
    let runs = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let (r, a) = (stats(runbook), stats(adapter));
    println!("time-while-down per switch (real build: {UNITS} x `cc -O2 -c` + link)");
    println!("| side                                | runs | median     | min        | max        |");
    println!("|-------------------------------------|------|------------|------------|------------|");
    println!(
        "| runbook: checkout + build (stopped) | {:>4} | {:>10} | {:>10} | {:>10} |",
        iterations,
        ms(r.median),
        ms(r.min),
        ms(r.max)
    );
    println!(
        "| rollback-git: activate only         | {:>4} | {:>10} | {:>10} | {:>10} |",
        adapter_iterations,
        ms(a.median),
        ms(a.min),
        ms(a.max)
    );
    let ratio = r.median.as_secs_f64() / a.median.as_secs_f64().max(1e-9);
    println!("ratio (median runbook / median activate): {ratio:.0}x less time while down");
    println!(
        "prepare of both revisions while the app runs (not downtime): {}",
        ms(prepare_both)
    );
    println!("the live release runs: `{runs}`");
    println!(
        "targets: activate < 50 ms: {}; >= 50x: {}",
        if a.median < Duration::from_millis(50) {
            "met"
        } else {
            "MISSED"
        },
        if ratio >= 50.0 { "met" } else { "MISSED" }
    );
    Ok(())
}
