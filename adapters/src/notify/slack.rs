//! A Slack incoming webhook: Block Kit (a section with the sentence, a context line with who and
//! when) and the same sentence as `text`, the fallback notifications and screen readers use. A
//! failed rollout is an alert: a header block and a siren. The URL is the secret.

use super::{Endpoint, Notification, NotifyError, Outgoing};
use serde_json::json;

pub(super) fn request(
    endpoint: &Endpoint,
    notification: &Notification,
) -> Result<Outgoing, NotifyError> {
    let url = endpoint
        .secrets
        .first()
        .ok_or_else(|| NotifyError::Secret("a Slack hook needs its webhook URL".into()))?;
    Ok(Outgoing {
        method: "POST",
        url: url.clone(),
        headers: vec![("content-type", "application/json".to_string())],
        body: serde_json::to_vec(&message(notification)).expect("JSON"),
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
