//! A throw-away PostgreSQL cluster for integration tests and examples.
//!
//! [`TempPostgres::start`] runs `initdb` into a fresh temporary directory, picks a free TCP
//! port on 127.0.0.1, puts the unix socket inside the same directory, and starts the server
//! with `pg_ctl start -w`. Dropping the value (also while a test panics) runs
//! `pg_ctl stop -m immediate` and deletes the directory.
//!
//! Authentication: unix-socket connections are trusted; TCP connections to 127.0.0.1 need
//! the superuser's password ([`TempPostgres::password`]), so that password handling is
//! exercised for real.
//!
//! Startup takes about a second, so each test should start its own cluster.
//!
//! TLS: [`TempPostgres::start_tls`] starts a cluster that takes TCP connections over TLS
//! only (`ssl = on`, a `pg_hba.conf` of `hostssl` lines, no `host` line), with a CA and a
//! server certificate made for the test by [`TestCa`] (rcgen); [`TlsSetup`] chooses the
//! names in the server's certificate and whether client certificates are required.
//!
//! The server binaries (`initdb`, `pg_ctl`, `postgres`) are found through `pg_config --bindir`
//! or in `/usr/lib/postgresql/<major>/bin`. When they are missing, `start` reports a loud
//! skip through [`integration::unavailable`](crate::integration::unavailable) and returns
//! `Ok(None)`. PostgreSQL refuses to run as root: when this process is root, the server
//! runs as the `postgres` system user, which then owns the directory.
//!
//! ```no_run
//! use rollback_testkit::TempPostgres;
//! let Some(pg) = TempPostgres::start("my_test").expect("start postgres") else { return };
//! pg.create_database("app").expect("create database");
//! let url = pg.url("app"); // a rollback_core::Secret: it holds the password
//! assert!(url.expose().starts_with("postgres://"));
//! ```

use crate::integration::run_with_timeout;
use rollback_core::Secret;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// How long `initdb`, `pg_ctl start` and `psql` may take before they are given up on.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// A running temporary PostgreSQL cluster, stopped and deleted on drop.
pub struct TempPostgres {
    tls: Option<TempTls>,
    bindir: PathBuf,
    dir: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    superuser: String,
    password: Secret,
    run_as: Option<String>,
}

impl fmt::Debug for TempPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempPostgres")
            .field("bindir", &self.bindir)
            .field("data_dir", &self.data_dir)
            .field("port", &self.port)
            .field("superuser", &self.superuser)
            .field("password", &self.password)
            .field("tls", &self.tls)
            .finish()
    }
}

impl TempPostgres {
    /// The superuser's password for TCP connections (unix-socket connections are trusted).
    pub const DEFAULT_PASSWORD: &'static str = "temp-pg-pw-Ke8v";

    /// Starts a new cluster. `test` names the caller in the skip banner.
    ///
    /// Returns `Ok(None)` after a loud skip when the PostgreSQL server binaries are missing
    /// (and panics instead under `ROLLBACK_REQUIRE_INTEGRATION=1`); `Err` when they are
    /// present but the cluster could not start (the message carries their output).
    pub fn start(test: &str) -> Result<Option<Self>, String> {
        let Some(bindir) = server_bindir() else {
            crate::integration::unavailable(
                test,
                "PostgreSQL server binaries (initdb, pg_ctl; apt-get install postgresql)",
            );
            return Ok(None);
        };
        Self::start_in(bindir).map(Some)
    }

    /// Starts a new cluster that takes TCP connections over TLS only, as `setup` says:
    /// a fresh CA ([`TlsSetup`]'s names in the server's certificate), `server.crt` and
    /// `server.key` (mode `0600`) in the data directory, `ssl = on`, and a `pg_hba.conf`
    /// with `hostssl` lines only (a plain TCP connection is refused; the unix socket stays
    /// trusted, so [`psql`](Self::psql) works as usual). [`tls`](Self::tls) gives the CA.
    ///
    /// Skips like [`start`](Self::start) when the server binaries are missing.
    pub fn start_tls(test: &str, setup: TlsSetup) -> Result<Option<Self>, String> {
        let Some(bindir) = server_bindir() else {
            crate::integration::unavailable(
                test,
                "PostgreSQL server binaries (initdb, pg_ctl; apt-get install postgresql)",
            );
            return Ok(None);
        };
        Self::start_with(bindir, Some(setup)).map(Some)
    }

    /// Starts a new cluster with the server binaries in `bindir`.
    pub fn start_in(bindir: PathBuf) -> Result<Self, String> {
        Self::start_with(bindir, None)
    }

    fn start_with(bindir: PathBuf, tls: Option<TlsSetup>) -> Result<Self, String> {
        let run_as = if is_root() {
            Some("postgres".to_owned())
        } else {
            None
        };
        // Under /tmp rather than $TMPDIR: the server user must reach it (a root-only
        // $TMPDIR would not do) and the socket path must stay short (about 100 bytes max).
        let parent = if Path::new("/tmp").is_dir() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("rollback-pg-")
            .tempdir_in(parent)
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let root = dir.path().to_path_buf();
        let data_dir = root.join("data");
        let socket_dir = root.join("sock");
        std::fs::create_dir(&socket_dir)
            .map_err(|e| format!("cannot create {}: {e}", socket_dir.display()))?;
        let pwfile = root.join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", Self::DEFAULT_PASSWORD))
            .map_err(|e| format!("cannot write {}: {e}", pwfile.display()))?;
        if let Some(user) = &run_as {
            let (uid, gid) = user_ids(user)?;
            for p in [&root, &socket_dir, &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .map_err(|e| format!("cannot give {} to {user}: {e}", p.display()))?;
            }
        }
        let mut pg = TempPostgres {
            tls: None,
            bindir,
            dir: Some(dir),
            data_dir,
            socket_dir,
            port: 0,
            superuser: "postgres".to_owned(),
            password: Secret::new(Self::DEFAULT_PASSWORD),
            run_as,
        };
        let initdb = pg.bindir.join("initdb");
        let out = pg.run_server_tool(
            &initdb,
            &[
                "-D".as_ref(),
                pg.data_dir.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "--auth-local=trust".as_ref(),
                "--auth-host=scram-sha-256".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        check(&out, "initdb")?;
        let _ = std::fs::remove_file(&pwfile);
        let tls_conf = match tls {
            Some(setup) => pg.set_up_tls(setup)?,
            None => String::new(),
        };

        // The port is free when we release it; another process could grab it before the
        // server binds, in which case `pg_ctl start` fails and we try another one.
        let mut last_err = String::new();
        for _ in 0..5 {
            pg.port = free_port()?;
            let conf = format!(
                "\n# rollback-testkit\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 50\n{tls_conf}",
                pg.port,
                pg.socket_dir.display()
            );
            let conf_path = pg.data_dir.join("postgresql.auto.conf");
            let mut base = std::fs::read_to_string(&conf_path).unwrap_or_default();
            if let Some(i) = base.find("\n# rollback-testkit\n") {
                base.truncate(i);
            }
            std::fs::write(&conf_path, base + &conf)
                .map_err(|e| format!("cannot write {}: {e}", conf_path.display()))?;
            let log = pg.root().join("server.log");
            let pg_ctl = pg.bindir.join("pg_ctl");
            let out = pg.run_server_tool(
                &pg_ctl,
                &[
                    "start".as_ref(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "-D".as_ref(),
                    pg.data_dir.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                ],
            )?;
            if out.status.success() {
                return Ok(pg);
            }
            last_err = format!(
                "pg_ctl start failed: {}{}\nserver log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Err(last_err)
    }

    /// The directory holding the server binaries (`initdb`, `pg_ctl`, `pg_dump`, ...).
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The TCP port the server listens on (on [`host`](Self::host)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCP host, `127.0.0.1` (password authentication).
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The directory of the unix socket (trusted, no password).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The superuser's name, `postgres`.
    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// The superuser's password, needed over TCP.
    pub fn password(&self) -> &Secret {
        &self.password
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The TLS material of a cluster started by [`start_tls`](Self::start_tls), `None` for
    /// a plain one.
    pub fn tls(&self) -> Option<&TempTls> {
        self.tls.as_ref()
    }

    /// For a cluster started by [`start_tls`](Self::start_tls): [`url`](Self::url) with
    /// `sslmode=verify-full&sslrootcert=<the CA file>` (percent-encoded); `None` for a plain
    /// one.
    pub fn tls_url(&self, dbname: &str) -> Option<Secret> {
        let tls = self.tls.as_ref()?;
        Some(Secret::new(format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            self.url(dbname).expose(),
            percent_encode(&tls.ca_file.to_string_lossy())
        )))
    }

    /// A `postgres://` URL for `dbname` over TCP, as the superuser with its password (hence
    /// a [`Secret`]). The database name is percent-encoded, so any name works.
    pub fn url(&self, dbname: &str) -> Secret {
        Secret::new(format!(
            "postgres://{}:{}@{}:{}/{}",
            self.superuser,
            percent_encode(self.password.expose()),
            self.host(),
            self.port,
            percent_encode(dbname)
        ))
    }

    /// The same connection as [`url`](Self::url) as `(key, value)` pairs, without the
    /// password (see [`password`](Self::password)).
    pub fn params(&self, dbname: &str) -> Vec<(&'static str, String)> {
        vec![
            ("host", self.host().to_owned()),
            ("port", self.port.to_string()),
            ("user", self.superuser.clone()),
            ("dbname", dbname.to_owned()),
        ]
    }

    /// Runs SQL through `psql` over the unix socket as the superuser, in database `dbname`,
    /// stopping at the first error; returns what `psql` printed (unaligned, tuples only).
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String, String> {
        let psql = self.bindir.join("psql");
        let port = self.port.to_string();
        let mut cmd = Command::new(&psql);
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args(["-p", &port, "-U", &self.superuser, "-d"])
            .arg(format!(
                "dbname='{}'",
                dbname.replace('\\', "\\\\").replace('\'', "\\'")
            ))
            .args(["-c", sql]);
        let out = run_with_timeout(&mut cmd, STEP_TIMEOUT)
            .map_err(|e| format!("psql ({}): {e}", psql.display()))?;
        if !out.status.success() {
            return Err(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// Creates database `name` (any name: it is quoted).
    pub fn create_database(&self, name: &str) -> Result<(), String> {
        self.psql("postgres", &format!("CREATE DATABASE {}", quote_ident(name)))
            .map(drop)
    }

    /// Restarts the server (`pg_ctl restart -m fast -w`), e.g. after
    /// `ALTER SYSTEM SET shared_preload_libraries = ..`; every session is disconnected.
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60"], true)
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`): every session is cut,
    /// nothing is checkpointed; [`start_again`](Self::start_again) brings it back (with
    /// crash recovery).
    pub fn kill(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"], false)
    }

    /// Starts the server again after [`kill`](Self::kill), on the same port and socket.
    pub fn start_again(&self) -> Result<(), String> {
        self.pg_ctl(&["start", "-w", "-t", "60"], true)
    }

    /// `pg_ctl ARGS -D <data dir>` (with `-l <server.log>` when `log`), as the server's user.
    fn pg_ctl(&self, args: &[&str], log: bool) -> Result<(), String> {
        let pg_ctl = self.bindir.join("pg_ctl");
        let log_file = self.root().join("server.log");
        let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        all.extend(["-D".as_ref(), self.data_dir.as_os_str()]);
        if log {
            all.extend(["-l".as_ref(), log_file.as_os_str()]);
        }
        let out = self.run_server_tool(&pg_ctl, &all)?;
        check(&out, &format!("pg_ctl {}", args.join(" ")))
    }

    /// Writes the CA, the server's certificate and key, and a `hostssl`-only `pg_hba.conf`;
    /// returns the lines for `postgresql.auto.conf`.
    fn set_up_tls(&mut self, setup: TlsSetup) -> Result<String, String> {
        let ca = TestCa::new("rollback-testkit CA")?;
        let names: Vec<&str> = setup.server_names.iter().map(String::as_str).collect();
        let server = ca.server_cert(&names)?;
        let owner = match &self.run_as {
            Some(user) => Some(user_ids(user)?),
            None => None,
        };
        let write = |path: &Path, text: &str, mode: u32, chown: bool| -> Result<(), String> {
            write_private(path, text, mode)?;
            if let (true, Some((uid, gid))) = (chown, owner) {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .map_err(|e| format!("cannot give {} to the server's user: {e}", path.display()))?;
            }
            Ok(())
        };
        write(&self.data_dir.join("server.crt"), &server.cert_pem, 0o644, true)?;
        write(
            &self.data_dir.join("server.key"),
            server.key_pem.expose(),
            0o600,
            true,
        )?;
        write(&self.data_dir.join("root.crt"), &ca.cert_pem(), 0o644, true)?;
        let ca_file = self.root().join("ca.crt");
        write(&ca_file, &ca.cert_pem(), 0o644, false)?;
        let option = if setup.client_certs {
            " clientcert=verify-ca"
        } else {
            ""
        };
        let hba = format!(
            "# rollback-testkit: TCP over TLS only (no `host` line: plain TCP is refused)\n\
             local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256{option}\n\
             hostssl all all ::1/128 scram-sha-256{option}\n"
        );
        write(&self.data_dir.join("pg_hba.conf"), &hba, 0o600, true)?;
        let mut conf = "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n".to_owned();
        if setup.client_certs {
            conf.push_str("ssl_ca_file = 'root.crt'\n");
        }
        self.tls = Some(TempTls {
            ca,
            ca_file,
            dir: self.root(),
            setup,
        });
        Ok(conf)
    }

    fn root(&self) -> PathBuf {
        self.data_dir.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    fn run_server_tool(&self, bin: &Path, args: &[&std::ffi::OsStr]) -> Result<Output, String> {
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(args).current_dir(self.root());
        run_with_timeout(&mut cmd, STEP_TIMEOUT).map_err(|e| format!("{}: {e}", bin.display()))
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.port != 0 {
            let pg_ctl = self.bindir.join("pg_ctl");
            let data = self.data_dir.clone();
            let stopped = self.run_server_tool(
                &pg_ctl,
                &[
                    "stop".as_ref(),
                    "-m".as_ref(),
                    "immediate".as_ref(),
                    "-w".as_ref(),
                    "-D".as_ref(),
                    data.as_os_str(),
                ],
            );
            if let Err(e) = stopped.and_then(|out| check(&out, "pg_ctl stop")) {
                tracing::warn!(
                    "TempPostgres: could not stop the server in {}: {e}",
                    data.display()
                );
            }
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                tracing::warn!("TempPostgres: could not remove {}: {e}", path.display());
            }
        }
    }
}

/// How [`TempPostgres::start_tls`] sets TLS up: [`new`](Self::new) (a server certificate
/// for `localhost` and `127.0.0.1`, no client certificate required) and the setters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSetup {
    /// The names (DNS names or IP addresses) in the server's certificate.
    pub server_names: Vec<String>,
    /// Whether a client certificate signed by the cluster's CA is required too
    /// (`clientcert=verify-ca` on the `hostssl` lines).
    pub client_certs: bool,
}

impl Default for TlsSetup {
    fn default() -> Self {
        TlsSetup {
            server_names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            client_certs: false,
        }
    }
}

impl TlsSetup {
    /// A server certificate for `localhost` and `127.0.0.1`; no client certificate needed.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same setup with other names in the server's certificate (e.g. only `localhost`,
    /// so that a connection to `127.0.0.1` fails `verify-full`'s host name check).
    pub fn server_names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.server_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// The same setup with client certificates required (`clientcert=verify-ca`) or not.
    pub fn require_client_certs(mut self, required: bool) -> Self {
        self.client_certs = required;
        self
    }
}

/// The TLS material of a cluster started by [`TempPostgres::start_tls`].
pub struct TempTls {
    ca: TestCa,
    ca_file: PathBuf,
    dir: PathBuf,
    setup: TlsSetup,
}

impl fmt::Debug for TempTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempTls")
            .field("ca_file", &self.ca_file)
            .field("setup", &self.setup)
            .finish_non_exhaustive()
    }
}

impl TempTls {
    /// The CA that signed the server's certificate (and signs client certificates).
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The CA's certificate as a PEM file, for `sslrootcert`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// How the cluster was set up.
    pub fn setup(&self) -> &TlsSetup {
        &self.setup
    }

    /// Writes a client certificate for `user` signed by the cluster's CA, and its key (mode
    /// `0600`), into the cluster's directory as `<name>.crt` and `<name>.key`; returns their
    /// paths, for `sslcert` and `sslkey`.
    pub fn write_client_cert(&self, user: &str, name: &str) -> Result<(PathBuf, PathBuf), String> {
        let pair = self.ca.client_cert(user)?;
        let cert = self.dir.join(format!("{name}.crt"));
        let key = self.dir.join(format!("{name}.key"));
        write_private(&cert, &pair.cert_pem, 0o644)?;
        write_private(&key, pair.key_pem.expose(), 0o600)?;
        Ok((cert, key))
    }
}

/// A certificate authority made for a test (rcgen, ECDSA P-256): it signs server and client
/// certificates. Its key stays in memory.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A certificate and its private key, both PEM (the key is a [`Secret`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct CertAndKey {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: Secret,
}

impl TestCa {
    /// A new self-signed CA whose common name is `name`.
    pub fn new(name: &str) -> Result<Self, String> {
        let fail = |e: rcgen::Error| format!("cannot make the test CA: {e}");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().map_err(fail)?;
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).map_err(fail)?;
        Ok(TestCa { issuer })
    }

    /// The CA's certificate (PEM).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses; the first is also its
    /// common name).
    pub fn server_cert(&self, names: &[&str]) -> Result<CertAndKey, String> {
        let subject = names.first().copied().unwrap_or("server");
        self.issue(names, subject, rcgen::ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose common name is `user` (what PostgreSQL's `cert`
    /// authentication compares with the user name).
    pub fn client_cert(&self, user: &str) -> Result<CertAndKey, String> {
        self.issue(&[], user, rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(
        &self,
        names: &[&str],
        common_name: &str,
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> Result<CertAndKey, String> {
        let fail = |e: rcgen::Error| format!("cannot make a certificate for {common_name}: {e}");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).map_err(fail)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = rcgen::KeyPair::generate().map_err(fail)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(fail)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: Secret::new(key.serialize_pem()),
        })
    }
}

/// Writes `text` to `path` with `mode` (created with it, so a key is never readable by
/// others, even for a moment).
fn write_private(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    // The umask may have taken bits away from a public file: set them exactly.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))
}

/// Quotes an SQL identifier (`"` doubled, wrapped in `"`).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The directory holding `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/<major>/bin`.
pub fn server_bindir() -> Option<PathBuf> {
    let has_server =
        |d: &Path| crate::integration::is_executable(&d.join("initdb")) && d.join("pg_ctl").exists();
    let mut pg_config = Command::new("pg_config");
    pg_config.arg("--bindir");
    if let Ok(out) = run_with_timeout(&mut pg_config, Duration::from_secs(10)) {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Some(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, d)| has_server(d))
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, d)| d)
}

fn is_root() -> bool {
    // The owner of /proc/self is this process's effective uid.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn user_ids(user: &str) -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .map_err(|e| format!("cannot run `id {flag} {user}`: {e}"))?;
        String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| {
            format!(
                "no `{user}` system user to run PostgreSQL as (it refuses to run as root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
    };
    Ok((id("-u")?, id("-g")?))
}

fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn check(out: &Output, what: &str) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(percent_encode("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(percent_encode("W \"x\"/ü"), "W%20%22x%22%2F%C3%BC");
    }

    #[test]
    fn starts_queries_and_cleans_up() {
        let Some(pg) = TempPostgres::start("temp_postgres::starts_queries_and_cleans_up").expect("start")
        else {
            return;
        };
        let root = pg.root();
        pg.create_database("Weird \"DB\" ü").expect("create");
        let v = pg.psql("Weird \"DB\" ü", "SELECT 40 + 2").expect("psql");
        assert_eq!(v, "42");
        assert!(!format!("{pg:?}").contains(TempPostgres::DEFAULT_PASSWORD));
        assert!(pg.url("x").expose().contains(&pg.port().to_string()));
        drop(pg);
        assert!(!root.exists(), "drop removes the directory");
    }

    /// `psql` over TCP as the superuser with libpq's TLS settings in its environment.
    fn tcp_psql(pg: &TempPostgres, host: &str, tls: &[(&str, &std::ffi::OsStr)]) -> Result<String, String> {
        let mut cmd = Command::new(pg.bindir().join("psql"));
        cmd.args([
            "-X",
            "-A",
            "-t",
            "-h",
            host,
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"])
        .env("PGPASSWORD", pg.password().expose());
        for (k, v) in tls {
            cmd.env(k, v);
        }
        let out = run_with_timeout(&mut cmd, STEP_TIMEOUT)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    #[test]
    fn a_tls_cluster_takes_tcp_over_tls_only_with_the_certificate_it_made() {
        let setup = TlsSetup::new().server_names(["localhost"]);
        let Some(pg) = TempPostgres::start_tls("temp_postgres::tls", setup).expect("start") else {
            return;
        };
        let tls = pg.tls().expect("TLS material");
        assert_eq!(tls.setup().server_names, vec!["localhost".to_owned()]);
        let key_mode = std::fs::metadata(pg.data_dir().join("server.key"))
            .unwrap()
            .mode()
            & 0o777;
        assert_eq!(key_mode, 0o600);
        assert_eq!(
            pg.psql("postgres", "SELECT 1").unwrap(),
            "1",
            "the socket stays trusted"
        );
        let ca = tls.ca_file().as_os_str();
        let e = tcp_psql(&pg, "127.0.0.1", &[("PGSSLMODE", "disable".as_ref())]).unwrap_err();
        assert!(e.contains("no encryption"), "plain TCP is refused: {e}");
        let full = [("PGSSLMODE", "verify-full".as_ref()), ("PGSSLROOTCERT", ca)];
        assert_eq!(
            tcp_psql(&pg, "localhost", &full).unwrap(),
            "t",
            "verify-full to a name in the certificate"
        );
        let e = tcp_psql(&pg, "127.0.0.1", &full).unwrap_err();
        assert!(e.contains("does not match host name"), "{e}");
        let stranger =
            std::env::temp_dir().join(format!("rollback-testkit-stranger-{}.pem", std::process::id()));
        std::fs::write(&stranger, TestCa::new("stranger").unwrap().cert_pem()).unwrap();
        let e = tcp_psql(
            &pg,
            "localhost",
            &[
                ("PGSSLMODE", "verify-ca".as_ref()),
                ("PGSSLROOTCERT", stranger.as_os_str()),
            ],
        )
        .unwrap_err();
        let _ = std::fs::remove_file(&stranger);
        assert!(e.contains("certificate verify failed"), "{e}");
        let shown = format!("{pg:?}");
        assert!(
            !shown.contains("PRIVATE KEY") && !shown.contains(TempPostgres::DEFAULT_PASSWORD),
            "{shown}"
        );
        assert!(pg
            .tls_url("app")
            .unwrap()
            .expose()
            .contains("sslmode=verify-full&sslrootcert=%2F"));
    }

    #[test]
    fn client_certificates_are_signed_by_the_clusters_ca_and_required_when_asked() {
        let setup = TlsSetup::new().require_client_certs(true);
        let Some(pg) = TempPostgres::start_tls("temp_postgres::tls client certs", setup).expect("start")
        else {
            return;
        };
        let tls = pg.tls().expect("TLS material");
        let ca = tls.ca_file().as_os_str();
        let full = [("PGSSLMODE", "verify-full".as_ref()), ("PGSSLROOTCERT", ca)];
        let e = tcp_psql(&pg, "localhost", &full).unwrap_err();
        assert!(e.contains("certificate"), "no client certificate: {e}");
        let (cert, key) = tls.write_client_cert("postgres", "client").unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        let with_cert = [
            ("PGSSLMODE", "verify-full".as_ref()),
            ("PGSSLROOTCERT", ca),
            ("PGSSLCERT", cert.as_os_str()),
            ("PGSSLKEY", key.as_os_str()),
        ];
        assert_eq!(tcp_psql(&pg, "localhost", &with_cert).unwrap(), "t");
    }

    #[test]
    fn a_panicking_test_still_stops_and_removes_its_cluster() {
        if server_bindir().is_none() {
            crate::integration::unavailable("temp_postgres::panic cleanup", "PostgreSQL server binaries");
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let joined = std::thread::spawn(move || {
            let pg = TempPostgres::start("temp_postgres::panic cleanup")
                .expect("start")
                .expect("binaries");
            tx.send((pg.root(), pg.port())).unwrap();
            panic!("the test failed while the cluster ran");
        })
        .join();
        assert!(joined.is_err(), "the thread panicked");
        let (root, port) = rx.recv().unwrap();
        assert!(!root.exists(), "the cluster's directory is gone after the panic");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the server no longer listens on {port}"
        );
    }
}
