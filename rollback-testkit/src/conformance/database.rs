use super::expect_error;
use async_trait::async_trait;
use chrono::Utc;
use rollback_core::{DatabaseSnapshot, ErrorKind, IntegrityChecks, SnapshotId, SnapshotInfo};
use std::time::Duration;

/// What the database suite needs besides the trait: write and read a marker in the live
/// database (a row in a table the fixture owns), and (optionally) what only the adapter's
/// test can arrange.
#[async_trait]
pub trait DatabaseFixture: Send + Sync {
    /// Makes the live database hold `marker` (replacing the previous one).
    async fn write_marker(&self, marker: &str);
    /// The marker the live database holds, `None` when there is no live database.
    async fn read_marker(&self) -> Option<String>;

    /// Optional: damages the stored snapshot `id` the way a bad disk or a truncated copy
    /// would (flip bytes in its archive, cut it short), so that `verify` must find it.
    /// Returns whether it did; the default does nothing and returns `false`, which skips
    /// the corrupt-snapshot part of the suite.
    async fn corrupt_snapshot(&self, id: &SnapshotId) -> bool {
        let _ = id;
        false
    }

    /// Optional: makes the live database fail one of the checks `check_integrity` runs
    /// without a baseline (`true`: an orphan row under a foreign key, say) or repairs it
    /// again (`false`). Returns whether it did; the default does nothing and returns
    /// `false`, which skips the failed-check and baseline parts of the suite.
    async fn set_integrity_broken(&self, broken: bool) -> bool {
        let _ = broken;
        false
    }
}

/// The [`DatabaseSnapshot`] contract. Checks:
/// - `ping` answers; `snapshot` keeps its label, does not change the live data, and its
///   `created_at` is not in the future; a fresh snapshot verifies and is listed;
/// - `list` is newest first (by `created_at`);
/// - with [`DatabaseFixture::corrupt_snapshot`]: `verify` of a damaged snapshot is
///   `Corrupt`, every time;
/// - `prepare_restore` leaves the live database alone and is safe to call again;
///   `check_prepared`, when the adapter implements it, passes a healthy snapshot and
///   changes nothing live;
/// - `preserve_current` is idempotent per label; `restore` puts the snapshot's data live,
///   is idempotent, and `prove_unchanged`, when it answers, passes right after it; `open`
///   is idempotent;
/// - `check_integrity` of the restored snapshot passes, exact row counts included, and
///   checks connectivity;
/// - with [`DatabaseFixture::set_integrity_broken`]: a failed check is reported in the
///   result (not hidden, not an error); a snapshot of the broken database is taken (not
///   refused) and says so in its warnings; measured against that snapshot's baseline the
///   database passes; repaired, it passes again;
/// - `reinstate` puts the preserved data back, names what it set aside, and is
///   idempotent;
/// - unknown ids are `NotFound` from `verify`, `prepare_restore` and `remove`; a removed
///   snapshot is no longer listed and no longer verifies.
///
/// Not checked: that an interrupted `restore` is finished by the next call (that needs a
/// crash point inside the adapter), and `access_warnings`.
pub async fn database_snapshot(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    db.ping().await.expect("ping a reachable database");
    fixture.write_marker("before").await;
    let snap = db.snapshot("conformance").await.expect("snapshot");
    assert_eq!(snap.label, "conformance", "snapshot keeps its label");
    assert!(
        snap.created_at <= Utc::now(),
        "a snapshot's created_at (its consistency point) is not in the future: {snap:?}"
    );
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("before"),
        "snapshot must not change the live data"
    );
    db.verify(&snap.id).await.expect("a fresh snapshot verifies");
    let listed = db.list().await.expect("list");
    assert!(
        listed.iter().any(|s| s.id == snap.id),
        "list() shows the new snapshot"
    );

    tokio::time::sleep(Duration::from_millis(20)).await;
    let newer = db.snapshot("conformance-newer").await.expect("a second snapshot");
    let listed = db.list().await.expect("list");
    expect_newest_first(&listed);
    let (i_old, i_new) = (
        listed.iter().position(|s| s.id == snap.id),
        listed.iter().position(|s| s.id == newer.id),
    );
    match (i_old, i_new) {
        (Some(o), Some(n)) if newer.created_at > snap.created_at => assert!(
            n < o,
            "list is newest first: the second snapshot comes before the first"
        ),
        (Some(_), Some(_)) => {}
        _ => panic!("list() shows both snapshots: {listed:?}"),
    }

    let damaged = db
        .snapshot("conformance-damaged")
        .await
        .expect("a snapshot to damage");
    if fixture.corrupt_snapshot(&damaged.id).await {
        for time in ["", " (again: verify changes nothing)"] {
            expect_error(
                db.verify(&damaged.id).await,
                ErrorKind::Corrupt,
                &format!("verify(damaged snapshot){time}"),
            );
        }
    }
    db.remove(&damaged.id).await.expect("remove a damaged snapshot");

    fixture.write_marker("after").await;
    let prepared = db.prepare_restore(&snap.id).await.expect("prepare_restore");
    assert_eq!(prepared.snapshot, snap.id);
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("after"),
        "prepare_restore must not touch the live database"
    );
    let prepared = db
        .prepare_restore(&snap.id)
        .await
        .expect("prepare_restore is safe to call again");
    assert_eq!(prepared.snapshot, snap.id);
    assert_eq!(fixture.read_marker().await.as_deref(), Some("after"));

    let checks = IntegrityChecks {
        expect_snapshot: Some(snap.id.clone()),
        baseline: Some(snap.id.clone()),
        ..IntegrityChecks::default()
    };
    let staged = db
        .check_prepared(&prepared, &checks)
        .await
        .expect("check_prepared");
    assert!(
        staged.passed(),
        "check_prepared passes a healthy snapshot: {staged:?}"
    );
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("after"),
        "check_prepared must not touch the live database"
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
    if let Some(proof) = db.prove_unchanged(&prepared).await.expect("prove_unchanged") {
        assert!(
            proof.passed,
            "prove_unchanged right after restore passes: {proof:?}"
        );
    }
    db.open().await.expect("open");
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("before"),
        "after restore the live database holds the snapshot's data"
    );
    db.restore(&prepared).await.expect("restore is idempotent");
    db.open().await.expect("open is idempotent");
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("before"),
        "restore is idempotent"
    );

    let integrity = db.check_integrity(&checks).await.expect("check_integrity");
    assert!(
        integrity.passed(),
        "a restored snapshot passes integrity: {integrity:?}"
    );
    assert!(
        integrity.checks.iter().any(|c| c.name.contains("connectivity")),
        "integrity checks connectivity"
    );

    if fixture.set_integrity_broken(true).await {
        let plain = IntegrityChecks::default();
        let report = db
            .check_integrity(&plain)
            .await
            .expect("check_integrity reports failed checks in its result, not as an error");
        assert!(
            !report.passed() && !report.failures().is_empty(),
            "check_integrity reports the failed check: {report:?}"
        );
        let broken = db
            .snapshot("conformance-broken")
            .await
            .expect("a database with a broken check is snapshotted, not refused");
        assert!(
            !broken.warnings.is_empty(),
            "a snapshot of a database with a broken check says so in its warnings: {broken:?}"
        );
        let against_baseline = IntegrityChecks {
            baseline: Some(broken.id.clone()),
            ..IntegrityChecks::default()
        };
        let report = db
            .check_integrity(&against_baseline)
            .await
            .expect("check_integrity against a baseline");
        assert!(
            report.passed(),
            "what was already broken at the baseline snapshot passes: {report:?}"
        );
        assert!(
            fixture.set_integrity_broken(false).await,
            "the fixture repairs what it broke"
        );
        let report = db.check_integrity(&plain).await.expect("check_integrity");
        assert!(report.passed(), "repaired, the database passes: {report:?}");
        db.remove(&broken.id).await.expect("remove");
    }

    let put_aside = db.reinstate(&preserved).await.expect("reinstate");
    assert!(
        !put_aside.is_empty(),
        "reinstate names where it put the database that was live"
    );
    db.open().await.expect("open");
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("after"),
        "reinstate puts the preserved (pre-rollback) data back"
    );
    db.reinstate(&preserved).await.expect("reinstate is idempotent");
    db.open().await.expect("open");
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("after"),
        "reinstate is idempotent"
    );

    let unknown = SnapshotId::new("no-such-snapshot");
    expect_error(db.verify(&unknown).await, ErrorKind::NotFound, "verify(unknown)");
    expect_error(
        db.prepare_restore(&unknown).await,
        ErrorKind::NotFound,
        "prepare_restore(unknown)",
    );
    expect_error(db.remove(&unknown).await, ErrorKind::NotFound, "remove(unknown)");

    for id in [&snap.id, &newer.id] {
        db.remove(id).await.expect("remove");
        assert!(
            !db.list().await.expect("list").iter().any(|s| &s.id == id),
            "a removed snapshot is no longer listed"
        );
        expect_error(db.verify(id).await, ErrorKind::NotFound, "verify(removed)");
    }
}

/// Asserts `listed` is ordered by `created_at`, newest first.
fn expect_newest_first(listed: &[SnapshotInfo]) {
    for pair in listed.windows(2) {
        assert!(
            pair[0].created_at >= pair[1].created_at,
            "list is newest first: `{}` ({}) is listed before `{}` ({})",
            pair[0].id,
            pair[0].created_at,
            pair[1].id,
            pair[1].created_at
        );
    }
}
