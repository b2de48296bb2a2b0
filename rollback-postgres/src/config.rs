//! Connection settings: from a URL / `key=value` string or from the usual fields. The
//! password is a [`Secret`]: it never shows in `Debug`, logs, errors or reports, and tools
//! get it through `PGPASSWORD` in their environment, never on their command line.

use crate::error::PgError;
use crate::ident::conninfo_value;
use rollback_core::{ErrorKind, Secret};
use std::str::FromStr;
use std::time::Duration;

/// How to use TLS. This build connects without TLS (no TLS connector is built in): `Require`
/// is refused with a clear error rather than silently downgraded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it (this build: never).
    #[default]
    Prefer,
    /// Only TLS: not supported in this build.
    Require,
}

impl SslMode {
    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
        }
    }
}

/// Where and how to connect to the live database.
///
/// Built with [`new`](PgConfig::new) or [`from_url`](PgConfig::from_url), then the
/// setters; the fields can be read (and changed) directly. `Debug` never shows the
/// password.
///
/// ```
/// use rollback_postgres::PgConfig;
/// let c = PgConfig::from_url("postgres://app:s3cret@db.internal:5433/shop?sslmode=disable").unwrap();
/// assert_eq!((c.host.as_str(), c.port, c.user.as_str(), c.dbname.as_str()), ("db.internal", 5433, "app", "shop"));
/// assert!(!format!("{c:?}").contains("s3cret"));
/// assert_eq!(c.redacted(), "postgres://app@db.internal:5433/shop");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgConfig {
    /// Host name, IP address, or (starting with `/`) the directory of a unix socket.
    pub host: String,
    /// TCP port (also names the unix socket file).
    pub port: u16,
    /// Role to connect as.
    pub user: String,
    /// The live database.
    pub dbname: String,
    /// The role's password, if it needs one.
    pub password: Option<Secret>,
    /// TLS mode.
    pub sslmode: SslMode,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// The database to connect to for renames, drops and creates (you cannot rename the
    /// database you are connected to). Default `postgres`.
    pub maintenance_db: String,
    /// `application_name` of this adapter's sessions (and its tools'), so that they can be
    /// told apart from the app's in `pg_stat_activity`.
    pub application_name: String,
}

impl PgConfig {
    /// Settings for `dbname` on `host:port` as `user`, without a password.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        dbname: impl Into<String>,
    ) -> Self {
        PgConfig {
            host: host.into(),
            port,
            user: user.into(),
            dbname: dbname.into(),
            password: None,
            sslmode: SslMode::Prefer,
            connect_timeout: Duration::from_secs(10),
            maintenance_db: "postgres".to_owned(),
            application_name: "rollback".to_owned(),
        }
    }

    /// The same settings with a password.
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The same settings with another TLS mode ([`SslMode::Require`] is refused when
    /// connecting: this build has no TLS).
    pub fn sslmode(mut self, sslmode: SslMode) -> Self {
        self.sslmode = sslmode;
        self
    }

    /// The same settings with another limit on a connection attempt (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The same settings with another maintenance database (default `postgres`): the one
    /// connected to for renames, drops and creates.
    pub fn maintenance_db(mut self, dbname: impl Into<String>) -> Self {
        self.maintenance_db = dbname.into();
        self
    }

    /// The same settings with another `application_name` (default `rollback`) for this
    /// adapter's sessions and its tools'.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Parses a `postgres://user:password@host:port/dbname?sslmode=...` URL or a libpq
    /// `key=value` string. The error never repeats the password.
    pub fn from_url(url: &str) -> Result<Self, PgError> {
        let shown = rollback_core::secret::redact_url(url);
        let parsed = tokio_postgres::Config::from_str(url).map_err(|e| {
            // The driver's message names the bad option; scrub anything that looks like the
            // password just in case it is echoed.
            let pw = password_in(url).map(Secret::new);
            PgError::new(
                ErrorKind::InvalidInput,
                format!(
                    "connection URL {shown} does not parse: {}; expected postgres://user:password@host:port/dbname",
                    crate::error::scrub(&e.to_string(), pw.as_ref())
                ),
            )
        })?;
        let host = match parsed.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.to_string_lossy().into_owned(),
            None => "localhost".to_owned(),
        };
        let port = parsed.get_ports().first().copied().unwrap_or(5432);
        let user = parsed.get_user().map(str::to_owned).ok_or_else(|| {
            PgError::new(
                ErrorKind::InvalidInput,
                format!("connection URL {shown} names no user: add one, as in postgres://app@host/db"),
            )
        })?;
        let dbname = parsed
            .get_dbname()
            .map(str::to_owned)
            .unwrap_or_else(|| user.clone());
        let password = match parsed.get_password() {
            Some(pw) => Some(Secret::new(String::from_utf8(pw.to_vec()).map_err(|_| {
                PgError::new(
                    ErrorKind::InvalidInput,
                    format!("the password in connection URL {shown} is not UTF-8"),
                )
            })?)),
            None => None,
        };
        let sslmode = match parsed.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        };
        let mut config = PgConfig::new(host, port, user, dbname);
        config.password = password;
        config.sslmode = sslmode;
        if let Some(t) = parsed.get_connect_timeout() {
            config.connect_timeout = *t;
        }
        if let Some(app) = parsed.get_application_name() {
            config.application_name = app.to_owned();
        }
        Ok(config)
    }

    /// The settings shown safely: `postgres://user@host:port/dbname`, no password.
    pub fn redacted(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }

    /// The driver's settings for `dbname` on the same server.
    pub(crate) fn driver_config(&self, dbname: &str) -> Result<tokio_postgres::Config, PgError> {
        self.check_tls()?;
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(dbname)
            .application_name(&self.application_name)
            .connect_timeout(self.connect_timeout)
            .ssl_mode(match self.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                _ => tokio_postgres::config::SslMode::Prefer,
            });
        if let Some(pw) = &self.password {
            c.password(pw.expose());
        }
        Ok(c)
    }

    /// A libpq `key=value` string for `dbname`, for `pg_dump --dbname` and `pg_restore -d`.
    /// It has no password: tools get it through `PGPASSWORD`.
    pub(crate) fn conninfo(&self, dbname: &str) -> Result<String, PgError> {
        self.check_tls()?;
        Ok(format!(
            "host={} port={} user={} dbname={} sslmode={} application_name={} connect_timeout={}",
            conninfo_value(&self.host),
            self.port,
            conninfo_value(&self.user),
            conninfo_value(dbname),
            self.sslmode.as_str(),
            conninfo_value(&self.application_name),
            self.connect_timeout.as_secs().max(2),
        ))
    }

    fn check_tls(&self) -> Result<(), PgError> {
        if self.sslmode == SslMode::Require {
            return Err(PgError::new(
                ErrorKind::InvalidInput,
                format!(
                    "sslmode=require for {} is not supported in this build of rollback-postgres (it connects without TLS): \
                     use sslmode=disable or prefer on a trusted network, or a local socket",
                    self.redacted()
                ),
            ));
        }
        Ok(())
    }
}

/// The password part of `scheme://user:password@host`, for scrubbing parse errors.
fn password_in(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split('/').next()?.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, pw)| pw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let c = PgConfig::from_url("postgres://u:s3cret@host/db").unwrap();
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("s3cret"));
        let shown = format!("{c:?} {c:#?} {}", c.redacted());
        assert!(!shown.contains("s3cret"), "{shown}");
        let c = PgConfig::new("host", 5432, "u", "db")
            .password("s3cret")
            .sslmode(SslMode::Disable)
            .connect_timeout(Duration::from_secs(3))
            .maintenance_db("template1")
            .application_name("deployer");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            (
                c.sslmode,
                c.connect_timeout,
                c.maintenance_db.as_str(),
                c.application_name.as_str()
            ),
            (SslMode::Disable, Duration::from_secs(3), "template1", "deployer")
        );
    }

    #[test]
    fn key_value_strings_and_unix_sockets_parse() {
        let c =
            PgConfig::from_url("host=/run/postgresql port=5444 user=app dbname='My DB' password=pw").unwrap();
        assert_eq!(c.host, "/run/postgresql");
        assert_eq!(c.port, 5444);
        assert_eq!(c.dbname, "My DB");
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("pw"));
        assert!(!format!("{c:?}").contains("pw\""));
    }

    #[test]
    fn conninfo_quotes_names_and_never_holds_the_password() {
        let c = PgConfig::new("h", 1, "u", "x").password("canary-pw");
        let ci = c.conninfo("it's \"weird\"").unwrap();
        assert!(ci.contains(r#"dbname='it\'s "weird"'"#), "{ci}");
        assert!(!ci.contains("canary-pw"));
    }

    #[test]
    fn sslmode_require_is_refused_clearly() {
        let c = PgConfig::from_url("postgres://u:canary-pw@h/db?sslmode=require").unwrap();
        let e = c.driver_config("db").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("not supported in this build"), "{e}");
        assert!(!e.to_string().contains("canary-pw"));
    }

    #[test]
    fn bad_urls_do_not_echo_the_password() {
        let e = PgConfig::from_url("postgres://u:canary-pw@h:notaport/db").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(!e.to_string().contains("canary-pw"), "{e}");
        let e = PgConfig::from_url("postgres://h/db").unwrap_err();
        assert!(e.to_string().contains("no user"), "{e}");
    }
}
