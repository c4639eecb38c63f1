//! A Matrix room: `PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txnId}` with the
//! event's id as the transaction id, so a retry of the same delivery posts once (the homeserver
//! answers a repeated transaction with the first event). An `m.notice` (bots speak in notices,
//! which other bots do not answer), with an HTML body. Joining the room when the bot is not in
//! it is [`join`]'s, which `send` calls on `M_FORBIDDEN`.

use super::{escape_html, Endpoint, Notification, NotifyError, Outgoing};
use serde_json::json;

pub(super) fn request(
    endpoint: &Endpoint,
    notification: &Notification,
) -> Result<Outgoing, NotifyError> {
    let room = endpoint.room.as_deref().ok_or_else(|| NotifyError::Url {
        url: endpoint.url.clone(),
        rule: "a Matrix hook needs --room",
    })?;
    let url = format!(
        "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        endpoint.url.trim_end_matches('/'),
        encode_segment(room),
        notification.id.simple()
    );
    let html = if notification.alert {
        format!("🚨 <strong>{}</strong>", escape_html(&notification.text))
    } else {
        escape_html(&notification.text)
    };
    let body = json!({
        "msgtype": "m.notice",
        "body": notification.text,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
    });
    Ok(Outgoing {
        method: "PUT",
        url,
        headers: authorization(endpoint)?,
        body: serde_json::to_vec(&body).expect("JSON"),
    })
}

/// `POST /_matrix/client/v3/join/{room}`: the bot joins the room (it must have been invited, or
/// the room be public).
pub fn join(endpoint: &Endpoint) -> Result<Outgoing, NotifyError> {
    let room = endpoint.room.as_deref().unwrap_or_default();
    Ok(Outgoing {
        method: "POST",
        url: format!(
            "{}/_matrix/client/v3/join/{}",
            endpoint.url.trim_end_matches('/'),
            encode_segment(room)
        ),
        headers: authorization(endpoint)?,
        body: b"{}".to_vec(),
    })
}

fn authorization(endpoint: &Endpoint) -> Result<Vec<(&'static str, String)>, NotifyError> {
    let token = endpoint
        .secrets
        .first()
        .ok_or_else(|| NotifyError::Secret("a Matrix hook needs its access token".into()))?;
    Ok(vec![
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {token}")),
    ])
}

/// Percent-encodes one path segment (a room id holds `!` and `:`).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() * 3);
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_id_is_the_transaction_and_html_is_escaped() {
        let endpoint = Endpoint {
            format: hoist_engine::hooks::HookFormat::Matrix,
            url: "http://127.0.0.1:8008/".into(),
            secrets: vec!["syt_token".into()],
            room: Some("!abc:localhost".into()),
        };
        let n = super::super::tests::notification();
        let out = request(&endpoint, &n).unwrap();
        assert_eq!(out.method, "PUT");
        assert_eq!(
            out.url,
            format!(
                "http://127.0.0.1:8008/_matrix/client/v3/rooms/%21abc%3Alocalhost/send/m.room.message/{}",
                n.id.simple()
            )
        );
        let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["msgtype"], "m.notice");
        assert!(body["formatted_body"]
            .as_str()
            .unwrap()
            .ends_with("Deploy &lt;b&gt;&amp;"));
    }
}
