//! The HTML incident record in a real browser: the report of a real rollback against the
//! fakes, written to a file and opened by Debian's chromium, headless. What chromium parsed
//! (its DOM) must hold the timeline, a bar per step, the downtime band and the outcome, and
//! nothing a report's text smuggled in; its screenshot must show the drawing.
//!
//! Needs `chromium` (or `chromium-browser`) on PATH: `.ci/setup` installs Debian's package.

use async_trait::async_trait;
use rollback_core::{
    sys::output_within, AdapterError, ErrorKind, Notice, Notifier, Outcome, RollbackReport, RollbackTarget,
    Scope, Step, StepOutcome,
};
use rollback_testkit::{
    integration, Fault, Method, RecordingNotifier, Rig, When, CANARY_CONFIG_SECRET, CANARY_DB_PASSWORD,
};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// How long one chromium run may take (a cold start on a loaded CI machine included).
const CHROMIUM_LIMIT: Duration = Duration::from_secs(120);
/// What the reason of the rollback smuggles in: it must come out as text.
const INJECTED: &str = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";

/// A notifier whose receiver is down: its notices are recorded as not delivered.
#[derive(Debug)]
struct DownReceiver;

#[async_trait]
impl Notifier for DownReceiver {
    async fn notify(&self, _notice: &Notice) -> Result<(), AdapterError> {
        Err(AdapterError::new(
            ErrorKind::Unavailable,
            "status page answered 503: try again later",
        ))
    }
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(integration::find_on_path)
}

/// A real rollback of the rig's bad v2 (database and code; config out of scope, so one step
/// is skipped), slowed where a real one spends its time so that the timeline has shape:
/// staging the snapshot while the app serves, the restore while it is down.
async fn rolled_back() -> RollbackReport {
    let rig = Rig::new();
    let o = rig
        .orchestrator()
        .notifier(RecordingNotifier::new())
        .notifier(DownReceiver)
        .build()
        .expect("an orchestrator");
    o.checkpoint("before v2").await.expect("a checkpoint");
    rig.deploy_bad_release(Scope::DATABASE_AND_CODE);
    for (method, ms) in [
        (Method::DbPrepareRestore, 300),
        (Method::DbRestore, 250),
        (Method::CodeActivate, 100),
    ] {
        rig.world
            .inject(method, When::Always, Fault::Delay(Duration::from_millis(ms)));
    }
    let mut report = o
        .rollback(
            RollbackTarget::LastGood,
            &format!("v2 broke checkout {INJECTED}"),
            Scope::DATABASE_AND_CODE,
        )
        .await
        .expect("the rollback runs");
    assert_eq!(report.outcome, Outcome::Succeeded, "{}", report.to_markdown());
    assert_eq!(report.steps.len(), 12, "{}", report.to_markdown());
    // What a team adds once the dust settles; markup here is text too.
    report.lessons_learned = format!("Stage migrations on a copy first. {INJECTED}");
    report
}

/// Runs chromium headless on `page` with `args`, its profile and caches in `home`.
async fn chromium_on(bin: &Path, home: &Path, page: &Path, args: &[String]) -> Output {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--headless=new")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--disable-extensions")
        .arg("--hide-scrollbars")
        .arg("--window-size=1200,1600")
        .arg(format!("--user-data-dir={}", home.join("profile").display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"));
    let out = output_within(&mut cmd, CHROMIUM_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
        .unwrap_or_else(|| panic!("chromium did not finish within {CHROMIUM_LIMIT:?} and was killed"));
    assert!(
        out.status.success(),
        "chromium {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `<section id="{id}">` of `dom`, failing the test when there is none.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id} in:\n{dom}"));
    let len = dom[start..].find("</section>").unwrap_or(dom.len() - start);
    &dom[start..start + len]
}

/// The screenshot's pixels as RGB triples, and its size.
fn pixels(png_bytes: Vec<u8>) -> (u32, u32, Vec<[u8; 3]>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    (info.width, info.height, rgb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_timeline_the_downtime_and_the_outcome() {
    const TEST: &str = "report_html::chromium_renders_the_timeline_the_downtime_and_the_outcome";
    let Some(bin) = chromium() else {
        integration::unavailable(TEST, "chromium (apt-get install chromium; see .ci/setup)");
        return;
    };
    let report = rolled_back().await;
    let html = report.to_html();
    for canary in [CANARY_DB_PASSWORD, CANARY_CONFIG_SECRET] {
        assert!(!html.contains(canary), "the page leaks {canary}");
    }

    let dir = tempfile::tempdir().expect("a temp dir");
    let page = dir.path().join("rollback-report.html");
    tokio::fs::write(&page, &html).await.expect("the page is written");
    let shot = dir.path().join("screenshot.png");

    // What the browser parsed.
    let out = chromium_on(&bin, dir.path(), &page, &["--dump-dom".to_owned()]).await;
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("<svg id=\"timeline\""), "no timeline in:\n{dom}");
    let bars = dom.matches("class=\"step ").count();
    assert_eq!(bars, 12, "a bar per step:\n{dom}");
    for step in Step::ALL {
        assert!(
            dom.contains(&format!("id=\"step-{}\" class=\"step ", step.number())),
            "no bar for {step}"
        );
    }
    let skipped = report
        .steps
        .iter()
        .filter(|s| matches!(s.outcome, StepOutcome::Skipped(_)))
        .count();
    assert!(skipped >= 1, "restore config is out of scope");
    assert_eq!(dom.matches("class=\"step skipped\"").count(), skipped);
    assert_eq!(dom.matches("class=\"step done\"").count(), 12 - skipped);
    assert!(
        dom.contains("<rect id=\"downtime\" class=\"downtime\""),
        "no downtime band"
    );
    let downtime = report
        .downtime
        .as_ref()
        .and_then(|d| d.duration)
        .expect("a closed downtime window");
    assert!(
        dom.contains(&format!(
            "app down {}</text>",
            rollback_core::report::fmt_duration(downtime)
        )),
        "the band's duration is labelled"
    );
    assert!(
        dom.contains("<p id=\"outcome\" class=\"outcome succeeded\">rolled back and verified</p>"),
        "no outcome"
    );
    // Markup from the report stayed text: no element the page did not make, the title intact.
    assert!(!dom.contains("<script"), "a script element was parsed:\n{dom}");
    assert!(!dom.contains("<img"), "an img element was parsed");
    assert!(!dom.contains("pwned</title>"));
    assert!(dom.contains("v2 broke checkout &lt;script&gt;document.title='pwned'&lt;/script&gt;"));
    assert!(dom.contains("Stage migrations on a copy first. &lt;script&gt;"));
    // The notices sent about it, each a row saying whether it arrived (the down receiver's
    // did not).
    assert!(!report.notices.is_empty(), "the rollback was announced");
    assert!(
        report.notices.iter().any(|n| n.error.is_some()),
        "{:?}",
        report.notices
    );
    assert_eq!(dom.matches("<tr class=\"notice\">").count(), report.notices.len());
    for n in &report.notices {
        let delivery = match &n.error {
            None => "<td class=\"delivered\">delivered</td>".to_owned(),
            Some(e) => format!("<td class=\"not-delivered\">NOT delivered: {e}</td>"),
        };
        assert!(
            dom.contains(&format!("<td>{}</td>{delivery}</tr>", n.subject)),
            "no row for {n:?}"
        );
    }
    assert!(dom.contains("status page answered 503"));
    // The post-rollback actions as a checklist to tick.
    let actions = section(&dom, "post-rollback-actions");
    assert_eq!(
        actions.matches("<input type=\"checkbox\" disabled=\"\">").count(),
        report.post_rollback_actions.iter().filter(|a| !a.checked).count(),
        "{actions}"
    );
    for a in &report.post_rollback_actions {
        assert!(actions.contains(&a.text), "{} is missing", a.text);
    }
    assert!(section(&dom, "lessons-learned").contains("Stage migrations on a copy first."));

    // What the browser drew.
    chromium_on(
        &bin,
        dir.path(),
        &page,
        &[format!("--screenshot={}", shot.display())],
    )
    .await;
    let png_bytes = tokio::fs::read(&shot).await.expect("a screenshot was written");
    assert!(
        png_bytes.len() > 10_000,
        "a screenshot of {} bytes",
        png_bytes.len()
    );
    let (width, height, rgb) = pixels(png_bytes);
    assert_eq!((width, height), (1200, 1600));
    let mut colours = rgb.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 50,
        "a near-blank screenshot: {} colours",
        colours.len()
    );
    // The bars of the steps that were done are drawn in the page's green (#2e7d32), and the
    // banner of a success in its light green (#e8f5e9).
    let green = rgb.iter().filter(|p| **p == [0x2e, 0x7d, 0x32]).count();
    assert!(green > 500, "{green} pixels of the done bars' green");
    assert!(rgb.contains(&[0xe8, 0xf5, 0xe9]), "no success banner");
}
