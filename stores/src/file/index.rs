//! The index file (`DIR/log.index`): what opening the log would otherwise learn by reading every
//! record, as of the log's first `covered_len` bytes.
//!
//! ```text
//! index   = header body crc:u32{blocks} crc:u32      the last: CRC-32 of header ‖ block crcs
//! header  = "HOISTIX2" covered_len:u64 count:u64 last_crc:u32 dir_len:u64 apps:u32
//! body    = frame:u64{count}                  each record's offset, by sequence
//!           (commit_id:[16] seq:u64){count}   sorted by commit id
//!           seq:u64{count}                    each app's sequences, one run per app
//!           (name_len:u8 name first:u64 n:u64){apps}   the runs: the app directory (dir_len bytes)
//! blocks  = the body in blocks of BLOCK bytes (the last may be shorter), each with its CRC-32
//! ```
//!
//! **Invariant**: it is a cache. It is used only when its header and block checksums hold and
//! the log's record at its last frame is whole, ends at `covered_len` and carries `count` and
//! `last_crc`; a log is only ever appended to, so the records before it are those the index
//! describes.
//!
//! Opening reads the header, the block checksums and the app directory: its cost and memory grow
//! with the number of apps, not records (issue 15: a command's peak memory does not grow with
//! the log). A lookup reads the blocks it touches (a frame by position, a commit id by binary
//! search, an app's sequences in its run) and checks each block's checksum on its first read; a
//! block that fails it makes the whole index [`IndexLost`], and the store goes on without it.

use super::{io_error, INDEX_FILE, INDEX_TMP_FILE, MAGIC};
use hoist_engine::store::StoreError;
use hoist_engine::AppName;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use uuid::Uuid;

const INDEX_MAGIC: &[u8; 8] = b"HOISTIX2";
const HEADER: usize = 8 + 8 + 8 + 4 + 8 + 4;
/// Bytes per checksummed block of the body.
const BLOCK: usize = 4096;
/// Blocks kept after their first read; past this many the cache starts over, so a long-lived
/// process that reads the whole log keeps a bounded part of its index.
const CACHED_BLOCKS: usize = 1024;
const ID_RECORD: usize = 16 + 8;
/// Body bytes per record: its frame, its commit id record, its place in its app's run.
const PER_RECORD: u64 = 8 + ID_RECORD as u64 + 8;

/// A block of the index file failed its checksum or could not be read: the index cannot be
/// trusted, and the store reads the log without it.
#[derive(Debug)]
pub(super) struct IndexLost;

impl From<IndexLost> for StoreError {
    fn from(_: IndexLost) -> Self {
        StoreError::Unavailable(format!(
            "the log's index file ({INDEX_FILE}) is damaged; it is rebuilt from the log"
        ))
    }
}

type Found<T> = Result<T, IndexLost>;

#[derive(Default)]
pub(super) struct LogIndex {
    pub covered_len: u64,
    pub count: u64,
    pub last_crc: u32,
    /// `None` for the empty index (no file).
    file: Option<File>,
    body_len: u64,
    crcs: Vec<u32>,
    /// Each app's run in the sequences: its first element and length.
    apps: HashMap<AppName, (u64, u64)>,
    blocks: RefCell<HashMap<u64, Box<[u8]>>>,
    lost: Cell<bool>,
}

impl LogIndex {
    fn frames_at(&self) -> u64 {
        0
    }

    fn ids_at(&self) -> u64 {
        self.count * 8
    }

    fn seqs_at(&self) -> u64 {
        self.count * (8 + ID_RECORD as u64)
    }

    /// Whether a block failed its checksum: nothing this index answered since can be trusted.
    pub fn lost(&self) -> bool {
        self.lost.get()
    }

    /// Block `b` of the body read from the file and checked.
    fn load_block(&self, b: u64) -> Found<Vec<u8>> {
        let fail = || {
            self.lost.set(true);
            IndexLost
        };
        let file = self.file.as_ref().ok_or_else(fail)?;
        let start = b * BLOCK as u64;
        let len = (self.body_len.saturating_sub(start)).min(BLOCK as u64) as usize;
        let mut block = vec![0; len];
        file.read_exact_at(&mut block, HEADER as u64 + start)
            .map_err(|_| fail())?;
        match self.crcs.get(b as usize) {
            Some(&crc) if len > 0 && crc32fast::hash(&block) == crc => Ok(block),
            _ => Err(fail()),
        }
    }

    /// Copies the body's bytes at `at` into `out`, through the block cache.
    fn read(&self, at: u64, out: &mut [u8]) -> Found<()> {
        let mut done = 0;
        while done < out.len() {
            let pos = at + done as u64;
            let b = pos / BLOCK as u64;
            let mut blocks = self.blocks.borrow_mut();
            if !blocks.contains_key(&b) {
                let block = self.load_block(b)?;
                if blocks.len() >= CACHED_BLOCKS {
                    blocks.clear();
                }
                blocks.insert(b, block.into_boxed_slice());
            }
            let block = &blocks[&b];
            let offset = (pos % BLOCK as u64) as usize;
            let n = (block.len().saturating_sub(offset)).min(out.len() - done);
            if n == 0 {
                self.lost.set(true);
                return Err(IndexLost);
            }
            out[done..done + n].copy_from_slice(&block[offset..offset + n]);
            done += n;
        }
        Ok(())
    }

    fn u64_at(&self, at: u64) -> Found<u64> {
        let mut bytes = [0; 8];
        self.read(at, &mut bytes)?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// Where the `i`-th record (sequence `i + 1`) starts.
    pub fn frame(&self, i: u64) -> Found<u64> {
        self.u64_at(self.frames_at() + i * 8)
    }

    /// The `n` numbers at `at`, with one read.
    fn u64s(&self, at: u64, n: usize) -> Found<Vec<u64>> {
        let mut bytes = vec![0; n * 8];
        self.read(at, &mut bytes)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
            .collect())
    }

    /// Where records `i..i + n` start.
    pub fn frames(&self, i: u64, n: usize) -> Found<Vec<u64>> {
        self.u64s(self.frames_at() + i * 8, n)
    }

    /// The sequence of the record with commit id `id`.
    pub fn id(&self, id: &Uuid) -> Found<Option<u64>> {
        let record = |i: u64| -> Found<[u8; ID_RECORD]> {
            let mut bytes = [0; ID_RECORD];
            self.read(self.ids_at() + i * ID_RECORD as u64, &mut bytes)?;
            Ok(bytes)
        };
        let first = partition_point(self.count, |i| Ok(record(i)?[..16] < id.as_bytes()[..]))?;
        if first == self.count {
            return Ok(None);
        }
        let found = record(first)?;
        Ok((found[..16] == id.as_bytes()[..])
            .then(|| u64::from_be_bytes(found[16..].try_into().expect("8 bytes"))))
    }

    /// The last `max` of `app`'s sequences in `after < seq <= through`.
    pub fn app_seqs(&self, app: &AppName, after: u64, through: u64, max: usize) -> Found<Vec<u64>> {
        let Some(&(at, n)) = self.apps.get(app) else {
            return Ok(Vec::new());
        };
        let seq = |i: u64| self.u64_at(self.seqs_at() + (at + i) * 8);
        let first = partition_point(n, |i| Ok(seq(i)? <= after))?;
        let end = partition_point(n, |i| Ok(seq(i)? <= through))?.max(first);
        let start = end.saturating_sub(max as u64).max(first);
        self.u64s(self.seqs_at() + (at + start) * 8, (end - start) as usize)
    }

    pub fn app_head(&self, app: &AppName) -> Found<Option<u64>> {
        let Some(&(at, n)) = self.apps.get(app) else {
            return Ok(None);
        };
        match n.checked_sub(1) {
            Some(last) => Ok(Some(self.u64_at(self.seqs_at() + (at + last) * 8)?)),
            None => Ok(None),
        }
    }

    pub fn app_names(&self) -> impl Iterator<Item = &AppName> {
        self.apps.keys()
    }

    /// Writes to `dir` the index of a log `covered_len` long whose last record's checksum is
    /// `last_crc`: this index with the records after it (`frames`, `ids`, `apps`, as the log
    /// holds them) added. Streams: this index is read a block at a time, not held whole. Written to
    /// a temp file renamed over the old one, not synced: a torn or stale index fails its own
    /// checksums or its match with the log, and the log is then read whole.
    pub fn write_extended(
        &self,
        dir: &Path,
        covered_len: u64,
        last_crc: u32,
        frames: &[u64],
        ids: &HashMap<Uuid, u64>,
        apps: &HashMap<AppName, Vec<u64>>,
    ) -> std::io::Result<()> {
        let count = self.count + frames.len() as u64;
        let mut names: Vec<&AppName> = self.apps.keys().chain(apps.keys()).collect();
        names.sort();
        names.dedup();
        let dir_len: u64 = names
            .iter()
            .map(|app| 1 + app.as_str().len() as u64 + 16)
            .sum();
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(INDEX_MAGIC);
        header.extend_from_slice(&covered_len.to_be_bytes());
        header.extend_from_slice(&count.to_be_bytes());
        header.extend_from_slice(&last_crc.to_be_bytes());
        header.extend_from_slice(&dir_len.to_be_bytes());
        header.extend_from_slice(&(names.len() as u32).to_be_bytes());

        let tmp = dir.join(INDEX_TMP_FILE);
        let mut out = BufWriter::new(File::create(&tmp)?);
        out.write_all(&header)?;
        let mut body = BodyWriter {
            out,
            block: Vec::with_capacity(BLOCK),
            crcs: Vec::new(),
        };
        let mut old = Sequential::new(self);
        // Frames: the index's, then the new ones.
        old.copy(self.frames_at(), self.count * 8, &mut body)?;
        for frame in frames {
            body.put(&frame.to_be_bytes())?;
        }
        // Commit ids, sorted: the index's (sorted already) merged with the new ones.
        let mut recent: Vec<(&Uuid, &u64)> = ids.iter().collect();
        recent.sort_unstable();
        let mut recent = recent.into_iter().peekable();
        old.seek(self.ids_at());
        let mut record = [0; ID_RECORD];
        for _ in 0..self.count {
            old.take(&mut record).map_err(extending_lost)?;
            while let Some((id, seq)) = recent.next_if(|(id, _)| id.as_bytes()[..] < record[..16]) {
                body.put(id.as_bytes())?;
                body.put(&seq.to_be_bytes())?;
            }
            body.put(&record)?;
        }
        for (id, seq) in recent {
            body.put(id.as_bytes())?;
            body.put(&seq.to_be_bytes())?;
        }
        // Each app's run: the index's, then its new sequences.
        let mut directory = Vec::with_capacity(dir_len as usize);
        let mut first = 0u64;
        for app in names {
            let (at, n) = self.apps.get(app).copied().unwrap_or_default();
            let recent = apps.get(app).map(Vec::as_slice).unwrap_or_default();
            old.copy(self.seqs_at() + at * 8, n * 8, &mut body)?;
            for seq in recent {
                body.put(&seq.to_be_bytes())?;
            }
            let len = n + recent.len() as u64;
            let name = app.as_str().as_bytes();
            directory.push(name.len() as u8);
            directory.extend_from_slice(name);
            directory.extend_from_slice(&first.to_be_bytes());
            directory.extend_from_slice(&len.to_be_bytes());
            first += len;
        }
        body.put(&directory)?;
        let (mut out, crcs) = body.finish()?;
        let mut checked = crc32fast::Hasher::new();
        checked.update(&header);
        for crc in &crcs {
            out.write_all(&crc.to_be_bytes())?;
            checked.update(&crc.to_be_bytes());
        }
        out.write_all(&checked.finalize().to_be_bytes())?;
        out.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(tmp, dir.join(INDEX_FILE))
    }

    /// The index file in `dir`, when its header, block checksums and app directory are whole
    /// and consistent in themselves (the other blocks are checked where they are read).
    pub fn load(dir: &Path) -> Option<LogIndex> {
        let file = File::open(dir.join(INDEX_FILE)).ok()?;
        let file_len = file.metadata().ok()?.len();
        let mut header = [0; HEADER];
        file.read_exact_at(&mut header, 0).ok()?;
        if &header[..8] != INDEX_MAGIC {
            return None;
        }
        let u64_at = |at: usize| u64::from_be_bytes(header[at..at + 8].try_into().expect("8"));
        let u32_at = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4"));
        let (covered_len, count, last_crc) = (u64_at(8), u64_at(16), u32_at(24));
        let (dir_len, app_count) = (u64_at(28), u32_at(36));
        let body_len = count.checked_mul(PER_RECORD)?.checked_add(dir_len)?;
        let blocks = body_len.div_ceil(BLOCK as u64);
        let tail_len = blocks.checked_mul(4)?.checked_add(4)?;
        if file_len
            != (HEADER as u64)
                .checked_add(body_len)?
                .checked_add(tail_len)?
        {
            return None;
        }
        let mut tail = vec![0; usize::try_from(tail_len).ok()?];
        file.read_exact_at(&mut tail, HEADER as u64 + body_len)
            .ok()?;
        let (crc_bytes, trailer) = tail.split_at(tail.len() - 4);
        let mut checked = crc32fast::Hasher::new();
        checked.update(&header);
        checked.update(crc_bytes);
        if checked.finalize() != u32::from_be_bytes(trailer.try_into().ok()?) {
            return None;
        }
        let mut index = LogIndex {
            covered_len,
            count,
            last_crc,
            file: Some(file),
            body_len,
            crcs: crc_bytes
                .chunks_exact(4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            ..LogIndex::default()
        };
        let mut directory = vec![0; usize::try_from(dir_len).ok()?];
        index
            .read(count.checked_mul(PER_RECORD)?, &mut directory)
            .ok()?;
        let mut at = 0usize;
        let mut next = 0u64;
        for _ in 0..app_count {
            let name_len = usize::from(*directory.get(at)?);
            let name = directory.get(at + 1..at + 1 + name_len)?;
            let app = AppName::from_log(std::str::from_utf8(name).ok()?).ok()?;
            at += 1 + name_len;
            let fields = directory.get(at..at + 16)?;
            let first = u64::from_be_bytes(fields[..8].try_into().ok()?);
            let n = u64::from_be_bytes(fields[8..].try_into().ok()?);
            at += 16;
            // The runs follow each other in the directory's order, and cover every record.
            if first != next {
                return None;
            }
            next = next.checked_add(n)?;
            index.apps.insert(app, (first, n));
        }
        if at != directory.len() || next != count || index.apps.len() != app_count as usize {
            return None;
        }
        // The frames lie between the magic and the end the index covers.
        let within = |i| {
            index
                .frame(i)
                .is_ok_and(|f| (MAGIC.len() as u64..covered_len).contains(&f))
        };
        (count == 0 || within(0) && within(count - 1)).then_some(index)
    }
}

/// The index body as it is written: each full block's checksum taken as it goes.
struct BodyWriter<W: Write> {
    out: W,
    block: Vec<u8>,
    crcs: Vec<u32>,
}

impl<W: Write> BodyWriter<W> {
    fn put(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let (now, rest) = bytes.split_at((BLOCK - self.block.len()).min(bytes.len()));
            self.block.extend_from_slice(now);
            if self.block.len() == BLOCK {
                self.end_block()?;
            }
            bytes = rest;
        }
        Ok(())
    }

    fn end_block(&mut self) -> std::io::Result<()> {
        self.crcs.push(crc32fast::hash(&self.block));
        self.out.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<(W, Vec<u32>)> {
        if !self.block.is_empty() {
            self.end_block()?;
        }
        Ok((self.out, self.crcs))
    }
}

/// Reads an index's body front to back (through its block cache, which stays bounded).
struct Sequential<'a> {
    index: &'a LogIndex,
    at: u64,
}

impl<'a> Sequential<'a> {
    fn new(index: &'a LogIndex) -> Self {
        Sequential { index, at: 0 }
    }

    fn seek(&mut self, at: u64) {
        self.at = at;
    }

    fn take(&mut self, out: &mut [u8]) -> Found<()> {
        self.index.read(self.at, out)?;
        self.at += out.len() as u64;
        Ok(())
    }

    /// Puts `len` bytes from `at` into `body`.
    fn copy<W: Write>(
        &mut self,
        at: u64,
        len: u64,
        body: &mut BodyWriter<W>,
    ) -> std::io::Result<()> {
        self.seek(at);
        let mut chunk = vec![0; BLOCK];
        let mut left = len;
        while left > 0 {
            let n = left.min(BLOCK as u64) as usize;
            self.take(&mut chunk[..n]).map_err(extending_lost)?;
            body.put(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// The first of `0..n` for which `before` is false, where it is true for a prefix: a binary
/// search over records read from the file.
fn partition_point(n: u64, mut before: impl FnMut(u64) -> Found<bool>) -> Found<u64> {
    let (mut low, mut high) = (0, n);
    while low < high {
        let mid = (low + high) / 2;
        if before(mid)? {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Ok(low)
}

fn extending_lost(_: IndexLost) -> std::io::Error {
    std::io::Error::other("the index being extended is damaged")
}

/// Removes the index file in `dir` (a damaged one: the log is then read whole, and the index
/// written anew when the store is let go).
pub(super) fn remove(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(INDEX_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("cannot remove", &path, e)),
    }
}
