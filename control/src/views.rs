//! The JSON shapes of CLI.md (a public contract), built here so that every front end (the CLI's
//! `--json`, the HTTP API) returns the same bytes for the same answer.

use chrono::{DateTime, SecondsFormat, Utc};
use hoist_engine::{
    AppName, AppState, Build, EnvName, Envelope, EventHash, ImageRef, Lock, Pin, PipelinePolicy,
    Recorded, ReleaseRecord, Rollout, Target,
};
use hoist_projections::model::AppStatus;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A time as every view shows it: RFC 3339, UTC, whole seconds.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Serialize)]
pub struct SourceView<'a> {
    pub env: &'a EnvName,
    pub version: u64,
}

/// A release, as `releases`, `deploy`, `promote`, `rollback` and `config set/unset` print it.
#[derive(Debug, Serialize)]
pub struct ReleaseView<'a> {
    pub app: &'a AppName,
    pub env: &'a EnvName,
    pub version: u64,
    pub kind: &'static str,
    pub image: Option<&'a ImageRef>,
    pub build: Option<&'a str>,
    pub config: BTreeMap<&'a str, &'a str>,
    pub description: &'a str,
    pub actor: &'a str,
    pub at: String,
    pub source: Option<SourceView<'a>>,
    pub rollback_to: Option<u64>,
}

impl<'a> ReleaseView<'a> {
    pub fn new(app: &'a AppName, env: &'a EnvName, record: &'a ReleaseRecord) -> Self {
        let release = &record.release;
        ReleaseView {
            app,
            env,
            version: release.version.get(),
            kind: release.kind.as_str(),
            image: release.build.as_ref().map(|b| &b.image),
            build: release.build.as_ref().map(|b| b.id.as_str()),
            config: release
                .config
                .iter()
                .map(|(k, v)| (k.as_str(), v.display()))
                .collect(),
            description: &release.description,
            actor: record.actor.as_str(),
            at: timestamp(record.at),
            source: release.source.as_ref().map(|s| SourceView {
                env: &s.env,
                version: s.version.get(),
            }),
            rollback_to: release.rollback_to.map(|v| v.get()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EnvStatusView<'a> {
    pub version: Option<u64>,
    pub image: Option<&'a ImageRef>,
    pub locked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_reason: Option<&'a str>,
    pub released_at: Option<String>,
    /// The version last applied to the env's target (whatever came of it); `None` before any.
    pub applied_version: Option<u64>,
    /// What came of it: `applied` (health not awaited), `healthy` or `failed`.
    pub health: Option<&'static str>,
    // issue 16
    pub pinned: Option<PinView<'a>>,
    pub drifted: bool,
}

// issue 16
/// A pin, as `status` and `pin` show it.
#[derive(Debug, Serialize)]
pub struct PinView<'a> {
    pub reason: String,
    pub by: &'a str,
    pub at: String,
}

impl<'a> PinView<'a> {
    pub fn new(pin: &'a Pin) -> Self {
        PinView {
            reason: pin.reason_text(),
            by: pin.actor.as_str(),
            at: timestamp(pin.at),
        }
    }
}

/// `status`: the current release of every env, in pipeline order.
#[derive(Debug, Serialize)]
pub struct StatusView<'a> {
    pub app: &'a AppName,
    #[serde(serialize_with = "ordered_map")]
    pub envs: Vec<(&'a EnvName, EnvStatusView<'a>)>,
}

/// Serializes pairs as a JSON object in their given (pipeline) order.
fn ordered_map<S: serde::Serializer, K: Serialize, V: Serialize>(
    pairs: &[(K, V)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl<'a> StatusView<'a> {
    pub fn new(app: &'a AppName, state: &'a AppState) -> Self {
        let mut view = Self::of(app, &state.pipeline, |env| {
            let env_state = &state.envs[env];
            (
                env_state.current(),
                env_state.lock.as_ref(),
                env_state.rollout.as_ref(),
            )
        });
        // issue 16
        for (env, shown) in &mut view.envs {
            let env_state = &state.envs[*env];
            shown.pinned = env_state.pin.as_ref().map(PinView::new);
            shown.drifted = env_state.drift.is_some();
        }
        view
    }

    /// From the status read model, which keeps exactly what this view shows.
    pub fn of_model(app: &'a AppName, status: &'a AppStatus) -> Self {
        let mut view = Self::of(app, &status.pipeline, |env| {
            let env_status = &status.envs[env];
            (
                env_status.current(),
                env_status.lock.as_ref(),
                env_status.rollout.as_ref(),
            )
        });
        // issue 16
        for (env, shown) in &mut view.envs {
            let env_status = &status.envs[*env];
            shown.pinned = env_status.pin.as_ref().map(PinView::new);
            shown.drifted = env_status.drift.is_some();
        }
        view
    }

    fn of(
        app: &'a AppName,
        pipeline: &'a [EnvName],
        env_now: impl Fn(
            &EnvName,
        ) -> (
            Option<&'a ReleaseRecord>,
            Option<&'a Lock>,
            Option<&'a Rollout>,
        ),
    ) -> Self {
        let envs = pipeline
            .iter()
            .map(|env| {
                let (current, lock, rollout) = env_now(env);
                let view = EnvStatusView {
                    version: current.map(|r| r.release.version.get()),
                    image: current
                        .and_then(|r| r.release.build.as_ref())
                        .map(|b| &b.image),
                    locked: lock.is_some(),
                    locked_by: lock.map(|l| l.actor.as_str()),
                    lock_reason: lock.map(|l| l.reason.as_str()),
                    released_at: current.map(|r| timestamp(r.at)),
                    applied_version: rollout.map(|r| r.version.get()),
                    health: rollout.map(|r| r.outcome.as_str()),
                    pinned: None,
                    drifted: false,
                };
                (env, view)
            })
            .collect();
        StatusView { app, envs }
    }
}

/// `apps create`, `apps list` and `apps show`.
#[derive(Debug, Serialize)]
pub struct AppView<'a> {
    /// `app` and `envs`, as `status` prints them.
    #[serde(flatten)]
    pub status: StatusView<'a>,
    pub pipeline: Vec<&'a str>,
    pub created_at: Option<String>,
    pub builds: Vec<&'a Build>,
}

impl<'a> AppView<'a> {
    pub fn new(app: &'a AppName, state: &'a AppState) -> Self {
        AppView {
            status: StatusView::new(app, state),
            pipeline: state.pipeline.iter().map(EnvName::as_str).collect(),
            created_at: state.created_at.map(timestamp),
            builds: state.builds.values().collect(),
        }
    }
}

// The shapes below are JSON objects as serde_json's `json!` writes them (keys in its order):
// built here once, so every front end answers with the same bytes.

/// `builds register`.
pub fn build_json(app: &AppName, build: &Build, registered: bool) -> Value {
    json!({
        "app": app, "id": build.id, "image": build.image, "commit": build.commit, "note": build.note,
        "registered": registered,
        // issue 14: `{"web": null}` is the image's entrypoint.
        "processes": hoist_engine::formation::process_types(&build.processes)
            .into_iter()
            .map(|(t, c)| (t.to_string(), json!(c)))
            .collect::<serde_json::Map<String, Value>>(),
        "release_command": build.release_command,
    })
}

/// `lock` and `unlock`.
pub fn lock_json(app: &AppName, env: &EnvName, lock: Option<&Lock>) -> Value {
    json!({
        "app": app, "env": env, "locked": lock.is_some(),
        "by": lock.map(|l| l.actor.as_str()), "reason": lock.map(|l| l.reason.as_str()),
    })
}

/// `envs target`.
pub fn target_json(app: &AppName, env: &EnvName, target: &Target, changed: bool) -> Value {
    json!({"app": app, "env": env, "target": target, "changed": changed})
}

/// `envs policy`: every setting as it now stands.
pub fn policy_json(
    app: &AppName,
    env: &EnvName,
    auto_rollback: bool,
    pipeline: &PipelinePolicy,
    changed: bool,
) -> Value {
    json!({
        "app": app, "env": env, "auto_rollback": auto_rollback,
        "auto_promote": pipeline.auto_promote, "after": span(pipeline.after_secs),
        "verify": pipeline.verify, "self_heal": pipeline.self_heal, "changed": changed,
    })
}

// issue 16
pub use hoist_engine::event::span_text as span;

/// `pin` and `unpin`: the env's pin after the command.
pub fn pin_json(app: &AppName, env: &EnvName, pin: Option<&Pin>) -> Value {
    json!({"app": app, "env": env, "pinned": pin.map(PinView::new)})
}

/// `config get`: values in clear only when revealed; secrets otherwise as `<redacted>`.
#[derive(Debug)]
pub struct ConfigShown {
    pub app: AppName,
    pub env: EnvName,
    pub version: Option<u64>,
    pub config: BTreeMap<String, String>,
}

impl ConfigShown {
    pub fn json(&self) -> Value {
        json!({"app": self.app, "env": self.env, "version": self.version, "config": self.config})
    }
}

/// One line of `hoist events` and `events export`: the event with its place and hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventLine {
    pub seq: u64,
    pub hash: EventHash,
    #[serde(flatten)]
    pub envelope: Envelope,
}

impl EventLine {
    pub fn of(recorded: &Recorded) -> Self {
        EventLine {
            seq: recorded.seq,
            hash: recorded.hash,
            envelope: recorded.envelope.clone(),
        }
    }

    pub fn into_recorded(self) -> Recorded {
        Recorded {
            seq: self.seq,
            hash: self.hash,
            envelope: self.envelope,
        }
    }
}

/// `audit verify`: every hash chain held.
#[derive(Debug, Clone, Copy)]
pub struct Verified {
    pub apps: usize,
    pub events: u64,
}

impl Verified {
    pub fn json(&self) -> Value {
        json!({"ok": true, "apps": self.apps, "events": self.events})
    }
}

/// `events import`.
#[derive(Debug, Clone, Copy)]
pub struct Imported {
    pub apps: usize,
    pub commits: usize,
    pub events: usize,
}

impl Imported {
    pub fn json(&self) -> Value {
        json!({"apps": self.apps, "commits": self.commits, "events": self.events})
    }
}

/// `admin rebuild`.
#[derive(Debug, Clone, Copy)]
pub struct Rebuilt {
    pub commits: u64,
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    pub checkpoint: u64,
}

impl Rebuilt {
    pub fn json(&self) -> Value {
        json!({
            "commits": self.commits, "events": self.events, "seconds": self.seconds,
            "events_per_s": self.events_per_s, "checkpoint": self.checkpoint,
        })
    }
}

impl crate::reconcile::Planned {
    /// `apply --dry-run --json`: the objects (the Secret's values redacted) and the changes, or
    /// what an exec target would run and hand on stdin.
    pub fn json(&self) -> Value {
        let (app, env, target) = (&self.app, &self.env, &self.target);
        let version = self.record.release.version.get();
        match &self.plan {
            crate::reconcile::Plan::Exec { command } => json!({
                "app": app, "env": env, "version": version, "target": target,
                "stdin": self.exec_stdin(),
                "changes": [{"kind": "exec", "name": command, "action": "run"}],
            }),
            crate::reconcile::Plan::Objects { shown, changes, .. } => {
                let mut objects =
                    vec![serde_json::to_value(&shown.config_map).expect("serializes")];
                objects.extend(
                    shown
                        .secret
                        .as_ref()
                        .map(|s| serde_json::to_value(s).expect("serializes")),
                );
                // issue 14: the release phase, every process type, the Service, the Ingress.
                fn value(object: &impl Serialize) -> Value {
                    serde_json::to_value(object).expect("serializes")
                }
                objects.extend(shown.release_job.iter().map(value));
                objects.extend(shown.deployments.iter().map(value));
                objects.extend(shown.service.iter().map(value));
                objects.extend(shown.ingress.iter().map(value));
                json!({
                    "app": app, "env": env, "version": version, "target": target,
                    "objects": objects, "changes": changes,
                })
            }
        }
    }
}

// ---- identities, tokens, grants and chat links (`hoist access`) --------------------------------

/// An app or env of a grant's scope as `access list` shows it: `*` for every one.
fn every_or<T: std::fmt::Display>(name: Option<&T>) -> String {
    name.map_or_else(|| "*".to_string(), T::to_string)
}

/// `access token create`: the token, shown this once.
pub fn new_token_json(new: &crate::access::NewToken) -> Value {
    json!({
        "id": new.id, "identity": new.identity, "token": new.token,
        "expires_at": new.expires_at.map(timestamp), "name": new.name,
    })
}

/// One token of `access token list` (and `access token revoke`): never its hash, never itself.
pub fn token_json(token: &hoist_engine::access::Token) -> Value {
    json!({
        "id": token.id, "identity": token.identity, "name": token.name,
        "created_by": token.created_by, "created_at": timestamp(token.created_at),
        "expires_at": token.expires_at.map(timestamp),
        "revoked_by": token.revoked.as_ref().map(|r| &r.by),
        "revoked_at": token.revoked.as_ref().map(|r| timestamp(r.at)),
    })
}

/// One grant of `access list` (and `access grant`).
pub fn grant_json(record: &hoist_engine::access::GrantRecord) -> Value {
    json!({
        "identity": record.identity, "role": record.grant.role.to_string(),
        "app": every_or(record.grant.app.as_ref()), "env": every_or(record.grant.env.as_ref()),
        "granted_by": record.granted_by, "at": timestamp(record.at),
    })
}

/// `access grant`: the grant, and whether it is new.
pub fn granted_json(granted: &crate::access::Granted) -> Value {
    let mut json = grant_json(&granted.record);
    json["changed"] = json!(granted.changed);
    json
}

/// `access revoke`.
pub fn revoked_grant_json(revoked: &crate::access::RevokedGrant) -> Value {
    json!({
        "identity": revoked.identity, "role": revoked.grant.role.to_string(),
        "app": every_or(revoked.grant.app.as_ref()), "env": every_or(revoked.grant.env.as_ref()),
        "revoked_by": revoked.by, "at": timestamp(revoked.at),
    })
}

/// `access link` and `access unlink`.
pub fn linked_json(linked: &crate::access::Linked) -> Value {
    json!({
        "chat_id": linked.chat_id,
        "identity": linked.link.as_ref().map(|l| &l.identity).or(linked.was.as_ref()),
        "linked": linked.link.is_some(), "changed": linked.changed,
    })
}

impl crate::reconcile::Planned {
    /// What an exec target would get on stdin (issue 14: with the formation).
    pub(crate) fn exec_stdin(&self) -> Value {
        let view = ReleaseView::new(&self.app, &self.env, &self.record);
        serde_json::from_slice(&crate::formation::exec_payload(&view, &self.formation))
            .expect("the payload is JSON")
    }
}
