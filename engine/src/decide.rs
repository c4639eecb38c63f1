//! Commands and the rules that turn them into events. `decide` is pure: it sees the app's folded
//! state and the command, nothing else, and either returns the events to append or says which
//! rule the command broke.

use crate::authorize::Grant;
use crate::event::{
    Build, Config, ConfigValue, DriftedObject, Event, Outcome, PipelinePolicy, PromotionSource,
    Release, ReleaseKind, Target,
};
use crate::formation::{check_command, Processes, Scale, MAX_PROCESS_TYPES, MAX_REPLICAS};
use crate::names::{
    limits, Actor, AppName, BuildId, ChatId, ConfigKey, EnvName, HookName, Hostname, ImageRef,
    ReleaseVersion, TokenId,
};
use crate::state::{AppState, EnvState, Lock};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    Image(ImageRef),
    Build(BuildId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    CreateApp {
        pipeline: Vec<EnvName>,
    },
    RegisterBuild {
        image: ImageRef,
        commit: Option<String>,
        note: Option<String>,
        /// issue 14: the build's process types (empty: one `web` with the image's entrypoint)
        /// and release-phase command.
        processes: Processes,
        release_command: Option<String>,
    },
    Deploy {
        env: EnvName,
        artifact: Artifact,
    },
    /// Values arrive already sealed where secret: `decide` never sees clear secrets.
    SetConfig {
        env: EnvName,
        values: BTreeMap<ConfigKey, ConfigValue>,
    },
    UnsetConfig {
        env: EnvName,
        keys: BTreeSet<ConfigKey>,
    },
    Promote {
        from: EnvName,
        to: Option<EnvName>,
    },
    Rollback {
        env: EnvName,
        to: Option<ReleaseVersion>,
    },
    Lock {
        env: EnvName,
        reason: String,
    },
    Unlock {
        env: EnvName,
    },
    SetTarget {
        env: EnvName,
        target: Target,
    },
    SetPolicy {
        env: EnvName,
        auto_rollback: bool,
    },
    /// A reconciler reports what applying `version` came to. With the env's auto-rollback policy
    /// on, a failed current release also gets a rollback release to the last healthy one.
    RecordRollout {
        env: EnvName,
        version: ReleaseVersion,
        outcome: Outcome,
        detail: String,
    },
    // issue 16: pins, last-healthy rollback, forced and automatic promotion, drift.
    Pin {
        env: EnvName,
        reason: Option<String>,
    },
    Unpin {
        env: EnvName,
    },
    /// `rollback --to last-healthy`: to the env's last release recorded healthy.
    RollbackToLastHealthy {
        env: EnvName,
    },
    /// `promote --force`: into a pinned env too (the release's description says so).
    PromoteForced {
        from: EnvName,
        to: Option<EnvName>,
    },
    /// `envs policy`: each setting given changes, the others stay as they are.
    SetPolicies {
        env: EnvName,
        changes: PolicyChanges,
    },
    /// `serve`'s auto-promotion of `from`'s release `version` into `to`, at `at` (its clock),
    /// with the outcome of the verification command when `to` has one.
    AutoPromote {
        from: EnvName,
        to: EnvName,
        version: ReleaseVersion,
        at: DateTime<Utc>,
        verification: Option<Verification>,
    },
    /// What comparing the env's target with release `version` found (nothing: no drift).
    RecordDrift {
        env: EnvName,
        version: ReleaseVersion,
        objects: Vec<DriftedObject>,
    },
    /// The env's target was applied again to heal its recorded drift.
    RecordHealed {
        env: EnvName,
        version: ReleaseVersion,
        detail: String,
    },
    // issue 14: formation.
    /// `ps scale`: replicas of process types of the env's current build.
    Scale {
        env: EnvName,
        replicas: Scale,
    },
    /// `domains add`. Whether another app routes the host is checked by the caller, who can
    /// see every app (`decide` sees one).
    AddDomain {
        env: EnvName,
        host: Hostname,
    },
    RemoveDomain {
        env: EnvName,
        host: Hostname,
    },
}

// issue 16
/// The settings one `envs policy` changes; `None`: left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyChanges {
    pub auto_rollback: Option<bool>,
    pub auto_promote: Option<bool>,
    pub after_secs: Option<u64>,
    /// `Some(None)`: no verification any more.
    pub verify: Option<Option<String>>,
    pub self_heal: Option<bool>,
}

/// What a promotion's verification command said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub passed: bool,
    pub detail: String,
}

/// A command that breaks a rule. Each message names the thing and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("app {0} already exists")]
    AppExists(AppName),
    #[error("app {0} does not exist (see `hoist apps list`)")]
    UnknownApp(AppName),
    #[error("env {env} is not in the pipeline of app {app} ({pipeline})")]
    UnknownEnv {
        app: AppName,
        env: EnvName,
        pipeline: String,
    },
    #[error("pipeline of app {0} must name at least one env")]
    EmptyPipeline(AppName),
    #[error("pipeline of app {app} names env {env} twice")]
    DuplicateEnv { app: AppName, env: EnvName },
    #[error("build {build} is not registered for app {app} (see `hoist builds register`)")]
    UnknownBuild { app: AppName, build: BuildId },
    #[error("{app}/{env} has no release {version} (latest is {latest})")]
    UnknownVersion {
        app: AppName,
        env: EnvName,
        version: ReleaseVersion,
        latest: String,
    },
    #[error("{app}/{env} is locked by {by}: {reason} (`hoist unlock` to release it; rollback stays allowed)")]
    Locked {
        app: AppName,
        env: EnvName,
        by: String,
        reason: String,
    },
    #[error("{app}/{env} is not locked")]
    NotLocked { app: AppName, env: EnvName },
    #[error("lock reason must not be empty")]
    EmptyReason,
    #[error("{app}/{env}: nothing to roll back to: {why}")]
    NothingToRollBack {
        app: AppName,
        env: EnvName,
        why: String,
    },
    #[error("{app}/{env}: nothing to promote: it has no release with an image")]
    NothingToPromote { app: AppName, env: EnvName },
    #[error("{app}/{env} is the last env of the pipeline: name the target with --to")]
    NoNextEnv { app: AppName, env: EnvName },
    #[error("{app}: cannot promote {env} to itself")]
    PromoteToSelf { app: AppName, env: EnvName },
    #[error("{app}/{env}: config key {key} is not set")]
    KeyNotSet {
        app: AppName,
        env: EnvName,
        key: ConfigKey,
    },
    #[error("{app}/{env}: invalid target: {rule}")]
    InvalidTarget {
        app: AppName,
        env: EnvName,
        rule: &'static str,
    },
    #[error("{field} must name at least one {what}")]
    Empty {
        field: &'static str,
        what: &'static str,
    },
    // What only a recorded history can break (see `validate`): no command leads there.
    #[error("app {0} has an event before its app_created")]
    NotCreated(AppName),
    #[error("{app}/{env}: release {version} is out of order: the next release is {expected}")]
    VersionOutOfOrder {
        app: AppName,
        env: EnvName,
        version: ReleaseVersion,
        expected: ReleaseVersion,
    },
    #[error("{app}/{env} {version}: {rule}")]
    MalformedRelease {
        app: AppName,
        env: EnvName,
        version: ReleaseVersion,
        rule: &'static str,
    },
    #[error("{app}: build {build}: {rule}")]
    MalformedBuild {
        app: AppName,
        build: BuildId,
        rule: &'static str,
    },
    #[error("{field} is {size} bytes: the limit is {limit} bytes")]
    TooLarge {
        field: String,
        size: usize,
        limit: usize,
    },
    #[error("{field} names {count} variables: the limit is {limit}")]
    TooMany {
        field: &'static str,
        count: usize,
        limit: usize,
    },
    // The access chain's rules (`access`).
    #[error("app name {0} is reserved: hoist keeps identities, tokens and grants under it")]
    ReservedApp(AppName),
    #[error("{kind} events belong on {belongs}, not on {chain}")]
    WrongChain {
        chain: AppName,
        kind: &'static str,
        belongs: &'static str,
    },
    #[error("token {0} does not exist (see `hoist access token list`)")]
    UnknownToken(TokenId),
    #[error("token {0} is already revoked")]
    TokenAlreadyRevoked(TokenId),
    #[error("token {0} already exists")]
    TokenExists(TokenId),
    #[error("token {id} has the hash of token {earlier}: every token is new")]
    TokenHashReused { id: TokenId, earlier: TokenId },
    #[error("invalid token name {name:?}: {rule}")]
    InvalidTokenName { name: String, rule: &'static str },
    #[error("env {0} is in the pipeline of no app (see `hoist apps list`)")]
    EnvOfNoApp(EnvName),
    #[error("{identity} already holds {grant}")]
    AlreadyGranted { identity: Actor, grant: Grant },
    #[error("{identity} holds no {grant} to revoke (its grants: {held}; see `hoist access list`)")]
    NoSuchGrant {
        identity: Actor,
        grant: Grant,
        held: String,
    },
    #[error(
        "chat id {chat_id} is already linked to {identity}: `hoist access unlink {chat_id}` first"
    )]
    ChatAlreadyLinked { chat_id: ChatId, identity: Actor },
    #[error("chat id {0} is not linked to any identity")]
    ChatNotLinked(ChatId),
    // issue 11
    #[error("hook {0} already exists: `hoist hooks remove {0}` first")]
    HookExists(HookName),
    #[error("hook {0} does not exist (see `hoist hooks list`)")]
    UnknownHook(HookName),
    // issue 16
    #[error("{app}/{env} is pinned by {by} since {at}: {reason} (`hoist unpin` to release it, or `promote --force`)")]
    Pinned {
        app: AppName,
        env: EnvName,
        by: String,
        at: String,
        reason: String,
    },
    #[error("{app}/{env} is already pinned by {by}: {reason} (`hoist unpin` first)")]
    AlreadyPinned {
        app: AppName,
        env: EnvName,
        by: String,
        reason: String,
    },
    #[error("{app}/{env} is not pinned")]
    NotPinned { app: AppName, env: EnvName },
    #[error("{app}/{env}: invalid policy: {rule}")]
    InvalidPolicy {
        app: AppName,
        env: EnvName,
        rule: &'static str,
    },
    #[error("{app}/{env}: no auto-promotion: {why}")]
    NoAutoPromotion {
        app: AppName,
        env: EnvName,
        why: String,
    },
    // issue 14: formation.
    #[error("{field}: {rule}")]
    InvalidProcess { field: String, rule: &'static str },
    #[error("{app}/{env}: the current build has no process type {process_type} (it has {types})")]
    UnknownProcessType {
        app: AppName,
        env: EnvName,
        process_type: crate::names::ProcessType,
        types: String,
    },
    #[error("{app}/{env} has no release yet: deploy a build before scaling it")]
    NothingToScale { app: AppName, env: EnvName },
    #[error("{app}/{env}: {host} is already one of its domains")]
    DomainExists {
        app: AppName,
        env: EnvName,
        host: Hostname,
    },
    #[error("{app}/{env}: {host} is not one of its domains (see `hoist domains list`)")]
    DomainNotFound {
        app: AppName,
        env: EnvName,
        host: Hostname,
    },
    #[error("domain {host} is already routed to {holder}: remove it there first")]
    DomainTaken { host: Hostname, holder: String },
}

/// `Err(TooLarge)` when `size` is over `limit`.
fn within(field: impl Into<String>, size: usize, limit: usize) -> Result<(), DomainError> {
    if size > limit {
        return Err(DomainError::TooLarge {
            field: field.into(),
            size,
            limit,
        });
    }
    Ok(())
}

/// The events `command` causes on the app whose state is `state`; empty when it changes nothing
/// (registering a build that is already registered).
pub fn decide(
    app: &AppName,
    state: &AppState,
    command: &Command,
) -> Result<Vec<Event>, DomainError> {
    let events = decide_unchecked(app, state, command)?;
    // Limits are kept where input enters: a deploy, promotion, rollback or unset copies (part
    // of) a config that was already set, so a release recorded before a limit stays usable.
    let enters_input = matches!(
        command,
        Command::RegisterBuild { .. }
            | Command::SetConfig { .. }
            | Command::Lock { .. }
            | Command::SetTarget { .. }
            | Command::Pin { .. }
            | Command::SetPolicies { .. }
    );
    if enters_input {
        for event in &events {
            check_limits(app, state, event)?;
        }
    }
    Ok(events)
}

/// The size limits ([`limits`]) an event's free text, config and target keep, whoever makes it:
/// `decide` for a command's input, `check_event` for every imported event.
pub(crate) fn check_limits(
    app: &AppName,
    state: &AppState,
    event: &Event,
) -> Result<(), DomainError> {
    match event {
        Event::BuildRegistered { build } => {
            if let Some(commit) = &build.commit {
                within("--commit", commit.len(), limits::COMMIT_BYTES)?;
            }
            if let Some(note) = &build.note {
                within("--note", note.len(), limits::NOTE_BYTES)?;
            }
        }
        // Only what a config change enters is measured: a deploy, promotion or rollback copies
        // a config that was set before, and a key left as it was keeps whatever size it had.
        Event::ReleaseCreated { env, release } if release.kind == ReleaseKind::Config => {
            let previous = state
                .envs
                .get(env)
                .and_then(|e| e.current())
                .map(|r| &r.release.config);
            let entered = release
                .config
                .iter()
                .filter(|(key, value)| previous.and_then(|p| p.get(*key)) != Some(*value));
            for (key, value) in entered {
                within("a config key", key.as_str().len(), limits::CONFIG_KEY_BYTES)?;
                within(
                    format!("config value of {key}"),
                    value.clear_len(),
                    limits::CONFIG_VALUE_BYTES,
                )?;
            }
            let size = release
                .config
                .iter()
                .map(|(k, v)| k.as_str().len() + v.clear_len())
                .sum();
            within(
                format!("the config of {app}/{env} (keys and values)"),
                size,
                limits::RELEASE_CONFIG_BYTES,
            )?;
        }
        Event::EnvLocked { reason, .. } => {
            within("lock reason", reason.len(), limits::REASON_BYTES)?
        }
        // issue 16
        Event::EnvPinned { reason, .. } => {
            within("pin reason", reason.len(), limits::REASON_BYTES)?
        }
        Event::PipelinePolicySet { policy, .. } => {
            if let Some(verify) = &policy.verify {
                within("--verify", verify.len(), limits::COMMAND_BYTES)?;
            }
        }
        Event::TargetSet { target, .. } => match target {
            Target::Kube {
                context: Some(context),
                ..
            } => within("--context", context.len(), limits::CONTEXT_BYTES)?,
            Target::Manifests { dir, .. } => within("--manifests", dir.len(), limits::PATH_BYTES)?,
            Target::Exec { command, pass_env } => {
                within("--exec", command.len(), limits::COMMAND_BYTES)?;
                if pass_env.len() > limits::PASS_ENV_NAMES {
                    return Err(DomainError::TooMany {
                        field: "--exec-env",
                        count: pass_env.len(),
                        limit: limits::PASS_ENV_NAMES,
                    });
                }
            }
            _ => {}
        },
        _ => {}
    }
    Ok(())
}

/// `decide` before the limits on what the command enters.
fn decide_unchecked(
    app: &AppName,
    state: &AppState,
    command: &Command,
) -> Result<Vec<Event>, DomainError> {
    if let Command::CreateApp { pipeline } = command {
        return create_app(app, state, pipeline);
    }
    if !state.exists() {
        return Err(DomainError::UnknownApp(app.clone()));
    }
    let rules = Rules { app, state };
    match command {
        Command::CreateApp { .. } => unreachable!("handled above"),
        Command::RegisterBuild {
            image,
            commit,
            note,
            processes,
            release_command,
        } => {
            check_processes(processes, release_command.as_deref())?;
            let id = Build::id_for(image, processes, release_command.as_deref());
            if state.build_seqs.contains_key(&id) {
                return Ok(vec![]);
            }
            let build = Build {
                id,
                commit: commit.clone(),
                note: note.clone(),
                processes: processes.clone(),
                release_command: release_command.clone(),
                ..Build::of_image(image.clone())
            };
            Ok(vec![Event::BuildRegistered { build }])
        }
        Command::Deploy { env, artifact } => {
            let current = rules.unlocked_env(env)?;
            let build = match artifact {
                // The build registered last for the image (with its processes), else a new one.
                Artifact::Image(image) => state
                    .image_build(image)
                    .and_then(|id| state.builds.get(&id))
                    .cloned()
                    .unwrap_or_else(|| Build::of_image(image.clone())),
                Artifact::Build(id) => {
                    state
                        .builds
                        .get(id)
                        .cloned()
                        .ok_or_else(|| DomainError::UnknownBuild {
                            app: app.clone(),
                            build: id.clone(),
                        })?
                }
            };
            let description = format!("Deploy {}", build.image.short());
            Ok(vec![release(
                env,
                current,
                ReleaseKind::Deploy,
                Some(build),
                config_of(current),
                description,
            )])
        }
        Command::SetConfig { env, values } => {
            let current = rules.unlocked_env(env)?;
            if values.is_empty() {
                return Err(DomainError::Empty {
                    field: "config set",
                    what: "KEY=VALUE",
                });
            }
            let mut config = config_of(current);
            config.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
            let description = describe("Set", values.keys());
            Ok(vec![release(
                env,
                current,
                ReleaseKind::Config,
                build_of(current),
                config,
                description,
            )])
        }
        Command::UnsetConfig { env, keys } => {
            let current = rules.unlocked_env(env)?;
            if keys.is_empty() {
                return Err(DomainError::Empty {
                    field: "config unset",
                    what: "KEY",
                });
            }
            let mut config = config_of(current);
            for key in keys {
                if config.remove(key).is_none() {
                    return Err(DomainError::KeyNotSet {
                        app: app.clone(),
                        env: env.clone(),
                        key: key.clone(),
                    });
                }
            }
            let description = describe("Unset", keys.iter());
            Ok(vec![release(
                env,
                current,
                ReleaseKind::Config,
                build_of(current),
                config,
                description,
            )])
        }
        Command::Promote { from, to } => Ok(vec![promote(&rules, from, to.as_ref(), false)?]),
        Command::Rollback { env, to } => rollback(&rules, env, *to),
        Command::Lock { env, reason } => {
            rules.unlocked_env(env)?;
            if reason.trim().is_empty() {
                return Err(DomainError::EmptyReason);
            }
            Ok(vec![Event::EnvLocked {
                env: env.clone(),
                reason: reason.clone(),
            }])
        }
        Command::SetTarget { env, target } => {
            let current = rules.env(env)?;
            check_target(app, env, target)?;
            if current.target == *target {
                return Ok(vec![]);
            }
            Ok(vec![Event::TargetSet {
                env: env.clone(),
                target: target.clone(),
            }])
        }
        Command::SetPolicy { env, auto_rollback } => {
            if rules.env(env)?.auto_rollback == *auto_rollback {
                return Ok(vec![]);
            }
            Ok(vec![Event::PolicySet {
                env: env.clone(),
                auto_rollback: *auto_rollback,
            }])
        }
        Command::RecordRollout {
            env,
            version,
            outcome,
            detail,
        } => {
            let env_state = rules.env(env)?;
            let Some(record) = env_state.release(*version) else {
                return Err(DomainError::UnknownVersion {
                    app: app.clone(),
                    env: env.clone(),
                    version: *version,
                    latest: env_state
                        .current()
                        .map_or("none".into(), |r| r.release.version.to_string()),
                });
            };
            // Recording is idempotent: a reconciler that crashed before it recorded, or a resync,
            // re-applies and reports the same outcome, which the log already holds.
            // And "applied" (health not awaited) adds nothing to a "healthy" already recorded.
            if env_state.rollout.as_ref().is_some_and(|r| {
                r.version == *version
                    && (r.outcome == *outcome
                        || (r.outcome == Outcome::Healthy && *outcome == Outcome::Applied))
            }) {
                return Ok(vec![]);
            }
            let mut events = vec![Event::RolloutRecorded {
                env: env.clone(),
                version: *version,
                outcome: *outcome,
                detail: detail.clone(),
            }];
            if let Some(to) = auto_rollback_target(env_state, &record.release, *outcome) {
                let target = env_state.release(to).expect("last_healthy names a release");
                let mut rollback = release(
                    env,
                    env_state,
                    ReleaseKind::Rollback,
                    target.release.build.clone(),
                    target.release.config.clone(),
                    format!("Auto-rollback to {to}: {version} failed"),
                );
                if let Event::ReleaseCreated { release, .. } = &mut rollback {
                    release.rollback_to = Some(to);
                }
                events.push(rollback);
            }
            Ok(events)
        }
        Command::Unlock { env } => match rules.env(env)?.lock {
            Some(_) => Ok(vec![Event::EnvUnlocked { env: env.clone() }]),
            None => Err(DomainError::NotLocked {
                app: app.clone(),
                env: env.clone(),
            }),
        },
        // issue 16
        Command::Pin { env, reason } => {
            if let Some(pin) = &rules.env(env)?.pin {
                return Err(DomainError::AlreadyPinned {
                    app: app.clone(),
                    env: env.clone(),
                    by: pin.actor.to_string(),
                    reason: pin.reason_text(),
                });
            }
            Ok(vec![Event::EnvPinned {
                env: env.clone(),
                reason: reason.as_deref().unwrap_or_default().trim().to_string(),
                rollback_to: None,
            }])
        }
        Command::Unpin { env } => match rules.env(env)?.pin {
            Some(_) => Ok(vec![Event::EnvUnpinned { env: env.clone() }]),
            None => Err(DomainError::NotPinned {
                app: app.clone(),
                env: env.clone(),
            }),
        },
        Command::RollbackToLastHealthy { env } => {
            let to = crate::pipeline::last_healthy(rules.env(env)?).ok_or_else(|| {
                DomainError::NothingToRollBack {
                    app: app.clone(),
                    env: env.clone(),
                    why: "no release of it was recorded healthy".into(),
                }
            })?;
            rollback(&rules, env, Some(to))
        }
        Command::PromoteForced { from, to } => Ok(vec![promote(&rules, from, to.as_ref(), true)?]),
        Command::SetPolicies { env, changes } => set_policies(&rules, env, changes),
        Command::AutoPromote {
            from,
            to,
            version,
            at,
            verification,
        } => crate::pipeline::auto_promote(&rules, from, to, *version, *at, verification.as_ref()),
        Command::RecordDrift {
            env,
            version,
            objects,
        } => crate::pipeline::record_drift(&rules, env, *version, objects),
        Command::RecordHealed {
            env,
            version,
            detail,
        } => crate::pipeline::record_healed(&rules, env, *version, detail),
        // issue 14
        Command::Scale { env, replicas } => {
            // Not a change of what runs but of how much: a lock does not stop it (scaling up
            // under load is recovery, like a rollback).
            let env_state = rules.env(env)?;
            check_scale(app, env, env_state, replicas)?;
            // Only the counts that differ from what the env holds: scaling to the same count
            // again records nothing.
            let changed: Scale = replicas
                .iter()
                .filter(|(t, n)| env_state.scale.get(*t) != Some(*n))
                .map(|(t, n)| (t.clone(), *n))
                .collect();
            if changed.is_empty() {
                return Ok(vec![]);
            }
            Ok(vec![Event::ScaleSet {
                env: env.clone(),
                replicas: changed,
            }])
        }
        Command::AddDomain { env, host } => {
            check_domain_added(app, state, env, host)?;
            Ok(vec![Event::DomainAdded {
                env: env.clone(),
                host: host.clone(),
            }])
        }
        Command::RemoveDomain { env, host } => {
            if !rules.env(env)?.domains.contains(host) {
                return Err(DomainError::DomainNotFound {
                    app: app.clone(),
                    env: env.clone(),
                    host: host.clone(),
                });
            }
            Ok(vec![Event::DomainRemoved {
                env: env.clone(),
                host: host.clone(),
            }])
        }
    }
}

/// `promote` (and `--force`, and auto-promotion): a release of `from`'s current build in `to`
/// (the next env by default) with `to`'s own config. A locked env refuses it; a pinned env
/// refuses it unless `force`, which the release's description records.
pub(crate) fn promote(
    rules: &Rules<'_>,
    from: &EnvName,
    to: Option<&EnvName>,
    force: bool,
) -> Result<Event, DomainError> {
    let Rules { app, state } = *rules;
    let source = rules.env(from)?;
    let to = match to {
        Some(to) => to,
        None => state.next_env(from).ok_or_else(|| DomainError::NoNextEnv {
            app: (*app).clone(),
            env: from.clone(),
        })?,
    };
    if to == from {
        return Err(DomainError::PromoteToSelf {
            app: (*app).clone(),
            env: from.clone(),
        });
    }
    let target = rules.unlocked_env(to)?;
    let forced_past = match &target.pin {
        Some(pin) if !force => {
            return Err(DomainError::Pinned {
                app: (*app).clone(),
                env: to.clone(),
                by: pin.actor.to_string(),
                at: pin.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                reason: pin.reason_text(),
            })
        }
        Some(pin) => Some(pin.reason_text()),
        None => None,
    };
    let (Some(record), Some(build)) = (source.current(), build_of(source)) else {
        return Err(DomainError::NothingToPromote {
            app: (*app).clone(),
            env: from.clone(),
        });
    };
    let version = record.release.version;
    let mut description = format!("Promote {from} {version} ({})", build.image.short());
    if let Some(reason) = forced_past {
        description.push_str(&format!(", forced past the pin ({reason})"));
        if description.len() > limits::DESCRIPTION_BYTES {
            let mut cut = limits::DESCRIPTION_BYTES - "…)".len();
            while !description.is_char_boundary(cut) {
                cut -= 1;
            }
            description.truncate(cut);
            description.push_str("…)");
        }
    }
    let mut event = release(
        to,
        target,
        ReleaseKind::Promote,
        Some(build),
        config_of(target),
        description,
    );
    if let Event::ReleaseCreated { release, .. } = &mut event {
        release.source = Some(PromotionSource {
            env: from.clone(),
            version,
        });
    }
    Ok(event)
}

/// `rollback`: a release copying build and config of `to` (default: the one before the
/// current), and a pin of the env, so that no auto-promotion undoes it.
fn rollback(
    rules: &Rules<'_>,
    env: &EnvName,
    to: Option<ReleaseVersion>,
) -> Result<Vec<Event>, DomainError> {
    let app = rules.app;
    // A lock freezes changes, not recovery: rollback is allowed on a locked env.
    let current_env = rules.env(env)?;
    let nothing = |why: String| DomainError::NothingToRollBack {
        app: app.clone(),
        env: env.clone(),
        why,
    };
    let Some(current) = current_env.current() else {
        return Err(nothing("it has no releases".into()));
    };
    let current_version = current.release.version;
    let target_version = match to {
        Some(version) => version,
        None => current_version
            .previous()
            .ok_or_else(|| nothing(format!("{current_version} is its only release")))?,
    };
    let target =
        current_env
            .release(target_version)
            .ok_or_else(|| DomainError::UnknownVersion {
                app: app.clone(),
                env: env.clone(),
                version: target_version,
                latest: current_version.to_string(),
            })?;
    if target_version == current_version {
        return Err(nothing(format!(
            "{current_version} is already the current release"
        )));
    }
    let description = format!("Rollback to {target_version}");
    let mut event = release(
        env,
        current_env,
        ReleaseKind::Rollback,
        target.release.build.clone(),
        target.release.config.clone(),
        description,
    );
    if let Event::ReleaseCreated { release, .. } = &mut event {
        release.rollback_to = Some(target_version);
    }
    // issue 16: a rollback pins its env until `unpin`.
    let pin = Event::EnvPinned {
        env: env.clone(),
        reason: String::new(),
        rollback_to: Some(target_version),
    };
    Ok(vec![event, pin])
}

/// `envs policy`: an event for each kind of setting that changes (auto-rollback; the pipeline
/// settings), none when nothing does.
fn set_policies(
    rules: &Rules<'_>,
    env: &EnvName,
    changes: &PolicyChanges,
) -> Result<Vec<Event>, DomainError> {
    let env_state = rules.env(env)?;
    let invalid = |rule| DomainError::InvalidPolicy {
        app: rules.app.clone(),
        env: env.clone(),
        rule,
    };
    if *changes == PolicyChanges::default() {
        return Err(invalid(
            "name at least one of --auto-rollback, --auto-promote, --after, --verify, --self-heal",
        ));
    }
    if let Some(Some(verify)) = &changes.verify {
        if verify.trim().is_empty() {
            return Err(invalid(
                "--verify must not be empty (give --no-verify to drop it)",
            ));
        }
    }
    let mut events = Vec::new();
    if let Some(auto_rollback) = changes.auto_rollback {
        if auto_rollback != env_state.auto_rollback {
            events.push(Event::PolicySet {
                env: env.clone(),
                auto_rollback,
            });
        }
    }
    let old = &env_state.pipeline_policy;
    let policy = PipelinePolicy {
        auto_promote: changes.auto_promote.unwrap_or(old.auto_promote),
        after_secs: changes.after_secs.unwrap_or(old.after_secs),
        verify: changes.verify.clone().unwrap_or_else(|| old.verify.clone()),
        self_heal: changes.self_heal.unwrap_or(old.self_heal),
    };
    if policy.auto_promote && rules.state.pipeline.first() == Some(env) {
        return Err(invalid(
            "the first env of the pipeline has no previous env to promote from",
        ));
    }
    if policy != *old {
        events.push(Event::PipelinePolicySet {
            env: env.clone(),
            policy,
        });
    }
    Ok(events)
}

/// The rules a build's process types and release command keep (issue 14).
pub(crate) fn check_processes(
    processes: &Processes,
    release_command: Option<&str>,
) -> Result<(), DomainError> {
    if processes.len() > MAX_PROCESS_TYPES {
        return Err(DomainError::TooMany {
            field: "--process",
            count: processes.len(),
            limit: MAX_PROCESS_TYPES,
        });
    }
    for (process_type, command) in processes {
        check_command(command).map_err(|rule| DomainError::InvalidProcess {
            field: format!("the command of process type {process_type}"),
            rule,
        })?;
    }
    if let Some(command) = release_command {
        check_command(command).map_err(|rule| DomainError::InvalidProcess {
            field: "the release command".into(),
            rule,
        })?;
    }
    Ok(())
}

/// `ps scale`'s rules: a current release, types its build has, counts within the bound.
pub(crate) fn check_scale(
    app: &AppName,
    env: &EnvName,
    env_state: &EnvState,
    replicas: &Scale,
) -> Result<(), DomainError> {
    if replicas.is_empty() {
        return Err(DomainError::Empty {
            field: "ps scale",
            what: "TYPE=N",
        });
    }
    let Some(current) = env_state.current().filter(|r| r.release.build.is_some()) else {
        return Err(DomainError::NothingToScale {
            app: app.clone(),
            env: env.clone(),
        });
    };
    let formation = env_state.formation(current);
    for (process_type, count) in replicas {
        if !formation
            .processes
            .iter()
            .any(|p| &p.process_type == process_type)
        {
            let types: Vec<&str> = formation
                .processes
                .iter()
                .map(|p| p.process_type.as_str())
                .collect();
            return Err(DomainError::UnknownProcessType {
                app: app.clone(),
                env: env.clone(),
                process_type: process_type.clone(),
                types: types.join(", "),
            });
        }
        if *count > MAX_REPLICAS {
            return Err(DomainError::InvalidProcess {
                field: format!("{process_type}={count}"),
                rule: "a count is at most 10000",
            });
        }
    }
    Ok(())
}

/// `domains add`'s rules within one app: the env exists, and no env of the app has the host.
pub(crate) fn check_domain_added(
    app: &AppName,
    state: &AppState,
    env: &EnvName,
    host: &Hostname,
) -> Result<(), DomainError> {
    Rules { app, state }.env(env)?;
    if let Some((holder, _)) = state.envs.iter().find(|(_, e)| e.domains.contains(host)) {
        if holder == env {
            return Err(DomainError::DomainExists {
                app: app.clone(),
                env: env.clone(),
                host: host.clone(),
            });
        }
        return Err(DomainError::DomainTaken {
            host: host.clone(),
            holder: format!("{app}/{holder}"),
        });
    }
    Ok(())
}

/// Where auto-rollback goes after `failed` ended with `outcome`, if anywhere: only with the policy
/// on, only for a failure of the current release (a newer release means someone moved on), only
/// to a healthy version other than the failed one, and never again to the version a failed
/// rollback already targeted, so that a rollback that fails too does not loop.
fn auto_rollback_target(
    env: &EnvState,
    failed: &Release,
    outcome: Outcome,
) -> Option<ReleaseVersion> {
    let healthy = env.last_healthy?;
    let is_current = env
        .current()
        .is_some_and(|c| c.release.version == failed.version);
    (env.auto_rollback
        && outcome == Outcome::Failed
        && is_current
        && healthy != failed.version
        && failed.rollback_to != Some(healthy))
    .then_some(healthy)
}

/// The rules a target must keep, whoever sets it.
pub(crate) fn check_target(
    app: &AppName,
    env: &EnvName,
    target: &Target,
) -> Result<(), DomainError> {
    let invalid = |rule| DomainError::InvalidTarget {
        app: app.clone(),
        env: env.clone(),
        rule,
    };
    if let Some(routing) = target.routing() {
        routing.check().map_err(invalid)?;
    }
    match target {
        Target::Kube {
            context, namespace, ..
        } => {
            if namespace.parse::<EnvName>().is_err() {
                return Err(invalid("a namespace must be a DNS label"));
            }
            if context.as_deref().is_some_and(|c| c.trim().is_empty()) {
                return Err(invalid("a kube context must not be empty"));
            }
        }
        Target::Manifests { dir, .. } if !dir.starts_with('/') => {
            return Err(invalid("a manifests directory must be an absolute path"))
        }
        Target::Exec { command, .. } if command.trim().is_empty() => {
            return Err(invalid("an exec command must not be empty"))
        }
        _ => {}
    }
    Ok(())
}

pub(crate) fn create_app(
    app: &AppName,
    state: &AppState,
    pipeline: &[EnvName],
) -> Result<Vec<Event>, DomainError> {
    if app.is_access() {
        return Err(DomainError::ReservedApp(app.clone()));
    }
    if state.exists() {
        return Err(DomainError::AppExists(app.clone()));
    }
    if pipeline.is_empty() {
        return Err(DomainError::EmptyPipeline(app.clone()));
    }
    let mut seen = BTreeSet::new();
    if let Some(env) = pipeline.iter().find(|env| !seen.insert(*env)) {
        return Err(DomainError::DuplicateEnv {
            app: app.clone(),
            env: env.clone(),
        });
    }
    Ok(vec![Event::AppCreated {
        envs: pipeline.to_vec(),
    }])
}

#[derive(Clone, Copy)]
pub(crate) struct Rules<'a> {
    pub(crate) app: &'a AppName,
    pub(crate) state: &'a AppState,
}

impl<'a> Rules<'a> {
    pub(crate) fn env(&self, env: &EnvName) -> Result<&'a EnvState, DomainError> {
        self.state.env(env).ok_or_else(|| DomainError::UnknownEnv {
            app: self.app.clone(),
            env: env.clone(),
            pipeline: self
                .state
                .pipeline
                .iter()
                .map(EnvName::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    pub(crate) fn unlocked_env(&self, env: &EnvName) -> Result<&'a EnvState, DomainError> {
        let state = self.env(env)?;
        match &state.lock {
            Some(Lock { actor, reason, .. }) => Err(DomainError::Locked {
                app: self.app.clone(),
                env: env.clone(),
                by: actor.to_string(),
                reason: reason.clone(),
            }),
            None => Ok(state),
        }
    }
}

/// `Set A, B, C`, cut to [`limits::DESCRIPTION_BYTES`] with the rest counted (`… and 3 more`).
fn describe<'k>(verb: &str, keys: impl ExactSizeIterator<Item = &'k ConfigKey>) -> String {
    let total = keys.len();
    let mut description = verb.to_string();
    for (shown, key) in keys.enumerate() {
        let more = format!(" … and {} more", total - shown);
        if description.len() + 2 + key.as_str().len() + more.len() > limits::DESCRIPTION_BYTES {
            description.push_str(&more);
            break;
        }
        description.push_str(if shown == 0 { " " } else { ", " });
        description.push_str(key.as_str());
    }
    description
}

pub(crate) fn config_of(env: &EnvState) -> Config {
    env.current()
        .map(|r| r.release.config.clone())
        .unwrap_or_default()
}

pub(crate) fn build_of(env: &EnvState) -> Option<Build> {
    env.current().and_then(|r| r.release.build.clone())
}

pub(crate) fn release(
    env: &EnvName,
    state: &EnvState,
    kind: ReleaseKind,
    build: Option<Build>,
    config: Config,
    description: String,
) -> Event {
    Event::ReleaseCreated {
        env: env.clone(),
        release: Release {
            version: state.next_version(),
            kind,
            build,
            config,
            source: None,
            rollback_to: None,
            description,
        },
    }
}
