//! The [`ConfigStore`] suite: one check per promise, [`CHECKS`] in the order
//! [`config_store`] runs them.
//!
//! Every check starts by writing the live config it needs through the fixture, so it relies
//! on no other check. The live config holds the suite's canary secret, and no returned
//! value and no error may show it.
//!
//! Not checked: required keys (which keys a store requires is its own configuration) and
//! atomicity of `restore` (it needs a crash inside the write).

use super::{check, expect_error, Check, CheckFuture};
use async_trait::async_trait;
use rollback_core::{AdapterError, ConfigStore, ConfigVersion, ConfigVersionId, ErrorKind};
use std::fmt::Debug;

/// What the config suite needs besides the trait: write the live config.
#[async_trait]
pub trait ConfigFixture: Send + Sync {
    /// Replaces the live config with these pairs.
    async fn write_live(&self, pairs: &[(&str, &str)]);
    /// Replaces the live config with one that does not parse at line 2.
    async fn write_malformed_live(&self);
}

/// The secret value the suite writes; no method may show it.
const SECRET: &str = "conformance-canary-secret-value";

/// The live config the checks start from (`B` is the secret).
const FIRST: [(&str, &str); 3] = [("A", "1"), ("B", SECRET), ("C", "3")];

/// The live config after a change from [`FIRST`]: `B` changed, `C` removed, `D` added.
const SECOND: [(&str, &str); 3] = [("A", "1"), ("B", "changed"), ("D", "4")];

/// A check of the config suite: `(check.run)(&adapter, &fixture).await`.
pub type ConfigCheck = Check<for<'a> fn(&'a dyn ConfigStore, &'a dyn ConfigFixture) -> CheckFuture<'a>>;

/// The config suite's checks, in the order [`config_store`] runs them.
pub const CHECKS: &[ConfigCheck] = &[
    check!(current_stores_nothing),
    check!(backups_are_new_versions_listed_newest_first),
    check!(verify_lists_the_keys),
    check!(diff_names_keys_never_values),
    check!(restore_makes_a_version_live),
    check!(unknown_versions_are_not_found),
    check!(verify_refuses_a_malformed_version),
    check!(remove_deletes_only_that_version),
];

/// The whole [`ConfigStore`] contract: every check of [`CHECKS`], in order, on one adapter
/// and fixture. Stops at the first broken promise; run the checks one by one
/// (`conformance_tests!(config_store, ...)`) to see them all.
pub async fn config_store(config: &dyn ConfigStore, fixture: &dyn ConfigFixture) {
    for check in CHECKS {
        (check.run)(config, fixture).await;
    }
}

/// `current` stores nothing (the list does not grow) and shows no value.
pub async fn current_stores_nothing(config: &dyn ConfigStore, fixture: &dyn ConfigFixture) {
    fixture.write_live(&FIRST).await;
    let stored = config.list().await.expect("list").len();
    let live = config.current().await.expect("current");
    no_secret(&live, "current");
    assert_eq!(
        config.list().await.expect("list").len(),
        stored,
        "current stores nothing"
    );
}

/// Each `backup` is a new version; `list` shows them newest first, and no value.
pub async fn backups_are_new_versions_listed_newest_first(
    config: &dyn ConfigStore,
    fixture: &dyn ConfigFixture,
) {
    let (va, vb) = two_backups(config, fixture).await;
    assert_ne!(va.id, vb.id, "each backup is a new version");
    let all = config.list().await.expect("list");
    no_secret(&all, "list");
    let listed: Vec<ConfigVersionId> = all.into_iter().map(|v| v.id).collect();
    let (ia, ib) = (
        listed
            .iter()
            .position(|v| v == &va.id)
            .expect("list shows the first backup"),
        listed
            .iter()
            .position(|v| v == &vb.id)
            .expect("list shows the second backup"),
    );
    assert!(ib < ia, "list is newest first");
}

/// `verify` of a backup lists its keys, and no value.
pub async fn verify_lists_the_keys(config: &dyn ConfigStore, fixture: &dyn ConfigFixture) {
    fixture.write_live(&FIRST).await;
    let va = config.backup("conformance-verify").await.expect("backup");
    let check = config.verify(&va.id).await.expect("verify");
    no_secret(&check, "verify");
    let mut keys = check.keys.clone();
    keys.sort();
    assert_eq!(keys, ["A", "B", "C"], "verify lists the keys");
}

/// `diff` names the keys added, removed and changed, never a value.
pub async fn diff_names_keys_never_values(config: &dyn ConfigStore, fixture: &dyn ConfigFixture) {
    let (va, vb) = two_backups(config, fixture).await;
    let diff = config.diff(&va.id, &vb.id).await.expect("diff");
    no_secret(&diff, "diff");
    assert_eq!(diff.added, ["D"], "diff names the keys added");
    assert_eq!(diff.removed, ["C"], "diff names the keys removed");
    assert_eq!(diff.changed, ["B"], "diff names the keys changed");
}

/// `restore` makes a version live (the live config no longer differs from it),
/// idempotently.
pub async fn restore_makes_a_version_live(config: &dyn ConfigStore, fixture: &dyn ConfigFixture) {
    let (va, _) = two_backups(config, fixture).await;
    config.restore(&va.id).await.expect("restore");
    let live = config.current().await.expect("current");
    assert!(
        config.diff(&va.id, &live.id).await.expect("diff").is_empty(),
        "restore makes the version live"
    );
    config.restore(&va.id).await.expect("restore is idempotent");
    let live = config.current().await.expect("current");
    assert!(
        config.diff(&va.id, &live.id).await.expect("diff").is_empty(),
        "restore is idempotent"
    );
}

/// Unknown versions are `NotFound` from `verify`, `restore` and `diff`, their errors show no
/// value, and a refused `restore` leaves the live config as it was.
pub async fn unknown_versions_are_not_found(config: &dyn ConfigStore, fixture: &dyn ConfigFixture) {
    fixture.write_live(&FIRST).await;
    let va = config.backup("conformance-unknown").await.expect("backup");
    let unknown = ConfigVersionId::new("no-such-version");
    expect_error(
        no_secret_in_error(config.verify(&unknown).await),
        ErrorKind::NotFound,
        "verify(unknown)",
    );
    expect_error(
        no_secret_in_error(config.restore(&unknown).await),
        ErrorKind::NotFound,
        "restore(unknown)",
    );
    expect_error(
        no_secret_in_error(config.diff(&va.id, &unknown).await),
        ErrorKind::NotFound,
        "diff(known, unknown)",
    );
    let live = config.current().await.expect("current");
    assert!(
        config.diff(&va.id, &live.id).await.expect("diff").is_empty(),
        "a refused restore leaves the live config as it was"
    );
}

/// A malformed live config can be backed up, and `verify` refuses that version with
/// `InvalidInput` naming the line.
pub async fn verify_refuses_a_malformed_version(config: &dyn ConfigStore, fixture: &dyn ConfigFixture) {
    fixture.write_malformed_live().await;
    let bad = config
        .backup("conformance-malformed")
        .await
        .expect("a malformed file can still be backed up");
    match config.verify(&bad.id).await {
        Ok(c) => panic!("verify of a malformed version must fail, got {c:?}"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains("line 2"), "the error names the line: {e}");
        }
    }
}

/// A backup of [`FIRST`], then one of [`SECOND`] (which stays live).
async fn two_backups(
    config: &dyn ConfigStore,
    fixture: &dyn ConfigFixture,
) -> (ConfigVersion, ConfigVersion) {
    fixture.write_live(&FIRST).await;
    let va = config.backup("conformance-first").await.expect("backup");
    no_secret(&va, "backup");
    fixture.write_live(&SECOND).await;
    let vb = config.backup("conformance-second").await.expect("backup");
    (va, vb)
}

/// Asserts `value`'s Debug output does not show the suite's secret.
fn no_secret<T: Debug>(value: &T, what: &str) {
    assert!(
        !format!("{value:?}").contains(SECRET),
        "{what} never shows a value: {value:?}"
    );
}

/// Asserts an error does not show the suite's secret; passes the result on.
fn no_secret_in_error<T>(result: Result<T, AdapterError>) -> Result<T, AdapterError> {
    if let Err(e) = &result {
        assert!(
            !format!("{e} {e:?}").contains(SECRET),
            "an error never shows a value: {e}"
        );
    }
    result
}

/// `remove` (optional: an adapter without it says `Unsupported` and the check ends there)
/// deletes that version and nothing else: the other backup and the live config stay, and
/// removing it again is not an error.
pub async fn remove_deletes_only_that_version(config: &dyn ConfigStore, fixture: &dyn ConfigFixture) {
    let (va, vb) = two_backups(config, fixture).await;
    let live_before = config.current().await.expect("current");
    match config.remove(&va.id).await {
        Err(e) if e.kind() == ErrorKind::Unsupported => return,
        other => other.expect("remove"),
    }
    let listed: Vec<ConfigVersionId> = config
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert!(!listed.contains(&va.id), "a removed version is no longer listed");
    assert!(
        listed.contains(&vb.id),
        "remove deletes only the version it names"
    );
    let live = config.current().await.expect("current");
    assert!(
        config
            .diff(&live_before.id, &live.id)
            .await
            .expect("diff")
            .is_empty(),
        "remove leaves the live config as it was"
    );
    config
        .remove(&va.id)
        .await
        .expect("removing a version again is not an error");
}
