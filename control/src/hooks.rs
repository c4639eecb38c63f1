//! `hoist hooks …` (issue 11): hooks are access-chain events (`AccessCommand::AddHook`, …), each
//! authorized as admin on the hook's scope; their deliveries are read from the hook's journal
//! (`hoist_stores::journal`) and the log. Sending is `deliver`'s, inside `serve`; `hooks test`
//! alone sends from here, at once, a ping that is no event and is not recorded.
//!
//! A delivery's id is the id of the event it delivers (Standard Webhooks' `webhook-id`,
//! CloudEvents' `ce-id`, Matrix's transaction id): unique within a hook, the same on every retry.

use crate::error::{Error, Result};
use crate::store::OpenMode;
use crate::text::escape;
use crate::views::{timestamp, ReleaseView};
use crate::{Caller, Hoist};
use chrono::{DateTime, Utc};
use hoist_adapters::notify::standard_webhooks;
use hoist_adapters::notify::{self, Endpoint, Notification, Sender};
use hoist_engine::hooks::{
    done_through, Answered, Delivery, DeliveryState, Hook, HookFormat, HookKind, HookSpec,
};
use hoist_engine::secrets::{sealed_with, SecretKey};
use hoist_engine::service;
use hoist_engine::store::EventStore;
use hoist_engine::{
    AccessCommand, Action, AppName, EnvName, Event, HookName, Principal, Recorded, ReleaseRecord,
    Scope,
};
use hoist_stores::journal::Journals;
use hoist_stores::AnyStore;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

/// How long one attempt may take, connect to answer (the bound).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// `hooks add`, as given.
#[derive(Debug, Clone)]
pub struct HookAdd {
    pub name: HookName,
    pub url: String,
    pub format: HookFormat,
    pub app: Option<AppName>,
    pub env: Option<EnvName>,
    pub kinds: BTreeSet<HookKind>,
    /// `--secret-file`'s `whsec_` secret, or `--token-file`'s Matrix token; none: a new
    /// signing secret is made (signing formats).
    pub secret: Option<String>,
    pub room: Option<String>,
}

/// `hooks add`'s answer: the signing secret shown once (none when it was given).
#[derive(Debug, Serialize)]
pub struct AddedHook {
    pub name: String,
    pub url: String,
    pub format: String,
    pub secret: Option<String>,
}

/// A hook as `hooks list` shows it. Never its secret.
#[derive(Debug, Serialize)]
pub struct HookView {
    pub name: String,
    pub format: String,
    pub url: String,
    pub app: Option<String>,
    pub env: Option<String>,
    pub events: Vec<&'static str>,
    pub room: Option<String>,
    pub state: &'static str,
    pub disabled_reason: Option<String>,
    pub added_by: String,
    pub added_at: String,
}

impl HookView {
    pub fn new(hook: &Hook) -> Self {
        let spec = &hook.spec;
        HookView {
            name: spec.name.to_string(),
            format: spec.format.to_string(),
            url: spec.url.clone(),
            app: spec.app.as_ref().map(ToString::to_string),
            env: spec.env.as_ref().map(ToString::to_string),
            events: spec.kinds.iter().map(|k| k.as_str()).collect(),
            room: spec.room.clone(),
            state: if hook.disabled.is_some() {
                "disabled"
            } else {
                "active"
            },
            disabled_reason: hook.disabled.clone(),
            added_by: hook.added_by.to_string(),
            added_at: timestamp(hook.added_at),
        }
    }
}

/// One delivery as `hooks deliveries` shows it (CLI.md's shape).
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub seq: u64,
    pub app: String,
    pub env: Option<String>,
    pub kind: String,
    pub attempts: u32,
    pub state: &'static str,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
}

impl DeliveryView {
    pub fn new(delivery: &Delivery) -> Self {
        DeliveryView {
            id: delivery.id.to_string(),
            event_id: delivery.id.to_string(),
            seq: delivery.seq,
            app: delivery.app.to_string(),
            env: delivery.env.as_ref().map(ToString::to_string),
            kind: delivery.kind.clone(),
            attempts: delivery.attempts,
            state: delivery.state.as_str(),
            last_status: delivery.last_status,
            last_error: delivery.last_error.clone(),
            next_attempt_at: delivery.next_attempt_at.map(timestamp),
        }
    }
}

/// `hooks test`'s answer.
#[derive(Debug, Serialize)]
pub struct Pinged {
    pub hook: String,
    pub id: String,
    pub ok: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// `hooks rotate`'s answer: the new secret shown once (none when it was given).
#[derive(Debug, Serialize)]
pub struct Rotated {
    pub name: String,
    pub secret: Option<String>,
    pub previous_valid_until: String,
}

/// `hooks redeliver`'s answer.
#[derive(Debug, Serialize)]
pub struct Redelivery {
    pub hook: String,
    pub delivery: String,
    pub state: &'static str,
}

fn scope_of(spec: &HookSpec) -> Scope {
    Scope {
        app: spec.app.clone(),
        env: spec.env.clone(),
    }
}

impl Hoist {
    /// The hooks in force (disabled ones included), as the access chain holds them now.
    pub(crate) async fn hooks_in_force(&self) -> Result<Vec<Hook>> {
        self.with_access(|state| state.hooks.values().cloned().collect())
            .await
    }

    async fn hook(&self, principal: &Principal, name: &HookName) -> Result<Hook> {
        let hook = self
            .with_access(|state| state.hooks.get(name).cloned())
            .await?
            .ok_or_else(|| {
                Error::rejected(format!(
                    "hook {name} does not exist (see `hoist hooks list`)"
                ))
            })?;
        self.allowed(principal, Action::Admin, &scope_of(&hook.spec))?;
        Ok(hook)
    }

    /// Where hooks' journals are (the NATS one is created on first use).
    pub(crate) async fn journals(&self) -> Result<Journals> {
        match (&self.settings.log, self.open_log(OpenMode::Create).await?) {
            (crate::config::Log::Embedded { dir }, _) => Ok(Journals::in_dir(dir)),
            (_, AnyStore::Nats(store)) => Journals::on_nats(&store, self.replicas())
                .await
                .map_err(Error::unavailable),
            (_, AnyStore::Embedded(_)) => unreachable!("a NATS setting opens a NATS log"),
        }
    }

    /// `hooks add`: validated, its secret sealed, recorded on the access chain.
    pub async fn hooks_add(&self, caller: &Caller, add: HookAdd) -> Result<AddedHook> {
        let scope = Scope {
            app: add.app.clone(),
            env: add.env.clone(),
        };
        // Asked before anything is sealed or made.
        self.allowed(&caller.principal, Action::Admin, &scope)?;
        notify::check_url(&add.url).map_err(Error::rejected)?;
        if add.kinds.is_empty() {
            return Err(Error::rejected("--events names no kind"));
        }
        let (url, secret, shown) = match add.format {
            HookFormat::StandardWebhooks | HookFormat::CloudEvents => {
                if add.room.is_some() {
                    return Err(Error::rejected("--room is for --format matrix"));
                }
                let (secret, shown) = signing_secret(add.secret)?;
                (add.url.clone(), secret, shown)
            }
            // An incoming webhook: the URL is the secret, only its origin is recorded in clear.
            HookFormat::Slack if add.room.is_none() => {
                if add.secret.is_some() {
                    return Err(Error::rejected(
                        "a slack incoming webhook's secret is its URL: --secret-file and --token-file do not apply (a bot posts with --room CHANNEL --token-file F)",
                    ));
                }
                (origin(&add.url), add.url.clone(), None)
            }
            // issue 12: a bot (`chat.postMessage`): the URL is the Web API's base, the token sealed.
            HookFormat::Slack => {
                let channel = add.room.as_deref().unwrap_or_default();
                if channel.is_empty()
                    || channel.len() > 80
                    || !channel.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(Error::rejected(
                        "--room for --format slack is a channel id: letters and digits (e.g. C0123ABCD)",
                    ));
                }
                let token = bot_token(
                    add.secret.clone(),
                    "--format slack --room",
                    "the bot token (xoxb-…)",
                )?;
                (add.url.trim_end_matches('/').to_string(), token, None)
            }
            HookFormat::Matrix => {
                let room = add.room.as_deref().unwrap_or_default();
                if !room.starts_with('!')
                    || room.len() > 255
                    || room.chars().any(|c| c.is_control() || c == ' ')
                {
                    return Err(Error::rejected(
                        "--format matrix needs --room ROOM_ID: a room id starts with '!' (e.g. !abc:example.org)",
                    ));
                }
                let token = bot_token(
                    add.secret.clone(),
                    "--format matrix",
                    "the bot's access token",
                )?;
                (add.url.trim_end_matches('/').to_string(), token, None)
            }
        };
        let sealed_secret = self.seal_hook_secret(&add.name, &secret).await?;
        let spec = HookSpec {
            name: add.name.clone(),
            format: add.format,
            url: url.clone(),
            app: add.app,
            env: add.env,
            kinds: add.kinds,
            sealed_secret,
            room: add.room,
        };
        self.access_execute(caller, AccessCommand::AddHook { hook: spec })
            .await?;
        Ok(AddedHook {
            name: add.name.to_string(),
            url,
            format: add.format.to_string(),
            secret: shown,
        })
    }

    async fn seal_hook_secret(&self, name: &HookName, secret: &str) -> Result<Vec<u8>> {
        let log = self.open_log(OpenMode::Create).await?;
        let secrets = service::store_secrets(&log, &AppName::access()).await?;
        let sealer = SecretKey::for_sealing(&self.settings.secret_key_path()?, &secrets)
            .map_err(Error::rejected)?;
        Ok(sealer.seal(&HookSpec::sealing_label(name), secret))
    }

    /// A hook's endpoint with its secret opened (only `serve` and `hooks test` need it).
    pub(crate) fn endpoint(&self, spec: &HookSpec) -> Result<Endpoint> {
        let key = SecretKey::for_opening(
            &self.settings.secret_key_path()?,
            sealed_with(&spec.sealed_secret),
        )
        .map_err(Error::rejected)?;
        let secret = key
            .open(&HookSpec::sealing_label(&spec.name), &spec.sealed_secret)
            .map_err(Error::rejected)?;
        Ok(Endpoint {
            format: spec.format,
            url: spec.url.clone(),
            secrets: vec![secret],
            room: spec.room.clone(),
        })
    }

    /// The endpoint of `hook` at `now`: during a rotation, the previous secret signs too.
    pub(crate) fn endpoint_at(&self, hook: &Hook, now: DateTime<Utc>) -> Result<Endpoint> {
        let mut endpoint = self.endpoint(&hook.spec)?;
        if let Some((sealed, until)) = &hook.previous_secret {
            if now < *until {
                let previous = HookSpec {
                    sealed_secret: sealed.clone(),
                    ..hook.spec.clone()
                };
                endpoint.secrets.extend(self.endpoint(&previous)?.secrets);
            }
        }
        Ok(endpoint)
    }

    /// `hooks rotate`: a new signing secret (made, or given); the previous one keeps signing
    /// beside it for `keep`, so receivers switch without losing a delivery.
    pub async fn hooks_rotate(
        &self,
        caller: &Caller,
        name: &HookName,
        secret: Option<String>,
        keep: Duration,
    ) -> Result<Rotated> {
        let hook = self.hook(&caller.principal, name).await?;
        if !hook.spec.format.signs() {
            return Err(Error::rejected(format!(
                "hook {name} is {}: only signing formats (standard-webhooks, cloudevents) rotate a secret; remove it and add it again with the new URL or token",
                hook.spec.format
            )));
        }
        let (secret, shown) = signing_secret(secret)?;
        let previous_until = Utc::now()
            + chrono::Duration::from_std(keep).map_err(|_| Error::rejected("--keep: too long"))?;
        let command = AccessCommand::RotateHookSecret {
            name: name.clone(),
            scope: scope_of(&hook.spec),
            sealed_secret: self.seal_hook_secret(name, &secret).await?,
            previous_until,
        };
        self.access_execute(caller, command).await?;
        Ok(Rotated {
            name: name.to_string(),
            secret: shown,
            previous_valid_until: timestamp(previous_until),
        })
    }

    /// `hooks list`: the hooks `principal` administers.
    pub async fn hooks_list(&self, principal: &Principal) -> Result<Vec<Hook>> {
        Ok(self
            .hooks_in_force()
            .await?
            .into_iter()
            .filter(|hook| {
                self.allowed(principal, Action::Admin, &scope_of(&hook.spec))
                    .is_ok()
            })
            .collect())
    }

    /// `hooks remove`: no delivery of it is sent from now on (one in flight finishes).
    pub async fn hooks_remove(&self, caller: &Caller, name: &HookName) -> Result<Hook> {
        let hook = self.hook(&caller.principal, name).await?;
        let command = AccessCommand::RemoveHook {
            name: name.clone(),
            scope: scope_of(&hook.spec),
        };
        self.access_execute(caller, command).await?;
        Ok(hook)
    }

    /// `hooks test`: a `ping` sent now, from here; no event, not recorded.
    pub async fn hooks_test(&self, caller: &Caller, name: &HookName) -> Result<Pinged> {
        let hook = self.hook(&caller.principal, name).await?;
        let now = Utc::now();
        let endpoint = self.endpoint_at(&hook, now)?;
        let ping = Notification {
            kind: "ping".into(),
            id: Uuid::now_v7(),
            seq: 0,
            app: hook
                .spec
                .app
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            env: hook.spec.env.as_ref().map(ToString::to_string),
            at: now,
            actor: caller.actor.to_string(),
            data: serde_json::json!({"hook": name.as_str()}),
            text: format!("hoist: test of hook {name} by {}", caller.actor),
            alert: false,
        };
        let sender = Sender::new(ATTEMPT_TIMEOUT);
        let answered = sender
            .deliver(&endpoint, &ping, now)
            .await
            .map_err(Error::rejected)?;
        let (status, error) = match &answered {
            Answered::Status {
                status, excerpt, ..
            } => (
                Some(*status),
                (!(200..300).contains(status)).then(|| excerpt.clone()),
            ),
            Answered::Transport(e) => (None, Some(e.clone())),
        };
        Ok(Pinged {
            hook: name.to_string(),
            id: ping.id.to_string(),
            ok: error.is_none(),
            status,
            error,
        })
    }

    /// `hooks deliveries`: what the journal holds, and the deliveries not yet attempted,
    /// newest first.
    pub async fn hooks_deliveries(
        &self,
        principal: &Principal,
        name: &HookName,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let hook = self.hook(principal, name).await?;
        let attempts = self
            .journals()
            .await?
            .read(hook.id)
            .await
            .map_err(Error::unavailable)?;
        let mut deliveries = Delivery::fold(&attempts);
        let known: BTreeSet<Uuid> = deliveries.iter().map(|d| d.id).collect();
        let from = done_through(&attempts).max(hook.added_seq) + 1;
        let log = self.open_log(OpenMode::Create).await?;
        let mut pending = Vec::new();
        for recorded in read_after(&log, from).await? {
            if let Some(delivery) = delivery_of(&hook.spec, &recorded) {
                if !known.contains(&delivery.id) {
                    pending.push(delivery);
                }
            }
        }
        pending.reverse();
        deliveries.extend(pending);
        deliveries.sort_by(|a, b| b.seq.cmp(&a.seq).then(b.id.cmp(&a.id)));
        deliveries.truncate(limit);
        Ok(deliveries)
    }

    /// `hooks redeliver`: asks `serve` (an event on the access chain, so it is audited) to send
    /// the delivery again now.
    pub async fn hooks_redeliver(
        &self,
        caller: &Caller,
        name: &HookName,
        delivery: Uuid,
    ) -> Result<Redelivery> {
        let hook = self.hook(&caller.principal, name).await?;
        let known = self
            .hooks_deliveries(&caller.principal, name, usize::MAX)
            .await?
            .into_iter()
            .any(|d| d.id == delivery);
        if !known {
            return Err(Error::rejected(format!(
                "hook {name} has no delivery {delivery} (see `hoist hooks deliveries {name}`)"
            )));
        }
        let command = AccessCommand::Redeliver {
            name: name.clone(),
            scope: scope_of(&hook.spec),
            delivery,
        };
        self.access_execute(caller, command).await?;
        Ok(Redelivery {
            hook: name.to_string(),
            delivery: delivery.to_string(),
            state: DeliveryState::Pending.as_str(),
        })
    }
}

/// A signing secret: the one given (checked), or 32 new random bytes — then also returned to be
/// shown, once.
fn signing_secret(given: Option<String>) -> Result<(String, Option<String>)> {
    match given {
        Some(secret) => {
            standard_webhooks::decode_secret(&secret)
                .map_err(|e| Error::rejected(format!("--secret-file: {e}")))?;
            Ok((secret, None))
        }
        None => {
            let key: [u8; 32] = crate::access::random(32)?
                .try_into()
                .expect("32 bytes asked");
            let secret = standard_webhooks::encode_secret(&key);
            Ok((secret.clone(), Some(secret)))
        }
    }
}

/// Every event of the log from sequence `from` on.
pub(crate) async fn read_after(log: &AnyStore, from: u64) -> Result<Vec<Recorded>> {
    let mut events = Vec::new();
    let mut next = from;
    loop {
        let page = log.read_from(next, 10_000).await?;
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        events.extend(service::decode_commits(&page)?);
    }
    Ok(events)
}

/// The delivery `recorded` is for hook `spec`, if the hook takes it.
pub(crate) fn delivery_of(spec: &HookSpec, recorded: &Recorded) -> Option<Delivery> {
    let envelope = &recorded.envelope;
    let event = envelope.event.as_ref()?;
    spec.takes(&envelope.app, event).then(|| {
        Delivery::pending(
            envelope.id,
            recorded.seq,
            envelope.app.clone(),
            event.env().cloned(),
            payload_type(event),
        )
    })
}

/// The payload's `type`: `release.created`, `rollout.failed`, `env.locked`, `token.created`,
/// `hook.added`, …: the event's own name with its first `_` a `.`; a rollout by its outcome.
pub fn payload_type(event: &Event) -> String {
    if let Event::RolloutRecorded { outcome, .. } = event {
        return format!("rollout.{}", outcome.as_str());
    }
    let value = serde_json::to_value(event).expect("events serialize");
    let tag = value["type"].as_str().unwrap_or("event").to_string();
    tag.replacen('_', ".", 1)
}

/// What hooks say of `recorded`: the CLI's JSON of a release or outcome, the event's summary
/// otherwise.
pub(crate) fn notification(recorded: &Recorded) -> Option<Notification> {
    let envelope = &recorded.envelope;
    let event = envelope.event.as_ref()?;
    let app = &envelope.app;
    let actor = envelope.actor.to_string();
    let summary = event.summary().to_string();
    let (data, text, alert) = match event {
        Event::ReleaseCreated { env, release } => {
            let record = ReleaseRecord {
                release: release.clone(),
                actor: envelope.actor.clone(),
                at: envelope.at,
            };
            let view = ReleaseView::new(app, env, &record);
            let text = format!(
                "{app}/{env} {} released by {actor}: {}",
                release.version, release.description
            );
            (
                serde_json::to_value(&view).expect("views serialize"),
                text,
                false,
            )
        }
        Event::RolloutRecorded {
            env,
            version,
            outcome,
            detail,
        } => {
            let data = serde_json::json!({
                "app": app.as_str(), "env": env.as_str(), "version": version.get(),
                "outcome": outcome.as_str(), "detail": detail,
            });
            let first = detail.lines().next().unwrap_or_default();
            let text = if first.is_empty() {
                format!("{app}/{env} {version} rollout {}", outcome.as_str())
            } else {
                format!(
                    "{app}/{env} {version} rollout {}: {first}",
                    outcome.as_str()
                )
            };
            let alert = *outcome == hoist_engine::Outcome::Failed;
            (data, text, alert)
        }
        // A hook's own events never show its sealed secret.
        Event::HookAdded { hook } => (
            serde_json::json!({"name": hook.name.as_str(), "summary": summary}),
            format!("{summary} (by {actor})"),
            false,
        ),
        _ => {
            let mut data = serde_json::to_value(event).expect("events serialize");
            if let Some(map) = data.as_object_mut() {
                map.remove("type");
                map.insert("summary".into(), summary.clone().into());
            }
            let place = match event.env() {
                Some(env) => format!("{app}/{env}"),
                None => app.to_string(),
            };
            (data, format!("{place}: {summary} (by {actor})"), false)
        }
    };
    Some(Notification {
        kind: payload_type(event),
        id: envelope.id,
        seq: recorded.seq,
        app: app.to_string(),
        env: event.env().map(ToString::to_string),
        at: envelope.at,
        actor,
        data,
        // Escaped here once for every format: free text from the log cannot drive a terminal
        // or a log line; each format escapes its own markup on top.
        text: escape(&text).into_owned(),
        alert,
    })
}

/// A chat bot's token from `--token-file` (what `flags` need): present, and without spaces or
/// control characters (it goes into a header).
fn bot_token(token: Option<String>, flags: &str, what: &str) -> Result<String> {
    let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
        Error::rejected(format!("{flags} needs --token-file FILE holding {what}"))
    })?;
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Error::rejected(format!(
            "--token-file: {what} has no spaces or control characters"
        )));
    }
    Ok(token)
}

/// A URL's scheme and host: what is shown of a URL that is itself a secret.
fn origin(url: &str) -> String {
    match url.parse::<hoist_adapters::notify::Uri>() {
        Ok(uri) => format!(
            "{}://{}/…",
            uri.scheme_str().unwrap_or("https"),
            uri.host().unwrap_or_default()
        ),
        Err(_) => "<redacted>".into(),
    }
}

/// When a delivery's time has come, as a wait from `now`.
pub(crate) fn wait_until(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    at.and_then(|at| (at - now).to_std().ok())
        .unwrap_or(Duration::ZERO)
}
