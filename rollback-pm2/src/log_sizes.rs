//! Sizes of pm2's log files, noted each time this adapter runs `pm2 jlist`, so that the log
//! reader ([`crate::logs`]) can tell which bytes were written since a moment: pm2 appends
//! to its log files without timestamps.

use crate::jlist::Instance;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// How many size notes are kept per file.
const MARKS_PER_FILE: usize = 16;
/// How many files have notes at most (beyond that the oldest are forgotten).
const MAX_FILES: usize = 1024;

/// The size of a log file at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    /// When it was noted.
    pub(crate) at: DateTime<Utc>,
    /// The size then, in bytes.
    pub(crate) size: u64,
    /// (device, inode): a rotated file is another file.
    pub(crate) file: (u64, u64),
}

/// Size notes per log file, for every pm2 home this process talks to (file paths are
/// absolute, so homes never mix).
fn marks() -> &'static Mutex<HashMap<PathBuf, VecDeque<Mark>>> {
    static MARKS: OnceLock<Mutex<HashMap<PathBuf, VecDeque<Mark>>>> = OnceLock::new();
    MARKS.get_or_init(Default::default)
}

/// Notes the size of every log file of `instances` (as `pm2 jlist` named them), and of
/// `home`'s `pm2.log`, now. Called on every `pm2 jlist` this adapter runs, on what it
/// parsed; costs one `stat` per file, never fails (a file that cannot be read is simply not
/// noted).
pub(crate) async fn note_sizes(instances: &[Instance], home: Option<&Path>) {
    let mut paths: Vec<PathBuf> = instances
        .iter()
        .flat_map(|i| [i.out_log.clone(), i.err_log.clone()])
        .flatten()
        .chain(home.map(|h| h.join("pm2.log")))
        .filter(|p| p.is_absolute() && p != Path::new("/dev/null"))
        .collect();
    paths.sort();
    paths.dedup();
    let mut seen = Vec::with_capacity(paths.len());
    for path in paths {
        let at = Utc::now();
        if let Ok(meta) = tokio::fs::metadata(&path).await {
            seen.push((
                path,
                Mark {
                    at,
                    size: meta.len(),
                    file: (meta.dev(), meta.ino()),
                },
            ));
        }
    }
    let mut map = marks().lock().unwrap_or_else(|e| e.into_inner());
    for (path, mark) in seen {
        let notes = map.entry(path).or_default();
        notes.push_back(mark);
        while notes.len() > MARKS_PER_FILE {
            notes.pop_front();
        }
    }
    if map.len() > MAX_FILES {
        let mut newest: Vec<(DateTime<Utc>, PathBuf)> = map
            .iter()
            .filter_map(|(p, m)| m.back().map(|m| (m.at, p.clone())))
            .collect();
        newest.sort();
        for (_, p) in newest.iter().take(map.len() - MAX_FILES) {
            map.remove(p);
        }
    }
}

/// The last size of `path` noted at or before `since`, in the file it is now.
pub(crate) fn mark_before(path: &Path, since: DateTime<Utc>, file: (u64, u64)) -> Option<Mark> {
    let map = marks().lock().unwrap_or_else(|e| e.into_inner());
    map.get(path)?
        .iter()
        .rev()
        .find(|m| m.at <= since && m.file == file)
        .copied()
}
