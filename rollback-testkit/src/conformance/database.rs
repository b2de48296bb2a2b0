use super::expect_error;
use async_trait::async_trait;
use rollback_core::{DatabaseSnapshot, ErrorKind, IntegrityChecks, SnapshotId};

/// What the database suite needs besides the trait: write and read a marker in the live
/// database (a row in a table the fixture owns).
#[async_trait]
pub trait DatabaseFixture: Send + Sync {
    /// Makes the live database hold `marker` (replacing the previous one).
    async fn write_marker(&self, marker: &str);
    /// The marker the live database holds, `None` when there is no live database.
    async fn read_marker(&self) -> Option<String>;
}

/// The [`DatabaseSnapshot`] contract: snapshot, verify, staged restore that leaves the live
/// database alone until the switch, emergency backup (idempotent per label, restorable),
/// idempotent restore, reinstate, integrity, list and remove, typed errors for unknown ids.
pub async fn database_snapshot(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    db.ping().await.expect("ping a reachable database");
    fixture.write_marker("before").await;
    let snap = db.snapshot("conformance").await.expect("snapshot");
    assert_eq!(snap.label, "conformance", "snapshot keeps its label");
    db.verify(&snap.id).await.expect("a fresh snapshot verifies");
    let listed = db.list().await.expect("list");
    assert!(
        listed.iter().any(|s| s.id == snap.id),
        "list() shows the new snapshot"
    );

    fixture.write_marker("after").await;
    let prepared = db.prepare_restore(&snap.id).await.expect("prepare_restore");
    assert_eq!(prepared.snapshot, snap.id);
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("after"),
        "prepare_restore must not touch the live database"
    );

    let preserved = db
        .preserve_current("conformance-pre")
        .await
        .expect("preserve_current");
    let again = db
        .preserve_current("conformance-pre")
        .await
        .expect("preserve_current again");
    assert_eq!(
        preserved.location, again.location,
        "preserve_current is idempotent per label"
    );
    db.restore(&prepared).await.expect("restore");
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("before"),
        "after restore the live database holds the snapshot's data"
    );
    db.restore(&prepared).await.expect("restore is idempotent");
    assert_eq!(fixture.read_marker().await.as_deref(), Some("before"));

    let checks = IntegrityChecks {
        expect_snapshot: Some(snap.id.clone()),
        ..IntegrityChecks::default()
    };
    let integrity = db.check_integrity(&checks).await.expect("check_integrity");
    assert!(
        integrity.passed(),
        "a restored snapshot passes integrity: {integrity:?}"
    );
    assert!(
        integrity.checks.iter().any(|c| c.name.contains("connectivity")),
        "integrity checks connectivity"
    );

    db.reinstate(&preserved).await.expect("reinstate");
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("after"),
        "reinstate puts the preserved (pre-rollback) data back"
    );
    db.reinstate(&preserved).await.expect("reinstate is idempotent");
    assert_eq!(fixture.read_marker().await.as_deref(), Some("after"));

    let unknown = SnapshotId::new("no-such-snapshot");
    expect_error(db.verify(&unknown).await, ErrorKind::NotFound, "verify(unknown)");
    expect_error(
        db.prepare_restore(&unknown).await,
        ErrorKind::NotFound,
        "prepare_restore(unknown)",
    );
    expect_error(db.remove(&unknown).await, ErrorKind::NotFound, "remove(unknown)");

    db.remove(&snap.id).await.expect("remove");
    assert!(
        !db.list().await.expect("list").iter().any(|s| s.id == snap.id),
        "a removed snapshot is no longer listed"
    );
    expect_error(db.verify(&snap.id).await, ErrorKind::NotFound, "verify(removed)");
}
