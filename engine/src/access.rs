//! Who may act, as events: identities' bearer tokens (only their hashes), grants of the roles of
//! `authorize` on apps × envs, and chat links, recorded on the access chain
//! ([`AppName::access`]), hash-chained, exported and imported like an app's events.
//!
//! - [`AccessState`]: the fold (`apply` infallible, no rules), answering which token a hash is,
//!   what an identity may do ([`AccessState::principal`]) and which identity a chat user is;
//! - [`decide`]: the access commands' rules, pure; [`authorize_command`]: who may give them
//!   (tokens and links: admin on every app; grants and revocations: admin on the scope they name,
//!   so that a grant never gives more than its granter holds);
//! - [`check_event`]: the same rules on recorded events, for imports.
//!
//! **Invariant**: every event `decide` returns passes `check_event` on the state it was decided
//! on (engine/tests/access.rs checks it over random command sequences).

use crate::authorize::{self, Action, Denied, Grant, Principal, Scope};
use crate::decide::DomainError;
use crate::event::{Envelope, Event, EventHash, Recorded};
use crate::hooks::{Hook, HookSpec};
use crate::names::{limits, Actor, AppName, ChatId, EnvName, HookName, TokenId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// The SHA-256 of a token's text: what the log keeps of a token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        TokenHash(EventHash::of(token.as_bytes()).0)
    }
}

/// Shown as hex, like every hash in the log (it opens nothing: the token is not recoverable).
impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({})", EventHash(self.0).to_hex())
    }
}

impl Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EventHash(self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EventHash::deserialize(d).map(|h| TokenHash(h.0))
    }
}

/// A token as the access chain holds it: whose it is, and whether it still opens anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: TokenId,
    pub identity: Actor,
    pub name: Option<String>,
    pub hash: TokenHash,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Actor,
    pub created_at: DateTime<Utc>,
    pub revoked: Option<Revocation>,
}

impl Token {
    /// Whether the token has expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Who revoked a token, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// A grant in force: who holds it, who gave it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub identity: Actor,
    pub grant: Grant,
    pub granted_by: Actor,
    pub at: DateTime<Utc>,
}

/// A chat user acting as an identity: who linked them and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLink {
    pub identity: Actor,
    pub linked_by: Actor,
    pub at: DateTime<Utc>,
}

/// The access chain, folded. Revoked tokens stay (listed, and named when presented); revoked
/// grants and unlinked chat users are gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessState {
    pub tokens: BTreeMap<TokenId, Token>,
    /// Every token's id by its hash: how a presented token is found without a scan.
    pub by_hash: HashMap<TokenHash, TokenId>,
    /// The grants in force, by holder and grant.
    pub grants: BTreeMap<(Actor, Grant), GrantRecord>,
    pub links: BTreeMap<ChatId, ChatLink>,
    /// issue 11: the hooks in force, by name.
    pub hooks: BTreeMap<HookName, Hook>,
    /// Global sequence of the chain's last commit: the expected sequence of its next append.
    pub last_seq: u64,
    /// Hash of the chain's last event: the `prev_hash` of its next one.
    pub last_hash: Option<EventHash>,
    pub event_count: u64,
    /// Events whose body this version does not know, skipped by the fold.
    pub skipped_unknown: u64,
}

impl AccessState {
    pub fn apply(mut self, recorded: &Recorded) -> Self {
        self.apply_mut(recorded);
        self
    }

    pub fn apply_mut(&mut self, recorded: &Recorded) {
        self.apply_owned(recorded.clone());
    }

    /// Folds one event of the access chain. Infallible and rule-free, like `AppState::apply`:
    /// an event of another kind (which `check_event` keeps off this chain) changes nothing.
    pub fn apply_owned(&mut self, recorded: Recorded) {
        self.last_seq = recorded.seq;
        self.last_hash = Some(recorded.hash);
        self.event_count += 1;
        let seq = recorded.seq;
        let Envelope {
            id,
            at,
            actor,
            event,
            ..
        } = recorded.envelope;
        let Some(event) = event else {
            self.skipped_unknown += 1;
            return;
        };
        match event {
            Event::TokenCreated {
                id,
                identity,
                name,
                hash,
                expires_at,
            } => {
                self.by_hash.insert(hash, id.clone());
                let token = Token {
                    id: id.clone(),
                    identity,
                    name,
                    hash,
                    expires_at,
                    created_by: actor,
                    created_at: at,
                    revoked: None,
                };
                self.tokens.insert(id, token);
            }
            Event::TokenRevoked { id } => {
                if let Some(token) = self.tokens.get_mut(&id) {
                    token.revoked = Some(Revocation { by: actor, at });
                }
            }
            Event::RoleGranted { identity, grant } => {
                let record = GrantRecord {
                    identity: identity.clone(),
                    grant: grant.clone(),
                    granted_by: actor,
                    at,
                };
                self.grants.insert((identity, grant), record);
            }
            Event::RoleRevoked { identity, grant } => {
                self.grants.remove(&(identity, grant));
            }
            Event::ChatLinked { chat_id, identity } => {
                let link = ChatLink {
                    identity,
                    linked_by: actor,
                    at,
                };
                self.links.insert(chat_id, link);
            }
            Event::ChatUnlinked { chat_id } => {
                self.links.remove(&chat_id);
            }
            // issue 11
            Event::HookAdded { hook } => {
                let hook = Hook {
                    id,
                    added_seq: seq,
                    added_by: actor,
                    added_at: at,
                    disabled: None,
                    redeliveries: Vec::new(),
                    previous_secret: None,
                    spec: hook,
                };
                self.hooks.insert(hook.spec.name.clone(), hook);
            }
            Event::HookRemoved { name } => {
                self.hooks.remove(&name);
            }
            Event::HookDisabled { name, reason } => {
                if let Some(hook) = self.hooks.get_mut(&name) {
                    hook.disabled = Some(reason);
                }
            }
            Event::HookRedeliveryRequested { name, delivery } => {
                if let Some(hook) = self.hooks.get_mut(&name) {
                    hook.redeliveries.push((delivery, seq));
                }
            }
            Event::HookSecretRotated {
                name,
                sealed_secret,
                previous_until,
            } => {
                if let Some(hook) = self.hooks.get_mut(&name) {
                    let previous = std::mem::replace(&mut hook.spec.sealed_secret, sealed_secret);
                    hook.previous_secret = Some((previous, previous_until));
                }
            }
            Event::AppCreated { .. }
            | Event::BuildRegistered { .. }
            | Event::ReleaseCreated { .. }
            | Event::EnvLocked { .. }
            | Event::EnvUnlocked { .. }
            | Event::TargetSet { .. }
            | Event::PolicySet { .. }
            | Event::RolloutRecorded { .. }
            // issue 16
            | Event::EnvPinned { .. }
            | Event::EnvUnpinned { .. }
            | Event::PipelinePolicySet { .. }
            | Event::PromotionVerified { .. }
            | Event::DriftDetected { .. }
            | Event::DriftHealed { .. }
            // issue 14
            | Event::ScaleSet { .. }
            | Event::DomainAdded { .. }
            | Event::DomainRemoved { .. } => {}
        }
    }

    /// Folds a history, owned or borrowed.
    pub fn fold<R: Into<Recorded>>(events: impl IntoIterator<Item = R>) -> Self {
        let mut state = AccessState::default();
        for recorded in events {
            state.apply_owned(recorded.into());
        }
        state
    }

    /// The token whose hash is `hash`, revoked or not.
    pub fn token_by_hash(&self, hash: &TokenHash) -> Option<&Token> {
        self.by_hash.get(hash).and_then(|id| self.tokens.get(id))
    }

    /// The grants `identity` holds now.
    pub fn grants_of<'a>(&'a self, identity: &'a Actor) -> impl Iterator<Item = &'a GrantRecord> {
        self.grants
            .range((identity.clone(), lowest_grant())..)
            .take_while(move |((holder, _), _)| holder == identity)
            .map(|(_, record)| record)
    }

    /// `identity` as a principal: allowed what its grants allow, nothing else.
    pub fn principal(&self, identity: &Actor) -> Principal {
        Principal::Identity {
            name: identity.clone(),
            grants: self.grants_of(identity).map(|r| r.grant.clone()).collect(),
        }
    }

    /// Whether `identity` may take `action` on `scope`, and why (`hoist access check`).
    pub fn check(&self, identity: &Actor, action: Action, scope: &Scope) -> Verdict {
        let allowing = self
            .grants_of(identity)
            .find(|r| r.grant.role.allows(action) && r.grant.covers(scope));
        match allowing {
            Some(record) => Verdict {
                allowed: true,
                because: format!(
                    "{identity} holds {}, granted by {}",
                    record.grant, record.granted_by
                ),
            },
            None => {
                let denied = authorize::authorize(&self.principal(identity), &action, scope)
                    .expect_err("no grant allows it");
                let none = if self.grants_of(identity).next().is_none() {
                    " (it holds no grant: access is denied by default)"
                } else {
                    ""
                };
                Verdict {
                    allowed: false,
                    because: format!("{denied}{none}"),
                }
            }
        }
    }
}

/// The least grant in `Grant`'s order: where an identity's grants start.
fn lowest_grant() -> Grant {
    Grant {
        role: authorize::Role::ALL[0],
        app: None,
        env: None,
    }
}

/// The answer of `hoist access check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub allowed: bool,
    pub because: String,
}

/// What can be asked of the access chain. Tokens arrive hashed: `decide` never sees one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessCommand {
    CreateToken {
        id: TokenId,
        identity: Actor,
        name: Option<String>,
        hash: TokenHash,
        expires_at: Option<DateTime<Utc>>,
    },
    RevokeToken {
        id: TokenId,
    },
    Grant {
        identity: Actor,
        grant: Grant,
    },
    Revoke {
        identity: Actor,
        grant: Grant,
    },
    Link {
        chat_id: ChatId,
        identity: Actor,
    },
    Unlink {
        chat_id: ChatId,
    },
    // issue 11: hooks. Those on a hook in force name its scope (app, env), which `decide`
    // checks against the recorded hook, so that authorization needs no state.
    AddHook {
        hook: HookSpec,
    },
    RemoveHook {
        name: HookName,
        scope: Scope,
    },
    DisableHook {
        name: HookName,
        reason: String,
    },
    Redeliver {
        name: HookName,
        scope: Scope,
        delivery: Uuid,
    },
    RotateHookSecret {
        name: HookName,
        scope: Scope,
        sealed_secret: Vec<u8>,
        previous_until: DateTime<Utc>,
    },
}

/// The apps a grant's scope may name: those that exist, each with its pipeline. (Apps are never
/// removed and pipelines never change, so what was read once stays true.)
pub type Pipelines = BTreeMap<AppName, Vec<EnvName>>;

/// The action an access command takes, and where: tokens and chat links lend a whole identity,
/// so they need admin on every app; a grant or revocation needs admin on the scope it names.
pub fn required(command: &AccessCommand) -> (Action, Scope) {
    match command {
        AccessCommand::Grant { grant, .. } | AccessCommand::Revoke { grant, .. } => {
            (Action::Admin, grant.scope())
        }
        AccessCommand::CreateToken { .. }
        | AccessCommand::RevokeToken { .. }
        | AccessCommand::Link { .. }
        | AccessCommand::Unlink { .. }
        | AccessCommand::DisableHook { .. } => (Action::Admin, Scope::everything()),
        // A hook tells what happens on its scope: admin there adds, removes and redelivers it.
        AccessCommand::AddHook { hook } => (
            Action::Admin,
            Scope {
                app: hook.app.clone(),
                env: hook.env.clone(),
            },
        ),
        AccessCommand::RemoveHook { scope, .. }
        | AccessCommand::Redeliver { scope, .. }
        | AccessCommand::RotateHookSecret { scope, .. } => (Action::Admin, scope.clone()),
    }
}

/// Whether `principal` may give `command`. A grant never gives more than its granter holds:
/// every action the granted role allows on the scope, the granter must be allowed there too
/// (admin on the scope implies it today; checked so that it stays true whatever roles become).
pub fn authorize_command(principal: &Principal, command: &AccessCommand) -> Result<(), Denied> {
    let (action, scope) = required(command);
    authorize::authorize(principal, &action, &scope)?;
    if let AccessCommand::Grant { grant, .. } = command {
        for action in Action::ALL.into_iter().filter(|a| grant.role.allows(*a)) {
            authorize::authorize(principal, &action, &scope)?;
        }
    }
    Ok(())
}

/// The events `command` causes on the access chain folded into `state`; empty when it changes
/// nothing (a grant already held, a link already made). `apps` holds at least the apps the
/// command's scope names. Authorization is [`authorize_command`]'s, before.
pub fn decide(
    state: &AccessState,
    apps: &Pipelines,
    command: &AccessCommand,
) -> Result<Vec<Event>, DomainError> {
    let event = match command {
        AccessCommand::CreateToken {
            id,
            identity,
            name,
            hash,
            expires_at,
        } => Event::TokenCreated {
            id: id.clone(),
            identity: identity.clone(),
            name: name.clone(),
            hash: *hash,
            expires_at: *expires_at,
        },
        AccessCommand::RevokeToken { id } => Event::TokenRevoked { id: id.clone() },
        AccessCommand::Grant { identity, grant } => {
            if state
                .grants
                .contains_key(&(identity.clone(), grant.clone()))
            {
                check_scope(apps, grant)?;
                return Ok(vec![]);
            }
            Event::RoleGranted {
                identity: identity.clone(),
                grant: grant.clone(),
            }
        }
        AccessCommand::Revoke { identity, grant } => Event::RoleRevoked {
            identity: identity.clone(),
            grant: grant.clone(),
        },
        AccessCommand::Link { chat_id, identity } => {
            if state
                .links
                .get(chat_id)
                .is_some_and(|link| link.identity == *identity)
            {
                return Ok(vec![]);
            }
            Event::ChatLinked {
                chat_id: chat_id.clone(),
                identity: identity.clone(),
            }
        }
        AccessCommand::Unlink { chat_id } => Event::ChatUnlinked {
            chat_id: chat_id.clone(),
        },
        AccessCommand::AddHook { hook } => Event::HookAdded { hook: hook.clone() },
        AccessCommand::RemoveHook { name, scope } => {
            hook_in_scope(state, name, scope)?;
            Event::HookRemoved { name: name.clone() }
        }
        AccessCommand::DisableHook { name, reason } => {
            if state.hooks.get(name).is_some_and(|h| h.disabled.is_some()) {
                return Ok(vec![]);
            }
            Event::HookDisabled {
                name: name.clone(),
                reason: reason.clone(),
            }
        }
        AccessCommand::Redeliver {
            name,
            scope,
            delivery,
        } => {
            hook_in_scope(state, name, scope)?;
            Event::HookRedeliveryRequested {
                name: name.clone(),
                delivery: *delivery,
            }
        }
        AccessCommand::RotateHookSecret {
            name,
            scope,
            sealed_secret,
            previous_until,
        } => {
            hook_in_scope(state, name, scope)?;
            Event::HookSecretRotated {
                name: name.clone(),
                sealed_secret: sealed_secret.clone(),
                previous_until: *previous_until,
            }
        }
    };
    check_event(state, apps, &event)?;
    Ok(vec![event])
}

/// `Ok` if `event` could follow the access chain folded into `state` (with `apps` the apps that
/// existed then), else the rule it breaks: tokens unique by id and by hash, named within limits,
/// revoked once; grants on a scope of existing apps and envs, given once and revoked only while
/// held; a chat user linked to one identity at a time, unlinked only while linked.
pub fn check_event(
    state: &AccessState,
    apps: &Pipelines,
    event: &Event,
) -> Result<(), DomainError> {
    match event {
        Event::TokenCreated { id, hash, name, .. } => {
            if state.tokens.contains_key(id) {
                return Err(DomainError::TokenExists(id.clone()));
            }
            if let Some(earlier) = state.by_hash.get(hash) {
                return Err(DomainError::TokenHashReused {
                    id: id.clone(),
                    earlier: earlier.clone(),
                });
            }
            if let Some(name) = name {
                check_token_name(name)?;
            }
        }
        Event::TokenRevoked { id } => match state.tokens.get(id) {
            None => return Err(DomainError::UnknownToken(id.clone())),
            Some(token) if token.revoked.is_some() => {
                return Err(DomainError::TokenAlreadyRevoked(id.clone()))
            }
            Some(_) => {}
        },
        Event::RoleGranted { identity, grant } => {
            check_scope(apps, grant)?;
            if state
                .grants
                .contains_key(&(identity.clone(), grant.clone()))
            {
                return Err(DomainError::AlreadyGranted {
                    identity: identity.clone(),
                    grant: grant.clone(),
                });
            }
        }
        Event::RoleRevoked { identity, grant } => {
            if !state
                .grants
                .contains_key(&(identity.clone(), grant.clone()))
            {
                let held: Vec<String> = state
                    .grants_of(identity)
                    .map(|r| r.grant.to_string())
                    .collect();
                return Err(DomainError::NoSuchGrant {
                    identity: identity.clone(),
                    grant: grant.clone(),
                    held: if held.is_empty() {
                        "none".into()
                    } else {
                        held.join("; ")
                    },
                });
            }
        }
        Event::ChatLinked { chat_id, .. } => {
            if let Some(link) = state.links.get(chat_id) {
                return Err(DomainError::ChatAlreadyLinked {
                    chat_id: chat_id.clone(),
                    identity: link.identity.clone(),
                });
            }
        }
        Event::ChatUnlinked { chat_id } => {
            if !state.links.contains_key(chat_id) {
                return Err(DomainError::ChatNotLinked(chat_id.clone()));
            }
        }
        // issue 11
        Event::HookAdded { hook } => {
            if state.hooks.contains_key(&hook.name) {
                return Err(DomainError::HookExists(hook.name.clone()));
            }
            let scope = Grant {
                role: crate::Role::Viewer,
                app: hook.app.clone(),
                env: hook.env.clone(),
            };
            check_scope(apps, &scope)?;
        }
        Event::HookRemoved { name }
        | Event::HookDisabled { name, .. }
        | Event::HookRedeliveryRequested { name, .. }
        | Event::HookSecretRotated { name, .. } => {
            if !state.hooks.contains_key(name) {
                return Err(DomainError::UnknownHook(name.clone()));
            }
        }
        Event::AppCreated { .. }
        | Event::BuildRegistered { .. }
        | Event::ReleaseCreated { .. }
        | Event::EnvLocked { .. }
        | Event::EnvUnlocked { .. }
        | Event::TargetSet { .. }
        | Event::PolicySet { .. }
        | Event::RolloutRecorded { .. }
        // issue 16
        | Event::EnvPinned { .. }
        | Event::EnvUnpinned { .. }
        | Event::PipelinePolicySet { .. }
        | Event::PromotionVerified { .. }
        | Event::DriftDetected { .. }
        | Event::DriftHealed { .. }
        // issue 14
        | Event::ScaleSet { .. }
        | Event::DomainAdded { .. }
        | Event::DomainRemoved { .. } => {
            return Err(DomainError::WrongChain {
                chain: AppName::access(),
                kind: event.kind(),
                belongs: "an app's chain",
            })
        }
    }
    Ok(())
}

/// `name` is a hook in force whose scope is `scope` (what the command was authorized for).
fn hook_in_scope(state: &AccessState, name: &HookName, scope: &Scope) -> Result<(), DomainError> {
    let hook = state
        .hooks
        .get(name)
        .ok_or_else(|| DomainError::UnknownHook(name.clone()))?;
    if hook.spec.app != scope.app || hook.spec.env != scope.env {
        return Err(DomainError::UnknownHook(name.clone()));
    }
    Ok(())
}

/// A grant's scope names existing things: its app exists and its env is in that app's pipeline;
/// an env alone is in some app's pipeline.
fn check_scope(apps: &Pipelines, grant: &Grant) -> Result<(), DomainError> {
    match (&grant.app, &grant.env) {
        (Some(app), env) => {
            let pipeline = apps
                .get(app)
                .ok_or_else(|| DomainError::UnknownApp(app.clone()))?;
            match env {
                Some(env) if !pipeline.contains(env) => Err(DomainError::UnknownEnv {
                    app: app.clone(),
                    env: env.clone(),
                    pipeline: pipeline
                        .iter()
                        .map(EnvName::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
                _ => Ok(()),
            }
        }
        (None, Some(env)) if !apps.values().any(|pipeline| pipeline.contains(env)) => {
            Err(DomainError::EnvOfNoApp(env.clone()))
        }
        (None, _) => Ok(()),
    }
}

/// A token's name: a label on one line, within [`limits::TOKEN_NAME_BYTES`].
fn check_token_name(name: &str) -> Result<(), DomainError> {
    let invalid = |rule| DomainError::InvalidTokenName {
        name: name.to_owned(),
        rule,
    };
    if name.trim().is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("must not hold control characters"));
    }
    if name.len() > limits::TOKEN_NAME_BYTES {
        return Err(DomainError::TooLarge {
            field: "--name".into(),
            size: name.len(),
            limit: limits::TOKEN_NAME_BYTES,
        });
    }
    Ok(())
}
