//! In memory, for tests and for anything that needs a store without a disk or a server; nothing
//! survives the value: `MemoryStore`, a log with the full `EventStore` contract (batches
//! included), and `MemoryModels`, read models' databases with the `ModelStore` contract.

use hoist_engine::models::{Batch, ModelDb, ModelError, ModelStore, Order, Row, Rows};
use hoist_engine::store::{admit_batch, Appended, EventStore, NewCommit, StoreError, StoredCommit};
use hoist_engine::AppName;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

#[derive(Default)]
pub struct MemoryStore {
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    /// The commit of sequence `i + 1` at `i`: gap-free, as on the embedded store.
    commits: Vec<StoredCommit>,
    /// Each app's commits' sequences, in order (sorted by name: `apps` answers in order).
    apps: BTreeMap<AppName, Vec<u64>>,
    ids: HashMap<Uuid, u64>,
}

impl Log {
    fn head(&self, app: &AppName) -> u64 {
        self.apps
            .get(app)
            .and_then(|seqs| seqs.last().copied())
            .unwrap_or(0)
    }

    /// The last `max` of `app`'s commits in `after < seq <= through`.
    fn app_commits(
        &self,
        app: &AppName,
        after: u64,
        through: u64,
        max: usize,
    ) -> Vec<StoredCommit> {
        let seqs = self.apps.get(app).map(Vec::as_slice).unwrap_or_default();
        crate::last_in(seqs, after, through, max)
            .iter()
            .map(|&seq| self.commits[seq as usize - 1].clone())
            .collect()
    }

    fn push(&mut self, commit: &NewCommit) -> Appended {
        let seq = self.commits.len() as u64 + 1;
        self.commits.push(StoredCommit {
            seq,
            app: commit.app.clone(),
            payload: commit.payload.clone(),
        });
        self.apps.entry(commit.app.clone()).or_default().push(seq);
        self.ids.insert(commit.commit_id, seq);
        Appended {
            seq,
            duplicate: false,
        }
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock leaves the log whole (every change is one push after
        // the checks), so a poisoned lock is still a consistent log.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl EventStore for MemoryStore {
    async fn append_batch(&self, commits: Vec<NewCommit>) -> Result<Vec<Appended>, StoreError> {
        let mut log = self.log();
        let admitted = admit_batch(
            &commits,
            |id| Ok(log.ids.get(id).copied()),
            |app| Ok(log.head(app)),
        )?;
        if let Some(originals) = admitted {
            return Ok(originals);
        }
        Ok(commits.iter().map(|commit| log.push(commit)).collect())
    }

    async fn read_app(&self, app: &AppName) -> Result<Vec<StoredCommit>, StoreError> {
        self.read_app_after(app, 0).await
    }

    async fn read_app_after(
        &self,
        app: &AppName,
        after_seq: u64,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        Ok(self.log().app_commits(app, after_seq, u64::MAX, usize::MAX))
    }

    async fn read_app_back(
        &self,
        app: &AppName,
        through: u64,
        max: usize,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        Ok(self.log().app_commits(app, 0, through, max))
    }

    async fn read_from(&self, from_seq: u64, max: usize) -> Result<Vec<StoredCommit>, StoreError> {
        let log = self.log();
        let from = usize::try_from(from_seq.max(1) - 1).unwrap_or(usize::MAX);
        Ok(log.commits.iter().skip(from).take(max).cloned().collect())
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self.log().commits.len() as u64)
    }

    async fn apps(&self) -> Result<Vec<AppName>, StoreError> {
        Ok(self.log().apps.keys().cloned().collect())
    }
}

/// Read models' databases in memory, with the full `ModelStore` contract, for tests. Clones share
/// the databases, so a test can open models again over what an earlier value wrote.
#[derive(Clone, Default)]
pub struct MemoryModels {
    databases: Arc<Mutex<BTreeMap<String, MemoryDb>>>,
    /// What this store's names are prefixed with among `databases`: empty, or the staging
    /// store's `rebuild.staging/` (under its parent's prefix).
    prefix: String,
}

const STAGING: &str = "rebuild.staging";

/// One database of a [`MemoryModels`]. A handle to a removed one writes to nothing that stays.
#[derive(Clone, Default)]
struct MemoryDb(Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>);

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change is one insert or removal, or a batch applied after it is built: a panic
    // leaves the maps consistent, so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryModels {
    pub fn new() -> MemoryModels {
        MemoryModels::default()
    }

    fn full(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Whether `key` (a full name) is database or group `full`, or in it.
    fn within(key: &str, full: &str) -> bool {
        key.strip_prefix(full)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

impl ModelStore for MemoryModels {
    fn location(&self) -> &str {
        "memory"
    }

    fn open(&self, name: &str) -> Result<Box<dyn ModelDb>, ModelError> {
        let db = locked(&self.databases)
            .entry(self.full(name))
            .or_default()
            .clone();
        Ok(Box::new(db))
    }

    fn list(&self, group: &str) -> Result<Vec<String>, ModelError> {
        let within = format!("{}/", self.full(group));
        let names: std::collections::BTreeSet<String> = locked(&self.databases)
            .keys()
            .filter_map(|key| key.strip_prefix(&within))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        Ok(names.into_iter().collect())
    }

    fn remove(&self, name: &str) -> Result<(), ModelError> {
        let full = self.full(name);
        locked(&self.databases).retain(|key, _| !Self::within(key, &full));
        Ok(())
    }

    fn ensure_room(&self, _bytes: u64) -> Result<(), ModelError> {
        Ok(())
    }

    fn staging(&self) -> Result<Box<dyn ModelStore>, ModelError> {
        self.discard_staging()?;
        Ok(Box::new(MemoryModels {
            databases: self.databases.clone(),
            prefix: self.full(&format!("{STAGING}/")),
        }))
    }

    fn switch_in_staging(&self, names: &[&str]) -> Result<(), ModelError> {
        for name in names.iter().rev() {
            self.remove(name)?;
        }
        let staging = self.full(&format!("{STAGING}/"));
        {
            let mut databases = locked(&self.databases);
            for name in names {
                let from = format!("{staging}{name}");
                let moved: Vec<String> = databases
                    .keys()
                    .filter(|key| Self::within(key, &from))
                    .cloned()
                    .collect();
                for key in moved {
                    let db = databases.remove(&key).expect("listed just now");
                    databases.insert(self.full(&key[staging.len()..]), db);
                }
            }
        }
        self.discard_staging()
    }

    fn discard_staging(&self) -> Result<(), ModelError> {
        self.remove(STAGING)
    }
}

impl ModelDb for MemoryDb {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ModelError> {
        Ok(locked(&self.0).get(key).cloned())
    }

    fn apply(&self, batch: Batch) -> Result<(), ModelError> {
        let mut rows = locked(&self.0);
        for (key, value) in batch.into_writes() {
            match value {
                Some(value) => rows.insert(key, value),
                None => rows.remove(&key),
            };
        }
        Ok(())
    }

    fn scan(&self, prefix: &[u8], order: Order) -> Rows<'_> {
        let mut rows: Vec<Row> = locked(&self.0)
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if order == Order::Descending {
            rows.reverse();
        }
        Box::new(rows.into_iter().map(Ok))
    }

    fn flush(&self) -> Result<(), ModelError> {
        Ok(())
    }
}
