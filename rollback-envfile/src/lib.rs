//! rollback-envfile (in progress).
