//! The checks behind `check_integrity` and `check_prepared`: connectivity, SQL assertions,
//! foreign keys (including those created `NOT VALID`), row counts against a manifest, and
//! sequences that would hand out values already used. Every query only reads.
//!
//! Foreign keys and sequences are measured ([`foreign_keys`], [`sequences`],
//! [`IntegrityBaseline::measure`]) apart from being judged ([`check_foreign_keys`],
//! [`check_sequences`]), so that the same measurement serves as a snapshot's baseline and
//! what is measured later is judged against it.

use crate::error::PgError;
use crate::ident::quote_ident;
use rollback_core::{CheckResult, SqlAssertion};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Schemas that are never the application's.
const USER_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// The exact row count of one table when the snapshot was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableCount {
    /// Schema.
    pub(crate) schema: String,
    /// Table.
    pub(crate) table: String,
    /// `count(*)` in the dump's own MVCC snapshot.
    pub(crate) rows: i64,
}

/// Exact `count(*)` of every user table (`FROM ONLY`, so inherited rows count once), sorted
/// by schema and table. Run it inside the dump's transaction to match the dump exactly.
pub(crate) async fn row_counts(client: &Client) -> Result<Vec<TableCount>, PgError> {
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
pub(crate) async fn assertions(client: &Client, assertions: &[SqlAssertion]) -> Vec<CheckResult> {
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

/// One foreign key and the rows that break it, as measured by [`foreign_keys`]. A key is
/// identified by its table's schema, its table and its constraint name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ForeignKeyState {
    /// Schema of the referencing table.
    pub(crate) schema: String,
    /// The referencing table.
    pub(crate) table: String,
    /// The constraint's name.
    pub(crate) constraint: String,
    /// False for a key added `NOT VALID` and never validated.
    pub(crate) validated: bool,
    /// Rows of the referencing table whose key matches no parent row.
    pub(crate) orphans: i64,
}

impl ForeignKeyState {
    fn same_key(&self, other: &ForeignKeyState) -> bool {
        self.schema == other.schema && self.table == other.table && self.constraint == other.constraint
    }

    /// `orders_user_fk on public.orders`.
    fn name(&self) -> String {
        format!("{} on {}.{}", self.constraint, self.schema, self.table)
    }

    fn not_valid(&self) -> &'static str {
        if self.validated {
            ""
        } else {
            "NOT VALID"
        }
    }
}

/// One sequence owned by a column (serial or identity), as measured by [`sequences`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SequenceState {
    /// Schema of the sequence.
    pub(crate) schema: String,
    /// The sequence.
    pub(crate) sequence: String,
    /// Schema of the owning table.
    pub(crate) table_schema: String,
    /// The owning table.
    pub(crate) table: String,
    /// The owning column.
    pub(crate) column: String,
    /// The value the next `nextval` hands out.
    pub(crate) next: i64,
    /// The sequence's increment.
    pub(crate) increment: i64,
    /// The column's largest value, `None` for an empty table.
    pub(crate) column_max: Option<i64>,
}

impl SequenceState {
    /// How far the sequence is behind its column: 0 when its next value is above the
    /// column's maximum (or it counts down), else `max - next + 1`, the number of values it
    /// would hand out that may already be used.
    pub(crate) fn behind_by(&self) -> i64 {
        match self.column_max {
            Some(max) if self.increment > 0 && self.next <= max => {
                max.saturating_sub(self.next).saturating_add(1)
            }
            _ => 0,
        }
    }

    fn same_sequence(&self, other: &SequenceState) -> bool {
        self.schema == other.schema && self.sequence == other.sequence
    }

    fn describe(&self) -> String {
        format!(
            "{}.{} would hand out {} but {}.{}.{} already holds {}",
            self.schema,
            self.sequence,
            self.next,
            self.table_schema,
            self.table,
            self.column,
            self.column_max.unwrap_or_default()
        )
    }
}

/// What was already broken in a snapshot's data when it was taken: orphan rows per foreign
/// key and how far each owned sequence is behind its column. Recorded in the manifest (in
/// the dump's own MVCC snapshot) so that later checks fail only on what got worse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IntegrityBaseline {
    /// Every foreign key, broken or not.
    pub(crate) foreign_keys: Vec<ForeignKeyState>,
    /// Every owned sequence, behind or not.
    pub(crate) sequences: Vec<SequenceState>,
}

impl IntegrityBaseline {
    /// Measures foreign keys and sequences on the database `client` is connected to (inside
    /// the caller's transaction, if any).
    pub(crate) async fn measure(client: &Client) -> Result<IntegrityBaseline, PgError> {
        Ok(IntegrityBaseline {
            foreign_keys: foreign_keys(client).await?,
            sequences: sequences(client).await?,
        })
    }

    /// One line per broken key or sequence, for [`SnapshotInfo::warnings`](rollback_core::SnapshotInfo::warnings),
    /// e.g. `foreign key orders_user_fk on public.orders: 3 orphan rows at snapshot time (NOT VALID)`.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let keys = self.foreign_keys.iter().filter(|k| k.orphans > 0).map(|k| {
            let nv = if k.validated { "" } else { " (NOT VALID)" };
            format!(
                "foreign key {}: {} orphan rows at snapshot time{nv}",
                k.name(),
                k.orphans
            )
        });
        let seqs = self
            .sequences
            .iter()
            .filter(|s| s.behind_by() > 0)
            .map(|s| format!("sequence {} at snapshot time", s.describe()));
        keys.chain(seqs).collect()
    }
}

/// A snapshot's baseline, named for the report.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Baseline<'a> {
    /// The snapshot it belongs to.
    pub(crate) snapshot: &'a str,
    /// What was measured, or `None` when the snapshot records none (taken by an older
    /// version and never staged since): then every orphan row fails, as without a baseline.
    pub(crate) measured: Option<&'a IntegrityBaseline>,
}

impl Baseline<'_> {
    fn suffix(&self) -> String {
        match self.measured {
            Some(_) => format!(" (measured against the baseline of snapshot {})", self.snapshot),
            None => format!(
                " (snapshot {} records no integrity baseline: judged without one)",
                self.snapshot
            ),
        }
    }
}

/// Every foreign key, validated or not, with its orphan rows counted by a `NOT EXISTS`
/// query, sorted by schema, table and constraint name.
pub(crate) async fn foreign_keys(client: &Client) -> Result<Vec<ForeignKeyState>, PgError> {
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
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let name: String = row.get(0);
        let validated: bool = row.get(1);
        let match_full = row.get::<_, String>(2) == "f";
        let (schema, table): (String, String) = (row.get(3), row.get(4));
        let child = rel(schema.clone(), table.clone(), row.get(5));
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
        let q = format!("SELECT count(*) FROM {child} c WHERE {cond}");
        let orphans: i64 = client
            .query_one(&q, &[])
            .await
            .map_err(|e| PgError::sql(format!("checking foreign key {name}"), e))?
            .get(0);
        out.push(ForeignKeyState {
            schema,
            table,
            constraint: name,
            validated,
            orphans,
        });
    }
    Ok(out)
}

/// Judges foreign keys measured now. Without a baseline (or with an unknown one) any
/// orphan row fails; with one, a key passes while it has no more orphan rows than it had
/// at snapshot time (reported as such), and fails when it has more or is new.
pub(crate) fn check_foreign_keys(now: &[ForeignKeyState], baseline: Option<Baseline<'_>>) -> CheckResult {
    let known = baseline.and_then(|b| b.measured);
    let (mut broken, mut tolerated) = (Vec::new(), Vec::new());
    for k in now.iter().filter(|k| k.orphans > 0) {
        let nv = k.not_valid();
        let then = known.map(|b| b.foreign_keys.iter().find(|o| o.same_key(k)));
        match then {
            None => {
                let nv = if nv.is_empty() {
                    String::new()
                } else {
                    format!(", {nv}")
                };
                broken.push(format!("{} ({} orphan rows{nv})", k.name(), k.orphans));
            }
            Some(Some(b)) if k.orphans <= b.orphans => {
                let nv = if nv.is_empty() {
                    String::new()
                } else {
                    format!(" ({nv})")
                };
                let as_at = if k.orphans == b.orphans {
                    "as at snapshot time".to_owned()
                } else {
                    format!("{} at snapshot time", b.orphans)
                };
                tolerated.push(format!("{}: {} orphan rows, {as_at}{nv}", k.name(), k.orphans));
            }
            Some(Some(b)) => {
                let nv = if nv.is_empty() {
                    String::new()
                } else {
                    format!(", {nv}")
                };
                broken.push(format!(
                    "{} ({} orphan rows, {} at snapshot time{nv})",
                    k.name(),
                    k.orphans,
                    b.orphans
                ));
            }
            Some(None) => {
                let nv = if nv.is_empty() {
                    String::new()
                } else {
                    format!(", {nv}")
                };
                broken.push(format!(
                    "{} ({} orphan rows{nv}; the key is not in the snapshot's baseline)",
                    k.name(),
                    k.orphans
                ));
            }
        }
    }
    judged(
        "foreign keys",
        &broken,
        &tolerated,
        format!("{} foreign keys checked, no orphan rows", now.len()),
        format!(
            "{} foreign keys checked, none worse than at snapshot time",
            now.len()
        ),
        format!(
            "{} of {} foreign keys broken: {}",
            broken.len(),
            now.len(),
            broken.join("; ")
        ),
        baseline,
    )
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
pub(crate) async fn compare_row_counts(
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

/// Every sequence owned by a column (serial or identity) with its next value and the
/// column's maximum, sorted by schema and name. One whose next value is not above the
/// maximum ([`SequenceState::behind_by`] > 0) makes the next insert fail with a duplicate key.
pub(crate) async fn sequences(client: &Client) -> Result<Vec<SequenceState>, PgError> {
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
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let (schema, sequence): (String, String) = (row.get(0), row.get(1));
        let (table_schema, table, column): (String, String, String) = (row.get(2), row.get(3), row.get(4));
        let last: Option<i64> = row.get(5);
        let start: i64 = row.get(6);
        let increment: i64 = row.get(7);
        let q = format!(
            "SELECT max({})::bigint FROM {}",
            quote_ident(&column),
            qualified(&table_schema, &table)
        );
        let column_max: Option<i64> = client
            .query_one(&q, &[])
            .await
            .map_err(|e| PgError::sql(format!("reading max({column}) of {table_schema}.{table}"), e))?
            .get(0);
        out.push(SequenceState {
            schema,
            sequence,
            table_schema,
            table,
            column,
            next: last.map_or(start, |l| l.saturating_add(increment)),
            increment,
            column_max,
        });
    }
    Ok(out)
}

/// Judges sequences measured now. Without a baseline (or with an unknown one) any sequence
/// behind its column fails; with one, a sequence passes while it is no further behind than
/// at snapshot time, and fails when it is further behind or was not behind then.
pub(crate) fn check_sequences(now: &[SequenceState], baseline: Option<Baseline<'_>>) -> CheckResult {
    let known = baseline.and_then(|b| b.measured);
    let (mut behind, mut tolerated) = (Vec::new(), Vec::new());
    for s in now.iter().filter(|s| s.behind_by() > 0) {
        let then = known
            .and_then(|b| b.sequences.iter().find(|o| o.same_sequence(s)))
            .map_or(0, SequenceState::behind_by);
        if known.is_some() && s.behind_by() <= then {
            tolerated.push(format!("{}, as at snapshot time", s.describe()));
        } else if known.is_some() && then > 0 {
            behind.push(format!(
                "{} ({} values behind, {then} at snapshot time)",
                s.describe(),
                s.behind_by()
            ));
        } else {
            behind.push(s.describe());
        }
    }
    judged(
        "sequences",
        &behind,
        &tolerated,
        format!("{} owned sequences ahead of their columns", now.len()),
        format!(
            "{} owned sequences checked, none further behind than at snapshot time",
            now.len()
        ),
        format!(
            "sequences behind their columns (fix with setval): {}",
            behind.join("; ")
        ),
        baseline,
    )
}

/// A check judged against a snapshot's baseline: `clean` when nothing is wrong,
/// `all_tolerated` followed by the tolerated list when only what the snapshot already had is
/// found, else `failed` followed by what is tolerated; the baseline's note at the end.
fn judged(
    name: &str,
    failures: &[String],
    tolerated: &[String],
    clean: String,
    all_tolerated: String,
    failed: String,
    baseline: Option<Baseline<'_>>,
) -> CheckResult {
    let mut detail = if failures.is_empty() && tolerated.is_empty() {
        clean
    } else if failures.is_empty() {
        format!("{all_tolerated}: {}", tolerated.join("; "))
    } else if tolerated.is_empty() {
        failed
    } else {
        format!(
            "{failed}; no worse than at snapshot time: {}",
            tolerated.join("; ")
        )
    };
    if let Some(b) = baseline {
        detail.push_str(&b.suffix());
    }
    CheckResult {
        name: name.to_owned(),
        passed: failures.is_empty(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, orphans: i64, validated: bool) -> ForeignKeyState {
        ForeignKeyState {
            schema: "public".into(),
            table: "orders".into(),
            constraint: name.into(),
            validated,
            orphans,
        }
    }

    fn seq(next: i64, max: Option<i64>) -> SequenceState {
        SequenceState {
            schema: "public".into(),
            sequence: "t_id_seq".into(),
            table_schema: "public".into(),
            table: "t".into(),
            column: "id".into(),
            next,
            increment: 1,
            column_max: max,
        }
    }

    #[test]
    fn foreign_keys_are_judged_against_the_baseline_per_key() {
        let then = IntegrityBaseline {
            foreign_keys: vec![key("a_fk", 3, false), key("b_fk", 0, true)],
            sequences: vec![],
        };
        let baseline = Baseline {
            snapshot: "s1",
            measured: Some(&then),
        };
        let same = check_foreign_keys(&[key("a_fk", 3, false), key("b_fk", 0, true)], Some(baseline));
        assert!(same.passed, "{same:?}");
        assert!(
            same.detail
                .contains("a_fk on public.orders: 3 orphan rows, as at snapshot time (NOT VALID)")
                && same.detail.contains("baseline of snapshot s1"),
            "{}",
            same.detail
        );
        let fewer = check_foreign_keys(&[key("a_fk", 1, false)], Some(baseline));
        assert!(
            fewer.passed && fewer.detail.contains("1 orphan rows, 3 at snapshot time"),
            "{fewer:?}"
        );
        let worse = check_foreign_keys(&[key("a_fk", 4, false), key("b_fk", 1, true)], Some(baseline));
        assert!(!worse.passed);
        assert!(
            worse.detail.starts_with("2 of 2 foreign keys broken"),
            "{}",
            worse.detail
        );
        let new = check_foreign_keys(&[key("c_fk", 1, true)], Some(baseline));
        assert!(
            !new.passed && new.detail.contains("not in the snapshot's baseline"),
            "{new:?}"
        );
        let strict = check_foreign_keys(&[key("a_fk", 3, false)], None);
        assert!(
            !strict.passed
                && strict
                    .detail
                    .contains("a_fk on public.orders (3 orphan rows, NOT VALID)")
        );
        let unknown = check_foreign_keys(
            &[key("a_fk", 3, false)],
            Some(Baseline {
                snapshot: "old",
                measured: None,
            }),
        );
        assert!(
            !unknown.passed && unknown.detail.contains("records no integrity baseline"),
            "{unknown:?}"
        );
    }

    #[test]
    fn sequences_are_judged_by_how_far_behind_they_are() {
        assert_eq!(seq(101, Some(100)).behind_by(), 0);
        assert_eq!(seq(100, Some(100)).behind_by(), 1);
        assert_eq!(seq(1, None).behind_by(), 0);
        let then = IntegrityBaseline {
            foreign_keys: vec![],
            sequences: vec![seq(3, Some(50))],
        };
        let baseline = Some(Baseline {
            snapshot: "s1",
            measured: Some(&then),
        });
        assert!(check_sequences(&[seq(4, Some(50))], baseline).passed);
        let worse = check_sequences(&[seq(4, Some(80))], baseline);
        assert!(
            !worse.passed && worse.detail.contains("77 values behind, 48 at snapshot time"),
            "{worse:?}"
        );
        assert!(!check_sequences(&[seq(3, Some(50))], None).passed);
        let w = then.warnings();
        assert_eq!(
            w,
            vec![
                "sequence public.t_id_seq would hand out 3 but public.t.id already holds 50 at snapshot time"
            ]
        );
    }
}
