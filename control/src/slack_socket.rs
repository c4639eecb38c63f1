//! Slack's Socket Mode inside `serve` (issue 12), for clusters Slack cannot reach: with an
//! app-level token (`[slack] app_token_file`), `serve` asks `apps.connections.open` for a
//! WebSocket URL, connects, and takes the same slash commands and button clicks the HTTP routes
//! take, through the same executor (`Hoist::slack_command`, `Hoist::slack_action`), under the
//! same roles. No signature here: the socket itself is authenticated by the app token.
//!
//! Every envelope is acknowledged by its `envelope_id` as soon as it is read (Slack retries
//! after 3 s), before the command runs. Slack delivers at least once and redelivers across
//! reconnects, so an envelope seen before (by id, and a command by its `trigger_id`) is acked
//! and not run again; the command id made from the `trigger_id` also makes a second `serve`
//! that gets the redelivery store the command once. A `disconnect` frame (Slack refreshes its
//! URLs) reconnects at once; a failed open or a dropped socket retries with backoff, as
//! `apps.connections.open` is rate-limited (Tier 1).

use crate::chat::SlackCommand;
use crate::Hoist;
use futures::{SinkExt, StreamExt};
use hoist_adapters::notify::websocket::{self, Message};
use hoist_adapters::notify::{Outgoing, Sender};
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::time::Duration;
use tokio::sync::watch;

/// How long opening a connection (the API call, then the WebSocket) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait after a failure, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How many envelope and trigger ids are remembered.
const REMEMBERED: usize = 10_000;

/// `serve.toml`'s Socket Mode settings: the app-level token (`xapp-…`, never printed) and the
/// Web API's base.
#[derive(Clone)]
pub struct SocketModeSettings {
    pub app_token: String,
    pub api_url: String,
}

impl std::fmt::Debug for SocketModeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketModeSettings")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// What one frame asks of the connection.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Hello,
    /// Slack will close this connection: open another.
    Disconnect(String),
    /// An envelope to ack by its id; `work` is `None` for one already seen or of no interest.
    Envelope {
        envelope_id: String,
        ack: Value,
        work: Option<Work>,
    },
    /// Not a frame of the protocol: ignored.
    Other,
}

/// What an envelope asks hoist to do.
#[derive(Debug, PartialEq)]
pub enum Work {
    Command(SlackCommand),
    Action(Value),
}

/// Envelope and trigger ids seen lately, oldest forgotten first.
#[derive(Default)]
pub struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// `true` the first time `id` is seen.
    pub fn first(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.ids.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

/// Reads one text frame: pure, so the protocol is tested without a socket.
pub fn read_frame(text: &str, seen: &mut Seen) -> Frame {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return Frame::Other;
    };
    match frame["type"].as_str() {
        Some("hello") => return Frame::Hello,
        Some("disconnect") => {
            return Frame::Disconnect(frame["reason"].as_str().unwrap_or("").to_string())
        }
        _ => {}
    }
    let Some(envelope_id) = frame["envelope_id"].as_str().map(str::to_string) else {
        return Frame::Other;
    };
    let payload = &frame["payload"];
    let new_envelope = seen.first(&format!("envelope {envelope_id}"));
    // A command Slack sends again under a new envelope keeps its trigger id.
    let new_trigger = payload["trigger_id"]
        .as_str()
        .is_none_or(|trigger| seen.first(&format!("trigger {trigger}")));
    let fresh = new_envelope && new_trigger;
    let mut ack = json!({"envelope_id": envelope_id});
    let work = match frame["type"].as_str() {
        Some("slash_commands") => {
            let command = serde_json::from_value::<SlackCommand>(payload.clone()).ok();
            if let (Some(command), true) = (&command, frame["accepts_response_payload"] == true) {
                ack["payload"] = json!({
                    "response_type": "ephemeral",
                    "text": crate::chat::working(&command.text),
                });
            }
            command.filter(|_| fresh).map(Work::Command)
        }
        Some("interactive") if payload["type"] == "block_actions" && fresh => {
            Some(Work::Action(payload.clone()))
        }
        _ => None,
    };
    Frame::Envelope {
        envelope_id,
        ack,
        work,
    }
}

pub(crate) async fn run(
    hoist: Hoist,
    settings: SocketModeSettings,
    mut stop: watch::Receiver<bool>,
) {
    let sender = Sender::new(OPEN_TIMEOUT);
    let mut seen = Seen::default();
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        let ended = tokio::select! {
            ended = session(&hoist, &settings, &sender, &mut seen) => ended,
            _ = stop.changed() => return,
        };
        match ended {
            Ok(reason) => {
                tracing::info!(%reason, "slack socket: reconnecting");
                backoff = FIRST_BACKOFF;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "slack socket");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// `apps.connections.open`: the WebSocket URL for this app.
async fn open_url(settings: &SocketModeSettings, sender: &Sender) -> Result<String, String> {
    let outgoing = Outgoing {
        method: "POST",
        url: format!(
            "{}/apps.connections.open",
            settings.api_url.trim_end_matches('/')
        ),
        headers: vec![
            ("content-type", "application/x-www-form-urlencoded".into()),
            ("authorization", format!("Bearer {}", settings.app_token)),
        ],
        body: Vec::new(),
    };
    let (status, body) = sender.call(&outgoing, 64 << 10).await?;
    let answer: Value = serde_json::from_slice(&body)
        .map_err(|_| format!("apps.connections.open answered {status} without JSON"))?;
    match (answer["ok"].as_bool(), answer["url"].as_str()) {
        (Some(true), Some(url)) => Ok(url.to_string()),
        _ => Err(format!(
            "apps.connections.open: {}",
            crate::text::escape(answer["error"].as_str().unwrap_or("refused"))
        )),
    }
}

/// One connection, until Slack asks for another (`Ok`, with the reason) or it fails (`Err`).
async fn session(
    hoist: &Hoist,
    settings: &SocketModeSettings,
    sender: &Sender,
    seen: &mut Seen,
) -> Result<String, String> {
    let url = open_url(settings, sender).await?;
    let mut socket = websocket::connect(&url, OPEN_TIMEOUT).await?;
    while let Some(message) = socket.next().await {
        let text = match message.map_err(|e| format!("reading the socket: {e}"))? {
            Message::Text(text) => text,
            Message::Ping(data) => {
                socket
                    .send(Message::Pong(data))
                    .await
                    .map_err(|e| format!("answering a ping: {e}"))?;
                continue;
            }
            Message::Close(_) => return Err("Slack closed the socket".into()),
            _ => continue,
        };
        match read_frame(text.as_str(), seen) {
            Frame::Hello => tracing::info!("slack socket: connected"),
            Frame::Disconnect(reason) => return Ok(reason),
            Frame::Envelope {
                envelope_id,
                ack,
                work,
            } => {
                socket
                    .send(Message::text(ack.to_string()))
                    .await
                    .map_err(|e| format!("acking envelope {envelope_id}: {e}"))?;
                let hoist = hoist.clone();
                match work {
                    Some(Work::Command(command)) => {
                        tokio::spawn(async move { hoist.slack_command(command).await });
                    }
                    Some(Work::Action(payload)) => {
                        tokio::spawn(async move { hoist.slack_action(&payload).await });
                    }
                    None => {}
                }
            }
            Frame::Other => {}
        }
    }
    Err("the socket ended".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_frame(envelope: &str, trigger: &str) -> String {
        json!({
            "type": "slash_commands", "envelope_id": envelope, "accepts_response_payload": true,
            "payload": {"team_id": "T1", "user_id": "U2", "user_name": "not-trusted",
                "text": "status api", "response_url": "https://hooks.slack.example/r",
                "trigger_id": trigger, "command": "/hoist"}
        })
        .to_string()
    }

    #[test]
    fn an_envelope_is_acked_by_its_id_and_run_once() {
        let mut seen = Seen::default();
        let Frame::Envelope { ack, work, .. } = read_frame(&command_frame("e1", "t1"), &mut seen)
        else {
            panic!("an envelope")
        };
        assert_eq!(ack["envelope_id"], "e1");
        assert_eq!(ack["payload"]["text"], "Working on `/hoist status api`…");
        match work {
            Some(Work::Command(c)) => {
                assert_eq!((c.team_id.as_str(), c.user_id.as_str()), ("T1", "U2"))
            }
            other => panic!("{other:?}"),
        }
        // Redelivered: the same envelope, or the same trigger under a new envelope.
        for again in [command_frame("e1", "t1"), command_frame("e2", "t1")] {
            let Frame::Envelope { ack, work, .. } = read_frame(&again, &mut seen) else {
                panic!("an envelope")
            };
            assert!(ack["envelope_id"].is_string());
            assert_eq!(work, None, "{again}");
        }
        assert!(matches!(
            read_frame(&command_frame("e3", "t3"), &mut seen),
            Frame::Envelope { work: Some(_), .. }
        ));
    }

    #[test]
    fn hello_disconnect_clicks_and_noise() {
        let mut seen = Seen::default();
        assert_eq!(
            read_frame(r#"{"type":"hello","num_connections":1}"#, &mut seen),
            Frame::Hello
        );
        assert_eq!(
            read_frame(
                r#"{"type":"disconnect","reason":"refresh_requested"}"#,
                &mut seen
            ),
            Frame::Disconnect("refresh_requested".into())
        );
        let click = json!({"type": "interactive", "envelope_id": "e9",
            "payload": {"type": "block_actions", "trigger_id": "t9", "actions": []}});
        assert!(matches!(
            read_frame(&click.to_string(), &mut seen),
            Frame::Envelope {
                work: Some(Work::Action(_)),
                ..
            }
        ));
        let event = json!({"type": "events_api", "envelope_id": "e10", "payload": {}});
        assert!(matches!(
            read_frame(&event.to_string(), &mut seen),
            Frame::Envelope { work: None, .. }
        ));
        assert_eq!(read_frame("not json", &mut seen), Frame::Other);
        assert_eq!(read_frame(r#"{"type":"x"}"#, &mut seen), Frame::Other);
    }

    #[test]
    fn the_memory_of_ids_is_bounded() {
        let mut seen = Seen::default();
        for n in 0..REMEMBERED + 5 {
            assert!(seen.first(&n.to_string()));
        }
        assert_eq!(seen.ids.len(), REMEMBERED);
        assert!(seen.first("0"), "the oldest is forgotten");
        assert!(!seen.first(&(REMEMBERED + 4).to_string()));
    }
}
