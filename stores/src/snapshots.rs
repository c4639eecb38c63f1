//! Snapshots of apps' decide state (issue 15) in a directory: one file per app, `<hex of the
//! app's name>.snap`, replaced whole by writing a temp file and renaming it over the old one.
//!
//! ```text
//! file = "HOISTSN1" crc:u32 body      (crc = CRC-32 of body, big-endian)
//! ```
//!
//! A snapshot is a cache (the engine's `snapshot` module checks each against the log before it
//! trusts it): a file that is missing, torn, damaged or of another format reads as no snapshot,
//! and a process killed while writing one leaves at most a stray temp file, never a half-written
//! snapshot. Nothing is synced: a snapshot lost in a crash is folded again.

use hoist_engine::snapshot::SnapshotStore;
use hoist_engine::AppName;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"HOISTSN1";

/// Snapshots kept in one directory (created on the first save).
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SnapshotDir { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `app`'s snapshot is: its name in hex, so any name makes one plain file name.
    pub fn path(&self, app: &AppName) -> PathBuf {
        let hex: String = app.as_str().bytes().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}.snap"))
    }
}

impl SnapshotStore for SnapshotDir {
    fn load(&self, app: &AppName) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.path(app)).ok()?;
        let rest = bytes.strip_prefix(MAGIC)?;
        let (crc, body) = rest.split_first_chunk::<4>()?;
        (u32::from_be_bytes(*crc) == crc32fast::hash(body)).then(|| body.to_vec())
    }

    fn save(&self, app: &AppName, snapshot: &[u8]) -> Result<(), String> {
        let path = self.path(app);
        // One temp file per process: two processes saving at once (NATS caches are shared by
        // readers) each rename a whole file of their own.
        let tmp = path.with_extension(format!("snap.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + snapshot.len());
            bytes.extend_from_slice(MAGIC);
            bytes.extend_from_slice(&crc32fast::hash(snapshot).to_be_bytes());
            bytes.extend_from_slice(snapshot);
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot save the snapshot {}: {e}", path.display())
        })
    }
}
