//! [`PostgresSnapshot`]: the [`DatabaseSnapshot`] adapter.

use crate::config::{PgConfig, SslMode};
use crate::error::PgError;
use crate::ident::{preserved_prefix, quote_ident};
use crate::integrity;
use crate::manifest::DumpFormat;
use crate::state::State;
use crate::tools::{self, PgTools};
use crate::{files, seal};
use async_trait::async_trait;
use chrono::Utc;
use rollback_core::{
    AdapterError, CheckResult, DatabaseSnapshot, ErrorKind, IntegrityChecks, IntegrityReport,
    PreparedRestore, PreservedDatabase, PutAside, SnapshotId, SnapshotInfo,
};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};

/// [`PreservedDatabase::method`] of a database kept aside by a rename.
pub const METHOD_RENAME: &str = "renamed database";
/// [`PreservedDatabase::method`] of a database kept as a `pg_dump` archive (when renaming
/// was not allowed).
pub const METHOD_DUMP: &str = "pg_dump archive";

/// Tuning of [`PostgresSnapshot`]: [`Options::new`] (the defaults) and the setters.
///
/// ```
/// use rollback_postgres::{DumpFormat, Options};
/// use std::time::Duration;
/// let options = Options::new()
///     .format(DumpFormat::Directory)
///     .jobs(4)
///     .dump_timeout(Duration::from_secs(3600));
/// assert_eq!((options.format, options.jobs), (DumpFormat::Directory, 4));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Archive format of new snapshots.
    pub format: DumpFormat,
    /// Parallel jobs for `pg_restore` (and `pg_dump` in directory format).
    pub jobs: u32,
    /// How long one `pg_dump` may run.
    pub dump_timeout: Duration,
    /// How long one `pg_restore` may run.
    pub restore_timeout: Duration,
    /// How long to keep terminating sessions (a pool reconnects) before a rename gives up.
    pub disconnect_timeout: Duration,
    /// A query or transaction running longer than this is named by `diagnose` (long-running
    /// queries, sessions idle in transaction).
    pub long_running: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: DumpFormat::Custom,
            jobs: 2,
            dump_timeout: Duration::from_secs(6 * 3600),
            restore_timeout: Duration::from_secs(6 * 3600),
            disconnect_timeout: Duration::from_secs(15),
            long_running: Duration::from_secs(5),
        }
    }
}

impl Options {
    /// The defaults: custom format, 2 jobs, 6 h per `pg_dump` and per `pg_restore`, 15 s to
    /// disconnect sessions, queries running over 5 s named by `diagnose`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same options with another archive format for new snapshots (default
    /// [`DumpFormat::Custom`]).
    pub fn format(mut self, format: DumpFormat) -> Self {
        self.format = format;
        self
    }

    /// The same options with another number of parallel jobs for `pg_restore` (and
    /// `pg_dump` in directory format); default 2, at least 1 is used.
    pub fn jobs(mut self, jobs: u32) -> Self {
        self.jobs = jobs;
        self
    }

    /// The same options with another limit on one `pg_dump` (default 6 h).
    pub fn dump_timeout(mut self, timeout: Duration) -> Self {
        self.dump_timeout = timeout;
        self
    }

    /// The same options with another limit on one `pg_restore` (default 6 h).
    pub fn restore_timeout(mut self, timeout: Duration) -> Self {
        self.restore_timeout = timeout;
        self
    }

    /// The same options with another limit on disconnecting the sessions on a database
    /// before it is renamed or sealed (default 15 s).
    pub fn disconnect_timeout(mut self, timeout: Duration) -> Self {
        self.disconnect_timeout = timeout;
        self
    }

    /// The same options with another threshold above which `diagnose` names a query or a
    /// transaction as long-running (default 5 s).
    pub fn long_running(mut self, threshold: Duration) -> Self {
        self.long_running = threshold;
        self
    }
}

/// What [`PostgresSnapshot::apply_retention`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Snapshots removed (oldest ones).
    pub removed_snapshots: Vec<SnapshotId>,
    /// `__pre_rollback_` databases dropped (oldest ones).
    pub dropped_databases: Vec<String>,
    /// `.partial-*` directories of interrupted snapshots removed (their writer is gone).
    pub cleared_partials: Vec<PathBuf>,
}

/// Snapshots of one live PostgreSQL (13+) database as `pg_dump` archives under a snapshot
/// root, restored into a staging database while the app serves and switched in by rename.
///
/// Layout of the snapshot root: `<id>/manifest.json` with `<id>/dump.pgdump` (custom
/// format) or `<id>/dump/` (directory format), and `<id>/baseline.measured.json` for a
/// snapshot whose (older) manifest records no integrity baseline; `.partial-<id>/` while a
/// snapshot is written (with a `.writer` record of its pid and host, so that one left by a
/// dead writer is removed by the next `snapshot`, `remove` or `apply_retention`);
/// `preserved/` for the rare `pg_dump` fallback of `preserve_current`;
/// `.rollback-postgres-state.json`, which makes the switch steps idempotent. Whatever the
/// process umask, the directories it creates are `0700` and every file in them `0600`
/// (`pg_dump`'s output included, chmod-ed once written into a `0700` directory); what it did
/// not create is never chmod-ed, `access_warnings` reports it.
///
/// Other clients: `check_prepared` seals the staged copy (no connections but the adapter's
/// read-only session) before verifying it; `restore` switches a verified copy in still
/// sealed, `prove_unchanged` proves from the catalog (oid, `datallowconn`, no session) that
/// it is that copy, untouched, and `open` opens it right before the app starts, saying for
/// how long clients were refused and who was disconnected. `reinstate` leaves what it puts
/// live sealed too. A sealed database is never opened silently: `check_integrity` and
/// `ping` say it is sealed.
///
/// Integrity: `snapshot` records the snapshot's baseline (orphan rows per foreign key,
/// sequences behind their columns) in the manifest and returns what is broken as
/// warnings; `check_integrity` and `check_prepared` (the same checks on the staged copy,
/// online) judge foreign keys and sequences against `IntegrityChecks::baseline`. The
/// manifest carries a SHA-256 of its own content, checked by `verify`.
///
/// Consistency: `pg_dump` reads one MVCC snapshot, so the archive is consistent while the
/// app keeps writing; the manifest's row counts are taken in that same snapshot
/// (`pg_export_snapshot` + `pg_dump --snapshot`), so they match the archive exactly.
/// `pg_dump` holds ACCESS SHARE locks until it ends: a migration's `ALTER TABLE` waits for
/// it, so take the snapshot before the deploy migrates.
///
/// Costs: `snapshot`, `prepare_restore` and `check_prepared` take as long as
/// `pg_dump`/`pg_restore`/the checks and run while the app serves; `preserve_current`,
/// `restore`, `prove_unchanged` and `open` are catalog statements (milliseconds, see
/// `examples/rename_vs_restore.rs`); `check_integrity` scans every table that has a foreign
/// key or an owned sequence, and counts every table when comparing with a snapshot.
///
/// The adapter keeps one session on the maintenance database between calls.
///
/// `Debug` shows the settings without the password:
///
/// ```
/// use rollback_postgres::{PgConfig, PgTools, PostgresSnapshot};
/// let config = PgConfig::from_url("postgres://app:s3cret@db.internal/shop")?;
/// let db = PostgresSnapshot::new(config, "/var/lib/rollback/snapshots", PgTools::in_dir("/usr/bin"));
/// assert!(!format!("{db:?}").contains("s3cret"));
/// # Ok::<(), rollback_postgres::PgError>(())
/// ```
pub struct PostgresSnapshot {
    pub(crate) config: PgConfig,
    pub(crate) root: PathBuf,
    pub(crate) tools: PgTools,
    pub(crate) options: Options,
    pub(crate) lock: tokio::sync::Mutex<()>,
    maintenance_session: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl std::fmt::Debug for PostgresSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config's password is a Secret, whose Debug is redacted.
        f.debug_struct("PostgresSnapshot")
            .field("config", &self.config)
            .field("snapshot_root", &self.root)
            .field("tools", &self.tools)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl PostgresSnapshot {
    /// The adapter for the database in `config`, keeping snapshots under `snapshot_root`.
    /// Connects to nothing yet: `DatabaseSnapshot::ping` and `check_integrity` say
    /// whether the settings work.
    pub fn new(config: PgConfig, snapshot_root: impl Into<PathBuf>, tools: PgTools) -> Self {
        PostgresSnapshot {
            config,
            root: snapshot_root.into(),
            tools,
            options: Options::default(),
            lock: tokio::sync::Mutex::new(()),
            maintenance_session: tokio::sync::Mutex::new(None),
        }
    }

    /// The same adapter with other options.
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// The connection settings.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// The snapshot root.
    pub fn snapshot_root(&self) -> &Path {
        &self.root
    }

    /// Deletes all but the newest `keep_snapshots` snapshots and drops all but the newest
    /// `keep_preserved` `<db>__pre_rollback_*` databases. Never called automatically; both
    /// counts are at least 1, so the newest snapshot and the newest preserved database (the
    /// way back from the last rollback) are always kept. Never touches the live or staging
    /// database. Also removes what interrupted snapshots left (`.partial-*` directories
    /// whose writer process is gone; never one still being written).
    pub async fn apply_retention(
        &self,
        keep_snapshots: usize,
        keep_preserved: usize,
    ) -> Result<RetentionReport, AdapterError> {
        let mut report = RetentionReport::default();
        {
            let _guard = self.lock.lock().await;
            report.cleared_partials = self.clear_abandoned_partials().await;
        }
        for old in self.list().await?.into_iter().skip(keep_snapshots.max(1)) {
            self.remove(&old.id).await?;
            report.removed_snapshots.push(old.id);
        }
        let _guard = self.lock.lock().await;
        let client = self.maintenance().await?;
        let prefix = preserved_prefix(&self.config.dbname);
        let rows = client
            .query("SELECT datname::text FROM pg_database", &[])
            .await
            .map_err(|e| PgError::sql("listing databases", e))?;
        let mut preserved: Vec<String> = rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|n| n.starts_with(&prefix) && *n != self.config.dbname)
            .collect();
        preserved.sort_by(|a, b| b.cmp(a));
        for name in preserved.into_iter().skip(keep_preserved.max(1)) {
            client
                .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", quote_ident(&name)))
                .await
                .map_err(|e| PgError::sql(format!("dropping old preserved database {name}"), e))?;
            tracing::info!(database = %name, "retention dropped an old preserved database");
            report.dropped_databases.push(name);
        }
        Ok(report)
    }

    /// A session on `dbname`, over TLS as [`PgConfig::sslmode`] says (libpq's meaning:
    /// `prefer` falls back to a plain connection when the TLS handshake fails). A refusal
    /// for a TLS reason says which (the CA, the host name, a server without TLS, a server
    /// that takes TLS only, the client certificate).
    pub(crate) async fn connect(&self, dbname: &str) -> Result<Client, PgError> {
        let cfg = self.config.driver_config(dbname);
        let what = || {
            format!(
                "cannot connect to database `{dbname}` at {}:{} as {}",
                self.config.host, self.config.port, self.config.user
            )
        };
        let limit = self.config.connect_timeout + Duration::from_secs(1);
        let timed_out = || {
            PgError::new(
                ErrorKind::Timeout,
                format!("{}: no answer within {:?}", what(), self.config.connect_timeout),
            )
        };
        let Some(tls) = crate::tls::connector(&self.config).await? else {
            return match open(&cfg, NoTls, limit).await {
                None => Err(timed_out()),
                Some(Ok(client)) => Ok(client),
                Some(Err(e)) => {
                    let why = crate::tls::explain(&e, &self.config, None);
                    Err(PgError::connect_explained(what(), e, why))
                }
            };
        };
        match open(&cfg, tls.connector, limit).await {
            None => Err(timed_out()),
            Some(Ok(client)) => Ok(client),
            Some(Err(e))
                if self.config.sslmode == SslMode::Prefer && crate::tls::is_handshake_failure(&e) =>
            {
                let why = crate::tls::explain(&e, &self.config, Some(&tls.files));
                tracing::warn!(
                    database = dbname,
                    "the TLS handshake failed ({}); sslmode=prefer: trying without TLS",
                    why.as_ref().map(|(_, w)| w.as_str()).unwrap_or("no detail")
                );
                let mut plain = cfg.clone();
                plain.ssl_mode(tokio_postgres::config::SslMode::Disable);
                match open(&plain, NoTls, limit).await {
                    None => Err(timed_out()),
                    Some(Ok(client)) => Ok(client),
                    Some(Err(e2)) => {
                        let first = why.map(|(_, w)| w).unwrap_or_else(|| e.to_string());
                        let (kind, second) =
                            crate::tls::explain(&e2, &self.config, None).unwrap_or_else(|| {
                                (
                                    PgError::connect_kind(&e2),
                                    "refused, the server's answer follows".to_owned(),
                                )
                            });
                        Err(PgError::connect_explained(
                            what(),
                            e2,
                            Some((kind, format!("over TLS: {first}; without TLS: {second}"))),
                        ))
                    }
                }
            }
            Some(Err(e)) => {
                let why = crate::tls::explain(&e, &self.config, Some(&tls.files));
                Err(PgError::connect_explained(what(), e, why))
            }
        }
    }

    /// A session on the maintenance database (never the live one, which gets renamed),
    /// kept between calls so that the switch steps do not pay for a new connection.
    pub(crate) async fn maintenance(&self) -> Result<Arc<Client>, PgError> {
        let mut slot = self.maintenance_session.lock().await;
        if let Some(client) = slot.as_ref() {
            if !client.is_closed() && client.simple_query("").await.is_ok() {
                return Ok(client.clone());
            }
        }
        let db = if self.config.maintenance_db == self.config.dbname {
            "template1"
        } else {
            self.config.maintenance_db.as_str()
        };
        let client = Arc::new(self.connect(db).await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    pub(crate) async fn db_oid(client: &Client, name: &str) -> Result<Option<u32>, PgError> {
        let row = seal::within(
            format!("looking up database {name}"),
            client.query_opt("SELECT oid FROM pg_database WHERE datname = $1", &[&name]),
        )
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// `base` if no database has that name, else `base_2`, `base_3`...
    pub(crate) async fn unused_name(client: &Client, base: &str) -> Result<String, PgError> {
        let mut name = base.to_owned();
        let mut n = 2;
        while Self::db_oid(client, &name).await?.is_some() {
            let suffix = format!("_{n}");
            let mut cut = base.len().min(crate::ident::MAX_IDENT_BYTES - suffix.len());
            while !base.is_char_boundary(cut) {
                cut -= 1;
            }
            name = format!("{}{suffix}", &base[..cut]);
            n += 1;
        }
        Ok(name)
    }

    /// Renames database `from` to `to`: refuses new connections on it, terminates its
    /// sessions (again and again, as pools reconnect) until the rename goes through, then
    /// allows connections on it under its new name. Returns who was disconnected.
    pub(crate) async fn rename_database(
        &self,
        client: &Client,
        from: &str,
        to: &str,
    ) -> Result<Vec<String>, PgError> {
        self.rename_db(client, from, to, true).await
    }

    /// [`rename_database`](Self::rename_database), leaving `to` sealed (refusing every
    /// connection) unless `open_after`. On failure `from` accepts connections again only if
    /// it did before.
    /// Polls every 2 ms (until `deadline`, at most 2 s) until no session but ours is on
    /// `db`. Errors end the wait: the rename that follows says what is wrong.
    async fn wait_sessions_gone(&self, client: &Client, db: &str, deadline: Instant) {
        let until = deadline.min(Instant::now() + Duration::from_secs(2));
        while Instant::now() < until {
            let left = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&db],
                )
                .await
                .map(|r| r.get::<_, i64>(0));
            match left {
                Ok(0) | Err(_) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }

    pub(crate) async fn rename_db(
        &self,
        client: &Client,
        from: &str,
        to: &str,
        open_after: bool,
    ) -> Result<Vec<String>, PgError> {
        let (qf, qt) = (quote_ident(from), quote_ident(to));
        let was_open = Self::allows_connections(client, from).await? != Some(false);
        seal::catalog(
            client,
            &format!("ALTER DATABASE {qf} ALLOW_CONNECTIONS false"),
            format!("refusing new connections to {from}"),
        )
        .await?;
        let deadline = Instant::now() + self.options.disconnect_timeout;
        let mut seen: BTreeMap<i32, String> = BTreeMap::new();
        // Sessions this role may not end (another role's, without pg_signal_backend): waited
        // for until the deadline, then named with the grant; never an error that reads as
        // "may not rename" (which would send the caller down a slower path).
        let mut kept: BTreeMap<i32, String> = BTreeMap::new();
        loop {
            let rows = client
                .query(
                    "SELECT pid, usename::text, application_name, client_addr::text, \
                       CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                              OR (usesysid IS NOT NULL AND pg_has_role(current_user, usesysid, 'MEMBER')) \
                              OR (usesysid IS NOT NULL AND pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') \
                                  AND NOT coalesce((SELECT rolsuper FROM pg_roles WHERE oid = usesysid), false)) \
                            THEN pg_terminate_backend(pid) ELSE false END \
                     FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&from],
                )
                .await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    if was_open {
                        self.allow_connections(client, from).await;
                    }
                    return Err(PgError::sql(format!("disconnecting the sessions on {from}"), e));
                }
            };
            let mut terminated = false;
            kept.clear();
            for r in rows {
                let pid: i32 = r.get(0);
                let user: Option<String> = r.get(1);
                let app: Option<String> = r.get(2);
                let addr: Option<String> = r.get(3);
                let ended: Option<bool> = r.get(4);
                let described =
                    seal::describe_session(pid, from, user.as_deref(), app.as_deref(), addr.as_deref());
                if ended == Some(true) {
                    terminated = true;
                    seen.entry(pid).or_insert(format!("disconnected {described}"));
                } else {
                    kept.insert(pid, described);
                }
            }
            if terminated {
                // Wait for the terminated sessions (autovacuum workers too) to be gone before
                // the rename: PostgreSQL's own wait for them sleeps 100 ms at a time, which
                // the app's downtime would pay.
                self.wait_sessions_gone(client, from, deadline).await;
            }
            match seal::catalog(
                client,
                &format!("ALTER DATABASE {qf} RENAME TO {qt}"),
                format!("renaming database {from} to {to}"),
            )
            .await
            {
                Ok(()) => break,
                Err(e) => {
                    if e.sqlstate() == Some("55006") && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    if was_open {
                        self.allow_connections(client, from).await;
                    }
                    if e.sqlstate() == Some("55006") && !kept.is_empty() {
                        return Err(PgError::new(
                            ErrorKind::Conflict,
                            format!(
                                "{from} could not be renamed to {to}: {} session(s) of other roles stayed on it for {:?} \
                                 and this role may not end them ({}); `GRANT pg_signal_backend TO {}` lets rollback \
                                 end them, or end them before rolling back",
                                kept.len(),
                                self.options.disconnect_timeout,
                                kept.values().cloned().collect::<Vec<_>>().join("; "),
                                quote_ident(&self.config.user),
                            ),
                        ));
                    }
                    return Err(e);
                }
            }
        }
        if open_after {
            self.allow_connections(client, to).await;
        }
        for note in seen.values() {
            tracing::info!("{note}");
        }
        Ok(seen.into_values().collect())
    }

    pub(crate) async fn allow_connections(&self, client: &Client, db: &str) {
        let sql = format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", quote_ident(db));
        if let Err(e) = client.batch_execute(&sql).await {
            tracing::warn!(database = %db, error = %PgError::sql("allowing connections", e), "could not allow connections again");
        }
    }

    /// The checks of `check_integrity`, run on database `dbname`: connectivity, the
    /// assertions (read-only), foreign keys and sequences (against `checks.baseline` when
    /// given) and exact row counts against `expect`. A sealed database fails connectivity
    /// with a clear reason (it is never opened here).
    pub(crate) async fn run_checks(
        &self,
        dbname: &str,
        checks: &IntegrityChecks,
        expect: Option<&SnapshotId>,
    ) -> IntegrityReport {
        let started = Instant::now();
        let client = match self.connect(dbname).await {
            Ok(c) => c,
            Err(e) => {
                let detail = match self.sealed_reason(dbname).await {
                    Some(sealed) => format!("{sealed} (nothing was checked: the checks need a connection)"),
                    None => e.to_string(),
                };
                return unreachable(detail);
            }
        };
        self.run_checks_on(&client, dbname, checks, expect, started).await
    }

    /// [`run_checks`](Self::run_checks) on an open session `client` to `dbname`.
    pub(crate) async fn run_checks_on(
        &self,
        client: &Client,
        dbname: &str,
        checks: &IntegrityChecks,
        expect: Option<&SnapshotId>,
        started: Instant,
    ) -> IntegrityReport {
        let mut report = IntegrityReport::default();
        let select = client.query_one("SELECT 1", &[]).await;
        report.checks.push(CheckResult {
            name: "connectivity".to_owned(),
            passed: select.is_ok(),
            detail: match select {
                Ok(_) => format!("SELECT 1 on {dbname} answered in {:?}", started.elapsed()),
                Err(e) => PgError::sql("SELECT 1", e).to_string(),
            },
        });
        report
            .checks
            .extend(integrity::assertions(client, &checks.assertions).await);
        let failed = |name: &str, detail: String| CheckResult {
            name: name.to_owned(),
            passed: false,
            detail,
        };
        let baseline = match &checks.baseline {
            None => Ok(None),
            Some(id) => self.snapshot_baseline(id).await.map(|b| Some((id, b))),
        };
        match baseline {
            Ok(baseline) => {
                let judged = baseline.as_ref().map(|(id, b)| integrity::Baseline {
                    snapshot: id.as_str(),
                    measured: b.as_ref(),
                });
                report.checks.push(match integrity::foreign_keys(client).await {
                    Ok(now) => integrity::check_foreign_keys(&now, judged),
                    Err(e) => failed("foreign keys", format!("could not check: {e}")),
                });
                report.checks.push(match integrity::sequences(client).await {
                    Ok(now) => integrity::check_sequences(&now, judged),
                    Err(e) => failed("sequences", format!("could not check: {e}")),
                });
            }
            Err(e) => {
                let detail = format!("could not read the integrity baseline to check against: {e}");
                report.checks.push(failed("foreign keys", detail.clone()));
                report.checks.push(failed("sequences", detail));
            }
        }
        if let Some(id) = expect {
            let result = match self.existing_snapshot(id).await {
                Ok((_, manifest)) => {
                    integrity::compare_row_counts(client, &manifest.tables, id.as_str()).await
                }
                Err(e) => Err(e),
            };
            report
                .checks
                .push(result.unwrap_or_else(|e| failed("row counts", format!("could not check: {e}"))));
        }
        report
    }

    /// `Ok` when the state file says `staging` (with oid `oid`) was made by
    /// `prepare_restore` for `snapshot`; `Conflict` otherwise.
    pub(crate) fn check_staged_record(
        state: &State,
        staging: &str,
        snapshot: &SnapshotId,
        oid: u32,
    ) -> Result<(), AdapterError> {
        match state.staged.get(staging) {
            Some(s) if s.snapshot == snapshot.as_str() && s.oid == oid => Ok(()),
            Some(s) if s.snapshot != snapshot.as_str() => Err(AdapterError::new(
                ErrorKind::Conflict,
                format!(
                    "staging database `{staging}` holds snapshot {}, not {snapshot}: call prepare_restore again",
                    s.snapshot
                ),
            )),
            Some(_) => Err(AdapterError::new(
                ErrorKind::Conflict,
                format!(
                    "staging database `{staging}` is not the one prepare_restore made for snapshot {snapshot} \
                     (it was dropped and made again by someone else): call prepare_restore again"
                ),
            )),
            None => Err(AdapterError::new(
                ErrorKind::Conflict,
                format!("staging database `{staging}` was not made by prepare_restore: call prepare_restore again"),
            )),
        }
    }

    /// Whether database `name` accepts connections (`None` when it does not exist).
    pub(crate) async fn allows_connections(client: &Client, name: &str) -> Result<Option<bool>, PgError> {
        let row = seal::within(
            format!("looking up database {name}"),
            client.query_opt(
                "SELECT datallowconn FROM pg_database WHERE datname = $1",
                &[&name],
            ),
        )
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Allows connections on `name` when it refuses them (a rename interrupted before its
    /// last step). Returns true when it had to.
    pub(crate) async fn ensure_connectable(&self, client: &Client, name: &str) -> Result<bool, PgError> {
        if Self::allows_connections(client, name).await? != Some(false) {
            return Ok(false);
        }
        client
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                quote_ident(name)
            ))
            .await
            .map_err(|e| PgError::sql(format!("allowing connections on {name} again"), e))?;
        tracing::warn!(database = %name, "allowed connections again on a database left closed by an interrupted rename");
        Ok(true)
    }

    /// Splits what an earlier (interrupted) call recorded as put aside into what was
    /// really renamed (exists now; made connectable if its rename was cut short) and the
    /// first entry whose rename had not happened yet.
    pub(crate) async fn recorded_asides(
        &self,
        client: &Client,
        recorded: Vec<PutAside>,
    ) -> Result<(Vec<PutAside>, Option<PutAside>), PgError> {
        let (mut done, mut pending) = (Vec::new(), None);
        for a in recorded {
            if Self::db_oid(client, &a.location).await?.is_some() {
                self.ensure_connectable(client, &a.location).await?;
                done.push(a);
            } else if pending.is_none() {
                pending = Some(a);
            }
        }
        Ok((done, pending))
    }

    pub(crate) fn conninfo_arg(&self, dbname: &str) -> OsString {
        format!("--dbname={}", self.config.conninfo(dbname)).into()
    }

    /// `pg_dump` of `dbname` into `archive` (custom format unless `format` says otherwise).
    pub(crate) async fn pg_dump(
        &self,
        dbname: &str,
        archive: &Path,
        format: DumpFormat,
        exported_snapshot: Option<&str>,
    ) -> Result<(), PgError> {
        let mut args: Vec<OsString> = vec![
            match format {
                DumpFormat::Custom => "--format=custom".into(),
                DumpFormat::Directory => "--format=directory".into(),
            },
            "--no-password".into(),
        ];
        if format == DumpFormat::Directory && self.options.jobs > 1 {
            args.push(format!("--jobs={}", self.options.jobs).into());
        }
        if let Some(s) = exported_snapshot {
            args.push(format!("--snapshot={s}").into());
        }
        let mut file = OsString::from("--file=");
        file.push(archive.as_os_str());
        args.push(file);
        args.push(self.conninfo_arg(dbname));
        tools::run(
            &self.tools.pg_dump,
            &args,
            self.config.password.as_ref(),
            &self.config.tool_env(),
            self.options.dump_timeout,
        )
        .await
        .map(drop)
    }

    /// `pg_restore` of `archive` into `dbname` with `extra` options.
    pub(crate) async fn pg_restore(
        &self,
        archive: &Path,
        dbname: &str,
        extra: &[&str],
    ) -> Result<(), PgError> {
        let mut args: Vec<OsString> = vec!["--no-password".into(), "--exit-on-error".into()];
        args.extend(extra.iter().map(OsString::from));
        args.push(self.conninfo_arg(dbname));
        args.push(archive.as_os_str().to_owned());
        tools::run(
            &self.tools.pg_restore,
            &args,
            self.config.password.as_ref(),
            &self.config.tool_env(),
            self.options.restore_timeout,
        )
        .await
        .map(drop)
    }

    pub(crate) fn jobs_arg(&self) -> String {
        format!("--jobs={}", self.options.jobs.max(1))
    }

    pub(crate) fn timestamp() -> String {
        Utc::now().format("%Y%m%dT%H%M%S").to_string()
    }
}

#[async_trait]
impl DatabaseSnapshot for PostgresSnapshot {
    async fn snapshot(&self, label: &str) -> Result<SnapshotInfo, AdapterError> {
        self.take_snapshot(label).await
    }

    async fn verify(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        self.verify_snapshot(id).await
    }

    async fn prepare_restore(&self, id: &SnapshotId) -> Result<PreparedRestore, AdapterError> {
        self.stage_snapshot(id).await
    }

    async fn preserve_current(&self, label: &str) -> Result<PreservedDatabase, AdapterError> {
        self.preserve_live(label).await
    }

    /// Runs the checks on the staged copy while the app serves, sealed: connections to it
    /// are refused and every other session terminated before the checks begin, which run
    /// on a read-only session opened before the seal. When every check passed, the copy
    /// stays sealed and is recorded as verified, so that `restore` switches it in sealed
    /// and `prove_unchanged` can prove it unchanged; otherwise it is opened again.
    async fn check_prepared(
        &self,
        prepared: &PreparedRestore,
        checks: &IntegrityChecks,
    ) -> Result<IntegrityReport, AdapterError> {
        self.check_staged(prepared, checks).await
    }

    /// From the maintenance session only: the live database is the staged copy
    /// `check_prepared` verified (same oid), still refusing connections, with no session
    /// on it, sealed since before that verification began. `None` when the live database
    /// is not a verified, sealed copy (an unverified copy, an in-place restore).
    async fn prove_unchanged(&self, prepared: &PreparedRestore) -> Result<Option<CheckResult>, AdapterError> {
        self.prove_switched_in(prepared).await
    }

    /// Allows connections on the live database when it refuses them (a verified copy
    /// switched in, a reinstated database), and says for how long clients were refused
    /// and who was disconnected when it was sealed. Idempotent.
    async fn open(&self) -> Result<Vec<String>, AdapterError> {
        self.open_live().await
    }

    /// Switches the staged copy in by rename (the live database renamed aside first when
    /// `preserve_current` did not). A copy `check_prepared` verified and sealed stays
    /// sealed (`open` opens it); an unverified one (`check_prepared` not called, or failed)
    /// accepts connections at once, as before. Without a staging database, restores in
    /// place.
    async fn restore(&self, prepared: &PreparedRestore) -> Result<Vec<PutAside>, AdapterError> {
        self.switch_in(prepared).await
    }

    /// Puts the preserved database back by rename and leaves it sealed (`open` opens it);
    /// the live one is renamed aside as `<db>__rollback_failed_<utc>` and named with what
    /// it holds. A `pg_dump` fallback is restored as before (open).
    async fn reinstate(&self, preserved: &PreservedDatabase) -> Result<Vec<PutAside>, AdapterError> {
        self.reinstate_preserved(preserved).await
    }

    /// Snapshot directories `0700` and their files `0600` are what this adapter writes;
    /// anything under the snapshot root others can read (an earlier version's snapshots,
    /// a root made by hand) is reported with its fix, never chmod-ed.
    async fn access_warnings(&self) -> Result<Vec<String>, AdapterError> {
        Ok(files::audit(&self.root).await?)
    }

    async fn preserved(&self, label: &str) -> Result<Option<PreservedDatabase>, AdapterError> {
        self.preserved_by(label).await
    }

    async fn live_source(&self) -> Result<Option<SnapshotId>, AdapterError> {
        self.live_snapshot().await
    }

    async fn check_privileges(&self) -> Result<Vec<String>, AdapterError> {
        let client = self.connect(&self.config.dbname).await?;
        let audit = crate::privileges::audit(&client).await?;
        if audit.missing.is_empty() {
            return Ok(audit.checked);
        }
        Err(AdapterError::new(
            ErrorKind::PermissionDenied,
            format!(
                "the role rollback connects as to {} lacks what a checkpoint or a rollback will ask of it: {}; \
                 grant it (as an administrator), or connect as a role that has it (the README's \"Privileges\")",
                self.config.dbname,
                audit
                    .missing
                    .iter()
                    .map(|m| format!("to {}: `{}`", m.what, m.grant))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ))
    }

    async fn check_integrity(&self, checks: &IntegrityChecks) -> Result<IntegrityReport, AdapterError> {
        Ok(self
            .run_checks(&self.config.dbname, checks, checks.expect_snapshot.as_ref())
            .await)
    }

    async fn list(&self) -> Result<Vec<SnapshotInfo>, AdapterError> {
        self.list_snapshots().await
    }

    async fn remove(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        self.remove_snapshot(id).await
    }

    /// PostgreSQL's statistics views: long-running queries and transactions, lock waits
    /// with who blocks them, client connections by state, the cache hit ratio, and the top
    /// statements from `pg_stat_statements` when it is installed. Query text only
    /// normalized (no literal, no comment, the first 120 characters).
    /// A topic that cannot be read is a finding saying why; an error only when no session
    /// can be opened.
    async fn diagnose(&self) -> Result<Vec<rollback_core::Finding>, AdapterError> {
        self.diagnose_database().await
    }

    async fn ping(&self) -> Result<Duration, AdapterError> {
        let client = match self.connect(&self.config.dbname).await {
            Ok(c) => c,
            Err(e) => {
                return Err(match self.sealed_reason(&self.config.dbname).await {
                    Some(sealed) => AdapterError::new(e.kind(), sealed).with_source(e),
                    None => e.into(),
                })
            }
        };
        let started = Instant::now();
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| PgError::sql(format!("SELECT 1 on {}", self.config.dbname), e))?;
        Ok(started.elapsed())
    }
}

/// One connection attempt with `tls` within `limit`, its connection driven by a task of its
/// own; `None` when it took too long.
async fn open<T>(
    cfg: &tokio_postgres::Config,
    tls: T,
    limit: Duration,
) -> Option<Result<Client, tokio_postgres::Error>>
where
    T: MakeTlsConnect<Socket> + Send,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    match tokio::time::timeout(limit, cfg.connect(tls)).await {
        Err(_) => None,
        Ok(Err(e)) => Some(Err(e)),
        Ok(Ok((client, connection))) => {
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "postgres connection ended");
                }
            });
            Some(Ok(client))
        }
    }
}

/// The report of checks that could not run because no session could be had: one failed
/// `connectivity` check saying why.
pub(crate) fn unreachable(detail: String) -> IntegrityReport {
    IntegrityReport {
        checks: vec![CheckResult {
            name: "connectivity".to_owned(),
            passed: false,
            detail,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_adapter_never_shows_the_password() {
        let config = PgConfig::from_url("postgres://u:s3cret@host/db").unwrap();
        let db = PostgresSnapshot::new(config, "/srv/snapshots", PgTools::new("pg_dump", "pg_restore"))
            .with_options(Options::new().jobs(3));
        let shown = format!("{db:?} {db:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("host") && shown.contains("/srv/snapshots") && shown.contains("jobs: 3"),
            "{shown}"
        );
    }

    #[test]
    fn option_setters_set_what_they_name() {
        let o = Options::new()
            .format(DumpFormat::Directory)
            .jobs(8)
            .dump_timeout(Duration::from_secs(1))
            .restore_timeout(Duration::from_secs(2))
            .disconnect_timeout(Duration::from_secs(3))
            .long_running(Duration::from_secs(4));
        assert_eq!(
            o,
            Options {
                format: DumpFormat::Directory,
                jobs: 8,
                dump_timeout: Duration::from_secs(1),
                restore_timeout: Duration::from_secs(2),
                disconnect_timeout: Duration::from_secs(3),
                long_running: Duration::from_secs(4),
            }
        );
    }
}
