//! Slack: Block Kit (a section with the sentence, a context line with who and when) and the same
//! sentence as `text`, the fallback notifications and screen readers use. A failed rollout is an
//! alert: a header block and a siren. Two ways to post (issue 12):
//! - an incoming webhook: the URL is the secret, one channel, no buttons;
//! - the Web API's `chat.postMessage` with a bot token (`--room CHANNEL --token-file F`, the URL
//!   the API's base): there a failed rollout also carries a **Roll back to vN** button, which
//!   Slack posts back to `/chat/slack/interactions` (or over Socket Mode) as `block_actions`.

use super::{Endpoint, Notification, NotifyError, Outgoing};
use serde_json::json;

pub(super) fn request(
    endpoint: &Endpoint,
    notification: &Notification,
) -> Result<Outgoing, NotifyError> {
    let secret = endpoint.secrets.first().ok_or_else(|| {
        NotifyError::Secret("a Slack hook needs its webhook URL or bot token".into())
    })?;
    let Some(channel) = &endpoint.room else {
        return Ok(Outgoing {
            method: "POST",
            url: secret.clone(),
            headers: vec![("content-type", "application/json".to_string())],
            body: serde_json::to_vec(&message(notification)).expect("JSON"),
        });
    };
    let mut message = message(notification);
    if let Some(actions) = rollback_button(notification) {
        message["blocks"]
            .as_array_mut()
            .expect("blocks")
            .push(actions);
    }
    message["channel"] = channel.as_str().into();
    Ok(Outgoing {
        method: "POST",
        url: format!("{}/chat.postMessage", endpoint.url.trim_end_matches('/')),
        headers: vec![
            (
                "content-type",
                "application/json; charset=utf-8".to_string(),
            ),
            ("authorization", format!("Bearer {secret}")),
        ],
        body: serde_json::to_vec(&message).expect("JSON"),
    })
}

/// The button's `action_id`: what `/chat/slack/interactions` looks for.
pub const ROLLBACK_ACTION: &str = "hoist_rollback";

/// A failed rollout of vN (N > 1) gets **Roll back to vN-1**: `style: danger`, a confirm dialog,
/// the chat words it runs in `value` (`rollback APP ENV N-1`). Slack signs the click; whoever
/// clicks is authorized again under their own roles, so the value grants nothing.
fn rollback_button(notification: &Notification) -> Option<serde_json::Value> {
    let env = notification.env.as_deref()?;
    let failed = notification.data["version"].as_u64()?;
    if !notification.alert || failed < 2 {
        return None;
    }
    let target = failed - 1;
    let app = &notification.app;
    Some(json!({
        "type": "actions",
        "block_id": format!("hoist_rollback_{}", notification.id.simple()),
        "elements": [{
            "type": "button",
            "action_id": ROLLBACK_ACTION,
            "text": {"type": "plain_text", "text": format!("Roll back to v{target}")},
            "style": "danger",
            "value": format!("rollback {app} {env} {target}"),
            "confirm": {
                "title": {"type": "plain_text", "text": "Roll back?"},
                "text": {"type": "mrkdwn", "text": escape(&format!("Roll {app}/{env} back to v{target}? A new release is made from v{target}, and {env} is pinned."))},
                "confirm": {"type": "plain_text", "text": "Roll back"},
                "deny": {"type": "plain_text", "text": "Cancel"},
                "style": "danger"
            }
        }]
    }))
}

/// The Web API answers 200 with `{"ok": false, "error": …}` when it refuses (`channel_not_found`,
/// `not_in_channel`, `invalid_auth`): that is not a delivery.
pub fn refused(body_excerpt: &str) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_str(body_excerpt).ok()?;
    (answer["ok"] == false).then(|| {
        format!(
            "Slack refused: {}",
            answer["error"].as_str().unwrap_or("ok: false")
        )
    })
}

/// The message: `text` and `blocks`.
pub fn message(notification: &Notification) -> serde_json::Value {
    let text = escape(&notification.text);
    let when = notification.at.format("%Y-%m-%d %H:%M:%S UTC");
    let context = format!(
        "{} · {} · seq {}",
        escape(&notification.actor),
        when,
        notification.seq
    );
    let mut blocks = Vec::new();
    let fallback = if notification.alert {
        blocks.push(json!({
            "type": "header",
            "text": {"type": "plain_text", "text": "Rollout failed", "emoji": true}
        }));
        format!(":rotating_light: {text}")
    } else {
        text.clone()
    };
    blocks.push(json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": fallback}
    }));
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": context}]
    }));
    json!({"text": fallback, "blocks": blocks})
}

/// Slack's request signature (`X-Slack-Signature`): `v0=` and the hex HMAC-SHA256, under the
/// app's signing secret, of `v0:{timestamp}:{raw body}`.
pub fn request_signature(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(signing_secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// Slack's mrkdwn escaping: `&`, `<` and `>` only (the rest is formatting people may mean).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_signature_is_slacks_documented_example() {
        // Slack's "Verifying requests from Slack" example: secret, timestamp, body, signature.
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            request_signature(secret, "1531420618", body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }

    #[test]
    fn a_bot_posts_to_chat_post_message_and_a_failed_rollout_offers_the_rollback() {
        let endpoint = Endpoint {
            format: hoist_engine::hooks::HookFormat::Slack,
            url: "https://slack.example/api/".into(),
            secrets: vec!["xoxb-1".into()],
            room: Some("C0123".into()),
        };
        let mut n = super::super::tests::notification();
        let calm = request(&endpoint, &n).unwrap();
        assert_eq!(calm.url, "https://slack.example/api/chat.postMessage");
        assert!(calm
            .headers
            .contains(&("authorization", "Bearer xoxb-1".to_string())));
        let body: serde_json::Value = serde_json::from_slice(&calm.body).unwrap();
        assert_eq!(body["channel"], "C0123");
        assert_eq!(body["blocks"].as_array().unwrap().len(), 2, "no button");
        n.alert = true;
        let alert: serde_json::Value =
            serde_json::from_slice(&request(&endpoint, &n).unwrap().body).unwrap();
        let button = &alert["blocks"][3]["elements"][0];
        assert_eq!(button["text"]["text"], "Roll back to v11");
        assert_eq!(button["value"], "rollback api production 11");
        assert_eq!(button["style"], "danger");
        assert_eq!(button["action_id"], ROLLBACK_ACTION);
        assert!(button["confirm"].is_object());
        n.data["version"] = 1.into();
        let first: serde_json::Value =
            serde_json::from_slice(&request(&endpoint, &n).unwrap().body).unwrap();
        assert_eq!(
            first["blocks"].as_array().unwrap().len(),
            3,
            "v1 has nothing before it"
        );
    }

    #[test]
    fn the_web_apis_refusal_is_not_a_delivery() {
        assert_eq!(
            refused(r#"{"ok":false,"error":"not_in_channel"}"#).as_deref(),
            Some("Slack refused: not_in_channel")
        );
        assert_eq!(refused(r#"{"ok":true,"ts":"1.2"}"#), None);
        assert_eq!(refused("ok"), None);
    }

    #[test]
    fn text_is_escaped_and_a_failure_is_an_alert() {
        let mut n = super::super::tests::notification();
        let message = message(&n);
        assert_eq!(
            message["text"],
            "api/production v12 released by ana@example.com: Deploy &lt;b&gt;&amp;"
        );
        assert_eq!(message["blocks"][0]["type"], "section");
        n.alert = true;
        let alert = super::message(&n);
        assert_eq!(alert["blocks"][0]["type"], "header");
        assert!(alert["text"]
            .as_str()
            .unwrap()
            .starts_with(":rotating_light:"));
    }
}
