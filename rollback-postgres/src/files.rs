//! Files only their owner can read, whatever the process's umask: snapshot directories
//! `0700`, every file in them `0600` (archives hold every row of the database), written
//! through [`rollback_core::private_files`]. What this adapter did not create is never
//! chmod-ed: [`PostgresSnapshot::access_warnings`](rollback_core::DatabaseSnapshot::access_warnings)
//! reports it instead.

use crate::error::PgError;
use rollback_core::private_files::{self, DIR_MODE, FILE_MODE};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How deep [`private_files::audit`] looks under the snapshot root: the root (0), the
/// snapshot directories and `preserved/` (1), their files and `dump/` directories (2), the
/// files of a `dump/` directory and of a preserved dump (3).
pub(crate) const AUDIT_DEPTH: usize = 3;

fn blocking_failed(e: tokio::task::JoinError) -> PgError {
    PgError::task("file operation", e)
}

/// Creates `dir` and its missing parents `0700` (existing ones are left as they are).
pub(crate) async fn create_private_dir(dir: &Path) -> Result<(), PgError> {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || private_files::create_dir_all(&d, DIR_MODE))
        .await
        .map_err(blocking_failed)?
        .map_err(|e| PgError::io(format!("cannot create {}", dir.display()), e))
}

/// Creates `path` exclusively (never through a planted symlink), `0600`, holding `bytes`.
pub(crate) async fn write_new_private(path: &Path, bytes: Vec<u8>) -> Result<(), PgError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_new_sync(&p, &bytes))
        .await
        .map_err(blocking_failed)?
        .map_err(|e| PgError::io(format!("cannot write {}", path.display()), e))
}

fn write_new_sync(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = private_files::create_new_file(path, FILE_MODE)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Replaces `path` with `bytes` so that a crash leaves the old content or the new, never
/// a torn file: [`rollback_core::sys::write_durable`] (a `0600` temporary file created
/// exclusively beside it, fsync, rename, fsync of the directory), on a blocking thread.
pub(crate) async fn write_durable(path: &Path, bytes: Vec<u8>) -> Result<(), PgError> {
    rollback_core::sys::write_durable_async(path, bytes, FILE_MODE)
        .await
        .map_err(|e| PgError::io(format!("cannot write {}", path.display()), e))
}

/// Makes what a tool (`pg_dump`) wrote under `path` private: directories `0700`, files
/// `0600`, `path` itself included. Symlinks are neither followed nor changed.
pub(crate) async fn make_private_tree(path: &Path) -> Result<(), PgError> {
    let p = path.to_path_buf();
    let result = tokio::task::spawn_blocking(move || private_tree_sync(&p))
        .await
        .map_err(blocking_failed)?;
    result.map_err(|(which, e)| {
        PgError::io(
            format!("cannot make {} private (chmod 600/700)", which.display()),
            e,
        )
    })
}

fn private_tree_sync(path: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| (path.to_path_buf(), e))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        private_files::set_mode(path, DIR_MODE).map_err(|e| (path.to_path_buf(), e))?;
        let entries = std::fs::read_dir(path).map_err(|e| (path.to_path_buf(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| (path.to_path_buf(), e))?;
            private_tree_sync(&entry.path())?;
        }
        Ok(())
    } else {
        private_files::set_mode(path, FILE_MODE).map_err(|e| (path.to_path_buf(), e))
    }
}

/// What under the snapshot root users other than the owner can read, one line per path
/// with the fix (see [`private_files::audit`]). Changes nothing.
pub(crate) async fn audit(root: &Path) -> Result<Vec<String>, PgError> {
    let r = root.to_path_buf();
    tokio::task::spawn_blocking(move || private_files::audit(&r, AUDIT_DEPTH, false))
        .await
        .map_err(blocking_failed)
}
