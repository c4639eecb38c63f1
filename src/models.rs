//! Where the read models live and how a command gets them caught up. In sled mode they sit in
//! the store directory (`DIR/projections`), under the store's lock: opened only once the store
//! is held, dropped before it is released. In NATS mode they are a disposable local cache
//! (`--cache DIR`, default the platform cache dir), one directory per server and stream identity
//! (a stream created again under the same name gets a fresh cache), under a lock of its own.

use crate::backend::store_dir;
use crate::cli::GlobalArgs;
use crate::error::CliError;
use hoist_projections::store::{ProjectionError, ProjectionStore, PARTITION_SIZE};
use hoist_stores::models::SledModels;
use hoist_stores::AnyStore;

/// How long a command waits for a NATS cache another process holds.
const CACHE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Opens the read models of the configured backend (the caller holds `log`). Models found
/// unreadable are thrown away and folded again from the log; a warning says so.
pub fn open(global: &GlobalArgs, log: &AnyStore) -> Result<ProjectionStore, CliError> {
    let models = open_as_stored(global, log)?;
    if let Some(why) = models.recovered() {
        crate::output::warn(&format!(
            "the read models were unreadable ({why}); folding them again from the log"
        ));
    }
    Ok(models)
}

fn open_as_stored(global: &GlobalArgs, log: &AnyStore) -> Result<ProjectionStore, CliError> {
    Ok(open_at(&location(global, log)?)?)
}

fn open_at(location: &Location) -> Result<ProjectionStore, ProjectionError> {
    match location {
        Location::InStore(dir) => open_in(dir),
        Location::Cache(dir) => ProjectionStore::new(
            Box::new(SledModels::open_exclusive(dir, CACHE_WAIT)?),
            PARTITION_SIZE,
        ),
    }
}

/// The read models in `dir`, which the caller holds (under the embedded store's lock, or a
/// scratch directory of its own).
pub fn open_in(dir: &std::path::Path) -> Result<ProjectionStore, ProjectionError> {
    ProjectionStore::new(Box::new(SledModels::open(dir)?), PARTITION_SIZE)
}

/// For `admin rebuild`: the read models, and when they cannot even be opened (whatever sled
/// says of them), empty ones in their place — they are about to be folded again anyway. A full
/// disk or a busy store is still an error.
pub fn open_or_discard(global: &GlobalArgs, log: &AnyStore) -> Result<ProjectionStore, CliError> {
    let location = location(global, log)?;
    match open_at(&location) {
        Ok(models) => return Ok(models),
        Err(e @ (ProjectionError::DiskFull { .. } | ProjectionError::Store(_))) => {
            return Err(e.into())
        }
        Err(e) => crate::output::warn(&format!(
            "the read models cannot be opened ({e}); starting them afresh"
        )),
    }
    let (Location::InStore(dir) | Location::Cache(dir)) = &location;
    for name in ["state", "history"] {
        let path = dir.join(name);
        let removed = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        removed
            .map_err(|e| CliError::Unavailable(format!("cannot remove {}: {e}", path.display())))?;
    }
    Ok(open_at(&location)?)
}

/// Where the read models of the configured backend live.
enum Location {
    /// In the embedded store's directory, under its lock.
    InStore(std::path::PathBuf),
    /// In a cache directory of their own, under a lock of their own.
    Cache(std::path::PathBuf),
}

fn location(global: &GlobalArgs, log: &AnyStore) -> Result<Location, CliError> {
    match log {
        AnyStore::Embedded(_) => Ok(Location::InStore(store_dir(global)?.join("projections"))),
        AnyStore::Nats(nats) => {
            let base = match &global.cache {
                Some(dir) => dir.clone(),
                None => dirs::cache_dir().map(|d| d.join("hoist")).ok_or_else(|| {
                    CliError::Unavailable("--cache: no platform cache dir; set --cache DIR".into())
                })?,
            };
            use sha2::Digest;
            let key = sha2::Sha256::digest(nats.identity().0.as_bytes());
            let key: String = key[..10].iter().map(|b| format!("{b:02x}")).collect();
            Ok(Location::Cache(base.join(format!("nats-{key}"))))
        }
    }
}

/// Opens the read models with the state model caught up: what `status`, `audit` and `releases`
/// start from.
pub async fn caught_up(global: &GlobalArgs, log: &AnyStore) -> Result<ProjectionStore, CliError> {
    let mut models = open(global, log)?;
    models.catch_up_state(log).await?;
    Ok(models)
}

/// After a command appended: fold it now, while the log is open anyway, so the next query finds
/// the models current without opening the log. A failure here loses nothing (the next command
/// catches up), so it is a warning, not the command's failure.
pub async fn fold_new_events(global: &GlobalArgs, log: &AnyStore) {
    let result = async {
        let mut models = open(global, log)?;
        models.catch_up(log, &mut |_, _| {}).await?;
        Ok::<_, CliError>(())
    }
    .await;
    if let Err(e) = result {
        crate::output::warn(&format!(
            "read models not updated (the next command will): {}",
            e.message()
        ));
    }
}
