//! A value that must never be shown: passwords, connection strings, config values.

use std::fmt;

/// A secret string (a password, a connection string with a password, a config value).
///
/// `Debug` and `Display` print `[redacted]`; the only way to read the value is
/// [`Secret::expose`], which makes every read easy to find in review. It is deliberately
/// not `Serialize`: a secret cannot end up in a report or a journal by accident.
///
/// ```
/// use rollback_core::Secret;
/// let url = Secret::new("postgres://app:hunter2@db/app");
/// assert_eq!(format!("{url:?} {url}"), "Secret([redacted]) [redacted]");
/// assert!(url.expose().contains("hunter2"));
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value as a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Never log, format into an error, or store what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// A connection URL with its password hidden when shown, e.g. for a log line or a report.
///
/// `scheme://user:password@host/db` is shown as `scheme://user:[redacted]@host/db`; the
/// query string (which may carry `password=`) is dropped from the shown form.
///
/// ```
/// use rollback_core::secret::redact_url;
/// assert_eq!(redact_url("postgres://app:pw@db:5432/app?sslmode=require&password=x"),
///            "postgres://app:[redacted]@db:5432/app?[redacted]");
/// assert_eq!(redact_url("postgres://db/app"), "postgres://db/app");
/// ```
pub fn redact_url(url: &str) -> String {
    // Not a URL (a key=value connection string, say): show nothing of it.
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[redacted connection string]".to_owned();
    };
    // The user info ends at the LAST `@`: an unencoded password may hold `/`, `?` or `@`,
    // and drivers read it up to the `@`. Cutting at the first `/` or `?` would show it.
    let (userinfo, host_and_path) = match rest.rfind('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (host_and_path, has_query) = match host_and_path.split_once('?') {
        Some((base, _)) => (base, true),
        None => (host_and_path, false),
    };
    let mut shown = match userinfo {
        Some(info) => {
            let user = info.split(':').next().unwrap_or_default();
            if info.contains(':') {
                format!("{scheme}://{user}:[redacted]@{host_and_path}")
            } else {
                format!("{scheme}://{user}@{host_and_path}")
            }
        }
        None => format!("{scheme}://{host_and_path}"),
    };
    if has_query {
        shown.push_str("?[redacted]");
    }
    shown
}

/// What [`redact_text`] puts where a secret was.
const REDACTED: &str = "[redacted]";

/// Hides what looks like a secret in free text (a log line, a tool's message), best effort:
/// - the password of every `scheme://user:password@host` URL;
/// - the value after a key that names a secret (`password`, `passwd`, `secret`, `token`,
///   `api_key`, `access_key`, `private_key`, `credential`, `authorization`, `cookie`,
///   `session`, `pwd`, `auth`, in any case and inside longer names such as `DB_PASSWORD`)
///   and `=` or `:`, quoted or not (`password=x`, `"token": "x"`, `Authorization: Bearer x`);
/// - the credentials after `Bearer ` or `Basic `.
///
/// Values a caller knows to be secret (an app's environment) are not recognisable by
/// shape: replace those first, then call this. Idempotent.
///
/// ```
/// use rollback_core::secret::redact_text;
/// assert_eq!(
///     redact_text("lost postgres://app:hunter2@db/app; DB_PASSWORD=hunter2 {\"token\": \"abc\"}"),
///     "lost postgres://app:[redacted]@db/app; DB_PASSWORD=[redacted] {\"token\": \"[redacted]\"}"
/// );
/// assert_eq!(redact_text("Authorization: Bearer abc.def"), "Authorization: [redacted]");
/// assert_eq!(redact_text("password authentication failed"), "password authentication failed");
/// ```
pub fn redact_text(text: &str) -> String {
    redact_bearer(&redact_key_values(&redact_url_passwords(text)))
}

/// `scheme://user:password@host` with the password hidden, wherever it is in `text`.
fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || "\"'<>`".contains(c))
            .unwrap_or(tail.len());
        let token = &tail[..end];
        match (token.rfind('@'), token.find(':')) {
            (Some(at), Some(colon)) if colon < at && !token[colon + 1..at].starts_with(REDACTED) => {
                out.push_str(&token[..=colon]);
                out.push_str(REDACTED);
                out.push_str(&token[at..]);
            }
            _ => out.push_str(token),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn names_a_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "api-key",
        "access_key",
        "accesskey",
        "private_key",
        "privatekey",
        "credential",
        "authorization",
        "cookie",
        "session",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k == "pwd"
        || k == "auth"
        || k.ends_with("_pwd")
        || k.ends_with("_auth")
}

/// `key=value` / `key: value` / `"key": "value"` with the value hidden when the key names
/// a secret.
fn redact_key_values(text: &str) -> String {
    let is_key = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let key_len = rest.find(|c: char| !is_key(c)).unwrap_or(rest.len());
        if key_len == 0 {
            let c = rest.chars().next().map_or(1, char::len_utf8);
            out.push_str(&rest[..c]);
            i += c;
            continue;
        }
        let key = &rest[..key_len];
        out.push_str(key);
        i += key_len;
        if !names_a_secret(key) {
            continue;
        }
        // Optional closing quote of a JSON key, blanks, one separator, blanks.
        let mut j = i;
        let bytes = text.as_bytes();
        if j < text.len() && (bytes[j] == b'"' || bytes[j] == b'\'') {
            j += 1;
        }
        while j < text.len() && bytes[j] == b' ' {
            j += 1;
        }
        if j >= text.len() || (bytes[j] != b'=' && bytes[j] != b':') {
            continue;
        }
        j += 1;
        while j < text.len() && bytes[j] == b' ' {
            j += 1;
        }
        let quote = match bytes.get(j) {
            Some(q @ (b'"' | b'\'')) => Some(*q as char),
            _ => None,
        };
        let value_start = j + usize::from(quote.is_some());
        let value = &text[value_start..];
        if value.starts_with(REDACTED) {
            continue;
        }
        let mut len = match quote {
            Some(q) => value.find(q).unwrap_or(value.len()),
            None => value
                .find(|c: char| c.is_whitespace() || ",;&\"')}]".contains(c))
                .unwrap_or(value.len()),
        };
        // `Authorization: Bearer <token>`: the scheme and the credentials both go.
        let scheme = &value[..len];
        if quote.is_none() && (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("basic"))
        {
            let after = &value[len..];
            let blanks = after.len() - after.trim_start_matches(' ').len();
            let cred = after[blanks..]
                .find(|c: char| c.is_whitespace() || ",;\"'".contains(c))
                .unwrap_or(after.len() - blanks);
            if cred > 0 {
                len += blanks + cred;
            }
        }
        if len == 0 {
            continue;
        }
        out.push_str(&text[i..value_start]);
        out.push_str(REDACTED);
        i = value_start + len;
    }
    out
}

/// The credentials after `Bearer ` / `Basic ` (an `Authorization` header quoted without its
/// name).
fn redact_bearer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        let found = ["bearer ", "basic "]
            .iter()
            .filter_map(|w| lower.find(w).map(|i| (i, w.len())))
            .min();
        let Some((i, n)) = found else { break };
        let (head, tail) = rest.split_at(i + n);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || ",;\"'".contains(c))
            .unwrap_or(tail.len());
        let token = &tail[..end];
        // A credential has no spaces and is not a plain word ("basic authentication").
        let looks_like_credential = end >= 8
            && !token.starts_with(REDACTED)
            && token
                .chars()
                .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase() || "=+/._-".contains(c));
        if looks_like_credential {
            out.push_str(REDACTED);
        } else {
            out.push_str(token);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_loses_what_looks_like_secrets_and_keeps_the_rest() {
        for (text, want) in [
            (
                "Uncaught exception: connect postgres://app:s3cr%40t@db:5432/app failed",
                "Uncaught exception: connect postgres://app:[redacted]@db:5432/app failed",
            ),
            ("PGPASSWORD=abc ./run", "PGPASSWORD=[redacted] ./run"),
            (
                "{\"api_key\":\"k-123\",\"user\":\"bob\"}",
                "{\"api_key\":\"[redacted]\",\"user\":\"bob\"}",
            ),
            ("secret: 'a b c' next", "secret: '[redacted]' next"),
            (
                "curl -H 'Authorization: Bearer eyJhbGciOi.x.y'",
                "curl -H 'Authorization: [redacted]'",
            ),
            (
                "sent bearer eyJhbGciOiJIUzI1NiJ9 to api",
                "sent bearer [redacted] to api",
            ),
            ("?user=a&password=b&x=1", "?user=a&password=[redacted]&x=1"),
            (
                "FATAL:  password authentication failed for user \"app\"",
                "FATAL:  password authentication failed for user \"app\"",
            ),
            ("basic checks passed", "basic checks passed"),
            ("basic authentication required", "basic authentication required"),
            ("no secrets here: 42", "no secrets here: 42"),
            ("ünïcödé token=ä€ and more", "ünïcödé token=[redacted] and more"),
        ] {
            assert_eq!(redact_text(text), want, "{text}");
            assert_eq!(redact_text(want), want, "idempotent on {want}");
        }
    }

    #[test]
    fn key_value_strings_are_hidden_whole() {
        assert_eq!(redact_url("host=db password=pw"), "[redacted connection string]");
    }

    #[test]
    fn passwords_holding_url_delimiters_stay_hidden() {
        for (url, secret) in [
            ("postgres://u:ab/cd@h:5432/db", "ab/cd"),
            ("postgres://u:ab?cd@h/db", "ab?cd"),
            ("postgres://u:a@b@h/db", "a@b"),
            ("postgres://u:pw@h:badport/db", "pw"),
        ] {
            let shown = redact_url(url);
            let password_part = secret.split(['/', '?', '@']).next().unwrap();
            assert!(
                !shown.contains(&format!(":{password_part}")),
                "{url} shown as {shown}"
            );
            assert!(shown.starts_with("postgres://u:[redacted]@h"), "{shown}");
        }
    }

    #[test]
    fn user_without_password_is_kept() {
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
    }
}
