//! Database-level properties (owner, encoding, grants, `ALTER DATABASE .. SET`) that a
//! dump of one database does not carry: captured at snapshot time, re-applied to the
//! staging database before the switch.

use crate::error::PgError;
use crate::ident::{quote_ident, quote_literal};
use crate::manifest::DatabaseProps;
use tokio_postgres::Client;

/// Reads the properties of the database `client` is connected to.
pub(crate) async fn capture(client: &Client) -> Result<DatabaseProps, PgError> {
    let row = client
        .query_one(
            "SELECT pg_get_userbyid(d.datdba)::text, pg_encoding_to_char(d.encoding)::text, \
               d.datcollate::text, d.datctype::text, d.datacl::text[], \
               shobj_description(d.oid, 'pg_database') \
             FROM pg_database d WHERE d.datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| PgError::sql("reading the database's properties", e))?;
    let settings = client
        .query(
            "SELECT coalesce(r.rolname::text, ''), s.setconfig FROM pg_db_role_setting s \
             LEFT JOIN pg_roles r ON r.oid = s.setrole \
             WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| PgError::sql("reading the database's settings", e))?;
    Ok(DatabaseProps {
        owner: row.get(0),
        encoding: row.get(1),
        collate: row.get(2),
        ctype: row.get(3),
        acl: row.get(4),
        comment: row.get(5),
        settings: settings
            .iter()
            .flat_map(|r| {
                let role: String = r.get(0);
                let items: Vec<String> = r.get::<_, Option<Vec<String>>>(1).unwrap_or_default();
                items.into_iter().map(move |i| (role.clone(), i))
            })
            .collect(),
    })
}

/// `CREATE DATABASE` for a fresh database with the snapshot's encoding and locale, and its
/// owner when `with_owner`.
pub(crate) fn create_statement(name: &str, props: &DatabaseProps, with_owner: bool) -> String {
    let mut sql = format!("CREATE DATABASE {} WITH TEMPLATE template0", quote_ident(name));
    if !props.encoding.is_empty() {
        sql.push_str(&format!(" ENCODING {}", quote_literal(&props.encoding)));
    }
    if !props.collate.is_empty() {
        sql.push_str(&format!(" LC_COLLATE {}", quote_literal(&props.collate)));
    }
    if !props.ctype.is_empty() {
        sql.push_str(&format!(" LC_CTYPE {}", quote_literal(&props.ctype)));
    }
    if with_owner && !props.owner.is_empty() {
        sql.push_str(&format!(" OWNER {}", quote_ident(&props.owner)));
    }
    sql
}

/// Re-applies grants, settings and the comment to database `name`; what could not be
/// applied is returned, one line each (the caller decides: before the stop, that refuses).
pub(crate) async fn apply(client: &Client, name: &str, props: &DatabaseProps) -> Vec<String> {
    let mut notes = Vec::new();
    let db = quote_ident(name);
    if let Some(comment) = &props.comment {
        if let Err(e) = client
            .batch_execute(&format!("COMMENT ON DATABASE {db} IS {}", quote_literal(comment)))
            .await
        {
            notes.push(format!(
                "could not re-apply the database's comment: {}",
                PgError::sql("comment", e)
            ));
        }
    }
    if let Some(acl) = &props.acl {
        let mut stmts = vec![format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC")];
        for item in acl {
            match parse_acl_item(item) {
                Some((grantee, privs, grantable)) => {
                    let to = if grantee.is_empty() {
                        "PUBLIC".to_owned()
                    } else {
                        quote_ident(&grantee)
                    };
                    if !privs.is_empty() {
                        stmts.push(format!("GRANT {} ON DATABASE {db} TO {to}", privs.join(", ")));
                    }
                    if !grantable.is_empty() {
                        stmts.push(format!(
                            "GRANT {} ON DATABASE {db} TO {to} WITH GRANT OPTION",
                            grantable.join(", ")
                        ));
                    }
                }
                None => notes.push(format!(
                    "could not read database grant `{item}`: re-grant it by hand"
                )),
            }
        }
        for s in stmts {
            if let Err(e) = client.batch_execute(&s).await {
                notes.push(format!(
                    "could not re-apply a database grant ({s}): {}",
                    PgError::sql("grant", e)
                ));
            }
        }
    }
    for (role, item) in &props.settings {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            notes.push(format!("skipped database setting `{key}`: unexpected name"));
            continue;
        }
        let target = if role.is_empty() {
            format!("DATABASE {db}")
        } else {
            format!("ROLE {} IN DATABASE {db}", quote_ident(role))
        };
        // set_config parses the value exactly as the server stored it (lists included);
        // FROM CURRENT then copies it. Transaction-local, in a transaction already started
        // read-write, so that a setting such as default_transaction_read_only or
        // statement_timeout cannot get in the way or outlive it.
        let result = async {
            client.batch_execute("BEGIN READ WRITE").await?;
            client
                .query_one("SELECT set_config($1, $2, true)", &[&key, &value])
                .await?;
            client
                .batch_execute(&format!("ALTER {target} SET {key} FROM CURRENT"))
                .await?;
            client.batch_execute("COMMIT").await
        }
        .await;
        if result.is_err() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        if let Err(e) = result {
            notes.push(format!(
                "could not re-apply setting {key} on {target}: {}",
                PgError::sql("setting", e)
            ));
        }
    }
    notes
}

/// `grantee=privs/grantor` into (grantee, privileges, privileges with grant option).
fn parse_acl_item(item: &str) -> Option<(String, Vec<&'static str>, Vec<&'static str>)> {
    let (grantee, rest) = if let Some(quoted) = item.strip_prefix('"') {
        // A quoted name: `""` is a quote inside.
        let mut name = String::new();
        let mut chars = quoted.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().map(|(_, n)| *n) == Some('"') {
                    name.push('"');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                name.push(c);
            }
        }
        (name, quoted.get(end?..)?.strip_prefix('=')?)
    } else {
        let (g, r) = item.split_once('=')?;
        (g.to_owned(), r)
    };
    let privs = rest.split('/').next()?;
    let (mut plain, mut grantable) = (Vec::new(), Vec::new());
    let mut chars = privs.chars().peekable();
    while let Some(c) = chars.next() {
        let p = match c {
            'C' => "CREATE",
            'T' => "TEMPORARY",
            'c' => "CONNECT",
            _ => return None,
        };
        if chars.peek() == Some(&'*') {
            chars.next();
            grantable.push(p);
        } else {
            plain.push(p);
        }
    }
    Some((grantee, plain, grantable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_items_parse() {
        assert_eq!(
            parse_acl_item("=Tc/postgres"),
            Some((String::new(), vec!["TEMPORARY", "CONNECT"], vec![]))
        );
        assert_eq!(
            parse_acl_item("\"my \"\"role\"\"=x\"=c*/postgres"),
            Some(("my \"role\"=x".to_owned(), vec![], vec!["CONNECT"]))
        );
        assert_eq!(parse_acl_item("app=CTc/app").map(|p| p.1.len()), Some(3));
        assert_eq!(parse_acl_item("garbage"), None);
    }

    #[test]
    fn create_statement_quotes_everything() {
        let props = DatabaseProps {
            owner: "o\"wner".into(),
            encoding: "UTF8".into(),
            collate: "C".into(),
            ctype: "C".into(),
            ..DatabaseProps::default()
        };
        assert_eq!(
            create_statement("a \"b\"", &props, true),
            "CREATE DATABASE \"a \"\"b\"\"\" WITH TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' OWNER \"o\"\"wner\""
        );
    }
}
