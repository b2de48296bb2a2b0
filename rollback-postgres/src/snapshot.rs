//! Taking, verifying, listing and removing snapshots (the archive side of the adapter).

use crate::adapter::PostgresSnapshot;
use crate::dbprops;
use crate::error::PgError;
use crate::files;
use crate::integrity::{self, IntegrityBaseline};
use crate::manifest::{
    hash_file, hash_tree, DigestCheck, DumpFormat, Manifest, MANIFEST_FILE, MEASURED_BASELINE_FILE,
    WRITER_FILE,
};
use crate::tools;
use chrono::{DateTime, Utc};
use rollback_core::sys::host_name;
use rollback_core::{AdapterError, ErrorKind, SnapshotId, SnapshotInfo};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A `.partial-*` directory without a writer file is abandoned once it is this old.
const ORPHAN_PARTIAL_AGE: Duration = Duration::from_secs(3600);

/// The content of [`WRITER_FILE`].
#[derive(Debug, Serialize, Deserialize)]
struct Writer {
    pid: u32,
    host: String,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat`), so that a
    /// recycled pid is not taken for the writer.
    proc_start: Option<u64>,
    started_at: DateTime<Utc>,
}

/// The content of [`MEASURED_BASELINE_FILE`].
#[derive(Debug, Serialize, Deserialize)]
struct MeasuredBaseline {
    snapshot: String,
    measured_at: DateTime<Utc>,
    measured_on: String,
    baseline: IntegrityBaseline,
}

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
        // What is already broken in this data (orphan rows under a NOT VALID key, a sequence
        // behind its column), in the same MVCC snapshot: recorded, not refused.
        let baseline = IntegrityBaseline::measure(&client).await?;
        let mut warnings = baseline.warnings();
        let database_props = dbprops::capture(&client).await?;
        // A dump carries a materialized view's definition, not its rows: the restore
        // refreshes it from the snapshot's tables.
        let matviews: Vec<String> = client
            .query(
                "SELECT format('%I.%I', schemaname, matviewname) FROM pg_matviews WHERE ispopulated ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| PgError::sql("listing the materialized views", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // pg_dump records no extension owner: the restoring role becomes it.
        let foreign_extensions: Vec<String> = client
            .query(
                "SELECT e.extname::text || ' (owned by ' || pg_get_userbyid(e.extowner) || ')' FROM pg_extension e \
                 WHERE e.extowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user) \
                   AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = e.extowner) ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| PgError::sql("listing the extensions' owners", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !foreign_extensions.is_empty() {
            warnings.push(format!(
                "extension(s) {}: a restore by this role makes it their owner (pg_dump records no extension owner); \
                 connect as their owner to keep it",
                foreign_extensions.join(", ")
            ));
        }
        if !matviews.is_empty() {
            warnings.push(format!(
                "materialized view(s) {}: a restore rebuilds them from the snapshot's tables (REFRESH), so rows they \
                 held that were already stale when the snapshot was taken are not kept",
                matviews.join(", ")
            ));
        }

        // 0700 when created here; an existing root is left as it is (access_warnings
        // reports it when others can read it).
        files::create_private_dir(&self.root).await?;
        self.clear_abandoned_partials().await;
        let mut id = self.new_snapshot_id(label, created_at);
        let mut n = 2;
        let taken = |id: &str| {
            let (done, partial) = (self.root.join(id), self.root.join(format!(".partial-{id}")));
            async move {
                tokio::fs::try_exists(done).await.unwrap_or(false)
                    || tokio::fs::try_exists(partial).await.unwrap_or(false)
            }
        };
        while taken(&id).await {
            id = format!("{}-{n}", self.new_snapshot_id(label, created_at));
            n += 1;
        }
        let partial = self.root.join(format!(".partial-{id}"));
        // Private before pg_dump writes a byte into it: 0700, whatever the umask (pg_dump
        // creates its files with the umask's mode; they are made 0600 once it is done).
        files::create_private_dir(&partial).await?;
        if let Err(e) = write_writer_file(&partial).await {
            let _ = tokio::fs::remove_dir_all(&partial).await;
            return Err(e.into());
        }
        let format = self.options.format;
        let archive = partial.join(format.archive_name());
        if format == DumpFormat::Directory {
            // pg_dump accepts an empty directory: made private here, before it writes.
            if let Err(e) = files::create_private_dir(&archive).await {
                let _ = tokio::fs::remove_dir_all(&partial).await;
                return Err(e.into());
            }
        }
        let started = Instant::now();
        let dumped = self.pg_dump(live, &archive, format, Some(&exported)).await;
        let _ = client.batch_execute("COMMIT").await;
        let dumped = match dumped {
            Ok(()) => files::make_private_tree(&partial).await,
            Err(e) => Err(e),
        };
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
            baseline: Some(baseline),
            manifest_sha256: None,
        };
        manifest.store(&partial).await?;
        // Gone just before the rename: a partial without a writer file is kept for an hour.
        let _ = tokio::fs::remove_file(partial.join(WRITER_FILE)).await;
        let dir = self.root.join(&id);
        tokio::fs::rename(&partial, &dir)
            .await
            .map_err(|e| PgError::io(format!("cannot move the snapshot into {}", dir.display()), e))?;
        tracing::info!(snapshot = %id, bytes = size_bytes, elapsed = ?started.elapsed(), "snapshot taken");
        for w in &warnings {
            tracing::warn!(snapshot = %id, "integrity baseline: {w}");
        }
        Ok(SnapshotInfo {
            id: SnapshotId::new(id),
            label: label.to_owned(),
            created_at,
            size_bytes: Some(size_bytes),
            location: dir.display().to_string(),
            warnings,
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
            let has_manifest = tokio::fs::metadata(dir.join(MANIFEST_FILE))
                .await
                .is_ok_and(|m| m.is_file());
            if name.starts_with('.') || name == "preserved" || !has_manifest {
                continue;
            }
            match Manifest::load(&dir).await {
                Ok(m) => {
                    let baseline = match m.baseline {
                        Some(b) => Some(b),
                        None => load_measured_baseline(&dir, &name).await,
                    };
                    out.push(SnapshotInfo {
                        id: SnapshotId::new(name),
                        label: m.label,
                        created_at: m.created_at,
                        size_bytes: Some(m.size_bytes),
                        location: dir.display().to_string(),
                        warnings: baseline.map(|b| b.warnings()).unwrap_or_default(),
                    })
                }
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
        self.clear_abandoned_partials().await;
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
        // The manifest's own checksum first: its file list, row counts and baseline are
        // only trusted when its content is what was written.
        if Manifest::check_digest(&dir).await? == DigestCheck::Absent {
            tracing::warn!(
                snapshot = %id,
                "{} has no manifest_sha256 (written by an earlier version): its content cannot be checked",
                dir.join(MANIFEST_FILE).display()
            );
        }
        let manifest = Manifest::load(&dir).await?;
        Ok((dir, manifest))
    }

    /// The integrity baseline of snapshot `id`: the manifest's, else one measured later on
    /// a staged copy of it, else `None` (unknown).
    pub(crate) async fn snapshot_baseline(
        &self,
        id: &SnapshotId,
    ) -> Result<Option<IntegrityBaseline>, PgError> {
        let (dir, manifest) = self.existing_snapshot(id).await?;
        Ok(match manifest.baseline {
            Some(b) => Some(b),
            None => load_measured_baseline(&dir, id.as_str()).await,
        })
    }

    /// Records a baseline measured on `measured_on` (a staged copy of snapshot `id`, whose
    /// manifest records none) beside the manifest, which is left as it was written.
    pub(crate) async fn store_measured_baseline(
        &self,
        id: &SnapshotId,
        measured_on: &str,
        baseline: &IntegrityBaseline,
    ) -> Result<(), PgError> {
        let dir = self.snapshot_dir(id)?;
        let record = MeasuredBaseline {
            snapshot: id.to_string(),
            measured_at: Utc::now(),
            measured_on: measured_on.to_owned(),
            baseline: baseline.clone(),
        };
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|e| PgError::json(ErrorKind::Failed, "cannot encode the measured baseline", e))?;
        files::write_durable(&dir.join(MEASURED_BASELINE_FILE), json).await
    }

    /// Removes the `.partial-*` directories under the snapshot root that were left by an
    /// interrupted snapshot: those whose writer process (recorded with its host) is gone
    /// from this host, and those without a writer record older than an hour. Never one
    /// whose writer is alive or on another host. Best effort: failures are logged. Returns
    /// the directories removed.
    pub(crate) async fn clear_abandoned_partials(&self) -> Vec<PathBuf> {
        let root = self.root.clone();
        let found = tokio::task::spawn_blocking(move || abandoned_partials(&root)).await;
        let mut removed = Vec::new();
        for (dir, why) in found.unwrap_or_default() {
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), "removed an interrupted snapshot ({why})");
                    removed.push(dir);
                }
                Err(e) => tracing::warn!(
                    dir = %dir.display(),
                    error = %e,
                    "could not remove an interrupted snapshot ({why})"
                ),
            }
        }
        removed
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
                .map_err(|e| PgError::task(format!("hashing {}", path.display()), e))?;
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
        tools::run(&self.tools.pg_restore, &args, None, &[], Duration::from_secs(600))
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

/// The measured baseline beside a manifest, if any (a damaged one is ignored, with a warning).
async fn load_measured_baseline(dir: &Path, id: &str) -> Option<IntegrityBaseline> {
    let path = dir.join(MEASURED_BASELINE_FILE);
    let bytes = tokio::fs::read(&path).await.ok()?;
    match serde_json::from_slice::<MeasuredBaseline>(&bytes) {
        Ok(m) if m.snapshot == id => Some(m.baseline),
        Ok(m) => {
            tracing::warn!(file = %path.display(), "ignoring a measured baseline of snapshot {}", m.snapshot);
            None
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "ignoring a damaged measured baseline");
            None
        }
    }
}

async fn write_writer_file(partial: &Path) -> Result<(), PgError> {
    let pid = std::process::id();
    // The host name and the start time come from /proc: read off the runtime's threads.
    let (host, proc_start) =
        tokio::task::spawn_blocking(move || (host_name(), process_start(pid).ok().flatten()))
            .await
            .map_err(|e| PgError::task("reading this process's host and start time", e))?;
    let writer = Writer {
        pid,
        host,
        proc_start,
        started_at: Utc::now(),
    };
    let json = serde_json::to_vec(&writer)
        .map_err(|e| PgError::json(ErrorKind::Failed, "cannot encode the writer record", e))?;
    files::write_new_private(&partial.join(WRITER_FILE), json).await
}

/// The start time of process `pid` (clock ticks since boot, field 22 of `/proc/<pid>/stat`):
/// `Ok(None)` when there is no such process, `Err` when that cannot be told (no `/proc`).
fn process_start(pid: u32) -> Result<Option<u64>, ()> {
    if !Path::new("/proc/self/stat").exists() {
        return Err(());
    }
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err(()),
    };
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or(())?;
    after
        .split_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .map(Some)
        .ok_or(())
}

/// The latest modification time of `path` or anything under it.
fn newest_modification(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut newest = meta.modified().ok()?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).ok()?.flatten() {
            if let Some(t) = newest_modification(&entry.path()) {
                newest = newest.max(t);
            }
        }
    }
    Some(newest)
}

/// The `.partial-*` directories under `root` whose writer is gone, with the reason.
fn abandoned_partials(root: &Path) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let host = host_name();
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        if !name.starts_with(".partial-") || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let writer = std::fs::read(dir.join(WRITER_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Writer>(&b).ok());
        match writer {
            Some(w) if w.host != host => {
                tracing::debug!(dir = %dir.display(), host = %w.host, "partial snapshot written from another host: kept")
            }
            Some(w) => {
                let gone = match process_start(w.pid) {
                    Ok(None) => true,
                    Ok(Some(start)) => w.proc_start.is_some_and(|s| s != start),
                    Err(()) => false,
                };
                if gone {
                    out.push((dir, format!("its writer, pid {} on {host}, is gone", w.pid)));
                }
            }
            None => {
                // An older version's writer leaves no record: judge by the newest write
                // anywhere inside (a long pg_dump keeps growing its file).
                let age = newest_modification(&dir).and_then(|t| SystemTime::now().duration_since(t).ok());
                if age.is_some_and(|a| a > ORPHAN_PARTIAL_AGE) {
                    out.push((dir, "no writer record, untouched for over an hour".to_owned()));
                }
            }
        }
    }
    out
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
