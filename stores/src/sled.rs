//! What is left of the store hoist wrote before the log file (`file`): one sled database in
//! `DIR/sled`, read once to migrate it (`read_legacy`), and the cleanup every sled database here
//! needs before it is opened (`remove_unfinished_snapshots`, for the read models' too). Its
//! layout, one tree with keys by prefix:
//!
//! | key | value |
//! |---|---|
//! | `L` seq | app name (length-prefixed) + payload: the log |
//! | `A` app `\0` seq | empty: the app's commits |
//! | `H` app | seq of the app's last commit |
//! | `C` commit id | seq: idempotency |
//! | `M` | seq of the last commit |

use hoist_engine::store::{StoreError, StoredCommit};
use hoist_engine::AppName;
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(prefix);
    key.extend_from_slice(rest);
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

/// Removes the snapshot files sled left unfinished (`snap.<lsn>.generating`). sled 0.34 writes a
/// snapshot under that name and renames it when complete, but reads a leftover one after a crash
/// and then fails every open with "Read corrupted data" (sled issues #1527, #1533); without it
/// the database opens from its previous snapshot and log, intact.
pub(crate) fn remove_unfinished_snapshots(db_dir: &Path) -> Result<(), StoreError> {
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
