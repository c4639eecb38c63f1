//! Opening the log and the read models. A read-only query does not create a store. In embedded
//! mode the read models sit in the store directory (`DIR/projections`), under the store's lock:
//! opened only once the store is held, dropped before it is released. In NATS mode they are a
//! disposable local cache (`cache` dir, default the platform cache dir), one directory per
//! server and stream identity (a stream created again under the same name gets a fresh cache),
//! under a lock of its own.

use crate::config::Log;
use crate::error::{Error, Result};
use crate::Hoist;
use hoist_engine::models::ModelStore;
use hoist_projections::store::{ProjectionError, ProjectionStore, Sizes};
use hoist_stores::models::SledModels;
use hoist_stores::shared::SharedModels;
use hoist_stores::snapshots::SnapshotDir;
use hoist_stores::AnyStore;
use std::path::PathBuf;
use std::time::Duration;

/// issue 15: a writer shares the state model whenever its checkpoint passes a multiple of this
/// many log sequences, so a fresh cache folds at most about this many commits after it.
const SHARE_EVERY: u64 = 1024;
/// The key of the shared state model (`SharedModels`).
const SHARED_STATE: &str = "state";

/// How long a command waits for a NATS cache another process holds.
const CACHE_WAIT: Duration = Duration::from_secs(30);

/// The file every embedded store directory holds from its first opening on (the store's lock
/// file, stores `file::lock_dir`): how a read-only query tells a store from a typo.
const STORE_MARK: &str = "hoist.lock";

/// Whether opening may create a new embedded store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// A command that writes: a new store directory is created.
    Create,
    /// A query: a directory that holds no store is an error (unavailable), so a mistyped
    /// `--store` does not leave an empty store behind and answer "no apps".
    Existing,
}

/// Where the read models of the configured backend live.
enum Location {
    /// In the embedded store's directory, under its lock.
    InStore(PathBuf),
    /// In a cache directory of their own, under a lock of their own.
    Cache(PathBuf),
}

impl Hoist {
    /// Opens the log.
    pub(crate) async fn open_log(&self, mode: OpenMode) -> Result<AnyStore> {
        if let (Log::Embedded { dir }, OpenMode::Existing) = (&self.settings.log, mode) {
            if !dir.join(STORE_MARK).is_file() {
                return Err(Error::unavailable(format!(
                    "no hoist store at {} (--store or HOIST_STORE): a command that writes, like `hoist apps create`, creates one",
                    dir.display()
                )));
            }
        }
        let config = self.settings.store_config();
        Ok(match config {
            // Taking the store's lock may wait (another process, or another task of this one,
            // holds it): a wait that must not hold up the runtime's other tasks.
            hoist_stores::StoreConfig::Embedded { dir, wait } => {
                AnyStore::Embedded(Box::new(waiting(|| {
                    hoist_stores::file::FileStore::open(&dir, wait)
                })?))
            }
            hoist_stores::StoreConfig::Nats(_) => AnyStore::open(config).await?,
        })
    }

    /// The log's last sequence when it can be known without opening the store: the embedded
    /// store's `head` while no process holds it. `None`: open the store to know.
    pub(crate) fn settled_head(&self) -> Option<u64> {
        match &self.settings.log {
            Log::Embedded { dir } => hoist_stores::file::settled_head(dir),
            Log::Nats(_) => None,
        }
    }

    /// Says once that reads skipped messages that are not hoist commits: what `status` and
    /// `audit` warn of instead of failing on them.
    pub(crate) fn warn_quarantined(&self, log: &AnyStore) {
        let skipped = log.quarantined_seen().len();
        if skipped > 0 {
            self.warn(&format!(
                "{skipped} message{} on the stream {} not hoist commits (skipped); see `hoist admin check`",
                if skipped == 1 { "" } else { "s" },
                if skipped == 1 { "is" } else { "are" },
            ));
        }
    }

    /// Opens the read models of the configured backend (the caller holds `log`). Models found
    /// unreadable are thrown away and folded again from the log; a warning says so.
    pub(crate) fn open_models(&self, log: &AnyStore) -> Result<ProjectionStore> {
        let location = self.models_location(log)?;
        let models = waiting(|| open_at(&location))?;
        if let Some(why) = models.recovered() {
            self.warn(&format!(
                "the read models were unreadable ({why}); folding them again from the log"
            ));
        }
        Ok(models)
    }

    /// For `admin rebuild`: the read models, and when they cannot even be opened (whatever sled
    /// says of them), empty ones in their place — they are about to be folded again anyway. A
    /// full disk or a busy store is still an error.
    pub(crate) fn open_models_or_discard(&self, log: &AnyStore) -> Result<ProjectionStore> {
        let location = self.models_location(log)?;
        match open_at(&location) {
            Ok(models) => return Ok(models),
            Err(e @ (ProjectionError::DiskFull { .. } | ProjectionError::Store(_))) => {
                return Err(e.into())
            }
            Err(e) => self.warn(&format!(
                "the read models cannot be opened ({e}); starting them afresh"
            )),
        }
        // Removed by renaming first, under the models' lock: a crash leaves them absent, not
        // half gone. What older formats kept beside the state model goes when the new, empty
        // one is opened.
        let models = sled_models(&location)?;
        models.remove("state").map_err(ProjectionError::from)?;
        Ok(ProjectionStore::new(Box::new(models), Sizes::DEFAULT)?)
    }

    fn models_location(&self, log: &AnyStore) -> Result<Location> {
        match (log, &self.settings.log) {
            (AnyStore::Embedded(_), Log::Embedded { dir }) => {
                Ok(Location::InStore(dir.join("projections")))
            }
            (AnyStore::Nats(nats), _) => {
                let base = match &self.settings.cache {
                    Some(dir) => dir.clone(),
                    None => dirs::cache_dir().map(|d| d.join("hoist")).ok_or_else(|| {
                        Error::unavailable("--cache: no platform cache dir; set --cache DIR")
                    })?,
                };
                use sha2::Digest;
                let key = sha2::Sha256::digest(nats.identity().0.as_bytes());
                let key: String = key[..10].iter().map(|b| format!("{b:02x}")).collect();
                Ok(Location::Cache(base.join(format!("nats-{key}"))))
            }
            (AnyStore::Embedded(_), Log::Nats(_)) => {
                unreachable!("the log is opened from these settings")
            }
        }
    }

    /// Where apps' decide-state snapshots are kept (issue 15): beside the embedded log in
    /// `DIR/snapshots`, under its lock; on NATS beside the local cache, `…/nats-<id>-snapshots`
    /// (outside the cache's lock: each snapshot is replaced whole, and checked before use).
    pub(crate) fn snapshots(&self, log: &AnyStore) -> Result<SnapshotDir> {
        Ok(match self.models_location(log)? {
            Location::InStore(_) => match &self.settings.log {
                Log::Embedded { dir } => SnapshotDir::new(dir.join("snapshots")),
                Log::Nats(_) => unreachable!("an embedded location is an embedded store's"),
            },
            Location::Cache(dir) => {
                let mut name = dir.file_name().unwrap_or_default().to_os_string();
                name.push("-snapshots");
                SnapshotDir::new(dir.with_file_name(name))
            }
        })
    }

    /// The read models with the state model caught up: what `status`, `audit` and `releases`
    /// start from.
    pub(crate) async fn models_caught_up(&self, log: &AnyStore) -> Result<ProjectionStore> {
        let mut models = self.open_models(log)?;
        self.seed_from_shared(log, &mut models).await?;
        let before = models.checkpoint()?;
        let after = models.catch_up_state(log).await?.checkpoint;
        self.share(log, &models, before, after).await?;
        Ok(models)
    }

    /// issue 15: now and then (when a catch-up passed a multiple of [`SHARE_EVERY`]), puts the
    /// state model on the NATS server for fresh caches elsewhere. Not putting it fails nothing.
    async fn share(
        &self,
        log: &AnyStore,
        models: &ProjectionStore,
        before: u64,
        after: u64,
    ) -> Result<()> {
        if let AnyStore::Nats(nats) = log {
            if after / SHARE_EVERY != before / SHARE_EVERY {
                let snapshot = models.state_snapshot(nats.stream_id())?;
                let shared = SharedModels::of(nats, self.replicas());
                if let Err(why) = shared.put(SHARED_STATE, snapshot).await {
                    self.warn(&format!("{why} (a fresh cache folds the whole stream)"));
                }
            }
        }
        Ok(())
    }

    /// issue 15: empty NATS models (a fresh cache) start from the state model shared on the
    /// server, when there is one of this stream not past its end; the log after it is folded
    /// as usual.
    async fn seed_from_shared(&self, log: &AnyStore, models: &mut ProjectionStore) -> Result<()> {
        let AnyStore::Nats(nats) = log else {
            return Ok(());
        };
        if models.checkpoint()? != 0 {
            return Ok(());
        }
        let log_end = hoist_engine::store::EventStore::last_seq(log).await?;
        if log_end == 0 {
            return Ok(());
        }
        let shared = SharedModels::of(nats, self.replicas());
        if let Some(snapshot) = shared.get(SHARED_STATE).await {
            models.seed_state(&snapshot, nats.stream_id(), log_end)?;
        }
        Ok(())
    }

    /// After a command appended: fold it now, while the log is open anyway, so the next query
    /// finds the models current without opening the log. A failure here loses nothing (the next
    /// command catches up), so it is a warning, not the command's failure.
    pub(crate) async fn fold_new_events(&self, log: &AnyStore) {
        let result = async {
            let mut models = self.open_models(log)?;
            self.seed_from_shared(log, &mut models).await?;
            let before = models.checkpoint()?;
            let after = models.catch_up_state(log).await?.checkpoint;
            self.share(log, &models, before, after).await?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = result {
            self.warn(&format!(
                "read models not updated (the next command will): {}",
                e.message()
            ));
        }
    }
}

/// Runs `wait`, which may block on a lock (the embedded store's, the NATS cache's), so that the
/// runtime's other tasks go on meanwhile: on a multi-threaded runtime (`hoist serve`, where the
/// reconciler and the HTTP API share the process) the worker hands its tasks to another thread
/// first; the holder of the lock may be one of them. On a single-threaded runtime (one CLI
/// command) there is no other task to starve.
fn waiting<T>(wait: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}

fn open_at(location: &Location) -> Result<ProjectionStore, ProjectionError> {
    ProjectionStore::new(Box::new(sled_models(location)?), Sizes::DEFAULT)
}

/// The model databases at `location`, under the cache's own lock when they are a cache.
fn sled_models(location: &Location) -> Result<SledModels, ProjectionError> {
    Ok(match location {
        Location::InStore(dir) => SledModels::open(dir)?,
        Location::Cache(dir) => SledModels::open_exclusive(dir, CACHE_WAIT)?,
    })
}

/// The read models in `dir`, which the caller holds (under the embedded store's lock, or a
/// scratch directory of its own).
#[cfg(feature = "bench")]
pub(crate) fn open_in(dir: &std::path::Path) -> Result<ProjectionStore, ProjectionError> {
    ProjectionStore::new(Box::new(SledModels::open(dir)?), Sizes::DEFAULT)
}
