//! The commented `rollback.toml` that `rollback init` writes, filled with what it finds.
//!
//! [`init_text`] looks at a directory, reading only names and structure (never an env
//! file's values):
//! - a git repository (the directory itself, or `repo/` in it): the releases layout when
//!   `releases/` and a `current` symlink sit beside it, else in place;
//! - `package.json`: the build steps (`npm ci`, or `npm install` without a lockfile, then
//!   `npm run build` when it has a build script) and the app's name;
//! - `ecosystem.config.js` (`.cjs`, `.json`): the pm2 app's name, and the file to start it
//!   from when pm2 does not know it;
//! - an env file (`.env.production`, else `.env`): the `[config]` file, with its key names
//!   listed as candidates for `required_keys`.
//!
//! What it does not find is written as commented examples. [`EXAMPLE`] is a file using
//! every key.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A complete `rollback.toml` using every key (it parses; paths are examples).
pub const EXAMPLE: &str = r#"# The app's name: names its checkpoints and reports, and the pm2 app unless
# [process] app says otherwise.
app = "web"
# Checkpoints, journals, reports and the lock.
state_dir = "/srv/web/rollback"

[database]
# An environment variable holding postgres://user:password@host:port/dbname ...
url_env = "DATABASE_URL"
# ... or a pgpass file (libpq's format, mode 0600) with the connection's fields:
# pgpass = "/home/deploy/.pgpass"
# host = "127.0.0.1"
# port = 5432
# user = "web"
# dbname = "web"
snapshots_dir = "/srv/web/snapshots"
format = "custom"          # or "directory" (dumped in parallel with `jobs`)
jobs = 2
bindir = "/usr/lib/postgresql/16/bin"
dump_timeout = "6h"
restore_timeout = "6h"

[[database.assertions]]
name = "users exist"
sql = "SELECT COUNT(*) > 0 FROM users"

[code]
repo = "/srv/web/repo"
layout = "releases"        # or "in-place" (with worktrees_dir, artifacts, reset_branch)
releases_dir = "/srv/web/releases"
current_link = "/srv/web/current"
build = [["npm", "ci"], ["npm", "run", "build"]]
build_timeout = "15m"
keep = 5
branch = "main"
allow_dirty = false

[config]
file = "/srv/web/shared/.env.production"
required_keys = ["DATABASE_URL", "PORT"]
history_dir = "/srv/web/env-history"
allow_history_in_worktree = false
keep = 20

[process]
manager = "pm2"
app = "web"
pm2_home = "/home/deploy/.pm2"
binary = "pm2"
ecosystem = "/srv/web/current/ecosystem.config.js"
state_timeout = "30s"
stability_window = "1500ms"
command_timeout = "30s"

[[health]]
url = "http://127.0.0.1:3000/api/health"
timeout = "5s"

[[health]]
sql = true
timeout = "5s"

[[health]]
# An HTTPS endpoint whose certificate an internal CA signed: trust it too.
url = "https://web.internal/api/health"
ca_file = "/etc/ssl/company-ca.pem"

[settings]
failure_policy = "restore_pre_rollback_state"   # or "halt"
health_timeout = "2m"
health_interval = "500ms"
graceful_reload = true
observe_after_healthy = "0s"
timeouts = { prepare = "30m", emergency_backup = "30m", restore_database = "1h" }
log_scan = { on_match = "report", max_shown = 20 }
performance = { max_error_rate = 0.05, on_breach = "report" }
integrity = { assertions = [{ name = "orders exist", sql = "SELECT COUNT(*) > 0 FROM orders" }] }

# Several deploy boxes: one shared lock, checkpoints and journal in a PostgreSQL database of
# its own (never the app's: a rollback renames that one). Without [state], state_dir holds them.
# [state]
# store = "postgres"
# url_env = "ROLLBACK_STATE_DATABASE_URL"

[watchdog]
interval = "10s"
cooldown = "30m"
auto_rollback = false
scope = ["database", "code", "config"]

[[watchdog.rules]]
name = "health"
condition = "health_failing"
window = "5m"
signal = "complete_failure"

[[watchdog.rules]]
name = "error-rate"
condition = { error_rate_above = 0.10 }
window = "10m"
signal = "complete_failure"

# The communication plan: the runbook's notices and escalation path unless given here.
# Every notice (each rollback's, the watchdog's) names who is responsible now and next.
[watchdog.plan]
notices = [
  { offset = "0s", audience = "devops", only = "always", subject = "incident opened" },
  { offset = "1h", audience = "status-update", only = "always", repeat = "1h", subject = "status update" },
]
escalation = [
  { after = "0s", role = "on-call engineer", critical_only = false },
  { after = "30m", role = "DevOps lead", critical_only = false },
  { after = "1h", role = "engineering manager", critical_only = false },
  { after = "1h", role = "CTO", critical_only = true },
]
# The emergency contacts: who fills each role, and how to reach them.
contacts = [
  { role = "on-call engineer", name = "Ana Alves", reach = "+1 555 0100, @ana" },
  { role = "DevOps lead", name = "Bo Berg", reach = "+1 555 0101, @bo" },
  { role = "database admin", name = "Chen Wu", reach = "+1 555 0102" },
  { role = "engineering manager", name = "Dana Diaz", reach = "+1 555 0103" },
]

# The generic JSON body (schema rollback.notice/1) to the URL in ROLLBACK_WEBHOOK_URL.
[[notify]]
kind = "webhook"
url_env = "ROLLBACK_WEBHOOK_URL"
timeout = "10s"
ca_file = "/etc/ssl/company-ca.pem"

# A Slack incoming webhook (https://hooks.slack.com/services/...).
[[notify]]
kind = "slack"
url_env = "SLACK_WEBHOOK_URL"

# PagerDuty Events API v2: triggers on an incident, resolves on recovery.
[[notify]]
kind = "pagerduty"
routing_key_env = "PAGERDUTY_ROUTING_KEY"
# url_env = "PAGERDUTY_EVENTS_URL"   # another Events API URL (EU account, proxy)

[[notify]]
kind = "log"
"#;

/// What [`init_text`] found in a directory.
#[derive(Debug, Default)]
struct Found {
    dir: PathBuf,
    repo: Option<PathBuf>,
    /// `releases/` and the `current` symlink, when both exist.
    releases: Option<(PathBuf, PathBuf)>,
    /// package.json: its name, whether it has a build script, whether it has a lockfile.
    package: Option<Package>,
    /// The ecosystem file and the first app name in it.
    ecosystem: Option<(PathBuf, Option<String>)>,
    /// The env file and its key names.
    env_file: Option<(PathBuf, Vec<String>)>,
    /// Build outputs present in the tree (in place).
    artifacts: Vec<String>,
}

#[derive(Debug)]
struct Package {
    path: PathBuf,
    name: Option<String>,
    build_script: bool,
    lockfile: bool,
}

/// A fully commented `rollback.toml` for the app in `dir`, filled with what is found there
/// (see the [module docs](self)); it parses with [`config::parse`](crate::config::parse)
/// as a file in `dir`. Paths in it are absolute. Reads a few files; never an env file's
/// values.
pub fn init_text(dir: &Path) -> String {
    let found = look(dir);
    render(&found)
}

fn is_git(dir: &Path) -> bool {
    dir.join(".git").exists()
}

fn look(dir: &Path) -> Found {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut found = Found {
        dir: dir.clone(),
        ..Found::default()
    };
    found.repo = [dir.join("repo"), dir.clone()].into_iter().find(|d| is_git(d));
    let (releases, current) = (dir.join("releases"), dir.join("current"));
    if releases.is_dir() && std::fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink()) {
        found.releases = Some((releases, current.clone()));
    }
    // Where the app's files may be: here, the shared directory, the live release, the repo.
    let mut places = vec![dir.clone(), dir.join("shared")];
    if found.releases.is_some() {
        places.push(current);
    }
    places.extend(found.repo.clone());
    let first = |names: &[&str]| {
        places
            .iter()
            .flat_map(|p| names.iter().map(move |n| p.join(n)))
            .find(|p| p.is_file())
    };
    found.package = first(&["package.json"]).map(|path| {
        let json: Option<serde_json::Value> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Package {
            name: json
                .as_ref()
                .and_then(|j| j.get("name")?.as_str().map(str::to_owned)),
            build_script: json
                .as_ref()
                .and_then(|j| j.get("scripts")?.get("build"))
                .is_some(),
            lockfile: parent.join("package-lock.json").is_file()
                || parent.join("npm-shrinkwrap.json").is_file(),
            path,
        }
    });
    found.ecosystem = first(&["ecosystem.config.js", "ecosystem.config.cjs", "ecosystem.json"]).map(|path| {
        let name = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| first_app_name(&t));
        (path, name)
    });
    found.env_file = first(&[".env.production", ".env"]).map(|path| {
        let keys = std::fs::read_to_string(&path)
            .map(|t| env_keys(&t))
            .unwrap_or_default();
        (path, keys)
    });
    if found.releases.is_none() {
        if let Some(repo) = &found.repo {
            found.artifacts = ["node_modules", "dist", "build", ".next"]
                .into_iter()
                .filter(|a| repo.join(a).is_dir())
                .map(str::to_owned)
                .collect();
        }
    }
    found
}

/// The first `name: "..."` (or `"name": "..."`) in an ecosystem file.
fn first_app_name(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(i) = rest.find("name") {
        let before = rest[..i].chars().next_back();
        let after = rest[i + 4..].trim_start_matches(['"', '\'']).trim_start();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(value) = after.strip_prefix(':') else {
            continue;
        };
        let value = value.trim_start();
        let Some(quote) = value.chars().next().filter(|c| matches!(c, '"' | '\'' | '`')) else {
            continue;
        };
        if let Some(end) = value[1..].find(quote) {
            return Some(value[1..1 + end].to_owned());
        }
    }
    None
}

/// The key names of an env file (`KEY=...`, `export KEY=...`), in order, without values.
fn env_keys(text: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            let valid = key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid && !keys.iter().any(|k| k == key) {
                keys.push(key.to_owned());
            }
        }
    }
    keys
}

/// A name pm2 and the library accept: letters, digits, `.`, `_`, `-`; the part after a
/// package scope (`@acme/web` is `web`).
fn app_name(raw: &str) -> Option<String> {
    let raw = raw.rsplit('/').next().unwrap_or(raw);
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(['-', '.']).to_owned();
    let ok = !name.is_empty()
        && !name.chars().all(|c| c.is_ascii_digit())
        && rollback_core::AppName::new(name.as_str())
            .why_not_one_app()
            .is_none();
    ok.then_some(name)
}

/// A TOML basic string.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn qp(p: &Path) -> String {
    q(&p.to_string_lossy())
}

fn render(f: &Found) -> String {
    let dir = &f.dir;
    let app = f
        .ecosystem
        .as_ref()
        .and_then(|(_, n)| n.as_deref())
        .and_then(app_name)
        .or_else(|| {
            f.package
                .as_ref()
                .and_then(|p| p.name.as_deref())
                .and_then(app_name)
        })
        .or_else(|| dir.file_name().and_then(|n| app_name(&n.to_string_lossy())))
        .unwrap_or_else(|| "app".to_owned());
    let app_from = if f.ecosystem.as_ref().is_some_and(|(_, n)| n.is_some()) {
        "the ecosystem file"
    } else if f.package.as_ref().is_some_and(|p| p.name.is_some()) {
        "package.json"
    } else {
        "the directory's name"
    };
    let in_place_tree = f.releases.is_none() && f.repo.as_deref() == Some(dir.as_path());
    let state_dir = if in_place_tree && dir.join(".git").is_dir() {
        dir.join(".git").join("rollback")
    } else {
        dir.join(".rollback")
    };

    let mut o = String::new();
    let mut line = |s: &str| {
        o.push_str(s);
        o.push('\n');
    };
    line(&format!(
        "# rollback.toml for `{app}`, written by `rollback init` from what it found in"
    ));
    line(&format!("# {}.", dir.display()));
    line("# Check it with `rollback check`.");
    line("# Relative paths are resolved against this file's directory; durations read \"30s\", \"5m\", \"1h 30m\".");
    line("# Secrets never go in this file: the database connection string, webhook URLs and");
    line("# PagerDuty routing keys come from environment variables named here.");
    line("");
    line(&format!(
        "# The app's name (from {app_from}): names checkpoints and reports, and the pm2 app"
    ));
    line("# unless [process] app says otherwise.");
    line(&format!("app = {}", q(&app)));
    if in_place_tree && dir.join(".git").is_dir() {
        line("# Checkpoints, journals, reports and the lock (inside .git: git never tracks it).");
    } else {
        line("# Checkpoints, journals, reports and the lock.");
    }
    line(&format!("state_dir = {}", qp(&state_dir)));
    line("");

    // [database]
    line("# --- Database (PostgreSQL): pg_dump snapshots, restored beside the live database while");
    line("# the app serves, then switched in. Not found here: fill in and uncomment.");
    line("# [database]");
    line("# url_env = \"DATABASE_URL\"       # environment variable holding postgres://user:password@host:port/dbname");
    line("# # or the password from a pgpass file (libpq's format, mode 0600):");
    line("# # pgpass = \"/home/deploy/.pgpass\"");
    line("# # host = \"127.0.0.1\"");
    line("# # port = 5432");
    line("# # user = \"web\"");
    line("# # dbname = \"web\"");
    line(&format!("# snapshots_dir = {}", qp(&state_dir.join("snapshots"))));
    line("# format = \"custom\"             # or \"directory\" (dumped in parallel with `jobs`)");
    line("# jobs = 2");
    line("# bindir = \"/usr/lib/postgresql/16/bin\"   # pg_dump and pg_restore; found on the system when absent");
    line("# [[database.assertions]]        # checked after a restore: one row, true or a number > 0");
    line("# name = \"users exist\"");
    line("# sql = \"SELECT COUNT(*) > 0 FROM users\"");
    line("");

    // [code]
    let build = match &f.package {
        Some(p) => {
            let install = if p.lockfile {
                "[\"npm\", \"ci\"]"
            } else {
                "[\"npm\", \"install\"]"
            };
            let steps = if p.build_script {
                format!("[{install}, [\"npm\", \"run\", \"build\"]]")
            } else {
                format!("[{install}]")
            };
            Some((steps, p.path.clone(), p.build_script))
        }
        None => None,
    };
    match &f.repo {
        Some(repo) => {
            line("# --- Code: a git repository; the previous release is built before the app stops.");
            line("[code]");
            line(&format!("repo = {}", qp(repo)));
            match &f.releases {
                Some((releases, current)) => {
                    line("# Found releases/ and the `current` symlink: each release is built in its own");
                    line("# directory and `current` is switched in one rename.");
                    line("layout = \"releases\"");
                    line(&format!("releases_dir = {}", qp(releases)));
                    line(&format!("current_link = {}", qp(current)));
                    line("# keep = 5                       # releases kept");
                }
                None => {
                    line("# The app runs from the repository's working tree (no releases/ + current");
                    line("# symlink found): revisions are built in a separate checkout, then checked out");
                    line("# in place and their build outputs moved in.");
                    line("layout = \"in-place\"");
                    if f.artifacts.is_empty() {
                        line("# artifacts = [\"node_modules\", \"dist\"]   # build outputs moved into the live tree");
                    } else {
                        let list: Vec<String> = f.artifacts.iter().map(|a| q(a)).collect();
                        line("# Build outputs moved into the live tree (found in it):");
                        line(&format!("artifacts = [{}]", list.join(", ")));
                    }
                    line(&format!(
                        "# worktrees_dir = {}   # where revisions are built (this default)",
                        qp(&repo.join(".git").join("rollback-worktrees"))
                    ));
                    line("# reset_branch = \"main\"         # reset this branch instead of detaching HEAD");
                    line("# keep = 3                       # prepared checkouts kept");
                    line("# allow_dirty = false            # true overwrites uncommitted changes in the live tree");
                }
            }
            match &build {
                Some((steps, path, build_script)) => {
                    line(&format!(
                        "# Build steps, argument lists (never shell strings), from {}:",
                        path.display()
                    ));
                    line(&format!("build = {steps}"));
                    if !build_script {
                        line("# (package.json has no build script: add [\"npm\", \"run\", \"build\"] if it gets one)");
                    }
                }
                None => {
                    line("# Build steps, argument lists (never shell strings):");
                    line("# build = [[\"npm\", \"ci\"], [\"npm\", \"run\", \"build\"]]");
                }
            }
            line("# build_timeout = \"15m\"");
            line("# branch = \"main\"               # the branch history lists and reverts commit onto");
        }
        None => {
            line("# --- Code: no git repository found here (nor in repo/). Fill in and uncomment.");
            line("# [code]");
            line(&format!("# repo = {}", qp(&dir.join("repo"))));
            line("# layout = \"releases\"           # or \"in-place\": the app runs from the repository's tree");
            line(&format!("# releases_dir = {}", qp(&dir.join("releases"))));
            line(&format!("# current_link = {}", qp(&dir.join("current"))));
            match &build {
                Some((steps, _, _)) => line(&format!("# build = {steps}")),
                None => {
                    line("# build = [[\"npm\", \"ci\"], [\"npm\", \"run\", \"build\"]]   # argument lists")
                }
            }
            line("# build_timeout = \"15m\"");
            line("# keep = 5");
        }
    }
    line("");

    // [config]
    match &f.env_file {
        Some((path, keys)) => {
            line("# --- Config: the env file, backed up with each checkpoint (outside any git tree)");
            line("# and restored atomically.");
            line("[config]");
            line(&format!("file = {}", qp(path)));
            line("# Keys every version must define (a version without them is refused before the");
            line("# app stops).");
            if keys.is_empty() {
                line("required_keys = []");
            } else {
                line(&format!("# Keys in the file now: {}", keys.join(", ")));
                line("required_keys = []");
            }
            line("# keep = 20                      # backups kept (all when absent)");
            line("# history_dir = \"/srv/web/env-history\"");
        }
        None => {
            line("# --- Config: no .env.production or .env found. Fill in and uncomment.");
            line("# [config]");
            line(&format!("# file = {}", qp(&dir.join(".env.production"))));
            line("# required_keys = [\"DATABASE_URL\"]");
            line("# keep = 20");
        }
    }
    line("");

    // [process]
    line("# --- Process manager.");
    line("[process]");
    line("manager = \"pm2\"                 # the only one `rollback` drives today");
    line(&format!(
        "# app = {}                    # the pm2 app's name, when it differs from `app`",
        q(&app)
    ));
    line("# pm2_home = \"/home/deploy/.pm2\"  # PM2_HOME of the pm2 running the app (default ~/.pm2)");
    match &f.ecosystem {
        Some((path, _)) => {
            line("# Found: starts the app when pm2 does not know it (after a pm2 restart, say).");
            line(&format!("ecosystem = {}", qp(path)));
        }
        None => line(
            "# ecosystem = \"/srv/web/ecosystem.config.js\"   # to start the app when pm2 does not know it",
        ),
    }
    line("# state_timeout = \"30s\"          # how long stop and start wait");
    line("# stability_window = \"1500ms\"    # how long the app must stay up after a start");
    line("");

    // [[health]]
    line("# --- Health: post-verify waits until every probe passes; the watchdog watches them.");
    line("# [[health]]");
    line("# url = \"http://127.0.0.1:3000/api/health\"   # a GET answering 2xx (http:// or https://)");
    line("# timeout = \"5s\"");
    line("# ca_file = \"/etc/ssl/company-ca.pem\"   # https:// signed by an internal CA: trust it too");
    line("# [[health]]");
    line("# sql = true                     # the database answers (needs [database])");
    line("");

    // [settings]
    line("# --- How a rollback runs (the defaults are shown).");
    line("# [settings]");
    line("# failure_policy = \"restore_pre_rollback_state\"   # or \"halt\": leave everything for a human");
    line("# health_timeout = \"2m\"");
    line("# health_interval = \"500ms\"");
    line("# graceful_reload = true");
    line("# timeouts = { prepare = \"30m\", emergency_backup = \"30m\" }");
    line("");

    // [watchdog]
    line("# --- `rollback watch`: the runbook's rules and communication plan by default.");
    line("# [watchdog]");
    line("# interval = \"10s\"");
    line("# cooldown = \"30m\"");
    line("# auto_rollback = false          # true: a \"roll back now\" rule starts a rollback");
    line("# scope = [\"database\", \"code\", \"config\"]");
    line("# [[watchdog.rules]]             # replaces the runbook's rules when given");
    line("# name = \"health\"");
    line("# condition = \"health_failing\"   # or { error_rate_above = 0.10 }, { memory_above = 90.0 }, ...");
    line("# window = \"5m\"");
    line("# signal = \"complete_failure\"");
    line("");
    line("# The communication plan. Escalation (the runbook's): on-call engineer from 0, DevOps");
    line("# lead from 30 min, engineering manager from 60 min, CTO from 60 min for critical");
    line("# incidents only. Every notice (each rollback's, the watchdog's) names who is");
    line("# responsible now and who is next, with the contact given here. `notices` and");
    line("# `escalation` keep the runbook's unless given; fill in the contacts.");
    line("# [watchdog.plan]");
    line("# contacts = [");
    line("#   { role = \"on-call engineer\", name = \"...\", reach = \"phone, chat handle or pager\" },");
    line("#   { role = \"DevOps lead\", name = \"...\", reach = \"...\" },");
    line("#   { role = \"database admin\", name = \"...\", reach = \"...\" },");
    line("#   { role = \"engineering manager\", name = \"...\", reach = \"...\" },");
    line("# ]");
    line("# escalation = [");
    line("#   { after = \"0s\", role = \"on-call engineer\", critical_only = false },");
    line("#   { after = \"30m\", role = \"DevOps lead\", critical_only = false },");
    line("#   { after = \"1h\", role = \"engineering manager\", critical_only = false },");
    line("#   { after = \"1h\", role = \"CTO\", critical_only = true },");
    line("# ]");
    line("");

    // [[notify]]
    line("# --- Where notices go: when a rollback starts, finishes, fails or halts, and the");
    line("# watchdog's incidents (the log when none is given). URLs and routing keys are secrets:");
    line("# name the environment variables that hold them.");
    line("# [[notify]]");
    line("# kind = \"webhook\"                # JSON, schema rollback.notice/1");
    line(
        "# url_env = \"ROLLBACK_WEBHOOK_URL\"   # environment variable holding the URL (it carries a token)",
    );
    line("# ca_file = \"/etc/ssl/company-ca.pem\"   # an internal HTTPS endpoint's CA");
    line("# [[notify]]");
    line("# kind = \"slack\"                  # a Slack incoming webhook");
    line("# url_env = \"SLACK_WEBHOOK_URL\"");
    line("# [[notify]]");
    line("# kind = \"pagerduty\"              # Events API v2: trigger, then resolve on recovery");
    line("# routing_key_env = \"PAGERDUTY_ROUTING_KEY\"");
    line("# [[notify]]");
    line("# kind = \"log\"");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, CodeLayout};

    fn parse(dir: &Path, text: &str) -> config::Config {
        config::parse(text, &dir.join("rollback.toml")).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
    }

    fn git_init(dir: &Path) {
        let status = std::process::Command::new("git")
            .args(["init", "-q"])
            .arg(dir)
            .status()
            .expect("git runs");
        assert!(status.success());
    }

    #[test]
    fn the_example_uses_every_key_and_parses() {
        let c = config::parse(EXAMPLE, Path::new("/srv/web/rollback.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.database.is_some() && c.code.is_some() && c.env_file.is_some());
        assert_eq!(c.health.len(), 3);
        assert!(matches!(
            &c.health[2],
            config::HealthConfig::Http { ca_file: Some(_), .. }
        ));
        assert_eq!(c.notify.len(), 4);
        assert!(matches!(
            &c.notify[0],
            config::NotifyConfig::Webhook { ca_file: Some(_), .. }
        ));
        assert!(matches!(&c.notify[1], config::NotifyConfig::Slack { .. }));
        assert!(matches!(
            &c.notify[2],
            config::NotifyConfig::PagerDuty { url_env: None, .. }
        ));
        assert_eq!(c.watchdog.rules.len(), 2);
        assert_eq!(c.watchdog.plan.contacts.len(), 4);
        assert_eq!(c.watchdog.plan.escalation.len(), 4);
        assert_eq!(c.settings.integrity.assertions.len(), 1);
    }

    #[test]
    fn the_commented_sections_of_a_written_file_parse_once_uncommented() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shop");
        std::fs::create_dir(&dir).unwrap();
        let text = init_text(&dir);
        // The plan and the notifiers, uncommented as an operator would.
        let mut uncommented = String::new();
        let mut on = false;
        for l in text.lines() {
            on = (on || l.starts_with("# [watchdog.plan]") || l.starts_with("# [[notify]]")) && !l.is_empty();
            let l = if on { l.strip_prefix("# ").unwrap_or(l) } else { l };
            uncommented.push_str(l);
            uncommented.push('\n');
        }
        let c = parse(&dir, &uncommented);
        assert_eq!(c.watchdog.plan.contacts.len(), 4, "{uncommented}");
        assert_eq!(c.watchdog.plan.contacts[1].role, "DevOps lead");
        assert_eq!(c.watchdog.plan.escalation.len(), 4);
        assert_eq!(
            c.watchdog.plan.notices,
            rollback_core::CommunicationPlan::runbook().notices,
            "notices not given keep the runbook's"
        );
        assert_eq!(c.notify.len(), 4, "{uncommented}");
        assert!(matches!(&c.notify[2], config::NotifyConfig::PagerDuty { .. }));
    }

    #[test]
    fn an_empty_directory_gives_a_file_that_parses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shop");
        std::fs::create_dir(&dir).unwrap();
        let text = init_text(&dir);
        let c = parse(&dir, &text);
        assert_eq!(c.app, "shop");
        assert!(c.code.is_none() && c.env_file.is_none() && c.database.is_none());
        assert!(text.contains("# [code]") && text.contains("# [config]"), "{text}");
    }

    #[test]
    fn a_repository_with_package_json_and_an_env_file_is_filled_in() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("web-app");
        std::fs::create_dir(&dir).unwrap();
        git_init(&dir);
        std::fs::write(
            dir.join("package.json"),
            r#"{"name": "@acme/storefront", "scripts": {"build": "tsc"}}"#,
        )
        .unwrap();
        std::fs::write(dir.join("package-lock.json"), "{}").unwrap();
        std::fs::create_dir(dir.join("node_modules")).unwrap();
        std::fs::write(dir.join(".env"), "IGNORED=1\n").unwrap();
        std::fs::write(
            dir.join(".env.production"),
            "DATABASE_URL=postgres://app:canary-pw@db/shop\nexport PORT=3000\n# NOTE=x\n",
        )
        .unwrap();
        let text = init_text(&dir);
        assert!(!text.contains("canary-pw"), "values are never read into the file");
        let c = parse(&dir, &text);
        let dir = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(c.app, "storefront");
        let code = c.code.expect("[code]");
        assert_eq!(code.repo, dir);
        assert_eq!(
            code.build,
            [vec!["npm", "ci"], vec!["npm", "run", "build"]]
                .map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>())
        );
        match code.layout {
            CodeLayout::InPlace { artifacts, .. } => assert_eq!(artifacts, [PathBuf::from("node_modules")]),
            other => panic!("{other:?}"),
        }
        let env = c.env_file.expect("[config]");
        assert_eq!(env.file, dir.join(".env.production"));
        assert!(
            text.contains("# Keys in the file now: DATABASE_URL, PORT"),
            "{text}"
        );
        assert_eq!(c.state_dir, dir.join(".git/rollback"));
        assert_eq!(c.process.app, "storefront");
    }

    #[test]
    fn releases_and_an_ecosystem_file_are_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(tmp.path()).unwrap();
        git_init(&dir.join("repo"));
        std::fs::create_dir_all(dir.join("releases/abc")).unwrap();
        std::os::unix::fs::symlink(dir.join("releases/abc"), dir.join("current")).unwrap();
        std::fs::write(
            dir.join("releases/abc/ecosystem.config.js"),
            "module.exports = { apps: [{ name: 'api-server', script: 'server.js' }] };\n",
        )
        .unwrap();
        std::fs::write(dir.join("releases/abc/package.json"), r#"{"name": "api"}"#).unwrap();
        let text = init_text(&dir);
        let c = parse(&dir, &text);
        assert_eq!(c.app, "api-server");
        assert_eq!(c.process.ecosystem, Some(dir.join("current/ecosystem.config.js")));
        let code = c.code.expect("[code]");
        assert_eq!(code.repo, dir.join("repo"));
        assert_eq!(
            code.layout,
            CodeLayout::Releases {
                releases_dir: dir.join("releases"),
                current_link: dir.join("current"),
            }
        );
        assert_eq!(code.build, [vec!["npm".to_owned(), "install".to_owned()]]);
    }

    #[test]
    fn names_are_made_acceptable() {
        assert_eq!(app_name("@acme/web").as_deref(), Some("web"));
        assert_eq!(app_name("my app!").as_deref(), Some("my-app"));
        assert_eq!(app_name("all"), None);
        assert_eq!(app_name("123"), None);
        assert_eq!(app_name(".tmpXyZ").as_deref(), Some("tmpXyZ"));
        assert_eq!(
            first_app_name("{ \"apps\": [{ \"name\": \"w\" }] }").as_deref(),
            Some("w")
        );
        assert_eq!(
            first_app_name("const appname = 1; apps: [{name: `x`}]").as_deref(),
            Some("x")
        );
        assert_eq!(env_keys("A=1\n export B = 2\n#C=3\nbad key=4\nA=5\n"), ["A", "B"]);
        assert_eq!(q("a\"b\\c"), r#""a\"b\\c""#);
    }
}
