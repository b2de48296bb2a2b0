//! A warm pm2 client: one `node` process that has loaded pm2's programmatic API and
//! connected to the daemon, then takes `stop <id>` and `restart <id>` on stdin.
//!
//! Each pm2 CLI call starts Node and loads pm2 (about 250 ms) before the daemon acts. In a
//! rollback the app is down between `stop` and `start`, so that start-up is spent while
//! nothing answers. The manager starts this client at the beginning of `stop` (the app still
//! serves), uses it for the stop and the following start, and closes it after. Any trouble
//! with it (no node, pm2 not installed as a Node package, a protocol error) falls back to
//! the CLI: it is an optimisation, never a requirement.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const CLIENT_JS: &str = r#"
const pm2 = require(process.env.ROLLBACK_PM2_MODULE);
const say = (o) => process.stdout.write('@@rollback ' + JSON.stringify(o) + '\n');
pm2.connect((err) => {
  if (err) { say({ ok: false, error: String(err.message || err) }); process.exit(1); }
  say({ ok: true });
  const rl = require('readline').createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [verb, id] = line.trim().split(' ');
    const done = (e) => say({ ok: !e, error: e ? String(e.message || e) : null });
    if (verb === 'stop') pm2.stop(Number(id), done);
    else if (verb === 'restart') pm2.restart(Number(id), done);
    else if (verb === 'status') pm2.describe(Number(id), (e, list) => {
      const env = !e && list && list[0] && list[0].pm2_env;
      say({ ok: !e, error: e ? String(e.message || e) : null, status: env ? env.status : null });
    });
    else done(new Error('unknown verb ' + verb));
  });
  rl.on('close', () => { pm2.disconnect(); process.exit(0); });
});
"#;

/// A connected client; dropping it kills the node process.
pub(crate) struct WarmClient {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

/// The pm2 package directory behind a pm2 binary (`…/node_modules/pm2/bin/pm2`). Blocking.
pub(crate) fn pm2_module(binary: &Path) -> Option<PathBuf> {
    let resolved = if binary.components().count() > 1 {
        std::fs::canonicalize(binary).ok()?
    } else {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find_map(|d| std::fs::canonicalize(d.join(binary)).ok())?
    };
    let package = resolved.parent()?.parent()?;
    package.join("index.js").is_file().then(|| package.to_path_buf())
}

impl WarmClient {
    /// Starts node with pm2's API and waits until it is connected to the daemon.
    pub(crate) async fn start(binary: &Path, home: Option<&Path>, timeout: Duration) -> Result<Self, String> {
        // A PATH search and symlinks resolved: on a blocking thread.
        let bin = binary.to_path_buf();
        let module = tokio::task::spawn_blocking(move || pm2_module(&bin))
            .await
            .map_err(|e| format!("cannot look for pm2's package: {e}"))?
            .ok_or("pm2 is not installed as a Node package next to its binary")?;
        let mut cmd = Command::new("node");
        cmd.arg("-e")
            .arg(CLIENT_JS)
            .env("ROLLBACK_PM2_MODULE", &module)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(home) = home {
            cmd.env("PM2_HOME", home);
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start node: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut client = Self {
            _child: child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        client.answer(timeout).await?;
        Ok(client)
    }

    /// Reads the next answer line, skipping anything pm2 itself prints.
    async fn answer(&mut self, timeout: Duration) -> Result<serde_json::Value, String> {
        let read = async {
            while let Some(line) = self.lines.next_line().await.map_err(|e| e.to_string())? {
                if let Some(json) = line.strip_prefix("@@rollback ") {
                    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
                    return match v["ok"].as_bool() {
                        Some(true) => Ok(v),
                        _ => Err(v["error"].as_str().unwrap_or("pm2 API error").to_string()),
                    };
                }
            }
            Err("the warm pm2 client exited".to_string())
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| format!("no answer from the warm pm2 client within {timeout:?}"))?
    }

    /// Runs `verb` (`stop` or `restart`) on pm2 process `id` and waits for pm2's answer.
    pub(crate) async fn call(&mut self, verb: &str, id: u32, timeout: Duration) -> Result<(), String> {
        self.request(verb, id, timeout).await.map(drop)
    }

    /// pm2's status word for process `id` (`online`, `stopped`, ...), `None` if unknown.
    pub(crate) async fn status(&mut self, id: u32, timeout: Duration) -> Result<Option<String>, String> {
        let v = self.request("status", id, timeout).await?;
        Ok(v["status"].as_str().map(str::to_owned))
    }

    async fn request(&mut self, verb: &str, id: u32, timeout: Duration) -> Result<serde_json::Value, String> {
        self.stdin
            .write_all(format!("{verb} {id}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        self.stdin.flush().await.map_err(|e| e.to_string())?;
        self.answer(timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pm2_package_behind_its_binary_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("lib/node_modules/pm2");
        std::fs::create_dir_all(package.join("bin")).unwrap();
        std::fs::write(package.join("bin/pm2"), "#!/usr/bin/env node\n").unwrap();
        let link = dir.path().join("pm2");
        std::os::unix::fs::symlink(package.join("bin/pm2"), &link).unwrap();
        assert_eq!(pm2_module(&link), None, "no index.js: not the pm2 package");
        std::fs::write(package.join("index.js"), "").unwrap();
        assert_eq!(pm2_module(&link), Some(std::fs::canonicalize(&package).unwrap()));
        assert_eq!(pm2_module(&dir.path().join("missing")), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_a_real_pm2_daemon() {
        use rollback_testkit::temp_pm2::{free_port, http_status, port_open, NodeApp, TempPm2};
        let Some(pm2) = TempPm2::new("warm pm2 client") else {
            return;
        };
        let script = pm2.write_app("web", NodeApp::HealthServer);
        let port = free_port();
        let manager = crate::Pm2ProcessManager::builder()
            .binary(pm2.pm2())
            .home(pm2.home())
            .app(
                "web",
                crate::AppSpec::Script(crate::ScriptSpec::new(&script).env("PORT", port.to_string())),
            )
            .build()
            .unwrap();
        rollback_core::ProcessManager::start(&manager, &"web".into())
            .await
            .unwrap();
        let timeout = Duration::from_secs(20);
        let mut client = WarmClient::start(pm2.pm2(), Some(pm2.home()), timeout)
            .await
            .expect("the warm client connects to the daemon");
        assert_eq!(
            client.status(0, timeout).await.unwrap().as_deref(),
            Some("online")
        );
        client.call("stop", 0, timeout).await.unwrap();
        assert_eq!(
            client.status(0, timeout).await.unwrap().as_deref(),
            Some("stopped")
        );
        assert!(
            !port_open(port),
            "stopped through the warm client: the port refuses"
        );
        client.call("restart", 0, timeout).await.unwrap();
        assert_eq!(
            client.status(0, timeout).await.unwrap().as_deref(),
            Some("online")
        );
        let mut answered = None;
        for _ in 0..100 {
            answered = http_status(port, "/api/health", Duration::from_millis(500));
            if answered == Some(200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            answered,
            Some(200),
            "restarted through the warm client: it answers"
        );
        assert!(
            client.call("explode", 0, timeout).await.is_err(),
            "an unknown verb is an error"
        );
    }
}
