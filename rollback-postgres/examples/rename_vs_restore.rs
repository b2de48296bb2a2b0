//! Offline window of a database rollback: the runbook (`pg_dump` of the current state, then
//! `pg_restore --clean --if-exists` in place) against this crate (`prepare_restore` while
//! the app serves, then only `preserve_current` + `restore`, two renames, while it is down).
//!
//! Runs on a temporary cluster (needs the PostgreSQL server binaries), three alternations,
//! and prints a table. By default the database is `pgbench -i -s 20` (about 300 MB) plus an
//! FK-linked `users`/`events` pair (10,000 events): `cargo run --release -p rollback-postgres
//! --example rename_vs_restore`. `PGBENCH_SCALE=N` changes the scale; `PGBENCH_SCALE=0
//! ROWS=1500000` uses generated `events` rows instead of pgbench.

use rollback_core::DatabaseSnapshot;
use rollback_postgres::{Options, PgConfig, PgTools, PostgresSnapshot};
use rollback_testkit::TempPostgres;
use std::process::Command;
use std::time::{Duration, Instant};

const DB: &str = "bench";
const JOBS: u32 = 2;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scale: u32 = std::env::var("PGBENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rows: u64 = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if scale > 0 { 10_000 } else { 1_500_000 });
    let Some(pg) = TempPostgres::start("rename_vs_restore example")? else {
        return Ok(());
    };
    pg.create_database(DB)?;
    let t = Instant::now();
    pg.psql(
        DB,
        &format!(
            "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE); \
             INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 10000) g; \
             CREATE TABLE events (id bigserial PRIMARY KEY, user_id int NOT NULL REFERENCES users(id), \
               kind text NOT NULL, payload text, created_at timestamptz NOT NULL DEFAULT now()); \
             INSERT INTO events (user_id, kind, payload) \
               SELECT 1 + g % 10000, 'kind' || (g % 17), md5(g::text) FROM generate_series(1, {rows}) g; \
             CREATE INDEX events_user ON events (user_id);"
        ),
    )?;
    if scale > 0 {
        let out = Command::new(pg.bindir().join("pgbench"))
            .args(["-i", "-q", "-s", &scale.to_string(), "-h"])
            .arg(pg.socket_dir())
            .args(["-p", &pg.port().to_string(), "-U", pg.superuser(), DB])
            .output()?;
        if !out.status.success() {
            return Err(format!("pgbench -i failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
    }
    pg.psql(DB, "VACUUM ANALYZE")?;
    let size = pg.psql(DB, "SELECT pg_size_pretty(pg_database_size(current_database()))")?;
    println!(
        "database `{DB}`: pgbench scale {scale} + {rows} event rows (FK to 10000 users), {size} on disk (loaded in {:.1?})",
        t.elapsed()
    );

    let config = PgConfig::new(pg.host(), pg.port(), pg.superuser(), DB).password(pg.password().clone());
    let root = tempfile::tempdir()?;
    let db = PostgresSnapshot::new(config, root.path(), PgTools::in_dir(pg.bindir()))
        .with_options(Options::new().jobs(JOBS));
    let t = Instant::now();
    let rtt = db.ping().await?;
    println!(
        "one connection + SELECT 1 (TCP, SCRAM auth): {:.1?} wall, {:.1?} for the query (the switch steps reuse one maintenance session)",
        t.elapsed(),
        rtt
    );
    let t = Instant::now();
    let snap = db.snapshot("bench").await?;
    println!(
        "snapshot {} ({} bytes) taken online in {:.2?}\n",
        snap.id,
        snap.size_bytes.unwrap_or(0),
        t.elapsed()
    );
    let archive = std::path::Path::new(&snap.location).join("dump.pgdump");

    println!("| round | runbook offline (dump + restore in place) | ours offline (preserve + restore) | ours online (prepare_restore) | ratio |");
    println!("|---|---|---|---|---|");
    let (mut sum_runbook, mut sum_ours) = (Duration::ZERO, Duration::ZERO);
    for round in 1..=3 {
        // The runbook: back up the current state, then restore the snapshot over it.
        let current = root.path().join(format!("runbook-current-{round}.pgdump"));
        let t = Instant::now();
        tool(
            &pg,
            "pg_dump",
            &[
                "--format=custom",
                "--no-password",
                &format!("--file={}", current.display()),
            ],
        )?;
        tool(
            &pg,
            "pg_restore",
            &[
                "--clean",
                "--if-exists",
                "--no-password",
                "--exit-on-error",
                &format!("--jobs={JOBS}"),
                &archive.display().to_string(),
            ],
        )?;
        let runbook = t.elapsed();
        std::fs::remove_file(&current)?;

        // Ours: the slow part while the app still serves, then two renames.
        let t = Instant::now();
        let prepared = db.prepare_restore(&snap.id).await?;
        let online = t.elapsed();
        let t = Instant::now();
        db.preserve_current(&format!("bench-{round}")).await?;
        let preserve = t.elapsed();
        db.restore(&prepared).await?;
        let ours = t.elapsed();
        db.apply_retention(1, 1).await?;

        sum_runbook += runbook;
        sum_ours += ours;
        println!(
            "| {round} | {:.2?} | {:.2?} ({:.0?} + {:.0?}) | {:.2?} | {:.0}x |",
            runbook,
            ours,
            preserve,
            ours - preserve,
            online,
            runbook.as_secs_f64() / ours.as_secs_f64()
        );
    }
    println!(
        "\nmean offline window: runbook {:.2?}, ours {:.2?}: {:.0}x shorter",
        sum_runbook / 3,
        sum_ours / 3,
        sum_runbook.as_secs_f64() / sum_ours.as_secs_f64()
    );
    Ok(())
}

/// Runs a client tool from the cluster's bindir against `DB` over TCP, the password in
/// `PGPASSWORD`.
fn tool(pg: &TempPostgres, name: &str, args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let out = Command::new(pg.bindir().join(name))
        .args(args)
        .arg(format!(
            "--dbname=host={} port={} user={} dbname={DB}",
            pg.host(),
            pg.port(),
            pg.superuser()
        ))
        .env("PGPASSWORD", pg.password().expose())
        .output()?;
    if !out.status.success() {
        return Err(format!("{name} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}
