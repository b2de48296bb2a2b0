//! The agent protocol: newline-delimited JSON over the agent's stdin and stdout.
//!
//! Every line the orchestrator writes is a [`Request`] with an `id`; the agent answers each
//! with one line, a [`Response`] with the same `id`. The first request is always
//! [`Call::Hello`] with the caller's [`PROTOCOL_VERSION`]; an agent of another version
//! answers with an error naming both versions and serves nothing else. The calls mirror the
//! traits one to one ([`CodeVersion`](rollback_core::CodeVersion),
//! [`ConfigStore`](rollback_core::ConfigStore),
//! [`ProcessManager`](rollback_core::ProcessManager), the host's
//! [`HealthProbe`](rollback_core::HealthProbe)s); their arguments and results are the
//! library's own serde types, so the protocol carries nothing the traits do not.
//!
//! Version 1, by example (one line each):
//!
//! ```text
//! > {"id":1,"call":"hello","version":1}
//! < {"id":1,"ok":{"version":1,"host":"web-2","app":"web","has":["code","config","process","health"]}}
//! > {"id":2,"call":"process_status","app":"web"}
//! < {"id":2,"ok":{"state":"online","pid":4711,...}}
//! > {"id":3,"call":"code_resolve","spec":"nope"}
//! < {"id":3,"err":{"kind":"not_found","message":"no revision `nope` ..."}}
//! ```
//!
//! Secrets stay on the host: config values never travel (the calls carry version ids,
//! keys and diffs of keys, as the trait does), and errors are the adapters' own messages,
//! which never hold one.

use chrono::{DateTime, Utc};
use rollback_core::{AppName, ConfigVersion, ConfigVersionId, ErrorKind, PreparedRevision, RevisionId};
use serde::{Deserialize, Serialize};

/// The version of the protocol this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// One request line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the caller; the response carries it back.
    pub id: u64,
    /// What is asked.
    #[serde(flatten)]
    pub call: Call,
}

/// What the agent can be asked: one variant per trait method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is the trait method of the same name
pub enum Call {
    /// The handshake: the caller's protocol version.
    Hello {
        version: u32,
    },
    CodeCurrent,
    CodeResolve {
        spec: String,
    },
    CodeHistory {
        n: usize,
    },
    CodePrepare {
        revision: RevisionId,
    },
    CodeCheckActivate {
        revision: RevisionId,
    },
    CodeSwitchesUnderARunningApp,
    CodePreserveCurrent,
    CodeActivate {
        prepared: PreparedRevision,
    },
    CodeReinstate {
        preserved: PreparedRevision,
    },
    CodeRevert {
        commits: Vec<RevisionId>,
    },
    ConfigCurrent,
    ConfigBackup {
        label: String,
    },
    ConfigList,
    ConfigVerify {
        version: ConfigVersionId,
    },
    ConfigRestore {
        version: ConfigVersionId,
    },
    ConfigDiff {
        a: ConfigVersionId,
        b: ConfigVersionId,
    },
    ConfigPreserveCurrent {
        label: String,
    },
    ConfigReinstate {
        preserved: ConfigVersion,
    },
    ConfigRemove {
        version: ConfigVersionId,
    },
    ProcessStatus {
        app: AppName,
    },
    ProcessStop {
        app: AppName,
    },
    ProcessStart {
        app: AppName,
    },
    ProcessRestart {
        app: AppName,
    },
    ProcessCanReload {
        app: AppName,
    },
    ProcessReload {
        app: AppName,
    },
    ProcessLogsSince {
        app: AppName,
        since: DateTime<Utc>,
    },
    /// Every health probe configured on the host, at once.
    Probe,
}

/// One response line: `ok` with the method's result as JSON, or `err`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The result.
    #[serde(flatten)]
    pub result: Outcome,
}

/// A call's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The method's return value.
    Ok(serde_json::Value),
    /// The method's error.
    Err(WireError),
}

/// An adapter error as it crosses the wire: its kind and message (its source chain stays
/// on the host, in the agent's log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The kind.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

/// What [`Call::Hello`] answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The agent's protocol version.
    pub version: u32,
    /// The host's name.
    pub host: String,
    /// The app it serves.
    pub app: AppName,
    /// What it has: `code`, `config`, `process`, `health`.
    pub has: Vec<String>,
    /// The code adapter's
    /// [`switches_under_a_running_app`](rollback_core::CodeVersion::switches_under_a_running_app).
    #[serde(default)]
    pub switches_under_a_running_app: bool,
}
