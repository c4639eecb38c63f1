//! Where the read models live and how a command gets them caught up. In sled mode they sit in
//! the store directory (`DIR/projections`), under the store's lock: opened only once the store
//! is held, dropped before it is released.

use crate::backend::{store_dir, Backend};
use crate::cli::GlobalArgs;
use crate::error::CliError;
use hoist_projections::store::{ProjectionStore, PARTITION_SIZE};

/// Opens the read models of the configured backend (the caller holds `log`).
pub fn open(global: &GlobalArgs, log: &Backend) -> Result<ProjectionStore, CliError> {
    let dir = match log {
        Backend::Sled(_) => store_dir(global)?.join("projections"),
    };
    Ok(ProjectionStore::open(&dir, PARTITION_SIZE)?)
}

/// Opens the read models with the state model caught up: what `status`, `audit` and `releases`
/// start from.
pub async fn caught_up(global: &GlobalArgs, log: &Backend) -> Result<ProjectionStore, CliError> {
    let mut models = open(global, log)?;
    models.catch_up_state(log).await?;
    Ok(models)
}

/// After a command appended: fold it now, while the log is open anyway, so the next query finds
/// the models current without opening the log. A failure here loses nothing (the next command
/// catches up), so it is a warning, not the command's failure.
pub async fn fold_new_events(global: &GlobalArgs, log: &Backend) {
    let result = async {
        let mut models = open(global, log)?;
        models.catch_up(log, &mut |_, _| {}).await?;
        Ok::<_, CliError>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!(
            "hoist: warning: read models not updated (the next command will): {}",
            e.message()
        );
    }
}
