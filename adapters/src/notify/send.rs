//! Sending one request: HTTP/1 over hyper's client (rustls with the platform's roots for
//! https), bounded in time, redirects not followed, the answer's status, `Retry-After` and the
//! start of its body kept for the delivery log.

use super::{matrix, request, Endpoint, Notification, NotifyError, Outgoing};
use chrono::{DateTime, Utc};
use hoist_engine::hooks::{Answered, HookFormat};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// How much of an answer's body the delivery log keeps.
const EXCERPT: usize = 200;

/// Sends hooks' requests. Cheap to clone: one connection pool.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Sender {
    /// A sender whose every attempt (connect, send, answer) ends within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .unwrap_or_else(|_| {
                // No usable root store on this machine: https endpoints will fail their
                // handshake (and say so in the delivery log); http ones still work.
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                    rustls::ClientConfig::builder_with_provider(
                        rustls::crypto::ring::default_provider().into(),
                    )
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
                )
            })
            .https_or_http()
            .enable_http1()
            .build();
        Sender {
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        }
    }

    /// Tells `notification` to `endpoint`: one attempt (for Matrix, joining the room first
    /// when the bot is not in it yet).
    pub async fn deliver(
        &self,
        endpoint: &Endpoint,
        notification: &Notification,
        now: DateTime<Utc>,
    ) -> Result<Answered, NotifyError> {
        let outgoing = request(endpoint, notification, now)?;
        let answered = self.send(&outgoing).await;
        if endpoint.format == HookFormat::Matrix && not_in_room(&answered) {
            if let Answered::Status { status, .. } = self.send(&matrix::join(endpoint)?).await {
                if (200..300).contains(&status) {
                    return Ok(self.send(&outgoing).await);
                }
            }
        }
        if endpoint.format == HookFormat::Slack && endpoint.room.is_some() {
            if let Answered::Status { excerpt, .. } = &answered {
                if let Some(refusal) = super::slack::refused(excerpt) {
                    return Ok(Answered::Transport(refusal));
                }
            }
        }
        Ok(answered)
    }

    /// Sends one request.
    pub async fn send(&self, outgoing: &Outgoing) -> Answered {
        match tokio::time::timeout(self.timeout, self.exchange(outgoing)).await {
            Ok(answered) => answered,
            Err(_) => Answered::Transport(format!("no answer within {:?}", self.timeout)),
        }
    }

    /// Sends one request and reads the whole answer, at most `limit` bytes of it (a chat bot's
    /// calls: Matrix's `/sync`, `join`, `send`).
    pub async fn call(&self, outgoing: &Outgoing, limit: usize) -> Result<(u16, Vec<u8>), String> {
        let exchange = async {
            let response = self
                .client
                .request(http_request(outgoing)?)
                .await
                .map_err(|e| chain(&e))?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| chain(&e))?;
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                    if bytes.len() > limit {
                        return Err(format!("an answer over {limit} bytes"));
                    }
                }
            }
            Ok((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }

    async fn exchange(&self, outgoing: &Outgoing) -> Answered {
        let request = match http_request(outgoing) {
            Ok(request) => request,
            Err(e) => return Answered::Transport(e),
        };
        let response = match self.client.request(request).await {
            Ok(response) => response,
            Err(e) => return Answered::Transport(chain(&e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|s| *s >= 0)
            .map(chrono::Duration::seconds);
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while bytes.len() < EXCERPT {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        bytes.extend_from_slice(data);
                    }
                }
                _ => break,
            }
        }
        bytes.truncate(EXCERPT);
        Answered::Status {
            status,
            retry_after,
            excerpt: excerpt(&bytes),
        }
    }
}

/// `outgoing` as hyper's request, with hoist's user agent.
fn http_request(outgoing: &Outgoing) -> Result<hyper::Request<Full<Bytes>>, String> {
    let mut request = hyper::Request::builder()
        .method(outgoing.method)
        .uri(&outgoing.url)
        .header("user-agent", concat!("hoist/", env!("CARGO_PKG_VERSION")));
    for (name, value) in &outgoing.headers {
        request = request.header(*name, value);
    }
    request
        .body(Full::new(Bytes::from(outgoing.body.clone())))
        .map_err(|e| format!("invalid request: {e}"))
}

/// Matrix's refusal of a send to a room the bot has not joined.
fn not_in_room(answered: &Answered) -> bool {
    matches!(answered, Answered::Status { status: 403, excerpt, .. } if excerpt.contains("M_FORBIDDEN"))
}

/// An answer's start as one printable line: control characters become spaces.
fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// An error and its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
