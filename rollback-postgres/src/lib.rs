//! rollback-postgres (in progress).
