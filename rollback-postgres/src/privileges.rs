//! What a checkpoint and a rollback of this database need from the role the adapter
//! connects as, read from the catalog as the database is now: each missing privilege with
//! what it is for and the statement that grants it. Run by `check`, before a checkpoint
//! and in pre-flight, so that nothing is found missing after the app was stopped.

use crate::error::PgError;
use crate::ident::quote_ident;
use tokio_postgres::Client;

/// One privilege the role lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Missing {
    /// What it is needed for.
    pub(crate) what: String,
    /// The statement (run by an administrator) that grants it.
    pub(crate) grant: String,
}

/// What was found: the privileges checked, and the ones missing.
#[derive(Debug, Default)]
pub(crate) struct Audit {
    pub(crate) checked: Vec<String>,
    pub(crate) missing: Vec<Missing>,
}

/// At most this many names are listed in one line.
const NAMES: usize = 5;

fn names(list: &[String]) -> String {
    let mut shown: Vec<&str> = list.iter().take(NAMES).map(String::as_str).collect();
    if list.len() > NAMES {
        shown.push("...");
    }
    shown.join(", ")
}

/// Audits the role `client` is connected as, on the database it is connected to (the live
/// one).
pub(crate) async fn audit(client: &Client) -> Result<Audit, PgError> {
    let row = client
        .query_one(
            "SELECT current_user::text, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolbypassrls, \
               pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'), \
               pg_get_userbyid(d.datdba)::text, pg_has_role(current_user, d.datdba, 'MEMBER'), \
               current_database()::text \
             FROM pg_roles r, pg_database d \
             WHERE r.rolname = current_user AND d.datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| PgError::sql("reading the role's privileges", e))?;
    let me: String = row.get(0);
    let (superuser, createdb, createrole, bypassrls, signal): (bool, bool, bool, bool, bool) =
        (row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
    let owner: String = row.get(6);
    let owns: bool = row.get(7);
    let db: String = row.get(8);
    let role = quote_ident(&me);
    let mut audit = Audit::default();
    if superuser {
        audit.checked.push(format!("role {me} is a superuser"));
        return Ok(audit);
    }

    // The fast path stages a copy (CREATE DATABASE) and swaps it in by renaming, which
    // needs CREATEDB and the live database's owner. Without CREATEDB the adapter restores
    // in place (slower, said in the report), which cannot undo a partitioned table.
    if !createdb {
        let partitioned: Vec<String> = client
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'p' ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| PgError::sql("listing the partitioned tables", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if partitioned.is_empty() {
            audit.checked.push(format!(
                "no CREATEDB: {db} is restored in place (slower; `ALTER ROLE {role} CREATEDB;` allows the staged switch)"
            ));
        } else {
            audit.missing.push(Missing {
                what: format!(
                    "stage a copy and switch it in by rename (role {me} has no CREATEDB, and an in-place restore \
                     cannot put back partitioned tables such as {})",
                    names(&partitioned)
                ),
                grant: format!("ALTER ROLE {role} CREATEDB;"),
            });
        }
    } else if owns {
        audit.checked.push(format!(
            "may stage a copy and rename {db} (CREATEDB, a member of its owner {owner})"
        ));
    } else {
        audit.missing.push(Missing {
            what: format!(
                "rename {db} aside and back (its owner is {owner}, and {me} is not a member of it)"
            ),
            grant: format!("GRANT {} TO {role};", quote_ident(&owner)),
        });
    }

    // Sessions of other roles on the live database now: the switch must end them.
    if signal {
        audit
            .checked
            .push("may end other roles' sessions (pg_signal_backend)".into());
    } else {
        let others: Vec<String> = client
            .query(
                "SELECT DISTINCT usename::text FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() AND usesysid IS NOT NULL \
                   AND NOT pg_has_role(current_user, usesysid, 'MEMBER') ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| PgError::sql("listing the sessions of other roles", e))?
            .iter()
            .filter_map(|r| r.get::<_, Option<String>>(0))
            .collect();
        if others.is_empty() {
            audit.checked.push(format!(
                "no session of another role is on {db} now (without pg_signal_backend the switch could not end one)"
            ));
        } else {
            audit.missing.push(Missing {
                what: format!(
                    "end the sessions of role(s) {} on {db} when switching (connected now; without the privilege \
                     the switch could only wait for them)",
                    names(&others)
                ),
                grant: format!("GRANT pg_signal_backend TO {role};"),
            });
        }
    }

    // Per-role settings in this database: re-applied after the swap.
    let roles: Vec<String> = client
        .query(
            "SELECT DISTINCT r.rolname::text FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole \
             WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND r.rolname <> current_user ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| PgError::sql("reading the per-role settings", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !roles.is_empty() {
        if createrole {
            audit.checked.push(format!(
                "may re-apply the per-role settings of {} (CREATEROLE)",
                names(&roles)
            ));
        } else {
            audit.missing.push(Missing {
                what: format!(
                    "re-apply the per-role settings of {} in {db} after the swap (ALTER ROLE .. IN DATABASE .. SET)",
                    names(&roles)
                ),
                grant: format!("ALTER ROLE {role} CREATEROLE;"),
            });
        }
    }

    // Tables under row-level security the role is subject to: pg_dump refuses them.
    if bypassrls {
        audit
            .checked
            .push("reads past row-level security (BYPASSRLS)".into());
    } else {
        let tables: Vec<String> = client
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity \
                   AND (c.relforcerowsecurity OR NOT pg_has_role(current_user, c.relowner, 'MEMBER')) \
                 ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| PgError::sql("listing the tables under row-level security", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !tables.is_empty() {
            audit.missing.push(Missing {
                what: format!(
                    "read every row of {} despite row-level security (pg_dump refuses otherwise)",
                    names(&tables)
                ),
                grant: format!("ALTER ROLE {role} BYPASSRLS;"),
            });
        }
    }

    // Tables and sequences the role cannot read: pg_dump fails on the first.
    let unreadable: Vec<(String, String)> = client
        .query(
            "SELECT n.nspname::text, format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'S', 'm') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
               AND NOT has_table_privilege(c.oid, 'SELECT') \
             ORDER BY 2",
            &[],
        )
        .await
        .map_err(|e| PgError::sql("listing the tables the role cannot read", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if !unreadable.is_empty() {
        let mut schemas: Vec<String> = unreadable.iter().map(|(s, _)| s.clone()).collect();
        schemas.dedup();
        let tables: Vec<String> = unreadable.into_iter().map(|(_, t)| t).collect();
        audit.missing.push(Missing {
            what: format!("read {} (pg_dump reads every table and sequence)", names(&tables)),
            grant: schemas
                .iter()
                .map(|s| {
                    format!(
                        "GRANT SELECT ON ALL TABLES IN SCHEMA {0} TO {role}; GRANT SELECT ON ALL SEQUENCES IN SCHEMA {0} TO {role};",
                        quote_ident(s)
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
        });
    } else {
        audit.checked.push("may read every table and sequence".into());
    }
    Ok(audit)
}
