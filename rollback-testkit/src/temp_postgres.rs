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

    /// Starts a new cluster with the server binaries in `bindir`.
    pub fn start_in(bindir: PathBuf) -> Result<Self, String> {
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

        // The port is free when we release it; another process could grab it before the
        // server binds, in which case `pg_ctl start` fails and we try another one.
        let mut last_err = String::new();
        for _ in 0..5 {
            pg.port = free_port()?;
            let conf = format!(
                "\n# rollback-testkit\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 50\n",
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
        let pg_ctl = self.bindir.join("pg_ctl");
        let log = self.root().join("server.log");
        let out = self.run_server_tool(
            &pg_ctl,
            &[
                "restart".as_ref(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-D".as_ref(),
                self.data_dir.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
            ],
        )?;
        check(&out, "pg_ctl restart")
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
