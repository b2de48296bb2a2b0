//! Runs supervisorctl: `supervisorctl -c <config> <action> <name>` as an argument vector,
//! within a timeout, its output read for "supervisord cannot be reached" before anything else.

use crate::error::SupervisordError;
use crate::status::{parse_status, ProgramStatus};
use rollback_core::secret::redact_url;
use rollback_core::sys::{output_within, stderr_tail};
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::Command;

/// How much of supervisorctl's output goes into an error (characters).
const DETAIL_MAX: usize = 1000;

/// A way to run supervisorctl: binary, configuration, timeout for queries.
#[derive(Clone, Debug)]
pub(crate) struct Ctl {
    pub(crate) binary: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) command_timeout: Duration,
}

impl Ctl {
    /// Runs `supervisorctl -c <config> <args>` within `timeout`. `Ok(None)` when it did not
    /// finish in time (it is killed); `Ok(Some(stdout))` when it ran and reached supervisord,
    /// whatever its exit code (supervisorctl's codes mean "not running" for `status`); an
    /// error when it could not run or could not reach supervisord. `label` names the
    /// command in errors and logs.
    pub(crate) async fn run_within(
        &self,
        label: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Option<String>, SupervisordError> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c").arg(&self.config).args(args);
        tracing::debug!(command = label, config = %self.config.display(), "running supervisorctl");
        let out = output_within(&mut cmd, timeout).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                SupervisordError::NotInstalled {
                    binary: self.binary.clone(),
                }
            } else {
                SupervisordError::Spawn {
                    binary: self.binary.clone(),
                    source,
                }
            }
        })?;
        let Some(out) = out else {
            tracing::debug!(command = label, ?timeout, "supervisorctl did not finish in time");
            return Ok(None);
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        self.check_reached(label, &stdout, &stderr, out.status.code())?;
        Ok(Some(stdout))
    }

    /// [`run_within`](Self::run_within) with the command timeout; not finishing in time
    /// means supervisord does not answer.
    pub(crate) async fn run(&self, label: &str, args: &[&str]) -> Result<String, SupervisordError> {
        match self.run_within(label, args, self.command_timeout).await? {
            Some(out) => Ok(out),
            None => Err(self.unreachable(label, format!("did not finish within {:?}", self.command_timeout))),
        }
    }

    /// `supervisorctl status`, every program, parsed.
    pub(crate) async fn status_all(&self) -> Result<Vec<ProgramStatus>, SupervisordError> {
        Ok(parse_status(
            &self.run("supervisorctl status", &["status"]).await?,
        ))
    }

    fn unreachable(&self, command: &str, why: String) -> SupervisordError {
        SupervisordError::Unreachable {
            config: self.config.clone(),
            command: command.to_owned(),
            why,
        }
    }

    /// The errors that say supervisorctl did not get to ask supervisord.
    fn check_reached(
        &self,
        label: &str,
        stdout: &str,
        stderr: &str,
        code: Option<i32>,
    ) -> Result<(), SupervisordError> {
        if stderr.contains("could not find config file") || stderr.contains("could not read config file") {
            return Err(SupervisordError::ConfigUnreadable {
                config: self.config.clone(),
                detail: detail(stderr),
            });
        }
        for line in stdout.lines().map(str::trim) {
            let url_first = line.split_whitespace().next().is_some_and(|t| t.contains("://"));
            if url_first && line.ends_with(" no such file") {
                return Err(self.unreachable(
                    label,
                    format!("failed: {} (its socket does not exist)", redact(line)),
                ));
            }
            if url_first && line.ends_with(" refused connection") {
                return Err(self.unreachable(label, format!("failed: {}", redact(line))));
            }
            if line == "Server requires authentication" || is_exception(line, PERMISSION_EXCEPTIONS) {
                return Err(SupervisordError::PermissionDenied {
                    config: self.config.clone(),
                    command: label.to_owned(),
                    detail: detail(line),
                });
            }
            if is_exception(line, CONNECTION_EXCEPTIONS)
                || line.starts_with("Sorry, this version of supervisorctl")
                || line.starts_with("Sorry, supervisord responded")
            {
                return Err(self.unreachable(label, format!("failed: {}", detail(line))));
            }
        }
        // Usage errors (exit 2) and the like print to stderr and nothing to stdout.
        if stdout.trim().is_empty() && code.is_some_and(|c| c != 0) && !stderr.trim().is_empty() {
            return Err(SupervisordError::CommandFailed {
                command: label.to_owned(),
                detail: detail(stderr),
            });
        }
        Ok(())
    }
}

/// Exceptions supervisorctl prints as `error: <class '…'>, …` that mean it could not talk
/// to supervisord.
const CONNECTION_EXCEPTIONS: &[&str] = &[
    "ConnectionError",
    "ConnectionResetError",
    "ConnectionAbortedError",
    "ConnectionRefusedError",
    "BrokenPipeError",
    "TimeoutError",
    "socket.timeout",
    "socket.gaierror",
    "ProtocolError",
    "RemoteDisconnected",
    "http.client",
    "FileNotFoundError",
];

/// The same for refused permissions.
const PERMISSION_EXCEPTIONS: &[&str] = &["PermissionError"];

fn is_exception(line: &str, names: &[&str]) -> bool {
    line.strip_prefix("error: <class '")
        .and_then(|rest| rest.split_once('\''))
        .is_some_and(|(class, _)| names.iter().any(|n| class.contains(n)))
}

/// Redacts the password of any URL in `text` (`http://user:pw@host` in a serverurl).
pub(crate) fn redact(text: &str) -> String {
    text.split(' ')
        .map(|t| {
            if t.contains("://") {
                redact_url(t)
            } else {
                t.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text`, redacted whole (a password is never cut in half and left showing), then trimmed
/// and cut to its last [`DETAIL_MAX`] characters.
pub(crate) fn detail(text: &str) -> String {
    stderr_tail(redact(text).as_bytes(), DETAIL_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollback_core::ErrorKind;

    /// `sh -c <script>` standing in for supervisorctl: the "config path" is the script.
    fn sh(script: &str, timeout: Duration) -> Ctl {
        Ctl {
            binary: PathBuf::from("sh"),
            config: PathBuf::from(script),
            command_timeout: timeout,
        }
    }

    async fn fake(script: &str) -> Result<Option<String>, SupervisordError> {
        sh(script, Duration::from_secs(5))
            .run_within("supervisorctl status", &[], Duration::from_secs(5))
            .await
    }

    #[tokio::test]
    async fn a_missing_binary_is_unavailable_and_names_the_package() {
        let c = Ctl {
            binary: PathBuf::from("/nonexistent/supervisorctl"),
            config: PathBuf::from("/etc/sv-test.conf"),
            command_timeout: Duration::from_secs(5),
        };
        let e = c.run("supervisorctl status", &["status"]).await.unwrap_err();
        assert!(matches!(e, SupervisordError::NotInstalled { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("apt-get install supervisor"), "{e}");
    }

    #[tokio::test]
    async fn a_hanging_supervisorctl_is_an_unreachable_supervisord() {
        let t = std::time::Instant::now();
        let c = sh("sleep 5", Duration::from_millis(200));
        let e = c.run("supervisorctl status", &[]).await.unwrap_err();
        assert!(matches!(e, SupervisordError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("did not finish within"), "{e}");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let r = c
            .run_within("supervisorctl stop web", &[], Duration::from_millis(100))
            .await;
        assert!(
            matches!(r, Ok(None)),
            "a mutating command's timeout is the caller's to name"
        );
        assert!(t.elapsed() < Duration::from_secs(3), "killed, not waited for");
    }

    #[tokio::test]
    async fn supervisorctls_connection_errors_are_unavailable_never_not_found() {
        for (script, expect) in [
            (
                "echo 'unix:///tmp/x/sv.sock no such file'; exit 4",
                "socket does not exist",
            ),
            (
                "echo 'unix:///tmp/x/sv.sock refused connection'; exit 4",
                "refused connection",
            ),
            (
                "echo \"error: <class 'ConnectionResetError'>, [Errno 104] reset: file: x line: 1\"; exit 1",
                "ConnectionResetError",
            ),
        ] {
            let e = fake(script).await.unwrap_err();
            assert!(matches!(e, SupervisordError::Unreachable { .. }), "{e}");
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
            assert!(e.to_string().contains(expect), "{e}");
        }
        let e = fake("echo 'could not find config file /etc/sv-test.conf' >&2; exit 2")
            .await
            .unwrap_err();
        assert!(matches!(e, SupervisordError::ConfigUnreadable { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn refused_credentials_are_permission_denied() {
        for script in [
            "echo 'Server requires authentication'; exit 1",
            "echo \"error: <class 'PermissionError'>, [Errno 13] Permission denied: file: x line: 2\"; exit 1",
        ] {
            let e = fake(script).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        }
    }

    #[tokio::test]
    async fn a_password_in_the_server_url_never_reaches_an_error() {
        // (`${X}` is empty: the script itself, which stands in for the config path, must
        // not hold the password.)
        let e = fake("echo \"http://admin:hunter${X}2-canary@127.0.0.1:9001 refused connection\"; exit 4")
            .await
            .unwrap_err();
        let msg = format!("{e} {e:?}");
        assert!(!msg.contains("hunter2-canary"), "{msg}");
        assert!(msg.contains("http://admin:[redacted]@127.0.0.1:9001"), "{msg}");
    }

    #[tokio::test]
    async fn results_and_status_lines_pass_through_whatever_the_exit_code() {
        let out = fake("echo 'web: ERROR (no such process)'; exit 4").await.unwrap();
        assert_eq!(out.as_deref(), Some("web: ERROR (no such process)\n"));
        let out = fake("echo 'web   STOPPED   Not started'; exit 3").await.unwrap();
        assert!(out.is_some_and(|o| o.contains("STOPPED")));
        let e = fake("echo 'Error: bad option' >&2; exit 2").await.unwrap_err();
        assert!(matches!(e, SupervisordError::CommandFailed { .. }), "{e}");
    }

    #[test]
    fn details_are_cut_to_their_tail() {
        let long = format!("{} the end", "x".repeat(3000));
        let d = detail(&long);
        assert!(d.ends_with("x the end") && d.chars().count() == DETAIL_MAX, "{d}");
        assert_eq!(detail("  short \n"), "short");
        let url = format!(
            "{} http://admin:hunter2-canary@127.0.0.1:9001 refused connection",
            "x".repeat(990)
        );
        let d = detail(&url);
        assert!(
            !d.contains("hunter2") && !d.contains("canary") && d.ends_with("refused connection"),
            "{d}"
        );
    }
}
