//! The Standard Webhooks spec (v1.0.0): `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one signature per secret
//! in force (space-separated, so a receiver keeps verifying through a rotation).

use super::{body, Endpoint, Notification, NotifyError, Outgoing};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};

/// The prefix of a Standard Webhooks symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";

pub(super) fn request(
    endpoint: &Endpoint,
    notification: &Notification,
    now: DateTime<Utc>,
) -> Result<Outgoing, NotifyError> {
    let body = body(notification);
    let mut headers = vec![("content-type", "application/json".to_string())];
    headers.extend(headers_for(endpoint, notification, now, &body)?);
    Ok(Outgoing {
        method: "POST",
        url: endpoint.url.clone(),
        headers,
        body,
    })
}

/// The three headers that sign `body` (also sent by the CloudEvents format).
pub(super) fn headers_for(
    endpoint: &Endpoint,
    notification: &Notification,
    now: DateTime<Utc>,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, NotifyError> {
    let id = notification.id.to_string();
    let timestamp = now.timestamp().to_string();
    let signatures = endpoint
        .secrets
        .iter()
        .map(|secret| sign(secret, &id, &timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signatures.join(" ")),
    ])
}

/// `v1,<base64 signature>` of `id.timestamp.body` under `secret` (`whsec_<base64 key>`).
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Result<String, NotifyError> {
    let key = decode_secret(secret)?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The key bytes of a `whsec_` secret: 24 to 64 bytes, as the spec asks.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, NotifyError> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
        NotifyError::Secret(format!(
            "must start with {SECRET_PREFIX} followed by base64"
        ))
    })?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| NotifyError::Secret(format!("what follows {SECRET_PREFIX} must be base64")))?;
    if !(24..=64).contains(&key.len()) {
        return Err(NotifyError::Secret(format!(
            "the key must be 24 to 64 bytes, not {}",
            key.len()
        )));
    }
    Ok(key)
}

/// A new secret: `whsec_` and 32 random bytes in base64.
pub fn encode_secret(key: &[u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_signature_is_reproduced() {
        // The Standard Webhooks spec's own example (spec/standard-webhooks.md, "Signature
        // scheme"): secret, id, timestamp and body as published there.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_secret_in_force_signs() {
        let mut endpoint = Endpoint {
            format: hoist_engine::hooks::HookFormat::StandardWebhooks,
            url: "https://x.example/".into(),
            secrets: vec![encode_secret(&[1; 32]), encode_secret(&[2; 32])],
            room: None,
        };
        let n = super::super::tests::notification();
        let now = DateTime::from_timestamp(1_800_000_100, 0).unwrap();
        let out = request(&endpoint, &n, now).unwrap();
        let signature = &out
            .headers
            .iter()
            .find(|h| h.0 == "webhook-signature")
            .unwrap()
            .1;
        assert_eq!(signature.split(' ').count(), 2);
        assert!(signature.split(' ').all(|s| s.starts_with("v1,")));
        endpoint.secrets = vec!["whsec_short".into()];
        assert!(request(&endpoint, &n, now).is_err());
    }
}
