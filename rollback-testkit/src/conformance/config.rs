use super::expect_error;
use async_trait::async_trait;
use rollback_core::{AdapterError, ConfigStore, ConfigVersionId, ErrorKind};
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

/// The [`ConfigStore`] contract. Checks:
/// - `current` stores nothing (the list does not grow);
/// - each `backup` is a new version; `list` shows them newest first;
/// - `verify` lists the keys;
/// - `diff` names the keys added, removed and changed, never a value;
/// - `restore` makes a version live, idempotently;
/// - unknown versions are `NotFound` from `verify`, `restore` and `diff`, and a refused
///   `restore` leaves the live config as it was;
/// - a malformed version can be backed up, and `verify` refuses it with `InvalidInput`
///   naming the line;
/// - no returned value and no error shows a value (the suite's canary secret).
///
/// Not checked: required keys (which keys a store requires is its own configuration) and
/// atomicity of `restore` (it needs a crash inside the write).
pub async fn config_store(config: &dyn ConfigStore, fixture: &dyn ConfigFixture) {
    fixture.write_live(&[("A", "1"), ("B", SECRET), ("C", "3")]).await;
    let stored = config.list().await.expect("list").len();
    let live = config.current().await.expect("current");
    no_secret(&live, "current");
    assert_eq!(
        config.list().await.expect("list").len(),
        stored,
        "current stores nothing"
    );

    let va = config.backup("first").await.expect("backup");
    no_secret(&va, "backup");
    fixture
        .write_live(&[("A", "1"), ("B", "changed"), ("D", "4")])
        .await;
    let vb = config.backup("second").await.expect("backup");
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

    let check = config.verify(&va.id).await.expect("verify");
    no_secret(&check, "verify");
    let mut keys = check.keys.clone();
    keys.sort();
    assert_eq!(keys, ["A", "B", "C"], "verify lists the keys");

    let diff = config.diff(&va.id, &vb.id).await.expect("diff");
    no_secret(&diff, "diff");
    assert_eq!(diff.added, ["D"], "diff names the keys added");
    assert_eq!(diff.removed, ["C"], "diff names the keys removed");
    assert_eq!(diff.changed, ["B"], "diff names the keys changed");

    config.restore(&va.id).await.expect("restore");
    let live = config.current().await.expect("current");
    assert!(
        config.diff(&va.id, &live.id).await.expect("diff").is_empty(),
        "restore makes the version live"
    );
    config.restore(&va.id).await.expect("restore is idempotent");
    assert!(
        config.diff(&va.id, &live.id).await.expect("diff").is_empty(),
        "restore is idempotent"
    );

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
    assert!(
        config.diff(&va.id, &live.id).await.expect("diff").is_empty(),
        "a refused restore leaves the live config as it was"
    );

    fixture.write_malformed_live().await;
    let bad = config
        .backup("malformed")
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
