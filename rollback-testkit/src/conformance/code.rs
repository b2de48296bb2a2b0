use super::expect_error;
use async_trait::async_trait;
use rollback_core::{CodeVersion, ErrorKind, PreparedRevision, RevisionId};

/// What the code suite needs besides the trait: make a commit on the current line, and
/// (optionally) what only the adapter's test can arrange.
#[async_trait]
pub trait CodeFixture: Send + Sync {
    /// Commits a change with this subject and returns the new revision (not activated).
    async fn commit(&self, subject: &str) -> RevisionId;

    /// Optional: gives the live code uncommitted changes (`true`: edit a tracked file of an
    /// in-place working tree, say) or takes them away again (`false`), for adapters whose
    /// `activate` refuses such changes. Returns whether it did anything; the default does
    /// nothing and returns `false`, which skips the dirty-tree part of the suite.
    async fn set_dirty(&self, dirty: bool) -> bool {
        let _ = dirty;
        false
    }

    /// Optional: commits (as [`commit`](Self::commit) does) a change whose build fails (the
    /// adapter's build command exits non-zero on it) and returns it. The default, `None`,
    /// skips the failed-build part of the suite.
    async fn commit_unbuildable(&self, subject: &str) -> Option<RevisionId> {
        let _ = subject;
        None
    }

    /// Optional: commits on the current line whose revert conflicts with the head (change a
    /// line, then change it again: reverting the first conflicts), newest first, to pass to
    /// `revert`. The default, `None`, skips the conflict part of the suite.
    async fn revert_conflict(&self) -> Option<Vec<RevisionId>> {
        None
    }
}

/// The [`CodeVersion`] contract. Checks:
/// - `resolve` of a full id and a short id; an unknown spec is `NotFound` and changes
///   nothing;
/// - `history` is newest first;
/// - `preserve_current` is the live revision;
/// - `activate` of a revision that was never prepared is refused and changes nothing;
/// - `prepare` leaves what runs alone and is safe to call again; `activate` switches what
///   runs, idempotently; the preserved release activates back without a build;
/// - `check_activate` passes what `activate` takes and the live revision, changing nothing;
///   with [`CodeFixture::set_dirty`] it refuses a revision over uncommitted changes with the
///   kind `activate` then refuses with, while the live revision passes and re-activates as
///   a no-op;
/// - `prepare` of an unknown revision is `NotFound`;
/// - `revert` adds a commit that becomes the head, on top of the old head, and the
///   reverted commit stays in history (nothing rewritten);
/// - with [`CodeFixture::revert_conflict`]: that revert is `Conflict` and leaves the head
///   and what runs as they were;
/// - with [`CodeFixture::commit_unbuildable`]: its `prepare` fails and changes nothing the
///   app uses.
///
/// Not checked: ambiguous short ids (they need colliding hashes), tags, branches and
/// `HEAD~N` as specs (the trait does not say what `HEAD` is: rollback-git reads it as what
/// runs, the fake as the head of the line), and that a conflict error names the paths (the
/// suite cannot know them).
pub async fn code_version(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    let c1 = fixture.commit("conformance: one").await;
    let c2 = fixture.commit("conformance: two").await;
    // Read after the commits: in an in-place layout, committing moves what runs.
    let live = code.current().await.expect("current");

    let r1 = code.resolve(c1.as_str()).await.expect("resolve a full id");
    assert_eq!(r1.id, c1);
    let short = &c1.as_str()[..10];
    assert_eq!(code.resolve(short).await.expect("resolve a short id").id, c1);
    expect_error(
        code.resolve("no-such-revision").await,
        ErrorKind::NotFound,
        "resolve(unknown)",
    );
    assert_eq!(
        code.current().await.expect("current").id,
        live.id,
        "resolve changes nothing"
    );

    let history = code.history(2).await.expect("history");
    assert_eq!(
        history.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![c2.clone(), c1.clone()],
        "history is newest first"
    );

    let preserved = code.preserve_current().await.expect("preserve_current");
    assert_eq!(
        preserved.revision, live.id,
        "preserve_current is the live revision"
    );

    let never = PreparedRevision {
        revision: c1.clone(),
        location: "/nonexistent/rollback-conformance/never-prepared".into(),
        build_log_tail: Vec::new(),
    };
    if let Ok(()) = code.activate(&never).await {
        panic!("activate of a revision that was never prepared must be refused, got Ok");
    }
    assert_eq!(
        code.current().await.expect("current").id,
        live.id,
        "a refused activate changes nothing"
    );

    let p1 = code.prepare(&c1).await.expect("prepare");
    assert_eq!(p1.revision, c1);
    assert_eq!(
        code.current().await.expect("current").id,
        live.id,
        "prepare must not change what runs"
    );
    let p1 = code.prepare(&c1).await.expect("prepare is safe to call again");
    assert_eq!(p1.revision, c1);
    assert_eq!(
        code.current().await.expect("current").id,
        live.id,
        "prepare must not change what runs"
    );
    code.activate(&p1).await.expect("activate");
    assert_eq!(
        code.current().await.expect("current").id,
        c1,
        "activate switches what runs"
    );
    code.activate(&p1).await.expect("activate is idempotent");
    assert_eq!(code.current().await.expect("current").id, c1);

    code.activate(&preserved)
        .await
        .expect("activate the preserved release");
    assert_eq!(
        code.current().await.expect("current").id,
        live.id,
        "the preserved release activates without a build"
    );

    // check_activate: what activate would refuse is found before the stop, changing nothing.
    code.check_activate(&c1)
        .await
        .expect("check_activate passes a revision that activate takes");
    code.check_activate(&live.id)
        .await
        .expect("check_activate passes the live revision");
    assert_eq!(
        code.current().await.expect("current").id,
        live.id,
        "check_activate changes nothing"
    );
    if fixture.set_dirty(true).await {
        let warned = code
            .check_activate(&c1)
            .await
            .expect_err("check_activate refuses a revision over uncommitted changes");
        let refused = code
            .activate(&p1)
            .await
            .expect_err("activate refuses the uncommitted changes check_activate found");
        assert_eq!(
            warned.kind(),
            refused.kind(),
            "check_activate refuses with activate's kind: check_activate said `{warned}`, activate said `{refused}`"
        );
        assert_eq!(
            code.current().await.expect("current").id,
            live.id,
            "a refused activate changes nothing"
        );
        code.check_activate(&live.id)
            .await
            .expect("the live revision passes check_activate even over uncommitted changes");
        code.activate(&preserved).await.expect(
            "activating the preserved release while it is live is a no-op, even over uncommitted changes",
        );
        assert_eq!(code.current().await.expect("current").id, live.id);
        assert!(
            fixture.set_dirty(false).await,
            "the fixture takes the uncommitted changes away again"
        );
    }

    expect_error(
        code.prepare(&RevisionId::new("0".repeat(40))).await,
        ErrorKind::NotFound,
        "prepare(unknown)",
    );

    let reverted = code.revert(std::slice::from_ref(&c2)).await.expect("revert");
    assert_ne!(reverted.id, c2, "revert makes a new commit");
    let history = code.history(3).await.expect("history");
    assert_eq!(
        history.first().map(|r| &r.id),
        Some(&reverted.id),
        "the revert commit is the new head"
    );
    assert_eq!(
        history.get(1).map(|r| &r.id),
        Some(&c2),
        "revert never rewrites history: the revert commit sits on top of the old head"
    );
    assert!(
        history.iter().any(|r| r.id == c1),
        "revert never rewrites history: the older commits stay"
    );

    if let Some(commits) = fixture.revert_conflict().await {
        let head = code.history(1).await.expect("history");
        let running = code.current().await.expect("current");
        expect_error(
            code.revert(&commits).await,
            ErrorKind::Conflict,
            "revert of commits that conflict with the head",
        );
        assert_eq!(
            code.history(1).await.expect("history"),
            head,
            "a conflicting revert leaves the repository as it was"
        );
        assert_eq!(
            code.current().await.expect("current").id,
            running.id,
            "a conflicting revert changes nothing that runs"
        );
    }

    if let Some(bad) = fixture.commit_unbuildable("conformance: broken build").await {
        let running = code.current().await.expect("current");
        if let Ok(p) = code.prepare(&bad).await {
            panic!("prepare of a revision whose build fails must fail, got Ok({p:?})");
        }
        assert_eq!(
            code.current().await.expect("current").id,
            running.id,
            "a failed build changes nothing the app uses"
        );
        code.check_activate(&running.id)
            .await
            .expect("after a failed build the live revision still passes check_activate");
    }
}
