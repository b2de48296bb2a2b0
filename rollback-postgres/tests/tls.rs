//! TLS against a real, temporary PostgreSQL cluster started with `ssl = on` and a
//! `pg_hba.conf` of `hostssl` lines only (plain TCP is refused), with a CA and server
//! certificate made by the test. A successful `pg_dump` or `pg_restore` over TCP therefore
//! proves that the tools went over TLS too.
//!
//! They skip loudly when the PostgreSQL server binaries are missing and fail instead under
//! `ROLLBACK_REQUIRE_INTEGRATION=1`.

use async_trait::async_trait;
use rollback_core::{AdapterError, DatabaseSnapshot, ErrorKind};
use rollback_postgres::{PgConfig, PgTools, PostgresSnapshot, SslMode};
use rollback_testkit::conformance::{database_snapshot, DatabaseFixture};
use rollback_testkit::temp_postgres::{TestCa, TlsSetup};
use rollback_testkit::TempPostgres;
use std::path::{Path, PathBuf};

/// The adapter on `config`, its snapshots in a directory of its own.
struct Adapter {
    db: PostgresSnapshot,
    _root: tempfile::TempDir,
}

fn adapter(pg: &TempPostgres, config: PgConfig) -> Adapter {
    let root = tempfile::tempdir().expect("tempdir");
    let db = PostgresSnapshot::new(config, root.path(), PgTools::in_dir(pg.bindir()));
    Adapter { db, _root: root }
}

/// Settings for `dbname` on `host` (the cluster's port, the superuser and its password).
fn config(pg: &TempPostgres, host: &str, dbname: &str) -> PgConfig {
    PgConfig::new(host, pg.port(), pg.superuser(), dbname).password(pg.password().clone())
}

/// A TLS cluster with database `app`, or `None` after a loud skip.
fn start(test: &str, setup: TlsSetup) -> Option<TempPostgres> {
    let pg = TempPostgres::start_tls(test, setup).expect("start a temporary PostgreSQL with TLS")?;
    pg.create_database("app").expect("create database");
    Some(pg)
}

fn ca_file(pg: &TempPostgres) -> PathBuf {
    pg.tls().expect("a TLS cluster").ca_file().to_path_buf()
}

/// The error's message, checked never to show the password (in its text or its `Debug`).
fn message(e: &AdapterError) -> String {
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(TempPostgres::DEFAULT_PASSWORD), "{shown}");
    e.to_string()
}

/// Markers written and read over the unix socket (trusted, no TLS: the fixture must not
/// depend on what is being tested).
struct Marker<'a>(&'a TempPostgres);

impl Marker<'_> {
    fn psql(&self, sql: &str) -> Result<String, String> {
        tokio::task::block_in_place(|| self.0.psql("app", sql))
    }
}

#[async_trait]
impl DatabaseFixture for Marker<'_> {
    async fn write_marker(&self, marker: &str) {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS marker (id int PRIMARY KEY, v text NOT NULL); \
             INSERT INTO marker VALUES (1, '{}') ON CONFLICT (id) DO UPDATE SET v = excluded.v",
            marker.replace('\'', "''")
        );
        self.psql(&sql).expect("write marker");
    }

    async fn read_marker(&self) -> Option<String> {
        self.psql("SELECT v FROM marker WHERE id = 1")
            .ok()
            .filter(|v| !v.is_empty())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_passes_the_database_suite_with_tls_only() {
    let Some(pg) = start("rollback-postgres tls verify-full suite", TlsSetup::new()) else {
        return;
    };
    let url = pg.tls_url("app").expect("a TLS URL");
    assert!(
        url.expose().contains("sslmode=verify-full&sslrootcert="),
        "{url:?}"
    );
    let from_url = PgConfig::from_url(url.expose()).expect("the TLS URL parses");
    assert_eq!(from_url.sslmode, SslMode::VerifyFull);
    assert_eq!(from_url.sslrootcert.as_deref(), Some(ca_file(&pg).as_path()));
    let a = adapter(&pg, from_url);
    a.db.ping().await.expect("verify-full with the right CA");

    // Every promise of the trait (snapshot, verify, prepare, preserve, restore, reinstate,
    // integrity...): pg_dump and pg_restore over TCP, which the server takes over TLS only.
    database_snapshot(&a.db, &Marker(&pg)).await;

    // The adapter's own sessions are encrypted: its maintenance session is kept open.
    let ssl = pg
        .psql(
            "postgres",
            "SELECT count(*) || ' ' || bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'rollback'",
        )
        .expect("pg_stat_ssl");
    let (sessions, all_ssl) = ssl.split_once(' ').expect("count and bool");
    assert!(sessions.parse::<u32>().unwrap() >= 1, "{ssl}");
    assert_eq!(all_ssl, "true", "every session of the adapter is over TLS: {ssl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_goes_over_tls_with_localhost_and_the_key_value_form() {
    let Some(pg) = start("rollback-postgres tls key=value", TlsSetup::new()) else {
        return;
    };
    pg.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)",
    )
    .unwrap();
    let conninfo = format!(
        "host=localhost port={} user={} password='{}' dbname=app sslmode=verify-full sslrootcert='{}'",
        pg.port(),
        pg.superuser(),
        pg.password().expose(),
        ca_file(&pg).display()
    );
    let a = adapter(&pg, PgConfig::from_url(&conninfo).expect("parses"));
    a.db.ping().await.expect("verify-full to localhost");
    let snap = a.db.snapshot("over tls").await.expect("pg_dump over TLS");
    a.db.verify(&snap.id).await.expect("verify");
    pg.psql("app", "DELETE FROM t").unwrap();
    let prepared = a.db.prepare_restore(&snap.id).await.expect("pg_restore over TLS");
    a.db.preserve_current("tls").await.expect("preserve");
    a.db.restore(&prepared).await.expect("restore");
    a.db.open().await.expect("open");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t").unwrap(), "100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_refused_in_preflight_naming_the_ca() {
    let Some(pg) = start("rollback-postgres tls wrong CA", TlsSetup::new()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, TestCa::new("another CA").unwrap().cert_pem()).unwrap();
    for mode in [SslMode::VerifyFull, SslMode::VerifyCa, SslMode::Require] {
        let a = adapter(
            &pg,
            config(&pg, "127.0.0.1", "app").sslmode(mode).sslrootcert(&other),
        );
        let e =
            a.db.ping()
                .await
                .expect_err("a server certificate from another CA");
        let m = message(&e);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{mode}: {m}");
        assert!(
            m.contains(&format!(
                "the server's certificate is not signed by the CA in {} (sslrootcert)",
                other.display()
            )),
            "{mode}: {m}"
        );
        // A snapshot is refused the same way before anything is dumped.
        let e =
            a.db.snapshot("x")
                .await
                .expect_err("a snapshot with the wrong CA");
        assert!(message(&e).contains("not signed by the CA"), "{mode}: {e}");
    }
    // prefer tries TLS, then (as libpq) a plain connection, which this server refuses: the
    // error tells both.
    let a = adapter(&pg, config(&pg, "127.0.0.1", "app").sslrootcert(&other));
    let e =
        a.db.ping()
            .await
            .expect_err("TLS refused by us, plain refused by the server");
    let m = message(&e);
    assert!(
        m.contains("over TLS: the server's certificate is not signed by the CA")
            && m.contains("without TLS: the server accepts only TLS connections"),
        "{m}"
    );
    // require without a root certificate encrypts without checking the server (libpq's
    // meaning), so the same server is reached.
    let a = adapter(&pg, config(&pg, "127.0.0.1", "app").sslmode(SslMode::Require));
    a.db.ping().await.expect("require: encrypted, unverified");
    a.db.snapshot("require")
        .await
        .expect("pg_dump with sslmode=require");
    // verify-full without any CA is refused before connecting, naming the setting.
    let a = adapter(&pg, config(&pg, "127.0.0.1", "app").sslmode(SslMode::VerifyFull));
    let e = a.db.ping().await.expect_err("no CA");
    assert!(message(&e).contains("set sslrootcert="), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_not_in_the_certificate_is_refused_naming_it() {
    let setup = TlsSetup::new().server_names(["localhost"]);
    let Some(pg) = start("rollback-postgres tls host name", setup) else {
        return;
    };
    let ca = ca_file(&pg);
    let full = |host: &str| {
        config(&pg, host, "app")
            .sslmode(SslMode::VerifyFull)
            .sslrootcert(&ca)
    };
    let a = adapter(&pg, full("127.0.0.1"));
    let e =
        a.db.ping()
            .await
            .expect_err("127.0.0.1 is not in the certificate");
    let m = message(&e);
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{m}");
    assert!(
        m.contains(
            "the host name `127.0.0.1` does not match the server's certificate (it is for: localhost)"
        ),
        "{m}"
    );
    assert!(!m.contains("not signed by the CA"), "the CA is right: {m}");
    let e =
        a.db.snapshot("x")
            .await
            .expect_err("a snapshot is refused the same way");
    assert!(
        message(&e).contains("the host name `127.0.0.1` does not match"),
        "{e}"
    );

    // verify-ca checks the CA only; verify-full with the certificate's name passes.
    let a = adapter(
        &pg,
        config(&pg, "127.0.0.1", "app")
            .sslmode(SslMode::VerifyCa)
            .sslrootcert(&ca),
    );
    a.db.ping().await.expect("verify-ca ignores the host name");
    a.db.snapshot("verify-ca").await.expect("pg_dump with verify-ca");
    adapter(&pg, full("localhost"))
        .db
        .ping()
        .await
        .expect("verify-full to localhost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_disable_against_a_tls_only_server_is_refused_naming_tls() {
    let Some(pg) = start("rollback-postgres tls disable", TlsSetup::new()) else {
        return;
    };
    let a = adapter(&pg, config(&pg, "127.0.0.1", "app").sslmode(SslMode::Disable));
    let e = a.db.ping().await.expect_err("plain TCP is refused");
    let m = message(&e);
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{m}");
    assert!(
        m.contains("the server accepts only TLS connections from here")
            && m.contains("sslmode=disable")
            && m.contains("use sslmode=require, verify-ca or verify-full"),
        "{m}"
    );
    let e =
        a.db.snapshot("x")
            .await
            .expect_err("pg_dump without TLS is refused");
    assert!(message(&e).contains("no encryption"), "{e}");
    // prefer tries TLS first: it gets through.
    let a = adapter(&pg, config(&pg, "127.0.0.1", "app"));
    assert_eq!(a.db.config().sslmode, SslMode::Prefer);
    a.db.ping().await.expect("prefer uses TLS");
    a.db.snapshot("prefer")
        .await
        .expect("pg_dump with sslmode=prefer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_is_refused_when_tls_is_required() {
    let Some(pg) = TempPostgres::start("rollback-postgres tls server without TLS").expect("start") else {
        return;
    };
    pg.create_database("app").unwrap();
    let a = adapter(&pg, config(&pg, "127.0.0.1", "app").sslmode(SslMode::Require));
    let e = a.db.ping().await.expect_err("no TLS on this server");
    let m = message(&e);
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{m}");
    assert!(
        m.contains("the server does not do TLS") && m.contains("sslmode=require requires it"),
        "{m}"
    );
    // prefer falls back to a plain connection, as libpq does.
    let a = adapter(&pg, config(&pg, "127.0.0.1", "app"));
    a.db.ping()
        .await
        .expect("prefer: plain when the server has no TLS");
    a.db.snapshot("plain").await.expect("pg_dump with sslmode=prefer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_sent_and_their_key_must_be_private() {
    let setup = TlsSetup::new().require_client_certs(true);
    let Some(pg) = start("rollback-postgres tls client certificates", setup) else {
        return;
    };
    let tls = pg.tls().expect("TLS");
    let ca = ca_file(&pg);
    let full = || {
        config(&pg, "localhost", "app")
            .sslmode(SslMode::VerifyFull)
            .sslrootcert(&ca)
    };

    let e = adapter(&pg, full())
        .db
        .ping()
        .await
        .expect_err("no client certificate");
    let m = message(&e);
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{m}");
    assert!(m.contains("the server requires a client certificate"), "{m}");

    let (cert, key) = tls
        .write_client_cert("postgres", "client")
        .expect("client certificate");
    let a = adapter(&pg, full().sslcert(&cert).sslkey(&key));
    a.db.ping().await.expect("with the client certificate");
    let snap =
        a.db.snapshot("with a client certificate")
            .await
            .expect("pg_dump sends it too");
    a.db.verify(&snap.id).await.expect("verify");
    a.db.prepare_restore(&snap.id)
        .await
        .expect("pg_restore sends it too");

    // A key others may read is refused, as libpq does, before any connection.
    set_mode(&key, 0o644);
    let e = a.db.ping().await.expect_err("a key readable by others");
    let m = message(&e);
    assert!(
        m.contains(&format!(
            "the private key file {} (sslkey) is accessible to its group or to others (mode 0644)",
            key.display()
        )) && m.contains("chmod 600"),
        "{m}"
    );
    set_mode(&key, 0o600);
    // An unreadable (here: missing) key file is named.
    let a = adapter(&pg, full().sslcert(&cert).sslkey(key.with_extension("missing")));
    let e = a.db.ping().await.expect_err("no key file");
    assert!(message(&e).contains("cannot read the private key file"), "{e}");
    assert!(!message(&e).contains("PRIVATE KEY"), "{e}");

    // A client certificate from a CA the server does not trust is refused by the server.
    let stranger = TestCa::new("stranger CA")
        .unwrap()
        .client_cert("postgres")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (scert, skey) = (dir.path().join("s.crt"), dir.path().join("s.key"));
    std::fs::write(&scert, &stranger.cert_pem).unwrap();
    std::fs::write(&skey, stranger.key_pem.expose()).unwrap();
    set_mode(&skey, 0o600);
    let a = adapter(&pg, full().sslcert(&scert).sslkey(&skey));
    let e =
        a.db.ping()
            .await
            .expect_err("a client certificate from another CA");
    let m = message(&e);
    assert!(
        m.contains("the server ended the TLS handshake") && m.contains(&scert.display().to_string()),
        "{m}"
    );
    assert!(!m.contains("BEGIN"), "no key material: {m}");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
