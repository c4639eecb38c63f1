//! The settings a front end opens hoist with, as plain data (from flags, environment or a file),
//! and their validated form: what [`crate::Hoist::open`] runs on.

use hoist_stores::nats::NatsOptions;
use hoist_stores::StoreConfig;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// How long a command waits for an embedded store another process holds.
const STORE_WAIT: Duration = Duration::from_secs(30);

/// Which log, as given.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded store in `dir`; `None`: the platform's data dir (`…/hoist`).
    Embedded { dir: Option<PathBuf> },
    /// A NATS JetStream stream.
    Nats(NatsSettings),
}

#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub url: String,
    pub stream: String,
    /// A credentials file (JWT + nkey seed).
    pub creds_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) for a tls:// server.
    pub tls_ca_file: Option<PathBuf>,
    /// Replicas of the stream (and of the claims) when hoist creates them.
    pub replicas: usize,
}

/// Everything hoist needs to know to open a store, as given.
#[derive(Debug, Clone)]
pub struct Config {
    pub backend: Backend,
    /// Where a NATS stream's read models are cached; `None`: the platform's cache dir.
    pub cache: Option<PathBuf>,
    /// The key file that seals secret config; `None`: the platform's config dir
    /// (`…/hoist/secret.key`).
    pub secret_key_file: Option<PathBuf>,
}

/// [`Config`], validated and with its defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub log: Log,
    pub cache: Option<PathBuf>,
    pub secret_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub(crate) enum Log {
    Embedded { dir: PathBuf },
    Nats(NatsSettings),
}

impl Settings {
    pub fn of(config: Config) -> Result<Self> {
        let log = match config.backend {
            Backend::Embedded { dir: Some(dir) } => Log::Embedded { dir },
            Backend::Embedded { dir: None } => Log::Embedded {
                dir: dirs::data_dir().map(|d| d.join("hoist")).ok_or_else(|| {
                    Error::unavailable(
                        "--store: no platform data dir; set --store DIR or HOIST_STORE",
                    )
                })?,
            },
            Backend::Nats(nats) => {
                if !(1..=5).contains(&nats.replicas) {
                    return Err(Error::rejected(format!(
                        "invalid replicas {}: must be 1 to 5",
                        nats.replicas
                    )));
                }
                Log::Nats(nats)
            }
        };
        Ok(Settings {
            log,
            cache: config.cache,
            secret_key_file: config.secret_key_file,
        })
    }

    /// The log's `StoreConfig`.
    pub fn store_config(&self) -> StoreConfig {
        match &self.log {
            Log::Embedded { dir } => StoreConfig::Embedded {
                dir: dir.clone(),
                wait: STORE_WAIT,
            },
            Log::Nats(nats) => StoreConfig::Nats(self.nats_options(nats)),
        }
    }

    pub fn nats_options(&self, nats: &NatsSettings) -> NatsOptions {
        let mut options = NatsOptions::new(nats.url.clone());
        options.stream = nats.stream.clone();
        // issue 15: each stream its own subjects, so streams share a server.
        options.subject_prefix = hoist_stores::nats::subject_prefix_for(&nats.stream);
        options.creds_file = nats.creds_file.clone();
        options.tls_ca_file = nats.tls_ca_file.clone();
        options.replicas = nats.replicas;
        options.commit_check = Some(hoist_engine::codec::check_commit);
        options
    }

    /// The secret key file.
    pub fn secret_key_path(&self) -> Result<PathBuf> {
        if let Some(path) = &self.secret_key_file {
            return Ok(path.clone());
        }
        dirs::config_dir()
            .map(|d| d.join("hoist").join("secret.key"))
            .ok_or_else(|| Error::rejected("secret key: no config dir; set HOIST_SECRET_KEY_FILE"))
    }

    pub fn is_nats(&self) -> bool {
        matches!(self.log, Log::Nats(_))
    }
}
