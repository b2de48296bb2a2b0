//! [`GitCodeConfig`]: where the repository is, which [`Layout`] the app runs from, and how a
//! revision is built.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where the app runs from, and so how a revision is switched in.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// Options of [`Layout::Releases`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleasesOptions {
    /// The directory holding one directory per prepared revision (created if missing).
    pub releases_dir: PathBuf,
    /// The symlink the process manager runs from (for example `/srv/app/current`).
    pub current_link: PathBuf,
    /// How many releases to keep (at least 2); the live one and the one being activated
    /// are never removed.
    pub keep: usize,
}

/// Options of [`Layout::InPlace`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// How many prepared checkouts to keep.
    pub keep: usize,
}

/// One build step: a program and its arguments, never a shell string.
#[derive(Clone, Debug, PartialEq, Eq)]
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
/// names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BuildEnv(pub Vec<(String, String)>);

impl fmt::Debug for BuildEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=<redacted>")))
            .finish()
    }
}

/// Everything [`GitCode`](crate::GitCode) needs. Build it with
/// [`GitCode::builder`](crate::GitCode::builder).
#[derive(Clone, Debug, PartialEq, Eq)]
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
            layout: Layout::Releases(ReleasesOptions {
                releases_dir: base.join("releases"),
                current_link: base.join("current"),
                keep: 5,
            }),
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
