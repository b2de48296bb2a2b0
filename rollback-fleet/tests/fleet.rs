//! A fleet of three hosts, each an agent serving its own fakes over the protocol, and one
//! shared database: one orchestrator rolls them all back. Pre-flight covers every host;
//! the database is switched once; a host failing half way puts every host back; a crash
//! is finished by `resume`; with the database out of scope the hosts roll one at a time,
//! never all stopped.

mod common;

use common::Rig;
use rollback_core::{ErrorKind, Outcome, RollbackError, RollbackTarget, Scope, Step};
use rollback_testkit::{run_until_crash, Fault, Method, When};

#[tokio::test]
async fn a_full_rollback_switches_the_shared_database_once_and_every_host() {
    let rig = Rig::new(3).await;
    let o = rig.orchestrator().await;
    let cp = o.checkpoint("before v2").await.unwrap();
    assert!(cp.good, "every host healthy");
    rig.deploy_v2();
    let report = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(
        rig.db_world.count(Method::DbRestore),
        1,
        "the shared database is switched once"
    );
    assert_eq!(rig.db_world.end_state().db_marker.as_deref(), Some("v1 data"));
    assert_eq!(rig.trees(), vec![Some("tree-v1".to_string()); 3]);
    assert_eq!(
        rig.count(Method::ProcessStop),
        [1, 1, 1],
        "every host stopped once"
    );
    assert!(rig.all_online());
}

#[tokio::test]
async fn pre_flight_covers_every_host_before_anything_stops() {
    let rig = Rig::new(3).await;
    let o = rig.orchestrator().await;
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_v2();
    // web-3 cannot switch: its working tree is dirty.
    rig.hosts[2].world.lock().code.dirty = Some("src/hotfix.js".into());
    let err = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap_err();
    let RollbackError::Preflight { failures } = &err else {
        panic!("refused in pre-flight, got {err}")
    };
    assert!(
        failures.iter().any(|f| f.error.to_string().contains("web-3")),
        "{err}"
    );
    assert_eq!(
        rig.count(Method::ProcessStop),
        [0, 0, 0],
        "nothing stopped anywhere"
    );
    assert_eq!(rig.db_world.count(Method::DbRestore), 0);
}

#[tokio::test]
async fn hosts_that_disagree_on_the_live_revision_are_named() {
    let rig = Rig::new(2).await;
    let o = rig.orchestrator().await;
    let v2 = rig.hosts[1].world.lock().code.commits[1].revision.id.clone();
    rig.hosts[1].world.lock().code.active = Some(v2);
    let err = o.checkpoint("drifted").await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("disagree") && text.contains("web-2"), "{text}");
}

#[tokio::test]
async fn a_host_failing_half_way_puts_every_host_back() {
    let rig = Rig::new(3).await;
    let o = rig.orchestrator().await;
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_v2();
    rig.hosts[1]
        .world
        .inject(Method::CodeActivate, When::Nth(1), Fault::Fail(ErrorKind::Failed));
    let err = o
        .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
        .await
        .unwrap_err();
    let report = err.report().expect("a report");
    assert!(
        matches!(
            report.outcome,
            Outcome::RestoredPreRollbackState {
                step: Step::ActivateCode,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("web-2"),
        "the failing host is named: {err}"
    );
    assert_eq!(
        rig.trees(),
        vec![Some("tree-v2".to_string()); 3],
        "every host runs v2 again"
    );
    assert_eq!(rig.db_world.end_state().db_marker.as_deref(), Some("v2 data"));
    assert!(rig.all_online());
}

#[tokio::test]
async fn a_crash_half_way_through_the_hosts_is_finished_by_resume() {
    let rig = Rig::new(3).await;
    let o = rig.orchestrator().await;
    o.checkpoint("before v2").await.unwrap();
    rig.deploy_v2();
    // The orchestrator's process dies right after web-1 switched its code.
    rig.hosts[0]
        .world
        .inject(Method::CodeActivate, When::Nth(1), Fault::CrashAfter);
    let crashed = run_until_crash(
        &rig.hosts[0].world,
        o.rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL),
    )
    .await;
    assert!(crashed.is_none(), "crashed");
    rig.hosts[0].world.clear_faults();
    let o = rig.orchestrator().await; // a new process
    let report = o.resume().await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(rig.trees(), vec![Some("tree-v1".to_string()); 3]);
    assert_eq!(
        rig.db_world.count(Method::DbRestore),
        1,
        "the database was not switched twice"
    );
    assert!(rig.all_online());
}

#[tokio::test]
async fn without_the_database_the_hosts_roll_one_at_a_time_and_never_all_stop() {
    let rig = Rig::new(3).await;
    let o = rig.orchestrator().await;
    let cp = o.checkpoint("before v2").await.unwrap();
    rig.deploy_v2();
    let report = o
        .rollback(
            RollbackTarget::Checkpoint(cp.id.clone()),
            "v2 broken",
            Scope::CODE,
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let stop = report.steps.iter().find(|s| s.step == Step::Stop).unwrap();
    assert!(
        matches!(stop.outcome, rollback_core::StepOutcome::Skipped(_)),
        "{stop:?}"
    );
    assert_eq!(
        rig.count(Method::ProcessStop),
        [0, 0, 0],
        "no host was stopped by a stop step"
    );
    assert_eq!(
        rig.count(Method::ProcessRestart),
        [1, 1, 1],
        "each host restarted once, in turn"
    );
    assert_eq!(rig.trees(), vec![Some("tree-v1".to_string()); 3]);
}
