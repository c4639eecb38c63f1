//! The embedded backend: one sled database in a directory, one tree, keys by prefix:
//!
//! | key | value |
//! |---|---|
//! | `L` seq | app name (length-prefixed) + payload: the log |
//! | `A` app `\0` seq | empty: the app's commits, for reading one app without a scan of all |
//! | `H` app | seq of the app's last commit: the optimistic-concurrency check |
//! | `C` commit id | seq: idempotency |
//! | `M` | seq of the last commit |
//!
//! sled allows one process per directory. hoist takes its own lock file first and *waits* for it
//! (bounded), so several CLI processes share a store by taking turns instead of failing.

use super::{Appended, EventStore, StoreError, StoredCommit};
use crate::names::AppName;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

const LAST_SEQ_KEY: &[u8] = b"M";

pub struct SledStore {
    // Field order is drop order: sled's own file lock goes before ours.
    db: sled::Db,
    _lock: File,
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`, waiting up to `wait` while another process
    /// holds it.
    pub fn open(dir: &Path, wait: Duration) -> Result<Self, StoreError> {
        let io = |what: &str, e: std::io::Error| {
            StoreError::Unavailable(format!("{what} {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create store directory", e))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("hoist.lock"))
            .map_err(|e| io("cannot open lock file in", e))?;
        let started = Instant::now();
        let busy = || StoreError::Busy {
            path: dir.into(),
            waited: started.elapsed(),
        };
        let mut pause = Duration::from_millis(1);
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => {}
                Err(std::fs::TryLockError::WouldBlock) => return Err(busy()),
                Err(std::fs::TryLockError::Error(e)) => return Err(io("cannot lock store", e)),
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        loop {
            match sled::Config::new().path(dir.join("sled")).open() {
                Ok(db) => return Ok(SledStore { db, _lock: lock }),
                // A previous holder's sled threads can outlive its release of our lock by a moment.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && started.elapsed() < wait =>
                {
                    std::thread::sleep(pause);
                }
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    return Err(busy())
                }
                Err(e) => return Err(sled_error(e)),
            }
        }
    }

    fn append_sync(
        &self,
        app: &AppName,
        expected_last_seq: u64,
        commit_id: Uuid,
        payload: &[u8],
    ) -> Result<Appended, StoreError> {
        let head_key = key(b'H', app.as_str().as_bytes());
        let id_key = key(b'C', commit_id.as_bytes());
        let result = self.db.transaction(|tx| {
            if let Some(seq) = tx.get(&id_key)? {
                return Ok(Appended {
                    seq: decode_seq(&seq),
                    duplicate: true,
                });
            }
            let actual = tx.get(&head_key)?.map_or(0, |v| decode_seq(&v));
            if actual != expected_last_seq {
                return Err(ConflictableTransactionError::Abort(StoreError::Conflict {
                    app: app.clone(),
                    expected: expected_last_seq,
                    actual,
                }));
            }
            let seq = tx.get(LAST_SEQ_KEY)?.map_or(0, |v| decode_seq(&v)) + 1;
            let seq_bytes = seq.to_be_bytes();
            let mut entry = Vec::with_capacity(1 + app.as_str().len() + payload.len());
            entry.push(app.as_str().len() as u8);
            entry.extend_from_slice(app.as_str().as_bytes());
            entry.extend_from_slice(payload);
            tx.insert(key(b'L', &seq_bytes), entry)?;
            tx.insert(app_key(app, seq), &[][..])?;
            tx.insert(head_key.as_slice(), &seq_bytes[..])?;
            tx.insert(id_key.as_slice(), &seq_bytes[..])?;
            tx.insert(LAST_SEQ_KEY, &seq_bytes[..])?;
            Ok(Appended {
                seq,
                duplicate: false,
            })
        });
        let appended = match result {
            Ok(appended) => appended,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(sled_error(e)),
        };
        // Acknowledge only what is on disk.
        self.db.flush().map_err(sled_error)?;
        Ok(appended)
    }

    fn get_commit(&self, seq: u64) -> Result<StoredCommit, StoreError> {
        let entry = self
            .db
            .get(key(b'L', &seq.to_be_bytes()))
            .map_err(sled_error)?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("log entry {seq} is indexed but missing"))
            })?;
        decode_entry(seq, &entry)
    }
}

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(prefix);
    key.extend_from_slice(rest);
    key
}

fn app_prefix(app: &AppName) -> Vec<u8> {
    let mut prefix = key(b'A', app.as_str().as_bytes());
    prefix.push(0);
    prefix
}

fn app_key(app: &AppName, seq: u64) -> Vec<u8> {
    let mut key = app_prefix(app);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn decode_seq(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(buf)
}

fn decode_entry(seq: u64, entry: &[u8]) -> Result<StoredCommit, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("log entry {seq} is malformed"));
    let (&len, rest) = entry.split_first().ok_or_else(corrupt)?;
    let len = usize::from(len);
    if rest.len() < len {
        return Err(corrupt());
    }
    let app = std::str::from_utf8(&rest[..len])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(corrupt)?;
    Ok(StoredCommit {
        seq,
        app,
        payload: rest[len..].to_vec(),
    })
}

fn sled_error(e: sled::Error) -> StoreError {
    StoreError::Unavailable(format!("sled: {e}"))
}

impl EventStore for SledStore {
    async fn append(
        &self,
        app: &AppName,
        expected_last_seq: u64,
        commit_id: Uuid,
        payload: Vec<u8>,
    ) -> Result<Appended, StoreError> {
        self.append_sync(app, expected_last_seq, commit_id, &payload)
    }

    async fn read_app(&self, app: &AppName) -> Result<Vec<StoredCommit>, StoreError> {
        self.db
            .scan_prefix(app_prefix(app))
            .keys()
            .map(|k| self.get_commit(decode_seq(&k.map_err(sled_error)?)))
            .collect()
    }

    async fn read_from(&self, from_seq: u64, max: usize) -> Result<Vec<StoredCommit>, StoreError> {
        let start = key(b'L', &from_seq.max(1).to_be_bytes());
        self.db
            .range(start..key(b'M', &[]))
            .take(max)
            .map(|kv| {
                let (k, v) = kv.map_err(sled_error)?;
                decode_entry(decode_seq(&k[1..]), &v)
            })
            .collect()
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .db
            .get(LAST_SEQ_KEY)
            .map_err(sled_error)?
            .map_or(0, |v| decode_seq(&v)))
    }

    async fn apps(&self) -> Result<Vec<AppName>, StoreError> {
        self.db
            .scan_prefix([b'H'])
            .keys()
            .map(|k| {
                let k = k.map_err(sled_error)?;
                std::str::from_utf8(&k[1..])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt("malformed app head key".into()))
            })
            .collect()
    }
}
