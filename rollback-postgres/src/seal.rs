//! Sealing: a database closed to every client but the adapter's own session, so that no
//! other client (a worker, a cron job, a pool that reconnects within milliseconds) writes
//! into a copy between its verification and the moment the app is about to start.
//!
//! The database's path: `check_prepared` seals the staged copy (connections refused, every
//! other session terminated) and verifies it on a read-only session opened before the seal,
//! the only one left on it; `restore` renames it in still sealed; `prove_unchanged` shows,
//! from the maintenance database only, that the live database is that copy and was closed
//! all along; `open` opens it right before the app starts and says for how long clients
//! were refused. `reinstate` leaves what it puts live sealed too.

use crate::adapter::PostgresSnapshot;
use crate::error::PgError;
use crate::ident::quote_ident;
use crate::state::{Seal, State};
use chrono::{DateTime, SecondsFormat, Utc};
use rollback_core::{
    AdapterError, CheckResult, ErrorKind, IntegrityChecks, IntegrityReport, PreparedRestore,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// The name of the [`CheckResult`] that
/// [`prove_unchanged`](rollback_core::DatabaseSnapshot::prove_unchanged) returns.
pub const PROOF_CHECK: &str = "switched-in copy unchanged";

/// How long one catalog statement of the seal may take (they take milliseconds; a lock
/// held by someone else is the only reason to wait).
const CATALOG_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for one of the adapter's own sessions to end once dropped.
const OWN_SESSION_TIMEOUT: Duration = Duration::from_secs(5);

/// `2026-01-02T03:04:05.678Z`.
pub(crate) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Awaits one query within [`CATALOG_TIMEOUT`]; `what` names it in the error.
pub(crate) async fn within<T>(
    what: impl std::fmt::Display,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, PgError> {
    match tokio::time::timeout(CATALOG_TIMEOUT, query).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(PgError::sql(what, e)),
        Err(_) => Err(PgError::new(
            ErrorKind::Timeout,
            format!("{what}: no answer within {CATALOG_TIMEOUT:?}"),
        )),
    }
}

/// Runs one statement on the maintenance session within [`CATALOG_TIMEOUT`].
pub(crate) async fn catalog(client: &Client, sql: &str, what: impl std::fmt::Display) -> Result<(), PgError> {
    match tokio::time::timeout(CATALOG_TIMEOUT, client.batch_execute(sql)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(PgError::sql(what, e)),
        Err(_) => Err(PgError::new(
            ErrorKind::Timeout,
            format!("{what}: no answer within {CATALOG_TIMEOUT:?} (a lock held by another session?)"),
        )),
    }
}

/// A session as the reports name it: pid, user, application and client address.
pub(crate) fn describe_session(
    pid: i32,
    db: &str,
    user: Option<&str>,
    app: Option<&str>,
    addr: Option<&str>,
) -> String {
    format!(
        "session pid {pid} on {db} (user {}, application `{}`, client {})",
        user.unwrap_or("?"),
        app.unwrap_or(""),
        addr.unwrap_or("local socket")
    )
}

impl PostgresSnapshot {
    /// Seals database `db`: refuses new connections on it, then terminates every other
    /// client session on it (again until none is left: a session that was connecting when
    /// connections were refused shows up a moment later) except the sessions `keep` (and
    /// their parallel workers). Returns when it was sealed and who was disconnected. On
    /// failure the database is left refusing connections (the caller decides).
    pub(crate) async fn seal_database(
        &self,
        client: &Client,
        db: &str,
        keep: &[i32],
    ) -> Result<(DateTime<Utc>, Vec<String>), PgError> {
        catalog(
            client,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", quote_ident(db)),
            format!("refusing new connections to {db}"),
        )
        .await?;
        let since = Utc::now();
        let deadline = Instant::now() + self.options.disconnect_timeout;
        let mut seen: BTreeMap<i32, String> = BTreeMap::new();
        let keep: Vec<i32> = keep.to_vec();
        loop {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&db, &keep];
            let query = client.query(
                "SELECT pid, usename::text, application_name, client_addr::text, pg_terminate_backend(pid) \
                 FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type <> 'autovacuum worker' \
                   AND pid <> ALL($2) AND coalesce(leader_pid, 0) <> ALL($2)",
                &params,
            );
            let rows = match tokio::time::timeout(CATALOG_TIMEOUT, query).await {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => return Err(PgError::sql(format!("disconnecting the sessions on {db}"), e)),
                Err(_) => {
                    return Err(PgError::new(
                        ErrorKind::Timeout,
                        format!("disconnecting the sessions on {db}: no answer within {CATALOG_TIMEOUT:?}"),
                    ))
                }
            };
            if rows.is_empty() {
                break;
            }
            for r in rows {
                let pid: i32 = r.get(0);
                let (user, app, addr): (Option<String>, Option<String>, Option<String>) =
                    (r.get(1), r.get(2), r.get(3));
                seen.entry(pid).or_insert_with(|| {
                    format!(
                        "disconnected {}",
                        describe_session(pid, db, user.as_deref(), app.as_deref(), addr.as_deref())
                    )
                });
            }
            if Instant::now() >= deadline {
                return Err(PgError::new(
                    ErrorKind::Conflict,
                    format!(
                        "sessions on {db} did not end within {:?} of being terminated: {}",
                        self.options.disconnect_timeout,
                        seen.values().cloned().collect::<Vec<_>>().join("; ")
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for note in seen.values() {
            tracing::info!("{note}");
        }
        Ok((since, seen.into_values().collect()))
    }

    /// Waits until the adapter's own (dropped) session `pid` has ended, so that it is never
    /// taken for a client; terminates it after [`OWN_SESSION_TIMEOUT`].
    pub(crate) async fn wait_session_gone(&self, client: &Client, pid: i32) {
        let deadline = Instant::now() + OWN_SESSION_TIMEOUT;
        loop {
            let found = tokio::time::timeout(
                CATALOG_TIMEOUT,
                client.query_opt("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&pid]),
            )
            .await;
            match found {
                Ok(Ok(None)) => return,
                Ok(Ok(Some(_))) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(Ok(Some(_))) => {
                    let _ = client.query_opt("SELECT pg_terminate_backend($1)", &[&pid]).await;
                    return;
                }
                _ => return,
            }
        }
    }

    /// The client sessions (autovacuum aside) on the database with oid `oid`, described.
    pub(crate) async fn sessions_on(client: &Client, oid: u32) -> Result<Vec<String>, PgError> {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&oid];
        let query = client.query(
            "SELECT pid, usename::text, application_name, client_addr::text FROM pg_stat_activity \
             WHERE datid = $1 AND pid <> pg_backend_pid() AND backend_type <> 'autovacuum worker'",
            &params,
        );
        let rows = match tokio::time::timeout(CATALOG_TIMEOUT, query).await {
            Ok(rows) => rows.map_err(|e| PgError::sql("listing sessions", e))?,
            Err(_) => {
                return Err(PgError::new(
                    ErrorKind::Timeout,
                    format!("listing sessions: no answer within {CATALOG_TIMEOUT:?}"),
                ))
            }
        };
        Ok(rows
            .iter()
            .map(|r| {
                let pid: i32 = r.get(0);
                let (user, app, addr): (Option<String>, Option<String>, Option<String>) =
                    (r.get(1), r.get(2), r.get(3));
                format!(
                    "session pid {pid} (user {}, application `{}`, client {})",
                    user.as_deref().unwrap_or("?"),
                    app.as_deref().unwrap_or(""),
                    addr.as_deref().unwrap_or("local socket")
                )
            })
            .collect())
    }

    /// `check_prepared`: seals the staged copy and runs the checks on a read-only session
    /// opened before the seal; records it verified and sealed when every check passed,
    /// opens it again otherwise (an unverified copy is switched in open, as before).
    pub(crate) async fn check_staged(
        &self,
        prepared: &PreparedRestore,
        checks: &IntegrityChecks,
    ) -> Result<IntegrityReport, AdapterError> {
        let Some(staging) = &prepared.staged_at else {
            // Restored in place during the switch: there is no copy to check before it.
            return Ok(IntegrityReport::default());
        };
        let expect = checks.expect_snapshot.as_ref().unwrap_or(&prepared.snapshot);
        let (oid, session, pid, since, disconnected) = {
            let _guard = self.lock.lock().await;
            let mut state = State::load(&self.root).await?;
            let client = self.maintenance().await?;
            let Some(oid) = Self::db_oid(&client, staging).await? else {
                return Err(AdapterError::not_found(format!(
                    "staging database `{staging}` for snapshot {} does not exist (switched in already, or dropped): \
                     call prepare_restore again",
                    prepared.snapshot
                )));
            };
            Self::check_staged_record(&state, staging, &prepared.snapshot, oid)?;
            // A seal from an earlier call (maybe interrupted before it recorded it) is
            // lifted for our session to connect, and made again at once: its record goes
            // first, so that it is never taken for a seal of this verification.
            if let Some(rec) = state.staged.get_mut(staging) {
                if rec.sealed.take().is_some() {
                    state.store(&self.root).await?;
                }
            }
            if Self::allows_connections(&client, staging).await? == Some(false) {
                catalog(
                    &client,
                    &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", quote_ident(staging)),
                    format!("allowing our session on {staging}"),
                )
                .await?;
            }
            let started = Instant::now();
            let session = match self.connect(staging).await {
                Ok(s) => s,
                Err(e) => return Ok(crate::adapter::unreachable(e.to_string())),
            };
            // Our session only reads: the copy verified is the copy switched in.
            let pid = match session_pid(&session).await {
                Ok(pid) => pid,
                Err(e) => return Ok(crate::adapter::unreachable(e.to_string())),
            };
            tracing::debug!(database = %staging, elapsed = ?started.elapsed(), "session for the checks of the staged copy");
            match self.seal_database(&client, staging, &[pid]).await {
                Ok((since, disconnected)) => (oid, session, pid, since, disconnected),
                Err(e) => {
                    self.allow_connections(&client, staging).await;
                    return Err(e.into());
                }
            }
        };
        let report = self
            .run_checks_on(&session, staging, checks, Some(expect), Instant::now())
            .await;
        let verified_at = Utc::now();
        drop(session);

        let _guard = self.lock.lock().await;
        let client = self.maintenance().await?;
        self.wait_session_gone(&client, pid).await;
        let mut state = State::load(&self.root).await?;
        let still_ours = Self::db_oid(&client, staging).await? == Some(oid)
            && state
                .staged
                .get(staging)
                .is_some_and(|s| s.oid == oid && s.snapshot == prepared.snapshot.as_str());
        if !still_ours {
            return Err(AdapterError::new(
                ErrorKind::Conflict,
                format!(
                    "staging database `{staging}` was dropped or made again while it was checked: call prepare_restore \
                     again"
                ),
            ));
        }
        let sealed = Self::allows_connections(&client, staging).await? == Some(false)
            && Self::sessions_on(&client, oid).await?.is_empty();
        if report.passed() && !report.checks.is_empty() && sealed {
            if let Some(rec) = state.staged.get_mut(staging) {
                rec.sealed = Some(Seal {
                    oid,
                    since,
                    verified_at: Some(verified_at),
                    checks: report.checks.iter().map(|c| c.name.clone()).collect(),
                    disconnected,
                });
            }
            state.store(&self.root).await?;
            tracing::info!(database = %staging, since = %stamp(since), "staged copy verified and sealed");
        } else {
            // Not verified: the copy is switched in open, as before (see `restore`).
            self.allow_connections(&client, staging).await;
            if report.passed() && !sealed {
                tracing::warn!(database = %staging, "the staged copy was opened while it was checked: not recorded as sealed");
            }
        }
        Ok(report)
    }

    /// Why database `name` is not provably the copy verified at `verified_at` and sealed
    /// under `seal` ever since (as `oid`): none when it still has that oid, refuses
    /// connections, has no session on it, and was sealed before its verification ended.
    /// Reads the catalog only.
    pub(crate) async fn seal_problems(
        client: &Client,
        name: &str,
        seal: &Seal,
        verified_at: DateTime<Utc>,
        oid: u32,
    ) -> Result<Vec<String>, AdapterError> {
        let row = within(
            format!("looking up database {name}"),
            client.query_opt(
                "SELECT oid, datallowconn FROM pg_database WHERE datname = $1",
                &[&name],
            ),
        )
        .await?;
        let mut problems = Vec::new();
        match row.map(|r| (r.get::<_, u32>(0), r.get::<_, bool>(1))) {
            None => problems.push(format!("there is no database named {name}")),
            Some((found, allows)) => {
                if found != seal.oid || found != oid {
                    problems.push(format!(
                        "{name} has oid {found}, the copy verified online had oid {}",
                        seal.oid
                    ));
                }
                if allows {
                    problems.push(format!(
                        "{name} accepts connections (it was opened since it was sealed)"
                    ));
                }
                let sessions = Self::sessions_on(client, found).await?;
                if !sessions.is_empty() {
                    problems.push(format!(
                        "{} session(s) on it: {}",
                        sessions.len(),
                        sessions.join("; ")
                    ));
                }
            }
        }
        if seal.since > verified_at {
            problems.push(format!(
                "the record says it was sealed at {}, after its verification ended at {}",
                stamp(seal.since),
                stamp(verified_at)
            ));
        }
        Ok(problems)
    }

    /// `prove_unchanged`: from the maintenance session only, that the live database is
    /// the staged copy `check_prepared` verified and sealed, still refusing connections with
    /// no session on it. `None` when the live database is not such a copy.
    pub(crate) async fn prove_switched_in(
        &self,
        prepared: &PreparedRestore,
    ) -> Result<Option<CheckResult>, AdapterError> {
        if prepared.staged_at.is_none() {
            return Ok(None);
        }
        let _guard = self.lock.lock().await;
        let state = State::load(&self.root).await?;
        let source = format!("snapshot:{}", prepared.snapshot);
        let Some(record) = state.live.filter(|l| l.source == source) else {
            return Ok(None);
        };
        let Some((seal, verified_at)) = record
            .sealed
            .as_ref()
            .and_then(|s| s.verified_at.map(|v| (s.clone(), v)))
        else {
            return Ok(None);
        };
        let live = &self.config.dbname;
        let client = self.maintenance().await?;
        let problems = Self::seal_problems(&client, live, &seal, verified_at, record.oid).await?;
        let now = Utc::now();
        let detail = if problems.is_empty() {
            format!(
                "{live} (oid {}) is the staged copy of snapshot {} verified online at {} ({}), closed to every client \
                 since {} ({} ms ago, before that verification began) with no session on it now: nothing can have \
                 changed it, no recount needed",
                seal.oid,
                prepared.snapshot,
                stamp(verified_at),
                if seal.checks.is_empty() {
                    "every check passed".to_owned()
                } else {
                    format!("passed: {}", seal.checks.join(", "))
                },
                stamp(seal.since),
                (now - seal.since).num_milliseconds()
            )
        } else {
            format!(
                "{live} is not provably the copy of snapshot {} verified online (oid {}, sealed since {}): {}",
                prepared.snapshot,
                seal.oid,
                stamp(seal.since),
                problems.join("; ")
            )
        };
        Ok(Some(CheckResult {
            name: PROOF_CHECK.to_owned(),
            passed: problems.is_empty(),
            detail,
        }))
    }

    /// `open`: allows connections on the live database when it refuses them, clears the
    /// seal record, and says for how long clients were refused and who was disconnected.
    pub(crate) async fn open_live(&self) -> Result<Vec<String>, AdapterError> {
        let _guard = self.lock.lock().await;
        let live = self.config.dbname.clone();
        let mut state = State::load(&self.root).await?;
        let client = self.maintenance().await?;
        let Some(oid) = Self::db_oid(&client, &live).await? else {
            return Err(AdapterError::not_found(format!(
                "live database `{live}` does not exist: nothing to open (finish the switch with restore() or put the \
                 pre-rollback database back with reinstate() first)"
            )));
        };
        let allowed = Self::allows_connections(&client, &live).await? == Some(true);
        if !allowed {
            catalog(
                &client,
                &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", quote_ident(&live)),
                format!("opening {live} to clients"),
            )
            .await?;
        }
        let opened_at = Utc::now();
        let seal = state
            .live
            .as_ref()
            .filter(|l| l.oid == oid)
            .and_then(|l| l.sealed.clone())
            .filter(|s| s.oid == oid);
        let mut notes = Vec::new();
        match seal {
            Some(seal) => {
                notes.push(format!(
                    "{live} kept closed to every client from {} to {} ({} ms){}: connections in that window were \
                     refused",
                    stamp(seal.since),
                    stamp(opened_at),
                    (opened_at - seal.since).num_milliseconds(),
                    if allowed {
                        " (opened already by an interrupted call or by hand)"
                    } else {
                        ""
                    }
                ));
                if seal.disconnected.is_empty() {
                    notes.push(format!("no client session was on {live} when it was sealed"));
                } else {
                    notes.extend(
                        seal.disconnected
                            .iter()
                            .map(|d| format!("when {live} was sealed: {d}")),
                    );
                }
                if let Some(l) = state.live.as_mut() {
                    l.sealed = None;
                    l.opened_at = Some(opened_at);
                }
                state.store(&self.root).await?;
            }
            None if !allowed => {
                notes.push(format!(
                    "{live} refused connections (not sealed by this adapter's last switch): opened it to every client at {}",
                    stamp(opened_at)
                ));
                if let Some(l) = state.live.as_mut().filter(|l| l.oid == oid) {
                    l.opened_at = Some(opened_at);
                    state.store(&self.root).await?;
                }
            }
            None => {}
        }
        for n in &notes {
            tracing::info!(database = %live, "{n}");
        }
        Ok(notes)
    }

    /// Why `dbname` cannot be connected to, when it is sealed (`None` otherwise), for the
    /// connectivity check and `ping`: a sealed database is never opened silently.
    pub(crate) async fn sealed_reason(&self, dbname: &str) -> Option<String> {
        let client = self.maintenance().await.ok()?;
        if Self::allows_connections(&client, dbname).await.ok()?? {
            return None;
        }
        let oid = Self::db_oid(&client, dbname).await.ok()??;
        let since = State::load(&self.root)
            .await
            .ok()
            .and_then(|s| s.live)
            .filter(|l| l.oid == oid && dbname == self.config.dbname)
            .and_then(|l| l.sealed)
            .map(|s| format!(" since {}", stamp(s.since)))
            .unwrap_or_default();
        Some(format!(
            "{dbname} is sealed: closed to every client (ALLOW_CONNECTIONS false){since}, as restore and reinstate \
             leave what they put live until the app is about to start; DatabaseSnapshot::open() opens it"
        ))
    }
}

/// The backend pid of `session`, after making it read-only.
async fn session_pid(session: &Client) -> Result<i32, PgError> {
    let run = async {
        session
            .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            .await?;
        session.query_one("SELECT pg_backend_pid()", &[]).await
    };
    match tokio::time::timeout(CATALOG_TIMEOUT, run).await {
        Ok(Ok(row)) => Ok(row.get(0)),
        Ok(Err(e)) => Err(PgError::sql("preparing the session for the checks", e)),
        Err(_) => Err(PgError::new(
            ErrorKind::Timeout,
            format!("preparing the session for the checks: no answer within {CATALOG_TIMEOUT:?}"),
        )),
    }
}
