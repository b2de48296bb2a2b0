//! What an operator's tool relies on (issue 27): a stored rollback's report reads the same
//! every time (its end is when it ended, not when it is read), and a rollback is refused
//! while a checkpoint runs, as a checkpoint is while a rollback runs.

use rollback_core::{RollbackError, RollbackTarget, Scope};
use rollback_testkit::{Fault, Method, Rig, When};
use std::time::Duration;

#[tokio::test]
async fn a_report_read_twice_is_the_same() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap();
    let first = o.report_of(&report.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = o.report_of(&report.id).await.unwrap();
    assert_eq!(first.to_json(), second.to_json());
    assert_eq!(first.to_markdown(), second.to_markdown());
    assert!(
        (first.finished_at - report.finished_at).num_milliseconds().abs() < 50,
        "the stored end, not the time of reading: {} vs {}",
        first.finished_at,
        report.finished_at
    );
}

#[tokio::test]
async fn a_rollback_is_refused_while_a_checkpoint_runs() {
    let rig = Rig::new();
    let o = std::sync::Arc::new(rig.orchestrator().build().unwrap());
    o.checkpoint("v1").await.unwrap();
    rig.world.inject(
        Method::DbSnapshot,
        When::Nth(1),
        Fault::Delay(Duration::from_secs(3)),
    );
    let taking = {
        let o = o.clone();
        tokio::spawn(async move { o.checkpoint("slow").await })
    };
    // Until the checkpoint holds the lock (it then waits in its snapshot for 3 s).
    let mut held = false;
    for _ in 0..2500 {
        if o.lock_holder().await.unwrap().is_some() {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(held, "the checkpoint took the lock");
    let refused = o
        .rollback(RollbackTarget::LastGood, "during a checkpoint", Scope::ALL)
        .await
        .unwrap_err();
    let RollbackError::Locked { holder } = &refused else {
        panic!("refused as locked, got {refused}");
    };
    assert!(holder.rollback.as_str().starts_with("checkpoint "), "{holder}");
    assert_eq!(rig.world.count(Method::ProcessStop), 0, "nothing stopped");
    taking.await.unwrap().expect("the checkpoint finishes");
    assert!(o.lock_holder().await.unwrap().is_none(), "and frees the lock");
}

/// Issue 31: a second rollback to the same checkpoint would set aside every write users made
/// since the first one switched the checkpoint's copy in. Refused in pre-flight (nothing
/// stopped, nothing set aside) unless forced.
#[tokio::test]
async fn a_second_rollback_to_the_same_checkpoint_is_refused_unless_forced() {
    let rig = Rig::new();
    let o = rig.orchestrator().build().unwrap();
    o.checkpoint("v1").await.unwrap();
    rig.deploy_bad_release(Scope::ALL);
    o.rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap();
    // Users write into the live database (the checkpoint's copy) after the rollback.
    rig.world.lock().db.live.as_mut().unwrap().marker = "v1 data + users' new writes".into();
    let preserved = rig.world.count(Method::DbPreserveCurrent);
    let refused = o
        .rollback(RollbackTarget::LastGood, "again", Scope::ALL)
        .await
        .unwrap_err();
    let RollbackError::Preflight { failures } = &refused else {
        panic!("refused in pre-flight, got {refused}");
    };
    assert!(
        failures
            .iter()
            .any(|f| f.error.to_string().contains("already is snapshot")
                && f.error.to_string().contains("set those writes aside")),
        "{refused}"
    );
    assert_eq!(
        rig.world.count(Method::DbPreserveCurrent),
        preserved,
        "nothing set aside"
    );
    assert_eq!(
        rig.world.end_state().db_marker.as_deref(),
        Some("v1 data + users' new writes")
    );
    // Forced, it runs, and the writes are kept aside.
    let forced =
        rollback_core::RollbackRequest::new(RollbackTarget::LastGood, "again, on purpose", Scope::ALL)
            .with_force(true);
    o.rollback_with(forced).await.expect("forced");
    assert!(
        rig.world
            .lock()
            .db
            .preserved
            .values()
            .any(|c| c.marker == "v1 data + users' new writes"),
        "the writes made since are kept aside"
    );
}
