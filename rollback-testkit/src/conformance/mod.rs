//! Conformance suites: one public async function per trait that asserts the trait's
//! contract against any adapter, fake or real (as object_store's shared integration suite
//! does). Each panics with a message naming the broken promise.
//!
//! A suite needs a few things the trait cannot do itself (write data, make a commit): the
//! adapter's tests give them through a small fixture trait. What only some adapters' tests
//! can arrange (a crash-looping app, the manager's daemon taken down, a corrupt snapshot, a
//! dirty tree) are provided fixture methods: their default says "not supported" and the
//! suite skips that part, so an adapter's tests keep compiling and passing as hooks are
//! added, and check more as they implement them. Each suite's doc lists what it checks.
//!
//! The suites are proven the way they should be: `rollback-testkit/tests/suite_mutations.rs`
//! wraps each fake in deliberately broken versions (one broken promise each) and asserts
//! that the suite rejects every one of them and accepts the unbroken fake.

mod code;
mod config;
mod database;
mod process;
mod state;

pub use code::{code_version, CodeFixture};
pub use config::{config_store, ConfigFixture};
pub use database::{database_snapshot, DatabaseFixture};
pub use process::{process_manager, ProcessFixture, PATTERN_NAMES};
pub use state::state_store;

use rollback_core::{AdapterError, ErrorKind};
use std::fmt::Debug;

/// Asserts `result` is an error of `kind`, with a message naming `what`.
pub(crate) fn expect_error<T: Debug>(result: Result<T, AdapterError>, kind: ErrorKind, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected a `{kind}` error, got Ok({v:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: wrong error kind: {e}"),
    }
}
