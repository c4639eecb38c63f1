//! One store chosen at run time: what a front end opens from its settings, so it never names a
//! backend's type to append or read.

use crate::file::FileStore;
use crate::nats::{NatsOptions, NatsStore, Quarantined};
use hoist_engine::store::{Appended, EventStore, NewCommit, StoreError, StoredCommit};
use hoist_engine::AppName;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

/// Which log to open, as plain data: a front end builds it from its flags or a settings file.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded log in `dir`, created if missing; `wait` bounds the wait for another process
    /// holding it.
    Embedded { dir: PathBuf, wait: Duration },
    /// A NATS JetStream stream.
    Nats(NatsOptions),
}

/// The open log, whichever backend it is.
pub enum AnyStore {
    Embedded(Box<FileStore>),
    Nats(Box<NatsStore>),
}

impl AnyStore {
    pub async fn open(config: StoreConfig) -> Result<AnyStore, StoreError> {
        Ok(match config {
            StoreConfig::Embedded { dir, wait } => {
                AnyStore::Embedded(Box::new(FileStore::open(&dir, wait)?))
            }
            StoreConfig::Nats(options) => {
                AnyStore::Nats(Box::new(NatsStore::connect(options).await?))
            }
        })
    }

    /// The messages on the stream that this process's reads skipped as not hoist commits (NATS;
    /// none on the embedded store).
    pub fn quarantined_seen(&self) -> Vec<Quarantined> {
        match self {
            AnyStore::Embedded(_) => Vec::new(),
            AnyStore::Nats(n) => n.quarantined_seen(),
        }
    }

    /// Up to `max` commits from `from_seq` on, for a backup: on an embedded log damaged in the
    /// middle, the records before the damage, with the damage said.
    pub async fn read_for_backup(
        &self,
        from_seq: u64,
        max: usize,
    ) -> Result<(Vec<StoredCommit>, Option<String>), StoreError> {
        match self {
            AnyStore::Embedded(s) => s.salvage(from_seq, max),
            AnyStore::Nats(n) => Ok((n.read_from(from_seq, max).await?, None)),
        }
    }

    /// Whether the backend is a single-process embedded store that a long-running reader must
    /// release between reads, so writers are not starved.
    pub fn is_embedded(&self) -> bool {
        matches!(self, AnyStore::Embedded(_))
    }
}

/// Runs `$call` on whichever backend `$store` holds: one line per trait method, not one match arm
/// per backend.
macro_rules! on_backend {
    ($store:expr, $backend:ident => $call:expr) => {
        match $store {
            AnyStore::Embedded($backend) => $call.await,
            AnyStore::Nats($backend) => $call.await,
        }
    };
}

impl EventStore for AnyStore {
    async fn append(
        &self,
        app: &AppName,
        expected_last_seq: u64,
        commit_id: Uuid,
        payload: Vec<u8>,
    ) -> Result<Appended, StoreError> {
        on_backend!(self, s => s.append(app, expected_last_seq, commit_id, payload))
    }
    async fn append_batch(&self, commits: Vec<NewCommit>) -> Result<Vec<Appended>, StoreError> {
        on_backend!(self, s => s.append_batch(commits))
    }
    async fn read_app(&self, app: &AppName) -> Result<Vec<StoredCommit>, StoreError> {
        on_backend!(self, s => s.read_app(app))
    }
    async fn read_app_after(
        &self,
        app: &AppName,
        after_seq: u64,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        on_backend!(self, s => s.read_app_after(app, after_seq))
    }
    async fn read_app_back(
        &self,
        app: &AppName,
        through: u64,
        max: usize,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        on_backend!(self, s => s.read_app_back(app, through, max))
    }
    async fn read_from(&self, from_seq: u64, max: usize) -> Result<Vec<StoredCommit>, StoreError> {
        on_backend!(self, s => s.read_from(from_seq, max))
    }
    async fn last_seq(&self) -> Result<u64, StoreError> {
        on_backend!(self, s => s.last_seq())
    }
    async fn apps(&self) -> Result<Vec<AppName>, StoreError> {
        on_backend!(self, s => s.apps())
    }
}
