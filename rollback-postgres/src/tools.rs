//! Finding and running `pg_dump` and `pg_restore`: argument vectors (never a shell), a
//! timeout, stderr captured into the error, and the password in `PGPASSWORD` only.

use crate::error::{scrub, PgError};
use rollback_core::{ErrorKind, Secret};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Where the PostgreSQL client tools are.
///
/// Use client tools at least as new as the server (`pg_dump` refuses older ones).
#[derive(Clone, Debug, PartialEq, Eq)]
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
        cmd.arg("--bindir")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Ok(Ok(out)) = tokio::time::timeout(Duration::from_secs(10), cmd.output()).await {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && has_tools(&dir) {
                return Ok(Self::in_dir(dir));
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            if let Some(dir) = std::env::split_paths(&path).find(|d| has_tools(d)) {
                return Ok(Self::in_dir(dir));
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
        versions.pop().map(|(_, d)| Self::in_dir(d)).ok_or_else(|| {
            PgError::new(
                ErrorKind::NotFound,
                "pg_dump and pg_restore not found (not in `pg_config --bindir`, PATH or /usr/lib/postgresql/*/bin): \
                 install the PostgreSQL client tools (apt-get install postgresql-client) or give their paths with PgTools::new",
            )
        })
    }
}

fn has_tools(dir: &Path) -> bool {
    dir.join("pg_dump").is_file() && dir.join("pg_restore").is_file()
}

/// Runs `program` with `args`, the password (if any) in `PGPASSWORD`, stdin closed, and
/// kills it after `timeout`. Returns stdout; a failure carries the tail of stderr.
pub(crate) async fn run(
    program: &Path,
    args: &[OsString],
    password: Option<&Secret>,
    timeout: Duration,
) -> Result<Vec<u8>, PgError> {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.display().to_string());
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Settings from the caller's environment must not redirect the tool elsewhere.
        .env_remove("PGSERVICE")
        .env_remove("PGSERVICEFILE")
        .env_remove("PGOPTIONS");
    match password {
        Some(pw) => cmd.env("PGPASSWORD", pw.expose()),
        None => cmd.env_remove("PGPASSWORD"),
    };
    tracing::debug!(tool = %name, "running {}", program.display());
    let child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PgError::new(
                ErrorKind::NotFound,
                format!(
                    "{name} binary not found at {}: install the PostgreSQL client tools or point PgTools at them",
                    program.display()
                ),
            )
        } else {
            PgError::io(format!("cannot start {name} ({})", program.display()), e)
        }
    })?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => out.map_err(|e| PgError::io(format!("waiting for {name}"), e))?,
        Err(_) => {
            return Err(PgError::new(
                ErrorKind::Timeout,
                format!("{name} did not finish within {timeout:?} and was stopped"),
            ))
        }
    };
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = scrub(stderr.trim(), password);
    let tail: String = {
        let chars: Vec<char> = stderr.chars().collect();
        let start = chars.len().saturating_sub(2000);
        chars[start..].iter().collect()
    };
    let kind = if tail.contains("password authentication failed") || tail.contains("permission denied") {
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
