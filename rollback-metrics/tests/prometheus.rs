//! `PrometheusMetrics` against a real Prometheus: Debian's `prometheus` binary, started by
//! each test on a free port with a 1 s scrape interval, its own config and `--storage.tsdb.path`
//! in a temp dir, scraping a real HTTP app the test serves (its `/metrics` in the text format:
//! `http_requests_total{status=...}` and an `http_request_duration_seconds` histogram), loaded
//! by the test with a share of 500s it sets. Skipped loudly without the binary, a failure
//! under `ROLLBACK_REQUIRE_INTEGRATION=1`.

use async_trait::async_trait;
use rollback_core::{
    AdapterError, AppName, Condition, ErrorKind, MetricsSample, MetricsSource, Rule, Scope, Signal, Watchdog,
    WatchdogEvent,
};
use rollback_metrics::{MetricsError, PrometheusMetrics};
use rollback_testkit::{integration, Rig, APP};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------
// A Prometheus server of the test's own.

struct TempPrometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for TempPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus_binary() -> Option<PathBuf> {
    integration::find_on_path("prometheus").or_else(|| {
        let debian = PathBuf::from("/usr/bin/prometheus");
        integration::is_executable(&debian).then_some(debian)
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl TempPrometheus {
    /// Prometheus scraping `target` as job `job` every second. `None` after a loud skip when
    /// the binary is missing.
    async fn start(test: &str, job: &str, target: SocketAddr) -> Option<Self> {
        let Some(bin) = prometheus_binary() else {
            integration::unavailable(
                test,
                "prometheus (apt-get install prometheus; .ci/setup installs it)",
            );
            return None;
        };
        // A port taken between the probe and prometheus' bind makes it exit: try again.
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("a temp dir");
            let port = free_port();
            let target = if target.port() == 0 {
                format!("127.0.0.1:{port}")
            } else {
                target.to_string()
            };
            let config = format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: \"{job}\"\n    static_configs:\n      - targets: [\"{target}\"]\n"
            );
            std::fs::write(dir.path().join("prometheus.yml"), config).expect("write prometheus.yml");
            let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("create the log");
            let child = Command::new(&bin)
                .arg(format!(
                    "--config.file={}",
                    dir.path().join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--storage.tsdb.retention.time=1h")
                .arg("--log.level=warn")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{test}: cannot start {}: {e}", bin.display()));
            let mut prom = TempPrometheus { child, port, dir };
            if prom.wait_ready(Duration::from_secs(30)).await {
                return Some(prom);
            }
            last_log = prom.log();
        }
        panic!("{test}: prometheus did not become ready; its log:\n{last_log}");
    }

    async fn wait_ready(&mut self, within: Duration) -> bool {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("a client");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let ready = client.get(format!("{}/-/ready", self.url())).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------
// The app Prometheus scrapes: every request takes ~30 ms; a share of them (per mille, set by
// the test) answers 500, spread evenly (request i fails when floor((i+1)p) > floor(ip)).

const BOUNDS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
const WORK: Duration = Duration::from_millis(30);

#[derive(Default)]
struct Stats {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BOUNDS.len()],
    sum: f64,
    count: u64,
}

struct AppState {
    share_permille: AtomicU64,
    next: AtomicU64,
    stats: Mutex<Stats>,
}

struct TestApp {
    addr: SocketAddr,
    state: Arc<AppState>,
    server: JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    async fn start(share_permille: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the app");
        let addr = listener.local_addr().expect("the app's address");
        let state = Arc::new(AppState {
            share_permille: AtomicU64::new(share_permille),
            next: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
        });
        let shared = Arc::clone(&state);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(stream, Arc::clone(&shared)));
            }
        });
        TestApp { addr, state, server }
    }

    fn set_share(&self, permille: u64) {
        self.state.share_permille.store(permille, Ordering::SeqCst);
    }
}

async fn handle(mut stream: TcpStream, state: Arc<AppState>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if read != Ok(true) {
        return;
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, body) = if path == "/metrics" {
        (200, exposition(&state))
    } else {
        let started = Instant::now();
        let p = state.share_permille.load(Ordering::SeqCst);
        let i = state.next.fetch_add(1, Ordering::SeqCst);
        let fails = (i + 1) * p / 1000 > i * p / 1000;
        tokio::time::sleep(WORK).await;
        let status = if fails { 500 } else { 200 };
        let took = started.elapsed().as_secs_f64();
        let mut stats = state.stats.lock().expect("stats");
        *stats.by_status.entry(status).or_default() += 1;
        for (bucket, bound) in stats.buckets.iter_mut().zip(BOUNDS) {
            if took <= bound {
                *bucket += 1;
            }
        }
        stats.sum += took;
        stats.count += 1;
        (status, if fails { "boom\n" } else { "ok\n" }.to_string())
    };
    let reason = if status == 200 {
        "OK"
    } else {
        "Internal Server Error"
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The Prometheus text format. A status's series appears with its first request, as in real
/// client libraries: an app that never failed has no `status="500"` series at all.
fn exposition(state: &AppState) -> String {
    let stats = state.stats.lock().expect("stats");
    let mut out =
        String::from("# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\n");
    for (status, n) in &stats.by_status {
        out.push_str(&format!("http_requests_total{{status=\"{status}\"}} {n}\n"));
    }
    out.push_str("# HELP http_request_duration_seconds Request durations.\n");
    out.push_str("# TYPE http_request_duration_seconds histogram\n");
    for (bound, n) in BOUNDS.iter().zip(stats.buckets) {
        out.push_str(&format!(
            "http_request_duration_seconds_bucket{{le=\"{bound}\"}} {n}\n"
        ));
    }
    out.push_str(&format!(
        "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {c}\nhttp_request_duration_seconds_sum {s}\nhttp_request_duration_seconds_count {c}\n",
        c = stats.count,
        s = stats.sum
    ));
    out
}

/// Traffic: one request every 20 ms (50/s) until stopped, at most 5,000 requests.
struct Load {
    stop: Arc<AtomicBool>,
    task: JoinHandle<u64>,
}

impl Load {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut sent = 0u64;
            while !flag.load(Ordering::SeqCst) && sent < 5_000 {
                tick.tick().await;
                sent += 1;
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        let mut s = TcpStream::connect(addr).await?;
                        s.write_all(b"GET /api/orders HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
                            .await?;
                        let mut sink = Vec::new();
                        s.read_to_end(&mut sink).await?;
                        Ok::<_, std::io::Error>(())
                    })
                    .await;
                });
            }
            sent
        });
        Load { stop, task }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap_or(0)
    }
}

/// The source as the watchdog saw it: every sample, with when.
struct Recording {
    inner: PrometheusMetrics,
    seen: Mutex<Vec<(Instant, Result<MetricsSample, String>)>>,
}

#[async_trait]
impl MetricsSource for Recording {
    async fn sample(&self, app: &AppName) -> Result<MetricsSample, AdapterError> {
        let result = self.inner.sample(app).await;
        let shown = result.as_ref().map(Clone::clone).map_err(ToString::to_string);
        self.seen.lock().expect("seen").push((Instant::now(), shown));
        result
    }
}

// The runbook's error-rate rule is "above 10% for 10 minutes". Shortened here so that the
// test runs in well under a minute: the rule's window is 5 s (polled every second), and the
// queries' rate() window is 10 s instead of the default 1 min, so that the measured rate
// follows the app's share of 500s within seconds. The threshold is the runbook's, 10%.
const THRESHOLD: f64 = 0.10;
const RULE_WINDOW: Duration = Duration::from_secs(5);
const RATE_WINDOW: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_rate_rule_fires_above_the_threshold_for_its_window_and_not_below() {
    let test = "the_error_rate_rule_fires_above_the_threshold_for_its_window_and_not_below";
    let t0 = Instant::now();
    // 7% of requests fail: below the threshold.
    let app = TestApp::start(70).await;
    let Some(prom) = TempPrometheus::start(test, APP, app.addr).await else {
        return;
    };
    let load = Load::start(app.addr);
    let source = PrometheusMetrics::builder(prom.url())
        .selector(r#"job="$app""#)
        .rate_window(RATE_WINDOW)
        .timeout(Duration::from_millis(800))
        .build()
        .expect("a valid configuration");
    let app_name = AppName::from(APP);

    // Wait until Prometheus has both series twice, then until its rate window holds only
    // 7% traffic.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match source.read(&app_name).await {
            Ok(s) if s.error_rate.is_some() && s.latency_p95.is_some() => break,
            other => assert!(
                Instant::now() < deadline,
                "no error rate from Prometheus after 30 s: {other:?}\nprometheus log:\n{}",
                prom.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(RATE_WINDOW).await;
    source.check(&app_name).await.expect("every query answers");
    let ready_at = t0.elapsed();

    let rig = Rig::new();
    let orchestrator = Arc::new(rig.orchestrator().build().expect("the rig's orchestrator"));
    orchestrator.checkpoint("v1").await.expect("a good checkpoint");
    rig.deploy_bad_release(Scope::CODE);
    let recording = Arc::new(Recording {
        inner: source.clone(),
        seen: Mutex::new(Vec::new()),
    });
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watchdog = Watchdog::builder(Arc::clone(&orchestrator))
        .metrics(Arc::clone(&recording) as Arc<dyn MetricsSource>)
        .rules(vec![Rule::new(
            "error-rate",
            Condition::ErrorRateAbove(THRESHOLD),
            RULE_WINDOW,
            Signal::CompleteFailure,
        )])
        .interval(Duration::from_secs(1))
        .auto_rollback(true)
        .events(tx)
        .build()
        .expect("watchdog");
    let running = tokio::spawn(watchdog.run(async move {
        let _ = stopped.await;
    }));

    // Below the threshold for more than twice the window: nothing fires.
    tokio::time::sleep(RULE_WINDOW * 2 + Duration::from_secs(2)).await;
    let mut seen: Vec<(Instant, WatchdogEvent)> = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push((Instant::now(), e));
    }
    let below: Vec<(Instant, Result<MetricsSample, String>)> =
        recording.seen.lock().expect("seen").drain(..).collect();
    assert!(seen.is_empty(), "nothing fires at 7%: {seen:#?}");
    assert!(below.len() >= 10, "the watchdog polled every second: {below:#?}");
    for (_, sample) in &below {
        let sample = sample.as_ref().expect("every poll had a sample");
        let rate = sample.error_rate.expect("an error rate was measured");
        assert!((0.05..0.09).contains(&rate), "7% measured as {rate}");
        let p95 = sample.latency_p95.expect("a latency was measured");
        // 30 ms of work: the (25 ms, 50 ms] bucket, p95 interpolated within it, unless the
        // machine is slow enough to push some requests into the next one.
        assert!(
            p95 > Duration::from_millis(25) && p95 <= Duration::from_millis(100),
            "p95 {p95:?}"
        );
    }

    // Above it: 30% fail. The rule fires once the measured rate has been above 10% at every
    // poll for the whole window.
    app.set_share(300);
    let switched = Instant::now();
    let fired_at = loop {
        let e = tokio::time::timeout(Duration::from_secs(40), events.recv())
            .await
            .expect("the rule fired within 40 s of the share crossing the threshold")
            .expect("the watchdog is running");
        let fired = matches!(&e, WatchdogEvent::Fired { firing, .. } if firing.rule == "error-rate");
        seen.push((Instant::now(), e));
        if fired {
            break Instant::now();
        }
    };
    while !seen
        .iter()
        .any(|(_, e)| matches!(e, WatchdogEvent::RollbackStarted { .. }))
    {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("the firing started a rollback")
            .expect("the watchdog is running");
        seen.push((Instant::now(), e));
    }
    let above: Vec<(Instant, Result<MetricsSample, String>)> =
        recording.seen.lock().expect("seen").drain(..).collect();
    let _ = stop.send(());
    let run = running.await.expect("the watchdog ran");
    let sent = load.stop().await;

    // The polls from the first one above the threshold to the firing were all above it and
    // span at least the window.
    let breached: Vec<&(Instant, Result<MetricsSample, String>)> = above
        .iter()
        .filter(|(at, _)| *at <= fired_at)
        .skip_while(|(_, s)| {
            s.as_ref()
                .ok()
                .and_then(|s| s.error_rate)
                .is_none_or(|r| r <= THRESHOLD)
        })
        .collect();
    let (Some(first), Some(last)) = (breached.first(), breached.last()) else {
        panic!("no poll above the threshold before the firing: {above:#?}");
    };
    for (_, s) in &breached {
        let rate = s.as_ref().ok().and_then(|s| s.error_rate);
        assert!(rate.is_some_and(|r| r > THRESHOLD), "{rate:?} in {breached:#?}");
    }
    // (Timed here when each sample returned; the rule times its polls a moment later.)
    assert!(
        last.0.duration_since(first.0) >= RULE_WINDOW - Duration::from_millis(100),
        "fired after {:?} above the threshold, before the {RULE_WINDOW:?} window",
        last.0.duration_since(first.0)
    );
    assert!(fired_at.duration_since(switched) >= RULE_WINDOW);
    let fired = run
        .events
        .iter()
        .filter(|e| matches!(e, WatchdogEvent::Fired { .. }))
        .count();
    assert_eq!(fired, 1, "one incident, one firing: {:#?}", run.events);
    eprintln!(
        "prometheus ready with data after {ready_at:?}; fired {:?} after the share went to 30% \
         ({:?} above the threshold); {sent} requests; whole test {:?}",
        fired_at.duration_since(switched),
        last.0.duration_since(first.0),
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_without_data_is_a_typed_error_naming_the_query_and_what_to_check() {
    let test = "a_query_without_data_is_a_typed_error_naming_the_query_and_what_to_check";
    // Prometheus scraping itself: it has `up` and its own metrics, but no `http_requests_total`.
    let Some(prom) = TempPrometheus::start(test, "prometheus", "127.0.0.1:0".parse().expect("addr")).await
    else {
        return;
    };
    let app = AppName::from("shop");
    let up = PrometheusMetrics::builder(prom.url())
        .error_rate_query(r#"up{job="prometheus"}"#)
        .without_latency()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid");
    let deadline = Instant::now() + Duration::from_secs(20);
    while up.read(&app).await.ok().and_then(|s| s.error_rate) != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped itself:\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The default queries, on a selector that matches no request counter.
    let defaults = PrometheusMetrics::builder(prom.url())
        .selector(r#"job="$app""#)
        .build()
        .expect("valid");
    let err = defaults.read(&app).await.expect_err("no data");
    let MetricsError::NoData { what, query, .. } = &err else {
        panic!("not NoData: {err:?}");
    };
    assert_eq!(*what, "error rate");
    assert!(query.contains(r#"http_requests_total{job="shop"}"#), "{query}");
    let shown = err.to_string();
    for needle in [query.as_str(), "targets", "/metrics", r#"job="$app""#] {
        assert!(shown.contains(needle), "`{needle}` not in: {shown}");
    }
    let adapter = defaults.sample(&app).await.expect_err("no data");
    assert_eq!(adapter.kind(), ErrorKind::NotFound);
    assert!(adapter.message().contains("http_requests_total"), "{adapter}");

    // One query answers, the other has no data: the sample carries what answered, and the
    // strict check names the one that did not.
    let partial = PrometheusMetrics::builder(prom.url())
        .error_rate_query(r#"up{job="prometheus"}"#)
        .selector(r#"job="prometheus""#)
        .build()
        .expect("valid");
    let sample = partial.read(&app).await.expect("the error rate answered");
    assert_eq!((sample.error_rate, sample.latency_p95), (Some(1.0), None));
    let err = partial.check(&app).await.expect_err("latency has no data");
    assert!(
        matches!(
            err,
            MetricsError::NoData {
                what: "latency p95",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("http_request_duration_seconds_bucket"),
        "{err}"
    );

    // A query that does not aggregate, bad PromQL, and a range vector.
    let many = PrometheusMetrics::builder(prom.url())
        .error_rate_query("prometheus_http_requests_total")
        .without_latency()
        .build()
        .expect("valid");
    let err = many.check(&app).await.expect_err("many series");
    assert!(
        matches!(err, MetricsError::TooManySeries { count, .. } if count > 1),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    for bad in ["sum(rate(", "up[1m]"] {
        let q = PrometheusMetrics::builder(prom.url())
            .error_rate_query(bad)
            .without_latency()
            .build()
            .expect("valid");
        let err = q.check(&app).await.expect_err("refused");
        assert!(
            matches!(err, MetricsError::QueryRejected { .. }),
            "{bad}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}: {err}");
        assert!(err.to_string().contains(bad), "{err}");
    }
}

/// A server that answers every connection with `response`, or (`None`) never answers.
async fn fixed_server(response: Option<&'static str>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            match response {
                Some(r) => {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(r.as_bytes()).await;
                    let _ = s.shutdown().await;
                }
                None => held.push(s),
            }
        }
    });
    (addr, task)
}

#[tokio::test]
async fn unreachable_silent_and_foreign_servers_fail_with_their_kind() {
    let app = AppName::from("shop");
    let source = |url: String| {
        PrometheusMetrics::builder(url)
            .timeout(Duration::from_millis(300))
            .build()
            .expect("valid")
    };

    let closed = source(format!("http://127.0.0.1:{}", free_port()));
    let err = closed.read(&app).await.expect_err("nothing listens");
    assert!(matches!(err, MetricsError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);

    let (addr, silent_task) = fixed_server(None).await;
    let silent = source(format!("http://{addr}"));
    let started = Instant::now();
    let err = silent.read(&app).await.expect_err("no answer");
    assert!(matches!(err, MetricsError::Timeout { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    silent_task.abort();

    let (addr, task) = fixed_server(Some(
        "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
    ))
    .await;
    let err = source(format!("http://user:hunter2@{addr}/prefix"))
        .read(&app)
        .await
        .expect_err("404");
    assert!(
        matches!(err, MetricsError::HttpStatus { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(!err.to_string().contains("hunter2"), "{err}");
    task.abort();

    let (addr, task) = fixed_server(Some(
        "HTTP/1.1 200 OK\r\nContent-Length: 15\r\nConnection: close\r\n\r\n<html>hi</html>",
    ))
    .await;
    let err = source(format!("http://{addr}"))
        .read(&app)
        .await
        .expect_err("html");
    assert!(matches!(err, MetricsError::Malformed { .. }), "{err:?}");
    task.abort();
}
