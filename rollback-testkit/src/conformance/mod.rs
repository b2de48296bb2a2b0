//! Conformance suites: the contract of each trait as small, named checks that run against
//! any adapter, fake or real (as object_store's shared integration suite does: one public
//! async function per promise). Each check panics with a message naming the broken promise.
//!
//! # Shape
//!
//! Each trait has a module here with one public async function per promise (its named
//! checks), a [`CHECKS`](database::CHECKS) list of them in the order the suite runs them,
//! and one all-in-one entry point that runs every check in that order on one adapter:
//!
//! | trait | module | all-in-one | fixture |
//! |---|---|---|---|
//! | `DatabaseSnapshot` | [`database`] | [`database_snapshot`] | [`DatabaseFixture`] |
//! | `CodeVersion` | [`code`] | [`code_version`] | [`CodeFixture`] |
//! | `ConfigStore` | [`config`] | [`config_store`] | [`ConfigFixture`] |
//! | `ProcessManager` | [`process`] | [`process_manager`] | [`ProcessFixture`] |
//! | `StateStore` | [`state`] | [`state_store`] | none |
//!
//! Every check takes `(&adapter, &fixture)` (a state store's only `(&store)`) and makes
//! what it needs through the fixture: it relies on no earlier check, so one broken promise
//! fails one test and hides none of the others. The exceptions are documented on the check
//! (a process check that starts the app first, say, fails too when `start` is broken).
//! Run one test per check with [`conformance_tests!`](crate::conformance_tests), one line
//! per trait:
//!
//! ```text
//! rollback_testkit::conformance_tests!(database_snapshot, |check| {
//!     let Some(env) = setup("my-adapter").await else { return };
//!     check(&env.adapter, &env.fixture()).await;
//! });
//! ```
//!
//! The all-in-one entry points run every check in turn on the same adapter and fixture:
//! they suit a `main` (an example, a smoke test) and keep older callers working; a test
//! suite is better served by the macro.
//!
//! # Fixtures
//!
//! A check needs a few things the trait cannot do itself (write data, make a commit): the
//! adapter's tests give them through a small fixture trait. What only some adapters' tests
//! can arrange (a crash-looping app, the manager's daemon taken down, a corrupt snapshot, a
//! dirty tree) are provided fixture methods: their default says "not supported" and the
//! check that needs it passes without checking anything, so an adapter's tests keep
//! compiling and passing as hooks are added, and check more as they implement them.
//!
//! # The checks
//!
//! [`database`] ([`database_snapshot`]):
//! `snapshot_keeps_the_live_data`, `list_is_newest_first`,
//! `verify_finds_a_damaged_snapshot` (hook: [`DatabaseFixture::corrupt_snapshot`]),
//! `prepare_restore_leaves_the_live_database_alone`, `preserve_current_is_idempotent`,
//! `restore_puts_the_snapshot_live`, `restored_snapshot_passes_integrity`,
//! `integrity_reports_what_is_broken` (hook: [`DatabaseFixture::set_integrity_broken`]),
//! `reinstate_puts_the_preserved_database_back`, `unknown_snapshots_are_not_found`,
//! `remove_forgets_a_snapshot`.
//!
//! [`code`] ([`code_version`]):
//! `resolve_finds_full_and_short_ids`, `unknown_revisions_are_not_found`,
//! `history_is_newest_first`, `preserve_current_is_the_live_revision`,
//! `activate_refuses_an_unprepared_revision`, `prepare_leaves_what_runs_alone`,
//! `activate_switches_what_runs`, `check_activate_agrees_with_activate` (more with
//! [`CodeFixture::set_dirty`]), `revert_adds_a_commit_on_top`,
//! `conflicting_revert_changes_nothing` (hook: [`CodeFixture::revert_conflict`]),
//! `failed_build_changes_nothing` (hook: [`CodeFixture::commit_unbuildable`]).
//!
//! [`config`] ([`config_store`]):
//! `current_stores_nothing`, `backups_are_new_versions_listed_newest_first`,
//! `verify_lists_the_keys`, `diff_names_keys_never_values`, `restore_makes_a_version_live`,
//! `unknown_versions_are_not_found`, `verify_refuses_a_malformed_version`,
//! `remove_deletes_only_that_version` (optional capability: `Unsupported` ends it).
//!
//! [`process`] ([`process_manager`]):
//! `names_for_several_apps_are_refused`, `start_brings_the_app_online`,
//! `unknown_apps_are_not_found`, `restart_runs_a_new_process`, `stop_stops_the_app`,
//! `restart_starts_a_stopped_app`, `a_crashing_app_fails_to_start` (hook:
//! [`ProcessFixture::crashing_app`]), `a_manager_that_is_down_is_unavailable` (hook:
//! [`ProcessFixture::take_manager_down`]; last, as it leaves the manager down).
//!
//! [`state`] ([`state_store`]):
//! `checkpoints_round_trip_newest_first`, `saving_a_checkpoint_again_replaces_it`,
//! `journals_round_trip_newest_first`, `saving_a_journal_again_replaces_it`,
//! `the_lock_is_exclusive_and_names_its_holder`, `only_the_holders_token_unlocks`,
//! `remove_checkpoint_forgets_only_it` (optional capability: `Unsupported` ends it).
//!
//! # Proof
//!
//! The suites are proven the way they should be: `rollback-testkit/tests/suite_mutations.rs`
//! wraps each fake in deliberately broken versions (one broken promise each) and asserts
//! that every mutant is rejected by the check named for its promise (each check run on its
//! own, with a fresh fixture) and by the all-in-one suite, and that the unbroken fake
//! passes every check.

pub mod code;
pub mod config;
pub mod database;
pub mod process;
pub mod state;

pub use code::{code_version, CodeFixture};
pub use config::{config_store, ConfigFixture};
pub use database::{database_snapshot, DatabaseFixture};
pub use process::{process_manager, ProcessFixture, PATTERN_NAMES};
pub use state::state_store;

use rollback_core::{AdapterError, ErrorKind};
use std::fmt::{self, Debug};
use std::future::Future;
use std::pin::Pin;

/// One named check of a suite (one promise of the trait), to run on its own: the entries of
/// each suite's `CHECKS` list. `R` is the suite's function type (see
/// [`DatabaseCheck`](database::DatabaseCheck) and the others).
#[derive(Clone, Copy)]
pub struct Check<R> {
    /// The check's name: the name of its function in the suite's module, and of its test
    /// under [`conformance_tests!`](crate::conformance_tests).
    pub name: &'static str,
    /// Runs the check: `(check.run)(&adapter, &fixture).await` panics, naming the broken
    /// promise, when the adapter breaks it.
    pub run: R,
}

impl<R> Debug for Check<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a check in a `CHECKS` list returns: the running check, boxed.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The `CHECKS` list entry of a suite's check function.
macro_rules! check {
    ($f:ident) => {
        $crate::conformance::Check {
            name: stringify!($f),
            run: |adapter, fixture| Box::pin($f(adapter, fixture)),
        }
    };
}
pub(crate) use check;

/// Asserts `result` is an error of `kind`, with a message naming `what`.
pub(crate) fn expect_error<T: Debug>(result: Result<T, AdapterError>, kind: ErrorKind, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected a `{kind}` error, got Ok({v:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: wrong error kind: {e}"),
    }
}

/// Generates one test per named check of a conformance suite, in a module named after the
/// suite (or `as` another name), so that each broken promise fails a test of its own:
///
/// ```text
/// conformance_tests!(database_snapshot, |check| { ...setup...; check(&adapter, &fixture).await; });
/// conformance_tests!(state_store as dir_state_store, |check| { check(&store).await; });
/// conformance_tests!(
///     #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
///     process_manager,
///     |check, test| { let Some(env) = Env::start(test) else { return }; check(&env.pm, &env.fixture()).await; }
/// );
/// ```
///
/// - The suite is one of `database_snapshot`, `code_version`, `config_store`,
///   `process_manager`, `state_store`; the tests are `<suite>::<check>` (for example
///   `database_snapshot::restore_puts_the_snapshot_live`), one per entry of the suite
///   module's `CHECKS`. `as <name>` names the module instead, for a second set of tests of
///   the same suite in one file (another layout, another format).
/// - The block is the body of each test (an `async fn`, so it can `.await` and set up
///   whatever the adapter needs: a temporary server, a serial lock), with `check` bound to
///   the check's function: it is called once, with the adapter and the fixture (a state
///   store's check takes only the store). The fixture may borrow from the block's locals.
///   `return` before calling it skips the test (after a loud skip, when a server binary is
///   missing). The optional second name (`test` above) is bound to the test's name,
///   `"<suite>::<check>"`, a `&'static str` for skip banners and temp-dir names.
/// - The tests are `#[tokio::test]` (the calling crate needs tokio with `macros` and `rt`),
///   or carry the attributes given before the suite instead (a multi-threaded runtime,
///   `#[ignore]`).
/// - The block's names resolve in the module the macro is called from (the generated module
///   glob-imports it). The module also holds `CHECK_NAMES`, the names it generated tests
///   for.
///
/// ```
/// use rollback_testkit::conformance::ConfigFixture;
/// use rollback_testkit::{conformance_tests, FakeConfig, MemoryStateStore, World};
///
/// struct Fixture(World);
///
/// #[async_trait::async_trait]
/// impl ConfigFixture for Fixture {
///     async fn write_live(&self, pairs: &[(&str, &str)]) {
///         FakeConfig::new(&self.0).set_live(pairs);
///     }
///     async fn write_malformed_live(&self) {
///         self.0.lock().config.live_malformed_line = Some(2);
///     }
/// }
///
/// conformance_tests!(config_store, |check| {
///     let fixture = Fixture(World::new());
///     check(&FakeConfig::new(&fixture.0), &fixture).await;
/// });
///
/// conformance_tests!(state_store as memory_state_store, |check, test| {
///     assert!(test.starts_with("state_store::"));
///     check(&MemoryStateStore::new()).await;
/// });
/// # fn main() {
/// #     assert!(config_store::CHECK_NAMES.contains(&"restore_makes_a_version_live"));
/// #     assert_eq!(memory_state_store::CHECK_NAMES.len(), rollback_testkit::conformance::state::CHECKS.len());
/// # }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (
        $(#[$attr:meta])+
        $suite:ident $(as $module:ident)?,
        |$check:ident $(, $test:ident)? $(,)?| $body:block $(,)?
    ) => {
        $crate::__conformance_suite! {
            $suite [$($module)?] [$(#[$attr])+] [$check $($test)?] $body
        }
    };
    (
        $suite:ident $(as $module:ident)?,
        |$check:ident $(, $test:ident)? $(,)?| $body:block $(,)?
    ) => {
        $crate::__conformance_suite! {
            $suite [$($module)?] [#[::tokio::test]] [$check $($test)?] $body
        }
    };
}

/// The named checks of each suite, for [`conformance_tests!`]: keep in step with each
/// suite's `CHECKS` (a test in `conformance_fakes.rs` compares them).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_suite {
    (database_snapshot $($rest:tt)*) => {
        $crate::__conformance_module! {
            database_snapshot database [
                snapshot_keeps_the_live_data,
                list_is_newest_first,
                verify_finds_a_damaged_snapshot,
                prepare_restore_leaves_the_live_database_alone,
                preserve_current_is_idempotent,
                restore_puts_the_snapshot_live,
                restored_snapshot_passes_integrity,
                integrity_reports_what_is_broken,
                reinstate_puts_the_preserved_database_back,
                unknown_snapshots_are_not_found,
                remove_forgets_a_snapshot
            ] $($rest)*
        }
    };
    (code_version $($rest:tt)*) => {
        $crate::__conformance_module! {
            code_version code [
                resolve_finds_full_and_short_ids,
                unknown_revisions_are_not_found,
                history_is_newest_first,
                preserve_current_is_the_live_revision,
                activate_refuses_an_unprepared_revision,
                prepare_leaves_what_runs_alone,
                activate_switches_what_runs,
                check_activate_agrees_with_activate,
                revert_adds_a_commit_on_top,
                conflicting_revert_changes_nothing,
                failed_build_changes_nothing
            ] $($rest)*
        }
    };
    (config_store $($rest:tt)*) => {
        $crate::__conformance_module! {
            config_store config [
                current_stores_nothing,
                backups_are_new_versions_listed_newest_first,
                verify_lists_the_keys,
                diff_names_keys_never_values,
                restore_makes_a_version_live,
                unknown_versions_are_not_found,
                verify_refuses_a_malformed_version,
                remove_deletes_only_that_version
            ] $($rest)*
        }
    };
    (process_manager $($rest:tt)*) => {
        $crate::__conformance_module! {
            process_manager process [
                names_for_several_apps_are_refused,
                start_brings_the_app_online,
                unknown_apps_are_not_found,
                restart_runs_a_new_process,
                stop_stops_the_app,
                restart_starts_a_stopped_app,
                a_crashing_app_fails_to_start,
                a_manager_that_is_down_is_unavailable
            ] $($rest)*
        }
    };
    (state_store $($rest:tt)*) => {
        $crate::__conformance_module! {
            state_store state [
                checkpoints_round_trip_newest_first,
                saving_a_checkpoint_again_replaces_it,
                journals_round_trip_newest_first,
                saving_a_journal_again_replaces_it,
                the_lock_is_exclusive_and_names_its_holder,
                only_the_holders_token_unlocks,
                remove_checkpoint_forgets_only_it
            ] $($rest)*
        }
    };
    ($other:ident $($rest:tt)*) => {
        ::core::compile_error!(::core::concat!(
            "conformance_tests!: no suite `", ::core::stringify!($other),
            "`; the suites are database_snapshot, code_version, config_store, process_manager and state_store"
        ));
    };
}

/// The module of tests of one suite, for [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_module {
    ($suite:ident $suite_mod:ident [$($name:ident),*] [] $attrs:tt $binding:tt $body:block) => {
        $crate::__conformance_module! { $suite $suite_mod [$($name),*] [$suite] $attrs $binding $body }
    };
    ($suite:ident $suite_mod:ident [$($name:ident),*] [$module:ident] $attrs:tt $binding:tt $body:block) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            /// The checks this module has a test for.
            #[allow(dead_code)]
            pub(super) const CHECK_NAMES: &[&str] = &[$(::core::stringify!($name)),*];

            $(
                $crate::__conformance_test! { $suite $suite_mod $name $attrs $binding $body }
            )*
        }
    };
}

/// One test of [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ($suite:ident $suite_mod:ident $name:ident [$(#[$attr:meta])+] [$check:ident $($test:ident)?] $body:block) => {
        $(#[$attr])+
        async fn $name() {
            let $check = $crate::conformance::$suite_mod::$name;
            $(
                let $test: &'static str =
                    ::core::concat!(::core::stringify!($suite), "::", ::core::stringify!($name));
            )?
            $body
        }
    };
}
