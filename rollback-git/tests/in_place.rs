//! In-place layout: dirty trees, artifacts moved in and back, branch reset, failing builds.

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
    let opts = InPlaceOptions {
        artifacts: vec!["dist.txt".into()],
        ..InPlaceOptions::default()
    };
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
    let code = adapter(
        &repo,
        InPlaceOptions {
            reset_branch: Some("main".into()),
            ..InPlaceOptions::default()
        },
    );
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
