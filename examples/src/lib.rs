//! The demo world shared by the quickstart and the downtime benchmark: in one temp dir, a
//! real PostgreSQL cluster with an app database, a git repository of a small Node app with
//! a build step (v1 good, v2 with a schema-breaking migration and a failing health check),
//! the app run by a real pm2 from a releases layout, and a real `.env.production`.
//!
//! Everything it starts is stopped and deleted when the [`DemoWorld`] is dropped (the
//! cluster, the pm2 daemon, the temp dir), also when the caller fails or is interrupted.

#![warn(missing_docs)]

use rollback_core::{
    DirStateStore, HttpProbe, IntegrityChecks, Orchestrator, OrchestratorBuilder, Secret, Settings,
};
use rollback_envfile::EnvFileStore;
use rollback_git::GitCode;
use rollback_pm2::{AppSpec, Pm2ProcessManager, ScriptSpec};
use rollback_postgres::{PgConfig, PgTools, PostgresSnapshot};
use rollback_testkit::temp_pm2::{free_port, TempPm2};
use rollback_testkit::temp_postgres::{server_bindir, TempPostgres};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The README's examples, compiled and run as doc tests (this crate depends on every adapter).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// Errors of the demo: a message saying what failed.
pub type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// The app's name in pm2.
pub const APP: &str = "web";
/// The app database's name.
pub const DB: &str = "app";

/// Runs a benchmark's body: exits 2 naming what to install when a real component is
/// missing, 1 with the error when the body fails. The benchmarks' `main`.
pub async fn run_benchmark<F: std::future::Future<Output = Result<(), DemoError>>>(body: impl FnOnce() -> F) {
    let missing = missing_requirements();
    if !missing.is_empty() {
        eprintln!(
            "The benchmark needs real PostgreSQL, git, node and pm2. Missing: {}",
            missing.join("; ")
        );
        std::process::exit(2);
    }
    if let Err(e) = body().await {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// What is missing to run the demo, with the command that installs it; empty when ready.
pub fn missing_requirements() -> Vec<String> {
    let mut missing = Vec::new();
    if server_bindir().is_none() {
        missing.push("PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql".to_string());
    }
    for (bin, how) in [
        ("node", "apt-get install nodejs npm"),
        ("npm", "apt-get install npm"),
        ("pm2", "npm install -g pm2@7.0.4"),
        ("git", "apt-get install git"),
    ] {
        if rollback_testkit::integration::find_on_path(bin).is_none() {
            missing.push(format!("{bin}: {how}"));
        }
    }
    missing
}

/// How big the world is.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Rows in `users` (notifications are three per user).
    pub users: u32,
    /// `pgbench -i -s N` tables to add (about 15 MB per unit of scale), if any.
    pub pgbench_scale: Option<u32>,
    /// How long the app's build step works (`npm run build`), in seconds.
    pub build_seconds: f64,
    /// Whether v2's health endpoint answers 500 (the quickstart) or 200 (the benchmark: a
    /// bug the health check does not see, so downtime is only the time nothing answers).
    pub v2_health_fails: bool,
    /// Run the app in pm2's cluster mode with this many instances (fork mode when absent).
    pub instances: Option<u32>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            users: 1000,
            pgbench_scale: None,
            build_seconds: 1.0,
            v2_health_fails: true,
            instances: None,
        }
    }
}

/// The running world. Dropping it stops and deletes everything.
pub struct DemoWorld {
    // Field order is drop order: pm2 first (the app), then the cluster, then the files.
    /// The pm2 daemon home (killed on drop).
    pub pm2: TempPm2,
    /// The PostgreSQL cluster (stopped on drop).
    pub pg: TempPostgres,
    /// The temp dir holding the repository, releases, env file, snapshots and state.
    pub dir: tempfile::TempDir,
    /// The app's HTTP port.
    pub port: u16,
    /// v1's commit hash.
    pub v1: String,
    /// v2's commit hash.
    pub v2: String,
    options: DemoOptions,
}

const SERVER_JS: &str = r#"const http = require('http');
const fs = require('fs');
const path = require('path');
const build = JSON.parse(fs.readFileSync(path.join(__dirname, 'build.json'), 'utf8'));
const env = {};
for (const line of fs.readFileSync(process.env.ENV_FILE, 'utf8').split('\n')) {
  const m = line.match(/^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/);
  if (m) env[m[1]] = m[2].replace(/^["']|["']$/g, '');
}
const broken = __BROKEN__;
const server = http.createServer((req, res) => {
  if (req.url === '/api/health') {
    const body = { version: build.version, channel: env.RELEASE_CHANNEL || null };
    if (broken) { body.error = 'schema mismatch: column users.email does not exist'; }
    res.writeHead(broken ? 500 : 200, { 'content-type': 'application/json', 'connection': 'close' });
    res.end(JSON.stringify(body));
  } else {
    res.writeHead(404); res.end();
  }
}).listen(Number(process.env.PORT), '127.0.0.1');
// Graceful shutdown, as pm2 asks of an app: on SIGINT (stop, reload) take no new
// connections and exit once the open ones are answered.
process.on('SIGINT', () => server.close(() => process.exit(0)));
"#;

/// The build: a CPU-bound stand-in for a bundler (hashes for BUILD_SECONDS), then copies the
/// server into `dist/` with a build stamp. Honest about what it is: real work, real time.
const BUILD_JS: &str = r#"const crypto = require('crypto');
const fs = require('fs');
const seconds = Number(process.env.DEMO_BUILD_SECONDS || '1');
const until = Date.now() + seconds * 1000;
let h = Buffer.alloc(1 << 16);
while (Date.now() < until) { h = crypto.createHash('sha256').update(h).digest(); h = Buffer.concat([h, Buffer.alloc((1 << 16) - 32)]); }
fs.mkdirSync('dist', { recursive: true });
fs.copyFileSync('src/server.js', 'dist/server.js');
fs.writeFileSync('dist/build.json', JSON.stringify({ version: require('./package.json').version }));
console.log('built ' + require('./package.json').version + ' in ' + seconds + 's');
"#;

const MIGRATION_V2: &str = "-- v2: rename users.email, write notifications for users that do not exist
ALTER TABLE users RENAME COLUMN email TO email_address;
ALTER TABLE notifications DROP CONSTRAINT notifications_user_id_fkey;
INSERT INTO notifications (user_id, body) SELECT 100000000 + g, 'written by v2' FROM generate_series(1, 50) g;
ALTER TABLE notifications ADD CONSTRAINT notifications_user_id_fkey
  FOREIGN KEY (user_id) REFERENCES users(id) NOT VALID;
";

/// How long one of the demo's own commands (git, npm, pgbench) may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `cmd` to completion (killed after 10 minutes); its trimmed stdout, or an error with
/// its stderr.
pub fn run(cmd: &mut Command) -> Result<String, DemoError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = rollback_testkit::integration::run_with_timeout(cmd, COMMAND_TIMEOUT)
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn git(repo: &Path, args: &[&str]) -> Result<String, DemoError> {
    run(Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=Demo", "-c", "user.email=demo@example.com"])
        .args(args))
}

impl DemoWorld {
    /// Builds the world with v1 live and healthy. Fails (cleaning up) with a message when a
    /// part cannot start; call [`missing_requirements`] first for a friendly stop.
    pub async fn start(options: DemoOptions) -> Result<Self, DemoError> {
        let bindir =
            server_bindir().ok_or("PostgreSQL server binaries not found: apt-get install postgresql")?;
        let pm2 = TempPm2::new("quickstart").ok_or("pm2 or node not found: npm install -g pm2@7.0.4")?;
        let pg = tokio::task::spawn_blocking(move || TempPostgres::start_in(bindir)).await??;
        let dir = tempfile::Builder::new().prefix("rollback-demo-").tempdir()?;
        let mut world = Self {
            pm2,
            pg,
            dir,
            port: free_port(),
            v1: String::new(),
            v2: String::new(),
            options,
        };
        world.seed_database()?;
        world.make_repository()?;
        world.write_env("v1", "stable")?;
        let code = world.code()?;
        let v1 = rollback_core::CodeVersion::resolve(&code, &world.v1).await?;
        let prepared = rollback_core::CodeVersion::prepare(&code, &v1.id).await?;
        rollback_core::CodeVersion::activate(&code, &prepared).await?;
        rollback_core::ProcessManager::start(&world.process()?, &APP.into()).await?;
        Ok(world)
    }

    /// A path in the world's temp dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The app's health URL.
    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/health", self.port)
    }

    /// The app database's URL (a secret: it holds the password).
    pub fn database_url(&self) -> Secret {
        self.pg.url(DB)
    }

    /// Runs SQL in the app database, returning psql's unaligned output.
    pub fn sql(&self, sql: &str) -> Result<String, DemoError> {
        Ok(self.pg.psql(DB, sql)?)
    }

    fn seed_database(&self) -> Result<(), DemoError> {
        self.pg.create_database(DB)?;
        let n = self.options.users;
        self.sql(&format!(
            "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
             CREATE TABLE notifications (id serial PRIMARY KEY,
                 user_id int NOT NULL REFERENCES users(id), body text NOT NULL);
             INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, {n}) g;
             INSERT INTO notifications (user_id, body)
                 SELECT 1 + (g % {n}), 'welcome #' || g FROM generate_series(1, {}) g;",
            n * 3
        ))?;
        if let Some(scale) = self.options.pgbench_scale {
            let pgbench = self.pg.bindir().join("pgbench");
            run(Command::new(pgbench)
                .args(["-i", "-q", "-s", &scale.to_string(), "-h"])
                .arg(self.pg.socket_dir())
                .args(["-p", &self.pg.port().to_string(), "-U", self.pg.superuser(), DB]))?;
        }
        Ok(())
    }

    fn make_repository(&mut self) -> Result<(), DemoError> {
        let repo = self.path("repo");
        std::fs::create_dir_all(repo.join("src"))?;
        std::fs::create_dir_all(repo.join("migrations"))?;
        git(&repo, &["init", "-q", "-b", "main"])?;
        let write_release = |version: &str, broken: bool| -> Result<(), DemoError> {
            std::fs::write(
                repo.join("package.json"),
                format!("{{\"name\":\"demo-app\",\"version\":\"{version}\",\"private\":true,\"scripts\":{{\"build\":\"node build.js\"}}}}\n"),
            )?;
            std::fs::write(repo.join("build.js"), BUILD_JS)?;
            std::fs::write(
                repo.join("src/server.js"),
                SERVER_JS.replace("__BROKEN__", &broken.to_string()),
            )?;
            std::fs::write(repo.join(".gitignore"), "dist/\nnode_modules/\n")?;
            Ok(())
        };
        write_release("1.0.0", false)?;
        git(&repo, &["add", "-A"])?;
        git(&repo, &["commit", "-q", "-m", "v1: notifications"])?;
        git(&repo, &["tag", "v1"])?;
        self.v1 = git(&repo, &["rev-parse", "HEAD"])?;
        write_release("2.0.0", self.options.v2_health_fails)?;
        std::fs::write(repo.join("migrations/002_v2.sql"), MIGRATION_V2)?;
        git(&repo, &["add", "-A"])?;
        git(
            &repo,
            &["commit", "-q", "-m", "v2: rename users.email (breaks the schema)"],
        )?;
        git(&repo, &["tag", "v2"])?;
        self.v2 = git(&repo, &["rev-parse", "HEAD"])?;
        Ok(())
    }

    /// Writes the live `.env.production` for `version`, mode 0600.
    pub fn write_env(&self, version: &str, channel: &str) -> Result<(), DemoError> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.env_path();
        std::fs::create_dir_all(path.parent().ok_or("env path has no parent")?)?;
        std::fs::write(
            &path,
            format!(
                "# {version}\nDATABASE_URL={}\nRELEASE_CHANNEL={channel}\nSESSION_SECRET=demo-session-secret-{version}\n",
                self.database_url().expose()
            ),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(())
    }

    /// The live env file.
    pub fn env_path(&self) -> PathBuf {
        self.path("shared/.env.production")
    }

    /// The database adapter.
    pub async fn database(&self) -> Result<PostgresSnapshot, DemoError> {
        let config = PgConfig::from_url(self.database_url().expose())?;
        let tools = PgTools::discover().await.or_else(|_| {
            let bin = self.pg.bindir();
            Ok::<_, DemoError>(PgTools::new(bin.join("pg_dump"), bin.join("pg_restore")))
        })?;
        Ok(PostgresSnapshot::new(config, self.path("snapshots"), tools))
    }

    /// The code adapter: releases layout, `npm run build` as the build.
    pub fn code(&self) -> Result<GitCode, DemoError> {
        Ok(GitCode::builder(self.path("repo"))
            .releases(self.path("releases"), self.path("current"))
            .build_command(["npm", "run", "build"])
            .env("DEMO_BUILD_SECONDS", self.options.build_seconds.to_string())
            .build_timeout(Duration::from_secs(600))
            .build()?)
    }

    /// The config adapter over `.env.production`, `DATABASE_URL` required.
    pub fn config(&self) -> EnvFileStore {
        EnvFileStore::new(self.env_path())
            .keep_last(20)
            .require_keys(["DATABASE_URL"])
    }

    /// The process manager: real pm2, the app run from `current/dist/server.js`.
    pub fn process(&self) -> Result<Pm2ProcessManager, DemoError> {
        let current = self.path("current");
        let spec = ScriptSpec::new(current.join("dist/server.js"))
            .cwd(&current)
            .env("PORT", self.port.to_string())
            .env("ENV_FILE", self.env_path().display().to_string());
        let spec = match self.options.instances {
            Some(n) => spec.instances(n),
            None => spec,
        };
        Ok(Pm2ProcessManager::builder()
            .binary(self.pm2.pm2())
            .home(self.pm2.home())
            .stability_window(Duration::from_millis(500))
            .app(APP, AppSpec::Script(spec))
            .build()?)
    }

    /// An orchestrator over every real adapter, with the runbook's integrity checks.
    pub async fn orchestrator(&self) -> Result<OrchestratorBuilder, DemoError> {
        let state = DirStateStore::open(self.path("state")).await?;
        let settings = Settings::new()
            .health_timeout(Duration::from_secs(30))
            .health_interval(Duration::from_millis(50))
            .integrity(
                IntegrityChecks::new()
                    .assertion("users exist (SELECT COUNT(*) FROM users)", "SELECT COUNT(*) FROM users")
                    .assertion(
                        "users.email exists",
                        "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email'",
                    ),
            );
        let process = self.process()?;
        Ok(Orchestrator::builder(APP)
            .database(self.database().await?)
            .code(self.code()?)
            .config(self.config())
            .metrics(process.metrics())
            .process(process)
            .health_probe(HttpProbe::new(&self.health_url(), Duration::from_secs(2))?)
            .state(state)
            .settings(settings))
    }

    /// Deploys v2 as a deploy tool would: run its migration, write its env file, build it,
    /// switch, restart.
    pub async fn deploy_v2(&self) -> Result<(), DemoError> {
        self.sql(&std::fs::read_to_string(self.path("repo/migrations/002_v2.sql"))?)?;
        self.write_env("v2", "beta")?;
        let code = self.code()?;
        let v2 = rollback_core::CodeVersion::resolve(&code, &self.v2).await?;
        let prepared = rollback_core::CodeVersion::prepare(&code, &v2.id).await?;
        rollback_core::CodeVersion::activate(&code, &prepared).await?;
        rollback_core::ProcessManager::restart(&self.process()?, &APP.into()).await?;
        // The app writes on: rows that exist only after the deploy (kept in the pre-rollback database).
        self.sql("INSERT INTO users (email_address) SELECT 'v2-signup' || g || '@example.com' FROM generate_series(1, 25) g")?;
        Ok(())
    }

    /// Deploys v2's code and config only (no migration): its env file, its build, the
    /// switch, then a graceful reload when the app runs in cluster mode, else a restart.
    pub async fn deploy_v2_code_and_config(&self) -> Result<(), DemoError> {
        self.write_env("v2", "beta")?;
        let code = self.code()?;
        let v2 = rollback_core::CodeVersion::resolve(&code, &self.v2).await?;
        let prepared = rollback_core::CodeVersion::prepare(&code, &v2.id).await?;
        rollback_core::CodeVersion::activate(&code, &prepared).await?;
        let pm = self.process()?;
        if rollback_core::ProcessManager::can_reload(&pm, &APP.into()).await? {
            rollback_core::ProcessManager::reload(&pm, &APP.into()).await?;
        } else {
            rollback_core::ProcessManager::restart(&pm, &APP.into()).await?;
        }
        Ok(())
    }

    /// The health endpoint's body now (`None` when nothing answers 200): the version and
    /// release channel the answering process runs.
    pub fn health_body(&self) -> Option<String> {
        use std::io::{Read, Write};
        let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, self.port));
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(stream, "GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    }

    /// The HTTP status of the health endpoint now (`None` when nothing answers).
    pub fn health_status(&self) -> Option<u16> {
        rollback_testkit::temp_pm2::http_status(self.port, "/api/health", Duration::from_secs(2))
    }
}
