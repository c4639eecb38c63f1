//! What a health probe and a metrics scrape ask of the store: how far the log goes and how far
//! the read models have folded it. Numbers only, naming no app: they need no principal.

use crate::error::Result;
use crate::store::OpenMode;
use crate::Hoist;
use hoist_engine::store::EventStore;

/// The log's end and the read models' place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogState {
    /// The log's last sequence (0: empty).
    pub last_seq: u64,
    /// The last sequence folded into the state model.
    pub models_at: u64,
}

impl LogState {
    /// Commits appended that the read models have not folded yet.
    pub fn lag(&self) -> u64 {
        self.last_seq.saturating_sub(self.models_at)
    }
}

impl Hoist {
    /// The log's last sequence: where a follower of new events only starts (past it).
    pub async fn last_seq(&self) -> Result<u64> {
        Ok(self.open_log(OpenMode::Existing).await?.last_seq().await?)
    }

    /// The log's end and the models' checkpoint, as they are (nothing folded).
    pub async fn log_state(&self) -> Result<LogState> {
        let log = self.open_log(OpenMode::Existing).await?;
        let last_seq = log.last_seq().await?;
        let models_at = self.open_models(&log)?.checkpoint()?;
        Ok(LogState {
            last_seq,
            models_at,
        })
    }

    /// Whether queries can be answered now: the log opens and the read models are brought up to
    /// its end (what every query does first). An error says why not.
    pub async fn ready(&self) -> Result<LogState> {
        let log = self.open_log(OpenMode::Existing).await?;
        let models = self.models_caught_up(&log).await?;
        let last_seq = log.last_seq().await?;
        Ok(LogState {
            last_seq,
            models_at: models.checkpoint()?,
        })
    }
}
