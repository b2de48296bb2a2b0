//! A production-shaped database put back whole (issue 26), against a real PostgreSQL, with
//! the README's minimal role (the owner, CREATEDB, pg_signal_backend, CREATEROLE,
//! BYPASSRLS; not a superuser): two schemas, a trusted extension, a partitioned table, RLS
//! with FORCE, a materialized view, large objects, a sequence, default privileges, a database
//! comment, database- and role-level settings, and a reporting session connected. After a
//! checkpoint, a bad deploy (migration, new data, a changed comment and settings) and the
//! database's path through a rollback, every property read from the catalog as a superuser
//! is what it was at checkpoint time.

use rollback_core::{DatabaseSnapshot, IntegrityChecks};
use rollback_postgres::{Options, PgConfig, PgTools, PostgresSnapshot};
use rollback_testkit::TempPostgres;
use std::process::Command;
use std::time::Duration;

/// What is compared, each as `name: value` read as the superuser.
fn fingerprint(pg: &TempPostgres) -> Vec<(String, String)> {
    let q = |name: &str, sql: &str| {
        (
            name.to_owned(),
            pg.psql("shop", sql).unwrap_or_else(|e| panic!("{name}: {e}")),
        )
    };
    let schema = Command::new(pg.bindir().join("pg_dump"))
        .args(["--schema-only", "--no-comments", "-h"])
        .arg(pg.socket_dir())
        .args(["-p", &pg.port().to_string(), "-U", pg.superuser(), "-d", "shop"])
        .output()
        .expect("pg_dump --schema-only");
    assert!(schema.status.success(), "{schema:?}");
    vec![
        (
            "schema".into(),
            // (without the random key of pg_dump's \restrict lines)
            String::from_utf8_lossy(&schema.stdout)
                .lines()
                .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        q(
            "data",
            "SELECT string_agg(t || '=' || md5(x), ', ' ORDER BY t) FROM ( \
               SELECT 'sales.orders' t, string_agg(o::text, ';' ORDER BY o.id) x FROM sales.orders o UNION ALL \
               SELECT 'sales.events', string_agg(e::text, ';' ORDER BY e.id) FROM sales.events e UNION ALL \
               SELECT 'public.notes', string_agg(n::text, ';' ORDER BY n.id) FROM public.notes n) s",
        ),
        q(
            "pg_database",
            "SELECT pg_get_userbyid(datdba) || ' ' || pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' \
               || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(datacl) a), 'default') \
               || ' ' || datallowconn FROM pg_database WHERE datname = 'shop'",
        ),
        q(
            "pg_db_role_setting",
            "SELECT string_agg(coalesce(setrole::regrole::text, '-') || ':' || array_to_string(setconfig, ','), ' ' \
               ORDER BY coalesce(setrole::regrole::text, '-')) \
             FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = 'shop')",
        ),
        q(
            "comment",
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'shop'",
        ),
        q(
            "extensions",
            "SELECT string_agg(extname || ':' || extowner::regrole::text, ' ' ORDER BY extname) FROM pg_extension",
        ),
        q(
            "default privileges",
            "SELECT string_agg(defaclrole::regrole::text || ' ' || defaclnamespace::regnamespace::text || ' ' \
               || defaclobjtype::text || ' ' || defaclacl::text, '; ' \
               ORDER BY defaclrole::regrole::text, defaclnamespace::regnamespace::text, defaclobjtype) FROM pg_default_acl",
        ),
        q("sequence", "SELECT last_value || ' ' || is_called FROM sales.orders_id_seq"),
        q(
            "large objects",
            "SELECT string_agg(m.oid::text || ':' || m.lomowner::regrole::text || ':' || md5(lo_get(m.oid)), ' ' ORDER BY m.oid) \
             FROM pg_largeobject_metadata m",
        ),
        q(
            "matviews",
            "SELECT string_agg(schemaname::text || '.' || matviewname::text || ':' || ispopulated::text, ' ' \
               ORDER BY schemaname, matviewname) FROM pg_matviews",
        ),
        q(
            "matview rows",
            "SELECT string_agg(s::text, ';' ORDER BY s.customer) FROM sales.order_totals s",
        ),
        q(
            "row security",
            "SELECT string_agg(relname::text || ':' || relrowsecurity::text || ':' || relforcerowsecurity::text, ' ' ORDER BY relname) \
             FROM pg_class WHERE relrowsecurity",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_database_comes_back_for_the_minimal_role() {
    round_trip("rollback-postgres production-shaped database", false).await;
}

/// As a superuser everything comes back too, but the extensions: pg_dump records no
/// extension owner, and the restoring role (here the superuser) becomes it (a known gap,
/// said in the README: connect as the owner).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_database_comes_back_for_a_superuser_but_the_extension_owners() {
    round_trip(
        "rollback-postgres production-shaped database as a superuser",
        true,
    )
    .await;
}

async fn round_trip(test: &str, as_superuser: bool) {
    let Some(pg) = TempPostgres::start(test).expect("start a temporary PostgreSQL") else {
        return;
    };
    let pw = pg.password().expose().to_owned();
    pg.psql(
        "postgres",
        &format!(
            "CREATE ROLE shop_owner LOGIN CREATEDB CREATEROLE BYPASSRLS PASSWORD '{pw}'; \
             GRANT pg_signal_backend TO shop_owner; \
             CREATE ROLE app_rw LOGIN PASSWORD '{pw}'; \
             CREATE ROLE reporting LOGIN PASSWORD '{pw}';"
        ),
    )
    .unwrap();
    pg.psql("postgres", "CREATE DATABASE shop OWNER shop_owner")
        .unwrap();
    pg.psql(
        "postgres",
        "COMMENT ON DATABASE shop IS 'the shop, checkpoint time'",
    )
    .unwrap();
    pg.psql("postgres", "ALTER DATABASE shop SET statement_timeout = '30s'")
        .unwrap();
    pg.psql(
        "postgres",
        "ALTER ROLE app_rw IN DATABASE shop SET work_mem = '8MB'",
    )
    .unwrap();
    pg.psql(
        "postgres",
        "ALTER ROLE reporting IN DATABASE shop SET default_transaction_read_only = on",
    )
    .unwrap();
    pg.psql(
        "postgres",
        "REVOKE CONNECT ON DATABASE shop FROM PUBLIC; GRANT CONNECT ON DATABASE shop TO app_rw, reporting;",
    )
    .unwrap();
    let owner = |sql: &str| {
        // As the owner: every object is the owner's, as in a real deploy.
        pg.psql("shop", &format!("SET ROLE shop_owner; {sql}"))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    owner(
        "CREATE SCHEMA sales; \
         CREATE EXTENSION pgcrypto; \
         CREATE TABLE sales.orders (id serial PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL, \
           token text DEFAULT encode(gen_random_bytes(8), 'hex')); \
         INSERT INTO sales.orders (customer, total) SELECT 'c' || (i % 7), i FROM generate_series(1, 200) i; \
         CREATE TABLE sales.events (id int NOT NULL, at date NOT NULL, what text) PARTITION BY RANGE (at); \
         CREATE TABLE sales.events_2026_11 PARTITION OF sales.events FOR VALUES FROM ('2026-11-01') TO ('2026-12-01'); \
         CREATE TABLE sales.events_2026_12 PARTITION OF sales.events FOR VALUES FROM ('2026-12-01') TO ('2027-01-01'); \
         INSERT INTO sales.events SELECT i, DATE '2026-11-15' + (i % 30), 'e' || i FROM generate_series(1, 100) i; \
         CREATE TABLE public.notes (id int PRIMARY KEY, owner_name text, body text); \
         INSERT INTO public.notes VALUES (1, 'app_rw', 'one'), (2, 'reporting', 'two'); \
         ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY; ALTER TABLE public.notes FORCE ROW LEVEL SECURITY; \
         CREATE POLICY own_notes ON public.notes USING (owner_name = current_user); \
         CREATE MATERIALIZED VIEW sales.order_totals AS SELECT customer, sum(total) AS total FROM sales.orders GROUP BY customer; \
         CREATE MATERIALIZED VIEW sales.empty_view AS SELECT 1 AS one WITH NO DATA; \
         SELECT lo_from_bytea(424242, 'a large object'::bytea); \
         ALTER DEFAULT PRIVILEGES IN SCHEMA sales GRANT SELECT ON TABLES TO reporting; \
         GRANT USAGE ON SCHEMA sales TO app_rw, reporting; \
         GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA sales TO app_rw; \
         GRANT SELECT ON ALL TABLES IN SCHEMA sales TO reporting; \
         GRANT SELECT, INSERT ON public.notes TO app_rw;",
    );
    // The matview is stale at checkpoint time: a restore rebuilds it, and says so.
    owner("INSERT INTO sales.orders (customer, total) VALUES ('late', 1)");

    let root = tempfile::tempdir().unwrap();
    let user = if as_superuser {
        pg.superuser().to_owned()
    } else {
        "shop_owner".to_owned()
    };
    let config = PgConfig::new(pg.host(), pg.port(), &user, "shop").password(pg.password().clone());
    let db = PostgresSnapshot::new(config, root.path(), PgTools::in_dir(pg.bindir()))
        .with_options(Options::new().disconnect_timeout(Duration::from_secs(2)));
    let checked = db
        .check_privileges()
        .await
        .expect("the minimal role passes the audit");
    println!("audit: {checked:?}");

    // A reporting session stays connected through the checkpoint and the rollback.
    let (reporting, conn) = tokio_postgres::Config::new()
        .host(pg.host())
        .port(pg.port())
        .user("reporting")
        .password(pg.password().expose())
        .dbname("shop")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    reporting.batch_execute("SELECT 1").await.unwrap();

    owner("REFRESH MATERIALIZED VIEW sales.order_totals");
    let before = fingerprint(&pg);
    let snap = db.snapshot("before v2").await.expect("checkpoint");
    println!("checkpoint warnings: {:?}", snap.warnings);
    assert!(
        snap.warnings
            .iter()
            .any(|w| w.contains("sales.order_totals") && w.contains("REFRESH")),
        "{:?}",
        snap.warnings
    );
    assert_eq!(
        snap.warnings
            .iter()
            .any(|w| w.contains("pgcrypto (owned by shop_owner)")),
        as_superuser,
        "the extension owner a superuser's restore loses is said at checkpoint time: {:?}",
        snap.warnings
    );

    // The bad deploy: a migration, new data, the comment and settings changed.
    owner(
        "ALTER TABLE sales.orders ADD COLUMN v2 int; CREATE TABLE sales.v2_only (id int); \
         INSERT INTO sales.orders (customer, total) VALUES ('v2', 99); \
         REFRESH MATERIALIZED VIEW sales.order_totals; \
         CREATE TABLE sales.events_2027_01 PARTITION OF sales.events FOR VALUES FROM ('2027-01-01') TO ('2027-02-01'); \
         SELECT lo_unlink(424242);",
    );
    pg.psql("postgres", "COMMENT ON DATABASE shop IS 'v2 was here'")
        .unwrap();
    pg.psql(
        "postgres",
        "ALTER ROLE reporting IN DATABASE shop RESET default_transaction_read_only",
    )
    .unwrap();
    assert_ne!(fingerprint(&pg), before, "the deploy changed things");

    // The database's path through a rollback.
    db.check_privileges().await.expect("pre-flight");
    assert_eq!(
        db.live_source().await.unwrap(),
        None,
        "not a switched-in copy yet"
    );
    let prepared = db.prepare_restore(&snap.id).await.expect("staged");
    let checks = IntegrityChecks::new()
        .expect_snapshot(Some(snap.id.clone()))
        .baseline(Some(snap.id.clone()));
    let report = db
        .check_prepared(&prepared, &checks)
        .await
        .expect("checked online");
    assert!(report.passed(), "{:?}", report.failures());
    let preserved = db
        .preserve_current("pre-rollback")
        .await
        .expect("emergency backup");
    db.restore(&prepared).await.expect("switched in");
    let proof = db.prove_unchanged(&prepared).await.expect("proof");
    assert!(proof.as_ref().is_none_or(|p| p.passed), "{proof:?}");
    db.open().await.expect("opened");
    assert_eq!(
        db.live_source().await.unwrap(),
        Some(snap.id.clone()),
        "the live database is known to be the checkpoint's copy: a second rollback to it is refused"
    );

    let after = fingerprint(&pg);
    for ((name, want), (_, got)) in before.iter().zip(&after) {
        if as_superuser && name == "extensions" {
            println!("extensions as a superuser restored them: {got} (were {want})");
            continue;
        }
        assert_eq!(got, want, "{name} differs after the rollback");
    }
    // The reporting role is read-only again, as it was.
    assert!(pg.psql("postgres", "SELECT 1").is_ok(), "the server serves");
    println!(
        "pre-rollback database kept at {} ({})",
        preserved.location, preserved.method
    );
}
