//! What adapters share of the operating system, written once: a durable file write, a
//! command run with a time limit, whether processes are alive, polling with a backoff,
//! this host's name.
//!
//! Adapter authors use these so that every crate writes state the same crash-safe way and
//! runs external tools the same cancel-safe way (no shell, stdin closed, killed when the
//! future is dropped or the limit passes).

use crate::private_files;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Writes `bytes` to `path` so that a crash at any point leaves either the old file or the
/// new one, never a torn one: a temp file beside it (created exclusively, with `mode`),
/// fsync, rename over `path`, fsync of the directory. Blocking: call it from
/// [`spawn_blocking`](tokio::task::spawn_blocking) or use [`write_durable_async`].
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("sys-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("state.json");
/// rollback_core::sys::write_durable(&path, b"{}", 0o600)?;
/// assert_eq!(std::fs::read(&path)?, b"{}");
/// # std::fs::remove_dir_all(&dir) }
/// ```
pub fn write_durable(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_durable_shared(path, bytes, mode, None)
}

/// [`write_durable`], the file owned by group `group` when one is given (set before the
/// rename, so the file never appears with the wrong owner).
pub fn write_durable_shared(path: &Path, bytes: &[u8], mode: u32, group: Option<u32>) -> io::Result<()> {
    write_durable_owned(path, bytes, mode, None, group)
}

/// [`write_durable`], the file owned by user `owner` and group `group` where given (both set
/// on the temp file before the rename, so the live file never has the wrong owner, even
/// after a crash). Giving a file to another user takes root: otherwise the error is
/// [`PermissionDenied`](io::ErrorKind::PermissionDenied) and nothing was replaced.
pub fn write_durable_owned(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<u32>,
    group: Option<u32>,
) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = private_files::create_new_file(&tmp, mode)?;
        if owner.is_some() || group.is_some() {
            #[cfg(unix)]
            std::os::unix::fs::chown(&tmp, owner, group)?;
            // chown may clear set-id bits: the mode again.
            private_files::set_mode(&tmp, mode)?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir_of(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// [`write_durable`] on a blocking thread, for async callers.
pub async fn write_durable_async(path: &Path, bytes: Vec<u8>, mode: u32) -> io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_durable(&path, &bytes, mode))
        .await
        .map_err(io::Error::other)?
}

/// Fsyncs the directory holding `path`, so that a rename or a new file in it survives a
/// crash. A no-op where directories cannot be opened (not Unix).
pub fn sync_dir_of(path: &Path) -> io::Result<()> {
    match path.parent() {
        #[cfg(unix)]
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Runs `command` as an argument vector (never through a shell) with stdin closed and
/// stdout and stderr captured, and waits at most `limit`. `Ok(None)` when it did not finish
/// in time: it is killed. The child is also killed when the returned future is dropped, so
/// a cancelled caller leaves no stray process. An `Err` whose kind is
/// [`NotFound`](io::ErrorKind::NotFound) means the program is not installed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// let mut cmd = tokio::process::Command::new("true");
/// let out = rollback_core::sys::output_within(&mut cmd, Duration::from_secs(5)).await?;
/// assert!(out.is_some_and(|o| o.status.success()));
/// # Ok(()) }
/// ```
pub async fn output_within(
    command: &mut tokio::process::Command,
    limit: Duration,
) -> io::Result<Option<std::process::Output>> {
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => out.map(Some),
        // Dropping the wait future drops the child, which kills it (kill_on_drop).
        Err(_) => Ok(None),
    }
}

/// True while process `pid` exists and is not a zombie (Linux `/proc`). Where that cannot
/// be told (no `/proc`), true: a caller must not conclude a holder is dead.
pub fn pid_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// The pids of `pids` that are alive ([`pid_alive`]), all read in one blocking task (never
/// on the runtime's threads). Where `/proc` cannot tell (not Linux), none: the caller takes
/// its process manager's word. If the task cannot run, all of them: a process is never
/// concluded gone without seeing it.
pub async fn pids_alive(pids: &[u32]) -> Vec<u32> {
    if pids.is_empty() {
        return Vec::new();
    }
    let asked = pids.to_vec();
    tokio::task::spawn_blocking(move || {
        if !Path::new("/proc/self").exists() {
            return Vec::new();
        }
        asked.into_iter().filter(|pid| pid_alive(*pid)).collect()
    })
    .await
    .unwrap_or_else(|_| pids.to_vec())
}

/// The pause between two polls of a state that is expected soon (a process manager's
/// "stopped"): 50 ms first, half as long again each time up to 300 ms, never past the
/// deadline.
#[derive(Debug, Clone)]
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// The first pause is 50 ms.
    pub fn new() -> Self {
        Self(Duration::from_millis(50))
    }

    /// Sleeps the next pause, or until `deadline` if that comes first.
    pub async fn sleep(&mut self, deadline: std::time::Instant) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        tokio::time::sleep(self.0.min(left)).await;
        self.0 = (self.0 * 3 / 2).min(Duration::from_millis(300));
    }
}

/// This machine's host name, as the kernel knows it (`HOSTNAME` where there is no
/// `/proc`), or `unknown-host`.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            let name = std::fs::read_to_string(p).ok()?;
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// This machine's id (`/etc/machine-id`, else `/var/lib/dbus/machine-id`), when there is
/// one.
pub fn machine_id() -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| {
            let id = std::fs::read_to_string(p).ok()?;
            let id = id.trim();
            (!id.is_empty()).then(|| id.to_owned())
        })
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), when the kernel gives one: it
/// changes at every boot, so a pid recorded under another boot id belongs to no process.
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// The last `max` characters of a command's stderr, trimmed, for an error message.
pub fn stderr_tail(stderr: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let skip = text.chars().count().saturating_sub(max);
    text.chars().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn own_pid_is_alive_and_a_bogus_one_is_not() {
        let me = std::process::id();
        assert_eq!(pids_alive(&[me, u32::MAX - 1]).await, vec![me]);
        assert!(pids_alive(&[]).await.is_empty());
    }
}
