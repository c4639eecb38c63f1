//! Chooses and opens the log backend from the global options.

use crate::cli::GlobalArgs;
use crate::error::CliError;
use hoist_engine::store::file::FileStore;
use hoist_engine::store::nats::{NatsOptions, NatsStore, Quarantined};
use hoist_engine::store::{Appended, EventStore, NewCommit, StoreError, StoredCommit};
use hoist_engine::AppName;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

/// How long a command waits for an embedded store another process holds.
const STORE_WAIT: Duration = Duration::from_secs(30);

pub enum Backend {
    Embedded(Box<FileStore>),
    Nats(Box<NatsStore>),
}

/// Whether opening may create a new embedded store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// A command that writes: a new store directory is created.
    Create,
    /// A command that only reads: a directory that holds no store is an error (exit 4), so a
    /// mistyped `--store` does not leave an empty store behind and answer "no apps".
    Existing,
}

/// The file every embedded store directory holds from its first opening on (the store's lock
/// file, engine `store::file::lock_dir`): how a read-only command tells a store from a typo.
const STORE_MARK: &str = "hoist.lock";

impl Backend {
    /// Opens the backend for a command that may write: a new embedded store is created.
    pub async fn open(global: &GlobalArgs) -> Result<Backend, CliError> {
        Self::open_as(global, OpenMode::Create).await
    }

    pub async fn open_as(global: &GlobalArgs, mode: OpenMode) -> Result<Backend, CliError> {
        if global.nats.is_none() && mode == OpenMode::Existing {
            let dir = store_dir(global)?;
            if !dir.join(STORE_MARK).is_file() {
                return Err(CliError::Unavailable(format!(
                    "no hoist store at {} (--store or HOIST_STORE): a command that writes, like `hoist apps create`, creates one",
                    dir.display()
                )));
            }
        }
        match &global.nats {
            Some(url) => {
                let mut options = NatsOptions::new(url.clone());
                options.stream = global.stream.clone();
                options.creds_file = global.nats_creds.clone();
                options.tls_ca_file = global.nats_tls_ca.clone();
                options.replicas = usize::from(global.replicas);
                options.commit_check = Some(hoist_engine::codec::check_commit);
                Ok(Backend::Nats(Box::new(NatsStore::connect(options).await?)))
            }
            None => Ok(Backend::Embedded(Box::new(FileStore::open(
                &store_dir(global)?,
                STORE_WAIT,
            )?))),
        }
    }

    /// The messages on the stream that this process's reads skipped as not hoist commits (NATS;
    /// none on the embedded store).
    pub fn quarantined_seen(&self) -> Vec<Quarantined> {
        match self {
            Backend::Embedded(_) => Vec::new(),
            Backend::Nats(n) => n.quarantined_seen(),
        }
    }

    /// Says once on stderr that reads skipped messages that are not hoist commits: what `status`
    /// and `audit` print instead of failing on them.
    pub fn warn_quarantined(&self) {
        let skipped = self.quarantined_seen().len();
        if skipped > 0 {
            crate::output::warn(&format!(
                "{skipped} message{} on the stream {} not hoist commits (skipped); see `hoist admin check`",
                if skipped == 1 { "" } else { "s" },
                if skipped == 1 { "is" } else { "are" },
            ));
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
            Backend::Embedded(s) => s.salvage(from_seq, max),
            Backend::Nats(n) => Ok((n.read_from(from_seq, max).await?, None)),
        }
    }

    /// Whether the backend is a single-process embedded store that a long-running reader must
    /// release between reads, so writers are not starved.
    pub fn is_embedded(&self) -> bool {
        matches!(self, Backend::Embedded(_))
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
            Backend::Embedded(s) => s.append(app, expected_last_seq, commit_id, payload).await,
            Backend::Nats(n) => n.append(app, expected_last_seq, commit_id, payload).await,
        }
    }
    async fn append_batch(&self, commits: Vec<NewCommit>) -> Result<Vec<Appended>, StoreError> {
        match self {
            Backend::Embedded(s) => s.append_batch(commits).await,
            Backend::Nats(n) => n.append_batch(commits).await,
        }
    }
    async fn read_app(&self, app: &AppName) -> Result<Vec<StoredCommit>, StoreError> {
        match self {
            Backend::Embedded(s) => s.read_app(app).await,
            Backend::Nats(n) => n.read_app(app).await,
        }
    }
    async fn read_app_after(
        &self,
        app: &AppName,
        after_seq: u64,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        match self {
            Backend::Embedded(s) => s.read_app_after(app, after_seq).await,
            Backend::Nats(n) => n.read_app_after(app, after_seq).await,
        }
    }
    async fn read_from(&self, from_seq: u64, max: usize) -> Result<Vec<StoredCommit>, StoreError> {
        match self {
            Backend::Embedded(s) => s.read_from(from_seq, max).await,
            Backend::Nats(n) => n.read_from(from_seq, max).await,
        }
    }
    async fn last_seq(&self) -> Result<u64, StoreError> {
        match self {
            Backend::Embedded(s) => s.last_seq().await,
            Backend::Nats(n) => n.last_seq().await,
        }
    }
    async fn apps(&self) -> Result<Vec<AppName>, StoreError> {
        match self {
            Backend::Embedded(s) => s.apps().await,
            Backend::Nats(n) => n.apps().await,
        }
    }
}
