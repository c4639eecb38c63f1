//! Conversion between domain events and the protobuf wire form. The only place that knows both.
//! Encoding is deterministic (maps are ordered), so `encode(decode(bytes)) == bytes` for every
//! envelope this version wrote: `events import` relies on it to keep the hash chain intact.

use crate::access::TokenHash;
use crate::authorize::{Grant, Role};
use crate::event::{
    Build, ConfigValue, DriftedField, DriftedObject, Envelope, Event, EventHash, Outcome,
    PipelinePolicy, PromotionSource, Recorded, Release, ReleaseKind, Target,
};
use crate::formation::Routing;
use crate::hooks::{HookFormat, HookKind, HookSpec};
use crate::names::{AppName, ReleaseVersion, ValidationError};
use chrono::{DateTime, Utc};
use hoist_proto::v1::{self, envelope::Body};
use hoist_proto::Message;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("undecodable protobuf: {0}")]
    Protobuf(#[from] hoist_proto::DecodeError),
    #[error(transparent)]
    Commit(#[from] hoist_proto::CommitError),
    #[error("event field {field}: {rule}")]
    Field {
        field: &'static str,
        rule: &'static str,
    },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

fn field(field: &'static str, rule: &'static str) -> CodecError {
    CodecError::Field { field, rule }
}

pub fn encode_envelope(envelope: &Envelope) -> Vec<u8> {
    let body = envelope.event.as_ref().map(|event| match event {
        Event::AppCreated { envs } => Body::AppCreated(v1::AppCreated {
            envs: envs.iter().map(|e| e.to_string()).collect(),
        }),
        Event::BuildRegistered { build } => Body::BuildRegistered(v1::BuildRegistered {
            build: Some(build_to_proto(build)),
        }),
        Event::ReleaseCreated { release, .. } => Body::ReleaseCreated(v1::ReleaseCreated {
            release: Some(release_to_proto(release)),
        }),
        Event::EnvLocked { reason, .. } => Body::EnvLocked(v1::EnvLocked {
            reason: reason.clone(),
        }),
        Event::EnvUnlocked { .. } => Body::EnvUnlocked(v1::EnvUnlocked {}),
        Event::TargetSet { target, .. } => Body::TargetSet(target_to_proto(target)),
        Event::PolicySet { auto_rollback, .. } => Body::PolicySet(v1::PolicySet {
            auto_rollback: *auto_rollback,
        }),
        Event::RolloutRecorded {
            version,
            outcome,
            detail,
            ..
        } => Body::RolloutRecorded(v1::RolloutRecorded {
            version: version.get(),
            outcome: match outcome {
                Outcome::Applied => v1::Outcome::Applied,
                Outcome::Healthy => v1::Outcome::Healthy,
                Outcome::Failed => v1::Outcome::Failed,
            } as i32,
            detail: detail.clone(),
        }),
        Event::TokenCreated {
            id,
            identity,
            name,
            hash,
            expires_at,
        } => Body::TokenCreated(v1::TokenCreated {
            id: id.to_string(),
            identity: identity.to_string(),
            name: name.clone().unwrap_or_default(),
            hash: hash.0.to_vec(),
            expires_at_unix_micros: expires_at.map_or(0, |at| at.timestamp_micros()),
        }),
        Event::TokenRevoked { id } => Body::TokenRevoked(v1::TokenRevoked { id: id.to_string() }),
        Event::RoleGranted { identity, grant } => {
            let (identity, role, app, env) = grant_to_proto(identity, grant);
            Body::RoleGranted(v1::RoleGranted {
                identity,
                role,
                app,
                env,
            })
        }
        Event::RoleRevoked { identity, grant } => {
            let (identity, role, app, env) = grant_to_proto(identity, grant);
            Body::RoleRevoked(v1::RoleRevoked {
                identity,
                role,
                app,
                env,
            })
        }
        Event::ChatLinked { chat_id, identity } => Body::ChatLinked(v1::ChatLinked {
            chat_id: chat_id.to_string(),
            identity: identity.to_string(),
        }),
        Event::ChatUnlinked { chat_id } => Body::ChatUnlinked(v1::ChatUnlinked {
            chat_id: chat_id.to_string(),
        }),
        // issue 11
        Event::HookAdded { hook } => Body::HookAdded(v1::HookAdded {
            name: hook.name.to_string(),
            format: match hook.format {
                HookFormat::StandardWebhooks => v1::HookFormat::StandardWebhooks,
                HookFormat::CloudEvents => v1::HookFormat::Cloudevents,
                HookFormat::Slack => v1::HookFormat::Slack,
                HookFormat::Matrix => v1::HookFormat::Matrix,
            } as i32,
            url: hook.url.clone(),
            app: hook.app.as_ref().map(|a| a.to_string()).unwrap_or_default(),
            env: hook.env.as_ref().map(|e| e.to_string()).unwrap_or_default(),
            kinds: hook.kinds.iter().map(|k| k.as_str().to_string()).collect(),
            sealed_secret: hook.sealed_secret.clone(),
            room: hook.room.clone().unwrap_or_default(),
        }),
        Event::HookRemoved { name } => Body::HookRemoved(v1::HookRemoved {
            name: name.to_string(),
        }),
        Event::HookDisabled { name, reason } => Body::HookDisabled(v1::HookDisabled {
            name: name.to_string(),
            reason: reason.clone(),
        }),
        Event::HookRedeliveryRequested { name, delivery } => {
            Body::HookRedeliveryRequested(v1::HookRedeliveryRequested {
                name: name.to_string(),
                delivery: delivery.as_bytes().to_vec(),
            })
        }
        Event::HookSecretRotated {
            name,
            sealed_secret,
            previous_until,
        } => Body::HookSecretRotated(v1::HookSecretRotated {
            name: name.to_string(),
            sealed_secret: sealed_secret.clone(),
            previous_until_unix_micros: previous_until.timestamp_micros(),
        }),
        // issue 16
        Event::EnvPinned {
            reason,
            rollback_to,
            ..
        } => Body::EnvPinned(v1::EnvPinned {
            reason: reason.clone(),
            rollback_to: rollback_to.map_or(0, ReleaseVersion::get),
        }),
        Event::EnvUnpinned { .. } => Body::EnvUnpinned(v1::EnvUnpinned {}),
        Event::PipelinePolicySet { policy, .. } => Body::PipelinePolicySet(v1::PipelinePolicySet {
            auto_promote: policy.auto_promote,
            after_secs: policy.after_secs,
            verify: policy.verify.clone().unwrap_or_default(),
            self_heal: policy.self_heal,
        }),
        Event::PromotionVerified {
            from,
            version,
            passed,
            detail,
            ..
        } => Body::PromotionVerified(v1::PromotionVerified {
            from_env: from.to_string(),
            version: version.get(),
            passed: *passed,
            detail: detail.clone(),
        }),
        Event::DriftDetected {
            version, objects, ..
        } => Body::DriftDetected(v1::DriftDetected {
            version: version.get(),
            objects: objects
                .iter()
                .map(|o| v1::DriftedObject {
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                    fields: o
                        .fields
                        .iter()
                        .map(|f| v1::DriftedField {
                            path: f.path.clone(),
                            want: f.want.clone(),
                            got: f.got.clone(),
                            by: f.by.clone().unwrap_or_default(),
                        })
                        .collect(),
                })
                .collect(),
        }),
        Event::DriftHealed {
            version, detail, ..
        } => Body::DriftHealed(v1::DriftHealed {
            version: version.get(),
            detail: detail.clone(),
        }),
        // issue 14
        Event::ScaleSet { replicas, .. } => Body::ScaleSet(v1::ScaleSet {
            replicas: replicas.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
        }),
        Event::DomainAdded { host, .. } => Body::DomainAdded(v1::DomainAdded {
            host: host.to_string(),
        }),
        Event::DomainRemoved { host, .. } => Body::DomainRemoved(v1::DomainRemoved {
            host: host.to_string(),
        }),
    });
    v1::Envelope {
        id: envelope.id.as_bytes().to_vec(),
        app: envelope.app.to_string(),
        env: envelope.env().map(|e| e.to_string()).unwrap_or_default(),
        at_unix_micros: envelope.at.timestamp_micros(),
        actor: envelope.actor.to_string(),
        via: envelope.via.clone().unwrap_or_default(),
        correlation_id: envelope.correlation_id.as_bytes().to_vec(),
        causation_id: envelope
            .causation_id
            .map(|id| id.as_bytes().to_vec())
            .unwrap_or_default(),
        prev_hash: envelope.prev_hash.map(|h| h.0.to_vec()).unwrap_or_default(),
        body,
    }
    .encode_to_vec()
}

/// A grant's wire fields: identity, role, app and env (empty: every one).
fn grant_to_proto(identity: &crate::Actor, grant: &Grant) -> (String, i32, String, String) {
    let role = match grant.role {
        Role::Viewer => v1::Role::Viewer,
        Role::Deployer => v1::Role::Deployer,
        Role::Operator => v1::Role::Operator,
        Role::Admin => v1::Role::Admin,
    };
    (
        identity.to_string(),
        role as i32,
        grant
            .app
            .as_ref()
            .map(AppName::to_string)
            .unwrap_or_default(),
        grant
            .env
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default(),
    )
}

fn grant_from_proto(role: i32, app: String, env: String) -> Result<Grant, CodecError> {
    let role = match v1::Role::try_from(role) {
        Ok(v1::Role::Viewer) => Role::Viewer,
        Ok(v1::Role::Deployer) => Role::Deployer,
        Ok(v1::Role::Operator) => Role::Operator,
        Ok(v1::Role::Admin) => Role::Admin,
        Ok(v1::Role::Unspecified) | Err(_) => return Err(field("grant.role", "unknown role")),
    };
    Ok(Grant {
        role,
        app: optional(app).map(|a| a.parse()).transpose()?,
        env: optional(env).map(|e| e.parse()).transpose()?,
    })
}

fn build_to_proto(build: &Build) -> v1::Build {
    v1::Build {
        id: build.id.to_string(),
        image: build.image.to_string(),
        commit: build.commit.clone().unwrap_or_default(),
        note: build.note.clone().unwrap_or_default(),
        processes: build
            .processes
            .iter()
            .map(|(t, c)| (t.to_string(), c.clone()))
            .collect(),
        release_command: build.release_command.clone().unwrap_or_default(),
    }
}

fn routing_to_proto(routing: &Routing) -> Option<v1::Routing> {
    (!routing.is_default()).then(|| v1::Routing {
        ingress_class: routing.ingress_class.clone().unwrap_or_default(),
        tls_secret: routing.tls_secret.clone().unwrap_or_default(),
        health_path: routing.health_path.clone().unwrap_or_default(),
    })
}

fn routing_from_proto(routing: Option<v1::Routing>) -> Routing {
    let routing = routing.unwrap_or_default();
    Routing {
        ingress_class: optional(routing.ingress_class),
        tls_secret: optional(routing.tls_secret),
        health_path: optional(routing.health_path),
    }
}

fn target_to_proto(target: &Target) -> v1::TargetSet {
    use v1::target_set::Target as Wire;
    let wire = match target {
        Target::None => Wire::None(v1::NoTarget {}),
        Target::Kube {
            context,
            namespace,
            routing,
        } => Wire::Kube(v1::KubeTarget {
            context: context.clone().unwrap_or_default(),
            namespace: namespace.clone(),
            routing: routing_to_proto(routing),
        }),
        Target::Manifests { dir, routing } => Wire::Manifests(v1::ManifestsTarget {
            dir: dir.clone(),
            routing: routing_to_proto(routing),
        }),
        Target::Exec { command, pass_env } => Wire::Exec(v1::ExecTarget {
            command: command.clone(),
            pass_env: pass_env.iter().map(|n| n.to_string()).collect(),
        }),
    };
    v1::TargetSet { target: Some(wire) }
}

fn target_from_proto(target: v1::TargetSet) -> Result<Target, CodecError> {
    use v1::target_set::Target as Wire;
    Ok(match target.target {
        Some(Wire::None(_)) => Target::None,
        Some(Wire::Kube(kube)) => Target::Kube {
            context: optional(kube.context),
            namespace: kube.namespace,
            routing: routing_from_proto(kube.routing),
        },
        Some(Wire::Manifests(m)) => Target::Manifests {
            dir: m.dir,
            routing: routing_from_proto(m.routing),
        },
        Some(Wire::Exec(e)) => Target::Exec {
            command: e.command,
            pass_env: e
                .pass_env
                .into_iter()
                .map(|n| n.parse())
                .collect::<Result<_, _>>()?,
        },
        // A target kind from a newer hoist: this version cannot apply to it, so it applies nothing.
        None => Target::None,
    })
}

fn release_to_proto(release: &Release) -> v1::Release {
    v1::Release {
        version: release.version.get(),
        kind: match release.kind {
            ReleaseKind::Deploy => v1::ReleaseKind::Deploy,
            ReleaseKind::Config => v1::ReleaseKind::Config,
            ReleaseKind::Promote => v1::ReleaseKind::Promote,
            ReleaseKind::Rollback => v1::ReleaseKind::Rollback,
        } as i32,
        build: release.build.as_ref().map(build_to_proto),
        config: release
            .config
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    ConfigValue::Plain(s) => v1::config_value::Value::Plain(s.clone()),
                    ConfigValue::Sealed(b) => v1::config_value::Value::Sealed(b.clone()),
                };
                (key.to_string(), v1::ConfigValue { value: Some(value) })
            })
            .collect(),
        source_env: release
            .source
            .as_ref()
            .map(|s| s.env.to_string())
            .unwrap_or_default(),
        source_version: release.source.as_ref().map_or(0, |s| s.version.get()),
        rollback_to: release.rollback_to.map_or(0, ReleaseVersion::get),
        description: release.description.clone(),
    }
}

pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, CodecError> {
    let wire = v1::Envelope::decode(bytes)?;
    let env = || wire.env.parse().map_err(CodecError::from);
    let event = match wire.body {
        None => None,
        Some(Body::AppCreated(b)) => Some(Event::AppCreated {
            envs: b
                .envs
                .into_iter()
                .map(|e| e.parse())
                .collect::<Result<_, _>>()?,
        }),
        Some(Body::BuildRegistered(b)) => Some(Event::BuildRegistered {
            build: build_from_proto(b.build.ok_or(field("build", "is required")))?,
        }),
        Some(Body::ReleaseCreated(b)) => Some(Event::ReleaseCreated {
            env: env()?,
            release: release_from_proto(b.release.ok_or_else(|| field("release", "is required"))?)?,
        }),
        Some(Body::EnvLocked(b)) => Some(Event::EnvLocked {
            env: env()?,
            reason: b.reason,
        }),
        Some(Body::EnvUnlocked(_)) => Some(Event::EnvUnlocked { env: env()? }),
        Some(Body::TargetSet(b)) => Some(Event::TargetSet {
            env: env()?,
            target: target_from_proto(b)?,
        }),
        Some(Body::PolicySet(b)) => Some(Event::PolicySet {
            env: env()?,
            auto_rollback: b.auto_rollback,
        }),
        Some(Body::RolloutRecorded(b)) => Some(Event::RolloutRecorded {
            env: env()?,
            version: ReleaseVersion::new(b.version)
                .ok_or(field("rollout.version", "must be at least 1"))?,
            outcome: match v1::Outcome::try_from(b.outcome) {
                Ok(v1::Outcome::Applied) => Outcome::Applied,
                Ok(v1::Outcome::Healthy) => Outcome::Healthy,
                Ok(v1::Outcome::Failed) => Outcome::Failed,
                Ok(v1::Outcome::Unspecified) | Err(_) => {
                    return Err(field("rollout.outcome", "unknown outcome"))
                }
            },
            detail: b.detail,
        }),
        Some(Body::TokenCreated(b)) => Some(Event::TokenCreated {
            id: b.id.parse()?,
            identity: b.identity.parse()?,
            name: optional(b.name),
            hash: TokenHash(
                b.hash
                    .as_slice()
                    .try_into()
                    .map_err(|_| field("token.hash", "must be 32 bytes"))?,
            ),
            expires_at: match b.expires_at_unix_micros {
                0 => None,
                micros => Some(
                    DateTime::<Utc>::from_timestamp_micros(micros)
                        .ok_or(field("token.expires_at", "out of range"))?,
                ),
            },
        }),
        Some(Body::TokenRevoked(b)) => Some(Event::TokenRevoked { id: b.id.parse()? }),
        Some(Body::RoleGranted(b)) => Some(Event::RoleGranted {
            identity: b.identity.parse()?,
            grant: grant_from_proto(b.role, b.app, b.env)?,
        }),
        Some(Body::RoleRevoked(b)) => Some(Event::RoleRevoked {
            identity: b.identity.parse()?,
            grant: grant_from_proto(b.role, b.app, b.env)?,
        }),
        Some(Body::ChatLinked(b)) => Some(Event::ChatLinked {
            chat_id: b.chat_id.parse()?,
            identity: b.identity.parse()?,
        }),
        Some(Body::ChatUnlinked(b)) => Some(Event::ChatUnlinked {
            chat_id: b.chat_id.parse()?,
        }),
        // issue 11
        Some(Body::HookAdded(b)) => Some(Event::HookAdded {
            hook: HookSpec {
                name: b.name.parse()?,
                format: match v1::HookFormat::try_from(b.format) {
                    Ok(v1::HookFormat::StandardWebhooks) => HookFormat::StandardWebhooks,
                    Ok(v1::HookFormat::Cloudevents) => HookFormat::CloudEvents,
                    Ok(v1::HookFormat::Slack) => HookFormat::Slack,
                    Ok(v1::HookFormat::Matrix) => HookFormat::Matrix,
                    Ok(v1::HookFormat::Unspecified) | Err(_) => {
                        return Err(field("hook.format", "unknown format"))
                    }
                },
                url: b.url,
                app: optional(b.app).map(|a| AppName::from_log(&a)).transpose()?,
                env: optional(b.env).map(|e| e.parse()).transpose()?,
                kinds: b
                    .kinds
                    .iter()
                    .map(|k| {
                        HookKind::NAMED
                            .into_iter()
                            .find(|n| n.as_str() == k)
                            .ok_or(field("hook.kinds", "unknown kind"))
                    })
                    .collect::<Result<_, _>>()?,
                sealed_secret: b.sealed_secret,
                room: optional(b.room),
            },
        }),
        Some(Body::HookRemoved(b)) => Some(Event::HookRemoved {
            name: b.name.parse()?,
        }),
        Some(Body::HookDisabled(b)) => Some(Event::HookDisabled {
            name: b.name.parse()?,
            reason: b.reason,
        }),
        Some(Body::HookRedeliveryRequested(b)) => Some(Event::HookRedeliveryRequested {
            name: b.name.parse()?,
            delivery: uuid(&b.delivery).ok_or(field("hook.delivery", "must be 16 bytes"))?,
        }),
        Some(Body::HookSecretRotated(b)) => Some(Event::HookSecretRotated {
            name: b.name.parse()?,
            sealed_secret: b.sealed_secret,
            previous_until: DateTime::<Utc>::from_timestamp_micros(b.previous_until_unix_micros)
                .ok_or(field("hook.previous_until", "out of range"))?,
        }),
        // issue 16
        Some(Body::EnvPinned(b)) => Some(Event::EnvPinned {
            env: env()?,
            reason: b.reason,
            rollback_to: ReleaseVersion::new(b.rollback_to),
        }),
        Some(Body::EnvUnpinned(_)) => Some(Event::EnvUnpinned { env: env()? }),
        Some(Body::PipelinePolicySet(b)) => Some(Event::PipelinePolicySet {
            env: env()?,
            policy: PipelinePolicy {
                auto_promote: b.auto_promote,
                after_secs: b.after_secs,
                verify: optional(b.verify),
                self_heal: b.self_heal,
            },
        }),
        Some(Body::PromotionVerified(b)) => Some(Event::PromotionVerified {
            env: env()?,
            from: b.from_env.parse()?,
            version: version(b.version, "verification.version")?,
            passed: b.passed,
            detail: b.detail,
        }),
        Some(Body::DriftDetected(b)) => Some(Event::DriftDetected {
            env: env()?,
            version: version(b.version, "drift.version")?,
            objects: b
                .objects
                .into_iter()
                .map(|o| DriftedObject {
                    kind: o.kind,
                    name: o.name,
                    fields: o
                        .fields
                        .into_iter()
                        .map(|f| DriftedField {
                            path: f.path,
                            want: f.want,
                            got: f.got,
                            by: optional(f.by),
                        })
                        .collect(),
                })
                .collect(),
        }),
        Some(Body::DriftHealed(b)) => Some(Event::DriftHealed {
            env: env()?,
            version: version(b.version, "drift.version")?,
            detail: b.detail,
        }),
        // issue 14
        Some(Body::ScaleSet(b)) => Some(Event::ScaleSet {
            env: env()?,
            replicas: b
                .replicas
                .into_iter()
                .map(|(t, n)| Ok((t.parse()?, n)))
                .collect::<Result<_, CodecError>>()?,
        }),
        Some(Body::DomainAdded(b)) => Some(Event::DomainAdded {
            env: env()?,
            host: b.host.parse()?,
        }),
        Some(Body::DomainRemoved(b)) => Some(Event::DomainRemoved {
            env: env()?,
            host: b.host.parse()?,
        }),
    };
    Ok(Envelope {
        id: uuid(&wire.id).ok_or(field("id", "must be 16 bytes"))?,
        app: AppName::from_log(&wire.app)?,
        at: DateTime::<Utc>::from_timestamp_micros(wire.at_unix_micros)
            .ok_or(field("at", "out of range"))?,
        actor: wire.actor.parse()?,
        via: optional(wire.via),
        correlation_id: uuid(&wire.correlation_id)
            .ok_or(field("correlation_id", "must be 16 bytes"))?,
        causation_id: match wire.causation_id.as_slice() {
            [] => None,
            bytes => Some(uuid(bytes).ok_or(field("causation_id", "must be empty or 16 bytes"))?),
        },
        prev_hash: match wire.prev_hash.as_slice() {
            [] => None,
            bytes => {
                Some(EventHash(bytes.try_into().map_err(|_| {
                    field("prev_hash", "must be empty or 32 bytes")
                })?))
            }
        },
        event,
    })
}

/// A release version on the wire: at least 1.
fn version(version: u64, name: &'static str) -> Result<ReleaseVersion, CodecError> {
    ReleaseVersion::new(version).ok_or(field(name, "must be at least 1"))
}

fn uuid(bytes: &[u8]) -> Option<Uuid> {
    Uuid::from_slice(bytes).ok()
}

fn optional(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn build_from_proto(build: Result<v1::Build, CodecError>) -> Result<Build, CodecError> {
    let build = build?;
    Ok(Build {
        id: build.id.parse()?,
        image: build.image.parse()?,
        commit: optional(build.commit),
        note: optional(build.note),
        processes: build
            .processes
            .into_iter()
            .map(|(t, c)| Ok((t.parse()?, c)))
            .collect::<Result<_, CodecError>>()?,
        release_command: optional(build.release_command),
    })
}

fn release_from_proto(release: v1::Release) -> Result<Release, CodecError> {
    let kind = match v1::ReleaseKind::try_from(release.kind) {
        Ok(v1::ReleaseKind::Deploy) => ReleaseKind::Deploy,
        Ok(v1::ReleaseKind::Config) => ReleaseKind::Config,
        Ok(v1::ReleaseKind::Promote) => ReleaseKind::Promote,
        Ok(v1::ReleaseKind::Rollback) => ReleaseKind::Rollback,
        Ok(v1::ReleaseKind::Unspecified) | Err(_) => {
            return Err(field("release.kind", "unknown release kind"))
        }
    };
    let config = release
        .config
        .into_iter()
        .map(|(key, value)| {
            let value = match value.value {
                Some(v1::config_value::Value::Plain(s)) => ConfigValue::Plain(s),
                Some(v1::config_value::Value::Sealed(b)) => ConfigValue::Sealed(b),
                None => return Err(field("release.config", "a value is required")),
            };
            Ok((key.parse()?, value))
        })
        .collect::<Result<_, CodecError>>()?;
    let source = match (
        optional(release.source_env),
        ReleaseVersion::new(release.source_version),
    ) {
        (Some(env), Some(version)) => Some(PromotionSource {
            env: env.parse()?,
            version,
        }),
        (None, None) => None,
        _ => return Err(field("release.source", "env and version go together")),
    };
    Ok(Release {
        version: ReleaseVersion::new(release.version)
            .ok_or(field("release.version", "must be at least 1"))?,
        kind,
        build: release.build.map(|b| build_from_proto(Ok(b))).transpose()?,
        config,
        source,
        rollback_to: ReleaseVersion::new(release.rollback_to),
        description: release.description,
    })
}

/// Encodes one commit (the events of one command) as stored in the log.
pub fn encode_commit(envelopes: &[Envelope]) -> Vec<u8> {
    let encoded: Vec<Vec<u8>> = envelopes.iter().map(encode_envelope).collect();
    hoist_proto::join_commit(&encoded)
}

/// Decodes one stored commit, hashing each envelope's bytes as stored.
pub fn decode_commit(seq: u64, payload: &[u8]) -> Result<Vec<Recorded>, CodecError> {
    hoist_proto::split_commit(payload)?
        .into_iter()
        .map(|bytes| {
            Ok(Recorded {
                seq,
                hash: EventHash::of(bytes),
                envelope: decode_envelope(bytes)?,
            })
        })
        .collect()
}

/// Decodes one stored commit's envelopes without hashing them: for read models, which do not
/// check the hash chain (`decode_commit` hashes, for whoever appends or verifies).
pub fn decode_envelopes(payload: &[u8]) -> Result<Vec<Envelope>, CodecError> {
    hoist_proto::split_commit(payload)?
        .into_iter()
        .map(decode_envelope)
        .collect()
}

/// Whether `payload` is a commit of `app` as hoist writes them: at least one envelope, each
/// decoding and naming `app`. The NATS store's check of what others may publish on hoist's
/// subjects (`NatsOptions::commit_check`).
pub fn check_commit(app: &crate::names::AppName, payload: &[u8]) -> Result<(), String> {
    let envelopes = decode_envelopes(payload).map_err(|e| e.to_string())?;
    if envelopes.is_empty() {
        return Err("it holds no event".to_string());
    }
    match envelopes.iter().find(|e| &e.app != app) {
        Some(other) => Err(format!("its events are app {}'s, not {app}'s", other.app)),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::names::{Actor, AppName, ConfigKey, EnvName, ImageRef};
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,10}[a-z0-9]"
    }

    pub fn image() -> impl Strategy<Value = ImageRef> {
        ("[a-z]{1,8}(/[a-z]{1,8})?", "[0-9a-f]{64}")
            .prop_map(|(repo, hex)| format!("{repo}@sha256:{hex}").parse().unwrap())
    }

    fn build() -> impl Strategy<Value = Build> {
        (
            image(),
            proptest::option::of("[0-9a-f]{7,40}"),
            proptest::option::of(".{1,20}"),
            processes(),
            proptest::option::of("[a-z /-]{1,20}"),
        )
            .prop_map(|(image, commit, note, processes, release_command)| Build {
                commit,
                note,
                id: Build::id_for(&image, &processes, release_command.as_deref()),
                processes,
                release_command,
                ..Build::of_image(image)
            })
    }

    // issue 14
    fn process_type() -> impl Strategy<Value = crate::ProcessType> {
        prop_oneof![Just("web".to_string()), Just("worker".to_string()), name()]
            .prop_filter("not release", |t| t != "release")
            .prop_map(|t| t.parse().unwrap())
    }

    fn processes() -> impl Strategy<Value = crate::Processes> {
        proptest::collection::btree_map(process_type(), "[a-z $/-]{1,20}", 0..3)
    }

    fn routing() -> impl Strategy<Value = Routing> {
        (
            proptest::option::of(name()),
            proptest::option::of(name()),
            proptest::option::of("/[a-z]{0,10}"),
        )
            .prop_map(|(ingress_class, tls_secret, health_path)| Routing {
                ingress_class,
                tls_secret,
                health_path,
            })
    }

    fn host() -> impl Strategy<Value = crate::Hostname> {
        (proptest::option::of(Just("*.")), name(), "[a-z]{2,6}").prop_map(|(star, label, tld)| {
            format!("{}{label}.{tld}", star.unwrap_or(""))
                .parse()
                .unwrap()
        })
    }

    fn config() -> impl Strategy<Value = crate::event::Config> {
        proptest::collection::btree_map(
            "[A-Z_][A-Z0-9_]{0,8}".prop_map(|k| k.parse::<ConfigKey>().unwrap()),
            prop_oneof![
                ".{0,12}".prop_map(ConfigValue::Plain),
                proptest::collection::vec(any::<u8>(), 28..60).prop_map(ConfigValue::Sealed)
            ],
            0..5,
        )
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            Just(Target::None),
            (
                proptest::option::of("[a-z][a-z0-9-]{0,10}"),
                name(),
                routing()
            )
                .prop_map(|(context, namespace, routing)| Target::Kube {
                    context,
                    namespace,
                    routing
                }),
            ("/[a-z/]{1,20}", routing())
                .prop_map(|(dir, routing)| Target::Manifests { dir, routing }),
            (
                ".{1,30}",
                proptest::collection::btree_set("[A-Z_][A-Z0-9_]{0,8}", 0..3)
            )
                .prop_map(|(command, names)| Target::Exec {
                    command,
                    pass_env: names.iter().map(|n| n.parse().unwrap()).collect(),
                }),
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        let env = || name().prop_map(|n| n.parse::<EnvName>().unwrap());
        prop_oneof![
            proptest::collection::vec(env(), 1..4).prop_map(|envs| Event::AppCreated { envs }),
            build().prop_map(|build| Event::BuildRegistered { build }),
            (
                env(),
                1..1000u64,
                proptest::option::of(build()),
                config(),
                proptest::option::of((env(), 1..100u64)),
                proptest::option::of(1..100u64),
                ".{0,30}",
                0..4usize
            )
                .prop_map(
                    |(env, version, build, config, source, rollback_to, description, kind)| {
                        Event::ReleaseCreated {
                            env,
                            release: Release {
                                version: ReleaseVersion::new(version).unwrap(),
                                kind: [
                                    ReleaseKind::Deploy,
                                    ReleaseKind::Config,
                                    ReleaseKind::Promote,
                                    ReleaseKind::Rollback,
                                ][kind],
                                build,
                                config,
                                source: source.map(|(env, v)| PromotionSource {
                                    env,
                                    version: ReleaseVersion::new(v).unwrap(),
                                }),
                                rollback_to: rollback_to.and_then(ReleaseVersion::new),
                                description,
                            },
                        }
                    }
                ),
            (env(), ".{0,30}").prop_map(|(env, reason)| Event::EnvLocked { env, reason }),
            env().prop_map(|env| Event::EnvUnlocked { env }),
            (env(), target()).prop_map(|(env, target)| Event::TargetSet { env, target }),
            (env(), any::<bool>())
                .prop_map(|(env, auto_rollback)| Event::PolicySet { env, auto_rollback }),
            (env(), 1..1000u64, 0..3usize, ".{0,60}").prop_map(
                |(env, version, outcome, detail)| Event::RolloutRecorded {
                    env,
                    version: ReleaseVersion::new(version).unwrap(),
                    outcome: [Outcome::Applied, Outcome::Healthy, Outcome::Failed][outcome],
                    detail,
                }
            ),
            access_event(),
            pipeline_event(),
            // issue 14
            (
                env(),
                proptest::collection::btree_map(process_type(), 0..10_000u32, 1..4)
            )
                .prop_map(|(env, replicas)| Event::ScaleSet { env, replicas }),
            (env(), host()).prop_map(|(env, host)| Event::DomainAdded { env, host }),
            (env(), host()).prop_map(|(env, host)| Event::DomainRemoved { env, host }),
        ]
    }

    /// issue 16's events.
    fn pipeline_event() -> impl Strategy<Value = Event> {
        let env = || name().prop_map(|n| n.parse::<EnvName>().unwrap());
        let version = || (1..1000u64).prop_map(|v| ReleaseVersion::new(v).unwrap());
        let object = (
            "[A-Z][a-zA-Z]{2,10}",
            name(),
            proptest::collection::vec(
                (
                    "[a-z.\\[\\]=]{1,30}",
                    ".{0,20}",
                    proptest::option::of(".{0,20}"),
                    proptest::option::of("[a-z-]{1,12}"),
                ),
                1..4,
            ),
        )
            .prop_map(|(kind, name, fields)| DriftedObject {
                kind,
                name,
                fields: fields
                    .into_iter()
                    .map(|(path, want, got, by)| DriftedField {
                        path,
                        want,
                        got,
                        by,
                    })
                    .collect(),
            });
        prop_oneof![
            (env(), ".{0,30}", proptest::option::of(version())).prop_map(
                |(env, reason, rollback_to)| Event::EnvPinned {
                    env,
                    reason,
                    rollback_to
                }
            ),
            env().prop_map(|env| Event::EnvUnpinned { env }),
            (
                env(),
                any::<bool>(),
                any::<u64>(),
                proptest::option::of(".{1,30}"),
                any::<bool>()
            )
                .prop_map(|(env, auto_promote, after_secs, verify, self_heal)| {
                    Event::PipelinePolicySet {
                        env,
                        policy: PipelinePolicy {
                            auto_promote,
                            after_secs,
                            verify,
                            self_heal,
                        },
                    }
                }),
            (env(), env(), version(), any::<bool>(), ".{0,40}").prop_map(
                |(env, from, version, passed, detail)| Event::PromotionVerified {
                    env,
                    from,
                    version,
                    passed,
                    detail
                }
            ),
            (env(), version(), proptest::collection::vec(object, 0..3)).prop_map(
                |(env, version, objects)| Event::DriftDetected {
                    env,
                    version,
                    objects
                }
            ),
            (env(), version(), ".{0,30}").prop_map(|(env, version, detail)| {
                Event::DriftHealed {
                    env,
                    version,
                    detail,
                }
            }),
        ]
    }

    /// issue 11: the hook events.
    fn hook_event() -> impl Strategy<Value = Event> {
        use crate::hooks::{HookFormat, HookKind, HookSpec};
        let hook_name = || name().prop_map(|n| n.parse::<crate::HookName>().unwrap());
        prop_oneof![
            (
                hook_name(),
                0..4usize,
                "https://[a-z]{1,8}[.]example/[a-z]{0,8}",
                proptest::option::of(name()),
                proptest::option::of(name()),
                proptest::collection::btree_set(0..6usize, 1..4),
                proptest::collection::vec(any::<u8>(), 0..40),
                proptest::option::of("![a-zA-Z]{4,10}:example[.]org"),
            )
                .prop_map(
                    |(name, format, url, app, env, kinds, sealed_secret, room)| {
                        Event::HookAdded {
                            hook: HookSpec {
                                name,
                                format: HookFormat::ALL[format],
                                url,
                                app: app.map(|a| a.parse().unwrap()),
                                env: env.map(|e| e.parse().unwrap()),
                                kinds: kinds.into_iter().map(|k| HookKind::NAMED[k]).collect(),
                                sealed_secret,
                                room,
                            },
                        }
                    }
                ),
            hook_name().prop_map(|name| Event::HookRemoved { name }),
            (hook_name(), ".{0,30}")
                .prop_map(|(name, reason)| Event::HookDisabled { name, reason }),
            (hook_name(), any::<u128>()).prop_map(|(name, id)| Event::HookRedeliveryRequested {
                name,
                delivery: Uuid::from_u128(id),
            }),
            (
                hook_name(),
                proptest::collection::vec(any::<u8>(), 0..40),
                0..4_000_000_000_000_000i64
            )
                .prop_map(|(name, sealed_secret, micros)| Event::HookSecretRotated {
                    name,
                    sealed_secret,
                    previous_until: DateTime::<Utc>::from_timestamp_micros(micros).unwrap(),
                }),
        ]
    }

    fn access_event() -> impl Strategy<Value = Event> {
        let identity = || "[a-z]{1,10}@example[.]com".prop_map(|a| a.parse::<Actor>().unwrap());
        let token_id = || "[0-9a-f]{12}".prop_map(|id| id.parse::<crate::TokenId>().unwrap());
        let chat_id = || {
            prop_oneof![
                "slack:T[A-Z0-9]{4}/U[A-Z0-9]{4}",
                "matrix:@[a-z]{1,8}:example[.]org"
            ]
            .prop_map(|c| c.parse::<crate::ChatId>().unwrap())
        };
        let grant = || {
            (
                0..4usize,
                proptest::option::of(name()),
                proptest::option::of(name()),
            )
                .prop_map(|(role, app, env)| Grant {
                    role: Role::ALL[role],
                    app: app.map(|a| a.parse().unwrap()),
                    env: env.map(|e| e.parse().unwrap()),
                })
        };
        prop_oneof![
            (
                token_id(),
                identity(),
                proptest::option::of("[a-zA-Z0-9 ']{1,20}"),
                any::<[u8; 32]>(),
                proptest::option::of(1..4_000_000_000_000_000i64),
            )
                .prop_map(|(id, identity, name, hash, expires)| Event::TokenCreated {
                    id,
                    identity,
                    name,
                    hash: TokenHash(hash),
                    expires_at: expires.map(|m| DateTime::<Utc>::from_timestamp_micros(m).unwrap()),
                }),
            token_id().prop_map(|id| Event::TokenRevoked { id }),
            (identity(), grant())
                .prop_map(|(identity, grant)| Event::RoleGranted { identity, grant }),
            (identity(), grant())
                .prop_map(|(identity, grant)| Event::RoleRevoked { identity, grant }),
            (chat_id(), identity())
                .prop_map(|(chat_id, identity)| Event::ChatLinked { chat_id, identity }),
            chat_id().prop_map(|chat_id| Event::ChatUnlinked { chat_id }),
            hook_event(),
        ]
    }

    pub fn envelope() -> impl Strategy<Value = Envelope> {
        (
            (
                prop_oneof![4 => name(), 1 => Just(AppName::ACCESS.to_string())],
                proptest::option::of(prop_oneof![
                    Just("api".to_string()),
                    "slack:T[A-Z0-9]{4}/U[A-Z0-9]{4}"
                ]),
            ),
            event(),
            any::<u128>(),
            any::<u128>(),
            proptest::option::of(any::<u128>()),
            proptest::option::of(any::<[u8; 32]>()),
            0..4_000_000_000_000_000i64,
            "[a-z]{1,10}@example[.]com",
        )
            .prop_map(
                |((app, via), event, id, correlation, causation, prev, micros, actor)| Envelope {
                    id: Uuid::from_u128(id),
                    app: AppName::from_log(&app).unwrap(),
                    at: DateTime::<Utc>::from_timestamp_micros(micros).unwrap(),
                    actor: actor.parse::<Actor>().unwrap(),
                    via,
                    correlation_id: Uuid::from_u128(correlation),
                    causation_id: causation.map(Uuid::from_u128),
                    prev_hash: prev.map(EventHash),
                    event: Some(event),
                },
            )
    }

    proptest! {
        #[test]
        fn envelope_round_trips_and_re_encodes_to_the_same_bytes(envelope in envelope()) {
            let bytes = encode_envelope(&envelope);
            let decoded = decode_envelope(&bytes).unwrap();
            prop_assert_eq!(&decoded, &envelope);
            prop_assert_eq!(encode_envelope(&decoded), bytes);
        }

        #[test]
        fn envelope_round_trips_through_export_json(envelope in envelope()) {
            let json = serde_json::to_string(&envelope).unwrap();
            let back: Envelope = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(encode_envelope(&back), encode_envelope(&envelope));
        }

        #[test]
        fn commit_round_trips_with_hashes_of_the_stored_bytes(envelopes in proptest::collection::vec(envelope(), 1..4), seq in 1..u64::MAX) {
            let payload = encode_commit(&envelopes);
            let recorded = decode_commit(seq, &payload).unwrap();
            prop_assert_eq!(recorded.len(), envelopes.len());
            for (r, e) in recorded.iter().zip(&envelopes) {
                prop_assert_eq!(r.seq, seq);
                prop_assert_eq!(&r.envelope, e);
                prop_assert_eq!(r.hash, EventHash::of(&encode_envelope(e)));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_decode(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_commit(1, &bytes);
            let _ = decode_envelope(&bytes);
        }

        /// What the NATS store takes for a commit of an app: exactly hoist's commits of that app.
        #[test]
        fn check_commit_accepts_an_apps_commits_and_nothing_else(
            mut envelopes in proptest::collection::vec(envelope(), 1..4),
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let app = envelopes[0].app.clone();
            for e in &mut envelopes {
                e.app = app.clone();
            }
            prop_assert_eq!(check_commit(&app, &encode_commit(&envelopes)), Ok(()));
            let other: AppName = format!("{}-other", app.as_str().trim_start_matches('_')).parse().unwrap();
            prop_assert!(check_commit(&other, &encode_commit(&envelopes)).is_err());
            prop_assert!(check_commit(&app, &[]).is_err(), "an empty commit is none");
            // Arbitrary bytes never panic; when they pass, they decode as the app's events.
            if check_commit(&app, &bytes).is_ok() {
                let decoded = decode_envelopes(&bytes).unwrap();
                prop_assert!(!decoded.is_empty() && decoded.iter().all(|e| e.app == app));
            }
        }
    }
}
