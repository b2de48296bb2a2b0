//! Runs the pm2 CLI: argument vectors, a timeout, stderr captured into errors.

use crate::error::Pm2Error;
use crate::jlist::{self, Instance};
use rollback_core::sys::{output_within, stderr_tail};
use rollback_core::Secret;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

/// How much of a command's stderr goes into an error (characters).
const STDERR_TAIL: usize = 2000;

/// A way to run pm2: binary, `PM2_HOME`, timeout.
#[derive(Clone, Debug)]
pub(crate) struct Pm2Cli {
    pub(crate) binary: PathBuf,
    pub(crate) home: Option<PathBuf>,
    pub(crate) timeout: Duration,
}

impl Pm2Cli {
    fn home_label(&self) -> String {
        self.home
            .as_ref()
            .map_or_else(|| "pm2's default ~/.pm2".to_owned(), |h| h.display().to_string())
    }

    /// Runs `pm2 <args>` with `env` added to its environment; returns stdout. `label` names
    /// the command in errors and logs (never the args themselves: they may hold app args).
    /// Not finishing within the timeout is [`Pm2Error::DaemonUnreachable`] (pm2 hangs when
    /// its daemon cannot start); stderr goes into errors with `env`'s values redacted.
    pub(crate) async fn run(
        &self,
        label: &str,
        args: &[OsString],
        env: &[(String, Secret)],
    ) -> Result<String, Pm2Error> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args);
        if let Some(home) = &self.home {
            cmd.env("PM2_HOME", home);
        }
        for (k, v) in env {
            cmd.env(k, v.expose());
        }
        tracing::debug!(command = label, pm2_home = %self.home_label(), "running pm2");
        let out = output_within(&mut cmd, self.timeout)
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => Pm2Error::NotInstalled {
                    binary: self.binary.clone(),
                },
                _ => Pm2Error::Spawn {
                    binary: self.binary.clone(),
                    source,
                },
            })?;
        let Some(out) = out else {
            return Err(Pm2Error::DaemonUnreachable {
                home: self.home_label(),
                command: label.to_owned(),
                why: format!(
                    "did not finish within {:?} (pm2 hangs when its daemon cannot start)",
                    self.timeout
                ),
            });
        };
        if !out.status.success() {
            // Redacted whole, then cut: a secret is never cut in half and left showing.
            let stderr = redact(&strip_ansi(&String::from_utf8_lossy(&out.stderr)), env);
            let tail = stderr_tail(stderr.as_bytes(), STDERR_TAIL);
            if looks_like_daemon_trouble(&tail) {
                return Err(Pm2Error::DaemonUnreachable {
                    home: self.home_label(),
                    command: label.to_owned(),
                    why: format!("failed: {tail}"),
                });
            }
            return Err(Pm2Error::CommandFailed {
                command: label.to_owned(),
                status: out.status.to_string(),
                stderr: tail,
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `pm2 jlist`, parsed, with pm2's crash-loop bookkeeping. Its raw output is never
    /// logged or put in an error. Starts pm2's daemon when it is not running (as every pm2
    /// command does).
    pub(crate) async fn jlist_instances(&self) -> Result<Vec<Instance>, Pm2Error> {
        // The raw output holds every app's environment: parsed here and dropped.
        let out = self.run("pm2 jlist", &["jlist".into()], &[]).await?;
        let instances = jlist::parse_instances(&out)?;
        drop(out);
        crate::log_sizes::note_sizes(&instances, self.effective_home().as_deref()).await;
        Ok(instances)
    }

    /// [`jlist_instances`](Self::jlist_instances), but never in place of a daemon that is
    /// not running: pm2 would start a fresh one, which knows no apps, and every app would
    /// look unknown. A daemon that is not running is [`Pm2Error::DaemonNotRunning`] (after
    /// [`Pm2Error::NotInstalled`] when the binary is missing too).
    pub(crate) async fn jlist_running(&self) -> Result<Vec<Instance>, Pm2Error> {
        // A file read, /proc and a PATH search: on a blocking thread. Should that thread
        // fail, it cannot be told, and pm2 is asked.
        let probe = self.clone();
        let down = tokio::task::spawn_blocking(move || match probe.daemon_running() {
            Some((false, home)) => Some(probe.check_binary().map(|()| home)),
            _ => None,
        })
        .await
        .ok()
        .flatten();
        if let Some(down) = down {
            return Err(Pm2Error::DaemonNotRunning {
                home: down?.display().to_string(),
            });
        }
        self.jlist_instances().await
    }

    /// The `PM2_HOME` pm2 will use: the configured one, else pm2's own choice (`$PM2_HOME`,
    /// else `$HOME/.pm2`).
    pub(crate) fn effective_home(&self) -> Option<PathBuf> {
        self.home
            .clone()
            .or_else(|| std::env::var_os("PM2_HOME").map(PathBuf::from))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pm2")))
    }

    /// Whether pm2's daemon runs (its `pm2.pid` names a live process), with the home looked
    /// at; `None` when that cannot be told here (no `/proc`, no home). Blocking.
    pub(crate) fn daemon_running(&self) -> Option<(bool, PathBuf)> {
        if !Path::new("/proc/self").exists() {
            return None;
        }
        let home = self.effective_home()?;
        let pid = std::fs::read_to_string(home.join("pm2.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        Some((pid.is_some_and(rollback_core::sys::pid_alive), home))
    }

    /// [`daemon_running`](Self::daemon_running) off the runtime's threads: `Some(false)`
    /// only when the daemon provably is not running.
    pub(crate) async fn daemon_up(&self) -> Option<bool> {
        let probe = self.clone();
        tokio::task::spawn_blocking(move || probe.daemon_running().map(|(up, _)| up))
            .await
            .ok()
            .flatten()
    }

    /// [`Pm2Error::NotInstalled`] when the binary is not there (a path that does not exist,
    /// a name not on `PATH`). Blocking.
    fn check_binary(&self) -> Result<(), Pm2Error> {
        let found = if self.binary.components().count() > 1 {
            self.binary.is_file()
        } else {
            std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(&self.binary).is_file()))
        };
        if found {
            Ok(())
        } else {
            Err(Pm2Error::NotInstalled {
                binary: self.binary.clone(),
            })
        }
    }
}

fn looks_like_daemon_trouble(stderr: &str) -> bool {
    ["ECONNREFUSED", "rpc.sock", "pub.sock"]
        .iter()
        .any(|p| stderr.contains(p))
}

/// Replaces the app's environment values (secrets) in `text`, should pm2 ever echo one.
/// Values shorter than 4 characters are left: they would mangle the message, not hide much.
pub(crate) fn redact(text: &str, env: &[(String, Secret)]) -> String {
    env.iter()
        .map(|(_, v)| v.expose())
        .filter(|v| v.len() >= 4)
        .fold(text.to_owned(), |t, v| t.replace(v, "[redacted]"))
}

/// Removes ANSI colour sequences (pm2 colours its messages).
pub(crate) fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours() {
        assert_eq!(
            strip_ansi("\u{1b}[31m[PM2][ERROR] \u{1b}[39mProcess x not found"),
            "[PM2][ERROR] Process x not found"
        );
    }

    #[tokio::test]
    async fn a_missing_binary_names_it_and_the_install_command() {
        let cli = Pm2Cli {
            binary: PathBuf::from("/nonexistent/pm2"),
            home: None,
            timeout: Duration::from_secs(5),
        };
        let e = cli.jlist_instances().await.unwrap_err();
        assert!(matches!(e, Pm2Error::NotInstalled { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("/nonexistent/pm2") && msg.contains("npm install -g pm2@7.0.4"),
            "{msg}"
        );
        assert_eq!(
            rollback_core::AdapterError::from(e).kind(),
            rollback_core::ErrorKind::Unavailable
        );
    }

    #[tokio::test]
    async fn a_hanging_command_is_reported_as_an_unreachable_daemon() {
        let cli = Pm2Cli {
            binary: PathBuf::from("sleep"),
            home: Some(PathBuf::from("/tmp/some-home")),
            timeout: Duration::from_millis(200),
        };
        let e = cli.run("pm2 jlist", &["5".into()], &[]).await.unwrap_err();
        assert!(matches!(e, Pm2Error::DaemonUnreachable { .. }), "{e}");
        assert!(e.to_string().contains("/tmp/some-home"), "{e}");
    }

    #[tokio::test]
    async fn stderr_in_errors_never_shows_the_apps_env_values() {
        let cli = Pm2Cli {
            binary: PathBuf::from("sh"),
            home: None,
            timeout: Duration::from_secs(5),
        };
        let args = ["-c".into(), "echo \"bad env: $DB_PASSWORD\" >&2; exit 1".into()];
        let env = [("DB_PASSWORD".to_owned(), Secret::new("hunter2-canary"))];
        let e = cli.run("pm2 start web", &args, &env).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("bad env: [redacted]") && !msg.contains("hunter2"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_daemon_that_is_not_running_is_unavailable_and_never_started_in_its_place() {
        let home = tempfile::tempdir().unwrap();
        // Were it run, `sh jlist` would fail as a command: the error says it was not.
        let cli = Pm2Cli {
            binary: PathBuf::from("sh"),
            home: Some(home.path().to_path_buf()),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(cli.daemon_running(), Some((false, home.path().to_path_buf())));
        let e = cli.jlist_running().await.unwrap_err();
        assert!(matches!(e, Pm2Error::DaemonNotRunning { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("daemon not reachable") && msg.contains(&home.path().display().to_string()),
            "{msg}"
        );
        assert_eq!(
            rollback_core::AdapterError::from(e).kind(),
            rollback_core::ErrorKind::Unavailable
        );

        // A live daemon: the pid file names a live process (this test's own).
        std::fs::write(home.path().join("pm2.pid"), std::process::id().to_string()).unwrap();
        assert_eq!(cli.daemon_running(), Some((true, home.path().to_path_buf())));
        // A stale pid file: the process is gone.
        std::fs::write(home.path().join("pm2.pid"), (u32::MAX - 1).to_string()).unwrap();
        assert_eq!(cli.daemon_running().map(|(up, _)| up), Some(false));

        // No binary either: that is said first.
        let missing = Pm2Cli {
            binary: PathBuf::from("/nonexistent/pm2"),
            ..cli
        };
        let e = missing.jlist_running().await.unwrap_err();
        assert!(matches!(e, Pm2Error::NotInstalled { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_failing_command_carries_its_stderr() {
        let cli = Pm2Cli {
            binary: PathBuf::from("sh"),
            home: None,
            timeout: Duration::from_secs(5),
        };
        let args = [
            "-c".into(),
            "echo '[PM2][ERROR] Process web not found' >&2; exit 1".into(),
        ];
        let e = cli.run("pm2 stop web", &args, &[]).await.unwrap_err();
        assert!(matches!(e, Pm2Error::CommandFailed { .. }), "{e}");
        assert!(e.to_string().contains("Process web not found"), "{e}");

        // A long stderr: its end, cut after the secrets are redacted.
        let args = [
            "-c".into(),
            "i=0; while [ $i -lt 400 ]; do printf 'noise hunter2-canary '; i=$((i+1)); done >&2; echo ' the end' >&2; exit 1".into(),
        ];
        let env = [("K".to_owned(), Secret::new("hunter2-canary"))];
        let e = cli.run("pm2 stop web", &args, &env).await.unwrap_err();
        let Pm2Error::CommandFailed { stderr, .. } = &e else {
            panic!("{e}")
        };
        assert!(
            stderr.ends_with("the end") && stderr.chars().count() <= STDERR_TAIL,
            "{stderr}"
        );
        assert!(
            !stderr.contains("hunter2") && !stderr.contains("canary"),
            "{stderr}"
        );
    }
}
