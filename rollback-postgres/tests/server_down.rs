//! The database server dies right after the emergency backup (issue 30): a real
//! PostgreSQL killed (`pg_ctl stop -m immediate`) once the live database was renamed aside,
//! under an orchestrator whose code, config and process are the testkit's fakes. The
//! recovery cannot put the database back while the server is down: the rollback halts with
//! a statement the test compares with the server, the app stays stopped, a new rollback is
//! refused; once the server is started again, `resume()` puts the pre-rollback database
//! back, opens it and starts the app, with nothing done by hand.

use rollback_core::{Outcome, RollbackError, RollbackTarget, Scope};
use rollback_postgres::{PgConfig, PgTools, PostgresSnapshot};
use rollback_testkit::{Fault, Method, Rig, TempPostgres, When};
use std::sync::Arc;
use std::time::Duration;

fn adapter(pg: &TempPostgres, root: &std::path::Path) -> PostgresSnapshot {
    let config = PgConfig::new(pg.host(), pg.port(), pg.superuser(), "web").password(pg.password().clone());
    PostgresSnapshot::new(config, root, PgTools::in_dir(pg.bindir()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_after_the_emergency_backup_halts_and_resume_puts_it_back() {
    let test = "rollback-postgres server killed after the emergency backup";
    let Some(pg) = TempPostgres::start(test).expect("start a temporary PostgreSQL") else {
        return;
    };
    let pg = Arc::new(pg);
    pg.create_database("web").unwrap();
    pg.psql("web", "CREATE TABLE t (v text); INSERT INTO t VALUES ('v1');")
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let rig = Rig::new();
    let o = rig
        .orchestrator()
        .database(adapter(&pg, root.path()))
        .build()
        .unwrap();
    o.checkpoint("v1").await.expect("checkpoint");
    rig.deploy_bad_release(Scope::CODE);
    pg.psql("web", "UPDATE t SET v = 'v2'; CREATE TABLE v2_only (id int);")
        .unwrap();

    // The code's emergency backup comes right after the database's: held 3 s, while the
    // server is killed as soon as the live database has been renamed aside.
    rig.world.inject(
        Method::CodePreserveCurrent,
        When::Nth(1),
        Fault::Delay(Duration::from_secs(3)),
    );
    let killer = {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while std::time::Instant::now() < deadline {
                let renamed = pg
                    .psql(
                        "postgres",
                        "SELECT count(*) FROM pg_database WHERE datname LIKE 'web__pre_rollback%'",
                    )
                    .is_ok_and(|n| n.trim() == "1");
                if renamed {
                    pg.kill().expect("kill the server");
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
    };
    let err = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap_err();
    assert!(killer.await.unwrap(), "the server was killed after the rename");
    let report = err.report().expect("a report");
    let Outcome::Halted { statement, .. } = &report.outcome else {
        panic!("halted while the server is down, got {}", report.outcome);
    };
    println!("--- halted with the server down ---\n{statement}");
    assert!(
        statement.contains("could NOT be put back") && statement.contains("web__pre_rollback"),
        "{statement}"
    );
    assert!(
        statement.contains("`rollback resume`") && !statement.contains("()"),
        "{statement}"
    );
    assert!(!rig.app_online(), "never started without its database");
    assert!(statement.contains("STOPPED"), "{statement}");

    // Halted leads somewhere: nothing new starts over it.
    let refused = o
        .rollback(RollbackTarget::LastGood, "again", Scope::ALL)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, RollbackError::Unfinished { halted: true, .. }),
        "{refused}"
    );

    // The server is back: a new process resumes, with nothing done by hand.
    pg.start_again().expect("start the server again");
    let o = rig
        .orchestrator()
        .database(adapter(&pg, root.path()))
        .build()
        .unwrap();
    let err = o.resume().await.unwrap_err();
    let report = err.report().expect("a report");
    assert!(
        matches!(report.outcome, Outcome::RestoredPreRollbackState { .. }),
        "{}",
        report.outcome
    );
    assert_eq!(
        pg.psql("web", "SELECT v FROM t").unwrap().trim(),
        "v2",
        "the pre-rollback data is live"
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT datallowconn FROM pg_database WHERE datname = 'web'"
        )
        .unwrap()
        .trim(),
        "t",
        "and open to clients"
    );
    assert!(rig.app_online(), "the app serves again");
    println!("--- after resume ---\n{}", report.to_markdown());
    assert!(matches!(o.resume().await, Err(RollbackError::NothingToResume)));
}
