//! Builds the log's `StoreConfig` from the global options and opens it; a read-only command does
//! not create a store.

use crate::cli::GlobalArgs;
use crate::error::CliError;
use hoist_stores::nats::NatsOptions;
use hoist_stores::{AnyStore, StoreConfig};
use std::path::PathBuf;
use std::time::Duration;

/// How long a command waits for an embedded store another process holds.
const STORE_WAIT: Duration = Duration::from_secs(30);

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
/// file, stores `file::lock_dir`): how a read-only command tells a store from a typo.
const STORE_MARK: &str = "hoist.lock";

/// Opens the backend for a command that may write: a new embedded store is created.
pub async fn open(global: &GlobalArgs) -> Result<AnyStore, CliError> {
    open_as(global, OpenMode::Create).await
}

pub async fn open_as(global: &GlobalArgs, mode: OpenMode) -> Result<AnyStore, CliError> {
    let config = config(global)?;
    if let (StoreConfig::Embedded { dir, .. }, OpenMode::Existing) = (&config, mode) {
        if !dir.join(STORE_MARK).is_file() {
            return Err(CliError::Unavailable(format!(
                "no hoist store at {} (--store or HOIST_STORE): a command that writes, like `hoist apps create`, creates one",
                dir.display()
            )));
        }
    }
    Ok(AnyStore::open(config).await?)
}

/// The log the global options name.
fn config(global: &GlobalArgs) -> Result<StoreConfig, CliError> {
    Ok(match &global.nats {
        Some(url) => {
            let mut options = NatsOptions::new(url.clone());
            options.stream = global.stream.clone();
            options.creds_file = global.nats_creds.clone();
            options.tls_ca_file = global.nats_tls_ca.clone();
            options.replicas = usize::from(global.replicas);
            options.commit_check = Some(hoist_engine::codec::check_commit);
            StoreConfig::Nats(options)
        }
        None => StoreConfig::Embedded {
            dir: store_dir(global)?,
            wait: STORE_WAIT,
        },
    })
}

/// Says once on stderr that reads skipped messages that are not hoist commits: what `status`
/// and `audit` print instead of failing on them.
pub fn warn_quarantined(store: &AnyStore) {
    let skipped = store.quarantined_seen().len();
    if skipped > 0 {
        crate::output::warn(&format!(
            "{skipped} message{} on the stream {} not hoist commits (skipped); see `hoist admin check`",
            if skipped == 1 { "" } else { "s" },
            if skipped == 1 { "is" } else { "are" },
        ));
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
