//! Where the read models live and how a command gets them caught up. In sled mode they sit in
//! the store directory (`DIR/projections`), under the store's lock: opened only once the store
//! is held, dropped before it is released. In NATS mode they are a disposable local cache
//! (`--cache DIR`, default the platform cache dir), one directory per server and stream identity
//! (a stream created again under the same name gets a fresh cache), under a lock of its own.

use crate::backend::store_dir;
use crate::cli::GlobalArgs;
use crate::error::CliError;
use hoist_projections::store::{ProjectionStore, PARTITION_SIZE};
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
    match log {
        AnyStore::Embedded(_) => Ok(ProjectionStore::open(
            &store_dir(global)?.join("projections"),
            PARTITION_SIZE,
        )?),
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
            Ok(ProjectionStore::open_exclusive(
                &base.join(format!("nats-{key}")),
                PARTITION_SIZE,
                CACHE_WAIT,
            )?)
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
