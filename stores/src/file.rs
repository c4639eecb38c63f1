//! The embedded backend: an append-only, checksummed log file of hoist's own in `DIR/log`, held
//! by one process at a time through the lock file `DIR/hoist.lock`.
//!
//! Why not a database: the log is the truth, so it must survive what ordinary machines do — a
//! SIGKILL at any instant, a full disk — and sled 0.34 does neither (an unfinished snapshot left by
//! a kill makes every later open fail; a full disk hangs its writer). A file that only ever grows
//! by whole, checksummed records, each acknowledged after `fdatasync`, has one failure shape: an
//! unfinished last write. Opening the log finds it and cuts it off, so a crash never bricks it.
//!
//! ```text
//! file    = "HOISTLG1" record*
//! record  = len:u32 crc:u32 body            (big-endian; crc = CRC-32 of len ‖ body)
//! body    = seq:u64 flags:u8 commit_id:[16] app_len:u8 app payload
//! flags   = bit 0: the next record belongs to the same atomic batch; bit 1: it starts a batch
//! ```
//!
//! **Invariants**
//! - Records hold sequences 1, 2, 3, … with no gap; a record is acknowledged only once synced.
//! - Everything after the last whole, valid record that ends a batch is the remains of a write
//!   that was never acknowledged (one process appends at a time, and it syncs before answering).
//!   Opening for use cuts it off, after saving the cut bytes under `DIR/quarantine/`: nothing is
//!   thrown away unseen, and a batch is stored whole or not at all.
//! - A failed write (a full disk) is undone by truncating to the previous length before the error
//!   is returned, so the lock is released and the next command finds a clean log.
//!
//! The index (each sequence's place, each app's commits, the commit ids) is kept in memory and
//! records are read from the file when asked for, so a command's memory does not grow with the
//! log. Opening the log does not read every record: the index as of a recent release of the store
//! is saved in `DIR/log.index` (see [`LogIndex`]), and only the records after it are read and
//! checked (issue 15: a command's cost does not grow with the log). That file is a cache: used
//! only when its checksum holds and the log's record where it ends is the one it names, written
//! anew on release once `REINDEX_AFTER` records follow it. Every read checks the checksum of each
//! record it reads, so damage under the index is found where it is read, and stops the log's use
//! from then on as damage found when opening does; `hoist admin check` reads every record. The
//! log's last sequence is also kept in a small `head` file so that a query whose read models are
//! caught up never reads the log. **Invariant**: while `head` exists it holds the log's last sequence. It is
//! removed when a process opens the log (it may append) and written back when that process lets go
//! of the store; a process killed in between leaves no `head`, and the next one reads the log.
//!
//! A store written by earlier versions (a sled database in `DIR/sled`) is copied into `DIR/log`
//! once, on first use; the old database is kept beside it as `DIR/sled.pre-log`.

use hoist_engine::store::{admit_batch, Appended, EventStore, NewCommit, StoreError, StoredCommit};
use hoist_engine::AppName;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use uuid::Uuid;

mod index;
use index::LogIndex;

const MAGIC: &[u8; 8] = b"HOISTLG1";
const LOG_FILE: &str = "log";
const HEAD_FILE: &str = "head";
const INDEX_FILE: &str = "log.index";
const INDEX_TMP_FILE: &str = "log.index.tmp";
/// Records appended after the index file before releasing the store writes it anew: opening
/// reads at most about this many records past it, and rewriting an index of N records costs
/// each append N / REINDEX_AFTER index entries.
const REINDEX_AFTER: u64 = 1024;
const QUARANTINE_DIR: &str = "quarantine";
/// Bytes before the body: its length and checksum.
const RECORD_HEADER: usize = 8;
/// Bytes of the body before the app name: seq, flags, commit id, app length.
const BODY_FIXED: usize = 8 + 1 + 16 + 1;
/// Set on every record of a batch but its last.
const FLAG_BATCH_CONTINUES: u8 = 1;
/// Set on the first record of every batch: one found past damage proves a batch was written
/// after the damaged one, so the damage is not an unfinished write.
const FLAG_BATCH_STARTS: u8 = 2;
/// No record is larger: a length beyond it is damage, not data.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// What opening the log found and did, for `hoist admin check`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The unfinished tail cut off at this open: (byte offset, bytes, where they were saved).
    pub cut: Option<(u64, u64, PathBuf)>,
    /// Damage that keeps the log from being used (see `FileStore::salvage`).
    pub damage: Option<String>,
}

pub struct FileStore {
    dir: PathBuf,
    log: Mutex<Option<Log>>,
    started: Instant,
    wait: Duration,
    /// Last field: released after everything else.
    _lock: File,
}

/// The open log and its index. Records are read from the file when asked for (`pread`): only
/// the index is in memory, so a command's memory does not grow with the log.
struct Log {
    path: PathBuf,
    file: File,
    /// The file's length: where the next record goes.
    len: u64,
    /// The index file this log was opened with: it stands for the first records, read in place
    /// (opening costs a read of it, not a pass over every entry).
    indexed: LogIndex,
    /// The records after those, as `indexed` holds its own: where each frame starts (it ends
    /// where the next starts, the last at `len`), each app's sequences, each commit id's.
    frames: Vec<u64>,
    apps: HashMap<AppName, Vec<u64>>,
    ids: HashMap<Uuid, u64>,
    /// What opening found. With `damage`, only the records before it are indexed, nothing is
    /// changed on disk (not even `head`), and only `salvage` reads: every other use fails. Damage
    /// found later, reading a record the index covers, is recorded here the same way.
    recovery: Recovery,
}

/// Creates `dir` if needed and takes the exclusive lock file `dir/hoist.lock`, waiting up to
/// `wait` while another process holds it. The lock lasts as long as the returned file.
pub fn lock_dir(dir: &Path, wait: Duration) -> Result<File, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create directory", dir, e))?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("hoist.lock"))
        .map_err(|e| io_error("cannot open the lock file in", dir, e))?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Busy {
                    path: dir.into(),
                    waited: started.elapsed(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error("cannot lock", dir, e)),
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// An I/O failure as the store reports it; a full disk says so first, naming where.
fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
        StoreError::Unavailable(format!(
            "disk full: {what} {}: {e}; free some space and run the command again",
            path.display()
        ))
    } else {
        StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
    }
}

impl FileStore {
    /// Takes the store in `dir` (creating the directory if needed), waiting up to `wait` while
    /// another process holds it. The log itself is read on first use.
    pub fn open(dir: &Path, wait: Duration) -> Result<Self, StoreError> {
        let lock = lock_dir(dir, wait)?;
        Ok(FileStore {
            dir: dir.into(),
            log: Mutex::new(None),
            started: Instant::now(),
            wait,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The open log, read and recovered on first use. Opening it invalidates `head`: this process
    /// may append from now on, and writes `head` back when it lets go of the store.
    fn log(&self) -> Result<MutexGuard<'_, Option<Log>>, StoreError> {
        self.log_checked(false)
    }

    /// The open log; opened with every record read and checked when `verify` (see `Log::open`).
    fn log_checked(&self, verify: bool) -> Result<MutexGuard<'_, Option<Log>>, StoreError> {
        let mut slot = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let log = Log::open(
                &self.dir,
                self.wait.saturating_sub(self.started.elapsed()),
                self.read_head(),
                verify,
            )?;
            // From here on this process may append: `head` goes (synced, so that a power loss
            // cannot bring back a stale one) and comes back when the store is let go. A damaged
            // log keeps it: it is the evidence of how many records were acknowledged.
            let head = self.dir.join(HEAD_FILE);
            if log.recovery.damage.is_none() {
                match std::fs::remove_file(&head) {
                    Ok(()) => {
                        sync_dir(&self.dir).map_err(|e| io_error("cannot sync", &self.dir, e))?
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("cannot remove", &head, e)),
                }
            }
            *slot = Some(log);
        }
        Ok(slot)
    }

    /// Runs `f` on the open log, unless the log is damaged. If the index file turns out to be
    /// damaged on the way, whatever `f` did with it is dropped (a lookup that fails comes before
    /// anything is written), the file is removed, and `f` runs again on the log read whole.
    fn with_log<T>(&self, f: impl Fn(&mut Log) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.on_log(true, f)
    }

    /// `with_log`, also on a damaged log unless `refuse_damaged`.
    fn on_log<T>(
        &self,
        refuse_damaged: bool,
        f: impl Fn(&mut Log) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.log()?;
        for _ in 0..2 {
            let log = slot.as_mut().expect("log() leaves the log open");
            if let Some(damage) = log.recovery.damage.as_ref().filter(|_| refuse_damaged) {
                return Err(StoreError::Corrupt(damage.clone()));
            }
            let done = f(log);
            if !log.indexed.lost() {
                return done;
            }
            index::remove(&self.dir)?;
            *slot = None;
            drop(slot);
            slot = self.log()?;
        }
        unreachable!("a log opened without an index file loses none")
    }

    /// What opening the log found (opening it if nobody has yet, reading and checking every
    /// record rather than trusting the index file).
    pub fn recovery(&self) -> Result<Recovery, StoreError> {
        let slot = self.log_checked(true)?;
        Ok(slot
            .as_ref()
            .expect("log() leaves the log open")
            .recovery
            .clone())
    }

    /// Up to `max` commits from `from_seq` on, like `read_from`, and also from a damaged log: the
    /// records before the damage, with the damage said. What a backup reads.
    pub fn salvage(
        &self,
        from_seq: u64,
        max: usize,
    ) -> Result<(Vec<StoredCommit>, Option<String>), StoreError> {
        self.on_log(false, |log| {
            let (commits, found) = log.read_from(from_seq, max)?;
            if let Some(found) = &found {
                log.recovery.damage.get_or_insert_with(|| found.clone());
            }
            Ok((commits, found.or_else(|| log.recovery.damage.clone())))
        })
    }

    /// The `head` hint, when present and well-formed.
    fn read_head(&self) -> Option<u64> {
        settled_head(&self.dir)
    }

    /// Writes `head` (a temp file renamed over it: a reader never sees half of it).
    fn write_head(&self, seq: u64) -> std::io::Result<()> {
        let tmp = self.dir.join("head.tmp");
        std::fs::write(&tmp, seq.to_be_bytes())?;
        std::fs::rename(tmp, self.dir.join(HEAD_FILE))
    }

    /// Reads every log entry without decoding anything: the floor replay is measured against.
    /// Returns (entries, payload bytes).
    #[cfg(feature = "bench")]
    pub fn raw_scan(&self) -> Result<(u64, u64), StoreError> {
        let bytes = std::fs::read(self.dir.join(LOG_FILE))
            .map_err(|e| io_error("cannot read", &self.dir.join(LOG_FILE), e))?;
        let scan = scan(&bytes[MAGIC.len()..], MAGIC.len() as u64, 1);
        let payload: usize = scan.bodies.iter().map(|(_, len)| len).sum();
        Ok((scan.bodies.len() as u64, payload as u64))
    }
}

impl Log {
    /// Opens and recovers the log; `acknowledged` is the last sequence a clean exit recorded in
    /// `head`, if there was one: fewer whole records than that is damage, never a tail to cut.
    /// With `verify`, every record is read and checked (`hoist admin check`); otherwise the index
    /// file, when it matches the log, stands for the records it covers and only those after it
    /// are read.
    fn open(
        dir: &Path,
        wait: Duration,
        acknowledged: Option<u64>,
        verify: bool,
    ) -> Result<Log, StoreError> {
        let path = dir.join(LOG_FILE);
        if !path.exists() {
            let legacy = dir.join("sled");
            if legacy.exists() {
                migrate_from_sled(dir, &legacy, wait)?;
            }
        }
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("cannot open", &path, e))?;
        let read_error = |e| io_error("cannot read", &path, e);
        let len = file.metadata().map_err(read_error)?.len();
        let mut magic = vec![0; (len as usize).min(MAGIC.len())];
        file.read_exact_at(&mut magic, 0).map_err(read_error)?;
        let not_ours = || {
            StoreError::Corrupt(format!(
                "{} is not a hoist log (it does not start with {:?})",
                path.display(),
                std::str::from_utf8(MAGIC).unwrap_or_default()
            ))
        };
        if !MAGIC.starts_with(&magic) {
            return Err(not_ours());
        }
        let mut log = Log {
            path: path.clone(),
            file,
            len: MAGIC.len() as u64,
            indexed: LogIndex::default(),
            frames: Vec::new(),
            apps: HashMap::new(),
            ids: HashMap::new(),
            recovery: Recovery::default(),
        };
        if magic.len() < MAGIC.len() {
            // New, or its creation was cut short.
            log.file
                .write_all_at(MAGIC, 0)
                .and_then(|()| log.file.set_len(MAGIC.len() as u64))
                .and_then(|()| log.file.sync_all())
                .map_err(|e| io_error("cannot write", &path, e))?;
            sync_dir(dir).map_err(|e| io_error("cannot sync", dir, e))?;
            return Ok(log);
        }
        if !verify {
            if let Some(index) = LogIndex::load(dir).filter(|index| log.matches(index, len)) {
                log.len = index.covered_len;
                log.indexed = index;
            }
        }
        // The records after the index (all of them without one).
        let base = log.len;
        let mut tail = vec![0; (len - base) as usize];
        log.file
            .read_exact_at(&mut tail, base)
            .map_err(read_error)?;
        let scan = scan(&tail, base, log.last_seq() + 1);
        let whole = log.last_seq() + scan.bodies.len() as u64;
        let damage = if let Some(malformed) = scan.malformed.clone() {
            Some(malformed)
        } else if acknowledged.is_some_and(|acknowledged| acknowledged > whole) {
            Some(format!(
                "it reads as {whole} records, but {} were acknowledged (record {} at byte {} is damaged)",
                acknowledged.unwrap_or_default(),
                whole + 1,
                base + scan.end as u64
            ))
        } else {
            acknowledged_past(&tail, scan.stop, whole).map(|at| {
                format!(
                    "the record at byte {} is damaged, and records written after it follow at byte {}",
                    base + scan.stop as u64,
                    base + at as u64
                )
            })
        };
        if let Some(damage) = &damage {
            log.recovery.damage = Some(damaged(&path, damage, whole));
        } else if scan.end < tail.len() {
            log.recovery.cut = Some(cut_tail(dir, &mut log.file, &tail, base, scan.end)?);
        }
        for (start, len) in scan.bodies {
            let body = &tail[start..start + len];
            let body = Body::parse(body).expect("scan keeps only bodies that parse");
            log.push(
                base + (start - RECORD_HEADER) as u64,
                body.app,
                body.commit_id,
            );
        }
        log.len = base + scan.end as u64;
        Ok(log)
    }

    /// Whether `index` describes this log's first records: its last record is where the index
    /// says, whole, with the sequence and checksum the index says.
    fn matches(&self, index: &LogIndex, file_len: u64) -> bool {
        if index.covered_len > file_len {
            return false;
        }
        let count = index.count;
        let Some(last) = count.checked_sub(1) else {
            return index.covered_len == MAGIC.len() as u64;
        };
        let Ok(start) = index.frame(last) else {
            return false;
        };
        let mut frame = vec![0; (index.covered_len - start) as usize];
        self.file.read_exact_at(&mut frame, start).is_ok()
            && frame_at(&frame, 0, count..=count)
                .is_some_and(|f| f.next == frame.len() && f.crc == index.last_crc)
    }

    fn last_seq(&self) -> u64 {
        self.indexed.count + self.frames.len() as u64
    }

    /// Where records `from..=to` (ones the log holds) start, and where the last ends (where the
    /// next starts, or the log's end).
    fn bounds(&self, from: u64, to: u64) -> Result<Vec<u64>, StoreError> {
        let indexed = self.indexed.count;
        let mut bounds = if from <= indexed {
            let through = (to + 1).min(indexed);
            self.indexed
                .frames(from - 1, (through - from + 1) as usize)?
        } else {
            Vec::with_capacity((to - from + 2) as usize)
        };
        let recent = from.max(indexed + 1)..=to + 1;
        bounds.extend(recent.map(|seq| {
            self.frames
                .get((seq - indexed - 1) as usize)
                .copied()
                .unwrap_or(self.len)
        }));
        Ok(bounds)
    }

    /// Where record `seq` (one the log holds) starts.
    fn frame(&self, seq: u64) -> Result<u64, StoreError> {
        Ok(self.bounds(seq, seq)?[0])
    }

    /// The sequences of `app`'s last `max` records in `after < seq <= through`: the newest from
    /// the records after the index, the rest from the index.
    fn app_seqs(
        &self,
        app: &AppName,
        after: u64,
        through: u64,
        max: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let recent = self.apps.get(app).map(Vec::as_slice).unwrap_or_default();
        let recent = crate::last_in(recent, after, through, max);
        let mut seqs = self
            .indexed
            .app_seqs(app, after, through, max - recent.len())?;
        seqs.extend_from_slice(recent);
        Ok(seqs)
    }

    /// The records `seqs` (sequences the log holds), one `pread` each: an app's records are
    /// interleaved with other apps', so one read of their range would mostly read those.
    fn read_seqs(&mut self, seqs: Vec<u64>) -> Result<Vec<StoredCommit>, StoreError> {
        let mut commits = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let read = self.read_range(seq, seq);
            commits.extend(self.checked(read)?);
        }
        Ok(commits)
    }

    fn id(&self, id: &Uuid) -> Result<Option<u64>, StoreError> {
        match self.ids.get(id) {
            Some(&seq) => Ok(Some(seq)),
            None => Ok(self.indexed.id(id)?),
        }
    }

    /// Adds the record whose frame starts at `frame` to the index.
    fn push(&mut self, frame: u64, app: AppName, commit_id: Uuid) {
        self.frames.push(frame);
        let seq = self.last_seq();
        self.apps.entry(app).or_default().push(seq);
        self.ids.insert(commit_id, seq);
    }

    /// The records `from..=to` (sequences the index holds), read with one `pread`; each frame is
    /// checked again, so damage the index covered is found where it is read. Records before a
    /// damaged one are returned with the damage said.
    fn read_range(&self, from: u64, to: u64) -> Result<Read, StoreError> {
        if from > to {
            return Ok((Vec::new(), None));
        }
        let bounds = self.bounds(from, to)?;
        let (start, end) = (bounds[0], bounds[bounds.len() - 1]);
        let mut bytes = vec![0; (end - start) as usize];
        self.file
            .read_exact_at(&mut bytes, start)
            .map_err(|e| io_error("cannot read", &self.path, e))?;
        let mut commits = Vec::with_capacity((to - from + 1) as usize);
        for (seq, frame) in (from..=to).zip(&bounds) {
            let at = (frame - start) as usize;
            let body = frame_at(&bytes, at, seq..=seq)
                .map(|frame| &bytes[frame.body.0..frame.body.0 + frame.body.1])
                .and_then(Body::parse);
            let Some(body) = body else {
                let at = start + at as u64;
                let damage = format!("the record at byte {at} (log seq {seq}) is damaged");
                return Ok((commits, Some(damaged(&self.path, &damage, seq - 1))));
            };
            commits.push(StoredCommit {
                seq,
                app: body.app,
                payload: body.payload.to_vec(),
            });
        }
        Ok((commits, None))
    }

    /// Up to `max` records from `from_seq` on.
    fn read_from(&self, from_seq: u64, max: usize) -> Result<Read, StoreError> {
        let from = from_seq.max(1);
        let to = self
            .last_seq()
            .min(from.saturating_add(max as u64).saturating_sub(1));
        self.read_range(from, to)
    }

    /// A read of records the index holds; damage found in them stops the log's use from here on,
    /// as damage found when opening does.
    fn checked(&mut self, read: Result<Read, StoreError>) -> Result<Vec<StoredCommit>, StoreError> {
        match read? {
            (commits, None) => Ok(commits),
            (_, Some(damage)) => {
                self.recovery.damage = Some(damage.clone());
                Err(StoreError::Corrupt(damage))
            }
        }
    }

    fn head(&self, app: &AppName) -> Result<u64, StoreError> {
        match self.apps.get(app).and_then(|seqs| seqs.last()) {
            Some(&seq) => Ok(seq),
            None => Ok(self.indexed.app_head(app)?.unwrap_or(0)),
        }
    }

    /// Every app with a record, by name.
    fn app_names(&self) -> Vec<AppName> {
        let mut apps: Vec<AppName> = self.indexed.app_names().cloned().collect();
        apps.extend(self.apps.keys().cloned());
        apps.sort();
        apps.dedup();
        apps
    }

    /// Appends `commits` as one write and one sync: all are stored, or none is (see
    /// `EventStore::append_batch`).
    fn append_batch(
        &mut self,
        dir: &Path,
        commits: &[NewCommit],
    ) -> Result<Vec<Appended>, StoreError> {
        let admitted = admit_batch(commits, |id| self.id(id), |app| self.head(app))?;
        if let Some(originals) = admitted {
            return Ok(originals);
        }
        let mut record = Vec::new();
        let mut frames = Vec::with_capacity(commits.len());
        let mut appended = Vec::with_capacity(commits.len());
        for (i, commit) in commits.iter().enumerate() {
            let seq = self.last_seq() + 1 + i as u64;
            let flags = if i + 1 < commits.len() {
                FLAG_BATCH_CONTINUES
            } else {
                0
            } | if i == 0 { FLAG_BATCH_STARTS } else { 0 };
            frames.push(self.len + record.len() as u64);
            encode_record(&mut record, seq, flags, commit)?;
            appended.push(Appended {
                seq,
                duplicate: false,
            });
        }
        let start = self.len;
        let path = dir.join(LOG_FILE);
        let written = self
            .file
            .write_all_at(&record, start)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Leave no half-record behind: the next open would cut it off anyway, but a process
            // that goes on appending must not write after it.
            let _ = self.file.set_len(start);
            let _ = self.file.sync_data();
            return Err(io_error("cannot append to", &path, e));
        }
        self.len += record.len() as u64;
        for (frame, commit) in frames.into_iter().zip(commits) {
            self.push(frame, commit.app.clone(), commit.commit_id);
        }
        Ok(appended)
    }

    /// Writes the index file anew when the one this log was opened with is missing or far behind
    /// (see `LogIndex::write_extended`).
    fn save_index(&self, dir: &Path) -> std::io::Result<()> {
        let behind = self.frames.len() as u64;
        if self.indexed.count > 0 && behind < REINDEX_AFTER || self.last_seq() == 0 {
            return Ok(());
        }
        let mut header = [0; RECORD_HEADER];
        let last = self
            .frame(self.last_seq())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.file.read_exact_at(&mut header, last)?;
        let last_crc = u32::from_be_bytes(header[4..].try_into().expect("4 bytes"));
        self.indexed
            .write_extended(dir, self.len, last_crc, &self.frames, &self.ids, &self.apps)
    }
}

/// Records read, and the damage that stopped the reading, if any.
type Read = (Vec<StoredCommit>, Option<String>);

/// The damage message every use of a damaged log fails with.
fn damaged(path: &Path, damage: &str, whole: u64) -> String {
    format!(
        "{}: {damage}; nothing was changed; `hoist events export` saves the {whole} records before it",
        path.display()
    )
}

/// A record's body, parsed (its sequence and flags are read with the frame).
struct Body<'a> {
    commit_id: Uuid,
    app: AppName,
    payload: &'a [u8],
}

impl<'a> Body<'a> {
    fn parse(body: &'a [u8]) -> Option<Body<'a>> {
        if body.len() < BODY_FIXED {
            return None;
        }
        let commit_id = Uuid::from_bytes(body[9..25].try_into().ok()?);
        let app_len = usize::from(body[25]);
        let app = body.get(BODY_FIXED..BODY_FIXED + app_len)?;
        let app = AppName::from_log(std::str::from_utf8(app).ok()?).ok()?;
        Some(Body {
            commit_id,
            app,
            payload: &body[BODY_FIXED + app_len..],
        })
    }
}

fn encode_record(
    out: &mut Vec<u8>,
    seq: u64,
    flags: u8,
    commit: &NewCommit,
) -> Result<(), StoreError> {
    let app = commit.app.as_str().as_bytes();
    let len = BODY_FIXED + app.len() + commit.payload.len();
    if len > MAX_RECORD_BYTES {
        return Err(StoreError::Refused(format!(
            "a commit of {len} bytes is over the embedded log's limit of {MAX_RECORD_BYTES} bytes"
        )));
    }
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(commit.commit_id.as_bytes());
    out.push(app.len() as u8);
    out.extend_from_slice(app);
    out.extend_from_slice(&commit.payload);
    let crc = checksum(&out[start..start + 4], &out[start + RECORD_HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

fn checksum(len: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(body);
    hasher.finalize()
}

/// What one pass over the file found: the bodies of the whole batches, in order, where the last
/// of them ends, and where the first record that is not whole and valid starts.
struct Scan {
    bodies: Vec<(usize, usize)>,
    end: usize,
    stop: usize,
    /// A record written whole whose body does not parse: damage, not a torn write.
    malformed: Option<String>,
}

/// A record's frame whose length, checksum and sequence hold.
struct Frame {
    body: (usize, usize),
    seq: u64,
    crc: u32,
    flags: u8,
    next: usize,
}

/// The record at `at`, if it is whole, passes its checksum and carries a sequence in `seqs`.
/// The last sequence of the log in `dir` while no process has it open (its `head` file: written
/// by renaming, removed before any append), read without the store's lock; `None` while a
/// process holds the log (it may be appending), or when there is no such file. A long-running
/// reader (the server) answers from what it computed at this sequence without opening the store.
pub fn settled_head(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join(HEAD_FILE)).ok()?;
    Some(u64::from_be_bytes(bytes.as_slice().try_into().ok()?))
}

/// The sequence is looked at before the checksum: the look-ahead past damage tries every offset.
fn frame_at(bytes: &[u8], at: usize, seqs: std::ops::RangeInclusive<u64>) -> Option<Frame> {
    let header = bytes.get(at..at + RECORD_HEADER)?;
    let len = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
    if !(BODY_FIXED..=MAX_RECORD_BYTES).contains(&len) {
        return None;
    }
    let body = bytes.get(at + RECORD_HEADER..at + RECORD_HEADER + len)?;
    let seq = u64::from_be_bytes(body[..8].try_into().ok()?);
    if !seqs.contains(&seq) {
        return None;
    }
    let crc = u32::from_be_bytes(header[4..].try_into().ok()?);
    (checksum(&header[..4], body) == crc).then_some(Frame {
        body: (at + RECORD_HEADER, len),
        seq,
        crc,
        flags: body[8],
        next: at + RECORD_HEADER + len,
    })
}

/// Walks the records of `bytes` (the log from byte `base` on, where record `first_seq` starts),
/// stopping at the first that is incomplete, fails its checksum or breaks the sequence; then
/// drops an unfinished batch at the end. A record whose frame holds but whose body does not parse
/// was written whole: that is damage, not a torn write. Offsets returned are within `bytes`.
fn scan(bytes: &[u8], base: u64, first_seq: u64) -> Scan {
    let mut bodies = Vec::new();
    let mut malformed = None;
    let (mut at, mut end, mut batch_start) = (0, 0, 0);
    loop {
        let seq = first_seq + bodies.len() as u64;
        let Some(frame) = frame_at(bytes, at, seq..=seq) else {
            break;
        };
        let (start, len) = frame.body;
        if Body::parse(&bytes[start..start + len]).is_none() {
            let at = base + at as u64;
            malformed = Some(format!("record {} at byte {at} is malformed", frame.seq));
            break;
        }
        bodies.push(frame.body);
        at = frame.next;
        if frame.flags & FLAG_BATCH_CONTINUES == 0 {
            end = at;
            batch_start = bodies.len();
        }
    }
    bodies.truncate(batch_start);
    Scan {
        bodies,
        end,
        stop: at,
        malformed,
    }
}

/// Whether a record that was acknowledged lies past `stop`, where reading stopped. The rest of
/// one unfinished batch may follow a torn record (pages reach the disk out of order), but the
/// start of another batch, or a batch that ends and is followed by another record, was written
/// after a batch that was synced: then the log is damaged in the middle. Returns the later
/// record's offset.
fn acknowledged_past(bytes: &[u8], stop: usize, last_seq: u64) -> Option<usize> {
    let seqs = last_seq + 1..=last_seq + (bytes.len() / (RECORD_HEADER + BODY_FIXED)) as u64;
    let mut batch_ended = false;
    let mut at = stop + 1;
    while at + RECORD_HEADER + BODY_FIXED <= bytes.len() {
        match frame_at(bytes, at, seqs.clone()) {
            Some(frame) if batch_ended || frame.flags & FLAG_BATCH_STARTS != 0 => return Some(at),
            Some(frame) => {
                batch_ended = frame.flags & FLAG_BATCH_CONTINUES == 0;
                at = frame.next;
            }
            None => at += 1,
        }
    }
    None
}

/// Saves the bytes past `end` of `bytes` (the log from byte `base` on) under `DIR/quarantine/`
/// and cuts the log there.
fn cut_tail(
    dir: &Path,
    file: &mut File,
    bytes: &[u8],
    base: u64,
    end: usize,
) -> Result<(u64, u64, PathBuf), StoreError> {
    let quarantine = dir.join(QUARANTINE_DIR);
    let cut_at = base + end as u64;
    let saved = quarantine.join(format!(
        "log-tail-at-{cut_at}-{}.bin",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.fZ")
    ));
    std::fs::create_dir_all(&quarantine)
        .and_then(|()| {
            let mut out = File::create(&saved)?;
            out.write_all(&bytes[end..])?;
            out.sync_all()
        })
        .map_err(|e| io_error("cannot save the log's unfinished tail to", &saved, e))?;
    file.set_len(cut_at)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("cannot cut the log's unfinished tail in", dir, e))?;
    Ok((cut_at, (bytes.len() - end) as u64, saved))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Copies a sled-era store (`DIR/sled`) into a new log, written whole to a temp file and renamed
/// into place, so a migration cut short leaves the old store as it was.
fn migrate_from_sled(dir: &Path, legacy: &Path, wait: Duration) -> Result<(), StoreError> {
    let commits = crate::sled::read_legacy(legacy, wait)?;
    let mut bytes = MAGIC.to_vec();
    for (seq, commit) in commits.into_iter().enumerate() {
        let seq = seq as u64 + 1;
        let new = NewCommit {
            // Records do not keep it: the sequence is checked when appending, not stored.
            expected_last_seq: 0,
            app: commit.app,
            commit_id: commit.commit_id,
            payload: commit.payload,
        };
        encode_record(&mut bytes, seq, FLAG_BATCH_STARTS, &new)?;
    }
    let tmp = dir.join("log.migrating");
    let path = dir.join(LOG_FILE);
    (|| {
        let mut out = File::create(&tmp)?;
        out.write_all(&bytes)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)
    })()
    .map_err(|e| io_error("cannot write the migrated log", &path, e))?;
    std::fs::rename(legacy, dir.join("sled.pre-log"))
        .map_err(|e| io_error("cannot move aside the migrated sled store", legacy, e))
}

impl EventStore for FileStore {
    async fn append_batch(&self, commits: Vec<NewCommit>) -> Result<Vec<Appended>, StoreError> {
        self.with_log(|log| log.append_batch(&self.dir, &commits))
    }

    async fn read_app(&self, app: &AppName) -> Result<Vec<StoredCommit>, StoreError> {
        self.read_app_after(app, 0).await
    }

    async fn read_app_after(
        &self,
        app: &AppName,
        after_seq: u64,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        self.with_log(|log| {
            let seqs = log.app_seqs(app, after_seq, u64::MAX, usize::MAX)?;
            log.read_seqs(seqs)
        })
    }

    async fn read_app_back(
        &self,
        app: &AppName,
        through: u64,
        max: usize,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        self.with_log(|log| {
            let seqs = log.app_seqs(app, 0, through, max)?;
            log.read_seqs(seqs)
        })
    }

    async fn read_from(&self, from_seq: u64, max: usize) -> Result<Vec<StoredCommit>, StoreError> {
        self.with_log(|log| {
            let read = log.read_from(from_seq, max);
            log.checked(read)
        })
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        if self.log.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
            if let Some(seq) = self.read_head() {
                return Ok(seq);
            }
        }
        self.with_log(|log| Ok(log.last_seq()))
    }

    async fn apps(&self) -> Result<Vec<AppName>, StoreError> {
        self.with_log(|log| Ok(log.app_names()))
    }
}

impl Drop for FileStore {
    /// Writes `head` back while the lock is still held (fields drop after this body). Everything
    /// acknowledged is synced already; a failure here only costs the next process a read of the
    /// log.
    fn drop(&mut self) {
        let slot = self.log.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = slot.take().filter(|log| log.recovery.damage.is_none()) {
            let _ = log.save_index(&self.dir);
            let _ = self.write_head(log.last_seq());
        }
    }
}
