//! Writing a file so that readers see the old content or the new, never a mix: a temp file
//! in the same directory, fsync, rename over the target, fsync the directory.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Who should own a written file and with which mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileMode {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl FileMode {
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        Self {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }
}

/// A point inside [`write_atomically`] where a test can make it fail.
pub(crate) type BeforeRename<'a> = &'a (dyn Fn(&Path) -> io::Result<()> + Send + Sync);

/// Writes `bytes` to `target` atomically with `mode` (set at creation, so the content is
/// never readable by more than `mode` allows) and, where allowed, the owner in `mode`.
/// `before_rename` runs after the temp file is complete and synced; if it fails the temp
/// file is removed and the target is untouched.
pub(crate) fn write_atomically(
    target: &Path,
    bytes: &[u8],
    mode: FileMode,
    before_rename: BeforeRename<'_>,
) -> io::Result<()> {
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = temp_path(dir, target);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.mode & 0o777)
            .open(&temp)?;
        // The umask may have narrowed the mode at creation; set it exactly.
        file.set_permissions(Permissions::from_mode(mode.mode))?;
        keep_owner(&file, mode);
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        before_rename(&temp)?;
        fs::rename(&temp, target)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Sets the owner where the process is allowed to (root, or the same user); otherwise the
/// file keeps the writer's ownership, which is what a plain `cp` would do.
fn keep_owner(file: &File, mode: FileMode) {
    if let Err(e) = std::os::unix::fs::fchown(file, Some(mode.uid), Some(mode.gid)) {
        tracing::debug!(error = %e, "could not keep the file's owner; it belongs to the writer");
    }
}

fn temp_path(dir: &Path, target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(
        ".{name}.rollback-tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// True for the temp files [`write_atomically`] leaves only if the process dies mid-write.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".rollback-tmp.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_hook(_: &Path) -> io::Result<()> {
        Ok(())
    }

    #[test]
    fn replaces_the_file_keeping_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(".env");
        fs::write(&target, "OLD=1\n").unwrap();
        let mode = FileMode {
            mode: 0o600,
            ..FileMode::of(&fs::metadata(&target).unwrap())
        };
        write_atomically(&target, b"NEW=2\n", mode, &no_hook).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "NEW=2\n");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left");
    }

    #[test]
    fn a_failure_between_write_and_rename_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(".env");
        fs::write(&target, "OLD=1\n").unwrap();
        let mode = FileMode::of(&fs::metadata(&target).unwrap());
        let saw_complete_temp = std::sync::atomic::AtomicBool::new(false);
        let crash = |temp: &Path| {
            saw_complete_temp.store(fs::read(temp)? == b"NEW=2\n", Ordering::SeqCst);
            Err(io::Error::other("injected crash before rename"))
        };
        let err = write_atomically(&target, b"NEW=2\n", mode, &crash).unwrap_err();
        assert_eq!(err.to_string(), "injected crash before rename");
        assert!(
            saw_complete_temp.load(Ordering::SeqCst),
            "the hook ran after the full write"
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "OLD=1\n");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the temp file is removed"
        );
    }
}
