//! The app's log since a moment, read from pm2's own log files (post-verify's "no critical
//! errors in logs").
//!
//! Where: `pm2 jlist`'s `pm_out_log_path` and `pm_err_log_path` of the app's instances:
//! only those fields (and the name) are parsed; the rest of the output (every app's
//! environment) is skipped and never kept.
//!
//! What was written since the moment: pm2 appends to these files without timestamps, so the
//! sizes of every log file are noted each time this adapter runs `pm2 jlist` (pre-flight's
//! status and the stop both do, while the app still runs): the bytes after the last size
//! noted at or before the moment are those written since, plus whatever the previous
//! process printed between that note and its exit (its shutdown messages). Without such a
//! note (another process ran the stop), a file not modified since the moment has nothing
//! new, and one that was has its last [`MAX_BYTES`] read and the result is marked partial.
//! A file that shrank was rotated or truncated: it is read from its start. At most
//! [`MAX_BYTES`] per file are read (the first and the last half when more was written).
//!
//! Crashes: pm2 catches an app's uncaught exception itself, so the app's error log holds
//! only the bare stack (no "Uncaught", no `Node.js vX` line); pm2 notes the exit in its own
//! `pm2.log` (`App [web:0] exited with code [1] via signal [SIGINT]`). Those lines of the
//! app's instances written since the moment (found the same way), with an exit code other
//! than 0 (a stop or a reload exits with 0), are returned too, from source `pm2.log`.
//!
//! Redaction: the app's environment values from its [`AppSpec`](crate::AppSpec), then
//! whatever looks like a secret ([`redact_text`]). Environment values that pm2 got from
//! elsewhere (an ecosystem file, the shell) are caught only by their shape.

use crate::cli::{redact, strip_ansi, Pm2Cli};
use crate::error::Pm2Error;
use crate::jlist::Instance;
use crate::log_sizes::mark_before;
use crate::select::{instances_of, NAME_HINT};
use chrono::{DateTime, Utc};
use rollback_core::secret::redact_text;
use rollback_core::{AppLogs, AppName, LogLine, Secret};
use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The most read from one log file.
pub(crate) const MAX_BYTES: u64 = 1024 * 1024;
/// The longest line kept (longer ones are cut).
const MAX_LINE_CHARS: usize = 4000;

/// What `app` wrote to pm2's log files since `since` (see the module doc), with `env`'s
/// values and whatever looks like a secret redacted. Never starts pm2's daemon; file reads
/// end within `cli.timeout`.
pub(crate) async fn logs_since(
    cli: &Pm2Cli,
    app: &AppName,
    since: DateTime<Utc>,
    env: &[(String, Secret)],
) -> Result<AppLogs, Pm2Error> {
    let instances: Vec<Instance> = instances_of(cli.jlist_running().await?, app, NAME_HINT)?;
    let mut files: Vec<(&'static str, PathBuf)> = Vec::new();
    let mut logs = AppLogs::default();
    for i in &instances {
        for (stream, path) in [("stdout", &i.out_log), ("stderr", &i.err_log)] {
            match path {
                Some(p) if p == Path::new("/dev/null") => {
                    logs.notes
                        .push(format!("{stream} is not logged (pm2 writes it to /dev/null)"));
                }
                Some(p) => {
                    if !files.iter().any(|(_, f)| f == p) {
                        files.push((stream, p.clone()));
                    }
                }
                None => logs.notes.push(format!("pm2 names no {stream} log file")),
            }
        }
    }
    logs.notes.dedup();
    // pm2's own log: the app's instances that exited other than by a stop or a reload.
    let exited: Vec<String> = instances.iter().map(|i| format!("App [{}:", i.name)).collect();
    let crashed = move |line: &str| {
        exited.iter().any(|e| line.contains(e.as_str()))
            && line.contains("exited with code [")
            && !line.contains("exited with code [0]")
    };
    let pm2_log = cli.effective_home().map(|h| h.join("pm2.log"));
    let read = async {
        for (stream, path) in &files {
            let everything = |_: &str| true;
            read_file(stream, path, since, env, &everything, &mut logs).await;
        }
        if let Some(path) = &pm2_log {
            read_file("pm2", path, since, env, &crashed, &mut logs).await;
        }
    };
    if tokio::time::timeout(cli.timeout, read).await.is_err() {
        logs.partial = true;
        logs.notes.push(format!(
            "reading the log files did not finish within {}s: what was read is shown",
            cli.timeout.as_secs_f64()
        ));
    }
    Ok(logs)
}

/// Reads one log file's bytes written since `since` into `logs`: the lines `keep` keeps.
async fn read_file(
    stream: &str,
    path: &Path,
    since: DateTime<Utc>,
    env: &[(String, Secret)],
    keep: &(dyn Fn(&str) -> bool + Sync),
    logs: &mut AppLogs,
) {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let source = if stream == "pm2" {
        name.clone()
    } else {
        format!("{stream} ({name})")
    };
    let meta = match tokio::fs::metadata(path).await {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            logs.notes
                .push(format!("{source}: no such file yet (nothing written)"));
            return;
        }
        Err(e) => {
            logs.partial = true;
            logs.notes
                .push(format!("{source}: cannot read {}: {e}", path.display()));
            return;
        }
    };
    let len = meta.len();
    let modified: Option<DateTime<Utc>> = meta.modified().ok().map(DateTime::<Utc>::from);
    let start = match mark_before(path, since, (meta.dev(), meta.ino())) {
        Some(mark) if mark.size <= len => mark.size,
        Some(_) => {
            logs.partial = true;
            logs.notes.push(format!(
                "{source}: shorter than before the start (rotated or truncated): read from its beginning"
            ));
            0
        }
        None if modified.is_some_and(|m| m < since) => len,
        None => {
            let start = len.saturating_sub(MAX_BYTES);
            logs.partial = true;
            logs.notes.push(format!(
                "{source}: no record of its size before the start: its last {} KiB read, which may hold lines from before the start",
                (len - start).div_ceil(1024)
            ));
            start
        }
    };
    if start == len {
        return;
    }
    let (head, tail) = if len - start <= MAX_BYTES {
        (read_range(path, start, len).await, None)
    } else {
        logs.partial = true;
        logs.notes.push(format!(
            "{source}: {} KiB written since the start: only its first and last {} KiB read",
            (len - start).div_ceil(1024),
            MAX_BYTES / 2048
        ));
        (
            read_range(path, start, start + MAX_BYTES / 2).await,
            Some(read_range(path, len - MAX_BYTES / 2, len).await),
        )
    };
    let mut push = |bytes: &[u8], skip_first: bool, skip_last: bool| {
        let text = String::from_utf8_lossy(bytes);
        let mut lines: Vec<&str> = text.split('\n').collect();
        if skip_last || lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        for (n, line) in lines.into_iter().enumerate() {
            if (skip_first && n == 0) || !keep(line) {
                continue;
            }
            let clean = strip_ansi(line.trim_end_matches('\r'));
            let clean = redact_text(&redact(&clean, env));
            let text = match clean.char_indices().nth(MAX_LINE_CHARS) {
                Some((i, _)) => format!("{}…", &clean[..i]),
                None => clean,
            };
            logs.lines.push(LogLine {
                source: source.clone(),
                text,
            });
        }
    };
    match head {
        Ok(bytes) => push(&bytes, false, tail.is_some()),
        Err(e) => {
            logs.partial = true;
            logs.notes
                .push(format!("{source}: cannot read {}: {e}", path.display()));
            return;
        }
    }
    match tail {
        Some(Ok(bytes)) => push(&bytes, true, false),
        Some(Err(e)) => {
            logs.partial = true;
            logs.notes
                .push(format!("{source}: cannot read {}: {e}", path.display()));
        }
        None => {}
    }
}

/// Bytes `start..end` of `path`.
async fn read_range(path: &Path, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(SeekFrom::Start(start)).await?;
    let mut buf = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
    file.take(end - start).read_to_end(&mut buf).await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jlist::parse_instances;
    use crate::log_sizes::note_sizes;

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn reads_only_names_and_log_paths_and_never_quotes_the_output() {
        let j = r#"[PM2] Spawning PM2 daemon
[{"name":"web","pm_id":0,"pm2_env":{"name":"web","pm_out_log_path":"/h/logs/web-out.log","pm_err_log_path":"/h/logs/web-error.log","env":{"DB_PASSWORD":"hunter2"},"status":"online"}},
 {"pm_id":1,"pm2_env":{"name":"worker","pm_out_log_path":"/dev/null","pm_err_log_path":42}},
 {"pm_id":2}]"#;
        let got: Vec<(String, Option<PathBuf>, Option<PathBuf>)> = parse_instances(j)
            .unwrap()
            .into_iter()
            .map(|i| (i.name.clone(), i.out_log, i.err_log))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "web".into(),
                    Some("/h/logs/web-out.log".into()),
                    Some("/h/logs/web-error.log".into()),
                ),
                ("worker".into(), Some("/dev/null".into()), None),
            ]
        );
        let e = parse_instances("[{\"name\":\"x\",\"pm2_env\":{\"env\":{\"K\":\"hunter2\"}").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[tokio::test]
    async fn only_bytes_written_after_the_last_note_before_the_moment_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("web-out.log");
        let err = dir.path().join("web-error.log");
        std::fs::write(&out, "old line 1\nFATAL old release\n").unwrap();
        std::fs::write(&err, "").unwrap();
        let jlist = parse_instances(&format!(
            r#"[{{"name":"web","pm_id":0,"pm2_env":{{"pm_out_log_path":"{}","pm_err_log_path":"{}"}}}}]"#,
            out.display(),
            err.display()
        ))
        .unwrap();
        note_sizes(&jlist, None).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let since = Utc::now();
        std::fs::write(
            &out,
            "old line 1\nFATAL old release\nnew line\nUncaught token=abc \u{1b}[31mred\u{1b}[39m API=s3cret-value\n",
        )
        .unwrap();
        let env = [("API".to_owned(), Secret::new("s3cret-value"))];
        let mut logs = AppLogs::default();
        read_file("stdout", &out, since, &env, &all, &mut logs).await;
        read_file("stderr", &err, since, &env, &all, &mut logs).await;
        let lines: Vec<&str> = logs.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            lines,
            ["new line", "Uncaught token=[redacted] red API=[redacted]"]
        );
        assert_eq!(logs.lines[0].source, "stdout (web-out.log)");
        assert!(!logs.partial, "{:?}", logs.notes);

        // A note taken after the moment is not used; a rotated file is read from its start.
        note_sizes(&jlist, None).await;
        std::fs::remove_file(&out).unwrap();
        std::fs::write(&out, "after rotation\n").unwrap();
        let mut logs = AppLogs::default();
        read_file("stdout", &out, since, &env, &all, &mut logs).await;
        // The new file has no note (another inode), or one of the old file's size (the
        // inode reused): either way it is read whole and the result is partial.
        assert_eq!(logs.lines.len(), 1);
        assert!(
            logs.partial
                && (logs.notes[0].contains("no record of its size") || logs.notes[0].contains("rotated")),
            "{:?}",
            logs.notes
        );

        // No note and not modified since the moment: nothing new.
        let quiet = dir.path().join("quiet.log");
        std::fs::write(&quiet, "FATAL long ago\n").unwrap();
        let later = Utc::now() + chrono::Duration::seconds(5);
        let mut logs = AppLogs::default();
        read_file("stdout", &quiet, later, &env, &all, &mut logs).await;
        assert!(logs.lines.is_empty() && !logs.partial);
    }

    #[tokio::test]
    async fn a_big_log_is_read_at_both_ends_and_marked_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let mut body = String::from("first line\n");
        while (body.len() as u64) < 3 * MAX_BYTES {
            body.push_str("filler filler filler filler filler filler filler filler\n");
        }
        body.push_str("Uncaught at the end\n");
        std::fs::write(&path, "").unwrap();
        note_sizes(
            &parse_instances(&format!(
                r#"[{{"name":"big","pm_id":0,"pm2_env":{{"pm_out_log_path":"{}"}}}}]"#,
                path.display()
            ))
            .unwrap(),
            None,
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let since = Utc::now();
        std::fs::write(&path, &body).unwrap();
        let mut logs = AppLogs::default();
        read_file("stdout", &path, since, &[], &all, &mut logs).await;
        assert!(logs.partial);
        assert_eq!(logs.lines.first().map(|l| l.text.as_str()), Some("first line"));
        assert_eq!(
            logs.lines.last().map(|l| l.text.as_str()),
            Some("Uncaught at the end")
        );
        let read: usize = logs.lines.iter().map(|l| l.text.len() + 1).sum();
        assert!(read as u64 <= MAX_BYTES, "{read}");
        assert!(
            logs.notes.iter().any(|n| n.contains("first and last 512 KiB")),
            "{:?}",
            logs.notes
        );
    }
}
