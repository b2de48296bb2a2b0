//! For integration tests against real binaries (PostgreSQL, git, pm2): skip loudly when a
//! binary is missing, fail when `ROLLBACK_REQUIRE_INTEGRATION=1` (which `.ci/run` sets).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that turns a missing binary from a skip into a failure.
pub const REQUIRE_ENV: &str = "ROLLBACK_REQUIRE_INTEGRATION";

/// True when integration tests must not skip.
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Reports that `test` cannot run because `missing` is not available. Under
/// `ROLLBACK_REQUIRE_INTEGRATION=1` this panics (the test fails); otherwise it prints a loud
/// banner to stderr and the caller returns early.
///
/// ```
/// # use rollback_testkit::integration;
/// if integration::find_on_path("surely-not-installed-binary").is_none() {
///     # if integration::required() { return; }
///     integration::unavailable("demo", "surely-not-installed-binary (apt-get install it)");
/// }
/// ```
pub fn unavailable(test: &str, missing: &str) {
    if required() {
        panic!("{test}: {missing} is not available and {REQUIRE_ENV}=1: install it (see .ci/run)");
    }
    eprintln!(
        "\n==================== SKIPPED ====================\n\
         {test}: {missing} is not available.\n\
         This integration test did NOT run. Install it, or set {REQUIRE_ENV}=1 to make this a failure.\n\
         =================================================\n"
    );
}

/// The first executable named `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// True when `path` is an executable file.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `cmd` (stdin closed, output captured), killing it after `timeout`: the test helpers'
/// way to run a binary without ever hanging a test run.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    // Drain the pipes on threads so that a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut buf);
        }
        buf
    });
    let err_t = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut buf);
        }
        buf
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {timeout:?} and was killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}
