//! How a command shows what happens: on a terminal, one line per step with a spinner and its
//! elapsed time; elsewhere, plain lines; with `--json`, newline-delimited JSON events and
//! the result. Colour only on a terminal and never with `NO_COLOR` set.

use indicatif::{ProgressBar, ProgressStyle};
use rollback_core::progress::ProgressEvent;
use rollback_core::ProgressKind;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The output mode, chosen once per run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A terminal: spinners, colour unless `NO_COLOR`.
    Terminal {
        /// Whether colour is allowed.
        colour: bool,
    },
    /// Not a terminal (a pipe, a file, CI): one plain line per event.
    Plain,
    /// `--json`: one JSON object per line on stdout.
    Json,
}

impl Mode {
    /// From `--json` and whether stdout is a terminal.
    pub fn detect(json: bool) -> Self {
        if json {
            Mode::Json
        } else if std::io::stdout().is_terminal() {
            Mode::Terminal {
                colour: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            }
        } else {
            Mode::Plain
        }
    }
}

/// Prints for one command.
pub struct Printer {
    mode: Mode,
    started: HashMap<usize, (Instant, Option<ProgressBar>)>,
}

/// One JSON line: `{"event": ..., ...}`.
#[derive(Serialize)]
struct JsonLine<'a, T: Serialize> {
    event: &'a str,
    #[serde(flatten)]
    body: T,
}

/// A progress event as JSON, with the step's elapsed time once it ended.
#[derive(Serialize)]
struct StepLine<'a> {
    #[serde(flatten)]
    progress: &'a ProgressEvent,
    describe: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<u64>,
}

impl Printer {
    /// A printer in `mode`.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            started: HashMap::new(),
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// True on a terminal (where a question can be asked).
    pub fn interactive(&self) -> bool {
        matches!(self.mode, Mode::Terminal { .. }) && std::io::stdin().is_terminal()
    }

    /// A message for a human: stdout in text modes, stderr with `--json` (stdout stays JSON).
    pub fn say(&self, text: impl AsRef<str>) {
        match self.mode {
            Mode::Json => eprintln!("{}", text.as_ref()),
            _ => out(text.as_ref()),
        }
    }

    /// A warning or an error: always stderr.
    pub fn warn(&self, text: impl AsRef<str>) {
        eprintln!("{}", text.as_ref());
    }

    /// The command's result: `value` as one JSON line with `--json`, else `text`.
    pub fn result<T: Serialize>(&self, kind: &str, value: &T, text: impl AsRef<str>) {
        match self.mode {
            Mode::Json => json_line(kind, value),
            _ => {
                let text = text.as_ref();
                if !text.is_empty() {
                    out(text);
                }
            }
        }
    }

    /// `✓`/`✗` in green/red where colour is allowed.
    pub fn mark(&self, ok: bool) -> String {
        let (mark, colour) = if ok { ("✓", "32") } else { ("✗", "31") };
        match self.mode {
            Mode::Terminal { colour: true } => format!("\u{1b}[{colour}m{mark}\u{1b}[0m"),
            _ => mark.to_owned(),
        }
    }

    /// One progress event of the library.
    pub fn progress(&mut self, e: &ProgressEvent) {
        let head = format!("[{:>2}/12] {:<40}", e.number, e.step.describe());
        let elapsed = match e.kind {
            ProgressKind::Started => None,
            _ => self.started.get(&e.number).map(|(t, _)| t.elapsed()),
        };
        match self.mode {
            Mode::Json => {
                let line = StepLine {
                    progress: e,
                    describe: e.step.describe(),
                    elapsed_ms: elapsed.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                };
                json_line("step", &line);
            }
            Mode::Plain => match &e.kind {
                ProgressKind::Started => {
                    self.started.insert(e.number, (Instant::now(), None));
                    out(format!("{head} started"));
                }
                other => out(format!("{head} {}", ending(other, elapsed))),
            },
            Mode::Terminal { .. } => match &e.kind {
                ProgressKind::Started => {
                    let bar = ProgressBar::new_spinner().with_message(head);
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.enable_steady_tick(Duration::from_millis(100));
                    self.started.insert(e.number, (Instant::now(), Some(bar)));
                }
                other => {
                    let ok = matches!(other, ProgressKind::Finished | ProgressKind::Skipped);
                    let text = format!("{} {head} {}", self.mark(ok), ending(other, elapsed));
                    match self.started.get_mut(&e.number).and_then(|(_, bar)| bar.take()) {
                        Some(bar) => {
                            bar.set_style(
                                ProgressStyle::with_template("{msg}")
                                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                            );
                            bar.finish_with_message(text);
                        }
                        None => out(text),
                    }
                }
            },
        }
    }

    /// Ends spinners still turning (a command that returns mid-step).
    pub fn finish(&mut self) {
        for (_, (_, bar)) in self.started.drain() {
            if let Some(bar) = bar {
                bar.abandon();
            }
        }
        let _ = std::io::stdout().flush();
    }
}

/// How a step ended, in words.
fn ending(kind: &ProgressKind, elapsed: Option<Duration>) -> String {
    let took = elapsed
        .map(|d| format!(" ({:.1}s)", d.as_secs_f64()))
        .unwrap_or_default();
    match kind {
        ProgressKind::Finished => format!("done{took}"),
        ProgressKind::Skipped => "skipped".to_owned(),
        ProgressKind::Failed(why) => format!("FAILED{took}: {why}"),
        ProgressKind::Recovering => "putting the pre-rollback state back".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Prints one JSON line `{"event": kind, ...value}` on stdout.
pub fn json_line<T: Serialize>(kind: &str, value: &T) {
    let line = JsonLine {
        event: kind,
        body: value,
    };
    match serde_json::to_string(&line) {
        Ok(text) => out(text),
        Err(e) => eprintln!("cannot print JSON: {e}"),
    }
}

/// Writes one line to stdout. A reader that went away (`rollback report --last | head`)
/// is not an error of the command: the line is dropped quietly and the command goes on (a
/// rollback never stops because its output is no longer read).
pub(crate) fn out(text: impl std::fmt::Display) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::warn!(error = %e, "cannot write to stdout");
        }
    }
}
