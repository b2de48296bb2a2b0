//! [`EnvFileStore`]: the [`ConfigStore`] over one env file and its backups.

use crate::error::EnvFileError;
use crate::history::{History, StoredVersion};
use crate::parse::EnvFile;
use crate::worktree;
use crate::write::{self, FileMode};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rollback_core::{AdapterError, ConfigCheck, ConfigDiff, ConfigStore, ConfigVersion, ConfigVersionId};
use sha2::{Digest, Sha256};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The id of the live file in every method that takes a version.
pub const LIVE: &str = "live";
/// The id that resolves to the newest stored version whose content differs from the live
/// file: the runbook's `.env.production.previous`.
pub const PREVIOUS: &str = "previous";

#[cfg(test)]
type Hook = Arc<dyn Fn(&Path) -> io::Result<()> + Send + Sync>;

/// Versions of one env file (say `.env.production`): backups as
/// `<name>.backup.<UTC timestamp>` beside it, or outside the git working tree it lives in,
/// or in a configured directory (see [`EnvFileStore::new`]); restores that are atomic and
/// keep the replaced file; diffs that never show a value.
///
/// Ids: a backup's file name, [`LIVE`] for the live file, [`PREVIOUS`] for the version
/// before the current one. Backups made by hand with the runbook's naming
/// (`<name>.backup.$(date +%Y%m%d_%H%M%S)` and similar stamps) are listed too, from the
/// history directory and from the live file's own directory; versions are ordered by the
/// stamp in their names (see the crate docs), not by file times.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use rollback_core::ConfigStore;
/// use rollback_envfile::EnvFileStore;
/// let dir = tempfile::tempdir().unwrap();
/// let live = dir.path().join(".env.production");
/// std::fs::write(&live, "DATABASE_URL=postgres://app:pw@db/app\nPORT=3000\n").unwrap();
/// let store = EnvFileStore::new(&live).keep_last(10).require_keys(["DATABASE_URL"]);
/// let v1 = store.backup("before v2").await.unwrap();
/// std::fs::write(&live, "PORT=3001\n").unwrap();
/// assert_eq!(store.diff(&v1.id, &"live".into()).await.unwrap().removed, ["DATABASE_URL"]);
/// store.restore(&"previous".into()).await.unwrap();
/// assert!(std::fs::read_to_string(&live).unwrap().contains("PORT=3000"));
/// # }
/// ```
#[derive(Clone)]
pub struct EnvFileStore {
    live: PathBuf,
    history_dir: Option<PathBuf>,
    allow_in_worktree: bool,
    keep: Option<usize>,
    required: Vec<String>,
    #[cfg(test)]
    before_write: Option<Hook>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for EnvFileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvFileStore")
            .field("live", &self.live)
            .field("history_dir", &self.history_dir)
            .field("allow_in_worktree", &self.allow_in_worktree)
            .field("keep", &self.keep)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl EnvFileStore {
    /// A store for the env file at `live`: all backups kept, no required keys, and backups
    /// where git will not commit them. Unless [`history_dir`](Self::history_dir) says
    /// otherwise, the history directory is, at each operation:
    /// - beside the file, when the file's real directory (symlinks followed: for a link into
    ///   a shared directory, that directory) is in no git working tree;
    /// - otherwise outside the tree: `<parent of the tree>/.rollback-env-history/<tree
    ///   name>/<the file's directory within the tree>/`, created with mode 0700. For
    ///   `/srv/app/.env.production` in the tree `/srv/app`, that is
    ///   `/srv/.rollback-env-history/app/`. With nested trees (submodules) the outermost
    ///   counts. A tree at `/` has no outside: operations fail with
    ///   [`EnvFileError::HistoryInWorktree`]; set a `history_dir`.
    ///
    /// A working tree is any ancestor directory holding a `.git` (directory or file); the
    /// store reads no git configuration and no `.gitignore`. Hand-made backups beside the
    /// live file (or beside its link target) are listed wherever the history is, and never
    /// removed by retention. The label index is `<name>.backup-index.json` in the history
    /// directory; an index left by earlier versions (`.<name>.backup-labels.json`) is read,
    /// and replaced at the next write.
    pub fn new(live: impl AsRef<Path>) -> Self {
        Self {
            live: live.as_ref().to_path_buf(),
            history_dir: None,
            allow_in_worktree: false,
            keep: None,
            required: Vec::new(),
            #[cfg(test)]
            before_write: None,
            lock: Arc::default(),
        }
    }

    /// Keeps backups in `dir` (created with mode 0700 when needed) instead of the default
    /// of [`new`](Self::new). A `dir` inside a git working tree is refused with
    /// [`EnvFileError::HistoryInWorktree`] at the first operation, unless
    /// [`allow_history_in_worktree`](Self::allow_history_in_worktree) is called too.
    pub fn history_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.history_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Accepts a [`history_dir`](Self::history_dir) inside a git working tree. The store
    /// cannot tell whether git ignores it: call this only when a `.gitignore` rule covers
    /// the directory, or backups holding secrets will be committed by the next `git add -A`.
    /// (A directory inside the tree's `.git` is never tracked and needs no opt-in.) It does
    /// not change the default history directory, which is always outside the tree.
    pub fn allow_history_in_worktree(mut self) -> Self {
        self.allow_in_worktree = true;
        self
    }

    /// After each backup, removes all but the newest `n` backups of the history directory
    /// (at least 1 is kept; hand-made backups elsewhere are never removed).
    pub fn keep_last(mut self, n: usize) -> Self {
        self.keep = Some(n.max(1));
        self
    }

    /// Keys every version must define: `verify` and `restore` refuse a version without them.
    pub fn require_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required = keys.into_iter().map(Into::into).collect();
        self
    }

    /// The live env file.
    pub fn live_path(&self) -> &Path {
        &self.live
    }

    /// Where backups are kept: the [`history_dir`](Self::history_dir), or the default
    /// described on [`new`](Self::new). Looks at the file system (a few `stat` calls).
    ///
    /// # Errors
    /// [`EnvFileError::HistoryInWorktree`] when that directory is inside a git working tree
    /// and not allowed there.
    pub fn history_path(&self) -> Result<PathBuf, EnvFileError> {
        self.history().map(|h| h.dir)
    }

    /// The history as the file system is now: the directory, and where hand-made backups
    /// may lie.
    fn history(&self) -> Result<History, EnvFileError> {
        let name = self.file_name()?;
        let dir = match &self.history_dir {
            Some(dir) => {
                if !self.allow_in_worktree {
                    if let Some(tree) = worktree::tracking_worktree(&worktree::resolve_existing(dir)) {
                        return Err(EnvFileError::HistoryInWorktree {
                            dir: dir.clone(),
                            worktree: tree,
                        });
                    }
                }
                dir.clone()
            }
            None => worktree::default_history_dir(&self.live)?,
        };
        let others = [worktree::dir_of(&self.live), worktree::real_dir_of(&self.live)];
        Ok(History::new(dir, &others, name))
    }

    /// Test hook: runs in a restore after the replaced file is backed up, just before the
    /// live file is written (the write itself is the core's, tested there).
    #[cfg(test)]
    fn fail_before_write(mut self, hook: impl Fn(&Path) -> io::Result<()> + Send + Sync + 'static) -> Self {
        self.before_write = Some(Arc::new(hook));
        self
    }

    fn file_name(&self) -> Result<&str, EnvFileError> {
        self.live
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| EnvFileError::Setup(format!("{} does not name a file", self.live.display())))
    }

    /// Runs blocking file work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&EnvFileStore) -> Result<T, EnvFileError> + Send + 'static,
    ) -> Result<T, AdapterError> {
        let _guard = self.lock.lock().await;
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(&this))
            .await
            .map_err(|e| {
                AdapterError::new(
                    rollback_core::ErrorKind::Failed,
                    format!("env-file task failed: {e}"),
                )
            })?
            .map_err(AdapterError::from)
    }

    fn read_live(&self) -> Result<(Vec<u8>, fs::Metadata), EnvFileError> {
        let meta = fs::metadata(&self.live).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => EnvFileError::LiveMissing {
                path: self.live.clone(),
            },
            _ => EnvFileError::io("read", &self.live)(e),
        })?;
        let bytes = fs::read(&self.live).map_err(EnvFileError::io("read", &self.live))?;
        Ok((bytes, meta))
    }

    /// The path of a version id.
    fn resolve(&self, history: &History, id: &str) -> Result<PathBuf, EnvFileError> {
        match id {
            LIVE => {
                self.read_live()?;
                Ok(self.live.clone())
            }
            PREVIOUS => {
                let (live, _) = self.read_live()?;
                let live = digest(&live);
                for v in history.list()? {
                    if digest(&read(&v.path)?) != live {
                        return Ok(v.path);
                    }
                }
                Err(EnvFileError::UnknownVersion {
                    id: format!("{PREVIOUS} (no stored version differs from the live file)"),
                    dir: history.dir.clone(),
                })
            }
            id => history.find(id).ok_or_else(|| EnvFileError::UnknownVersion {
                id: id.to_string(),
                dir: history.dir.clone(),
            }),
        }
    }

    fn parse(&self, path: &Path) -> Result<EnvFile, EnvFileError> {
        let bytes = read(path)?;
        let text = String::from_utf8(bytes).map_err(|e| EnvFileError::Syntax {
            path: path.to_path_buf(),
            error: crate::SyntaxError {
                line: line_of(e.as_bytes(), e.utf8_error().valid_up_to()),
                what: "not valid UTF-8".into(),
            },
        })?;
        EnvFile::parse(&text).map_err(|error| EnvFileError::Syntax {
            path: path.to_path_buf(),
            error,
        })
    }

    fn check(&self, id: &str, path: &Path) -> Result<ConfigCheck, EnvFileError> {
        let file = self.parse(path)?;
        let keys = file.keys();
        let missing: Vec<String> = self
            .required
            .iter()
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(EnvFileError::MissingRequired {
                id: id.to_string(),
                keys: missing,
            });
        }
        Ok(ConfigCheck {
            keys,
            warnings: file.duplicate_warnings(),
        })
    }

    fn version(
        &self,
        v: &StoredVersion,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> ConfigVersion {
        ConfigVersion {
            id: ConfigVersionId::new(&v.name),
            label: labels.get(&v.name).cloned().unwrap_or_default(),
            created_at: v.created_at,
            location: v.path.display().to_string(),
        }
    }

    /// Stores the live file; retention never removes the new backup nor `protect`.
    fn backup_now(
        &self,
        history: &History,
        label: &str,
        protect: Option<&str>,
    ) -> Result<StoredVersion, EnvFileError> {
        let (bytes, meta) = self.read_live()?;
        let stored = history.store(&bytes, FileMode::of(&meta), label, Utc::now())?;
        tracing::info!(file = %self.live.display(), backup = %stored.name, "env file backed up");
        if let Some(keep) = self.keep {
            let mut keep_these = vec![stored.name.as_str()];
            keep_these.extend(protect);
            for removed in history.retain(keep, &keep_these)? {
                tracing::info!(backup = %removed.display(), "old env-file backup removed (retention)");
            }
        }
        Ok(stored)
    }

    fn restore_now(&self, id: &str) -> Result<(), EnvFileError> {
        if id == LIVE {
            return self.read_live().map(drop);
        }
        let history = self.history()?;
        let path = self.resolve(&history, id)?;
        self.check(id, &path)?;
        let wanted = read(&path)?;
        let mut mode = FileMode::of(&fs::metadata(&path).map_err(EnvFileError::io("read", &path))?);
        // A symlinked env file (shared/.env.production, say) stays a link: its target is
        // what gets replaced.
        let target = match fs::symlink_metadata(&self.live) {
            Ok(m) if m.file_type().is_symlink() => {
                fs::canonicalize(&self.live).map_err(EnvFileError::io("resolve the link", &self.live))?
            }
            _ => self.live.clone(),
        };
        match self.read_live() {
            Ok((live, _)) if live == wanted => return Ok(()),
            Ok((live, live_meta)) => {
                // The stricter of the two modes (a hand-made 0644 backup never widens a 0600
                // file), and the live file's owner (the app must still read it).
                let live_mode = FileMode::of(&live_meta);
                mode = FileMode {
                    mode: (mode.mode & live_mode.mode & 0o777) | (live_mode.mode & !0o777),
                    ..live_mode
                };
                let digest_live = digest(&live);
                let already_kept = history
                    .list()?
                    .iter()
                    .any(|v| read(&v.path).is_ok_and(|b| digest(&b) == digest_live));
                if !already_kept {
                    self.backup_now(
                        &history,
                        &format!("replaced by a restore of {id}"),
                        path.file_name().and_then(|n| n.to_str()),
                    )?;
                }
            }
            Err(EnvFileError::LiveMissing { .. }) => {}
            Err(e) => return Err(e),
        }
        #[cfg(test)]
        if let Some(hook) = &self.before_write {
            hook(&target).map_err(EnvFileError::io("replace", &target))?;
        }
        write::write_keeping_owner(&target, &wanted, mode).map_err(EnvFileError::io("replace", &target))?;
        tracing::info!(file = %self.live.display(), version = id, "env file restored");
        Ok(())
    }

    /// Removes all but the newest `keep` backups of the history directory now (hand-made
    /// backups elsewhere are never removed); returns the removed files.
    pub async fn apply_retention(&self, keep: usize) -> Result<Vec<PathBuf>, AdapterError> {
        self.blocking(move |s| s.history()?.retain(keep.max(1), &[]))
            .await
    }
}

#[async_trait]
impl ConfigStore for EnvFileStore {
    async fn current(&self) -> Result<ConfigVersion, AdapterError> {
        self.blocking(|s| {
            let (_, meta) = s.read_live()?;
            Ok(ConfigVersion {
                id: ConfigVersionId::new(LIVE),
                label: String::new(),
                created_at: meta.modified().map(DateTime::<Utc>::from).unwrap_or_default(),
                location: s.live.display().to_string(),
            })
        })
        .await
    }

    async fn backup(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        let label = label.to_string();
        self.blocking(move |s| {
            let history = s.history()?;
            let stored = s.backup_now(&history, &label, None)?;
            Ok(s.version(&stored, &history.labels()?))
        })
        .await
    }

    async fn list(&self) -> Result<Vec<ConfigVersion>, AdapterError> {
        self.blocking(|s| {
            let history = s.history()?;
            let labels = history.labels()?;
            Ok(history.list()?.iter().map(|v| s.version(v, &labels)).collect())
        })
        .await
    }

    async fn verify(&self, version: &ConfigVersionId) -> Result<ConfigCheck, AdapterError> {
        let id = version.as_str().to_string();
        self.blocking(move |s| {
            let path = s.resolve(&s.history()?, &id)?;
            s.check(&id, &path)
        })
        .await
    }

    async fn restore(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        let id = version.as_str().to_string();
        self.blocking(move |s| s.restore_now(&id)).await
    }

    async fn diff(&self, a: &ConfigVersionId, b: &ConfigVersionId) -> Result<ConfigDiff, AdapterError> {
        let (a, b) = (a.as_str().to_string(), b.as_str().to_string());
        self.blocking(move |s| {
            let history = s.history()?;
            let fa = s.parse(&s.resolve(&history, &a)?)?;
            let fb = s.parse(&s.resolve(&history, &b)?)?;
            let (ma, mb) = (fa.to_map(), fb.to_map());
            let mut diff = ConfigDiff::default();
            for (k, va) in &ma {
                match mb.get(k) {
                    None => diff.removed.push(k.to_string()),
                    Some(vb) if vb != va => diff.changed.push(k.to_string()),
                    Some(_) => {}
                }
            }
            diff.added = mb
                .keys()
                .filter(|k| !ma.contains_key(*k))
                .map(|k| k.to_string())
                .collect();
            Ok(diff)
        })
        .await
    }

    /// Removes a backup this store wrote (in its history directory); a hand-made backup
    /// beside the live file and the live file itself are never removed.
    async fn remove(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        let id = version.as_str().to_owned();
        self.blocking(move |s| {
            if let Some(path) = s.history()?.remove(&id)? {
                tracing::info!(backup = %path.display(), "env-file backup removed");
            }
            Ok(())
        })
        .await
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EnvFileError> {
    fs::read(path).map_err(EnvFileError::io("read", path))
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_of_the_store_and_its_errors_never_shows_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join(".env.production");
        fs::write(&live, "API_KEY=sk-live-0123456789\n").unwrap();
        let store = EnvFileStore::new(&live).require_keys(["API_KEY", "MISSING"]);
        store.backup("before").await.unwrap();
        let err = store.verify(&LIVE.into()).await.unwrap_err();
        let shown = format!("{store:?} {store:#?} {err:?} {err}");
        assert!(shown.contains("API_KEY"), "{shown}");
        assert!(!shown.contains("sk-live"), "a value is shown: {shown}");
    }

    #[tokio::test]
    async fn a_restore_that_fails_to_write_leaves_the_live_file_whole_and_backed_up() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join(".env.production");
        fs::write(&live, "A=old\n").unwrap();
        let store = EnvFileStore::new(&live);
        let v = store.backup("good").await.unwrap();
        fs::write(&live, "A=new\n").unwrap();
        let store = store.fail_before_write(|_| Err(io::Error::other("injected: the write failed")));
        let err = store.restore(&v.id).await.unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert_eq!(
            fs::read_to_string(&live).unwrap(),
            "A=new\n",
            "the live file is the old one, whole"
        );
        let stray: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| write::is_temp_name(&e.file_name().to_string_lossy()))
            .collect();
        assert!(stray.is_empty(), "no temp file is left behind");
        let kept = store.list().await.unwrap();
        assert_eq!(kept.len(), 2, "the file about to be replaced was backed up first");
    }
}
