//! The [`CodeVersion`] suite: one check per promise, [`CHECKS`] in the order
//! [`code_version`] runs them.
//!
//! Every check makes its own commits through the fixture and reads what runs after them
//! (in an in-place layout, committing moves what runs), so it relies on no other check. The
//! checks that activate another revision activate the preserved one again before they
//! return (so a broken `activate` of the preserved release fails them too).
//!
//! Not checked: ambiguous short ids (they need colliding hashes), tags, branches and
//! `HEAD~N` as specs (the trait does not say what `HEAD` is: rollback-git reads it as what
//! runs, the fake as the head of the line), and that a conflict error names the paths (the
//! suite cannot know them).

use super::{check, expect_error, Check, CheckFuture};
use async_trait::async_trait;
use rollback_core::{CodeVersion, ErrorKind, PreparedRevision, Revision, RevisionId};

/// What the code suite needs besides the trait: make a commit on the current line, and
/// (optionally) what only the adapter's test can arrange.
#[async_trait]
pub trait CodeFixture: Send + Sync {
    /// Commits a change with this subject and returns the new revision (not activated).
    async fn commit(&self, subject: &str) -> RevisionId;

    /// Optional: gives the live code uncommitted changes (`true`: edit a tracked file of an
    /// in-place working tree, say) or takes them away again (`false`), for adapters whose
    /// `activate` refuses such changes. Returns whether it did anything; the default does
    /// nothing and returns `false`, which skips the dirty-tree part of
    /// [`check_activate_agrees_with_activate`].
    async fn set_dirty(&self, dirty: bool) -> bool {
        let _ = dirty;
        false
    }

    /// Optional: commits (as [`commit`](Self::commit) does) a change whose build fails (the
    /// adapter's build command exits non-zero on it) and returns it. The default, `None`,
    /// skips [`failed_build_changes_nothing`].
    async fn commit_unbuildable(&self, subject: &str) -> Option<RevisionId> {
        let _ = subject;
        None
    }

    /// Optional: commits on the current line whose revert conflicts with the head (change a
    /// line, then change it again: reverting the first conflicts), newest first, to pass to
    /// `revert`. The default, `None`, skips [`conflicting_revert_changes_nothing`].
    async fn revert_conflict(&self) -> Option<Vec<RevisionId>> {
        None
    }
}

/// A check of the code suite: `(check.run)(&adapter, &fixture).await`.
pub type CodeCheck = Check<for<'a> fn(&'a dyn CodeVersion, &'a dyn CodeFixture) -> CheckFuture<'a>>;

/// The code suite's checks, in the order [`code_version`] runs them.
pub const CHECKS: &[CodeCheck] = &[
    check!(resolve_finds_full_and_short_ids),
    check!(unknown_revisions_are_not_found),
    check!(history_is_newest_first),
    check!(preserve_current_is_the_live_revision),
    check!(activate_refuses_an_unprepared_revision),
    check!(prepare_leaves_what_runs_alone),
    check!(activate_switches_what_runs),
    check!(check_activate_agrees_with_activate),
    check!(revert_adds_a_commit_on_top),
    check!(conflicting_revert_changes_nothing),
    check!(failed_build_changes_nothing),
];

/// The whole [`CodeVersion`] contract: every check of [`CHECKS`], in order, on one adapter
/// and fixture. Stops at the first broken promise; run the checks one by one
/// (`conformance_tests!(code_version, ...)`) to see them all.
pub async fn code_version(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    for check in CHECKS {
        (check.run)(code, fixture).await;
    }
}

/// `resolve` of a full id and of a short one (its first 10 characters) finds the revision,
/// and changes nothing.
pub async fn resolve_finds_full_and_short_ids(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    let c1 = fixture.commit("conformance: resolve").await;
    let live = current(code).await;
    let r1 = code.resolve(c1.as_str()).await.expect("resolve a full id");
    assert_eq!(r1.id, c1, "resolve of a full id");
    let short = &c1.as_str()[..10];
    assert_eq!(
        code.resolve(short).await.expect("resolve a short id").id,
        c1,
        "resolve of a short id"
    );
    assert_eq!(current(code).await.id, live.id, "resolve changes nothing");
}

/// An unknown spec is `NotFound` from `resolve`, an unknown revision `NotFound` from
/// `prepare`; neither changes what runs.
pub async fn unknown_revisions_are_not_found(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    fixture.commit("conformance: unknown").await;
    let live = current(code).await;
    expect_error(
        code.resolve("no-such-revision").await,
        ErrorKind::NotFound,
        "resolve(unknown)",
    );
    expect_error(
        code.prepare(&RevisionId::new("0".repeat(40))).await,
        ErrorKind::NotFound,
        "prepare(unknown)",
    );
    assert_eq!(
        current(code).await.id,
        live.id,
        "an unknown revision changes nothing"
    );
}

/// `history` is newest first: of two commits, the second comes first.
pub async fn history_is_newest_first(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    let c1 = fixture.commit("conformance: history one").await;
    let c2 = fixture.commit("conformance: history two").await;
    let history = code.history(2).await.expect("history");
    assert_eq!(
        history.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![c2, c1],
        "history is newest first"
    );
}

/// `preserve_current` is the live revision, and changes nothing.
pub async fn preserve_current_is_the_live_revision(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    fixture.commit("conformance: preserve").await;
    let live = current(code).await;
    let preserved = code.preserve_current().await.expect("preserve_current");
    assert_eq!(
        preserved.revision, live.id,
        "preserve_current is the live revision"
    );
    assert_eq!(
        current(code).await.id,
        live.id,
        "preserve_current changes nothing"
    );
}

/// `activate` of a revision that was never prepared is refused and changes nothing.
pub async fn activate_refuses_an_unprepared_revision(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    let c1 = fixture.commit("conformance: never prepared").await;
    fixture.commit("conformance: never prepared, head").await;
    let live = current(code).await;
    let never = PreparedRevision {
        revision: c1,
        location: "/nonexistent/rollback-conformance/never-prepared".into(),
        build_log_tail: Vec::new(),
    };
    if let Ok(()) = code.activate(&never).await {
        panic!("activate of a revision that was never prepared must be refused, got Ok");
    }
    assert_eq!(
        current(code).await.id,
        live.id,
        "a refused activate changes nothing"
    );
}

/// `prepare` leaves what runs alone and is safe to call again.
pub async fn prepare_leaves_what_runs_alone(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    let c1 = fixture.commit("conformance: prepare one").await;
    fixture.commit("conformance: prepare two").await;
    let live = current(code).await;
    for time in ["", " (called again)"] {
        let p1 = code
            .prepare(&c1)
            .await
            .unwrap_or_else(|e| panic!("prepare{time}: {e}"));
        assert_eq!(p1.revision, c1, "prepare{time} prepares the revision asked for");
        assert_eq!(
            current(code).await.id,
            live.id,
            "prepare must not change what runs{time}"
        );
    }
}

/// `activate` of a prepared revision switches what runs, idempotently; the preserved
/// release activates back without a build.
pub async fn activate_switches_what_runs(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    let c1 = fixture.commit("conformance: activate one").await;
    fixture.commit("conformance: activate two").await;
    let live = current(code).await;
    let preserved = code.preserve_current().await.expect("preserve_current");
    let p1 = code.prepare(&c1).await.expect("prepare");
    code.activate(&p1).await.expect("activate");
    assert_eq!(current(code).await.id, c1, "activate switches what runs");
    code.activate(&p1).await.expect("activate is idempotent");
    assert_eq!(current(code).await.id, c1, "activate is idempotent");
    code.activate(&preserved)
        .await
        .expect("activate the preserved release");
    assert_eq!(
        current(code).await.id,
        live.id,
        "the preserved release activates without a build"
    );
}

/// `check_activate` passes what `activate` takes and the live revision, changing nothing;
/// with [`CodeFixture::set_dirty`] it refuses a revision over uncommitted changes with the
/// kind `activate` then refuses with, while the live revision passes and re-activates as a
/// no-op.
pub async fn check_activate_agrees_with_activate(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    let c1 = fixture.commit("conformance: check_activate one").await;
    fixture.commit("conformance: check_activate two").await;
    let live = current(code).await;
    let preserved = code.preserve_current().await.expect("preserve_current");
    let p1 = code.prepare(&c1).await.expect("prepare");
    code.check_activate(&c1)
        .await
        .expect("check_activate passes a revision that activate takes");
    code.check_activate(&live.id)
        .await
        .expect("check_activate passes the live revision");
    assert_eq!(current(code).await.id, live.id, "check_activate changes nothing");
    if !fixture.set_dirty(true).await {
        return;
    }
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
        current(code).await.id,
        live.id,
        "a refused activate changes nothing"
    );
    code.check_activate(&live.id)
        .await
        .expect("the live revision passes check_activate even over uncommitted changes");
    code.activate(&preserved).await.expect(
        "activating the preserved release while it is live is a no-op, even over uncommitted changes",
    );
    assert_eq!(current(code).await.id, live.id);
    assert!(
        fixture.set_dirty(false).await,
        "the fixture takes the uncommitted changes away again"
    );
}

/// `revert` adds a commit that becomes the head, on top of the old head, and the reverted
/// commit stays in history (nothing rewritten).
pub async fn revert_adds_a_commit_on_top(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    let c1 = fixture.commit("conformance: revert one").await;
    let c2 = fixture.commit("conformance: revert two").await;
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
}

/// With [`CodeFixture::revert_conflict`]: that revert is `Conflict` and leaves the head and
/// what runs as they were. Without the hook it checks nothing.
pub async fn conflicting_revert_changes_nothing(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    let Some(commits) = fixture.revert_conflict().await else {
        return;
    };
    let head = code.history(1).await.expect("history");
    let running = current(code).await;
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
        current(code).await.id,
        running.id,
        "a conflicting revert changes nothing that runs"
    );
}

/// With [`CodeFixture::commit_unbuildable`]: its `prepare` fails and changes nothing the
/// app uses (the live revision still passes `check_activate`). Without the hook it checks
/// nothing.
pub async fn failed_build_changes_nothing(code: &dyn CodeVersion, fixture: &dyn CodeFixture) {
    let Some(bad) = fixture.commit_unbuildable("conformance: broken build").await else {
        return;
    };
    let running = current(code).await;
    if let Ok(p) = code.prepare(&bad).await {
        panic!("prepare of a revision whose build fails must fail, got Ok({p:?})");
    }
    assert_eq!(
        current(code).await.id,
        running.id,
        "a failed build changes nothing the app uses"
    );
    code.check_activate(&running.id)
        .await
        .expect("after a failed build the live revision still passes check_activate");
}

/// What runs now.
async fn current(code: &dyn CodeVersion) -> Revision {
    code.current().await.expect("current")
}
