//! The crate's error type and its conversion into [`rollback_core::AdapterError`].

use rollback_core::{AdapterError, ErrorKind};

/// What went wrong in this adapter. Messages never contain a password: the connection
/// settings keep it in a [`Secret`](rollback_core::Secret) and tool output is scrubbed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A SQL statement or a connection failed.
    #[error("{message}")]
    Sql {
        /// How the orchestrator should read it.
        kind: ErrorKind,
        /// What was done and what the server said.
        message: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A file operation failed.
    #[error("{message}")]
    Io {
        /// How the orchestrator should read it.
        kind: ErrorKind,
        /// Which file and what to do.
        message: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Anything else (a tool that failed, a damaged archive, an unknown id).
    #[error("{message}")]
    Other {
        /// How the orchestrator should read it.
        kind: ErrorKind,
        /// What happened and what to do.
        message: String,
    },
}

impl PgError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PgError::Other {
            kind,
            message: message.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PgError::Sql { kind, .. } | PgError::Io { kind, .. } | PgError::Other { kind, .. } => *kind,
        }
    }

    /// A failed SQL statement: `what` says what was being done.
    pub(crate) fn sql(what: impl std::fmt::Display, source: tokio_postgres::Error) -> Self {
        let (kind, detail) = classify(&source, ErrorKind::Failed);
        PgError::Sql {
            kind,
            message: format!("{what}: {detail}"),
            source,
        }
    }

    /// A failed connection attempt.
    pub(crate) fn connect(what: impl std::fmt::Display, source: tokio_postgres::Error) -> Self {
        let (kind, detail) = classify(&source, ErrorKind::Unavailable);
        PgError::Sql {
            kind,
            message: format!("{what}: {detail}"),
            source,
        }
    }

    /// A failed file operation on `path`.
    pub(crate) fn io(what: impl std::fmt::Display, source: std::io::Error) -> Self {
        let kind = match source.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Failed,
        };
        PgError::Io {
            kind,
            message: format!("{what}: {source}"),
            source,
        }
    }

    /// The SQLSTATE code, when the server sent one.
    pub(crate) fn sqlstate(&self) -> Option<&str> {
        match self {
            PgError::Sql { source, .. } => source.as_db_error().map(|d| d.code().code()),
            _ => None,
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
