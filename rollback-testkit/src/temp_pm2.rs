//! A throwaway pm2 daemon for integration tests: its own `PM2_HOME` in a temp dir, a tiny
//! Node HTTP server to run as the app, and `pm2 kill` on drop (also when the test panics),
//! so no daemon is left behind and `~/.pm2` is never touched.

use crate::integration;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Which Node app [`TempPm2::write_app`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeApp {
    /// Listens on `127.0.0.1:$PORT`; `GET /api/health` answers 200, anything else 404.
    HealthServer,
    /// Exits with status 1 as soon as it starts.
    CrashesAtStart,
}

// Shuts down gracefully on SIGINT (what pm2 sends on stop and reload): it stops taking new
// connections and ends once those it has are answered, as pm2's docs ask of an app.
const HEALTH_SERVER_JS: &str = r#"const http = require('http');
const port = Number(process.env.PORT);
const server = http.createServer((req, res) => {
  res.writeHead(req.url === '/api/health' ? 200 : 404, { 'content-type': 'text/plain', 'connection': 'close' });
  res.end(req.url === '/api/health' ? 'ok' : 'not found');
}).listen(port, '127.0.0.1');
process.on('SIGINT', () => server.close(() => process.exit(0)));
"#;

const CRASH_JS: &str = "console.error('crashing on purpose'); process.exit(1);\n";

/// A pm2 daemon home of its own; dropped, it runs `pm2 kill` and removes the directory.
#[derive(Debug)]
pub struct TempPm2 {
    home: PathBuf,
    pm2: PathBuf,
    node: PathBuf,
}

impl TempPm2 {
    /// A fresh `PM2_HOME` (the daemon starts on the first pm2 command). `None`, after a loud
    /// skip (a failure under `ROLLBACK_REQUIRE_INTEGRATION=1`), when pm2 or node is missing.
    pub fn new(test: &str) -> Option<Self> {
        let Some(node) = integration::find_on_path("node") else {
            integration::unavailable(test, "node (apt-get install nodejs npm)");
            return None;
        };
        let Some(pm2) = integration::find_on_path("pm2") else {
            integration::unavailable(test, "pm2 (npm install -g pm2@7.0.4)");
            return None;
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // Short: pm2's unix sockets live in PM2_HOME and socket paths are limited to ~100 bytes.
        let home = std::env::temp_dir().join(format!(
            "rbpm2-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(e) = std::fs::create_dir_all(home.join("apps")) {
            panic!("{test}: cannot create a PM2_HOME at {}: {e}", home.display());
        }
        Some(Self { home, pm2, node })
    }

    /// The `PM2_HOME`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The pm2 binary found on `PATH`.
    pub fn pm2(&self) -> &Path {
        &self.pm2
    }

    /// The node binary found on `PATH`.
    pub fn node(&self) -> &Path {
        &self.node
    }

    /// Writes `app` as `<PM2_HOME>/apps/<name>.js` and returns its path.
    pub fn write_app(&self, name: &str, app: NodeApp) -> PathBuf {
        let path = self.home.join("apps").join(format!("{name}.js"));
        let js = match app {
            NodeApp::HealthServer => HEALTH_SERVER_JS,
            NodeApp::CrashesAtStart => CRASH_JS,
        };
        if let Err(e) = std::fs::write(&path, js) {
            panic!("cannot write {}: {e}", path.display());
        }
        path
    }

    /// Runs `pm2 <args>` against this home (for test set-up such as `pm2 delete`), killed
    /// after 60 s; an error says why it failed or that it hung.
    pub fn run(&self, args: &[&str]) -> Result<Output, String> {
        let mut cmd = Command::new(&self.pm2);
        cmd.args(args).env("PM2_HOME", &self.home);
        integration::run_with_timeout(&mut cmd, Duration::from_secs(60))
            .map_err(|e| format!("pm2 {}: {e}", args.join(" ")))
    }

    /// Stops the daemon and its apps (`pm2 kill`, then SIGKILL if it is still there).
    pub fn kill(&self) {
        if !self.home.join("pm2.pid").exists() && !self.home.join("rpc.sock").exists() {
            return; // no daemon was ever started
        }
        let child = Command::new(&self.pm2)
            .arg("kill")
            .env("PM2_HOME", &self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(pid) = std::fs::read_to_string(self.home.join("pm2.pid")) {
            let pid = pid.trim();
            if !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
    }
}

impl Drop for TempPm2 {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 for a free port: {e}"))
}

/// The status code of `GET http://127.0.0.1:<port><path>`, or `None` when nothing answers
/// (connection refused, timeout, not HTTP).
pub fn http_status(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match stream.read(&mut head[n..]).ok()? {
            0 => break,
            k => n += k,
        }
    }
    std::str::from_utf8(&head[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(500),
    )
    .is_ok()
}
