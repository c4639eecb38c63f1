//! The projection store: the read models of `model`, persisted in local sled databases, each
//! with its checkpoint (the last log sequence folded into it), caught up from the log on demand.
//!
//! Layout of the directory:
//!
//! | path | holds | size |
//! |---|---|---|
//! | `state/` | `c` → checkpoint; `p` → partition size; `v` → row format; `s` app → [`AppStatus`] (JSON) | apps, not history |
//! | `history/p<id>/` | rows of [`history_row`] (one per log entry: its commit, protobuf) for log sequences `id·P+1 ..= (id+1)·P`, and `K` → its checkpoint | ≤ P commits each |
//!
//! **Invariants**
//! - A model and its checkpoint change in one sled batch: after a crash, each database holds a
//!   prefix of the fold and says which. Catch-up resumes each from its own checkpoint.
//! - Every history partition but the newest is complete: it is flushed before the next is opened.
//! - The query path opens `state/` and, only when the answer is older than what an
//!   [`AppStatus`] keeps, the few partitions that hold the app: never the whole history, and never
//!   the log when the checkpoint equals the log's last sequence (which the embedded store answers
//!   from a small file).
//!
//! The directory is disposable: the log is the truth. A checkpoint past the log's end means the
//! log was replaced, and the models are rebuilt.

use crate::audit::{AuditEntry, AuditQuery};
use crate::model::{history_row, keys, AppStatus};
use hoist_engine::codec::{decode_envelopes, CodecError};
use hoist_engine::store::{EventStore, StoreError};
use hoist_engine::{AppName, EnvName, Envelope, Event, ReleaseRecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
/// The layout of the rows; models written in another are rebuilt. 2: one protobuf row per log
/// entry (1: three JSON rows per event).
const FORMAT: u64 = 2;
/// Free bytes a model write needs on its filesystem. sled 0.34 does not fail a write on a full
/// disk, it hangs; so a write starts only with room to spare (sled writes in 512 KiB segments).
pub const WRITE_HEADROOM: u64 = 4 << 20;
/// How long opening a model waits for sled's threads to let go of it after this process closed it.
const SLED_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Where `rebuild` folds the new models before switching them in.
const STAGING: &str = "rebuild.staging";

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("log entry {seq} cannot be read: {source}")]
    Codec { seq: u64, source: CodecError },
    #[error("projection store {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// sled found its files damaged: the model is thrown away and folded again.
    #[error("projection store {path} is damaged: {message}")]
    Damaged { path: PathBuf, message: String },
    #[error("disk full: the read models in {path} need {needed} bytes free to be written, {free} are; free some space and run the command again")]
    DiskFull {
        path: PathBuf,
        free: u64,
        needed: u64,
    },
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

pub struct ProjectionStore {
    dir: PathBuf,
    state: sled::Db,
    partition_size: u64,
    /// Why a model was found unreadable and thrown away to be folded again, if one was.
    recovered: Option<String>,
    /// The directory's own lock, when no store lock covers it (a NATS cache). Last field: it
    /// is released after the databases close.
    _lock: Option<std::fs::File>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Io {
        path: path.into(),
        message: e.to_string(),
    }
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
    /// Opens (creating if needed) the read models in `dir`. The caller holds whatever lock
    /// guards `dir` (the embedded store's, in sled mode). Leftovers of an interrupted rebuild are
    /// removed; models written with another partition size are rebuilt.
    pub fn open(dir: &Path, partition_size: u64) -> Result<Self, ProjectionError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        if !dir.join("state").exists() {
            ensure_room(dir, 0)?;
        }
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "trash") || path.ends_with(STAGING) {
                std::fs::remove_dir_all(&path).map_err(|e| io(&path, e))?;
            }
        }
        // The models are disposable: one that cannot be opened is thrown away and folded again
        // from the log, never left for the user to repair.
        let (state, recovered) = match open_db(&dir.join("state")) {
            Ok(state) => (state, None),
            Err(e @ ProjectionError::Damaged { .. }) => {
                discard(dir, "state")?;
                discard(dir, "history")?;
                (open_db(&dir.join("state"))?, Some(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        let stored = |key| -> Result<Option<u64>, ProjectionError> {
            Ok(state
                .get(key)
                .map_err(|e| io(dir, e))?
                .map(|v| decode_u64(&v)))
        };
        let stale = stored(PARTITION_SIZE_KEY)? != Some(partition_size)
            || stored(FORMAT_KEY)? != Some(FORMAT);
        let mut store = ProjectionStore {
            dir: dir.into(),
            state,
            partition_size,
            recovered,
            _lock: None,
        };
        if stale {
            store.reset()?;
        }
        Ok(store)
    }

    /// `open`, for a directory no store lock covers (the NATS cache): takes the directory's own
    /// lock first, waiting up to `wait` for another process to let go.
    pub fn open_exclusive(
        dir: &Path,
        partition_size: u64,
        wait: std::time::Duration,
    ) -> Result<Self, ProjectionError> {
        let lock = hoist_stores::file::lock_dir(dir, wait)?;
        let mut store = Self::open(dir, partition_size)?;
        store._lock = Some(lock);
        Ok(store)
    }

    /// Throws every model away, atomically per database: the history is renamed away first (a
    /// crash then leaves a state model whose history catches up from nothing), then the state is
    /// emptied in one batch.
    pub fn reset(&mut self) -> Result<(), ProjectionError> {
        let history = self.dir.join("history");
        if history.exists() {
            let trash = self
                .dir
                .join(format!("history-{}.trash", std::process::id()));
            std::fs::rename(&history, &trash).map_err(|e| io(&history, e))?;
            std::fs::remove_dir_all(&trash).map_err(|e| io(&trash, e))?;
        }
        let mut batch = sled::Batch::default();
        for key in self.state.iter().keys() {
            let key = key.map_err(|e| io(&self.dir, e))?;
            batch.remove(key);
        }
        batch.insert(PARTITION_SIZE_KEY, &self.partition_size.to_be_bytes());
        batch.insert(FORMAT_KEY, &FORMAT.to_be_bytes());
        self.state
            .apply_batch(batch)
            .map_err(|e| io(&self.dir, e))?;
        self.state.flush().map_err(|e| io(&self.dir, e))?;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(ProjectionStore, CatchUp), ProjectionError> {
        let (dir, partition_size, lock) = (self.dir.clone(), self.partition_size, self._lock);
        drop(self.state);
        let staging = dir.join(STAGING);
        discard(&dir, STAGING)?;
        let mut fresh = ProjectionStore::open(&staging, partition_size)?;
        let done = fresh.catch_up(log, progress).await?;
        drop(fresh);
        // Each step leaves a directory that opens correctly: with no `state`, everything is
        // folded again; with the new `history` and no `state`, likewise.
        discard(&dir, "state")?;
        discard(&dir, "history")?;
        for name in ["history", "state"] {
            let from = staging.join(name);
            if from.exists() {
                std::fs::rename(&from, dir.join(name)).map_err(|e| io(&from, e))?;
            }
        }
        discard(&dir, STAGING)?;
        let mut store = ProjectionStore::open(&dir, partition_size)?;
        store._lock = lock;
        Ok((store, done))
    }

    /// The last log sequence folded into the state model.
    pub fn checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(self
            .state
            .get(CHECKPOINT)
            .map_err(|e| io(&self.dir, e))?
            .map_or(0, |v| decode_u64(&v)))
    }

    fn partition_dir(&self, id: u64) -> PathBuf {
        self.dir.join("history").join(format!("p{id:010}"))
    }

    fn partition_of(&self, seq: u64) -> u64 {
        seq.saturating_sub(1) / self.partition_size
    }

    /// Existing partition ids, ascending.
    fn partitions(&self) -> Result<Vec<u64>, ProjectionError> {
        let dir = self.dir.join("history");
        let mut ids = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let name = entry.map_err(|e| io(&dir, e))?.file_name();
                    if let Some(id) = name
                        .to_str()
                        .and_then(|n| n.strip_prefix('p'))
                        .and_then(|n| n.parse().ok())
                    {
                        ids.push(id);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&dir, e)),
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn open_partition(&self, id: u64) -> Result<sled::Db, ProjectionError> {
        open_db(&self.partition_dir(id))
    }

    /// The history's checkpoint and the newest partition, open: the newest partition that has a
    /// checkpoint (one created just before a crash may have none yet).
    fn history_head(&mut self) -> Result<(u64, Option<(u64, sled::Db)>), ProjectionError> {
        match self.history_head_as_stored() {
            Err(ProjectionError::Damaged { message, .. }) => {
                // An unreadable partition: the history is folded again from the log.
                discard(&self.dir, "history")?;
                self.recovered = Some(message);
                Ok((0, None))
            }
            head => head,
        }
    }

    fn history_head_as_stored(&self) -> Result<(u64, Option<(u64, sled::Db)>), ProjectionError> {
        let mut newest = None;
        for id in self.partitions()?.into_iter().rev() {
            let db = self.open_partition(id)?;
            let checkpoint = db
                .get(PARTITION_CHECKPOINT)
                .map_err(|e| io(&self.dir, e))?
                .map(|v| decode_u64(&v));
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
        self.catch_up(log, &mut |_, _| {}).await
    }

    /// Brings every model up to the log's end, resuming each from its own checkpoint.
    /// `progress(folded_to, log_end)` is called after each step.
    pub async fn catch_up<S: EventStore>(
        &mut self,
        log: &S,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<CatchUp, ProjectionError> {
        let target = log.last_seq().await?;
        let (mut state_cp, (mut history_cp, mut partition)) =
            (self.checkpoint()?, self.history_head()?);
        if state_cp > target || history_cp > target {
            // The log is not the one these models were folded from: start over.
            drop(partition);
            ensure_room(&self.dir, 0)?;
            self.reset()?;
            (state_cp, history_cp, partition) = (0, 0, None);
        }
        let mut done = CatchUp {
            checkpoint: state_cp.min(history_cp),
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
            ensure_room(&self.dir, 4 * page_bytes)?;
            let mut state_batch = sled::Batch::default();
            for commit in page {
                let envelopes =
                    decode_envelopes(&commit.payload).map_err(|source| ProjectionError::Codec {
                        seq: commit.seq,
                        source,
                    })?;
                let partition_id = self.partition_of(commit.seq);
                if commit.seq > history_cp {
                    if partition.as_ref().is_none_or(|(id, _)| *id != partition_id) {
                        if let Some((_, db)) = partition.take() {
                            write_rows(&self.dir, &db, &mut rows, history_cp)?;
                            // Seal it: only the newest partition may be incomplete.
                            db.flush().map_err(|e| io(&self.dir, e))?;
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
            state_batch.insert(CHECKPOINT, &state_cp.to_be_bytes());
            self.state
                .apply_batch(state_batch)
                .map_err(|e| io(&self.dir, e))?;
            if let Some((_, db)) = &partition {
                write_rows(&self.dir, db, &mut rows, history_cp)?;
            }
            done.checkpoint = state_cp.min(history_cp);
            progress(done.checkpoint, target.max(done.checkpoint));
        }
        if state_cp < target {
            // Nothing up to `target` is a commit (a NATS stream ending in quarantined messages,
            // which reads skip): the state model is current to there, and the next query need
            // not look for them again.
            state_cp = target;
            self.state
                .insert(CHECKPOINT, &state_cp.to_be_bytes())
                .map_err(|e| io(&self.dir, e))?;
        }
        if let Some((_, db)) = &partition {
            db.flush().map_err(|e| io(&self.dir, e))?;
        }
        self.state.flush().map_err(|e| io(&self.dir, e))?;
        Ok(done)
    }

    /// Before reading partitions: the history may be behind the state model (a process killed
    /// between their batches, or a state-only catch-up).
    async fn history_caught_up<S: EventStore>(&mut self, log: &S) -> Result<(), ProjectionError> {
        if self.history_head()?.0 < self.checkpoint()? {
            self.catch_up(log, &mut |_, _| {}).await?;
        }
        Ok(())
    }

    /// One app's status, as of the checkpoint.
    pub fn status(&self, app: &AppName) -> Result<Option<AppStatus>, ProjectionError> {
        self.state
            .get(status_key(app))
            .map_err(|e| io(&self.dir, e))?
            .map(|v| {
                serde_json::from_slice(&v)
                    .map_err(|e| io(&self.dir, format!("status of {app}: {e}")))
            })
            .transpose()
    }

    /// Every app's status, by name.
    pub fn statuses(&self) -> Result<Vec<(AppName, AppStatus)>, ProjectionError> {
        self.state
            .scan_prefix([STATUS_PREFIX])
            .map(|kv| {
                let (k, v) = kv.map_err(|e| io(&self.dir, e))?;
                let app = std::str::from_utf8(&k[1..])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| io(&self.dir, "malformed status key"))?;
                let status = serde_json::from_slice(&v)
                    .map_err(|e| io(&self.dir, format!("status of {app}: {e}")))?;
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
        self.history_caught_up(log).await?;
        let mut releases = Vec::new();
        for &id in status.partitions.iter().rev() {
            let db = self.open_partition(id)?;
            for kv in db.scan_prefix(keys::app_commits(app)).rev() {
                let (k, v) = kv.map_err(|e| io(&self.dir, e))?;
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

    /// The envelopes of one history row.
    fn decode_row(&self, key: &[u8], value: &[u8]) -> Result<Vec<Envelope>, ProjectionError> {
        decode_envelopes(value).map_err(|source| ProjectionError::Codec {
            seq: keys::seq_of(key),
            source,
        })
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
                status.partitions.iter().rev().copied().collect()
            }
            None => self.partitions()?.into_iter().rev().collect(),
        };
        self.history_caught_up(log).await?;
        for id in partitions {
            let db = self.open_partition(id)?;
            // Newest first: a partition holds at most `partition_size` rows, sorted here.
            let prefix = match &query.app {
                Some(app) => keys::app_commits(app),
                None => keys::COMMITS.to_vec(),
            };
            let mut rows: Vec<(sled::IVec, sled::IVec)> = db
                .scan_prefix(prefix)
                .collect::<Result<_, _>>()
                .map_err(|e| io(&self.dir, e))?;
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
        let staging = self.dir.join(STAGING);
        discard(&self.dir, STAGING)?;
        let mut fresh = ProjectionStore::open(&staging, self.partition_size)?;
        fresh.catch_up(log, &mut |_, _| {}).await?;
        let (stored, folded) = (self.dump()?, fresh.dump()?);
        drop(fresh);
        discard(&self.dir, STAGING)?;
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

    /// Every row of every model, in key order: what the tests compare.
    pub fn dump(&self) -> Result<Vec<DumpRow>, ProjectionError> {
        let mut rows = Vec::new();
        let mut add = |name: String, db: &sled::Db| -> Result<(), ProjectionError> {
            for kv in db.iter() {
                let (k, v) = kv.map_err(|e| io(&self.dir, e))?;
                rows.push((name.clone(), k.to_vec(), v.to_vec()));
            }
            Ok(())
        };
        add("state".into(), &self.state)?;
        for id in self.partitions()? {
            add(format!("p{id}"), &self.open_partition(id)?)?;
        }
        Ok(rows)
    }
}

fn open_db(path: &Path) -> Result<sled::Db, ProjectionError> {
    hoist_stores::sled::remove_unfinished_snapshots(path).map_err(|e| io(path, e))?;
    // sled's background threads hold a database's file lock a moment after its last handle is
    // dropped, so opening one this process just closed can find it locked: wait that out.
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match sled::Config::new().path(path).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < SLED_RELEASE_WAIT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(20));
            }
            // What sled says of its own files: only these make a model worth throwing away;
            // a busy, full or unreadable disk is reported instead.
            Err(e) if is_damage(&e) => {
                return Err(ProjectionError::Damaged {
                    path: path.into(),
                    message: e.to_string(),
                })
            }
            Err(e) => return Err(io(path, e)),
        }
    }
}

/// Whether sled's error says its own files are damaged (then the model is thrown away and
/// folded again), rather than that the disk is busy, full or unreadable. A truncated segment or a
/// missing blob comes back as an I/O error of its own kind.
fn is_damage(e: &sled::Error) -> bool {
    match e {
        sled::Error::Corruption { .. }
        | sled::Error::ReportableBug(_)
        | sled::Error::Unsupported(_) => true,
        sled::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::NotFound
                | std::io::ErrorKind::InvalidData
        ),
        _ => false,
    }
}

/// Refuses to start a write of about `bytes` unless `dir`'s filesystem has that plus
/// [`WRITE_HEADROOM`] free.
fn ensure_room(dir: &Path, bytes: u64) -> Result<(), ProjectionError> {
    let stat = rustix::fs::statvfs(dir).map_err(|e| io(dir, e))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    let needed = WRITE_HEADROOM + bytes;
    if free < needed {
        return Err(ProjectionError::DiskFull {
            path: dir.into(),
            free,
            needed,
        });
    }
    Ok(())
}

/// Moves `dir/name` out of the way (renamed first, so a crash leaves it absent, not half gone),
/// then deletes it.
fn discard(dir: &Path, name: &str) -> Result<(), ProjectionError> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(());
    }
    let trash = dir.join(format!("{name}-{}.trash", std::process::id()));
    std::fs::rename(&path, &trash).map_err(|e| io(&path, e))?;
    std::fs::remove_dir_all(&trash).map_err(|e| io(&trash, e))
}

/// Writes pending rows and the partition's checkpoint in one batch.
fn write_rows(
    dir: &Path,
    db: &sled::Db,
    rows: &mut Vec<(Vec<u8>, Vec<u8>)>,
    checkpoint: u64,
) -> Result<(), ProjectionError> {
    let mut batch = sled::Batch::default();
    for (k, v) in rows.drain(..) {
        batch.insert(k, v);
    }
    batch.insert(PARTITION_CHECKPOINT, &checkpoint.to_be_bytes());
    db.apply_batch(batch).map_err(|e| io(dir, e))
}
