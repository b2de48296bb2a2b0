//! In-place layout: dirty trees (refused by check_activate before the stop), untracked files
//! in the way, artifacts moved in and back, branch reset, no-op re-activation, failing builds.

mod common;

use common::{assert_err, commit_files, init_repo, rev};
use git2::Repository;
use rollback_core::{CodeVersion, ErrorKind};
use rollback_git::{GitCode, InPlaceOptions};

fn adapter(repo: &std::path::Path, opts: InPlaceOptions) -> GitCode {
    GitCode::builder(repo)
        .in_place(opts)
        .build_command(["cp", "app.txt", "dist.txt"])
        .build()
        .expect("adapter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dirty_tree_is_refused_naming_the_files_unless_allowed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let c1 = commit_files(&repo, &[("app.txt", "v1\n")], "v1");
    let code = adapter(&repo, InPlaceOptions::default());
    let p0 = code.prepare(&rev(c0)).await.expect("prepare");
    std::fs::write(repo.join("app.txt"), "hand edit\n").expect("edit");
    assert_err(
        code.activate(&p0).await,
        ErrorKind::InvalidInput,
        &["uncommitted changes", "app.txt"],
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "hand edit\n",
        "untouched"
    );
    assert_eq!(code.current().await.expect("current").id, rev(c1));

    let forced = GitCode::builder(&repo)
        .in_place(InPlaceOptions::default())
        .allow_dirty(true)
        .build()
        .expect("adapter");
    forced.activate(&p0).await.expect("allowed");
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "v0\n"
    );
    assert_eq!(forced.current().await.expect("current").id, rev(c0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_artifacts_move_in_and_the_preserved_ones_come_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    commit_files(&repo, &[(".gitignore", "dist.txt\n")], "ignore build output");
    let c1 = commit_files(&repo, &[("app.txt", "v1\n")], "v1");
    std::fs::write(repo.join("dist.txt"), "live build of v1\n").expect("live artifact");
    let opts = InPlaceOptions::new().artifacts(["dist.txt"]);
    let code = adapter(&repo, opts);
    let preserved = code.preserve_current().await.expect("preserve");
    let c2 = commit_files(&repo, &[("app.txt", "v2\n")], "v2");
    // The live tree moved with the commit (in place); go back to v1 as what runs.
    code.activate(&preserved).await.expect("back to v1");
    assert_eq!(code.current().await.expect("current").id, rev(c1));

    let p2 = code.prepare(&rev(c2)).await.expect("prepare v2");
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "v1\n",
        "prepare leaves the live tree"
    );
    code.activate(&p2).await.expect("activate v2");
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "v2\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("dist.txt")).expect("read"),
        "v2\n",
        "built artifact moved in"
    );
    code.activate(&preserved)
        .await
        .expect("switch back without a build");
    assert_eq!(
        std::fs::read_to_string(repo.join("dist.txt")).expect("read"),
        "live build of v1\n"
    );
    assert_eq!(code.current().await.expect("current").id, rev(c1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_never_touches_the_live_tree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let broken = commit_removal_of_app(&repo);
    let c2 = commit_files(&repo, &[("app.txt", "v2\n")], "v2");
    let code = adapter(&repo, InPlaceOptions::default());
    assert_err(
        code.prepare(&rev(broken)).await,
        ErrorKind::Failed,
        &["cp app.txt dist.txt"],
    );
    assert_eq!(code.current().await.expect("current").id, rev(c2));
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "v2\n"
    );
    let repo = Repository::open(&repo).expect("open");
    assert!(repo.statuses(None).expect("status").is_empty(), "live tree clean");
}

fn commit_removal_of_app(repo: &std::path::Path) -> git2::Oid {
    common::commit_removal(repo, "app.txt", "remove app.txt")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_branch_checks_the_branch_out_at_the_revision() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    commit_files(&repo, &[("app.txt", "v1\n")], "v1");
    let code = adapter(&repo, InPlaceOptions::new().reset_branch("main"));
    let p0 = code.prepare(&rev(c0)).await.expect("prepare");
    code.activate(&p0).await.expect("activate");
    let git = Repository::open(&repo).expect("open");
    let head = git.head().expect("head");
    assert_eq!(head.shorthand(), Some("main"), "HEAD stays on the branch");
    assert_eq!(head.target(), Some(c0));
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "v0\n"
    );
}

/// What pre-flight does: `check_activate` before the stop must refuse what `activate` would
/// refuse after it, with the same kind and message, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_activate_refuses_a_dirty_tree_before_the_stop_as_activate_would() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let c1 = commit_files(&repo, &[("app.txt", "v1\n")], "v1");
    let code = adapter(&repo, InPlaceOptions::default());
    let p0 = code.prepare(&rev(c0)).await.expect("prepare");

    code.check_activate(&rev(c0)).await.expect("a clean tree passes");
    std::fs::write(repo.join("app.txt"), "hand edit\n").expect("edit");
    let warned = code
        .check_activate(&rev(c0))
        .await
        .expect_err("pre-flight refuses the dirty tree");
    assert_eq!(warned.kind(), ErrorKind::InvalidInput, "{warned}");
    for needle in ["uncommitted changes", "app.txt", "commit", "stash", "allow_dirty"] {
        assert!(
            warned.to_string().contains(needle),
            "`{needle}` missing from: {warned}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "hand edit\n",
        "check_activate changes nothing"
    );
    let refused = code.activate(&p0).await.expect_err("activate refuses it too");
    assert_eq!(refused.kind(), warned.kind());
    assert_eq!(
        refused.to_string(),
        warned.to_string(),
        "the same refusal, before the stop"
    );

    code.check_activate(&rev(c1))
        .await
        .expect("the live revision passes even when dirty: activating it checks nothing out");
    assert_err(
        code.check_activate(&rev(git2::Oid::zero())).await,
        ErrorKind::NotFound,
        &["not found"],
    );
    let forced = GitCode::builder(&repo)
        .in_place(InPlaceOptions::default())
        .allow_dirty(true)
        .build()
        .expect("adapter");
    forced.check_activate(&rev(c0)).await.expect("allow_dirty passes");
    assert_eq!(code.current().await.expect("current").id, rev(c1));
}

/// Untracked files where the revision has files: a safe checkout refuses them after the
/// stop without naming them; check_activate and activate name them first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untracked_files_in_the_way_are_named_before_the_checkout() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let c1 = commit_files(
        &repo,
        &[("added.txt", "tracked in v1\n"), ("lib/util.js", "x\n")],
        "v1",
    );
    let code = adapter(&repo, InPlaceOptions::default());
    let p0 = code.prepare(&rev(c0)).await.expect("prepare c0");
    let p1 = code.prepare(&rev(c1)).await.expect("prepare c1");
    code.activate(&p0).await.expect("back to c0");
    assert!(!repo.join("added.txt").exists() && !repo.join("lib").exists());

    // An ignored file in the way is no obstacle (a checkout overwrites it, as git does).
    std::fs::write(repo.join(".git/info/exclude"), "added.txt\n").expect("exclude");
    std::fs::write(repo.join("added.txt"), "ignored local copy\n").expect("ignored");
    code.check_activate(&rev(c1))
        .await
        .expect("an ignored file is not in the way");
    code.activate(&p1).await.expect("and activate overwrites it");
    assert_eq!(
        std::fs::read_to_string(repo.join("added.txt")).expect("read"),
        "tracked in v1\n"
    );
    code.activate(&p0).await.expect("back to c0 again");
    assert!(!repo.join("added.txt").exists() && !repo.join("lib").exists());

    std::fs::write(repo.join(".git/info/exclude"), "").expect("exclude");
    std::fs::write(repo.join("added.txt"), "untracked local copy\n").expect("untracked");
    std::fs::write(repo.join("lib"), "a file where v1 has a directory\n").expect("untracked");
    let warned = code.check_activate(&rev(c1)).await.expect_err("in the way");
    assert_eq!(warned.kind(), ErrorKind::InvalidInput, "{warned}");
    for needle in ["untracked", "added.txt", "lib", "allow_dirty"] {
        assert!(
            warned.to_string().contains(needle),
            "`{needle}` missing from: {warned}"
        );
    }
    let refused = code.activate(&p1).await.expect_err("activate refuses the same");
    assert_eq!(refused.to_string(), warned.to_string());
    assert_eq!(code.current().await.expect("current").id, rev(c0));
    assert_eq!(
        std::fs::read_to_string(repo.join("added.txt")).expect("read"),
        "untracked local copy\n",
        "nothing overwritten"
    );

    std::fs::remove_file(repo.join("lib")).expect("rm");
    std::fs::remove_file(repo.join("added.txt")).expect("rm");
    code.check_activate(&rev(c1)).await.expect("nothing in the way");
    code.activate(&p1).await.expect("activate");
    assert_eq!(code.current().await.expect("current").id, rev(c1));
}

/// After a normal deploy (`git pull` on main) the tree is on a branch, often with local
/// files. Switching back to the preserved release when nothing changed (the failure policy
/// re-activating the pre-rollback code) must change nothing: no refusal, no detach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activating_the_preserved_revision_changes_nothing_on_a_dirty_tree_with_a_branch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let c1 = commit_files(&repo, &[("app.txt", "v1\n")], "v1");
    let code = adapter(&repo, InPlaceOptions::default());
    std::fs::write(repo.join("app.txt"), "hot fix on the server\n").expect("edit");
    std::fs::write(repo.join("notes.txt"), "untracked\n").expect("untracked");

    let preserved = code.preserve_current().await.expect("preserve");
    assert_eq!(preserved.revision, rev(c1));
    code.check_activate(&preserved.revision)
        .await
        .expect("the live revision passes pre-flight");
    code.activate(&preserved).await.expect("a no-op");
    code.activate(&preserved).await.expect("still a no-op");

    let git = Repository::open(&repo).expect("open");
    let head = git.find_reference("HEAD").expect("HEAD");
    assert_eq!(
        head.symbolic_target(),
        Some("refs/heads/main"),
        "HEAD stays on main"
    );
    let main = git.find_reference("refs/heads/main").expect("main");
    assert_eq!(main.target(), Some(c1), "main unchanged");
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "hot fix on the server\n",
        "the edit stays"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("notes.txt")).expect("read"),
        "untracked\n"
    );

    // The same with reset_branch configured and HEAD elsewhere: nothing moves either.
    git.set_head_detached(c1).expect("detach");
    let reset = adapter(&repo, InPlaceOptions::new().reset_branch("main"));
    let preserved = reset.preserve_current().await.expect("preserve");
    reset.activate(&preserved).await.expect("a no-op");
    let git = Repository::open(&repo).expect("open");
    assert!(git.head_detached().expect("head"), "HEAD left detached");
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "hot fix on the server\n"
    );
}

/// The live artifacts are moved into the worktrees directory during the switch: one that
/// cannot be written is found before the stop, and refused by activate before the live tree
/// changes. A missing one that can be created is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worktrees_dir_that_cannot_be_written_is_found_before_the_switch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let c1 = commit_files(&repo, &[("app.txt", "v1\n")], "v1");
    let worktrees = tmp.path().join("worktrees");
    let code = adapter(&repo, InPlaceOptions::new().worktrees_dir(&worktrees));
    let p0 = code.prepare(&rev(c0)).await.expect("prepare");
    let kept = tmp.path().join("kept");
    std::fs::rename(&worktrees, &kept).expect("move aside");
    code.check_activate(&rev(c0))
        .await
        .expect("a missing worktrees dir is created when needed");
    assert!(!worktrees.exists(), "check_activate creates nothing");
    std::fs::write(&worktrees, "a file").expect("file");
    assert_err(
        code.check_activate(&rev(c0)).await,
        ErrorKind::PermissionDenied,
        &["worktrees", "not writable"],
    );
    std::fs::remove_file(&worktrees).expect("rm");
    std::fs::rename(&kept, &worktrees).expect("move back");
    std::fs::write(
        worktrees.join(&rev(c1).as_str()[..12]),
        "in the way of the holder",
    )
    .expect("file");
    code.activate(&p0).await.expect_err("the holder cannot be made");
    assert_eq!(
        code.current().await.expect("current").id,
        rev(c1),
        "refused before the checkout"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "v1\n"
    );
}

/// HEAD as a test sees it: the branch it is on (`None`: detached) and its commit.
fn head_of(repo: &std::path::Path) -> (Option<String>, git2::Oid) {
    let git = Repository::open(repo).expect("open");
    let head = git.find_reference("HEAD").expect("HEAD");
    let on = head.symbolic_target().map(str::to_owned);
    let commit = git.head().expect("head").peel_to_commit().expect("commit").id();
    (on, commit)
}

fn tip(repo: &std::path::Path, branch: &str) -> git2::Oid {
    let git = Repository::open(repo).expect("open");
    let r = git
        .find_reference(&format!("refs/heads/{branch}"))
        .expect("branch");
    r.target().expect("direct")
}

/// Tracked changes and untracked files, as `git status --porcelain` lists them.
fn porcelain(repo: &std::path::Path) -> Vec<String> {
    let git = Repository::open(repo).expect("open");
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let statuses = git.statuses(Some(&mut opts)).expect("status");
    statuses
        .iter()
        .map(|s| format!("{:?} {}", s.status(), s.path().unwrap_or("?")))
        .collect()
}

/// A tree deployed by `git pull` on main (v2, with its build), preserved, a target (v1)
/// prepared: what the orchestrator has before it activates the target.
async fn pulled_on_main(
    repo: &std::path::Path,
) -> (GitCode, git2::Oid, git2::Oid, rollback_core::PreparedRevision) {
    init_repo(repo);
    commit_files(repo, &[(".gitignore", "dist.txt\n")], "ignore build output");
    let c1 = commit_files(repo, &[("app.txt", "v1\n")], "v1");
    let c2 = commit_files(repo, &[("app.txt", "v2\n")], "v2");
    std::fs::write(repo.join("dist.txt"), "live build of v2\n").expect("live artifact");
    let code = adapter(repo, InPlaceOptions::new().artifacts(["dist.txt"]));
    let p1 = code.prepare(&rev(c1)).await.expect("prepare v1");
    (code, c1, c2, p1)
}

/// The failure policy's undo of an in-place activation puts HEAD back on the branch the
/// deploy left it on, so that the next `git pull` works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_back_to_the_preserved_revision_puts_head_back_on_its_branch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let (code, c1, c2, p1) = pulled_on_main(&repo).await;
    std::fs::write(repo.join("notes.txt"), "an operator's notes\n").expect("untracked");
    let before = porcelain(&repo);
    assert_eq!(head_of(&repo), (Some("refs/heads/main".into()), c2));

    let preserved = code.preserve_current().await.expect("preserve");
    assert!(
        preserved
            .build_log_tail
            .iter()
            .any(|l| l.contains("on branch main")),
        "{:?}",
        preserved.build_log_tail
    );
    code.activate(&p1).await.expect("activate v1");
    assert_eq!(head_of(&repo), (None, c1), "the target is activated detached");
    assert_eq!(tip(&repo, "main"), c2, "main is not moved by the rollback");
    assert_eq!(
        std::fs::read_to_string(repo.join("dist.txt")).expect("read"),
        "v1\n"
    );

    code.activate(&preserved).await.expect("switch back");
    assert_eq!(
        head_of(&repo),
        (Some("refs/heads/main".into()), c2),
        "HEAD is on main again"
    );
    assert_eq!(tip(&repo, "main"), c2);
    assert_eq!(porcelain(&repo), before, "the tree is as it was");
    assert_eq!(
        std::fs::read_to_string(repo.join("dist.txt")).expect("read"),
        "live build of v2\n",
        "the live artifacts are back"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "v2\n"
    );

    code.activate(&preserved).await.expect("idempotent");
    assert_eq!(head_of(&repo), (Some("refs/heads/main".into()), c2));
    assert_eq!(porcelain(&repo), before);
}

/// A branch that moved while HEAD was away is never moved back: HEAD stays detached at the
/// preserved revision. Once the branch points there again, activating the preserved
/// revision again (the already-checked-out path) puts HEAD back on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_that_moved_meanwhile_is_not_moved_back_and_head_stays_detached() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let (code, c1, c2, p1) = pulled_on_main(&repo).await;
    let preserved = code.preserve_current().await.expect("preserve");
    code.activate(&p1).await.expect("activate v1");

    let git = Repository::open(&repo).expect("open");
    git.reference("refs/heads/main", c1, true, "someone resets main")
        .expect("move main");
    code.activate(&preserved).await.expect("switch back");
    assert_eq!(head_of(&repo), (None, c2), "detached at the preserved revision");
    assert_eq!(tip(&repo, "main"), c1, "main left where it was moved to");
    assert_eq!(
        std::fs::read_to_string(repo.join("dist.txt")).expect("read"),
        "live build of v2\n"
    );

    git.reference("refs/heads/main", c2, true, "main back at v2")
        .expect("move main");
    code.activate(&preserved).await.expect("again");
    assert_eq!(head_of(&repo), (Some("refs/heads/main".into()), c2));
    assert!(porcelain(&repo).is_empty(), "{:?}", porcelain(&repo));
}

/// A revision preserved with HEAD detached is switched back to detached, even when an
/// earlier preserve of the same revision was on a branch; and a prepared (not preserved)
/// revision is always activated detached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_branch_of_the_latest_preserve_is_put_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let (code, _, c2, p1) = pulled_on_main(&repo).await;
    code.preserve_current().await.expect("preserve on main");
    Repository::open(&repo)
        .expect("open")
        .set_head_detached(c2)
        .expect("detach");
    let preserved = code.preserve_current().await.expect("preserve detached");
    assert!(
        preserved
            .build_log_tail
            .iter()
            .any(|l| l.contains("detached HEAD")),
        "{:?}",
        preserved.build_log_tail
    );
    code.activate(&p1).await.expect("activate v1");
    code.activate(&preserved).await.expect("switch back");
    assert_eq!(head_of(&repo), (None, c2), "detached, as preserved");

    // Preserved on main, then prepared: the prepared revision is a target, activated detached.
    Repository::open(&repo)
        .expect("open")
        .set_head("refs/heads/main")
        .expect("attach");
    code.preserve_current().await.expect("preserve on main");
    code.activate(&p1).await.expect("activate v1");
    let p2 = code.prepare(&rev(c2)).await.expect("prepare v2");
    code.activate(&p2).await.expect("activate v2");
    assert_eq!(head_of(&repo), (None, c2), "a prepared target stays detached");
    assert_eq!(tip(&repo, "main"), c2);
}
