//! Connection settings: from a URL / `key=value` string or from the usual fields. The
//! password is a [`Secret`]: it never shows in `Debug`, logs, errors or reports, and tools
//! get it through `PGPASSWORD` in their environment, never on their command line. The TLS
//! settings reach the tools the same way (`PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`,
//! `PGSSLKEY`).

use crate::error::PgError;
use crate::ident::conninfo_value;
use rollback_core::{ErrorKind, Secret};
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How to use TLS, with libpq's meaning of each mode (see the PostgreSQL documentation,
/// "SSL Support" in libpq):
///
/// | mode | encrypted | server's certificate checked |
/// |---|---|---|
/// | `disable` | never | - |
/// | `prefer` (default) | when the server does TLS; if it does not, or the TLS handshake fails, a plain connection is made | as `require` |
/// | `require` | always | no; but when a root certificate is given (`sslrootcert`, or `~/.postgresql/root.crt` exists) its chain is checked, as with `verify-ca` |
/// | `verify-ca` | always | signed by a CA in `sslrootcert` (needed), host name not checked |
/// | `verify-full` | always | signed by a CA in `sslrootcert` (needed) and issued for the host name (or IP address) connected to |
///
/// libpq's `allow` (plain first, TLS if refused) is not offered: use `prefer`. On a unix
/// socket, TLS is never used, whatever the mode (libpq ignores `sslmode` there, and the
/// server never offers TLS on one). Host names are matched against the certificate's
/// subjectAltName entries only (the TLS library does not read the Common Name).
///
/// ```
/// use rollback_postgres::SslMode;
/// let mode: SslMode = "verify-full".parse().unwrap();
/// assert_eq!(mode, SslMode::VerifyFull);
/// assert_eq!(mode.to_string(), "verify-full");
/// assert!("allow".parse::<SslMode>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// TLS when the server does it, else a plain connection.
    #[default]
    Prefer,
    /// Only TLS; the server's certificate is not checked unless a root certificate is
    /// given (libpq's behaviour).
    Require,
    /// Only TLS, with the server's certificate signed by a CA in `sslrootcert`.
    VerifyCa,
    /// Only TLS, with the server's certificate signed by a CA in `sslrootcert` and issued
    /// for the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The mode as libpq spells it (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = PgError;

    /// libpq's spelling: `disable`, `prefer`, `require`, `verify-ca`, `verify-full`.
    fn from_str(s: &str) -> Result<Self, PgError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(PgError::new(
                    ErrorKind::InvalidInput,
                    "sslmode=allow is not supported by rollback-postgres: use prefer (TLS first, plain if the server \
                     does not do TLS) or disable",
                ))
            }
            other => {
                return Err(PgError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "sslmode={other} is not a TLS mode: use disable, prefer, require, verify-ca or verify-full"
                    ),
                ))
            }
        })
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
///
/// TLS, as libpq takes it ([`SslMode`] says what each mode checks):
///
/// ```
/// use rollback_postgres::{PgConfig, SslMode};
/// let c = PgConfig::from_url(
///     "postgres://app:s3cret@db.example.com/shop?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem",
/// )
/// .unwrap();
/// assert_eq!(c.sslmode, SslMode::VerifyFull);
/// assert_eq!(c.sslrootcert.as_deref(), Some(std::path::Path::new("/etc/ssl/db-ca.pem")));
/// // The same with setters, and a client certificate:
/// let c = PgConfig::new("db.example.com", 5432, "app", "shop")
///     .sslmode(SslMode::VerifyFull)
///     .sslrootcert("/etc/ssl/db-ca.pem")
///     .sslcert("/etc/rollback/client.crt")
///     .sslkey("/etc/rollback/client.key");
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
    /// TLS mode (default [`SslMode::Prefer`], as libpq).
    pub sslmode: SslMode,
    /// PEM file of the CA certificates the server's certificate must chain to (libpq's
    /// `sslrootcert`). `None`: `~/.postgresql/root.crt` when it exists, as libpq.
    pub sslrootcert: Option<PathBuf>,
    /// PEM file of the client certificate sent to the server (libpq's `sslcert`). `None`:
    /// `~/.postgresql/postgresql.crt` when it exists, as libpq.
    pub sslcert: Option<PathBuf>,
    /// PEM file of the client certificate's private key, unencrypted (libpq's `sslkey`);
    /// refused, as libpq does, when its group or others may access it (it must be `0600`,
    /// or `0640` when owned by root). `None`: `~/.postgresql/postgresql.key`.
    pub sslkey: Option<PathBuf>,
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
    /// Settings for `dbname` on `host:port` as `user`, without a password, TLS preferred.
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
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
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

    /// The same settings with another TLS mode (default [`SslMode::Prefer`]).
    pub fn sslmode(mut self, sslmode: SslMode) -> Self {
        self.sslmode = sslmode;
        self
    }

    /// The same settings with the CA certificates (a PEM file) the server's certificate
    /// must chain to; needed by [`SslMode::VerifyCa`] and [`SslMode::VerifyFull`].
    pub fn sslrootcert(mut self, path: impl Into<PathBuf>) -> Self {
        self.sslrootcert = Some(path.into());
        self
    }

    /// The same settings with a client certificate (a PEM file) to send to the server; its
    /// key goes in [`sslkey`](Self::sslkey).
    pub fn sslcert(mut self, path: impl Into<PathBuf>) -> Self {
        self.sslcert = Some(path.into());
        self
    }

    /// The same settings with the client certificate's private key (an unencrypted PEM
    /// file, mode `0600`).
    pub fn sslkey(mut self, path: impl Into<PathBuf>) -> Self {
        self.sslkey = Some(path.into());
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
    /// `key=value` string. The TLS options `sslmode` (see [`SslMode`]), `sslrootcert`,
    /// `sslcert` and `sslkey` are read from either form (in a URL, values are
    /// percent-decoded); other `ssl*` options are refused by name. The error never repeats
    /// the password.
    pub fn from_url(url: &str) -> Result<Self, PgError> {
        let shown = rollback_core::secret::redact_url(url);
        let (rest, tls) = take_tls_options(url, &shown)?;
        let parsed = tokio_postgres::Config::from_str(&rest).map_err(|e| {
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
        let mut config = PgConfig::new(host, port, user, dbname);
        config.password = password;
        config.sslmode = tls.sslmode.unwrap_or_default();
        config.sslrootcert = tls.sslrootcert;
        config.sslcert = tls.sslcert;
        config.sslkey = tls.sslkey;
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

    /// True when the host is a unix socket directory (no TLS there, as libpq).
    pub(crate) fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The driver's settings for `dbname` on the same server. Its TLS mode says whether
    /// TLS is tried at all (the checks of each mode are the connector's, see `tls.rs`).
    pub(crate) fn driver_config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(dbname)
            .application_name(&self.application_name)
            .connect_timeout(self.connect_timeout)
            .ssl_mode(match self.sslmode {
                _ if self.is_unix_socket() => tokio_postgres::config::SslMode::Disable,
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                    tokio_postgres::config::SslMode::Require
                }
            });
        if let Some(pw) = &self.password {
            c.password(pw.expose());
        }
        c
    }

    /// A libpq `key=value` string for `dbname`, for `pg_dump --dbname` and `pg_restore -d`.
    /// It has no password (tools get it through `PGPASSWORD`) and no TLS setting (they get
    /// them from [`tool_env`](Self::tool_env)).
    pub(crate) fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={} dbname={} application_name={} connect_timeout={}",
            conninfo_value(&self.host),
            self.port,
            conninfo_value(&self.user),
            conninfo_value(dbname),
            conninfo_value(&self.application_name),
            self.connect_timeout.as_secs().max(2),
        )
    }

    /// The environment of `pg_dump` and `pg_restore` for TLS: libpq's variables set from
    /// these settings (`Some`) or removed (`None`), so that the caller's own `PGSSL*`
    /// variables cannot change what the tools do. Unset files are left to libpq's defaults
    /// in `~/.postgresql/`, the same ones the adapter's own connections use.
    pub(crate) fn tool_env(&self) -> Vec<(&'static str, Option<OsString>)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.as_os_str().to_owned());
        let mut env = vec![
            ("PGSSLMODE", Some(OsString::from(self.sslmode.as_str()))),
            ("PGSSLROOTCERT", path(&self.sslrootcert)),
            ("PGSSLCERT", path(&self.sslcert)),
            ("PGSSLKEY", path(&self.sslkey)),
        ];
        env.extend(OTHER_TLS_ENV.iter().map(|name| (*name, None)));
        env
    }
}

/// libpq's other TLS variables, removed from the tools' environment: the adapter's own
/// connections do not apply them, so the tools must not either.
const OTHER_TLS_ENV: &[&str] = &[
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGSSLSNI",
    "PGSSLCERTMODE",
    "PGSSLNEGOTIATION",
    "PGSSLCOMPRESSION",
    "PGSSLMINPROTOCOLVERSION",
    "PGSSLMAXPROTOCOLVERSION",
    "PGREQUIRESSL",
    "PGREQUIREPEER",
];

/// The TLS options of a connection string.
#[derive(Debug, Default)]
struct TlsOptions {
    sslmode: Option<SslMode>,
    sslrootcert: Option<PathBuf>,
    sslcert: Option<PathBuf>,
    sslkey: Option<PathBuf>,
}

impl TlsOptions {
    /// Takes `key=value` when it is a TLS option; `Ok(false)` when it is not one. Other
    /// `ssl*` options are refused by name (their value, which may be a key's passphrase,
    /// is never repeated).
    fn take(&mut self, key: &str, value: &str, shown: &str) -> Result<bool, PgError> {
        let file = || (!value.is_empty()).then(|| PathBuf::from(value));
        match key {
            "sslmode" => self.sslmode = Some(value.parse()?),
            "sslrootcert" => self.sslrootcert = file(),
            "sslcert" => self.sslcert = file(),
            "sslkey" => self.sslkey = file(),
            k if k.starts_with("ssl") || k == "requiressl" => {
                return Err(PgError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "connection option {k} in {shown} is not supported by rollback-postgres: the TLS options it \
                         takes are sslmode, sslrootcert, sslcert and sslkey (keys must be unencrypted)"
                    ),
                ))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Takes the TLS options out of a URL (its query) or a `key=value` string, returning the
/// rest for the driver (which knows neither `verify-ca`/`verify-full` nor the file options).
/// A `key=value` string that does not tokenize is returned whole, for the driver's error.
fn take_tls_options(url: &str, shown: &str) -> Result<(String, TlsOptions), PgError> {
    let mut tls = TlsOptions::default();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), tls));
        };
        let mut kept = Vec::new();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            if !tls.take(&percent_decode(k), &percent_decode(v), shown)? {
                kept.push(param);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, tls));
    }
    let Some(pairs) = key_values(url) else {
        return Ok((url.to_owned(), tls));
    };
    let mut kept = Vec::new();
    for (k, v) in pairs {
        if !tls.take(&k, &v, shown)? {
            kept.push(format!("{k}={}", conninfo_value(&v)));
        }
    }
    Ok((kept.join(" "), tls))
}

/// `%XX` escapes decoded (invalid ones kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `(key, value)` pairs of a libpq `key=value` string (values unquoted and
/// unescaped), or `None` when it is not one.
fn key_values(s: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Some(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if key.is_empty() || chars.next() != Some('=') {
            return None;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next()?);
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
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
    use std::path::Path;

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
    fn conninfo_quotes_names_and_never_holds_the_password_nor_tls_settings() {
        let c = PgConfig::new("h", 1, "u", "x")
            .password("canary-pw")
            .sslmode(SslMode::VerifyFull)
            .sslrootcert("/ca.pem");
        let ci = c.conninfo("it's \"weird\"");
        assert!(ci.contains(r#"dbname='it\'s "weird"'"#), "{ci}");
        assert!(!ci.contains("canary-pw"));
        assert!(
            !ci.contains("ssl"),
            "TLS settings go through the environment: {ci}"
        );
    }

    #[test]
    fn tls_options_parse_from_urls_and_key_value_strings() {
        let c = PgConfig::from_url(
            "postgres://u:canary-pw@db.example.com:6543/shop?sslmode=verify-full&sslrootcert=/etc/ssl/My%20CA.pem\
             &application_name=deployer&sslcert=/c/client.crt&sslkey=/c/client.key&connect_timeout=7",
        )
        .unwrap();
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(c.sslrootcert.as_deref(), Some(Path::new("/etc/ssl/My CA.pem")));
        assert_eq!(c.sslcert.as_deref(), Some(Path::new("/c/client.crt")));
        assert_eq!(c.sslkey.as_deref(), Some(Path::new("/c/client.key")));
        assert_eq!(c.application_name, "deployer", "the driver's options still apply");
        assert_eq!(c.connect_timeout, Duration::from_secs(7));
        assert_eq!(
            (c.host.as_str(), c.port, c.dbname.as_str()),
            ("db.example.com", 6543, "shop")
        );

        let c = PgConfig::from_url(
            "host=db user=u password='p w' sslmode = verify-ca sslrootcert='/my ca/it\\'s.pem' dbname=shop",
        )
        .unwrap();
        assert_eq!(c.sslmode, SslMode::VerifyCa);
        assert_eq!(c.sslrootcert.as_deref(), Some(Path::new("/my ca/it's.pem")));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("p w"));
        assert_eq!(c.dbname, "shop");

        for (mode, want) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
        ] {
            let c = PgConfig::from_url(&format!("postgres://u@h/db?sslmode={mode}")).unwrap();
            assert_eq!(c.sslmode, want);
        }
        assert_eq!(
            PgConfig::from_url("postgres://u@h/db").unwrap().sslmode,
            SslMode::Prefer
        );
    }

    #[test]
    fn unknown_tls_options_and_modes_are_refused_without_echoing_secrets() {
        let e = PgConfig::from_url("postgres://u:canary-pw@h/db?sslmode=verify-everything").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .contains("sslmode=verify-everything is not a TLS mode"),
            "{e}"
        );
        let e = PgConfig::from_url("postgres://u@h/db?sslmode=allow").unwrap_err();
        assert!(e.to_string().contains("use prefer"), "{e}");
        let e = PgConfig::from_url("postgres://u:canary-pw@h/db?sslpassword=canary-pass").unwrap_err();
        assert!(
            e.to_string().contains("sslpassword") && e.to_string().contains("not supported"),
            "{e}"
        );
        assert!(!e.to_string().contains("canary"), "{e}");
        let e = PgConfig::from_url("host=h user=u password=canary-pw sslpassword=canary-pass").unwrap_err();
        assert!(!e.to_string().contains("canary"), "{e}");
    }

    #[test]
    fn tools_get_tls_settings_in_their_environment_and_nothing_from_the_callers() {
        let c = PgConfig::new("h", 1, "u", "x")
            .sslmode(SslMode::VerifyCa)
            .sslrootcert("/ca.pem")
            .sslkey("/k.key");
        let env = c.tool_env();
        let get = |k: &str| env.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone());
        assert_eq!(get("PGSSLMODE"), Some(Some("verify-ca".into())));
        assert_eq!(get("PGSSLROOTCERT"), Some(Some("/ca.pem".into())));
        assert_eq!(get("PGSSLKEY"), Some(Some("/k.key".into())));
        assert_eq!(
            get("PGSSLCERT"),
            Some(None),
            "unset: removed, libpq's default applies"
        );
        assert_eq!(get("PGSSLCRL"), Some(None));
    }

    #[test]
    fn the_driver_tries_tls_as_the_mode_says_and_never_on_a_unix_socket() {
        use tokio_postgres::config::SslMode as Driver;
        let mode = |host: &str, m: SslMode| {
            PgConfig::new(host, 1, "u", "x")
                .sslmode(m)
                .driver_config("x")
                .get_ssl_mode()
        };
        assert_eq!(mode("h", SslMode::Disable), Driver::Disable);
        assert_eq!(mode("h", SslMode::Prefer), Driver::Prefer);
        for m in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            assert_eq!(mode("h", m), Driver::Require);
            assert_eq!(mode("/run/postgresql", m), Driver::Disable);
        }
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
