//! Bad input is refused before anything changes, each with its own clear error; resolve and
//! history read the repository like git does.

mod common;

use common::{assert_err, commit_files, init_repo, rev};
use git2::{Repository, Signature};
use rollback_core::{CodeVersion, ErrorKind, PreparedRevision, RevisionId};
use rollback_git::{GitCode, InPlaceOptions};

#[test]
fn not_a_repository_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    assert_err(
        GitCode::builder(&empty)
            .releases(tmp.path().join("r"), tmp.path().join("c"))
            .build(),
        ErrorKind::InvalidInput,
        &["is not a git repository", "empty"],
    );
    assert!(
        !tmp.path().join("r").exists(),
        "nothing created for a bad repository"
    );
}

#[test]
fn a_bare_repository_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bare = tmp.path().join("bare.git");
    Repository::init_bare(&bare).expect("bare");
    assert_err(
        GitCode::builder(&bare)
            .in_place(InPlaceOptions::default())
            .build(),
        ErrorKind::InvalidInput,
        &["bare repository", "bare.git"],
    );
}

#[test]
fn a_missing_build_tool_is_named_at_construction() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    for tool in ["surely-not-a-build-tool-4711", "/nonexistent/bin/npm"] {
        assert_err(
            GitCode::builder(&repo)
                .releases(tmp.path().join("r"), tmp.path().join("c"))
                .build_command(["cp", "a", "b"])
                .build_command([tool, "run", "build"])
                .build(),
            ErrorKind::Unavailable,
            &[tool, "not on PATH", &format!("{tool} run build")],
        );
    }
    assert_err(
        GitCode::builder(&repo)
            .releases(tmp.path().join("r"), tmp.path().join("c"))
            .build_command(Vec::<String>::new())
            .build(),
        ErrorKind::InvalidInput,
        &["empty"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_script_in_the_checkout_is_named_before_anything_runs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), tmp.path().join("current"))
        .build_command(["touch", "first-step-ran"])
        .build_command(["./scripts/build.sh"])
        .build()
        .expect("a relative script can only be checked in the checkout");
    assert_err(
        code.prepare(&rev(c0)).await,
        ErrorKind::Unavailable,
        &["./scripts/build.sh"],
    );
    let left: Vec<_> = walk(&tmp.path().join("releases"));
    assert!(
        !left.iter().any(|p| p.ends_with("first-step-ran")),
        "no step ran: {left:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        }
        out.push(e.path());
    }
    out
}

#[test]
fn a_releases_dir_that_is_not_writable_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").expect("file");
    assert_err(
        GitCode::builder(&repo)
            .releases(&file, tmp.path().join("current"))
            .build(),
        ErrorKind::PermissionDenied,
        &["a-file", "not writable", "not a directory"],
    );
    assert_err(
        GitCode::builder(&repo)
            .releases(file.join("releases"), tmp.path().join("current"))
            .build(),
        ErrorKind::PermissionDenied,
        &["a-file/releases", "not writable", "cannot create"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_revisions_are_not_found_and_name_what_exists() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), tmp.path().join("current"))
        .build()
        .expect("adapter");
    assert_err(
        code.resolve("v9.9.9").await,
        ErrorKind::NotFound,
        &["v9.9.9", "main"],
    );
    assert_err(code.resolve("HEAD~5").await, ErrorKind::NotFound, &["HEAD~5"]);
    assert_err(code.resolve("  ").await, ErrorKind::InvalidInput, &["empty"]);
    assert_err(
        code.prepare(&RevisionId::new("1".repeat(40))).await,
        ErrorKind::NotFound,
        &["1111111111"],
    );
    assert_err(
        code.prepare(&RevisionId::new("zz")).await,
        ErrorKind::NotFound,
        &["zz"],
    );
    assert_err(
        code.current().await,
        ErrorKind::NotFound,
        &["no current release", "current"],
    );
    assert_err(
        code.preserve_current().await,
        ErrorKind::NotFound,
        &["no current release"],
    );
    let bogus = PreparedRevision {
        revision: RevisionId::new("1".repeat(40)),
        location: tmp.path().join("nowhere").display().to_string(),
        build_log_tail: vec![],
    };
    assert_err(
        code.activate(&bogus).await,
        ErrorKind::NotFound,
        &["not prepared", "nowhere"],
    );
    assert!(!tmp.path().join("current").exists(), "nothing switched");
    assert_err(
        code.revert(&[]).await,
        ErrorKind::InvalidInput,
        &["no commits to revert"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_reads_hashes_tags_branches_and_head_relative_to_what_runs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let c1 = commit_files(&repo, &[("app.txt", "v1\n")], "release one");
    let c2 = commit_files(&repo, &[("app.txt", "v2\n")], "release two");
    let git = Repository::open(&repo).expect("open");
    let sig = Signature::now("Tagger", "t@example.com").expect("sig");
    git.tag(
        "v1.0.0",
        &git.find_object(c1, None).expect("obj"),
        &sig,
        "annotated",
        false,
    )
    .expect("tag");
    git.branch("stable", &git.find_commit(c0).expect("c"), false)
        .expect("branch");
    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), tmp.path().join("current"))
        .build()
        .expect("adapter");
    assert_eq!(code.resolve("v1.0.0").await.expect("tag").id, rev(c1));
    assert_eq!(code.resolve("stable").await.expect("branch").id, rev(c0));
    assert_eq!(
        code.resolve(&c2.to_string()[..7]).await.expect("short").id,
        rev(c2)
    );
    // No release live yet: HEAD is the clone's HEAD.
    assert_eq!(code.resolve("HEAD~2").await.expect("HEAD~2").id, rev(c0));
    let p1 = code.prepare(&rev(c1)).await.expect("prepare");
    code.activate(&p1).await.expect("activate");
    assert_eq!(
        code.resolve("HEAD").await.expect("HEAD").id,
        rev(c1),
        "HEAD is what runs"
    );
    assert_eq!(
        code.resolve("HEAD~1").await.expect("HEAD~1").id,
        rev(c0),
        "as in the runbook"
    );

    let r = code.resolve("release-two-does-not-exist").await;
    assert_err(r, ErrorKind::NotFound, &["stable", "v1.0.0"]);
    let tree = git.find_commit(c2).expect("c").tree_id().to_string();
    assert_err(
        code.resolve(&tree).await,
        ErrorKind::InvalidInput,
        &["tree, not a commit"],
    );

    // A name that is a tag and a branch at different commits is ambiguous.
    git.tag_lightweight("stable", &git.find_object(c2, None).expect("obj"), false)
        .expect("tag");
    assert_err(
        code.resolve("stable").await,
        ErrorKind::InvalidInput,
        &["ambiguous", "tag stable", "branch stable"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_short_hash_lists_the_matching_commits() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let git = Repository::open(&repo).expect("open");
    let head = git.head().expect("head").peel_to_commit().expect("c");
    let tree = head.tree().expect("tree");
    let sig = Signature::now("Test Author", "test@example.com").expect("sig");
    let mut seen = std::collections::HashMap::new();
    let pair = (0..20_000)
        .find_map(|i| {
            let oid = git
                .commit(None, &sig, &sig, &format!("candidate {i}"), &tree, &[&head])
                .expect("commit");
            let prefix = oid.to_string()[..4].to_owned();
            seen.insert(prefix.clone(), oid).map(|other| (prefix, other, oid))
        })
        .expect("two commits share a 4-digit prefix");
    let (prefix, a, b) = pair;
    let code = GitCode::builder(&repo)
        .in_place(InPlaceOptions::default())
        .build()
        .expect("adapter");
    assert_err(
        code.resolve(&prefix).await,
        ErrorKind::InvalidInput,
        &[
            "ambiguous",
            &a.to_string()[..12],
            &b.to_string()[..12],
            "candidate",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_newest_first_with_author_time_and_subject() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    for i in 1..=12 {
        commit_files(
            &repo,
            &[("app.txt", &format!("v{i}\n"))],
            &format!("change {i}\n\nbody {i}"),
        );
    }
    let code = GitCode::builder(&repo)
        .in_place(InPlaceOptions::default())
        .build()
        .expect("adapter");
    let h = code.history(10).await.expect("history");
    assert_eq!(h.len(), 10);
    assert_eq!(h[0].subject, "change 12", "subject is the first line");
    assert_eq!(h[9].subject, "change 3");
    assert!(h.iter().all(|r| r.author == "Test Author" && r.short.len() >= 7));
    assert!(h[0].time >= h[9].time);
    assert!((chrono::Utc::now() - h[0].time).num_seconds().abs() < 60);
    assert_eq!(code.history(100).await.expect("all").len(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_revert_on_a_detached_head_needs_a_branch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let bad = commit_files(&repo, &[("app.txt", "bad\n")], "bad");
    let git = Repository::open(&repo).expect("open");
    git.set_head_detached(bad).expect("detach");
    let code = GitCode::builder(&repo)
        .in_place(InPlaceOptions::default())
        .build()
        .expect("adapter");
    assert_err(
        code.revert(&[rev(bad)]).await,
        ErrorKind::InvalidInput,
        &["detached HEAD", "branch"],
    );
    assert_err(
        GitCode::builder(&repo)
            .in_place(InPlaceOptions::default())
            .branch("nope")
            .build(),
        ErrorKind::InvalidInput,
        &["branch `nope` does not exist"],
    );
    let code = GitCode::builder(&repo)
        .in_place(InPlaceOptions::default())
        .branch("main")
        .build()
        .expect("adapter");
    let head = code.revert(&[rev(bad)]).await.expect("revert onto main");
    assert_eq!(code.history(1).await.expect("h")[0].id, head.id);
}
