//! A throw-away HAProxy load balancer for integration tests: [`TempHaproxy::start`] writes a
//! config into a fresh temporary directory (a frontend on `127.0.0.1` and a free port, a
//! backend of the given app servers with HTTP health checks on `GET /api/health`, `retries
//! 3`, `option redispatch`, fast checks) and runs `haproxy -db -f <config>` as a child.
//! Dropping the value (also while a test panics) ends that haproxy and deletes the
//! directory.
//!
//! When `haproxy` is missing, `start` reports a loud skip through
//! [`integration::unavailable`] (a failure under `ROLLBACK_REQUIRE_INTEGRATION=1`) and
//! returns `None`.
//!
//! ```no_run
//! use rollback_testkit::temp_haproxy::TempHaproxy;
//! let Some(lb) = TempHaproxy::start("my_test", &[("web-1", 3001), ("web-2", 3002)]) else { return };
//! let status = rollback_testkit::temp_pm2::http_status(lb.port(), "/api/health", std::time::Duration::from_secs(2));
//! println!("{status:?} from {}", lb.url("/api/health"));
//! ```

use crate::integration;
use crate::temp_pm2::{free_port, port_open};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long haproxy may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running haproxy of a test's own, ended and deleted on drop.
pub struct TempHaproxy {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl fmt::Debug for TempHaproxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempHaproxy")
            .field("dir", &self.dir.path())
            .field("pid", &self.child.id())
            .field("port", &self.port)
            .finish()
    }
}

impl TempHaproxy {
    /// Writes the config and starts haproxy in front of `servers` (each a name and a port
    /// on 127.0.0.1), waiting until its frontend takes connections. `test` names the
    /// caller in the skip banner.
    ///
    /// The backend checks `GET /api/health` every 100 ms (one failure takes a server out,
    /// one success puts it back), retries a failed connection 3 times and redispatches it
    /// to another server, also on an empty response.
    ///
    /// `None` after a loud skip when `haproxy` is missing (a panic instead under
    /// `ROLLBACK_REQUIRE_INTEGRATION=1`). Panics, with haproxy's own log, when it is there
    /// but does not start.
    pub fn start(test: &str, servers: &[(&str, u16)]) -> Option<Self> {
        let haproxy = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
            .iter()
            .map(PathBuf::from)
            .find(|p| integration::is_executable(p))
            .or_else(|| integration::find_on_path("haproxy"));
        let Some(haproxy) = haproxy else {
            integration::unavailable(test, "haproxy (apt-get install haproxy; see .ci/setup)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("rbhaproxy-")
            .tempdir()
            .unwrap_or_else(|e| panic!("{test}: cannot create a temp dir for haproxy: {e}"));
        let mut last_error = String::new();
        // A port that was free a moment ago may be taken by the time haproxy binds it.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("haproxy.cfg");
            if let Err(e) = std::fs::write(&config, config_text(port, servers)) {
                panic!("{test}: cannot write {}: {e}", config.display());
            }
            match spawn(&haproxy, dir.path(), &config, port) {
                Ok(child) => return Some(Self { dir, child, port }),
                Err(e) if e.contains("cannot bind") || e.contains("Address already in use") => last_error = e,
                Err(e) => panic!("{test}: haproxy did not start: {e}"),
            }
        }
        panic!("{test}: haproxy did not start: {last_error}");
    }

    /// The frontend's port, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The config file.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("haproxy.cfg")
    }

    /// haproxy's own output so far (its stderr: warnings, servers going up and down).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for TempHaproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config: a frontend on `port`, a backend of `servers` with fast HTTP health checks.
fn config_text(port: u16, servers: &[(&str, u16)]) -> String {
    let mut text = format!(
        "global\n\
         \x20   maxconn 512\n\
         \n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 1s\n\
         \x20   timeout client 10s\n\
         \x20   timeout server 10s\n\
         \x20   timeout check 1s\n\
         \x20   retries 3\n\
         \x20   option redispatch\n\
         \x20   retry-on conn-failure empty-response response-timeout\n\
         \n\
         frontend web\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   default_backend app\n\
         \n\
         backend app\n\
         \x20   balance roundrobin\n\
         \x20   option httpchk GET /api/health\n\
         \x20   default-server inter 100ms fastinter 100ms downinter 100ms fall 1 rise 1\n"
    );
    for (name, server_port) in servers {
        text.push_str(&format!("    server {name} 127.0.0.1:{server_port} check\n"));
    }
    text
}

/// Starts haproxy in the foreground (`-db`) and waits for its frontend.
fn spawn(haproxy: &Path, dir: &Path, config: &Path, port: u16) -> Result<Child, String> {
    let log_path = dir.join("haproxy.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut child = Command::new(haproxy)
        .arg("-db")
        .arg("-f")
        .arg(config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", haproxy.display()))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("haproxy exited ({status}): {log}"));
        }
        if port_open(port) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "haproxy did not listen on {port} within {START_TIMEOUT:?}: {log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
