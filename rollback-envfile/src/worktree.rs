//! Where backups may go: git working trees found by a plain file-system walk (no git, no
//! `.gitignore` evaluation), and the default history directory derived from them.

use crate::error::EnvFileError;
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The name of the directory, beside a working tree, that holds the env-file histories of
/// the files inside that tree.
pub(crate) const HISTORY_DIR_NAME: &str = ".rollback-env-history";

/// `path` with symlinks resolved as far as it exists; the part that does not exist yet is
/// appended as given. Relative paths are taken from the current directory.
pub(crate) fn resolve_existing(path: &Path) -> PathBuf {
    let mut tail: Vec<OsString> = Vec::new();
    let mut cur = if path.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        path.to_path_buf()
    };
    loop {
        if let Ok(real) = fs::canonicalize(&cur) {
            return tail.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_os_string());
                cur = if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent.to_path_buf()
                };
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The directory of the live file as given (`.` for a bare file name).
pub(crate) fn dir_of(live: &Path) -> PathBuf {
    live.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The real directory of the file at `live`: links followed (a dangling link's target
/// directory counts), as far as it exists.
pub(crate) fn real_dir_of(live: &Path) -> PathBuf {
    if let Ok(real) = fs::canonicalize(live) {
        if let Some(parent) = real.parent() {
            return parent.to_path_buf();
        }
    }
    if let Ok(target) = fs::read_link(live) {
        let target = dir_of(live).join(target);
        return resolve_existing(&dir_of(&target));
    }
    resolve_existing(&dir_of(live))
}

fn has_git_marker(dir: &Path) -> bool {
    // A directory (ordinary repository) or a file (linked worktree, submodule).
    fs::symlink_metadata(dir.join(".git")).is_ok()
}

/// The innermost working tree that could track files in `dir` (already resolved): an
/// ancestor holding a `.git`, except when `dir` lies inside that `.git` itself.
pub(crate) fn tracking_worktree(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .filter(|a| has_git_marker(a))
        .find(|a| {
            let inside_git_dir = dir
                .strip_prefix(a)
                .ok()
                .and_then(|rest| rest.components().next())
                .is_some_and(|c| c == Component::Normal(".git".as_ref()));
            !inside_git_dir
        })
        .map(Path::to_path_buf)
}

/// The outermost working tree around `dir` (already resolved), if any.
fn outermost_worktree(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .filter(|a| has_git_marker(a))
        .last()
        .map(Path::to_path_buf)
}

/// The default history directory of `live`:
/// - beside the file (the link's directory for a plain file, the target's for a symlink)
///   when that is in no git working tree;
/// - otherwise `<parent of the outermost working tree>/.rollback-env-history/<tree name>/
///   <the file's directory relative to the tree>`.
pub(crate) fn default_history_dir(live: &Path) -> Result<PathBuf, EnvFileError> {
    let nominal = dir_of(live);
    let real = real_dir_of(live);
    let Some(root) = outermost_worktree(&real) else {
        // A plain file keeps the directory as the caller spelled it.
        return Ok(if resolve_existing(&nominal) == real {
            nominal
        } else {
            real
        });
    };
    let refuse = || EnvFileError::HistoryInWorktree {
        dir: real.clone(),
        worktree: root.clone(),
    };
    let (Some(parent), Some(name)) = (root.parent(), root.file_name()) else {
        return Err(refuse());
    };
    let rel = real.strip_prefix(&root).map_err(|_| refuse())?;
    let dir = parent.join(HISTORY_DIR_NAME).join(name).join(rel);
    if tracking_worktree(&dir).is_some() {
        return Err(refuse());
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dir_inside_dot_git_is_not_tracked_but_one_beside_it_is() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().canonicalize().unwrap().join("app");
        fs::create_dir_all(root.join(".git/rollback")).unwrap();
        fs::create_dir_all(root.join("config")).unwrap();
        assert_eq!(tracking_worktree(&root.join(".git/rollback")), None);
        assert_eq!(tracking_worktree(&root.join("config")), Some(root.clone()));
        assert_eq!(
            tracking_worktree(&resolve_existing(&root.join("config/not/yet"))),
            Some(root)
        );
    }

    #[test]
    fn the_default_mirrors_the_file_s_place_in_the_outermost_tree() {
        let base = tempfile::tempdir().unwrap();
        let base = base.path().canonicalize().unwrap();
        let outer = base.join("app");
        fs::create_dir_all(outer.join(".git")).unwrap();
        // A submodule: its `.git` is a file.
        fs::create_dir_all(outer.join("vendor/sub/config")).unwrap();
        fs::write(outer.join("vendor/sub/.git"), "gitdir: ../../.git/modules/sub\n").unwrap();
        let live = outer.join("vendor/sub/config/.env.production");
        assert_eq!(
            default_history_dir(&live).unwrap(),
            base.join(".rollback-env-history/app/vendor/sub/config")
        );
    }
}
