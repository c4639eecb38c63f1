//! The per-app hash chain: each event names the SHA-256 of the previous event of its app, so a
//! changed, removed or reordered event breaks the chain at the first place it touched.

use crate::event::{EventHash, Recorded};
use crate::names::AppName;
use std::collections::HashMap;

/// The first event whose `prev_hash` does not name its predecessor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hash chain of app {app} is broken at event {event_id} (log seq {seq}): {rule}")]
pub struct BrokenLink {
    pub app: AppName,
    pub seq: u64,
    pub event_id: uuid::Uuid,
    pub rule: String,
}

/// Follows each app's chain through events in log order.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    heads: HashMap<AppName, EventHash>,
    pub checked: u64,
}

impl ChainVerifier {
    pub fn check(&mut self, recorded: &Recorded) -> Result<(), BrokenLink> {
        let envelope = &recorded.envelope;
        let expected = self.heads.get(&envelope.app);
        if envelope.prev_hash.as_ref() != expected {
            let rule = match (expected, envelope.prev_hash) {
                (None, Some(_)) => {
                    "the app's first event must not name a previous hash".to_string()
                }
                (Some(_), None) => {
                    "it names no previous hash, but the app has earlier events".to_string()
                }
                _ => "its previous hash is not the hash of the app's previous event".to_string(),
            };
            return Err(BrokenLink {
                app: envelope.app.clone(),
                seq: recorded.seq,
                event_id: envelope.id,
                rule,
            });
        }
        self.heads.insert(envelope.app.clone(), recorded.hash);
        self.checked += 1;
        Ok(())
    }

    pub fn head(&self, app: &AppName) -> Option<EventHash> {
        self.heads.get(app).copied()
    }
}
