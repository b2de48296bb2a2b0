//! The stored versions of one env file: `<name>.backup.<UTC timestamp>` files (the runbook's
//! naming, so backups it made by hand are listed too) and a small index of their labels.

use crate::atomic::{self, FileMode};
use crate::error::EnvFileError;
use chrono::{DateTime, NaiveDateTime, Utc};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const STAMP: &str = "%Y%m%dT%H%M%S%.3fZ";

/// One stored version on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredVersion {
    /// The file name, which is also the version id.
    pub name: String,
    pub path: PathBuf,
    pub created_at: DateTime<Utc>,
}

/// The history directory of one env file.
#[derive(Clone, Debug)]
pub(crate) struct History {
    pub dir: PathBuf,
    /// `<name>.backup.`
    prefix: String,
    labels: PathBuf,
}

impl History {
    pub(crate) fn new(dir: PathBuf, live_name: &str) -> Self {
        let labels = dir.join(format!(".{live_name}.backup-labels.json"));
        Self {
            dir,
            prefix: format!("{live_name}.backup."),
            labels,
        }
    }

    /// True when `id` names a file of this history (and nothing outside it).
    pub(crate) fn owns(&self, id: &str) -> bool {
        id.starts_with(&self.prefix) && !id.contains('/') && !atomic::is_temp_name(id)
    }

    /// All stored versions, newest first.
    pub(crate) fn list(&self) -> Result<Vec<StoredVersion>, EnvFileError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EnvFileError::io("list", &self.dir)(e)),
        };
        let mut versions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(EnvFileError::io("list", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !self.owns(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let created_at = self.stamp_of(&name).or_else(|| {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .map(DateTime::<Utc>::from)
            });
            versions.push(StoredVersion {
                path: entry.path(),
                created_at: created_at.unwrap_or_default(),
                name,
            });
        }
        versions.sort_by(|a, b| (b.created_at, &b.name).cmp(&(a.created_at, &a.name)));
        Ok(versions)
    }

    fn stamp_of(&self, name: &str) -> Option<DateTime<Utc>> {
        let rest = name.strip_prefix(&self.prefix)?;
        let stamp = rest.split_once('-').map_or(rest, |(s, _)| s);
        NaiveDateTime::parse_from_str(stamp, STAMP)
            .ok()
            .map(|t| t.and_utc())
    }

    /// Stores `bytes` as a new version with `mode`; returns it.
    pub(crate) fn store(
        &self,
        bytes: &[u8],
        mode: FileMode,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredVersion, EnvFileError> {
        fs::create_dir_all(&self.dir).map_err(EnvFileError::io("create the history directory", &self.dir))?;
        let base = format!("{}{}", self.prefix, now.format(STAMP));
        let mut name = base.clone();
        let mut n = 1;
        while self.dir.join(&name).exists() {
            n += 1;
            name = format!("{base}-{n}");
        }
        let path = self.dir.join(&name);
        atomic::write_atomically(&path, bytes, mode, &|_| Ok(()))
            .map_err(EnvFileError::io("write the backup", &path))?;
        let mut labels = self.labels()?;
        labels.insert(name.clone(), label.to_string());
        self.save_labels(&labels)?;
        Ok(StoredVersion {
            name,
            path,
            created_at: now,
        })
    }

    /// The labels of stored versions (a version made by hand has none).
    pub(crate) fn labels(&self) -> Result<BTreeMap<String, String>, EnvFileError> {
        match fs::read(&self.labels) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                EnvFileError::Setup(format!(
                    "the label index {} is not valid JSON ({e}); remove it (labels are lost, versions are not)",
                    self.labels.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(EnvFileError::io("read", &self.labels)(e)),
        }
    }

    fn save_labels(&self, labels: &BTreeMap<String, String>) -> Result<(), EnvFileError> {
        let json = serde_json::to_vec_pretty(labels)
            .map_err(|e| EnvFileError::Setup(format!("could not encode the label index: {e}")))?;
        // Private to the directory's owner, like the backups it describes.
        let dir = fs::metadata(&self.dir).map_err(EnvFileError::io("read", &self.dir))?;
        let mode = FileMode {
            mode: 0o600,
            ..FileMode::of(&dir)
        };
        atomic::write_atomically(&self.labels, &json, mode, &|_| Ok(()))
            .map_err(EnvFileError::io("write", &self.labels))
    }

    /// Removes all but the newest `keep` versions, never those in `protect`; returns what it
    /// removed.
    pub(crate) fn retain(&self, keep: usize, protect: &[&str]) -> Result<Vec<PathBuf>, EnvFileError> {
        let mut removed = Vec::new();
        let mut labels = self.labels()?;
        for version in self.list()?.into_iter().skip(keep) {
            if protect.contains(&version.name.as_str()) {
                continue;
            }
            fs::remove_file(&version.path)
                .map_err(EnvFileError::io("remove the old backup", &version.path))?;
            labels.remove(&version.name);
            removed.push(version.path);
        }
        if !removed.is_empty() {
            self.save_labels(&labels)?;
        }
        Ok(removed)
    }
}

/// The history directory's default: beside the live file.
pub(crate) fn dir_of(live: &Path) -> PathBuf {
    live.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
