//! Running install/build steps: argument vectors (never a shell), a working directory, extra
//! environment, a timeout per step, and the last lines of output kept for errors and reports.
//!
//! Not `rollback_core::sys::output_within`: a step runs in its own process group so that a
//! timeout also kills what it started (npm runs node), its output is streamed line by line
//! (to the log, with build secrets redacted, and into the tail a timeout error still shows),
//! and the wait stops reading pipes a lingering grandchild keeps open. `output_within`
//! kills only the direct child and returns no output on a timeout.

use crate::config::{BuildCommand, BuildEnv};
use crate::error::GitError;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// How long to keep reading a step's output after it exited.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How to run the build steps.
#[derive(Clone, Debug)]
pub(crate) struct Runner {
    pub commands: Vec<BuildCommand>,
    pub env: BuildEnv,
    pub timeout: Duration,
    pub tail_lines: usize,
}

/// True when `path` is an executable file.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where `program` would be run from: a path (absolute, or relative to `dir`) when it holds
/// a `/`, else the first executable of that name on `PATH`. `None` when it cannot be found.
/// A relative path cannot be checked without `dir` and counts as found.
pub(crate) fn locate(program: &str, dir: Option<&Path>) -> Option<Option<PathBuf>> {
    if program.contains('/') {
        let p = Path::new(program);
        if p.is_absolute() {
            return is_executable(p).then(|| Some(p.to_path_buf()));
        }
        return match dir {
            Some(d) => is_executable(&d.join(p)).then(|| Some(d.join(p))),
            None => Some(None),
        };
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
        .map(Some)
}

impl Runner {
    /// Checks every command has a program that exists; `dir` is the checkout (for programs
    /// given relative to it), `None` before there is one.
    pub(crate) fn check_tools(&self, dir: Option<&Path>) -> Result<(), GitError> {
        for c in &self.commands {
            let Some(tool) = c.argv.first() else {
                return Err(GitError::Invalid(
                    "a build command is empty: give at least the program, e.g. [\"npm\", \"ci\"]".into(),
                ));
            };
            if locate(tool, dir).is_none() {
                return Err(GitError::MissingTool {
                    tool: tool.clone(),
                    command: c.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Runs every step in `dir`, in order, stopping at the first failure. Returns the tail of
    /// the combined output. `kept` says where the checkout goes if a step fails.
    pub(crate) async fn run(&self, dir: &Path, revision: &str, kept: &str) -> Result<Vec<String>, GitError> {
        // Where each program is, looked up off the async runtime (stat calls).
        let programs = {
            let (runner, dir) = (self.clone(), dir.to_path_buf());
            crate::blocking(move || {
                runner.check_tools(Some(&dir))?;
                Ok(runner
                    .commands
                    .iter()
                    .map(|c| match locate(&c.argv[0], Some(&dir)) {
                        Some(Some(p)) => p,
                        _ => PathBuf::from(&c.argv[0]),
                    })
                    .collect::<Vec<_>>())
            })
            .await?
        };
        let tail = Mutex::new(VecDeque::with_capacity(self.tail_lines + 1));
        // Build env values may be secrets (a registry token): a build that echoes one must
        // not carry it into logs, errors or the report. Very short values are left alone
        // (redacting every "1" would make the log unreadable and protects nothing).
        let secrets: Vec<&str> = self
            .env
            .pairs()
            .iter()
            .map(|(_, v)| v.as_str())
            .filter(|v| v.len() >= 4)
            .collect();
        for (c, program) in self.commands.iter().zip(&programs) {
            push(&tail, format!("$ {c}"), self.tail_lines);
            let mut cmd = Command::new(program);
            cmd.args(&c.argv[1..])
                .current_dir(dir)
                .envs(self.env.pairs().iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                // Its own process group, so that a timeout also ends what it started
                // (npm runs node, make runs cc).
                .process_group(0)
                .kill_on_drop(true);
            tracing::info!(command = %c, dir = %dir.display(), "running build step");
            let mut child = cmd.spawn().map_err(|source| GitError::BuildSpawn {
                command: c.to_string(),
                dir: dir.to_path_buf(),
                source,
            })?;
            let (out, err) = (child.stdout.take(), child.stderr.take());
            let status = {
                let work = async {
                    let mut pumps = std::pin::pin!(async {
                        tokio::join!(
                            pump(out, &tail, self.tail_lines, &secrets),
                            pump(err, &tail, self.tail_lines, &secrets)
                        )
                    });
                    let mut drained = false;
                    let status = tokio::select! {
                        s = child.wait() => s,
                        _ = &mut pumps => {
                            drained = true;
                            child.wait().await
                        }
                    };
                    if !drained {
                        // A grandchild may keep the pipes open after the step exits: read
                        // what is buffered, but do not wait for it.
                        let _ = tokio::time::timeout(DRAIN_GRACE, &mut pumps).await;
                    }
                    status
                };
                tokio::time::timeout(self.timeout, work).await
            };
            let snapshot = || joined(&tail);
            match status {
                Ok(Ok(s)) if s.success() => {}
                Ok(Ok(s)) => {
                    return Err(GitError::BuildFailed {
                        command: c.to_string(),
                        revision: revision.to_owned(),
                        status: s.to_string(),
                        kept: kept.to_owned(),
                        tail: snapshot(),
                    })
                }
                Ok(Err(e)) => {
                    return Err(GitError::io(format!("waiting for build command `{c}` in"), dir)(
                        e,
                    ));
                }
                Err(_) => {
                    if let Some(pid) = child.id() {
                        kill_group(pid).await;
                    }
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    return Err(GitError::BuildTimeout {
                        command: c.to_string(),
                        timeout: self.timeout,
                        tail: snapshot(),
                    });
                }
            }
        }
        let lines = tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        Ok(lines)
    }
}

/// Sends SIGKILL to the process group `pgid` (the build step and everything it started),
/// through `kill(1)` as an argument vector, within a few seconds.
async fn kill_group(pgid: u32) {
    let mut kill = Command::new("kill");
    kill.args(["-KILL", "--", &format!("-{pgid}")]);
    let problem = match rollback_core::sys::output_within(&mut kill, Duration::from_secs(5)).await {
        Ok(Some(out)) if out.status.success() => return,
        Ok(Some(out)) => format!(
            "kill exited with {}: {}",
            out.status,
            rollback_core::sys::stderr_tail(&out.stderr, 200)
        ),
        Ok(None) => "kill did not finish within 5 s".to_owned(),
        Err(e) => format!("kill could not run: {e}"),
    };
    tracing::warn!(pgid, %problem, "could not kill the build step's process group");
}

fn push(tail: &Mutex<VecDeque<String>>, line: String, max: usize) {
    if let Ok(mut t) = tail.lock() {
        t.push_back(line);
        while t.len() > max.max(1) {
            t.pop_front();
        }
    }
}

fn joined(tail: &Mutex<VecDeque<String>>) -> String {
    tail.lock()
        .map(|t| t.iter().map(String::as_str).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// Reads a child's stream line by line into the shared tail.
async fn pump<R: AsyncRead + Unpin>(
    stream: Option<R>,
    tail: &Mutex<VecDeque<String>>,
    max: usize,
    secrets: &[&str],
) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let mut line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                for secret in secrets {
                    if line.contains(secret) {
                        line = line.replace(secret, "[redacted]");
                    }
                }
                tracing::debug!(target: "rollback_git::build", "{line}");
                push(tail, line, max);
            }
        }
    }
}
