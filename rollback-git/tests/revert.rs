//! Revert: plain and merge commits, conflicts leave everything as it was.

mod common;

use common::{assert_err, commit_files, init_repo, rev};
use git2::{Repository, Signature};
use rollback_core::{CodeVersion, ErrorKind};
use rollback_git::{GitCode, InPlaceOptions};

fn releases(tmp: &std::path::Path, repo: &std::path::Path) -> GitCode {
    GitCode::builder(repo)
        .releases(tmp.join("releases"), tmp.join("current"))
        .build()
        .expect("adapter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_of_a_plain_commit_adds_a_commit_undoing_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let bad = commit_files(&repo, &[("app.txt", "bad\n"), ("other.txt", "x\n")], "bad change");
    let code = releases(tmp.path(), &repo);
    let head = code.revert(&[rev(bad)]).await.expect("revert");
    let git = Repository::open(&repo).expect("open");
    let c = git
        .find_commit(head.id.as_str().parse().expect("oid"))
        .expect("commit");
    assert_eq!(
        c.parent_id(0).expect("parent"),
        bad,
        "history kept: the revert sits on top"
    );
    assert!(c
        .message()
        .expect("msg")
        .contains(&format!("This reverts commit {bad}")));
    assert_eq!(head.subject, "Revert \"bad change\"");
    let tree = c.tree().expect("tree");
    assert!(tree.get_name("other.txt").is_none(), "added file removed");
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "v0\n",
        "clone's tree follows"
    );
    assert!(
        git.statuses(None).expect("status").is_empty(),
        "clean after revert"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_of_a_merge_uses_the_first_parent_as_mainline() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let git = Repository::open(&repo).expect("open");
    let base = git.head().expect("head").peel_to_commit().expect("c");
    // Feature branch adds feature.txt; main adds main.txt; merge them.
    git.branch("feature", &base, false).expect("branch");
    git.set_head("refs/heads/feature").expect("switch");
    let feature = commit_files(&repo, &[("feature.txt", "feature\n")], "feature");
    git.set_head("refs/heads/main").expect("switch");
    git.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .expect("checkout");
    let main_tip = commit_files(&repo, &[("main.txt", "main\n")], "main work");
    let (ours, theirs) = (
        git.find_commit(main_tip).expect("c"),
        git.find_commit(feature).expect("c"),
    );
    let mut idx = git.merge_commits(&ours, &theirs, None).expect("merge");
    assert!(!idx.has_conflicts());
    let tree = git
        .find_tree(idx.write_tree_to(&git).expect("tree"))
        .expect("tree");
    let sig = Signature::now("Test Author", "test@example.com").expect("sig");
    let merge = git
        .commit(
            Some("HEAD"),
            &sig,
            &sig,
            "Merge feature",
            &tree,
            &[&ours, &theirs],
        )
        .expect("merge commit");
    git.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .expect("checkout");

    let code = releases(tmp.path(), &repo);
    let head = code.revert(&[rev(merge)]).await.expect("revert merge");
    let c = git
        .find_commit(head.id.as_str().parse().expect("oid"))
        .expect("commit");
    assert_eq!(c.parent_id(0).expect("parent"), merge);
    let tree = c.tree().expect("tree");
    assert!(
        tree.get_name("feature.txt").is_none(),
        "the merged-in change is undone"
    );
    assert!(
        tree.get_name("main.txt").is_some(),
        "mainline (parent 1) work is kept"
    );
    assert!(c
        .message()
        .expect("msg")
        .contains(&format!("changes made to {main_tip}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_conflict_names_the_path_and_changes_nothing() {
    for in_place in [false, true] {
        let tmp = tempfile::tempdir().expect("tmp");
        let repo = tmp.path().join("repo");
        init_repo(&repo);
        let a = commit_files(&repo, &[("app.txt", "a\n")], "change a");
        commit_files(&repo, &[("app.txt", "b\n")], "change b on the same line");
        let code = if in_place {
            GitCode::builder(&repo)
                .in_place(InPlaceOptions::default())
                .build()
                .expect("adapter")
        } else {
            releases(tmp.path(), &repo)
        };
        let git = Repository::open(&repo).expect("open");
        let head_before = git.head().expect("head").target();
        let index_before = std::fs::read(repo.join(".git/index")).expect("index");
        assert_err(
            code.revert(&[rev(a)]).await,
            ErrorKind::Conflict,
            &["app.txt", &a.to_string()],
        );
        assert_eq!(git.head().expect("head").target(), head_before, "HEAD unchanged");
        assert_eq!(
            git.head().expect("head").shorthand(),
            Some("main"),
            "still on main"
        );
        assert_eq!(
            std::fs::read(repo.join(".git/index")).expect("index"),
            index_before,
            "index unchanged"
        );
        assert_eq!(
            std::fs::read_to_string(repo.join("app.txt")).expect("read"),
            "b\n",
            "tree unchanged"
        );
        assert_eq!(git.state(), git2::RepositoryState::Clean, "no revert in progress");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_revert_leaves_the_live_tree_and_moves_the_branch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let bad = commit_files(&repo, &[("app.txt", "bad\n")], "bad");
    let code = GitCode::builder(&repo)
        .in_place(InPlaceOptions::default())
        .build()
        .expect("adapter");
    let head = code.revert(&[rev(bad)]).await.expect("revert");
    assert_eq!(
        code.current().await.expect("current").id,
        rev(bad),
        "what runs is unchanged"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "bad\n"
    );
    assert_eq!(
        code.history(1).await.expect("history")[0].id,
        head.id,
        "the branch moved"
    );
    let p = code.prepare(&head.id).await.expect("prepare");
    code.activate(&p).await.expect("activate");
    assert_eq!(
        std::fs::read_to_string(repo.join("app.txt")).expect("read"),
        "v0\n"
    );
    assert_err(
        code.revert(&[rev(bad)]).await,
        ErrorKind::InvalidInput,
        &["changes nothing"],
    );
}
