//! The default [`StateStore`]: [`DirStateStore`], a directory of JSON files written
//! durably.

use crate::domain::{Checkpoint, LockHolder};
use crate::error::{AdapterError, ErrorKind};
use crate::ids::CheckpointId;
use crate::journal::Journal;
use crate::private_files;
use crate::report::RollbackReport;
use crate::traits::StateStore;
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The default [`StateStore`]: a directory of JSON files.
///
/// Layout: `checkpoints/<id>.json`, `journal/<rollback id>.json`,
/// `reports/<rollback id>.json` and `.md`, and `lock.json`. Each file is written to a temp
/// file in the same directory (created exclusively, never through a planted symlink),
/// fsynced, renamed into place, and the directory fsynced.
///
/// Who can read what, whatever the umask: the directories it creates are `0700` and every
/// file `0600`; [`share_reports_with_group`](Self::share_reports_with_group) lets one group
/// read the reports (`reports/` `0750`, report files `0640`, the root `0710`), never others.
/// A directory it did not create is left as it is: [`StateStore::access_warnings`] names
/// what others can read, and pre-flight warns with it.
///
/// ```no_run
/// # async fn demo() -> Result<(), rollback_core::AdapterError> {
/// use rollback_core::{DirStateStore, StateStore};
/// let store = DirStateStore::open("/var/lib/myapp/rollback").await?;
/// println!("{} checkpoints", store.checkpoints().await?.len());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DirStateStore {
    root: PathBuf,
    report_group: Option<u32>,
}

impl DirStateStore {
    /// Opens (creating if needed, `0700`) a state directory.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, AdapterError> {
        let root = root.into();
        let dirs = ["checkpoints", "journal", "reports"].map(|d| root.join(d));
        blocking(move || {
            for d in dirs {
                private_files::create_dir_all(&d, private_files::DIR_MODE)
                    .map_err(|e| io_error("create state directory", &d, e))?;
            }
            Ok(())
        })
        .await?;
        Ok(Self {
            root,
            report_group: None,
        })
    }

    /// Lets the group `gid` read the reports (say, the on-call team's group): `reports/`
    /// becomes `0750` and each report `0640` with that group, the root `0710` (the group
    /// may pass through, not list it). Checkpoints, journals and the lock stay the owner's.
    /// Others never read anything.
    pub async fn share_reports_with_group(mut self, gid: u32) -> Result<Self, AdapterError> {
        let root = self.root.clone();
        blocking(move || {
            let reports = root.join("reports");
            for (path, mode) in [(&root, 0o710), (&reports, 0o750)] {
                private_files::set_group(path, gid).map_err(|e| io_error("set the group of", path, e))?;
                private_files::set_mode(path, mode).map_err(|e| io_error("set the mode of", path, e))?;
            }
            Ok(())
        })
        .await?;
        self.report_group = Some(gid);
        Ok(self)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock_path(&self) -> PathBuf {
        self.root.join("lock.json")
    }
}

#[async_trait]
impl StateStore for DirStateStore {
    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), AdapterError> {
        let path = self
            .root
            .join("checkpoints")
            .join(file_name(checkpoint.id.as_str(), "json"));
        write_json(path, checkpoint).await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, AdapterError> {
        let mut all: Vec<Checkpoint> = read_all(self.root.join("checkpoints")).await?;
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(all)
    }

    async fn remove_checkpoint(&self, id: &CheckpointId) -> Result<(), AdapterError> {
        let path = self.root.join("checkpoints").join(file_name(id.as_str(), "json"));
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => sync_parent(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", &path, e)),
        })
        .await
    }

    async fn save_journal(&self, journal: &Journal) -> Result<(), AdapterError> {
        let path = self
            .root
            .join("journal")
            .join(file_name(journal.id.as_str(), "json"));
        write_json(path, journal).await
    }

    async fn journals(&self) -> Result<Vec<Journal>, AdapterError> {
        let mut all: Vec<Journal> = read_all(self.root.join("journal")).await?;
        all.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        Ok(all)
    }

    async fn save_report(&self, report: &RollbackReport) -> Result<String, AdapterError> {
        let dir = self.root.join("reports");
        let json_path = dir.join(file_name(report.id.as_str(), "json"));
        let md_path = dir.join(file_name(report.id.as_str(), "md"));
        let group = self.report_group;
        let md = report.to_markdown().into_bytes();
        let json = to_json_bytes(report)?;
        let path = json_path.clone();
        blocking(move || {
            write_atomic_shared(&md_path, &md, group)?;
            write_atomic_shared(&path, &json, group)
        })
        .await?;
        Ok(json_path.display().to_string())
    }

    async fn try_lock(&self, holder: &LockHolder) -> Result<Option<LockHolder>, AdapterError> {
        let path = self.lock_path();
        let bytes = to_json_bytes(holder)?;
        blocking(move || {
            // Write the holder to a temp file, then hard-link it to `lock.json`: the link is
            // the atomic test-and-set (it fails when the lock exists), and the lock is never
            // seen half-written.
            let tmp = path.with_extension(format!("tmp-{}", unique_suffix()));
            {
                let mut f = private_files::create_new_file(&tmp, private_files::FILE_MODE)
                    .map_err(|e| io_error("write lock", &tmp, e))?;
                f.write_all(&bytes).map_err(|e| io_error("write lock", &tmp, e))?;
                f.sync_all().map_err(|e| io_error("fsync lock", &tmp, e))?;
            }
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    sync_parent(&path)?;
                    Ok(None)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok(Some(read_json_file::<LockHolder>(&path)?))
                }
                Err(e) => Err(io_error("take lock", &path, e)),
            }
        })
        .await
    }

    async fn lock_holder(&self) -> Result<Option<LockHolder>, AdapterError> {
        let path = self.lock_path();
        blocking(move || match read_json_file::<LockHolder>(&path) {
            Ok(h) => Ok(Some(h)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn unlock(&self, token: &str) -> Result<(), AdapterError> {
        let path = self.lock_path();
        let token = token.to_owned();
        blocking(move || match read_json_file::<LockHolder>(&path) {
            Ok(h) if h.token == token => {
                std::fs::remove_file(&path).map_err(|e| io_error("remove lock", &path, e))?;
                sync_parent(&path)
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
    }

    async fn access_warnings(&self) -> Result<Vec<String>, AdapterError> {
        let root = self.root.clone();
        let shared = self.report_group.is_some();
        blocking(move || {
            let mut found = private_files::audit(&root, 0, shared);
            found.extend(private_files::audit(&root.join("lock.json"), 0, false));
            for d in ["checkpoints", "journal"] {
                found.extend(private_files::audit(&root.join(d), 1, false));
            }
            found.extend(private_files::audit(&root.join("reports"), 1, shared));
            Ok(found)
        })
        .await
    }
}

fn file_name(id: &str, ext: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.{ext}")
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn io_error(action: &str, path: &Path, e: std::io::Error) -> AdapterError {
    AdapterError::io(
        format!(
            "{action} `{}`: {e}; check the state directory exists and is writable",
            path.display()
        ),
        e,
    )
}

fn to_json_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, AdapterError> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| AdapterError::new(ErrorKind::Failed, format!("serialize state: {e}")).with_source(e))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AdapterError> + Send + 'static,
) -> Result<T, AdapterError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AdapterError::new(ErrorKind::Failed, format!("state store task failed: {e}")))?
}

fn sync_parent(path: &Path) -> Result<(), AdapterError> {
    crate::sys::sync_dir_of(path).map_err(|e| io_error("fsync the directory of", path, e))
}

/// [`sys::write_durable`](crate::sys::write_durable) with mode `0600`.
pub(crate) fn write_atomic_sync(path: &Path, bytes: &[u8]) -> Result<(), AdapterError> {
    write_atomic_shared(path, bytes, None)
}

/// [`write_atomic_sync`], the file `0640` with group `group` when one is given.
fn write_atomic_shared(path: &Path, bytes: &[u8], group: Option<u32>) -> Result<(), AdapterError> {
    let mode = if group.is_some() {
        0o640
    } else {
        private_files::FILE_MODE
    };
    crate::sys::write_durable_shared(path, bytes, mode, group).map_err(|e| io_error("write", path, e))
}

async fn write_atomic(path: PathBuf, bytes: Vec<u8>) -> Result<(), AdapterError> {
    blocking(move || write_atomic_sync(&path, &bytes)).await
}

async fn write_json<T: Serialize>(path: PathBuf, value: &T) -> Result<(), AdapterError> {
    write_atomic(path, to_json_bytes(value)?).await
}

fn read_json_file<T: DeserializeOwned>(path: &Path) -> Result<T, AdapterError> {
    let bytes = std::fs::read(path).map_err(|e| io_error("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        AdapterError::new(
            ErrorKind::Corrupt,
            format!(
                "`{}` is not valid state JSON ({e}); move it aside to continue",
                path.display()
            ),
        )
        .with_source(e)
    })
}

async fn read_all<T: DeserializeOwned + Send + 'static>(dir: PathBuf) -> Result<Vec<T>, AdapterError> {
    blocking(move || {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| io_error("list", &dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| io_error("list", &dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("json")
                && !path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            {
                out.push(read_json_file(&path)?);
            }
        }
        Ok(out)
    })
    .await
}

/// Finds a checkpoint by id among `checkpoints`.
pub(crate) fn find_checkpoint<'a>(
    checkpoints: &'a [Checkpoint],
    id: &CheckpointId,
) -> Option<&'a Checkpoint> {
    checkpoints.iter().find(|c| &c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RollbackId;
    use chrono::{DateTime, Utc};

    fn holder(token: &str) -> LockHolder {
        LockHolder {
            pid: 1,
            host: "h".into(),
            since: Utc::now(),
            rollback: RollbackId::new("rb"),
            token: token.into(),
            machine: None,
            boot: None,
        }
    }

    #[tokio::test]
    async fn lock_is_exclusive_and_only_its_token_unlocks() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStateStore::open(dir.path()).await.unwrap();
        assert_eq!(store.try_lock(&holder("a")).await.unwrap(), None);
        let held = store.try_lock(&holder("b")).await.unwrap().unwrap();
        assert_eq!(held.token, "a");
        store.unlock("b").await.unwrap();
        assert_eq!(store.lock_holder().await.unwrap().unwrap().token, "a");
        store.unlock("a").await.unwrap();
        assert_eq!(store.lock_holder().await.unwrap(), None);
        assert_eq!(store.try_lock(&holder("b")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn checkpoints_round_trip_newest_first_and_leave_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStateStore::open(dir.path()).await.unwrap();
        for (i, id) in ["old", "new"].iter().enumerate() {
            store
                .save_checkpoint(&Checkpoint {
                    id: CheckpointId::new(*id),
                    label: "l".into(),
                    created_at: DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap(),
                    snapshot: None,
                    snapshot_taken_at: None,
                    revision: None,
                    config: None,
                    good: true,
                    warnings: Vec::new(),
                    metrics_baseline: None,
                })
                .await
                .unwrap();
        }
        let ids: Vec<_> = store
            .checkpoints()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, vec![CheckpointId::new("new"), CheckpointId::new("old")]);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
    }

    #[tokio::test]
    async fn a_damaged_file_is_a_corrupt_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStateStore::open(dir.path()).await.unwrap();
        std::fs::write(dir.path().join("checkpoints/x.json"), b"{not json").unwrap();
        let e = store.checkpoints().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("x.json"));
    }
}
