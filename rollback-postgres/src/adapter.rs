//! [`PostgresSnapshot`]: the [`DatabaseSnapshot`] adapter.

use crate::config::PgConfig;
use crate::dbprops;
use crate::error::PgError;
use crate::ident::{derived_name, preserved_prefix, quote_ident, staging_name};
use crate::integrity;
use crate::manifest::{hash_file, hash_tree, DumpFormat, Manifest, MANIFEST_FILE};
use crate::state::{LiveRecord, PreservedRecord, StagedRecord, State};
use crate::tools::{self, PgTools};
use async_trait::async_trait;
use chrono::Utc;
use rollback_core::{
    AdapterError, CheckResult, DatabaseSnapshot, ErrorKind, IntegrityChecks, IntegrityReport,
    PreparedRestore, PreservedDatabase, SnapshotId, SnapshotInfo,
};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

/// [`PreservedDatabase::method`] of a database kept aside by a rename.
pub const METHOD_RENAME: &str = "renamed database";
/// [`PreservedDatabase::method`] of a database kept as a `pg_dump` archive (when renaming
/// was not allowed).
pub const METHOD_DUMP: &str = "pg_dump archive";

/// Tuning of [`PostgresSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: DumpFormat::Custom,
            jobs: 2,
            dump_timeout: Duration::from_secs(6 * 3600),
            restore_timeout: Duration::from_secs(6 * 3600),
            disconnect_timeout: Duration::from_secs(15),
        }
    }
}

/// What [`PostgresSnapshot::apply_retention`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Snapshots removed (oldest ones).
    pub removed_snapshots: Vec<SnapshotId>,
    /// `__pre_rollback_` databases dropped (oldest ones).
    pub dropped_databases: Vec<String>,
}

/// Snapshots of one live PostgreSQL (13+) database as `pg_dump` archives under a snapshot
/// root, restored into a staging database while the app serves and switched in by rename.
///
/// Layout of the snapshot root: `<id>/manifest.json` with `<id>/dump.pgdump` (custom
/// format) or `<id>/dump/` (directory format); `preserved/` for the rare `pg_dump`
/// fallback of `preserve_current`; `.rollback-postgres-state.json`, which makes the switch
/// steps idempotent.
///
/// Consistency: `pg_dump` reads one MVCC snapshot, so the archive is consistent while the
/// app keeps writing; the manifest's row counts are taken in that same snapshot
/// (`pg_export_snapshot` + `pg_dump --snapshot`), so they match the archive exactly.
#[derive(Debug)]
pub struct PostgresSnapshot {
    config: PgConfig,
    root: PathBuf,
    tools: PgTools,
    options: Options,
    lock: tokio::sync::Mutex<()>,
}

impl PostgresSnapshot {
    /// The adapter for the database in `config`, keeping snapshots under `snapshot_root`.
    pub fn new(config: PgConfig, snapshot_root: impl Into<PathBuf>, tools: PgTools) -> Self {
        PostgresSnapshot {
            config,
            root: snapshot_root.into(),
            tools,
            options: Options::default(),
            lock: tokio::sync::Mutex::new(()),
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

    /// The manifest of snapshot `id`.
    pub async fn manifest(&self, id: &SnapshotId) -> Result<Manifest, AdapterError> {
        let dir = self.snapshot_dir(id)?;
        Ok(Manifest::load(&dir).await?)
    }

    /// Deletes all but the newest `keep_snapshots` snapshots and drops all but the newest
    /// `keep_preserved` `<db>__pre_rollback_*` databases. Never called automatically; both
    /// counts are at least 1, so the newest snapshot and the newest preserved database (the
    /// way back from the last rollback) are always kept. Never touches the live or staging
    /// database.
    pub async fn apply_retention(
        &self,
        keep_snapshots: usize,
        keep_preserved: usize,
    ) -> Result<RetentionReport, AdapterError> {
        let mut report = RetentionReport::default();
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

    fn snapshot_dir(&self, id: &SnapshotId) -> Result<PathBuf, PgError> {
        let s = id.as_str();
        if s.is_empty() || s.starts_with('.') || s.contains('/') || s.contains('\\') || s == "preserved" {
            return Err(PgError::new(
                ErrorKind::NotFound,
                format!("snapshot `{s}` does not exist (not a snapshot id): run list() to see snapshots"),
            ));
        }
        Ok(self.root.join(s))
    }

    async fn existing_snapshot(&self, id: &SnapshotId) -> Result<(PathBuf, Manifest), PgError> {
        let dir = self.snapshot_dir(id)?;
        if !tokio::fs::try_exists(dir.join(MANIFEST_FILE))
            .await
            .unwrap_or(false)
        {
            return Err(PgError::new(
                ErrorKind::NotFound,
                format!(
                    "snapshot `{id}` does not exist in {}: run list() to see snapshots",
                    self.root.display()
                ),
            ));
        }
        let manifest = Manifest::load(&dir).await?;
        Ok((dir, manifest))
    }

    async fn connect(&self, dbname: &str) -> Result<Client, PgError> {
        let cfg = self.config.driver_config(dbname)?;
        let what = || {
            format!(
                "cannot connect to database `{dbname}` at {}:{} as {}",
                self.config.host, self.config.port, self.config.user
            )
        };
        let connecting = cfg.connect(NoTls);
        let (client, connection) = match tokio::time::timeout(
            self.config.connect_timeout + Duration::from_secs(1),
            connecting,
        )
        .await
        {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(PgError::connect(what(), e)),
            Err(_) => {
                return Err(PgError::new(
                    ErrorKind::Timeout,
                    format!("{}: no answer within {:?}", what(), self.config.connect_timeout),
                ))
            }
        };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection ended");
            }
        });
        Ok(client)
    }

    /// A session on the maintenance database (never the live one, which gets renamed).
    async fn maintenance(&self) -> Result<Client, PgError> {
        let db = if self.config.maintenance_db == self.config.dbname {
            "template1"
        } else {
            self.config.maintenance_db.as_str()
        };
        self.connect(db).await
    }

    async fn db_oid(client: &Client, name: &str) -> Result<Option<u32>, PgError> {
        let row = client
            .query_opt("SELECT oid FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(|e| PgError::sql(format!("looking up database {name}"), e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// `base` if no database has that name, else `base_2`, `base_3`...
    async fn unused_name(client: &Client, base: &str) -> Result<String, PgError> {
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
    async fn rename_database(&self, client: &Client, from: &str, to: &str) -> Result<Vec<String>, PgError> {
        let (qf, qt) = (quote_ident(from), quote_ident(to));
        client
            .batch_execute(&format!("ALTER DATABASE {qf} ALLOW_CONNECTIONS false"))
            .await
            .map_err(|e| PgError::sql(format!("refusing new connections to {from}"), e))?;
        let deadline = Instant::now() + self.options.disconnect_timeout;
        let mut seen: BTreeMap<i32, String> = BTreeMap::new();
        loop {
            let rows = client
                .query(
                    "SELECT pid, usename::text, application_name, client_addr::text, pg_terminate_backend(pid) \
                     FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&from],
                )
                .await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    self.allow_connections(client, from).await;
                    return Err(PgError::sql(format!("disconnecting the sessions on {from}"), e));
                }
            };
            for r in rows {
                let pid: i32 = r.get(0);
                let user: Option<String> = r.get(1);
                let app: Option<String> = r.get(2);
                let addr: Option<String> = r.get(3);
                seen.entry(pid).or_insert_with(|| {
                    format!(
                        "disconnected session pid {pid} on {from} (user {}, application `{}`, client {})",
                        user.as_deref().unwrap_or("?"),
                        app.as_deref().unwrap_or(""),
                        addr.as_deref().unwrap_or("local socket")
                    )
                });
            }
            match client
                .batch_execute(&format!("ALTER DATABASE {qf} RENAME TO {qt}"))
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    let e = PgError::sql(format!("renaming database {from} to {to}"), e);
                    if e.sqlstate() == Some("55006") && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    self.allow_connections(client, from).await;
                    return Err(e);
                }
            }
        }
        self.allow_connections(client, to).await;
        for note in seen.values() {
            tracing::info!("{note}");
        }
        Ok(seen.into_values().collect())
    }

    async fn allow_connections(&self, client: &Client, db: &str) {
        let sql = format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", quote_ident(db));
        if let Err(e) = client.batch_execute(&sql).await {
            tracing::warn!(database = %db, error = %PgError::sql("allowing connections", e), "could not allow connections again");
        }
    }

    fn conninfo_arg(&self, dbname: &str) -> Result<OsString, PgError> {
        Ok(format!("--dbname={}", self.config.conninfo(dbname)?).into())
    }

    /// `pg_dump` of `dbname` into `archive` (custom format unless `format` says otherwise).
    async fn pg_dump(
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
        args.push(self.conninfo_arg(dbname)?);
        tools::run(
            &self.tools.pg_dump,
            &args,
            self.config.password.as_ref(),
            self.options.dump_timeout,
        )
        .await
        .map(drop)
    }

    /// `pg_restore` of `archive` into `dbname` with `extra` options.
    async fn pg_restore(&self, archive: &Path, dbname: &str, extra: &[&str]) -> Result<(), PgError> {
        let mut args: Vec<OsString> = vec!["--no-password".into(), "--exit-on-error".into()];
        args.extend(extra.iter().map(OsString::from));
        args.push(self.conninfo_arg(dbname)?);
        args.push(archive.as_os_str().to_owned());
        tools::run(
            &self.tools.pg_restore,
            &args,
            self.config.password.as_ref(),
            self.options.restore_timeout,
        )
        .await
        .map(drop)
    }

    fn jobs_arg(&self) -> String {
        format!("--jobs={}", self.options.jobs.max(1))
    }

    fn new_snapshot_id(&self, label: &str, at: chrono::DateTime<Utc>) -> String {
        let slug: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        format!("{}-{}", at.format("%Y%m%dT%H%M%S%3fZ"), slug.trim_matches('-'))
    }

    async fn verify_inner(&self, id: &SnapshotId) -> Result<(PathBuf, Manifest), PgError> {
        let (dir, manifest) = self.existing_snapshot(id).await?;
        for f in &manifest.files {
            let path = dir.join(&f.path);
            let p2 = path.clone();
            let hashed = tokio::task::spawn_blocking(move || hash_file(&p2))
                .await
                .map_err(|e| PgError::new(ErrorKind::Failed, format!("hashing task failed: {e}")))?;
            let (size, sha) = match hashed {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(PgError::new(
                        ErrorKind::Corrupt,
                        format!(
                            "snapshot `{id}` is damaged: {} is missing; take a new snapshot",
                            path.display()
                        ),
                    ))
                }
                Err(e) => return Err(e),
            };
            if size != f.size {
                return Err(PgError::new(
                    ErrorKind::Corrupt,
                    format!(
                        "snapshot `{id}` is damaged: {} is {size} bytes, the manifest says {} (truncated or \
                         overwritten); do not restore it",
                        path.display(),
                        f.size
                    ),
                ));
            }
            if sha != f.sha256 {
                return Err(PgError::new(
                    ErrorKind::Corrupt,
                    format!(
                        "snapshot `{id}` is damaged: the SHA-256 of {} does not match the manifest (altered); do \
                         not restore it",
                        path.display()
                    ),
                ));
            }
        }
        let archive = manifest.archive(&dir);
        let args: Vec<OsString> = vec!["--list".into(), archive.as_os_str().to_owned()];
        tools::run(&self.tools.pg_restore, &args, None, Duration::from_secs(600))
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound | ErrorKind::Timeout => e,
                _ => PgError::new(
                    ErrorKind::Corrupt,
                    format!("snapshot `{id}`: pg_restore cannot read its archive: {e}"),
                ),
            })?;
        Ok((dir, manifest))
    }

    /// Restores `archive` over the live database in place (`--clean --if-exists` in one
    /// transaction): the slow fallback when no staging database could be made.
    async fn restore_in_place(&self, archive: &Path) -> Result<(), PgError> {
        tracing::warn!(database = %self.config.dbname, "restoring in place (no staging database)");
        self.pg_restore(
            archive,
            &self.config.dbname,
            &["--clean", "--if-exists", "--single-transaction"],
        )
        .await
    }

    /// Renames the live database aside as `<db>__rollback_failed_<utc>` (never drops it).
    async fn set_failed_aside(&self, client: &Client) -> Result<(), PgError> {
        let live = &self.config.dbname;
        let aside = Self::unused_name(
            client,
            &derived_name(live, &format!("__rollback_failed_{}", Self::timestamp())),
        )
        .await?;
        self.rename_database(client, live, &aside).await?;
        tracing::warn!(database = %live, aside = %aside, "set the failed live database aside");
        Ok(())
    }

    fn timestamp() -> String {
        Utc::now().format("%Y%m%dT%H%M%S").to_string()
    }
}

#[async_trait]
impl DatabaseSnapshot for PostgresSnapshot {
    async fn snapshot(&self, label: &str) -> Result<SnapshotInfo, AdapterError> {
        let _guard = self.lock.lock().await;
        let live = &self.config.dbname;
        let client = self.connect(live).await?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
                &[],
            )
            .await
            .map_err(|e| PgError::sql("reading the server version", e))?;
        let (server_version, server_version_num): (String, i32) = (row.get(0), row.get(1));
        if server_version_num < 130000 {
            return Err(AdapterError::new(
                ErrorKind::InvalidInput,
                format!("PostgreSQL {server_version} is not supported: rollback-postgres needs 13 or newer"),
            ));
        }
        // One MVCC snapshot for the row counts and the dump.
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| PgError::sql("starting the snapshot transaction", e))?;
        let exported: String = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| PgError::sql("exporting the snapshot", e))?
            .get(0);
        let created_at = Utc::now();
        let tables = integrity::row_counts(&client).await?;
        let database_props = dbprops::capture(&client).await?;

        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| PgError::io(format!("cannot create snapshot root {}", self.root.display()), e))?;
        let mut id = self.new_snapshot_id(label, created_at);
        let mut n = 2;
        while tokio::fs::try_exists(self.root.join(&id)).await.unwrap_or(false) {
            id = format!("{}-{n}", self.new_snapshot_id(label, created_at));
            n += 1;
        }
        let partial = self.root.join(format!(".partial-{id}"));
        let _ = tokio::fs::remove_dir_all(&partial).await;
        tokio::fs::create_dir_all(&partial)
            .await
            .map_err(|e| PgError::io(format!("cannot create {}", partial.display()), e))?;
        let format = self.options.format;
        let archive = partial.join(format.archive_name());
        let started = Instant::now();
        let dumped = self.pg_dump(live, &archive, format, Some(&exported)).await;
        let _ = client.batch_execute("COMMIT").await;
        if let Err(e) = dumped {
            let _ = tokio::fs::remove_dir_all(&partial).await;
            return Err(e.into());
        }
        let files = hash_tree(&partial).await?;
        let size_bytes = files.iter().map(|f| f.size).sum();
        let manifest = Manifest {
            id: id.clone(),
            label: label.to_owned(),
            database: live.clone(),
            server_version,
            server_version_num,
            created_at,
            format,
            size_bytes,
            files,
            tables,
            database_props,
        };
        manifest.store(&partial).await?;
        let dir = self.root.join(&id);
        tokio::fs::rename(&partial, &dir)
            .await
            .map_err(|e| PgError::io(format!("cannot move the snapshot into {}", dir.display()), e))?;
        tracing::info!(snapshot = %id, bytes = size_bytes, elapsed = ?started.elapsed(), "snapshot taken");
        Ok(SnapshotInfo {
            id: SnapshotId::new(id),
            label: label.to_owned(),
            created_at,
            size_bytes: Some(size_bytes),
            location: dir.display().to_string(),
        })
    }

    async fn verify(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        self.verify_inner(id).await?;
        Ok(())
    }

    async fn prepare_restore(&self, id: &SnapshotId) -> Result<PreparedRestore, AdapterError> {
        let (dir, manifest) = self.verify_inner(id).await?;
        let _guard = self.lock.lock().await;
        let client = self.maintenance().await?;
        let staging = staging_name(&self.config.dbname);
        let mut notes = Vec::new();
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&staging)
            ))
            .await
            .map_err(|e| PgError::sql(format!("dropping the old staging database {staging}"), e))?;
        let props = &manifest.database_props;
        let created = match client
            .batch_execute(&dbprops::create_statement(&staging, props, true))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = PgError::sql(format!("creating staging database {staging}"), e);
                if e.sqlstate() == Some("42501") && !props.owner.is_empty() {
                    notes.push(format!(
                        "could not give the staging database to owner {} ({e}); it belongs to {}",
                        props.owner, self.config.user
                    ));
                    client
                        .batch_execute(&dbprops::create_statement(&staging, props, false))
                        .await
                        .map_err(|e| PgError::sql(format!("creating staging database {staging}"), e))
                } else {
                    Err(e)
                }
            }
        };
        if let Err(e) = created {
            if e.kind() == ErrorKind::PermissionDenied {
                notes.push(format!(
                    "no CREATEDB privilege ({e}): the switch will restore in place with pg_restore --clean (slower, \
                     and cannot drop objects a migration added)"
                ));
                return Ok(PreparedRestore {
                    snapshot: id.clone(),
                    staged_at: None,
                    notes,
                });
            }
            return Err(e.into());
        }
        let archive = manifest.archive(&dir);
        let started = Instant::now();
        let jobs = self.jobs_arg();
        if let Err(e) = self.pg_restore(&archive, &staging, &[&jobs]).await {
            let _ = client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&staging)
                ))
                .await;
            return Err(e.into());
        }
        let settings_client = self.maintenance().await?;
        notes.extend(dbprops::apply(&client, &settings_client, &staging, props).await);
        let oid = Self::db_oid(&client, &staging).await?.ok_or_else(|| {
            PgError::new(
                ErrorKind::Conflict,
                format!("staging database {staging} vanished during prepare_restore: was it dropped by someone else?"),
            )
        })?;
        let mut state = State::load(&self.root).await?;
        state.staged.insert(
            staging.clone(),
            StagedRecord {
                snapshot: id.to_string(),
                oid,
            },
        );
        state.store(&self.root).await?;
        notes.push(format!(
            "restored snapshot {id} into {staging} in {:?}",
            started.elapsed()
        ));
        Ok(PreparedRestore {
            snapshot: id.clone(),
            staged_at: Some(staging),
            notes,
        })
    }

    async fn preserve_current(&self, label: &str) -> Result<PreservedDatabase, AdapterError> {
        let _guard = self.lock.lock().await;
        let live = self.config.dbname.clone();
        let mut state = State::load(&self.root).await?;
        let client = self.maintenance().await?;
        let mut target = None;
        if let Some(rec) = state.preserved.get(label).cloned() {
            if rec.done {
                return Ok(rec.preserved);
            }
            if let Some(t) = &rec.renamed_to {
                // An interrupted call: did its rename go through?
                if Self::db_oid(&client, t).await?.is_some() && Self::db_oid(&client, &live).await?.is_none()
                {
                    self.allow_connections(&client, t).await;
                    let mut rec = rec.clone();
                    rec.done = true;
                    rec.preserved
                        .notes
                        .push(format!("renamed {live} to {t} (finished after an interruption)"));
                    state.preserved.insert(label.to_owned(), rec.clone());
                    state.store(&self.root).await?;
                    return Ok(rec.preserved);
                }
                target = Some(t.clone());
            }
        }
        let Some(live_oid) = Self::db_oid(&client, &live).await? else {
            return Err(AdapterError::not_found(format!(
                "live database `{live}` does not exist: nothing to preserve (was it renamed by an earlier step? list the \
                 databases named {}*)",
                preserved_prefix(&live)
            )));
        };
        let target = match target {
            Some(t) => t,
            None => {
                Self::unused_name(
                    &client,
                    &derived_name(&live, &format!("__pre_rollback_{}", Self::timestamp())),
                )
                .await?
            }
        };
        let mut rec = PreservedRecord {
            preserved: PreservedDatabase {
                label: label.to_owned(),
                location: target.clone(),
                method: METHOD_RENAME.to_owned(),
                notes: Vec::new(),
            },
            renamed_to: Some(target.clone()),
            oid: Some(live_oid),
            done: false,
        };
        state.preserved.insert(label.to_owned(), rec.clone());
        state.store(&self.root).await?;
        let started = Instant::now();
        match self.rename_database(&client, &live, &target).await {
            Ok(disconnected) => {
                rec.preserved.notes.push(format!(
                    "renamed {live} to {target} in {:?} (O(1), data untouched); writes made after the snapshot live on \
                     there",
                    started.elapsed()
                ));
                if disconnected.is_empty() {
                    rec.preserved
                        .notes
                        .push(format!("no session was connected to {live}"));
                }
                rec.preserved.notes.extend(disconnected);
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                let dir = self.root.join("preserved").join(&target);
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(|e| PgError::io(format!("cannot create {}", dir.display()), e))?;
                let archive = dir.join(DumpFormat::Custom.archive_name());
                self.pg_dump(&live, &archive, DumpFormat::Custom, None).await?;
                rec.preserved.location = dir.display().to_string();
                rec.preserved.method = METHOD_DUMP.to_owned();
                rec.renamed_to = None;
                rec.preserved.notes.push(format!(
                    "could not rename {live} ({e}): kept a pg_dump archive of it in {} instead (slower); {live} stays \
                     in place",
                    dir.display()
                ));
            }
            Err(e) => return Err(e.into()),
        }
        rec.done = true;
        state.preserved.insert(label.to_owned(), rec.clone());
        state.store(&self.root).await?;
        Ok(rec.preserved)
    }

    async fn restore(&self, prepared: &PreparedRestore) -> Result<(), AdapterError> {
        let _guard = self.lock.lock().await;
        let live = self.config.dbname.clone();
        let mut state = State::load(&self.root).await?;
        let client = self.maintenance().await?;
        let source = format!("snapshot:{}", prepared.snapshot);
        let live_oid = Self::db_oid(&client, &live).await?;
        let already_live = |oid: Option<u32>| {
            state
                .live
                .as_ref()
                .is_some_and(|l| l.source == source && Some(l.oid) == oid)
        };
        let Some(staging) = &prepared.staged_at else {
            if already_live(live_oid) {
                return Ok(());
            }
            let (dir, manifest) = self.verify_inner(&prepared.snapshot).await?;
            self.restore_in_place(&manifest.archive(&dir)).await?;
            state.live = Some(LiveRecord {
                source,
                oid: live_oid.unwrap_or(0),
            });
            state.store(&self.root).await?;
            return Ok(());
        };
        let Some(staging_oid) = Self::db_oid(&client, staging).await? else {
            if live_oid.is_some() && already_live(live_oid) {
                return Ok(());
            }
            return Err(AdapterError::not_found(format!(
                "staging database `{staging}` for snapshot {} does not exist: call prepare_restore again",
                prepared.snapshot
            )));
        };
        match state.staged.get(staging) {
            Some(s) if s.snapshot == prepared.snapshot.as_str() && s.oid == staging_oid => {}
            Some(s) => {
                return Err(AdapterError::new(
                    ErrorKind::Conflict,
                    format!(
                        "staging database `{staging}` holds snapshot {}, not {}: call prepare_restore again",
                        s.snapshot, prepared.snapshot
                    ),
                ))
            }
            None => {
                return Err(AdapterError::new(
                    ErrorKind::Conflict,
                    format!("staging database `{staging}` was not made by prepare_restore: call prepare_restore again"),
                ))
            }
        }
        if live_oid.is_some() {
            // preserve_current normally moved it already; never drop it.
            let aside = Self::unused_name(
                &client,
                &derived_name(&live, &format!("__rollback_replaced_{}", Self::timestamp())),
            )
            .await?;
            match self.rename_database(&client, &live, &aside).await {
                Ok(_) => {
                    tracing::warn!(database = %live, aside = %aside, "live database was still there: renamed it aside")
                }
                Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                    let (dir, manifest) = self.verify_inner(&prepared.snapshot).await?;
                    self.restore_in_place(&manifest.archive(&dir)).await?;
                    state.live = Some(LiveRecord {
                        source,
                        oid: live_oid.unwrap_or(0),
                    });
                    state.store(&self.root).await?;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.rename_database(&client, staging, &live).await?;
        state.staged.remove(staging);
        state.live = Some(LiveRecord {
            source,
            oid: staging_oid,
        });
        state.store(&self.root).await?;
        tracing::info!(database = %live, snapshot = %prepared.snapshot, "snapshot switched in by rename");
        Ok(())
    }

    async fn reinstate(&self, preserved: &PreservedDatabase) -> Result<(), AdapterError> {
        let _guard = self.lock.lock().await;
        let live = self.config.dbname.clone();
        let mut state = State::load(&self.root).await?;
        let client = self.maintenance().await?;
        let source = format!("preserved:{}", preserved.label);
        let live_oid = Self::db_oid(&client, &live).await?;
        let recorded_oid = state.preserved.get(&preserved.label).and_then(|r| r.oid);
        let already_live = live_oid.is_some()
            && state
                .live
                .as_ref()
                .is_some_and(|l| l.source == source && Some(l.oid) == live_oid);
        match preserved.method.as_str() {
            METHOD_RENAME => {
                let name = &preserved.location;
                let Some(p_oid) = Self::db_oid(&client, name).await? else {
                    if already_live || (live_oid.is_some() && live_oid == recorded_oid) {
                        return Ok(());
                    }
                    return Err(AdapterError::not_found(format!(
                        "preserved database `{name}` does not exist and is not live: nothing to reinstate"
                    )));
                };
                if live_oid.is_some() {
                    self.set_failed_aside(&client).await?;
                }
                self.rename_database(&client, name, &live).await?;
                state.live = Some(LiveRecord { source, oid: p_oid });
            }
            METHOD_DUMP => {
                if already_live {
                    return Ok(());
                }
                let archive = Path::new(&preserved.location).join(DumpFormat::Custom.archive_name());
                if !archive.exists() {
                    return Err(AdapterError::not_found(format!(
                        "preserved archive {} does not exist: nothing to reinstate",
                        archive.display()
                    )));
                }
                let mut in_place = false;
                if live_oid.is_some() {
                    match self.set_failed_aside(&client).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::PermissionDenied => in_place = true,
                        Err(e) => return Err(e.into()),
                    }
                }
                if in_place {
                    self.restore_in_place(&archive).await?;
                } else {
                    client
                        .batch_execute(&format!(
                            "CREATE DATABASE {} TEMPLATE template0",
                            quote_ident(&live)
                        ))
                        .await
                        .map_err(|e| PgError::sql(format!("creating database {live}"), e))?;
                    let jobs = self.jobs_arg();
                    self.pg_restore(&archive, &live, &[&jobs]).await?;
                }
                let oid = Self::db_oid(&client, &live).await?.unwrap_or(0);
                state.live = Some(LiveRecord { source, oid });
            }
            other => {
                return Err(AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "cannot reinstate `{}`: unknown method `{other}`",
                        preserved.location
                    ),
                ))
            }
        }
        state.store(&self.root).await?;
        tracing::info!(database = %live, label = %preserved.label, "preserved database reinstated");
        Ok(())
    }

    async fn check_integrity(&self, checks: &IntegrityChecks) -> Result<IntegrityReport, AdapterError> {
        let mut report = IntegrityReport::default();
        let started = Instant::now();
        let client = match self.connect(&self.config.dbname).await {
            Ok(c) => c,
            Err(e) => {
                report.checks.push(CheckResult {
                    name: "connectivity".to_owned(),
                    passed: false,
                    detail: e.to_string(),
                });
                return Ok(report);
            }
        };
        let select = client.query_one("SELECT 1", &[]).await;
        report.checks.push(CheckResult {
            name: "connectivity".to_owned(),
            passed: select.is_ok(),
            detail: match select {
                Ok(_) => format!("SELECT 1 answered in {:?}", started.elapsed()),
                Err(e) => PgError::sql("SELECT 1", e).to_string(),
            },
        });
        report
            .checks
            .extend(integrity::assertions(&client, &checks.assertions).await);
        let failed = |name: &str, e: PgError| CheckResult {
            name: name.to_owned(),
            passed: false,
            detail: format!("could not check: {e}"),
        };
        report.checks.push(
            integrity::foreign_keys(&client)
                .await
                .unwrap_or_else(|e| failed("foreign keys", e)),
        );
        report.checks.push(
            integrity::sequences(&client)
                .await
                .unwrap_or_else(|e| failed("sequences", e)),
        );
        if let Some(id) = &checks.expect_snapshot {
            let result = match self.existing_snapshot(id).await {
                Ok((_, manifest)) => {
                    integrity::compare_row_counts(&client, &manifest.tables, id.as_str()).await
                }
                Err(e) => Err(e),
            };
            report
                .checks
                .push(result.unwrap_or_else(|e| failed("row counts", e)));
        }
        Ok(report)
    }

    async fn list(&self) -> Result<Vec<SnapshotInfo>, AdapterError> {
        let mut out = Vec::new();
        let mut entries = match tokio::fs::read_dir(&self.root).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(PgError::io(format!("cannot list {}", self.root.display()), e).into()),
        };
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| PgError::io(format!("cannot list {}", self.root.display()), e))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            if name.starts_with('.') || name == "preserved" || !dir.join(MANIFEST_FILE).is_file() {
                continue;
            }
            match Manifest::load(&dir).await {
                Ok(m) => out.push(SnapshotInfo {
                    id: SnapshotId::new(name),
                    label: m.label,
                    created_at: m.created_at,
                    size_bytes: Some(m.size_bytes),
                    location: dir.display().to_string(),
                }),
                Err(e) => {
                    tracing::warn!(snapshot = %name, error = %e, "skipping a snapshot with a damaged manifest")
                }
            }
        }
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.as_str().cmp(a.id.as_str()))
        });
        Ok(out)
    }

    async fn remove(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        let _guard = self.lock.lock().await;
        // Only the manifest's presence is checked, so that a damaged snapshot can be removed.
        let dir = self.snapshot_dir(id)?;
        if !tokio::fs::try_exists(dir.join(MANIFEST_FILE))
            .await
            .unwrap_or(false)
        {
            return Err(AdapterError::not_found(format!(
                "snapshot `{id}` does not exist in {}: run list() to see snapshots",
                self.root.display()
            )));
        }
        tokio::fs::remove_dir_all(&dir)
            .await
            .map_err(|e| PgError::io(format!("cannot remove snapshot {}", dir.display()), e))?;
        Ok(())
    }

    async fn ping(&self) -> Result<Duration, AdapterError> {
        let client = self.connect(&self.config.dbname).await?;
        let started = Instant::now();
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| PgError::sql(format!("SELECT 1 on {}", self.config.dbname), e))?;
        Ok(started.elapsed())
    }
}
