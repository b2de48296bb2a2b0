use super::expect_error;
use async_trait::async_trait;
use rollback_core::{CodeVersion, ErrorKind, RevisionId};

/// What the code suite needs besides the trait: make a commit on the current line.
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
}

/// The [`CodeVersion`] contract: resolve by full and short id, typed errors for unknown
/// specs, history newest first, prepare + activate switch what runs (idempotently),
/// preserve_current gives the live release back, check_activate passes what activate takes
/// and (with [`CodeFixture::set_dirty`]) refuses a dirty tree before activate would, with the
/// same kind, while the live revision passes and re-activates as a no-op; revert adds
/// commits without rewriting.
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

    let p1 = code.prepare(&c1).await.expect("prepare");
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
    assert!(
        history.iter().any(|r| r.id == c2),
        "revert never rewrites history: the reverted commit stays"
    );
}
