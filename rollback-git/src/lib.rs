//! `rollback-git`: [`CodeVersion`] over git2. The previous stable release is built **before**
//! the app stops and switched in at once.
//!
//! The runbook does `git checkout <previous> && npm install && npm run build` and only then
//! restarts: the app is down for the whole build. Here [`prepare`](CodeVersion::prepare)
//! checks the revision out somewhere the app does not run from and builds it there while the
//! app still serves; [`activate`](CodeVersion::activate) then switches what the app runs
//! from, in one `rename(2)` for the releases layout.
//!
//! What it is not: a deploy tool (no fetching, no remote hosts), nor a process manager
//! (stopping and starting is `ProcessManager`'s job).
//!
//! # Layouts
//!
//! **Releases** ([`Layout::Releases`], Capistrano style, the default and the recommended one):
//! ```text
//! /srv/app/repo/                 the clone: source of commits (its working tree is not run)
//! /srv/app/releases/3f2a9c01d4e5/  one checkout per prepared revision, built in place,
//!                                  with a REVISION file written last (only after the build)
//! /srv/app/releases/failed-…/      failed builds, kept aside for debugging (last 3)
//! /srv/app/current -> releases/3f2a9c01d4e5   what the process manager runs from
//! ```
//! `activate` makes a new symlink under a temporary name and renames it over `current`: a
//! reader sees the old release or the new one, never a missing or half-written path. The
//! last `keep` releases are kept; the live one, the previous one and the one being activated
//! are never removed. `HEAD` in [`resolve`](CodeVersion::resolve) means the live release, so
//! `HEAD~1` is the parent of what runs, as in the runbook.
//!
//! **In place** ([`Layout::InPlace`]): the app runs from the repository's working tree.
//! `prepare` checks the revision out into `<worktrees_dir>/<hash>` (inside `.git` by default)
//! and builds it there, so a failing build never touches the live tree. `activate` checks the
//! revision out in the live tree (detached HEAD, or a branch reset with
//! [`InPlaceOptions::reset_branch`]), refusing uncommitted changes and untracked files in the
//! way (naming the files) unless [`allow_dirty`](GitCodeBuilder::allow_dirty), and moves the
//! configured build [`artifacts`](InPlaceOptions::artifacts) (`node_modules`, `dist`) in by
//! rename; the live artifacts are moved aside with their revision, so switching back needs no
//! build. The revision already checked out is left exactly as it is (dirty files, attached
//! branch and all), so switching back to [`preserve_current`](CodeVersion::preserve_current)
//! when nothing changed is a no-op. `preserve_current` records the branch HEAD is on (after
//! a `git pull` deploy, say) beside the revision; activating that preserved revision after
//! another one puts HEAD back on the branch, so the tree is as it was and the next `git pull`
//! works. A branch that moved meanwhile is never moved back: HEAD then stays detached at the
//! revision and a warning says so. `current()` is the working tree's HEAD. The checkout
//! itself is not atomic: prefer releases.
//!
//! Both layouts: [`check_activate`](CodeVersion::check_activate) finds, changing nothing,
//! what `activate` would refuse (a dirty tree in place, a releases directory or `current`
//! link that cannot be written), with the same error, so that pre-flight refuses before the
//! app stops.
//!
//! Both layouts: [`revert`](CodeVersion::revert) computes each revert in memory and only then
//! moves the branch (never rewriting history); a conflict changes nothing. In place, the
//! live tree is not touched by a revert: HEAD stays at what runs, detached, and the revert
//! head is built and activated like any other revision.
//!
//! # Example
//! ```no_run
//! use rollback_core::CodeVersion;
//! use rollback_git::GitCode;
//!
//! # async fn demo() -> Result<(), rollback_core::AdapterError> {
//! let code = GitCode::builder("/srv/app/repo")
//!     .releases("/srv/app/releases", "/srv/app/current")
//!     .build_command(["npm", "ci"])
//!     .build_command(["npm", "run", "build"])
//!     .build_timeout(std::time::Duration::from_secs(600))
//!     .build()?; // checks the repository, the tools and the releases directory
//!
//! let target = code.resolve("v1.4.2").await?;
//! let prepared = code.prepare(&target.id).await?; // slow: the app still serves
//! let backup = code.preserve_current().await?;    // the live release, to switch back to
//! // ... the process manager stops the app ...
//! code.activate(&prepared).await?;                // fast: one rename
//! // ... starts it; if it is unhealthy: code.activate(&backup).await?
//! # let _ = backup;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod build;
mod config;
mod error;
mod inplace;
mod releases;
mod repo;
mod revert;

pub use config::{BuildCommand, BuildEnv, GitCodeConfig, InPlaceOptions, Layout, ReleasesOptions};
pub use error::GitError;
pub use releases::REVISION_FILE;

use async_trait::async_trait;
use build::Runner;
use rollback_core::{AdapterError, CodeVersion, PreparedRevision, Revision, RevisionId};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs blocking git2 work on tokio's blocking pool. Each call opens its own `Repository`
/// (cheap), so nothing is shared between threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, GitError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, GitError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(GitError::Task)?
}

/// [`CodeVersion`] over a git repository; see the [crate docs](crate) for the layouts.
///
/// ```
/// use rollback_core::CodeVersion;
/// use rollback_git::GitCode;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A repository with one commit.
/// let tmp = tempfile::tempdir()?;
/// let repo_dir = tmp.path().join("repo");
/// let repo = git2::Repository::init(&repo_dir)?;
/// std::fs::write(repo_dir.join("index.js"), "console.log('v1')\n")?;
/// let mut index = repo.index()?;
/// index.add_path(std::path::Path::new("index.js"))?;
/// let tree = repo.find_tree(index.write_tree()?)?;
/// let sig = git2::Signature::now("Dev", "dev@example.com")?;
/// repo.commit(Some("HEAD"), &sig, &sig, "v1", &tree, &[])?;
///
/// let code = GitCode::builder(&repo_dir)
///     .releases(tmp.path().join("releases"), tmp.path().join("current"))
///     .build_command(["cp", "index.js", "bundle.js"]) // stands in for ["npm", "run", "build"]
///     .build()?;
/// let v1 = code.resolve("HEAD").await?;
/// let prepared = code.prepare(&v1.id).await?;
/// code.activate(&prepared).await?;
/// assert_eq!(code.current().await?.id, v1.id);
/// assert!(tmp.path().join("current/bundle.js").exists());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct GitCode {
    repo: PathBuf,
    layout: Resolved,
    runner: Runner,
    branch: Option<String>,
    allow_dirty: bool,
}

/// The layout with its paths made absolute and checked.
#[derive(Clone, Debug)]
enum Resolved {
    Releases {
        dir: PathBuf,
        link: PathBuf,
        keep: usize,
    },
    InPlace {
        worktrees: PathBuf,
        opts: InPlaceOptions,
    },
}

impl GitCode {
    /// A builder for the repository at `repo`: [`GitCodeBuilder::new`].
    pub fn builder(repo: impl Into<PathBuf>) -> GitCodeBuilder {
        GitCodeBuilder::new(repo)
    }

    /// Checks the configuration before anything changes: the repository exists and is not
    /// bare, every build tool is found, the releases (or worktrees) directory is writable.
    /// Blocking (a few file system calls); call it at startup.
    pub fn new(config: GitCodeConfig) -> Result<Self, AdapterError> {
        Self::check(config).map_err(AdapterError::from)
    }

    fn check(config: GitCodeConfig) -> Result<Self, GitError> {
        let git = repo::open(&config.repo)?;
        let repo = git
            .workdir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| config.repo.clone());
        let runner = Runner {
            commands: config.build.clone(),
            env: config.env.clone(),
            timeout: config.build_timeout,
            tail_lines: config.log_tail_lines.max(1),
        };
        runner.check_tools(None)?;
        let branch = match &config.branch {
            Some(b) => {
                git.find_reference(&format!("refs/heads/{b}")).map_err(|_| {
                    GitError::Invalid(format!(
                        "branch `{b}` does not exist in `{}`: configure an existing branch",
                        repo.display()
                    ))
                })?;
                Some(b.clone())
            }
            None => repo::head_branch(&git),
        };
        let layout = match config.layout {
            Layout::Releases(o) => {
                releases::ensure_writable(&o.releases_dir)?;
                let dir = std::fs::canonicalize(&o.releases_dir)
                    .map_err(GitError::io("resolving", &o.releases_dir))?;
                let link = absolute(&o.current_link)?;
                if let Some(parent) = link.parent() {
                    releases::ensure_writable(parent)?;
                }
                Resolved::Releases {
                    dir,
                    link,
                    keep: o.keep.max(1),
                }
            }
            Layout::InPlace(opts) => {
                let worktrees = opts
                    .worktrees_dir
                    .clone()
                    .unwrap_or_else(|| git.path().join("rollback-worktrees"));
                releases::ensure_writable(&worktrees)?;
                let worktrees =
                    std::fs::canonicalize(&worktrees).map_err(GitError::io("resolving", &worktrees))?;
                if let Some(b) = &opts.reset_branch {
                    if b.trim().is_empty() {
                        return Err(GitError::Invalid(
                            "reset_branch is empty: give a branch name".into(),
                        ));
                    }
                }
                Resolved::InPlace {
                    worktrees,
                    opts: InPlaceOptions {
                        keep: opts.keep.max(1),
                        ..opts
                    },
                }
            }
        };
        Ok(Self {
            repo,
            layout,
            runner,
            branch,
            allow_dirty: config.allow_dirty,
        })
    }

    /// The repository's working tree.
    pub fn repo_path(&self) -> &Path {
        &self.repo
    }

    /// The branch `history` lists and `revert` commits onto (`None`: HEAD).
    pub fn branch(&self) -> Option<&str> {
        self.branch.as_deref()
    }

    /// Where prepared revisions go: the releases directory or the worktrees directory.
    pub fn prepare_dir(&self) -> &Path {
        match &self.layout {
            Resolved::Releases { dir, .. } => dir,
            Resolved::InPlace { worktrees, .. } => worktrees,
        }
    }

    /// The live release directory and its revision (releases layout).
    fn live_release(link: &Path) -> Result<(PathBuf, String), GitError> {
        let target = releases::link_target(link)?.ok_or_else(|| GitError::NoCurrentRelease {
            link: link.to_path_buf(),
        })?;
        let rev = releases::read_revision(&target).ok_or_else(|| GitError::NotPrepared {
            revision: "(unknown)".into(),
            location: target.display().to_string(),
            reason: format!(
                "`{}` points at a directory without a REVISION file",
                link.display()
            ),
        })?;
        Ok((target, rev))
    }
}

fn absolute(p: &Path) -> Result<PathBuf, GitError> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(GitError::io("reading the current directory", "."))?;
    Ok(cwd.join(p))
}

#[async_trait]
impl CodeVersion for GitCode {
    async fn current(&self) -> Result<Revision, AdapterError> {
        let (repo_path, layout) = (self.repo.clone(), self.layout.clone());
        Ok(blocking(move || {
            let repo = repo::open(&repo_path)?;
            match layout {
                Resolved::Releases { link, .. } => {
                    let (_, rev) = Self::live_release(&link)?;
                    Ok(repo::revision_of(&repo::find_commit(&repo, &rev)?))
                }
                Resolved::InPlace { .. } => repo::head_commit(&repo)?
                    .map(|c| repo::revision_of(&c))
                    .ok_or_else(|| GitError::UnknownRevision {
                        spec: "HEAD".into(),
                        hint: format!("`{}` has no commit checked out", repo_path.display()),
                    }),
            }
        })
        .await?)
    }

    async fn resolve(&self, spec: &str) -> Result<Revision, AdapterError> {
        let (repo_path, layout, spec) = (self.repo.clone(), self.layout.clone(), spec.to_owned());
        Ok(blocking(move || {
            let repo = repo::open(&repo_path)?;
            let live = match layout {
                Resolved::Releases { link, .. } => match Self::live_release(&link) {
                    Ok((_, rev)) => git2::Oid::from_str(&rev).ok(),
                    Err(_) => None,
                },
                Resolved::InPlace { .. } => None,
            };
            repo::resolve(&repo, &spec, live)
        })
        .await?)
    }

    async fn history(&self, n: usize) -> Result<Vec<Revision>, AdapterError> {
        let (repo_path, branch) = (self.repo.clone(), self.branch.clone());
        Ok(blocking(move || repo::history(&repo::open(&repo_path)?, branch.as_deref(), n)).await?)
    }

    async fn prepare(&self, revision: &RevisionId) -> Result<PreparedRevision, AdapterError> {
        let mut prepared =
            releases::prepare_dir(&self.repo, self.prepare_dir(), revision, &self.runner).await?;
        if let Resolved::InPlace { opts, .. } = &self.layout {
            if opts.artifacts.is_empty() && !self.runner.commands.is_empty() {
                prepared.build_log_tail.push(
                    "note: in place without artifacts: the build only proved the revision builds; \
                     activate checks out the sources only (set InPlaceOptions::artifacts)"
                        .to_owned(),
                );
            }
        }
        Ok(prepared)
    }

    /// In place: the refusals of `activate` (uncommitted changes or untracked files in the
    /// way unless [`allow_dirty`](GitCodeBuilder::allow_dirty), an unknown commit, a
    /// worktrees directory that cannot be written), with the same error. Releases: the
    /// commit exists, `current` is a symlink (or absent), and the releases directory and
    /// the link's directory can be written (probed with a file created and removed at
    /// once). The revision already live passes in both layouts. Changes nothing.
    /// The releases layout switches one symlink: running processes keep their release
    /// directory. In place, a checkout rewrites the files under the running app: `false`.
    fn switches_under_a_running_app(&self) -> bool {
        matches!(self.layout, Resolved::Releases { .. })
    }

    async fn check_activate(&self, revision: &RevisionId) -> Result<(), AdapterError> {
        let (repo_path, layout, revision) = (self.repo.clone(), self.layout.clone(), revision.clone());
        let allow_dirty = self.allow_dirty;
        Ok(blocking(move || match layout {
            Resolved::Releases { dir, link, .. } => check_release(&repo_path, &dir, &link, &revision),
            Resolved::InPlace { worktrees, .. } => {
                inplace::check(&repo_path, &worktrees, allow_dirty, &revision)
            }
        })
        .await?)
    }

    async fn preserve_current(&self) -> Result<PreparedRevision, AdapterError> {
        let (repo_path, layout) = (self.repo.clone(), self.layout.clone());
        Ok(blocking(move || match layout {
            Resolved::Releases { link, .. } => {
                let (dir, rev) = Self::live_release(&link)?;
                Ok(PreparedRevision {
                    revision: RevisionId::new(rev.clone()),
                    location: dir.display().to_string(),
                    build_log_tail: vec![format!("live release {rev} kept at {}", dir.display())],
                })
            }
            Resolved::InPlace { worktrees, .. } => inplace::preserve(&repo_path, &worktrees),
        })
        .await?)
    }

    async fn activate(&self, prepared: &PreparedRevision) -> Result<(), AdapterError> {
        let (repo_path, layout, prepared) = (self.repo.clone(), self.layout.clone(), prepared.clone());
        let allow_dirty = self.allow_dirty;
        Ok(blocking(move || match layout {
            Resolved::Releases {
                dir: base,
                link,
                keep,
            } => activate_release(&base, &link, keep, &prepared),
            Resolved::InPlace { worktrees, opts } => {
                inplace::activate(&repo_path, &worktrees, &opts, allow_dirty, &prepared)
            }
        })
        .await?)
    }

    async fn revert(&self, commits: &[RevisionId]) -> Result<Revision, AdapterError> {
        let (repo_path, branch, commits) = (self.repo.clone(), self.branch.clone(), commits.to_vec());
        let live_tree = matches!(self.layout, Resolved::InPlace { .. });
        Ok(blocking(move || {
            revert::revert(
                &repo_path,
                revert::Line {
                    branch: branch.as_deref(),
                    live_tree,
                },
                &commits,
            )
        })
        .await?)
    }
}

/// What [`activate_release`] would refuse `revision` for, found now and changing nothing.
fn check_release(repo_path: &Path, dir: &Path, link: &Path, revision: &RevisionId) -> Result<(), GitError> {
    let repo = repo::open(repo_path)?;
    let commit = repo::find_commit(&repo, revision.as_str())?;
    // `current` must be a symlink (or missing): activate refuses anything else, with this error.
    if let Some(live) = releases::link_target(link)? {
        if releases::read_revision(&live).as_deref() == Some(commit.id().to_string().as_str()) {
            return Ok(());
        }
    }
    // `prepare` (re)creates a missing releases directory; the link's directory must exist.
    releases::probe_creatable(dir)?;
    match link.parent() {
        Some(parent) => releases::probe_writable(parent),
        None => Ok(()),
    }
}

/// Swaps `link` to the prepared release, then prunes. When `link` already points there,
/// nothing at all changes (no swap, no pruning): switching back to the preserved live
/// release is then a no-op.
fn activate_release(
    base: &Path,
    link: &Path,
    keep: usize,
    prepared: &PreparedRevision,
) -> Result<(), GitError> {
    let dir = releases::check_prepared(prepared)?;
    // A release outside `base` (say, one deployed by hand before this adapter, with its
    // REVISION file) can be switched back to; only releases in `base` are ever pruned.
    let dir = std::fs::canonicalize(&dir).map_err(GitError::io("resolving", &dir))?;
    let previous = releases::link_target(link)?;
    let live = previous
        .as_deref()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    if live.as_deref() == Some(dir.as_path()) {
        tracing::info!(revision = %prepared.revision, release = %dir.display(), "release already live");
        return Ok(());
    }
    releases::swap_link(link, &dir)?;
    tracing::info!(revision = %prepared.revision, release = %dir.display(), link = %link.display(), "release activated");
    releases::touch(&dir);
    let mut protect = vec![dir];
    protect.extend(previous);
    releases::prune(base, keep, &protect);
    Ok(())
}

/// Builds a [`GitCode`]: [`new`](Self::new), the setters (each has a sensible default),
/// then [`build`](Self::build), which checks everything.
#[derive(Clone, Debug)]
pub struct GitCodeBuilder {
    config: GitCodeConfig,
}

impl GitCodeBuilder {
    /// A builder for the repository at `repo` (releases layout by default, see
    /// [`GitCodeConfig::new`]).
    pub fn new(repo: impl Into<PathBuf>) -> Self {
        Self {
            config: GitCodeConfig::new(repo),
        }
    }

    /// Releases layout: revisions are prepared in `releases_dir`, `current_link` is the
    /// symlink the process manager runs from.
    pub fn releases(mut self, releases_dir: impl Into<PathBuf>, current_link: impl Into<PathBuf>) -> Self {
        let keep = match &self.config.layout {
            Layout::Releases(o) => o.keep,
            Layout::InPlace(_) => 5,
        };
        self.config.layout = Layout::Releases(ReleasesOptions {
            releases_dir: releases_dir.into(),
            current_link: current_link.into(),
            keep,
        });
        self
    }

    /// In-place layout with these options (see [`InPlaceOptions`]).
    pub fn in_place(mut self, options: InPlaceOptions) -> Self {
        self.config.layout = Layout::InPlace(InPlaceOptions {
            keep: if options.keep == 0 { 3 } else { options.keep },
            ..options
        });
        self
    }

    /// How many releases (or prepared checkouts) to keep.
    pub fn keep(mut self, n: usize) -> Self {
        match &mut self.config.layout {
            Layout::Releases(o) => o.keep = n,
            Layout::InPlace(o) => o.keep = n,
        }
        self
    }

    /// Adds a build step, e.g. `["npm", "ci"]`; steps run in the order added.
    pub fn build_command<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.build.push(BuildCommand::new(argv));
        self
    }

    /// Adds an environment variable for the build steps.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.env.push(key, value);
        self
    }

    /// The limit for each build step (default 15 minutes).
    pub fn build_timeout(mut self, timeout: Duration) -> Self {
        self.config.build_timeout = timeout;
        self
    }

    /// The branch `history` lists and `revert` commits onto.
    pub fn branch(mut self, branch: impl Into<String>) -> Self {
        self.config.branch = Some(branch.into());
        self
    }

    /// In place: overwrite uncommitted changes in the live tree instead of refusing.
    pub fn allow_dirty(mut self, allow: bool) -> Self {
        self.config.allow_dirty = allow;
        self
    }

    /// How many lines of build output to keep (default 20).
    pub fn log_tail_lines(mut self, n: usize) -> Self {
        self.config.log_tail_lines = n;
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &GitCodeConfig {
        &self.config
    }

    /// Checks everything and makes the adapter (see [`GitCode::new`]).
    pub fn build(self) -> Result<GitCode, AdapterError> {
        GitCode::new(self.config)
    }
}
