//! Taking, verifying, listing and removing snapshots (the archive side of the adapter).

use crate::adapter::PostgresSnapshot;
use crate::dbprops;
use crate::error::PgError;
use crate::integrity;
use crate::manifest::{hash_file, hash_tree, Manifest, MANIFEST_FILE};
use crate::tools;
use chrono::Utc;
use rollback_core::{AdapterError, ErrorKind, SnapshotId, SnapshotInfo};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

impl PostgresSnapshot {
    pub(crate) async fn take_snapshot(&self, label: &str) -> Result<SnapshotInfo, AdapterError> {
        let _guard = self.lock.lock().await;
        let live = &self.config.dbname;
        let client = self.connect(live).await?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
                &[],
            )
            .await
            .map_err(|e| PgError::sql("reading the server version", e))?;
        let (server_version, server_version_num): (String, i32) = (row.get(0), row.get(1));
        if server_version_num < 130000 {
            return Err(AdapterError::new(
                ErrorKind::InvalidInput,
                format!("PostgreSQL {server_version} is not supported: rollback-postgres needs 13 or newer"),
            ));
        }
        // One MVCC snapshot for the row counts and the dump.
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| PgError::sql("starting the snapshot transaction", e))?;
        let exported: String = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| PgError::sql("exporting the snapshot", e))?
            .get(0);
        let created_at = Utc::now();
        let tables = integrity::row_counts(&client).await?;
        let database_props = dbprops::capture(&client).await?;

        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| PgError::io(format!("cannot create snapshot root {}", self.root.display()), e))?;
        let mut id = self.new_snapshot_id(label, created_at);
        let mut n = 2;
        while tokio::fs::try_exists(self.root.join(&id)).await.unwrap_or(false) {
            id = format!("{}-{n}", self.new_snapshot_id(label, created_at));
            n += 1;
        }
        let partial = self.root.join(format!(".partial-{id}"));
        let _ = tokio::fs::remove_dir_all(&partial).await;
        tokio::fs::create_dir_all(&partial)
            .await
            .map_err(|e| PgError::io(format!("cannot create {}", partial.display()), e))?;
        let format = self.options.format;
        let archive = partial.join(format.archive_name());
        let started = Instant::now();
        let dumped = self.pg_dump(live, &archive, format, Some(&exported)).await;
        let _ = client.batch_execute("COMMIT").await;
        if let Err(e) = dumped {
            let _ = tokio::fs::remove_dir_all(&partial).await;
            return Err(e.into());
        }
        let files = hash_tree(&partial).await?;
        let size_bytes = files.iter().map(|f| f.size).sum();
        let manifest = Manifest {
            id: id.clone(),
            label: label.to_owned(),
            database: live.clone(),
            server_version,
            server_version_num,
            created_at,
            format,
            size_bytes,
            files,
            tables,
            database_props,
        };
        manifest.store(&partial).await?;
        let dir = self.root.join(&id);
        tokio::fs::rename(&partial, &dir)
            .await
            .map_err(|e| PgError::io(format!("cannot move the snapshot into {}", dir.display()), e))?;
        tracing::info!(snapshot = %id, bytes = size_bytes, elapsed = ?started.elapsed(), "snapshot taken");
        Ok(SnapshotInfo {
            id: SnapshotId::new(id),
            label: label.to_owned(),
            created_at,
            size_bytes: Some(size_bytes),
            location: dir.display().to_string(),
            warnings: Vec::new(),
        })
    }

    pub(crate) async fn verify_snapshot(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        self.verify_inner(id).await?;
        Ok(())
    }

    pub(crate) async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, AdapterError> {
        let mut out = Vec::new();
        let mut entries = match tokio::fs::read_dir(&self.root).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(PgError::io(format!("cannot list {}", self.root.display()), e).into()),
        };
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| PgError::io(format!("cannot list {}", self.root.display()), e))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            if name.starts_with('.') || name == "preserved" || !dir.join(MANIFEST_FILE).is_file() {
                continue;
            }
            match Manifest::load(&dir).await {
                Ok(m) => out.push(SnapshotInfo {
                    id: SnapshotId::new(name),
                    label: m.label,
                    created_at: m.created_at,
                    size_bytes: Some(m.size_bytes),
                    location: dir.display().to_string(),
                    warnings: Vec::new(),
                }),
                Err(e) => {
                    tracing::warn!(snapshot = %name, error = %e, "skipping a snapshot with a damaged manifest")
                }
            }
        }
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.as_str().cmp(a.id.as_str()))
        });
        Ok(out)
    }

    pub(crate) async fn remove_snapshot(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        let _guard = self.lock.lock().await;
        // Only the manifest's presence is checked, so that a damaged snapshot can be removed.
        let dir = self.snapshot_dir(id)?;
        if !tokio::fs::try_exists(dir.join(MANIFEST_FILE))
            .await
            .unwrap_or(false)
        {
            return Err(AdapterError::not_found(format!(
                "snapshot `{id}` does not exist in {}: run list() to see snapshots",
                self.root.display()
            )));
        }
        tokio::fs::remove_dir_all(&dir)
            .await
            .map_err(|e| PgError::io(format!("cannot remove snapshot {}", dir.display()), e))?;
        Ok(())
    }

    pub(crate) fn snapshot_dir(&self, id: &SnapshotId) -> Result<PathBuf, PgError> {
        let s = id.as_str();
        if s.is_empty() || s.starts_with('.') || s.contains('/') || s.contains('\\') || s == "preserved" {
            return Err(PgError::new(
                ErrorKind::NotFound,
                format!("snapshot `{s}` does not exist (not a snapshot id): run list() to see snapshots"),
            ));
        }
        Ok(self.root.join(s))
    }

    pub(crate) async fn existing_snapshot(&self, id: &SnapshotId) -> Result<(PathBuf, Manifest), PgError> {
        let dir = self.snapshot_dir(id)?;
        if !tokio::fs::try_exists(dir.join(MANIFEST_FILE))
            .await
            .unwrap_or(false)
        {
            return Err(PgError::new(
                ErrorKind::NotFound,
                format!(
                    "snapshot `{id}` does not exist in {}: run list() to see snapshots",
                    self.root.display()
                ),
            ));
        }
        let manifest = Manifest::load(&dir).await?;
        Ok((dir, manifest))
    }

    pub(crate) fn new_snapshot_id(&self, label: &str, at: chrono::DateTime<Utc>) -> String {
        let slug: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        let stamp = at.format("%Y%m%dT%H%M%S%3fZ");
        match slug.trim_matches('-') {
            "" => stamp.to_string(),
            slug => format!("{stamp}-{slug}"),
        }
    }

    pub(crate) async fn verify_inner(&self, id: &SnapshotId) -> Result<(PathBuf, Manifest), PgError> {
        let (dir, manifest) = self.existing_snapshot(id).await?;
        for f in &manifest.files {
            let path = dir.join(&f.path);
            let p2 = path.clone();
            let hashed = tokio::task::spawn_blocking(move || hash_file(&p2))
                .await
                .map_err(|e| PgError::new(ErrorKind::Failed, format!("hashing task failed: {e}")))?;
            let (size, sha) = match hashed {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(PgError::new(
                        ErrorKind::Corrupt,
                        format!(
                            "snapshot `{id}` is damaged: {} is missing; take a new snapshot",
                            path.display()
                        ),
                    ))
                }
                Err(e) => return Err(e),
            };
            if size != f.size {
                return Err(PgError::new(
                    ErrorKind::Corrupt,
                    format!(
                        "snapshot `{id}` is damaged: {} is {size} bytes, the manifest says {} (truncated or \
                         overwritten); do not restore it",
                        path.display(),
                        f.size
                    ),
                ));
            }
            if sha != f.sha256 {
                return Err(PgError::new(
                    ErrorKind::Corrupt,
                    format!(
                        "snapshot `{id}` is damaged: the SHA-256 of {} does not match the manifest (altered); do \
                         not restore it",
                        path.display()
                    ),
                ));
            }
        }
        let archive = manifest.archive(&dir);
        let args: Vec<OsString> = vec!["--list".into(), archive.as_os_str().to_owned()];
        tools::run(&self.tools.pg_restore, &args, None, Duration::from_secs(600))
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound | ErrorKind::Timeout => e,
                _ => PgError::new(
                    ErrorKind::Corrupt,
                    format!("snapshot `{id}`: pg_restore cannot read its archive: {e}"),
                ),
            })?;
        Ok((dir, manifest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PgConfig, PgTools};
    use chrono::TimeZone;

    #[test]
    fn snapshot_ids_sort_by_time_and_keep_a_safe_slug_of_the_label() {
        let db = PostgresSnapshot::new(
            PgConfig::new("h", 1, "u", "d"),
            "/nonexistent",
            PgTools::new("a", "b"),
        );
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            db.new_snapshot_id("before v2/../x", at),
            "20260102T030405000Z-before-v2----x"
        );
        assert_eq!(db.new_snapshot_id("ünï ☃", at), "20260102T030405000Z-n");
        assert_eq!(db.new_snapshot_id("☃", at), "20260102T030405000Z");
        assert!(db.snapshot_dir(&SnapshotId::new("../etc")).is_err());
        assert!(db.snapshot_dir(&SnapshotId::new("preserved")).is_err());
    }
}
