//! A minimal HTTP/1.1 server on 127.0.0.1 for the HTTP probe and webhook tests, over plain
//! TCP or TLS (tokio-rustls), recording what webhooks receive.
//!
//! Routes: `/ok` 200, `/fail` 500, `/slow` 200 after 2 s; `/hook...` records the request
//! and answers 204, `/slack...` records it and answers 200 `ok` (as Slack does),
//! `/pagerduty...` records it and answers 202 with a JSON status (as PagerDuty does);
//! `/hook-fail...` 503, `/reject...` 400 `invalid_payload`, `/echo-reject...` 400 with the
//! request's body echoed back (a receiver that quotes what it got).

// Each test file uses a part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A request as the server received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub struct Server {
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub base: String,
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// Failed TLS handshakes, in words (the server's side of a refused certificate).
    pub handshake_errors: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn received(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// A plain-HTTP server.
pub async fn serve() -> Server {
    start(None).await
}

/// An HTTPS server with this TLS configuration.
pub async fn serve_tls(config: ServerConfig) -> Server {
    start(Some(TlsAcceptor::from(Arc::new(config)))).await
}

async fn start(tls: Option<TlsAcceptor>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let requests = Arc::new(Mutex::new(Vec::new()));
    let handshake_errors = Arc::new(Mutex::new(Vec::new()));
    let (recorded, refused) = (Arc::clone(&requests), Arc::clone(&handshake_errors));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let recorded = Arc::clone(&recorded);
            let refused = Arc::clone(&refused);
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => handle(stream, recorded).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(stream) => handle(stream, recorded).await,
                        Err(e) => refused.lock().unwrap().push(e.to_string()),
                    },
                }
            });
        }
    });
    Server {
        base: format!("{scheme}://127.0.0.1:{port}"),
        port,
        requests,
        handshake_errors,
    }
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, recorded: Arc<Mutex<Vec<Request>>>) {
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
    let mut lines = head.lines();
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or("/").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while body.len() < length {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let request = Request {
        method,
        path: path.clone(),
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    };
    let record = |request: &Request| recorded.lock().unwrap().push(request.clone());
    let route = path.split('?').next().unwrap_or_default();
    let (status, answer) = match route {
        "/ok" => ("200 OK", String::new()),
        "/fail" => ("500 Internal Server Error", String::new()),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            ("200 OK", String::new())
        }
        p if p.starts_with("/hook-fail") => ("503 Service Unavailable", String::new()),
        p if p.starts_with("/hook") => {
            record(&request);
            ("204 No Content", String::new())
        }
        p if p.starts_with("/slack") => {
            record(&request);
            ("200 OK", "ok".to_string())
        }
        p if p.starts_with("/pagerduty") => {
            record(&request);
            let dedup = serde_json::from_str::<serde_json::Value>(&request.body)
                .ok()
                .and_then(|v| v["dedup_key"].as_str().map(str::to_owned))
                .unwrap_or_default();
            (
                "202 Accepted",
                serde_json::json!({"status": "success", "message": "Event processed", "dedup_key": dedup})
                    .to_string(),
            )
        }
        p if p.starts_with("/reject") => ("400 Bad Request", "invalid_payload".to_string()),
        p if p.starts_with("/echo-reject") => (
            "400 Bad Request",
            format!("{{\"status\":\"invalid event\",\"got\":{}}}", request.body),
        ),
        _ => ("404 Not Found", String::new()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A URL on 127.0.0.1 where nothing listens.
pub async fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/ok")
}
