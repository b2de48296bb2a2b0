//! The switch: staging a snapshot while the app serves, keeping the live database aside,
//! and the renames that put a staged snapshot (or a preserved database) live.

use crate::adapter::{PostgresSnapshot, METHOD_DUMP, METHOD_RENAME};
use crate::dbprops;
use crate::error::PgError;
use crate::files;
use crate::ident::{derived_name, preserved_prefix, quote_ident, staging_name};
use crate::integrity;
use crate::manifest::DumpFormat;
use crate::seal::stamp;
use crate::state::{LiveRecord, PreservedRecord, Seal, StagedRecord, State};
use chrono::Utc;
use rollback_core::{AdapterError, ErrorKind, PreparedRestore, PreservedDatabase, PutAside, SnapshotId};
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
        // Pre-staged (Orchestrator::prestage after the checkpoint): a copy of this snapshot
        // verified and sealed since is kept as it is; the restore is skipped.
        if let Some(prepared) = self.prestaged(&client, &staging, id).await? {
            return Ok(prepared);
        }
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
        let unapplied = dbprops::apply(&client, &staging, props).await;
        if !unapplied.is_empty() {
            // Known before the stop: a copy without the database's own settings, grants or
            // comment would be switched in "verified" and quietly change what roles see.
            let _ = client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&staging)
                ))
                .await;
            return Err(AdapterError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "the snapshot's database properties could not be given to the staged copy of {} (nothing was \
                     stopped or changed): {}; `rollback check` names the privilege each needs",
                    self.config.dbname,
                    unapplied.join("; ")
                ),
            ));
        }
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
        let staged = self.connect(&staging).await;
        // Our own session's pid, to wait for it to end: never taken for a client later.
        let own_pid = match &staged {
            Ok(c) => crate::seal::within(
                "reading our session's pid",
                c.query_one("SELECT pg_backend_pid()", &[]),
            )
            .await
            .ok()
            .map(|r| r.get::<_, i32>(0)),
            Err(_) => None,
        };
        let counts = match &staged {
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
                integrity::compare_row_counts(staged, &manifest.tables, id.as_str()).await
            }
            Err(e) => Err(PgError::new(e.kind(), e.to_string())),
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
        // A manifest from an earlier version records no integrity baseline: the staged copy
        // IS the snapshot's data, so measure it here (once) and keep it beside the manifest.
        if let Ok(staged) = &staged {
            if manifest.baseline.is_none() && self.snapshot_baseline(id).await?.is_none() {
                let measured = integrity::IntegrityBaseline::measure(staged).await;
                match measured {
                    Ok(b) => {
                        self.store_measured_baseline(id, &staging, &b).await?;
                        let warnings = b.warnings();
                        notes.push(format!(
                            "snapshot {id} recorded no integrity baseline (an earlier version took it): measured it on \
                             the staged copy{}",
                            if warnings.is_empty() {
                                ": nothing broken".to_owned()
                            } else {
                                format!(": {}", warnings.join("; "))
                            }
                        ));
                    }
                    Err(e) => notes.push(format!(
                        "snapshot {id} records no integrity baseline and measuring it on the staged copy failed \
                         ({e}): checks against it judge every orphan row as a failure"
                    )),
                }
            }
        }
        drop(staged);
        if let Some(pid) = own_pid {
            self.wait_session_gone(&client, pid).await;
        }
        let mut state = State::load(&self.root).await?;
        state.staged.insert(
            staging.clone(),
            StagedRecord {
                snapshot: id.to_string(),
                oid,
                sealed: None,
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

    /// The staging database when it holds snapshot `id`, verified by `check_prepared` and
    /// sealed ever since (same oid, still refusing connections, no session on it).
    async fn prestaged(
        &self,
        client: &Client,
        staging: &str,
        id: &SnapshotId,
    ) -> Result<Option<PreparedRestore>, AdapterError> {
        let state = State::load(&self.root).await?;
        let Some(rec) = state.staged.get(staging) else {
            return Ok(None);
        };
        let Some((seal, verified_at)) = rec.sealed.as_ref().and_then(|s| s.verified_at.map(|v| (s, v)))
        else {
            return Ok(None);
        };
        if rec.snapshot != id.as_str()
            || !Self::seal_problems(client, staging, seal, verified_at, rec.oid)
                .await?
                .is_empty()
        {
            return Ok(None);
        }
        tracing::info!(database = %staging, snapshot = %id, "snapshot already staged, verified and sealed: no restore");
        Ok(Some(PreparedRestore {
            snapshot: id.clone(),
            staged_at: Some(staging.to_owned()),
            notes: vec![format!(
                "snapshot {id} was pre-staged in {staging} (verified {}, sealed since {}): no restore needed",
                verified_at.to_rfc3339(),
                seal.since.to_rfc3339()
            )],
        }))
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
                if Self::renamed_aside(&client, &rec, t, &live).await? {
                    // Finish what rename_database does after the rename.
                    self.ensure_connectable(&client, t).await?;
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
                files::create_private_dir(&dir).await?;
                let archive = dir.join(DumpFormat::Custom.archive_name());
                self.pg_dump(&live, &archive, DumpFormat::Custom, None).await?;
                files::make_private_tree(&dir).await?;
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

    /// Whether the rename `rec` began (of `live` to `target`) went through: `target` has the
    /// live database's recorded oid (a rename keeps it), or, with no oid recorded, `target`
    /// exists and `live` does not. Reads the catalog only.
    async fn renamed_aside(
        client: &Client,
        rec: &PreservedRecord,
        target: &str,
        live: &str,
    ) -> Result<bool, PgError> {
        let found = Self::db_oid(client, target).await?;
        Ok(match rec.oid {
            Some(oid) => found == Some(oid),
            None => found.is_some() && Self::db_oid(client, live).await?.is_none(),
        })
    }

    /// What `preserve_live(label)` set aside, finished or not: its record when it finished;
    /// when it was interrupted or failed after its rename (its record could not be written),
    /// the database it was renaming the live one to, if that database now has the live
    /// one's oid. Reads the state file and the catalog only.
    pub(crate) async fn preserved_by(&self, label: &str) -> Result<Option<PreservedDatabase>, AdapterError> {
        let state = State::load(&self.root).await?;
        let Some(rec) = state.preserved.get(label) else {
            return Ok(None);
        };
        if rec.done {
            return Ok(Some(rec.preserved.clone()));
        }
        let Some(target) = &rec.renamed_to else {
            return Ok(None);
        };
        let client = self.maintenance().await?;
        let renamed = Self::renamed_aside(&client, rec, target, &self.config.dbname).await?;
        Ok(renamed.then(|| {
            let mut preserved = rec.preserved.clone();
            preserved.notes.push(format!(
                "found by looking: the emergency backup renamed {} to {target} but did not finish recording it",
                self.config.dbname
            ));
            preserved
        }))
    }

    /// The snapshot the live database was switched in from, while it still is that
    /// database (its oid is the one recorded at the switch). In-place restores (oid 0) are
    /// not told apart from the database they overwrote: `None` then.
    pub(crate) async fn live_snapshot(&self) -> Result<Option<SnapshotId>, AdapterError> {
        let state = State::load(&self.root).await?;
        let Some(live) = state.live.as_ref() else {
            return Ok(None);
        };
        let Some(id) = live.source.strip_prefix("snapshot:") else {
            return Ok(None);
        };
        if live.oid == 0 {
            return Ok(None);
        }
        let client = self.maintenance().await?;
        let oid = Self::db_oid(&client, &self.config.dbname).await?;
        Ok((oid == Some(live.oid)).then(|| SnapshotId::new(id)))
    }

    /// The fallback without a staged database: `pg_restore --clean` in place, then the
    /// record of what is live (so a repeated call knows it is done).
    async fn restore_in_place_recorded(
        &self,
        prepared: &PreparedRestore,
        mut state: State,
        source: String,
        live_oid: Option<u32>,
        put_aside: Vec<PutAside>,
    ) -> Result<Vec<PutAside>, AdapterError> {
        let (dir, manifest) = self.verify_inner(&prepared.snapshot).await?;
        self.restore_in_place(&manifest.archive(&dir)).await?;
        state.live = Some(LiveRecord {
            source,
            oid: live_oid.unwrap_or(0),
            put_aside: put_aside.clone(),
            ..LiveRecord::default()
        });
        state.store(&self.root).await?;
        Ok(put_aside)
    }

    /// The seal `check_prepared` recorded on staging database `staging` (oid `oid`) when it
    /// verified it, if it still holds: connections refused and no session on it. A copy
    /// opened since (by hand) is switched in as an unverified one.
    async fn verified_seal(
        client: &Client,
        state: &State,
        staging: &str,
        oid: u32,
    ) -> Result<Option<Seal>, PgError> {
        let Some(seal) = state
            .staged
            .get(staging)
            .and_then(|s| s.sealed.clone())
            .filter(|s| s.oid == oid && s.verified_at.is_some())
        else {
            return Ok(None);
        };
        let closed = Self::allows_connections(client, staging).await? == Some(false);
        let sessions = Self::sessions_on(client, oid).await?;
        if closed && sessions.is_empty() {
            return Ok(Some(seal));
        }
        tracing::warn!(
            database = %staging,
            sessions = %sessions.join("; "),
            "the verified staged copy was opened since its verification: switched in as an unverified copy"
        );
        Ok(None)
    }

    pub(crate) async fn switch_in(&self, prepared: &PreparedRestore) -> Result<Vec<PutAside>, AdapterError> {
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
                return Ok(Vec::new());
            }
            return self
                .restore_in_place_recorded(prepared, state, source, live_oid, Vec::new())
                .await;
        };
        let Some(staging_oid) = Self::db_oid(&client, staging).await? else {
            if live_oid.is_some() && already_live(live_oid) {
                return self.finish_switch(&client, prepared, staging, state).await;
            }
            return Err(AdapterError::not_found(format!(
                "staging database `{staging}` for snapshot {} does not exist: call prepare_restore again",
                prepared.snapshot
            )));
        };
        Self::check_staged_record(&state, staging, &prepared.snapshot, staging_oid)?;
        // A copy check_prepared verified and sealed goes live sealed: no client can write
        // into it before `open`, right before the app starts.
        let mut seal = Self::verified_seal(&client, &state, staging, staging_oid).await?;
        // What an interrupted call of this same switch recorded as put aside.
        let recorded = match &state.live {
            Some(l) if l.source == source && l.oid == staging_oid => l.put_aside.clone(),
            _ => Vec::new(),
        };
        let (mut put_aside, pending) = self.recorded_asides(&client, recorded).await?;
        let record = |put_aside: &[PutAside], seal: &Option<Seal>| LiveRecord {
            source: source.clone(),
            oid: staging_oid,
            put_aside: put_aside.to_vec(),
            sealed: seal.clone(),
            opened_at: None,
        };
        if live_oid.is_some() {
            // preserve_current normally moved it already; never drop it.
            let base = derived_name(&live, &format!("__rollback_replaced_{}", Self::timestamp()));
            let aside = match pending {
                Some(p) if Self::db_oid(&client, &p.location).await?.is_none() => p.location,
                _ => Self::unused_name(&client, &base).await?,
            };
            put_aside.push(PutAside {
                location: aside.clone(),
                holds: format!(
                    "the database that was live when snapshot {} was switched in (preserve_current had not set it \
                     aside), with every write made into it until the switch; renamed aside instead of dropped",
                    prepared.snapshot
                ),
            });
            // Recorded before the rename, so that a call interrupted after it still reports it.
            state.live = Some(record(&put_aside, &seal));
            state.store(&self.root).await?;
            match self.rename_database(&client, &live, &aside).await {
                Ok(gone) => {
                    tracing::warn!(database = %live, aside = %aside, "live database was still there: renamed it aside");
                    // Named by `open` with the seal: who was on the live database then.
                    if let Some(seal) = seal.as_mut() {
                        seal.disconnected.extend(gone);
                    }
                }
                // With a verified staged copy at hand, a failed rename fails the switch (the
                // failure policy puts the live database back); it never turns into a slower,
                // riskier in-place restore after the stop.
                Err(e) => return Err(e.into()),
            }
        }
        // Recorded (with the seal) before the rename: if the process dies right after it, a
        // new call sees the staged database live under this snapshot and finishes the switch.
        state.live = Some(record(&put_aside, &seal));
        state.store(&self.root).await?;
        let disconnected = self.rename_db(&client, staging, &live, seal.is_none()).await?;
        if let Some(l) = state.live.as_mut() {
            if seal.is_some() && !disconnected.is_empty() {
                // Someone was on the sealed copy after all: it is not provably unchanged.
                // Opened as an unverified copy, so that the full check runs on it.
                tracing::warn!(database = %live, sessions = %disconnected.join("; "), "sessions were on the sealed copy: opened it, not provably unchanged");
                self.allow_connections(&client, &live).await;
                l.sealed = None;
            }
            if l.sealed.is_none() {
                l.opened_at = Some(Utc::now());
            }
        }
        state.staged.remove(staging);
        state.store(&self.root).await?;
        tracing::info!(database = %live, snapshot = %prepared.snapshot, sealed = seal.is_some(), "snapshot switched in by rename");
        Ok(put_aside)
    }

    /// The staged database is live under this snapshot already: finish whatever an
    /// interrupted call left undone after its rename (connections allowed again unless
    /// the copy was verified and sealed, the snapshot's database properties re-applied, the
    /// staging record dropped) and return what it put aside.
    async fn finish_switch(
        &self,
        client: &Client,
        prepared: &PreparedRestore,
        staging: &str,
        mut state: State,
    ) -> Result<Vec<PutAside>, AdapterError> {
        let live = &self.config.dbname;
        let Some(record) = state.live.clone() else {
            return Ok(Vec::new());
        };
        // A sealed copy stays sealed: `open` opens it right before the app starts.
        let reopened = if record.sealed.is_some() {
            false
        } else {
            self.ensure_connectable(client, live).await?
        };
        let unrecorded = state
            .staged
            .get(staging)
            .is_some_and(|s| s.snapshot == prepared.snapshot.as_str() && s.oid == record.oid);
        if reopened || unrecorded {
            match self.existing_snapshot(&prepared.snapshot).await {
                Ok((_, manifest)) => {
                    for note in dbprops::apply(client, live, &manifest.database_props).await {
                        tracing::warn!(database = %live, "{note}");
                    }
                }
                Err(e) => tracing::warn!(
                    database = %live,
                    error = %e,
                    "could not re-apply the snapshot's database properties"
                ),
            }
            if unrecorded || (reopened && record.opened_at.is_none()) {
                state.staged.remove(staging);
                if let Some(l) = state.live.as_mut() {
                    if l.sealed.is_none() && l.opened_at.is_none() {
                        l.opened_at = Some(Utc::now());
                    }
                }
                state.store(&self.root).await?;
            }
            tracing::warn!(database = %live, snapshot = %prepared.snapshot, "finished a switch that was interrupted after its rename");
        }
        let (put_aside, _) = self.recorded_asides(client, record.put_aside).await?;
        Ok(put_aside)
    }

    pub(crate) async fn reinstate_preserved(
        &self,
        preserved: &PreservedDatabase,
    ) -> Result<Vec<PutAside>, AdapterError> {
        let _guard = self.lock.lock().await;
        let live = self.config.dbname.clone();
        let mut state = State::load(&self.root).await?;
        let client = self.maintenance().await?;
        let source = format!("preserved:{}", preserved.label);
        let live_oid = Self::db_oid(&client, &live).await?;
        let recorded_oid = state.preserved.get(&preserved.label).and_then(|r| r.oid);
        // The record of this reinstate, when an earlier call got as far as writing it.
        let ours = state.live.clone().filter(|l| l.source == source);
        let already_live = live_oid.is_some() && ours.as_ref().is_some_and(|l| Some(l.oid) == live_oid);
        let put_aside = match preserved.method.as_str() {
            METHOD_RENAME => {
                let name = &preserved.location;
                let Some(p_oid) = Self::db_oid(&client, name).await? else {
                    if already_live || (live_oid.is_some() && live_oid == recorded_oid) {
                        // The rename went through (in an earlier, maybe interrupted, call):
                        // finish what the call would have done. Sealed when its record says
                        // so (the orchestrator opens it right before the start).
                        let sealed = ours
                            .as_ref()
                            .filter(|_| already_live)
                            .is_some_and(|l| l.sealed.is_some());
                        if !sealed {
                            self.ensure_connectable(&client, &live).await?;
                        }
                        let recorded = ours.map(|l| l.put_aside).unwrap_or_default();
                        let (put_aside, _) = self.recorded_asides(&client, recorded).await?;
                        if !already_live {
                            state.live = Some(LiveRecord {
                                source,
                                oid: live_oid.unwrap_or(0),
                                put_aside: put_aside.clone(),
                                sealed: None,
                                opened_at: Some(Utc::now()),
                            });
                            state.store(&self.root).await?;
                        }
                        return Ok(put_aside);
                    }
                    return Err(AdapterError::not_found(format!(
                        "preserved database `{name}` does not exist and is not live: nothing to reinstate"
                    )));
                };
                let ours = ours.filter(|l| l.oid == p_oid);
                // A seal an interrupted call made (and recorded) on it: it has refused
                // connections since then.
                let earlier = ours
                    .as_ref()
                    .and_then(|l| l.sealed.clone())
                    .filter(|s| s.oid == p_oid);
                let recorded = ours.map(|l| l.put_aside).unwrap_or_default();
                let (mut put_aside, pending) = self.recorded_asides(&client, recorded).await?;
                let mut gone = Vec::new();
                if live_oid.is_some() {
                    let aside = self
                        .failed_aside(&client, &state, live_oid, &preserved.label, pending)
                        .await?;
                    put_aside.push(aside.clone());
                    state.live = Some(LiveRecord {
                        source: source.clone(),
                        oid: p_oid,
                        put_aside: put_aside.clone(),
                        ..LiveRecord::default()
                    });
                    state.store(&self.root).await?;
                    // Whoever was on it (clients writing into the restored copy) is named by
                    // `open`, with the seal of the database that replaces it.
                    gone = self.rename_database(&client, &live, &aside.location).await?;
                    tracing::warn!(database = %live, aside = %aside.location, "set the failed live database aside");
                }
                // Sealed, then recorded, then renamed: it goes live closed to every client
                // (the orchestrator opens it right before the start), and a call
                // interrupted after the rename finishes it, still sealed.
                let (since, disconnected) = match self.seal_database(&client, name, &[]).await {
                    Ok((since, disconnected)) => match earlier {
                        Some(e) => (e.since, [e.disconnected, gone, disconnected].concat()),
                        None => (since, [gone, disconnected].concat()),
                    },
                    Err(e) => {
                        self.allow_connections(&client, name).await;
                        return Err(e.into());
                    }
                };
                state.live = Some(LiveRecord {
                    source,
                    oid: p_oid,
                    put_aside: put_aside.clone(),
                    sealed: Some(Seal {
                        oid: p_oid,
                        since,
                        verified_at: None,
                        checks: Vec::new(),
                        disconnected,
                    }),
                    opened_at: None,
                });
                state.store(&self.root).await?;
                let more = self.rename_db(&client, name, &live, false).await?;
                if let Some(seal) = state.live.as_mut().and_then(|l| l.sealed.as_mut()) {
                    seal.disconnected.extend(more);
                }
                put_aside
            }
            METHOD_DUMP => {
                if already_live {
                    self.ensure_connectable(&client, &live).await?;
                    let recorded = ours.map(|l| l.put_aside).unwrap_or_default();
                    let (archived, recorded) = self.split_archived(recorded).await;
                    let mut put_aside = self.recorded_asides(&client, recorded).await?.0;
                    put_aside.extend(archived);
                    return Ok(put_aside);
                }
                let archive = Path::new(&preserved.location).join(DumpFormat::Custom.archive_name());
                if !tokio::fs::try_exists(&archive).await.unwrap_or(false) {
                    return Err(AdapterError::not_found(format!(
                        "preserved archive {} does not exist: nothing to reinstate",
                        archive.display()
                    )));
                }
                let recorded = ours.map(|l| l.put_aside).unwrap_or_default();
                // An archive of the live database kept by an interrupted call that could not
                // rename it aside: that call had decided on the in-place restore.
                let (archived, recorded) = self.split_archived(recorded).await;
                let archived = archived.into_iter().next();
                let (mut put_aside, pending) = self.recorded_asides(&client, recorded).await?;
                let mut in_place = false;
                if let Some(a) = archived {
                    put_aside.push(a);
                    in_place = true;
                } else if live_oid.is_some() {
                    let aside = self
                        .failed_aside(&client, &state, live_oid, &preserved.label, pending)
                        .await?;
                    put_aside.push(aside.clone());
                    state.live = Some(LiveRecord {
                        source: source.clone(),
                        oid: 0,
                        put_aside: put_aside.clone(),
                        ..LiveRecord::default()
                    });
                    state.store(&self.root).await?;
                    match self.rename_database(&client, &live, &aside.location).await {
                        Ok(_) => {
                            tracing::warn!(database = %live, aside = %aside.location, "set the failed live database aside")
                        }
                        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                            // It is restored over in place: what it holds (the restored
                            // snapshot and the writes clients made into it) is kept as an
                            // archive first, never overwritten unnamed.
                            put_aside.pop();
                            let kept = self.archive_aside(&live, &aside, &e).await?;
                            put_aside.push(kept);
                            state.live = Some(LiveRecord {
                                source: source.clone(),
                                oid: 0,
                                put_aside: put_aside.clone(),
                                ..LiveRecord::default()
                            });
                            state.store(&self.root).await?;
                            in_place = true;
                        }
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
                state.live = Some(LiveRecord {
                    source,
                    oid,
                    put_aside: put_aside.clone(),
                    sealed: None,
                    opened_at: Some(Utc::now()),
                });
                put_aside
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
        };
        state.store(&self.root).await?;
        tracing::info!(database = %live, label = %preserved.label, "preserved database reinstated");
        Ok(put_aside)
    }

    /// Splits recorded put-aside entries into the archives `archive_aside` completed (under
    /// `preserved/`, archive present) and the rest (renamed databases); an archive entry
    /// whose archive is missing was never completed and is dropped.
    async fn split_archived(&self, recorded: Vec<PutAside>) -> (Vec<PutAside>, Vec<PutAside>) {
        let preserved_dir = self.root.join("preserved").display().to_string();
        let (candidates, others): (Vec<PutAside>, Vec<PutAside>) = recorded
            .into_iter()
            .partition(|a| a.location.starts_with(&preserved_dir));
        let mut archived = Vec::new();
        for a in candidates {
            let archive = Path::new(&a.location).join(DumpFormat::Custom.archive_name());
            if tokio::fs::metadata(&archive).await.is_ok_and(|m| m.is_file()) {
                archived.push(a);
            }
        }
        (archived, others)
    }

    /// Keeps database `live` as a `pg_dump` archive in `preserved/<aside.location>/` (the
    /// name a rename aside would have had), because renaming it aside was refused
    /// (`refused`): written complete under a temporary name, then renamed, so that an
    /// archive there is always whole.
    async fn archive_aside(
        &self,
        live: &str,
        aside: &PutAside,
        refused: &PgError,
    ) -> Result<PutAside, PgError> {
        let dir = self.root.join("preserved").join(&aside.location);
        files::create_private_dir(&dir).await?;
        let archive = dir.join(DumpFormat::Custom.archive_name());
        let partial = dir.join(format!("{}.partial", DumpFormat::Custom.archive_name()));
        self.pg_dump(live, &partial, DumpFormat::Custom, None).await?;
        files::make_private_tree(&dir).await?;
        tokio::fs::rename(&partial, &archive)
            .await
            .map_err(|e| PgError::io(format!("cannot write {}", archive.display()), e))?;
        tracing::warn!(database = %live, archive = %archive.display(), "could not rename the live database aside: kept an archive of it");
        Ok(PutAside {
            location: dir.display().to_string(),
            holds: format!(
                "a pg_dump archive ({}) of {}; kept because renaming {live} aside was refused ({refused}) and it was \
                 restored over in place; restore it with pg_restore into a new database",
                archive.display(),
                aside.holds
            ),
        })
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

    /// Where the live database goes when a reinstate sets it aside
    /// (`<db>__rollback_failed_<utc>`, or the name an interrupted call had chosen), and what
    /// it holds, from the record of what was put live last.
    async fn failed_aside(
        &self,
        client: &Client,
        state: &State,
        live_oid: Option<u32>,
        label: &str,
        pending: Option<PutAside>,
    ) -> Result<PutAside, PgError> {
        if let Some(p) = pending {
            if Self::db_oid(client, &p.location).await?.is_none() {
                return Ok(p);
            }
        }
        let live = &self.config.dbname;
        let location = Self::unused_name(
            client,
            &derived_name(live, &format!("__rollback_failed_{}", Self::timestamp())),
        )
        .await?;
        let why = "set aside because the rollback was undone";
        let holds = match &state.live {
            Some(l) if Some(l.oid) == live_oid && l.oid != 0 => match l.source.split_once(':') {
                Some(("snapshot", id)) => match (&l.sealed, l.opened_at) {
                    (Some(seal), _) => format!(
                        "the restored snapshot {id}, never opened to clients (sealed from {} until it was set aside), \
                         so no client wrote into it; {why}",
                        stamp(seal.since)
                    ),
                    (None, Some(at)) => format!(
                        "the restored snapshot {id} with the writes other clients made into it after it was opened to \
                         them at {}; {why}",
                        stamp(at)
                    ),
                    (None, None) => format!(
                        "the restored snapshot {id} with any writes other clients made into it after the switch; {why}"
                    ),
                },
                Some(("preserved", p)) => format!(
                    "the database reinstated from preserved {p} with any writes made into it since; set aside because \
                     preserved {label} was reinstated"
                ),
                _ => format!("the database that was live before preserved {label} was reinstated; {why}"),
            },
            _ => format!(
                "the database that was live when preserved {label} was reinstated, with every write made into it; {why}"
            ),
        };
        Ok(PutAside { location, holds })
    }
}
