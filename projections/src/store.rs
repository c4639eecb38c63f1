//! The projection store: the state model of `model` (every app's [`AppStatus`]), persisted
//! through the engine's [`ModelStore`] (a sled database in a directory, from `hoist-stores`),
//! with its checkpoint (the last log sequence folded into it), caught up from the log on demand.
//!
//! Its database, `state`: `c` → checkpoint; `v` → row format; `s` app → [`AppStatus`] (JSON).
//! Its size is the apps', not the history's.
//!
//! There is no history model (issue 15): older releases and audit entries than an
//! [`AppStatus`] keeps are read from the log itself, newest first, through its per-app index
//! (`EventStore::read_app_back`: the embedded log's index file, a NATS subject per app). A
//! replay therefore decodes and folds each commit once and writes only the statuses it changed,
//! where it used to copy the whole log into a second store.
//!
//! **Invariants**
//! - The model and its checkpoint change in one batch: after a crash, the database holds a
//!   prefix of the fold and says which. Catch-up resumes from the checkpoint.
//! - The query path reads `state` and, only when the answer is older than what an
//!   [`AppStatus`] keeps, that app's newest commits in the log: never the whole history, and
//!   never the log when the checkpoint equals the log's last sequence (which the embedded store
//!   answers from a small file).
//!
//! The database is disposable: the log is the truth. A checkpoint past the log's end means the
//! log was replaced, and the model is rebuilt; a database the model store finds damaged is
//! thrown away and folded again (only then: a store that is unavailable is reported).

use crate::audit::{AuditEntry, AuditQuery};
use crate::model::AppStatus;
use hoist_engine::codec::{decode_envelopes, CodecError};
use hoist_engine::models::{Batch, ModelDb, ModelError, ModelStore, Order};
use hoist_engine::store::{read_back, EventStore, StoreError, StoredCommit};
use hoist_engine::{AppName, EnvName, Envelope, Event, ReleaseRecord};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// How much a catch-up and a query read and write at a time. [`Sizes::DEFAULT`] in use; tests
/// take small ones, so that a short history crosses every boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// What a query's first read back into the log covers: this many of the app's newest
    /// commits (or log sequences, for a query of every app); each further read covers four
    /// times the last.
    pub read_window: u64,
    /// Commits read from the log per catch-up step.
    pub page: usize,
    /// Commits folded between two writes of the model.
    pub write_every: u64,
}

impl Sizes {
    pub const DEFAULT: Sizes = Sizes {
        // A query is read back only when its answer is older than an [`AppStatus`] keeps (32
        // events, 16 releases per env), so the first read usually holds it: `releases --limit
        // 20` reads 64 commits, not the app's history.
        read_window: 64,
        page: 2048,
        // A status is rewritten whole (JSON of its recent events and releases): writing it
        // after every page of a replay was a third of the replay's time.
        write_every: 8 * 2048,
    };
}

const CHECKPOINT: &[u8] = b"c";
const STATUS_PREFIX: u8 = b's';
const FORMAT_KEY: &[u8] = b"v";
/// The layout of the rows; models written in another are rebuilt. 4: the state model alone,
/// statuses without `partitions` (3: history partitions beside it, audit entries with `via`).
const FORMAT: u64 = 4;
/// The database of the state model.
const STATE: &str = "state";
/// The history partitions of format 3 and before, removed where found.
const OLD_HISTORY: &str = "history";

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

pub struct ProjectionStore {
    /// Before `models`: closed before the model store (and a lock it may hold) is let go.
    state: Box<dyn ModelDb>,
    sizes: Sizes,
    /// Why the model was found unreadable and thrown away to be folded again, if it was.
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

fn decode(seq: u64, payload: &[u8]) -> Result<Vec<Envelope>, ProjectionError> {
    decode_envelopes(payload).map_err(|source| ProjectionError::Codec { seq, source })
}

impl ProjectionStore {
    /// The read models kept in `models` (the caller holds whatever lock guards them: the
    /// embedded store's, or the model store's own), read and written in `sizes`
    /// ([`Sizes::DEFAULT`]). Models written in another row format are rebuilt.
    pub fn new(models: Box<dyn ModelStore>, sizes: Sizes) -> Result<Self, ProjectionError> {
        // The models are disposable: one that cannot be opened is thrown away and folded again
        // from the log, never left for the user to repair.
        let (state, recovered) = match models.open(STATE) {
            Ok(state) => (state, None),
            Err(e) if e.is_damage() => {
                let e = ProjectionError::from(e);
                models.remove(STATE)?;
                (models.open(STATE)?, Some(e.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        let stale = state.get(FORMAT_KEY)?.map(|v| decode_u64(&v)) != Some(FORMAT);
        let mut store = ProjectionStore {
            state,
            sizes: Sizes {
                read_window: sizes.read_window.max(1),
                page: sizes.page.max(1),
                write_every: sizes.write_every.max(1),
            },
            recovered,
            models,
        };
        if stale {
            store.reset()?;
        }
        Ok(store)
    }

    /// Throws the model away in one batch (and the history partitions of older formats).
    pub fn reset(&mut self) -> Result<(), ProjectionError> {
        self.models.remove(OLD_HISTORY)?;
        let mut batch = Batch::default();
        for row in self.state.scan(&[], Order::Ascending) {
            batch.remove(row?.0);
        }
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

    /// Why the model was found unreadable (and is being folded again from the log), if it was.
    pub fn recovered(&self) -> Option<&str> {
        self.recovered.as_deref()
    }

    /// Folds the whole log into a new model beside this one and switches it in only once it is
    /// complete: a rebuild cut short leaves the old model as it was.
    pub async fn rebuild<S: EventStore>(
        self,
        log: &S,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<(ProjectionStore, CatchUp), ProjectionError> {
        let ProjectionStore {
            state,
            sizes,
            models,
            ..
        } = self;
        drop(state);
        let mut fresh = ProjectionStore::new(models.staging()?, sizes)?;
        let done = fresh.catch_up(log, progress).await?;
        drop(fresh);
        models.switch_in_staging(&[OLD_HISTORY, STATE])?;
        let store = ProjectionStore::new(models, sizes)?;
        Ok((store, done))
    }

    /// The last log sequence folded into the state model.
    pub fn checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(self.state.get(CHECKPOINT)?.map_or(0, |v| decode_u64(&v)))
    }

    /// Brings the model up to the log's end, as a query does before answering. Costs one look
    /// at the log's last sequence when nothing is new.
    pub async fn catch_up_state<S: EventStore>(
        &mut self,
        log: &S,
    ) -> Result<CatchUp, ProjectionError> {
        self.catch_up(log, &mut |_, _| {}).await
    }

    /// Brings the model up to the log's end from its checkpoint: each commit is read, decoded
    /// and folded once, and every `sizes.write_every` commits and at the end the statuses they
    /// changed are written with the checkpoint in one batch. `progress(folded_to, log_end)` is
    /// called after each page read.
    pub async fn catch_up<S: EventStore>(
        &mut self,
        log: &S,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<CatchUp, ProjectionError> {
        let target = log.last_seq().await?;
        let mut checkpoint = self.checkpoint()?;
        if checkpoint == target {
            return Ok(CatchUp {
                checkpoint,
                ..CatchUp::default()
            });
        }
        if checkpoint > target {
            // The log is not the one this model was folded from: start over.
            self.models.ensure_room(0)?;
            self.reset()?;
            checkpoint = 0;
        }
        let mut done = CatchUp {
            checkpoint,
            ..CatchUp::default()
        };
        // Every status this catch-up has loaded, and whether it changed since the last write.
        let mut statuses = Statuses::new();
        let Sizes {
            page: page_size,
            write_every,
            ..
        } = self.sizes;
        let mut page = log.read_from(checkpoint + 1, page_size).await?;
        while let Some(last) = page.last().map(|c| c.seq) {
            for commit in &page {
                if !statuses.contains_key(&commit.app) {
                    let loaded = self.status(&commit.app)?.unwrap_or_default();
                    statuses.insert(commit.app.clone(), (loaded, false));
                }
            }
            // A long page is folded on a thread of its own while the next one is read: decoding
            // and folding take as long as reading (NATS round trips, the embedded log's reads
            // and checksums), and the two overlap on two cores. A short one (a command's own
            // commits) is not worth a thread.
            let (next, folded) = if page.len() < page_size / 4 {
                let folded = fold_page(page, statuses);
                (log.read_from(last + 1, page_size).await, folded)
            } else {
                futures::join!(
                    log.read_from(last + 1, page_size),
                    fold_page_aside(page, statuses)
                )
            };
            let (commits, events);
            (statuses, commits, events) = folded?;
            (page, checkpoint) = (next?, last);
            done.commits += commits;
            done.events += events;
            progress(checkpoint, target.max(checkpoint));
            if page.is_empty() || checkpoint - done.checkpoint >= write_every {
                self.write_changed(&mut statuses, checkpoint)?;
                done.checkpoint = checkpoint;
            }
        }
        if checkpoint < target {
            // Nothing up to `target` is a commit (a NATS stream ending in quarantined messages,
            // which reads skip): the model is current to there, and the next query need not
            // look for them again.
            let mut batch = Batch::default();
            batch.insert(CHECKPOINT, target.to_be_bytes());
            self.state.apply(batch)?;
            done.checkpoint = target;
        }
        self.state.flush()?;
        Ok(done)
    }

    /// Writes the statuses changed since the last write, with `checkpoint`, in one batch.
    fn write_changed(
        &self,
        statuses: &mut BTreeMap<AppName, (AppStatus, bool)>,
        checkpoint: u64,
    ) -> Result<(), ProjectionError> {
        let mut batch = Batch::default();
        let mut bytes = 0;
        for (app, (status, changed)) in statuses {
            if std::mem::take(changed) {
                let row = serde_json::to_vec(status).expect("statuses serialize");
                bytes += row.len() as u64;
                batch.insert(status_key(app), row);
            }
        }
        batch.insert(CHECKPOINT, checkpoint.to_be_bytes());
        // Room for the batch twice over (the model store's log and its pages).
        self.models.ensure_room(2 * bytes)?;
        Ok(self.state.apply(batch)?)
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

    /// Up to `limit` releases of `app`/`env`, newest first. The caller has caught the model up;
    /// the newest few come from the app's status, older ones from the app's commits in the log.
    pub async fn releases<S: EventStore>(
        &self,
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
        self.newest_in_log(log, Some(app), limit, |_, envelope| match envelope.event {
            Some(Event::ReleaseCreated { env: of, release }) if of == *env => Some(ReleaseRecord {
                release,
                actor: envelope.actor,
                at: envelope.at,
            }),
            _ => None,
        })
        .await
    }

    /// Up to `limit` of what `pick` makes of the envelopes up to the checkpoint, newest first,
    /// read from the log (`app`'s commits only, when given) by [`read_back`]: a query costs what
    /// its answer costs.
    async fn newest_in_log<S: EventStore, T>(
        &self,
        log: &S,
        app: Option<&AppName>,
        limit: usize,
        mut pick: impl FnMut(u64, Envelope) -> Option<T>,
    ) -> Result<Vec<T>, ProjectionError> {
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let through = self.checkpoint()?;
        read_back(
            log,
            app,
            through,
            self.sizes.read_window as usize,
            |commits| {
                for commit in commits {
                    for envelope in decode(commit.seq, &commit.payload)?.into_iter().rev() {
                        if let Some(picked) = pick(commit.seq, envelope) {
                            found.push(picked);
                            if found.len() == limit {
                                return Ok(ControlFlow::Break(()));
                            }
                        }
                    }
                }
                Ok::<_, ProjectionError>(ControlFlow::Continue(()))
            },
        )
        .await?;
        Ok(found)
    }

    /// Up to `limit` audit entries matching `query`, newest first. With `query.app`, the app's
    /// status answers when its newest events hold enough matches; else the app's commits in the
    /// log are read newest first, and without an app the whole log is.
    pub async fn audit<S: EventStore>(
        &self,
        log: &S,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ProjectionError> {
        if let Some(app) = &query.app {
            let Some(status) = self.status(app)? else {
                return Ok(Vec::new());
            };
            let found: Vec<AuditEntry> = status
                .recent
                .iter()
                .rev()
                .filter(|e| query.matches(e))
                .take(limit)
                .cloned()
                .collect();
            if found.len() == limit || status.recent.len() as u64 == status.event_count {
                return Ok(found);
            }
        }
        self.newest_in_log(log, query.app.as_ref(), limit, |seq, envelope| {
            let entry = AuditEntry::of_envelope(seq, &envelope);
            query.matches(&entry).then_some(entry)
        })
        .await
    }

    /// Folds the whole log into fresh models beside these (which the caller has caught up) and
    /// compares every row: `None` when they match, else the first difference.
    pub async fn differs_from_log<S: EventStore>(
        &self,
        log: &S,
    ) -> Result<Option<String>, ProjectionError> {
        let mut fresh = ProjectionStore::new(self.models.staging()?, self.sizes)?;
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
            log: log_id.to_string(),
            checkpoint: self.checkpoint()?,
            statuses: self.statuses()?,
        };
        Ok(serde_json::to_vec(&snapshot).expect("statuses serialize"))
    }

    /// Starts an empty model from `snapshot` (of [`Self::state_snapshot`]): taken only when the
    /// model is empty and the snapshot is of this row format, of the log `log_id`, and not past
    /// `log_end` (else it is ignored and `false` returned).
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
            && snapshot.log == log_id
            && snapshot.checkpoint <= log_end
            && self.checkpoint()? == 0;
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

    /// Every row of the model, in key order: what the tests compare.
    pub fn dump(&self) -> Result<Vec<DumpRow>, ProjectionError> {
        self.state
            .scan(&[], Order::Ascending)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((STATE.to_string(), k, v))
            })
            .collect()
    }
}

/// The statuses a catch-up has loaded, and whether each changed since the model was last written.
type Statuses = BTreeMap<AppName, (AppStatus, bool)>;

/// Folds `page` into `statuses`, which hold every app of it; gives them back with the commits and
/// events folded.
fn fold_page(
    page: Vec<StoredCommit>,
    mut statuses: Statuses,
) -> Result<(Statuses, u64, u64), ProjectionError> {
    let mut events = 0;
    for commit in &page {
        let envelopes = decode(commit.seq, &commit.payload)?;
        events += envelopes.len() as u64;
        let (status, changed) = statuses
            .get_mut(&commit.app)
            .expect("the caller loaded every app of the page");
        for envelope in envelopes {
            status.apply(commit.seq, envelope);
        }
        *changed = true;
    }
    Ok((statuses, page.len() as u64, events))
}

/// [`fold_page`] on a thread of its own.
async fn fold_page_aside(
    page: Vec<StoredCommit>,
    statuses: Statuses,
) -> Result<(Statuses, u64, u64), ProjectionError> {
    let (done, folded) = futures::channel::oneshot::channel();
    std::thread::Builder::new()
        .name("hoist-fold".into())
        .spawn(move || done.send(fold_page(page, statuses)))
        .map_err(|e| ProjectionError::Io {
            at: "a fold thread".into(),
            message: e.to_string(),
        })?;
    folded.await.expect("a fold thread does not panic")
}

/// What [`ProjectionStore::state_snapshot`] writes (issue 15).
#[derive(serde::Serialize, serde::Deserialize)]
struct StateSnapshot {
    format: u64,
    /// The stream identity of the log it was folded from.
    log: String,
    checkpoint: u64,
    statuses: Vec<(AppName, AppStatus)>,
}
