//! Quoting of SQL identifiers and libpq connection-string values, and the names of the
//! databases this adapter derives from the live one.

/// PostgreSQL's identifier limit in bytes (`NAMEDATALEN - 1`); longer names are silently
/// truncated by the server, so derived names are cut to fit before use.
pub(crate) const MAX_IDENT_BYTES: usize = 63;

/// Quotes an SQL identifier: wraps it in `"` and doubles any `"` inside, so that any name
/// (spaces, quotes, upper case, unicode) is taken literally.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal (`'` doubled). Only for statements that take no
/// parameters (e.g. `CREATE DATABASE ... LC_COLLATE`).
pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Quotes a value for a libpq `key=value` connection string: wrapped in `'`, with `\` and
/// `'` escaped by a backslash.
pub(crate) fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `base` followed by `suffix`, with `base` cut (on a character boundary) so that the
/// whole fits in [`MAX_IDENT_BYTES`].
pub(crate) fn derived_name(base: &str, suffix: &str) -> String {
    let room = MAX_IDENT_BYTES.saturating_sub(suffix.len());
    let mut cut = base.len().min(room);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &base[..cut])
}

/// The staging database a snapshot is restored into before the switch.
pub(crate) fn staging_name(live: &str) -> String {
    derived_name(live, "__rollback_staging")
}

/// The prefix (after cutting) of the databases `preserve_current` keeps aside.
pub(crate) fn preserved_prefix(live: &str) -> String {
    // Cut as if the timestamp were there, so the prefix matches the real names.
    let full = derived_name(live, "__pre_rollback_00000000T000000");
    full[..full.len() - "00000000T000000".len()].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_ident_doubles_quotes_and_keeps_everything_else() {
        assert_eq!(quote_ident("app"), "\"app\"");
        assert_eq!(quote_ident("Weird \"DB\" ünï"), "\"Weird \"\"DB\"\" ünï\"");
        assert_eq!(quote_ident(""), "\"\"");
        assert_eq!(quote_ident("a\"\"b"), "\"a\"\"\"\"b\"");
        assert_eq!(quote_ident("Upper Case"), "\"Upper Case\"");
        assert_eq!(quote_ident("ünï;DROP"), "\"ünï;DROP\"");
    }

    #[test]
    fn quote_literal_doubles_single_quotes() {
        assert_eq!(quote_literal("en_US.UTF-8"), "'en_US.UTF-8'");
        assert_eq!(quote_literal("o'k"), "'o''k'");
    }

    #[test]
    fn conninfo_values_escape_backslashes_and_quotes() {
        assert_eq!(conninfo_value("it's a\\b"), "'it\\'s a\\\\b'");
    }

    #[test]
    fn derived_names_fit_and_cut_on_char_boundaries() {
        assert_eq!(derived_name("app", "__rollback_staging"), "app__rollback_staging");
        assert_eq!(derived_name(&"é".repeat(40), "__x").len(), 63);
        let long = "ü".repeat(50);
        let n = derived_name(&long, "__pre_rollback_20260101T000000");
        assert!(n.len() <= MAX_IDENT_BYTES, "{n} is {} bytes", n.len());
        assert!(n.ends_with("__pre_rollback_20260101T000000"));
        assert!(n.starts_with(&preserved_prefix(&long)));
        assert_eq!(staging_name("app"), "app__rollback_staging");
        assert_eq!(preserved_prefix("app"), "app__pre_rollback_");
    }
}
