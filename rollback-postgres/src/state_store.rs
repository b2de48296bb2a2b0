//! [`PgStateStore`]: a [`StateStore`] in PostgreSQL, so that every deploy box of a team
//! shares one lock, one set of checkpoints and journals, and the reports.

use crate::adapter::PostgresSnapshot;
use crate::config::{PgConfig, SslMode};
use crate::error::PgError;
use crate::ident::{quote_ident, quote_literal, MAX_IDENT_BYTES};
use crate::tools::PgTools;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rollback_core::{
    AdapterError, Checkpoint, CheckpointId, ErrorKind, Journal, LockHolder, RollbackReport, StateStore,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;

/// The schema the tables live in unless [`PgStateStore::schema`] says otherwise.
const DEFAULT_SCHEMA: &str = "rollback";

/// How long one statement may take unless [`PgStateStore::timeout`] says otherwise: the
/// crate's limit on its catalog statements (they take milliseconds; a lock held by another
/// session is the only reason to wait).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer than the server's `statement_timeout` the client waits before it gives
/// up on a statement itself (a server or network that stopped answering).
const CLIENT_MARGIN: Duration = Duration::from_secs(2);

/// How often `try_lock` tries again when the lock was freed between its insert and its read
/// of the holder.
const LOCK_ATTEMPTS: usize = 5;

/// The four tables.
const CHECKPOINTS: &str = "checkpoints";
const JOURNALS: &str = "journals";
const REPORTS: &str = "reports";
const LOCKS: &str = "locks";
const TABLES: [&str; 4] = [CHECKPOINTS, JOURNALS, REPORTS, LOCKS];

/// A [`StateStore`] in PostgreSQL, for teams that roll back from more than one machine: two
/// operators on two deploy boxes that point their orchestrators at the same database (and
/// app) share one lock, so they cannot run at once, and either box finds (and `resume`s) a
/// rollback the other left unfinished.
///
/// # Where it keeps things
///
/// In the database named by the [`PgConfig`] (its `dbname`), schema `rollback` unless
/// [`schema`](Self::schema) says otherwise, four tables created on first use
/// (`CREATE SCHEMA IF NOT EXISTS`, `CREATE TABLE IF NOT EXISTS`, serialized between boxes by
/// a transaction-level advisory lock, skipped when the tables are there):
///
/// | table | key | columns |
/// |---|---|---|
/// | `checkpoints` | `(app, id)` | `created_at`, `doc` (the checkpoint, `jsonb`), `updated_at` |
/// | `journals` | `(app, id)` | `started_at`, `doc` (the journal, `jsonb`), `updated_at` |
/// | `reports` | `(app, id)` | `started_at`, `doc` (the report, `jsonb`), `markdown`, `updated_at` |
/// | `locks` | `app` | `token`, `holder` (the [`LockHolder`], `jsonb`), `taken_at` |
///
/// Several apps share the tables, each seeing only its own rows (the `app` given to
/// [`new`](Self::new)). Lists are newest first by the timestamp, then by id, as
/// [`DirStateStore`](rollback_core::DirStateStore)'s. The documents are the same JSON the
/// directory store writes, so they can be read with SQL (`doc->>'status'`); `jsonb` cannot
/// hold the character U+0000, which is stored as U+FFFD (with a warning in the log).
///
/// **Do not point it at the app's live database**: a rollback renames and restores that
/// one, which would roll the journal back with it and disconnect the store mid-rollback. Use
/// a database of its own (`CREATE DATABASE rollback_state`) on any server every box reaches.
///
/// # The lock
///
/// The lock is a row of `locks`, taken by one statement (`INSERT .. ON CONFLICT (app) DO
/// NOTHING RETURNING`, then, when someone else has it, a read of the holder) and removed by
/// one (`DELETE .. WHERE app = $1 AND token = $2`), so two boxes racing for it cannot both
/// get it. It is not a session-level advisory lock (`pg_try_advisory_lock`), on purpose: an
/// advisory lock ends with the connection that took it, while the orchestrator's lock must
/// outlive the connection and the process. A rollback whose process died keeps its lock
/// (with its journal) so that `resume()` finds both; and telling a stale lock from a live
/// one needs the holder's pid and host, which only the row records. The row is the truth;
/// an advisory lock could only ever mirror it while one connection lives, so none is taken.
/// A lock left by a box that is gone for good is cleared with
/// `Orchestrator::clear_stale_lock(true)`, as with the directory store (a holder on another
/// host is never provably stale).
///
/// # Writes, time limits, errors
///
/// Every write is one statement (an upsert or a delete), hence atomic: another box sees the
/// old row or the new one. Every statement has a time limit ([`timeout`](Self::timeout),
/// 30 s by default, the crate's limit on its catalog statements): the session's
/// `statement_timeout` is set to it, and the client gives up 2 s after that; connecting
/// is limited by [`PgConfig::connect_timeout`]. The store keeps one session between calls
/// and opens a new one when it was closed (a server restart); it connects like
/// [`PostgresSnapshot`] does, TLS included ([`PgConfig`]'s `sslmode`, `sslrootcert`,
/// `sslcert`, `sslkey`). An error names the operation, the table, the app and the server
/// (without the password), and says what to do. Neither errors nor `Debug` show the
/// password.
///
/// # Privileges
///
/// The first use needs `CREATE` on the database (or the schema and tables created once by
/// their owner); after that, `USAGE` on the schema and `SELECT`, `INSERT`, `UPDATE`,
/// `DELETE` on its four tables. `access_warnings` names the tables that `PUBLIC` may use
/// (`REVOKE ALL .. FROM PUBLIC`) and a TCP connection with TLS disabled.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use rollback_core::{Orchestrator, StateStore};
/// use rollback_postgres::{PgConfig, PgStateStore};
/// use std::time::Duration;
/// let config = PgConfig::from_url(
///     "postgres://rollback:secret@ops-db.internal/rollback_state?sslmode=verify-full&sslrootcert=/etc/ssl/ops-ca.pem",
/// )?;
/// let state = PgStateStore::new(config, "shop").timeout(Duration::from_secs(10));
/// if let Some(holder) = state.lock_holder().await? {
///     println!("a rollback is running: {holder}");
/// }
/// let _builder = Orchestrator::builder("shop").state(state); // .database(..).code(..)...
/// # Ok(()) }
/// ```
pub struct PgStateStore {
    /// Connects the way the snapshot adapter does (TLS, `sslmode=prefer`'s fallback, the
    /// explanation of a refused connection); nothing else of it is used.
    connector: PostgresSnapshot,
    app: String,
    schema: String,
    timeout: Duration,
    session: tokio::sync::Mutex<Option<Arc<Client>>>,
    /// True once the tables are known to exist (reset when a statement finds one missing).
    ready: AtomicBool,
}

impl std::fmt::Debug for PgStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config's password is a Secret, whose Debug is redacted.
        f.debug_struct("PgStateStore")
            .field("config", self.config())
            .field("app", &self.app)
            .field("schema", &self.schema)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PgStateStore {
    /// The state of `app` in the database of `config`, schema `rollback`, 30 s per
    /// statement. Connects to nothing yet: the first call connects and creates the tables
    /// when they are missing.
    pub fn new(config: PgConfig, app: &str) -> Self {
        PgStateStore {
            connector: PostgresSnapshot::new(config, "", PgTools::new("pg_dump", "pg_restore")),
            app: app.to_owned(),
            schema: DEFAULT_SCHEMA.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            session: tokio::sync::Mutex::new(None),
            ready: AtomicBool::new(false),
        }
    }

    /// The same store in another schema (default `rollback`; 1 to 63 bytes, any
    /// characters: it is quoted). Every box of a team must use the same one.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self.ready = AtomicBool::new(false);
        self
    }

    /// The same store with another limit on each statement (default 30 s; at least 1 ms).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit.max(Duration::from_millis(1));
        self
    }

    /// The connection settings.
    pub fn config(&self) -> &PgConfig {
        self.connector.config()
    }

    /// The app whose state this is.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The schema of the tables.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// `"schema".table`, quoted for SQL.
    fn table(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(table))
    }

    /// `schema.table` as the errors name it (the schema alone for `""`).
    fn shown(&self, table: &str) -> String {
        if table.is_empty() {
            self.schema.clone()
        } else {
            format!("{}.{table}", self.schema)
        }
    }

    /// Where: the app and the server, without the password.
    fn place(&self) -> String {
        format!("app `{}` on {}", self.app, self.config().redacted())
    }

    /// The session, opened (with its `statement_timeout`) when there is none or it was
    /// closed; true when it was opened by this call.
    async fn session(&self) -> Result<(Arc<Client>, bool), AdapterError> {
        let mut slot = self.session.lock().await;
        if let Some(client) = slot.as_ref() {
            if !client.is_closed() {
                return Ok((client.clone(), false));
            }
        }
        *slot = None;
        let dbname = self.config().dbname.clone();
        let client = self.connector.connect(&dbname).await.map_err(|e| {
            let kind = e.kind();
            AdapterError::new(
                kind,
                format!(
                    "state store (schema `{}`, app `{}`): {e}; check the connection settings and that this \
                     host reaches the server (every deploy box must use the same database)",
                    self.schema, self.app
                ),
            )
            .with_source(e)
        })?;
        let millis = self.timeout.as_millis().clamp(1, i32::MAX as u128);
        self.within(
            "",
            "setting statement_timeout on a new session",
            client.batch_execute(&format!("SET statement_timeout = {millis}")),
        )
        .await?;
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok((client, true))
    }

    /// Forgets `client` as the session (the next call opens another).
    async fn forget(&self, client: &Arc<Client>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, client)) {
            *slot = None;
        }
    }

    /// Creates the schema and tables unless they are known to exist.
    async fn ensure_tables(&self, client: &Client) -> Result<(), AdapterError> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.schema.is_empty() || self.schema.len() > MAX_IDENT_BYTES {
            return Err(AdapterError::new(
                ErrorKind::InvalidInput,
                format!(
                    "state store schema name `{}` is {} bytes long: PostgreSQL takes 1 to {MAX_IDENT_BYTES}; \
                     choose another with PgStateStore::schema",
                    self.schema,
                    self.schema.len()
                ),
            ));
        }
        let present: i64 = self
            .within(
                "",
                "looking for the state tables",
                client.query_one(
                    "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = ANY($2)",
                    &[&self.schema, &&TABLES[..]],
                ),
            )
            .await?
            .get(0);
        if present < TABLES.len() as i64 {
            // One implicit transaction; the advisory lock (released at its end) keeps two
            // boxes' first uses from racing on the catalog.
            let ddl = format!(
                "SELECT pg_advisory_xact_lock(hashtext({lock_key}));
                 CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {checkpoints} (
                     app text NOT NULL, id text NOT NULL, created_at timestamptz NOT NULL,
                     doc jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
                     PRIMARY KEY (app, id));
                 CREATE TABLE IF NOT EXISTS {journals} (
                     app text NOT NULL, id text NOT NULL, started_at timestamptz NOT NULL,
                     doc jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
                     PRIMARY KEY (app, id));
                 CREATE TABLE IF NOT EXISTS {reports} (
                     app text NOT NULL, id text NOT NULL, started_at timestamptz NOT NULL,
                     doc jsonb NOT NULL, markdown text NOT NULL,
                     updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (app, id));
                 CREATE TABLE IF NOT EXISTS {locks} (
                     app text PRIMARY KEY, token text NOT NULL, holder jsonb NOT NULL,
                     taken_at timestamptz NOT NULL DEFAULT now());",
                lock_key = quote_literal(&format!("rollback-postgres state store {}", self.schema)),
                schema = quote_ident(&self.schema),
                checkpoints = self.table(CHECKPOINTS),
                journals = self.table(JOURNALS),
                reports = self.table(REPORTS),
                locks = self.table(LOCKS),
            );
            self.within(
                "",
                "creating the schema and its tables",
                client.batch_execute(&ddl),
            )
            .await?;
            tracing::info!(schema = %self.schema, "state store tables ready");
        }
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Awaits one statement on `table` within the time limit.
    async fn within<T>(
        &self,
        table: &str,
        op: &str,
        query: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, AdapterError> {
        match tokio::time::timeout(self.timeout + CLIENT_MARGIN, query).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.sql_error(table, op, e)),
            Err(_) => Err(AdapterError::new(
                ErrorKind::Timeout,
                format!(
                    "state store: {op} in `{}` ({}): no answer within {:?}; {}",
                    self.shown(table),
                    self.place(),
                    self.timeout + CLIENT_MARGIN,
                    self.advice(ErrorKind::Timeout, table)
                ),
            )),
        }
    }

    /// A failed statement as an [`AdapterError`]: the operation, the table, where, the
    /// server's answer, what to do.
    fn sql_error(&self, table: &str, op: &str, e: tokio_postgres::Error) -> AdapterError {
        if let Some(db) = e.as_db_error() {
            // Undefined table or schema: someone dropped them; make them again next time.
            if matches!(db.code().code(), "42P01" | "3F000") {
                self.ready.store(false, Ordering::Release);
            }
        }
        let pg = PgError::sql(
            format!("state store: {op} in `{}` ({})", self.shown(table), self.place()),
            e,
        );
        let kind = pg.kind();
        AdapterError::new(kind, format!("{pg}; {}", self.advice(kind, table))).with_source(pg)
    }

    /// What to do about a failure of `kind` on `table`.
    fn advice(&self, kind: ErrorKind, table: &str) -> String {
        let config = self.config();
        match kind {
            ErrorKind::PermissionDenied => format!(
                "grant role `{}` USAGE on schema `{}` and SELECT, INSERT, UPDATE, DELETE on its tables \
                 (the first use also needs CREATE on database `{}`, or the tables created once by their owner)",
                config.user, self.schema, config.dbname
            ),
            ErrorKind::Timeout => format!(
                "another session may hold a lock on `{}` (see pg_locks and pg_stat_activity); retry, or give the \
                 store a longer timeout (now {:?})",
                self.shown(table),
                self.timeout
            ),
            ErrorKind::Unavailable => {
                "check that the server is up and reachable from this host, then retry".to_owned()
            }
            ErrorKind::NotFound => format!(
                "the schema or table is missing (dropped?): the next call creates it again; check that database \
                 `{}` is the one every deploy box uses",
                config.dbname
            ),
            ErrorKind::Conflict => "another session changed it at the same moment; retry".to_owned(),
            _ => "the statement changed nothing (each write is one statement); see the server's answer".to_owned(),
        }
    }

    /// Runs `query` on the session (after making the tables when `create`), within the time
    /// limit. A kept session found closed (a server restart) is replaced and the query run
    /// once more: every statement here may run twice (upserts, deletes by key, the lock's
    /// insert by token).
    async fn run<T, F, Fut>(&self, table: &str, op: &str, create: bool, query: F) -> Result<T, AdapterError>
    where
        F: Fn(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let mut retried = false;
        loop {
            let (client, fresh) = self.session().await?;
            let result = async {
                if create {
                    self.ensure_tables(&client).await?;
                }
                self.within(table, op, query(client.clone())).await
            }
            .await;
            match result {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let closed = client.is_closed();
                    if closed || e.kind() == ErrorKind::Timeout {
                        self.forget(&client).await;
                    }
                    if closed && !fresh && !retried {
                        tracing::debug!(error = %e, "state store session was closed; reconnecting");
                        retried = true;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Every document of `table` for this app, newest first by `sort` then id.
    async fn read_all<T: DeserializeOwned>(
        &self,
        table: &str,
        sort: &str,
        what: &str,
    ) -> Result<Vec<T>, AdapterError> {
        let sql = format!(
            "SELECT id, doc::text FROM {} WHERE app = $1 ORDER BY {sort} DESC, id COLLATE \"C\" DESC",
            self.table(table)
        );
        let op = format!("listing {what}s");
        let (sql, app) = (sql.as_str(), self.app.as_str());
        let rows = self
            .run(
                table,
                &op,
                true,
                move |c| async move { c.query(sql, &[&app]).await },
            )
            .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.get(0);
                let doc: String = row.get(1);
                self.parse(table, &id, what, &doc)
            })
            .collect()
    }

    /// A stored document, or `Corrupt` naming its row and what to do.
    fn parse<T: DeserializeOwned>(
        &self,
        table: &str,
        id: &str,
        what: &str,
        doc: &str,
    ) -> Result<T, AdapterError> {
        serde_json::from_str(doc).map_err(|e| {
            AdapterError::new(
                ErrorKind::Corrupt,
                format!(
                    "row `{id}` of `{}` ({}) is not a valid {what} ({e}); fix or delete that row to continue",
                    self.shown(table),
                    self.place()
                ),
            )
            .with_source(e)
        })
    }

    /// Inserts or replaces row `id` of `table` (whose sort column is `sort`).
    async fn upsert(
        &self,
        table: &str,
        sort: &str,
        id: &str,
        at: DateTime<Utc>,
        doc: &str,
        op: &str,
    ) -> Result<(), AdapterError> {
        let sql = format!(
            "INSERT INTO {} (app, id, {sort}, doc) VALUES ($1, $2, $3::text::timestamptz, $4::text::jsonb) \
             ON CONFLICT (app, id) DO UPDATE SET {sort} = excluded.{sort}, doc = excluded.doc, updated_at = now()",
            self.table(table)
        );
        let at = timestamp(at);
        let (sql, app, at) = (sql.as_str(), self.app.as_str(), at.as_str());
        self.run(table, op, true, move |c| async move {
            c.execute(sql, &[&app, &id, &at, &doc]).await
        })
        .await
        .map(drop)
    }

    /// The lock's holder, read.
    async fn read_holder(&self) -> Result<Option<LockHolder>, AdapterError> {
        let sql = format!("SELECT holder::text FROM {} WHERE app = $1", self.table(LOCKS));
        let (sql, app) = (sql.as_str(), self.app.as_str());
        let row = self
            .run(LOCKS, "reading the lock holder", true, move |c| async move {
                c.query_opt(sql, &[&app]).await
            })
            .await?;
        row.map(|r| self.parse(LOCKS, &self.app, "lock holder", &r.get::<_, String>(0)))
            .transpose()
    }
}

#[async_trait]
impl StateStore for PgStateStore {
    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), AdapterError> {
        let doc = document(checkpoint, "checkpoint")?;
        let op = format!("saving checkpoint `{}`", checkpoint.id);
        self.upsert(
            CHECKPOINTS,
            "created_at",
            checkpoint.id.as_str(),
            checkpoint.created_at,
            &doc,
            &op,
        )
        .await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, AdapterError> {
        let mut all: Vec<Checkpoint> = self.read_all(CHECKPOINTS, "created_at", "checkpoint").await?;
        // The database orders by microseconds; the documents keep nanoseconds: the final
        // order is DirStateStore's exactly.
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(all)
    }

    async fn remove_checkpoint(&self, id: &CheckpointId) -> Result<(), AdapterError> {
        let sql = format!(
            "DELETE FROM {} WHERE app = $1 AND id = $2",
            self.table(CHECKPOINTS)
        );
        let op = format!("removing checkpoint `{id}`");
        let (sql, app, id) = (sql.as_str(), self.app.as_str(), id.as_str());
        self.run(CHECKPOINTS, &op, true, move |c| async move {
            c.execute(sql, &[&app, &id]).await
        })
        .await
        .map(drop)
    }

    async fn save_journal(&self, journal: &Journal) -> Result<(), AdapterError> {
        let doc = document(journal, "journal")?;
        let op = format!("saving the journal of rollback `{}`", journal.id);
        self.upsert(
            JOURNALS,
            "started_at",
            journal.id.as_str(),
            journal.started_at,
            &doc,
            &op,
        )
        .await
    }

    async fn journals(&self) -> Result<Vec<Journal>, AdapterError> {
        let mut all: Vec<Journal> = self.read_all(JOURNALS, "started_at", "journal").await?;
        all.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        Ok(all)
    }

    /// Stores the report (its JSON and its Markdown) in `reports`; returns where:
    /// `postgres://user@host:port/db rollback.reports, app = 'shop', id = '<rollback id>'`.
    async fn save_report(&self, report: &RollbackReport) -> Result<String, AdapterError> {
        let doc = document(report, "report")?;
        let markdown = report.to_markdown().replace('\0', "\u{fffd}");
        let sql = format!(
            "INSERT INTO {} (app, id, started_at, doc, markdown) \
             VALUES ($1, $2, $3::text::timestamptz, $4::text::jsonb, $5) \
             ON CONFLICT (app, id) DO UPDATE SET started_at = excluded.started_at, doc = excluded.doc, \
             markdown = excluded.markdown, updated_at = now()",
            self.table(REPORTS)
        );
        let id = report.id.as_str();
        let at = timestamp(report.started_at);
        let op = format!("saving the report of rollback `{id}`");
        let (sql, app, at, doc, markdown) = (
            sql.as_str(),
            self.app.as_str(),
            at.as_str(),
            doc.as_str(),
            markdown.as_str(),
        );
        self.run(REPORTS, &op, true, move |c| async move {
            c.execute(sql, &[&app, &id, &at, &doc, &markdown]).await
        })
        .await?;
        Ok(format!(
            "{} {}, app = '{}', id = '{id}'",
            self.config().redacted(),
            self.shown(REPORTS),
            self.app
        ))
    }

    /// One `INSERT .. ON CONFLICT DO NOTHING RETURNING`: taken when it inserted; otherwise
    /// the holder is read (and the insert tried again when the lock was freed in between).
    /// A lock already held with `holder`'s token counts as taken (an insert whose answer
    /// was lost with the connection, then run again).
    async fn try_lock(&self, holder: &LockHolder) -> Result<Option<LockHolder>, AdapterError> {
        let doc = document(holder, "lock holder")?;
        let sql = format!(
            "INSERT INTO {} (app, token, holder) VALUES ($1, $2, $3::text::jsonb) \
             ON CONFLICT (app) DO NOTHING RETURNING token",
            self.table(LOCKS)
        );
        let (sql, app, token, doc) = (
            sql.as_str(),
            self.app.as_str(),
            holder.token.as_str(),
            doc.as_str(),
        );
        for _ in 0..LOCK_ATTEMPTS {
            let inserted = self
                .run(LOCKS, "taking the lock", true, move |c| async move {
                    c.query_opt(sql, &[&app, &token, &doc]).await
                })
                .await?;
            if inserted.is_some() {
                return Ok(None);
            }
            match self.read_holder().await? {
                Some(current) if current.token == holder.token => return Ok(None),
                Some(current) => return Ok(Some(current)),
                None => continue,
            }
        }
        Err(AdapterError::new(
            ErrorKind::Conflict,
            format!(
                "state store: the lock in `{}` ({}) was taken and freed {LOCK_ATTEMPTS} times while taking it; \
                 another box is busy with it: try again",
                self.shown(LOCKS),
                self.place()
            ),
        ))
    }

    async fn lock_holder(&self) -> Result<Option<LockHolder>, AdapterError> {
        self.read_holder().await
    }

    /// One `DELETE .. WHERE app = $1 AND token = $2`: a lock held by another token stays.
    async fn unlock(&self, token: &str) -> Result<(), AdapterError> {
        let sql = format!("DELETE FROM {} WHERE app = $1 AND token = $2", self.table(LOCKS));
        let (sql, app) = (sql.as_str(), self.app.as_str());
        self.run(LOCKS, "removing the lock", true, move |c| async move {
            c.execute(sql, &[&app, &token]).await
        })
        .await
        .map(drop)
    }

    /// The store's tables that `PUBLIC` (every role of the server) may use, with the fix,
    /// and a TCP connection with TLS disabled to a host other than this one (journals name
    /// databases and paths). Creates nothing: tables not made yet are not named.
    async fn access_warnings(&self) -> Result<Vec<String>, AdapterError> {
        let config = self.config();
        let mut found: Vec<String> = tls_warning(config).into_iter().collect();
        let schema = self.schema.as_str();
        let rows = self
            .run("", "looking up who may use the state tables", false, move |c| async move {
                c.query(
                    "SELECT c.relname::text, string_agg(DISTINCT a.privilege_type, ', ' ORDER BY a.privilege_type) \
                     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, \
                     LATERAL aclexplode(c.relacl) a \
                     WHERE n.nspname = $1 AND c.relname = ANY($2) AND a.grantee = 0 \
                     GROUP BY c.relname ORDER BY 1",
                    &[&schema, &&TABLES[..]],
                )
                .await
            })
            .await?;
        for row in rows {
            let table: String = row.get(0);
            let privileges: String = row.get(1);
            found.push(format!(
                "PUBLIC (every role on {}) may {privileges} on `{}`: REVOKE ALL ON {} FROM PUBLIC",
                config.redacted(),
                self.shown(&table),
                self.table(&table)
            ));
        }
        Ok(found)
    }
}

/// The warning for a TCP connection to another host with TLS disabled.
fn tls_warning(config: &PgConfig) -> Option<String> {
    let local =
        config.host.starts_with('/') || matches!(config.host.as_str(), "localhost" | "127.0.0.1" | "::1");
    (config.sslmode == SslMode::Disable && !local).then(|| {
        format!(
            "the state store's connection to {} has TLS disabled: journals and reports (database names, paths, \
             who ran what) cross the network in clear; use sslmode=verify-full (or at least require)",
            config.redacted()
        )
    })
}

/// `value` as the JSON text of a `jsonb` document; U+0000, which `jsonb` cannot hold, is
/// replaced by U+FFFD (with a warning).
fn document<T: Serialize>(value: &T, what: &str) -> Result<String, AdapterError> {
    let encode_error = |e: serde_json::Error| {
        AdapterError::new(
            ErrorKind::Failed,
            format!("state store: cannot encode the {what} as JSON ({e}); this is a bug, please report it"),
        )
        .with_source(e)
    };
    let text = serde_json::to_string(value).map_err(encode_error)?;
    // serde_json writes U+0000 as the escape `\u0000` (and nothing else contains that text
    // but a string holding a backslash before `u0000`, which the slow path leaves alone).
    if !text.contains("\\u0000") {
        return Ok(text);
    }
    let mut tree: serde_json::Value = serde_json::from_str(&text).map_err(encode_error)?;
    if replace_nul(&mut tree) {
        tracing::warn!(
            what,
            "the state store replaced U+0000 characters by U+FFFD (jsonb cannot hold them)"
        );
    }
    serde_json::to_string(&tree).map_err(encode_error)
}

/// Replaces U+0000 by U+FFFD in every string and key of `value`; true when it did.
fn replace_nul(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', "\u{fffd}");
            true
        }
        serde_json::Value::Array(items) => items.iter_mut().fold(false, |any, v| replace_nul(v) | any),
        serde_json::Value::Object(map) => {
            let mut any = false;
            let entries = std::mem::take(map);
            for (key, mut v) in entries {
                any |= replace_nul(&mut v);
                let key = if key.contains('\0') {
                    any = true;
                    key.replace('\0', "\u{fffd}")
                } else {
                    key
                };
                map.insert(key, v);
            }
            any
        }
        _ => false,
    }
}

/// A timestamp as PostgreSQL reads it (`2026-01-02T03:04:05.123456789Z`; the server keeps
/// microseconds).
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let config = PgConfig::from_url("postgres://u:s3cret@ops-db/state").unwrap();
        let store = PgStateStore::new(config, "shop").schema("team_state");
        let shown = format!("{store:?} {store:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("shop") && shown.contains("team_state") && shown.contains("ops-db"),
            "{shown}"
        );
    }

    #[test]
    fn nul_characters_become_replacement_characters_and_nothing_else_changes() {
        let value = serde_json::json!({"a\u{0}": ["x\u{0}y", 1, 2.5, {"k": "\\u0000 stays"}], "n": null});
        let doc = document(&value, "test").unwrap();
        assert!(!doc.contains("\\u0000\""), "{doc}");
        let back: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"a\u{fffd}": ["x\u{fffd}y", 1, 2.5, {"k": "\\u0000 stays"}], "n": null})
        );
        let plain = serde_json::json!({"k": "\\u0000 stays"});
        assert_eq!(
            document(&plain, "test").unwrap(),
            serde_json::to_string(&plain).unwrap()
        );
    }

    #[test]
    fn a_schema_name_is_quoted_into_every_table_name() {
        let config = PgConfig::new("h", 5432, "u", "d");
        let store = PgStateStore::new(config, "a").schema("Team \"x\"");
        assert_eq!(store.table(LOCKS), "\"Team \"\"x\"\"\".\"locks\"");
        assert_eq!(store.schema_name(), "Team \"x\"");
    }

    #[test]
    fn tls_disabled_to_another_host_is_a_warning_and_nothing_else_is() {
        let remote = PgConfig::new("ops-db.internal", 5432, "u", "state").password("s3cret");
        let warning = tls_warning(&remote.clone().sslmode(SslMode::Disable)).expect("a warning");
        assert!(
            warning.contains("postgres://u@ops-db.internal:5432/state")
                && warning.contains("sslmode=verify-full")
        );
        assert!(!warning.contains("s3cret"), "{warning}");
        for quiet in [
            remote.clone(),
            remote.clone().sslmode(SslMode::Require),
            PgConfig::new("127.0.0.1", 5432, "u", "state").sslmode(SslMode::Disable),
            PgConfig::new("/run/postgresql", 5432, "u", "state").sslmode(SslMode::Disable),
        ] {
            assert_eq!(tls_warning(&quiet), None, "{quiet:?}");
        }
    }

    #[test]
    fn timestamps_keep_their_nanoseconds_for_the_server_to_round() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(timestamp(at), "2023-11-14T22:13:20.123456789Z");
    }
}
