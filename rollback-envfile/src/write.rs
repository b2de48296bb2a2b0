//! Writing an env file or a backup: the core's durable write
//! ([`rollback_core::sys::write_durable_shared`]: temp file, fsync, rename, fsync of the
//! directory), keeping the mode and, where the process may, the owner of the file.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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

/// Writes `bytes` to `target` durably through the core's writer, with `mode` (set on the
/// temp file before anything is written to it, so the content is never readable by more
/// than `mode` allows) and the owner and group of `mode`, both set before the rename, so the
/// live file never has the wrong owner, even after a crash. Owner and group are best effort,
/// as a plain `cp` would do: when the process may not give the file them (not root), the
/// file is written as the writer's.
pub(crate) fn write_keeping_owner(target: &Path, bytes: &[u8], mode: FileMode) -> io::Result<()> {
    let target = with_dir(target);
    match rollback_core::sys::write_durable_owned(&target, bytes, mode.mode, Some(mode.uid), Some(mode.gid)) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            tracing::debug!(error = %e, "could not keep the file's owner and group; it belongs to the writer");
            match rollback_core::sys::write_durable_shared(&target, bytes, mode.mode, Some(mode.gid)) {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    rollback_core::sys::write_durable(&target, bytes, mode.mode)
                }
                other => other,
            }
        }
        other => other,
    }
}

/// `target` with a directory part, so that the writer syncs the current directory for a
/// bare file name too.
fn with_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new(".").join(target),
        _ => target.to_path_buf(),
    }
}

/// True for the temp files a durable write leaves only if the process dies mid-write: the
/// core's `.<name>.tmp-<pid>-<n>`, and `.<name>.rollback-tmp.<pid>.<n>` of earlier versions
/// of this crate.
pub(crate) fn is_temp_name(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.starts_with('.')
        && (name.contains(".rollback-tmp.")
            || name.rsplit_once(".tmp-").is_some_and(|(_, rest)| {
                rest.split_once('-')
                    .is_some_and(|(pid, n)| digits(pid) && digits(n))
            }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_keeping_the_mode_and_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(".env");
        fs::write(&target, "OLD=1\n").unwrap();
        let mine = FileMode::of(&fs::metadata(&target).unwrap());
        // Root may give the file away: then the owner and group must be kept.
        let root = mine.uid == 0;
        let wanted = FileMode {
            mode: 0o640,
            uid: if root { 65534 } else { mine.uid },
            gid: if root { 65534 } else { mine.gid },
        };
        write_keeping_owner(&target, b"NEW=2\n", wanted).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "NEW=2\n");
        assert_eq!(FileMode::of(&fs::metadata(&target).unwrap()), wanted);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left");
    }

    #[test]
    fn temp_names_are_recognised() {
        assert!(is_temp_name(".env.production.tmp-123-0"));
        assert!(is_temp_name("..env.tmp-1-22"));
        assert!(is_temp_name(".env.rollback-tmp.1.2"));
        assert!(!is_temp_name(".env.production.backup.20240102T030405.678Z"));
        assert!(!is_temp_name(".env.tmp-notes"));
        assert!(!is_temp_name("env.tmp-1-2"));
    }
}
