//! An emergency backup that renamed the live database aside but could not record that it
//! finished (its process died, or its state file could not be written) is found by looking
//! (issue 30): `preserved(label)` reads the record it began and the catalog, names the
//! database that holds the pre-rollback data, and `reinstate` puts it back. Against a real
//! PostgreSQL.

use rollback_core::DatabaseSnapshot;
use rollback_postgres::{PgConfig, PgTools, PostgresSnapshot, METHOD_RENAME};
use rollback_testkit::TempPostgres;

const STATE_FILE: &str = ".rollback-postgres-state.json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_that_was_never_recorded_as_finished_is_found_and_put_back() {
    let test = "rollback-postgres interrupted emergency backup";
    let Some(pg) = TempPostgres::start(test).expect("start a temporary PostgreSQL") else {
        return;
    };
    pg.create_database("web").unwrap();
    pg.psql(
        "web",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('pre-rollback');",
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let config = PgConfig::new(pg.host(), pg.port(), pg.superuser(), "web").password(pg.password().clone());
    let db = PostgresSnapshot::new(config, root.path(), PgTools::in_dir(pg.bindir()));

    assert_eq!(
        db.preserved("pre-rollback-rb-1").await.unwrap(),
        None,
        "nothing yet"
    );
    let done = db.preserve_current("pre-rollback-rb-1").await.unwrap();
    assert_eq!(done.method, METHOD_RENAME);
    assert_eq!(
        db.preserved("pre-rollback-rb-1").await.unwrap().as_ref(),
        Some(&done),
        "a finished backup is named as it was returned"
    );

    // As if the call died (or could not write its record) right after the rename: the
    // record it wrote before the rename is there, its "done" never was.
    let path = root.path().join(STATE_FILE);
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let rec = &mut state["preserved"]["pre-rollback-rb-1"];
    assert_eq!(
        rec["done"],
        serde_json::Value::Bool(true),
        "the record of a finished call"
    );
    rec["done"] = serde_json::Value::Bool(false);
    std::fs::write(&path, serde_json::to_string(&state).unwrap()).unwrap();

    let found = db
        .preserved("pre-rollback-rb-1")
        .await
        .unwrap()
        .expect("the renamed database is found by looking");
    assert_eq!(found.location, done.location);
    assert!(
        found.notes.iter().any(|n| n.contains("found by looking")),
        "{:?}",
        found.notes
    );
    assert!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'web'"
        )
        .unwrap()
        .contains('0'),
        "the live name is empty: the premise"
    );
    db.reinstate(&found).await.expect("put back");
    db.open().await.expect("opened to clients, as the recovery does");
    assert!(pg
        .psql("web", "SELECT v FROM t")
        .unwrap()
        .contains("pre-rollback"));

    // A label no call used is nothing.
    assert_eq!(db.preserved("pre-rollback-rb-2").await.unwrap(), None);
}
