//! The audit view: who did what, when, one entry per event, and the filters of `hoist audit`.

use chrono::{DateTime, Utc};
use hoist_engine::{Actor, AppName, EnvName, Recorded};
use serde::Serialize;

/// One line of `hoist audit` (its `--json` shape, per CLI.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub app: AppName,
    pub env: Option<EnvName>,
    pub kind: &'static str,
    pub summary: String,
}

impl AuditEntry {
    pub fn of(recorded: &Recorded) -> Self {
        let envelope = &recorded.envelope;
        let (kind, summary) = match &envelope.event {
            Some(event) => (event.kind(), event.summary()),
            None => (
                "unknown",
                "An event of a kind this version of hoist does not know".to_string(),
            ),
        };
        AuditEntry {
            seq: recorded.seq,
            at: envelope.at,
            actor: envelope.actor.clone(),
            app: envelope.app.clone(),
            env: envelope.env().cloned(),
            kind,
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
    "create", "build", "deploy", "config", "promote", "rollback", "lock", "unlock", "target",
    "policy", "rollout",
];

impl AuditQuery {
    pub fn matches(&self, recorded: &Recorded) -> bool {
        let envelope = &recorded.envelope;
        self.app.as_ref().is_none_or(|app| *app == envelope.app)
            && self
                .env
                .as_ref()
                .is_none_or(|env| Some(env) == envelope.env())
            && self
                .actor
                .as_ref()
                .is_none_or(|actor| actor == envelope.actor.as_str())
            && self
                .kind
                .as_ref()
                .is_none_or(|kind| envelope.event.as_ref().is_some_and(|e| e.kind() == kind))
            && self.since.is_none_or(|since| envelope.at >= since)
            && self.until.is_none_or(|until| envelope.at <= until)
    }
}
