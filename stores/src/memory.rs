//! A log in memory with the full `EventStore` contract (batches included), for tests and for
//! anything that needs a store without a disk or a server. Nothing survives the value.

use hoist_engine::store::{admit_batch, Appended, EventStore, NewCommit, StoreError, StoredCommit};
use hoist_engine::AppName;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
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
        let admitted = admit_batch(&commits, |id| log.ids.get(id).copied(), |app| log.head(app))?;
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
        let log = self.log();
        let seqs = log.apps.get(app).map(Vec::as_slice).unwrap_or_default();
        let first = seqs.partition_point(|&seq| seq <= after_seq);
        Ok(seqs[first..]
            .iter()
            .map(|&seq| log.commits[seq as usize - 1].clone())
            .collect())
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
