//! Releases layout: the atomic switch, failing and slow builds, idempotency, retention.

mod common;

use common::{assert_err, commit_files, init_repo, rev};
use rollback_core::{CodeVersion, ErrorKind};
use rollback_git::GitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_is_atomic_for_a_reader_during_many_activates() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let c1 = commit_files(&repo, &[("app.txt", "v1\n")], "v1");
    let current = tmp.path().join("current");
    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), &current)
        .build()
        .expect("adapter");
    let p0 = code.prepare(&rev(c0)).await.expect("prepare");
    let p1 = code.prepare(&rev(c1)).await.expect("prepare");
    code.activate(&p0).await.expect("activate");

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, current) = (stop.clone(), current.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let dir = std::fs::canonicalize(&current).expect("current always resolves");
                assert!(
                    dir.join("REVISION").is_file(),
                    "current points at a finished release"
                );
                let text = std::fs::read_to_string(current.join("app.txt"))
                    .expect("app.txt readable through current");
                assert!(text == "v0\n" || text == "v1\n", "half-written content: {text:?}");
                seen.insert(text);
                reads += 1;
            }
            (reads, seen)
        })
    };
    for i in 0..300 {
        code.activate(if i % 2 == 0 { &p1 } else { &p0 })
            .await
            .expect("activate");
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, seen) = reader
        .join()
        .expect("the reader never saw a missing or half-written path");
    assert!(
        reads > 100,
        "the reader ran alongside the switches ({reads} reads)"
    );
    assert_eq!(seen.len(), 2, "the reader saw both releases");
    assert!(std::fs::symlink_metadata(&current)
        .expect("link")
        .file_type()
        .is_symlink());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary links left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_leaves_current_untouched_and_is_kept_aside() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), tmp.path().join("current"))
        .build_command(["cp", "app.txt", "built.txt"])
        .build_command(["cat", "build-input.txt"])
        .build()
        .expect("adapter");
    // c0 has no build-input.txt: its build fails. c1 has one.
    assert_err(
        code.prepare(&rev(c0)).await,
        ErrorKind::Failed,
        &["cat build-input.txt", "No such file"],
    );
    let c1 = commit_files(&repo, &[("build-input.txt", "input\n")], "add build input");
    let p1 = code.prepare(&rev(c1)).await.expect("prepare c1");
    assert!(
        p1.build_log_tail.iter().any(|l| l == "input"),
        "log tail: {:?}",
        p1.build_log_tail
    );
    code.activate(&p1).await.expect("activate");
    let before = std::fs::read_link(tmp.path().join("current")).expect("link");

    let broken = rev(common::commit_removal(
        &repo,
        "build-input.txt",
        "break the build",
    ));
    let err = code.prepare(&broken).await.expect_err("build fails");
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(
        err.to_string().contains("nothing the app runs was touched"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_link(tmp.path().join("current")).expect("link"),
        before,
        "current untouched"
    );
    assert_eq!(code.current().await.expect("current").id, rev(c1));
    let releases: Vec<String> = std::fs::read_dir(tmp.path().join("releases"))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        releases.iter().any(|n| n.starts_with("failed-")),
        "failed build kept aside: {releases:?}"
    );
    assert!(
        !releases.contains(&broken.as_str()[..12].to_owned()),
        "no half-built release: {releases:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_build_times_out_and_prepare_is_idempotent() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let slow = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), tmp.path().join("current"))
        .build_command(["sleep", "10"])
        .build_timeout(Duration::from_millis(300))
        .build()
        .expect("adapter");
    let started = std::time::Instant::now();
    assert_err(
        slow.prepare(&rev(c0)).await,
        ErrorKind::Timeout,
        &["sleep 10", "300ms"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "killed at the timeout"
    );

    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), tmp.path().join("current"))
        .build_command(["cp", "app.txt", "built.txt"])
        .build()
        .expect("adapter");
    let first = code.prepare(&rev(c0)).await.expect("prepare");
    let again = code.prepare(&rev(c0)).await.expect("prepare again");
    assert_eq!(first.location, again.location);
    assert!(
        again.build_log_tail[0].contains("already prepared"),
        "{:?}",
        again.build_log_tail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_last_releases_and_never_the_live_or_previous_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), tmp.path().join("current"))
        .keep(2)
        .build()
        .expect("adapter");
    let mut prepared = Vec::new();
    for i in 1..=5 {
        let c = commit_files(&repo, &[("app.txt", &format!("v{i}\n"))], &format!("v{i}"));
        prepared.push(code.prepare(&rev(c)).await.expect("prepare"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Activate the oldest: it is kept (being activated), as is the newest by use.
    code.activate(&prepared[0]).await.expect("activate");
    let count = || {
        std::fs::read_dir(tmp.path().join("releases"))
            .expect("dir")
            .count()
    };
    assert_eq!(count(), 2, "pruned to `keep`");
    assert!(
        std::path::Path::new(&prepared[0].location).exists(),
        "live release kept"
    );
    for p in &prepared[1..4] {
        assert!(
            !std::path::Path::new(&p.location).exists(),
            "old release pruned: {}",
            p.location
        );
    }
    code.activate(&prepared[4]).await.expect("activate the newest");
    assert!(
        std::path::Path::new(&prepared[0].location).exists(),
        "previous release kept"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("current/app.txt")).expect("read"),
        "v5\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_whose_background_child_keeps_the_pipe_open_still_finishes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    // `sh` as a program with arguments (tests only): it leaves a grandchild holding stdout.
    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), tmp.path().join("current"))
        .build_command(["sh", "-c", "echo built; sleep 6 & exit 0"])
        .build_timeout(Duration::from_secs(20))
        .build()
        .expect("adapter");
    let started = std::time::Instant::now();
    let p = code.prepare(&rev(c0)).await.expect("prepare");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait for the grandchild: {:?}",
        started.elapsed()
    );
    assert!(
        p.build_log_tail.iter().any(|l| l == "built"),
        "{:?}",
        p.build_log_tail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_steps_get_the_environment_and_debug_never_shows_values() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), tmp.path().join("current"))
        .env("ROLLBACK_GIT_TEST_TOKEN", "s3cr3t-value")
        .build_command(["printenv", "ROLLBACK_GIT_TEST_TOKEN"])
        .build_command(["pwd"])
        .build()
        .expect("adapter");
    let p = code.prepare(&rev(c0)).await.expect("prepare");
    // printenv printed the value (the step got it), and the tail shows it redacted.
    assert!(
        p.build_log_tail.iter().any(|l| l == "[redacted]"),
        "{:?}",
        p.build_log_tail
    );
    assert!(
        !p.build_log_tail.iter().any(|l| l.contains("s3cr3t")),
        "a build env value never reaches the log tail: {:?}",
        p.build_log_tail
    );
    let dir = std::fs::canonicalize(&p.location).expect("dir");
    assert!(
        p.build_log_tail.iter().any(|l| std::path::Path::new(l) == dir),
        "steps run in the checkout: {:?}",
        p.build_log_tail
    );
    let debug = format!("{code:?}");
    assert!(
        debug.contains("ROLLBACK_GIT_TEST_TOKEN") && !debug.contains("s3cr3t"),
        "{debug}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_tail_keeps_the_last_lines() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), tmp.path().join("current"))
        .build_command(["seq", "1", "500"])
        .build()
        .expect("adapter");
    let p = code.prepare(&rev(c0)).await.expect("prepare");
    assert_eq!(p.build_log_tail.len(), 20);
    assert_eq!(p.build_log_tail.last().map(String::as_str), Some("500"));
    assert_eq!(p.build_log_tail.first().map(String::as_str), Some("481"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_timeout_also_ends_what_the_step_started() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let pid_file = tmp.path().join("grandchild.pid");
    // A build step that starts a long-running grandchild (as npm starts node) and waits.
    let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), tmp.path().join("current"))
        .build_command(["sh", "-c", script.as_str()])
        .build_timeout(Duration::from_millis(500))
        .build()
        .expect("adapter");
    let err = code.prepare(&rev(c0)).await.expect_err("the build times out");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let pid = std::fs::read_to_string(&pid_file).expect("the grandchild started");
    let alive = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|stat| !stat.contains(") Z"))
    };
    for _ in 0..100 {
        if !alive(&pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the grandchild {pid} outlived the build timeout");
}

/// Pre-flight: a releases directory that cannot be written, or a `current` that is not a
/// symlink, is refused by `check_activate` before the stop, as `activate` would refuse it
/// after. The live release passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_activate_refuses_what_activate_would_in_the_releases_layout() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let c1 = commit_files(&repo, &[("app.txt", "v1\n")], "v1");
    let (releases, current) = (tmp.path().join("releases"), tmp.path().join("current"));
    let code = GitCode::builder(&repo)
        .releases(&releases, &current)
        .build()
        .expect("adapter");
    let p0 = code.prepare(&rev(c0)).await.expect("prepare");
    let p1 = code.prepare(&rev(c1)).await.expect("prepare");
    code.check_activate(&rev(c0)).await.expect("no link yet: passes");
    code.activate(&p0).await.expect("activate");
    code.check_activate(&rev(c1)).await.expect("writable: passes");
    code.check_activate(&rev(c0))
        .await
        .expect("the live release passes");
    assert_err(
        code.check_activate(&rev(git2::Oid::zero())).await,
        ErrorKind::NotFound,
        &["not found"],
    );
    let probes: Vec<_> = std::fs::read_dir(&releases)
        .expect("dir")
        .chain(std::fs::read_dir(tmp.path()).expect("dir"))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("probe"))
        .collect();
    assert!(probes.is_empty(), "the probes leave nothing behind: {probes:?}");

    // `current` is a directory (a hand-made deploy): activate refuses it, so pre-flight does.
    std::fs::remove_file(&current).expect("rm link");
    std::fs::create_dir(&current).expect("mkdir");
    let warned = code.check_activate(&rev(c1)).await.expect_err("not a link");
    assert_eq!(warned.kind(), ErrorKind::InvalidInput, "{warned}");
    let refused = code.activate(&p1).await.expect_err("activate refuses it too");
    assert_eq!(refused.to_string(), warned.to_string());
    assert!(warned.to_string().contains("not a symlink"), "{warned}");
}

/// The releases directory cannot be written. Tests here run as root, which ignores
/// permission bits, so the case used is the releases path having become a regular file;
/// the permission-bit case runs only where it means something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_activate_refuses_a_releases_dir_that_cannot_be_written() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let releases = tmp.path().join("releases");
    let code = GitCode::builder(&repo)
        .releases(&releases, tmp.path().join("current"))
        .build()
        .expect("adapter");
    std::fs::remove_dir_all(&releases).expect("rm");
    std::fs::write(&releases, "not a directory").expect("file");
    assert_err(
        code.check_activate(&rev(c0)).await,
        ErrorKind::PermissionDenied,
        &["releases", "not writable", "not a directory"],
    );
    assert_eq!(
        std::fs::read_to_string(&releases).expect("read"),
        "not a directory",
        "changes nothing"
    );

    std::fs::remove_file(&releases).expect("rm");
    std::fs::create_dir(&releases).expect("mkdir");
    code.check_activate(&rev(c0)).await.expect("writable again");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&releases, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    // Root (as on the CI machines) writes anyway: then there is nothing to refuse.
    let ignores_permissions = std::fs::write(releases.join("root-check"), "").is_ok();
    if !ignores_permissions {
        assert_err(
            code.check_activate(&rev(c0)).await,
            ErrorKind::PermissionDenied,
            &["releases", "not writable"],
        );
    }
    std::fs::set_permissions(&releases, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Activating the live release again (the failure policy switching back when nothing
/// changed) is a no-op: no swap, and no pruning of the release that was just prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activating_the_live_release_again_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let c0 = init_repo(&repo);
    let current = tmp.path().join("current");
    let code = GitCode::builder(&repo)
        .releases(tmp.path().join("releases"), &current)
        .keep(1)
        .build()
        .expect("adapter");
    let p0 = code.prepare(&rev(c0)).await.expect("prepare");
    code.activate(&p0).await.expect("activate");
    let preserved = code.preserve_current().await.expect("preserve");
    let c1 = commit_files(&repo, &[("app.txt", "v1\n")], "v1");
    let p1 = code.prepare(&rev(c1)).await.expect("prepare the target");
    let link = std::fs::read_link(&current).expect("link");
    let revision_mtime = || {
        std::fs::metadata(std::path::Path::new(&preserved.location).join("REVISION"))
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    let before = revision_mtime();
    code.activate(&preserved).await.expect("a no-op");
    assert_eq!(std::fs::read_link(&current).expect("link"), link, "no swap");
    assert_eq!(revision_mtime(), before, "not even touched");
    assert!(
        std::path::Path::new(&p1.location).join("REVISION").is_file(),
        "the prepared target is not pruned by a no-op"
    );
}
