use crate::world::{FakeCommit, Method, World};
use async_trait::async_trait;
use chrono::Utc;
use rollback_core::{AdapterError, CodeVersion, ErrorKind, PreparedRevision, Revision, RevisionId};

/// A fake [`CodeVersion`] over the world's commit list. `activate` refuses a revision that
/// was not prepared, so an orchestrator that skips the build fails loudly.
#[derive(Clone, Debug)]
pub struct FakeCode {
    world: World,
}

impl FakeCode {
    /// A fake repository in `world`.
    pub fn new(world: &World) -> Self {
        Self { world: world.clone() }
    }

    /// Adds a commit at the head (not activated) and returns its id.
    pub fn commit(&self, subject: &str, tree: &str) -> RevisionId {
        let mut s = self.world.lock();
        let n = s.fresh_id();
        let id = RevisionId::new(format!("{n:04x}{:036x}", crate::world::fingerprint(subject)));
        s.code.commits.push(FakeCommit {
            revision: Revision {
                short: id.as_str()[..8].to_owned(),
                id: id.clone(),
                subject: subject.to_owned(),
                author: "testkit".into(),
                time: Utc::now(),
            },
            tree: tree.to_owned(),
        });
        id
    }
}

/// Activating another revision over uncommitted changes is refused (the revision already
/// live is not a switch).
fn refuse_dirty(s: &crate::world::WorldState, revision: &RevisionId) -> Result<(), AdapterError> {
    match &s.code.dirty {
        Some(files) if s.code.active.as_ref() != Some(revision) => Err(AdapterError::new(
            ErrorKind::InvalidInput,
            format!("the live tree has uncommitted changes ({files}): commit or stash them first"),
        )),
        _ => Ok(()),
    }
}

fn location(rev: &RevisionId) -> String {
    format!("memory://releases/{}", &rev.as_str()[..rev.as_str().len().min(8)])
}

#[async_trait]
impl CodeVersion for FakeCode {
    async fn current(&self) -> Result<Revision, AdapterError> {
        let gate = self.world.enter(Method::CodeCurrent, "").await?;
        let rev = self
            .world
            .lock()
            .active_commit()
            .map(|c| c.revision.clone())
            .ok_or_else(|| AdapterError::not_found("no revision is active"))?;
        gate.pass().await?;
        Ok(rev)
    }

    async fn resolve(&self, spec: &str) -> Result<Revision, AdapterError> {
        let gate = self.world.enter(Method::CodeResolve, spec).await?;
        let found = {
            let s = self.world.lock();
            let commits = &s.code.commits;
            if let Some(n) = spec.strip_prefix("HEAD~").and_then(|n| n.parse::<usize>().ok()) {
                commits
                    .len()
                    .checked_sub(n + 1)
                    .map(|i| vec![commits[i].revision.clone()])
            } else if spec == "HEAD" {
                commits.last().map(|c| vec![c.revision.clone()])
            } else {
                Some(
                    commits
                        .iter()
                        .filter(|c| !spec.is_empty() && c.revision.id.as_str().starts_with(spec))
                        .map(|c| c.revision.clone())
                        .collect(),
                )
            }
        }
        .unwrap_or_default();
        let rev = match found.as_slice() {
            [one] => one.clone(),
            [] => return Err(AdapterError::not_found(format!("revision `{spec}` not found"))),
            many => {
                return Err(AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "revision `{spec}` is ambiguous: {}",
                        many.iter()
                            .map(|r| r.short.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        };
        gate.pass().await?;
        Ok(rev)
    }

    async fn history(&self, n: usize) -> Result<Vec<Revision>, AdapterError> {
        let gate = self.world.enter(Method::CodeHistory, n.to_string()).await?;
        let out = self
            .world
            .lock()
            .code
            .commits
            .iter()
            .rev()
            .take(n)
            .map(|c| c.revision.clone())
            .collect();
        gate.pass().await?;
        Ok(out)
    }

    async fn prepare(&self, revision: &RevisionId) -> Result<PreparedRevision, AdapterError> {
        let gate = self.world.enter(Method::CodePrepare, revision.as_str()).await?;
        {
            let mut s = self.world.lock();
            if !s.code.commits.iter().any(|c| &c.revision.id == revision) {
                return Err(AdapterError::not_found(format!(
                    "revision `{revision}` not found"
                )));
            }
            if s.code.broken_builds.contains(revision) {
                return Err(AdapterError::new(
                    ErrorKind::Failed,
                    format!("build of `{revision}` failed (fake): npm run build exited 1"),
                ));
            }
            s.code.prepared.insert(revision.clone());
        }
        gate.pass().await?;
        Ok(PreparedRevision {
            revision: revision.clone(),
            location: location(revision),
            build_log_tail: vec!["built (fake)".into()],
        })
    }

    async fn preserve_current(&self) -> Result<PreparedRevision, AdapterError> {
        let gate = self.world.enter(Method::CodePreserveCurrent, "").await?;
        let rev = {
            let mut s = self.world.lock();
            let rev = s
                .code
                .active
                .clone()
                .ok_or_else(|| AdapterError::not_found("no revision is active"))?;
            s.code.prepared.insert(rev.clone());
            rev
        };
        gate.pass().await?;
        Ok(PreparedRevision {
            location: location(&rev),
            revision: rev,
            build_log_tail: Vec::new(),
        })
    }

    /// Like a releases layout (a running app keeps what it loaded), unless the world's code
    /// is `in_place`.
    fn switches_under_a_running_app(&self) -> bool {
        !self.world.lock().code.in_place
    }

    async fn check_activate(&self, revision: &RevisionId) -> Result<(), AdapterError> {
        let gate = self
            .world
            .enter(Method::CodeCheckActivate, revision.as_str())
            .await?;
        refuse_dirty(&self.world.lock(), revision)?;
        gate.pass().await?;
        Ok(())
    }

    async fn activate(&self, prepared: &PreparedRevision) -> Result<(), AdapterError> {
        let gate = self
            .world
            .enter(Method::CodeActivate, prepared.revision.as_str())
            .await?;
        {
            let mut s = self.world.lock();
            refuse_dirty(&s, &prepared.revision)?;
            if !s.code.prepared.contains(&prepared.revision) {
                return Err(AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "revision `{}` was not prepared: call prepare first",
                        prepared.revision
                    ),
                ));
            }
            s.code.active = Some(prepared.revision.clone());
        }
        gate.pass().await?;
        Ok(())
    }

    async fn revert(&self, commits: &[RevisionId]) -> Result<Revision, AdapterError> {
        let arg = commits
            .iter()
            .map(RevisionId::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let gate = self.world.enter(Method::CodeRevert, arg).await?;
        let tree = {
            let s = self.world.lock();
            let positions: Vec<usize> = commits
                .iter()
                .map(|id| {
                    s.code
                        .commits
                        .iter()
                        .position(|c| &c.revision.id == id)
                        .ok_or_else(|| AdapterError::not_found(format!("revision `{id}` not found")))
                })
                .collect::<Result<_, _>>()?;
            let oldest = positions.iter().copied().min().unwrap_or(0);
            // Reverting commits back to `oldest` gives the tree of the commit before it.
            oldest
                .checked_sub(1)
                .map(|i| s.code.commits[i].tree.clone())
                .ok_or_else(|| AdapterError::new(ErrorKind::Conflict, "cannot revert the root commit"))?
        };
        let id = self.commit(&format!("Revert {} commit(s)", commits.len()), &tree);
        let rev = self
            .world
            .lock()
            .code
            .commits
            .iter()
            .find(|c| c.revision.id == id)
            .map(|c| c.revision.clone())
            .ok_or_else(|| AdapterError::new(ErrorKind::Failed, "revert commit vanished"))?;
        gate.pass().await?;
        Ok(rev)
    }
}
