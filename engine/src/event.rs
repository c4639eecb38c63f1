//! Domain events: what happened to an app, in the engine's own types. The wire form lives in
//! `hoist-proto`; `codec` converts between the two, so the schema can evolve without rippling here.

use crate::access::TokenHash;
use crate::authorize::Grant;
use crate::formation::{Processes, Routing, Scale};
use crate::hooks::HookSpec;
use crate::names::{
    Actor, AppName, BuildId, ChatId, ConfigKey, EnvName, HookName, Hostname, ImageRef,
    ReleaseVersion, TokenId, VarName,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// SHA-256 of an envelope's bytes as stored; links each event to the previous one of its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventHash(pub [u8; 32]);

impl EventHash {
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        EventHash(sha2::Sha256::digest(bytes).into())
    }
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(EventHash(out))
    }
}

impl Serialize for EventHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for EventHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventHash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("a hash is 64 hex digits"))
    }
}

/// An immutable artifact: the image by digest, plus where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub id: BuildId,
    pub image: ImageRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    // issue 14: the build's process types (empty: one `web` with the image's entrypoint) and
    // its release-phase command.
    #[serde(default, skip_serializing_if = "Processes::is_empty")]
    pub processes: Processes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_command: Option<String>,
}

impl Build {
    pub fn of_image(image: ImageRef) -> Self {
        Build {
            id: image.build_id(),
            image,
            commit: None,
            note: None,
            processes: Processes::new(),
            release_command: None,
        }
    }

    /// The id a build of `image` with this formation has: the image's own when the formation
    /// is the default, so registering the same image with the same processes names one build.
    pub fn id_for(
        image: &ImageRef,
        processes: &Processes,
        release_command: Option<&str>,
    ) -> BuildId {
        image.build_id_with(&crate::formation::formation_key(processes, release_command))
    }
}

/// A config value as the log holds it: secrets only ever sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigValue {
    Plain(String),
    Sealed(#[serde(with = "base64_bytes")] Vec<u8>),
}

impl ConfigValue {
    pub const REDACTED: &'static str = "<redacted>";

    /// The size of the value in clear: a secret's clear text is as long as its sealed bytes
    /// without the sealing's overhead.
    pub fn clear_len(&self) -> usize {
        match self {
            ConfigValue::Plain(value) => value.len(),
            ConfigValue::Sealed(sealed) => crate::secrets::clear_len(sealed),
        }
    }

    /// The value as shown without `--reveal`.
    pub fn display(&self) -> &str {
        match self {
            ConfigValue::Plain(value) => value,
            ConfigValue::Sealed(_) => Self::REDACTED,
        }
    }
}

pub(crate) mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD
            .decode(String::deserialize(d)?)
            .map_err(serde::de::Error::custom)
    }
}

pub type Config = BTreeMap<ConfigKey, ConfigValue>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseKind {
    Deploy,
    Config,
    Promote,
    Rollback,
}

impl ReleaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseKind::Deploy => "deploy",
            ReleaseKind::Config => "config",
            ReleaseKind::Promote => "promote",
            ReleaseKind::Rollback => "rollback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionSource {
    pub env: EnvName,
    pub version: ReleaseVersion,
}

/// A complete release: everything needed to apply or announce it without a fold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub version: ReleaseVersion,
    pub kind: ReleaseKind,
    pub build: Option<Build>,
    pub config: Config,
    pub source: Option<PromotionSource>,
    pub rollback_to: Option<ReleaseVersion>,
    pub description: String,
}

/// Where an env's releases are applied. Only named here; the adapters crate does the applying.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Releases are recorded, not applied anywhere.
    #[default]
    None,
    /// A Kubernetes cluster from the kubeconfig (`KUBECONFIG`, as kubectl reads it).
    Kube {
        /// The kubeconfig context; `None`: its current context.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
        namespace: String,
        /// issue 14: ingress class, TLS secret, health path.
        #[serde(default, skip_serializing_if = "Routing::is_default")]
        routing: Routing,
    },
    /// A directory of YAML manifests for a GitOps tool to sync.
    Manifests {
        dir: String,
        /// issue 14: ingress class, TLS secret, health path.
        #[serde(default, skip_serializing_if = "Routing::is_default")]
        routing: Routing,
    },
    /// A shell command that is handed the release, in an environment cleared but for `PATH`,
    /// `HOME`, the release's `HOIST_*` variables and the variables of `pass_env`.
    Exec {
        command: String,
        #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
        pass_env: BTreeSet<VarName>,
    },
}

impl Target {
    /// How the env's `web` process is reached and checked (kube and manifests targets).
    pub fn routing(&self) -> Option<&Routing> {
        match self {
            Target::Kube { routing, .. } | Target::Manifests { routing, .. } => Some(routing),
            Target::None | Target::Exec { .. } => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Target::None => "none",
            Target::Kube { .. } => "kube",
            Target::Manifests { .. } => "manifests",
            Target::Exec { .. } => "exec",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::None => write!(f, "none")?,
            Target::Kube {
                context, namespace, ..
            } => match context {
                Some(context) => write!(f, "kube context {context}, namespace {namespace}"),
                None => write!(f, "kube (current context), namespace {namespace}"),
            }?,
            Target::Manifests { dir, .. } => write!(f, "manifests in {dir}")?,
            Target::Exec { command, pass_env } if pass_env.is_empty() => {
                write!(f, "exec `{command}`")?
            }
            Target::Exec { command, pass_env } => {
                let names: Vec<&str> = pass_env.iter().map(VarName::as_str).collect();
                write!(f, "exec `{command}` (passing {})", names.join(", "))?
            }
        }
        if let Some(routing) = self.routing() {
            if let Some(class) = &routing.ingress_class {
                write!(f, ", ingress class {class}")?;
            }
            if let Some(secret) = &routing.tls_secret {
                write!(f, ", TLS secret {secret}")?;
            }
            if let Some(path) = &routing.health_path {
                write!(f, ", health path {path}")?;
            }
        }
        Ok(())
    }
}

/// What applying one release to its target came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The target accepted the release; its health was not awaited (or cannot be known).
    Applied,
    /// The target accepted the release and its rollout completed.
    Healthy,
    /// The target refused the release, or its rollout failed.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Healthy => "healthy",
            Outcome::Failed => "failed",
        }
    }
}

// issue 16: pipelines, pins and drift.

/// An env's pipeline settings besides auto-rollback: auto-promotion into it (after its previous
/// env's release has been healthy for `after_secs`, verified by `verify` when set) and self-heal
/// of drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelinePolicy {
    pub auto_promote: bool,
    pub after_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<String>,
    pub self_heal: bool,
}

impl PipelinePolicy {
    /// The soak span when `--after` was never given.
    pub const DEFAULT_AFTER_SECS: u64 = 600;
}

/// A span of seconds as people write it: `10m`, `90s`, `2h`, `1d`.
pub fn span_text(seconds: u64) -> String {
    match seconds {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl Default for PipelinePolicy {
    fn default() -> Self {
        PipelinePolicy {
            auto_promote: false,
            after_secs: Self::DEFAULT_AFTER_SECS,
            verify: None,
            self_heal: false,
        }
    }
}

/// One field of a live object that differs from the rendered release: its path
/// (`spec.template.spec.containers[name=api].image`), the rendered value and the live one (`None`:
/// absent), each as JSON text; a secret's values are `<redacted>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftedField {
    pub path: String,
    pub want: String,
    pub got: Option<String>,
    /// The field manager that owns the field now, when the target says (kube `managedFields`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// One object of the target that differs from the rendered release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftedObject {
    pub kind: String,
    pub name: String,
    pub fields: Vec<DriftedField>,
}

/// What happened. Env-level events carry their env; the envelope's env is derived from it.
/// The access events (tokens, grants, chat links) are recorded on the access chain
/// ([`AppName::access`]), every other on its app's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    AppCreated {
        envs: Vec<EnvName>,
    },
    BuildRegistered {
        build: Build,
    },
    ReleaseCreated {
        env: EnvName,
        release: Release,
    },
    EnvLocked {
        env: EnvName,
        reason: String,
    },
    EnvUnlocked {
        env: EnvName,
    },
    TargetSet {
        env: EnvName,
        target: Target,
    },
    PolicySet {
        env: EnvName,
        auto_rollback: bool,
    },
    /// A reconciler applied `version` to the env's target and this is what came of it.
    /// `detail` is for humans: an error, or the tail of an exec hook's output.
    RolloutRecorded {
        env: EnvName,
        version: ReleaseVersion,
        outcome: Outcome,
        detail: String,
    },
    /// A bearer token for `identity`: only its hash is recorded, never the token.
    TokenCreated {
        id: TokenId,
        identity: Actor,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        hash: TokenHash,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
    TokenRevoked {
        id: TokenId,
    },
    RoleGranted {
        identity: Actor,
        grant: Grant,
    },
    /// Takes back the one earlier grant equal to `grant`.
    RoleRevoked {
        identity: Actor,
        grant: Grant,
    },
    /// The chat user `chat_id` acts as `identity`.
    ChatLinked {
        chat_id: ChatId,
        identity: Actor,
    },
    ChatUnlinked {
        chat_id: ChatId,
    },
    // issue 11: subscribers, on the access chain.
    HookAdded {
        hook: HookSpec,
    },
    HookRemoved {
        name: HookName,
    },
    /// The endpoint answered 410 Gone.
    HookDisabled {
        name: HookName,
        reason: String,
    },
    /// `hooks redeliver`: the delivery of event `delivery` is sent again.
    HookRedeliveryRequested {
        name: HookName,
        delivery: Uuid,
    },
    /// `hooks rotate`: a new sealed secret; the previous one also signs until `previous_until`.
    HookSecretRotated {
        name: HookName,
        #[serde(with = "base64_bytes")]
        sealed_secret: Vec<u8>,
        previous_until: DateTime<Utc>,
    },
    // issue 16: pins, pipeline policy, verified auto-promotion, drift.
    /// The env takes no auto-promotion (and a manual promotion only with `--force`) until
    /// unpinned. `rollback_to`: the pin a rollback made (its reason is then written from it).
    EnvPinned {
        env: EnvName,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rollback_to: Option<ReleaseVersion>,
    },
    EnvUnpinned {
        env: EnvName,
    },
    PipelinePolicySet {
        env: EnvName,
        policy: PipelinePolicy,
    },
    /// The verification command of `env`'s auto-promotion ran on `from`'s release `version`.
    PromotionVerified {
        env: EnvName,
        from: EnvName,
        version: ReleaseVersion,
        passed: bool,
        detail: String,
    },
    /// The env's target no longer holds what release `version` rendered.
    DriftDetected {
        env: EnvName,
        version: ReleaseVersion,
        objects: Vec<DriftedObject>,
    },
    /// The drift recorded before is gone: re-applied (self-heal), or undone by someone else.
    DriftHealed {
        env: EnvName,
        version: ReleaseVersion,
        detail: String,
    },
    // issue 14: formation.
    /// `ps scale`: the replicas of the named process types (the others keep theirs).
    ScaleSet {
        env: EnvName,
        replicas: Scale,
    },
    /// `domains add`: `host` routes to the env's `web` process.
    DomainAdded {
        env: EnvName,
        host: Hostname,
    },
    DomainRemoved {
        env: EnvName,
        host: Hostname,
    },
}

impl Event {
    /// Whether this event belongs on the access chain (else on an app's).
    pub fn is_access(&self) -> bool {
        matches!(
            self,
            Event::TokenCreated { .. }
                | Event::TokenRevoked { .. }
                | Event::RoleGranted { .. }
                | Event::RoleRevoked { .. }
                | Event::ChatLinked { .. }
                | Event::ChatUnlinked { .. }
                | Event::HookAdded { .. }
                | Event::HookRemoved { .. }
                | Event::HookDisabled { .. }
                | Event::HookRedeliveryRequested { .. }
                | Event::HookSecretRotated { .. }
        )
    }

    pub fn env(&self) -> Option<&EnvName> {
        match self {
            Event::AppCreated { .. } | Event::BuildRegistered { .. } => None,
            // A grant's env is part of its scope, not where the event happened.
            Event::TokenCreated { .. }
            | Event::TokenRevoked { .. }
            | Event::RoleGranted { .. }
            | Event::RoleRevoked { .. }
            | Event::ChatLinked { .. }
            | Event::ChatUnlinked { .. }
            | Event::HookAdded { .. }
            | Event::HookRemoved { .. }
            | Event::HookDisabled { .. }
            | Event::HookRedeliveryRequested { .. }
            | Event::HookSecretRotated { .. } => None,
            Event::ReleaseCreated { env, .. }
            | Event::EnvLocked { env, .. }
            | Event::EnvUnlocked { env }
            | Event::TargetSet { env, .. }
            | Event::PolicySet { env, .. }
            | Event::RolloutRecorded { env, .. } => Some(env),
            // issue 16
            Event::EnvPinned { env, .. }
            | Event::EnvUnpinned { env }
            | Event::PipelinePolicySet { env, .. }
            | Event::PromotionVerified { env, .. }
            | Event::DriftDetected { env, .. }
            | Event::DriftHealed { env, .. } => Some(env),
            // issue 14
            Event::ScaleSet { env, .. }
            | Event::DomainAdded { env, .. }
            | Event::DomainRemoved { env, .. } => Some(env),
        }
    }

    /// The kind `hoist audit --kind` filters on.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::AppCreated { .. } => "create",
            Event::BuildRegistered { .. } => "build",
            Event::ReleaseCreated { release, .. } => release.kind.as_str(),
            Event::EnvLocked { .. } => "lock",
            Event::EnvUnlocked { .. } => "unlock",
            Event::TargetSet { .. } => "target",
            Event::PolicySet { .. } => "policy",
            Event::RolloutRecorded { .. } => "rollout",
            Event::TokenCreated { .. }
            | Event::TokenRevoked { .. }
            | Event::RoleGranted { .. }
            | Event::RoleRevoked { .. }
            | Event::ChatLinked { .. }
            | Event::ChatUnlinked { .. } => "access",
            Event::HookAdded { .. }
            | Event::HookRemoved { .. }
            | Event::HookDisabled { .. }
            | Event::HookRedeliveryRequested { .. }
            | Event::HookSecretRotated { .. } => "hook",
            // issue 16
            Event::EnvPinned { .. } => "pin",
            Event::EnvUnpinned { .. } => "unpin",
            Event::PipelinePolicySet { .. } => "policy",
            Event::PromotionVerified { .. } => "verification",
            Event::DriftDetected { .. } => "drift_detected",
            Event::DriftHealed { .. } => "drift_healed",
            // issue 14
            Event::ScaleSet { .. } => "scale",
            Event::DomainAdded { .. } | Event::DomainRemoved { .. } => "domain",
        }
    }

    /// One line for humans, chat and `audit`, unrendered: see [`Summary`]. Never contains a
    /// secret.
    pub fn summary(&self) -> Summary {
        match self {
            Event::AppCreated { envs } => Summary::Created {
                pipeline: envs.clone(),
            },
            Event::BuildRegistered { build } => Summary::Build {
                id: build.id.clone(),
                image: build.image.clone(),
            },
            Event::ReleaseCreated { env, release } => Summary::Release {
                env: env.clone(),
                version: release.version,
                description: release.description.clone(),
            },
            Event::EnvLocked { env, reason } => Summary::Locked {
                env: env.clone(),
                reason: reason.clone(),
            },
            Event::EnvUnlocked { env } => Summary::Unlocked { env: env.clone() },
            Event::TargetSet { env, target } => Summary::Target {
                env: env.clone(),
                target: target.clone(),
            },
            Event::PolicySet { env, auto_rollback } => Summary::Policy {
                env: env.clone(),
                auto_rollback: *auto_rollback,
            },
            Event::RolloutRecorded {
                env,
                version,
                outcome,
                detail,
            } => Summary::Rollout {
                env: env.clone(),
                version: *version,
                outcome: *outcome,
                // The detail can be a multi-line output tail: its first line is the summary's.
                first_line: detail.lines().next().unwrap_or_default().to_string(),
            },
            // Rare events: rendered at once. A token's summary names its id, never its hash.
            Event::TokenCreated {
                id,
                identity,
                name,
                expires_at,
                ..
            } => {
                let name = name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
                let expires = expires_at.map_or(String::new(), |at| {
                    format!(
                        ", expires {}",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                });
                Summary::Text(format!("Created token {id}{name} for {identity}{expires}"))
            }
            Event::TokenRevoked { id } => Summary::Text(format!("Revoked token {id}")),
            Event::RoleGranted { identity, grant } => {
                Summary::Text(format!("Granted {grant} to {identity}"))
            }
            Event::RoleRevoked { identity, grant } => {
                Summary::Text(format!("Revoked {grant} from {identity}"))
            }
            Event::ChatLinked { chat_id, identity } => {
                Summary::Text(format!("Linked {chat_id} to {identity}"))
            }
            Event::ChatUnlinked { chat_id } => Summary::Text(format!("Unlinked {chat_id}")),
            Event::HookAdded { hook } => {
                let kinds: Vec<&str> = hook.kinds.iter().map(|k| k.as_str()).collect();
                let scope = match (&hook.app, &hook.env) {
                    (Some(app), Some(env)) => format!(" of {app}/{env}"),
                    (Some(app), None) => format!(" of {app}"),
                    (None, Some(env)) => format!(" of every app's {env}"),
                    (None, None) => String::new(),
                };
                Summary::Text(format!(
                    "Added hook {} ({}, {}{scope}) to {}",
                    hook.name,
                    hook.format,
                    kinds.join(","),
                    hook.url
                ))
            }
            Event::HookRemoved { name } => Summary::Text(format!("Removed hook {name}")),
            Event::HookDisabled { name, reason } => {
                Summary::Text(format!("Disabled hook {name}: {reason}"))
            }
            Event::HookRedeliveryRequested { name, delivery } => {
                Summary::Text(format!("Asked hook {name} to redeliver {delivery}"))
            }
            Event::HookSecretRotated {
                name,
                previous_until,
                ..
            } => Summary::Text(format!(
                "Rotated the secret of hook {name} (the previous one signs until {})",
                previous_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
            // issue 16: rare events, rendered at once.
            Event::EnvPinned {
                env,
                reason,
                rollback_to,
            } => Summary::Text(match rollback_to {
                Some(to) => format!("Pinned {env}: rolled back to {to}"),
                None if reason.is_empty() => format!("Pinned {env}"),
                None => format!("Pinned {env}: {reason}"),
            }),
            Event::EnvUnpinned { env } => Summary::Text(format!("Unpinned {env}")),
            Event::PipelinePolicySet { env, policy } => {
                let on = |b: bool| if b { "on" } else { "off" };
                let verify = policy
                    .verify
                    .as_ref()
                    .map(|v| format!(", verified by `{v}`"))
                    .unwrap_or_default();
                Summary::Text(format!(
                    "Auto-promotion into {env}: {} (after {}{verify}); self-heal: {}",
                    on(policy.auto_promote),
                    span_text(policy.after_secs),
                    on(policy.self_heal)
                ))
            }
            Event::PromotionVerified {
                env,
                from,
                version,
                passed,
                detail,
            } => {
                let verdict = if *passed { "verified" } else { "not verified" };
                let first = detail.lines().next().unwrap_or_default();
                let tail = if first.is_empty() {
                    String::new()
                } else {
                    format!(" ({first})")
                };
                Summary::Text(format!(
                    "{from} {version} {verdict} for promotion into {env}{tail}"
                ))
            }
            Event::DriftDetected {
                env,
                version,
                objects,
            } => {
                let names: Vec<String> = objects
                    .iter()
                    .map(|o| format!("{}/{}", o.kind, o.name))
                    .collect();
                Summary::Text(format!(
                    "Drift in {env} from {version}: {}",
                    names.join(", ")
                ))
            }
            Event::DriftHealed {
                env,
                version,
                detail,
            } => Summary::Text(format!("Drift in {env} from {version} healed: {detail}")),
            // issue 14
            Event::ScaleSet { env, replicas } => {
                let counts: Vec<String> =
                    replicas.iter().map(|(t, n)| format!("{t}={n}")).collect();
                Summary::Text(format!("Scaled {env}: {}", counts.join(", ")))
            }
            Event::DomainAdded { env, host } => {
                Summary::Text(format!("Added domain {host} to {env}"))
            }
            Event::DomainRemoved { env, host } => {
                Summary::Text(format!("Removed domain {host} from {env}"))
            }
        }
    }
}

/// The one-line summary of an event, as the parts it is made of: a fold that keeps summaries
/// (the audit view keeps an app's newest events) copies a few names, and the text is rendered
/// (`Display`) only when someone reads it. `Text` is a summary already rendered. Two summaries
/// are equal when they read the same.
#[derive(Debug, Clone)]
pub enum Summary {
    Text(String),
    Created {
        pipeline: Vec<EnvName>,
    },
    Build {
        id: BuildId,
        image: ImageRef,
    },
    Release {
        env: EnvName,
        version: ReleaseVersion,
        description: String,
    },
    Locked {
        env: EnvName,
        reason: String,
    },
    Unlocked {
        env: EnvName,
    },
    Target {
        env: EnvName,
        target: Target,
    },
    Policy {
        env: EnvName,
        auto_rollback: bool,
    },
    Rollout {
        env: EnvName,
        version: ReleaseVersion,
        outcome: Outcome,
        first_line: String,
    },
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Summary::Text(text) => f.write_str(text),
            Summary::Created { pipeline } => {
                let pipeline: Vec<&str> = pipeline.iter().map(EnvName::as_str).collect();
                write!(f, "Created app with pipeline {}", pipeline.join(" → "))
            }
            Summary::Build { id, image } => write!(f, "Registered build {id} ({})", image.short()),
            Summary::Release {
                env,
                version,
                description,
            } => write!(f, "{env} {version}: {description}"),
            Summary::Locked { env, reason } => write!(f, "Locked {env}: {reason}"),
            Summary::Unlocked { env } => write!(f, "Unlocked {env}"),
            Summary::Target { env, target } => write!(f, "Target of {env}: {target}"),
            Summary::Policy { env, auto_rollback } => write!(
                f,
                "Auto-rollback of {env}: {}",
                if *auto_rollback { "on" } else { "off" }
            ),
            Summary::Rollout {
                env,
                version,
                outcome,
                first_line,
            } if first_line.is_empty() => write!(f, "{env} {version}: {}", outcome.as_str()),
            Summary::Rollout {
                env,
                version,
                outcome,
                first_line,
            } => write!(f, "{env} {version}: {} ({first_line})", outcome.as_str()),
        }
    }
}

impl PartialEq for Summary {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Summary {}

/// Serialized as its text (the `summary` of `audit --json`), read back as `Text`.
impl Serialize for Summary {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Summary {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Summary::Text)
    }
}

/// Who, when and why, around one event. `event` is `None` for a body this version of hoist does
/// not know: such events still count in the hash chain, but folds skip them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: Uuid,
    pub app: AppName,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    /// The front end the command came through (`api`, `web`, `slack:TEAM/USER`,
    /// `matrix:@user:server`); `None` for direct access to the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    pub correlation_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    pub prev_hash: Option<EventHash>,
    pub event: Option<Event>,
}

impl Envelope {
    pub fn env(&self) -> Option<&EnvName> {
        self.event.as_ref().and_then(Event::env)
    }
}

/// An envelope as read back from the log: where it stands and what it hashes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The global sequence of the commit that holds this event.
    pub seq: u64,
    pub hash: EventHash,
    pub envelope: Envelope,
}

/// A copy of a borrowed event, so a fold can take owned and borrowed histories alike.
impl From<&Recorded> for Recorded {
    fn from(recorded: &Recorded) -> Self {
        recorded.clone()
    }
}
