//! The read models as pure folds: what each event changes, with no I/O. `store` persists them.
//!
//! - [`AppStatus`]: per app, its pipeline, every env's current release and lock, and the newest
//!   few events and releases (so `status`, `audit --app A --limit 20` and `releases --limit 10`
//!   are answered from one small record). Its size is bounded whatever the history's length.
//!
//! Older releases and audit entries are not copied into a model: the log answers them itself,
//! newest first, through its per-app index (`EventStore::read_app_back`).

use crate::audit::AuditEntry;
use chrono::{DateTime, Utc};
use hoist_engine::{Drift, EnvName, Envelope, Event, Lock, Pin, ReleaseRecord, Rollout};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How many of an app's newest events its status keeps for `audit`.
pub const RECENT_EVENTS: usize = 32;
/// How many of an env's newest releases its status keeps for `releases`.
pub const RECENT_RELEASES: usize = 16;

/// One env of an app, now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvStatus {
    /// How many releases the env has had (its current version).
    pub release_count: u64,
    /// The newest releases, oldest first; the last is the current one.
    pub recent: VecDeque<ReleaseRecord>,
    pub lock: Option<Lock>,
    /// The last outcome of applying a release to the env's target: `applied_version`, `health`.
    #[serde(default)]
    pub rollout: Option<Rollout>,
    // issue 16
    #[serde(default)]
    pub pin: Option<Pin>,
    /// The drift recorded and not healed since.
    #[serde(default)]
    pub drift: Option<Drift>,
}

impl EnvStatus {
    pub fn current(&self) -> Option<&ReleaseRecord> {
        self.recent.back()
    }
}

/// One app, now: the read model behind `status`, and the head of its history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    pub pipeline: Vec<EnvName>,
    pub created_at: Option<DateTime<Utc>>,
    pub envs: BTreeMap<EnvName, EnvStatus>,
    /// Global sequence of the app's last commit.
    pub last_seq: u64,
    pub event_count: u64,
    /// Events whose body this version does not know.
    pub skipped_unknown: u64,
    /// The newest events, oldest first.
    pub recent: VecDeque<AuditEntry>,
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, bound: usize) {
    if queue.len() == bound {
        queue.pop_front();
    }
    queue.push_back(item);
}

impl AppStatus {
    pub fn exists(&self) -> bool {
        self.created_at.is_some()
    }

    /// Folds one event of this app, the envelope stored in log entry `seq`, taking it (its
    /// release and names move into the model). Infallible and rule-free, like the engine's
    /// `AppState::apply`, whose answers it must give.
    pub fn apply(&mut self, seq: u64, envelope: Envelope) {
        self.last_seq = seq;
        self.event_count += 1;
        push_bounded(
            &mut self.recent,
            AuditEntry::of_envelope(seq, &envelope),
            RECENT_EVENTS,
        );
        let Envelope {
            at, actor, event, ..
        } = envelope;
        let Some(event) = event else {
            self.skipped_unknown += 1;
            return;
        };
        match event {
            Event::AppCreated { envs } => {
                self.created_at = Some(at);
                self.envs = envs
                    .iter()
                    .map(|e| (e.clone(), EnvStatus::default()))
                    .collect();
                self.pipeline = envs;
            }
            Event::BuildRegistered { .. } => {}
            Event::ReleaseCreated { env, release } => {
                let env = self.envs.entry(env).or_default();
                env.release_count += 1;
                push_bounded(
                    &mut env.recent,
                    ReleaseRecord { release, actor, at },
                    RECENT_RELEASES,
                );
            }
            Event::EnvLocked { env, reason } => {
                self.envs.entry(env).or_default().lock = Some(Lock { actor, reason, at });
            }
            Event::EnvUnlocked { env } => {
                self.envs.entry(env).or_default().lock = None;
            }
            // As in `AppState::apply`: a new target has run nothing yet.
            Event::TargetSet { env, .. } => {
                let env = self.envs.entry(env).or_default();
                env.rollout = None;
                env.drift = None; // issue 16
            }
            Event::PolicySet { .. } => {}
            // issue 14: as in `AppState::apply`: the current release is to be applied again.
            Event::ScaleSet { env, .. }
            | Event::DomainAdded { env, .. }
            | Event::DomainRemoved { env, .. } => {
                self.envs.entry(env).or_default().rollout = None;
            }
            Event::RolloutRecorded {
                env,
                version,
                outcome,
                detail,
            } => {
                let env = self.envs.entry(env).or_default();
                // As in `AppState::apply`: applying a release leaves no drift.
                env.drift = None;
                env.rollout = Some(Rollout {
                    version,
                    outcome,
                    detail,
                    at,
                });
            }
            // The access chain's: kept among its newest events (for `audit`), no app's status.
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
            Event::PipelinePolicySet { .. } | Event::PromotionVerified { .. } => {}
        }
    }
}
