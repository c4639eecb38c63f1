//! The read models as pure folds: what each event changes, with no I/O. `store` persists them.
//!
//! - [`AppStatus`]: per app, its pipeline, every env's current release and lock, and the newest
//!   few events and releases (so `status`, `audit --app A --limit 20` and `releases --limit 10`
//!   are answered from one small record). Its size is bounded whatever the history's length.
//! - [`history_rows`]: the release history and the audit index, one row per event (append-only),
//!   stored in partitions of consecutive log sequences.

use crate::audit::AuditEntry;
use chrono::{DateTime, Utc};
use hoist_engine::{
    AppName, EnvName, Event, Lock, Recorded, ReleaseRecord, ReleaseVersion, Rollout,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    /// The history partitions holding this app's events: where older answers are.
    pub partitions: BTreeSet<u64>,
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

    /// Folds one event of this app, stored in history partition `partition`. Infallible and
    /// rule-free, like the engine's `AppState::apply`, whose answers it must give.
    pub fn apply(&mut self, recorded: &Recorded, partition: u64) {
        self.last_seq = recorded.seq;
        self.event_count += 1;
        self.partitions.insert(partition);
        push_bounded(&mut self.recent, AuditEntry::of(recorded), RECENT_EVENTS);
        let envelope = &recorded.envelope;
        let Some(event) = &envelope.event else {
            self.skipped_unknown += 1;
            return;
        };
        match event {
            Event::AppCreated { envs } => {
                self.pipeline = envs.clone();
                self.created_at = Some(envelope.at);
                self.envs = envs
                    .iter()
                    .map(|e| (e.clone(), EnvStatus::default()))
                    .collect();
            }
            Event::BuildRegistered { .. } => {}
            Event::ReleaseCreated { env, release } => {
                let env = self.envs.entry(env.clone()).or_default();
                env.release_count += 1;
                let record = ReleaseRecord {
                    release: release.clone(),
                    actor: envelope.actor.clone(),
                    at: envelope.at,
                };
                push_bounded(&mut env.recent, record, RECENT_RELEASES);
            }
            Event::EnvLocked { env, reason } => {
                self.envs.entry(env.clone()).or_default().lock = Some(Lock {
                    actor: envelope.actor.clone(),
                    reason: reason.clone(),
                    at: envelope.at,
                });
            }
            Event::EnvUnlocked { env } => {
                self.envs.entry(env.clone()).or_default().lock = None;
            }
            // As in `AppState::apply`: a new target has run nothing yet.
            Event::TargetSet { env, .. } => {
                self.envs.entry(env.clone()).or_default().rollout = None;
            }
            Event::PolicySet { .. } => {}
            Event::RolloutRecorded {
                env,
                version,
                outcome,
                detail,
            } => {
                self.envs.entry(env.clone()).or_default().rollout = Some(Rollout {
                    version: *version,
                    outcome: *outcome,
                    detail: detail.clone(),
                    at: envelope.at,
                });
            }
        }
    }
}

/// Keys of the history partitions. Big-endian numbers, so keys sort in log and version order.
pub mod keys {
    use super::*;

    /// An audit entry: `E` seq index-in-commit.
    pub fn event(seq: u64, index: u16) -> Vec<u8> {
        let mut key = Vec::with_capacity(11);
        key.push(b'E');
        key.extend_from_slice(&seq.to_be_bytes());
        key.extend_from_slice(&index.to_be_bytes());
        key
    }

    /// The prefix of every audit entry.
    pub const EVENTS: &[u8] = b"E";

    /// An app's events, for `audit --app`: `A` app `\0`, then the event key.
    pub fn app_events(app: &AppName) -> Vec<u8> {
        let mut key = vec![b'A'];
        key.extend_from_slice(app.as_str().as_bytes());
        key.push(0);
        key
    }

    /// An env's releases: `R` app `\0` env `\0`, then the version.
    pub fn env_releases(app: &AppName, env: &EnvName) -> Vec<u8> {
        let mut key = vec![b'R'];
        key.extend_from_slice(app.as_str().as_bytes());
        key.push(0);
        key.extend_from_slice(env.as_str().as_bytes());
        key.push(0);
        key
    }

    pub fn release(app: &AppName, env: &EnvName, version: ReleaseVersion) -> Vec<u8> {
        let mut key = env_releases(app, env);
        key.extend_from_slice(&version.get().to_be_bytes());
        key
    }
}

/// The history rows of one event (the `index`th of its commit): its audit entry, its place in
/// its app's index and, for a release, the release. Values are JSON.
pub fn history_rows(recorded: &Recorded, index: u16, rows: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    let envelope = &recorded.envelope;
    let event_key = keys::event(recorded.seq, index);
    let entry = AuditEntry::of(recorded);
    rows.push((
        event_key.clone(),
        serde_json::to_vec(&entry).expect("audit entries serialize"),
    ));
    let mut app_key = keys::app_events(&envelope.app);
    app_key.extend_from_slice(&event_key);
    rows.push((app_key, Vec::new()));
    if let Some(Event::ReleaseCreated { env, release }) = &envelope.event {
        let record = ReleaseRecord {
            release: release.clone(),
            actor: envelope.actor.clone(),
            at: envelope.at,
        };
        rows.push((
            keys::release(&envelope.app, env, release.version),
            serde_json::to_vec(&record).expect("releases serialize"),
        ));
    }
}
