//! rollback-git (in progress).
