//! No dead ends on a fleet (issue 25): one host dies (its agent with it) in the middle of a
//! rollback, at the activate, config and start steps, and in a code-only rolling rollback.
//! The reachable hosts end serving one version consistent with the shared database, which is
//! open; the statement names the dead host; a new rollback is refused while this one is
//! halted; with the host back, `resume` ends every host on one version with nothing done by
//! hand.

mod common;

use common::Rig;
use rollback_core::{Outcome, RollbackError, RollbackTarget, Scope, Step};
use rollback_testkit::Method;

/// (the call web-3 dies at, the step that meets it, where the fleet should end)
fn deaths() -> Vec<(Method, Step, &'static str)> {
    vec![
        // Before the start the target is not serving anywhere: back to v2, on the hosts
        // that can be reached.
        (Method::CodeActivate, Step::ActivateCode, "v2"),
        (Method::ConfigRestore, Step::RestoreConfig, "v2"),
        // At the start web-1 and web-2 already serve v1 on the v1 database: they keep
        // serving it, never stopped by the recovery of a host that doesn't answer.
        (Method::ProcessStart, Step::Start, "v1"),
    ]
}

#[tokio::test]
async fn a_host_dying_mid_rollback_leaves_the_others_serving_and_resume_ends_all_on_one_version() {
    for (method, step, end) in deaths() {
        let rig = Rig::new(3).await;
        let o = rig.orchestrator().await;
        o.checkpoint("before v2").await.unwrap();
        rig.deploy_v2();
        let dead = &rig.hosts[2];
        dead.dies_at(method);
        let err = o
            .rollback(RollbackTarget::LastGood, "v2 broken", Scope::ALL)
            .await
            .unwrap_err();
        let report = err.report().expect("a report");
        let Outcome::Halted {
            step: at, statement, ..
        } = &report.outcome
        else {
            panic!("{method:?}: expected Halted, got {}", report.outcome);
        };
        assert_eq!(*at, step, "{method:?}");
        // The report says host by host how the failed step came out.
        let record = report
            .steps
            .iter()
            .rev()
            .find(|r| r.step == step)
            .expect("the failed step's record");
        assert!(
            record
                .checklist
                .iter()
                .any(|i| i.checked && i.text == "web-1: done")
                && record
                    .checklist
                    .iter()
                    .any(|i| !i.checked && i.text.starts_with("web-3: unavailable")),
            "{method:?}: {:?}",
            record.checklist
        );

        // The reachable hosts serve one version, consistent with the open database.
        let (tree, data) = (format!("tree-{end}"), format!("{end} data"));
        for h in &rig.hosts[..2] {
            assert!(h.online(), "{method:?}: {} serves", h.name);
            assert_eq!(h.tree().as_deref(), Some(tree.as_str()), "{method:?}: {}", h.name);
        }
        assert_eq!(
            rig.db_world.end_state().db_marker.as_deref(),
            Some(data.as_str()),
            "{method:?}"
        );
        assert!(
            !rig.db_world.lock().db.sealed,
            "{method:?}: the live database is open"
        );
        if end == "v1" {
            assert_eq!(
                rig.count(Method::ProcessStop)[..2],
                [1, 1],
                "{method:?}: the hosts that answer were stopped once, by the stop step, never by the recovery"
            );
        }
        // The statement names the dead host, what is known of it, and the way out.
        assert!(
            statement.contains("web-3") && statement.contains("`rollback resume`"),
            "{method:?}: {statement}"
        );
        assert!(!statement.contains("()"), "{method:?}: {statement}");
        assert!(
            statement.contains("unknown"),
            "{method:?}: what web-3 runs is not claimed: {statement}"
        );
        assert!(
            !statement.contains("web-1") || !statement.contains("web-1 was left alone"),
            "{method:?}: {statement}"
        );

        // Halted leads somewhere: a new rollback is refused, naming resume.
        let refused = o
            .rollback(RollbackTarget::LastGood, "again", Scope::ALL)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, RollbackError::Unfinished { halted: true, .. }),
            "{method:?}: {refused}"
        );

        // The host is back: a new process resumes and every host ends on one version.
        dead.comes_back();
        let o = rig.orchestrator().await;
        let outcome = match o.resume().await {
            Ok(report) => report.outcome,
            Err(e) => e
                .report()
                .map(|r| r.outcome.clone())
                .unwrap_or_else(|| panic!("{method:?}: {e}")),
        };
        if end == "v1" {
            assert_eq!(outcome, Outcome::Succeeded, "{method:?}");
        } else {
            assert!(
                matches!(outcome, Outcome::RestoredPreRollbackState { .. }),
                "{method:?}: {outcome}"
            );
        }
        assert_eq!(rig.trees(), vec![Some(tree.clone()); 3], "{method:?}");
        assert!(rig.all_online(), "{method:?}: every host serves");
        assert_eq!(
            rig.db_world.end_state().db_marker.as_deref(),
            Some(data.as_str()),
            "{method:?}"
        );
        assert!(!rig.db_world.lock().db.sealed, "{method:?}");
        assert_eq!(
            rig.db_world.count(Method::DbRestore),
            1,
            "{method:?}: switched once"
        );
        assert!(
            matches!(o.resume().await, Err(RollbackError::NothingToResume)),
            "{method:?}"
        );
    }
}

/// A code-only rollback (rolling: the database is not in scope) during which host
/// `host` dies at its first call of `method`: the rig and the halt statement.
async fn rolling_rollback_halted(host: usize, method: Method) -> (Rig, String) {
    let rig = Rig::new(3).await;
    let o = rig.orchestrator().await;
    let cp = o.checkpoint("before v2").await.unwrap();
    rig.deploy_v2();
    rig.hosts[host].dies_at(method);
    let err = o
        .rollback(
            RollbackTarget::Checkpoint(cp.id.clone()),
            "v2 broken",
            Scope::CODE,
        )
        .await
        .unwrap_err();
    let report = err.report().expect("a report");
    let Outcome::Halted { statement, .. } = &report.outcome else {
        panic!("expected Halted, got {}", report.outcome);
    };
    (rig, statement.clone())
}

#[tokio::test]
async fn a_host_dying_in_a_rolling_code_rollback_is_passed_over_and_resume_rolls_it() {
    // web-2 dies as the roll reaches it (it restarts: the fake's manager has no graceful
    // reload, and every host has a probe).
    let (rig, statement) = rolling_rollback_halted(1, Method::ProcessRestart).await;
    // web-1 and web-3 were rolled onto v1 and serve it; nobody was stopped.
    for i in [0, 2] {
        let h = &rig.hosts[i];
        assert!(h.online(), "{} serves", h.name);
        assert_eq!(h.tree().as_deref(), Some("tree-v1"), "{}", h.name);
    }
    assert_eq!(rig.count(Method::ProcessStop), [0, 0, 0], "no host was stopped");
    assert!(
        statement.contains("web-1, web-3") && statement.contains("web-2 could not be reached"),
        "{statement}"
    );
    assert!(statement.contains("`rollback resume`"), "{statement}");

    rig.hosts[1].comes_back();
    let o = rig.orchestrator().await;
    let report = o.resume().await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(rig.trees(), vec![Some("tree-v1".to_string()); 3]);
    assert!(rig.all_online());
    assert_eq!(rig.count(Method::ProcessStop), [0, 0, 0], "still nobody stopped");
}

#[tokio::test]
async fn a_host_dying_at_the_switch_of_a_rolling_code_rollback_is_left_out_and_the_others_put_back() {
    let (rig, statement) = rolling_rollback_halted(2, Method::CodeActivate).await;
    assert!(
        statement.contains("web-3 was left alone") && statement.contains("on every host but web-3"),
        "{statement}"
    );
    assert!(
        !statement.contains("still run what they ran before"),
        "{statement}"
    );
    // The hosts that answer point at v2 again and were restarted onto it (one at a time).
    for i in [0, 1] {
        assert_eq!(
            rig.hosts[i].tree().as_deref(),
            Some("tree-v2"),
            "{}",
            rig.hosts[i].name
        );
        assert!(rig.hosts[i].online());
    }
    assert_eq!(rig.count(Method::ProcessStop), [0, 0, 0], "no host was stopped");

    rig.hosts[2].comes_back();
    let err = rig.orchestrator().await.resume().await.unwrap_err();
    assert!(
        matches!(
            err.report().unwrap().outcome,
            Outcome::RestoredPreRollbackState { .. }
        ),
        "{err}"
    );
    assert_eq!(rig.trees(), vec![Some("tree-v2".to_string()); 3]);
    assert!(rig.all_online());
}
