//! A small JSON file in the snapshot root that makes the switch steps idempotent: which
//! database each `preserve_current` label renamed (or dumped), which staging database holds
//! which snapshot (and whether `check_prepared` verified and sealed it), and what was last
//! put live (and whether it is still sealed). The file is `0600` whatever the umask, and
//! replaced durably (temporary file, fsync, rename, fsync of the directory): a step that
//! returned has its record on disk, so a crash right after it is resumed, not redone.

use crate::error::PgError;
use crate::files;
use chrono::{DateTime, Utc};
use rollback_core::{ErrorKind, PreservedDatabase, PutAside};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The state file's name in the snapshot root.
pub(crate) const STATE_FILE: &str = ".rollback-postgres-state.json";

/// One `preserve_current` call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PreservedRecord {
    /// What was returned (and is returned again for the same label).
    pub(crate) preserved: PreservedDatabase,
    /// The renamed database, for the rename method.
    pub(crate) renamed_to: Option<String>,
    /// Its oid (a rename keeps it), once known.
    pub(crate) oid: Option<u32>,
    /// True once the rename or dump finished.
    pub(crate) done: bool,
}

/// A database closed to every client (`ALLOW_CONNECTIONS false`, every other session
/// terminated) by this adapter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Seal {
    /// The sealed database's oid (a rename keeps it).
    pub(crate) oid: u32,
    /// When new connections were refused; every other session was gone right after.
    pub(crate) since: DateTime<Utc>,
    /// For a staged copy: when `check_prepared` finished verifying it with every check
    /// passed, on a session opened before the seal (read-only), the only one left on it.
    /// `None` for a database sealed without a verification (a reinstated one).
    #[serde(default)]
    pub(crate) verified_at: Option<DateTime<Utc>>,
    /// The checks that passed then (names).
    #[serde(default)]
    pub(crate) checks: Vec<String>,
    /// The sessions disconnected when it was sealed, described (pid, user, application,
    /// client address).
    #[serde(default)]
    pub(crate) disconnected: Vec<String>,
}

/// A staging database made by `prepare_restore`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StagedRecord {
    /// The snapshot restored into it.
    pub(crate) snapshot: String,
    /// The staging database's oid.
    pub(crate) oid: u32,
    /// Set by `check_prepared` once every check passed on it, sealed: `restore` then
    /// switches it in sealed. `None` while it is not verified.
    #[serde(default)]
    pub(crate) sealed: Option<Seal>,
}

/// What was last put live by `restore` or `reinstate` (written before the final rename, so
/// that a call interrupted after it knows the rename was its own).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LiveRecord {
    /// `snapshot:<id>` or `preserved:<label>`.
    pub(crate) source: String,
    /// The live database's oid right after the switch (0 when restored in place).
    pub(crate) oid: u32,
    /// What this switch put aside (renamed databases), recorded before each rename so that
    /// a call interrupted half way still reports it. An entry whose database does not exist
    /// was never renamed (the call stopped before).
    #[serde(default)]
    pub(crate) put_aside: Vec<PutAside>,
    /// Set (before the rename) when the database put live stays sealed until `open`:
    /// a verified staged copy, or a reinstated database. Cleared by `open`.
    #[serde(default)]
    pub(crate) sealed: Option<Seal>,
    /// When `open` opened it to every client (from then on clients may write into it).
    #[serde(default)]
    pub(crate) opened_at: Option<DateTime<Utc>>,
}

/// The whole state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// By label.
    pub(crate) preserved: BTreeMap<String, PreservedRecord>,
    /// By staging database name.
    pub(crate) staged: BTreeMap<String, StagedRecord>,
    /// The last switch.
    pub(crate) live: Option<LiveRecord>,
}

fn path(root: &Path) -> PathBuf {
    root.join(STATE_FILE)
}

impl State {
    /// Reads the state (empty when there is none yet).
    pub(crate) async fn load(root: &Path) -> Result<State, PgError> {
        let p = path(root);
        match tokio::fs::read(&p).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                PgError::json(
                    ErrorKind::Corrupt,
                    format!("{} is damaged: fix or move it aside", p.display()),
                    e,
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(PgError::io(format!("cannot read {}", p.display()), e)),
        }
    }

    /// Writes the state durably (`0600`, see [`files::write_durable`]), creating the
    /// snapshot root (`0700`) when it is missing.
    pub(crate) async fn store(&self, root: &Path) -> Result<(), PgError> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| PgError::json(ErrorKind::Failed, "cannot encode the state file", e))?;
        files::create_private_dir(root).await?;
        files::write_durable(&path(root), json).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn the_state_is_replaced_whole_private_and_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("snapshots");
        assert_eq!(State::load(&root).await.unwrap(), State::default());
        let mut state = State::default();
        state.staged.insert(
            "app__rollback_staging".into(),
            StagedRecord {
                snapshot: "s1".into(),
                oid: 42,
                sealed: None,
            },
        );
        state.store(&root).await.unwrap();
        state.staged.get_mut("app__rollback_staging").unwrap().oid = 43;
        state.store(&root).await.unwrap();
        assert_eq!(State::load(&root).await.unwrap(), state);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join(STATE_FILE)), 0o600);
        assert_eq!(mode(&root), 0o700);
        let names: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![STATE_FILE.to_owned()], "no temporary file left");

        std::fs::write(root.join(STATE_FILE), b"{ torn").unwrap();
        let e = State::load(&root).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("fix or move it aside"), "{e}");
        assert!(std::error::Error::source(&e).is_some(), "the JSON error is kept");
    }
}
