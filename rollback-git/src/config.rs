//! [`GitCodeConfig`]: where the repository is, which [`Layout`] the app runs from, and how a
//! revision is built.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where the app runs from, and so how a revision is switched in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// Capistrano style: each prepared revision is checked out and built in
    /// `<releases_dir>/<12-hex short hash>`, and `current_link` is a symlink the process
    /// manager runs from. `activate` swaps the symlink atomically. The repository is only the
    /// source of commits; its working tree is not what runs.
    Releases(ReleasesOptions),
    /// The app runs from the repository's working tree. `prepare` builds in a separate
    /// checkout; `activate` checks the revision out in the live tree and moves the built
    /// [`artifacts`](InPlaceOptions::artifacts) in. Not atomic: prefer releases.
    InPlace(InPlaceOptions),
}

/// Options of [`Layout::Releases`]: [`ReleasesOptions::new`], then set fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReleasesOptions {
    /// The directory holding one directory per prepared revision (created if missing).
    pub releases_dir: PathBuf,
    /// The symlink the process manager runs from (for example `/srv/app/current`).
    pub current_link: PathBuf,
    /// How many releases to keep (at least 2); the live one and the one being activated
    /// are never removed.
    pub keep: usize,
}

impl ReleasesOptions {
    /// Releases prepared in `releases_dir`, `current_link` the symlink the process manager
    /// runs from; the last 5 kept.
    pub fn new(releases_dir: impl Into<PathBuf>, current_link: impl Into<PathBuf>) -> Self {
        Self {
            releases_dir: releases_dir.into(),
            current_link: current_link.into(),
            keep: 5,
        }
    }
}

/// Options of [`Layout::InPlace`]: [`InPlaceOptions::new`] and the setters.
///
/// ```
/// use rollback_git::InPlaceOptions;
/// let options = InPlaceOptions::new()
///     .artifacts(["node_modules", "dist"])
///     .reset_branch("main");
/// assert_eq!(options.artifacts.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InPlaceOptions {
    /// Where `prepare` checks revisions out to build them. Default: `<git dir>/rollback-worktrees`
    /// (inside `.git`, so it never shows as untracked files, and on the same file system as
    /// the live tree so artifacts move by rename).
    pub worktrees_dir: Option<PathBuf>,
    /// Build outputs (relative paths such as `node_modules`, `dist`) that `activate` moves
    /// from the prepared checkout into the live tree; the live ones are moved aside with
    /// the revision they belong to, so switching back needs no build. Without them the
    /// separate build only proves the revision builds.
    pub artifacts: Vec<PathBuf>,
    /// When set, `activate` resets this branch to the revision and checks it out (attached
    /// HEAD) instead of detaching HEAD at it. A revision already checked out is left as it
    /// is, whichever branch HEAD is on.
    pub reset_branch: Option<String>,
    /// How many prepared checkouts to keep (0: the builder's default, 3).
    pub keep: usize,
}

impl InPlaceOptions {
    /// No artifacts, HEAD detached at the activated revision, checkouts in
    /// `<git dir>/rollback-worktrees`, the builder's default retention.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`worktrees_dir`](Self::worktrees_dir).
    pub fn worktrees_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.worktrees_dir = Some(dir.into());
        self
    }

    /// Sets [`artifacts`](Self::artifacts): paths relative to the tree, e.g.
    /// `["node_modules", "dist"]`.
    pub fn artifacts<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.artifacts = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`reset_branch`](Self::reset_branch).
    pub fn reset_branch(mut self, branch: impl Into<String>) -> Self {
        self.reset_branch = Some(branch.into());
        self
    }

    /// Sets [`keep`](Self::keep).
    pub fn keep(mut self, n: usize) -> Self {
        self.keep = n;
        self
    }
}

/// One build step: a program and its arguments, never a shell string.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BuildCommand {
    /// `argv[0]` is the program (looked up on `PATH`, or a path), the rest its arguments.
    pub argv: Vec<String>,
}

impl BuildCommand {
    /// A command from its argument vector, e.g. `BuildCommand::new(["npm", "ci"])`.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
        }
    }
}

impl fmt::Display for BuildCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}

/// Environment variables given to build commands. Values may be secrets: `Debug` shows the
/// names only, and a build's output has them replaced by `[redacted]`.
///
/// ```
/// use rollback_git::BuildEnv;
/// let mut env = BuildEnv::new();
/// env.push("NPM_TOKEN", "npm_s3cr3t");
/// assert_eq!(env.names().collect::<Vec<_>>(), ["NPM_TOKEN"]);
/// assert!(!format!("{env:?}").contains("s3cr3t"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BuildEnv(Vec<(String, String)>);

impl BuildEnv {
    /// No extra variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a variable (a later one of the same name wins).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.push((key.into(), value.into()));
    }

    /// The variables' names, in the order added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// The pairs, for the runner.
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

impl fmt::Debug for BuildEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=<redacted>")))
            .finish()
    }
}

/// Everything [`GitCode`](crate::GitCode) needs: [`GitCodeConfig::new`], then set fields; or
/// (simpler) use [`GitCodeBuilder`](crate::GitCodeBuilder).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GitCodeConfig {
    /// The repository (its working tree's top directory).
    pub repo: PathBuf,
    /// Where the app runs from.
    pub layout: Layout,
    /// Install/build steps run in order in the checkout (none by default).
    pub build: Vec<BuildCommand>,
    /// Extra environment for the build steps (the parent's environment is inherited).
    pub env: BuildEnv,
    /// Limit for each build step.
    pub build_timeout: Duration,
    /// The branch `history` lists and `revert` commits onto. Default: the branch HEAD is on
    /// when the adapter is built (HEAD itself when detached).
    pub branch: Option<String>,
    /// In place: overwrite uncommitted changes in the live tree instead of refusing.
    pub allow_dirty: bool,
    /// Lines of build output kept for errors and `build_log_tail`.
    pub log_tail_lines: usize,
}

impl GitCodeConfig {
    /// Defaults: releases layout under `<repo>/../releases` with `<repo>/../current`, no build
    /// steps, 15 minute build timeout, 20 lines of log tail.
    pub fn new(repo: impl Into<PathBuf>) -> Self {
        let repo = repo.into();
        let base = repo.parent().map(PathBuf::from).unwrap_or_default();
        Self {
            layout: Layout::Releases(ReleasesOptions::new(base.join("releases"), base.join("current"))),
            repo,
            build: Vec::new(),
            env: BuildEnv::default(),
            build_timeout: Duration::from_secs(15 * 60),
            branch: None,
            allow_dirty: false,
            log_tail_lines: 20,
        }
    }
}
