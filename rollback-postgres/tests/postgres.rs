//! Integration tests against a real, temporary PostgreSQL cluster (one per test). They skip
//! loudly when the PostgreSQL server binaries are missing and fail instead under
//! `ROLLBACK_REQUIRE_INTEGRATION=1`.

use async_trait::async_trait;
use rollback_core::{DatabaseSnapshot, ErrorKind, IntegrityChecks, Secret};
use rollback_postgres::{DumpFormat, Options, PgConfig, PgTools, PostgresSnapshot, METHOD_RENAME};
use rollback_testkit::conformance::{database_snapshot, DatabaseFixture};
use rollback_testkit::conformance_tests;
use rollback_testkit::TempPostgres;
use tokio_postgres::NoTls;

struct Env {
    pg: TempPostgres,
    db: PostgresSnapshot,
    _root: tempfile::TempDir,
}

impl Env {
    fn config(&self, dbname: &str) -> PgConfig {
        PgConfig::new(self.pg.host(), self.pg.port(), self.pg.superuser(), dbname)
            .password(self.pg.password().clone())
    }

    async fn client(&self, dbname: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        client(&self.pg, dbname, "rollback-tests").await
    }

    async fn sql(&self, dbname: &str, sql: &str) {
        self.client(dbname)
            .await
            .expect("connect")
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    async fn count(&self, dbname: &str, table: &str) -> i64 {
        self.client(dbname)
            .await
            .expect("connect")
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0)
    }
}

async fn client(
    pg: &TempPostgres,
    dbname: &str,
    app: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::Config::new()
        .host(pg.host())
        .port(pg.port())
        .user(pg.superuser())
        .password(pg.password().expose())
        .dbname(dbname)
        .application_name(app)
        .connect(NoTls)
        .await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Integrity checks: the `(name, sql)` assertions, exact row counts against snapshot
/// `expect`, foreign keys and sequences against snapshot `baseline`'s baseline.
fn checks(
    assertions: &[(&str, &str)],
    expect: Option<&rollback_core::SnapshotId>,
    baseline: Option<&rollback_core::SnapshotId>,
) -> IntegrityChecks {
    assertions
        .iter()
        .fold(IntegrityChecks::new(), |checks, (name, sql)| {
            checks.assertion(*name, *sql)
        })
        .expect_snapshot(expect.cloned())
        .baseline(baseline.cloned())
}

/// The manifest of a snapshot as written on disk (`<location>/manifest.json`).
fn manifest_json(snap: &rollback_core::SnapshotInfo) -> serde_json::Value {
    let path = std::path::Path::new(&snap.location).join("manifest.json");
    serde_json::from_slice(&std::fs::read(&path).expect("read the manifest")).expect("the manifest is JSON")
}

/// A cluster with database `dbname` and the adapter on it, or `None` (after a loud skip).
fn setup(test: &str, dbname: &str) -> Option<Env> {
    let pg = TempPostgres::start(test).expect("start a temporary PostgreSQL")?;
    pg.create_database(dbname).expect("create database");
    let root = tempfile::tempdir().expect("tempdir");
    let config = PgConfig::new(pg.host(), pg.port(), pg.superuser(), dbname).password(pg.password().clone());
    let db = PostgresSnapshot::new(config, root.path(), PgTools::in_dir(pg.bindir()));
    Some(Env { pg, db, _root: root })
}

struct Marker<'a> {
    env: &'a Env,
    dbname: &'a str,
    /// Connect as this role (with the cluster's password) instead of the superuser.
    role: Option<&'a str>,
}

impl Marker<'_> {
    async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        match self.role {
            None => self.env.client(self.dbname).await,
            Some(role) => {
                let (client, conn) = tokio_postgres::Config::new()
                    .host(self.env.pg.host())
                    .port(self.env.pg.port())
                    .user(role)
                    .password(self.env.pg.password().expose())
                    .dbname(self.dbname)
                    .connect(NoTls)
                    .await?;
                tokio::spawn(conn);
                Ok(client)
            }
        }
    }
}

#[async_trait]
impl DatabaseFixture for Marker<'_> {
    async fn write_marker(&self, marker: &str) {
        // `execute` takes one statement: do it in two when the table is new.
        let c = self.connect().await.expect("connect to live");
        c.batch_execute("CREATE TABLE IF NOT EXISTS marker (id int PRIMARY KEY, v text NOT NULL)")
            .await
            .expect("create marker table");
        c.execute(
            "INSERT INTO marker VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
            &[&marker],
        )
        .await
        .expect("write marker");
    }

    async fn read_marker(&self) -> Option<String> {
        let c = self.connect().await.ok()?;
        c.query_opt("SELECT v FROM marker WHERE id = 1", &[])
            .await
            .ok()
            .flatten()
            .map(|r| r.get(0))
    }
}

conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    database_snapshot,
    |check, test| {
        let Some(env) = setup(test, "app") else { return };
        check(
            &env.db,
            &Marker {
                env: &env,
                dbname: "app",
                role: None,
            },
        )
        .await;
    }
);

conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    database_snapshot as database_snapshot_weird_name_directory_format,
    |check, test| {
        let name = "Weird \"DB\" ünï";
        let Some(mut env) = setup(test, name) else { return };
        let root = env._root.path().to_path_buf();
        let from_url = PgConfig::from_url(env.pg.url(name).expose()).expect("the testkit URL parses");
        assert_eq!(from_url.dbname, name, "percent-encoded name survives the URL");
        assert_eq!(from_url.password.as_ref(), Some(env.pg.password()));
        env.db = PostgresSnapshot::new(from_url, root, PgTools::in_dir(env.pg.bindir()))
            .with_options(Options::new().format(DumpFormat::Directory).jobs(2));
        check(
            &env.db,
            &Marker {
                env: &env,
                dbname: name,
                role: None,
            },
        )
        .await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_brings_back_the_snapshot_and_preserve_keeps_later_writes() {
    let Some(env) = setup("rollback-postgres restore", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users(id)); \
         INSERT INTO users (name) SELECT 'u' || g FROM generate_series(1, 1000) g; \
         INSERT INTO orders (user_id) SELECT 1 + g % 1000 FROM generate_series(1, 3000) g; \
         ALTER DATABASE app SET work_mem = '8MB'; \
         ALTER DATABASE app SET search_path TO \"$user\", public, extra; \
         CREATE ROLE reader LOGIN; GRANT CONNECT ON DATABASE app TO reader; \
         ALTER ROLE reader IN DATABASE app SET work_mem = '16MB';",
    )
    .await;
    let snap = env.db.snapshot("before v2").await.expect("snapshot");
    let manifest = manifest_json(&snap);
    let users = manifest["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == "users")
        .expect("users counted");
    assert_eq!(users["rows"], 1000);
    let files = manifest["files"].as_array().expect("files");
    assert!(!files.is_empty());
    assert!(files
        .iter()
        .all(|f| f["sha256"].as_str().is_some_and(|h| h.len() == 64)));

    // The bad deploy: more rows and a migration.
    env.sql(
        "app",
        "INSERT INTO users (name) SELECT 'late' || g FROM generate_series(1, 500) g; \
         CREATE TABLE v2_feature (id int PRIMARY KEY, user_id int REFERENCES users(id));",
    )
    .await;
    let prepared = env.db.prepare_restore(&snap.id).await.expect("prepare");
    assert_eq!(prepared.staged_at.as_deref(), Some("app__rollback_staging"));
    assert_eq!(env.count("app", "users").await, 1500, "prepare leaves live alone");

    let preserved = env.db.preserve_current("rb1").await.expect("preserve");
    assert_eq!(preserved.method, METHOD_RENAME);
    assert!(
        preserved.location.starts_with("app__pre_rollback_"),
        "{}",
        preserved.location
    );
    env.db.restore(&prepared).await.expect("restore");

    assert_eq!(env.count("app", "users").await, 1000, "live holds the snapshot");
    assert_eq!(env.count("app", "orders").await, 3000);
    let c = env.client("app").await.unwrap();
    let has_v2: bool = c
        .query_one("SELECT to_regclass('public.v2_feature') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!has_v2, "the migration's table is gone after the swap");
    let work_mem: String = c.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(work_mem, "8MB", "ALTER DATABASE .. SET re-applied");
    let search_path: String = c.query_one("SHOW search_path", &[]).await.unwrap().get(0);
    assert_eq!(
        search_path, "\"$user\", public, extra",
        "list settings re-applied as lists"
    );
    let role_settings: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole \
             WHERE r.rolname = 'reader' AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = 'app') \
             AND s.setconfig = ARRAY['work_mem=16MB']",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(role_settings, 1, "ALTER ROLE .. IN DATABASE .. SET re-applied");
    let reader_can_connect: bool = c
        .query_one(
            "SELECT has_database_privilege('reader', current_database(), 'CONNECT')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(reader_can_connect, "database grants re-applied");
    // The sequence came back with the data: a new row does not collide.
    c.batch_execute("INSERT INTO users (name) VALUES ('new')")
        .await
        .expect("insert after restore");
    c.batch_execute("DELETE FROM users WHERE name = 'new'")
        .await
        .unwrap();

    assert_eq!(
        env.count(&preserved.location, "users").await,
        1500,
        "later writes kept aside"
    );
    let report = env
        .db
        .check_integrity(&checks(
            &[("has users", "SELECT count(*) FROM users")],
            Some(&snap.id),
            None,
        ))
        .await
        .unwrap();
    assert!(report.passed(), "{report:?}");
    assert!(report
        .checks
        .iter()
        .any(|c| c.name == "row counts" && c.detail.contains("match")));

    // After more writes, the row counts no longer match the snapshot.
    c.batch_execute("INSERT INTO users (name) VALUES ('extra')")
        .await
        .unwrap();
    let report = env
        .db
        .check_integrity(&checks(&[], Some(&snap.id), None))
        .await
        .unwrap();
    assert_eq!(report.failures(), vec!["row counts"], "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_terminates_and_lists_connected_sessions() {
    let Some(env) = setup("rollback-postgres sessions", "app") else {
        return;
    };
    env.sql("app", "CREATE TABLE t (id int)").await;
    let victim = client(&env.pg, "app", "victim-app")
        .await
        .expect("connect victim");
    victim.query_one("SELECT 1", &[]).await.unwrap();
    let preserved = env.db.preserve_current("sessions").await.expect("preserve");
    let notes = preserved.notes.join("\n");
    assert!(notes.contains("victim-app"), "{notes}");
    assert!(notes.contains("127.0.0.1"), "{notes}");
    assert!(
        victim.query_one("SELECT 1", &[]).await.is_err(),
        "the session was terminated"
    );
    let again = env.db.preserve_current("sessions").await.expect("preserve again");
    assert_eq!(again, preserved, "same label, same result");
    assert!(
        env.client("app").await.is_err(),
        "no live database until restore/reinstate"
    );
    env.db.reinstate(&preserved).await.expect("reinstate");
    assert!(
        env.client("app").await.is_err(),
        "reinstate leaves it sealed until open"
    );
    env.db.open().await.expect("open");
    assert_eq!(env.count("app", "t").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_finds_not_valid_fk_orphans_behind_sequences_and_failed_assertions() {
    let Some(env) = setup("rollback-postgres integrity", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE parent (id int PRIMARY KEY); \
         CREATE TABLE child (id int, parent_id int); \
         INSERT INTO parent VALUES (1), (2); \
         INSERT INTO child VALUES (1, 1), (2, NULL), (3, 99), (4, 98); \
         ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent(id) NOT VALID; \
         CREATE TABLE seq_t (id serial PRIMARY KEY, v int); \
         INSERT INTO seq_t (v) VALUES (1), (2); \
         INSERT INTO seq_t (id, v) VALUES (100, 3);",
    )
    .await;
    let report = env
        .db
        .check_integrity(&checks(
            &[
                ("parents exist", "SELECT count(*) FROM parent"),
                ("always false", "SELECT false"),
                ("broken sql", "SELECT * FROM no_such_table"),
                ("cannot write", "INSERT INTO parent VALUES (3) RETURNING true"),
            ],
            None,
            None,
        ))
        .await
        .expect("checks run");
    let mut failures = report.failures();
    failures.sort();
    assert_eq!(
        failures,
        vec![
            "assertion: always false",
            "assertion: broken sql",
            "assertion: cannot write",
            "foreign keys",
            "sequences"
        ],
        "{report:?}"
    );
    let fk = report.checks.iter().find(|c| c.name == "foreign keys").unwrap();
    assert!(
        fk.detail.contains("child_parent_fk")
            && fk.detail.contains("2 orphan rows")
            && fk.detail.contains("NOT VALID"),
        "{}",
        fk.detail
    );
    let seq = report.checks.iter().find(|c| c.name == "sequences").unwrap();
    assert!(
        seq.detail.contains("seq_t_id_seq") && seq.detail.contains("100"),
        "{}",
        seq.detail
    );
    assert_eq!(env.count("app", "parent").await, 2, "assertions run read-only");

    // Fixed: orphans removed, sequence moved past the max.
    env.sql(
        "app",
        "DELETE FROM child WHERE parent_id > 2; SELECT setval('seq_t_id_seq', 100);",
    )
    .await;
    let report = env.db.check_integrity(&IntegrityChecks::default()).await.unwrap();
    assert!(report.passed(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_show_in_debug_or_errors() {
    let Some(env) = setup("rollback-postgres secrets", "app") else {
        return;
    };
    let canary = rollback_testkit::CANARY_DB_PASSWORD;
    env.pg
        .psql(
            "postgres",
            &format!("CREATE ROLE canary LOGIN SUPERUSER PASSWORD '{canary}'"),
        )
        .unwrap();
    let url = format!(
        "postgres://canary:{canary}@{}:{}/app",
        env.pg.host(),
        env.pg.port()
    );
    let config = PgConfig::from_url(&url).unwrap();
    let root = tempfile::tempdir().unwrap();
    let db = PostgresSnapshot::new(config.clone(), root.path(), PgTools::in_dir(env.pg.bindir()));
    assert!(!format!("{db:?}").contains(canary));
    let snap = db
        .snapshot("with canary")
        .await
        .expect("the canary password works");
    let manifest =
        std::fs::read_to_string(std::path::Path::new(&snap.location).join("manifest.json")).unwrap();
    assert!(!manifest.contains(canary));

    let wrong = format!("{canary}-wrong");
    let bad = PostgresSnapshot::new(
        config.clone().password(Secret::new(wrong.clone())),
        root.path(),
        PgTools::in_dir(env.pg.bindir()),
    );
    let e = bad.ping().await.expect_err("wrong password");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("password authentication failed"), "{shown}");
    assert!(!shown.contains(canary), "{shown}");
    let e = bad.snapshot("x").await.expect_err("wrong password");
    assert!(!format!("{e} {e:?}").contains(canary));
    let report = bad.check_integrity(&IntegrityChecks::default()).await.unwrap();
    assert!(!report.passed());
    assert!(!format!("{report:?}").contains(canary));
    // A tool failure (restore into a database that cannot be reached) scrubs its output too.
    let e = bad.prepare_restore(&snap.id).await.expect_err("wrong password");
    assert!(!format!("{e} {e:?}").contains(canary));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_pg_dump_is_a_clear_not_found() {
    let Some(env) = setup("rollback-postgres missing tool", "app") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let tools = PgTools::new("/nonexistent/bin/pg_dump", env.pg.bindir().join("pg_restore"));
    let db = PostgresSnapshot::new(env.config("app"), root.path(), tools);
    let e = db.snapshot("x").await.expect_err("no pg_dump");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string()
            .contains("pg_dump binary not found at /nonexistent/bin/pg_dump"),
        "{e}"
    );
    assert!(db.list().await.unwrap().is_empty(), "no half snapshot is listed");
    let found = PgTools::discover()
        .await
        .expect("the client tools are installed with the server");
    assert!(found.pg_dump.is_file() && found.pg_restore.is_file(), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_is_newest_first_and_retention_keeps_the_newest() {
    let Some(env) = setup("rollback-postgres retention", "app") else {
        return;
    };
    let mut ids = Vec::new();
    for label in ["one", "two", "three"] {
        ids.push(env.db.snapshot(label).await.expect("snapshot").id);
    }
    let listed: Vec<_> = env.db.list().await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, ids.iter().rev().cloned().collect::<Vec<_>>());
    env.pg
        .psql(
            "postgres",
            "CREATE DATABASE \"app__pre_rollback_20200101T000000\"",
        )
        .unwrap();
    env.pg
        .psql(
            "postgres",
            "CREATE DATABASE \"app__pre_rollback_20210101T000000\"",
        )
        .unwrap();
    let report = env.db.apply_retention(1, 1).await.expect("retention");
    assert_eq!(report.removed_snapshots, vec![ids[1].clone(), ids[0].clone()]);
    assert_eq!(
        report.dropped_databases,
        vec!["app__pre_rollback_20200101T000000".to_owned()]
    );
    let listed: Vec<_> = env.db.list().await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![ids[2].clone()]);
    let left = env
        .pg
        .psql(
            "postgres",
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'app%'",
        )
        .unwrap();
    assert_eq!(left, "app,app__pre_rollback_20210101T000000");
    let e = env.db.remove(&ids[0]).await.expect_err("removed already");
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rename_rights_it_falls_back_to_dumps_and_in_place_restores() {
    let Some(env) = setup("rollback-postgres no rename rights", "unused") else {
        return;
    };
    // An owner without CREATEDB may not rename or create databases.
    let pw = env.pg.password().expose().to_owned();
    env.pg
        .psql(
            "postgres",
            &format!("CREATE ROLE app_owner LOGIN NOCREATEDB PASSWORD '{pw}'"),
        )
        .unwrap();
    env.pg
        .psql("postgres", "CREATE DATABASE shop OWNER app_owner")
        .unwrap();
    let config =
        PgConfig::new(env.pg.host(), env.pg.port(), "app_owner", "shop").password(env.pg.password().clone());
    let root = tempfile::tempdir().unwrap();
    let db = PostgresSnapshot::new(config, root.path(), PgTools::in_dir(env.pg.bindir()));
    let fixture = Marker {
        env: &env,
        dbname: "shop",
        role: Some("app_owner"),
    };
    database_snapshot(&db, &fixture).await;

    fixture.write_marker("v3").await;
    let snap = db.snapshot("again").await.unwrap();
    let prepared = db.prepare_restore(&snap.id).await.unwrap();
    assert_eq!(prepared.staged_at, None, "no staging without CREATEDB");
    assert!(
        prepared.notes.iter().any(|n| n.contains("no CREATEDB privilege")),
        "{:?}",
        prepared.notes
    );
    let preserved = db.preserve_current("fallback").await.unwrap();
    assert_eq!(preserved.method, rollback_postgres::METHOD_DUMP);
    assert!(
        preserved.notes.iter().any(|n| n.contains("could not rename")),
        "{:?}",
        preserved.notes
    );
    assert!(std::path::Path::new(&preserved.location)
        .join("dump.pgdump")
        .is_file());
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("v3"),
        "live stays in place"
    );

    // Restored in place, written into by a client, then the rollback is undone: what was
    // live cannot be renamed aside, so it is kept as an archive before it is overwritten.
    db.restore(&prepared).await.expect("restore in place");
    fixture.write_marker("a client's write after the switch").await;
    let aside = db.reinstate(&preserved).await.expect("reinstate in place");
    assert_eq!(aside.len(), 1, "{aside:?}");
    let archive = std::path::Path::new(&aside[0].location).join("dump.pgdump");
    assert!(archive.is_file(), "{aside:?}");
    assert!(
        aside[0].holds.contains("pg_dump archive")
            && aside[0].holds.contains("restored over in place")
            && aside[0].holds.contains(snap.id.as_str()),
        "{aside:?}"
    );
    assert_eq!(fixture.read_marker().await.as_deref(), Some("v3"));
    assert_eq!(
        db.reinstate(&preserved).await.expect("again"),
        aside,
        "idempotent, same answer"
    );
    let listed = std::process::Command::new(env.pg.bindir().join("pg_restore"))
        .arg("--list")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(listed.status.success(), "the archive is readable");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("marker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_connections_work_without_a_password() {
    let Some(env) = setup("rollback-postgres unix socket", "app") else {
        return;
    };
    let socket = env.pg.socket_dir().to_string_lossy().into_owned();
    let config = PgConfig::new(socket, env.pg.port(), env.pg.superuser(), "app");
    let root = tempfile::tempdir().unwrap();
    let db = PostgresSnapshot::new(config, root.path(), PgTools::in_dir(env.pg.bindir()));
    db.ping().await.expect("ping over the socket");
    let snap = db.snapshot("socket").await.expect("pg_dump over the socket");
    db.verify(&snap.id).await.unwrap();
}

#[tokio::test]
async fn a_server_that_is_down_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = PgConfig::new("127.0.0.1", port, "app", "app").password("canary-down-pw");
    let root = tempfile::tempdir().unwrap();
    let db = PostgresSnapshot::new(config, root.path(), PgTools::new("pg_dump", "pg_restore"));
    let e = db.ping().await.expect_err("nothing listens");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    let report = db.check_integrity(&IntegrityChecks::default()).await.unwrap();
    assert_eq!(report.failures(), vec!["connectivity"]);
    assert!(!format!("{e:?} {report:?}").contains("canary-down-pw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_database_is_a_clear_not_found_before_anything_changes() {
    let Some(env) = setup("rollback-postgres unknown database", "app") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let missing = PostgresSnapshot::new(
        env.config("no_such_db"),
        root.path(),
        PgTools::in_dir(env.pg.bindir()),
    );
    let e = missing.ping().await.expect_err("unknown database");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().contains("no_such_db"),
        "the error names the database: {e}"
    );
    let e = missing.snapshot("x").await.expect_err("unknown database");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        missing.list().await.unwrap_or_default().is_empty(),
        "nothing was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staged_copy_is_analyzed_before_the_switch() {
    let Some(env) = setup("rollback-postgres staged analyze", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g",
    )
    .await;
    let snap = env.db.snapshot("v1").await.expect("snapshot");
    let prepared = env.db.prepare_restore(&snap.id).await.expect("prepare");
    let staging = prepared.staged_at.clone().expect("staged");
    let analyzed: Option<i64> = env
        .client(&staging)
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 't' AND last_analyze IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        analyzed,
        Some(1),
        "planner statistics exist before the app runs on it"
    );
    assert!(
        prepared.notes.iter().any(|n| n.contains("VACUUM (ANALYZE)")),
        "{:?}",
        prepared.notes
    );
}

// ---- issue 12 ---------------------------------------------------------------------------

/// The id of database `name` (None when there is none) and whether it accepts connections.
async fn db_info(env: &Env, name: &str) -> Option<(u32, bool)> {
    env.client("postgres")
        .await
        .unwrap()
        .query_opt(
            "SELECT oid, datallowconn FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

fn check<'a>(report: &'a rollback_core::IntegrityReport, name: &str) -> &'a rollback_core::CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_already_there_at_snapshot_time_are_the_baseline_not_a_failure() {
    let Some(env) = setup("rollback-postgres baseline", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE users (id int PRIMARY KEY); \
         CREATE TABLE orders (id int PRIMARY KEY, user_id int); \
         INSERT INTO users VALUES (1), (2); \
         INSERT INTO orders VALUES (1, 1), (2, 2), (3, 97), (4, 98), (5, 99); \
         ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users(id) NOT VALID; \
         CREATE TABLE seq_t (id serial PRIMARY KEY); \
         INSERT INTO seq_t VALUES (DEFAULT), (50);",
    )
    .await;
    let snap = env
        .db
        .snapshot("broken keys")
        .await
        .expect("a database with broken keys is snapshotted");
    assert!(
        snap.warnings.contains(
            &"foreign key orders_user_fk on public.orders: 3 orphan rows at snapshot time (NOT VALID)"
                .to_owned()
        ),
        "{:?}",
        snap.warnings
    );
    assert!(
        snap.warnings
            .iter()
            .any(|w| w.starts_with("sequence public.seq_t_id_seq")
                && w.contains("50")
                && w.ends_with("at snapshot time")),
        "{:?}",
        snap.warnings
    );
    assert_eq!(snap.warnings.len(), 2, "{:?}", snap.warnings);
    let listed = env.db.list().await.unwrap();
    assert_eq!(
        listed[0].warnings, snap.warnings,
        "list() shows the same baseline"
    );
    let manifest = manifest_json(&snap);
    let fk = &manifest["baseline"]["foreign_keys"][0];
    assert_eq!(
        (
            fk["schema"].as_str(),
            fk["table"].as_str(),
            fk["constraint"].as_str(),
            fk["validated"].as_bool(),
            fk["orphans"].as_i64()
        ),
        (
            Some("public"),
            Some("orders"),
            Some("orders_user_fk"),
            Some(false),
            Some(3)
        ),
        "baseline recorded: {manifest}"
    );

    let prepared = env.db.prepare_restore(&snap.id).await.expect("prepare");
    let with_baseline = checks(&[], None, Some(&snap.id));
    let report = env
        .db
        .check_prepared(&prepared, &with_baseline)
        .await
        .expect("checks run");
    assert!(report.passed(), "{report:?}");
    let fk = check(&report, "foreign keys");
    assert!(
        fk.detail
            .contains("orders_user_fk on public.orders: 3 orphan rows, as at snapshot time (NOT VALID)")
            && fk.detail.contains(&format!("baseline of snapshot {}", snap.id)),
        "{}",
        fk.detail
    );
    assert!(check(&report, "sequences").detail.contains("as at snapshot time"));
    let rows = check(&report, "row counts");
    assert!(rows.passed && rows.detail.contains(snap.id.as_str()), "{rows:?}");
    assert!(
        check(&report, "connectivity")
            .detail
            .contains("app__rollback_staging"),
        "the checks ran on the staged copy: {report:?}"
    );
    let strict = env
        .db
        .check_prepared(&prepared, &IntegrityChecks::default())
        .await
        .unwrap();
    assert_eq!(strict.failures(), vec!["foreign keys", "sequences"], "{strict:?}");

    // One more orphan in the live database: worse than the baseline.
    // (A bulk load with triggers off, as replication does: the key does not see it.)
    env.sql(
        "app",
        "SET session_replication_role = replica; INSERT INTO orders VALUES (6, 96); \
         SET session_replication_role = origin;",
    )
    .await;
    let report = env.db.check_integrity(&with_baseline).await.unwrap();
    assert_eq!(report.failures(), vec!["foreign keys"], "{report:?}");
    let fk = check(&report, "foreign keys");
    assert!(
        fk.detail
            .contains("orders_user_fk on public.orders (4 orphan rows, 3 at snapshot time, NOT VALID)"),
        "{}",
        fk.detail
    );
    let report = env.db.check_integrity(&IntegrityChecks::default()).await.unwrap();
    assert_eq!(report.failures(), vec!["foreign keys", "sequences"], "{report:?}");
    assert!(check(&report, "foreign keys")
        .detail
        .contains("4 orphan rows, NOT VALID"));

    // A key that is new since the snapshot fails even with a baseline.
    env.sql(
        "app",
        "DELETE FROM orders WHERE id = 6; CREATE TABLE notes (id int, user_id int); \
         INSERT INTO notes VALUES (1, 42); \
         ALTER TABLE notes ADD CONSTRAINT notes_user_fk FOREIGN KEY (user_id) REFERENCES users(id) NOT VALID;",
    )
    .await;
    let report = env.db.check_integrity(&with_baseline).await.unwrap();
    assert_eq!(report.failures(), vec!["foreign keys"], "{report:?}");
    assert!(
        check(&report, "foreign keys").detail.contains("notes_user_fk on public.notes (1 orphan rows, NOT VALID; the key is not in the snapshot's baseline)"),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prepared_checks_only_the_staging_database_prepare_restore_made() {
    let Some(env) = setup("rollback-postgres check_prepared", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10) g",
    )
    .await;
    let a = env.db.snapshot("a").await.unwrap();
    let b = env.db.snapshot("b").await.unwrap();
    let prepared = env.db.prepare_restore(&a.id).await.unwrap();
    let ten_rows = checks(&[("ten rows", "SELECT count(*) = 10 FROM t")], None, None);
    let report = env.db.check_prepared(&prepared, &ten_rows).await.unwrap();
    assert!(report.passed(), "{report:?}");
    assert!(report.checks.iter().any(|c| c.name == "assertion: ten rows"));
    assert!(report.checks.iter().any(|c| c.name == "row counts"), "{report:?}");

    let wrong = rollback_core::PreparedRestore {
        snapshot: b.id.clone(),
        ..prepared.clone()
    };
    let e = env
        .db
        .check_prepared(&wrong, &ten_rows)
        .await
        .expect_err("staging holds a, not b");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");

    let in_place = rollback_core::PreparedRestore {
        staged_at: None,
        ..prepared.clone()
    };
    let report = env.db.check_prepared(&in_place, &ten_rows).await.unwrap();
    assert!(
        report.checks.is_empty(),
        "nothing staged, nothing checked online: {report:?}"
    );

    // Dropped and made again by someone else: same name, another database.
    for sql in [
        "DROP DATABASE app__rollback_staging WITH (FORCE)",
        "CREATE DATABASE app__rollback_staging",
    ] {
        env.pg.psql("postgres", sql).unwrap();
    }
    let e = env
        .db
        .check_prepared(&prepared, &ten_rows)
        .await
        .expect_err("not the staged copy");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("prepare_restore again"), "{e}");
    let e = env
        .db
        .restore(&prepared)
        .await
        .expect_err("restore refuses it too");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_from_an_earlier_version_gets_its_baseline_from_the_staged_copy() {
    let Some(env) = setup("rollback-postgres old manifest", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (id int, p_id int); \
         INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1), (2, 5), (3, 6); \
         ALTER TABLE c ADD CONSTRAINT c_p_fk FOREIGN KEY (p_id) REFERENCES p(id) NOT VALID;",
    )
    .await;
    let snap = env.db.snapshot("old").await.unwrap();
    // What an earlier version wrote: no baseline, no checksum of the manifest itself.
    let dir = std::path::Path::new(&snap.location);
    let path = dir.join("manifest.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let object = json.as_object_mut().unwrap();
    object.remove("baseline");
    object.remove("manifest_sha256");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let manifest_before = std::fs::read(&path).unwrap();
    env.db
        .verify(&snap.id)
        .await
        .expect("an old manifest is accepted (with a warning)");
    assert!(
        env.db.list().await.unwrap()[0].warnings.is_empty(),
        "baseline unknown"
    );

    let with_baseline = checks(&[], None, Some(&snap.id));
    let report = env.db.check_integrity(&with_baseline).await.unwrap();
    assert_eq!(
        report.failures(),
        vec!["foreign keys"],
        "unknown baseline: strict"
    );
    assert!(
        check(&report, "foreign keys")
            .detail
            .contains("records no integrity baseline"),
        "{report:?}"
    );

    let prepared = env.db.prepare_restore(&snap.id).await.unwrap();
    assert!(
        prepared
            .notes
            .iter()
            .any(|n| n.contains("measured it on the staged copy")
                && n.contains("c_p_fk on public.c: 2 orphan rows at snapshot time (NOT VALID)")),
        "{:?}",
        prepared.notes
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        manifest_before,
        "the manifest is never rewritten"
    );
    assert!(dir.join("baseline.measured.json").is_file());
    env.db.verify(&snap.id).await.expect("still verifies");
    let report = env.db.check_prepared(&prepared, &with_baseline).await.unwrap();
    assert!(report.passed(), "{report:?}");
    let report = env.db.check_integrity(&with_baseline).await.unwrap();
    assert!(
        report.passed(),
        "the live database is as broken as the snapshot: {report:?}"
    );
    assert_eq!(env.db.list().await.unwrap()[0].warnings.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edited_manifest_is_caught_by_verify_before_any_restore() {
    let Some(env) = setup("rollback-postgres manifest checksum", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 300) g",
    )
    .await;
    let snap = env.db.snapshot("v1").await.unwrap();
    let path = std::path::Path::new(&snap.location).join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"manifest_sha256\""), "{text}");
    let edited = text.replacen("\"rows\": 300", "\"rows\": 301", 1);
    assert_ne!(edited, text, "the row count is in the manifest");
    std::fs::write(&path, edited).unwrap();

    let e = env.db.verify(&snap.id).await.expect_err("edited manifest");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let shown = e.to_string();
    assert!(
        shown.contains(&path.display().to_string()),
        "names the file: {shown}"
    );
    assert!(shown.contains("do not restore"), "{shown}");
    let e = env
        .db
        .prepare_restore(&snap.id)
        .await
        .expect_err("nothing is restored");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(
        db_info(&env, "app__rollback_staging").await.is_none(),
        "no staging database was made"
    );

    // Whitespace is not content.
    std::fs::write(&path, text.replace("\n", "\n  ")).unwrap();
    env.db.verify(&snap.id).await.expect("same content, other layout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_and_reinstate_name_what_they_put_aside() {
    let Some(env) = setup("rollback-postgres put aside", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('snapshot')",
    )
    .await;
    let snap = env.db.snapshot("s").await.unwrap();
    env.sql("app", "INSERT INTO t VALUES ('deploy')").await;
    let preserved = env.db.preserve_current("p").await.unwrap();
    let prepared = env.db.prepare_restore(&snap.id).await.unwrap();
    assert_eq!(
        env.db.restore(&prepared).await.unwrap(),
        vec![],
        "preserve_current moved live"
    );
    env.sql("app", "INSERT INTO t VALUES ('after the switch')").await;

    let aside = env.db.reinstate(&preserved).await.expect("reinstate");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0].location.starts_with("app__rollback_failed_"),
        "{aside:?}"
    );
    let holds = &aside[0].holds;
    assert!(
        holds.starts_with(&format!(
            "the restored snapshot {} with the writes other clients made into it after it was opened to them at ",
            snap.id
        )) && holds.ends_with("; set aside because the rollback was undone"),
        "{holds}"
    );
    assert_eq!(
        env.count(&aside[0].location, "t").await,
        2,
        "the write after the switch is there"
    );
    env.db.open().await.expect("open");
    assert_eq!(env.count("app", "t").await, 2, "the preserved database is live");
    assert_eq!(
        env.db.reinstate(&preserved).await.unwrap(),
        aside,
        "idempotent, same answer"
    );

    // Without preserve_current the live database is renamed aside by restore itself.
    let prepared = env.db.prepare_restore(&snap.id).await.unwrap();
    let replaced = env.db.restore(&prepared).await.expect("restore");
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert!(
        replaced[0].location.starts_with("app__rollback_replaced_"),
        "{replaced:?}"
    );
    assert!(
        replaced[0].holds.contains(snap.id.as_str()) && replaced[0].holds.contains("every write"),
        "{replaced:?}"
    );
    assert_eq!(env.count(&replaced[0].location, "t").await, 2);
    assert_eq!(env.count("app", "t").await, 1);
    assert_eq!(
        env.db.restore(&prepared).await.unwrap(),
        replaced,
        "idempotent, same answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_snapshots_are_cleared_once_their_writer_is_gone() {
    let Some(env) = setup("rollback-postgres partial snapshots", "app") else {
        return;
    };
    let root = env.db.snapshot_root().to_path_buf();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    let dead_pid = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let partial = |name: &str, writer: Option<(u32, &str)>| {
        let dir = root.join(format!(".partial-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("dump.pgdump"), b"half a dump").unwrap();
        if let Some((pid, host)) = writer {
            let json = serde_json::json!({
                "pid": pid, "host": host, "proc_start": null, "started_at": "2026-01-01T00:00:00Z"
            });
            std::fs::write(dir.join(".writer"), json.to_string()).unwrap();
        }
        dir
    };
    let dead = partial("dead", Some((dead_pid, &host)));
    let alive = partial("alive", Some((std::process::id(), &host)));
    let elsewhere = partial("elsewhere", Some((dead_pid, "another-host")));
    let fresh = partial("fresh", None);
    let old = partial("old", None);
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for p in [old.join("dump.pgdump"), old.clone()] {
        std::fs::File::open(&p)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }

    let snap = env.db.snapshot("next").await.expect("snapshot");
    assert!(!dead.exists(), "its writer is dead");
    assert!(!old.exists(), "no writer record and untouched for two hours");
    assert!(alive.exists(), "its writer is alive");
    assert!(elsewhere.exists(), "written from another host: cannot tell");
    assert!(fresh.exists(), "no writer record but recent");
    let dir = std::path::Path::new(&snap.location);
    assert!(
        !dir.join(".writer").exists(),
        "the writer record goes before the rename"
    );
    let manifest = manifest_json(&snap);
    assert_eq!(
        manifest["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| f["path"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec!["dump.pgdump"]
    );

    let dead2 = partial("dead2", Some((dead_pid, &host)));
    let report = env.db.apply_retention(5, 5).await.unwrap();
    assert_eq!(report.cleared_partials, vec![dead2.clone()]);
    assert!(!dead2.exists());
    let dead3 = partial("dead3", Some((dead_pid, &host)));
    env.db.remove(&snap.id).await.unwrap();
    assert!(!dead3.exists(), "remove() clears them too");
    assert!(alive.exists() && elsewhere.exists() && fresh.exists());
}

// ---- issue 20: other database clients during the switch ----------------------------------

/// A client of the live database that is not the app (a worker, a cron job, a pool): it
/// inserts `ledger` rows in a loop and reconnects `delay` after any error. Records the ids
/// the server acknowledged.
struct LedgerClient {
    acked: std::sync::Arc<std::sync::Mutex<Vec<i64>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl LedgerClient {
    fn start(
        pg: &TempPostgres,
        dbname: &str,
        delay: std::time::Duration,
        next: std::sync::Arc<std::sync::atomic::AtomicI64>,
    ) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(pg.host())
            .port(pg.port())
            .user(pg.superuser())
            .password(pg.password().expose())
            .dbname(dbname)
            .application_name("ledger-worker")
            .connect_timeout(std::time::Duration::from_secs(2));
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn({
            let (acked, stop) = (acked.clone(), stop.clone());
            async move {
                let limit = std::time::Duration::from_secs(3);
                while !stop.load(SeqCst) {
                    if let Ok(Ok((client, conn))) = tokio::time::timeout(limit, cfg.connect(NoTls)).await {
                        tokio::spawn(conn);
                        while !stop.load(SeqCst) {
                            let id = next.fetch_add(1, SeqCst);
                            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                            let insert = client.execute("INSERT INTO ledger (id) VALUES ($1)", &params);
                            match tokio::time::timeout(limit, insert).await {
                                Ok(Ok(1)) => acked.lock().unwrap().push(id),
                                _ => break,
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        }
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        });
        LedgerClient { acked, stop, task }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn stop(self) -> Vec<i64> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.task.await.expect("ledger client");
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// True when `line` names database `db` (as a whole word).
fn names_db(line: &str, db: &str) -> bool {
    line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w == db)
}

/// Every ledger id in database `db`.
async fn ledger_ids(env: &Env, db: &str) -> Vec<i64> {
    env.client(db)
        .await
        .unwrap_or_else(|e| panic!("connect to {db}: {e}"))
        .query("SELECT id FROM ledger", &[])
        .await
        .unwrap_or_else(|e| panic!("ledger of {db}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reconnecting_during_full_rollbacks_never_break_them_nor_lose_a_write() {
    use rollback_core::{Outcome, RollbackTarget, Scope, Settings};
    use rollback_testkit::{Fault, Method, Rig, When};
    use std::time::Duration;
    let Some(env) = setup("rollback-postgres other clients", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE ledger (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())",
    )
    .await;
    let started = std::time::Instant::now();
    let adapter = std::sync::Arc::new(PostgresSnapshot::new(
        env.config("app"),
        env.db.snapshot_root(),
        PgTools::in_dir(env.pg.bindir()),
    ));
    let rig = Rig::new();
    let rollback = rig
        .orchestrator()
        .database(adapter)
        .settings(
            Settings::new()
                .health_timeout(Duration::from_millis(700))
                .health_interval(Duration::from_millis(10)),
        )
        .build()
        .unwrap();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1));
    let mut acked = Vec::new();
    let mut reports = Vec::new();
    for delay in [2, 100, 1000].map(Duration::from_millis) {
        let client = LedgerClient::start(&env.pg, "app", delay, next.clone());
        for round in 0..2 {
            let before = client.acked();
            while client.acked() == before {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let cp = rollback
                .checkpoint(&format!("before deploy {round}"))
                .await
                .expect("checkpoint");
            // Writes after the snapshot: they live on in the pre-rollback database.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let report = rollback
                .rollback(
                    RollbackTarget::Checkpoint(cp.id),
                    "the deploy went bad",
                    Scope::ALL,
                )
                .await
                .unwrap_or_else(|e| panic!("rollback with a client reconnecting after {delay:?}: {e}"));
            assert!(report.outcome.is_success(), "{:?}", report.outcome);
            assert!(
                report
                    .integrity
                    .iter()
                    .any(|c| c.name == rollback_postgres::PROOF_CHECK && c.passed),
                "the offline check is the proof, not a recount: {:?}",
                report.integrity
            );
            assert!(
                report
                    .notes
                    .iter()
                    .any(|n| n.starts_with("app kept closed to every client from")
                        && n.contains("connections in that window were refused")),
                "{:?}",
                report.notes
            );
            if delay < Duration::from_millis(10) {
                assert!(
                    report
                        .notes
                        .iter()
                        .any(|n| n.contains("disconnected session") && n.contains("ledger-worker")),
                    "the report names who was disconnected: {:?}",
                    report.notes
                );
            }
            reports.push(report);
        }
        acked.extend(client.stop().await);
    }

    // A failure after the switch (the app never gets healthy): recovery puts the
    // pre-rollback database back and sets the restored copy aside, with what clients wrote
    // into it once it was opened.
    let client = LedgerClient::start(&env.pg, "app", Duration::from_millis(2), next.clone());
    let cp = rollback.checkpoint("before the bad one").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    rig.world.inject(
        Method::HealthProbe,
        When::Always,
        Fault::Fail(ErrorKind::Unavailable),
    );
    let e = rollback
        .rollback(
            RollbackTarget::Checkpoint(cp.id),
            "the deploy went bad",
            Scope::ALL,
        )
        .await
        .expect_err("never healthy after the switch");
    rig.world.clear_faults();
    let report = e.report().expect("a report").clone();
    assert!(
        matches!(report.outcome, Outcome::RestoredPreRollbackState { .. }),
        "{:?}",
        report.outcome
    );
    let failed_line = report
        .emergency_backup
        .iter()
        .find(|l| l.contains("__rollback_failed_"))
        .unwrap_or_else(|| panic!("the set-aside copy is named: {:?}", report.emergency_backup))
        .clone();
    assert!(
        failed_line.contains("writes other clients made into it after it was opened to them at"),
        "{failed_line}"
    );
    assert!(
        report.notes.iter().any(
            |n| n.starts_with("when app was sealed: disconnected session") && n.contains("ledger-worker")
        ),
        "the clients writing into the restored copy when it was set aside are named: {:?}",
        report.notes
    );
    let failed = failed_line
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .find(|w| w.starts_with("app__rollback_failed_"))
        .unwrap()
        .to_owned();
    // The client goes on writing into the reinstated database, opened before the start.
    let before = client.acked();
    while client.acked() == before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    acked.extend(client.stop().await);
    reports.push(report);

    // Every acknowledged insert is in the live database or in a database a report names.
    let dbs: Vec<String> = env
        .client("postgres")
        .await
        .unwrap()
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'app%' AND datallowconn",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut found: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for db in &dbs {
        let named = db == "app"
            || reports
                .iter()
                .any(|r| r.emergency_backup.iter().any(|l| names_db(l, db)));
        if !named {
            continue;
        }
        for id in ledger_ids(&env, db).await {
            found.entry(id).or_default().push(db.clone());
        }
    }
    let lost: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|id| !found.contains_key(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged inserts are in no database the reports name (databases: {dbs:?}): {lost:?}",
        lost.len(),
        acked.len()
    );
    let only_in_failed = acked
        .iter()
        .filter(|id| found.get(id).is_some_and(|dbs| dbs == &vec![failed.clone()]))
        .count();
    assert!(
        only_in_failed > 0,
        "the client's writes into the opened restored copy are in {failed}, and only there"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_copy_stays_sealed_until_open_and_is_proven_from_the_catalog() {
    let Some(env) = setup("rollback-postgres sealed copy", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g",
    )
    .await;
    let snap = env.db.snapshot("s").await.unwrap();
    let staging = "app__rollback_staging";
    let checks = checks(&[], Some(&snap.id), Some(&snap.id));

    // A failed check leaves the copy open and unverified: switched in open, as before.
    let prepared = env.db.prepare_restore(&snap.id).await.unwrap();
    let failing = checks.clone().assertion("impossible", "SELECT false");
    let report = env.db.check_prepared(&prepared, &failing).await.unwrap();
    assert_eq!(report.failures(), vec!["assertion: impossible"]);
    assert_eq!(
        db_info(&env, staging).await.map(|i| i.1),
        Some(true),
        "opened again"
    );

    // Passed: sealed, and whoever was on it is disconnected (and named later).
    let intruder = client(&env.pg, staging, "intruder-job").await.unwrap();
    intruder.query_one("SELECT 1", &[]).await.unwrap();
    let report = env.db.check_prepared(&prepared, &checks).await.unwrap();
    assert!(report.passed(), "{report:?}");
    assert!(intruder.query_one("SELECT 1", &[]).await.is_err(), "terminated");
    let (staging_oid, allows) = db_info(&env, staging).await.unwrap();
    assert!(!allows, "the verified copy is sealed");
    assert!(env.client(staging).await.is_err(), "no client gets in");

    let preserved = env.db.preserve_current("p").await.unwrap();
    assert_eq!(env.db.restore(&prepared).await.unwrap(), vec![]);
    assert_eq!(
        db_info(&env, "app").await,
        Some((staging_oid, false)),
        "switched in, still sealed"
    );
    assert!(env.client("app").await.is_err(), "clients are refused");
    let report = env.db.check_integrity(&checks).await.unwrap();
    assert_eq!(report.checks.len(), 1, "{report:?}");
    let c = check(&report, "connectivity");
    assert!(
        !c.passed && c.detail.contains("app is sealed") && c.detail.contains("open()"),
        "{c:?}"
    );
    let e = env.db.ping().await.expect_err("sealed");
    assert!(e.to_string().contains("app is sealed"), "{e}");
    assert_eq!(
        db_info(&env, "app").await.map(|i| i.1),
        Some(false),
        "never opened silently"
    );

    let proof = env
        .db
        .prove_unchanged(&prepared)
        .await
        .unwrap()
        .expect("a sealed verified copy is proven");
    assert_eq!(proof.name, rollback_postgres::PROOF_CHECK);
    assert!(proof.passed, "{proof:?}");
    assert!(
        proof.detail.contains(&format!("(oid {staging_oid})"))
            && proof.detail.contains("closed to every client since"),
        "{proof:?}"
    );

    // Opened by hand and used: no longer a proof.
    env.pg
        .psql("postgres", "ALTER DATABASE app ALLOW_CONNECTIONS true")
        .unwrap();
    let sneaky = client(&env.pg, "app", "sneaky-writer").await.unwrap();
    let proof = env.db.prove_unchanged(&prepared).await.unwrap().unwrap();
    assert!(!proof.passed, "{proof:?}");
    assert!(
        proof.detail.contains("accepts connections") && proof.detail.contains("sneaky-writer"),
        "{proof:?}"
    );
    drop(sneaky);
    env.pg
        .psql("postgres", "ALTER DATABASE app ALLOW_CONNECTIONS false")
        .unwrap();

    let notes = env.db.open().await.expect("open");
    assert!(
        notes[0].starts_with("app kept closed to every client from")
            && notes[0].contains("connections in that window were refused"),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("when app was sealed: disconnected session") && n.contains("intruder-job")),
        "who was disconnected at the seal is named: {notes:?}"
    );
    assert_eq!(env.count("app", "t").await, 100);
    assert_eq!(env.db.open().await.unwrap(), Vec::<String>::new(), "idempotent");
    assert!(env.db.check_integrity(&checks).await.unwrap().passed());

    // Not verified (check_prepared never called): switched in open, and no proof claimed.
    let prepared = env.db.prepare_restore(&snap.id).await.unwrap();
    let replaced = env.db.restore(&prepared).await.unwrap();
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert_eq!(db_info(&env, "app").await.map(|i| i.1), Some(true));
    assert_eq!(env.db.prove_unchanged(&prepared).await.unwrap(), None);
    drop(preserved);
}

/// Issue 16: a checkpoint pre-staged in the background makes a later rollback's prepare a
/// check, not a restore; a pre-staged copy someone opened meanwhile is restored again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prestaged_checkpoint_is_switched_in_without_a_second_restore() {
    use rollback_core::{RollbackTarget, Scope, Step};
    use rollback_testkit::Rig;
    let Some(env) = setup("rollback-postgres prestage", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000)",
    )
    .await;
    let adapter = std::sync::Arc::new(PostgresSnapshot::new(
        env.config("app"),
        env.db.snapshot_root(),
        PgTools::in_dir(env.pg.bindir()),
    ));
    let rig = Rig::new();
    let rollback = rig.orchestrator().database(adapter).build().unwrap();
    let cp = rollback.checkpoint("before v2").await.expect("checkpoint");
    let staged = rollback.prestage(&cp.id).await.expect("prestage");
    assert!(staged.passed() && !staged.checks.is_empty(), "{staged:?}");
    env.sql("app", "INSERT INTO t SELECT generate_series(1001, 1500)")
        .await;
    let report = rollback
        .rollback(RollbackTarget::Checkpoint(cp.id.clone()), "v2", Scope::DATABASE)
        .await
        .expect("rollback");
    let prepare = report.steps.iter().find(|s| s.step == Step::Prepare).unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("pre-staged") && n.contains("no restore")),
        "the prepare step reused the pre-staged copy: {:?} / {:?}",
        report.notes,
        prepare.checklist
    );
    assert_eq!(env.count("app", "t").await, 1000);

    // A pre-staged copy that was opened (it may have been written to) is never reused.
    let cp2 = rollback.checkpoint("before v3").await.expect("checkpoint 2");
    rollback.prestage(&cp2.id).await.expect("prestage 2");
    let staging: String = env
        .client("postgres")
        .await
        .expect("connect")
        .query_one(
            "SELECT datname::text FROM pg_database WHERE datname = 'app__rollback_staging'",
            &[],
        )
        .await
        .expect("the staging database")
        .get(0);
    env.sql(
        "postgres",
        &format!("ALTER DATABASE \"{staging}\" ALLOW_CONNECTIONS true"),
    )
    .await;
    env.sql(&staging, "INSERT INTO t VALUES (999999)").await;
    env.sql("app", "DELETE FROM t WHERE id > 500").await;
    let report = rollback
        .rollback(RollbackTarget::Checkpoint(cp2.id), "v3", Scope::DATABASE)
        .await
        .expect("rollback 2");
    assert!(
        !report.notes.iter().any(|n| n.contains("pre-staged")),
        "an opened copy is restored again: {:?}",
        report.notes
    );
    assert_eq!(
        env.count("app", "t").await,
        1000,
        "the snapshot's rows, not the tampered copy's"
    );
}
