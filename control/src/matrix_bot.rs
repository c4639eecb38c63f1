//! The Matrix bot inside `serve` (issue 12): it joins the configured rooms, long-polls `/sync`
//! with its `next_batch` kept durably (the hooks' journals' cursor `matrix-sync`), and obeys
//! `!hoist …` from the people in those rooms, as the identity each is linked to
//! (`hoist access link matrix:@user:server IDENTITY`), under its roles. Replies are `m.notice`s
//! in reply to the command; notices (other bots) and the bot's own messages are never answered;
//! rooms that are not configured are ignored.
//!
//! A restart neither misses nor replays a command: the cursor is saved after a batch is
//! handled, and a command seen again (a crash before the save) is the same command — its id is
//! derived from the Matrix event id — which the log stores once; the reply's transaction id is
//! derived from it too, so the room gets one reply.

use crate::chat::Reply;
use crate::Hoist;
use hoist_adapters::notify::matrix::encode_segment as encode;
use hoist_adapters::notify::{Outgoing, Sender};
use hoist_engine::ChatId;
use hoist_stores::journal::Journals;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::sync::watch;

/// How long one `/sync` waits for something to happen.
const LONG_POLL: Duration = Duration::from_secs(25);
/// The cursor's name in the journals.
const CURSOR: &str = "matrix-sync";
/// The largest `/sync` answer read.
const SYNC_LIMIT: usize = 16 << 20;

/// `serve.toml`'s `[matrix]`.
#[derive(Clone)]
pub struct MatrixBotSettings {
    pub homeserver: String,
    /// The bot's own user id: its messages are never answered.
    pub user: String,
    pub token: String,
    pub rooms: Vec<String>,
}

impl std::fmt::Debug for MatrixBotSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatrixBotSettings")
            .field("homeserver", &self.homeserver)
            .field("user", &self.user)
            .field("rooms", &self.rooms)
            .finish_non_exhaustive()
    }
}

pub(crate) async fn run(
    hoist: Hoist,
    settings: MatrixBotSettings,
    mut stop: watch::Receiver<bool>,
) {
    let bot = Bot {
        sender: Sender::new(LONG_POLL + Duration::from_secs(15)),
        settings,
    };
    let journals = loop {
        match hoist.journals().await {
            Ok(journals) => break journals,
            Err(e) => tracing::warn!(error = e.message(), "matrix: opening the journals"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
    };
    for room in &bot.settings.rooms {
        match bot
            .call("POST", &format!("/join/{}", encode(room)), Some(json!({})))
            .await
        {
            Ok(_) => tracing::info!(%room, "matrix: joined"),
            Err(e) => tracing::warn!(%room, error = %e, "matrix: joining"),
        }
    }
    loop {
        let pass = tokio::select! {
            pass = bot.pass(&hoist, &journals) => pass,
            _ = stop.changed() => return,
        };
        if let Err(e) = pass {
            tracing::warn!(error = %e, "matrix: sync");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

struct Bot {
    sender: Sender,
    settings: MatrixBotSettings,
}

impl Bot {
    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let outgoing = Outgoing {
            method,
            url: format!(
                "{}/_matrix/client/v3{path}",
                self.settings.homeserver.trim_end_matches('/')
            ),
            headers: vec![
                ("content-type", "application/json".to_string()),
                ("authorization", format!("Bearer {}", self.settings.token)),
            ],
            body: body.map_or_else(Vec::new, |b| serde_json::to_vec(&b).expect("JSON")),
        };
        let (status, bytes) = self.sender.call(&outgoing, SYNC_LIMIT).await?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            return Err(format!(
                "HTTP {status}: {}",
                crate::text::escape(&value["error"].as_str().unwrap_or("").replace('\n', " "))
            ));
        }
        Ok(value)
    }

    /// One `/sync`: the commands in it answered, then the cursor saved.
    async fn pass(&self, hoist: &Hoist, journals: &Journals) -> Result<(), String> {
        let since = journals
            .load_cursor(CURSOR)
            .await
            .map_err(|e| e.to_string())?;
        let filter = json!({
            "room": {"timeline": {"limit": 50}, "state": {"lazy_load_members": true}},
            "presence": {"types": []},
            "account_data": {"types": []},
        });
        let mut path = format!(
            "/sync?filter={}",
            encode(&serde_json::to_string(&filter).expect("JSON"))
        );
        match &since {
            Some(since) => path.push_str(&format!(
                "&since={}&timeout={}",
                encode(since),
                LONG_POLL.as_millis()
            )),
            // First start: what was said before the bot came is not for it.
            None => path.push_str("&timeout=0"),
        }
        let synced = self.call("GET", &path, None).await?;
        let next = synced["next_batch"]
            .as_str()
            .ok_or("a /sync answer without next_batch")?
            .to_string();
        if since.is_some() {
            self.answer_commands(hoist, &synced).await;
        }
        if let Some(invited) = synced["rooms"]["invite"].as_object() {
            for room in invited.keys().filter(|r| self.settings.rooms.contains(r)) {
                if let Err(e) = self
                    .call("POST", &format!("/join/{}", encode(room)), Some(json!({})))
                    .await
                {
                    tracing::warn!(%room, error = %e, "matrix: joining");
                }
            }
        }
        journals
            .save_cursor(CURSOR, &next)
            .await
            .map_err(|e| e.to_string())
    }

    async fn answer_commands(&self, hoist: &Hoist, synced: &Value) {
        let Some(joined) = synced["rooms"]["join"].as_object() else {
            return;
        };
        for (room, state) in joined {
            // A room that is not configured is not listened to.
            if !self.settings.rooms.contains(room) {
                continue;
            }
            let Some(events) = state["timeline"]["events"].as_array() else {
                continue;
            };
            for event in events {
                if let Some((words, sender, event_id)) = self.command(event) {
                    let reply = self.run(hoist, &words, sender, event_id).await;
                    if let Err(e) = self.reply(room, event_id, &reply).await {
                        tracing::warn!(%room, error = %e, "matrix: replying");
                    }
                }
            }
        }
    }

    /// The words of a `!hoist …` message from a person (never a notice, never the bot).
    fn command<'a>(&self, event: &'a Value) -> Option<(String, &'a str, &'a str)> {
        if event["type"] != "m.room.message" || event["content"]["msgtype"] != "m.text" {
            return None;
        }
        let sender = event["sender"].as_str()?;
        if sender == self.settings.user {
            return None;
        }
        let body = event["content"]["body"].as_str()?;
        let words = body.strip_prefix("!hoist")?;
        if !(words.is_empty() || words.starts_with(char::is_whitespace)) {
            return None;
        }
        Some((
            words.trim().to_string(),
            sender,
            event["event_id"].as_str()?,
        ))
    }

    async fn run(&self, hoist: &Hoist, words: &str, sender: &str, event_id: &str) -> Reply {
        let chat_id: ChatId = match format!("matrix:{sender}").parse() {
            Ok(id) => id,
            Err(e) => {
                return Reply {
                    text: format!("{e}"),
                    ok: false,
                }
            }
        };
        let reply = hoist
            .chat(
                &chat_id,
                words,
                "!hoist",
                Some(crate::chat::command_id(&format!(
                    "matrix command {event_id}"
                ))),
            )
            .await;
        tracing::info!(%sender, ok = reply.ok, "matrix: command");
        reply
    }

    async fn reply(&self, room: &str, event_id: &str, reply: &Reply) -> Result<(), String> {
        let html = format!(
            "<pre>{}</pre>",
            hoist_adapters::notify::escape_html(&reply.text)
        );
        let body = json!({
            "msgtype": "m.notice",
            "body": reply.text,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
            "m.relates_to": {"m.in_reply_to": {"event_id": event_id}},
        });
        let txn = format!(
            "reply-{}",
            crate::access::hex(&Sha256::digest(event_id.as_bytes())[..16])
        );
        self.call(
            "PUT",
            &format!("/rooms/{}/send/m.room.message/{txn}", encode(room)),
            Some(body),
        )
        .await
        .map(drop)
    }
}
