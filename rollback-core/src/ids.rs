//! Identifiers of the things a rollback moves between: snapshots, revisions, config
//! versions, checkpoints, rollbacks and apps.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an identifier as the adapter or store wrote it.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }
    };
}

string_id!(
    /// A database snapshot, as named by its [`DatabaseSnapshot`](crate::DatabaseSnapshot) adapter.
    SnapshotId
);
string_id!(
    /// A code revision (for git: the full commit hash).
    RevisionId
);
string_id!(
    /// A stored version of the configuration, as named by its [`ConfigStore`](crate::ConfigStore).
    ConfigVersionId
);
string_id!(
    /// A checkpoint taken before a deploy.
    CheckpointId
);
string_id!(
    /// One rollback run; names its journal and its report.
    RollbackId
);
string_id!(
    /// An application as its process manager knows it (a pm2 app name, a systemd unit).
    AppName
);

impl AppName {
    /// Why this name would address more than one app to some process manager, or `None`:
    /// the [`ProcessManager`](crate::ProcessManager) contract's "one name, one app" rules
    /// every adapter refuses (empty, `all`, a glob with `*`, `?` or `[`, a `/…/` regular
    /// expression). An adapter adds its own manager's rules after these (pm2 reads a number
    /// as a process id, supervisorctl `group:` as a group).
    ///
    /// ```
    /// use rollback_core::AppName;
    /// assert!(AppName::new("web").why_not_one_app().is_none());
    /// assert!(AppName::new("web-*").why_not_one_app().is_some());
    /// assert!(AppName::new("all").why_not_one_app().is_some());
    /// ```
    pub fn why_not_one_app(&self) -> Option<&'static str> {
        let name = self.as_str();
        if name.is_empty() {
            Some("it is empty, and a process manager reads no name as every app")
        } else if name == "all" {
            Some("process managers read `all` as every app")
        } else if name.contains(['*', '?', '[']) {
            Some("it is a pattern")
        } else if name.len() > 1 && name.starts_with('/') && name.ends_with('/') {
            Some("`/…/` is a regular expression to some managers (pm2)")
        } else {
            None
        }
    }
}
