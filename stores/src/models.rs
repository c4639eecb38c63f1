//! The read models' databases on disk: [`SledModels`], the engine's `ModelStore` as one sled
//! database per name in a directory (`state` → `DIR/state/`, `history/p1` → `DIR/history/p1/`).
//!
//! sled 0.34 is safe here only because what it keeps is disposable:
//! - unfinished snapshot files are removed before a database is opened (sled reads them after a
//!   kill and then fails every open);
//! - what sled says of its own files (corruption, a truncated segment, a missing blob) is
//!   `ModelError::Damaged`, so the owner folds the model again; a busy, full or unreadable disk
//!   is not;
//! - sled hangs instead of failing on a full disk, so every write first checks for room
//!   ([`WRITE_HEADROOM`] plus its size), creating a database included;
//! - a database or group is removed by renaming it to `NAME-<pid>.trash` first (a crash leaves
//!   it absent, not half gone; leftovers go when the directory is next opened), and the staging
//!   store is the directory `rebuild.staging` beside the databases.

use crate::sled::remove_unfinished_snapshots;
use hoist_engine::models::{Batch, ModelDb, ModelError, ModelStore, Order, Row, Rows};
use hoist_engine::store::StoreError;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Free bytes a model write needs on its filesystem. sled 0.34 does not fail a write on a full
/// disk, it hangs; so a write starts only with room to spare (sled writes in 512 KiB segments).
pub const WRITE_HEADROOM: u64 = 4 << 20;
/// How long opening a database waits for sled's threads to let go of it after this process
/// closed it.
const SLED_RELEASE_WAIT: Duration = Duration::from_secs(5);
/// The staging store's directory, beside the databases.
const STAGING: &str = "rebuild.staging";

/// Read models in sled databases under one directory.
pub struct SledModels {
    dir: PathBuf,
    location: String,
    /// The directory's own lock, when no store lock covers it (a NATS cache). Whoever holds the
    /// databases drops them before this value, so the lock outlives them.
    _lock: Option<File>,
}

fn unavailable(at: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Unavailable {
        at: at.display().to_string(),
        message: e.to_string(),
    }
}

impl SledModels {
    /// The databases in `dir` (created if needed). The caller holds whatever lock guards `dir`
    /// (the embedded store's). Leftovers of an interrupted removal or rebuild are removed.
    pub fn open(dir: &Path) -> Result<SledModels, ModelError> {
        let models = SledModels::at(dir)?;
        for entry in std::fs::read_dir(dir).map_err(|e| unavailable(dir, e))? {
            let path = entry.map_err(|e| unavailable(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "trash") || path.ends_with(STAGING) {
                remove_any(&path).map_err(|e| unavailable(&path, e))?;
            }
        }
        Ok(models)
    }

    /// `open`, for a directory no store lock covers (the NATS cache): takes the directory's own
    /// lock (`DIR/hoist.lock`) first, waiting up to `wait` for another process to let go
    /// (`StoreError::Busy` after that).
    pub fn open_exclusive(dir: &Path, wait: Duration) -> Result<SledModels, StoreError> {
        let lock = crate::file::lock_dir(dir, wait)?;
        let mut models =
            SledModels::open(dir).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        models._lock = Some(lock);
        Ok(models)
    }

    fn at(dir: &Path) -> Result<SledModels, ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| unavailable(dir, e))?;
        Ok(SledModels {
            dir: dir.into(),
            location: dir.display().to_string(),
            _lock: None,
        })
    }

    /// The path of database or group `name`; a name that could reach outside the directory
    /// or onto what this store keeps beside the databases is refused.
    fn path(&self, name: &str) -> Result<PathBuf, ModelError> {
        let plain = |segment: &str| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && !segment.contains('\\')
                && !segment.ends_with(".trash")
                && segment != STAGING
        };
        if !name.split('/').all(plain) {
            return Err(unavailable(
                &self.dir,
                format!("no database may be named {name:?}"),
            ));
        }
        Ok(self.dir.join(name))
    }

    /// Moves `path` out of the way (renamed first, so a crash leaves it absent, not half gone),
    /// then deletes it.
    fn discard(&self, path: &Path, name: &str) -> Result<(), ModelError> {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        let trash = self.dir.join(format!(
            "{}-{}.trash",
            name.replace('/', "."),
            std::process::id()
        ));
        std::fs::rename(path, &trash).map_err(|e| unavailable(path, e))?;
        remove_any(&trash).map_err(|e| unavailable(&trash, e))
    }
}

impl ModelStore for SledModels {
    fn location(&self) -> &str {
        &self.location
    }

    fn open(&self, name: &str) -> Result<Box<dyn ModelDb>, ModelError> {
        let path = self.path(name)?;
        if !path.exists() {
            self.ensure_room(0)?;
        }
        Ok(Box::new(SledDb {
            db: open_db(&path)?,
            at: self.location.clone(),
        }))
    }

    fn list(&self, group: &str) -> Result<Vec<String>, ModelError> {
        let dir = self.path(group)?;
        let mut names = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let name = entry.map_err(|e| unavailable(&dir, e))?.file_name();
                    if let Some(name) = name.to_str() {
                        names.push(name.to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(unavailable(&dir, e)),
        }
        Ok(names)
    }

    fn remove(&self, name: &str) -> Result<(), ModelError> {
        self.discard(&self.path(name)?, name)
    }

    fn ensure_room(&self, bytes: u64) -> Result<(), ModelError> {
        let stat = rustix::fs::statvfs(&self.dir).map_err(|e| unavailable(&self.dir, e))?;
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        let needed = WRITE_HEADROOM + bytes;
        if free < needed {
            return Err(ModelError::Full {
                at: self.location.clone(),
                free,
                needed,
            });
        }
        Ok(())
    }

    fn staging(&self) -> Result<Box<dyn ModelStore>, ModelError> {
        self.discard_staging()?;
        Ok(Box::new(SledModels::at(&self.dir.join(STAGING))?))
    }

    fn switch_in_staging(&self, names: &[&str]) -> Result<(), ModelError> {
        let staging = self.dir.join(STAGING);
        for name in names.iter().rev() {
            self.remove(name)?;
        }
        for name in names {
            let (from, to) = (staging.join(name), self.path(name)?);
            if from.exists() {
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| unavailable(parent, e))?;
                }
                std::fs::rename(&from, &to).map_err(|e| unavailable(&from, e))?;
            }
        }
        self.discard_staging()
    }

    fn discard_staging(&self) -> Result<(), ModelError> {
        self.discard(&self.dir.join(STAGING), STAGING)
    }
}

/// Removes what is at `path`, a directory (a database) or anything else in a database's place
/// (a stray file: what a damaged model may be).
fn remove_any(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// One sled database of a [`SledModels`].
struct SledDb {
    db: sled::Db,
    /// The store's location, for messages.
    at: String,
}

impl SledDb {
    fn unavailable(&self, e: sled::Error) -> ModelError {
        ModelError::Unavailable {
            at: self.at.clone(),
            message: e.to_string(),
        }
    }
}

impl ModelDb for SledDb {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ModelError> {
        self.db
            .get(key)
            .map(|value| value.map(|v| v.to_vec()))
            .map_err(|e| self.unavailable(e))
    }

    fn apply(&self, batch: Batch) -> Result<(), ModelError> {
        let mut writes = sled::Batch::default();
        for (key, value) in batch.into_writes() {
            match value {
                Some(value) => writes.insert(key, value),
                None => writes.remove(key),
            }
        }
        self.db.apply_batch(writes).map_err(|e| self.unavailable(e))
    }

    fn scan(&self, prefix: &[u8], order: Order) -> Rows<'_> {
        let row = move |kv: sled::Result<(sled::IVec, sled::IVec)>| -> Result<Row, ModelError> {
            let (k, v) = kv.map_err(|e| self.unavailable(e))?;
            Ok((k.to_vec(), v.to_vec()))
        };
        let rows = self.db.scan_prefix(prefix);
        match order {
            Order::Ascending => Box::new(rows.map(row)),
            Order::Descending => Box::new(rows.rev().map(row)),
        }
    }

    fn flush(&self) -> Result<(), ModelError> {
        self.db.flush().map(drop).map_err(|e| self.unavailable(e))
    }
}

fn open_db(path: &Path) -> Result<sled::Db, ModelError> {
    remove_unfinished_snapshots(path).map_err(|e| unavailable(path, e))?;
    // sled's background threads hold a database's file lock a moment after its last handle is
    // dropped, so opening one this process just closed can find it locked: wait that out.
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match sled::Config::new().path(path).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < SLED_RELEASE_WAIT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            // What sled says of its own files: only these make a model worth throwing away;
            // a busy, full or unreadable disk is reported instead.
            Err(e) if is_damage(&e) => {
                return Err(ModelError::Damaged {
                    at: path.display().to_string(),
                    message: e.to_string(),
                })
            }
            Err(e) => return Err(unavailable(path, e)),
        }
    }
}

/// Whether sled's error says its own files are damaged (then the model is thrown away and
/// folded again), rather than that the disk is busy, full or unreadable. A truncated segment or a
/// missing blob comes back as an I/O error of its own kind.
fn is_damage(e: &sled::Error) -> bool {
    match e {
        sled::Error::Corruption { .. }
        | sled::Error::ReportableBug(_)
        | sled::Error::Unsupported(_) => true,
        sled::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::NotFound
                | std::io::ErrorKind::InvalidData
        ),
        _ => false,
    }
}
