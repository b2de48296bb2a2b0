//! [`AccessLogMetrics`]: error rate and latency p95 over a sliding window of an access log
//! that is followed like `tail -F` (through rename rotation and copytruncate).

use crate::error::MetricsError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rollback_core::{AdapterError, AppName, MetricsSample, MetricsSource};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The unit of a request-time field.
///
/// ```
/// use rollback_metrics::{LogFormat, TimeUnit};
/// // Apache: LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\" %D"
/// let apache = LogFormat::CommonOrCombined { request_time: Some(TimeUnit::Microseconds) };
/// # let _ = apache;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeUnit {
    /// Seconds, fractions allowed (nginx's `$request_time`, Apache's `%T`).
    Seconds,
    /// Milliseconds.
    Milliseconds,
    /// Microseconds (Apache's `%D`).
    Microseconds,
}

impl TimeUnit {
    fn duration(self, value: f64) -> Option<Duration> {
        let secs = match self {
            TimeUnit::Seconds => value,
            TimeUnit::Milliseconds => value / 1e3,
            TimeUnit::Microseconds => value / 1e6,
        };
        Duration::try_from_secs_f64(secs).ok()
    }
}

/// Where a JSON-lines log keeps each field. A name is looked up as a key first, then as a
/// dotted path into nested objects (`http.response.status_code`). Start from
/// [`JsonFields::new`] (the defaults) and change what differs with the setters.
///
/// ```
/// use rollback_metrics::{JsonFields, TimeUnit};
/// let fields = JsonFields::new()
///     .status("http.status")
///     .latency("duration_ms", TimeUnit::Milliseconds);
/// assert_eq!(fields.time.as_deref(), Some("time"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JsonFields {
    /// The HTTP status, a number or a numeric string (default `status`).
    pub status: String,
    /// The request time, a number or a numeric string (default `request_time`); `None` when
    /// the log has none (then `latency_p95` is `None`).
    pub latency: Option<String>,
    /// The unit of [`latency`](Self::latency) (default seconds).
    pub latency_unit: TimeUnit,
    /// When the request happened: an RFC 3339 string, a common-log-format time
    /// (`10/Oct/2000:13:55:36 -0700`), or a number of seconds since the epoch (milliseconds
    /// when above 10^11). Default `time`. Entries without it are timed when read.
    pub time: Option<String>,
}

impl JsonFields {
    /// The defaults: `status`, `request_time` in seconds, `time`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`status`](Self::status).
    pub fn status(mut self, name: impl Into<String>) -> Self {
        self.status = name.into();
        self
    }

    /// Sets [`latency`](Self::latency) and its [unit](Self::latency_unit).
    pub fn latency(mut self, name: impl Into<String>, unit: TimeUnit) -> Self {
        self.latency = Some(name.into());
        self.latency_unit = unit;
        self
    }

    /// The log has no request time: `latency_p95` stays `None`.
    pub fn without_latency(mut self) -> Self {
        self.latency = None;
        self
    }

    /// Sets [`time`](Self::time).
    pub fn time(mut self, name: impl Into<String>) -> Self {
        self.time = Some(name.into());
        self
    }

    /// The log has no time field: entries are timed when read.
    pub fn without_time(mut self) -> Self {
        self.time = None;
        self
    }
}

impl Default for JsonFields {
    fn default() -> Self {
        Self {
            status: "status".into(),
            latency: Some("request_time".into()),
            latency_unit: TimeUnit::Seconds,
            time: Some("time".into()),
        }
    }
}

/// How the access log's lines are written.
///
/// ```
/// use rollback_metrics::{JsonFields, LogFormat, TimeUnit};
/// // nginx: log_format timed '$remote_addr - $remote_user [$time_local] "$request" $status '
/// //                         '$body_bytes_sent "$http_referer" "$http_user_agent" $request_time';
/// let nginx = LogFormat::CommonOrCombined { request_time: Some(TimeUnit::Seconds) };
/// // pino-http: {"time":1700000000000,"res":{"statusCode":200},"responseTime":12}
/// let pino = LogFormat::JsonLines(
///     JsonFields::new()
///         .status("res.statusCode")
///         .latency("responseTime", TimeUnit::Milliseconds)
///         .time("time"),
/// );
/// assert_ne!(nginx, pino);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// NCSA common log format, or combined (common plus quoted referer and user agent):
    /// Apache's `common`/`combined`, nginx's default `combined`. With `request_time`, the
    /// last field of the line is the request's duration in that unit (nginx
    /// `... "$http_user_agent" $request_time`, Apache `... %D`); without, latency is not
    /// measured.
    CommonOrCombined {
        /// The unit of a trailing request-time field, when the log has one.
        request_time: Option<TimeUnit>,
    },
    /// One JSON object per line, fields named by [`JsonFields`].
    JsonLines(JsonFields),
}

impl LogFormat {
    fn name(&self) -> &'static str {
        match self {
            LogFormat::CommonOrCombined { .. } => "common/combined log format",
            LogFormat::JsonLines(_) => "JSON lines",
        }
    }

    /// One line's entry; `None` when the line is not in this format.
    fn parse(&self, line: &[u8]) -> Option<Parsed> {
        match self {
            LogFormat::CommonOrCombined { request_time } => parse_clf(line, *request_time),
            LogFormat::JsonLines(fields) => parse_json(line, fields),
        }
    }
}

/// What one line says.
#[derive(Clone, Debug, PartialEq)]
struct Parsed {
    at: Option<DateTime<Utc>>,
    status: u16,
    latency: Option<Duration>,
}

fn parse_clf_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%d/%b/%Y:%H:%M:%S %z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn parse_clf(line: &[u8], request_time: Option<TimeUnit>) -> Option<Parsed> {
    let line = std::str::from_utf8(line).ok()?;
    // host ident user [time] "request" status bytes ["referer" "agent"] [request-time]
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let at = parse_clf_time(&line[open + 1..close]);
    let rest = line[close + 1..].trim_start();
    let rest = rest.strip_prefix('"')?;
    // The request line ends at the first quote that is not escaped.
    let mut end = None;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => {
                end = Some(i);
                break;
            }
            _ => escaped = false,
        }
    }
    let rest = &rest[end? + 1..];
    let mut tokens = rest.split_whitespace();
    let status: u16 = tokens.next()?.parse().ok()?;
    if !(100..=999).contains(&status) {
        return None;
    }
    let bytes = tokens.next()?;
    if bytes != "-" && bytes.parse::<u64>().is_err() {
        return None;
    }
    let latency = request_time.and_then(|unit| {
        let last = rest.split_whitespace().skip(2).last()?;
        let value: f64 = last.trim_matches('"').parse().ok()?;
        (value >= 0.0).then(|| unit.duration(value)).flatten()
    });
    Some(Parsed { at, status, latency })
}

fn lookup<'a>(object: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    if let Some(v) = object.get(name) {
        return Some(v);
    }
    name.split('.').try_fold(object, |v, part| v.get(part))
}

fn number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_json(line: &[u8], fields: &JsonFields) -> Option<Parsed> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    if !value.is_object() {
        return None;
    }
    let status = number(lookup(&value, &fields.status)?)?;
    if !(100.0..=999.0).contains(&status) || status.fract() != 0.0 {
        return None;
    }
    let latency = fields
        .latency
        .as_deref()
        .and_then(|name| lookup(&value, name))
        .and_then(number)
        .filter(|v| *v >= 0.0)
        .and_then(|v| fields.latency_unit.duration(v));
    let at = fields
        .time
        .as_deref()
        .and_then(|name| lookup(&value, name))
        .and_then(|t| match t {
            serde_json::Value::String(s) => DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
                .or_else(|| parse_clf_time(s)),
            serde_json::Value::Number(n) => {
                let v = n.as_f64()?;
                let millis = if v > 1e11 { v } else { v * 1e3 };
                DateTime::from_timestamp_millis(millis as i64)
            }
            _ => None,
        });
    Some(Parsed {
        at,
        status: status as u16,
        latency,
    })
}

/// One request in the window.
#[derive(Clone, Copy, Debug)]
struct Entry {
    at: DateTime<Utc>,
    failed: bool,
    latency: Option<Duration>,
}

/// The longest line kept while waiting for its newline; longer ones are dropped.
const MAX_LINE: usize = 64 * 1024;
/// The most read in one poll; the rest waits for the next.
const MAX_READ_PER_POLL: u64 = 256 * 1024 * 1024;

/// An open file being read, where it was left.
struct Tail {
    file: File,
    id: (u64, u64),
    offset: u64,
    partial: Vec<u8>,
    /// Started in the middle of the file: the first (partial) line is not ours.
    skip_first: bool,
    oversized: bool,
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

impl Tail {
    /// Reads every complete line added since the last call. A file now shorter than where
    /// reading stopped was truncated in place (copytruncate): reading restarts at its start.
    fn drain(&mut self, on_line: &mut dyn FnMut(&[u8])) -> std::io::Result<()> {
        let len = self.file.metadata()?.len();
        if len < self.offset {
            tracing::info!(
                from = self.offset,
                to = len,
                "access log truncated in place (copytruncate): reading from its start"
            );
            self.offset = 0;
            self.partial.clear();
            self.skip_first = false;
            self.oversized = false;
        }
        if len == self.offset {
            return Ok(());
        }
        self.file.seek(SeekFrom::Start(self.offset))?;
        let mut reader = (&mut self.file).take(MAX_READ_PER_POLL);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            self.offset += n as u64;
            let mut chunk = &buf[..n];
            while let Some(nl) = chunk.iter().position(|b| *b == b'\n') {
                let (head, tail) = chunk.split_at(nl);
                chunk = &tail[1..];
                if self.oversized || self.skip_first {
                    self.oversized = false;
                    self.skip_first = false;
                    self.partial.clear();
                    continue;
                }
                if self.partial.is_empty() {
                    on_line(trim_cr(head));
                } else {
                    self.partial.extend_from_slice(head);
                    let line = std::mem::take(&mut self.partial);
                    on_line(trim_cr(&line));
                }
            }
            if !self.oversized {
                self.partial.extend_from_slice(chunk);
                if self.partial.len() > MAX_LINE {
                    tracing::warn!(max = MAX_LINE, "an access-log line is too long: skipped");
                    self.partial.clear();
                    self.oversized = true;
                }
            }
        }
        Ok(())
    }

    /// The unterminated last line, when the writer has moved on to another file.
    fn flush(&mut self, on_line: &mut dyn FnMut(&[u8])) {
        if !self.partial.is_empty() && !self.oversized && !self.skip_first {
            let line = std::mem::take(&mut self.partial);
            on_line(trim_cr(&line));
        }
    }
}

/// The line without its `\r` and without leading NUL bytes (a writer without `O_APPEND`
/// keeps its offset across a copytruncate and leaves a hole of zeros before its next line).
fn trim_cr(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let start = line.iter().position(|b| *b != 0).unwrap_or(line.len());
    &line[start..]
}

/// Follows one path through rotations.
struct Follower {
    path: PathBuf,
    backlog: u64,
    current: Option<Tail>,
    /// The file the path named before a rotation: drained once more on the next poll, for
    /// what its writer wrote before it reopened the log.
    previous: Option<Tail>,
    /// An earlier poll found no file: when one appears, all of it is new.
    was_missing: bool,
}

impl Follower {
    fn io(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> MetricsError + '_ {
        move |source| MetricsError::LogIo {
            path: self.path.clone(),
            action,
            source,
        }
    }

    fn open(&self, first: bool) -> Result<Option<Tail>, MetricsError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("open")(e)),
        };
        let meta = file.metadata().map_err(self.io("stat"))?;
        let offset = if first {
            meta.len().saturating_sub(self.backlog)
        } else {
            0
        };
        // Starting mid-file: the line under the start is not whole unless a newline ends
        // just before it.
        let mut file = file;
        let skip_first = offset > 0 && {
            let mut before = [0u8; 1];
            file.seek(SeekFrom::Start(offset - 1))
                .and_then(|_| file.read_exact(&mut before))
                .map_err(self.io("read"))?;
            before[0] != b'\n'
        };
        Ok(Some(Tail {
            file,
            id: file_id(&meta),
            offset,
            partial: Vec::new(),
            skip_first,
            oversized: false,
        }))
    }

    fn poll(&mut self, on_line: &mut dyn FnMut(&[u8])) -> Result<(), MetricsError> {
        if let Some(mut old) = self.previous.take() {
            old.drain(on_line).map_err(self.io("read"))?;
            old.flush(on_line);
        }
        let Some(mut tail) = self.current.take() else {
            match self.open(!self.was_missing)? {
                // The first poll only finds where to start (and reads the backlog).
                Some(mut tail) => {
                    tail.drain(on_line).map_err(self.io("read"))?;
                    self.current = Some(tail);
                    return Ok(());
                }
                None => {
                    self.was_missing = true;
                    return Err(MetricsError::LogMissing {
                        path: self.path.clone(),
                    });
                }
            }
        };
        let drained = tail.drain(on_line).map_err(self.io("read"));
        if let Err(e) = drained {
            self.current = Some(tail);
            return Err(e);
        }
        let renamed = match std::fs::metadata(&self.path) {
            Ok(meta) => file_id(&meta) != tail.id,
            // Rotated away and not yet re-created: keep reading the open file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                self.current = Some(tail);
                return Err(self.io("stat")(e));
            }
        };
        if !renamed {
            self.current = Some(tail);
            return Ok(());
        }
        match self.open(false)? {
            Some(mut fresh) => {
                tracing::info!(path = %self.path.display(), "access log rotated: following the new file");
                self.previous = Some(tail);
                let read = fresh.drain(on_line).map_err(self.io("read"));
                self.current = Some(fresh);
                read
            }
            None => {
                self.current = Some(tail);
                Ok(())
            }
        }
    }
}

/// The window and what reads into it.
struct State {
    follower: Follower,
    entries: VecDeque<Entry>,
    skipped_total: u64,
}

/// Builds an [`AccessLogMetrics`]; see [`AccessLogMetrics::builder`].
///
/// ```
/// use rollback_metrics::{AccessLogMetrics, MetricsError};
/// let zero = AccessLogMetrics::builder("/var/log/nginx/access.log").window(std::time::Duration::ZERO).build();
/// assert!(matches!(zero, Err(MetricsError::InvalidConfig(_))));
/// ```
#[derive(Clone, Debug)]
pub struct AccessLogMetricsBuilder {
    path: PathBuf,
    format: LogFormat,
    window: Duration,
    backlog: u64,
    timeout: Duration,
    max_entries: usize,
}

impl AccessLogMetricsBuilder {
    /// A builder for the log at `path`: common/combined format without request time, a
    /// 10 min window, no backlog, a 5 s timeout, at most 1,000,000 entries.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            format: LogFormat::CommonOrCombined { request_time: None },
            window: Duration::from_secs(600),
            backlog: 0,
            timeout: Duration::from_secs(5),
            max_entries: 1_000_000,
        }
    }

    /// How the lines are written (default: common/combined, no request time).
    pub fn format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }

    /// The sliding window the rates are over (default 10 min, the runbook's error-rate
    /// window). Entries are placed by their own timestamp when the line has one, else by
    /// when they were read.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// On the first read, also read up to this many bytes already in the file (default 0:
    /// only what is written after the first sample counts, like `tail -f`). Entries older
    /// than the window by their own timestamps are dropped anyway. A log that does not exist
    /// yet at the first sample is read from its start once it appears.
    pub fn backlog(mut self, bytes: u64) -> Self {
        self.backlog = bytes;
        self
    }

    /// How long one sample may spend reading (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most requests the window keeps (default 1,000,000; the oldest go first, so at
    /// higher rates the window is shorter than configured, and a warning says so).
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max;
        self
    }

    /// The source. Nothing is opened yet: the first sample opens the file.
    pub fn build(self) -> Result<AccessLogMetrics, MetricsError> {
        if self.window.is_zero() {
            return Err(MetricsError::InvalidConfig(
                "the window must be above zero".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(MetricsError::InvalidConfig(
                "the timeout must be above zero".into(),
            ));
        }
        if self.max_entries == 0 {
            return Err(MetricsError::InvalidConfig(
                "max_entries must be above zero".into(),
            ));
        }
        if let LogFormat::JsonLines(f) = &self.format {
            if f.status.is_empty() {
                return Err(MetricsError::InvalidConfig(
                    "the JSON status field name is empty".into(),
                ));
            }
        }
        let state = State {
            follower: Follower {
                path: self.path.clone(),
                backlog: self.backlog,
                current: None,
                previous: None,
                was_missing: false,
            },
            entries: VecDeque::new(),
            skipped_total: 0,
        };
        Ok(AccessLogMetrics {
            config: Arc::new(self),
            state: Arc::new(Mutex::new(state)),
        })
    }
}

/// A [`MetricsSource`] over an access log: each sample reads the lines added since the last
/// one and reports, over the sliding window, the error rate (responses with status 500 and
/// above over all responses) and the latency p95 (nearest rank; `None` when the format has
/// no request time). A window with no requests gives `None` for both: nothing measured.
///
/// The file is followed through rotation: renamed away and re-created (logrotate's default;
/// the old file is read to its end, once more on the next sample for what the writer wrote
/// before reopening), and truncated in place (logrotate's `copytruncate`; lines written
/// between logrotate's copy and its truncation are lost to every reader, this one too). A
/// line that does not parse is skipped and counted in the log; when every line read by a
/// sample is skipped and the window is empty, the sample fails with
/// [`MetricsError::LogUnparseable`] naming the format, so a wrong format is not silent.
/// Lines are never logged (they hold URLs, which may hold tokens).
///
/// The sampled app's name is not used: one source reads one app's log.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use rollback_core::{AppName, MetricsSource};
/// use rollback_metrics::{AccessLogMetrics, LogFormat, TimeUnit};
/// let log = AccessLogMetrics::builder("/var/log/nginx/shop.access.log")
///     .format(LogFormat::CommonOrCombined { request_time: Some(TimeUnit::Seconds) })
///     .window(std::time::Duration::from_secs(600))
///     .build()?;
/// let sample = log.sample(&AppName::from("shop")).await?;
/// tracing::info!(error_rate = ?sample.error_rate, p95 = ?sample.latency_p95, "shop");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AccessLogMetrics {
    config: Arc<AccessLogMetricsBuilder>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for AccessLogMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogMetrics")
            .field("path", &self.config.path)
            .field("format", &self.config.format.name())
            .field("window", &self.config.window)
            .finish_non_exhaustive()
    }
}

impl AccessLogMetrics {
    /// A builder for the log at `path`: [`AccessLogMetricsBuilder::new`].
    ///
    /// ```
    /// use rollback_metrics::{AccessLogMetrics, JsonFields, LogFormat};
    /// let log = AccessLogMetrics::builder("/var/log/shop/access.jsonl")
    ///     .format(LogFormat::JsonLines(JsonFields::default()))
    ///     .window(std::time::Duration::from_secs(300))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(log.path(), std::path::Path::new("/var/log/shop/access.jsonl"));
    /// ```
    pub fn builder(path: impl Into<PathBuf>) -> AccessLogMetricsBuilder {
        AccessLogMetricsBuilder::new(path)
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Reads what was added and returns the window's error rate and latency p95.
    pub async fn read(&self) -> Result<MetricsSample, MetricsError> {
        Ok(self.read_window().await?.sample())
    }

    /// Reads what was added and returns what the window holds, with the counts behind the
    /// rates.
    pub async fn read_window(&self) -> Result<WindowStats, MetricsError> {
        let config = Arc::clone(&self.config);
        let state = Arc::clone(&self.state);
        let task = tokio::task::spawn_blocking(move || {
            let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            read_into(&config, &mut state, Utc::now())
        });
        match tokio::time::timeout(self.config.timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(MetricsError::Task(e)),
            Err(_) => Err(MetricsError::LogTimeout {
                path: self.config.path.clone(),
                after: self.config.timeout,
            }),
        }
    }
}

/// What an access log's window holds after a read.
///
/// ```
/// use rollback_metrics::WindowStats;
/// let stats = WindowStats { requests: 20, errors: 3, latency_p95: None, skipped_lines: 0 };
/// assert_eq!(stats.error_rate(), Some(0.15));
/// assert_eq!(WindowStats::default().error_rate(), None); // no requests: nothing measured
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Requests in the window.
    pub requests: usize,
    /// Of which answered with a status of 500 or above.
    pub errors: usize,
    /// The 95th percentile of their request times (nearest rank), when the log has them.
    pub latency_p95: Option<Duration>,
    /// Lines skipped as not in the format, since the source was built.
    pub skipped_lines: u64,
}

impl WindowStats {
    /// `errors / requests`; `None` without requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }

    /// As a [`MetricsSample`] (memory and CPU `None`).
    pub fn sample(&self) -> MetricsSample {
        MetricsSample {
            error_rate: self.error_rate(),
            latency_p95: self.latency_p95,
            ..MetricsSample::default()
        }
    }
}

fn read_into(
    config: &AccessLogMetricsBuilder,
    state: &mut State,
    now: DateTime<Utc>,
) -> Result<WindowStats, MetricsError> {
    let State {
        follower,
        entries,
        skipped_total,
    } = state;
    let (mut read, mut skipped) = (0usize, 0usize);
    let mut overflow = false;
    let mut on_line = |line: &[u8]| {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        read += 1;
        match config.format.parse(line) {
            Some(p) => {
                entries.push_back(Entry {
                    at: p.at.unwrap_or(now),
                    failed: p.status >= 500,
                    latency: p.latency,
                });
                if entries.len() > config.max_entries {
                    entries.pop_front();
                    overflow = true;
                }
            }
            None => skipped += 1,
        }
    };
    follower.poll(&mut on_line)?;
    if overflow {
        tracing::warn!(
            max = config.max_entries,
            "access-log window full: the oldest requests were dropped before the window ended"
        );
    }
    let window = chrono::Duration::from_std(config.window).unwrap_or(chrono::Duration::MAX);
    let cutoff = now.checked_sub_signed(window).unwrap_or(DateTime::<Utc>::MIN_UTC);
    while entries.front().is_some_and(|e| e.at < cutoff) {
        entries.pop_front();
    }
    let in_window = || entries.iter().filter(|e| e.at >= cutoff);
    let total = in_window().count();
    *skipped_total += skipped as u64;
    if skipped > 0 {
        tracing::warn!(
            path = %config.path.display(),
            skipped,
            read,
            format = config.format.name(),
            "access-log lines that do not parse were skipped"
        );
        if skipped == read && total == 0 {
            return Err(MetricsError::LogUnparseable {
                path: config.path.clone(),
                format: config.format.name(),
                lines: skipped,
            });
        }
    }
    let mut latencies: Vec<Duration> = in_window().filter_map(|e| e.latency).collect();
    Ok(WindowStats {
        requests: total,
        errors: in_window().filter(|e| e.failed).count(),
        latency_p95: p95(&mut latencies),
        skipped_lines: *skipped_total,
    })
}

/// The 95th percentile by nearest rank.
fn p95(values: &mut [Duration]) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (values.len() * 95).div_ceil(100);
    values.get(rank.saturating_sub(1)).copied()
}

#[async_trait]
impl MetricsSource for AccessLogMetrics {
    async fn sample(&self, _app: &AppName) -> Result<MetricsSample, AdapterError> {
        Ok(self.read().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_and_combined_lines() {
        let clf = LogFormat::CommonOrCombined {
            request_time: Some(TimeUnit::Seconds),
        };
        let p = clf
            .parse(br#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326"#)
            .unwrap();
        assert_eq!(p.status, 200);
        assert_eq!(p.latency, None);
        assert_eq!(p.at.unwrap().to_rfc3339(), "2000-10-10T20:55:36+00:00");
        let p = clf
            .parse(
                br#"::1 - - [10/Oct/2000:13:55:36 +0000] "GET /q?x=\"y\" HTTP/1.1" 503 - "http://r/" "Mozilla/5.0 (X11)" 0.250"#,
            )
            .unwrap();
        assert_eq!((p.status, p.latency), (503, Some(Duration::from_millis(250))));
        let no_time = LogFormat::CommonOrCombined { request_time: None };
        assert!(no_time
            .parse(br#"h - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "curl" 0.1"#)
            .is_some_and(|p| p.latency.is_none()));
        assert!(clf.parse(b"garbage").is_none());
        assert!(clf
            .parse(br#"h - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" abc 5"#)
            .is_none());
    }

    #[test]
    fn json_lines_with_nested_and_flat_names() {
        let fields = JsonFields {
            status: "http.status".into(),
            latency: Some("duration_ms".into()),
            latency_unit: TimeUnit::Milliseconds,
            time: Some("ts".into()),
        };
        let f = LogFormat::JsonLines(fields);
        let p = f
            .parse(br#"{"http":{"status":"502"},"duration_ms":12.5,"ts":"2024-01-02T03:04:05Z"}"#)
            .unwrap();
        assert_eq!((p.status, p.latency), (502, Some(Duration::from_micros(12_500))));
        assert_eq!(p.at.unwrap().to_rfc3339(), "2024-01-02T03:04:05+00:00");
        let p = f.parse(br#"{"http.status":200,"ts":1700000000}"#).unwrap();
        assert_eq!((p.status, p.latency), (200, None));
        assert_eq!(p.at.unwrap().timestamp(), 1_700_000_000);
        assert!(f.parse(br#"{"status":200}"#).is_none());
        assert!(f.parse(b"[1,2]").is_none());
    }

    #[test]
    fn p95_is_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(p95(&mut v), Some(Duration::from_millis(95)));
        let mut one = vec![Duration::from_millis(7)];
        assert_eq!(p95(&mut one), Some(Duration::from_millis(7)));
        assert_eq!(p95(&mut []), None);
    }
}
