//! The checks behind `check_integrity`: connectivity, SQL assertions, foreign keys
//! (including those created `NOT VALID`), row counts against a manifest, and sequences that
//! would hand out values already used. Every query only reads.

use crate::error::PgError;
use crate::ident::quote_ident;
use crate::manifest::TableCount;
use rollback_core::{CheckResult, SqlAssertion};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Schemas that are never the application's.
const USER_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// Exact `count(*)` of every user table (`FROM ONLY`, so inherited rows count once), sorted
/// by schema and table. Run it inside the dump's transaction to match the dump exactly.
pub async fn row_counts(client: &Client) -> Result<Vec<TableCount>, PgError> {
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND {USER_SCHEMAS} ORDER BY 1, 2"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| PgError::sql("listing user tables", e))?;
    let mut counts = Vec::with_capacity(rows.len());
    for row in rows {
        let (schema, table): (String, String) = (row.get(0), row.get(1));
        let q = format!("SELECT count(*) FROM ONLY {}", qualified(&schema, &table));
        let n: i64 = client
            .query_one(&q, &[])
            .await
            .map_err(|e| PgError::sql(format!("counting rows of {schema}.{table}"), e))?
            .get(0);
        counts.push(TableCount {
            schema,
            table,
            rows: n,
        });
    }
    Ok(counts)
}

/// Runs each assertion in a read-only transaction: it passes when its first row's first
/// column is true or a number greater than zero.
pub async fn assertions(client: &Client, assertions: &[SqlAssertion]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for a in assertions {
        let (passed, detail) = match run_assertion(client, &a.sql).await {
            Ok(Some(v)) => {
                let ok = v == "t" || v == "true" || v.parse::<f64>().is_ok_and(|n| n > 0.0);
                (ok, format!("returned {v}"))
            }
            Ok(None) => (false, "returned no row (or NULL)".to_owned()),
            Err(e) => (false, format!("query failed: {e}")),
        };
        out.push(CheckResult {
            name: format!("assertion: {}", a.name),
            passed,
            detail,
        });
    }
    out
}

async fn run_assertion(client: &Client, sql: &str) -> Result<Option<String>, PgError> {
    client
        .batch_execute("BEGIN READ ONLY")
        .await
        .map_err(|e| PgError::sql("starting a read-only transaction", e))?;
    let result = client.simple_query(sql).await;
    let _ = client.batch_execute("ROLLBACK").await;
    let messages = result.map_err(|e| PgError::sql("assertion", e))?;
    Ok(messages
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
            _ => None,
        })
        .flatten())
}

/// Every foreign key, validated or not, checked for orphan rows with a `NOT EXISTS` query.
pub async fn foreign_keys(client: &Client) -> Result<CheckResult, PgError> {
    let sql = format!(
        "SELECT c.conname::text, c.convalidated, c.confmatchtype::text, \
           n.nspname::text, cr.relname::text, cr.relkind::text, \
           fnsp.nspname::text, fr.relname::text, fr.relkind::text, \
           ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(num, ord) \
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.ord), \
           ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(num, ord) \
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num ORDER BY k.ord) \
         FROM pg_constraint c \
         JOIN pg_class cr ON cr.oid = c.conrelid JOIN pg_namespace n ON n.oid = cr.relnamespace \
         JOIN pg_class fr ON fr.oid = c.confrelid JOIN pg_namespace fnsp ON fnsp.oid = fr.relnamespace \
         WHERE c.contype = 'f' AND c.conparentid = 0 AND {USER_SCHEMAS} ORDER BY 4, 5, 1"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| PgError::sql("listing foreign keys", e))?;
    let mut broken = Vec::new();
    for row in &rows {
        let name: String = row.get(0);
        let validated: bool = row.get(1);
        let match_full = row.get::<_, String>(2) == "f";
        let table = rel(row.get(3), row.get(4), row.get(5));
        let parent = rel(row.get(6), row.get(7), row.get(8));
        let cols: Vec<String> = row.get(9);
        let pcols: Vec<String> = row.get(10);
        let all_set = cols
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let join = cols
            .iter()
            .zip(&pcols)
            .map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut cond = format!("(({all_set}) AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {join}))");
        if match_full && cols.len() > 1 {
            let all_null = cols
                .iter()
                .map(|c| format!("c.{} IS NULL", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(" AND ");
            cond = format!("({cond} OR (NOT ({all_set}) AND NOT ({all_null})))");
        }
        let q = format!("SELECT count(*) FROM {table} c WHERE {cond}");
        let orphans: i64 = client
            .query_one(&q, &[])
            .await
            .map_err(|e| PgError::sql(format!("checking foreign key {name}"), e))?
            .get(0);
        if orphans > 0 {
            let v = if validated { "" } else { ", NOT VALID" };
            broken.push(format!(
                "{name} on {}.{} ({orphans} orphan rows{v})",
                row.get::<_, String>(3),
                row.get::<_, String>(4)
            ));
        }
    }
    Ok(CheckResult {
        name: "foreign keys".to_owned(),
        passed: broken.is_empty(),
        detail: if broken.is_empty() {
            format!("{} foreign keys checked, no orphan rows", rows.len())
        } else {
            format!(
                "{} of {} foreign keys broken: {}",
                broken.len(),
                rows.len(),
                broken.join("; ")
            )
        },
    })
}

/// `ONLY schema.table` for plain tables (inherited children are not the key's business);
/// a partitioned table is read whole.
fn rel(schema: String, name: String, kind: String) -> String {
    let q = qualified(&schema, &name);
    if kind == "p" {
        q
    } else {
        format!("ONLY {q}")
    }
}

/// Row counts now against `expected` (from a snapshot's manifest).
pub async fn compare_row_counts(
    client: &Client,
    expected: &[TableCount],
    snapshot: &str,
) -> Result<CheckResult, PgError> {
    let now = row_counts(client).await?;
    let mut diffs = Vec::new();
    for e in expected {
        match now.iter().find(|t| t.schema == e.schema && t.table == e.table) {
            Some(t) if t.rows == e.rows => {}
            Some(t) => diffs.push(format!(
                "{}.{}: {} rows, snapshot had {}",
                e.schema, e.table, t.rows, e.rows
            )),
            None => diffs.push(format!(
                "{}.{}: missing (snapshot had {} rows)",
                e.schema, e.table, e.rows
            )),
        }
    }
    let extra: Vec<String> = now
        .iter()
        .filter(|t| {
            !expected
                .iter()
                .any(|e| e.schema == t.schema && e.table == t.table)
        })
        .map(|t| format!("{}.{}", t.schema, t.table))
        .collect();
    let mut detail = if diffs.is_empty() {
        format!("{} tables match snapshot {snapshot}", expected.len())
    } else {
        format!("differs from snapshot {snapshot}: {}", diffs.join("; "))
    };
    if !extra.is_empty() {
        detail.push_str(&format!("; tables not in the snapshot: {}", extra.join(", ")));
    }
    Ok(CheckResult {
        name: "row counts".to_owned(),
        passed: diffs.is_empty(),
        detail,
    })
}

/// Sequences owned by a column (serial or identity) whose next value is not above the
/// column's maximum: the next insert would fail with a duplicate key.
pub async fn sequences(client: &Client) -> Result<CheckResult, PgError> {
    let sql = format!(
        "SELECT ps.schemaname::text, ps.sequencename::text, n.nspname::text, t.relname::text, a.attname::text, \
           ps.last_value, ps.start_value, ps.increment_by \
         FROM pg_depend d \
         JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
         JOIN pg_namespace sn ON sn.oid = s.relnamespace \
         JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname \
         JOIN pg_class t ON t.oid = d.refobjid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
           AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 AND {USER_SCHEMAS} ORDER BY 1, 2"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| PgError::sql("listing sequences", e))?;
    let mut behind = Vec::new();
    for row in &rows {
        let (sschema, seq): (String, String) = (row.get(0), row.get(1));
        let (schema, table, column): (String, String, String) = (row.get(2), row.get(3), row.get(4));
        let last: Option<i64> = row.get(5);
        let start: i64 = row.get(6);
        let inc: i64 = row.get(7);
        let q = format!(
            "SELECT max({})::bigint FROM {}",
            quote_ident(&column),
            qualified(&schema, &table)
        );
        let max: Option<i64> = client
            .query_one(&q, &[])
            .await
            .map_err(|e| PgError::sql(format!("reading max({column}) of {schema}.{table}"), e))?
            .get(0);
        let next = last.map_or(start, |l| l.saturating_add(inc));
        let problem = match max {
            Some(m) if inc > 0 && next <= m => Some(m),
            _ => None,
        };
        if let Some(m) = problem {
            behind.push(format!(
                "{sschema}.{seq} would hand out {next} but {schema}.{table}.{column} already holds {m}"
            ));
        }
    }
    Ok(CheckResult {
        name: "sequences".to_owned(),
        passed: behind.is_empty(),
        detail: if behind.is_empty() {
            format!("{} owned sequences ahead of their columns", rows.len())
        } else {
            format!(
                "sequences behind their columns (fix with setval): {}",
                behind.join("; ")
            )
        },
    })
}
