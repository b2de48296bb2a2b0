//! The shared CodeVersion conformance suite, against real repositories, in both layouts.

mod common;

use common::{init_repo, rev, Fixture};
use rollback_core::CodeVersion;
use rollback_git::{GitCode, InPlaceOptions};
use rollback_testkit::conformance_tests;

conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    code_version as releases_layout,
    |check| {
        let tmp = tempfile::tempdir().expect("tmp");
        let repo = tmp.path().join("repo");
        let c0 = init_repo(&repo);
        let code = GitCode::builder(&repo)
            .releases(tmp.path().join("releases"), tmp.path().join("current"))
            .build_command(["cp", "app.txt", "built.txt"])
            .build()
            .expect("adapter");
        // A first release must be live for `current` to mean anything.
        let p0 = code.prepare(&rev(c0)).await.expect("prepare c0");
        code.activate(&p0).await.expect("activate c0");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("current/built.txt")).expect("built file"),
            "v0\n"
        );
        check(
            &code,
            &Fixture {
                repo,
                live_tree: false,
            },
        )
        .await;
    }
);

conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    code_version as in_place_layout,
    |check| {
        let tmp = tempfile::tempdir().expect("tmp");
        let repo = tmp.path().join("repo");
        init_repo(&repo);
        let code = GitCode::builder(&repo)
            .in_place(InPlaceOptions::default())
            .build_command(["cp", "app.txt", "built.txt"])
            .build()
            .expect("adapter");
        // With a dirty-tree hook: check_activate must refuse what activate refuses.
        check(
            &code,
            &Fixture {
                repo,
                live_tree: true,
            },
        )
        .await;
    }
);
