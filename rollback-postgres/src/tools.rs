//! Finding and running `pg_dump` and `pg_restore`: argument vectors (never a shell), a
//! timeout, stderr captured into the error, and the password in `PGPASSWORD` only.

use crate::error::{scrub, PgError};
use rollback_core::{ErrorKind, Secret};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the PostgreSQL client tools are.
///
/// Use client tools at least as new as the server (`pg_dump` refuses older ones).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgTools {
    /// The `pg_dump` binary.
    pub pg_dump: PathBuf,
    /// The `pg_restore` binary.
    pub pg_restore: PathBuf,
}

impl PgTools {
    /// Tools at explicit paths.
    pub fn new(pg_dump: impl Into<PathBuf>, pg_restore: impl Into<PathBuf>) -> Self {
        PgTools {
            pg_dump: pg_dump.into(),
            pg_restore: pg_restore.into(),
        }
    }

    /// `pg_dump` and `pg_restore` in `bindir`.
    pub fn in_dir(bindir: impl AsRef<Path>) -> Self {
        let d = bindir.as_ref();
        Self::new(d.join("pg_dump"), d.join("pg_restore"))
    }

    /// Finds the tools: in `pg_config --bindir`, else on `PATH`, else in the newest
    /// `/usr/lib/postgresql/<major>/bin`. `NotFound` names what to install.
    pub async fn discover() -> Result<Self, PgError> {
        let mut cmd = tokio::process::Command::new("pg_config");
        cmd.arg("--bindir");
        let from_pg_config = match rollback_core::sys::output_within(&mut cmd, Duration::from_secs(10)).await
        {
            Ok(Some(out)) if out.status.success() => {
                Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
            }
            _ => None,
        };
        // Looking at directories is blocking file I/O: off the runtime's threads.
        let found = tokio::task::spawn_blocking(move || find_tools(from_pg_config))
            .await
            .map_err(|e| PgError::task("looking for pg_dump and pg_restore", e))?;
        found.map(Self::in_dir).ok_or_else(|| {
            PgError::new(
                ErrorKind::NotFound,
                "pg_dump and pg_restore not found (not in `pg_config --bindir`, PATH or /usr/lib/postgresql/*/bin): \
                 install the PostgreSQL client tools (apt-get install postgresql-client) or give their paths with PgTools::new",
            )
        })
    }
}

/// The directory holding both tools: `pg_config`'s, else the first on `PATH`, else the
/// newest `/usr/lib/postgresql/<major>/bin`. Blocking.
fn find_tools(from_pg_config: Option<PathBuf>) -> Option<PathBuf> {
    if let Some(dir) = from_pg_config.filter(|d| has_tools(d)) {
        return Some(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has_tools(d)) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d): &(u32, PathBuf)| has_tools(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

fn has_tools(dir: &Path) -> bool {
    dir.join("pg_dump").is_file() && dir.join("pg_restore").is_file()
}

/// Runs `program` with `args` (never through a shell) by
/// [`output_within`](rollback_core::sys::output_within): the password (if any) in
/// `PGPASSWORD`, the TLS settings in `env` (libpq's variables: `Some` sets, `None`
/// removes), stdin closed, killed after `timeout` or when the future is dropped.
/// Returns stdout; a failure carries the tail of stderr, scrubbed of the password.
pub(crate) async fn run(
    program: &Path,
    args: &[OsString],
    password: Option<&Secret>,
    env: &[(&'static str, Option<OsString>)],
    timeout: Duration,
) -> Result<Vec<u8>, PgError> {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.display().to_string());
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        // Settings from the caller's environment must not redirect the tool elsewhere.
        .env_remove("PGSERVICE")
        .env_remove("PGSERVICEFILE")
        .env_remove("PGOPTIONS")
        .env_remove("PGHOSTADDR");
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    match password {
        Some(pw) => cmd.env("PGPASSWORD", pw.expose()),
        None => cmd.env_remove("PGPASSWORD"),
    };
    tracing::debug!(tool = %name, "running {}", program.display());
    let out = match rollback_core::sys::output_within(&mut cmd, timeout).await {
        Ok(Some(out)) => out,
        Ok(None) => {
            return Err(PgError::new(
                ErrorKind::Timeout,
                format!("{name} did not finish within {timeout:?} and was stopped"),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PgError::new(
                ErrorKind::NotFound,
                format!(
                "{name} binary not found at {}: install the PostgreSQL client tools or point PgTools at them",
                program.display()
            ),
            ))
        }
        Err(e) => {
            return Err(PgError::io(
                format!("cannot run {name} ({})", program.display()),
                e,
            ))
        }
    };
    if out.status.success() {
        return Ok(out.stdout);
    }
    // Scrubbed before it is cut, so that a password cut in half cannot survive.
    let stderr = scrub(&String::from_utf8_lossy(&out.stderr), password);
    let tail = rollback_core::sys::stderr_tail(stderr.as_bytes(), STDERR_TAIL_CHARS);
    let kind = if tail.contains("password authentication failed")
        || tail.contains("permission denied")
        || tail.contains("certificate")
        || tail.contains("no encryption")
        || tail.contains("does not support SSL")
    {
        ErrorKind::PermissionDenied
    } else if tail.contains("could not connect") || tail.contains("Connection refused") {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Failed
    };
    Err(PgError::new(
        kind,
        format!("{name} failed ({}): {tail}", out.status),
    ))
}

/// How much of a failed tool's stderr goes into the error.
const STDERR_TAIL_CHARS: usize = 2000;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tls_settings_reach_the_tool_through_its_environment_and_the_callers_are_removed() {
        // Only this test uses PGSSLCRL: the caller's own setting must not reach the tool.
        std::env::set_var("PGSSLCRL", "/callers/crl.pem");
        let env = crate::PgConfig::new("h", 1, "u", "d")
            .sslmode(crate::SslMode::VerifyFull)
            .sslrootcert("/etc/ca.pem")
            .tool_env();
        let args: Vec<OsString> = vec![
            "-c".into(),
            "printf '%s|%s|%s' \"$PGSSLMODE\" \"$PGSSLROOTCERT\" \"${PGSSLCRL-unset}\"".into(),
        ];
        let out = run(Path::new("/bin/sh"), &args, None, &env, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "verify-full|/etc/ca.pem|unset");
    }

    #[tokio::test]
    async fn failures_carry_the_scrubbed_stderr_tail_and_missing_tools_are_not_found() {
        let pw = Secret::new("canary-pw");
        let args: Vec<OsString> = vec![
            "-c".into(),
            "echo \"connection failed for $PGPASSWORD: permission denied\" >&2; exit 3".into(),
        ];
        let e = run(
            Path::new("/bin/sh"),
            &args,
            Some(&pw),
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().starts_with("sh failed ("), "{e}");
        assert!(e.to_string().contains("[redacted]: permission denied"), "{e}");
        assert!(!e.to_string().contains("canary-pw"), "{e}");

        let e = run(
            Path::new("/nonexistent/pg_dump"),
            &[],
            None,
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(
            e.to_string().contains("install the PostgreSQL client tools"),
            "{e}"
        );

        let args: Vec<OsString> = vec!["5".into()];
        let e = run(Path::new("sleep"), &args, None, &[], Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.to_string().contains("was stopped"), "{e}");

        let args: Vec<OsString> = vec!["-c".into(), "printf ok".into()];
        let out = run(Path::new("/bin/sh"), &args, None, &[], Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out, b"ok");
    }
}
