//! The stored versions of one env file: `<name>.backup.<stamp>` files (the runbook's naming,
//! so backups it made by hand are listed too) and a small index of their labels.
//!
//! Order is by the stamp in the name (see [`parse_stamp`]), then by the collision counter
//! the store appends (`-2`, `-3`, ...), then by name; a file's mtime counts only when its name
//! has no stamp.

use crate::error::EnvFileError;
use crate::worktree;
use crate::write::{self, FileMode};
use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The stamp the store writes: UTC, milliseconds.
const STAMP: &str = "%Y%m%dT%H%M%S%.3fZ";

/// A stamp format a backup name may carry after `<name>.backup.`.
struct Format {
    fmt: &'static str,
    /// How many characters the stamp takes (formats with variable-width fields are refused).
    width: usize,
    date_only: bool,
    /// The stamp says UTC (`Z`); otherwise it is the host's local time, as `date` prints it.
    utc: bool,
}

/// Tried in this order; the first that takes exactly its width and is followed by nothing,
/// or by a non-alphanumeric character, wins.
const FORMATS: &[Format] = &[
    Format {
        fmt: STAMP,
        width: 20,
        date_only: false,
        utc: true,
    },
    Format {
        fmt: "%Y%m%dT%H%M%SZ",
        width: 16,
        date_only: false,
        utc: true,
    },
    Format {
        fmt: "%Y-%m-%dT%H:%M:%SZ",
        width: 20,
        date_only: false,
        utc: true,
    },
    Format {
        fmt: "%Y-%m-%dT%H:%M:%S",
        width: 19,
        date_only: false,
        utc: false,
    },
    Format {
        fmt: "%Y%m%d_%H%M%S",
        width: 15,
        date_only: false,
        utc: false,
    },
    Format {
        fmt: "%Y%m%d%H%M%S",
        width: 14,
        date_only: false,
        utc: false,
    },
    Format {
        fmt: "%Y-%m-%d",
        width: 10,
        date_only: true,
        utc: true,
    },
    Format {
        fmt: "%Y%m%d",
        width: 8,
        date_only: true,
        utc: true,
    },
];

/// The time and collision counter in the part of a backup name after `<name>.backup.`.
///
/// Stamps without a zone (`date +%Y%m%d_%H%M%S`, as the runbook writes them) are read in
/// the host's local time zone, as `date` printed them; an hour that does not exist locally
/// (a daylight-saving gap) is read as UTC. A date alone is midnight UTC, so that it sorts the
/// same on every host.
pub(crate) fn parse_stamp(rest: &str) -> Option<(DateTime<Utc>, u32)> {
    FORMATS.iter().find_map(|f| {
        let (naive, remainder) = if f.date_only {
            NaiveDate::parse_and_remainder(rest, f.fmt)
                .ok()
                .map(|(d, r)| (d.and_time(chrono::NaiveTime::MIN), r))?
        } else {
            NaiveDateTime::parse_and_remainder(rest, f.fmt).ok()?
        };
        if rest.len() - remainder.len() != f.width {
            return None;
        }
        let counter = match remainder.chars().next() {
            None => 0,
            Some(c) if c.is_alphanumeric() => return None,
            Some(_) => remainder
                .strip_prefix('-')
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        };
        let at = if f.utc {
            naive.and_utc()
        } else {
            Local
                .from_local_datetime(&naive)
                .earliest()
                .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc))
        };
        Some((at, counter))
    })
}

/// One stored version on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredVersion {
    /// The file name, which is also the version id.
    pub name: String,
    pub path: PathBuf,
    pub created_at: DateTime<Utc>,
    /// The collision counter in the name (`-2`), 0 without one.
    counter: u32,
    /// In the history directory, so retention may remove it (a hand-made backup elsewhere is
    /// listed but never removed).
    managed: bool,
}

/// The history directory of one env file, and the directories where hand-made backups of
/// it are looked for.
#[derive(Clone, Debug)]
pub(crate) struct History {
    pub dir: PathBuf,
    /// Other directories listed (the live file's own directory and its real one).
    others: Vec<PathBuf>,
    /// `<name>.backup.`
    prefix: String,
    index: PathBuf,
    /// Where earlier versions of this crate kept the index (`.<name>.backup-labels.json`).
    legacy_indexes: Vec<PathBuf>,
}

impl History {
    /// The history of the file named `live_name` in `dir`, also listing hand-made backups
    /// in `others`.
    pub(crate) fn new(dir: PathBuf, others: &[PathBuf], live_name: &str) -> Self {
        let real_dir = worktree::resolve_existing(&dir);
        let mut seen = vec![real_dir];
        let mut kept = Vec::new();
        for other in others {
            let real = worktree::resolve_existing(other);
            if !seen.contains(&real) {
                seen.push(real);
                kept.push(other.clone());
            }
        }
        let legacy = format!(".{live_name}.backup-labels.json");
        let legacy_indexes = std::iter::once(&dir)
            .chain(&kept)
            .map(|d| d.join(&legacy))
            .collect();
        Self {
            index: dir.join(format!("{live_name}.backup-index.json")),
            dir,
            others: kept,
            prefix: format!("{live_name}.backup."),
            legacy_indexes,
        }
    }

    /// True when `id` names a file of this history (and nothing outside it).
    pub(crate) fn owns(&self, id: &str) -> bool {
        id.starts_with(&self.prefix) && !id.contains('/') && !write::is_temp_name(id)
    }

    /// The file of version `id`: in the history directory, else a hand-made one beside the
    /// live file.
    pub(crate) fn find(&self, id: &str) -> Option<PathBuf> {
        if !self.owns(id) {
            return None;
        }
        std::iter::once(&self.dir)
            .chain(&self.others)
            .map(|d| d.join(id))
            .find(|p| p.is_file())
    }

    /// All stored versions, newest first; a name found in two directories is the one in
    /// the history directory.
    pub(crate) fn list(&self) -> Result<Vec<StoredVersion>, EnvFileError> {
        let mut versions: Vec<StoredVersion> = Vec::new();
        for (dir, managed) in std::iter::once((&self.dir, true)).chain(self.others.iter().map(|d| (d, false)))
        {
            let entries = match fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(EnvFileError::io("list", dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(EnvFileError::io("list", dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !self.owns(&name)
                    || !entry.file_type().is_ok_and(|t| t.is_file())
                    || versions.iter().any(|v| v.name == name)
                {
                    continue;
                }
                let (created_at, counter) = match self.stamp_of(&name) {
                    Some(stamp) => stamp,
                    None => (
                        entry
                            .metadata()
                            .and_then(|m| m.modified())
                            .map(DateTime::<Utc>::from)
                            .unwrap_or_default(),
                        0,
                    ),
                };
                versions.push(StoredVersion {
                    path: entry.path(),
                    created_at,
                    counter,
                    managed,
                    name,
                });
            }
        }
        versions.sort_by(|a, b| (b.created_at, b.counter, &b.name).cmp(&(a.created_at, a.counter, &a.name)));
        Ok(versions)
    }

    fn stamp_of(&self, name: &str) -> Option<(DateTime<Utc>, u32)> {
        parse_stamp(name.strip_prefix(&self.prefix)?)
    }

    /// Stores `bytes` as a new version with `mode`; returns it.
    pub(crate) fn store(
        &self,
        bytes: &[u8],
        mode: FileMode,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredVersion, EnvFileError> {
        // Only the owner may enter a directory the store creates: it holds secrets.
        rollback_core::private_files::create_dir_all(&self.dir, rollback_core::private_files::DIR_MODE)
            .map_err(EnvFileError::io(
                "create the history directory (`history_dir` sets another)",
                &self.dir,
            ))?;
        let base = format!("{}{}", self.prefix, now.format(STAMP));
        let mut name = base.clone();
        let mut n = 1;
        while self.dir.join(&name).exists() {
            n += 1;
            name = format!("{base}-{n}");
        }
        let path = self.dir.join(&name);
        write::write_keeping_owner(&path, bytes, mode)
            .map_err(EnvFileError::io("write the backup", &path))?;
        let mut labels = self.labels()?;
        labels.insert(name.clone(), label.to_string());
        self.save_labels(&labels)?;
        let (created_at, counter) = self.stamp_of(&name).unwrap_or((now, 0));
        Ok(StoredVersion {
            name,
            path,
            created_at,
            counter,
            managed: true,
        })
    }

    /// The labels of stored versions (a version made by hand has none), including those of
    /// an index left by an earlier version of this crate.
    pub(crate) fn labels(&self) -> Result<BTreeMap<String, String>, EnvFileError> {
        let mut labels = BTreeMap::new();
        for legacy in &self.legacy_indexes {
            labels.extend(read_index(legacy)?);
        }
        labels.extend(read_index(&self.index)?);
        Ok(labels)
    }

    /// Writes the index, then removes any legacy index (its labels are in `labels`).
    fn save_labels(&self, labels: &BTreeMap<String, String>) -> Result<(), EnvFileError> {
        let json = serde_json::to_vec_pretty(labels).map_err(|e| EnvFileError::Index {
            path: self.index.clone(),
            source: e.into(),
        })?;
        // Private to the directory's owner, like the backups it describes.
        let dir = fs::metadata(&self.dir).map_err(EnvFileError::io("read", &self.dir))?;
        let mode = FileMode {
            mode: 0o600,
            ..FileMode::of(&dir)
        };
        write::write_keeping_owner(&self.index, &json, mode)
            .map_err(EnvFileError::io("write", &self.index))?;
        for legacy in &self.legacy_indexes {
            match fs::remove_file(legacy) {
                Ok(()) => tracing::info!(
                    from = %legacy.display(),
                    to = %self.index.display(),
                    "env-file label index migrated"
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    path = %legacy.display(),
                    error = %e,
                    "could not remove the old label index (its labels are in the new one)"
                ),
            }
        }
        Ok(())
    }

    /// Removes version `id` if it is a managed one of the history directory (a hand-made
    /// backup beside the live file is never removed); returns its path when it removed it.
    pub(crate) fn remove(&self, id: &str) -> Result<Option<PathBuf>, EnvFileError> {
        let path = self.dir.join(id);
        if !self.owns(id) || !path.is_file() {
            return Ok(None);
        }
        fs::remove_file(&path).map_err(EnvFileError::io("remove the backup", &path))?;
        let mut labels = self.labels()?;
        if labels.remove(id).is_some() {
            self.save_labels(&labels)?;
        }
        Ok(Some(path))
    }

    /// Removes all but the newest `keep` versions of the history directory, never those in
    /// `protect` nor hand-made ones elsewhere; returns what it removed.
    pub(crate) fn retain(&self, keep: usize, protect: &[&str]) -> Result<Vec<PathBuf>, EnvFileError> {
        let mut removed = Vec::new();
        let mut labels = self.labels()?;
        for version in self.list()?.into_iter().filter(|v| v.managed).skip(keep) {
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

fn read_index(path: &Path) -> Result<BTreeMap<String, String>, EnvFileError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| EnvFileError::Index {
            path: path.to_path_buf(),
            source: e.into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(EnvFileError::io("read", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_runbook_s_stamp_formats_parse() {
        let local = |s: &str| {
            let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
            Local
                .from_local_datetime(&naive)
                .earliest()
                .unwrap()
                .with_timezone(&Utc)
        };
        let cases = [
            ("20240102T030405.678Z", utc("2024-01-02T03:04:05.678Z"), 0),
            ("20240102T030405.678Z-12", utc("2024-01-02T03:04:05.678Z"), 12),
            ("20240102T030405Z", utc("2024-01-02T03:04:05Z"), 0),
            ("2024-01-02T03:04:05Z", utc("2024-01-02T03:04:05Z"), 0),
            ("2024-01-02T03:04:05", local("2024-01-02 03:04:05"), 0),
            ("20240102_030405", local("2024-01-02 03:04:05"), 0),
            ("20240102_030405.bak", local("2024-01-02 03:04:05"), 0),
            ("20240102030405", local("2024-01-02 03:04:05"), 0),
            ("2024-01-02", utc("2024-01-02T00:00:00Z"), 0),
            ("20240102", utc("2024-01-02T00:00:00Z"), 0),
            ("20240102-before-migration", utc("2024-01-02T00:00:00Z"), 0),
        ];
        for (stamp, at, counter) in cases {
            assert_eq!(parse_stamp(stamp), Some((at, counter)), "{stamp}");
        }
        for not_a_stamp in ["old", "2024010", "202401021", "20240102x", "20241302", ""] {
            assert_eq!(parse_stamp(not_a_stamp), None, "{not_a_stamp}");
        }
    }
}
