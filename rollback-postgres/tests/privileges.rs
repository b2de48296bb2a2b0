//! What the role rollback connects as must be allowed to do, known before the stop (issue
//! 26), against a real PostgreSQL with production-shaped roles: an owner with CREATEDB (the
//! README's recommended role, not a superuser), a least-privilege app role and a reporting
//! role. Each missing privilege is named by `check_privileges` with the statement that
//! grants it, and proven real by the operation it protects failing without it. A session of
//! another role that the tool may not end fails the switch after a bounded wait (a conflict
//! naming the grant), never a fallback to restoring in place.

use rollback_core::{DatabaseSnapshot, ErrorKind};
use rollback_postgres::{Options, PgConfig, PgTools, PostgresSnapshot};
use rollback_testkit::TempPostgres;
use std::time::Duration;
use tokio_postgres::NoTls;

struct Shop {
    pg: TempPostgres,
    db: PostgresSnapshot,
    _root: tempfile::TempDir,
}

/// A cluster with roles shop_owner (LOGIN CREATEDB), app_rw and reporting, and database
/// shop owned by shop_owner with one table the others may use. rollback connects as
/// shop_owner.
fn shop(test: &str) -> Option<Shop> {
    let pg = TempPostgres::start(test).expect("start a temporary PostgreSQL")?;
    let pw = pg.password().expose().to_owned();
    pg.psql(
        "postgres",
        &format!(
            "CREATE ROLE shop_owner LOGIN CREATEDB PASSWORD '{pw}'; \
             CREATE ROLE app_rw LOGIN PASSWORD '{pw}'; \
             CREATE ROLE reporting LOGIN PASSWORD '{pw}';"
        ),
    )
    .unwrap();
    pg.psql("postgres", "CREATE DATABASE shop OWNER shop_owner")
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let config = PgConfig::new(pg.host(), pg.port(), "shop_owner", "shop").password(pg.password().clone());
    let db = PostgresSnapshot::new(config, root.path(), PgTools::in_dir(pg.bindir()))
        .with_options(Options::new().disconnect_timeout(Duration::from_millis(800)));
    let shop = Shop { pg, db, _root: root };
    Some(shop)
}

impl Shop {
    async fn as_role(&self, role: &str, dbname: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::Config::new()
            .host(self.pg.host())
            .port(self.pg.port())
            .user(role)
            .password(self.pg.password().expose())
            .dbname(dbname)
            .application_name(format!("{role} session"))
            .connect(NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect as {role}: {e}"));
        tokio::spawn(conn);
        client
    }

    async fn owner_sql(&self, sql: &str) {
        self.as_role("shop_owner", "shop")
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    fn admin(&self, sql: &str) {
        self.pg.psql("postgres", sql).unwrap();
    }

    async fn refused_naming(&self, grant: &str) -> String {
        let e = self
            .db
            .check_privileges()
            .await
            .expect_err("a missing privilege is refused");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(e.message().contains(grant), "names `{grant}`: {e}");
        e.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_missing_privilege_is_named_with_its_grant_and_proven_needed() {
    let Some(s) = shop("rollback-postgres privileges audit") else {
        return;
    };
    s.owner_sql(
        "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL); \
         INSERT INTO orders VALUES (1, 'alice'), (2, 'bob'); \
         GRANT SELECT, INSERT, UPDATE ON orders TO app_rw; GRANT SELECT ON orders TO reporting;",
    )
    .await;
    let checked =
        s.db.check_privileges()
            .await
            .expect("the owner with CREATEDB passes");
    assert!(checked.iter().any(|c| c.contains("CREATEDB")), "{checked:?}");

    // Per-role settings in the database: re-applying them needs CREATEROLE.
    s.admin("ALTER ROLE app_rw IN DATABASE shop SET work_mem = '8MB'");
    s.admin("ALTER ROLE reporting IN DATABASE shop SET default_transaction_read_only = on");
    let e = s.refused_naming(r#"ALTER ROLE "shop_owner" CREATEROLE;"#).await;
    assert!(e.contains("app_rw") && e.contains("reporting"), "{e}");
    // Proven: without CREATEROLE the owner cannot set them.
    let denied = s
        .as_role("shop_owner", "shop")
        .await
        .batch_execute("ALTER ROLE reporting IN DATABASE shop SET default_transaction_read_only = on")
        .await;
    assert!(denied.is_err(), "the owner could set another role's setting");
    s.admin("ALTER ROLE shop_owner CREATEROLE;");
    s.db.check_privileges().await.expect("with CREATEROLE");

    // FORCE ROW LEVEL SECURITY: pg_dump refuses unless the role bypasses it.
    s.owner_sql(
        "ALTER TABLE orders ENABLE ROW LEVEL SECURITY; ALTER TABLE orders FORCE ROW LEVEL SECURITY; \
         CREATE POLICY mine ON orders USING (customer = current_user);",
    )
    .await;
    let e = s.refused_naming(r#"ALTER ROLE "shop_owner" BYPASSRLS;"#).await;
    assert!(e.contains("public.orders"), "{e}");
    let dump = s.db.snapshot("under rls").await;
    assert!(
        dump.is_err(),
        "pg_dump read a table under FORCE RLS without BYPASSRLS"
    );
    s.admin("ALTER ROLE shop_owner BYPASSRLS;");
    s.db.check_privileges().await.expect("with BYPASSRLS");
    s.db.snapshot("with bypassrls")
        .await
        .expect("pg_dump reads it now");

    // A table the role cannot read at all.
    s.pg.psql("shop", "CREATE TABLE audit_log (id int)").unwrap();
    let e = s
        .refused_naming(r#"GRANT SELECT ON ALL TABLES IN SCHEMA "public" TO "shop_owner";"#)
        .await;
    assert!(e.contains("public.audit_log"), "{e}");
    s.pg.psql("shop", "GRANT SELECT ON audit_log TO shop_owner;")
        .unwrap();

    // A session of another role, which the switch would have to end.
    let reporting = s.as_role("reporting", "shop").await;
    reporting.batch_execute("SELECT 1").await.unwrap();
    let e = s
        .refused_naming(r#"GRANT pg_signal_backend TO "shop_owner";"#)
        .await;
    assert!(e.contains("reporting"), "{e}");
    s.admin("GRANT pg_signal_backend TO shop_owner;");
    let checked = s.db.check_privileges().await.expect("with pg_signal_backend");
    assert!(
        checked.iter().any(|c| c.contains("pg_signal_backend")),
        "{checked:?}"
    );
    drop(reporting);

    // Not the owner's member: the rename of the live database is refused.
    s.admin("CREATE ROLE deployer LOGIN CREATEDB PASSWORD 'x'");
    s.admin("ALTER DATABASE shop OWNER TO deployer");
    let e = s.refused_naming(r#"GRANT "deployer" TO "shop_owner";"#).await;
    assert!(e.contains("rename shop"), "{e}");
    s.admin("ALTER DATABASE shop OWNER TO shop_owner");

    // Without CREATEDB the adapter restores in place, which cannot put a partitioned table
    // back: refused then, with the grant.
    s.admin("ALTER ROLE shop_owner NOCREATEDB");
    let checked =
        s.db.check_privileges()
            .await
            .expect("in place is fine without partitions");
    assert!(
        checked.iter().any(|c| c.contains("restored in place")),
        "{checked:?}"
    );
    s.owner_sql(
        "CREATE TABLE events (at date NOT NULL, what text) PARTITION BY RANGE (at); \
         CREATE TABLE events_2026_12 PARTITION OF events FOR VALUES FROM ('2026-12-01') TO ('2027-01-01');",
    )
    .await;
    let e = s.refused_naming(r#"ALTER ROLE "shop_owner" CREATEDB;"#).await;
    assert!(e.contains("public.events"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_tool_may_not_end_fails_the_switch_and_never_restores_in_place() {
    let Some(s) = shop("rollback-postgres session of another role") else {
        return;
    };
    s.owner_sql(
        "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL); \
         INSERT INTO orders VALUES (1, 'v1'); GRANT SELECT ON orders TO reporting;",
    )
    .await;
    let snap = s.db.snapshot("v1").await.unwrap();
    let prepared = s.db.prepare_restore(&snap.id).await.unwrap();
    assert!(prepared.staged_at.is_some(), "staged: {prepared:?}");
    s.owner_sql("UPDATE orders SET customer = 'v2'; CREATE TABLE v2_only (id int);")
        .await;

    // A reporting session arrives after pre-flight, and stays.
    let reporting = s.as_role("reporting", "shop").await;
    reporting.batch_execute("SELECT 1").await.unwrap();
    let started = std::time::Instant::now();
    let e =
        s.db.preserve_current("pre-rollback")
            .await
            .expect_err("the rename waits for the session, then fails");
    let waited = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(
        e.message().contains(r#"GRANT pg_signal_backend TO "shop_owner""#)
            && e.message().contains("reporting"),
        "{e}"
    );
    assert!(
        waited >= Duration::from_millis(700),
        "a bounded wait first: {waited:?}"
    );
    // Nothing degraded: the live database is where it was, open, with its v2 data (no dump
    // taken instead, no in-place restore).
    let owner = s.as_role("shop_owner", "shop").await;
    let v: String = owner
        .query_one("SELECT customer FROM orders WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "v2");
    // The switch itself, asked with the live database still in place, fails the same way.
    let e = s.db.restore(&prepared).await.expect_err("the switch fails");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    // (the switch ended our own role's session on the live database on its way)
    let owner = s.as_role("shop_owner", "shop").await;
    let v: String = owner
        .query_one("SELECT customer FROM orders WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "v2", "not restored in place");
    assert!(
        owner
            .query_one("SELECT to_regclass('v2_only') IS NOT NULL", &[])
            .await
            .unwrap()
            .get::<_, bool>(0),
        "not restored in place"
    );
    drop(owner);

    // With the grant the same session is ended and named.
    s.admin("GRANT pg_signal_backend TO shop_owner;");
    let preserved =
        s.db.preserve_current("pre-rollback")
            .await
            .expect("ends the session now");
    assert!(
        preserved.notes.iter().any(|n| n.contains("reporting")),
        "the session ended is named: {:?}",
        preserved.notes
    );
    drop(reporting);
}
