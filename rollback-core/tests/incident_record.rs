//! The incident record (issue 14, point 6): the report as the runbook's "Rollback
//! Documentation", in Markdown and as a self-contained HTML page.

use rollback_core::{ChecklistItem, RollbackReport, Step};
use serde_json::json;

/// A 10 s rollback of `web` read back from JSON (the way a stored report comes back):
/// restore database took 5 s, config was out of scope, the app was down 6 s, one notice
/// delivered and one not.
fn report() -> RollbackReport {
    let names = [
        ("lock", 100),
        ("journal", 100),
        ("preflight", 300),
        ("prepare", 1000),
        ("stop", 500),
        ("emergency_backup", 500),
        ("restore_database", 5000),
        ("activate_code", 500),
        ("restore_config", 0),
        ("start", 1000),
        ("post_verify", 900),
        ("report", 100),
    ];
    let mut t = 0u64;
    let steps: Vec<_> = names
        .iter()
        .map(|(name, ms)| {
            let started = format!("2026-11-26T10:15:{:02}.{:03}Z", t / 1000, t % 1000);
            t += ms;
            let outcome = if *name == "restore_config" {
                json!({ "skipped": "config not in scope (database, code)" })
            } else {
                json!("ok")
            };
            json!({
                "step": name,
                "started_at": started,
                "duration": ms,
                "outcome": outcome,
                "checklist": [{ "text": format!("{name} checked"), "checked": true }],
            })
        })
        .collect();
    serde_json::from_value(json!({
        "id": "rb-20261126T101500.000000Z-0",
        "app": "web",
        "reason": "v2.4 broke checkout",
        "scenario": "critical_bug",
        "trigger": "watchdog rule error-rate>5%",
        "scope": { "database": true, "code": true, "config": false },
        "checkpoint": {
            "id": "cp-1", "label": "before v2.4", "created_at": "2026-11-26T09:00:00Z",
            "snapshot": null, "revision": null, "config": null, "good": true,
        },
        "started_at": "2026-11-26T10:15:00Z",
        "finished_at": "2026-11-26T10:15:10Z",
        "total_duration": 10000,
        "downtime": {
            "stopped_at": "2026-11-26T10:15:02Z",
            "stop_issued_at": "2026-11-26T10:15:01.500Z",
            "healthy_at": "2026-11-26T10:15:08Z",
            "duration": 6000,
            "post_verify": 900,
        },
        "steps": steps,
        "health": [{ "probe": "http://127.0.0.1/health", "healthy": true, "latency": 12, "detail": "200 OK" }],
        "integrity": [{ "name": "foreign keys", "passed": true, "detail": "0 orphan rows" }],
        "verification": [
            { "name": "no critical errors in the app's log since the start", "passed": true, "detail": "none" },
            { "name": "latency p95 after the start", "passed": false, "detail": "not checked: no metrics" },
        ],
        "recovery": [],
        "emergency_backup": ["database: web_pre_rollback_1", "code: v2.4 kept"],
        "outcome": "succeeded",
        "notes": ["writes made after snapshot are in web_pre_rollback_1"],
        "next_actions": ["find out why v2.4 broke checkout"],
        "notices": [
            {
                "at": "2026-11-26T10:15:00.050Z", "audience": "devops",
                "subject": "rollback started: web", "event": "rollback_started", "error": null,
            },
            {
                "at": "2026-11-26T10:15:10.010Z", "audience": "stakeholders",
                "subject": "rollback finished: web", "event": "rollback_succeeded",
                "error": "webhook answered 500 (retry later)",
            },
        ],
        "post_rollback_actions": [
            { "text": "document the incident (this report is its start)", "checked": true },
            { "text": "identify the root cause", "checked": false },
            { "text": "plan preventive measures", "checked": false },
            { "text": "update the deployment and rollback procedures", "checked": false },
            { "text": "hold the post-mortem", "checked": false },
        ],
    }))
    .expect("a report")
}

/// Where `needle` is in `hay`, failing the test when it is not.
fn pos(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} is missing from:\n{hay}"))
}

#[test]
fn the_markdown_reads_as_the_runbooks_rollback_documentation() {
    let md = report().to_markdown();
    // Everything the runbook asks for, in its order.
    let order = [
        "**Outcome:** rolled back and verified",
        "## Rollback documentation",
        "- **Initiated:** 2026-11-26T10:15:00.000Z",
        "- **Reason:** v2.4 broke checkout",
        "- **Trigger:** watchdog rule error-rate>5%",
        "- **Total duration:** 10.000s",
        "- **Downtime:** 6.000s (from the app's last answer at 2026-11-26T10:15:02.000Z to its first \
         passing health probe at 2026-11-26T10:15:08.000Z)",
        "## Steps taken",
        "| 1 | lock | 10:15:00.000 | 100ms | ok |",
        "| 7 | restore database | 10:15:02.500 | 5.000s | ok |",
        "| 9 | restore config | 10:15:08.000 | 0ms | skipped: config not in scope (database, code) |",
        "| 12 | report | 10:15:09.900 | 100ms | ok |",
        "### Checklist",
        "- [x] restore database: restore_database checked",
        "## Verification results",
        "### Health",
        "- ✅ http://127.0.0.1/health: 200 OK (12ms)",
        "### Integrity",
        "- ✅ foreign keys: 0 orphan rows",
        "### Verification of the release",
        "- ➖ latency p95 after the start: not checked: no metrics",
        "## Emergency backup",
        "- database: web_pre_rollback_1",
        "## Notes",
        "## Next actions",
        "- find out why v2.4 broke checkout",
        "## Notices sent",
        "- 2026-11-26T10:15:00.050Z to **devops** (rollback started): rollback started: web: delivered",
        "- 2026-11-26T10:15:10.010Z to **stakeholders** (rollback succeeded): rollback finished: web: \
         NOT delivered: webhook answered 500 (retry later)",
        "## Post-rollback actions",
        "- [x] document the incident (this report is its start)",
        "- [ ] identify the root cause",
        "- [ ] hold the post-mortem",
        "## Lessons learned",
        "_To be filled in by the team",
    ];
    let mut last = 0;
    for needle in order {
        let at = pos(&md, needle);
        assert!(at >= last, "{needle:?} is out of order in:\n{md}");
        last = at;
    }
    assert_eq!(
        md.matches("\n| ").count(),
        13,
        "a header and twelve step rows:\n{md}"
    );
}

#[test]
fn lessons_learned_once_written_replace_the_placeholder_and_keep_their_lines() {
    let mut r = report();
    r.lessons_learned = "Migrations need a dry run on a copy.\nThe canary caught it in 4 minutes.".into();
    let md = r.to_markdown();
    assert!(!md.contains("To be filled in"), "{md}");
    assert!(md.ends_with(
        "## Lessons learned\n\nMigrations need a dry run on a copy.\nThe canary caught it in 4 minutes.\n"
    ));
    let html = r.to_html();
    assert!(!html.contains("To be filled in"));
    assert!(html.contains(
        "<p class=\"lessons\">Migrations need a dry run on a copy.\nThe canary caught it in 4 minutes.</p>"
    ));
}

#[test]
fn a_report_stored_before_the_record_fields_existed_still_lists_the_runbooks_actions() {
    let mut value = serde_json::to_value(report()).unwrap();
    let fields = value.as_object_mut().unwrap();
    for f in ["notices", "post_rollback_actions", "lessons_learned"] {
        fields.remove(f);
    }
    let old: RollbackReport = serde_json::from_value(value).unwrap();
    let md = old.to_markdown();
    assert!(md.contains("## Notices sent\n\nNone.\n"), "{md}");
    for action in rollback_core::report::post_rollback_actions() {
        assert!(md.contains(&format!("- [ ] {}\n", action.text)), "{md}");
    }
    assert_eq!(
        old.to_html()
            .matches("<input type=\"checkbox\" disabled>")
            .count(),
        5
    );
}

#[test]
fn a_line_break_in_a_text_does_not_break_the_markdown_layout() {
    let mut r = report();
    r.reason = "checkout down\n## Injected heading\n- [x] fake item".into();
    r.steps[10].outcome = rollback_core::StepOutcome::Failed("health: 503\n| x | y |".into());
    let md = r.to_markdown();
    assert!(md.contains("- **Reason:** checkout down ## Injected heading - [x] fake item\n"));
    assert!(!md.contains("\n## Injected heading"));
    assert!(md.contains("| 11 | post-verify | 10:15:09.000 | 900ms | FAILED: health: 503 \\| x \\| y \\| |"));
}

#[test]
fn the_html_page_is_self_contained_and_has_the_same_content() {
    let r = report();
    let html = r.to_html();
    // One file: no script, no stylesheet link, no image or font fetched, no remote URL (the
    // SVG namespace is a name, not a fetch).
    for forbidden in [
        "<script", "<link", " src=", "url(", "https://", "<iframe", "<object",
    ] {
        assert!(!html.contains(forbidden), "{forbidden} in the page");
    }
    assert_eq!(
        html.matches("http://").count(),
        html.matches("http://www.w3.org/2000/svg").count() + html.matches("http://127.0.0.1/health").count()
    );
    assert!(html.contains("<style>"));
    for text in [
        "rolled back and verified",
        "v2.4 broke checkout",
        "watchdog rule error-rate&gt;5%",
        "2026-11-26T10:15:00.000Z",
        "10.000s",
        "6.000s",
        "0 orphan rows",
        "database: web_pre_rollback_1",
        "writes made after snapshot",
        "find out why v2.4 broke checkout",
        "rollback started: web",
        "NOT delivered: webhook answered 500 (retry later)",
        "identify the root cause",
        "To be filled in by the team",
    ] {
        assert!(html.contains(text), "{text:?} is missing");
    }
    for step in Step::ALL {
        assert!(
            html.contains(&format!("id=\"step-{}\" class=\"step ", step.number())),
            "no bar for {step}"
        );
    }
    assert_eq!(html.matches("class=\"step done\"").count(), 11);
    assert_eq!(html.matches("class=\"step skipped\"").count(), 1);
    assert!(html.contains("<rect id=\"downtime\" class=\"downtime\""));
    assert!(html.contains("<text id=\"downtime-label\""));
    // The post-rollback actions as checkboxes, the first ticked.
    assert_eq!(
        html.matches("<input type=\"checkbox\" disabled checked> document the incident")
            .count(),
        1
    );
    assert_eq!(html.matches("<input type=\"checkbox\" disabled> ").count(), 4);
}

#[test]
fn markup_from_the_report_is_inert_in_the_html() {
    let mut r = report();
    r.reason = "<script>alert('reason')</script>".into();
    r.steps[3].checklist.push(ChecklistItem::done(
        "staged <script>alert(\"checklist\")</script>",
    ));
    r.notices[0].subject = "</td></tr></table><script>alert(1)</script>".into();
    r.lessons_learned = "<style>body{display:none}</style>".into();
    let html = r.to_html();
    assert!(!html.contains("<script"), "a script element in the page");
    assert_eq!(html.matches("<style>").count(), 1, "only the page's own style");
    assert!(html.contains("&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;"));
    assert!(html.contains("staged &lt;script&gt;alert(&quot;checklist&quot;)&lt;/script&gt;"));
    assert!(html.contains("&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;"));
}
