use super::expect_error;
use async_trait::async_trait;
use rollback_core::{ConfigStore, ConfigVersionId, ErrorKind};

/// What the config suite needs besides the trait: write the live config.
#[async_trait]
pub trait ConfigFixture: Send + Sync {
    /// Replaces the live config with these pairs.
    async fn write_live(&self, pairs: &[(&str, &str)]);
    /// Replaces the live config with one that does not parse at line 2.
    async fn write_malformed_live(&self);
}

/// The [`ConfigStore`] contract: backups listed newest first, verify lists keys, diff names
/// keys and never values, restore makes a version live (idempotently), malformed versions
/// are refused naming the line, unknown versions are `NotFound`.
pub async fn config_store(config: &dyn ConfigStore, fixture: &dyn ConfigFixture) {
    const SECRET: &str = "conformance-canary-secret-value";
    fixture.write_live(&[("A", "1"), ("B", SECRET), ("C", "3")]).await;
    let va = config.backup("first").await.expect("backup");
    fixture
        .write_live(&[("A", "1"), ("B", "changed"), ("D", "4")])
        .await;
    let vb = config.backup("second").await.expect("backup");
    assert_ne!(va.id, vb.id, "each backup is a new version");
    let listed: Vec<ConfigVersionId> = config
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|v| v.id)
        .collect();
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
    let mut keys = check.keys.clone();
    keys.sort();
    assert_eq!(keys, ["A", "B", "C"], "verify lists the keys");

    let diff = config.diff(&va.id, &vb.id).await.expect("diff");
    assert_eq!(diff.added, ["D"]);
    assert_eq!(diff.removed, ["C"]);
    assert_eq!(diff.changed, ["B"]);
    assert!(!format!("{diff:?}").contains(SECRET), "diff never shows a value");

    config.restore(&va.id).await.expect("restore");
    let live = config.current().await.expect("current");
    assert!(
        config.diff(&va.id, &live.id).await.expect("diff").is_empty(),
        "restore makes the version live"
    );
    config.restore(&va.id).await.expect("restore is idempotent");
    assert!(config.diff(&va.id, &live.id).await.expect("diff").is_empty());

    let unknown = ConfigVersionId::new("no-such-version");
    expect_error(
        config.verify(&unknown).await,
        ErrorKind::NotFound,
        "verify(unknown)",
    );
    expect_error(
        config.restore(&unknown).await,
        ErrorKind::NotFound,
        "restore(unknown)",
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
