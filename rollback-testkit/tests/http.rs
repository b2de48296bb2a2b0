//! The HTTP probe and the webhook notifier against a real HTTP server on 127.0.0.1.

use rollback_core::{HealthProbe, HttpProbe, Notice, Notifier, Severity, WebhookNotifier};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A minimal HTTP/1.1 server: `/ok` 200, `/fail` 500, `/slow` 200 after 2 s, `/hook` records
/// the body and answers 204, `/hook-fail` 503.
struct Server {
    base: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

async fn serve() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&bodies);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let recorded = Arc::clone(&recorded);
            tokio::spawn(async move { handle(stream, recorded).await });
        }
    });
    Server { base, bodies }
}

async fn handle(mut stream: TcpStream, recorded: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, mut body) = loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break (
                String::from_utf8_lossy(&buf[..i]).to_string(),
                buf[i + 4..].to_vec(),
            );
        }
    };
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while body.len() < length {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let status = match path.as_str() {
        "/ok" => "200 OK",
        "/fail" => "500 Internal Server Error",
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "200 OK"
        }
        p if p.starts_with("/hook-fail") => "503 Service Unavailable",
        p if p.starts_with("/hook") => {
            recorded
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).to_string());
            "204 No Content"
        }
        _ => "404 Not Found",
    };
    let response = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/ok")
}

#[tokio::test]
async fn http_probe_200_500_slow_and_refused() {
    let server = serve().await;
    let timeout = Duration::from_millis(400);
    let probe = |path: &str| HttpProbe::new(&format!("{}{path}", server.base), timeout).unwrap();

    let ok = probe("/ok").probe().await;
    assert!(ok.healthy && ok.detail == "HTTP 200", "{ok:?}");
    assert!(ok.latency < timeout);

    let fail = probe("/fail").probe().await;
    assert!(!fail.healthy && fail.detail == "HTTP 500", "{fail:?}");

    let slow = probe("/slow").probe().await;
    assert!(
        !slow.healthy && slow.detail.contains("no answer within 400 ms"),
        "{slow:?}"
    );
    assert!(
        slow.latency >= timeout && slow.latency < Duration::from_secs(2),
        "{slow:?}"
    );

    let refused = HttpProbe::new(&refused_url().await, timeout)
        .unwrap()
        .probe()
        .await;
    assert!(
        !refused.healthy && refused.detail.contains("refused"),
        "{refused:?}"
    );

    let err = HttpProbe::new("not a url", timeout).unwrap_err();
    assert_eq!(err.kind(), rollback_core::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn http_probe_never_shows_credentials() {
    let server = serve().await;
    let url = format!("{}/ok", server.base).replace("http://", "http://user:probe-pw-canary@");
    let probe = HttpProbe::new(&url, Duration::from_millis(400)).unwrap();
    let result = probe.probe().await;
    assert!(!format!("{} {result:?} {probe:?}", probe.name()).contains("probe-pw-canary"));
}

fn notice() -> Notice {
    Notice::new(
        "devops",
        Severity::Critical,
        "incident opened: web down",
        "health failing for 300s",
    )
    .field("signal", "complete service failure")
}

#[tokio::test]
async fn webhook_posts_json_and_reports_failures() {
    let server = serve().await;
    let timeout = Duration::from_millis(400);
    let hook =
        WebhookNotifier::new(&format!("{}/hook?token=hook-token-canary", server.base), timeout).unwrap();
    hook.notify(&notice()).await.unwrap();
    let bodies = server.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let got: Notice = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(got, notice());
    assert!(!format!("{hook:?}").contains("hook-token-canary"));

    let err = WebhookNotifier::new(
        &format!("{}/hook-fail?token=hook-token-canary", server.base),
        timeout,
    )
    .unwrap()
    .notify(&notice())
    .await
    .unwrap_err();
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert!(!err.to_string().contains("hook-token-canary"), "{err}");

    let in_path = format!("{}/hook-fail/T000/B000/path-token-canary", server.base)
        .replace("http://", "http://user-token-canary@");
    let err = WebhookNotifier::new(&in_path, timeout)
        .unwrap()
        .notify(&notice())
        .await
        .unwrap_err();
    let hook = WebhookNotifier::new(&in_path, timeout).unwrap();
    for shown in [err.to_string(), format!("{hook:?}")] {
        assert!(
            !shown.contains("path-token-canary") && !shown.contains("user-token-canary"),
            "{shown}"
        );
    }

    let err = WebhookNotifier::new(&format!("{}/slow", server.base), timeout)
        .unwrap()
        .notify(&notice())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), rollback_core::ErrorKind::Timeout, "{err}");

    let err = WebhookNotifier::new(&refused_url().await, timeout)
        .unwrap()
        .notify(&notice())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), rollback_core::ErrorKind::Unavailable, "{err}");
}
