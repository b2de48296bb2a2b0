//! # rollback-testkit
//!
//! Test support for rollback and for the teams that use it:
//! - [`fakes`]: in-memory fakes of every trait, sharing one [`World`] so that a test asserts
//!   end state (which snapshot is live, which revision runs, which config, is the app up);
//! - call recording and fault injection on the world: fail the n-th call or every call,
//!   delay, and "crash here" (before or after a method's effect) to test `resume()`;
//! - [`conformance`]: one suite per trait that every adapter, fake or real, must pass, as
//!   small named checks (one per promise); [`conformance_tests!`] makes one test of each;
//! - [`Rig`]: a ready world with a bad deploy to roll back from.
//!
//! What it is not: proof that a real adapter works. Real adapters run the conformance
//! suites against real servers in their own tests.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use rollback_core::{RollbackTarget, Scope};
//! use rollback_testkit::{Fault, Method, Rig, When};
//! let rig = Rig::new();
//! let rollback = rig.orchestrator().build().unwrap();
//! rollback.checkpoint("before v2").await.unwrap();
//! rig.deploy_bad_release(Scope::CODE);
//! rig.world.inject(Method::CodeActivate, When::Nth(1), Fault::Fail(rollback_core::ErrorKind::Failed));
//! let err = rollback.rollback(RollbackTarget::LastGood, "v2 broken", Scope::CODE).await.unwrap_err();
//! // The default failure policy put v2 back and started it again.
//! assert!(err.report().is_some());
//! assert_eq!(rig.world.end_state().code_tree.as_deref(), Some("tree-v2"));
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod conformance;
pub mod fakes;
mod fixture;
pub mod integration;
mod rig;
pub mod temp_haproxy;
pub mod temp_pm2;
pub mod temp_postgres;
pub mod temp_sshd;
mod world;

pub use fakes::{
    FakeCode, FakeConfig, FakeDatabase, FakeHealthProbe, FakeMetrics, FakeProcessManager, MemoryStateStore,
    RecordingNotifier,
};
pub use fixture::FakeFixture;
pub use rig::{Rig, APP, CANARY_CONFIG_SECRET, CANARY_DB_PASSWORD};
pub use temp_postgres::TempPostgres;
pub use world::{
    fingerprint, Call, CodeWorld, ConfigWorld, DbContent, DbWorld, EndState, FakeApp, FakeCommit, Fault,
    Method, StoredConfig, When, World, WorldState,
};

/// Runs `fut` until it finishes or a fake reaches a crash point; on a crash the future is
/// dropped (as if the process died) and `None` is returned. From the crash until then, every
/// fake call hangs (a dead process makes no more calls, not even from a concurrent task);
/// once the future is dropped the world takes calls again, for the next "process".
pub async fn run_until_crash<F: std::future::Future>(world: &World, fut: F) -> Option<F::Output> {
    let out = tokio::select! {
        out = fut => Some(out),
        _ = world.crashed() => None,
    };
    if out.is_none() {
        world.reset_crash();
    }
    out
}
