//! The command line: commands, their flags and their `--help` (each with an example).

use clap::{Args, Parser, Subcommand};
use rollback_core::{CheckpointId, RollbackTarget, Scenario, Scope};
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0   done (a rollback succeeded, a check passed)
  1   the rollback failed and the pre-rollback state was put back: the app runs the old release
  2   halted: a human must take over; the statement printed says what is live and where the backups are
  3   refused before anything was stopped or changed (pre-flight, no such checkpoint, nothing to do)
  4   locked: another rollback runs, or an unfinished one must be resumed (`rollback resume`)
  5   cancelled (Ctrl-C) before the app was stopped: nothing was changed
  64  wrong usage     78  the config file is wrong     70  an internal error (state directory unreadable)";

/// Roll a deploy back: database, code and config, with the app stopped only for the switch.
#[derive(Debug, Parser)]
#[command(
    name = "rollback",
    version,
    about,
    after_help = EXIT_CODES,
    after_long_help = EXIT_CODES,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        short,
        global = true,
        env = "ROLLBACK_CONFIG",
        default_value = "rollback.toml"
    )]
    pub config: PathBuf,
    /// Print newline-delimited JSON (progress events, then the result) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log what the library does to stderr (`-v` info, `-vv` debug).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented rollback.toml, filled with what is found here (a git repository,
    /// package.json, an .env file).
    #[command(after_help = "Example:\n  rollback init && $EDITOR rollback.toml && rollback check")]
    Init {
        /// Where to look (and write rollback.toml).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate the config and run every check that needs no target: database reachable,
    /// revision readable, env file parses, the process manager knows the app, health answers.
    #[command(after_help = "Example:\n  rollback check --config /srv/web/rollback.toml")]
    Check,
    /// Take a checkpoint of what is live now (before a deploy).
    #[command(after_help = "Example:\n  rollback checkpoint --label \"before v2.4.0\"")]
    Checkpoint {
        /// What it is for.
        #[arg(long, default_value = "manual checkpoint")]
        label: String,
    },
    /// Mark a checkpoint good (its release passed its health gate).
    #[command(
        name = "mark-good",
        after_help = "Example:\n  rollback mark-good cp-20261126T101500.123456Z-0"
    )]
    MarkGood {
        /// The checkpoint id (`rollback list` shows them).
        id: String,
    },
    /// List checkpoints, newest first.
    #[command(after_help = "Example:\n  rollback list --json | jq '.[] | select(.good)'")]
    List,
    /// Remove old checkpoints with their snapshots and config backups (never the live one,
    /// the last good one, or one a rollback's journal refers to).
    #[command(after_help = "Example:\n  rollback prune --keep 5")]
    Prune {
        /// How many of the newest to keep.
        #[arg(long)]
        keep: usize,
    },
    /// Show what a rollback would do, step by step, changing nothing (runs pre-flight).
    #[command(after_help = "Example:\n  rollback plan --to previous --scope code,config")]
    Plan(Target),
    /// Roll back. On a terminal, shows the plan and asks; without one, needs --yes.
    #[command(
        after_help = "Examples:\n  rollback run --to last-good --reason \"v2.4.0: checkout 500s\"\n  rollback run --to previous~2 --scope code --yes\n  rollback run --scenario critical-bug --reason \"NPE in checkout\" --yes"
    )]
    Run {
        /// Where to and what.
        #[command(flatten)]
        target: Target,
        /// Why (goes into the journal and the report).
        #[arg(long, default_value = "operator rollback")]
        reason: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Finish a rollback whose process died, from its journal; take up a halted one once its
    /// fault is cleared.
    #[command(
        after_help = "Examples:\n  rollback resume\n  rollback resume --handled \"renamed the databases back by hand, started web\"   # a halt put right by hand: closed, nothing changed"
    )]
    Resume {
        /// A halted rollback was put right by hand: close it with this note instead of
        /// resuming it (nothing is changed; the note goes into its journal and report).
        #[arg(long, value_name = "WHAT_WAS_DONE")]
        handled: Option<String>,
    },
    /// The live revision, the lock, an unfinished rollback, the last rollback.
    #[command(after_help = "Example:\n  rollback status")]
    Status,
    /// Clear the rollback lock when its holder is provably gone (same host, process dead);
    /// with --force, whoever holds it, once you have checked by hand that it is gone.
    #[command(
        after_help = "Examples:\n  rollback unlock\n  rollback unlock --force        # a crashed deploy box's lock in the shared state store: shows the holder, asks\n  rollback unlock --force --yes  # the same without asking (no terminal)",
        long_about = "Clear the rollback lock when its holder is provably gone: on this host, and its process dead.\n\nA lock held from another host (with `[state] store = \"postgres\"`, several deploy boxes share one lock) cannot be checked from here: if that box crashed, `--force` clears it. It prints the holder (pid, host, since when, which rollback); check by hand on that host that this process is really gone (e.g. `ssh HOST ps -p PID`), because clearing the lock of a rollback that still runs lets a second one run against the same app. On a terminal it then asks; without one it needs --yes. If the holder's rollback did not finish, `rollback resume` finishes it afterwards."
    )]
    Unlock {
        /// Clear the lock whoever holds it, without checking that its process is gone
        /// (shows the holder and asks first).
        #[arg(long)]
        force: bool,
        /// With --force: do not ask (needed without a terminal).
        #[arg(long, requires = "force")]
        yes: bool,
    },
    /// Diagnose a performance problem: process, metrics, health, the database's statistics,
    /// changes since the last good checkpoint. Changes nothing.
    #[command(after_help = "Example:\n  rollback investigate --reason \"p95 doubled since 14:00\"")]
    Investigate {
        /// What was seen.
        #[arg(long, default_value = "operator investigation")]
        reason: String,
    },
    /// Run the watchdog and the communication plan in the foreground until SIGTERM or Ctrl-C.
    #[command(
        after_help = "Examples:\n  rollback watch\n  rollback watch --shadow   # record what would fire, do nothing"
    )]
    Watch {
        /// Record what would have fired; never roll back, never notify.
        #[arg(long)]
        shadow: bool,
    },
    /// Print a rollback's report (the incident record), or write it to a file.
    #[command(
        after_help = "Examples:\n  rollback report --last\n  rollback report rb-20261126T101500.123456Z-0 --format json\n  rollback report --last --format html --output incident.html"
    )]
    Report {
        /// The rollback id (`rollback status` shows the last).
        id: Option<String>,
        /// The newest rollback.
        #[arg(long, conflicts_with = "id")]
        last: bool,
        /// Markdown, JSON, or HTML (one self-contained page with a timeline of the steps and
        /// the downtime). Default: Markdown, or JSON with --json (on stdout, --json prints
        /// JSON whatever the format).
        #[arg(long, value_enum)]
        format: Option<ReportFormat>,
        /// Write the report to this file instead of stdout; it must not exist yet.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// With --output: replace the file if it exists.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Serve this host's code, config, process manager and health probes to an
    /// orchestrator over the agent protocol on stdin and stdout (ssh runs it; only protocol
    /// lines go to stdout, logs to stderr).
    #[command(
        after_help = "Example (from the orchestrator's host, which runs it through ssh):\n  ssh deploy@web-2 rollback agent --stdio --config /srv/web/rollback.toml"
    )]
    Agent {
        /// Speak the protocol on stdin and stdout (the only transport).
        #[arg(long)]
        stdio: bool,
    },
}

/// How `report` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Markdown.
    Md,
    /// JSON.
    Json,
    /// One self-contained HTML page with a timeline.
    Html,
}

/// Where to go back to, and what goes back.
#[derive(Debug, Args)]
pub struct Target {
    /// `last-good` (the newest good checkpoint), `previous` (the good one before it),
    /// `previous~N` (N good checkpoints before it), or a checkpoint id.
    #[arg(long = "to", default_value = "last-good", value_parser = parse_target)]
    pub to: RollbackTarget,
    /// A runbook scenario; sets the scope (`database-migration-failure`: database and code,
    /// `critical-bug`: code, `configuration-error`: config, `performance-degradation`:
    /// investigate, change nothing).
    #[arg(long, value_parser = parse_scenario)]
    pub scenario: Option<Scenario>,
    /// What goes back: a comma-separated list of `database` (`db`), `code`, `config`, or
    /// `all` (the default without a scenario).
    #[arg(long, value_parser = parse_scope)]
    pub scope: Option<Scope>,
    /// Roll the database back even when the live one already is this checkpoint's copy,
    /// switched in by an earlier rollback: every write made into it since is set aside
    /// (kept, not deleted). Without it such a run is refused.
    #[arg(long)]
    pub force: bool,
}

/// `last-good`, `previous`, `previous~N`, or a checkpoint id.
pub fn parse_target(s: &str) -> Result<RollbackTarget, String> {
    match s {
        "last-good" | "last_good" => Ok(RollbackTarget::LastGood),
        "previous" => Ok(RollbackTarget::GoodBack(1)),
        _ => match s.strip_prefix("previous~") {
            Some(n) => n.parse::<usize>().map(RollbackTarget::GoodBack).map_err(|_| {
                format!("`{s}`: after `previous~` comes a number of good checkpoints back, e.g. previous~2")
            }),
            None if s.is_empty() => {
                Err("an empty target: use last-good, previous, previous~N or a checkpoint id".into())
            }
            None => Ok(RollbackTarget::Checkpoint(CheckpointId::new(s))),
        },
    }
}

/// `database-migration-failure`, `critical-bug`, `configuration-error`,
/// `performance-degradation`.
pub fn parse_scenario(s: &str) -> Result<Scenario, String> {
    let wanted = s.replace('_', "-");
    Scenario::ALL
        .into_iter()
        .find(|sc| scenario_name(*sc) == wanted)
        .ok_or_else(|| {
            let names: Vec<&str> = Scenario::ALL.into_iter().map(scenario_name).collect();
            format!("no scenario `{s}`; the runbook's are {}", names.join(", "))
        })
}

/// A scenario's name on the command line.
pub fn scenario_name(s: Scenario) -> &'static str {
    match s {
        Scenario::DatabaseMigrationFailure => "database-migration-failure",
        Scenario::CriticalBug => "critical-bug",
        Scenario::ConfigurationError => "configuration-error",
        Scenario::PerformanceDegradation => "performance-degradation",
        _ => "unknown",
    }
}

/// `db,code`, `config`, `all`.
pub fn parse_scope(s: &str) -> Result<Scope, String> {
    let mut scope = Scope {
        database: false,
        code: false,
        config: false,
    };
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "all" => scope = Scope::ALL,
            "db" | "database" => scope.database = true,
            "code" => scope.code = true,
            "config" | "env" => scope.config = true,
            other => {
                return Err(format!(
                    "no scope part `{other}`: use database (db), code, config, or all, comma-separated"
                ))
            }
        }
    }
    if scope.is_empty() {
        return Err("an empty scope: name at least one of database, code, config".into());
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn targets_parse_as_the_help_says() {
        assert_eq!(parse_target("last-good"), Ok(RollbackTarget::LastGood));
        assert_eq!(parse_target("previous"), Ok(RollbackTarget::GoodBack(1)));
        assert_eq!(parse_target("previous~3"), Ok(RollbackTarget::GoodBack(3)));
        assert!(parse_target("previous~x").unwrap_err().contains("previous~2"));
        assert_eq!(
            parse_target("cp-1"),
            Ok(RollbackTarget::Checkpoint(CheckpointId::new("cp-1")))
        );
    }

    #[test]
    fn scopes_and_scenarios_parse_and_name_what_exists() {
        let s = parse_scope("db,config").unwrap();
        assert!(s.database && !s.code && s.config);
        assert_eq!(parse_scope("all").unwrap(), Scope::ALL);
        assert!(parse_scope("cache")
            .unwrap_err()
            .contains("database (db), code, config"));
        assert_eq!(parse_scenario("critical-bug"), Ok(Scenario::CriticalBug));
        assert!(parse_scenario("bug").unwrap_err().contains("critical-bug"));
    }
}
