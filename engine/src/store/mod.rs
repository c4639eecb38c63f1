//! The log: the `EventStore` trait every backend implements, and its backends. A store moves
//! opaque commit payloads; it never decodes them, so it can be measured against its raw medium.
//! (The NATS store, whose subjects others can publish on, may be handed a check of what is a
//! commit, `NatsOptions::commit_check`, to quarantine the rest; the codec stays the caller's.)
//!
//! **Invariant**: every append states the app's expected last sequence and carries an idempotency
//! key. There is no unconditional append.

pub mod conformance;
pub mod nats;
pub mod sled;

use crate::names::AppName;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

/// One entry of the log: one command's events, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCommit {
    /// Position in the whole log, from 1, increasing; gap-free on the embedded store (on NATS,
    /// messages that are not commits are quarantined and leave gaps).
    pub seq: u64,
    pub app: AppName,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    /// The commit id was already stored: this is the original's sequence, nothing was added.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("app {app} moved on: expected its last sequence to be {expected}, it is {actual}")]
    Conflict {
        app: AppName,
        expected: u64,
        actual: u64,
    },
    #[error("store {path} stayed busy (held by another hoist process) for {waited:?}")]
    Busy { path: PathBuf, waited: Duration },
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// The backend refuses a commit this large (a NATS server's or stream's size limit).
    #[error("{0}")]
    TooLarge(String),
}

/// A backend of the log.
pub trait EventStore: Send + Sync {
    /// Appends one commit to `app` if the app's last sequence is still `expected_last_seq`
    /// (0: the app has no commits). A `commit_id` already stored is not stored again.
    fn append(
        &self,
        app: &AppName,
        expected_last_seq: u64,
        commit_id: Uuid,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// Every commit of one app, in order.
    fn read_app(
        &self,
        app: &AppName,
    ) -> impl Future<Output = Result<Vec<StoredCommit>, StoreError>> + Send;

    /// The commits of one app with `seq > after_seq`, in order: how a cached fold catches up.
    /// Backends with a per-app index should answer this without reading the app's older commits.
    fn read_app_after(
        &self,
        app: &AppName,
        after_seq: u64,
    ) -> impl Future<Output = Result<Vec<StoredCommit>, StoreError>> + Send {
        async move {
            let mut commits = self.read_app(app).await?;
            commits.retain(|c| c.seq > after_seq);
            Ok(commits)
        }
    }

    /// Up to `max` commits of the whole log with `seq >= from_seq`, in order.
    fn read_from(
        &self,
        from_seq: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<StoredCommit>, StoreError>> + Send;

    /// The sequence of the last commit in the log (0 when empty).
    fn last_seq(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every app with at least one commit, by name.
    fn apps(&self) -> impl Future<Output = Result<Vec<AppName>, StoreError>> + Send;
}
