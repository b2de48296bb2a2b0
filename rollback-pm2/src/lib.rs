//! rollback-pm2 (in progress).
