//! The HTTP client [`HttpProbe`](super::HttpProbe) and
//! [`WebhookNotifier`](super::WebhookNotifier) share: reqwest over rustls (ring provider),
//! trusting Mozilla's root CAs (webpki-roots) plus the CAs a caller gives in PEM, and the
//! one way their transport failures are put into words (a certificate problem says which).

use crate::error::{AdapterError, ErrorKind};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::PathBuf;
use std::time::Duration;

/// A CA certificate (or a bundle of them) a caller trusts besides the built-in roots.
#[derive(Clone)]
pub(crate) enum RootCa {
    /// PEM text given in memory.
    Pem(Vec<u8>),
    /// A PEM file, read when the client is built.
    File(PathBuf),
}

impl RootCa {
    /// How the CA is named in an error.
    fn describe(&self) -> String {
        match self {
            RootCa::Pem(pem) => format!("the CA PEM given in memory ({} bytes)", pem.len()),
            RootCa::File(path) => format!("the CA file {}", path.display()),
        }
    }

    /// The certificates it holds, each checked to be a usable trust anchor.
    ///
    /// Reads the file, if it is one: this runs when a probe or notifier is built, once.
    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, AdapterError> {
        let pem = match self {
            RootCa::Pem(pem) => std::borrow::Cow::Borrowed(pem.as_slice()),
            RootCa::File(path) => std::borrow::Cow::Owned(std::fs::read(path).map_err(|e| {
                AdapterError::io(
                    format!(
                        "could not read the CA file {}: {e}; check the path and that this user may read it",
                        path.display()
                    ),
                    e,
                )
            })?),
        };
        let what = self.describe();
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!("{what} is not valid PEM: {e}; give the CA's certificate in PEM form"),
                )
                .with_source(e)
            })?;
        if certs.is_empty() {
            return Err(AdapterError::new(
                ErrorKind::InvalidInput,
                format!(
                    "{what} holds no certificate (no `-----BEGIN CERTIFICATE-----` block); give \
                     the CA's certificate in PEM form"
                ),
            ));
        }
        for (i, cert) in certs.iter().enumerate() {
            let mut store = rustls::RootCertStore::empty();
            store.add(cert.clone()).map_err(|e| {
                // rustls words it as a peer's certificate: say what is wrong only.
                let why = match &e {
                    rustls::Error::InvalidCertificate(why) => format!("{why:?}"),
                    other => other.to_string(),
                };
                AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "certificate {} of {what} is not a valid X.509 certificate ({why}); give \
                         the CA's certificate in PEM form",
                        i + 1
                    ),
                )
                .with_source(e)
            })?;
        }
        Ok(certs)
    }
}

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A client whose every request gives up after `timeout`, trusting the built-in roots and
/// `cas`. Fails naming a CA that cannot be read or is not a certificate.
pub(crate) fn client(timeout: Duration, cas: &[RootCa]) -> Result<reqwest::Client, AdapterError> {
    let mut builder = reqwest::Client::builder().timeout(timeout).use_rustls_tls();
    for ca in cas {
        for cert in ca.certificates()? {
            let cert = reqwest::Certificate::from_der(cert.as_ref()).map_err(|e| {
                AdapterError::new(
                    ErrorKind::InvalidInput,
                    format!("{} holds a certificate reqwest refuses: {e}", ca.describe()),
                )
                .with_source(e)
            })?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| {
        AdapterError::new(
            ErrorKind::Failed,
            format!("could not build an HTTP client: {}", chain(&e)),
        )
        .with_source(e)
    })
}

/// What went wrong with a request that got no answer, in words, without the URL; `None`
/// for a time-out (the caller words that with its limit). A TLS failure names the
/// certificate problem and what to do.
pub(crate) fn describe_failure(e: &reqwest::Error) -> Option<Failure> {
    if e.is_timeout() {
        return None;
    }
    if let Some(tls) = tls_error(e) {
        return Some(Failure {
            kind: ErrorKind::Failed,
            detail: format!("TLS handshake failed: {}", describe_tls(tls)),
        });
    }
    if e.is_connect() {
        return Some(Failure {
            kind: ErrorKind::Unavailable,
            detail: format!("connection refused or unreachable ({})", innermost(e)),
        });
    }
    Some(Failure {
        kind: ErrorKind::Failed,
        detail: format!("request failed: {}", chain(e)),
    })
}

/// A transport failure: its kind and its words.
pub(crate) struct Failure {
    pub(crate) kind: ErrorKind,
    pub(crate) detail: String,
}

/// The rustls error somewhere in `e`'s chain. An `io::Error` hides its inner error from
/// `source()` (it returns the inner error's source), so each one is opened with `get_ref`.
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(tls) = tls_error(inner) {
                return Some(tls);
            }
        }
        current = err.source();
    }
    None
}

/// A rustls failure with what it means for the person reading it.
fn describe_tls(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let hint = match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => {
                "the server's certificate is not signed by a CA this client trusts; for an \
                 internal CA, give its certificate with `root_ca_pem` or `root_ca_file`"
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "the server's certificate is not valid for the host name in the URL; use a \
                 name the certificate lists"
            }
            C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired",
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clocks)"
            }
            C::Revoked => "the server's certificate is revoked",
            _ => "the server's certificate was refused",
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the server did not answer in TLS; does it serve HTTPS on this port?"
        }
        _ => "",
    };
    if hint.is_empty() {
        e.to_string()
    } else {
        format!("{hint} ({e})")
    }
}

/// `e` and its causes, joined by `: `, without the URL (which may hold a token).
fn chain(e: &reqwest::Error) -> String {
    let mut words = vec![top(e)];
    let mut current = std::error::Error::source(e);
    while let Some(err) = current {
        let text = err.to_string();
        if words.last() != Some(&text) {
            words.push(text);
        }
        current = err.source();
    }
    words.join(": ")
}

/// The deepest cause of `e` (for a connection failure: the OS's words, e.g.
/// `Connection refused (os error 111)`).
fn innermost(e: &reqwest::Error) -> String {
    let mut last = top(e);
    let mut current = std::error::Error::source(e);
    while let Some(err) = current {
        last = err.to_string();
        current = err.source();
    }
    last
}

/// reqwest's own words for `e`, without the URL.
fn top(e: &reqwest::Error) -> String {
    let text = e.to_string();
    match e.url() {
        Some(url) => text
            .replace(&format!(" for url ({url})"), "")
            .replace(url.as_str(), "[url]"),
        None => text,
    }
}
