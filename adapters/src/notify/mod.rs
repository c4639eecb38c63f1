//! Hooks' formats (issue 11): one event, told to one endpoint. [`Notification`] is what every
//! format says, built once by `control` (its `data` is the CLI's JSON of the release or outcome);
//! [`body`] is the one payload every JSON format sends; each format module turns it into an
//! [`Outgoing`] request; [`send`] sends it, bounded in time, and says what came of it as the
//! engine's `hooks::Answered`. Nothing here decides what happens next (`hooks::next_step`) or
//! records anything.

pub mod cloudevents;
pub mod matrix;
pub mod send;
pub mod slack;
pub mod standard_webhooks;
pub mod websocket; // issue 12

use chrono::{DateTime, SecondsFormat, Utc};
use hoist_engine::hooks::HookFormat;
use serde::Serialize;
use uuid::Uuid;

pub use hyper::Uri;
pub use send::Sender;

/// One event as hooks tell it.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// `release.created`, `rollout.failed`, `env.locked`, `ping`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's id: `webhook-id`, `ce-id`, Matrix's transaction id.
    pub id: Uuid,
    /// The log sequence of its commit (0 for a ping).
    pub seq: u64,
    pub app: String,
    pub env: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The CLI's `--json` of the release, outcome or event.
    pub data: serde_json::Value,
    /// One sentence for people (chat), unescaped: each format escapes it for its markup.
    #[serde(skip)]
    pub text: String,
    /// A failed rollout: chat formats style it as an alert.
    #[serde(skip)]
    pub alert: bool,
}

fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// The body of every JSON format: `{"type", "id", "seq", "app", "env", "at", "actor", "data"}`.
pub fn body(notification: &Notification) -> Vec<u8> {
    serde_json::to_vec(notification).expect("notifications serialize")
}

/// Where a hook sends, with its secret in clear (opened only to send).
#[derive(Clone)]
pub struct Endpoint {
    pub format: HookFormat,
    /// The endpoint, or Matrix's homeserver; for Slack the secret is the URL.
    pub url: String,
    /// `whsec_…` secrets to sign with (several during a rotation), the Slack URL, or the Matrix
    /// access token.
    pub secrets: Vec<String>,
    pub room: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a secret in a log line.
        f.debug_struct("Endpoint")
            .field("format", &self.format)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// One HTTP request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotifyError {
    #[error("invalid hook secret: {0}")]
    Secret(String),
    #[error("invalid hook URL {url:?}: {rule}")]
    Url { url: String, rule: &'static str },
}

/// The request that tells `notification` to `endpoint`, signed at `now`.
pub fn request(
    endpoint: &Endpoint,
    notification: &Notification,
    now: DateTime<Utc>,
) -> Result<Outgoing, NotifyError> {
    match endpoint.format {
        HookFormat::StandardWebhooks => standard_webhooks::request(endpoint, notification, now),
        HookFormat::CloudEvents => cloudevents::request(endpoint, notification, now),
        HookFormat::Slack => slack::request(endpoint, notification),
        HookFormat::Matrix => matrix::request(endpoint, notification),
    }
}

/// Checks a URL hoist will send to: absolute http(s), with a host, no credentials in it.
pub fn check_url(url: &str) -> Result<(), NotifyError> {
    let bad = |rule| {
        Err(NotifyError::Url {
            url: url.to_string(),
            rule,
        })
    };
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        return bad("not a URL");
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return bad("must start with http:// or https://"),
    }
    let Some(authority) = uri.authority() else {
        return bad("must name a host");
    };
    if authority.as_str().contains('@') {
        return bad("must not hold credentials (user:password@): give secrets with --secret-file");
    }
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return bad("must not contain spaces or control characters");
    }
    Ok(())
}

/// HTML-escapes `text` (Matrix's formatted body).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn notification() -> Notification {
        Notification {
            kind: "release.created".into(),
            id: Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001),
            seq: 12,
            app: "api".into(),
            env: Some("production".into()),
            at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            actor: "ana@example.com".into(),
            data: serde_json::json!({"version": 12, "description": "Deploy <b>&"}),
            text: "api/production v12 released by ana@example.com: Deploy <b>&".into(),
            alert: false,
        }
    }

    #[test]
    fn the_payload_has_the_contract_fields() {
        let body: serde_json::Value = serde_json::from_slice(&body(&notification())).unwrap();
        let keys: std::collections::BTreeSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            ["type", "id", "seq", "app", "env", "at", "actor", "data"].into()
        );
        assert_eq!(body["type"], "release.created");
        assert_eq!(body["at"], "2027-01-15T08:00:00.000000Z");
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://hooks.example/x?y=1").is_ok());
        assert!(check_url("http://127.0.0.1:9/").is_ok());
        for bad in ["ftp://x/", "example.com/x", "https://u:p@x/", "https:///x"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
