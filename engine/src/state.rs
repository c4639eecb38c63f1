//! An app's current state, folded from its events. `apply` is infallible and holds no business
//! rules: whatever an event says happened, happened. Rules live in `decide`.

use crate::event::{
    Build, DriftedObject, Envelope, Event, EventHash, Outcome, PipelinePolicy, Recorded, Release,
    Target,
};
use crate::formation::{Formation, Scale};
use crate::index::{BuildSeqs, ImageBuilds, Promoted, ReleaseSeqs};
use crate::names::{Actor, BuildId, EnvName, Hostname, ImageRef, ReleaseVersion};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A release as it stands in history: who made it and when. (Serde: read models persist it.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub release: Release,
    pub actor: Actor,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub actor: Actor,
    pub reason: String,
    pub at: DateTime<Utc>,
}

// issue 16
/// Why an env takes no auto-promotion: a `pin`, or the rollback that pinned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub actor: Actor,
    pub at: DateTime<Utc>,
    /// As given to `pin` (may be empty); a rollback's pin has none and names its version.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<ReleaseVersion>,
}

impl Pin {
    /// The reason shown and refused with: `rolled back by X to vN` for a rollback's pin.
    pub fn reason_text(&self) -> String {
        match self.rollback_to {
            Some(to) => format!("rolled back by {} to {to}", self.actor),
            None if self.reason.is_empty() => format!("pinned by {}", self.actor),
            None => self.reason.clone(),
        }
    }
}

/// The drift last recorded in an env's target and not healed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub version: ReleaseVersion,
    pub objects: Vec<DriftedObject>,
    pub at: DateTime<Utc>,
}

/// The last recorded outcome of applying a release to an env's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub version: ReleaseVersion,
    pub outcome: Outcome,
    pub detail: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvState {
    /// This env's releases, oldest first. A fold of the whole history holds every one
    /// (`releases[i].version == i + 1`); a state restored from a snapshot (issue 15) holds only
    /// those `decide` needs (the current one, the last healthy one, any the command names, see
    /// `snapshot::needed`), sorted by version. [`EnvState::release_count`] counts them all.
    pub releases: Vec<ReleaseRecord>,
    pub lock: Option<Lock>,
    pub target: Target,
    pub auto_rollback: bool,
    /// The last rollout recorded, of whichever version: what the target last ran.
    pub rollout: Option<Rollout>,
    /// The last version whose rollout was recorded healthy: where auto-rollback goes.
    pub last_healthy: Option<ReleaseVersion>,
    // issue 16
    pub pin: Option<Pin>,
    pub pipeline_policy: PipelinePolicy,
    /// The id of the event that recorded `rollout`: what an auto-promotion is caused by.
    pub rollout_event: Option<uuid::Uuid>,
    /// Source releases (`env`, version) whose verification for promotion into this env failed:
    /// they are never auto-promoted here.
    pub failed_verifications: std::collections::BTreeSet<(EnvName, ReleaseVersion)>,
    pub drift: Option<Drift>,
    // issue 14
    /// The replicas `ps scale` set, per process type; kept across releases of any kind.
    pub scale: Scale,
    /// Hosts routed to the env's `web` process.
    pub domains: BTreeSet<Hostname>,
    // issue 15
    /// The log sequence of the commit that made each release, by version. Where a release
    /// left out of a snapshot is read back from. (Not serde: a snapshot stores its bytes.)
    #[serde(skip)]
    pub release_seqs: ReleaseSeqs,
    /// The source releases (`env`, version) promoted into this env, by anyone.
    #[serde(skip)]
    pub promoted: Promoted,
}

impl EnvState {
    pub fn current(&self) -> Option<&ReleaseRecord> {
        self.releases.last()
    }
    /// Release `version`, when it is held (every one is, but in a state restored from a
    /// snapshot: there, those `snapshot::needed` names).
    pub fn release(&self, version: ReleaseVersion) -> Option<&ReleaseRecord> {
        let i = usize::try_from(version.get() - 1).ok()?;
        if self.releases.len() as u64 == self.release_count() {
            return self.releases.get(i);
        }
        self.releases
            .binary_search_by_key(&version, |r| r.release.version)
            .ok()
            .map(|i| &self.releases[i])
    }
    /// How many releases this env has had (the current one's version), held or not.
    pub fn release_count(&self) -> u64 {
        self.current().map_or(0, |r| r.release.version.get())
    }
    /// Whether this env has had release `version` (held or not).
    pub fn has_release(&self, version: ReleaseVersion) -> bool {
        version.get() <= self.release_count()
    }
    /// What `record` runs in this env: its build's processes at this env's scale, with the
    /// env's domains and routing. (issue 14)
    pub fn formation(&self, record: &ReleaseRecord) -> Formation {
        let build = record.release.build.as_ref();
        Formation::of(
            build.map(|b| &b.processes).unwrap_or(&Default::default()),
            build.and_then(|b| b.release_command.as_deref()),
            &self.scale,
            &self.domains,
            self.target.routing().unwrap_or(&Default::default()),
        )
    }

    pub fn next_version(&self) -> ReleaseVersion {
        self.current()
            .map_or(ReleaseVersion::FIRST, |r| r.release.version.next())
    }
    /// The current release when it still has to reach the env's target: there is a target, and
    /// no outcome is recorded for that version yet.
    pub fn pending(&self) -> Option<&ReleaseRecord> {
        let current = self.current()?;
        let recorded = self
            .rollout
            .as_ref()
            .is_some_and(|r| r.version == current.release.version);
        (self.target != Target::None && !recorded).then_some(current)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppState {
    /// The pipeline, in promotion order; empty until the app is created.
    pub pipeline: Vec<EnvName>,
    pub created_at: Option<DateTime<Utc>>,
    pub envs: BTreeMap<EnvName, EnvState>,
    pub builds: BTreeMap<BuildId, Build>,
    /// Global sequence of the app's last commit: the expected sequence of its next append.
    pub last_seq: u64,
    /// Hash of the app's last event: the `prev_hash` of its next one.
    pub last_hash: Option<EventHash>,
    pub event_count: u64,
    /// Events whose body this version does not know, skipped by the fold.
    pub skipped_unknown: u64,
    /// issue 14: the build registered last for each image: what `deploy --image` deploys.
    /// Issue 15: only where that build is not the image's own implicit one
    /// ([`Build::of_image`], what a deploy of an image never registered makes): an image
    /// deployed by reference takes no entry, so the map grows with registered builds only.
    /// (Not serde: a snapshot stores its bytes.)
    #[serde(skip)]
    pub image_builds: ImageBuilds,
    // issue 15
    /// The log sequence of the commit that first held each build: every build the app has,
    /// while `builds` holds only some in a state restored from a snapshot. (Not serde: a
    /// snapshot stores its bytes.)
    #[serde(skip)]
    pub build_seqs: BuildSeqs,
}

impl AppState {
    pub fn exists(&self) -> bool {
        self.created_at.is_some()
    }

    pub fn env(&self, env: &EnvName) -> Option<&EnvState> {
        self.envs.get(env)
    }

    /// The env after `env` in the pipeline, where `promote` goes by default.
    /// The build `deploy --image image` deploys when it is not the image's own implicit one
    /// ([`Build::of_image`]): the build registered last for the image, or the first that
    /// held it. `None`: a deploy makes (or makes again) the implicit build.
    pub fn image_build(&self, image: &ImageRef) -> Option<BuildId> {
        self.image_builds.get(image)
    }

    /// Records `build` as `image`'s build, as the fold of its history does: the one registered
    /// last (`registered`), else the first that held the image; an image's own implicit build
    /// takes no entry (see `image_builds`).
    fn set_image_build(&mut self, build: &Build, registered: bool) {
        // `Build::of_image(image) == build`, without copying the image; every field named, so
        // a new one is not forgotten.
        let Build {
            id,
            image,
            commit,
            note,
            processes,
            release_command,
        } = build;
        let own_id = image.build_id();
        let implicit = *id == own_id
            && commit.is_none()
            && note.is_none()
            && processes.is_empty()
            && release_command.is_none();
        if registered {
            if implicit {
                self.image_builds.remove(&build.image);
            } else {
                self.image_builds.insert(&build.image, &build.id);
            }
            return;
        }
        // First held by a release: an entry only when the image had no build yet, which an
        // image without an entry had when its implicit build is the app's.
        let seen =
            self.image_builds.get(&build.image).is_some() || self.build_seqs.contains_key(&own_id);
        if !seen && !implicit {
            self.image_builds.insert(&build.image, &build.id);
        }
    }

    pub fn next_env(&self, env: &EnvName) -> Option<&EnvName> {
        let i = self.pipeline.iter().position(|e| e == env)?;
        self.pipeline.get(i + 1)
    }

    pub fn apply(mut self, recorded: &Recorded) -> Self {
        self.apply_mut(recorded);
        self
    }

    /// `apply_owned` of a copy: for callers that keep the event.
    pub fn apply_mut(&mut self, recorded: &Recorded) {
        self.apply_owned(recorded.clone());
    }

    /// Folds one event, taking it: its release, build and names move into the state instead of
    /// being copied (a replay owns the events it decodes).
    pub fn apply_owned(&mut self, recorded: Recorded) {
        let seq = recorded.seq;
        self.last_seq = seq;
        self.last_hash = Some(recorded.hash);
        self.event_count += 1;
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
            Event::AppCreated { envs } => {
                self.created_at = Some(at);
                self.envs = envs
                    .iter()
                    .map(|e| (e.clone(), EnvState::default()))
                    .collect();
                self.pipeline = envs;
            }
            Event::BuildRegistered { build } => {
                self.set_image_build(&build, true);
                self.build_seqs.insert_first(&build.id, seq);
                self.builds.insert(build.id.clone(), build);
            }
            Event::ReleaseCreated { env, release } => {
                if let Some(build) = &release.build {
                    if !self.build_seqs.contains_key(&build.id) {
                        self.set_image_build(build, false);
                        self.build_seqs.insert_first(&build.id, seq);
                        self.builds.insert(build.id.clone(), build.clone());
                    }
                }
                let env_state = self.envs.entry(env).or_default();
                if let Some(source) = &release.source {
                    env_state
                        .promoted
                        .insert(source.env.clone(), source.version);
                }
                env_state.release_seqs.push(seq);
                env_state
                    .releases
                    .push(ReleaseRecord { release, actor, at });
            }
            Event::EnvLocked { env, reason } => {
                self.envs.entry(env).or_default().lock = Some(Lock { actor, reason, at });
            }
            Event::EnvUnlocked { env } => {
                self.envs.entry(env).or_default().lock = None;
            }
            Event::TargetSet { env, target } => {
                let env_state = self.envs.entry(env).or_default();
                env_state.target = target;
                // Nothing has reached the new target yet: its current release is pending again,
                // and what drifted in the old target is no longer this env's (issue 16).
                env_state.rollout = None;
                env_state.drift = None;
            }
            Event::PolicySet { env, auto_rollback } => {
                self.envs.entry(env).or_default().auto_rollback = auto_rollback;
            }
            Event::RolloutRecorded {
                env,
                version,
                outcome,
                detail,
            } => {
                let env_state = self.envs.entry(env).or_default();
                if outcome == Outcome::Healthy {
                    env_state.last_healthy = Some(version);
                }
                // Applying a release makes the target what it renders: no drift is left.
                env_state.drift = None;
                env_state.rollout_event = Some(id);
                env_state.rollout = Some(Rollout {
                    version,
                    outcome,
                    detail,
                    at,
                });
            }
            // The access chain's events (`access::AccessState` folds them): nothing of an app.
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
            | Event::HookSecretRotated { .. } => {}
            // issue 16
            Event::EnvPinned {
                env,
                reason,
                rollback_to,
            } => {
                self.envs.entry(env).or_default().pin = Some(Pin {
                    actor,
                    at,
                    reason,
                    rollback_to,
                });
            }
            Event::EnvUnpinned { env } => {
                self.envs.entry(env).or_default().pin = None;
            }
            Event::PipelinePolicySet { env, policy } => {
                self.envs.entry(env).or_default().pipeline_policy = policy;
            }
            Event::PromotionVerified {
                env,
                from,
                version,
                passed,
                ..
            } => {
                if !passed {
                    let env_state = self.envs.entry(env).or_default();
                    env_state.failed_verifications.insert((from, version));
                }
            }
            Event::DriftDetected {
                env,
                version,
                objects,
            } => {
                self.envs.entry(env).or_default().drift = Some(Drift {
                    version,
                    objects,
                    at,
                });
            }
            Event::DriftHealed { env, .. } => {
                self.envs.entry(env).or_default().drift = None;
            }
            // issue 14: what the target runs changed: the current release is pending again.
            Event::ScaleSet { env, replicas } => {
                let env_state = self.envs.entry(env).or_default();
                env_state.scale.extend(replicas);
                env_state.rollout = None;
            }
            Event::DomainAdded { env, host } => {
                let env_state = self.envs.entry(env).or_default();
                env_state.domains.insert(host);
                env_state.rollout = None;
            }
            Event::DomainRemoved { env, host } => {
                let env_state = self.envs.entry(env).or_default();
                env_state.domains.remove(&host);
                env_state.rollout = None;
            }
        }
    }

    /// Folds a history, owned (`Vec<Recorded>`, moved) or borrowed (`&[Recorded]`, copied).
    pub fn fold<R: Into<Recorded>>(events: impl IntoIterator<Item = R>) -> Self {
        let mut state = AppState::default();
        for recorded in events {
            state.apply_owned(recorded.into());
        }
        state
    }
}
