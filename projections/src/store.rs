//! The projection store: the read models of `model`, persisted through the engine's
//! [`ModelStore`] (sled databases in a directory, from `hoist-stores`), each with its checkpoint
//! (the last log sequence folded into it), caught up from the log on demand.
//!
//! Its databases:
//!
//! | name | holds | size |
//! |---|---|---|
//! | `state` | `c` → checkpoint; `p` → partition size; `v` → row format; `s` app → [`AppStatus`] (JSON) | apps, not history |
//! | `history/p<id>` | rows of [`history_row`] (one per log entry: its commit, protobuf) for log sequences `id·P+1 ..= (id+1)·P`, and `K` → its checkpoint | ≤ P commits each |
//!
//! **Invariants**
//! - A model and its checkpoint change in one batch: after a crash, each database holds a
//!   prefix of the fold and says which. Catch-up resumes each from its own checkpoint.
//! - Every history partition but the newest is complete: it is flushed before the next is opened.
//! - The query path opens `state` and, only when the answer is older than what an
//!   [`AppStatus`] keeps, the few partitions that hold the app: never the whole history, and never
//!   the log when the checkpoint equals the log's last sequence (which the embedded store answers
//!   from a small file).
//!
//! The databases are disposable: the log is the truth. A checkpoint past the log's end means the
//! log was replaced, and the models are rebuilt; a database the model store finds damaged is
//! thrown away and folded again (only then: a store that is unavailable is reported).

use crate::audit::{AuditEntry, AuditQuery};
use crate::model::{history_row, keys, AppStatus};
use hoist_engine::codec::{decode_envelopes, CodecError};
use hoist_engine::models::{Batch, ModelDb, ModelError, ModelStore, Order, Row};
use hoist_engine::store::{EventStore, StoreError};
use hoist_engine::{AppName, EnvName, Envelope, Event, ReleaseRecord};
use std::collections::BTreeMap;

/// Log sequences per history partition: small enough that opening one stays cheap (FACTS: sled
/// open ≈5 ms up to a few thousand entries), large enough that there are few.
pub const PARTITION_SIZE: u64 = 4096;
/// Commits read from the log per catch-up step (one batch per database per step).
const PAGE: usize = 2048;

const CHECKPOINT: &[u8] = b"c";
const PARTITION_SIZE_KEY: &[u8] = b"p";
const STATUS_PREFIX: u8 = b's';
const PARTITION_CHECKPOINT: &[u8] = b"K";
const FORMAT_KEY: &[u8] = b"v";
/// The layout of the rows; models written in another are rebuilt. 3: audit entries carry `via`
/// (2: one protobuf row per log entry; 1: three JSON rows per event).
const FORMAT: u64 = 3;
/// The database of the state model.
const STATE: &str = "state";
/// The group of the history partitions' databases.
const HISTORY: &str = "history";

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("log entry {seq} cannot be read: {source}")]
    Codec { seq: u64, source: CodecError },
    /// The model store is unavailable (or holds a row this version cannot read).
    #[error("projection store {at}: {message}")]
    Io { at: String, message: String },
    /// The model store found a database damaged: the model is thrown away and folded again.
    #[error("projection store {at} is damaged: {message}")]
    Damaged { at: String, message: String },
    #[error("disk full: the read models in {at} need {needed} bytes free to be written, {free} are; free some space and run the command again")]
    DiskFull { at: String, free: u64, needed: u64 },
}

impl From<ModelError> for ProjectionError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Damaged { at, message } => ProjectionError::Damaged { at, message },
            ModelError::Full { at, free, needed } => ProjectionError::DiskFull { at, free, needed },
            ModelError::Unavailable { at, message } => ProjectionError::Io { at, message },
        }
    }
}

/// One stored row of `dump`: (database, key, value).
pub type DumpRow = (String, Vec<u8>, Vec<u8>);

/// How far a catch-up went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatchUp {
    pub commits: u64,
    pub events: u64,
    /// The checkpoint after it.
    pub checkpoint: u64,
}

/// A history partition: its id and its database, open.
type Partition = (u64, Box<dyn ModelDb>);

pub struct ProjectionStore {
    /// Before `models`: closed before the model store (and a lock it may hold) is let go.
    state: Box<dyn ModelDb>,
    partition_size: u64,
    /// Why a model was found unreadable and thrown away to be folded again, if one was.
    recovered: Option<String>,
    models: Box<dyn ModelStore>,
}

fn decode_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map_or(0, u64::from_be_bytes)
}

fn status_key(app: &AppName) -> Vec<u8> {
    let mut key = vec![STATUS_PREFIX];
    key.extend_from_slice(app.as_str().as_bytes());
    key
}

impl ProjectionStore {
    /// The read models kept in `models` (the caller holds whatever lock guards them: the
    /// embedded store's, or the model store's own). Models written with another partition size
    /// or row format are rebuilt.
    pub fn new(models: Box<dyn ModelStore>, partition_size: u64) -> Result<Self, ProjectionError> {
        // The models are disposable: one that cannot be opened is thrown away and folded again
        // from the log, never left for the user to repair.
        let (state, recovered) = match models.open(STATE) {
            Ok(state) => (state, None),
            Err(e) if e.is_damage() => {
                let e = ProjectionError::from(e);
                models.remove(STATE)?;
                models.remove(HISTORY)?;
                (models.open(STATE)?, Some(e.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        let stored = |key| -> Result<Option<u64>, ProjectionError> {
            Ok(state.get(key)?.map(|v| decode_u64(&v)))
        };
        let stale = stored(PARTITION_SIZE_KEY)? != Some(partition_size)
            || stored(FORMAT_KEY)? != Some(FORMAT);
        let mut store = ProjectionStore {
            state,
            partition_size,
            recovered,
            models,
        };
        if stale {
            store.reset()?;
        }
        Ok(store)
    }

    /// Throws every model away, atomically per database: the history is removed first (a crash
    /// then leaves a state model whose history catches up from nothing), then the state is
    /// emptied in one batch.
    pub fn reset(&mut self) -> Result<(), ProjectionError> {
        self.models.remove(HISTORY)?;
        let mut batch = Batch::default();
        for row in self.state.scan(&[], Order::Ascending) {
            batch.remove(row?.0);
        }
        batch.insert(PARTITION_SIZE_KEY, self.partition_size.to_be_bytes());
        batch.insert(FORMAT_KEY, FORMAT.to_be_bytes());
        self.state.apply(batch)?;
        self.state.flush()?;
        Ok(())
    }

    /// Where the models are kept, for messages.
    pub fn location(&self) -> &str {
        self.models.location()
    }

    fn io(&self, message: impl std::fmt::Display) -> ProjectionError {
        ProjectionError::Io {
            at: self.location().into(),
            message: message.to_string(),
        }
    }

    /// Why a model was found unreadable (and is being folded again from the log), if one was.
    pub fn recovered(&self) -> Option<&str> {
        self.recovered.as_deref()
    }

    /// Folds the whole log into new models beside these and switches them in only once they are
    /// complete: a rebuild cut short leaves the old models as they were.
    pub async fn rebuild<S: EventStore>(
        self,
        log: &S,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<(ProjectionStore, CatchUp), ProjectionError> {
        let ProjectionStore {
            state,
            partition_size,
            models,
            ..
        } = self;
        drop(state);
        let mut fresh = ProjectionStore::new(models.staging()?, partition_size)?;
        let done = fresh.catch_up(log, progress).await?;
        drop(fresh);
        // `state` last: it is absent until the new `history` is in, and with no `state`,
        // everything is folded again, so every step leaves models that open correctly.
        models.switch_in_staging(&[HISTORY, STATE])?;
        let store = ProjectionStore::new(models, partition_size)?;
        Ok((store, done))
    }

    /// The last log sequence folded into the state model.
    pub fn checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(self.state.get(CHECKPOINT)?.map_or(0, |v| decode_u64(&v)))
    }

    fn partition_of(&self, seq: u64) -> u64 {
        seq.saturating_sub(1) / self.partition_size
    }

    /// Existing partition ids, ascending.
    fn partitions(&self) -> Result<Vec<u64>, ProjectionError> {
        let mut ids: Vec<u64> = self
            .models
            .list(HISTORY)?
            .iter()
            .filter_map(|name| name.strip_prefix('p')?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn open_partition(&self, id: u64) -> Result<Box<dyn ModelDb>, ProjectionError> {
        Ok(self.models.open(&format!("{HISTORY}/p{id:010}"))?)
    }

    /// The history's checkpoint and the newest partition, open: the newest partition that has a
    /// checkpoint (one created just before a crash may have none yet).
    fn history_head(&mut self) -> Result<(u64, Option<Partition>), ProjectionError> {
        match self.history_head_as_stored() {
            Err(ProjectionError::Damaged { message, .. }) => {
                // An unreadable partition: the history is folded again from the log.
                self.models.remove(HISTORY)?;
                self.recovered = Some(message);
                Ok((0, None))
            }
            head => head,
        }
    }

    fn history_head_as_stored(&self) -> Result<(u64, Option<Partition>), ProjectionError> {
        let mut newest = None;
        for id in self.partitions()?.into_iter().rev() {
            let db = self.open_partition(id)?;
            let checkpoint = db.get(PARTITION_CHECKPOINT)?.map(|v| decode_u64(&v));
            if newest.is_none() {
                newest = Some((id, db));
            }
            if let Some(checkpoint) = checkpoint {
                return Ok((checkpoint, newest));
            }
        }
        Ok((0, newest))
    }

    /// Brings the state model up to the log's end; the history too when it is behind as well.
    /// Costs one look at the log's last sequence when nothing is new.
    pub async fn catch_up_state<S: EventStore>(
        &mut self,
        log: &S,
    ) -> Result<CatchUp, ProjectionError> {
        let target = log.last_seq().await?;
        let checkpoint = self.checkpoint()?;
        if checkpoint == target {
            return Ok(CatchUp {
                checkpoint,
                ..CatchUp::default()
            });
        }
        self.catch_up_models(log, &mut |_, _| {}, false).await
    }

    /// Brings every model up to the log's end, resuming each from its own checkpoint.
    /// `progress(folded_to, log_end)` is called after each step.
    pub async fn catch_up<S: EventStore>(
        &mut self,
        log: &S,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<CatchUp, ProjectionError> {
        self.catch_up_models(log, progress, true).await
    }

    /// `catch_up`; without `history`, a history behind the state model (one seeded from a
    /// shared snapshot, issue 15) stays behind: only the state model is folded, from its own
    /// checkpoint, and the history catches up when a query needs it (`read_around_history`).
    async fn catch_up_models<S: EventStore>(
        &mut self,
        log: &S,
        progress: &mut (dyn FnMut(u64, u64) + Send),
        history: bool,
    ) -> Result<CatchUp, ProjectionError> {
        let target = log.last_seq().await?;
        let (mut state_cp, (mut history_cp, mut partition)) =
            (self.checkpoint()?, self.history_head()?);
        if state_cp > target || history_cp > target {
            // The log is not the one these models were folded from: start over.
            drop(partition);
            self.models.ensure_room(0)?;
            self.reset()?;
            (state_cp, history_cp, partition) = (0, 0, None);
        }
        let state_only = !history && history_cp < state_cp;
        let folded_to = |state_cp: u64, history_cp: u64| {
            if state_only {
                state_cp
            } else {
                state_cp.min(history_cp)
            }
        };
        let mut done = CatchUp {
            checkpoint: folded_to(state_cp, history_cp),
            ..CatchUp::default()
        };
        let mut next = done.checkpoint + 1;
        let mut statuses: BTreeMap<AppName, AppStatus> = BTreeMap::new();
        let mut rows = Vec::new();
        loop {
            let page = log.read_from(next, PAGE).await?;
            let Some(last) = page.last() else { break };
            next = last.seq + 1;
            // Before anything of the page is written (a partition may be sealed and another
            // created below): rows about as large as the page go to two databases, room for
            // both twice over.
            let page_bytes: u64 = page.iter().map(|c| c.payload.len() as u64).sum();
            self.models.ensure_room(4 * page_bytes)?;
            let mut state_batch = Batch::default();
            for commit in page {
                let envelopes =
                    decode_envelopes(&commit.payload).map_err(|source| ProjectionError::Codec {
                        seq: commit.seq,
                        source,
                    })?;
                let partition_id = self.partition_of(commit.seq);
                if commit.seq > history_cp && !state_only {
                    if partition.as_ref().is_none_or(|(id, _)| *id != partition_id) {
                        if let Some((_, db)) = partition.take() {
                            write_rows(&*db, &mut rows, history_cp)?;
                            // Seal it: only the newest partition may be incomplete.
                            db.flush()?;
                        }
                        partition = Some((partition_id, self.open_partition(partition_id)?));
                    }
                    rows.push(history_row(&commit.app, commit.seq, &commit.payload));
                    history_cp = commit.seq;
                }
                done.commits += 1;
                done.events += envelopes.len() as u64;
                if commit.seq > state_cp {
                    let status = match statuses.get_mut(&commit.app) {
                        Some(status) => status,
                        None => {
                            let loaded = self.status(&commit.app)?.unwrap_or_default();
                            statuses.entry(commit.app.clone()).or_insert(loaded)
                        }
                    };
                    for envelope in envelopes {
                        status.apply(commit.seq, envelope, partition_id);
                    }
                    state_cp = commit.seq;
                }
            }
            for (app, status) in &statuses {
                state_batch.insert(
                    status_key(app),
                    serde_json::to_vec(status).expect("statuses serialize"),
                );
            }
            state_batch.insert(CHECKPOINT, state_cp.to_be_bytes());
            self.state.apply(state_batch)?;
            if let Some((_, db)) = &partition {
                write_rows(&**db, &mut rows, history_cp)?;
            }
            done.checkpoint = folded_to(state_cp, history_cp);
            progress(done.checkpoint, target.max(done.checkpoint));
        }
        if state_cp < target {
            // Nothing up to `target` is a commit (a NATS stream ending in quarantined messages,
            // which reads skip): the state model is current to there, and the next query need
            // not look for them again.
            state_cp = target;
            let mut batch = Batch::default();
            batch.insert(CHECKPOINT, state_cp.to_be_bytes());
            self.state.apply(batch)?;
        }
        if let Some((_, db)) = &partition {
            db.flush()?;
        }
        self.state.flush()?;
        Ok(done)
    }

    /// One app's status, as of the checkpoint.
    pub fn status(&self, app: &AppName) -> Result<Option<AppStatus>, ProjectionError> {
        self.state
            .get(&status_key(app))?
            .map(|v| {
                serde_json::from_slice(&v).map_err(|e| self.io(format!("status of {app}: {e}")))
            })
            .transpose()
    }

    /// Every app's status, by name.
    pub fn statuses(&self) -> Result<Vec<(AppName, AppStatus)>, ProjectionError> {
        self.state
            .scan(&[STATUS_PREFIX], Order::Ascending)
            .map(|kv| {
                let (k, v) = kv?;
                // The access chain has a status too: names as the log holds them.
                let app = std::str::from_utf8(&k[1..])
                    .ok()
                    .and_then(|s| AppName::from_log(s).ok())
                    .ok_or_else(|| self.io("malformed status key"))?;
                let status = serde_json::from_slice(&v)
                    .map_err(|e| self.io(format!("status of {app}: {e}")))?;
                Ok((app, status))
            })
            .collect()
    }

    /// Up to `limit` releases of `app`/`env`, newest first. The caller has caught the models up;
    /// the newest few come from the app's status, older ones from the partitions holding it.
    pub async fn releases<S: EventStore>(
        &mut self,
        log: &S,
        app: &AppName,
        status: &AppStatus,
        env: &EnvName,
        limit: usize,
    ) -> Result<Vec<ReleaseRecord>, ProjectionError> {
        let Some(env_status) = status.envs.get(env) else {
            return Ok(Vec::new());
        };
        let complete = env_status.recent.len() as u64 == env_status.release_count;
        if limit <= env_status.recent.len() || complete {
            return Ok(env_status
                .recent
                .iter()
                .rev()
                .take(limit)
                .cloned()
                .collect());
        }
        if self.read_around_history(log).await? {
            return self
                .newest_in_log(log, Some(app), limit, |_, envelope| match envelope.event {
                    Some(Event::ReleaseCreated { env: of, release }) if of == *env => {
                        Some(ReleaseRecord {
                            release,
                            actor: envelope.actor,
                            at: envelope.at,
                        })
                    }
                    _ => None,
                })
                .await;
        }
        let mut releases = Vec::new();
        for &id in status.partitions.iter().rev() {
            let db = self.open_partition(id)?;
            for kv in db.scan(&keys::app_commits(app), Order::Descending) {
                let (k, v) = kv?;
                for envelope in self.decode_row(&k, &v)?.into_iter().rev() {
                    let Envelope {
                        actor, at, event, ..
                    } = envelope;
                    if let Some(Event::ReleaseCreated { env: of, release }) = event {
                        if of == *env {
                            releases.push(ReleaseRecord { release, actor, at });
                            if releases.len() == limit {
                                return Ok(releases);
                            }
                        }
                    }
                }
            }
        }
        Ok(releases)
    }

    /// Readies the history model for a query, and says whether to read around it instead: a
    /// history a partition or less behind the state model (a process killed between the two
    /// models' batches), or one this process threw away as damaged, is folded now; one further
    /// behind (models seeded from a state model shared on the server: a fresh NATS cache, issue
    /// 15) is left for a full catch-up, and the query reads what it needs from the log.
    async fn read_around_history<S: EventStore>(
        &mut self,
        log: &S,
    ) -> Result<bool, ProjectionError> {
        let behind = self.checkpoint()?.saturating_sub(self.history_head()?.0);
        if behind == 0 {
            return Ok(false);
        }
        if behind <= self.partition_size || self.recovered.is_some() {
            self.catch_up(log, &mut |_, _| {}).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Up to `limit` of what `pick` makes of the envelopes up to the state model's checkpoint,
    /// newest first, read from the log (`app`'s commits only, when given) instead of from a
    /// history model that is behind: a per-app query on a fresh cache costs what its answer
    /// costs, not a fold of the whole log's history. The log is read backwards in windows of
    /// sequences, each four times the last, starting from one partition's worth.
    async fn newest_in_log<S: EventStore, T>(
        &self,
        log: &S,
        app: Option<&AppName>,
        limit: usize,
        mut pick: impl FnMut(u64, Envelope) -> Option<T>,
    ) -> Result<Vec<T>, ProjectionError> {
        let mut found = Vec::new();
        let mut end = self.checkpoint()?;
        let mut window = self.partition_size;
        while end > 0 && found.len() < limit {
            let start = end.saturating_sub(window);
            let commits = match app {
                Some(app) => log.read_app_after(app, start).await?,
                None => log.read_from(start + 1, (end - start) as usize).await?,
            };
            for commit in commits.into_iter().rev().filter(|c| c.seq <= end) {
                for envelope in self
                    .decode_row_of(commit.seq, &commit.payload)?
                    .into_iter()
                    .rev()
                {
                    if let Some(picked) = pick(commit.seq, envelope) {
                        found.push(picked);
                        if found.len() == limit {
                            return Ok(found);
                        }
                    }
                }
            }
            end = start;
            window = window.saturating_mul(4);
        }
        Ok(found)
    }

    fn decode_row_of(&self, seq: u64, payload: &[u8]) -> Result<Vec<Envelope>, ProjectionError> {
        decode_envelopes(payload).map_err(|source| ProjectionError::Codec { seq, source })
    }

    /// The envelopes of one history row.
    fn decode_row(&self, key: &[u8], value: &[u8]) -> Result<Vec<Envelope>, ProjectionError> {
        self.decode_row_of(keys::seq_of(key), value)
    }

    /// Up to `limit` audit entries matching `query`, newest first. With `query.app`, the app's
    /// status answers when its newest events hold enough matches; else the partitions holding
    /// the app are read newest first, and without an app every partition is.
    pub async fn audit<S: EventStore>(
        &mut self,
        log: &S,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ProjectionError> {
        let mut found = Vec::new();
        let partitions: Vec<u64> = match &query.app {
            Some(app) => {
                let Some(status) = self.status(app)? else {
                    return Ok(found);
                };
                found.extend(
                    status
                        .recent
                        .iter()
                        .rev()
                        .filter(|e| query.matches(e))
                        .take(limit)
                        .cloned(),
                );
                if found.len() == limit || status.recent.len() as u64 == status.event_count {
                    return Ok(found);
                }
                found.clear();
                if self.read_around_history(log).await? {
                    return self
                        .newest_in_log(log, Some(app), limit, |seq, envelope| {
                            let entry = AuditEntry::of_envelope(seq, &envelope);
                            query.matches(&entry).then_some(entry)
                        })
                        .await;
                }
                status.partitions.iter().rev().copied().collect()
            }
            None => {
                if self.read_around_history(log).await? {
                    return self
                        .newest_in_log(log, None, limit, |seq, envelope| {
                            let entry = AuditEntry::of_envelope(seq, &envelope);
                            query.matches(&entry).then_some(entry)
                        })
                        .await;
                }
                self.partitions()?.into_iter().rev().collect()
            }
        };
        for id in partitions {
            let db = self.open_partition(id)?;
            // Newest first: a partition holds at most `partition_size` rows, sorted here.
            let prefix = match &query.app {
                Some(app) => keys::app_commits(app),
                None => keys::COMMITS.to_vec(),
            };
            let mut rows: Vec<Row> = db
                .scan(&prefix, Order::Ascending)
                .collect::<Result<_, _>>()?;
            rows.sort_unstable_by_key(|(k, _)| std::cmp::Reverse(keys::seq_of(k)));
            for (k, v) in rows {
                let seq = keys::seq_of(&k);
                for envelope in self.decode_row(&k, &v)?.iter().rev() {
                    let entry = AuditEntry::of_envelope(seq, envelope);
                    if query.matches(&entry) {
                        found.push(entry);
                        if found.len() == limit {
                            return Ok(found);
                        }
                    }
                }
            }
        }
        Ok(found)
    }

    /// Folds the whole log into fresh models beside these (which the caller has caught up) and
    /// compares every row: `None` when they match, else the first difference.
    pub async fn differs_from_log<S: EventStore>(
        &self,
        log: &S,
    ) -> Result<Option<String>, ProjectionError> {
        let mut fresh = ProjectionStore::new(self.models.staging()?, self.partition_size)?;
        fresh.catch_up(log, &mut |_, _| {}).await?;
        let (stored, folded) = (self.dump()?, fresh.dump()?);
        drop(fresh);
        self.models.discard_staging()?;
        if stored.len() != folded.len() {
            return Ok(Some(format!(
                "the read models hold {} rows, a fold of the log gives {}",
                stored.len(),
                folded.len()
            )));
        }
        Ok(stored
            .iter()
            .zip(&folded)
            .find(|(a, b)| a != b)
            .map(|(a, _)| {
                format!(
                    "the read models' {} row {} differs from a fold of the log",
                    a.0,
                    String::from_utf8_lossy(&a.1).escape_debug()
                )
            }))
    }

    // issue 15
    /// The state model as a snapshot another machine may start from ([`Self::seed_state`]):
    /// its checkpoint and every app's status, for the log of stream identity `log_id`.
    pub fn state_snapshot(&self, log_id: &str) -> Result<Vec<u8>, ProjectionError> {
        let snapshot = StateSnapshot {
            format: FORMAT,
            partition_size: self.partition_size,
            log: log_id.to_string(),
            checkpoint: self.checkpoint()?,
            statuses: self.statuses()?,
        };
        Ok(serde_json::to_vec(&snapshot).expect("statuses serialize"))
    }

    /// Starts empty models from `snapshot` (of [`Self::state_snapshot`]): taken only when the
    /// models are empty and the snapshot is of this row format and partition size, of the log
    /// `log_id`, and not past `log_end` (else it is ignored and `false` returned). The history
    /// stays empty, behind the state model: a query that needs it folds it then.
    pub fn seed_state(
        &mut self,
        snapshot: &[u8],
        log_id: &str,
        log_end: u64,
    ) -> Result<bool, ProjectionError> {
        let Ok(snapshot) = serde_json::from_slice::<StateSnapshot>(snapshot) else {
            return Ok(false);
        };
        let usable = snapshot.format == FORMAT
            && snapshot.partition_size == self.partition_size
            && snapshot.log == log_id
            && snapshot.checkpoint <= log_end
            && self.checkpoint()? == 0
            && self.history_head_as_stored()?.0 == 0;
        if !usable {
            return Ok(false);
        }
        let mut batch = Batch::default();
        for (app, status) in &snapshot.statuses {
            batch.insert(
                status_key(app),
                serde_json::to_vec(status).expect("statuses serialize"),
            );
        }
        batch.insert(CHECKPOINT, snapshot.checkpoint.to_be_bytes());
        self.state.apply(batch)?;
        self.state.flush()?;
        Ok(true)
    }

    /// Every row of every model, in key order: what the tests compare.
    pub fn dump(&self) -> Result<Vec<DumpRow>, ProjectionError> {
        let mut rows = Vec::new();
        let mut add = |name: String, db: &dyn ModelDb| -> Result<(), ProjectionError> {
            for kv in db.scan(&[], Order::Ascending) {
                let (k, v) = kv?;
                rows.push((name.clone(), k, v));
            }
            Ok(())
        };
        add(STATE.into(), &*self.state)?;
        for id in self.partitions()? {
            add(format!("p{id}"), &*self.open_partition(id)?)?;
        }
        Ok(rows)
    }
}

/// Writes pending rows and the partition's checkpoint in one batch.
fn write_rows(
    db: &dyn ModelDb,
    rows: &mut Vec<(Vec<u8>, Vec<u8>)>,
    checkpoint: u64,
) -> Result<(), ProjectionError> {
    let mut batch = Batch::default();
    for (k, v) in rows.drain(..) {
        batch.insert(k, v);
    }
    batch.insert(PARTITION_CHECKPOINT, checkpoint.to_be_bytes());
    Ok(db.apply(batch)?)
}

/// What [`ProjectionStore::state_snapshot`] writes (issue 15).
#[derive(serde::Serialize, serde::Deserialize)]
struct StateSnapshot {
    format: u64,
    partition_size: u64,
    /// The stream identity of the log it was folded from.
    log: String,
    checkpoint: u64,
    statuses: Vec<(AppName, AppStatus)>,
}
