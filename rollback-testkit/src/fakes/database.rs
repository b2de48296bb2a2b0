use crate::world::WorldState;
use crate::world::{DbContent, Method, World};
use async_trait::async_trait;
use chrono::Utc;
use rollback_core::{
    AdapterError, CheckResult, DatabaseSnapshot, ErrorKind, Finding, IntegrityChecks, IntegrityReport,
    PreparedRestore, PreservedDatabase, PutAside, Secret, SnapshotId, SnapshotInfo,
};
use std::time::Duration;

/// A fake [`DatabaseSnapshot`]. `preserve_current` sets the live database aside (as a
/// rename does), and `restore` refuses to replace a live database that was not preserved,
/// so an orchestrator that skips the emergency backup fails loudly.
#[derive(Clone, Debug)]
pub struct FakeDatabase {
    world: World,
    url: Secret,
}

impl FakeDatabase {
    /// A fake database in `world`, "connected" with `url` (a secret it never shows).
    pub fn new(world: &World, url: impl Into<Secret>) -> Self {
        Self {
            world: world.clone(),
            url: url.into(),
        }
    }

    /// The connection URL (a secret).
    pub fn url(&self) -> &Secret {
        &self.url
    }

    fn reachable(&self) -> Result<(), AdapterError> {
        if self.world.lock().db.reachable {
            Ok(())
        } else {
            Err(AdapterError::new(
                ErrorKind::Unavailable,
                "database unreachable (fake): check the host and that the server runs",
            ))
        }
    }
}

fn unknown(id: &SnapshotId) -> AdapterError {
    AdapterError::not_found(format!(
        "snapshot `{id}` does not exist: list() shows the snapshots"
    ))
}

#[async_trait]
impl DatabaseSnapshot for FakeDatabase {
    async fn snapshot(&self, label: &str) -> Result<SnapshotInfo, AdapterError> {
        let gate = self.world.enter(Method::DbSnapshot, label).await?;
        self.reachable()?;
        let info = {
            let mut s = self.world.lock();
            let live = s.db.live.clone().ok_or_else(|| {
                AdapterError::new(
                    ErrorKind::Unavailable,
                    "the live database is set aside: nothing to snapshot",
                )
            })?;
            let n = s.fresh_id();
            let info = SnapshotInfo {
                id: SnapshotId::new(format!("snap-{n}")),
                label: label.to_owned(),
                created_at: Utc::now(),
                size_bytes: Some(live.rows * 100),
                location: format!("memory://snapshots/snap-{n}"),
                warnings: if live.orphans > 0 {
                    vec![format!(
                        "foreign keys: {} orphan rows already at snapshot time (the baseline)",
                        live.orphans
                    )]
                } else {
                    Vec::new()
                },
            };
            s.db.snapshots
                .insert(info.id.clone(), (info.clone(), live, false));
            info
        };
        gate.pass().await?;
        Ok(info)
    }

    async fn verify(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        let gate = self.world.enter(Method::DbVerify, id.as_str()).await?;
        match self.world.lock().db.snapshots.get(id) {
            None => return Err(unknown(id)),
            Some((_, _, true)) => {
                return Err(AdapterError::new(
                    ErrorKind::Corrupt,
                    format!("snapshot `{id}` is damaged (checksum mismatch): take a new one or pick another"),
                ))
            }
            Some(_) => {}
        }
        gate.pass().await?;
        Ok(())
    }

    async fn prepare_restore(&self, id: &SnapshotId) -> Result<PreparedRestore, AdapterError> {
        let gate = self.world.enter(Method::DbPrepareRestore, id.as_str()).await?;
        self.reachable()?;
        {
            let mut s = self.world.lock();
            let mut content = s.db.snapshots.get(id).ok_or_else(|| unknown(id))?.1.clone();
            content.orphans += s.db.staging_adds_orphans;
            s.db.staged.insert(id.clone(), content);
        }
        gate.pass().await?;
        Ok(PreparedRestore {
            snapshot: id.clone(),
            staged_at: Some(format!("memory://staging/{id}")),
            notes: Vec::new(),
        })
    }

    async fn preserve_current(&self, label: &str) -> Result<PreservedDatabase, AdapterError> {
        let gate = self.world.enter(Method::DbPreserveCurrent, label).await?;
        self.reachable()?;
        {
            let mut s = self.world.lock();
            if !s.db.preserved.contains_key(label) {
                let live = s.db.live.take().ok_or_else(|| {
                    AdapterError::new(
                        ErrorKind::Conflict,
                        "no live database to preserve (it is set aside)",
                    )
                })?;
                s.db.preserved.insert(label.to_owned(), live);
            }
        }
        gate.pass().await?;
        Ok(PreservedDatabase {
            label: label.to_owned(),
            location: format!("memory://preserved/{label}"),
            method: "set aside (fake rename)".into(),
            notes: Vec::new(),
        })
    }

    async fn preserved(&self, label: &str) -> Result<Option<PreservedDatabase>, AdapterError> {
        self.reachable()?;
        Ok(self
            .world
            .lock()
            .db
            .preserved
            .contains_key(label)
            .then(|| PreservedDatabase {
                label: label.to_owned(),
                location: format!("memory://preserved/{label}"),
                method: "set aside (fake rename)".into(),
                notes: vec!["found by looking: the emergency backup had set it aside".into()],
            }))
    }

    async fn live_source(&self) -> Result<Option<SnapshotId>, AdapterError> {
        self.reachable()?;
        let s = self.world.lock();
        Ok(s.db
            .live
            .as_ref()
            .and_then(|_| s.db.live_origin.strip_prefix("snapshot:"))
            .map(SnapshotId::new))
    }

    async fn check_prepared(
        &self,
        prepared: &PreparedRestore,
        checks: &IntegrityChecks,
    ) -> Result<IntegrityReport, AdapterError> {
        let gate = self
            .world
            .enter(Method::DbCheckPrepared, prepared.snapshot.as_str())
            .await?;
        self.reachable()?;
        let report = {
            let s = self.world.lock();
            let staged = s.db.staged.get(&prepared.snapshot).ok_or_else(|| {
                AdapterError::not_found(format!(
                    "snapshot `{}` is not staged: call prepare_restore first",
                    prepared.snapshot
                ))
            })?;
            integrity_of(&s, Some(staged), false, checks)
        };
        if report.passed() {
            self.world
                .lock()
                .db
                .verified_staged
                .insert(prepared.snapshot.clone());
        }
        gate.pass().await?;
        Ok(report)
    }

    async fn restore(&self, prepared: &PreparedRestore) -> Result<Vec<PutAside>, AdapterError> {
        let id = &prepared.snapshot;
        let gate = self.world.enter(Method::DbRestore, id.as_str()).await?;
        self.reachable()?;
        {
            let mut s = self.world.lock();
            let origin = format!("snapshot:{id}");
            if s.db.live_origin == origin && s.db.live.is_some() {
                // Already live: idempotent.
            } else {
                if s.db.live.is_some() {
                    return Err(AdapterError::new(
                        ErrorKind::Conflict,
                        "refusing to replace a live database that was not preserved: call preserve_current first",
                    ));
                }
                let content = s.db.staged.remove(id).ok_or_else(|| {
                    AdapterError::not_found(format!(
                        "snapshot `{id}` is not staged: call prepare_restore first"
                    ))
                })?;
                s.db.live = Some(content);
                s.db.live_origin = origin;
                // A verified copy stays sealed until open(), as the real adapter keeps it.
                s.db.sealed = s.db.verified_staged.remove(id);
            }
        }
        gate.pass().await?;
        Ok(Vec::new())
    }

    async fn prove_unchanged(&self, prepared: &PreparedRestore) -> Result<Option<CheckResult>, AdapterError> {
        let gate = self
            .world
            .enter(Method::DbProveUnchanged, prepared.snapshot.as_str())
            .await?;
        self.reachable()?;
        let proof = {
            let s = self.world.lock();
            let is_it = s.db.live_origin == format!("snapshot:{}", prepared.snapshot) && s.db.live.is_some();
            CheckResult {
                name: "switched-in copy unchanged".into(),
                passed: is_it && s.db.sealed,
                detail: format!("live is {}, sealed {}", s.db.live_origin, s.db.sealed),
            }
        };
        gate.pass().await?;
        Ok(Some(proof))
    }

    async fn open(&self) -> Result<Vec<String>, AdapterError> {
        let gate = self.world.enter(Method::DbOpen, "").await?;
        self.reachable()?;
        let was = std::mem::replace(&mut self.world.lock().db.sealed, false);
        gate.pass().await?;
        Ok(if was {
            vec!["opened the live database to clients (fake)".into()]
        } else {
            Vec::new()
        })
    }

    async fn reinstate(&self, preserved: &PreservedDatabase) -> Result<Vec<PutAside>, AdapterError> {
        let gate = self.world.enter(Method::DbReinstate, &preserved.label).await?;
        self.reachable()?;
        let mut aside = Vec::new();
        {
            let mut s = self.world.lock();
            let origin = format!("preserved:{}", preserved.label);
            if s.db.live_origin != origin || s.db.live.is_none() {
                let content = s.db.preserved.get(&preserved.label).cloned().ok_or_else(|| {
                    AdapterError::not_found(format!("no preserved database labelled `{}`", preserved.label))
                })?;
                if let Some(current) = s.db.live.take() {
                    aside.push(PutAside {
                        location: format!("memory://set-aside/{}", s.db.set_aside.len()),
                        holds: format!(
                            "the database that was live ({}, `{}`), with every write made into it",
                            s.db.live_origin, current.marker
                        ),
                    });
                    s.db.set_aside.push(current);
                }
                s.db.live = Some(content);
                s.db.live_origin = origin;
                s.db.sealed = true;
            }
        }
        gate.pass().await?;
        Ok(aside)
    }

    async fn check_integrity(&self, checks: &IntegrityChecks) -> Result<IntegrityReport, AdapterError> {
        let gate = self.world.enter(Method::DbCheckIntegrity, "").await?;
        self.reachable()?;
        let report = {
            let s = self.world.lock();
            if s.db.sealed {
                return Err(AdapterError::new(
                    ErrorKind::Unavailable,
                    "the live database is sealed (closed to connections) until open(): prove_unchanged() is the check for a sealed copy",
                ));
            }
            integrity_of(&s, s.db.live.as_ref(), s.db.fk_orphans, checks)
        };
        gate.pass().await?;
        Ok(report)
    }

    async fn list(&self) -> Result<Vec<SnapshotInfo>, AdapterError> {
        let gate = self.world.enter(Method::DbList, "").await?;
        let mut all: Vec<SnapshotInfo> = self
            .world
            .lock()
            .db
            .snapshots
            .values()
            .map(|(i, _, _)| i.clone())
            .collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        gate.pass().await?;
        Ok(all)
    }

    async fn remove(&self, id: &SnapshotId) -> Result<(), AdapterError> {
        let gate = self.world.enter(Method::DbRemove, id.as_str()).await?;
        self.world
            .lock()
            .db
            .snapshots
            .remove(id)
            .ok_or_else(|| unknown(id))?;
        gate.pass().await?;
        Ok(())
    }

    async fn ping(&self) -> Result<Duration, AdapterError> {
        let gate = self.world.enter(Method::DbPing, "").await?;
        self.reachable()?;
        if self.world.lock().db.live.is_none() {
            // As a server answers for a database renamed away.
            return Err(AdapterError::not_found(
                "the live database does not exist (it is set aside)",
            ));
        }
        gate.pass().await?;
        Ok(Duration::from_millis(1))
    }

    /// The world's [`DbWorld::diagnosis`](crate::DbWorld::diagnosis).
    async fn diagnose(&self) -> Result<Vec<Finding>, AdapterError> {
        let gate = self.world.enter(Method::DbDiagnose, "").await?;
        self.reachable()?;
        let found = self.world.lock().db.diagnosis.clone();
        gate.pass().await?;
        Ok(found)
    }
}

/// The fake's integrity checks of `content` (the live database or a staged copy):
/// foreign keys measured against the baseline snapshot's orphans, assertions, row counts.
fn integrity_of(
    s: &WorldState,
    content: Option<&DbContent>,
    new_orphans: bool,
    checks: &IntegrityChecks,
) -> IntegrityReport {
    let mut out = vec![CheckResult {
        name: "connectivity".into(),
        passed: content.is_some(),
        detail: if content.is_some() {
            "SELECT 1 answered"
        } else {
            "no live database"
        }
        .into(),
    }];
    let baseline = checks
        .baseline
        .as_ref()
        .and_then(|id| s.db.snapshots.get(id))
        .map_or(0, |(_, c, _)| c.orphans);
    let orphans = content.map_or(0, |c| c.orphans);
    let fk_ok = !new_orphans && orphans <= baseline;
    out.push(CheckResult {
        name: "foreign keys".into(),
        passed: fk_ok,
        detail: if new_orphans {
            "orphan rows found that the baseline does not have".into()
        } else if orphans > 0 {
            format!("{orphans} orphan rows, baseline {baseline}")
        } else {
            "every foreign key valid".into()
        },
    });
    for a in &checks.assertions {
        out.push(CheckResult {
            name: a.name.clone(),
            passed: content.is_some(),
            detail: "fake assertion".into(),
        });
    }
    if let Some(id) = &checks.expect_snapshot {
        let expected = s.db.snapshots.get(id).map(|(_, c, _)| c.rows);
        let actual = content.map(|l| l.rows);
        out.push(CheckResult {
            name: "row counts".into(),
            passed: expected.is_some() && expected == actual,
            detail: format!("expected {expected:?}, found {actual:?}"),
        });
    }
    IntegrityReport { checks: out }
}

impl DbContent {
    /// Content with this marker and row count, and no orphan rows.
    pub fn new(marker: impl Into<String>, rows: u64) -> Self {
        Self {
            marker: marker.into(),
            rows,
            orphans: 0,
        }
    }

    /// The same content with `n` orphan rows under a foreign key.
    pub fn with_orphans(mut self, n: u64) -> Self {
        self.orphans = n;
        self
    }
}
