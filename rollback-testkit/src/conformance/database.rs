//! The [`DatabaseSnapshot`] suite: one check per promise, [`CHECKS`] in the order
//! [`database_snapshot`] runs them.
//!
//! Every check writes its own markers (`"<check>: before"`, `"<check>: after"`) and takes
//! its own snapshots, so it relies on no other check; the checks that set the live database
//! aside (`preserve_current`) put a database back live and [`open`](DatabaseSnapshot::open)
//! it before they return, so the next check of the all-in-one suite finds one. They leave
//! their preserved databases and some snapshots behind (an adapter's test runs on a
//! throw-away database).
//!
//! Not checked: that an interrupted `restore` is finished by the next call (that needs a
//! crash point inside the adapter), and `access_warnings`.

use super::{check, expect_error, Check, CheckFuture};
use async_trait::async_trait;
use chrono::Utc;
use rollback_core::{
    DatabaseSnapshot, ErrorKind, IntegrityChecks, PreparedRestore, PreservedDatabase, SnapshotId,
    SnapshotInfo,
};
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
    /// [`verify_finds_a_damaged_snapshot`].
    async fn corrupt_snapshot(&self, id: &SnapshotId) -> bool {
        let _ = id;
        false
    }

    /// Optional: makes the live database fail one of the checks `check_integrity` runs
    /// without a baseline (`true`: an orphan row under a foreign key, say) or repairs it
    /// again (`false`). Returns whether it did; the default does nothing and returns
    /// `false`, which skips [`integrity_reports_what_is_broken`].
    async fn set_integrity_broken(&self, broken: bool) -> bool {
        let _ = broken;
        false
    }
}

/// A check of the database suite: `(check.run)(&adapter, &fixture).await`.
pub type DatabaseCheck =
    Check<for<'a> fn(&'a dyn DatabaseSnapshot, &'a dyn DatabaseFixture) -> CheckFuture<'a>>;

/// The database suite's checks, in the order [`database_snapshot`] runs them.
pub const CHECKS: &[DatabaseCheck] = &[
    check!(snapshot_keeps_the_live_data),
    check!(list_is_newest_first),
    check!(verify_finds_a_damaged_snapshot),
    check!(prepare_restore_leaves_the_live_database_alone),
    check!(preserve_current_is_idempotent),
    check!(restore_puts_the_snapshot_live),
    check!(restored_snapshot_passes_integrity),
    check!(integrity_reports_what_is_broken),
    check!(reinstate_puts_the_preserved_database_back),
    check!(unknown_snapshots_are_not_found),
    check!(remove_forgets_a_snapshot),
];

/// The whole [`DatabaseSnapshot`] contract: every check of [`CHECKS`], in order, on one
/// adapter and fixture. Stops at the first broken promise; run the checks one by one
/// (`conformance_tests!(database_snapshot, ...)`) to see them all.
pub async fn database_snapshot(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    for check in CHECKS {
        (check.run)(db, fixture).await;
    }
}

/// `ping` answers; `snapshot` keeps its label, does not change the live data, and its
/// `created_at` is not in the future; a fresh snapshot verifies and is listed.
pub async fn snapshot_keeps_the_live_data(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    db.ping().await.expect("ping a reachable database");
    fixture.write_marker("snapshot: live").await;
    let snap = db.snapshot("conformance").await.expect("snapshot");
    assert_eq!(snap.label, "conformance", "snapshot keeps its label");
    assert!(
        snap.created_at <= Utc::now(),
        "a snapshot's created_at (its consistency point) is not in the future: {snap:?}"
    );
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("snapshot: live"),
        "snapshot must not change the live data"
    );
    db.verify(&snap.id).await.expect("a fresh snapshot verifies");
    let listed = db.list().await.expect("list");
    assert!(
        listed.iter().any(|s| s.id == snap.id),
        "list() shows the new snapshot"
    );
}

/// `list` is newest first (by `created_at`): of two snapshots taken one after the other,
/// the second comes first.
pub async fn list_is_newest_first(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    fixture.write_marker("list: live").await;
    let older = db.snapshot("conformance-older").await.expect("snapshot");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let newer = db.snapshot("conformance-newer").await.expect("a second snapshot");
    let listed = db.list().await.expect("list");
    expect_newest_first(&listed);
    let (i_old, i_new) = (
        listed.iter().position(|s| s.id == older.id),
        listed.iter().position(|s| s.id == newer.id),
    );
    match (i_old, i_new) {
        (Some(o), Some(n)) if newer.created_at > older.created_at => assert!(
            n < o,
            "list is newest first: the second snapshot comes before the first"
        ),
        (Some(_), Some(_)) => {}
        _ => panic!("list() shows both snapshots: {listed:?}"),
    }
    for id in [&older.id, &newer.id] {
        db.remove(id).await.expect("remove");
    }
}

/// With [`DatabaseFixture::corrupt_snapshot`]: `verify` of a damaged snapshot is `Corrupt`,
/// every time; a damaged snapshot can be removed. Without the hook it checks nothing.
pub async fn verify_finds_a_damaged_snapshot(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    fixture.write_marker("damaged: live").await;
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
}

/// `prepare_restore` leaves the live database alone and is safe to call again;
/// `check_prepared`, when the adapter implements it, passes a healthy snapshot and changes
/// nothing live.
pub async fn prepare_restore_leaves_the_live_database_alone(
    db: &dyn DatabaseSnapshot,
    fixture: &dyn DatabaseFixture,
) {
    fixture.write_marker("prepare: before").await;
    let snap = db.snapshot("conformance-prepare").await.expect("snapshot");
    fixture.write_marker("prepare: after").await;
    let prepared = db.prepare_restore(&snap.id).await.expect("prepare_restore");
    assert_eq!(prepared.snapshot, snap.id);
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("prepare: after"),
        "prepare_restore must not touch the live database"
    );
    let prepared = db
        .prepare_restore(&snap.id)
        .await
        .expect("prepare_restore is safe to call again");
    assert_eq!(prepared.snapshot, snap.id);
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("prepare: after"),
        "prepare_restore must not touch the live database (called again)"
    );
    let staged = db
        .check_prepared(&prepared, &checks_of(&snap.id))
        .await
        .expect("check_prepared");
    assert!(
        staged.passed(),
        "check_prepared passes a healthy snapshot: {staged:?}"
    );
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("prepare: after"),
        "check_prepared must not touch the live database"
    );
}

/// `preserve_current` is idempotent per label: called again, it returns the same preserved
/// database. To leave a database live, it then puts the preserved one back with
/// `reinstate` and `open` (so a broken `reinstate` fails this check too).
pub async fn preserve_current_is_idempotent(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    fixture.write_marker("preserve: live").await;
    let preserved = db
        .preserve_current("conformance-preserve")
        .await
        .expect("preserve_current");
    let again = db
        .preserve_current("conformance-preserve")
        .await
        .expect("preserve_current again");
    assert_eq!(
        preserved.location, again.location,
        "preserve_current is idempotent per label"
    );
    db.reinstate(&preserved)
        .await
        .expect("reinstate the preserved database (to leave one live)");
    db.open().await.expect("open");
}

/// `restore` (after `prepare_restore`, `check_prepared` and `preserve_current`, as the
/// orchestrator calls them) puts the snapshot's data live; `prove_unchanged`, when it
/// answers, passes right after it; `restore` and `open` are idempotent.
pub async fn restore_puts_the_snapshot_live(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    fixture.write_marker("restore: before").await;
    let snap = db.snapshot("conformance-restore").await.expect("snapshot");
    fixture.write_marker("restore: after").await;
    let prepared = db.prepare_restore(&snap.id).await.expect("prepare_restore");
    db.check_prepared(&prepared, &checks_of(&snap.id))
        .await
        .expect("check_prepared");
    db.preserve_current("conformance-restore")
        .await
        .expect("preserve_current");
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
        Some("restore: before"),
        "after restore the live database holds the snapshot's data"
    );
    db.restore(&prepared).await.expect("restore is idempotent");
    db.open().await.expect("open is idempotent");
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("restore: before"),
        "restore is idempotent"
    );
}

/// `check_integrity` of a restored snapshot passes, exact row counts against the snapshot
/// included, and checks connectivity. (It restores the snapshot as
/// [`restore_puts_the_snapshot_live`] does, so a broken `restore` fails this check too.)
pub async fn restored_snapshot_passes_integrity(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    let r = switch_in(db, fixture, "integrity").await;
    let integrity = db
        .check_integrity(&checks_of(&r.snapshot.id))
        .await
        .expect("check_integrity");
    assert!(
        integrity.passed(),
        "a restored snapshot passes integrity: {integrity:?}"
    );
    assert!(
        integrity.checks.iter().any(|c| c.name.contains("connectivity")),
        "integrity checks connectivity"
    );
}

/// With [`DatabaseFixture::set_integrity_broken`]: a failed check is reported in the result
/// (not hidden, not an error); a snapshot of the broken database is taken (not refused)
/// and says so in its warnings; measured against that snapshot's baseline the database
/// passes; repaired, it passes again. Without the hook it checks nothing.
pub async fn integrity_reports_what_is_broken(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    fixture.write_marker("broken: live").await;
    if !fixture.set_integrity_broken(true).await {
        return;
    }
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
    let against_baseline = IntegrityChecks::new().baseline(Some(broken.id.clone()));
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

/// `reinstate` puts the preserved (pre-rollback) data back, names where it put the
/// database that was live, and is idempotent. (It first restores a snapshot as
/// [`restore_puts_the_snapshot_live`] does, so a broken `restore` fails this check too.)
pub async fn reinstate_puts_the_preserved_database_back(
    db: &dyn DatabaseSnapshot,
    fixture: &dyn DatabaseFixture,
) {
    let r = switch_in(db, fixture, "reinstate").await;
    let put_aside = db.reinstate(&r.preserved).await.expect("reinstate");
    assert!(
        !put_aside.is_empty(),
        "reinstate names where it put the database that was live"
    );
    db.open().await.expect("open");
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("reinstate: after"),
        "reinstate puts the preserved (pre-rollback) data back"
    );
    db.reinstate(&r.preserved).await.expect("reinstate is idempotent");
    db.open().await.expect("open");
    assert_eq!(
        fixture.read_marker().await.as_deref(),
        Some("reinstate: after"),
        "reinstate is idempotent"
    );
}

/// Unknown ids are `NotFound` from `verify`, `prepare_restore` and `remove`.
pub async fn unknown_snapshots_are_not_found(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    let _ = fixture;
    let unknown = SnapshotId::new("no-such-snapshot");
    expect_error(db.verify(&unknown).await, ErrorKind::NotFound, "verify(unknown)");
    expect_error(
        db.prepare_restore(&unknown).await,
        ErrorKind::NotFound,
        "prepare_restore(unknown)",
    );
    expect_error(db.remove(&unknown).await, ErrorKind::NotFound, "remove(unknown)");
}

/// A removed snapshot is no longer listed and no longer verifies (`NotFound`).
pub async fn remove_forgets_a_snapshot(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture) {
    fixture.write_marker("remove: live").await;
    let snap = db.snapshot("conformance-remove").await.expect("snapshot");
    db.remove(&snap.id).await.expect("remove");
    assert!(
        !db.list().await.expect("list").iter().any(|s| s.id == snap.id),
        "a removed snapshot is no longer listed"
    );
    expect_error(db.verify(&snap.id).await, ErrorKind::NotFound, "verify(removed)");
}

/// The checks that pass a healthy, restored snapshot: exact row counts against it, and
/// foreign keys and sequences against its baseline.
fn checks_of(id: &SnapshotId) -> IntegrityChecks {
    IntegrityChecks::new()
        .expect_snapshot(Some(id.clone()))
        .baseline(Some(id.clone()))
}

/// What [`switch_in`] made.
struct SwitchedIn {
    snapshot: SnapshotInfo,
    preserved: PreservedDatabase,
}

/// A snapshot of the live database holding `"<tag>: before"` switched in over a live
/// database holding `"<tag>: after"`, as the orchestrator does it: `prepare_restore`,
/// `check_prepared`, `preserve_current("conformance-<tag>")`, `restore`, `open`.
async fn switch_in(db: &dyn DatabaseSnapshot, fixture: &dyn DatabaseFixture, tag: &str) -> SwitchedIn {
    fixture.write_marker(&format!("{tag}: before")).await;
    let snapshot = db
        .snapshot(&format!("conformance-{tag}"))
        .await
        .expect("snapshot");
    fixture.write_marker(&format!("{tag}: after")).await;
    let prepared: PreparedRestore = db.prepare_restore(&snapshot.id).await.expect("prepare_restore");
    db.check_prepared(&prepared, &checks_of(&snapshot.id))
        .await
        .expect("check_prepared");
    let preserved = db
        .preserve_current(&format!("conformance-{tag}"))
        .await
        .expect("preserve_current");
    db.restore(&prepared).await.expect("restore");
    db.open().await.expect("open");
    SwitchedIn { snapshot, preserved }
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
