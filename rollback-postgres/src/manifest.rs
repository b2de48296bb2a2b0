//! `manifest.json`, written beside every snapshot: what was dumped, from which server,
//! the size and SHA-256 of every file, the exact row count of every user table, the
//! snapshot's integrity baseline, and a SHA-256 of the manifest's own content.

use crate::error::PgError;
use crate::files;
use crate::integrity::{IntegrityBaseline, TableCount};
use chrono::{DateTime, Utc};
use rollback_core::ErrorKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The manifest file's name inside a snapshot directory.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";

/// How the archive was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DumpFormat {
    /// `pg_dump -Fc`: one compressed file (`dump.pgdump`); restores in parallel too.
    #[default]
    Custom,
    /// `pg_dump -Fd -j N`: a directory (`dump/`), dumped in parallel.
    Directory,
}

impl DumpFormat {
    /// The archive's path inside the snapshot directory.
    pub(crate) fn archive_name(self) -> &'static str {
        match self {
            DumpFormat::Custom => "dump.pgdump",
            DumpFormat::Directory => "dump",
        }
    }
}

/// One file of the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    /// Path relative to the snapshot directory.
    pub(crate) path: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Lower-case hex SHA-256.
    pub(crate) sha256: String,
}

/// Inside a `.partial-<id>` directory: who is writing it (pid, host), so that a directory
/// left by a writer that died can be told from one still being written.
pub(crate) const WRITER_FILE: &str = ".writer";

/// Inside a snapshot directory whose manifest records no baseline (an older version's):
/// the baseline measured later on a staged copy of it. The manifest is never rewritten.
pub(crate) const MEASURED_BASELINE_FILE: &str = "baseline.measured.json";

/// Database-level properties that `pg_dump` of one database does not carry (they belong to
/// the database, not its contents): re-applied to the staging database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DatabaseProps {
    /// Owner role.
    pub(crate) owner: String,
    /// Encoding name, e.g. `UTF8`.
    pub(crate) encoding: String,
    /// `LC_COLLATE`.
    pub(crate) collate: String,
    /// `LC_CTYPE`.
    pub(crate) ctype: String,
    /// `datacl` as text items (`role=CTc/grantor`), `None` for the default privileges.
    pub(crate) acl: Option<Vec<String>>,
    /// `ALTER DATABASE .. SET` values: (role, `name=value`); role `""` for all roles.
    pub(crate) settings: Vec<(String, String)>,
    /// `COMMENT ON DATABASE` (not in a dump restored without `--create`).
    #[serde(default)]
    pub(crate) comment: Option<String>,
}

/// What `manifest.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Snapshot id (the directory's name).
    pub(crate) id: String,
    /// The label it was taken with.
    pub(crate) label: String,
    /// The database dumped.
    pub(crate) database: String,
    /// `server_version` of the server.
    pub(crate) server_version: String,
    /// `server_version_num`.
    pub(crate) server_version_num: i32,
    /// When the dump's snapshot was taken.
    pub(crate) created_at: DateTime<Utc>,
    /// Archive format.
    pub(crate) format: DumpFormat,
    /// Total size of the files.
    pub(crate) size_bytes: u64,
    /// Every file of the archive with its checksum.
    pub(crate) files: Vec<FileEntry>,
    /// Row count per user table, consistent with the dump.
    pub(crate) tables: Vec<TableCount>,
    /// Database-level properties.
    pub(crate) database_props: DatabaseProps,
    /// The snapshot's integrity baseline (orphan rows per foreign key, sequences behind
    /// their columns), measured in the dump's own MVCC snapshot. `None` in manifests written
    /// by versions before it was recorded: unknown, not "nothing broken".
    #[serde(default)]
    pub(crate) baseline: Option<IntegrityBaseline>,
    /// Lower-case hex SHA-256 of the manifest's own content (its canonical JSON without this
    /// field), set by [`Manifest::store`] and checked by `verify`, so that a hand-edited or
    /// damaged field is caught before a restore. `None` in manifests written by versions
    /// before it was recorded (accepted with a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) manifest_sha256: Option<String>,
}

/// What [`Manifest::check_digest`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DigestCheck {
    /// The manifest's content matches its `manifest_sha256`.
    Matches,
    /// The manifest has no `manifest_sha256` (written by an earlier version).
    Absent,
}

/// The JSON key of [`Manifest::manifest_sha256`].
const DIGEST_KEY: &str = "manifest_sha256";

impl Manifest {
    /// Reads `<dir>/manifest.json`; a missing file is `NotFound`, an unreadable one `Corrupt`.
    pub(crate) async fn load(dir: &Path) -> Result<Self, PgError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| PgError::io(format!("cannot read {}", path.display()), e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            PgError::json(
                ErrorKind::Corrupt,
                format!("{} is damaged: this snapshot cannot be trusted", path.display()),
                e,
            )
        })
    }

    /// The SHA-256 of this manifest's content: its canonical JSON (keys sorted, no
    /// whitespace) without `manifest_sha256`.
    pub(crate) fn content_digest(&self) -> Result<String, PgError> {
        let value = serde_json::to_value(self)
            .map_err(|e| PgError::json(ErrorKind::Failed, "cannot encode the manifest", e))?;
        Ok(value_digest(value))
    }

    /// Checks `<dir>/manifest.json` against its own `manifest_sha256`, on the JSON as
    /// written (so fields this version does not know are covered too). A mismatch is
    /// `Corrupt` and names the file.
    pub(crate) async fn check_digest(dir: &Path) -> Result<DigestCheck, PgError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| PgError::io(format!("cannot read {}", path.display()), e))?;
        let corrupt = |why: String| {
            PgError::new(
                ErrorKind::Corrupt,
                format!(
                    "{} was altered or damaged after it was written ({why}): do not restore this snapshot; take a new one",
                    path.display()
                ),
            )
        };
        let mut value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        let Some(object) = value.as_object_mut() else {
            return Err(corrupt("not a JSON object".to_owned()));
        };
        let recorded = match object.remove(DIGEST_KEY) {
            None | Some(serde_json::Value::Null) => return Ok(DigestCheck::Absent),
            Some(serde_json::Value::String(s)) => s,
            Some(_) => return Err(corrupt(format!("{DIGEST_KEY} is not a string"))),
        };
        if value_digest(value) == recorded {
            Ok(DigestCheck::Matches)
        } else {
            Err(corrupt(format!("its content does not match its {DIGEST_KEY}")))
        }
    }

    /// Writes `<dir>/manifest.json` durably (`0600`, see [`files::write_durable`]), with
    /// `manifest_sha256` computed over the content written.
    pub(crate) async fn store(&self, dir: &Path) -> Result<(), PgError> {
        let sealed = Manifest {
            manifest_sha256: Some(self.content_digest()?),
            ..self.clone()
        };
        let json = serde_json::to_vec_pretty(&sealed)
            .map_err(|e| PgError::json(ErrorKind::Failed, "cannot encode the manifest", e))?;
        files::write_durable(&dir.join(MANIFEST_FILE), json).await
    }

    /// The archive's path inside `dir`.
    pub(crate) fn archive(&self, dir: &Path) -> PathBuf {
        dir.join(self.format.archive_name())
    }
}

/// SHA-256 of `value` without its digest key, in canonical form.
fn value_digest(mut value: serde_json::Value) -> String {
    if let Some(object) = value.as_object_mut() {
        object.remove(DIGEST_KEY);
    }
    let mut text = String::new();
    canonical(&value, &mut text);
    hex(&Sha256::digest(text.as_bytes()))
}

/// Compact JSON with object keys sorted, whatever the map's own order.
fn canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(k) {
                    canonical(v, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file under `dir` except the manifest (and the adapter's own bookkeeping files), with size and SHA-256, sorted by path.
pub(crate) async fn hash_tree(dir: &Path) -> Result<Vec<FileEntry>, PgError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut files = Vec::new();
        walk(&dir, &dir, &mut files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    })
    .await
    .map_err(|e| PgError::task("hashing the snapshot's files", e))?
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
            if rel == MANIFEST_FILE
                || rel.starts_with(".manifest")
                || rel == WRITER_FILE
                || rel == MEASURED_BASELINE_FILE
            {
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
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String), PgError> {
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
    Ok((size, hex(&hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            id: "s".into(),
            label: "l".into(),
            database: "app".into(),
            server_version: "15.0".into(),
            server_version_num: 150000,
            created_at: DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            format: DumpFormat::Custom,
            size_bytes: 3,
            files: vec![],
            tables: vec![TableCount {
                schema: "public".into(),
                table: "t".into(),
                rows: 300,
            }],
            database_props: DatabaseProps::default(),
            baseline: Some(IntegrityBaseline::default()),
            manifest_sha256: None,
        }
    }

    #[tokio::test]
    async fn the_manifest_digest_covers_content_not_layout() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        manifest().store(dir.path()).await.unwrap();
        manifest().store(dir.path()).await.unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec![MANIFEST_FILE.to_owned()],
            "replaced, no temporary file left"
        );
        let mode = std::fs::metadata(dir.path().join(MANIFEST_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            Manifest::check_digest(dir.path()).await.unwrap(),
            DigestCheck::Matches
        );
        let loaded = Manifest::load(dir.path()).await.unwrap();
        assert_eq!(
            loaded.manifest_sha256.as_deref(),
            Some(manifest().content_digest().unwrap().as_str())
        );

        // Same content, keys in another order and compact: still matches.
        let path = dir.path().join(MANIFEST_FILE);
        let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut reordered: Vec<(String, serde_json::Value)> =
            value.as_object().unwrap().clone().into_iter().collect();
        reordered.reverse();
        let text = format!(
            "{{{}}}",
            reordered
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::Value::String(k.clone())))
                .collect::<Vec<_>>()
                .join(",")
        );
        std::fs::write(&path, text).unwrap();
        assert_eq!(
            Manifest::check_digest(dir.path()).await.unwrap(),
            DigestCheck::Matches
        );

        let mut edited = value.clone();
        edited["tables"][0]["rows"] = serde_json::json!(301);
        std::fs::write(&path, edited.to_string()).unwrap();
        let e = Manifest::check_digest(dir.path()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("do not restore"), "{e}");

        let mut old = value;
        old.as_object_mut().unwrap().remove("manifest_sha256");
        std::fs::write(&path, old.to_string()).unwrap();
        assert_eq!(
            Manifest::check_digest(dir.path()).await.unwrap(),
            DigestCheck::Absent
        );
    }

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
