//! `supervisorctl status`, parsed: one [`ProgramStatus`] per line, with supervisord's own
//! state ([`SupervisordState`]) and how it maps onto [`ProcessState`].
//!
//! A status line is `<namespec> <STATE> <description>`, the namespec being `program` (a
//! program in a group of its own) or `group:program`. The description is `pid N, uptime
//! H:MM:SS` while running, the spawn error while `BACKOFF`/`FATAL`, and the stop time (or
//! `Not started`) while `STOPPED`/`EXITED`. It never holds a program's environment.

use rollback_core::{AppName, ProcessState, ProcessStatus};
use std::fmt;
use std::time::Duration;

/// A process state as supervisord names it (`supervisor.states.ProcessStates`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SupervisordState {
    /// Stopped on request, or never started.
    Stopped,
    /// Spawned, and not yet up for the program's `startsecs`.
    Starting,
    /// Up for at least `startsecs`.
    Running,
    /// Exited before `startsecs`; supervisord will try again (up to `startretries`).
    Backoff,
    /// Being stopped (signalled, not yet reaped).
    Stopping,
    /// Exited after reaching `RUNNING`, and supervisord does not restart it (`autorestart`
    /// off, or an expected exit code under `autorestart=unexpected`).
    Exited,
    /// Could not be started: too many `BACKOFF`s, or the command cannot be spawned.
    /// Supervisord gave up; only a `start` leaves this state (`stop` cannot).
    Fatal,
    /// supervisord's own `UNKNOWN`, or a state this adapter does not know.
    Unknown,
}

impl SupervisordState {
    /// The state named `name` as supervisorctl prints it (`RUNNING`, ...); an unknown
    /// upper-case word is [`Unknown`](Self::Unknown), anything else `None`.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "STOPPED" => Self::Stopped,
            "STARTING" => Self::Starting,
            "RUNNING" => Self::Running,
            "BACKOFF" => Self::Backoff,
            "STOPPING" => Self::Stopping,
            "EXITED" => Self::Exited,
            "FATAL" => Self::Fatal,
            "UNKNOWN" => Self::Unknown,
            other if !other.is_empty() && other.bytes().all(|b| b.is_ascii_uppercase()) => Self::Unknown,
            _ => return None,
        })
    }

    /// The name supervisorctl prints.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "STOPPED",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Backoff => "BACKOFF",
            Self::Stopping => "STOPPING",
            Self::Exited => "EXITED",
            Self::Fatal => "FATAL",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The [`ProcessState`] it means under the [`ProcessManager`](rollback_core::ProcessManager)
    /// contract: `RUNNING` is `Online`, `STARTING` `Launching`, `STOPPING` `Stopping`,
    /// `BACKOFF` `Retrying` (it crashed at start and supervisord tries again), `FATAL`
    /// `Errored` (supervisord gave up), `STOPPED` and `EXITED` `Stopped` (not running, and
    /// supervisord will not start it by itself; supervisorctl does not say whether an exit
    /// was expected), `UNKNOWN` `Unknown`.
    pub(crate) fn process_state(self) -> ProcessState {
        match self {
            Self::Stopped | Self::Exited => ProcessState::Stopped,
            Self::Starting => ProcessState::Launching,
            Self::Running => ProcessState::Online,
            Self::Backoff => ProcessState::Retrying,
            Self::Stopping => ProcessState::Stopping,
            Self::Fatal => ProcessState::Errored,
            Self::Unknown => ProcessState::Unknown,
        }
    }
}

impl fmt::Display for SupervisordState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One program's line of `supervisorctl status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProgramStatus {
    /// The namespec: `program`, or `group:program`.
    pub(crate) name: String,
    /// Its state.
    pub(crate) state: SupervisordState,
    /// The pid, while `RUNNING` (supervisorctl shows none in the other states).
    pub(crate) pid: Option<u32>,
    /// Time since it started, while `RUNNING`.
    pub(crate) uptime: Option<Duration>,
    /// supervisord's description: `pid …, uptime …`, the spawn error, the stop time.
    pub(crate) description: String,
}

impl ProgramStatus {
    /// Parses one status line; `None` when it is not one (a connection error, a blank line).
    pub(crate) fn parse_line(line: &str) -> Option<Self> {
        let line = line.trim();
        let (name, rest) = line.split_once(char::is_whitespace)?;
        // `web: ERROR (…)` is a command's result, not a status line.
        if name.ends_with(':') {
            return None;
        }
        let rest = rest.trim_start();
        let (state, description) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let state = SupervisordState::parse(state)?;
        let description = description.trim().to_owned();
        let (pid, uptime) = if state == SupervisordState::Running {
            parse_running(&description)
        } else {
            (None, None)
        };
        Some(Self {
            name: name.to_owned(),
            state,
            pid,
            uptime,
            description,
        })
    }

    /// The status as the [`ProcessManager`](rollback_core::ProcessManager) contract reports
    /// it. `restarts` is always `None`: supervisord keeps no restart count.
    pub(crate) fn to_status(&self, app: &AppName) -> ProcessStatus {
        let online = self.state == SupervisordState::Running && self.pid.is_some();
        ProcessStatus {
            app: app.clone(),
            // RUNNING without a readable pid cannot honour "online carries its pid".
            state: if self.state == SupervisordState::Running && !online {
                ProcessState::Unknown
            } else {
                self.state.process_state()
            },
            pid: self.pid.filter(|_| online),
            restarts: None,
            uptime: self.uptime.filter(|_| online),
        }
    }

    /// `RUNNING (pid 12, uptime 0:00:03)`, or the state alone when there is no description.
    pub(crate) fn describe(&self) -> String {
        if self.description.is_empty() {
            self.state.to_string()
        } else {
            format!("{} ({})", self.state, self.description)
        }
    }
}

/// Every program line of `supervisorctl status` output; other lines are skipped.
pub(crate) fn parse_status(output: &str) -> Vec<ProgramStatus> {
    output.lines().filter_map(ProgramStatus::parse_line).collect()
}

/// `pid 2183, uptime 1 day, 0:01:05` → pid and uptime.
fn parse_running(desc: &str) -> (Option<u32>, Option<Duration>) {
    let Some(rest) = desc.strip_prefix("pid ") else {
        return (None, None);
    };
    let (pid, rest) = rest.split_once(',').unwrap_or((rest, ""));
    let pid = pid.trim().parse().ok().filter(|p| *p > 0);
    let uptime = rest.trim().strip_prefix("uptime ").and_then(parse_uptime);
    (pid, uptime)
}

/// Python's `timedelta` text: `H:MM:SS`, or `N day(s), H:MM:SS`.
fn parse_uptime(s: &str) -> Option<Duration> {
    let (days, hms) = match s.split_once(',') {
        Some((d, hms)) => {
            let d = d
                .trim()
                .strip_suffix("days")
                .or_else(|| d.trim().strip_suffix("day"))?;
            (d.trim().parse::<u64>().ok()?, hms.trim())
        }
        None => (0, s.trim()),
    };
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() {
        return None;
    }
    Some(Duration::from_secs(((days * 24 + h) * 60 + m) * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_state_line_supervisorctl_prints() {
        let out = "\
crashy                           BACKOFF   Exited too quickly (process log may have details)
grp:g1                           STOPPED   Not started
grp:g2                           EXITED    Nov 25 11:31 PM
web                              RUNNING   pid 2368, uptime 1 day, 2:03:04
up                               STARTING  
down                             STOPPING  
dead                             FATAL     can't find command '/nope'
new                              SOMETHING later
";
        let all = parse_status(out);
        let got: Vec<(&str, SupervisordState, Option<u32>)> =
            all.iter().map(|p| (p.name.as_str(), p.state, p.pid)).collect();
        assert_eq!(
            got,
            [
                ("crashy", SupervisordState::Backoff, None),
                ("grp:g1", SupervisordState::Stopped, None),
                ("grp:g2", SupervisordState::Exited, None),
                ("web", SupervisordState::Running, Some(2368)),
                ("up", SupervisordState::Starting, None),
                ("down", SupervisordState::Stopping, None),
                ("dead", SupervisordState::Fatal, None),
                ("new", SupervisordState::Unknown, None),
            ]
        );
        assert_eq!(
            all[3].uptime,
            Some(Duration::from_secs(86_400 + 2 * 3600 + 3 * 60 + 4))
        );
        assert_eq!(
            all[0].describe(),
            "BACKOFF (Exited too quickly (process log may have details))"
        );
        assert_eq!(all[4].describe(), "STARTING");
    }

    #[test]
    fn connection_errors_and_results_are_not_status_lines() {
        for line in [
            "unix:///tmp/x.sock no such file",
            "unix:///tmp/x.sock refused connection",
            "web: ERROR (no such process)",
            "Server requires authentication",
            "",
        ] {
            assert_eq!(ProgramStatus::parse_line(line), None, "{line}");
        }
    }

    #[test]
    fn states_map_onto_the_contract() {
        use ProcessState as P;
        use SupervisordState as S;
        for (s, p) in [
            (S::Stopped, P::Stopped),
            (S::Starting, P::Launching),
            (S::Running, P::Online),
            (S::Backoff, P::Retrying),
            (S::Stopping, P::Stopping),
            (S::Exited, P::Stopped),
            (S::Fatal, P::Errored),
            (S::Unknown, P::Unknown),
        ] {
            assert_eq!(s.process_state(), p, "{s}");
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn one_line_parsed_and_reported() {
        let p =
            ProgramStatus::parse_line("web                              RUNNING   pid 2183, uptime 0:01:05")
                .unwrap();
        assert_eq!(
            (p.name.as_str(), p.state, p.pid),
            ("web", SupervisordState::Running, Some(2183))
        );
        assert_eq!(p.uptime, Some(Duration::from_secs(65)));
        assert_eq!(p.state.to_string(), "RUNNING");
        let p =
            ProgramStatus::parse_line("crashy   FATAL     Exited too quickly (process log may have details)")
                .unwrap();
        let s = p.to_status(&AppName::new("crashy"));
        assert_eq!((s.state, s.pid, s.restarts), (ProcessState::Errored, None, None));
    }

    #[test]
    fn running_without_a_pid_is_never_reported_online() {
        let p = ProgramStatus::parse_line("web   RUNNING   something else").unwrap();
        let s = p.to_status(&AppName::new("web"));
        assert_eq!((s.state, s.pid), (ProcessState::Unknown, None));
        let p = ProgramStatus::parse_line("web   RUNNING   pid 7, uptime 0:00:09").unwrap();
        let s = p.to_status(&AppName::new("web"));
        assert_eq!(
            (s.state, s.pid, s.restarts, s.uptime),
            (ProcessState::Online, Some(7), None, Some(Duration::from_secs(9)))
        );
    }

    #[test]
    fn uptimes_in_python_timedelta_form() {
        assert_eq!(parse_uptime("0:00:01"), Some(Duration::from_secs(1)));
        assert_eq!(parse_uptime("12:34:56"), Some(Duration::from_secs(45_296)));
        assert_eq!(
            parse_uptime("3 days, 0:00:00"),
            Some(Duration::from_secs(3 * 86_400))
        );
        assert_eq!(parse_uptime("1 day, 0:00:02"), Some(Duration::from_secs(86_402)));
        assert_eq!(parse_uptime("soon"), None);
        assert_eq!(parse_uptime("1:2:3:4"), None);
    }
}
