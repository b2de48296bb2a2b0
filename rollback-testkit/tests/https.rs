//! HTTPS for the health probe and the webhooks, against a TLS server on 127.0.0.1 whose CA
//! and certificate the test makes (rcgen): a private CA given to the client is trusted,
//! without it the certificate is refused with words that say why, and a CA that cannot be
//! read or is not a certificate is an error naming it.

mod http_server;

use http_server::{serve_tls, Server};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rollback_core::{
    AdapterError, ErrorKind, HealthProbe, HttpProbe, Notice, NoticeEvent, Notifier, Secret, Severity,
    WebhookFormat, WebhookNotifier,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A certificate authority made for the test.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn make_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A server certificate for `names` signed by `ca`, valid now unless `expired`.
fn server_config(ca: &Ca, names: &[&str], expired: bool) -> ServerConfig {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap()
}

/// An HTTPS server on 127.0.0.1 with a certificate for `127.0.0.1` and `localhost`.
async fn https_server(ca: &Ca) -> Server {
    serve_tls(server_config(ca, &["127.0.0.1", "localhost"], false)).await
}

#[tokio::test]
async fn https_probe_trusts_the_private_ca_it_is_given() {
    let ca = make_ca("rollback test CA");
    let server = https_server(&ca).await;
    let url = format!("{}/ok", server.base);
    assert!(url.starts_with("https://127.0.0.1:"));

    // Without the CA: the built-in roots do not know it, and the detail says so.
    let without = HttpProbe::new(&url, TIMEOUT).unwrap().probe().await;
    assert!(!without.healthy, "{without:?}");
    assert!(
        without.detail.starts_with("TLS handshake failed: ")
            && without.detail.contains("not signed by a CA this client trusts")
            && without.detail.contains("UnknownIssuer")
            && without.detail.contains("root_ca_pem"),
        "{without:?}"
    );

    // With it, in memory or in a file.
    let with_pem = HttpProbe::builder(url.clone(), TIMEOUT)
        .root_ca_pem(ca.pem.clone())
        .build()
        .unwrap()
        .probe()
        .await;
    assert!(with_pem.healthy && with_pem.detail == "HTTP 200", "{with_pem:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, &ca.pem).unwrap();
    let probe = HttpProbe::builder(url.clone(), TIMEOUT)
        .root_ca_file(&file)
        .build()
        .unwrap();
    let with_file = probe.probe().await;
    assert!(
        with_file.healthy && with_file.detail == "HTTP 200",
        "{with_file:?}"
    );

    // A bundle: another CA first, then the right one.
    let other = make_ca("another CA");
    let bundle = format!("{}{}", other.pem, ca.pem);
    let with_bundle = HttpProbe::builder(url.clone(), TIMEOUT)
        .root_ca_pem(bundle)
        .build()
        .unwrap()
        .probe()
        .await;
    assert!(with_bundle.healthy, "{with_bundle:?}");

    // The wrong CA alone is no better than none.
    let wrong = HttpProbe::builder(url.clone(), TIMEOUT)
        .root_ca_pem(other.pem.clone())
        .build()
        .unwrap()
        .probe()
        .await;
    assert!(
        !wrong.healthy && wrong.detail.contains("UnknownIssuer"),
        "{wrong:?}"
    );

    // Over TLS, a 500 is still a 500.
    let fail = HttpProbe::builder(format!("{}/fail", server.base), TIMEOUT)
        .root_ca_pem(ca.pem.clone())
        .build()
        .unwrap()
        .probe()
        .await;
    assert!(!fail.healthy && fail.detail == "HTTP 500", "{fail:?}");

    // The server saw the refused handshakes: the client refused, the server did not fail.
    assert_eq!(server.handshake_errors.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn https_probe_names_a_wrong_host_and_an_expired_certificate() {
    let ca = make_ca("rollback test CA");
    // The certificate names `localhost` only; the URL says 127.0.0.1.
    let wrong_name = serve_tls(server_config(&ca, &["localhost"], false)).await;
    let result = HttpProbe::builder(format!("{}/ok", wrong_name.base), TIMEOUT)
        .root_ca_pem(ca.pem.clone())
        .build()
        .unwrap()
        .probe()
        .await;
    assert!(
        !result.healthy && result.detail.contains("not valid for the host name"),
        "{result:?}"
    );

    let expired = serve_tls(server_config(&ca, &["127.0.0.1"], true)).await;
    let result = HttpProbe::builder(format!("{}/ok", expired.base), TIMEOUT)
        .root_ca_pem(ca.pem.clone())
        .build()
        .unwrap()
        .probe()
        .await;
    assert!(
        !result.healthy && result.detail.contains("has expired"),
        "{result:?}"
    );
}

fn notice() -> Notice {
    Notice::new(
        "devops",
        Severity::High,
        "rollback started: web",
        "v2.4 broke checkout",
    )
    .event(NoticeEvent::RollbackStarted)
    .incident("rb-https-1")
    .field("target", "checkpoint c1")
}

#[tokio::test]
async fn https_webhooks_arrive_with_the_ca_and_are_refused_without() {
    let ca = make_ca("rollback test CA");
    let server = https_server(&ca).await;
    let key = "R0UTINGKEYCANARY0123456789abcdef";

    let json = WebhookNotifier::builder(
        format!("{}/hook/json?token=hook-token-canary", server.base),
        TIMEOUT,
    )
    .root_ca_pem(ca.pem.clone())
    .build()
    .unwrap();
    json.notify(&notice()).await.unwrap();

    let slack = WebhookNotifier::builder(
        Secret::new(format!("{}/slack/T000/B000/slack-token-canary", server.base)),
        TIMEOUT,
    )
    .format(WebhookFormat::Slack)
    .root_ca_pem(ca.pem.clone())
    .build()
    .unwrap();
    slack.notify(&notice()).await.unwrap();

    let pagerduty = WebhookNotifier::pagerduty(Secret::new(key), TIMEOUT)
        .url(format!("{}/pagerduty/v2/enqueue", server.base))
        .root_ca_pem(ca.pem.clone())
        .build()
        .unwrap();
    pagerduty.notify(&notice()).await.unwrap();
    pagerduty
        .notify(&notice().event(NoticeEvent::RollbackSucceeded))
        .await
        .unwrap();

    let got = server.received();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0].path, "/hook/json?token=hook-token-canary");
    assert_eq!(got[0].json()["schema"], "rollback.notice/1");
    assert_eq!(got[0].json()["subject"], "rollback started: web");
    assert_eq!(got[1].json()["text"], "[HIGH] rollback started: web");
    let (trigger, resolve) = (got[2].json(), got[3].json());
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(trigger["dedup_key"], "rb-https-1");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert_eq!(trigger["routing_key"], key);
    assert_eq!(trigger["payload"]["severity"], "error");

    // Without the CA nothing arrives, and the error says it is the certificate.
    let refused = WebhookNotifier::pagerduty(Secret::new(key), TIMEOUT)
        .url(format!("{}/pagerduty/path-token-canary", server.base))
        .build()
        .unwrap()
        .notify(&notice())
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("TLS handshake failed") && message.contains("not signed by a CA this client trusts"),
        "{message}"
    );
    assert_eq!(refused.kind(), ErrorKind::Failed);
    assert_eq!(server.received().len(), 4);
    let shown = format!("{message} {refused:?} {json:?} {slack:?} {pagerduty:?}");
    for secret in [
        key,
        "hook-token-canary",
        "slack-token-canary",
        "path-token-canary",
    ] {
        assert!(!shown.contains(secret), "{secret} shown in: {shown}");
    }
}

#[test]
fn an_unreadable_or_invalid_ca_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let garbage = dir.path().join("garbage-ca.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let key_only = dir.path().join("key-only.pem");
    std::fs::write(&key_only, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let bad_der = dir.path().join("bad-der-ca.pem");
    // A well-formed PEM block whose content is not a certificate.
    std::fs::write(
        &bad_der,
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let bad_base64 = dir.path().join("bad-base64-ca.pem");
    std::fs::write(
        &bad_base64,
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();

    let url = "https://hooks.internal/T000/path-token-canary?token=query-token-canary";
    let probe = |path: &std::path::Path| -> AdapterError {
        HttpProbe::builder("https://app.internal/health", TIMEOUT)
            .root_ca_file(path)
            .build()
            .unwrap_err()
    };
    let hook = |path: &std::path::Path| -> AdapterError {
        WebhookNotifier::builder(url, TIMEOUT)
            .format(WebhookFormat::pagerduty("R0UTINGKEYCANARY"))
            .root_ca_file(path)
            .build()
            .unwrap_err()
    };
    for make in [&probe as &dyn Fn(&std::path::Path) -> AdapterError, &hook] {
        let err = make(&missing);
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(
            err.to_string().contains("could not read the CA file")
                && err.to_string().contains("missing-ca.pem"),
            "{err}"
        );
        for (file, words) in [
            (&garbage, "holds no certificate"),
            (&key_only, "holds no certificate"),
            (&bad_der, "is not a valid X.509 certificate"),
            (&bad_base64, "is not valid PEM"),
        ] {
            let err = make(file);
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
            let name = file.file_name().unwrap().to_str().unwrap();
            assert!(
                err.to_string().contains(words) && err.to_string().contains(name),
                "{name}: {err}"
            );
            let shown = format!("{err} {err:?}");
            for secret in ["path-token-canary", "query-token-canary", "R0UTINGKEYCANARY"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }

    // In memory: the same checks, naming the PEM given.
    let err = HttpProbe::builder("https://app.internal/health", TIMEOUT)
        .root_ca_pem("not a certificate")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("the CA PEM given in memory (17 bytes) holds no certificate"),
        "{err}"
    );
}
