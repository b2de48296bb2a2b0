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
