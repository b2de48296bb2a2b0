//! The crate's error type and its conversion into [`rollback_core::AdapterError`].

use rollback_core::{AdapterError, ErrorKind};

/// The driver's error behind a [`PgError::Sql`].
type DriverError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in this adapter. Messages never contain a password: the connection
/// settings keep it in a [`Secret`](rollback_core::Secret) and tool output is scrubbed.
///
/// [`kind`](PgError::kind) says how the orchestrator reads it; converted into an
/// [`AdapterError`] it stays that error's [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// A SQL statement or a connection failed: the message says what was done and what
    /// the server said (its SQLSTATE is [`PgError::sqlstate`]).
    #[error("{message}")]
    #[non_exhaustive]
    Sql {
        /// How the orchestrator should read it.
        kind: ErrorKind,
        /// What was done and what the server said.
        message: String,
        /// The driver's error, boxed so that the driver's type is not part of this API
        /// (it can be downcast to the driver's error type for its details).
        #[source]
        source: DriverError,
    },
    /// A file operation failed: the message names the file and what to do.
    #[error("{message}")]
    #[non_exhaustive]
    Io {
        /// How the orchestrator should read it.
        kind: ErrorKind,
        /// Which file and what to do.
        message: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file this adapter wrote (a manifest, the state file, a measured baseline) does not
    /// parse or cannot be encoded: the message names it and what to do.
    #[error("{message}")]
    #[non_exhaustive]
    Json {
        /// How the orchestrator should read it.
        kind: ErrorKind,
        /// Which file and what to do.
        message: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Anything else (a tool that failed, not installed or timed out, a damaged archive,
    /// an unknown id, a setting this build does not support): the message says what to do.
    #[error("{message}")]
    #[non_exhaustive]
    Other {
        /// How the orchestrator should read it.
        kind: ErrorKind,
        /// What happened and what to do.
        message: String,
    },
}

impl PgError {
    /// An error of `kind` with `message`.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PgError::Other {
            kind,
            message: message.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PgError::Sql { kind, .. }
            | PgError::Io { kind, .. }
            | PgError::Json { kind, .. }
            | PgError::Other { kind, .. } => *kind,
        }
    }

    /// The SQLSTATE code (e.g. `42501`, insufficient privilege) when the server sent one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            PgError::Sql { source, .. } => source
                .downcast_ref::<tokio_postgres::Error>()
                .and_then(|e| e.as_db_error())
                .map(|d| d.code().code()),
            _ => None,
        }
    }

    /// A failed SQL statement: `what` says what was being done.
    pub(crate) fn sql(what: impl std::fmt::Display, source: tokio_postgres::Error) -> Self {
        let (kind, detail) = classify(&source, ErrorKind::Failed);
        PgError::Sql {
            kind,
            message: format!("{what}: {detail}"),
            source: Box::new(source),
        }
    }

    /// A failed connection attempt, with what the TLS settings make of it (which problem,
    /// what to do) before the driver's detail when it was a TLS problem.
    pub(crate) fn connect_explained(
        what: impl std::fmt::Display,
        source: tokio_postgres::Error,
        explanation: Option<(ErrorKind, String)>,
    ) -> Self {
        let (kind, detail) = classify(&source, ErrorKind::Unavailable);
        let (kind, message) = match explanation {
            Some((kind, why)) => (kind, format!("{what}: {why} ({detail})")),
            None => (kind, format!("{what}: {detail}")),
        };
        PgError::Sql {
            kind,
            message,
            source: Box::new(source),
        }
    }

    /// The kind of a failed connection attempt.
    pub(crate) fn connect_kind(source: &tokio_postgres::Error) -> ErrorKind {
        classify(source, ErrorKind::Unavailable).0
    }

    /// A failed file operation: `what` names the file; the kind comes from
    /// [`ErrorKind::from_io`].
    pub(crate) fn io(what: impl std::fmt::Display, source: std::io::Error) -> Self {
        PgError::Io {
            kind: ErrorKind::from_io(source.kind()),
            message: format!("{what}: {source}"),
            source,
        }
    }

    /// A JSON file that does not parse or a value that cannot be encoded: `kind` is
    /// `Corrupt` for a damaged file, `Failed` for an encoding failure.
    pub(crate) fn json(kind: ErrorKind, what: impl std::fmt::Display, source: serde_json::Error) -> Self {
        PgError::Json {
            kind,
            message: format!("{what} ({source})"),
            source,
        }
    }

    /// A blocking task (file I/O off the runtime's threads) that panicked or was cancelled.
    pub(crate) fn task(what: impl std::fmt::Display, source: tokio::task::JoinError) -> Self {
        PgError::Io {
            kind: ErrorKind::Failed,
            message: format!("{what}: the blocking task failed ({source})"),
            source: std::io::Error::other(source),
        }
    }
}

/// The error kind and a human detail for a driver error; `default` for errors that carry
/// no SQLSTATE (I/O errors, closed connections).
fn classify(e: &tokio_postgres::Error, default: ErrorKind) -> (ErrorKind, String) {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let kind = match code {
            "28P01" | "28000" | "42501" => ErrorKind::PermissionDenied,
            "3D000" | "42P01" | "42704" => ErrorKind::NotFound,
            "55006" | "55P03" | "40P01" | "40001" | "42P04" => ErrorKind::Conflict,
            "57014" => ErrorKind::Timeout,
            c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => ErrorKind::Unavailable,
            c if c.starts_with("22") || c.starts_with("42") => ErrorKind::InvalidInput,
            _ => ErrorKind::Failed,
        };
        let mut detail = format!("{} {}: {}", db.severity(), code, db.message());
        if let Some(hint) = db.hint() {
            detail.push_str(&format!(" (hint: {hint})"));
        }
        (kind, detail)
    } else if e.is_closed() {
        (ErrorKind::Unavailable, "the connection was closed".to_owned())
    } else {
        // The driver's own text plus its cause (e.g. "Connection refused").
        let mut detail = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            detail.push_str(&format!(": {c}"));
            cause = c.source();
        }
        let kind = if detail.contains("timed out") || detail.contains("timeout") {
            ErrorKind::Timeout
        } else {
            default
        };
        (kind, detail)
    }
}

impl From<PgError> for AdapterError {
    fn from(e: PgError) -> Self {
        let kind = e.kind();
        let message = e.to_string();
        AdapterError::new(kind, message).with_source(e)
    }
}

/// Removes every occurrence of `secret` (when non-empty) from `text`.
pub(crate) fn scrub(text: &str, secret: Option<&rollback_core::Secret>) -> String {
    match secret {
        Some(s) if !s.is_empty() => text.replace(s.expose(), "[redacted]"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_adapter_error_keeps_the_crate_error_and_its_cause_as_sources() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = PgError::io("cannot write /x/state.json", io);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.source().is_some_and(|s| s.is::<std::io::Error>()));
        let a = AdapterError::from(e);
        assert_eq!(a.kind(), ErrorKind::PermissionDenied);
        let source = a.source().expect("the crate error is the source");
        let pg = source.downcast_ref::<PgError>().expect("a PgError");
        assert_eq!(pg.sqlstate(), None);
        assert!(source.source().is_some_and(|s| s.is::<std::io::Error>()));

        let bad = serde_json::from_slice::<serde_json::Value>(b"{").unwrap_err();
        let e = PgError::json(ErrorKind::Corrupt, "state.json is damaged", bad);
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.source().is_some_and(|s| s.is::<serde_json::Error>()));
    }
}
