//! Errors: [`AdapterError`], what every trait method returns on failure, and
//! [`RollbackError`], what the orchestrator returns.

use crate::domain::LockHolder;
use crate::ids::{CheckpointId, RollbackId};
use crate::plan::Step;
use crate::report::RollbackReport;
use std::fmt;

/// What kind of failure an adapter met; the orchestrator decides on it, humans read the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing asked for does not exist (unknown snapshot, revision, version, app).
    NotFound,
    /// The input is malformed or unsafe (a config file that does not parse, a dirty tree).
    InvalidInput,
    /// A dependency cannot be reached (database down, daemon not running, binary missing).
    Unavailable,
    /// Credentials were refused.
    PermissionDenied,
    /// An operation did not finish in time.
    Timeout,
    /// The stored data is damaged (checksum mismatch, truncated archive).
    Corrupt,
    /// The operation conflicts with the current state (a revert conflict, a busy database).
    Conflict,
    /// The adapter does not do this (an optional capability it does not have).
    Unsupported,
    /// Anything else: the message says what.
    #[default]
    Failed,
}

impl ErrorKind {
    /// The kind of an I/O failure: the one mapping every adapter uses.
    ///
    /// ```
    /// use rollback_core::ErrorKind;
    /// assert_eq!(ErrorKind::from_io(std::io::ErrorKind::NotFound), ErrorKind::NotFound);
    /// assert_eq!(ErrorKind::from_io(std::io::ErrorKind::TimedOut), ErrorKind::Timeout);
    /// ```
    pub fn from_io(kind: std::io::ErrorKind) -> Self {
        use std::io::ErrorKind as Io;
        match kind {
            Io::NotFound => ErrorKind::NotFound,
            Io::PermissionDenied | Io::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
            Io::TimedOut => ErrorKind::Timeout,
            Io::Unsupported => ErrorKind::Unsupported,
            Io::InvalidInput
            | Io::InvalidData
            | Io::InvalidFilename
            | Io::NotADirectory
            | Io::IsADirectory => ErrorKind::InvalidInput,
            Io::UnexpectedEof => ErrorKind::Corrupt,
            Io::AlreadyExists | Io::ResourceBusy | Io::DirectoryNotEmpty | Io::WouldBlock => {
                ErrorKind::Conflict
            }
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::AddrNotAvailable
            | Io::BrokenPipe
            | Io::HostUnreachable
            | Io::NetworkUnreachable
            | Io::NetworkDown
            // A full disk or quota: the place to write cannot take it now.
            | Io::StorageFull
            | Io::QuotaExceeded
            | Io::FileTooLarge => ErrorKind::Unavailable,
            _ => ErrorKind::Failed,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Failed => "failed",
        })
    }
}

/// The error every trait method returns. Adapters keep their own error enum and convert
/// into this one, keeping it as the [`source`](std::error::Error::source).
///
/// The message must name the thing and say what to do, and must never contain a secret.
///
/// ```
/// use rollback_core::{AdapterError, ErrorKind};
/// let e = AdapterError::new(ErrorKind::NotFound, "snapshot `s1` does not exist: run `list()` to see snapshots");
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// assert!(e.to_string().contains("s1"));
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct AdapterError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    // Boxed: most errors have none, and the error stays small in every `Result`.
    parts: Option<Box<Parts>>,
}

/// How each part came out, when there are several.
#[derive(Debug)]
struct Parts(Vec<PartOutcome>);

/// How one part of an adapter that acts on several (a fleet's hosts) came out of a call that
/// failed as a whole: see [`AdapterError::parts`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum PartState {
    /// The call did its work on this part.
    Done,
    /// The call failed on this part.
    Failed {
        /// What kind of failure.
        kind: ErrorKind,
        /// Why, as the part's adapter said it.
        message: String,
    },
    /// The call never got to this part (an earlier part ended it): it is as it was.
    NotReached,
}

/// One part of a call that acts on several parts, and how it came out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct PartOutcome {
    /// The part's name (a host's, as the adapter's errors name it).
    pub part: String,
    /// How it came out.
    #[serde(flatten)]
    pub state: PartState,
}

impl PartOutcome {
    /// `part` came out as `state`.
    pub fn new(part: impl Into<String>, state: PartState) -> Self {
        Self {
            part: part.into(),
            state,
        }
    }

    /// `part` failed with `error` (its kind and message, without the source).
    pub fn failed(part: impl Into<String>, error: &AdapterError) -> Self {
        Self::new(
            part,
            PartState::Failed {
                kind: error.kind(),
                message: error.message().to_owned(),
            },
        )
    }

    /// True when the call did its work on this part.
    pub fn is_done(&self) -> bool {
        matches!(self.state, PartState::Done)
    }

    /// True when the part could not be reached at all (its host or agent is gone, or did
    /// not answer in time): a fault of the part, not a verdict on what was asked of it.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self.state,
            PartState::Failed {
                kind: ErrorKind::Unavailable | ErrorKind::Timeout,
                ..
            }
        )
    }
}

impl fmt::Display for PartState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartState::Done => f.write_str("done"),
            PartState::Failed { kind, message } => write!(f, "{kind}: {message}"),
            PartState::NotReached => f.write_str("not reached"),
        }
    }
}

impl fmt::Display for PartOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.part, self.state)
    }
}

impl AdapterError {
    /// An error of this kind with this message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
            parts: None,
        }
    }

    /// The same error, saying how each part came out: an adapter that acts on several
    /// parts (a fleet's hosts) fails as a whole when any part fails, and says which parts
    /// did the work anyway, so that a recovery can serve again with every part that is
    /// consistent.
    ///
    /// ```
    /// use rollback_core::{AdapterError, ErrorKind, PartOutcome, PartState};
    /// let e = AdapterError::new(ErrorKind::Unavailable, "starting the app failed on web-2")
    ///     .with_parts(vec![
    ///         PartOutcome::new("web-1", PartState::Done),
    ///         PartOutcome::new("web-2", PartState::Failed { kind: ErrorKind::Unavailable, message: "agent gone".into() }),
    ///     ]);
    /// assert_eq!(e.failed_parts(), Some(vec!["web-2".to_string()]));
    /// ```
    pub fn with_parts(mut self, parts: Vec<PartOutcome>) -> Self {
        self.parts = (!parts.is_empty()).then(|| Box::new(Parts(parts)));
        self
    }

    /// How each part came out, when the adapter acts on several (empty otherwise: the
    /// failure is the whole adapter's).
    pub fn parts(&self) -> &[PartOutcome] {
        self.parts.as_deref().map_or(&[], |p| p.0.as_slice())
    }

    /// The parts the call did not do its work on (failed or not reached), when the adapter
    /// said how each part came out; `None` when it did not (the failure is the whole
    /// adapter's).
    pub fn failed_parts(&self) -> Option<Vec<String>> {
        self.parts.as_ref().map(|parts| {
            parts
                .0
                .iter()
                .filter(|p| !p.is_done())
                .map(|p| p.part.clone())
                .collect()
        })
    }

    /// The same error, keeping `source` as its cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An I/O failure: its kind mapped by [`ErrorKind::from_io`], `message` (which names the
    /// path and what to do) and the `io::Error` kept as the source.
    pub fn io(message: impl Into<String>, error: std::io::Error) -> Self {
        Self::new(ErrorKind::from_io(error.kind()), message).with_source(error)
    }

    /// The same error with `what` in front of its message (`"building the code: ..."`),
    /// keeping its kind and source.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// Shorthand for `new(ErrorKind::NotFound, ..)`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Shorthand for `new(ErrorKind::Unsupported, ..)`: an optional capability the adapter
    /// does not have.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// Shorthand for `new(ErrorKind::Timeout, ..)`.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }
}

/// One pre-flight check that failed; nothing was stopped or changed.
#[derive(Debug, thiserror::Error)]
#[error("{check}: {error}")]
pub struct PreflightFailure {
    /// What was checked, e.g. `"snapshot s1 readable"`.
    pub check: String,
    /// Why it failed.
    #[source]
    pub error: AdapterError,
}

/// What the orchestrator returns on failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    /// Another rollback holds the lock. Wait for it, or if its holder is gone, clear the
    /// lock with `Orchestrator::clear_stale_lock`.
    #[error("another rollback is running: lock held by {holder}; wait for it to finish, or clear a stale lock with clear_stale_lock()")]
    Locked {
        /// Who holds it.
        holder: Box<LockHolder>,
    },
    /// A rollback was interrupted, or halted, and must be resumed before a new one starts.
    /// Refusing changes nothing: the lock its dead holder left stays for `resume()`.
    #[error(
        "rollback {id} {}: call resume() to {}",
        if *.halted { format!("halted at step `{step}`") } else {
            format!("did not finish (its process stopped at step `{step}`; {})",
                .holder.as_ref().map_or_else(|| "no lock is held".to_owned(), |h| format!("the lock is still held by {h}")))
        },
        if *.halted { "take it up once the fault is cleared" } else { "finish it" }
    )]
    Unfinished {
        /// The unfinished rollback.
        id: RollbackId,
        /// The last step it journaled (for a halted rollback, the step it halted at).
        step: Step,
        /// Who holds the lock now (usually the dead process that ran it: pid, host, since).
        holder: Option<Box<LockHolder>>,
        /// True when it halted (its report says what is where) rather than stopped.
        halted: bool,
    },
    /// `resume()` was called but no rollback is unfinished or halted.
    #[error("nothing to resume: every journaled rollback has finished")]
    NothingToResume,
    /// The caller called the rollback off (a [`Cancel`](crate::Cancel)) before the app was
    /// stopped; nothing the app uses was changed. The journal records it as aborted.
    #[error(
        "rollback cancelled during `{step}`, before the app was stopped: nothing the app uses was changed"
    )]
    Cancelled {
        /// The step it was called off in.
        step: Step,
    },
    /// A setting cannot work; nothing was built.
    #[error("setting `{setting}` {why}")]
    InvalidSettings {
        /// Which setting.
        setting: String,
        /// What is wrong and what to set instead.
        why: String,
    },
    /// No rollback of that id is in the journal.
    #[error("no rollback `{0}` in the journal: `journals()` (or `rollback status`) names the last one")]
    UnknownRollback(RollbackId),
    /// The request's scope names nothing to roll back.
    #[error("the scope is empty: name at least one of database, code, config")]
    EmptyScope,
    /// No checkpoint matches the target.
    #[error("no checkpoint to roll back to: {0}")]
    NoCheckpoint(String),
    /// The target already is what is live: rolling back would change nothing.
    #[error("nothing to roll back: checkpoint {checkpoint} matches what is live ({what}); pick an older checkpoint")]
    TargetIsLive {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// What matched, e.g. `"revision abc123"`.
        what: String,
    },
    /// The requested scope needs a component the orchestrator was not given.
    #[error("scope `{scope}` needs a {component} adapter, and none was configured: add one with Orchestrator::builder().{setter}(..)")]
    MissingComponent {
        /// The scope asked for.
        scope: String,
        /// Which component, e.g. `"DatabaseSnapshot"`.
        component: &'static str,
        /// The builder method that adds it.
        setter: &'static str,
    },
    /// Pre-flight found problems; nothing was stopped or changed.
    #[error("pre-flight failed, nothing was stopped or changed: {}", .failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Preflight {
        /// Every failed check.
        failures: Vec<PreflightFailure>,
    },
    /// A step failed after pre-flight; the report says what was done about it.
    #[error("step `{step}` failed: {error}; {}", .report.outcome)]
    StepFailed {
        /// The failed step.
        step: Step,
        /// Why: the adapter's error with its kind and source chain (after a `resume()`,
        /// its kind and text as journaled).
        #[source]
        error: AdapterError,
        /// The report, with the recovery taken and the state left.
        report: Box<RollbackReport>,
    },
    /// Taking a checkpoint failed; nothing was changed.
    #[error("checkpoint failed at {what}: {error}")]
    Checkpoint {
        /// Which part.
        what: &'static str,
        /// Why.
        #[source]
        error: AdapterError,
    },
    /// The health gate could not run (the process manager did not answer, say).
    #[error("health gate: {0}")]
    HealthGate(#[source] AdapterError),
    /// The state store (checkpoints, journal, lock) failed.
    #[error("state store: {0}")]
    State(#[source] AdapterError),
}

impl RollbackError {
    /// The report of a rollback that started changing things, when there is one.
    pub fn report(&self) -> Option<&RollbackReport> {
        match self {
            RollbackError::StepFailed { report, .. } => Some(report),
            _ => None,
        }
    }
}
