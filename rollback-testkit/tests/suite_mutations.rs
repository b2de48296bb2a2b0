//! The conformance suites, proven: each fake is wrapped in deliberately broken versions that
//! delegate everything and break one promise each (a mutant). Every named check of the
//! suite runs on its own against every mutant (a fresh fixture each, under `catch_unwind`),
//! and each test asserts that the check named for the broken promise rejects (panics on) the
//! mutant, for that promise (the panic message names it), that the all-in-one suite rejects
//! it too, and that every check and the all-in-one suite accept the unbroken wrapper and the
//! fake itself, with every optional fixture hook implemented.

use async_trait::async_trait;
use futures::FutureExt;
use rollback_core::{
    AdapterError, AppName, CheckResult, Checkpoint, CheckpointId, CodeVersion, ConfigCheck, ConfigDiff,
    ConfigStore, ConfigVersion, ConfigVersionId, DatabaseSnapshot, ErrorKind, IntegrityChecks,
    IntegrityReport, Journal, LockHolder, PreparedRestore, PreparedRevision, PreservedDatabase,
    ProcessManager, ProcessState, ProcessStatus, PutAside, Revision, RevisionId, RollbackReport, SnapshotId,
    SnapshotInfo, StateStore,
};
use rollback_testkit::conformance::{
    self, Check, CodeFixture, ConfigFixture, DatabaseFixture, ProcessFixture, PATTERN_NAMES,
};
use rollback_testkit::{
    DbContent, FakeCode, FakeConfig, FakeDatabase, FakeProcessManager, Fault, MemoryStateStore, Method, When,
    World,
};
use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// The harness.

/// Runs a suite; `None` when it passed, the panic message when it rejected.
async fn verdict(suite: impl Future<Output = ()>) -> Option<String> {
    match AssertUnwindSafe(suite).catch_unwind().await {
        Ok(()) => None,
        Err(payload) => Some(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "(a panic without a message)".to_owned()),
        ),
    }
}

/// Runs every check of a suite on its own (`run` makes a fresh fixture and adapter for
/// each); the checks that rejected, with their panic messages.
async fn rejections<R: Copy, F, Fut>(checks: &[Check<R>], run: F) -> Vec<(&'static str, String)>
where
    F: Fn(R) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut rejected = Vec::new();
    for check in checks {
        if let Some(msg) = verdict(run(check.run)).await {
            rejected.push((check.name, msg));
        }
    }
    rejected
}

/// Asserts every check accepted the adapter (`rejected` is empty).
fn assert_accepted_by_all(suite: &str, what: &str, rejected: &[(&str, String)]) {
    assert!(
        rejected.is_empty(),
        "the {suite} suite's checks must accept {what}, these rejected it: {rejected:#?}"
    );
}

/// Asserts that `check` rejected `mutant`, naming the broken promise (`expected` is part of
/// its panic message), and that the all-in-one suite rejected it too.
fn assert_rejected(
    suite: &str,
    mutant: impl Debug,
    (check, expected): (&str, &str),
    rejected: &[(&str, String)],
    all_in_one: Option<String>,
) {
    let names: Vec<&str> = rejected.iter().map(|(name, _)| *name).collect();
    match rejected.iter().find(|(name, _)| *name == check) {
        None if rejected.is_empty() => {
            panic!("every check of the {suite} suite ACCEPTED the broken adapter {mutant:?}")
        }
        None => panic!(
            "the {suite} suite's `{check}` accepted the broken adapter {mutant:?} \
             (it was rejected by {names:?} only)"
        ),
        Some((_, msg)) => assert!(
            msg.contains(expected),
            "the {suite} suite's `{check}` rejected {mutant:?}, but not for the broken promise \
             (expected a message with `{expected}`), it said: {msg}"
        ),
    }
    assert!(
        all_in_one.is_some(),
        "the all-in-one {suite} suite ACCEPTED the broken adapter {mutant:?} (its checks {names:?} reject it)"
    );
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// One world and a fixture implementing every hook, for every suite.

struct Fixture {
    world: World,
    code: FakeCode,
    config: FakeConfig,
    pm: FakeProcessManager,
    root: RevisionId,
}

impl Fixture {
    fn new() -> Self {
        let world = World::new();
        world.lock().db.live = Some(DbContent::new("initial", 10));
        let code = FakeCode::new(&world);
        let root = code.commit("root", "tree-root");
        {
            let mut s = world.lock();
            s.code.active = Some(root.clone());
            s.code.prepared.insert(root.clone());
        }
        let pm = FakeProcessManager::new(&world);
        pm.add_app("web");
        pm.add_app("crashy");
        if let Some(crashy) = world.lock().apps.get_mut(&AppName::new("crashy")) {
            crashy.state = ProcessState::Stopped;
            crashy.pid = None;
            crashy.crashes_on_start = true;
        }
        Self {
            config: FakeConfig::new(&world),
            code,
            pm,
            world,
            root,
        }
    }
}

#[async_trait]
impl ProcessFixture for Fixture {
    fn app(&self) -> AppName {
        AppName::new("web")
    }

    async fn is_serving(&self) -> bool {
        self.world.lock().healthy(&self.app())
    }

    fn crashing_app(&self) -> Option<AppName> {
        Some(AppName::new("crashy"))
    }

    async fn take_manager_down(&self) -> bool {
        for m in [
            Method::ProcessStatus,
            Method::ProcessStop,
            Method::ProcessStart,
            Method::ProcessRestart,
        ] {
            self.world
                .inject(m, When::Always, Fault::Fail(ErrorKind::Unavailable));
        }
        true
    }
}

#[async_trait]
impl DatabaseFixture for Fixture {
    async fn write_marker(&self, marker: &str) {
        if let Some(live) = self.world.lock().db.live.as_mut() {
            live.marker = marker.to_owned();
        }
    }

    async fn read_marker(&self) -> Option<String> {
        self.world.lock().db.live.as_ref().map(|l| l.marker.clone())
    }

    async fn corrupt_snapshot(&self, id: &SnapshotId) -> bool {
        self.world
            .lock()
            .db
            .snapshots
            .get_mut(id)
            .map(|(_, _, damaged)| *damaged = true)
            .is_some()
    }

    async fn set_integrity_broken(&self, broken: bool) -> bool {
        self.world
            .lock()
            .db
            .live
            .as_mut()
            .map(|live| live.orphans = u64::from(broken))
            .is_some()
    }
}

#[async_trait]
impl CodeFixture for Fixture {
    async fn commit(&self, subject: &str) -> RevisionId {
        self.code.commit(subject, &format!("tree of {subject}"))
    }

    async fn set_dirty(&self, dirty: bool) -> bool {
        self.world.lock().code.dirty = dirty.then(|| "src/edited.js".to_owned());
        true
    }

    async fn commit_unbuildable(&self, subject: &str) -> Option<RevisionId> {
        let rev = self.code.commit(subject, "tree that does not build");
        self.world.lock().code.broken_builds.insert(rev.clone());
        Some(rev)
    }

    async fn revert_conflict(&self) -> Option<Vec<RevisionId>> {
        // The fake cannot revert its root commit: its revert is a conflict.
        Some(vec![self.root.clone()])
    }
}

#[async_trait]
impl ConfigFixture for Fixture {
    async fn write_live(&self, pairs: &[(&str, &str)]) {
        self.config.set_live(pairs);
    }

    async fn write_malformed_live(&self) {
        self.world.lock().config.live_malformed_line = Some(2);
    }
}

// ---------------------------------------------------------------------------------------
// ProcessManager.

#[derive(Clone, Copy, Debug, PartialEq)]
enum PmBug {
    /// `start` of an app the manager does not know is `Ok`.
    StartUnknownOk,
    /// `restart` of an app the manager does not know is `Ok`.
    RestartUnknownOk,
    /// `restart` does nothing and says `Ok`.
    RestartNoop,
    /// `restart` does nothing and the status never shows a pid (the hole the old suite had:
    /// its "new process" check was skipped without pids).
    RestartNoopWithoutPids,
    /// The restart count is stuck at 0.
    RestartsStuckAtZero,
    /// The count is `None` until the first restart, then `Some`.
    RestartsSometimesCounted,
    /// A manager that is down answers `NotFound` instead of `Unavailable`.
    DownIsNotFound,
    /// `stop` returns before the app is stopped.
    StopReturnsEarly,
    /// `status` says online when the app is stopped.
    StatusLiesOnline,
    /// `all` and other patterns are read as "every app" (here: the one app).
    PatternsAccepted,
    /// A crash at start is reported as a successful start.
    CrashLoopStartOk,
    /// `start` of an online app restarts it.
    StartRestartsAnOnlineApp,
    /// `stop` of a crashed app leaves the manager restarting it (`Retrying`).
    StopLeavesCrashedAppRetrying,
}

/// Each mutant, the check that must reject it, and what its message must say.
const PM_BUGS: [(PmBug, &str, &str); 13] = [
    (
        PmBug::StartUnknownOk,
        "unknown_apps_are_not_found",
        "start(unknown app)",
    ),
    (
        PmBug::RestartUnknownOk,
        "unknown_apps_are_not_found",
        "restart(unknown app)",
    ),
    (
        PmBug::RestartNoop,
        "restart_starts_a_stopped_app",
        "after restart of a stopped app returned, the status says online",
    ),
    (
        PmBug::RestartNoopWithoutPids,
        "restart_runs_a_new_process",
        "an online app's status carries its pid",
    ),
    (
        PmBug::RestartsStuckAtZero,
        "restart_runs_a_new_process",
        "restart adds at least one to the restart count",
    ),
    (
        PmBug::RestartsSometimesCounted,
        "restart_runs_a_new_process",
        "the restart count is either kept or not",
    ),
    (
        PmBug::DownIsNotFound,
        "a_manager_that_is_down_is_unavailable",
        "status while the process manager is down: wrong error kind",
    ),
    (
        PmBug::StopReturnsEarly,
        "stop_stops_the_app",
        "after stop returned, the status says stopped",
    ),
    (
        PmBug::StatusLiesOnline,
        "stop_stops_the_app",
        "after stop returned, the status says stopped",
    ),
    (
        PmBug::PatternsAccepted,
        "names_for_several_apps_are_refused",
        "status(`all`), a name that addresses several apps",
    ),
    (
        PmBug::CrashLoopStartOk,
        "a_crashing_app_fails_to_start",
        "start of an app that crashes at start must fail",
    ),
    (
        PmBug::StartRestartsAnOnlineApp,
        "start_brings_the_app_online",
        "start of an online app changes nothing",
    ),
    (
        PmBug::StopLeavesCrashedAppRetrying,
        "a_crashing_app_fails_to_start",
        "after stop of a crashed app returned, no process runs",
    ),
];

struct BrokenPm {
    inner: FakeProcessManager,
    bug: Option<PmBug>,
}

impl BrokenPm {
    fn is(&self, bug: PmBug) -> bool {
        self.bug == Some(bug)
    }

    /// Under `PatternsAccepted`, a pattern addresses "every app": the fixture's one app.
    fn target(&self, app: &AppName) -> AppName {
        if self.is(PmBug::PatternsAccepted) && PATTERN_NAMES.contains(&app.as_str()) {
            AppName::new("web")
        } else {
            app.clone()
        }
    }

    fn down_is_not_found<T>(&self, r: Result<T, AdapterError>) -> Result<T, AdapterError> {
        match r {
            Err(e) if self.is(PmBug::DownIsNotFound) && e.kind() == ErrorKind::Unavailable => {
                Err(AdapterError::not_found("no such app"))
            }
            r => r,
        }
    }
}

#[async_trait]
impl ProcessManager for BrokenPm {
    async fn status(&self, app: &AppName) -> Result<ProcessStatus, AdapterError> {
        let mut s = self.down_is_not_found(self.inner.status(&self.target(app)).await)?;
        if self.is(PmBug::RestartsStuckAtZero) {
            s.restarts = Some(0);
        }
        if self.is(PmBug::RestartsSometimesCounted) && s.restarts == Some(0) {
            s.restarts = None;
        }
        if self.is(PmBug::RestartNoopWithoutPids) {
            s.pid = None;
        }
        if self.is(PmBug::StopLeavesCrashedAppRetrying) && s.state == ProcessState::Errored {
            // A manager that never gives up: the crashed app keeps being restarted.
            s.state = ProcessState::Retrying;
        }
        if self.is(PmBug::StatusLiesOnline) && s.state == ProcessState::Stopped {
            s.state = ProcessState::Online;
            s.pid = Some(4242);
        }
        Ok(s)
    }

    async fn stop(&self, app: &AppName) -> Result<(), AdapterError> {
        let app = self.target(app);
        if self.is(PmBug::StopReturnsEarly) {
            // Checks the name, then stops in the background and returns at once.
            self.inner.status(&app).await?;
            let inner = self.inner.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = inner.stop(&app).await;
            });
            return Ok(());
        }
        if self.is(PmBug::StopLeavesCrashedAppRetrying)
            && self.inner.status(&app).await.map(|s| s.state).ok() == Some(ProcessState::Errored)
        {
            return Ok(());
        }
        self.down_is_not_found(self.inner.stop(&app).await)
    }

    async fn start(&self, app: &AppName) -> Result<(), AdapterError> {
        let app = self.target(app);
        let result = if self.is(PmBug::StartRestartsAnOnlineApp) {
            self.inner.restart(&app).await
        } else {
            self.inner.start(&app).await
        };
        match result {
            Err(e) if self.is(PmBug::StartUnknownOk) && e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) if self.is(PmBug::CrashLoopStartOk) && e.kind() == ErrorKind::Failed => Ok(()),
            r => self.down_is_not_found(r),
        }
    }

    async fn restart(&self, app: &AppName) -> Result<(), AdapterError> {
        if self.is(PmBug::RestartNoop) || self.is(PmBug::RestartNoopWithoutPids) {
            // Checks the name (a refused or unknown one still fails), then does nothing.
            return self.inner.status(app).await.map(drop);
        }
        match self.inner.restart(&self.target(app)).await {
            Err(e) if self.is(PmBug::RestartUnknownOk) && e.kind() == ErrorKind::NotFound => Ok(()),
            r => self.down_is_not_found(r),
        }
    }
}

#[tokio::test]
async fn process_suite_rejects_every_broken_process_manager() {
    let checks = conformance::process::CHECKS;
    let rejected = rejections(checks, |run| async move {
        let f = Fixture::new();
        run(&f.pm, &f).await;
    })
    .await;
    assert_accepted_by_all("process", "the fake process manager", &rejected);
    let f = Fixture::new();
    let accepted = verdict(conformance::process_manager(&f.pm, &f)).await;
    assert_eq!(accepted, None, "the suite accepts the fake process manager");
    let wrap = |f: &Fixture, bug| BrokenPm {
        inner: f.pm.clone(),
        bug,
    };
    let rejected = rejections(checks, |run| async move {
        let f = Fixture::new();
        run(&wrap(&f, None), &f).await;
    })
    .await;
    assert_accepted_by_all("process", "the unbroken wrapper", &rejected);
    let f = Fixture::new();
    let accepted = verdict(conformance::process_manager(&wrap(&f, None), &f)).await;
    assert_eq!(accepted, None, "the suite accepts the unbroken wrapper");

    for (bug, check, expected) in PM_BUGS {
        let rejected = rejections(checks, |run| async move {
            let f = Fixture::new();
            run(&wrap(&f, Some(bug)), &f).await;
        })
        .await;
        let f = Fixture::new();
        let all_in_one = verdict(conformance::process_manager(&wrap(&f, Some(bug)), &f)).await;
        assert_rejected("process", bug, (check, expected), &rejected, all_in_one);
    }
}

// ---------------------------------------------------------------------------------------
// DatabaseSnapshot.

#[derive(Clone, Copy, Debug, PartialEq)]
enum DbBug {
    /// `verify` passes a damaged snapshot.
    VerifyOkOnCorrupt,
    /// A second `restore` of the same snapshot fails.
    RestoreNotIdempotent,
    /// `check_integrity` reports every check as passed.
    IntegrityHidesFailedChecks,
    /// `list` is oldest first.
    ListOldestFirst,
    /// `remove` of an unknown id is `Ok`.
    RemoveUnknownOk,
    /// `prepare_restore` restores into the live database at once.
    PrepareTouchesLive,
    /// `reinstate` does not say where it put the database that was live.
    ReinstateNamesNothing,
    /// `snapshot` refuses a database with a broken check.
    SnapshotRefusesBrokenDb,
    /// `preserve_current` keeps a new copy at each call.
    PreserveNotIdempotent,
}

/// Each mutant, the check that must reject it, and what its message must say.
const DB_BUGS: [(DbBug, &str, &str); 9] = [
    (
        DbBug::VerifyOkOnCorrupt,
        "verify_finds_a_damaged_snapshot",
        "verify(damaged snapshot): expected a `corrupt` error",
    ),
    (
        DbBug::RestoreNotIdempotent,
        "restore_puts_the_snapshot_live",
        "restore is idempotent",
    ),
    (
        DbBug::IntegrityHidesFailedChecks,
        "integrity_reports_what_is_broken",
        "check_integrity reports the failed check",
    ),
    (
        DbBug::ListOldestFirst,
        "list_is_newest_first",
        "list is newest first",
    ),
    (
        DbBug::RemoveUnknownOk,
        "unknown_snapshots_are_not_found",
        "remove(unknown): expected a `not found` error",
    ),
    (
        DbBug::PrepareTouchesLive,
        "prepare_restore_leaves_the_live_database_alone",
        "prepare_restore must not touch the live database",
    ),
    (
        DbBug::ReinstateNamesNothing,
        "reinstate_puts_the_preserved_database_back",
        "reinstate names where it put the database that was live",
    ),
    (
        DbBug::SnapshotRefusesBrokenDb,
        "integrity_reports_what_is_broken",
        "a database with a broken check is snapshotted, not refused",
    ),
    (
        DbBug::PreserveNotIdempotent,
        "preserve_current_is_idempotent",
        "preserve_current is idempotent per label",
    ),
];

struct BrokenDb {
    inner: FakeDatabase,
    world: World,
    bug: Option<DbBug>,
    restored: Mutex<HashSet<SnapshotId>>,
    preserved: Mutex<u32>,
}

impl BrokenDb {
    fn new(f: &Fixture, bug: Option<DbBug>) -> Self {
        Self {
            inner: FakeDatabase::new(&f.world, "postgres://fake"),
            world: f.world.clone(),
            bug,
            restored: Mutex::default(),
            preserved: Mutex::default(),
        }
    }

    fn is(&self, bug: DbBug) -> bool {
        self.bug == Some(bug)
    }
}

#[async_trait]
impl DatabaseSnapshot for BrokenDb {
    async fn snapshot(&self, label: &str) -> Result<SnapshotInfo, AdapterError> {
        let broken = self.world.lock().db.live.as_ref().is_some_and(|l| l.orphans > 0);
        if self.is(DbBug::SnapshotRefusesBrokenDb) && broken {
            return Err(AdapterError::new(
                ErrorKind::InvalidInput,
                "orphan rows: fix them first",
            ));
        }
        self.inner.snapshot(label).await
    }

    async fn verify(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        match self.inner.verify(id).await {
            Err(e) if self.is(DbBug::VerifyOkOnCorrupt) && e.kind() == ErrorKind::Corrupt => Ok(()),
            r => r,
        }
    }

    async fn prepare_restore(&self, id: &SnapshotId) -> Result<PreparedRestore, AdapterError> {
        let prepared = self.inner.prepare_restore(id).await?;
        if self.is(DbBug::PrepareTouchesLive) {
            let mut s = self.world.lock();
            let marker = s.db.snapshots.get(id).map(|(_, c, _)| c.marker.clone());
            if let (Some(live), Some(marker)) = (s.db.live.as_mut(), marker) {
                live.marker = marker;
            }
        }
        Ok(prepared)
    }

    async fn check_prepared(
        &self,
        prepared: &PreparedRestore,
        checks: &IntegrityChecks,
    ) -> Result<IntegrityReport, AdapterError> {
        self.inner.check_prepared(prepared, checks).await
    }

    async fn preserve_current(&self, label: &str) -> Result<PreservedDatabase, AdapterError> {
        let mut preserved = self.inner.preserve_current(label).await?;
        if self.is(DbBug::PreserveNotIdempotent) {
            let mut n = lock(&self.preserved);
            *n += 1;
            preserved.location = format!("{}-copy-{n}", preserved.location);
        }
        Ok(preserved)
    }

    async fn prove_unchanged(&self, prepared: &PreparedRestore) -> Result<Option<CheckResult>, AdapterError> {
        self.inner.prove_unchanged(prepared).await
    }

    async fn open(&self) -> Result<Vec<String>, AdapterError> {
        self.inner.open().await
    }

    async fn restore(&self, prepared: &PreparedRestore) -> Result<Vec<PutAside>, AdapterError> {
        let again = !lock(&self.restored).insert(prepared.snapshot.clone());
        if self.is(DbBug::RestoreNotIdempotent) && again {
            return Err(AdapterError::new(ErrorKind::Conflict, "already restored"));
        }
        self.inner.restore(prepared).await
    }

    async fn reinstate(&self, preserved: &PreservedDatabase) -> Result<Vec<PutAside>, AdapterError> {
        let aside = self.inner.reinstate(preserved).await?;
        Ok(if self.is(DbBug::ReinstateNamesNothing) {
            Vec::new()
        } else {
            aside
        })
    }

    async fn check_integrity(&self, checks: &IntegrityChecks) -> Result<IntegrityReport, AdapterError> {
        let mut report = self.inner.check_integrity(checks).await?;
        if self.is(DbBug::IntegrityHidesFailedChecks) {
            report.checks.iter_mut().for_each(|c| c.passed = true);
        }
        Ok(report)
    }

    async fn list(&self) -> Result<Vec<SnapshotInfo>, AdapterError> {
        let mut all = self.inner.list().await?;
        if self.is(DbBug::ListOldestFirst) {
            all.reverse();
        }
        Ok(all)
    }

    async fn remove(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        match self.inner.remove(id).await {
            Err(e) if self.is(DbBug::RemoveUnknownOk) && e.kind() == ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    async fn ping(&self) -> Result<Duration, AdapterError> {
        self.inner.ping().await
    }
}

#[tokio::test]
async fn database_suite_rejects_every_broken_database() {
    let checks = conformance::database::CHECKS;
    let rejected = rejections(checks, |run| async move {
        let f = Fixture::new();
        run(&FakeDatabase::new(&f.world, "postgres://fake"), &f).await;
    })
    .await;
    assert_accepted_by_all("database", "the fake database", &rejected);
    let f = Fixture::new();
    let fake = FakeDatabase::new(&f.world, "postgres://fake");
    let accepted = verdict(conformance::database_snapshot(&fake, &f)).await;
    assert_eq!(accepted, None, "the suite accepts the fake database");
    let rejected = rejections(checks, |run| async move {
        let f = Fixture::new();
        run(&BrokenDb::new(&f, None), &f).await;
    })
    .await;
    assert_accepted_by_all("database", "the unbroken wrapper", &rejected);
    let f = Fixture::new();
    let accepted = verdict(conformance::database_snapshot(&BrokenDb::new(&f, None), &f)).await;
    assert_eq!(accepted, None, "the suite accepts the unbroken wrapper");

    for (bug, check, expected) in DB_BUGS {
        let rejected = rejections(checks, |run| async move {
            let f = Fixture::new();
            run(&BrokenDb::new(&f, Some(bug)), &f).await;
        })
        .await;
        let f = Fixture::new();
        let all_in_one = verdict(conformance::database_snapshot(&BrokenDb::new(&f, Some(bug)), &f)).await;
        assert_rejected("database", bug, (check, expected), &rejected, all_in_one);
    }
}

// ---------------------------------------------------------------------------------------
// CodeVersion.

#[derive(Clone, Copy, Debug, PartialEq)]
enum CodeBug {
    /// `resolve` of an unknown spec gives the live revision.
    ResolveUnknownOk,
    /// `activate` takes a revision that was never prepared.
    ActivateUnprepared,
    /// `check_activate` passes everything, also what `activate` refuses.
    CheckActivateAcceptsAll,
    /// `revert` drops the reverted commits from history.
    RevertRewritesHistory,
    /// `history` is oldest first.
    HistoryOldestFirst,
    /// `prepare` switches what runs.
    PrepareSwitchesLive,
    /// A failed build is reported as prepared.
    FailedBuildOk,
    /// A conflicting revert leaves a commit behind.
    ConflictLeavesACommit,
}

/// Each mutant, the check that must reject it, and what its message must say.
const CODE_BUGS: [(CodeBug, &str, &str); 8] = [
    (
        CodeBug::ResolveUnknownOk,
        "unknown_revisions_are_not_found",
        "resolve(unknown): expected a `not found` error",
    ),
    (
        CodeBug::ActivateUnprepared,
        "activate_refuses_an_unprepared_revision",
        "activate of a revision that was never prepared must be refused",
    ),
    (
        CodeBug::CheckActivateAcceptsAll,
        "check_activate_agrees_with_activate",
        "check_activate refuses a revision over uncommitted changes",
    ),
    (
        CodeBug::RevertRewritesHistory,
        "revert_adds_a_commit_on_top",
        "revert never rewrites history",
    ),
    (
        CodeBug::HistoryOldestFirst,
        "history_is_newest_first",
        "history is newest first",
    ),
    (
        CodeBug::PrepareSwitchesLive,
        "prepare_leaves_what_runs_alone",
        "prepare must not change what runs",
    ),
    (
        CodeBug::FailedBuildOk,
        "failed_build_changes_nothing",
        "prepare of a revision whose build fails must fail",
    ),
    (
        CodeBug::ConflictLeavesACommit,
        "conflicting_revert_changes_nothing",
        "a conflicting revert leaves the repository as it was",
    ),
];

struct BrokenCode {
    inner: FakeCode,
    world: World,
    bug: Option<CodeBug>,
}

impl BrokenCode {
    fn is(&self, bug: CodeBug) -> bool {
        self.bug == Some(bug)
    }
}

#[async_trait]
impl CodeVersion for BrokenCode {
    async fn current(&self) -> Result<Revision, AdapterError> {
        self.inner.current().await
    }

    async fn resolve(&self, spec: &str) -> Result<Revision, AdapterError> {
        match self.inner.resolve(spec).await {
            Err(e) if self.is(CodeBug::ResolveUnknownOk) && e.kind() == ErrorKind::NotFound => {
                self.inner.current().await
            }
            r => r,
        }
    }

    async fn history(&self, n: usize) -> Result<Vec<Revision>, AdapterError> {
        let mut h = self.inner.history(n).await?;
        if self.is(CodeBug::HistoryOldestFirst) {
            h.reverse();
        }
        Ok(h)
    }

    async fn prepare(&self, revision: &RevisionId) -> Result<PreparedRevision, AdapterError> {
        match self.inner.prepare(revision).await {
            Ok(p) => {
                if self.is(CodeBug::PrepareSwitchesLive) {
                    self.world.lock().code.active = Some(revision.clone());
                }
                Ok(p)
            }
            Err(e) if self.is(CodeBug::FailedBuildOk) && e.kind() == ErrorKind::Failed => {
                Ok(PreparedRevision {
                    revision: revision.clone(),
                    location: "memory://releases/half-built".into(),
                    build_log_tail: Vec::new(),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn check_activate(&self, revision: &RevisionId) -> Result<(), AdapterError> {
        if self.is(CodeBug::CheckActivateAcceptsAll) {
            return Ok(());
        }
        self.inner.check_activate(revision).await
    }

    async fn preserve_current(&self) -> Result<PreparedRevision, AdapterError> {
        self.inner.preserve_current().await
    }

    async fn activate(&self, prepared: &PreparedRevision) -> Result<(), AdapterError> {
        if self.is(CodeBug::ActivateUnprepared) {
            self.world.lock().code.prepared.insert(prepared.revision.clone());
        }
        self.inner.activate(prepared).await
    }

    async fn revert(&self, commits: &[RevisionId]) -> Result<Revision, AdapterError> {
        match self.inner.revert(commits).await {
            Ok(rev) => {
                if self.is(CodeBug::RevertRewritesHistory) {
                    self.world
                        .lock()
                        .code
                        .commits
                        .retain(|c| !commits.contains(&c.revision.id));
                }
                Ok(rev)
            }
            Err(e) => {
                if self.is(CodeBug::ConflictLeavesACommit) && e.kind() == ErrorKind::Conflict {
                    self.inner.commit("half a revert", "tree-half");
                }
                Err(e)
            }
        }
    }
}

#[tokio::test]
async fn code_suite_rejects_every_broken_code_version() {
    let checks = conformance::code::CHECKS;
    let rejected = rejections(checks, |run| async move {
        let f = Fixture::new();
        run(&f.code, &f).await;
    })
    .await;
    assert_accepted_by_all("code", "the fake code", &rejected);
    let f = Fixture::new();
    let accepted = verdict(conformance::code_version(&f.code, &f)).await;
    assert_eq!(accepted, None, "the suite accepts the fake code");
    let wrap = |f: &Fixture, bug| BrokenCode {
        inner: f.code.clone(),
        world: f.world.clone(),
        bug,
    };
    let rejected = rejections(checks, |run| async move {
        let f = Fixture::new();
        run(&wrap(&f, None), &f).await;
    })
    .await;
    assert_accepted_by_all("code", "the unbroken wrapper", &rejected);
    let f = Fixture::new();
    let accepted = verdict(conformance::code_version(&wrap(&f, None), &f)).await;
    assert_eq!(accepted, None, "the suite accepts the unbroken wrapper");

    for (bug, check, expected) in CODE_BUGS {
        let rejected = rejections(checks, |run| async move {
            let f = Fixture::new();
            run(&wrap(&f, Some(bug)), &f).await;
        })
        .await;
        let f = Fixture::new();
        let all_in_one = verdict(conformance::code_version(&wrap(&f, Some(bug)), &f)).await;
        assert_rejected("code", bug, (check, expected), &rejected, all_in_one);
    }
}

// ---------------------------------------------------------------------------------------
// ConfigStore.

#[derive(Clone, Copy, Debug, PartialEq)]
enum ConfigBug {
    /// `diff` shows the old value of a changed key.
    DiffShowsAValue,
    /// `restore` of an unknown version is `Ok`.
    RestoreUnknownOk,
    /// `verify` accepts a malformed file.
    VerifyAcceptsMalformed,
    /// `list` is oldest first.
    ListOldestFirst,
    /// `restore` does nothing.
    RestoreNoop,
    /// `current` stores a backup.
    CurrentStores,
    /// An unknown version's error quotes the live config.
    ErrorShowsAValue,
    /// `remove` deletes every stored version.
    RemoveDeletesAll,
}

/// Each mutant, the check that must reject it, and what its message must say.
const CONFIG_BUGS: [(ConfigBug, &str, &str); 8] = [
    (
        ConfigBug::RemoveDeletesAll,
        "remove_deletes_only_that_version",
        "remove deletes only the version it names",
    ),
    (
        ConfigBug::DiffShowsAValue,
        "diff_names_keys_never_values",
        "diff never shows a value",
    ),
    (
        ConfigBug::RestoreUnknownOk,
        "unknown_versions_are_not_found",
        "restore(unknown): expected a `not found` error",
    ),
    (
        ConfigBug::VerifyAcceptsMalformed,
        "verify_refuses_a_malformed_version",
        "verify of a malformed version must fail",
    ),
    (
        ConfigBug::ListOldestFirst,
        "backups_are_new_versions_listed_newest_first",
        "list is newest first",
    ),
    (
        ConfigBug::RestoreNoop,
        "restore_makes_a_version_live",
        "restore makes the version live",
    ),
    (
        ConfigBug::CurrentStores,
        "current_stores_nothing",
        "current stores nothing",
    ),
    (
        ConfigBug::ErrorShowsAValue,
        "unknown_versions_are_not_found",
        "an error never shows a value",
    ),
];

struct BrokenConfig {
    inner: FakeConfig,
    world: World,
    bug: Option<ConfigBug>,
}

impl BrokenConfig {
    fn is(&self, bug: ConfigBug) -> bool {
        self.bug == Some(bug)
    }

    /// A value of `key` in stored version `id` (what a leaky adapter would show).
    fn value(&self, id: &ConfigVersionId, key: &str) -> String {
        let s = self.world.lock();
        s.config
            .versions
            .get(id)
            .and_then(|v| v.values.get(key))
            .or_else(|| s.config.live.get(key))
            .map(|v| v.expose().to_owned())
            .unwrap_or_default()
    }
}

#[async_trait]
impl ConfigStore for BrokenConfig {
    async fn current(&self) -> Result<ConfigVersion, AdapterError> {
        if self.is(ConfigBug::CurrentStores) {
            return self.inner.backup("current").await;
        }
        self.inner.current().await
    }

    async fn backup(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        self.inner.backup(label).await
    }

    async fn list(&self) -> Result<Vec<ConfigVersion>, AdapterError> {
        let mut all = self.inner.list().await?;
        if self.is(ConfigBug::ListOldestFirst) {
            all.reverse();
        }
        Ok(all)
    }

    async fn verify(&self, version: &ConfigVersionId) -> Result<ConfigCheck, AdapterError> {
        match self.inner.verify(version).await {
            Err(e) if self.is(ConfigBug::VerifyAcceptsMalformed) && e.kind() == ErrorKind::InvalidInput => {
                Ok(ConfigCheck::default())
            }
            Err(e) if self.is(ConfigBug::ErrorShowsAValue) && e.kind() == ErrorKind::NotFound => {
                Err(AdapterError::not_found(format!(
                    "no version `{version}`; the live one has B={}",
                    self.value(version, "B")
                )))
            }
            r => r,
        }
    }

    async fn restore(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        if self.is(ConfigBug::RestoreNoop) {
            return Ok(());
        }
        match self.inner.restore(version).await {
            Err(e) if self.is(ConfigBug::RestoreUnknownOk) && e.kind() == ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    async fn diff(&self, a: &ConfigVersionId, b: &ConfigVersionId) -> Result<ConfigDiff, AdapterError> {
        let mut diff = self.inner.diff(a, b).await?;
        if self.is(ConfigBug::DiffShowsAValue) {
            diff.changed = diff
                .changed
                .iter()
                .map(|k| format!("{k} (was {})", self.value(a, k)))
                .collect();
        }
        Ok(diff)
    }

    async fn remove(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        if self.is(ConfigBug::RemoveDeletesAll) {
            for v in self.inner.list().await? {
                self.inner.remove(&v.id).await?;
            }
            return Ok(());
        }
        self.inner.remove(version).await
    }
}

#[tokio::test]
async fn config_suite_rejects_every_broken_config_store() {
    let checks = conformance::config::CHECKS;
    let rejected = rejections(checks, |run| async move {
        let f = Fixture::new();
        run(&f.config, &f).await;
    })
    .await;
    assert_accepted_by_all("config", "the fake config store", &rejected);
    let f = Fixture::new();
    let accepted = verdict(conformance::config_store(&f.config, &f)).await;
    assert_eq!(accepted, None, "the suite accepts the fake config store");
    let wrap = |f: &Fixture, bug| BrokenConfig {
        inner: f.config.clone(),
        world: f.world.clone(),
        bug,
    };
    let rejected = rejections(checks, |run| async move {
        let f = Fixture::new();
        run(&wrap(&f, None), &f).await;
    })
    .await;
    assert_accepted_by_all("config", "the unbroken wrapper", &rejected);
    let f = Fixture::new();
    let accepted = verdict(conformance::config_store(&wrap(&f, None), &f)).await;
    assert_eq!(accepted, None, "the suite accepts the unbroken wrapper");

    for (bug, check, expected) in CONFIG_BUGS {
        let rejected = rejections(checks, |run| async move {
            let f = Fixture::new();
            run(&wrap(&f, Some(bug)), &f).await;
        })
        .await;
        let f = Fixture::new();
        let all_in_one = verdict(conformance::config_store(&wrap(&f, Some(bug)), &f)).await;
        assert_rejected("config", bug, (check, expected), &rejected, all_in_one);
    }
}

// ---------------------------------------------------------------------------------------
// StateStore.

#[derive(Clone, Copy, Debug, PartialEq)]
enum StateBug {
    /// `try_lock` takes a held lock over.
    LockNotExclusive,
    /// `unlock` frees the lock whatever the token.
    UnlockByAnyToken,
    /// `checkpoints` is oldest first.
    CheckpointsOldestFirst,
    /// Saving a checkpoint's id again keeps the old one.
    SaveIgnoresUpdates,
    /// `lock_holder` never names the holder.
    LockHolderSaysFree,
    /// `journals` is oldest first.
    JournalsOldestFirst,
    /// `try_lock` on a held lock names the caller instead of the holder.
    TryLockNamesTheCaller,
    /// `remove_checkpoint` forgets every checkpoint.
    RemoveForgetsAll,
}

/// Each mutant, the check that must reject it, and what its message must say.
const STATE_BUGS: [(StateBug, &str, &str); 8] = [
    (
        StateBug::RemoveForgetsAll,
        "remove_checkpoint_forgets_only_it",
        "remove_checkpoint forgets that checkpoint and no other",
    ),
    (
        StateBug::LockNotExclusive,
        "the_lock_is_exclusive_and_names_its_holder",
        "the lock is exclusive",
    ),
    (
        StateBug::UnlockByAnyToken,
        "only_the_holders_token_unlocks",
        "only the holder's token unlocks",
    ),
    (
        StateBug::CheckpointsOldestFirst,
        "checkpoints_round_trip_newest_first",
        "checkpoints are newest first",
    ),
    (
        StateBug::SaveIgnoresUpdates,
        "saving_a_checkpoint_again_replaces_it",
        "saving a checkpoint's id again replaces it",
    ),
    (
        StateBug::LockHolderSaysFree,
        "the_lock_is_exclusive_and_names_its_holder",
        "lock_holder names the holder",
    ),
    (
        StateBug::JournalsOldestFirst,
        "journals_round_trip_newest_first",
        "journals are newest first",
    ),
    (
        StateBug::TryLockNamesTheCaller,
        "the_lock_is_exclusive_and_names_its_holder",
        "a held lock names its holder",
    ),
];

struct BrokenState {
    inner: MemoryStateStore,
    bug: Option<StateBug>,
    /// The lock, for `LockNotExclusive` (which takes it over at every try).
    taken_over: Mutex<Option<LockHolder>>,
}

impl BrokenState {
    fn is(&self, bug: StateBug) -> bool {
        self.bug == Some(bug)
    }
}

#[async_trait]
impl StateStore for BrokenState {
    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), AdapterError> {
        if self.is(StateBug::SaveIgnoresUpdates)
            && self
                .inner
                .checkpoints()
                .await?
                .iter()
                .any(|c| c.id == checkpoint.id)
        {
            return Ok(());
        }
        self.inner.save_checkpoint(checkpoint).await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, AdapterError> {
        let mut all = self.inner.checkpoints().await?;
        if self.is(StateBug::CheckpointsOldestFirst) {
            all.reverse();
        }
        Ok(all)
    }

    async fn remove_checkpoint(&self, id: &CheckpointId) -> Result<(), AdapterError> {
        if self.is(StateBug::RemoveForgetsAll) {
            for c in self.inner.checkpoints().await? {
                self.inner.remove_checkpoint(&c.id).await?;
            }
            return Ok(());
        }
        self.inner.remove_checkpoint(id).await
    }

    async fn save_journal(&self, journal: &Journal) -> Result<(), AdapterError> {
        self.inner.save_journal(journal).await
    }

    async fn journals(&self) -> Result<Vec<Journal>, AdapterError> {
        let mut all = self.inner.journals().await?;
        if self.is(StateBug::JournalsOldestFirst) {
            all.reverse();
        }
        Ok(all)
    }

    async fn save_report(&self, report: &RollbackReport) -> Result<String, AdapterError> {
        self.inner.save_report(report).await
    }

    async fn try_lock(&self, holder: &LockHolder) -> Result<Option<LockHolder>, AdapterError> {
        if self.is(StateBug::LockNotExclusive) {
            *lock(&self.taken_over) = Some(holder.clone());
            return Ok(None);
        }
        let held = self.inner.try_lock(holder).await?;
        Ok(if self.is(StateBug::TryLockNamesTheCaller) {
            held.map(|_| holder.clone())
        } else {
            held
        })
    }

    async fn lock_holder(&self) -> Result<Option<LockHolder>, AdapterError> {
        if self.is(StateBug::LockHolderSaysFree) {
            return Ok(None);
        }
        if self.is(StateBug::LockNotExclusive) {
            return Ok(lock(&self.taken_over).clone());
        }
        self.inner.lock_holder().await
    }

    async fn unlock(&self, token: &str) -> Result<(), AdapterError> {
        if self.is(StateBug::LockNotExclusive) {
            let mut taken = lock(&self.taken_over);
            if taken.as_ref().is_some_and(|h| h.token == token) {
                *taken = None;
            }
            return Ok(());
        }
        if self.is(StateBug::UnlockByAnyToken) {
            if let Some(holder) = self.inner.lock_holder().await? {
                return self.inner.unlock(&holder.token).await;
            }
        }
        self.inner.unlock(token).await
    }
}

#[tokio::test]
async fn state_suite_rejects_every_broken_state_store() {
    let checks = conformance::state::CHECKS;
    let rejected = rejections(checks, |run| async move {
        run(&MemoryStateStore::new(), &()).await;
    })
    .await;
    assert_accepted_by_all("state", "the memory state store", &rejected);
    let accepted = verdict(conformance::state_store(&MemoryStateStore::new())).await;
    assert_eq!(accepted, None, "the suite accepts the memory state store");
    let wrap = |bug| BrokenState {
        inner: MemoryStateStore::new(),
        bug,
        taken_over: Mutex::default(),
    };
    let rejected = rejections(checks, |run| async move {
        run(&wrap(None), &()).await;
    })
    .await;
    assert_accepted_by_all("state", "the unbroken wrapper", &rejected);
    let accepted = verdict(conformance::state_store(&wrap(None))).await;
    assert_eq!(accepted, None, "the suite accepts the unbroken wrapper");

    for (bug, check, expected) in STATE_BUGS {
        let rejected = rejections(checks, |run| async move {
            run(&wrap(Some(bug)), &()).await;
        })
        .await;
        let all_in_one = verdict(conformance::state_store(&wrap(Some(bug)))).await;
        assert_rejected("state", bug, (check, expected), &rejected, all_in_one);
    }
}
