//! `manifest.json`, written beside every snapshot: what was dumped, from which server,
//! the size and SHA-256 of every file, and the exact row count of every user table.

use crate::error::PgError;
use chrono::{DateTime, Utc};
use rollback_core::ErrorKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The manifest file's name inside a snapshot directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// How the archive was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpFormat {
    /// `pg_dump -Fc`: one compressed file (`dump.pgdump`); restores in parallel too.
    #[default]
    Custom,
    /// `pg_dump -Fd -j N`: a directory (`dump/`), dumped in parallel.
    Directory,
}

impl DumpFormat {
    /// The archive's path inside the snapshot directory.
    pub fn archive_name(self) -> &'static str {
        match self {
            DumpFormat::Custom => "dump.pgdump",
            DumpFormat::Directory => "dump",
        }
    }
}

/// One file of the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the snapshot directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// The exact row count of one table when the snapshot was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// `count(*)` in the dump's own MVCC snapshot.
    pub rows: i64,
}

/// Database-level properties that `pg_dump` of one database does not carry (they belong to
/// the database, not its contents): re-applied to the staging database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseProps {
    /// Owner role.
    pub owner: String,
    /// Encoding name, e.g. `UTF8`.
    pub encoding: String,
    /// `LC_COLLATE`.
    pub collate: String,
    /// `LC_CTYPE`.
    pub ctype: String,
    /// `datacl` as text items (`role=CTc/grantor`), `None` for the default privileges.
    pub acl: Option<Vec<String>>,
    /// `ALTER DATABASE .. SET` values: (role, `name=value`); role `""` for all roles.
    pub settings: Vec<(String, String)>,
}

/// What `manifest.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Snapshot id (the directory's name).
    pub id: String,
    /// The label it was taken with.
    pub label: String,
    /// The database dumped.
    pub database: String,
    /// `server_version` of the server.
    pub server_version: String,
    /// `server_version_num`.
    pub server_version_num: i32,
    /// When the dump's snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// Archive format.
    pub format: DumpFormat,
    /// Total size of the files.
    pub size_bytes: u64,
    /// Every file of the archive with its checksum.
    pub files: Vec<FileEntry>,
    /// Row count per user table, consistent with the dump.
    pub tables: Vec<TableCount>,
    /// Database-level properties.
    pub database_props: DatabaseProps,
}

impl Manifest {
    /// Reads `<dir>/manifest.json`; a missing file is `NotFound`, an unreadable one `Corrupt`.
    pub async fn load(dir: &Path) -> Result<Self, PgError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| PgError::io(format!("cannot read {}", path.display()), e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            PgError::new(
                ErrorKind::Corrupt,
                format!(
                    "{} is damaged ({e}): this snapshot cannot be trusted",
                    path.display()
                ),
            )
        })
    }

    /// Writes `<dir>/manifest.json` (through a temporary file, then a rename).
    pub async fn store(&self, dir: &Path) -> Result<(), PgError> {
        let path = dir.join(MANIFEST_FILE);
        let tmp = dir.join(".manifest.json.tmp");
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| PgError::new(ErrorKind::Failed, format!("cannot encode the manifest: {e}")))?;
        tokio::fs::write(&tmp, json)
            .await
            .map_err(|e| PgError::io(format!("cannot write {}", tmp.display()), e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| PgError::io(format!("cannot write {}", path.display()), e))
    }

    /// The archive's path inside `dir`.
    pub fn archive(&self, dir: &Path) -> PathBuf {
        dir.join(self.format.archive_name())
    }
}

/// Every file under `dir` except the manifest, with size and SHA-256, sorted by path.
pub async fn hash_tree(dir: &Path) -> Result<Vec<FileEntry>, PgError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut files = Vec::new();
        walk(&dir, &dir, &mut files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    })
    .await
    .map_err(|e| PgError::new(ErrorKind::Failed, format!("hashing task failed: {e}")))?
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<FileEntry>) -> Result<(), PgError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| PgError::io(format!("cannot list {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| PgError::io(format!("cannot list {}", dir.display()), e))?;
        let path = entry.path();
        let ft = entry
            .file_type()
            .map_err(|e| PgError::io(format!("cannot stat {}", path.display()), e))?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if rel == MANIFEST_FILE || rel.starts_with(".manifest") {
                continue;
            }
            let (size, sha256) = hash_file(&path)?;
            out.push(FileEntry {
                path: rel,
                size,
                sha256,
            });
        }
    }
    Ok(())
}

/// Size and lower-case hex SHA-256 of a file.
pub fn hash_file(path: &Path) -> Result<(u64, String), PgError> {
    let mut f =
        std::fs::File::open(path).map_err(|e| PgError::io(format!("cannot open {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| PgError::io(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    Ok((size, digest.iter().map(|b| format!("{b:02x}")).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_tree_lists_nested_files_but_not_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dump")).unwrap();
        std::fs::write(dir.path().join("dump/toc.dat"), b"abc").unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), b"{}").unwrap();
        let files = hash_tree(dir.path()).await.unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "dump/toc.dat");
        assert_eq!(files[0].size, 3);
        assert_eq!(
            files[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
