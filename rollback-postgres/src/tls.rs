//! TLS for the adapter's own connections: rustls (ring provider) through
//! `tokio-postgres-rustls`, with libpq's meaning of each [`SslMode`] and of its files
//! (`sslrootcert`, `sslcert`, `sslkey`, and the `~/.postgresql/` defaults), and the
//! explanation of a refused connection: which TLS problem it was and what to do.
//!
//! Files are read (and the key file's mode checked) off the runtime's threads, once per
//! connection, so that a renewed certificate is picked up without a restart. Their contents
//! never appear in an error: a key that does not parse is reported by its path only.

use crate::config::{PgConfig, SslMode};
use crate::error::PgError;
use rollback_core::ErrorKind;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector for one connection attempt and the files it was built from (named in
/// errors).
pub(crate) struct Tls {
    /// The driver's TLS connector.
    pub(crate) connector: MakeRustlsConnect,
    /// The files in use.
    pub(crate) files: Files,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// The TLS files in use after libpq's defaults were applied.
#[derive(Clone, Debug, Default)]
pub(crate) struct Files {
    /// The CA certificates the server's certificate is checked against, if any.
    pub(crate) root: Option<PathBuf>,
    /// The client certificate and its key, if one is sent.
    pub(crate) client: Option<(PathBuf, PathBuf)>,
}

/// The connector for `config`, or `None` when no TLS is attempted (`sslmode=disable`, or a
/// unix socket, for which libpq ignores `sslmode` and the server never offers TLS).
pub(crate) async fn connector(config: &PgConfig) -> Result<Option<Tls>, PgError> {
    if config.sslmode == SslMode::Disable || config.host.starts_with('/') {
        return Ok(None);
    }
    let config = config.clone();
    tokio::task::spawn_blocking(move || build(&config, home_dir().as_deref()).map(Some))
        .await
        .map_err(|e| PgError::task("loading the TLS certificates and key", e))?
}

/// The directory of libpq's default files: `$HOME/.postgresql`.
fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".postgresql"))
}

/// Builds the connector: the files resolved, read and checked. Blocking.
pub(crate) fn build(config: &PgConfig, defaults: Option<&Path>) -> Result<Tls, PgError> {
    let default_file = |name: &str| defaults.map(|d| d.join(name)).filter(|p| p.is_file());
    let mode = config.sslmode;
    let root = match &config.sslrootcert {
        Some(p) => Some(p.clone()),
        None => default_file("root.crt"),
    };
    if root.is_none() && matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
        return Err(PgError::new(
            ErrorKind::InvalidInput,
            format!(
                "sslmode={mode} for {} needs the certificate of the CA that signed the server's: set sslrootcert=/path/to/ca.pem \
                 (in the connection URL or with PgConfig::sslrootcert; a managed service publishes its CA bundle); \
                 none was given and ~/.postgresql/root.crt does not exist",
                config.redacted()
            ),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = match &root {
        None => Arc::new(Unverified(algorithms)),
        Some(path) => {
            let roots = Arc::new(load_roots(path)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| {
                    PgError::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "the CA certificates in {} (sslrootcert) cannot be used: {e}",
                            path.display()
                        ),
                    )
                })?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                // verify-ca, and require/prefer with a root certificate (libpq then checks
                // the chain too): the CA, not the host name.
                Arc::new(CaOnly(webpki))
            }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            PgError::new(
                ErrorKind::Failed,
                format!("the TLS library refused its own defaults: {e}"),
            )
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);

    let cert = match &config.sslcert {
        Some(p) => Some(p.clone()),
        None => default_file("postgresql.crt"),
    };
    let key = match (&cert, &config.sslkey) {
        (_, Some(k)) => Some(k.clone()),
        (Some(_), None) => Some(
            defaults
                .map(|d| d.join("postgresql.key"))
                .filter(|p| p.exists())
                .ok_or_else(|| {
                    PgError::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "a client certificate is set ({}) but no private key: set sslkey=/path/to/client.key",
                            cert.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_default()
                        ),
                    )
                })?,
        ),
        (None, None) => None,
    };
    let (client_config, client) = match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(&cert, "sslcert")?;
            let private = load_key(&key)?;
            let c = builder.with_client_auth_cert(chain, private).map_err(|e| {
                PgError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the client certificate {} (sslcert) and the key {} (sslkey) cannot be used together: {e}; \
                         check that the key is the certificate's",
                        cert.display(),
                        key.display()
                    ),
                )
            })?;
            (c, Some((cert, key)))
        }
        (None, Some(key)) => {
            return Err(PgError::new(
                ErrorKind::InvalidInput,
                format!(
                    "a private key is set ({}, sslkey) but no client certificate: set sslcert=/path/to/client.crt too",
                    key.display()
                ),
            ))
        }
        _ => (builder.with_no_client_auth(), None),
    };
    Ok(Tls {
        connector: MakeRustlsConnect::new(client_config),
        files: Files { root, client },
    })
}

/// The CA certificates in `path` (a PEM bundle).
fn load_roots(path: &Path) -> Result<RootCertStore, PgError> {
    let certs = load_certs(path, "sslrootcert")?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(PgError::new(
            ErrorKind::InvalidInput,
            format!(
                "no usable CA certificate in {} (sslrootcert): give the PEM file of the CA that signed the server's certificate",
                path.display()
            ),
        ));
    }
    Ok(roots)
}

/// The certificates in the PEM file `path` (`option` names the setting in errors).
fn load_certs(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>, PgError> {
    let bytes = std::fs::read(path).map_err(|e| {
        PgError::io(
            format!("cannot read the certificate file {} ({option})", path.display()),
            e,
        )
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| not_pem(path, option, "certificates"))?;
    if certs.is_empty() {
        return Err(not_pem(path, option, "certificates"));
    }
    Ok(certs)
}

fn not_pem(path: &Path, option: &str, what: &str) -> PgError {
    PgError::new(
        ErrorKind::InvalidInput,
        format!(
            "{} ({option}) holds no PEM {what} (-----BEGIN CERTIFICATE----- blocks): give a PEM file",
            path.display()
        ),
    )
}

/// The private key in `path`, refused (as libpq does) when others may read it. The error
/// never quotes the file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PgError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        PgError::io(
            format!("cannot read the private key file {} (sslkey)", path.display()),
            e,
        )
    })?;
    if !meta.is_file() {
        return Err(PgError::new(
            ErrorKind::InvalidInput,
            format!(
                "the private key file {} (sslkey) is not a regular file",
                path.display()
            ),
        ));
    }
    check_key_mode(path, meta.uid(), meta.mode())?;
    let bytes = std::fs::read(path).map_err(|e| {
        PgError::io(
            format!("cannot read the private key file {} (sslkey)", path.display()),
            e,
        )
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        PgError::new(
            ErrorKind::InvalidInput,
            format!(
                "no usable private key in {} (sslkey): expected an unencrypted PEM key (PKCS#8, PKCS#1 RSA or SEC1 EC); \
                 encrypted keys (sslpassword) are not supported",
                path.display()
            ),
        )
    })
}

/// libpq's rule: a key file owned by the user must have no group or other permission
/// (0600 or less); one owned by root may be readable by its group (0640 or less).
pub(crate) fn check_key_mode(path: &Path, owner: u32, mode: u32) -> Result<(), PgError> {
    let too_open = if owner == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if too_open {
        return Err(PgError::new(
            ErrorKind::PermissionDenied,
            format!(
                "the private key file {} (sslkey) is accessible to its group or to others (mode {:04o}); libpq and this \
                 adapter refuse it: chmod 600 {} (or 640 when it is owned by root)",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
        ));
    }
    Ok(())
}

/// `require` and `prefer` without a root certificate: the connection is encrypted but the
/// server's certificate is not checked (libpq does the same). The handshake's signatures
/// are still verified, so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct Unverified(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain to a root of `sslrootcert`, validity dates included, but not the
/// host name. The WebPKI verifier checks the name last, after the chain, so a name
/// mismatch means the chain passed.
#[derive(Debug)]
struct CaOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for CaOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// True when `e` failed in the TLS handshake itself (not a refusal by the server's
/// pg_hba.conf, not a network error before it): `prefer` then retries without TLS, as
/// libpq does.
pub(crate) fn is_handshake_failure(e: &tokio_postgres::Error) -> bool {
    rustls_error(e).is_some() || e.to_string().starts_with("error performing TLS handshake")
}

/// The rustls error behind a driver error, if any (rustls' errors travel inside an
/// `io::Error`, whose `source` skips them: they are looked for with `get_ref`).
fn rustls_error(e: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r);
        }
        cause = c.source();
    }
    None
}

/// Which TLS problem refused a connection, and what to do, when it was one: the kind and a
/// sentence naming the file or the host name involved. `files` are those the attempt used
/// (`None` when it was made without TLS).
pub(crate) fn explain(
    e: &tokio_postgres::Error,
    config: &PgConfig,
    files: Option<&Files>,
) -> Option<(ErrorKind, String)> {
    let refused = ErrorKind::PermissionDenied;
    let root = || {
        files
            .and_then(|f| f.root.as_deref())
            .map(|p| format!("{} (sslrootcert)", p.display()))
            .unwrap_or_else(|| "sslrootcert".to_owned())
    };
    if let Some(db) = e.as_db_error() {
        let message = db.message();
        if message.contains("no encryption") {
            return Some((
                refused,
                format!(
                    "the server accepts only TLS connections from here (its pg_hba.conf has hostssl lines only) and \
                     sslmode={} made this one without TLS: use sslmode=require, verify-ca or verify-full",
                    config.sslmode
                ),
            ));
        }
        if message.contains("requires a valid client certificate") {
            return Some((
                refused,
                "the server requires a client certificate (clientcert in its pg_hba.conf): set sslcert and sslkey to a \
                 certificate signed by a CA the server trusts (its ssl_ca_file)"
                    .to_owned(),
            ));
        }
        if message.contains("certificate authentication failed") || message.contains("clientcert=verify-full")
        {
            return Some((
                refused,
                format!(
                    "the server refused the client certificate for user {} (its common name must be the user name, \
                     or match the server's pg_ident.conf map)",
                    config.user
                ),
            ));
        }
        return None;
    }
    if let Some(r) = rustls_error(e) {
        let client = || {
            files
                .and_then(|f| f.client.as_ref())
                .map(|(c, _)| format!("the client certificate {} (sslcert)", c.display()))
                .unwrap_or_else(|| "no client certificate (set sslcert and sslkey)".to_owned())
        };
        let text = match r {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "the server's certificate is not signed by the CA in {}: give the certificate of the CA that signed it \
                 (your provider's CA bundle), or check that this is the server you meant",
                root()
            ),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. }) => format!(
                "the host name `{}` does not match the server's certificate (it is for: {}): sslmode=verify-full \
                 checks it; connect with a name the certificate holds, or use sslmode=verify-ca to check the CA only",
                config.host,
                if presented.is_empty() {
                    "no name".to_owned()
                } else {
                    presented.iter().map(|n| bare_name(n)).collect::<Vec<_>>().join(", ")
                }
            ),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => format!(
                "the host name `{}` does not match the server's certificate: sslmode=verify-full checks it; connect \
                 with a name the certificate holds, or use sslmode=verify-ca to check the CA only",
                config.host
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => "the server's certificate has expired: renew it on the server (or check this host's clock)".to_owned(),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
            ) => "the server's certificate is not valid yet: check this host's clock and the server's certificate"
                .to_owned(),
            rustls::Error::InvalidCertificate(other) => {
                format!("the server's certificate was refused ({other:?}), checked against {}", root())
            }
            rustls::Error::AlertReceived(alert) => format!(
                "the server ended the TLS handshake ({alert:?}); it sent {}: when the server checks client \
                 certificates, give one signed by a CA it trusts (its ssl_ca_file)",
                client()
            ),
            other => format!("the TLS handshake failed: {other}"),
        };
        return Some((refused, text));
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.to_string().contains("server does not support TLS") {
            return Some((
                refused,
                format!(
                    "the server does not do TLS (it refused the TLS request) and sslmode={} requires it: turn ssl on \
                     in the server's postgresql.conf, or use sslmode=prefer or disable on a trusted network",
                    config.sslmode
                ),
            ));
        }
        cause = c.source();
    }
    None
}

/// A name as rustls shows it (`DnsName("db.example.com")`, `IpAddress(10.0.0.1)`) without
/// the wrapping; anything else as it is.
fn bare_name(shown: &str) -> &str {
    shown
        .strip_suffix(')')
        .and_then(|s| s.split_once('(').map(|(_, inner)| inner))
        .map(|inner| inner.trim_matches('"'))
        .unwrap_or(shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn presented_names_are_shown_bare() {
        assert_eq!(bare_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(bare_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(bare_name("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn key_modes_follow_libpq() {
        let p = Path::new("/k");
        assert!(check_key_mode(p, 1000, 0o100600).is_ok());
        assert!(check_key_mode(p, 1000, 0o100400).is_ok());
        let e = check_key_mode(p, 1000, 0o100640).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(
            e.to_string().contains("mode 0640") && e.to_string().contains("chmod 600 /k"),
            "{e}"
        );
        assert!(check_key_mode(p, 1000, 0o100604).is_err());
        assert!(
            check_key_mode(p, 0, 0o100640).is_ok(),
            "root-owned keys may be group-readable"
        );
        assert!(check_key_mode(p, 0, 0o100660).is_err());
        assert!(check_key_mode(p, 0, 0o100644).is_err());
    }

    #[test]
    fn verify_modes_need_a_root_certificate_and_name_the_setting() {
        let home = tempfile::tempdir().unwrap();
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let c = PgConfig::new("db", 5432, "u", "d")
                .password("canary-pw")
                .sslmode(mode);
            let e = build(&c, Some(home.path())).expect_err("refused");
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains(&format!("sslmode={mode}")), "{e}");
            assert!(e.to_string().contains("sslrootcert"), "{e}");
            assert!(!e.to_string().contains("canary-pw"), "{e}");
        }
        // require without a root certificate is encrypted, unverified: it builds.
        let c = PgConfig::new("db", 5432, "u", "d").sslmode(SslMode::Require);
        let tls = build(&c, Some(home.path())).expect("builds");
        assert!(tls.files.root.is_none() && tls.files.client.is_none());
    }

    #[test]
    fn libpq_default_files_are_used_when_they_exist() {
        let home = tempfile::tempdir().unwrap();
        let c = PgConfig::new("db", 5432, "u", "d").sslmode(SslMode::VerifyFull);
        write(home.path(), "root.crt", "not a certificate", 0o644);
        let e = build(&c, Some(home.path())).expect_err("a bad default root is read and refused");
        assert!(
            e.to_string().contains("root.crt (sslrootcert) holds no PEM"),
            "{e}"
        );
    }

    #[test]
    fn file_errors_name_the_file_and_never_quote_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let none = tempfile::tempdir().unwrap();
        let ca = write(dir.path(), "ca.pem", "garbage", 0o644);
        let c = PgConfig::new("db", 5432, "u", "d")
            .sslmode(SslMode::VerifyCa)
            .sslrootcert(&ca);
        let e = build(&c, Some(none.path())).unwrap_err();
        assert!(e.to_string().contains("ca.pem (sslrootcert) holds no PEM"), "{e}");

        let missing = PgConfig::new("db", 5432, "u", "d").sslrootcert(dir.path().join("nope.pem"));
        let e = build(&missing, Some(none.path())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("nope.pem (sslrootcert)"), "{e}");

        let cert = write(
            dir.path(),
            "client.crt",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            0o644,
        );
        let secret_key = "-----BEGIN PRIVATE KEY-----\ncanaryKEYmaterial\n-----END PRIVATE KEY-----\n";
        let key = write(dir.path(), "client.key", secret_key, 0o644);
        let c = PgConfig::new("db", 5432, "u", "d").sslcert(&cert).sslkey(&key);
        let e = build(&c, Some(none.path())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(
            e.to_string()
                .contains("client.key (sslkey) is accessible to its group or to others"),
            "{e}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = build(&c, Some(none.path())).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("canary"), "{shown}");

        let only_key = PgConfig::new("db", 5432, "u", "d").sslkey(&key);
        let e = build(&only_key, Some(none.path())).unwrap_err();
        assert!(
            e.to_string().contains("no client certificate: set sslcert"),
            "{e}"
        );
        let only_cert = PgConfig::new("db", 5432, "u", "d").sslcert(&cert);
        let e = build(&only_cert, Some(none.path())).unwrap_err();
        assert!(e.to_string().contains("no private key: set sslkey"), "{e}");
    }
}
