//! [`RollbackReport::to_html`]: the report as one self-contained HTML page (inline CSS, an
//! inline SVG timeline, no script, no external asset).
//!
//! Every text that comes from the report goes through [`escape`]; everything else on the
//! page is fixed markup. The timeline's geometry is computed apart ([`Timeline`]) so that it
//! can be tested as numbers.

use crate::plan::Step;
use crate::report::{
    fmt_duration, notice_event_text, stamp, step_outcome_text, ChecklistItem, Outcome, RollbackReport,
    StepOutcome, StepRecord, LESSONS_PLACEHOLDER,
};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use std::time::Duration;

/// `s` made safe as HTML text and as a quoted attribute value: `&`, `<`, `>`, `"` and `'`
/// become character references, so no text from a report can open a tag or leave an
/// attribute.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---- the timeline's geometry --------------------------------------------------------------

/// The drawing's width (SVG user units; the page scales it to fit).
const WIDTH: f64 = 1100.0;
/// Where the time axis starts: the step names are left of it.
pub(crate) const PLOT_X: f64 = 210.0;
/// The time axis' length: from the rollback's start to its end.
pub(crate) const PLOT_W: f64 = 760.0;
/// Above the first row: room for the downtime label.
const TOP: f64 = 34.0;
/// One step's row.
const ROW_H: f64 = 26.0;
/// A bar's height within its row.
const BAR_H: f64 = 16.0;
/// Below the last row: the axis, its ticks and their labels.
const AXIS_H: f64 = 40.0;
/// The narrowest bar drawn, so that a step of a few microseconds is still seen.
pub(crate) const MIN_BAR_W: f64 = 2.0;

/// How a bar is coloured: its CSS class besides `step`.
fn outcome_class(outcome: &StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Ok => "done",
        StepOutcome::Skipped(_) => "skipped",
        StepOutcome::Failed(_) => "failed",
        StepOutcome::Started => "interrupted",
    }
}

/// One step's bar.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bar<'a> {
    /// The step's record.
    pub record: &'a StepRecord,
    /// Its left edge: when it started.
    pub x: f64,
    /// Its length: how long it took (at least [`MIN_BAR_W`]).
    pub width: f64,
    /// Its row's top.
    pub y: f64,
}

/// The window the app was down, as a band over the rows.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Band {
    /// When it stopped answering.
    pub x: f64,
    /// Until the first passing health probe, or to the end of the axis while open.
    pub width: f64,
    /// False while the app was not verified healthy again.
    pub closed: bool,
    /// Its length, when it closed.
    pub duration: Option<Duration>,
}

/// The timeline of one report: a time axis from the rollback's start to its end, a bar per
/// step and the downtime band.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Timeline<'a> {
    /// The axis' start: the rollback's start (or an earlier step's, should one be).
    pub start: DateTime<Utc>,
    /// The axis' end: the rollback's end, or the latest end of a step or of the downtime.
    pub end: DateTime<Utc>,
    /// One bar per step record, in the report's order.
    pub bars: Vec<Bar<'a>>,
    /// The steps of the twelve that have no record (an aborted rollback), one row each
    /// after the bars.
    pub not_run: Vec<Step>,
    /// The downtime, when the app was stopped.
    pub downtime: Option<Band>,
}

/// Milliseconds from `from` to `to` (negative when `to` is earlier).
fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let d = to - from;
    d.num_microseconds()
        .map_or_else(|| d.num_milliseconds() as f64, |us| us as f64 / 1000.0)
}

/// `d` as a chrono duration (saturating).
fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl<'a> Timeline<'a> {
    /// The geometry for `report`.
    pub(crate) fn of(report: &'a RollbackReport) -> Self {
        let step_end = |r: &StepRecord| r.started_at.checked_add_signed(chrono_of(r.duration));
        let start = report
            .steps
            .iter()
            .map(|r| r.started_at)
            .chain(report.downtime.as_ref().map(|d| d.stopped_at))
            .fold(report.started_at, DateTime::min);
        let end = report
            .steps
            .iter()
            .filter_map(step_end)
            .chain(report.downtime.as_ref().and_then(|d| d.healthy_at))
            .fold(report.finished_at.max(start), DateTime::max);
        let span = millis_between(start, end);
        let x_of = |t: DateTime<Utc>| {
            if span <= 0.0 {
                PLOT_X
            } else {
                PLOT_X + (millis_between(start, t) / span).clamp(0.0, 1.0) * PLOT_W
            }
        };
        let bars: Vec<Bar<'a>> = report
            .steps
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let x = x_of(record.started_at);
                let exact = step_end(record).map_or(PLOT_X + PLOT_W, x_of) - x;
                Bar {
                    record,
                    x,
                    width: exact.max(MIN_BAR_W),
                    y: TOP + i as f64 * ROW_H + (ROW_H - BAR_H) / 2.0,
                }
            })
            .collect();
        let not_run = Step::ALL
            .into_iter()
            .filter(|s| !report.steps.iter().any(|r| r.step == *s))
            .collect();
        let downtime = report.downtime.as_ref().map(|d| {
            let x = x_of(d.stopped_at);
            let right = d.healthy_at.map_or(PLOT_X + PLOT_W, x_of);
            Band {
                x,
                width: (right - x).max(MIN_BAR_W),
                closed: d.healthy_at.is_some(),
                duration: d
                    .duration
                    .or_else(|| d.healthy_at.and_then(|h| (h - d.stopped_at).to_std().ok())),
            }
        });
        Self {
            start,
            end,
            bars,
            not_run,
            downtime,
        }
    }

    /// How many rows: the bars, then the steps not run.
    fn rows(&self) -> usize {
        self.bars.len() + self.not_run.len()
    }

    /// The drawing's height.
    fn height(&self) -> f64 {
        TOP + self.rows() as f64 * ROW_H + AXIS_H
    }

    /// The axis' length in time.
    fn span(&self) -> Duration {
        (self.end - self.start).to_std().unwrap_or_default()
    }

    /// The SVG.
    fn svg(&self) -> String {
        let mut s = String::new();
        let height = self.height();
        let rows_bottom = TOP + self.rows() as f64 * ROW_H;
        let _ = writeln!(
            s,
            "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" \
             width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-labelledby=\"timeline-title\">"
        );
        let _ = writeln!(
            s,
            "<title id=\"timeline-title\">The rollback's steps from {} to {} ({}){}</title>",
            clock(self.start),
            clock(self.end),
            fmt_duration(self.span()),
            match &self.downtime {
                Some(b) => format!(", the app down for {}", band_length(b)),
                None => String::new(),
            }
        );
        // Zebra rows, then the grid: behind everything else.
        for i in 0..self.rows() {
            if i % 2 == 1 {
                let _ = writeln!(
                    s,
                    "<rect class=\"row\" x=\"0\" y=\"{}\" width=\"{WIDTH}\" height=\"{ROW_H}\"/>",
                    TOP + i as f64 * ROW_H
                );
            }
        }
        let ticks = 4;
        for k in 0..=ticks {
            let f = f64::from(k) / f64::from(ticks);
            let x = PLOT_X + f * PLOT_W;
            let at = self.span().mul_f64(f);
            let anchor = match k {
                0 => "start",
                k if k == ticks => "end",
                _ => "middle",
            };
            let _ = writeln!(
                s,
                "<line class=\"grid\" x1=\"{x:.2}\" y1=\"{TOP}\" x2=\"{x:.2}\" y2=\"{rows_bottom}\"/>\
                 <text class=\"tick\" x=\"{x:.2}\" y=\"{}\" text-anchor=\"{anchor}\">+{}</text>",
                rows_bottom + 16.0,
                fmt_duration(at)
            );
        }
        let _ = writeln!(
            s,
            "<line class=\"axis\" x1=\"{PLOT_X}\" y1=\"{rows_bottom}\" x2=\"{}\" y2=\"{rows_bottom}\"/>",
            PLOT_X + PLOT_W
        );
        let _ = writeln!(
            s,
            "<text class=\"axis-label\" x=\"{PLOT_X}\" y=\"{}\">start {}</text>\
             <text class=\"axis-label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">end {}</text>",
            rows_bottom + 32.0,
            clock(self.start),
            PLOT_X + PLOT_W,
            rows_bottom + 32.0,
            clock(self.end)
        );
        // The downtime band under the bars, its label above the first row.
        if let Some(b) = &self.downtime {
            let _ = writeln!(
                s,
                "<rect id=\"downtime\" class=\"downtime{}\" x=\"{:.2}\" y=\"{}\" width=\"{:.2}\" height=\"{}\">\
                 <title>The app was down {}</title></rect>",
                if b.closed { "" } else { " open" },
                b.x,
                TOP - 6.0,
                b.width,
                rows_bottom - TOP + 6.0,
                band_length(b)
            );
            let label_x = (b.x + b.width / 2.0).clamp(PLOT_X + 70.0, PLOT_X + PLOT_W - 70.0);
            let _ = writeln!(
                s,
                "<text id=\"downtime-label\" x=\"{label_x:.2}\" y=\"{}\" text-anchor=\"middle\">app down {}</text>",
                TOP - 12.0,
                band_length(b)
            );
        }
        for (i, bar) in self.bars.iter().enumerate() {
            let r = bar.record;
            let row_y = TOP + i as f64 * ROW_H;
            let text_y = row_y + ROW_H / 2.0 + 4.0;
            let class = outcome_class(&r.outcome);
            let _ = writeln!(
                s,
                "<text class=\"label\" x=\"{}\" y=\"{text_y}\" text-anchor=\"end\">{}. {}</text>",
                PLOT_X - 8.0,
                r.step.number(),
                escape(&r.step.to_string())
            );
            let _ = writeln!(
                s,
                "<rect id=\"step-{n}\" class=\"step {class}\" data-step=\"{name}\" x=\"{:.2}\" y=\"{:.2}\" \
                 width=\"{:.2}\" height=\"{BAR_H}\"><title>{n}. {name}: {}, {} from {}</title></rect>",
                bar.x,
                bar.y,
                bar.width,
                escape(&step_outcome_text(&r.outcome)),
                fmt_duration(r.duration),
                clock(r.started_at),
                n = r.step.number(),
                name = escape(&r.step.to_string()),
            );
            let short = match &r.outcome {
                StepOutcome::Ok => "ok",
                StepOutcome::Skipped(_) => "skipped",
                StepOutcome::Failed(_) => "FAILED",
                StepOutcome::Started => "interrupted",
            };
            let _ = writeln!(
                s,
                "<text class=\"duration {class}\" x=\"{:.2}\" y=\"{text_y}\">{} · {short}</text>",
                (bar.x + bar.width + 6.0).min(WIDTH - 120.0),
                fmt_duration(r.duration)
            );
        }
        for (j, step) in self.not_run.iter().enumerate() {
            let row_y = TOP + (self.bars.len() + j) as f64 * ROW_H;
            let text_y = row_y + ROW_H / 2.0 + 4.0;
            let _ = writeln!(
                s,
                "<text class=\"label not-run\" x=\"{}\" y=\"{text_y}\" text-anchor=\"end\">{}. {}</text>\
                 <text class=\"not-run\" x=\"{}\" y=\"{text_y}\">not run</text>",
                PLOT_X - 8.0,
                step.number(),
                escape(&step.to_string()),
                PLOT_X + 4.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// A band's length in words.
fn band_length(b: &Band) -> String {
    match (b.closed, b.duration) {
        (true, Some(d)) => fmt_duration(d),
        _ => "(not verified healthy again)".to_owned(),
    }
}

/// `10:15:00.123` (UTC).
fn clock(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%S%.3f").to_string()
}

// ---- the page -----------------------------------------------------------------------------

const STYLE: &str = "
:root { color-scheme: light; --done: #2e7d32; --skipped: #9e9e9e; --failed: #c62828;
  --interrupted: #ef6c00; --down: #c62828; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; }
* { box-sizing: border-box; }
body { font-family: 'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif; color: var(--ink);
  margin: 0 auto; max-width: 1140px; padding: 24px; line-height: 1.45; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 8px; }
h2 { font-size: 1.2em; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin-top: 28px; }
h3 { font-size: 1em; margin-bottom: 4px; }
code { font-family: 'DejaVu Sans Mono', 'Liberation Mono', monospace; font-size: 0.92em; }
.outcome { font-size: 1.15em; font-weight: bold; padding: 10px 14px; border-radius: 6px;
  border-left: 6px solid; margin: 8px 0 0; }
.outcome.succeeded { background: #e8f5e9; border-color: var(--done); }
.outcome.investigated { background: #e3f2fd; border-color: #1565c0; }
.outcome.aborted, .outcome.restored { background: #fff3e0; border-color: var(--interrupted); }
.outcome.halted { background: #ffebee; border-color: var(--failed); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { font-weight: bold; }
dl.facts dd { margin: 0; }
figure { margin: 0; overflow-x: auto; }
figcaption { color: var(--muted); font-size: 0.9em; }
svg#timeline { max-width: 100%; height: auto; font-size: 12px; }
svg .row { fill: #f6f8fa; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .axis { stroke: var(--muted); stroke-width: 1; }
svg .tick, svg .axis-label { fill: var(--muted); font-size: 11px; }
svg .label { fill: var(--ink); }
svg .not-run { fill: var(--skipped); font-style: italic; }
svg .step { stroke: rgba(0,0,0,0.25); stroke-width: 0.5; }
svg .step.done { fill: var(--done); }
svg .step.skipped { fill: var(--skipped); }
svg .step.failed { fill: var(--failed); }
svg .step.interrupted { fill: var(--interrupted); }
svg .duration { fill: var(--muted); font-size: 11px; }
svg .duration.failed { fill: var(--failed); font-weight: bold; }
svg #downtime { fill: rgba(198, 40, 40, 0.14); stroke: var(--down); stroke-width: 1; stroke-dasharray: 4 3; }
svg #downtime-label { fill: var(--down); font-weight: bold; }
.legend { display: flex; gap: 16px; flex-wrap: wrap; font-size: 0.9em; color: var(--muted); margin: 6px 0; }
.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: -1px; margin-right: 4px;
  border-radius: 2px; }
.swatch.done { background: var(--done); } .swatch.skipped { background: var(--skipped); }
.swatch.failed { background: var(--failed); } .swatch.interrupted { background: var(--interrupted); }
.swatch.downtime { background: rgba(198, 40, 40, 0.14); border: 1px dashed var(--down); }
table { border-collapse: collapse; width: 100%; font-size: 0.93em; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; white-space: nowrap; }
tr.failed td { background: #ffebee; } tr.skipped td { color: var(--muted); }
tr.interrupted td { background: #fff3e0; }
ul.checklist { list-style: none; padding-left: 0; margin: 0; }
ul.checklist li { margin: 1px 0; }
.passed { color: var(--done); } .failed { color: var(--failed); } .not-checked { color: var(--muted); }
.delivered { color: var(--done); } .not-delivered { color: var(--failed); font-weight: bold; }
.placeholder { color: var(--muted); font-style: italic; }
.lessons { white-space: pre-wrap; }
footer { margin-top: 32px; color: var(--muted); font-size: 0.85em; }
@media print { body { padding: 0; } h2 { break-after: avoid; } figure { overflow: visible; } }
";

/// The CSS class of the outcome banner.
fn outcome_class_of(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Aborted { .. } => "aborted",
        Outcome::RestoredPreRollbackState { .. } => "restored",
        Outcome::Halted { .. } => "halted",
        Outcome::Investigated => "investigated",
    }
}

/// One checklist line: a disabled checkbox, ticked when done, and its text (escaped).
fn checklist_item(item: &ChecklistItem, prefix: &str) -> String {
    format!(
        "<li><input type=\"checkbox\" disabled{}> {}{}</li>",
        if item.checked { " checked" } else { "" },
        prefix,
        escape(&item.text)
    )
}

/// A `<ul>` of `items`, escaped; `empty` (escaped) when there are none.
fn plain_list(out: &mut String, items: &[String], empty: &str) {
    if items.is_empty() {
        let _ = writeln!(out, "<p class=\"placeholder\">{}</p>", escape(empty));
        return;
    }
    out.push_str("<ul>\n");
    for i in items {
        let _ = writeln!(out, "<li>{}</li>", escape(i));
    }
    out.push_str("</ul>\n");
}

/// The page for `r`.
pub(crate) fn render(r: &RollbackReport) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Rollback report {}: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        escape(r.id.as_str()),
        escape(&r.app)
    );

    // The outcome and the facts of the runbook's "Rollback Documentation".
    let _ = writeln!(
        h,
        "<header>\n<h1>Rollback report <code>{}</code></h1>\n\
         <p id=\"outcome\" class=\"outcome {}\">{}</p>\n</header>",
        escape(r.id.as_str()),
        outcome_class_of(&r.outcome),
        escape(&r.outcome.to_string())
    );
    h.push_str("<section id=\"documentation\">\n<h2>Rollback documentation</h2>\n<dl class=\"facts\">\n");
    let mut fact = |name: &str, value: String| {
        let _ = writeln!(h, "<dt>{name}</dt><dd>{value}</dd>");
    };
    fact("App", escape(&r.app));
    fact("Initiated", escape(&stamp(r.started_at)));
    fact("Reason", escape(&r.reason));
    if let Some(s) = r.scenario {
        fact("Scenario", escape(&s.to_string()));
    }
    fact("Trigger", escape(r.trigger.as_deref().unwrap_or("not recorded")));
    fact("Scope", escape(&r.scope.to_string()));
    let mut checkpoint = format!(
        "<code>{}</code> {}",
        escape(r.checkpoint.id.as_str()),
        escape(&r.checkpoint_details())
    );
    for w in &r.checkpoint.warnings {
        let _ = write!(checkpoint, "<br>checkpoint warning: {}", escape(w));
    }
    fact("Checkpoint", checkpoint);
    fact("Finished", escape(&stamp(r.finished_at)));
    fact("Total duration", escape(&fmt_duration(r.total_duration)));
    fact("Downtime", escape(&r.downtime_text()));
    h.push_str("</dl>\n</section>\n");

    // The timeline.
    let timeline = Timeline::of(r);
    h.push_str("<section id=\"timeline-section\">\n<h2>Timeline</h2>\n<figure>\n");
    h.push_str(
        "<div class=\"legend\"><span><span class=\"swatch done\"></span>done</span>\
         <span><span class=\"swatch skipped\"></span>skipped</span>\
         <span><span class=\"swatch failed\"></span>failed</span>\
         <span><span class=\"swatch interrupted\"></span>interrupted</span>\
         <span><span class=\"swatch downtime\"></span>app down</span></div>\n",
    );
    h.push_str(&timeline.svg());
    let _ = writeln!(
        h,
        "<figcaption>Each step from when it started for as long as it took, on a time axis from \
         the rollback's start ({}) to its end ({}, {} in all). {}</figcaption>\n</figure>\n</section>",
        escape(&stamp(timeline.start)),
        escape(&stamp(timeline.end)),
        escape(&fmt_duration(timeline.span())),
        match &timeline.downtime {
            Some(b) if b.closed => format!(
                "The shaded band is the window the app was down: {}.",
                escape(&band_length(b))
            ),
            Some(_) => "The shaded band is the window the app was down: it was not verified healthy again."
                .to_owned(),
            None => "The app was not stopped.".to_owned(),
        }
    );

    // Steps taken.
    h.push_str(
        "<section id=\"steps\">\n<h2>Steps taken</h2>\n<table>\n<thead><tr><th>#</th><th>step</th>\
         <th>started</th><th>duration</th><th>outcome</th><th>checklist</th></tr></thead>\n<tbody>\n",
    );
    for s in &r.steps {
        let mut checklist = String::new();
        if !s.checklist.is_empty() {
            checklist.push_str("<ul class=\"checklist\">");
            for item in &s.checklist {
                checklist.push_str(&checklist_item(item, ""));
            }
            checklist.push_str("</ul>");
        }
        let _ = writeln!(
            h,
            "<tr class=\"{}\"><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{checklist}</td></tr>",
            outcome_class(&s.outcome),
            s.step.number(),
            escape(&s.step.to_string()),
            clock(s.started_at),
            fmt_duration(s.duration),
            escape(&step_outcome_text(&s.outcome))
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");

    // Verification results.
    h.push_str("<section id=\"verification\">\n<h2>Verification results</h2>\n");
    if r.health.is_empty() && r.integrity.is_empty() && r.verification.is_empty() {
        h.push_str("<p class=\"placeholder\">None recorded: post-verify did not run.</p>\n");
    }
    for (title, lines) in r.verification_groups() {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(h, "<h3>{title}</h3>\n<ul class=\"checklist\">");
        for (mark, text) in lines {
            let _ = writeln!(
                h,
                "<li class=\"{}\">{} {}</li>",
                mark.class(),
                mark.plain_symbol(),
                escape(&text)
            );
        }
        h.push_str("</ul>\n");
    }
    if !r.log_matches.is_empty() {
        h.push_str("<h3>Critical lines in the app's log since the start</h3>\n<ul>\n");
        for m in &r.log_matches {
            let _ = writeln!(
                h,
                "<li>{} (<code>{}</code>): <code>{}</code></li>",
                escape(&m.source),
                escape(&m.pattern),
                escape(&m.line)
            );
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</section>\n");

    if !r.diagnosis.is_empty() {
        h.push_str("<section id=\"diagnosis\">\n<h2>Database diagnosis</h2>\n<ul>\n");
        for f in &r.diagnosis {
            let _ = write!(
                h,
                "<li class=\"{}\">{} <strong>{}</strong>: {}",
                if f.notable { "notable" } else { "context" },
                if f.notable { "⚠" } else { "•" },
                escape(&f.topic),
                escape(&f.summary)
            );
            if !f.items.is_empty() {
                h.push_str("<ul>");
                for item in &f.items {
                    let _ = write!(h, "<li>{}</li>", escape(item));
                }
                h.push_str("</ul>");
            }
            h.push_str("</li>\n");
        }
        h.push_str("</ul>\n</section>\n");
    }
    if !r.recovery.is_empty() {
        h.push_str(
            "<section id=\"recovery\">\n<h2>Recovery (failure policy)</h2>\n<ul class=\"checklist\">\n",
        );
        for item in &r.recovery {
            let _ = writeln!(h, "{}", checklist_item(item, ""));
        }
        h.push_str("</ul>\n</section>\n");
    }
    h.push_str("<section id=\"emergency-backup\">\n<h2>Emergency backup</h2>\n");
    plain_list(&mut h, &r.emergency_backup, "None taken.");
    h.push_str("</section>\n");
    if !r.notes.is_empty() {
        h.push_str("<section id=\"notes\">\n<h2>Notes</h2>\n");
        plain_list(&mut h, &r.notes, "");
        h.push_str("</section>\n");
    }
    if !r.next_actions.is_empty() {
        h.push_str("<section id=\"next-actions\">\n<h2>Next actions</h2>\n");
        plain_list(&mut h, &r.next_actions, "");
        h.push_str("</section>\n");
    }

    // The communication log.
    h.push_str("<section id=\"notices\">\n<h2>Notices sent</h2>\n");
    if r.notices.is_empty() {
        h.push_str("<p class=\"placeholder\">None.</p>\n");
    } else {
        h.push_str(
            "<table>\n<thead><tr><th>when</th><th>to</th><th>event</th><th>subject</th>\
             <th>delivery</th></tr></thead>\n<tbody>\n",
        );
        for n in &r.notices {
            let delivery = match &n.error {
                None => "<td class=\"delivered\">delivered</td>".to_owned(),
                Some(e) => format!("<td class=\"not-delivered\">NOT delivered: {}</td>", escape(e)),
            };
            let _ = writeln!(
                h,
                "<tr class=\"notice\"><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td>{delivery}</tr>",
                escape(&stamp(n.at)),
                escape(&n.audience),
                escape(&notice_event_text(n.event)),
                escape(&n.subject)
            );
        }
        h.push_str("</tbody>\n</table>\n");
    }
    h.push_str("</section>\n");

    // What the team does next, and what it learned.
    h.push_str(
        "<section id=\"post-rollback-actions\">\n<h2>Post-rollback actions</h2>\n<ul class=\"checklist\">\n",
    );
    for item in r.post_rollback_checklist() {
        let _ = writeln!(h, "{}", checklist_item(&item, ""));
    }
    h.push_str("</ul>\n</section>\n");
    h.push_str("<section id=\"lessons-learned\">\n<h2>Lessons learned</h2>\n");
    if r.lessons_learned.trim().is_empty() {
        let _ = writeln!(h, "<p class=\"placeholder\">{}</p>", escape(LESSONS_PLACEHOLDER));
    } else {
        let _ = writeln!(
            h,
            "<p class=\"lessons\">{}</p>",
            escape(r.lessons_learned.trim_end())
        );
    }
    h.push_str("</section>\n");
    let _ = writeln!(
        h,
        "<footer>Rollback <code>{}</code> of <code>{}</code>, {} to {} UTC.</footer>\n</body>\n</html>",
        escape(r.id.as_str()),
        escape(&r.app),
        escape(&stamp(r.started_at)),
        escape(&stamp(r.finished_at))
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{DowntimeWindow, NoticeRecord};
    use crate::{ChecklistItem, Checkpoint, NoticeEvent, RollbackId, Scope};

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_790_000_000_000 + ms).unwrap()
    }

    fn record(step: Step, start_ms: i64, ms: u64, outcome: StepOutcome) -> StepRecord {
        StepRecord {
            step,
            started_at: at(start_ms),
            duration: Duration::from_millis(ms),
            outcome,
            checklist: vec![ChecklistItem::done(format!("{step} done"))],
        }
    }

    /// A rollback of 10 s: twelve steps, restore database (7) taking 5 s of it, the app
    /// down from 2 s to 8 s.
    fn report() -> RollbackReport {
        let plan: [(u64, StepOutcome); 12] = [
            (100, StepOutcome::Ok),
            (100, StepOutcome::Ok),
            (300, StepOutcome::Ok),
            (1000, StepOutcome::Ok),
            (500, StepOutcome::Ok),
            (500, StepOutcome::Ok),
            (5000, StepOutcome::Ok),
            (500, StepOutcome::Ok),
            (0, StepOutcome::Skipped("config not in scope".into())),
            (1000, StepOutcome::Ok),
            (900, StepOutcome::Failed("health: 503".into())),
            (100, StepOutcome::Ok),
        ];
        let mut t = 0;
        let steps = Step::ALL
            .into_iter()
            .zip(plan)
            .map(|(step, (ms, outcome))| {
                let r = record(step, t, ms, outcome);
                t += ms as i64;
                r
            })
            .collect::<Vec<_>>();
        assert_eq!(t, 10_000);
        RollbackReport {
            id: RollbackId::new("rb-1"),
            app: "web".into(),
            reason: "v2 broke checkout".into(),
            scenario: None,
            trigger: Some("operator alice".into()),
            scope: Scope::ALL,
            // From JSON, so that a new optional field of a checkpoint needs no change here.
            checkpoint: serde_json::from_value::<Checkpoint>(serde_json::json!({
                "id": "cp-1",
                "label": "before v2",
                "created_at": at(-60_000),
                "snapshot": null,
                "revision": null,
                "config": null,
                "good": true,
            }))
            .unwrap(),
            started_at: at(0),
            finished_at: at(10_000),
            total_duration: Duration::from_secs(10),
            downtime: Some(DowntimeWindow {
                stopped_at: at(2_000),
                stop_issued_at: Some(at(1_500)),
                healthy_at: Some(at(8_000)),
                duration: Some(Duration::from_secs(6)),
                post_verify: None,
            }),
            steps,
            health: Vec::new(),
            integrity: Vec::new(),
            verification: Vec::new(),
            log_matches: Vec::new(),
            diagnosis: Vec::new(),
            recovery: Vec::new(),
            emergency_backup: vec!["database: web_pre_rollback".into()],
            outcome: Outcome::Succeeded,
            notes: Vec::new(),
            next_actions: Vec::new(),
            notices: vec![NoticeRecord {
                at: at(10),
                audience: "devops".into(),
                subject: "rollback started: web".into(),
                event: NoticeEvent::RollbackStarted,
                error: None,
            }],
            post_rollback_actions: crate::report::post_rollback_actions(),
            lessons_learned: String::new(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn escape_turns_every_markup_character_into_a_reference() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("plain text, ünïcode ✅"), "plain text, ünïcode ✅");
        // Escaping twice is visible, not undone: `&` is escaped first.
        assert_eq!(escape("&lt;"), "&amp;lt;");
    }

    #[test]
    fn a_step_that_took_half_the_rollback_is_half_the_axis_wide() {
        let r = report();
        let t = Timeline::of(&r);
        assert_eq!((t.start, t.end), (at(0), at(10_000)));
        let restore = &t.bars[6];
        assert_eq!(restore.record.step, Step::RestoreDatabase);
        assert!(close(restore.width, PLOT_W / 2.0), "{}", restore.width);
        // It started after 2.5 s of the 10: a quarter along the axis.
        assert!(close(restore.x, PLOT_X + PLOT_W / 4.0), "{}", restore.x);
        // The first bar starts at the axis' start, the last ends at its end.
        assert!(close(t.bars[0].x, PLOT_X));
        let last = &t.bars[11];
        assert!(close(last.x + last.width, PLOT_X + PLOT_W));
        // Bars are in rows, one below the other.
        assert!(t.bars.windows(2).all(|w| w[1].y > w[0].y));
        assert!(t.not_run.is_empty());
    }

    #[test]
    fn a_step_of_no_time_is_still_drawn_and_the_downtime_band_spans_stop_to_healthy() {
        let r = report();
        let t = Timeline::of(&r);
        let skipped = &t.bars[8];
        assert_eq!(skipped.record.step, Step::RestoreConfig);
        assert!(close(skipped.width, MIN_BAR_W));
        let band = t.downtime.as_ref().expect("a band");
        // 2 s to 8 s of 10: from a fifth to four fifths of the axis.
        assert!(close(band.x, PLOT_X + PLOT_W * 0.2), "{}", band.x);
        assert!(close(band.width, PLOT_W * 0.6), "{}", band.width);
        assert!(band.closed);
    }

    #[test]
    fn an_open_downtime_runs_to_the_end_and_missing_steps_get_a_row() {
        let mut r = report();
        r.steps.truncate(5);
        r.finished_at = at(2_500);
        if let Some(d) = r.downtime.as_mut() {
            d.healthy_at = None;
            d.duration = None;
        }
        let t = Timeline::of(&r);
        assert_eq!(t.end, at(2_500));
        let band = t.downtime.as_ref().expect("a band");
        assert!(!band.closed);
        assert!(close(band.x + band.width, PLOT_X + PLOT_W));
        assert_eq!(t.not_run, Step::ALL[5..].to_vec());
        let html = render(&r);
        assert!(html.contains("class=\"downtime open\""));
        assert_eq!(
            html.matches("class=\"not-run\"").count(),
            7,
            "one 'not run' per missing step"
        );
        assert!(html.contains("app down (not verified healthy again)"));
    }

    #[test]
    fn an_instant_rollback_does_not_divide_by_zero() {
        let mut r = report();
        for s in &mut r.steps {
            s.started_at = at(0);
            s.duration = Duration::ZERO;
        }
        r.finished_at = at(0);
        r.downtime = None;
        let t = Timeline::of(&r);
        assert!(t.bars.iter().all(|b| b.x == PLOT_X && b.width == MIN_BAR_W));
        let html = render(&r);
        assert!(!html.contains("NaN") && !html.contains("=\"inf"));
        assert!(!html.contains("id=\"downtime\""));
        assert!(html.contains("The app was not stopped."));
    }

    #[test]
    fn the_page_has_the_timeline_and_the_ids_tools_look_for() {
        let html = render(&report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<svg id=\"timeline\""));
        assert_eq!(html.matches("class=\"step ").count(), 12);
        assert_eq!(html.matches("class=\"step done\"").count(), 10);
        assert_eq!(html.matches("class=\"step skipped\"").count(), 1);
        assert_eq!(html.matches("class=\"step failed\"").count(), 1);
        assert!(html.contains("id=\"step-7\" class=\"step done\" data-step=\"restore database\""));
        assert!(html.contains("<rect id=\"downtime\" class=\"downtime\""));
        assert!(html.contains(">app down 6.000s</text>"));
        assert!(html.contains("<p id=\"outcome\" class=\"outcome succeeded\">rolled back and verified</p>"));
        // The bars' numbers are the geometry's.
        assert!(html.contains(&format!("width=\"{:.2}\"", PLOT_W / 2.0)));
    }

    #[test]
    fn markup_in_any_text_of_the_report_comes_out_as_text() {
        let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&";
        let mut r = report();
        r.reason = evil.into();
        r.app = evil.into();
        r.trigger = Some(evil.into());
        r.checkpoint.label = evil.into();
        r.checkpoint.warnings = vec![evil.into()];
        r.steps[3].checklist.push(ChecklistItem::not_done(evil));
        r.steps[10].outcome = StepOutcome::Failed(evil.into());
        r.emergency_backup.push(evil.into());
        r.notes.push(evil.into());
        r.next_actions.push(evil.into());
        r.notices[0].audience = evil.into();
        r.notices[0].subject = evil.into();
        r.notices[0].error = Some(evil.into());
        r.recovery.push(ChecklistItem::done(evil));
        r.post_rollback_actions.push(ChecklistItem::not_done(evil));
        r.lessons_learned = evil.into();
        r.outcome = Outcome::Halted {
            step: Step::Start,
            cause: evil.into(),
            statement: evil.into(),
        };
        let html = render(&r);
        assert!(!html.contains("<script"), "a script tag got through");
        assert!(!html.contains("<img"), "an img tag got through");
        assert!(!html.contains("onerror=alert(2)>"), "an attribute got through");
        let escaped = escape(evil);
        // Every field above shows up escaped (the outcome holds it twice).
        assert!(html.matches(escaped.as_str()).count() >= 18, "{html}");
    }
}
