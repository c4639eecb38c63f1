//! A stand-in for Slack's Socket Mode, for hoist's tests: what it is and what it checks.
//!
//! It plays Slack's side of the protocol (`../shared/research/chatops.md` §1.5, and Slack's
//! `apps.connections.open` and Socket Mode pages), on one local port:
//! - `POST /api/apps.connections.open` takes the app-level token only as
//!   `Authorization: Bearer xapp-…` (as a POST parameter, or any other token, it answers
//!   `{"ok": false, "error": "invalid_auth"}` with 200, as Slack does) and answers
//!   `{"ok": true, "url": "ws://…/link/?ticket=N"}`;
//! - `GET /link/?ticket=N` is the WebSocket: a ticket opens one connection only; the first frame
//!   is `{"type": "hello", …}`; then the test pushes envelopes (`slash_commands`,
//!   `interactive`) and `disconnect` frames; every text frame the app sends is recorded as an ack
//!   (with the moment it came).
//!
//! It is not Slack: no rate limits, no 10-connection cap, no retries of unacked envelopes on its
//! own (the test redelivers by sending an envelope again, as Slack does after a reconnect).

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Shared {
    /// Every `apps.connections.open`: whether it was allowed.
    opens: Vec<bool>,
    tickets: Vec<bool>,
    /// The open connections' outboxes, newest last.
    connections: Vec<mpsc::UnboundedSender<Message>>,
    acks: Vec<(Instant, Value)>,
}

pub struct SlackSocket {
    port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl SlackSocket {
    /// Starts the stand-in (in a thread of its own) accepting `app_token`.
    pub fn start(app_token: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (token, state) = (app_token.to_string(), shared.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, port, token.clone(), state.clone()));
                }
            });
        });
        SlackSocket { port, shared }
    }

    /// The Web API's base, for `[slack] api_url`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.port)
    }

    /// `apps.connections.open` calls so far: allowed or not.
    pub fn opens(&self) -> Vec<bool> {
        self.shared.lock().unwrap().opens.clone()
    }

    /// WebSocket connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().unwrap().connections.len()
    }

    /// Sends `frame` on the newest connection.
    pub fn send(&self, frame: &Value) {
        let shared = self.shared.lock().unwrap();
        let newest = shared.connections.last().expect("a connection");
        newest.send(Message::text(frame.to_string())).unwrap();
    }

    /// Sends a ping on the newest connection (its pong is recorded as `{"pong": data}`).
    #[allow(dead_code)] // the chat bench's baseline
    pub fn ping(&self, data: &str) {
        let shared = self.shared.lock().unwrap();
        let newest = shared.connections.last().expect("a connection");
        newest
            .send(Message::Ping(data.as_bytes().to_vec().into()))
            .unwrap();
    }

    /// Every frame the app sent (its acks), with when it came.
    pub fn acks(&self) -> Vec<(Instant, Value)> {
        self.shared.lock().unwrap().acks.clone()
    }
}

async fn serve(mut stream: TcpStream, port: u16, token: String, shared: Arc<Mutex<Shared>>) {
    let mut start = [0u8; 64];
    let Ok(n) = stream.peek(&mut start).await else {
        return;
    };
    let start = String::from_utf8_lossy(&start[..n]).to_string();
    if start.starts_with("POST /api/apps.connections.open ") {
        let request = read_request(&mut stream).await;
        let allowed = request
            .lines()
            .take_while(|l| !l.is_empty())
            .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {token}")));
        let answer = {
            let mut shared = shared.lock().unwrap();
            shared.opens.push(allowed);
            shared.tickets.push(false);
            if allowed {
                json!({"ok": true, "url": format!("ws://127.0.0.1:{port}/link/?ticket={}", shared.tickets.len() - 1)})
            } else {
                json!({"ok": false, "error": "invalid_auth"})
            }
        };
        let body = answer.to_string();
        let _ = stream
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        return;
    }
    // A ticket opens one connection.
    let ticket: Option<usize> = start
        .strip_prefix("GET /link/?ticket=")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|t| t.parse().ok());
    let valid = ticket.is_some_and(|t| {
        let mut shared = shared.lock().unwrap();
        match shared.tickets.get_mut(t) {
            Some(used @ false) => {
                *used = true;
                true
            }
            _ => false,
        }
    });
    if !valid {
        let _ = stream
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    }
    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let hello = json!({"type": "hello", "num_connections": 1,
        "connection_info": {"app_id": "A0STANDIN"}, "debug_info": {"host": "stand-in"}});
    if socket.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    let (outbox, mut frames) = mpsc::unbounded_channel();
    shared.lock().unwrap().connections.push(outbox);
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => if socket.send(frame).await.is_err() { return },
                None => return,
            },
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let value = serde_json::from_str(text.as_str()).unwrap_or(json!({"not_json": text.as_str()}));
                    shared.lock().unwrap().acks.push((Instant::now(), value));
                }
                // The raw floor of a round trip on this socket (the chat bench's baseline).
                Some(Ok(Message::Pong(data))) => {
                    let value = json!({"pong": String::from_utf8_lossy(&data)});
                    shared.lock().unwrap().acks.push((Instant::now(), value));
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Reads an HTTP request's head and its `content-length` body, as text.
async fn read_request(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
}
