//! Rolls back a bad deploy over the testkit's in-memory fakes and prints progress and the
//! report. No database, git or pm2 needed: it shows the twelve steps and the report.
//!
//! Run: `cargo run -p rollback-examples --example fake_rollback`

use rollback_core::{DirStateStore, ProgressKind, RollbackTarget, Scenario, Scope};
use rollback_testkit::Rig;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state_dir = tempfile::tempdir()?;
    let rig = Rig::new();
    let (sink, mut events) = rollback_core::progress::channel();
    let rollback = rig
        .orchestrator()
        .state(DirStateStore::open(state_dir.path()).await?)
        .progress(sink)
        .build()?;

    let printer = tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let mark = match &e.kind {
                ProgressKind::Started => "…".to_owned(),
                ProgressKind::Finished => "✓".to_owned(),
                ProgressKind::Skipped => "–".to_owned(),
                ProgressKind::Failed(why) => format!("✗ {why}"),
                ProgressKind::Recovering => "↺ putting the pre-rollback state back".to_owned(),
                other => format!("{other:?}"),
            };
            if !matches!(e.kind, ProgressKind::Started) {
                println!("[{:>2}/12] {:<18} {mark}", e.number, e.step.to_string());
            }
        }
    });

    let checkpoint = rollback.checkpoint("before v2").await?;
    println!("checkpoint {} taken (good: {})", checkpoint.id, checkpoint.good);
    rig.deploy_bad_release(Scope::DATABASE_AND_CODE);
    println!("deployed v2: its migration broke the schema; health is failing\n");

    let report = rollback
        .handle_scenario(
            Scenario::DatabaseMigrationFailure,
            RollbackTarget::LastGood,
            "v2's migration broke the users table",
        )
        .await?;
    drop(rollback);
    printer.await?;

    println!("\n{}", report.to_markdown());
    let end = rig.world.end_state();
    println!(
        "live database: {:?}; running tree: {:?}; kept aside: {:?}",
        end.db_marker,
        end.code_tree,
        rig.world
            .lock()
            .db
            .preserved
            .values()
            .map(|c| c.marker.clone())
            .collect::<Vec<_>>()
    );
    println!("report files: {}", state_dir.path().join("reports").display());
    Ok(())
}
