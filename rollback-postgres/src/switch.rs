//! The switch: staging a snapshot while the app serves, keeping the live database aside,
//! and the renames that put a staged snapshot (or a preserved database) live.

use crate::adapter::{PostgresSnapshot, METHOD_DUMP, METHOD_RENAME};
use crate::dbprops;
use crate::error::PgError;
use crate::ident::{derived_name, preserved_prefix, quote_ident, staging_name};
use crate::integrity;
use crate::manifest::DumpFormat;
use crate::state::{LiveRecord, PreservedRecord, StagedRecord, State};
use rollback_core::{AdapterError, ErrorKind, PreparedRestore, PreservedDatabase, SnapshotId};
use std::path::Path;
use std::time::Instant;
use tokio_postgres::Client;

impl PostgresSnapshot {
    pub(crate) async fn stage_snapshot(&self, id: &SnapshotId) -> Result<PreparedRestore, AdapterError> {
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
        notes.extend(dbprops::apply(&client, &staging, props).await);
        let oid = Self::db_oid(&client, &staging).await?.ok_or_else(|| {
            PgError::new(
                ErrorKind::Conflict,
                format!("staging database {staging} vanished during prepare_restore: was it dropped by someone else?"),
            )
        })?;
        // Row counts are checked on the staged copy now, while the app still serves, so a
        // copy that does not match its manifest is refused before anything is stopped.
        // A restored database has no planner statistics and no visibility map: VACUUM
        // (ANALYZE) it now, online, so that the app's first queries after the switch are
        // planned well and the offline integrity check can count rows from the indexes.
        let counts = match self.connect(&staging).await {
            Ok(staged) => {
                let vacuumed = Instant::now();
                match staged.batch_execute("VACUUM (ANALYZE)").await {
                    Ok(()) => notes.push(format!(
                        "VACUUM (ANALYZE) of {staging} in {:?}",
                        vacuumed.elapsed()
                    )),
                    Err(e) => notes.push(format!(
                        "VACUUM (ANALYZE) of {staging} failed ({}); run ANALYZE after the rollback",
                        PgError::sql("VACUUM (ANALYZE)", e)
                    )),
                }
                integrity::compare_row_counts(&staged, &manifest.tables, id.as_str()).await
            }
            Err(e) => Err(e),
        };
        match counts {
            Ok(check) if check.passed => notes.push(format!("staged copy: {}", check.detail)),
            other => {
                let detail = match other {
                    Ok(check) => check.detail,
                    Err(e) => e.to_string(),
                };
                let _ = client
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        quote_ident(&staging)
                    ))
                    .await;
                return Err(PgError::new(
                    ErrorKind::Corrupt,
                    format!("the staged copy of snapshot {id} does not match its manifest ({detail}); it was dropped"),
                )
                .into());
            }
        }
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

    pub(crate) async fn preserve_live(&self, label: &str) -> Result<PreservedDatabase, AdapterError> {
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

    /// The fallback without a staged database: `pg_restore --clean` in place, then the
    /// record of what is live (so a repeated call knows it is done).
    async fn restore_in_place_recorded(
        &self,
        prepared: &PreparedRestore,
        mut state: State,
        source: String,
        live_oid: Option<u32>,
    ) -> Result<(), AdapterError> {
        let (dir, manifest) = self.verify_inner(&prepared.snapshot).await?;
        self.restore_in_place(&manifest.archive(&dir)).await?;
        state.live = Some(LiveRecord {
            source,
            oid: live_oid.unwrap_or(0),
        });
        state.store(&self.root).await?;
        Ok(())
    }

    pub(crate) async fn switch_in(&self, prepared: &PreparedRestore) -> Result<(), AdapterError> {
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
            return self
                .restore_in_place_recorded(prepared, state, source, live_oid)
                .await;
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
                    return self
                        .restore_in_place_recorded(prepared, state, source, live_oid)
                        .await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Recorded before the rename: if the process dies right after it, a new call sees the
        // staged database live under this snapshot and returns Ok.
        state.live = Some(LiveRecord {
            source,
            oid: staging_oid,
        });
        state.store(&self.root).await?;
        self.rename_database(&client, staging, &live).await?;
        state.staged.remove(staging);
        state.store(&self.root).await?;
        tracing::info!(database = %live, snapshot = %prepared.snapshot, "snapshot switched in by rename");
        Ok(())
    }

    pub(crate) async fn reinstate_preserved(
        &self,
        preserved: &PreservedDatabase,
    ) -> Result<(), AdapterError> {
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

    /// Restores `archive` over the live database in place (`--clean --if-exists` in one
    /// transaction): the slow fallback when no staging database could be made.
    pub(crate) async fn restore_in_place(&self, archive: &Path) -> Result<(), PgError> {
        tracing::warn!(database = %self.config.dbname, "restoring in place (no staging database)");
        self.pg_restore(
            archive,
            &self.config.dbname,
            &["--clean", "--if-exists", "--single-transaction"],
        )
        .await
    }

    /// Renames the live database aside as `<db>__rollback_failed_<utc>` (never drops it).
    pub(crate) async fn set_failed_aside(&self, client: &Client) -> Result<(), PgError> {
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
}
