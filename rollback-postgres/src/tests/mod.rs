//! Tests against a real, temporary PostgreSQL cluster (one per test) that need the crate's
//! internals: they forge what a crash or a buggy writer leaves behind (a state file recording
//! a step half done, a manifest sealed over wrong content) through the crate's own types.
//! Everything reachable through the public API is tested in `tests/*.rs` instead.
//!
//! They skip loudly when the PostgreSQL server binaries are missing and fail instead under
//! `ROLLBACK_REQUIRE_INTEGRATION=1`.

mod manifests;
mod resume;

use crate::{PgConfig, PgTools, PostgresSnapshot};
use rollback_testkit::TempPostgres;
use tokio_postgres::NoTls;

/// A cluster, the adapter on one of its databases, and the adapter's snapshot root.
pub(super) struct Env {
    pub(super) pg: TempPostgres,
    pub(super) db: PostgresSnapshot,
    _root: tempfile::TempDir,
}

impl Env {
    /// A session of the tests' own on `dbname`, as the superuser.
    pub(super) async fn client(&self, dbname: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::Config::new()
            .host(self.pg.host())
            .port(self.pg.port())
            .user(self.pg.superuser())
            .password(self.pg.password().expose())
            .dbname(dbname)
            .application_name("rollback-tests")
            .connect(NoTls)
            .await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// Runs `sql` on `dbname`; panics on failure.
    pub(super) async fn sql(&self, dbname: &str, sql: &str) {
        self.client(dbname)
            .await
            .expect("connect")
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// `count(*)` of `table` in `dbname`.
    pub(super) async fn count(&self, dbname: &str, table: &str) -> i64 {
        self.client(dbname)
            .await
            .expect("connect")
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0)
    }

    /// The oid of database `name` (None when there is none) and whether it accepts
    /// connections.
    pub(super) async fn db_info(&self, name: &str) -> Option<(u32, bool)> {
        self.client("postgres")
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
}

/// A cluster with database `dbname` and the adapter on it, or `None` (after a loud skip).
pub(super) fn setup(test: &str, dbname: &str) -> Option<Env> {
    let pg = TempPostgres::start(test).expect("start a temporary PostgreSQL")?;
    pg.create_database(dbname).expect("create database");
    let root = tempfile::tempdir().expect("tempdir");
    let config = PgConfig::new(pg.host(), pg.port(), pg.superuser(), dbname).password(pg.password().clone());
    let db = PostgresSnapshot::new(config, root.path(), PgTools::in_dir(pg.bindir()));
    Some(Env { pg, db, _root: root })
}
