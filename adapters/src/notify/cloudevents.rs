//! CloudEvents 1.0, HTTP binary content mode: the context attributes as `ce-` headers
//! (`ce-type` = `dev.hoist.<type>`), the JSON payload as the body, plus the Standard Webhooks
//! signature headers over that body, so a receiver can check who sent it.

use super::standard_webhooks::headers_for;
use super::{body, Endpoint, Notification, NotifyError, Outgoing};
use chrono::{DateTime, SecondsFormat, Utc};

pub(super) fn request(
    endpoint: &Endpoint,
    notification: &Notification,
    now: DateTime<Utc>,
) -> Result<Outgoing, NotifyError> {
    let body = body(notification);
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("ce-specversion", "1.0".to_string()),
        ("ce-id", notification.id.to_string()),
        ("ce-source", source(notification)),
        ("ce-type", format!("dev.hoist.{}", notification.kind)),
        (
            "ce-time",
            notification.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        ),
    ];
    if let Some(env) = &notification.env {
        headers.push(("ce-subject", env.clone()));
    }
    headers.extend(headers_for(endpoint, notification, now, &body)?);
    Ok(Outgoing {
        method: "POST",
        url: endpoint.url.clone(),
        headers,
        body,
    })
}

/// The event's source, a URI reference: `/apps/<app>` (the access chain's is `/access`). With
/// `ce-id` it is unique, as the spec asks.
fn source(notification: &Notification) -> String {
    match notification.app.as_str() {
        "_access" => "/access".to_string(),
        app => format!("/apps/{app}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_mode_headers_name_the_event() {
        let endpoint = Endpoint {
            format: hoist_engine::hooks::HookFormat::CloudEvents,
            url: "https://x.example/".into(),
            secrets: vec![super::super::standard_webhooks::encode_secret(&[7; 32])],
            room: None,
        };
        let n = super::super::tests::notification();
        let out = request(&endpoint, &n, n.at).unwrap();
        let header = |name: &str| {
            out.headers
                .iter()
                .find(|h| h.0 == name)
                .map(|h| h.1.as_str())
        };
        assert_eq!(header("ce-type"), Some("dev.hoist.release.created"));
        assert_eq!(header("ce-source"), Some("/apps/api"));
        assert_eq!(header("ce-subject"), Some("production"));
        assert_eq!(header("ce-id"), header("webhook-id"));
        assert!(header("webhook-signature").unwrap().starts_with("v1,"));
    }
}
