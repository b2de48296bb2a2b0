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

#[cfg(test)]
mod tests {
    use super::*;

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
