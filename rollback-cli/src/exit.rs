//! Exit codes: what a script calling `rollback` can tell apart (listed in `--help` and the
//! README).

use rollback_core::{ErrorKind, Outcome, RollbackError};

/// Done: a rollback succeeded, a check passed.
pub const OK: u8 = 0;
/// The rollback failed and the pre-rollback state was put back.
pub const RESTORED: u8 = 1;
/// Halted: a human must take over.
pub const HALTED: u8 = 2;
/// Refused before anything was stopped or changed.
pub const REFUSED: u8 = 3;
/// Locked, or an unfinished rollback must be resumed first.
pub const LOCKED: u8 = 4;
/// Cancelled before the stop; nothing changed.
pub const CANCELLED: u8 = 5;
/// Wrong usage.
pub const USAGE: u8 = 64;
/// An internal error (the state directory, say).
pub const SOFTWARE: u8 = 70;
/// The config file is wrong.
pub const CONFIG: u8 = 78;

/// The exit code of a finished rollback's outcome.
pub fn of_outcome(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Succeeded | Outcome::Investigated => OK,
        Outcome::RestoredPreRollbackState { .. } => RESTORED,
        Outcome::Aborted { .. } => REFUSED,
        Outcome::Halted { .. } => HALTED,
        _ => SOFTWARE,
    }
}

/// The exit code of a library error.
pub fn of_error(error: &RollbackError) -> u8 {
    match error {
        RollbackError::StepFailed { report, .. } => of_outcome(&report.outcome),
        RollbackError::Locked { .. } | RollbackError::Unfinished { .. } => LOCKED,
        RollbackError::Cancelled { .. } => CANCELLED,
        RollbackError::Preflight { .. }
        | RollbackError::TargetIsLive { .. }
        | RollbackError::NoCheckpoint(_)
        | RollbackError::EmptyScope
        | RollbackError::MissingComponent { .. }
        | RollbackError::NothingToResume => REFUSED,
        RollbackError::InvalidSettings { .. } => CONFIG,
        // The state store (lock, journal, checkpoints) could not be read or written before
        // anything began (a full or read-only state directory): nothing was stopped or
        // changed. (Once a rollback runs, its failures are `StepFailed`.)
        RollbackError::State(_) => REFUSED,
        // A checkpoint refused for what the operator can fix (a privilege, a missing
        // database, bad input) changed nothing.
        RollbackError::Checkpoint { error, .. }
            if matches!(
                error.kind(),
                ErrorKind::PermissionDenied
                    | ErrorKind::InvalidInput
                    | ErrorKind::NotFound
                    | ErrorKind::Unavailable
            ) =>
        {
            REFUSED
        }
        _ => SOFTWARE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollback_core::AdapterError;

    #[test]
    fn a_state_directory_that_cannot_be_written_is_a_refusal_not_internal() {
        let full = AdapterError::io(
            "writing the journal in /var/lib/web/rollback/journal",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert_eq!(full.kind(), ErrorKind::Unavailable);
        assert_eq!(of_error(&RollbackError::State(full)), REFUSED);
        let privilege = AdapterError::new(ErrorKind::PermissionDenied, "BYPASSRLS missing");
        assert_eq!(
            of_error(&RollbackError::Checkpoint {
                what: "the database role's privileges",
                error: privilege
            }),
            REFUSED
        );
        let internal = AdapterError::new(ErrorKind::Failed, "pg_dump crashed");
        assert_eq!(
            of_error(&RollbackError::Checkpoint {
                what: "database snapshot",
                error: internal
            }),
            SOFTWARE
        );
    }
}
