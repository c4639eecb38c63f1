//! The embedded store as hoist wrote it before the log file (`store::file`): one sled database in
//! `DIR/sled`. Production code only reads it, to migrate it (`read_legacy`), and uses
//! `remove_unfinished_snapshots` for the read models' sled databases; the store itself stays for
//! the migration's tests and the conformance suite. One tree, keys by prefix:
//!
//! | key | value |
//! |---|---|
//! | `L` seq | app name (length-prefixed) + payload: the log |
//! | `A` app `\0` seq | empty: the app's commits, for reading one app without a scan of all |
//! | `H` app | seq of the app's last commit: the optimistic-concurrency check |
//! | `C` commit id | seq: idempotency |
//! | `M` | seq of the last commit |
//!
//! sled allows one process per directory. hoist takes its own lock file first
//! (`file::lock_dir`) and *waits* for it (bounded), so several CLI processes take turns.
//!
//! Opening a sled database costs more the larger it is (FACTS: ≈5 ms at 1k entries, ≈20 ms at
//! 200k), so the log's database is opened lazily, on the first read or append that needs it. Its
//! last sequence is also kept in a small `head` file beside it, so a query whose read models are
//! already caught up (`last_seq` equals their checkpoint) never opens the log at all.
//! **Invariant**: while `head` exists it holds the log's last sequence. It is removed when a process
//! opens the log (it may append) and written back when that process lets go of the store; a process
//! killed in between leaves no `head`, and the next one reads the sequence from the log itself.

use hoist_engine::store::{check_batch, Appended, EventStore, NewCommit, StoreError, StoredCommit};
use hoist_engine::AppName;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionResult};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

const LAST_SEQ_KEY: &[u8] = b"M";
const HEAD_FILE: &str = "head";

pub struct SledStore {
    dir: PathBuf,
    /// The log's database, once something needed it. Field order is drop order: sled's own file
    /// lock goes before ours.
    db: Mutex<Option<sled::Db>>,
    started: Instant,
    wait: Duration,
    _lock: File,
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`, waiting up to `wait` while another process
    /// holds it.
    pub fn open(dir: &Path, wait: Duration) -> Result<Self, StoreError> {
        let lock = super::file::lock_dir(dir, wait)?;
        Ok(SledStore {
            dir: dir.into(),
            db: Mutex::new(None),
            started: Instant::now(),
            wait,
            _lock: lock,
        })
    }

    /// The log's database, opened on first use. Opening it invalidates `head`: this process may
    /// append from now on, and writes `head` back when it lets go of the store.
    fn db(&self) -> Result<sled::Db, StoreError> {
        let mut slot = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        match std::fs::remove_file(self.dir.join(HEAD_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot remove {}: {e}",
                    self.dir.join(HEAD_FILE).display()
                )))
            }
        }
        let mut pause = Duration::from_millis(1);
        remove_unfinished_snapshots(&self.dir.join("sled"))?;
        let db = loop {
            match sled::Config::new().path(self.dir.join("sled")).open() {
                Ok(db) => break db,
                // A previous holder's sled threads can outlive its release of our lock by a moment.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && self.started.elapsed() < self.wait =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    return Err(StoreError::Busy {
                        path: self.dir.clone(),
                        waited: self.started.elapsed(),
                    })
                }
                Err(e) => return Err(sled_error(e)),
            }
        };
        *slot = Some(db.clone());
        Ok(db)
    }

    /// The `head` hint, when present and well-formed.
    fn read_head(&self) -> Option<u64> {
        let bytes = std::fs::read(self.dir.join(HEAD_FILE)).ok()?;
        Some(u64::from_be_bytes(bytes.as_slice().try_into().ok()?))
    }

    /// Writes `head` (write to a temp file, then rename: a reader never sees half of it).
    fn write_head(&self, seq: u64) -> std::io::Result<()> {
        let tmp = self.dir.join("head.tmp");
        std::fs::write(&tmp, seq.to_be_bytes())?;
        std::fs::rename(tmp, self.dir.join(HEAD_FILE))
    }

    /// Reads every log entry without decoding anything: the floor replay is measured against.
    /// Returns (entries, payload bytes).
    #[cfg(feature = "bench")]
    pub fn raw_scan(&self) -> Result<(u64, u64), StoreError> {
        let db = self.db()?;
        let (mut entries, mut bytes) = (0u64, 0u64);
        for kv in db.range(key(b'L', &[])..key(b'M', &[])) {
            let (_, v) = kv.map_err(sled_error)?;
            entries += 1;
            bytes += v.len() as u64;
        }
        Ok((entries, bytes))
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
        let db = self.db()?;
        let result = db.transaction(|tx| {
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
            write_entry(tx, app, seq, commit_id, payload)?;
            tx.insert(LAST_SEQ_KEY, &seq.to_be_bytes()[..])?;
            Ok(Appended {
                seq,
                duplicate: false,
            })
        });
        flushed(&db, result)
    }

    /// The whole batch in ONE sled transaction: all of it is written, or nothing.
    fn append_batch_sync(&self, commits: &[NewCommit]) -> Result<Vec<Appended>, StoreError> {
        check_batch(commits)?;
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let db = self.db()?;
        let result = db.transaction(|tx| {
            let mut stored = Vec::with_capacity(commits.len());
            for c in commits {
                stored.push(tx.get(key(b'C', c.commit_id.as_bytes()))?);
            }
            if stored.iter().all(Option::is_some) {
                // A retry of a batch already written.
                return Ok(stored
                    .iter()
                    .flatten()
                    .map(|seq| Appended {
                        seq: decode_seq(seq),
                        duplicate: true,
                    })
                    .collect());
            }
            if let Some((c, seq)) = commits
                .iter()
                .zip(&stored)
                .find_map(|(c, s)| Some((c, s.as_ref()?)))
            {
                return Err(ConflictableTransactionError::Abort(StoreError::Refused(
                    format!(
                    "commit {} is already stored (log seq {}) while others of its batch are not",
                    c.commit_id,
                    decode_seq(seq)
                ),
                )));
            }
            let mut checked = std::collections::HashSet::new();
            let mut seq = tx.get(LAST_SEQ_KEY)?.map_or(0, |v| decode_seq(&v));
            let mut appended = Vec::with_capacity(commits.len());
            for c in commits {
                if checked.insert(&c.app) {
                    let head = tx.get(key(b'H', c.app.as_str().as_bytes()))?;
                    let actual = head.map_or(0, |v| decode_seq(&v));
                    if actual != c.expected_last_seq {
                        return Err(ConflictableTransactionError::Abort(StoreError::Conflict {
                            app: c.app.clone(),
                            expected: c.expected_last_seq,
                            actual,
                        }));
                    }
                }
                seq += 1;
                write_entry(tx, &c.app, seq, c.commit_id, &c.payload)?;
                appended.push(Appended {
                    seq,
                    duplicate: false,
                });
            }
            tx.insert(LAST_SEQ_KEY, &seq.to_be_bytes()[..])?;
            Ok(appended)
        });
        flushed(&db, result)
    }

    fn get_commit(&self, db: &sled::Db, seq: u64) -> Result<StoredCommit, StoreError> {
        let entry = db
            .get(key(b'L', &seq.to_be_bytes()))
            .map_err(sled_error)?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("log entry {seq} is indexed but missing"))
            })?;
        decode_entry(seq, &entry)
    }
}

/// A transaction's outcome, acknowledged only once it is on disk.
fn flushed<T>(db: &sled::Db, result: TransactionResult<T, StoreError>) -> Result<T, StoreError> {
    let value = match result {
        Ok(value) => value,
        Err(TransactionError::Abort(e)) => return Err(e),
        Err(TransactionError::Storage(e)) => return Err(sled_error(e)),
    };
    db.flush().map_err(sled_error)?;
    Ok(value)
}

/// One commit's keys (all but `M`, which a transaction writes once at its end).
fn write_entry(
    tx: &sled::transaction::TransactionalTree,
    app: &AppName,
    seq: u64,
    commit_id: Uuid,
    payload: &[u8],
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let seq_bytes = seq.to_be_bytes();
    let mut entry = Vec::with_capacity(1 + app.as_str().len() + payload.len());
    entry.push(app.as_str().len() as u8);
    entry.extend_from_slice(app.as_str().as_bytes());
    entry.extend_from_slice(payload);
    tx.insert(key(b'L', &seq_bytes), entry)?;
    tx.insert(app_key(app, seq), &[][..])?;
    tx.insert(key(b'H', app.as_str().as_bytes()), &seq_bytes[..])?;
    tx.insert(key(b'C', commit_id.as_bytes()), &seq_bytes[..])?;
    Ok(())
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

    async fn append_batch(&self, commits: Vec<NewCommit>) -> Result<Vec<Appended>, StoreError> {
        self.append_batch_sync(&commits)
    }

    async fn read_app(&self, app: &AppName) -> Result<Vec<StoredCommit>, StoreError> {
        self.read_app_after(app, 0).await
    }

    async fn read_app_after(
        &self,
        app: &AppName,
        after_seq: u64,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        let db = self.db()?;
        let start = app_key(app, after_seq.saturating_add(1));
        let mut end = app_prefix(app);
        *end.last_mut().expect("the prefix ends in a separator") += 1;
        db.range(start..end)
            .keys()
            .map(|k| self.get_commit(&db, decode_seq(&k.map_err(sled_error)?)))
            .collect()
    }

    async fn read_from(&self, from_seq: u64, max: usize) -> Result<Vec<StoredCommit>, StoreError> {
        let start = key(b'L', &from_seq.max(1).to_be_bytes());
        self.db()?
            .range(start..key(b'M', &[]))
            .take(max)
            .map(|kv| {
                let (k, v) = kv.map_err(sled_error)?;
                decode_entry(decode_seq(&k[1..]), &v)
            })
            .collect()
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        if self.db.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
            if let Some(seq) = self.read_head() {
                return Ok(seq);
            }
        }
        Ok(self
            .db()?
            .get(LAST_SEQ_KEY)
            .map_err(sled_error)?
            .map_or(0, |v| decode_seq(&v)))
    }

    async fn apps(&self) -> Result<Vec<AppName>, StoreError> {
        self.db()?
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

impl Drop for SledStore {
    /// Writes `head` back while the lock is still held (fields drop after this body).
    fn drop(&mut self) {
        let slot = self.db.get_mut().unwrap_or_else(|e| e.into_inner());
        let Some(db) = slot.take() else { return };
        let last = db
            .get(LAST_SEQ_KEY)
            .ok()
            .map(|v| v.map_or(0, |v| decode_seq(&v)));
        // Everything acknowledged is flushed already; a failure here only costs the next process
        // a look into the log.
        if let (Ok(()), Some(last)) = (db.flush().map(drop), last) {
            drop(db);
            let _ = self.write_head(last);
        }
    }
}

/// Removes the snapshot files sled left unfinished (`snap.<lsn>.generating`). sled 0.34 writes a
/// snapshot under that name and renames it when complete, but reads a leftover one after a crash
/// and then fails every open with "Read corrupted data" (sled issues #1527, #1533); without it
/// the database opens from its previous snapshot and log, intact.
pub fn remove_unfinished_snapshots(db_dir: &Path) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(db_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Unavailable(format!(
                "cannot list {}: {e}",
                db_dir.display()
            )))
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path()).map_err(|e| {
                StoreError::Unavailable(format!("cannot remove {}: {e}", entry.path().display()))
            })?;
        }
    }
    Ok(())
}

/// One commit of a sled-era store, with the command id it was stored under.
pub struct LegacyCommit {
    pub app: AppName,
    pub commit_id: Uuid,
    pub payload: Vec<u8>,
}

/// Every commit of the sled database at `db_dir` (a store's `sled/`), in log order: what the file
/// log is migrated from. The caller holds the store's lock; sled's own lock may still be held a
/// moment by a previous holder's threads, so this waits up to `wait` for it.
pub fn read_legacy(db_dir: &Path, wait: Duration) -> Result<Vec<LegacyCommit>, StoreError> {
    remove_unfinished_snapshots(db_dir)?;
    let started = Instant::now();
    let db = loop {
        match sled::Config::new().path(db_dir).open() {
            Ok(db) => break db,
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && started.elapsed() < wait =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(sled_error(e)),
        }
    };
    let mut ids = std::collections::HashMap::new();
    for kv in db.scan_prefix([b'C']) {
        let (k, v) = kv.map_err(sled_error)?;
        let id = Uuid::from_slice(&k[1..])
            .map_err(|_| StoreError::Corrupt("malformed commit id key".into()))?;
        ids.insert(decode_seq(&v), id);
    }
    let mut commits = Vec::new();
    for kv in db.range(key(b'L', &[])..key(b'M', &[])) {
        let (k, v) = kv.map_err(sled_error)?;
        let seq = decode_seq(&k[1..]);
        let commit = decode_entry(seq, &v)?;
        if seq != commits.len() as u64 + 1 {
            return Err(StoreError::Corrupt(format!(
                "sled store {}: log entry {seq} follows {}",
                db_dir.display(),
                commits.len()
            )));
        }
        commits.push(LegacyCommit {
            app: commit.app,
            commit_id: ids.remove(&seq).unwrap_or_else(Uuid::now_v7),
            payload: commit.payload,
        });
    }
    Ok(commits)
}
