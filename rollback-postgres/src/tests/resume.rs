//! Switch steps interrupted half way (a crash between a rename and the state file saying
//! so, between sealing and recording the seal): the next call finishes them, never
//! redoes them.

use super::setup;
use crate::METHOD_RENAME;
use rollback_core::{DatabaseSnapshot, ErrorKind, IntegrityChecks};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_steps_resume_after_a_crash_and_refuse_mismatched_staging() {
    let Some(env) = setup("rollback-postgres resume", "app") else {
        return;
    };
    env.sql("app", "CREATE TABLE t AS SELECT 1 AS v").await;
    let a = env.db.snapshot("a").await.unwrap();
    let b = env.db.snapshot("b").await.unwrap();
    let prepared_a = env.db.prepare_restore(&a.id).await.unwrap();
    let wrong = rollback_core::PreparedRestore {
        snapshot: b.id.clone(),
        ..prepared_a.clone()
    };
    let e = env.db.restore(&wrong).await.expect_err("staging holds a, not b");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");

    // A crash right after the rename, before the state file said so.
    let preserved = env.db.preserve_current("crash").await.unwrap();
    let root = env.db.snapshot_root().to_path_buf();
    let mut state = crate::state::State::load(&root).await.unwrap();
    state.preserved.get_mut("crash").unwrap().done = false;
    state.store(&root).await.unwrap();
    let resumed = env.db.preserve_current("crash").await.expect("resume");
    assert_eq!(resumed.location, preserved.location);
    assert!(
        resumed.notes.iter().any(|n| n.contains("after an interruption")),
        "{:?}",
        resumed.notes
    );

    env.db.restore(&prepared_a).await.expect("restore a");
    // A crash after the switch: restore again is a no-op.
    env.db.restore(&prepared_a).await.expect("restore a again");
    let e = env.db.preserve_current("other-label").await;
    assert!(e.is_ok(), "the restored database can itself be preserved: {e:?}");
    let e = env
        .db
        .restore(&prepared_a)
        .await
        .expect_err("live is gone and staging was used");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("prepare_restore again"), "{e}");
    env.db
        .reinstate(&resumed)
        .await
        .expect("reinstate the first preserved database");
    env.db.open().await.expect("open");
    assert_eq!(env.count("app", "t").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_interrupted_before_connections_were_allowed_are_finished_by_the_next_call() {
    use crate::state::{LiveRecord, PreservedRecord, State};
    let Some(env) = setup("rollback-postgres interrupted renames", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('snapshot'); ALTER DATABASE app SET work_mem = '8MB';",
    )
    .await;
    let root = env.db.snapshot_root().to_path_buf();
    let snap = env.db.snapshot("s").await.unwrap();
    let pg = |sql: &str| {
        env.pg
            .psql("postgres", sql)
            .map(drop)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };

    // preserve_current, interrupted after its rename (before allowing connections again).
    let (live_oid, _) = env.db_info("app").await.unwrap();
    let kept = "app__pre_rollback_20260101T000000";
    let mut state = State::load(&root).await.unwrap();
    state.preserved.insert(
        "p1".into(),
        PreservedRecord {
            preserved: rollback_core::PreservedDatabase {
                label: "p1".into(),
                location: kept.into(),
                method: METHOD_RENAME.into(),
                notes: vec![],
            },
            renamed_to: Some(kept.into()),
            oid: Some(live_oid),
            done: false,
        },
    );
    state.store(&root).await.unwrap();
    pg("ALTER DATABASE app ALLOW_CONNECTIONS false");
    pg(&format!("ALTER DATABASE app RENAME TO \"{kept}\""));
    let preserved = env.db.preserve_current("p1").await.expect("finish preserve");
    assert_eq!(preserved.location, kept);
    assert_eq!(
        env.db_info(kept).await,
        Some((live_oid, true)),
        "the kept database accepts connections"
    );

    // restore, interrupted inside its switch: after closing the staged database, before
    // the rename.
    let prepared = env.db.prepare_restore(&snap.id).await.unwrap();
    let (staging_oid, _) = env.db_info("app__rollback_staging").await.unwrap();
    pg("ALTER DATABASE app__rollback_staging ALLOW_CONNECTIONS false");
    env.db
        .restore(&prepared)
        .await
        .expect("restore after a crash before the rename");
    assert_eq!(env.db_info("app").await, Some((staging_oid, true)));

    // restore, interrupted after the rename, before allowing connections.
    env.db.preserve_current("p2").await.unwrap();
    let prepared = env.db.prepare_restore(&snap.id).await.unwrap();
    let (staging_oid, _) = env.db_info("app__rollback_staging").await.unwrap();
    pg("ALTER DATABASE app__rollback_staging ALLOW_CONNECTIONS false");
    let mut state = State::load(&root).await.unwrap();
    state.live = Some(LiveRecord {
        source: format!("snapshot:{}", snap.id),
        oid: staging_oid,
        put_aside: vec![],
        ..LiveRecord::default()
    });
    state.store(&root).await.unwrap();
    pg("ALTER DATABASE app__rollback_staging RENAME TO app");
    assert!(
        env.client("app").await.is_err(),
        "the crash left the live database closed"
    );
    assert_eq!(env.db.restore(&prepared).await.expect("finish restore"), vec![]);
    assert_eq!(
        env.db_info("app").await,
        Some((staging_oid, true)),
        "live accepts connections"
    );
    let c = env.client("app").await.expect("connect to live");
    let work_mem: String = c.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(work_mem, "8MB", "the snapshot's database settings hold");
    let state = State::load(&root).await.unwrap();
    assert!(state.staged.is_empty(), "the staging record is gone: {state:?}");
    drop(c);

    // reinstate, interrupted after both renames (the failed database's too), before
    // allowing connections on either.
    let failed = "app__rollback_failed_20260101T000000";
    let holds = format!("the restored snapshot {} (test)", snap.id);
    let mut state = State::load(&root).await.unwrap();
    state.live = Some(LiveRecord {
        source: "preserved:p1".into(),
        oid: live_oid,
        put_aside: vec![rollback_core::PutAside {
            location: failed.into(),
            holds: holds.clone(),
        }],
        // Written by the version before the seal: no seal recorded, opened as it was.
        ..LiveRecord::default()
    });
    state.store(&root).await.unwrap();
    pg("ALTER DATABASE app ALLOW_CONNECTIONS false");
    pg(&format!("ALTER DATABASE app RENAME TO \"{failed}\""));
    pg(&format!("ALTER DATABASE \"{kept}\" ALLOW_CONNECTIONS false"));
    pg(&format!("ALTER DATABASE \"{kept}\" RENAME TO app"));
    let aside = env.db.reinstate(&preserved).await.expect("finish reinstate");
    assert_eq!(
        aside,
        vec![rollback_core::PutAside {
            location: failed.into(),
            holds
        }]
    );
    assert_eq!(
        env.db_info("app").await,
        Some((live_oid, true)),
        "live accepts connections"
    );
    assert_eq!(
        env.db_info(failed).await.map(|i| i.1),
        Some(true),
        "so does the failed one"
    );
    assert_eq!(env.count("app", "t").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_steps_interrupted_half_way_are_finished_by_the_next_call() {
    use crate::state::{LiveRecord, Seal, State};
    let Some(env) = setup("rollback-postgres interrupted seals", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('snapshot'); ALTER DATABASE app SET work_mem = '8MB';",
    )
    .await;
    let root = env.db.snapshot_root().to_path_buf();
    let snap = env.db.snapshot("s").await.unwrap();
    env.sql("app", "INSERT INTO t VALUES ('deploy')").await;
    let pg = |sql: &str| {
        env.pg
            .psql("postgres", sql)
            .map(drop)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    let staging = "app__rollback_staging";
    let checks = IntegrityChecks::new()
        .expect_snapshot(Some(snap.id.clone()))
        .baseline(Some(snap.id.clone()));

    // check_prepared, interrupted after sealing, before recording the seal.
    let prepared = env.db.prepare_restore(&snap.id).await.unwrap();
    let (staging_oid, _) = env.db_info(staging).await.unwrap();
    pg("ALTER DATABASE app__rollback_staging ALLOW_CONNECTIONS false");
    let report = env
        .db
        .check_prepared(&prepared, &checks)
        .await
        .expect("check_prepared on a copy left sealed");
    assert!(report.passed(), "{report:?}");
    assert_eq!(env.db_info(staging).await, Some((staging_oid, false)));
    let seal = State::load(&root).await.unwrap().staged[staging]
        .sealed
        .clone()
        .expect("recorded verified and sealed");
    assert_eq!(seal.oid, staging_oid);
    assert!(seal.verified_at.is_some_and(|v| seal.since <= v), "{seal:?}");
    // Called again (a resumed prepare): verified again, still sealed.
    assert!(env.db.check_prepared(&prepared, &checks).await.unwrap().passed());
    assert_eq!(env.db_info(staging).await, Some((staging_oid, false)));
    let seal = State::load(&root).await.unwrap().staged[staging]
        .sealed
        .clone()
        .expect("still recorded");

    // restore, interrupted after its sealed rename, before it dropped the staging record.
    let preserved = env.db.preserve_current("p1").await.unwrap();
    let mut state = State::load(&root).await.unwrap();
    state.live = Some(LiveRecord {
        source: format!("snapshot:{}", snap.id),
        oid: staging_oid,
        put_aside: vec![],
        sealed: Some(seal.clone()),
        opened_at: None,
    });
    state.store(&root).await.unwrap();
    pg("ALTER DATABASE app__rollback_staging RENAME TO app");
    assert_eq!(env.db.restore(&prepared).await.expect("finish restore"), vec![]);
    assert_eq!(
        env.db_info("app").await,
        Some((staging_oid, false)),
        "finished, still sealed"
    );
    assert!(
        State::load(&root).await.unwrap().staged.is_empty(),
        "the staging record is gone"
    );
    let proof = env.db.prove_unchanged(&prepared).await.unwrap().unwrap();
    assert!(proof.passed, "{proof:?}");

    // open, interrupted after allowing connections, before clearing the seal record.
    pg("ALTER DATABASE app ALLOW_CONNECTIONS true");
    let notes = env.db.open().await.expect("finish open");
    assert!(
        notes[0].contains("kept closed to every client from") && notes[0].contains("opened already"),
        "{notes:?}"
    );
    let live = State::load(&root).await.unwrap().live.unwrap();
    assert!(live.sealed.is_none() && live.opened_at.is_some(), "{live:?}");
    assert_eq!(env.db.open().await.unwrap(), Vec::<String>::new());
    let c = env.client("app").await.expect("open to clients");
    let work_mem: String = c.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(work_mem, "8MB", "the snapshot's database settings hold");
    c.batch_execute("INSERT INTO t VALUES ('client, after open')")
        .await
        .unwrap();
    drop(c);

    // reinstate, interrupted after sealing, recording and both renames.
    let (kept_oid, _) = env.db_info(&preserved.location).await.unwrap();
    let failed = "app__rollback_failed_20260101T000000";
    let holds = format!("the restored snapshot {} (test)", snap.id);
    let mut state = State::load(&root).await.unwrap();
    state.live = Some(LiveRecord {
        source: "preserved:p1".into(),
        oid: kept_oid,
        put_aside: vec![rollback_core::PutAside {
            location: failed.into(),
            holds: holds.clone(),
        }],
        sealed: Some(Seal {
            oid: kept_oid,
            since: chrono::Utc::now(),
            verified_at: None,
            checks: vec![],
            disconnected: vec![],
        }),
        opened_at: None,
    });
    state.store(&root).await.unwrap();
    pg("ALTER DATABASE app ALLOW_CONNECTIONS false");
    pg(&format!("ALTER DATABASE app RENAME TO \"{failed}\""));
    pg(&format!(
        "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false",
        preserved.location
    ));
    pg(&format!(
        "ALTER DATABASE \"{}\" RENAME TO app",
        preserved.location
    ));
    let aside = env.db.reinstate(&preserved).await.expect("finish reinstate");
    assert_eq!(
        aside,
        vec![rollback_core::PutAside {
            location: failed.into(),
            holds
        }]
    );
    assert_eq!(
        env.db_info("app").await,
        Some((kept_oid, false)),
        "the reinstated database stays sealed until open"
    );
    assert_eq!(
        env.db_info(failed).await.map(|i| i.1),
        Some(true),
        "the set-aside copy can be read"
    );
    assert_eq!(env.count(failed, "t").await, 2, "the client's write is there");
    assert_eq!(env.db.prove_unchanged(&prepared).await.unwrap(), None);
    let notes = env.db.open().await.unwrap();
    assert!(
        notes[0].starts_with("app kept closed to every client from"),
        "{notes:?}"
    );
    assert_eq!(env.count("app", "t").await, 2, "the pre-rollback data is live");

    // A whole reinstate (no interruption): the restored copy opened to clients is set
    // aside with what they wrote, named as such; the reinstated database is sealed.
    let prepared = env.db.prepare_restore(&snap.id).await.unwrap();
    assert!(env.db.check_prepared(&prepared, &checks).await.unwrap().passed());
    let preserved = env.db.preserve_current("p2").await.unwrap();
    env.db.restore(&prepared).await.unwrap();
    env.db.open().await.unwrap();
    env.sql("app", "INSERT INTO t VALUES ('client, after open')")
        .await;
    let aside = env.db.reinstate(&preserved).await.unwrap();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0]
            .holds
            .contains("with the writes other clients made into it after it was opened to them at"),
        "{aside:?}"
    );
    assert_eq!(env.count(&aside[0].location, "t").await, 2);
    assert_eq!(env.db_info("app").await.map(|i| i.1), Some(false));
    assert_eq!(
        env.db.reinstate(&preserved).await.unwrap(),
        aside,
        "idempotent, same answer"
    );
    assert_eq!(env.db_info("app").await.map(|i| i.1), Some(false));
    env.db.open().await.unwrap();
    assert_eq!(env.count("app", "t").await, 2);
}
