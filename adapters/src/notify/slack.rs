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
