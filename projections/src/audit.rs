//! The audit view: who did what, when, one entry per event, and the filters of `hoist audit`.

use chrono::{DateTime, Utc};
use hoist_engine::{Actor, AppName, EnvName, Envelope, Recorded, Summary};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// One line of `hoist audit` (its `--json` shape, per CLI.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    /// The front end the event came through (`api`, `web`, a chat user); `None` for direct
    /// access to the store.
    #[serde(default)]
    pub via: Option<String>,
    /// The app, or the access chain (`_access`) for grants, tokens and chat links.
    pub app: AppName,
    pub env: Option<EnvName>,
    /// One of [`KINDS`] or "unknown" (borrowed while folding, owned once read back).
    pub kind: Cow<'static, str>,
    /// Rendered when shown or stored, not while folding.
    pub summary: Summary,
}

impl AuditEntry {
    pub fn of(recorded: &Recorded) -> Self {
        Self::of_envelope(recorded.seq, &recorded.envelope)
    }

    /// The entry of an envelope stored in the log entry `seq`.
    pub fn of_envelope(seq: u64, envelope: &Envelope) -> Self {
        let (kind, summary) = match &envelope.event {
            Some(event) => (event.kind(), event.summary()),
            None => (
                "unknown",
                Summary::Text("An event of a kind this version of hoist does not know".into()),
            ),
        };
        AuditEntry {
            seq,
            at: envelope.at,
            actor: envelope.actor.clone(),
            via: envelope.via.clone(),
            app: envelope.app.clone(),
            env: envelope.env().cloned(),
            kind: Cow::Borrowed(kind),
            summary,
        }
    }
}

/// The filters of `hoist audit`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub app: Option<AppName>,
    pub env: Option<EnvName>,
    pub actor: Option<String>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// The kinds `--kind` accepts.
pub const KINDS: &[&str] = &[
    "create",
    "build",
    "deploy",
    "config",
    "promote",
    "rollback",
    "lock",
    "unlock",
    "target",
    "policy",
    "rollout",
    "access",
    // issue 16
    "pin",
    "unpin",
    "verification",
    "drift_detected",
    "drift_healed",
    // issue 11
    "hook",
    // issue 14
    "scale",
    "domain",
];

impl AuditQuery {
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.app.as_ref().is_none_or(|app| *app == entry.app)
            && self
                .env
                .as_ref()
                .is_none_or(|env| Some(env) == entry.env.as_ref())
            && self
                .actor
                .as_ref()
                .is_none_or(|actor| actor == entry.actor.as_str())
            // An event of an unknown kind matches no `--kind` (its kind, "unknown", is not one).
            && self.kind.as_ref().is_none_or(|kind| *kind == entry.kind)
            && self.since.is_none_or(|since| entry.at >= since)
            && self.until.is_none_or(|until| entry.at <= until)
    }
}
