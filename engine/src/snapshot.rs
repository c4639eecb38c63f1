//! Snapshots of an app's decide state (issue 15), as pure functions: what a snapshot keeps, how
//! it is encoded, which log entries a command needs read back into a state restored from one, and
//! how they go in. `service` loads, checks and saves them through a [`SnapshotStore`], which
//! `hoist-stores` implements; the engine does no I/O.
//!
//! A snapshot keeps `AppState` whole but for the records history makes long: each env keeps its
//! current and last healthy release, and the app the builds of those; every other release and
//! build is only indexed (`EnvState::release_seqs`, `AppState::build_seqs`: where in the log it
//! is). Those indexes, and the other parts of the state that grow with history (each env's
//! `promoted`, the app's `image_builds`), are kept in the compact forms of [`crate::index`] and stored as their bytes,
//! after a JSON head holding the rest: loading and saving a snapshot copies them without
//! walking them, so it costs about the same at 20k events as at 1k (`cargo bench --bench log --
//! snapshot`). Before deciding, [`needed`] names the log entries holding the records a command
//! reads and [`hydrate`] puts them back: `decide` on snapshot + tail + those entries answers as on
//! the whole history (proptest in `engine/tests/fold.rs`).
//!
//! **Invariant**: a snapshot is a cache. It is never trusted past what the log says: `service`
//! takes one only when the log's entry at its sequence is this app's and ends with its hash
//! (`service::restore`); anything else (absent, damaged, foreign, past the log's end) is ignored
//! and the state folded from the log.

use crate::decide::{Artifact, Command};
use crate::event::{Build, Event, Recorded};
use crate::index::{put_varint, take, varint, BuildSeqs, ImageBuilds, Promoted, ReleaseSeqs};
use crate::names::{AppName, BuildId, ReleaseVersion};
use crate::state::{AppState, ReleaseRecord};
use serde::{Deserialize, Serialize};

/// Bumped whenever what a snapshot holds changes meaning: snapshots of another format are
/// ignored (folded again), never misread.
/// 2: the indexes that grow with history in binary after a JSON head (issue 15's flat cost).
pub const FORMAT: u32 = 2;

/// Where snapshots are kept: one per app, replaced whole. Implementations never fail a command:
/// what cannot be read is `None`, what cannot be written is an error the caller only reports.
pub trait SnapshotStore: Send + Sync {
    /// The bytes last saved for `app`, if any can be read.
    fn load(&self, app: &AppName) -> Option<Vec<u8>>;
    /// Replaces `app`'s snapshot with `snapshot`, atomically: a reader sees the old or the new.
    fn save(&self, app: &AppName, snapshot: &[u8]) -> Result<(), String>;
}

/// No snapshots: every command folds its app's history (tests, one-off tools).
pub struct NoSnapshots;

impl SnapshotStore for NoSnapshots {
    fn load(&self, _: &AppName) -> Option<Vec<u8>> {
        None
    }
    fn save(&self, _: &AppName, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot<S> {
    format: u32,
    app: AppName,
    state: S,
}

/// `state` of `app` without the records `decide` can do without (see the module doc), encoded:
///
/// ```text
/// snapshot = format:u32le  varint(len) head  (release_seqs promoted){per env}  build_seqs
///            image_builds
/// head     = JSON of {format, app, state}, the state without its indexes (`crate::index`)
/// ```
///
/// The indexes grow with history; they are stored as the bytes they are kept in, copied in and
/// out without being walked, so a snapshot loads and saves in about the same time at any length.
pub fn encode(app: &AppName, state: &AppState) -> Vec<u8> {
    let snapshot = Snapshot {
        format: FORMAT,
        app: app.clone(),
        state: trimmed(state),
    };
    let head = serde_json::to_vec(&snapshot).expect("a state encodes as JSON");
    let mut bytes = Vec::with_capacity(head.len() + 64);
    bytes.extend_from_slice(&FORMAT.to_le_bytes());
    put_varint(&mut bytes, head.len() as u64);
    bytes.extend_from_slice(&head);
    for env_state in state.envs.values() {
        env_state.release_seqs.encode(&mut bytes);
        env_state.promoted.encode(&mut bytes);
    }
    state.build_seqs.encode(&mut bytes);
    state.image_builds.encode(&mut bytes);
    bytes
}

/// The state `bytes` hold, when they are a snapshot of `app` in this format.
pub fn decode(app: &AppName, bytes: &[u8]) -> Option<AppState> {
    let (format, rest) = bytes.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*format) != FORMAT {
        return None;
    }
    let mut at = 0;
    let len = varint(rest, &mut at)?;
    let head = take(rest, &mut at, len)?;
    let snapshot: Snapshot<AppState> = serde_json::from_slice(head).ok()?;
    if snapshot.format != FORMAT || snapshot.app != *app {
        return None;
    }
    let mut state = snapshot.state;
    for env_state in state.envs.values_mut() {
        env_state.release_seqs = ReleaseSeqs::decode(rest, &mut at)?;
        env_state.promoted = Promoted::decode(rest, &mut at)?;
    }
    state.build_seqs = BuildSeqs::decode(rest, &mut at)?;
    state.image_builds = ImageBuilds::decode(rest, &mut at)?;
    (at == rest.len()).then_some(state)
}

/// `state` holding, of its releases, each env's current and last healthy one, and of its builds
/// those of the releases kept.
pub fn trimmed(state: &AppState) -> AppState {
    let mut kept = state.clone();
    for env_state in kept.envs.values_mut() {
        let hot = [
            env_state.current().map(|r| r.release.version),
            env_state.last_healthy,
        ];
        env_state
            .releases
            .retain(|r| hot.contains(&Some(r.release.version)));
    }
    let builds: std::collections::BTreeSet<&BuildId> = kept
        .envs
        .values()
        .flat_map(|e| &e.releases)
        .filter_map(|r| r.release.build.as_ref().map(|b| &b.id))
        .collect();
    kept.builds = state
        .builds
        .iter()
        .filter(|(id, _)| builds.contains(id))
        .map(|(id, build)| (id.clone(), build.clone()))
        .collect();
    kept
}

/// The log sequences of the commits holding the records `decide` reads for `command` that
/// `state` does not hold (none for a state folded from the whole history): the releases a
/// command names or goes back to, each env's current and last healthy one, the build it deploys
/// or registers.
pub fn needed(state: &AppState, command: &Command) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut release = |env, version: Option<ReleaseVersion>| {
        let (Some(env_state), Some(version)) = (state.env(env), version) else {
            return;
        };
        if env_state.has_release(version) && env_state.release(version).is_none() {
            seqs.extend(env_state.release_seqs.get(version));
        }
    };
    for (env, env_state) in &state.envs {
        release(env, env_state.last_healthy);
    }
    match command {
        Command::Rollback { env, to } => release(
            env,
            to.or_else(|| state.env(env)?.current()?.release.version.previous()),
        ),
        Command::RecordRollout { env, version, .. }
        | Command::RecordDrift { env, version, .. }
        | Command::RecordHealed { env, version, .. } => release(env, Some(*version)),
        Command::AutoPromote { from, version, .. } => release(from, Some(*version)),
        _ => {}
    }
    let build = match command {
        Command::RegisterBuild {
            image,
            processes,
            release_command,
            ..
        } => Some(Build::id_for(image, processes, release_command.as_deref())),
        Command::Deploy { artifact, .. } => match artifact {
            Artifact::Image(image) => state.image_build(image),
            Artifact::Build(id) => Some(id.clone()),
        },
        _ => None,
    };
    if let Some(id) = build.filter(|id| !state.builds.contains_key(id)) {
        seqs.extend(state.build_seqs.get(&id));
    }
    seqs.sort_unstable();
    seqs.dedup();
    seqs
}

/// Puts the records of `recorded` (an event of a commit [`needed`] named) that `state` lacks
/// back into it: a release of an env, a build. Nothing else of the state changes.
pub fn hydrate(state: &mut AppState, recorded: Recorded) {
    let envelope = recorded.envelope;
    match envelope.event {
        Some(Event::ReleaseCreated { env, release }) => {
            if let Some(build) = &release.build {
                if state.build_seqs.contains_key(&build.id) {
                    state
                        .builds
                        .entry(build.id.clone())
                        .or_insert_with(|| build.clone());
                }
            }
            let Some(env_state) = state.envs.get_mut(&env) else {
                return;
            };
            if !env_state.has_release(release.version) {
                return;
            }
            let version = release.version;
            if let Err(at) = env_state
                .releases
                .binary_search_by_key(&version, |r| r.release.version)
            {
                env_state.releases.insert(
                    at,
                    ReleaseRecord {
                        release,
                        actor: envelope.actor,
                        at: envelope.at,
                    },
                );
            }
        }
        Some(Event::BuildRegistered { build }) if state.build_seqs.contains_key(&build.id) => {
            state.builds.entry(build.id.clone()).or_insert(build);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Snapshots saved before format 2 (JSON from the first byte, `format: 1`) are ignored, not
    /// misread: the app is folded from the log and a snapshot of this format saved again.
    #[test]
    fn a_snapshot_of_format_1_is_ignored() {
        let app: AppName = "api".parse().unwrap();
        let state = AppState {
            pipeline: vec!["staging".parse().unwrap()],
            last_seq: 7,
            ..AppState::default()
        };
        let v1 = serde_json::json!({ "format": 1, "app": "api", "state": state });
        assert_eq!(decode(&app, &serde_json::to_vec(&v1).unwrap()), None);
        assert_eq!(decode(&app, &encode(&app, &state)), Some(state));
        assert_eq!(
            decode(&"web".parse().unwrap(), &encode(&app, &AppState::default())),
            None
        );
    }
}
