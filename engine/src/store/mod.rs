//! The log: the `EventStore` trait every backend implements and the conformance suite each passes.
//! The backends themselves (the embedded file, NATS JetStream, in memory) live in `hoist-stores`:
//! the engine does no I/O. A store moves opaque commit payloads; it never decodes them, so it can
//! be measured against its raw medium.
//! (The NATS store, whose subjects others can publish on, may be handed a check of what is a
//! commit, `NatsOptions::commit_check`, to quarantine the rest; the codec stays the caller's.)
//!
//! **Invariant**: every append states the app's expected last sequence and carries an idempotency
//! key. There is no unconditional append.
//!
//! `append_batch` stores several commits, of any apps, all or none: an import is one batch, so a
//! process killed in the middle of one leaves the log as it was.

pub mod conformance;

use crate::names::AppName;
use std::future::Future;
use std::ops::ControlFlow;
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

/// One commit of an [`EventStore::append_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommit {
    pub app: AppName,
    /// The app's last sequence before the batch (0: no commits), the same for every commit of
    /// that app in the batch: its later commits follow its earlier ones.
    pub expected_last_seq: u64,
    pub commit_id: Uuid,
    pub payload: Vec<u8>,
}

/// Why a batch is malformed, whatever the store holds: checked by every backend before it writes.
pub fn check_batch(commits: &[NewCommit]) -> Result<(), StoreError> {
    let mut ids = std::collections::HashSet::new();
    let mut expected = std::collections::HashMap::new();
    for commit in commits {
        if !ids.insert(commit.commit_id) {
            return Err(StoreError::Refused(format!(
                "commit id {} appears twice in one batch",
                commit.commit_id
            )));
        }
        let first = *expected
            .entry(&commit.app)
            .or_insert(commit.expected_last_seq);
        if first != commit.expected_last_seq {
            return Err(StoreError::Refused(format!(
                "app {} is expected at sequence {first} and at {} in one batch",
                commit.app, commit.expected_last_seq
            )));
        }
    }
    Ok(())
}

/// A batch checked against what the store holds, before anything is written (for backends that
/// index the log in memory): `Ok(Some(originals))` when every commit id is already stored (a retry
/// after a lost acknowledgement), `Ok(None)` when the whole batch may be appended, or why nothing
/// may. `stored` gives a commit id's sequence, `head` an app's last sequence; either may fail (a
/// lookup in an index file), and fails the batch before anything is written.
pub fn admit_batch(
    commits: &[NewCommit],
    stored: impl Fn(&Uuid) -> Result<Option<u64>, StoreError>,
    head: impl Fn(&AppName) -> Result<u64, StoreError>,
) -> Result<Option<Vec<Appended>>, StoreError> {
    check_batch(commits)?;
    let stored: Vec<Option<u64>> = commits
        .iter()
        .map(|c| stored(&c.commit_id))
        .collect::<Result<_, _>>()?;
    if !commits.is_empty() && stored.iter().all(Option::is_some) {
        // A retry of a batch that was stored: answer with the originals.
        return Ok(Some(
            stored
                .into_iter()
                .flatten()
                .map(|seq| Appended {
                    seq,
                    duplicate: true,
                })
                .collect(),
        ));
    }
    let already = commits
        .iter()
        .zip(&stored)
        .find_map(|(c, s)| s.map(|s| (c, s)));
    if let Some((commit, seq)) = already {
        return Err(StoreError::Refused(format!(
            "commit id {} is already stored (log seq {seq}): a batch is stored whole or not at all",
            commit.commit_id
        )));
    }
    // Every expectation is checked before anything is stored: all or none.
    for commit in commits {
        let actual = head(&commit.app)?;
        if actual != commit.expected_last_seq {
            return Err(StoreError::Conflict {
                app: commit.app.clone(),
                expected: commit.expected_last_seq,
                actual,
            });
        }
    }
    Ok(None)
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
    /// The store will not take this append as asked (a malformed batch, one over the backend's
    /// limits); nothing was stored.
    #[error("{0}")]
    Refused(String),
    /// The backend refuses a commit this large (a NATS server's or stream's size limit).
    #[error("{0}")]
    TooLarge(String),
    /// The backend does not let this process use the log (a NATS user without the permissions);
    /// nothing was stored.
    #[error("{0}")]
    Denied(String),
}

/// The longest window of a [`read_back`]: what it holds in memory at once.
const READ_BACK_MAX_WINDOW: usize = 16_384;

/// Reads the log newest first from `through` back (issue 15: a query costs what its answer
/// costs): `app`'s own commits when given ([`EventStore::read_app_back`]), else windows of the
/// whole log's sequences (on NATS some may be quarantined messages). The first window is
/// `first` long, each next one four times longer, up to [`READ_BACK_MAX_WINDOW`]. `visit` gets
/// each window's commits newest first; the first `Break` ends the read with its value, the log's
/// start with `None`.
pub async fn read_back<S: EventStore, B, E: From<StoreError>>(
    store: &S,
    app: Option<&AppName>,
    mut through: u64,
    first: usize,
    mut visit: impl FnMut(Vec<StoredCommit>) -> Result<ControlFlow<B>, E>,
) -> Result<Option<B>, E> {
    let mut window = first.max(1);
    while through > 0 {
        let (mut commits, before) = match app {
            Some(app) => {
                let commits = store.read_app_back(app, through, window).await?;
                let before = match commits.first() {
                    Some(oldest) if commits.len() == window => oldest.seq - 1,
                    _ => 0,
                };
                (commits, before)
            }
            None => {
                let start = through.saturating_sub(window as u64);
                let mut commits = store
                    .read_from(start + 1, (through - start) as usize)
                    .await?;
                commits.retain(|c| c.seq <= through);
                (commits, start)
            }
        };
        commits.reverse();
        if let ControlFlow::Break(found) = visit(commits)? {
            return Ok(Some(found));
        }
        through = before;
        window = window.saturating_mul(4).min(READ_BACK_MAX_WINDOW);
    }
    Ok(None)
}

/// A backend of the log.
pub trait EventStore: Send + Sync {
    /// Appends one commit to `app` if the app's last sequence is still `expected_last_seq`
    /// (0: the app has no commits). A `commit_id` already stored is not stored again.
    ///
    /// By default a batch of one: a backend implements `append_batch`, and overrides this only
    /// where one commit has a cheaper path of its own (NATS: one publish, no batch).
    fn append(
        &self,
        app: &AppName,
        expected_last_seq: u64,
        commit_id: Uuid,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send {
        let commit = NewCommit {
            app: app.clone(),
            expected_last_seq,
            commit_id,
            payload,
        };
        async move {
            let mut appended = self.append_batch(vec![commit]).await?;
            match appended.pop() {
                Some(one) if appended.is_empty() => Ok(one),
                _ => Err(StoreError::Refused(
                    "a batch of one commit was not stored as one".into(),
                )),
            }
        }
    }

    /// Appends every commit of `commits`, in order, or none: each app's first commit in the batch
    /// only if that app's last sequence is still its `expected_last_seq`. The commits get
    /// contiguous sequences. A commit id repeated within the batch, or one already stored while
    /// others are not, is [`StoreError::Refused`]; a batch whose every commit id is already stored
    /// (a retry after a lost acknowledgement) returns the stored sequences as duplicates.
    ///
    /// A backend that cannot do this atomically keeps this default, which refuses every batch:
    /// refusing is safe, storing part of one is not.
    fn append_batch(
        &self,
        commits: Vec<NewCommit>,
    ) -> impl Future<Output = Result<Vec<Appended>, StoreError>> + Send {
        let _ = commits;
        async {
            Err(StoreError::Refused(
                "this store cannot append a batch atomically".to_string(),
            ))
        }
    }

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

    /// `app`'s newest commits with `seq <= through`, at most `max` of them, in order: how a query
    /// reads an app's history newest first from the log itself (issue 15), costing what its
    /// answer costs. Backends with a per-app index answer from it; the default reads windows of
    /// the log's sequences back from `through`, the first `max` long (all of it may be the
    /// app's), each four times the last, until they hold `max`.
    fn read_app_back(
        &self,
        app: &AppName,
        through: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<StoredCommit>, StoreError>> + Send {
        async move {
            let mut window = (max as u64).max(1);
            loop {
                let after = through.saturating_sub(window);
                let mut commits = self.read_app_after(app, after).await?;
                commits.retain(|c| c.seq <= through);
                if commits.len() >= max || after == 0 {
                    let surplus = commits.len().saturating_sub(max);
                    commits.drain(..surplus);
                    return Ok(commits);
                }
                window = window.saturating_mul(4);
            }
        }
    }

    /// Up to `max` commits of the whole log with `seq >= from_seq`, in order.
    fn read_from(
        &self,
        from_seq: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<StoredCommit>, StoreError>> + Send;

    /// The commit at log sequence `seq`, if the log holds one there (issue 15: what a snapshot
    /// is checked against, where a record left out of one is read back from). By default a
    /// `read_from` of one commit.
    fn read_commit(
        &self,
        seq: u64,
    ) -> impl Future<Output = Result<Option<StoredCommit>, StoreError>> + Send {
        async move {
            let mut page = self.read_from(seq, 1).await?;
            Ok(page.pop().filter(|c| c.seq == seq))
        }
    }

    /// The sequence of the last commit in the log (0 when empty).
    fn last_seq(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every app with at least one commit, by name.
    fn apps(&self) -> impl Future<Output = Result<Vec<AppName>, StoreError>> + Send;
}
