//! `diagnose` against a real, temporary PostgreSQL (issue 18, point 5): a long-running
//! `pg_sleep` in one session, a row lock held by a transaction left open in a second and
//! waited on by a third, and `pg_stat_statements` after a restart that preloads it. Query
//! text is shown only without its literals. Skips loudly without the server binaries.

use rollback_core::{DatabaseSnapshot, Finding};
use rollback_postgres::{Options, PgConfig, PgTools, PostgresSnapshot};
use rollback_testkit::TempPostgres;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

const TOPICS: [&str; 5] = [
    "long-running queries",
    "lock waits",
    "connections by state",
    "cache hit ratio",
    "top statements",
];

async fn client(pg: &TempPostgres, dbname: &str, app: &str) -> Client {
    let (client, conn) = tokio_postgres::Config::new()
        .host(pg.host())
        .port(pg.port())
        .user(pg.superuser())
        .password(pg.password().expose())
        .dbname(dbname)
        .application_name(app)
        .connect(NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

fn finding<'a>(found: &'a [Finding], topic: &str) -> &'a Finding {
    found
        .iter()
        .find(|f| f.topic == topic)
        .unwrap_or_else(|| panic!("no `{topic}` finding in {found:#?}"))
}

/// A cluster with database `shop` (one account row) and the adapter on it.
fn setup(test: &str) -> Option<(TempPostgres, PostgresSnapshot, tempfile::TempDir)> {
    let pg = TempPostgres::start(test).expect("start a temporary PostgreSQL")?;
    pg.create_database("shop").expect("create database");
    pg.psql(
        "shop",
        "CREATE TABLE accounts (id int PRIMARY KEY, email text, balance int); \
         INSERT INTO accounts VALUES (1, 'a@example.com', 10)",
    )
    .expect("schema");
    let root = tempfile::tempdir().expect("tempdir");
    let config = PgConfig::new(pg.host(), pg.port(), pg.superuser(), "shop").password(pg.password().clone());
    let db = PostgresSnapshot::new(config, root.path(), PgTools::in_dir(pg.bindir()))
        .with_options(Options::new().long_running(Duration::from_millis(800)));
    Some((pg, db, root))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_names_a_long_query_and_a_lock_wait_with_its_blocker_never_their_literals() {
    let Some((pg, db, _root)) = setup("diagnose_names_a_long_query_and_a_lock_wait") else {
        return;
    };

    // Nothing going on: every topic answers, nothing is worth a look.
    let quiet = db.diagnose().await.expect("diagnose");
    assert_eq!(quiet.iter().map(|f| f.topic.as_str()).collect::<Vec<_>>(), TOPICS);
    assert!(quiet.iter().all(|f| !f.notable), "nothing runs yet: {quiet:#?}");
    assert!(
        finding(&quiet, "top statements")
            .summary
            .contains("pg_stat_statements is not installed in shop"),
        "{quiet:#?}"
    );

    // A long query whose text holds a card number.
    let sleeper = client(&pg, "shop", "sleeper").await;
    let stop_sleeper = sleeper.cancel_token();
    let sleeping = tokio::spawn(async move {
        sleeper
            .simple_query("SELECT pg_sleep(60) WHERE 'card 4111-1111-1111-1111' <> ''")
            .await
    });
    // A transaction left open holding a row lock, and a session waiting for that row.
    let holder = client(&pg, "shop", "holder").await;
    holder
        .batch_execute("BEGIN; UPDATE accounts SET balance = 11 WHERE id = 1")
        .await
        .expect("hold the row");
    let waiter = client(&pg, "shop", "waiter").await;
    let waiting = tokio::spawn(async move {
        waiter
            .batch_execute(
                "UPDATE accounts SET balance = 12 WHERE email = 'pii-canary@example.com' OR id = 1",
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let found = db.diagnose().await.expect("diagnose");
    let shown = format!("{found:?}");
    for secret in [
        "4111",
        "pii-canary",
        "a@example.com",
        TempPostgres::DEFAULT_PASSWORD,
    ] {
        assert!(!shown.contains(secret), "`{secret}` shown: {found:#?}");
    }

    let long = finding(&found, "long-running queries");
    assert!(long.notable, "{long:#?}");
    assert!(
        long.summary.contains("more than 0.8s") && long.summary.contains("literals replaced by ?"),
        "{}",
        long.summary
    );
    assert!(
        long.items.iter().any(|i| i.contains("application `sleeper`")
            && i.contains(": active for ")
            && i.contains("`SELECT pg_sleep(?) WHERE ? <> ?`")),
        "{:#?}",
        long.items
    );
    assert!(
        long.items
            .iter()
            .any(|i| i.contains("application `holder`") && i.contains("idle in transaction")),
        "an open transaction is long-running too: {:#?}",
        long.items
    );

    let locks = finding(&found, "lock waits");
    assert!(locks.notable && locks.items.len() == 1, "{locks:#?}");
    let wait = &locks.items[0];
    assert!(
        wait.contains("application `waiter`")
            && wait.contains("ShareLock on transactionid (Lock/transactionid)")
            && wait.contains("`UPDATE accounts SET balance = ? WHERE email = ? OR id = ?`")
            && wait.contains("blocked by pid ")
            && wait.contains("application `holder`, idle in transaction, transaction open ")
            && wait.contains("last query `BEGIN; UPDATE accounts SET balance = ? WHERE id = ?`"),
        "{wait}"
    );

    let connections = finding(&found, "connections by state");
    assert!(
        connections.summary.contains("active 2")
            && connections.summary.contains("idle in transaction 1")
            && connections.summary.contains("of 50 allowed in the cluster"),
        "{}",
        connections.summary
    );
    assert!(
        connections.notable,
        "a transaction idle for more than 0.8s: {connections:#?}"
    );
    assert!(
        finding(&found, "cache hit ratio")
            .summary
            .contains("block reads of shop came from shared buffers"),
        "{found:#?}"
    );

    // Diagnose changed nothing: the waiter still waits, the sleeper still sleeps.
    assert!(!waiting.is_finished() && !sleeping.is_finished());
    holder.batch_execute("ROLLBACK").await.expect("release the row");
    waiting
        .await
        .expect("join")
        .expect("the waiter gets the row once it is released");
    stop_sleeper
        .cancel_query(NoTls)
        .await
        .expect("cancel the sleeper");
    assert!(sleeping.await.expect("join").is_err(), "cancelled");
    let after = db.diagnose().await.expect("diagnose");
    assert!(!finding(&after, "lock waits").notable, "{after:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_statements_come_from_pg_stat_statements_normalized() {
    let Some((pg, db, _root)) = setup("top_statements_come_from_pg_stat_statements") else {
        return;
    };
    pg.psql(
        "postgres",
        "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'",
    )
    .expect("preload pg_stat_statements");
    pg.restart().expect("restart");
    pg.psql(
        "shop",
        "CREATE EXTENSION pg_stat_statements; CREATE ROLE reporting LOGIN",
    )
    .expect("install pg_stat_statements");

    let c = client(&pg, "shop", "workload").await;
    c.batch_execute("SELECT pg_stat_statements_reset()")
        .await
        .expect("reset");
    for _ in 0..3 {
        c.batch_execute("SELECT count(*) FROM generate_series(1, 300000) g WHERE g > 12345")
            .await
            .expect("workload");
    }
    c.batch_execute("ALTER ROLE reporting PASSWORD 'pw-canary-42'; SET application_name = 'util-canary-77'")
        .await
        .expect("utility statements");

    let found = db.diagnose().await.expect("diagnose");
    let shown = format!("{found:?}");
    for secret in ["12345", "300000", "pw-canary-42", "util-canary-77"] {
        assert!(!shown.contains(secret), "`{secret}` shown: {found:#?}");
    }
    let top = finding(&found, "top statements");
    assert!(
        top.summary.contains("pg_stat_statements' normalized text"),
        "{}",
        top.summary
    );
    assert!(
        top.items.first().is_some_and(|i| i.contains("over 3 call(s)")
            && i.contains("`SELECT count(*) FROM generate_series($1, $2) g WHERE g > $3`")),
        "the most expensive statement first: {:#?}",
        top.items
    );

    // Installed but not loaded (a server started without the preload): said, not an error.
    pg.psql("postgres", "ALTER SYSTEM RESET shared_preload_libraries")
        .expect("unload");
    pg.restart().expect("restart");
    let found = db.diagnose().await.expect("diagnose");
    let top = finding(&found, "top statements");
    assert!(
        top.summary.contains("installed in shop but cannot be read")
            && top.summary.contains("shared_preload_libraries"),
        "{}",
        top.summary
    );
}
