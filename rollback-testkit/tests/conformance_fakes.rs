//! The conformance suites run against the fakes (and both state stores), one test per named
//! check. Real adapters run the same checks in their own crates.

use rollback_core::DirStateStore;
use rollback_testkit::conformance;
use rollback_testkit::{conformance_tests, FakeDatabase, FakeFixture, FakeProcessManager, MemoryStateStore};

// One test per named check: `database_snapshot::restore_puts_the_snapshot_live`, ...; each
// with a fresh world.

conformance_tests!(database_snapshot, |check| {
    let f = FakeFixture::new();
    check(&FakeDatabase::new(&f.world, "postgres://fake"), &f).await;
});

conformance_tests!(code_version, |check| {
    let f = FakeFixture::new();
    check(&f.code, &f).await;
});

conformance_tests!(config_store, |check| {
    let f = FakeFixture::new();
    check(&f.config, &f).await;
});

conformance_tests!(process_manager, |check| {
    let f = FakeFixture::new();
    let pm = FakeProcessManager::new(&f.world);
    pm.add_app("web");
    check(&pm, &f).await;
});

conformance_tests!(state_store as memory_state_store, |check| {
    check(&MemoryStateStore::new()).await;
});

conformance_tests!(state_store as dir_state_store, |check, test| {
    let dir = tempfile::Builder::new()
        .prefix(&test.replace("::", "-"))
        .tempdir()
        .unwrap();
    check(&DirStateStore::open(dir.path()).await.unwrap()).await;
});

/// The macro's lists of checks are the suites' `CHECKS`, in order: every check has a test.
#[test]
fn the_macro_has_a_test_for_every_check() {
    fn names<R>(checks: &[conformance::Check<R>]) -> Vec<&'static str> {
        checks.iter().map(|c| c.name).collect()
    }
    assert_eq!(
        database_snapshot::CHECK_NAMES,
        names(conformance::database::CHECKS)
    );
    assert_eq!(code_version::CHECK_NAMES, names(conformance::code::CHECKS));
    assert_eq!(config_store::CHECK_NAMES, names(conformance::config::CHECKS));
    assert_eq!(process_manager::CHECK_NAMES, names(conformance::process::CHECKS));
    assert_eq!(memory_state_store::CHECK_NAMES, names(conformance::state::CHECKS));
    assert_eq!(dir_state_store::CHECK_NAMES, names(conformance::state::CHECKS));
}
