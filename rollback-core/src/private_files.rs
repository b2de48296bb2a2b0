//! Files only their owner can read, whatever the process's umask: what the state store and
//! the adapters use for checkpoints, journals, reports, snapshots and their temp files.
//!
//! - directories this code creates are `0700` (or the mode asked for), set explicitly after
//!   creation so that a umask of `000` or `022` changes nothing;
//! - files are created exclusively (`O_CREAT | O_EXCL`, so a symlink planted at the name is
//!   never followed) with mode `0600`, again set explicitly;
//! - [`audit`] reports existing paths that others can read, naming the fix, and never
//!   changes what this code did not create.
//!
//! On non-Unix targets the modes are not applied (there are none) and [`audit`] finds
//! nothing.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Mode of private directories.
pub const DIR_MODE: u32 = 0o700;
/// Mode of private files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parents below the first existing ancestor, each with
/// `mode` (applied explicitly, independent of the umask). Existing directories are left as
/// they are (see [`audit`]).
pub fn create_dir_all(dir: &Path, mode: u32) -> io::Result<()> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    for p in missing.iter().rev() {
        match create_one_dir(p, mode) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn create_one_dir(p: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(mode).create(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn create_one_dir(p: &Path, _mode: u32) -> io::Result<()> {
    std::fs::create_dir(p)
}

/// Creates `path` exclusively (fails if anything, a symlink included, is there) with `mode`
/// (applied explicitly, independent of the umask), open for writing.
pub fn create_new_file(path: &Path, mode: u32) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(mode);
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        options.open(path)
    }
}

/// Sets `path`'s mode (for files a tool such as `pg_dump` wrote into a private directory).
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Sets the group of `path` (for reports shared with a named group).
pub fn set_group(path: &Path, gid: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::chown(path, None, Some(gid))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, gid);
        Ok(())
    }
}

/// Paths under `root` (itself included, `depth` levels down) that users other than the
/// owner can read or write: one line each, naming the path, its mode and the fix. Changes
/// nothing. `allow_group` accepts group read (and traverse) as intended.
pub fn audit(root: &Path, depth: usize, allow_group: bool) -> Vec<String> {
    let mut out = Vec::new();
    audit_into(root, depth, allow_group, &mut out);
    out
}

#[cfg(unix)]
fn audit_into(path: &Path, depth: usize, allow_group: bool, out: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    let mode = meta.permissions().mode() & 0o777;
    let forbidden = if allow_group { 0o027 } else { 0o077 };
    if mode & forbidden != 0 {
        let (want, what) = if meta.is_dir() {
            (if allow_group { 0o750 } else { 0o700 }, "directory")
        } else {
            (if allow_group { 0o640 } else { 0o600 }, "file")
        };
        let who = if mode & 0o007 != 0 {
            "every local user"
        } else {
            "its group"
        };
        out.push(format!(
            "{what} {} is mode {mode:04o}: readable by {who}; fix with `chmod {want:o} {}`{}",
            path.display(),
            path.display(),
            if meta.is_dir() { " (and its files 600)" } else { "" }
        ));
    }
    if meta.is_dir() && depth > 0 {
        if let Ok(entries) = std::fs::read_dir(path) {
            let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            children.sort();
            for child in children {
                audit_into(&child, depth - 1, allow_group, out);
            }
        }
    }
}

#[cfg(not(unix))]
fn audit_into(_path: &Path, _depth: usize, _allow_group: bool, _out: &mut Vec<String>) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_dirs_and_files_are_private_and_a_planted_symlink_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir_all(&dir, DIR_MODE).unwrap();
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let f = dir.join("x.json");
        drop(create_new_file(&f, FILE_MODE).unwrap());
        assert_eq!(mode(&f), 0o600);
        let target = tmp.path().join("victim");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("planted")).unwrap();
        assert!(create_new_file(&dir.join("planted"), FILE_MODE).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(audit(tmp.path().join("a").as_path(), 3, false).is_empty());
    }

    #[test]
    fn audit_names_open_paths_and_the_fix_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("snapshots");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.join("dump.pgdump");
        std::fs::write(&f, b"rows").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let found = audit(&dir, 1, false);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("0755") && found[0].contains("chmod 700"),
            "{found:?}"
        );
        assert!(
            found[1].contains("0644") && found[1].contains("every local user"),
            "{found:?}"
        );
        assert_eq!(mode(&f), 0o644, "audit changes nothing");
    }
}
