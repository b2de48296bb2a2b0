//! What the fleet tests of the `rollback` binary share: the tiny Node app, its hosts (each a
//! directory tree with its own pm2, releases, env file and host rollback.toml), the deploy
//! box's config over a TempSshd, a request loop through the balancer.
#![allow(dead_code)]

use rollback_testkit::temp_haproxy::TempHaproxy;
use rollback_testkit::temp_pm2::TempPm2;
use rollback_testkit::temp_sshd::TempSshd;
use rollback_testkit::TempPostgres;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DB_ENV: &str = "ROLLBACK_FLEET_DATABASE_URL";
pub const DB: &str = "fleet";

/// The app: a Node HTTP server whose /api/health reports its version, its env file's
/// channel and its host; it closes its listener on SIGINT (pm2's stop) and lets in-flight
/// requests finish.
pub const APP_JS: &str = r#"const http = require('http');
const fs = require('fs');
const VERSION = '__VERSION__';
const env = {};
for (const line of fs.readFileSync(process.env.ENV_FILE, 'utf8').split('\n')) {
  const i = line.indexOf('=');
  if (i > 0 && !line.startsWith('#')) env[line.slice(0, i)] = line.slice(i + 1);
}
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'connection': 'close' });
  res.end(JSON.stringify({ ok: true, version: VERSION, channel: env.CHANNEL, host: env.HOST_NAME }));
});
server.listen(Number(env.PORT), '127.0.0.1');
process.on('SIGINT', () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
"#;

pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(repo)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One app host: its tree, its pm2, its port.
pub struct Host {
    pub name: String,
    pub dir: PathBuf,
    pub port: u16,
    pub pm2: TempPm2,
}

impl Host {
    pub fn config(&self) -> PathBuf {
        self.dir.join("rollback.toml")
    }

    pub fn write_env(&self, channel: &str) {
        std::fs::write(
            self.dir.join("app.env"),
            format!("PORT={}\nCHANNEL={channel}\nHOST_NAME={}\n", self.port, self.name),
        )
        .unwrap();
    }

    pub fn code(&self, repo: &Path) -> rollback_git::GitCode {
        rollback_git::GitCode::builder(repo)
            .releases(self.dir.join("releases"), self.dir.join("current"))
            .build()
            .unwrap()
    }

    /// The body of its own /api/health (not through the balancer).
    pub fn health(&self) -> Option<String> {
        get(self.port, "/api/health", Duration::from_secs(2))
    }
}

/// `GET path` on 127.0.0.1:`port`: the body of a 200, `None` otherwise.
pub fn get(port: u16, path: &str, timeout: Duration) -> Option<String> {
    let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

pub fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn rollback(config: &Path, db_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollback"));
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env(DB_ENV, db_url)
        .env_remove("ROLLBACK_CONFIG")
        .stdin(Stdio::null());
    cmd
}

pub fn run(mut cmd: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run rollback");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Requests through the balancer every ~10 ms until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Instant, Option<String>)>>,
}

impl Load {
    pub fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let at = Instant::now();
                seen.push((at, get(port, "/", Duration::from_secs(5))));
                std::thread::sleep(Duration::from_millis(10).saturating_sub(at.elapsed()));
            }
            seen
        });
        Self { stop, thread }
    }

    /// Requests sent, failed, and the longest time between two answered requests.
    pub fn finish(self) -> (usize, usize, Duration, Vec<(Instant, Option<String>)>) {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.join().expect("the load thread");
        let failed = seen.iter().filter(|(_, r)| r.is_none()).count();
        let mut longest = Duration::ZERO;
        let mut last_ok: Option<Instant> = None;
        for (at, r) in &seen {
            if r.is_some() {
                if let Some(prev) = last_ok {
                    longest = longest.max(at.duration_since(prev));
                }
                last_ok = Some(*at);
            }
        }
        (seen.len(), failed, longest, seen)
    }
}

/// The deploy box's rollback.toml: [database], the two [[hosts]] over the TempSshd, the
/// balancer's health URL. `port` overrides the ssh port of the second host.
pub fn deploy_config(
    dir: &Path,
    pg: &TempPostgres,
    sshd: &TempSshd,
    hosts: &[Host],
    lb: &TempHaproxy,
    second_port: Option<u16>,
) -> String {
    let mut text = format!(
        r#"app = "web"
state_dir = "{state}"

[database]
url_env = "{DB_ENV}"
snapshots_dir = "{snapshots}"
bindir = "{bindir}"

[[health]]
url = "{lb_url}"
timeout = "2s"

[settings]
health_timeout = "60s"

[fleet]
parallelism = 2
health_timeout = "60s"
hello_timeout = "30s"
control_dir = "{control}"
"#,
        state = dir.join("state").display(),
        snapshots = dir.join("snapshots").display(),
        bindir = pg.bindir().display(),
        lb_url = lb.url("/api/health"),
        control = sshd.dir().display(),
    );
    for (i, h) in hosts.iter().enumerate() {
        let port = match (i, second_port) {
            (1, Some(p)) => format!("port = {p}\n"),
            _ => String::new(),
        };
        text.push_str(&format!(
            r#"
[[hosts]]
name = "{name}"
ssh = "{alias}"
ssh_config = "{ssh_config}"
{port}config = "{config}"
command = ["{bin}", "agent", "--stdio", "--config", "{config}"]
"#,
            name = h.name,
            alias = sshd.alias(),
            ssh_config = sshd.ssh_config().display(),
            config = h.config().display(),
            bin = env!("CARGO_BIN_EXE_rollback"),
        ));
    }
    text
}

/// A host's own rollback.toml (what its agent serves): its releases, env file, pm2, and the
/// health probe its agent runs, on `health_port` (its app's port, or a [`HealthGate`]).
pub fn host_toml(repo: &Path, host: &Host, health_port: u16) -> String {
    format!(
        r#"app = "web"
state_dir = "state"

[code]
repo = "{repo}"
layout = "releases"
releases_dir = "releases"
current_link = "current"

[config]
file = "app.env"
required_keys = ["PORT"]
history_dir = "env-history"

[process]
manager = "pm2"
pm2_home = "{home}"
binary = "{pm2}"
ecosystem = "ecosystem.config.js"
stability_window = "500ms"

[[health]]
url = "http://127.0.0.1:{health_port}/api/health"
timeout = "2s"
"#,
        repo = repo.display(),
        home = host.pm2.home().display(),
        pm2 = host.pm2.pm2().display(),
    )
}

/// A string field of the app's JSON answer.
pub fn field<'a>(body: &'a str, name: &str) -> &'a str {
    body.split(&format!("\"{name}\":\""))
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("?")
}

pub fn version_of(body: &str) -> &str {
    body.split("\"version\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("?")
}

/// The shared repository at `root/repo` with v1 (1.0.0) and v2 (2.0.0) of the app:
/// (repo, v1, v2).
pub fn app_repo(root: &Path) -> (PathBuf, String, String) {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("app.js"), APP_JS.replace("__VERSION__", "1.0.0")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "v1"]);
    let v1 = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("app.js"), APP_JS.replace("__VERSION__", "2.0.0")).unwrap();
    git(&repo, &["commit", "-q", "-am", "v2"]);
    let v2 = git(&repo, &["rev-parse", "HEAD"]);
    (repo, v1, v2)
}

/// Hosts named `names` under `root`, each with its own pm2, deployed at `v1` (a releases
/// layout), its env file on channel "stable", started and answering. `None` when pm2 is
/// missing (said loudly by TempPm2).
pub fn start_hosts(test: &str, root: &Path, names: &[&str], repo: &Path, v1: &str) -> Option<Vec<Host>> {
    let mut hosts = Vec::new();
    for name in names {
        let pm2 = TempPm2::new(test)?;
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("releases")).unwrap();
        let host = Host {
            name: (*name).to_owned(),
            dir,
            port: rollback_testkit::temp_pm2::free_port(),
            pm2,
        };
        host.write_env("stable");
        std::fs::write(
            host.dir.join("ecosystem.config.js"),
            format!(
                "module.exports = {{ apps: [{{ name: 'web', script: '{current}/app.js', cwd: '{dir}', kill_timeout: 3000, env: {{ ENV_FILE: '{dir}/app.env' }} }}] }};\n",
                current = host.dir.join("current").display(),
                dir = host.dir.display(),
            ),
        )
        .unwrap();
        std::fs::write(host.config(), host_toml(repo, &host, host.port)).unwrap();
        host.switch_to(repo, v1);
        let eco = host.dir.join("ecosystem.config.js");
        let out = host.pm2.run(&["start", &eco.to_string_lossy()]).unwrap();
        assert!(out.status.success(), "pm2 start: {out:?}");
        wait_until(&format!("{name} answers"), Duration::from_secs(30), || {
            host.health().is_some()
        });
        hosts.push(host);
    }
    Some(hosts)
}

impl Host {
    /// Builds and activates revision `rev` here (as a deploy does), without restarting.
    pub fn switch_to(&self, repo: &Path, rev: &str) {
        use rollback_core::CodeVersion;
        let code = self.code(repo);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let rev = code.resolve(rev).await.unwrap();
            let prepared = code.prepare(&rev.id).await.unwrap();
            code.activate(&prepared).await.unwrap();
        });
    }

    /// The bad deploy here: `rev` on channel "beta", restarted and answering `version`.
    pub fn deploy(&self, repo: &Path, rev: &str, version: &str) {
        self.write_env("beta");
        self.switch_to(repo, rev);
        let out = self.pm2.run(&["restart", "web"]).unwrap();
        assert!(out.status.success(), "pm2 restart: {out:?}");
        wait_until(
            &format!("{} answers {version}", self.name),
            Duration::from_secs(30),
            || self.health().is_some_and(|b| version_of(&b) == version),
        );
    }
}

/// A real haproxy in front of `hosts`, answering. `None` when haproxy is missing (said
/// loudly by TempHaproxy).
pub fn balancer(test: &str, hosts: &[Host]) -> Option<TempHaproxy> {
    let servers: Vec<(&str, u16)> = hosts.iter().map(|h| (h.name.as_str(), h.port)).collect();
    let lb = TempHaproxy::start(test, &servers)?;
    wait_until("haproxy answers", Duration::from_secs(10), || {
        get(lb.port(), "/api/health", Duration::from_secs(2)).is_some()
    });
    Some(lb)
}
