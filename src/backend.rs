//! Chooses and opens the log backend from the global options.

use crate::cli::GlobalArgs;
use crate::error::CliError;
use hoist_engine::store::sled::SledStore;
use hoist_engine::store::{Appended, EventStore, StoreError, StoredCommit};
use hoist_engine::AppName;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

/// How long a command waits for an embedded store another process holds.
const STORE_WAIT: Duration = Duration::from_secs(30);

pub enum Backend {
    Sled(SledStore),
}

impl Backend {
    pub async fn open(global: &GlobalArgs) -> Result<Backend, CliError> {
        if global.nats.is_some() {
            return Err(CliError::Unavailable(
                "--nats: the NATS backend is not built into this hoist yet".into(),
            ));
        }
        Ok(Backend::Sled(SledStore::open(
            &store_dir(global)?,
            STORE_WAIT,
        )?))
    }

    /// Whether the backend is a single-process embedded store that a long-running reader must
    /// release between reads, so writers are not starved.
    pub fn is_embedded(&self) -> bool {
        matches!(self, Backend::Sled(_))
    }
}

pub fn store_dir(global: &GlobalArgs) -> Result<PathBuf, CliError> {
    match &global.store {
        Some(dir) => Ok(dir.clone()),
        None => dirs::data_dir().map(|d| d.join("hoist")).ok_or_else(|| {
            CliError::Unavailable(
                "--store: no platform data dir; set --store DIR or HOIST_STORE".into(),
            )
        }),
    }
}

impl EventStore for Backend {
    async fn append(
        &self,
        app: &AppName,
        expected_last_seq: u64,
        commit_id: Uuid,
        payload: Vec<u8>,
    ) -> Result<Appended, StoreError> {
        match self {
            Backend::Sled(s) => s.append(app, expected_last_seq, commit_id, payload).await,
        }
    }
    async fn read_app(&self, app: &AppName) -> Result<Vec<StoredCommit>, StoreError> {
        match self {
            Backend::Sled(s) => s.read_app(app).await,
        }
    }
    async fn read_app_after(
        &self,
        app: &AppName,
        after_seq: u64,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        match self {
            Backend::Sled(s) => s.read_app_after(app, after_seq).await,
        }
    }
    async fn read_from(&self, from_seq: u64, max: usize) -> Result<Vec<StoredCommit>, StoreError> {
        match self {
            Backend::Sled(s) => s.read_from(from_seq, max).await,
        }
    }
    async fn last_seq(&self) -> Result<u64, StoreError> {
        match self {
            Backend::Sled(s) => s.last_seq().await,
        }
    }
    async fn apps(&self) -> Result<Vec<AppName>, StoreError> {
        match self {
            Backend::Sled(s) => s.apps().await,
        }
    }
}
