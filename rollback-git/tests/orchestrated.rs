//! The real `GitCode`, in both layouts, driven by `rollback_core::Orchestrator` with the
//! testkit's fakes for the database, the config, the process manager and the health probe
//! (one shared `World`): a failure at every step after the stop is undone exactly, down to
//! the branch HEAD is on, the `current` link and the files in the tree; a dirty in-place
//! tree is refused before the stop.

mod common;

use async_trait::async_trait;
use common::{commit_files, init_repo, rev};
use git2::{Oid, Repository, StatusOptions};
use rollback_core::{
    AdapterError, CodeVersion, ErrorKind, HealthProbe, Orchestrator, Outcome, PreparedRevision, ProcessState,
    Revision, RevisionId, RollbackError, RollbackRequest, RollbackTarget, Scope, Step,
};
use rollback_git::{GitCode, InPlaceOptions};
use rollback_testkit::{
    Call, DbContent, FakeConfig, FakeDatabase, FakeHealthProbe, FakeProcessManager, Fault, MemoryStateStore,
    Method, Rig, When, World, APP,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The real adapter behind a layer that records its calls in the world (so that
/// `World::count` and `World::calls` see them beside the fakes' calls) and fails the n-th
/// call of a method after injection, as `World::inject` does for the fakes: the world's own
/// fault injection reaches only the testkit's fakes, so code faults are injected here.
#[derive(Clone)]
struct Layered {
    inner: GitCode,
    world: World,
    /// (method, n-th call that fails, calls seen since injection)
    faults: Arc<Mutex<Vec<(Method, usize, usize)>>>,
}

impl Layered {
    fn inject(&self, method: Method, nth: usize) {
        self.faults.lock().expect("faults").push((method, nth, 0));
    }

    fn enter(&self, method: Method, arg: &str) -> Result<(), AdapterError> {
        self.world.lock().calls.push(Call {
            method,
            arg: arg.to_owned(),
        });
        let mut fail = false;
        for rule in self
            .faults
            .lock()
            .expect("faults")
            .iter_mut()
            .filter(|r| r.0 == method)
        {
            rule.2 += 1;
            fail |= rule.2 == rule.1;
        }
        if fail {
            Err(AdapterError::new(
                ErrorKind::Failed,
                format!("injected fault in {method:?}"),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl CodeVersion for Layered {
    async fn current(&self) -> Result<Revision, AdapterError> {
        self.enter(Method::CodeCurrent, "")?;
        self.inner.current().await
    }
    async fn resolve(&self, spec: &str) -> Result<Revision, AdapterError> {
        self.enter(Method::CodeResolve, spec)?;
        self.inner.resolve(spec).await
    }
    async fn history(&self, n: usize) -> Result<Vec<Revision>, AdapterError> {
        self.enter(Method::CodeHistory, &n.to_string())?;
        self.inner.history(n).await
    }
    async fn prepare(&self, revision: &RevisionId) -> Result<PreparedRevision, AdapterError> {
        self.enter(Method::CodePrepare, revision.as_str())?;
        self.inner.prepare(revision).await
    }
    async fn check_activate(&self, revision: &RevisionId) -> Result<(), AdapterError> {
        self.enter(Method::CodeCheckActivate, revision.as_str())?;
        self.inner.check_activate(revision).await
    }
    async fn preserve_current(&self) -> Result<PreparedRevision, AdapterError> {
        self.enter(Method::CodePreserveCurrent, "")?;
        self.inner.preserve_current().await
    }
    async fn activate(&self, prepared: &PreparedRevision) -> Result<(), AdapterError> {
        self.enter(Method::CodeActivate, prepared.revision.as_str())?;
        self.inner.activate(prepared).await
    }
    async fn revert(&self, commits: &[RevisionId]) -> Result<Revision, AdapterError> {
        self.enter(Method::CodeRevert, &format!("{commits:?}"))?;
        self.inner.revert(commits).await
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The app runs from the working tree, branch `main` attached, an untracked file about.
    InPlace,
    /// The app runs from `current -> releases/<hash>`.
    Releases,
}

/// v1 checkpointed, then v2 deployed (database, config and code), calls forgotten.
struct Deployed {
    kind: Kind,
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    link: PathBuf,
    world: World,
    code: Layered,
    probe: FakeHealthProbe,
    o: Orchestrator,
    v1: Oid,
    v2: Oid,
}

async fn deployed(kind: Kind) -> Deployed {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let link = tmp.path().join("current");
    init_repo(&repo);
    commit_files(&repo, &[(".gitignore", "dist.txt\n")], "ignore build output");
    let v1 = commit_files(&repo, &[("app.txt", "v1\n")], "v1");
    let builder = GitCode::builder(&repo).build_command(["cp", "app.txt", "dist.txt"]);
    let git = match kind {
        Kind::InPlace => builder.in_place(InPlaceOptions::new().artifacts(["dist.txt"])),
        Kind::Releases => builder.releases(tmp.path().join("releases"), &link),
    }
    .build()
    .expect("adapter");
    match kind {
        Kind::InPlace => {
            std::fs::write(repo.join("dist.txt"), "live build of v1\n").expect("build");
            std::fs::write(repo.join("notes.txt"), "an operator's notes\n").expect("untracked");
        }
        Kind::Releases => {
            let p1 = git.prepare(&rev(v1)).await.expect("prepare v1");
            git.activate(&p1).await.expect("activate v1");
        }
    }

    // The fakes, wired as Rig::new wires them.
    let world = World::new();
    let db = FakeDatabase::new(&world, "postgres://app@db.internal:5432/app".to_owned());
    let config = FakeConfig::new(&world);
    let process = FakeProcessManager::new(&world);
    process.add_app(APP);
    world.lock().db.live = Some(DbContent::new("v1 data", 100));
    config.set_live(&[("API_KEY", "k-v1"), ("FEATURE_X", "off")]);
    let probe = FakeHealthProbe::new(&world, APP);
    let code = Layered {
        inner: git.clone(),
        world: world.clone(),
        faults: Arc::default(),
    };
    let o = Orchestrator::builder(APP)
        .database(Arc::new(db))
        .code(Arc::new(code.clone()))
        .config(Arc::new(config))
        .process(Arc::new(process))
        .health_probe(Arc::new(probe.clone()))
        .state(Arc::new(MemoryStateStore::new()))
        .settings(Rig::settings())
        .build()
        .expect("orchestrator");
    let cp = o.checkpoint("before v2").await.expect("checkpoint");
    assert!(cp.good, "checkpoint at v1 is good: {:?}", cp.warnings);
    assert_eq!(cp.revision, Some(rev(v1)));

    // The deploy of v2: a commit on main (`git pull`) and its build, or a new release.
    let v2 = commit_files(&repo, &[("app.txt", "v2\n")], "v2");
    match kind {
        Kind::InPlace => std::fs::write(repo.join("dist.txt"), "live build of v2\n").expect("build"),
        Kind::Releases => {
            let p2 = git.prepare(&rev(v2)).await.expect("prepare v2");
            git.activate(&p2).await.expect("activate v2");
        }
    }
    {
        let mut s = world.lock();
        s.db.live = Some(DbContent::new("v2 data", 120));
        s.config.live.insert("FEATURE_X".into(), "on".into());
        s.config.live.insert("NEW_IN_V2".into(), "1".into());
    }
    world.clear_calls();
    Deployed {
        kind,
        _tmp: tmp,
        repo,
        link,
        world,
        code,
        probe,
        o,
        v1,
        v2,
    }
}

/// What a rollback must leave as it found it when it is undone.
#[derive(Debug, PartialEq, Eq)]
struct RepoState {
    /// The branch HEAD is on (`None`: detached).
    head_on: Option<String>,
    head: Oid,
    main: Oid,
    /// Tracked changes and untracked files, as `git status --porcelain` lists them.
    porcelain: Vec<String>,
    /// Where `current` points (releases).
    link: Option<PathBuf>,
    /// The build the app runs.
    live_build: Option<String>,
}

fn repo_state(d: &Deployed) -> RepoState {
    let git = Repository::open(&d.repo).expect("open");
    let head_ref = git.find_reference("HEAD").expect("HEAD");
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let porcelain = git
        .statuses(Some(&mut opts))
        .expect("status")
        .iter()
        .map(|s| format!("{:?} {}", s.status(), s.path().unwrap_or("?")))
        .collect();
    let live_dir = match d.kind {
        Kind::InPlace => d.repo.clone(),
        Kind::Releases => d.link.clone(),
    };
    let state = RepoState {
        head_on: head_ref.symbolic_target().map(str::to_owned),
        head: git.head().expect("head").peel_to_commit().expect("commit").id(),
        main: git
            .find_reference("refs/heads/main")
            .expect("main")
            .target()
            .expect("direct"),
        porcelain,
        link: std::fs::read_link(&d.link).ok(),
        live_build: std::fs::read_to_string(live_dir.join("dist.txt")).ok(),
    };
    state
}

fn online(world: &World) -> bool {
    world
        .lock()
        .apps
        .iter()
        .any(|(a, app)| a.as_str() == APP && app.state == ProcessState::Online)
}

/// Every failure after the stop, with the step it fails.
const AFTER_THE_STOP: [(Method, Step); 10] = [
    (Method::DbPreserveCurrent, Step::EmergencyBackup),
    (Method::CodePreserveCurrent, Step::EmergencyBackup),
    (Method::ConfigBackup, Step::EmergencyBackup),
    (Method::DbRestore, Step::RestoreDatabase),
    (Method::DbProveUnchanged, Step::RestoreDatabase),
    (Method::CodeActivate, Step::ActivateCode),
    (Method::ConfigRestore, Step::RestoreConfig),
    (Method::DbOpen, Step::Start),
    (Method::ProcessStart, Step::Start),
    (Method::DbCheckIntegrity, Step::PostVerify),
];

/// Rolls back with `method` failing once; returns what is wrong (nothing, when the
/// pre-rollback state is back exactly and answers).
async fn fail_once_after_the_stop(kind: Kind, method: Method, expected: Step) -> Vec<String> {
    let d = deployed(kind).await;
    let label = format!("{kind:?}, {method:?} fails");
    let mut problems = Vec::new();
    let before = repo_state(&d);
    match method {
        Method::CodePreserveCurrent | Method::CodeActivate => d.code.inject(method, 1),
        _ => d
            .world
            .inject(method, When::Nth(1), Fault::Fail(ErrorKind::Failed)),
    }
    let err = match d
        .o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
    {
        Ok(report) => {
            return vec![format!(
                "{label}: the rollback succeeded despite the fault: {}",
                report.outcome
            )]
        }
        Err(e) => e,
    };
    let Some(report) = err.report() else {
        return vec![format!("{label}: no report: {err}")];
    };
    let failed = match &report.outcome {
        Outcome::RestoredPreRollbackState { step, .. } => Some(*step),
        Outcome::Halted {
            step,
            cause,
            statement,
        } => {
            problems.push(format!(
                "{label}: HALTED at `{step}`\n    cause: {cause}\n    statement: {statement}\n    recovery: {:?}",
                report.recovery
            ));
            None
        }
        other => {
            problems.push(format!("{label}: unexpected outcome {other}"));
            None
        }
    };
    if let Some(step) = failed {
        if step != expected {
            problems.push(format!("{label}: failed at `{step}`, expected `{expected}`"));
        }
        let activations = d.world.count(Method::CodeActivate);
        if step < Step::ActivateCode && activations != 0 {
            problems.push(format!(
                "{label}: the code was never switched, yet activate was called {activations} times"
            ));
        }
        if step >= Step::ActivateCode && activations != 2 {
            problems.push(format!(
                "{label}: expected the target's activation and its undo, got {activations} activations"
            ));
        }
    }
    if !online(&d.world) {
        problems.push(format!("{label}: the app is not online"));
    }
    let answer = d.probe.probe().await;
    if !answer.healthy {
        problems.push(format!("{label}: the app does not answer: {}", answer.detail));
    }
    let after = repo_state(&d);
    if after != before {
        problems.push(format!(
            "{label}: the repository is not as before the rollback\n    before: {before:?}\n    after:  {after:?}"
        ));
    }
    problems
}

async fn every_failure_after_the_stop(kind: Kind) {
    let mut problems = Vec::new();
    for (method, step) in AFTER_THE_STOP {
        problems.extend(fail_once_after_the_stop(kind, method, step).await);
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_a_failure_at_every_step_after_the_stop_puts_the_tree_back_on_its_branch() {
    every_failure_after_the_stop(Kind::InPlace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_a_failure_at_every_step_after_the_stop_puts_the_current_link_back() {
    every_failure_after_the_stop(Kind::Releases).await;
}

/// The same rig without a fault: the rollback succeeds and v1 runs, built, in both layouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_fault_both_layouts_roll_back_to_v1() {
    for kind in [Kind::InPlace, Kind::Releases] {
        let d = deployed(kind).await;
        let before = repo_state(&d);
        let report =
            d.o.rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
                .await
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(report.outcome, Outcome::Succeeded, "{kind:?}");
        assert!(online(&d.world) && d.probe.probe().await.healthy, "{kind:?}");
        let after = repo_state(&d);
        assert_eq!(
            after.live_build.as_deref(),
            Some("v1\n"),
            "{kind:?}: v1's build runs"
        );
        assert_eq!(after.main, d.v2, "{kind:?}: main is never moved");
        assert_eq!(
            after.porcelain, before.porcelain,
            "{kind:?}: nothing new in the tree"
        );
        match kind {
            Kind::InPlace => {
                assert_eq!((after.head_on, after.head), (None, d.v1), "detached at v1");
            }
            Kind::Releases => {
                let target = after.link.expect("link");
                assert!(
                    target.ends_with(&d.v1.to_string()[..12]),
                    "current -> v1's release: {}",
                    target.display()
                );
                assert_eq!((after.head_on, after.head), (before.head_on, before.head));
            }
        }
    }
}

/// A modified tracked file in the live tree: `activate` would refuse it after the stop, so
/// pre-flight refuses it before, and the app is never stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_a_modified_tracked_file_is_refused_in_preflight_and_nothing_stops() {
    let d = deployed(Kind::InPlace).await;
    std::fs::write(d.repo.join("app.txt"), "a hot fix on the server\n").expect("edit");
    let before = repo_state(&d);
    let err =
        d.o.rollback_with(RollbackRequest::new(
            RollbackTarget::LastGood,
            "v2 broken",
            Scope::ALL,
        ))
        .await
        .expect_err("refused");
    let RollbackError::Preflight { failures } = &err else {
        panic!("expected a pre-flight refusal, got: {err}");
    };
    assert!(
        failures.iter().any(|f| f.error.kind() == ErrorKind::InvalidInput
            && f.error.to_string().contains("app.txt")
            && f.error.to_string().contains("uncommitted changes")),
        "{failures:?}"
    );
    assert_eq!(d.world.count(Method::ProcessStop), 0, "the app was never stopped");
    assert_eq!(d.world.count(Method::CodeActivate), 0);
    assert!(online(&d.world));
    assert_eq!(repo_state(&d), before);
    assert_eq!(
        std::fs::read_to_string(d.repo.join("app.txt")).expect("read"),
        "a hot fix on the server\n"
    );
}
