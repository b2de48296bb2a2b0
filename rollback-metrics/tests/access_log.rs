//! `AccessLogMetrics` on real files that the test appends to, rotates (rename + new file, and
//! copytruncate) and truncates, as nginx, Apache and logrotate do.

use rollback_core::{
    AppName, Condition, ErrorKind, MetricsSource, Rule, Scope, Signal, Watchdog, WatchdogEvent,
};
use rollback_metrics::{AccessLogMetrics, JsonFields, LogFormat, MetricsError, TimeUnit, WindowStats};
use rollback_testkit::Rig;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const COMBINED_TIMED: LogFormat = LogFormat::CommonOrCombined {
    request_time: Some(TimeUnit::Seconds),
};

/// A combined-format line (nginx's `combined` plus `$request_time`), timed now.
fn combined(status: u16, millis: u64) -> String {
    let now = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S %z");
    format!(
        "203.0.113.7 - - [{now}] \"GET /api/orders?token=s3cret HTTP/1.1\" {status} 512 \"-\" \"Mozilla/5.0 (X11; Linux)\" {}.{:03}\n",
        millis / 1000,
        millis % 1000
    )
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the log for appending")
}

fn write_lines(file: &mut File, lines: impl IntoIterator<Item = String>) {
    for line in lines {
        file.write_all(line.as_bytes()).expect("append");
    }
    file.flush().expect("flush");
}

async fn stats(log: &AccessLogMetrics) -> WindowStats {
    log.read_window().await.expect("the log reads")
}

#[tokio::test]
async fn appended_lines_give_error_rate_and_p95_and_a_partial_line_waits_for_its_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("access.log");
    let mut writer = append(&path);
    write_lines(&mut writer, (0..5).map(|_| combined(200, 1)));
    let log = AccessLogMetrics::builder(&path)
        .format(COMBINED_TIMED)
        .window(Duration::from_secs(60))
        .build()
        .expect("valid");

    // Like `tail -f`: what was there before the first read is not counted (backlog 0).
    assert_eq!(stats(&log).await, WindowStats::default());
    let sample = log.sample(&AppName::from("shop")).await.expect("sample");
    assert_eq!(
        (sample.error_rate, sample.latency_p95),
        (None, None),
        "no requests: nothing measured"
    );

    // 20 requests, 1..=20 ms, the 4th and 17th failed.
    write_lines(
        &mut writer,
        (1..=20).map(|i| combined(if i == 4 || i == 17 { 502 } else { 200 }, i)),
    );
    let s = stats(&log).await;
    assert_eq!((s.requests, s.errors), (20, 2));
    assert_eq!(s.error_rate(), Some(0.1));
    assert_eq!(
        s.latency_p95,
        Some(Duration::from_millis(19)),
        "nearest rank: the 19th of 20"
    );

    // Half a line: not counted until its newline arrives.
    let line = combined(503, 400);
    let (head, tail) = line.split_at(40);
    write_lines(&mut writer, [head.to_string()]);
    assert_eq!(stats(&log).await.requests, 20);
    write_lines(&mut writer, [tail.to_string()]);
    let s = stats(&log).await;
    assert_eq!((s.requests, s.errors), (21, 3));
    assert_eq!(s.latency_p95, Some(Duration::from_millis(20)));

    // A backlog reads what was there, skipping the cut first line.
    let backlog = AccessLogMetrics::builder(&path)
        .format(COMBINED_TIMED)
        .backlog(3 * combined(200, 1).len() as u64 - 10)
        .build()
        .expect("valid");
    assert_eq!(
        stats(&backlog).await.requests,
        2,
        "3 lines' bytes minus 10: the last 2 whole lines"
    );
}

#[tokio::test]
async fn rename_rotation_is_followed_and_nothing_is_lost_or_counted_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    File::create(&path).expect("create");
    let log = AccessLogMetrics::builder(&path)
        .format(COMBINED_TIMED)
        .window(Duration::from_secs(300))
        .build()
        .expect("valid");
    assert_eq!(stats(&log).await.requests, 0);

    // A writer thread appends 600 lines, 2 ms apart, while the test samples every 25 ms.
    // Half way, logrotate renames the file; the writer goes on writing 50 lines into the
    // renamed file (nginx until it gets USR1), then reopens the path, creating a new file.
    // Exactly the 50 lines written into the renamed file after the rename are 500s.
    let writer_path = path.clone();
    let writer_rotated = rotated.clone();
    let writer = std::thread::spawn(move || {
        let mut file = append(&writer_path);
        for i in 0..600 {
            if i == 300 {
                std::fs::rename(&writer_path, &writer_rotated).expect("rotate");
            }
            if i == 350 {
                file = append(&writer_path);
            }
            let status = if (300..350).contains(&i) { 500 } else { 200 };
            write_lines(&mut file, [combined(status, 5)]);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut samples = 0;
    while !writer.is_finished() {
        let s = stats(&log).await;
        assert!(s.requests <= 600, "{s:?}");
        samples += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    writer.join().expect("the writer finished");
    // Once more for the rest, and once more for the renamed file's last lines.
    stats(&log).await;
    let s = stats(&log).await;
    assert_eq!(
        (s.requests, s.errors),
        (600, 50),
        "after {samples} samples: {s:?}"
    );
    assert_eq!(s.skipped_lines, 0);

    // A second rotation, with the new file created before the next sample: the old file's
    // tail is still read.
    let mut file = append(&path);
    write_lines(&mut file, (0..10).map(|_| combined(200, 5)));
    std::fs::rename(&path, &rotated).expect("rotate again");
    write_lines(&mut file, (0..10).map(|_| combined(500, 5)));
    let mut fresh = append(&path);
    write_lines(&mut fresh, (0..5).map(|_| combined(200, 5)));
    let s = stats(&log).await;
    assert_eq!((s.requests, s.errors), (625, 60), "{s:?}");
}

#[tokio::test]
async fn copytruncate_is_followed_with_and_without_o_append_writers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("access.log");
    File::create(&path).expect("create");
    let log = AccessLogMetrics::builder(&path)
        .format(COMBINED_TIMED)
        .build()
        .expect("valid");
    stats(&log).await;

    // An O_APPEND writer (nginx, most loggers): after the truncation it writes at the start.
    let mut writer = append(&path);
    write_lines(&mut writer, (0..40).map(|_| combined(200, 5)));
    assert_eq!(stats(&log).await.requests, 40);
    std::fs::copy(&path, dir.path().join("access.log.1")).expect("copy");
    OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(0))
        .expect("truncate in place");
    write_lines(&mut writer, (0..10).map(|_| combined(500, 5)));
    let s = stats(&log).await;
    assert_eq!((s.requests, s.errors), (50, 10), "{s:?}");

    // A writer without O_APPEND keeps its offset: after the truncation its next line lands
    // past a hole of NUL bytes, where the reader left off.
    drop(writer);
    let path2 = dir.path().join("plain.log");
    let mut plain = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path2)
        .expect("open without append");
    let log2 = AccessLogMetrics::builder(&path2)
        .format(COMBINED_TIMED)
        .build()
        .expect("valid");
    stats(&log2).await;
    write_lines(&mut plain, (0..30).map(|_| combined(200, 5)));
    assert_eq!(stats(&log2).await.requests, 30);
    OpenOptions::new()
        .write(true)
        .open(&path2)
        .and_then(|f| f.set_len(0))
        .expect("truncate in place");
    write_lines(&mut plain, (0..3).map(|_| combined(504, 5)));
    let s = stats(&log2).await;
    assert_eq!((s.requests, s.errors), (33, 3), "{s:?}");
    assert_eq!(s.skipped_lines, 0, "the NUL hole is not a line");
}

#[tokio::test]
async fn json_lines_with_configured_fields_slide_out_of_the_window() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("access.jsonl");
    File::create(&path).expect("create");
    let log = AccessLogMetrics::builder(&path)
        .format(LogFormat::JsonLines(
            JsonFields::new()
                .status("res.statusCode")
                .latency("responseTime", TimeUnit::Milliseconds)
                .time("time"),
        ))
        .window(Duration::from_secs(2))
        .build()
        .expect("valid");
    stats(&log).await;

    let mut writer = append(&path);
    let now = chrono::Utc::now();
    let old = (now - chrono::Duration::seconds(120)).to_rfc3339();
    // Two minutes old by their own timestamps: outside the window at once.
    write_lines(
        &mut writer,
        (0..5)
            .map(|_| format!("{{\"time\":\"{old}\",\"res\":{{\"statusCode\":500}},\"responseTime\":900}}\n")),
    );
    // Timed by epoch milliseconds, and untimed (placed when read).
    write_lines(
        &mut writer,
        (1..=8).map(|i| {
            format!(
                "{{\"time\":{},\"res\":{{\"statusCode\":{}}},\"responseTime\":{}}}\n",
                now.timestamp_millis(),
                if i == 8 { 503 } else { 200 },
                i * 10
            )
        }),
    );
    write_lines(
        &mut writer,
        ["{\"res\":{\"statusCode\":\"201\"},\"responseTime\":\"5.5\"}\n".to_string()],
    );
    write_lines(&mut writer, ["not json at all\n".to_string()]);
    let s = stats(&log).await;
    assert_eq!((s.requests, s.errors, s.skipped_lines), (9, 1, 1), "{s:?}");
    assert_eq!(s.latency_p95, Some(Duration::from_millis(80)));

    // The window slides: 2.2 s later, nothing is left in it.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let s = stats(&log).await;
    assert_eq!(s.requests, 0, "{s:?}");
    assert_eq!(s.error_rate(), None);
}

#[tokio::test]
async fn a_missing_log_or_a_wrong_format_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = AccessLogMetrics::builder(dir.path().join("nope.log"))
        .build()
        .expect("valid");
    let err = missing.read().await.expect_err("missing");
    assert!(matches!(err, MetricsError::LogMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.log"), "{err}");
    let adapter = missing.sample(&AppName::from("shop")).await.expect_err("missing");
    assert_eq!(adapter.kind(), ErrorKind::NotFound);
    // Once it appears, all of it is new: read from its start.
    write_lines(
        &mut append(&dir.path().join("nope.log")),
        (0..4).map(|_| combined(200, 5)),
    );
    assert_eq!(stats(&missing).await.requests, 4);

    let path = dir.path().join("access.log");
    File::create(&path).expect("create");
    let json = AccessLogMetrics::builder(&path)
        .format(LogFormat::JsonLines(JsonFields::default()))
        .build()
        .expect("valid");
    stats(&json).await;
    write_lines(&mut append(&path), (0..3).map(|_| combined(200, 5)));
    let err = json.read().await.expect_err("wrong format");
    assert!(
        matches!(err, MetricsError::LogUnparseable { lines: 3, .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        !err.to_string().contains("s3cret"),
        "lines are never shown: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_error_rate_rule_fires_on_an_access_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("access.log");
    File::create(&path).expect("create");
    // The runbook's window is 10 min; 2 s here, polled every 250 ms, to keep the test short.
    let window = Duration::from_secs(2);
    let log = AccessLogMetrics::builder(&path)
        .format(COMBINED_TIMED)
        .window(Duration::from_secs(5))
        .build()
        .expect("valid");
    let rig = Rig::new();
    let orchestrator = Arc::new(rig.orchestrator().build().expect("orchestrator"));
    orchestrator.checkpoint("v1").await.expect("checkpoint");
    rig.deploy_bad_release(Scope::CODE);
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watchdog = Watchdog::builder(Arc::clone(&orchestrator))
        .metrics(Arc::new(log))
        .rules(vec![Rule::new(
            "error-rate",
            Condition::ErrorRateAbove(0.10),
            window,
            Signal::CompleteFailure,
        )])
        .interval(Duration::from_millis(250))
        .events(tx)
        .build()
        .expect("watchdog");
    let running = tokio::spawn(watchdog.run(async move {
        let _ = stopped.await;
    }));
    let mut writer = append(&path);
    // 3 s at 5% (1 in 20): nothing fires.
    for i in 0..60 {
        write_lines(&mut writer, [combined(if i % 20 == 19 { 500 } else { 200 }, 5)]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(events.try_recv().is_err(), "nothing fires at 5%");
    // Then 50%: it fires once the rate has been above 10% for the window.
    let started = tokio::time::Instant::now();
    let mut fired = None;
    for i in 0..200 {
        write_lines(&mut writer, [combined(if i % 2 == 0 { 500 } else { 200 }, 5)]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(WatchdogEvent::Fired { firing, .. }) = events.try_recv() {
            fired = Some((started.elapsed(), firing));
            break;
        }
    }
    let _ = stop.send(());
    running.await.expect("the watchdog ran");
    let (after, firing) = fired.expect("the rule fired");
    assert_eq!(firing.rule, "error-rate");
    assert!(
        after >= window,
        "fired after {after:?}, before the {window:?} window"
    );
    assert!(after < Duration::from_secs(6), "fired late: {after:?}");
}
