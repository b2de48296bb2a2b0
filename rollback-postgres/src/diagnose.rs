//! `diagnose`: PostgreSQL's own view of itself, for "performance degradation: investigate
//! first": long-running queries and open transactions, sessions waiting on locks (and who
//! blocks them), client connections by state, the cache hit ratio, and the most expensive
//! statements when `pg_stat_statements` is installed.
//!
//! Query text can hold secrets and personal data in its literals (`WHERE email = '…'`,
//! `ALTER ROLE … PASSWORD '…'`), so it is never shown as the server has it: every text
//! (`pg_stat_activity.query`, and `pg_stat_statements.query`, which keeps the literals of
//! utility statements) is normalized here first: comments dropped, string, dollar-quoted
//! and numeric literals replaced by `?`, blanks collapsed, cut to [`QUERY_CHARS`]
//! characters. Each finding says so.
//!
//! One session of its own (on the live database; on the maintenance database when the
//! live one refuses connections, e.g. sealed), with a `statement_timeout`, and a client-side
//! timeout on every query. Changes nothing.

use crate::adapter::PostgresSnapshot;
use crate::error::PgError;
use rollback_core::{AdapterError, ErrorKind, Finding};
use std::time::Duration;
use tokio_postgres::Client;

/// How many characters of a normalized query text are shown.
pub(crate) const QUERY_CHARS: usize = 120;
/// How long one diagnostic query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many items a finding lists at most.
const MAX_ITEMS: i64 = 10;
/// How many statements "top statements" lists.
const TOP_STATEMENTS: i64 = 5;

const ACTIVITY_TEXT: &str =
    "query text normalized: comments dropped, literals replaced by ?, first 120 characters";
const STATEMENTS_TEXT: &str =
    "pg_stat_statements' normalized text, literals its normalization keeps (utility statements) replaced by ? too, first 120 characters";

async fn within<T>(
    what: &str,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, PgError> {
    match tokio::time::timeout(QUERY_TIMEOUT, query).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(PgError::sql(what, e)),
        Err(_) => Err(PgError::new(
            ErrorKind::Timeout,
            format!("{what}: no answer within {QUERY_TIMEOUT:?}"),
        )),
    }
}

/// `12.3s`, `4m05s`, `2h03m`.
fn human(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{}h{:02}m", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    }
}

/// A query text with no literal and no comment, blanks collapsed, cut to `max` characters.
pub(crate) fn normalize_query(text: &str, max: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len().min(max * 2));
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            out.push(' ');
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == '\'' {
            // A string; `''` is a quote inside it; after E, a backslash escapes.
            let escapes = i > 0 && matches!(chars[i - 1], 'e' | 'E');
            i += 1;
            while i < chars.len() {
                let escaped = escapes && chars[i] == '\\';
                let doubled = chars[i] == '\'' && chars.get(i + 1) == Some(&'\'');
                if escaped || doubled {
                    i += 2;
                } else if chars[i] == '\'' {
                    i += 1;
                    break;
                } else {
                    i += 1;
                }
            }
            out.push('?');
        } else if c == '$' && !(i > 0 && ident(chars[i - 1])) && !next.is_some_and(|n| n.is_ascii_digit()) {
            // A dollar-quoted string: $tag$ ... $tag$ (a `$1` parameter is kept).
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if chars.get(j) == Some(&'$') {
                let tag: String = chars[i..=j].iter().collect();
                let body_start = j + 1;
                let rest: String = chars[body_start..].iter().collect();
                let end = rest.find(&tag).map_or(chars.len(), |b| {
                    body_start + rest[..b].chars().count() + tag.chars().count()
                });
                i = end;
                out.push('?');
            } else {
                out.push(c);
                i += 1;
            }
        } else if c.is_ascii_digit() && !(i > 0 && ident(chars[i - 1])) {
            // A number: digits, a point, an exponent.
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ((chars[i] == '+' || chars[i] == '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            out.push('?');
        } else if c == '"' {
            // A quoted identifier: kept as is.
            out.push(c);
            i += 1;
            while i < chars.len() {
                out.push(chars[i]);
                i += 1;
                if chars[i - 1] == '"' {
                    break;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None => collapsed,
    }
}

fn q(text: Option<&str>) -> String {
    match text {
        Some(t) if !t.trim().is_empty() => format!("`{}`", normalize_query(t, QUERY_CHARS)),
        _ => "(no query text visible)".to_owned(),
    }
}

fn who(pid: i32, user: Option<&str>, app: Option<&str>, db: Option<&str>) -> String {
    format!(
        "pid {pid} (user {}, application `{}`, database {})",
        user.unwrap_or("?"),
        app.unwrap_or(""),
        db.unwrap_or("?")
    )
}

impl PostgresSnapshot {
    /// The findings of [`DatabaseSnapshot::diagnose`](rollback_core::DatabaseSnapshot::diagnose).
    pub(crate) async fn diagnose_database(&self) -> Result<Vec<Finding>, AdapterError> {
        let dbname = self.config.dbname.clone();
        let (client, on) = match self.connect(&dbname).await {
            Ok(c) => (c, dbname.clone()),
            Err(live) => {
                let maintenance = self.config.maintenance_db.clone();
                match self.connect(&maintenance).await {
                    Ok(c) => {
                        tracing::info!(database = %dbname, error = %live, "diagnosing from the maintenance database");
                        (c, maintenance)
                    }
                    Err(_) => return Err(live.into()),
                }
            }
        };
        within(
            "setting statement_timeout",
            client.batch_execute(&format!("SET statement_timeout = {}", QUERY_TIMEOUT.as_millis())),
        )
        .await?;
        let threshold = self.options.long_running.as_secs_f64();
        let mut findings = Vec::new();
        let topic = |t: &str, r: Result<Finding, PgError>| {
            r.unwrap_or_else(|e| Finding {
                topic: t.to_owned(),
                summary: format!("could not read: {e}"),
                items: Vec::new(),
                notable: false,
            })
        };
        findings.push(topic(
            "long-running queries",
            long_running(&client, threshold).await,
        ));
        findings.push(topic("lock waits", lock_waits(&client).await));
        findings.push(topic(
            "connections by state",
            connections(&client, &dbname, threshold).await,
        ));
        findings.push(topic("cache hit ratio", cache_hit_ratio(&client, &dbname).await));
        findings.push(if on == dbname {
            topic("top statements", top_statements(&client, &dbname).await)
        } else {
            Finding {
                topic: "top statements".into(),
                summary: format!(
                    "not read: database {dbname} refuses connections (pg_stat_statements is read from it)"
                ),
                items: Vec::new(),
                notable: false,
            }
        });
        Ok(findings)
    }
}

async fn long_running(client: &Client, threshold: f64) -> Result<Finding, PgError> {
    let rows = within(
        "reading long-running queries from pg_stat_activity",
        client.query(
            "SELECT pid, datname::text, usename::text, application_name, state, \
                    extract(epoch FROM now() - query_start)::float8, \
                    extract(epoch FROM now() - xact_start)::float8, \
                    wait_event_type, wait_event, query \
             FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' \
               AND state IS NOT NULL AND state <> 'idle' \
               AND (now() - query_start > make_interval(secs => $1) \
                    OR now() - xact_start > make_interval(secs => $1)) \
             ORDER BY least(query_start, xact_start) LIMIT $2",
            &[&threshold, &MAX_ITEMS],
        ),
    )
    .await?;
    let mut longest = 0.0_f64;
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            let running: Option<f64> = r.get(5);
            let xact: Option<f64> = r.get(6);
            longest = longest.max(running.unwrap_or(0.0)).max(xact.unwrap_or(0.0));
            let state: Option<&str> = r.get(4);
            let wait = match (r.get::<_, Option<&str>>(7), r.get::<_, Option<&str>>(8)) {
                (Some(t), Some(e)) => format!(", waiting on {t}/{e}"),
                _ => String::new(),
            };
            format!(
                "{}: {} for {}{}{}: {}",
                who(r.get(0), r.get(2), r.get(3), r.get(1)),
                state.unwrap_or("?"),
                running.map_or_else(|| "?".to_owned(), human),
                xact.map_or_else(String::new, |x| format!(" (transaction open {})", human(x))),
                wait,
                q(r.get(9))
            )
        })
        .collect();
    Ok(Finding {
        topic: "long-running queries".into(),
        summary: if items.is_empty() {
            format!(
                "no query or transaction has run for more than {}",
                human(threshold)
            )
        } else {
            format!(
                "{} session(s) with a query or transaction running for more than {} (longest {}); {ACTIVITY_TEXT}",
                items.len(),
                human(threshold),
                human(longest)
            )
        },
        notable: !items.is_empty(),
        items,
    })
}

async fn lock_waits(client: &Client) -> Result<Finding, PgError> {
    let rows = within(
        "reading lock waits from pg_stat_activity and pg_locks",
        client.query(
            "SELECT w.pid, w.datname::text, w.usename::text, w.application_name, \
                    extract(epoch FROM now() - coalesce(w.state_change, w.query_start))::float8, \
                    w.wait_event_type, w.wait_event, pg_blocking_pids(w.pid), w.query, \
                    (SELECT l.mode || ' on ' || CASE \
                         WHEN l.relation IS NOT NULL AND l.database = \
                              (SELECT oid FROM pg_database WHERE datname = current_database()) \
                         THEN 'relation ' || l.relation::regclass::text \
                         ELSE l.locktype END \
                     FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted LIMIT 1) \
             FROM pg_stat_activity w \
             WHERE cardinality(pg_blocking_pids(w.pid)) > 0 \
             ORDER BY w.state_change LIMIT $1",
            &[&MAX_ITEMS],
        ),
    )
    .await?;
    let mut items = Vec::new();
    for r in &rows {
        let blockers: Vec<i32> = r.get(7);
        let by = within(
            "reading the blocking sessions",
            client.query(
                "SELECT pid, state, usename::text, application_name, \
                        extract(epoch FROM now() - xact_start)::float8, query \
                 FROM pg_stat_activity WHERE pid = ANY($1) ORDER BY pid",
                &[&blockers],
            ),
        )
        .await?;
        let by: Vec<String> = by
            .iter()
            .map(|b| {
                let xact: Option<f64> = b.get(4);
                format!(
                    "pid {} (user {}, application `{}`, {}{}; last query {})",
                    b.get::<_, i32>(0),
                    b.get::<_, Option<&str>>(2).unwrap_or("?"),
                    b.get::<_, Option<&str>>(3).unwrap_or(""),
                    b.get::<_, Option<&str>>(1).unwrap_or("?"),
                    xact.map_or_else(String::new, |x| format!(", transaction open {}", human(x))),
                    q(b.get(5))
                )
            })
            .collect();
        let waited: Option<f64> = r.get(4);
        let wanted: Option<&str> = r.get(9);
        items.push(format!(
            "{} has waited {} for {} ({}/{}): {}; blocked by {}",
            who(r.get(0), r.get(2), r.get(3), r.get(1)),
            waited.map_or_else(|| "?".to_owned(), human),
            wanted.unwrap_or("a lock"),
            r.get::<_, Option<&str>>(5).unwrap_or("?"),
            r.get::<_, Option<&str>>(6).unwrap_or("?"),
            q(r.get(8)),
            if by.is_empty() {
                format!("{blockers:?} (gone since)")
            } else {
                by.join(", ")
            }
        ));
    }
    Ok(Finding {
        topic: "lock waits".into(),
        summary: if items.is_empty() {
            "no session waits on a lock".into()
        } else {
            format!(
                "{} session(s) wait on a lock held by another; {ACTIVITY_TEXT}",
                items.len()
            )
        },
        notable: !items.is_empty(),
        items,
    })
}

async fn connections(client: &Client, dbname: &str, threshold: f64) -> Result<Finding, PgError> {
    let rows = within(
        "counting connections by state",
        client.query(
            "SELECT coalesce(state, 'unknown'), count(*)::int8, \
                    max(extract(epoch FROM now() - coalesce(xact_start, state_change)))::float8 \
             FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND datname = $1 AND pid <> pg_backend_pid() \
             GROUP BY 1 ORDER BY 2 DESC, 1",
            &[&dbname],
        ),
    )
    .await?;
    let totals = within(
        "counting the cluster's connections",
        client.query_one(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8, \
                    current_setting('max_connections')::int8",
            &[],
        ),
    )
    .await?;
    let (all, max): (i64, i64) = (totals.get(0), totals.get(1));
    let mut notable = max > 0 && all * 100 >= max * 80;
    let mut items = Vec::new();
    let mut parts = Vec::new();
    let mut count = 0;
    for r in &rows {
        let state: String = r.get(0);
        let n: i64 = r.get(1);
        let oldest: Option<f64> = r.get(2);
        count += n;
        parts.push(format!("{state} {n}"));
        if state.starts_with("idle in transaction") && oldest.is_some_and(|o| o > threshold) {
            notable = true;
            items.push(format!(
                "{n} session(s) {state}, the oldest for {}: they hold their locks and keep vacuum from cleaning up",
                oldest.map_or_else(|| "?".to_owned(), human)
            ));
        }
    }
    if max > 0 && all * 100 >= max * 80 {
        items.push(format!(
            "{all} of max_connections {max} in use in the cluster: new connections may soon be refused"
        ));
    }
    Ok(Finding {
        topic: "connections by state".into(),
        summary: format!(
            "{count} client connection(s) to {dbname}{}; {all} of {max} allowed in the cluster",
            if parts.is_empty() {
                String::new()
            } else {
                format!(" ({})", parts.join(", "))
            }
        ),
        items,
        notable,
    })
}

async fn cache_hit_ratio(client: &Client, dbname: &str) -> Result<Finding, PgError> {
    let row = within(
        "reading pg_stat_database",
        client.query_opt(
            "SELECT blks_hit, blks_read, coalesce(stats_reset::text, 'the server start') \
             FROM pg_stat_database WHERE datname = $1",
            &[&dbname],
        ),
    )
    .await?;
    let Some(row) = row else {
        return Ok(Finding {
            topic: "cache hit ratio".into(),
            summary: format!("no statistics for {dbname}"),
            items: Vec::new(),
            notable: false,
        });
    };
    let (hit, read, since): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
    let total = hit + read;
    let ratio = if total > 0 { hit as f64 / total as f64 } else { 1.0 };
    Ok(Finding {
        topic: "cache hit ratio".into(),
        summary: format!(
            "{:.2}% of {total} block reads of {dbname} came from shared buffers since {since} ({read} from disk or the OS cache){}",
            ratio * 100.0,
            if total >= 10_000 && ratio < 0.99 {
                "; below 99%: the working set may no longer fit in shared_buffers"
            } else {
                ""
            }
        ),
        items: Vec::new(),
        notable: total >= 10_000 && ratio < 0.99,
    })
}

async fn top_statements(client: &Client, dbname: &str) -> Result<Finding, PgError> {
    let installed = within(
        "looking for pg_stat_statements",
        client.query_opt(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'",
            &[],
        ),
    )
    .await?;
    if installed.is_none() {
        return Ok(Finding {
            topic: "top statements".into(),
            summary: format!(
                "pg_stat_statements is not installed in {dbname}: add it to shared_preload_libraries and run CREATE EXTENSION pg_stat_statements to see which statements cost the most"
            ),
            items: Vec::new(),
            notable: false,
        });
    }
    let rows = client
        .query(
            "SELECT calls, total_exec_time, mean_exec_time, rows, query FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY total_exec_time DESC LIMIT $1",
            &[&TOP_STATEMENTS],
        )
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            let e = PgError::sql("reading pg_stat_statements", e);
            return Ok(Finding {
                topic: "top statements".into(),
                summary: format!("pg_stat_statements is installed in {dbname} but cannot be read: {e}"),
                items: Vec::new(),
                notable: false,
            });
        }
    };
    let items = rows
        .iter()
        .map(|r| {
            let (calls, total, mean, n): (i64, f64, f64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
            format!(
                "{:.1}ms in all over {calls} call(s), {mean:.2}ms each, {n} row(s): {}",
                total,
                q(r.get(4))
            )
        })
        .collect();
    Ok(Finding {
        topic: "top statements".into(),
        summary: format!(
            "the statements of {dbname} that took the most time (pg_stat_statements); {STATEMENTS_TEXT}"
        ),
        items,
        notable: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_comments_never_survive_normalization() {
        for (sql, want) in [
            (
                "UPDATE users SET password = 'hunter2', age = 42 WHERE id = $1 /* by admin */",
                "UPDATE users SET password = ?, age = ? WHERE id = $1",
            ),
            ("select 'it''s' || x1 from t2", "select ? || x1 from t2"),
            ("SELECT -1.5e-3, 0x1F, .5", "SELECT -?, ?, .?"),
            ("SELECT \"weird 'col'\" FROM t", "SELECT \"weird 'col'\" FROM t"),
            ("SELECT $fn$ body 'x' $fn$ AS f", "SELECT ? AS f"),
            ("SELECT 'unterminated", "SELECT ?"),
            ("/* a /* nested */ comment */ SELECT 1", "SELECT ?"),
            ("SELECT 1 -- 'tail'", "SELECT ?"),
            (
                "SELECT * FROM users -- who\n WHERE email = 'a@b.c' AND id IN (1, 2.5e3) AND t1.x = $1",
                "SELECT * FROM users WHERE email = ? AND id IN (?, ?) AND t1.x = $1",
            ),
            (
                "ALTER ROLE app PASSWORD E'pw\\'x' /* c */",
                "ALTER ROLE app PASSWORD E?",
            ),
            ("SELECT $q$ secret $q$, $$x$$", "SELECT ?, ?"),
        ] {
            assert_eq!(normalize_query(sql, 200), want, "{sql}");
        }
        assert_eq!(normalize_query("SELECT a, b, c", 6), "SELECT…");
        assert_eq!(human(5.0), "5.0s");
        assert_eq!(human(125.0), "2m05s");
        assert_eq!(human(7300.0), "2h01m");
    }
}
