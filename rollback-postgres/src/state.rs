//! A small JSON file in the snapshot root that makes the switch steps idempotent: which
//! database each `preserve_current` label renamed (or dumped), which staging database holds
//! which snapshot (and whether `check_prepared` verified and sealed it), and what was last
//! put live (and whether it is still sealed). The file is `0600` whatever the umask.

use crate::error::PgError;
use chrono::{DateTime, Utc};
use rollback_core::{ErrorKind, PreservedDatabase, PutAside};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The state file's name in the snapshot root.
pub const STATE_FILE: &str = ".rollback-postgres-state.json";

/// One `preserve_current` call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreservedRecord {
    /// What was returned (and is returned again for the same label).
    pub preserved: PreservedDatabase,
    /// The renamed database, for the rename method.
    pub renamed_to: Option<String>,
    /// Its oid (a rename keeps it), once known.
    pub oid: Option<u32>,
    /// True once the rename or dump finished.
    pub done: bool,
}

/// A database closed to every client (`ALLOW_CONNECTIONS false`, every other session
/// terminated) by this adapter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// The sealed database's oid (a rename keeps it).
    pub oid: u32,
    /// When new connections were refused; every other session was gone right after.
    pub since: DateTime<Utc>,
    /// For a staged copy: when `check_prepared` finished verifying it with every check
    /// passed, on a session opened before the seal (read-only), the only one left on it.
    /// `None` for a database sealed without a verification (a reinstated one).
    #[serde(default)]
    pub verified_at: Option<DateTime<Utc>>,
    /// The checks that passed then (names).
    #[serde(default)]
    pub checks: Vec<String>,
    /// The sessions disconnected when it was sealed, described (pid, user, application,
    /// client address).
    #[serde(default)]
    pub disconnected: Vec<String>,
}

/// A staging database made by `prepare_restore`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedRecord {
    /// The snapshot restored into it.
    pub snapshot: String,
    /// The staging database's oid.
    pub oid: u32,
    /// Set by `check_prepared` once every check passed on it, sealed: `restore` then
    /// switches it in sealed. `None` while it is not verified.
    #[serde(default)]
    pub sealed: Option<Seal>,
}

/// What was last put live by `restore` or `reinstate` (written before the final rename, so
/// that a call interrupted after it knows the rename was its own).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRecord {
    /// `snapshot:<id>` or `preserved:<label>`.
    pub source: String,
    /// The live database's oid right after the switch (0 when restored in place).
    pub oid: u32,
    /// What this switch put aside (renamed databases), recorded before each rename so that
    /// a call interrupted half way still reports it. An entry whose database does not exist
    /// was never renamed (the call stopped before).
    #[serde(default)]
    pub put_aside: Vec<PutAside>,
    /// Set (before the rename) when the database put live stays sealed until `open`:
    /// a verified staged copy, or a reinstated database. Cleared by `open`.
    #[serde(default)]
    pub sealed: Option<Seal>,
    /// When `open` opened it to every client (from then on clients may write into it).
    #[serde(default)]
    pub opened_at: Option<DateTime<Utc>>,
}

/// The whole state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// By label.
    pub preserved: BTreeMap<String, PreservedRecord>,
    /// By staging database name.
    pub staged: BTreeMap<String, StagedRecord>,
    /// The last switch.
    pub live: Option<LiveRecord>,
}

fn path(root: &Path) -> PathBuf {
    root.join(STATE_FILE)
}

impl State {
    /// Reads the state (empty when there is none yet).
    pub async fn load(root: &Path) -> Result<State, PgError> {
        let p = path(root);
        match tokio::fs::read(&p).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                PgError::new(
                    ErrorKind::Corrupt,
                    format!("{} is damaged ({e}): fix or move it aside", p.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(PgError::io(format!("cannot read {}", p.display()), e)),
        }
    }

    /// Writes the state (a `0600` temporary file created exclusively, then a rename),
    /// creating the snapshot root (`0700`) when it is missing.
    pub async fn store(&self, root: &Path) -> Result<(), PgError> {
        let p = path(root);
        let tmp = root.join(format!("{STATE_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| PgError::new(ErrorKind::Failed, format!("cannot encode state: {e}")))?;
        crate::files::create_private_dir(root).await?;
        crate::files::replace_private(&p, &tmp, json).await
    }
}
