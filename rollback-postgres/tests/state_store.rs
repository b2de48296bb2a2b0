//! `PgStateStore` against a real, temporary PostgreSQL cluster (one per test): the
//! `StateStore` conformance suite, two "deploy boxes" racing for the lock, orchestrators on
//! two boxes sharing one database, and what the store does when things go wrong. They skip
//! loudly when the PostgreSQL server binaries are missing and fail instead under
//! `ROLLBACK_REQUIRE_INTEGRATION=1`.

use chrono::{TimeZone, Utc};
use rollback_core::{
    Checkpoint, CheckpointId, ErrorKind, LockHolder, RollbackError, RollbackId, RollbackTarget, Scope,
    StateStore, Step,
};
use rollback_postgres::{PgConfig, PgStateStore};
use rollback_testkit::{
    Fault, Method, Rig, TempPostgres, When, APP, CANARY_CONFIG_SECRET, CANARY_DB_PASSWORD,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// The database the state lives in (not the app's).
const DB: &str = "rollback_state";

struct Env {
    pg: TempPostgres,
}

impl Env {
    /// A cluster with database [`DB`], or `None` after a loud skip.
    fn start(test: &str) -> Option<Env> {
        let pg = TempPostgres::start(test).expect("start a temporary PostgreSQL")?;
        pg.create_database(DB).expect("create the state database");
        Some(Env { pg })
    }

    /// The superuser's settings for [`DB`].
    fn config(&self) -> PgConfig {
        PgConfig::new(self.pg.host(), self.pg.port(), self.pg.superuser(), DB)
            .password(self.pg.password().clone())
    }

    /// A store of `app` on [`DB`]: one "deploy box" (a session of its own).
    fn store(&self, app: &str) -> PgStateStore {
        PgStateStore::new(self.config(), app)
    }

    /// A plain session on [`DB`], for looking behind the store's back.
    async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::Config::new()
            .host(self.pg.host())
            .port(self.pg.port())
            .user(self.pg.superuser())
            .password(self.pg.password().expose())
            .dbname(DB)
            .application_name("state-store-tests")
            .connect(NoTls)
            .await
            .expect("connect to the state database");
        tokio::spawn(conn);
        client
    }

    async fn sql(&self, sql: &str) {
        self.client()
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// The tables of `schema`, sorted.
    async fn tables_of(&self, schema: &str) -> Vec<String> {
        self.client()
            .await
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
                &[&schema],
            )
            .await
            .expect("list tables")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

fn holder(who: &str, round: usize) -> LockHolder {
    LockHolder {
        pid: 4242,
        host: who.to_owned(),
        since: Utc::now(),
        rollback: RollbackId::new(format!("rb-{who}-{round}")),
        token: format!("token-{who}-{round}"),
        machine: None,
        boot: None,
    }
}

fn checkpoint(id: &str, label: &str) -> Checkpoint {
    Checkpoint {
        id: CheckpointId::new(id),
        label: label.to_owned(),
        created_at: Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
        snapshot: None,
        snapshot_taken_at: None,
        revision: None,
        config: None,
        good: true,
        warnings: Vec::new(),
        metrics_baseline: None,
    }
}

// ---- the contract ---------------------------------------------------------------------------

rollback_testkit::conformance_tests!(state_store, |check, test| {
    let Some(env) = Env::start(test) else { return };
    check(&env.store("web")).await;
});

// ---- two deploy boxes -----------------------------------------------------------------------

/// Two boxes (two stores, two sessions) try for the lock at the same instant, 50 times:
/// exactly one gets it each round, the other is told who has it, only the winner's token
/// frees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deploy_boxes_racing_for_the_lock_never_both_get_it() {
    let Some(env) = Env::start("two_deploy_boxes_racing_for_the_lock_never_both_get_it") else {
        return;
    };
    let boxes = [
        Arc::new(PgStateStore::new(env.config().application_name("box-a"), "web")),
        Arc::new(PgStateStore::new(env.config().application_name("box-b"), "web")),
    ];
    let mut wins = [0usize; 2];
    for round in 0..50 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let holders = [holder("box-a", round), holder("box-b", round)];
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let (store, h, barrier) = (boxes[i].clone(), holders[i].clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.try_lock(&h).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("task").expect("try_lock"));
        }
        let (winner, loser) = match (&results[0], &results[1]) {
            (None, Some(seen)) => {
                assert_eq!(
                    seen, &holders[0],
                    "round {round}: the loser is told who holds the lock"
                );
                (0, 1)
            }
            (Some(seen), None) => {
                assert_eq!(
                    seen, &holders[1],
                    "round {round}: the loser is told who holds the lock"
                );
                (1, 0)
            }
            other => panic!("round {round}: exactly one box gets the lock, got {other:?}"),
        };
        wins[winner] += 1;
        for b in &boxes {
            assert_eq!(
                b.lock_holder().await.expect("lock_holder").as_ref(),
                Some(&holders[winner]),
                "round {round}: both boxes see the winner"
            );
        }
        boxes[loser]
            .unlock(&holders[loser].token)
            .await
            .expect("unlock with the loser's token");
        assert!(
            boxes[winner].lock_holder().await.expect("lock_holder").is_some(),
            "round {round}: the loser's token does not free the lock"
        );
        boxes[loser]
            .unlock(&holders[winner].token)
            .await
            .expect("unlock with the winner's token");
        assert_eq!(
            boxes[winner].lock_holder().await.expect("lock_holder"),
            None,
            "round {round}"
        );
    }
    eprintln!("lock race: box a won {} rounds, box b {}", wins[0], wins[1]);
    let sessions: Vec<String> = env
        .client()
        .await
        .query(
            "SELECT DISTINCT application_name FROM pg_stat_activity WHERE application_name LIKE 'box-%' ORDER BY 1",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(sessions, ["box-a", "box-b"], "each box has a session of its own");
}

/// A rollback runs on box a with the state in PostgreSQL; box b, on the same database, is
/// refused with `Locked` naming a's rollback while it runs, and finds a's journal and
/// report when it is done.
#[tokio::test]
async fn a_second_orchestrator_on_another_box_is_refused_while_the_first_runs() {
    let Some(env) = Env::start("a_second_orchestrator_on_another_box_is_refused_while_the_first_runs") else {
        return;
    };
    let rig = Rig::new();
    let first = rig
        .orchestrator()
        .state(env.store(APP))
        .build()
        .expect("build box a");
    let box_b = Arc::new(env.store(APP));
    let second = rig
        .orchestrator()
        .state(box_b.clone())
        .build()
        .expect("build box b");
    first.checkpoint("before v2").await.expect("checkpoint on box a");
    rig.deploy_bad_release(Scope::ALL);
    rig.world.clear_calls();
    rig.world.inject(
        Method::DbPrepareRestore,
        When::Always,
        Fault::Delay(Duration::from_millis(700)),
    );
    let (a, (seen, b)) = tokio::join!(
        first.rollback(RollbackTarget::LastGood, "v2 is broken", Scope::ALL),
        async {
            let deadline = Instant::now() + Duration::from_secs(20);
            let seen = loop {
                if let Some(h) = box_b.lock_holder().await.expect("lock_holder on box b") {
                    break h;
                }
                assert!(Instant::now() < deadline, "box a never took the lock");
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            (
                seen,
                second
                    .rollback(RollbackTarget::LastGood, "v2 is broken (box b)", Scope::ALL)
                    .await,
            )
        }
    );
    let report = a.expect("box a's rollback");
    assert!(report.outcome.is_success(), "{}", report.outcome);
    let err = b.expect_err("box b must be refused while box a runs");
    let shown = err.to_string();
    let RollbackError::Locked { holder } = err else {
        panic!("box b must be refused with Locked, got {shown}");
    };
    assert_eq!(holder.rollback, report.id, "the holder named is box a's rollback");
    assert_eq!(*holder, seen, "the holder is the one box b saw in the table");
    assert_eq!(holder.pid, std::process::id());
    assert!(shown.contains(&report.id.to_string()), "{shown}");
    assert_eq!(
        rig.world.count(Method::ProcessStop),
        1,
        "only one rollback stopped the app"
    );

    assert_eq!(
        box_b.lock_holder().await.expect("lock_holder"),
        None,
        "box a freed the lock"
    );
    assert!(second.unfinished().await.expect("unfinished").is_none());
    let journals = box_b.journals().await.expect("journals");
    assert!(
        journals.iter().any(|j| j.id == report.id),
        "box b sees box a's journal"
    );
    let client = env.client().await;
    let row = client
        .query_one(
            "SELECT markdown, doc->>'id' FROM rollback.reports WHERE app = $1 AND id = $2",
            &[&APP, &report.id.as_str()],
        )
        .await
        .expect("box a's report is in rollback.reports");
    let (markdown, id): (String, String) = (row.get(0), row.get(1));
    assert!(
        markdown.contains(&format!("Rollback report `{}`", report.id)),
        "{markdown}"
    );
    assert_eq!(id, report.id.as_str());
    let leaked: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM rollback.journals WHERE doc::text LIKE '%' || $1 || '%' OR doc::text LIKE '%' || $2 || '%')
                  + (SELECT count(*) FROM rollback.reports WHERE doc::text || markdown LIKE '%' || $1 || '%'
                                                         OR doc::text || markdown LIKE '%' || $2 || '%')",
            &[&CANARY_DB_PASSWORD, &CANARY_CONFIG_SECRET],
        )
        .await
        .expect("look for the canaries")
        .get(0);
    assert_eq!(leaked, 0, "no secret in the stored journals and reports");
}

/// Box a dies mid-rollback; box b, with a store of its own (a new session), finds the
/// journal and the dead box's lock, and `resume()` finishes the rollback.
#[tokio::test]
async fn a_journal_left_by_a_crash_is_resumed_from_another_box() {
    let Some(env) = Env::start("a_journal_left_by_a_crash_is_resumed_from_another_box") else {
        return;
    };
    let rig = Rig::new();
    let box_a = rig
        .orchestrator()
        .state(env.store(APP))
        .build()
        .expect("build box a");
    box_a.checkpoint("before v2").await.expect("checkpoint");
    rig.deploy_bad_release(Scope::ALL);
    rig.world
        .inject(Method::CodeActivate, When::Nth(1), Fault::CrashAfter);
    let run = box_a.rollback(RollbackTarget::LastGood, "v2 is broken", Scope::ALL);
    assert!(
        rollback_testkit::run_until_crash(&rig.world, run).await.is_none(),
        "box a crashed"
    );
    drop(box_a);
    rig.world.clear_faults();
    rig.world.reset_crash();

    let store_b = Arc::new(env.store(APP));
    let box_b = rig
        .orchestrator()
        .state(store_b.clone())
        .build()
        .expect("build box b");
    let journal = box_b
        .unfinished()
        .await
        .expect("unfinished")
        .expect("box b finds the journal box a left");
    assert_eq!(journal.last_step(), Step::ActivateCode);
    let left = store_b
        .lock_holder()
        .await
        .expect("lock_holder")
        .expect("box a's lock stays for resume");
    assert_eq!(left.rollback, journal.id);
    let refused = box_b
        .rollback(RollbackTarget::LastGood, "again", Scope::ALL)
        .await
        .expect_err("a new rollback is refused while one is unfinished");
    assert!(matches!(refused, RollbackError::Unfinished { .. }), "{refused}");

    let report = box_b.resume().await.expect("resume on box b");
    assert!(report.outcome.is_success(), "{}", report.outcome);
    assert_eq!(report.id, journal.id);
    assert!(
        report.notes.iter().any(|n| n.contains("resumed")),
        "{:?}",
        report.notes
    );
    assert_eq!(rig.world.end_state().db_marker.as_deref(), Some("v1 data"));
    assert_eq!(store_b.lock_holder().await.expect("lock_holder"), None);
    assert!(box_b.unfinished().await.expect("unfinished").is_none());
}

// ---- the tables ----------------------------------------------------------------------------

/// Nothing exists before the first call; it makes the schema asked for and its four tables;
/// apps sharing them see only their own rows and have locks of their own; tables dropped
/// behind its back are made again.
#[tokio::test]
async fn tables_are_made_on_first_use_and_apps_share_them_apart() {
    let Some(env) = Env::start("tables_are_made_on_first_use_and_apps_share_them_apart") else {
        return;
    };
    let schema = "Team \"ops\" state";
    let web = env.store("web").schema(schema);
    let api = env.store("api").schema(schema);
    assert_eq!(web.schema_name(), schema);
    assert!(
        env.tables_of(schema).await.is_empty(),
        "nothing before the first use"
    );
    assert!(env.tables_of("rollback").await.is_empty());

    web.save_checkpoint(&checkpoint("cp-web", "web's"))
        .await
        .expect("save on web");
    assert_eq!(
        env.tables_of(schema).await,
        ["checkpoints", "journals", "locks", "reports"]
    );
    assert!(
        env.tables_of("rollback").await.is_empty(),
        "only the schema asked for"
    );

    assert!(
        api.checkpoints().await.expect("api's checkpoints").is_empty(),
        "apps see only their rows"
    );
    api.save_checkpoint(&checkpoint("cp-web", "api's own"))
        .await
        .expect("same id, other app");
    let web_cps = web.checkpoints().await.expect("web's checkpoints");
    assert_eq!(web_cps.len(), 1);
    assert_eq!(
        web_cps[0].label, "web's",
        "another app's row of the same id is its own"
    );

    assert_eq!(web.try_lock(&holder("web-box", 0)).await.expect("lock web"), None);
    assert_eq!(
        api.try_lock(&holder("api-box", 0)).await.expect("lock api"),
        None,
        "each app has a lock of its own"
    );
    assert_eq!(
        web.lock_holder()
            .await
            .expect("holder")
            .map(|h| h.host)
            .as_deref(),
        Some("web-box")
    );

    env.sql(&format!("DROP SCHEMA {} CASCADE", "\"Team \"\"ops\"\" state\""))
        .await;
    let err = web.checkpoints().await.expect_err("the tables are gone");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("creates it again"), "{err}");
    assert!(web.checkpoints().await.expect("made again").is_empty());
    assert_eq!(env.tables_of(schema).await.len(), 4);
}

/// A checkpoint survives a new store (another box) exactly, nanoseconds included; a label
/// with U+0000 (which `jsonb` cannot hold) is stored with U+FFFD instead of failing.
#[tokio::test]
async fn documents_round_trip_across_stores_and_nul_is_replaced() {
    let Some(env) = Env::start("documents_round_trip_across_stores_and_nul_is_replaced") else {
        return;
    };
    let cp = checkpoint("cp-exact", "plain");
    env.store(APP).save_checkpoint(&cp).await.expect("save");
    let nul = checkpoint("cp-nul", "before\0after");
    env.store(APP)
        .save_checkpoint(&nul)
        .await
        .expect("a label with U+0000 is saved");
    let read = env
        .store(APP)
        .checkpoints()
        .await
        .expect("read from another store");
    let exact = read
        .iter()
        .find(|c| c.id.as_str() == "cp-exact")
        .expect("cp-exact");
    assert_eq!(exact, &cp, "round-trips unchanged");
    let replaced = read.iter().find(|c| c.id.as_str() == "cp-nul").expect("cp-nul");
    assert_eq!(replaced.label, "before\u{fffd}after");
}

// ---- when things go wrong ----------------------------------------------------------------

/// A statement held up by another session's lock gives up within the store's time limit,
/// naming the table and what to do; once the lock is gone the store works again.
#[tokio::test]
async fn a_statement_held_up_by_a_lock_times_out_naming_the_table() {
    let Some(env) = Env::start("a_statement_held_up_by_a_lock_times_out_naming_the_table") else {
        return;
    };
    let store = env.store(APP).timeout(Duration::from_millis(300));
    store.journals().await.expect("first use");
    let blocker = env.client().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE rollback.journals IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock the table");
    let started = Instant::now();
    let err = store.journals().await.expect_err("held up by the lock");
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    // The server cancels it (the session's statement_timeout), before the client's own
    // limit 2 s later.
    assert!(took < Duration::from_secs(2), "gave up after {took:?}");
    let shown = err.to_string();
    for part in [
        "listing journals",
        "rollback.journals",
        "app `web`",
        "statement timeout",
        "pg_locks",
        "longer timeout",
    ] {
        assert!(shown.contains(part), "`{part}` missing from: {shown}");
    }
    blocker.batch_execute("ROLLBACK").await.expect("release the lock");
    assert!(store.journals().await.expect("works again").is_empty());
}

/// The server restarts (every session is cut): the next call opens a new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_reconnects_after_the_server_restarts() {
    let Some(env) = Env::start("the_store_reconnects_after_the_server_restarts") else {
        return;
    };
    let store = env.store(APP);
    store
        .save_checkpoint(&checkpoint("cp-before-restart", "x"))
        .await
        .expect("save");
    tokio::task::block_in_place(|| env.pg.restart()).expect("restart the server");
    let ids: Vec<String> = store
        .checkpoints()
        .await
        .expect("the store reconnects")
        .into_iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(ids, ["cp-before-restart"]);
    assert_eq!(store.try_lock(&holder("box", 0)).await.expect("try_lock"), None);
}

/// Errors say which operation on which table failed and what to do, and never show a
/// password; doing what they say works.
#[tokio::test]
async fn errors_name_the_table_and_the_fix_never_the_password() {
    let Some(env) = Env::start("errors_name_the_table_and_the_fix_never_the_password") else {
        return;
    };
    const LIMITED_PW: &str = "canary-limited-pw-9Tq";
    const WRONG_PW: &str = "canary-wrong-pw-3Jx";
    env.sql(&format!("CREATE ROLE limited LOGIN PASSWORD '{LIMITED_PW}'"))
        .await;
    env.store(APP)
        .checkpoints()
        .await
        .expect("the owner makes the tables");
    let limited_config = PgConfig::new(env.pg.host(), env.pg.port(), "limited", DB).password(LIMITED_PW);
    let limited = PgStateStore::new(limited_config.clone(), APP);
    assert!(
        !format!("{limited:?}").contains(LIMITED_PW),
        "Debug hides the password"
    );

    let err = limited
        .save_checkpoint(&checkpoint("cp-limited", "x"))
        .await
        .expect_err("no privileges on the schema");
    let shown = format!("{err} {err:?}");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{shown}");
    for part in [
        "saving checkpoint `cp-limited`",
        "rollback.checkpoints",
        "grant role `limited` USAGE on schema",
    ] {
        assert!(shown.contains(part), "`{part}` missing from: {shown}");
    }
    assert!(!shown.contains(LIMITED_PW), "{shown}");

    env.sql(
        "GRANT USAGE ON SCHEMA rollback TO limited; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA rollback TO limited",
    )
    .await;
    limited
        .save_checkpoint(&checkpoint("cp-limited", "x"))
        .await
        .expect("the grants the error names are enough");

    let err = PgStateStore::new(limited_config.clone(), APP)
        .schema("elsewhere")
        .checkpoints()
        .await
        .expect_err("no CREATE on the database for a first use");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(
        err.to_string().contains("CREATE on database `rollback_state`"),
        "{err}"
    );

    let mut wrong_config = limited_config;
    wrong_config.password = Some(WRONG_PW.into());
    let err = PgStateStore::new(wrong_config, APP)
        .lock_holder()
        .await
        .expect_err("a wrong password");
    let shown = format!("{err} {err:?}");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{shown}");
    assert!(
        shown.contains("state store") && shown.contains("as limited"),
        "{shown}"
    );
    assert!(!shown.contains(WRONG_PW), "{shown}");
}

/// A row whose document is not what it should be is `Corrupt`, naming the row and the fix.
#[tokio::test]
async fn a_damaged_row_is_corrupt_naming_it() {
    let Some(env) = Env::start("a_damaged_row_is_corrupt_naming_it") else {
        return;
    };
    let store = env.store(APP);
    store
        .save_checkpoint(&checkpoint("cp-damaged", "x"))
        .await
        .expect("save");
    env.sql("UPDATE rollback.checkpoints SET doc = '{\"not\": \"a checkpoint\"}' WHERE id = 'cp-damaged'")
        .await;
    let err = store.checkpoints().await.expect_err("a damaged row");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    for part in ["`cp-damaged`", "rollback.checkpoints", "delete that row"] {
        assert!(err.to_string().contains(part), "`{part}` missing from: {err}");
    }
}

/// `access_warnings` creates nothing, and names a table `PUBLIC` may read with the fix,
/// which works.
#[tokio::test]
async fn access_warnings_name_a_table_every_role_may_read() {
    let Some(env) = Env::start("access_warnings_name_a_table_every_role_may_read") else {
        return;
    };
    let store = env.store(APP);
    assert_eq!(
        store.access_warnings().await.expect("warnings"),
        Vec::<String>::new()
    );
    assert!(
        env.tables_of("rollback").await.is_empty(),
        "access_warnings creates nothing"
    );
    store.journals().await.expect("first use");
    assert_eq!(
        store.access_warnings().await.expect("warnings"),
        Vec::<String>::new()
    );

    env.sql("GRANT SELECT ON rollback.journals TO PUBLIC").await;
    let warnings = store.access_warnings().await.expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("`rollback.journals`") && warnings[0].contains("SELECT"),
        "{warnings:?}"
    );
    let fix = warnings[0].split(": ").last().expect("the fix").to_owned();
    assert_eq!(fix, "REVOKE ALL ON \"rollback\".\"journals\" FROM PUBLIC");
    env.sql(&fix).await;
    assert_eq!(
        store.access_warnings().await.expect("warnings"),
        Vec::<String>::new()
    );
}
