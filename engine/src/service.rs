//! Command handling at the edge of the pure core: read the app, fold, `authorize`, `decide`, stamp envelopes
//! (ids, time, actor, via, hash chain), append with the app's expected sequence; on a conflict re-read,
//! re-decide and retry a bounded number of times. The access commands go the same way on the
//! access chain (`execute_access`).

use crate::access::{self, AccessCommand, AccessState, Pipelines};
use crate::authorize::{self, authorize, Denied, Principal};
use crate::codec::{decode_commit, encode_envelope, CodecError};
use crate::decide::{decide, Command, DomainError};
use crate::event::{Envelope, Event, EventHash, Recorded, ReleaseKind};
use crate::names::{Actor, AppName};
use crate::snapshot::{self, SnapshotStore};
use crate::state::AppState;
use crate::store::{EventStore, StoreError, StoredCommit};
use chrono::{DateTime, SubsecRound, Utc};
use std::ops::ControlFlow;
use uuid::Uuid;

/// How many times a command is re-decided after losing a race for its app.
pub const MAX_ATTEMPTS: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(StoreError),
    #[error("app {app} kept changing under this command: gave up after {attempts} attempts")]
    Conflict { app: AppName, attempts: u32 },
    #[error("log entry {seq} of app {app} cannot be read: {source}")]
    Codec {
        app: AppName,
        seq: u64,
        source: CodecError,
    },
}

impl From<StoreError> for ExecuteError {
    fn from(e: StoreError) -> Self {
        ExecuteError::Store(e)
    }
}

/// Who runs a command, when, and under which id (the idempotency key of its append).
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub command_id: Uuid,
    pub actor: Actor,
    pub at: DateTime<Utc>,
    /// The event that caused this command, when a machine issues it (auto-rollback).
    pub causation_id: Option<Uuid>,
    /// Who is allowed what: authorized before every decision. The store's owner by default,
    /// as every command run directly on a store is (CLI.md).
    pub principal: Principal,
    /// The front end the command came through, recorded in every envelope it makes; `None`
    /// for direct access to the store.
    pub via: Option<String>,
}

impl CommandContext {
    pub fn new(actor: Actor) -> Self {
        CommandContext {
            command_id: Uuid::now_v7(),
            actor,
            at: Utc::now(),
            causation_id: None,
            principal: Principal::Owner,
            via: None,
        }
    }
}

/// What a command did: the app after it, and the events it appended (empty for a no-op).
#[derive(Debug)]
pub struct Executed {
    pub state: AppState,
    pub events: Vec<Recorded>,
}

/// Decodes stored commits into recorded events, naming the first undecodable one.
pub fn decode_commits<'a>(
    commits: impl IntoIterator<Item = &'a StoredCommit>,
) -> Result<Vec<Recorded>, ExecuteError> {
    let mut events = Vec::new();
    for commit in commits {
        let decoded =
            decode_commit(commit.seq, &commit.payload).map_err(|source| ExecuteError::Codec {
                app: commit.app.clone(),
                seq: commit.seq,
                source,
            })?;
        events.extend(decoded);
    }
    Ok(events)
}

/// One app's events, in order.
pub async fn load_events<S: EventStore>(
    store: &S,
    app: &AppName,
) -> Result<Vec<Recorded>, ExecuteError> {
    decode_commits(&store.read_app(app).await?)
}

/// What this store's secrets ask of the key that seals the next one
/// ([`crate::secrets::SecretKey::for_sealing`]): the key a sealed value names (every value is
/// sealed with it, so the newest names it as well as the first), else, when the store holds only
/// values sealed before key ids, one of those (the key must open each), else nothing. Reads newest
/// first: `app`'s own commits, where a secret set again is found in the first window (issue 15:
/// its cost does not grow with the app's history), then the whole log's. In the search for a
/// named key, commits without the sealing's magic bytes are skipped undecoded; values sealed
/// before key ids have no mark, so only a store without named keys is decoded whole.
pub async fn store_secrets<S: EventStore>(
    store: &S,
    app: &AppName,
) -> Result<crate::secrets::StoreSecrets, ExecuteError> {
    use crate::secrets::{sealed_with, StoreSecrets, MAGIC};
    let named = |_: &str, sealed: &[u8]| sealed_with(sealed).map(StoreSecrets::Keyed);
    let with_magic = |c: &&StoredCommit| c.payload.windows(MAGIC.len()).any(|w| w == MAGIC);
    for within in [Some(app), None] {
        let found = newest_first(store, within, |page| {
            first_sealed(page.iter().filter(with_magic), named)
        })
        .await?;
        if let Some(found) = found {
            return Ok(found);
        }
    }
    let unnamed = |config_key: &str, sealed: &[u8]| {
        Some(StoreSecrets::Unnamed {
            config_key: config_key.into(),
            sealed: sealed.to_vec(),
        })
    };
    for within in [Some(app), None] {
        if let Some(found) = newest_first(store, within, |page| first_sealed(page, unnamed)).await?
        {
            return Ok(found);
        }
    }
    Ok(StoreSecrets::None)
}

/// The commits a newest-first search reads first; each read after reads four times more.
const FIRST_WINDOW: usize = 64;

/// The first `Some` that `find` gives for windows of commits read newest first (each window
/// newest first): `app`'s own commits when given, else the whole log's.
async fn newest_first<S: EventStore, T>(
    store: &S,
    app: Option<&AppName>,
    mut find: impl FnMut(&[StoredCommit]) -> Result<Option<T>, ExecuteError>,
) -> Result<Option<T>, ExecuteError> {
    let through = store.last_seq().await?;
    crate::store::read_back(store, app, through, FIRST_WINDOW, |page| {
        Ok(find(&page)?.map_or(ControlFlow::Continue(()), ControlFlow::Break))
    })
    .await
}

/// What `pick` makes of the first sealed value (config key, sealed bytes) in `commits` it takes.
fn first_sealed<'a>(
    commits: impl IntoIterator<Item = &'a StoredCommit>,
    pick: impl Fn(&str, &[u8]) -> Option<crate::secrets::StoreSecrets>,
) -> Result<Option<crate::secrets::StoreSecrets>, ExecuteError> {
    use crate::event::ConfigValue;
    for recorded in decode_commits(commits)? {
        if let Some(Event::ReleaseCreated { release, .. }) = &recorded.envelope.event {
            let found = release.config.iter().find_map(|(key, value)| match value {
                ConfigValue::Sealed(sealed) => pick(key.as_str(), sealed),
                ConfigValue::Plain(_) => None,
            });
            if found.is_some() {
                return Ok(found);
            }
        }
    }
    Ok(None)
}

/// One app's current state.
pub async fn load_app<S: EventStore>(store: &S, app: &AppName) -> Result<AppState, ExecuteError> {
    let mut state = AppState::default();
    refresh(store, app, &mut state).await?;
    Ok(state)
}

/// Brings `state`, a fold of `app`'s commits up to `state.last_seq`, up to date with the log:
/// reads and applies only the commits after it.
pub async fn refresh<S: EventStore>(
    store: &S,
    app: &AppName,
    state: &mut AppState,
) -> Result<(), ExecuteError> {
    let commits = store.read_app_after(app, state.last_seq).await?;
    for recorded in decode_commits(&commits)? {
        state.apply_owned(recorded);
    }
    Ok(())
}

pub async fn execute<S: EventStore>(
    store: &S,
    app: &AppName,
    command: &Command,
    ctx: &CommandContext,
) -> Result<Executed, ExecuteError> {
    let mut state = AppState::default();
    let events = execute_cached(store, app, command, ctx, &mut state).await?;
    Ok(Executed { state, events })
}

/// `execute` on a state the caller keeps between commands (a long-running process, `hoist
/// bench`), so a command reads only the app's commits it has not folded yet instead of its whole
/// history, and nothing before its first try when the state is non-empty (the append's expected
/// sequence is the check). `state` must be a fold of `app`'s commits (or empty); on return it is the app after
/// the command, whatever the outcome. Returns the events appended (empty for a no-op).
pub async fn execute_cached<S: EventStore>(
    store: &S,
    app: &AppName,
    command: &Command,
    ctx: &CommandContext,
    state: &mut AppState,
) -> Result<Vec<Recorded>, ExecuteError> {
    // The first try trusts a non-empty cached state without reading the log: the append's
    // expected sequence checks it (a stale state comes back as a conflict), which saves a read
    // per command. Any other outcome of deciding on it (a rejection, a no-op) is confirmed on a
    // refreshed state before it is reported.
    let mut trusted = state.last_seq > 0;
    for _ in 0..MAX_ATTEMPTS {
        let unchecked = std::mem::take(&mut trusted);
        if !unchecked {
            refresh(store, app, state).await?;
        }
        // A state restored from a snapshot gets back the records this command reads.
        hydrate(store, app, command, state).await?;
        // Authorized on the state it is decided on (`promote` goes to the env after its source).
        let (action, scope) = authorize::required(app, command, state);
        if let Err(denied) = authorize(&ctx.principal, &action, &scope) {
            if unchecked {
                continue;
            }
            return Err(denied.into());
        }
        let events = match decide(app, state, command) {
            Ok(events) if !events.is_empty() => events,
            _ if unchecked => continue,
            Ok(_) => return Ok(vec![]),
            Err(e) => return Err(e.into()),
        };
        match append_stamped(store, app, state.last_seq, state.last_hash, events, ctx).await? {
            Appended::Stored(recorded) => {
                for event in &recorded {
                    state.apply_mut(event);
                }
                return Ok(recorded);
            }
            Appended::Duplicate(seq) => {
                // An earlier try of this very command was stored: report that commit, and the
                // app as the log has it (refreshing applies each commit once, so its releases
                // are not counted twice).
                refresh(store, app, state).await?;
                return stored_commit(store, app, seq).await;
            }
            Appended::Conflict => continue,
        }
    }
    Err(ExecuteError::Conflict {
        app: app.clone(),
        attempts: MAX_ATTEMPTS,
    })
}

/// How many events a snapshot may fall behind its app before a command saves a new one: the
/// longest tail a command folds on top of a snapshot (issue 15).
pub const SNAPSHOT_EVERY: u64 = 64;

/// `execute` starting from `app`'s snapshot in `snapshots` (when the log confirms it) plus the
/// commits after it, instead of the app's whole history; saves a new snapshot afterwards when
/// the one it started from is [`SNAPSHOT_EVERY`] events behind or absent. A snapshot that cannot
/// be saved does not fail the command: the error comes back beside its outcome.
pub async fn execute_snapshotted<S: EventStore>(
    store: &S,
    snapshots: &dyn SnapshotStore,
    app: &AppName,
    command: &Command,
    ctx: &CommandContext,
) -> Result<(Executed, Option<String>), ExecuteError> {
    let mut state = restore(store, snapshots, app).await?;
    let restored_events = state.event_count;
    refresh(store, app, &mut state).await?;
    let events = execute_cached(store, app, command, ctx, &mut state).await?;
    let behind = state.event_count.saturating_sub(restored_events);
    let saved = if state.exists() && behind >= SNAPSHOT_EVERY {
        snapshots.save(app, &snapshot::encode(app, &state)).err()
    } else {
        None
    };
    Ok((Executed { state, events }, saved))
}

/// `app`'s state as its snapshot in `snapshots` has it, when the log confirms the snapshot (its
/// entry at the snapshot's sequence is this app's and ends with the snapshot's hash); else an
/// empty state, to be folded from the log. Not refreshed: the commits after it are the caller's.
pub async fn restore<S: EventStore>(
    store: &S,
    snapshots: &dyn SnapshotStore,
    app: &AppName,
) -> Result<AppState, ExecuteError> {
    let Some(state) = snapshots
        .load(app)
        .and_then(|bytes| snapshot::decode(app, &bytes))
    else {
        return Ok(AppState::default());
    };
    let Some(hash) = state.last_hash else {
        return Ok(AppState::default());
    };
    let confirmed = match store.read_commit(state.last_seq).await? {
        Some(commit) if commit.app == *app => decode_commits([&commit])
            .ok()
            .and_then(|events| events.last().map(|e| e.hash))
            .is_some_and(|last| last == hash),
        _ => false,
    };
    Ok(if confirmed {
        state
    } else {
        AppState::default()
    })
}

/// Reads back into `state` the records `command` needs that a state restored from a snapshot
/// left out (`snapshot::needed`; nothing for a state folded whole).
async fn hydrate<S: EventStore>(
    store: &S,
    app: &AppName,
    command: &Command,
    state: &mut AppState,
) -> Result<(), ExecuteError> {
    for seq in snapshot::needed(state, command) {
        let Some(commit) = store.read_commit(seq).await? else {
            continue;
        };
        if commit.app != *app {
            continue;
        }
        for recorded in decode_commits([&commit])? {
            snapshot::hydrate(state, recorded);
        }
    }
    Ok(())
}

/// What became of one try at appending a command's events.
enum Appended {
    /// Stored as these events.
    Stored(Vec<Recorded>),
    /// An earlier try of the same command was stored, at this sequence.
    Duplicate(u64),
    /// The chain moved on since it was read: decide again.
    Conflict,
}

/// Stamps `events` into envelopes of `chain` (ids, time, actor, via, causation, each linked to
/// the previous event's hash from `last_hash`) and appends them as one commit, expecting the
/// chain's last sequence to be `last_seq`.
async fn append_stamped<S: EventStore>(
    store: &S,
    chain: &AppName,
    last_seq: u64,
    last_hash: Option<EventHash>,
    events: Vec<Event>,
    ctx: &CommandContext,
) -> Result<Appended, ExecuteError> {
    // Each envelope is encoded once: its bytes are hashed into the chain and stored as is.
    let mut prev_hash = last_hash;
    let mut encoded = Vec::with_capacity(events.len());
    let mut envelopes = Vec::with_capacity(events.len());
    // An auto-rollback is decided in the commit of the failed rollout it answers: that
    // rollout event is its cause.
    let mut rollout_id = None;
    for event in events {
        let id = Uuid::now_v7();
        let causation_id = match &event {
            Event::ReleaseCreated { release, .. } if release.kind == ReleaseKind::Rollback => {
                rollout_id.or(ctx.causation_id)
            }
            _ => ctx.causation_id,
        };
        if matches!(event, Event::RolloutRecorded { .. }) {
            rollout_id = Some(id);
        }
        let envelope = Envelope {
            id,
            app: chain.clone(),
            // The log keeps microseconds: the envelope reported must be the one stored.
            at: ctx.at.trunc_subsecs(6),
            actor: ctx.actor.clone(),
            via: ctx.via.clone(),
            correlation_id: ctx.command_id,
            causation_id,
            prev_hash,
            event: Some(event),
        };
        let bytes = encode_envelope(&envelope);
        let hash = EventHash::of(&bytes);
        prev_hash = Some(hash);
        encoded.push(bytes);
        envelopes.push((hash, envelope));
    }
    let payload = hoist_proto::join_commit(&encoded);
    match store.append(chain, last_seq, ctx.command_id, payload).await {
        Ok(appended) if appended.duplicate => Ok(Appended::Duplicate(appended.seq)),
        Ok(appended) => Ok(Appended::Stored(
            envelopes
                .into_iter()
                .map(|(hash, envelope)| Recorded {
                    seq: appended.seq,
                    hash,
                    envelope,
                })
                .collect(),
        )),
        Err(StoreError::Conflict { .. }) => Ok(Appended::Conflict),
        Err(e) => Err(e.into()),
    }
}

/// The events of `chain`'s commit at log sequence `seq`.
async fn stored_commit<S: EventStore>(
    store: &S,
    chain: &AppName,
    seq: u64,
) -> Result<Vec<Recorded>, ExecuteError> {
    let stored = store.read_app_after(chain, seq.saturating_sub(1)).await?;
    decode_commits(stored.iter().filter(|c| c.seq == seq))
}

/// What an access command did: the access chain after it, and the events appended (empty for
/// a no-op).
#[derive(Debug)]
pub struct ExecutedAccess {
    pub state: AccessState,
    pub events: Vec<Recorded>,
}

/// The access chain, folded.
pub async fn load_access<S: EventStore>(store: &S) -> Result<AccessState, ExecuteError> {
    let mut state = AccessState::default();
    refresh_access(store, &mut state).await?;
    Ok(state)
}

/// Brings `state`, a fold of the access chain up to `state.last_seq`, up to date with the log.
pub async fn refresh_access<S: EventStore>(
    store: &S,
    state: &mut AccessState,
) -> Result<(), ExecuteError> {
    let commits = store
        .read_app_after(&AppName::access(), state.last_seq)
        .await?;
    for recorded in decode_commits(&commits)? {
        state.apply_owned(recorded);
    }
    Ok(())
}

/// Runs an access command: authorized for the context's principal, decided on the access chain
/// and the apps its scope names, appended to the access chain with its expected sequence,
/// re-decided on a conflict.
pub async fn execute_access<S: EventStore>(
    store: &S,
    command: &AccessCommand,
    ctx: &CommandContext,
) -> Result<ExecutedAccess, ExecuteError> {
    access::authorize_command(&ctx.principal, command)?;
    // Read once: apps are never removed and their pipelines never change.
    let apps = named_apps(store, command).await?;
    let chain = AppName::access();
    let mut state = AccessState::default();
    for _ in 0..MAX_ATTEMPTS {
        refresh_access(store, &mut state).await?;
        let events = access::decide(&state, &apps, command)?;
        if events.is_empty() {
            return Ok(ExecutedAccess {
                state,
                events: vec![],
            });
        }
        match append_stamped(store, &chain, state.last_seq, state.last_hash, events, ctx).await? {
            Appended::Stored(recorded) => {
                for event in &recorded {
                    state.apply_mut(event);
                }
                return Ok(ExecutedAccess {
                    state,
                    events: recorded,
                });
            }
            Appended::Duplicate(seq) => {
                refresh_access(store, &mut state).await?;
                let events = stored_commit(store, &chain, seq).await?;
                return Ok(ExecutedAccess { state, events });
            }
            Appended::Conflict => continue,
        }
    }
    Err(ExecuteError::Conflict {
        app: chain,
        attempts: MAX_ATTEMPTS,
    })
}

/// The apps a grant's (or a new hook's) scope may name, with their pipelines: the one it names,
/// or, for an env of every app, every app. Nothing for the other commands.
async fn named_apps<S: EventStore>(
    store: &S,
    command: &AccessCommand,
) -> Result<Pipelines, ExecuteError> {
    let (app, env) = match command {
        AccessCommand::Grant { grant, .. } => (&grant.app, &grant.env),
        AccessCommand::AddHook { hook } => (&hook.app, &hook.env),
        _ => return Ok(Pipelines::new()),
    };
    let apps = match (app, env) {
        (Some(app), _) => vec![app.clone()],
        (None, Some(_)) => store.apps().await?,
        (None, None) => vec![],
    };
    let mut pipelines = Pipelines::new();
    for app in apps.into_iter().filter(|app| !app.is_access()) {
        let state = load_app(store, &app).await?;
        if state.exists() {
            pipelines.insert(app, state.pipeline);
        }
    }
    Ok(pipelines)
}
