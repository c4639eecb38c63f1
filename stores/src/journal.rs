//! Hooks' delivery journals (issue 11): each hook's attempts, one JSON line each, outside the
//! apps' hash chains, and the hold that keeps one `serve` instance delivering a hook at a time.
//!
//! - **Embedded store**: `DIR/hooks/<hook id>.jsonl`, appended and `fdatasync`ed before an
//!   attempt counts as recorded; a line cut short by a crash or a full disk is cut off before
//!   the next append and skipped by readers, so a torn journal never stops a hook. The hold is
//!   an OS file lock on `DIR/hooks/<hook id>.lock`, released by the kernel when its holder dies.
//! - **NATS**: a stream `<STREAM>_HOOKS` beside the log, subject
//!   `hoist.hooks.<STREAM>.<hook id>`, file storage, the log's replicas; the hold is a claim
//!   (`nats_work::Claims`) on `_hook.<hook id>`.
//!
//! Only the holder appends, so a journal has one writer at a time.

use crate::nats::NatsStore;
use crate::nats_work::{Claim, Claimed, Claims};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::{Config, StorageType};
use futures::StreamExt;
use hoist_engine::hooks::Attempt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("hook journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("hook journal on NATS: {0}")]
    Nats(String),
}

/// Where hooks' journals are kept.
#[derive(Clone)]
pub enum Journals {
    File(Arc<FileJournals>),
    Nats(Arc<NatsJournals>),
}

/// The hold on one hook's deliveries: while it lives, no other instance delivers the hook.
pub enum Hold {
    File(#[allow(dead_code)] File),
    Nats(Claim),
}

impl Journals {
    /// The journals of the embedded store in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Journals::File(Arc::new(FileJournals {
            dir: dir.join("hooks"),
        }))
    }

    /// The journals of the NATS log `store` is on (the stream is created on first use).
    pub async fn on_nats(store: &NatsStore, replicas: usize) -> Result<Self, JournalError> {
        let log = store.stream_name();
        let stream = format!("{log}_HOOKS");
        let prefix = format!("hoist.hooks.{log}.");
        let config = Config {
            name: stream.clone(),
            subjects: vec![format!("{prefix}>")],
            description: Some(format!("hoist: hooks' delivery attempts for stream {log}")),
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        store
            .jetstream()
            .get_or_create_stream(config)
            .await
            .map_err(|e| JournalError::Nats(format!("stream {stream}: {e}")))?;
        Ok(Journals::Nats(Arc::new(NatsJournals {
            js: store.jetstream().clone(),
            stream,
            prefix,
            claims: Claims::open(store, replicas)
                .await
                .map_err(JournalError::Nats)?,
        })))
    }

    /// Appends one attempt to hook `hook`'s journal; returns once it is durable.
    pub async fn append(&self, hook: Uuid, attempt: &Attempt) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(attempt).expect("attempts serialize");
        line.push(b'\n');
        match self {
            Journals::File(files) => {
                let files = Arc::clone(files);
                tokio::task::spawn_blocking(move || files.append(hook, &line))
                    .await
                    .expect("journal append does not panic")
            }
            Journals::Nats(nats) => nats.append(hook, line).await,
        }
    }

    /// Every attempt recorded for `hook`, in the order recorded; lines that cannot be read
    /// (cut short by a crash) are skipped.
    pub async fn read(&self, hook: Uuid) -> Result<Vec<Attempt>, JournalError> {
        let lines = match self {
            Journals::File(files) => {
                let files = Arc::clone(files);
                tokio::task::spawn_blocking(move || files.read(hook))
                    .await
                    .expect("journal read does not panic")?
            }
            Journals::Nats(nats) => nats.read(hook).await?,
        };
        Ok(lines
            .iter()
            .filter_map(|line| serde_json::from_slice(line).ok())
            .collect())
    }

    /// Saves `value` as the cursor `name` (a chat bot's place in its feed), durably: what a
    /// restart resumes from.
    pub async fn save_cursor(&self, name: &str, value: &str) -> Result<(), JournalError> {
        match self {
            Journals::File(files) => {
                let files = Arc::clone(files);
                let (name, value) = (name.to_string(), value.to_string());
                tokio::task::spawn_blocking(move || files.save_cursor(&name, &value))
                    .await
                    .expect("cursor save does not panic")
            }
            Journals::Nats(nats) => {
                nats.append_subject(&format!("cursor.{name}"), value.as_bytes().to_vec())
                    .await
            }
        }
    }

    /// The cursor `name` as last saved.
    pub async fn load_cursor(&self, name: &str) -> Result<Option<String>, JournalError> {
        match self {
            Journals::File(files) => {
                let path = files.dir.join(format!("{name}.cursor"));
                match std::fs::read_to_string(&path) {
                    Ok(text) => Ok(Some(text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(FileJournals::io(&path)(e)),
                }
            }
            Journals::Nats(nats) => nats.last(&format!("cursor.{name}")).await,
        }
    }

    /// Takes the hold on `hook`'s deliveries, unless another instance has it (`Ok(None)`).
    pub async fn hold(&self, hook: Uuid) -> Result<Option<Hold>, JournalError> {
        match self {
            Journals::File(files) => files.hold(hook).map(|h| h.map(Hold::File)),
            Journals::Nats(nats) => match nats.claims.claim_key(&claim_key(hook)).await {
                Ok(Claimed::Mine(claim)) => Ok(Some(Hold::Nats(claim))),
                Ok(Claimed::Held(_)) => Ok(None),
                Err(e) => Err(JournalError::Nats(e)),
            },
        }
    }

    /// Keeps a hold alive (a NATS claim lapses unless renewed); an error means it was lost.
    pub async fn renew(&self, hold: &mut Hold) -> Result<(), JournalError> {
        match (self, hold) {
            (Journals::Nats(nats), Hold::Nats(claim)) => {
                nats.claims.renew(claim).await.map_err(JournalError::Nats)
            }
            _ => Ok(()),
        }
    }

    /// Lets a hold go.
    pub async fn release(&self, hold: Hold) {
        if let (Journals::Nats(nats), Hold::Nats(claim)) = (self, hold) {
            // If it fails, the claim lapses by itself.
            let _ = nats.claims.release(claim).await;
        }
    }
}

fn claim_key(hook: Uuid) -> String {
    format!("_hook.{}", hook.simple())
}

pub struct FileJournals {
    dir: PathBuf,
}

impl FileJournals {
    fn path(&self, hook: Uuid, extension: &str) -> PathBuf {
        self.dir.join(format!("{}.{extension}", hook.simple()))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
        move |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn append(&self, hook: Uuid, line: &[u8]) -> Result<(), JournalError> {
        let path = self.path(hook, "jsonl");
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Self::io(&path))?;
        // A line cut short by a crash or a full disk is cut off first: whole lines only.
        let whole = whole_len(&mut file).map_err(Self::io(&path))?;
        let written = (|| {
            file.set_len(whole)?;
            file.seek(SeekFrom::Start(whole))?;
            file.write_all(line)?;
            file.sync_data()
        })();
        if let Err(e) = written {
            // Nothing half-written is left for a reader; if this fails too, the next append cuts it.
            let _ = file.set_len(whole);
            return Err(Self::io(&path)(e));
        }
        Ok(())
    }

    fn read(&self, hook: Uuid) -> Result<Vec<Vec<u8>>, JournalError> {
        let path = self.path(hook, "jsonl");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Self::io(&path)(e)),
        };
        // The part after the last newline is a line cut short: not a line.
        Ok(bytes
            .split_inclusive(|b| *b == b'\n')
            .filter(|line| line.ends_with(b"\n"))
            .map(<[u8]>::to_vec)
            .collect())
    }

    /// Written beside, synced, then renamed over: a crash leaves the old cursor or the new one.
    fn save_cursor(&self, name: &str, value: &str) -> Result<(), JournalError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let path = self.dir.join(format!("{name}.cursor"));
        let staged = self.dir.join(format!("{name}.cursor.tmp"));
        let written = (|| {
            let mut file = File::create(&staged)?;
            file.write_all(value.as_bytes())?;
            file.sync_data()?;
            std::fs::rename(&staged, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        written.map_err(Self::io(&path))
    }

    fn hold(&self, hook: Uuid) -> Result<Option<File>, JournalError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let path = self.path(hook, "lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Self::io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Self::io(&path)(e)),
        }
    }
}

/// The length of the file's whole lines: up to and including its last newline.
fn whole_len(file: &mut File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    let mut at = len;
    let mut buf = [0u8; 4096];
    while at > 0 {
        let chunk = (at as usize).min(buf.len());
        at -= chunk as u64;
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut buf[..chunk])?;
        if let Some(i) = buf[..chunk].iter().rposition(|b| *b == b'\n') {
            return Ok(at + i as u64 + 1);
        }
    }
    Ok(0)
}

pub struct NatsJournals {
    js: async_nats::jetstream::Context,
    stream: String,
    prefix: String,
    claims: Claims,
}

impl NatsJournals {
    async fn append(&self, hook: Uuid, line: Vec<u8>) -> Result<(), JournalError> {
        self.append_subject(&hook.simple().to_string(), line).await
    }

    /// The last message of `{prefix}{key}`, if any.
    async fn last(&self, key: &str) -> Result<Option<String>, JournalError> {
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| JournalError::Nats(e.to_string()))?;
        match stream
            .get_last_raw_message_by_subject(&format!("{}{key}", self.prefix))
            .await
        {
            Ok(message) => Ok(Some(String::from_utf8_lossy(&message.payload).into_owned())),
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok(None)
            }
            Err(e) => Err(JournalError::Nats(e.to_string())),
        }
    }

    async fn append_subject(&self, key: &str, line: Vec<u8>) -> Result<(), JournalError> {
        let subject = format!("{}{key}", self.prefix);
        self.js
            .publish(subject, line.into())
            .await
            .map_err(|e| JournalError::Nats(e.to_string()))?
            .await
            .map_err(|e| JournalError::Nats(e.to_string()))?;
        Ok(())
    }

    async fn read(&self, hook: Uuid) -> Result<Vec<Vec<u8>>, JournalError> {
        let failed = |e: &dyn std::fmt::Display| JournalError::Nats(e.to_string());
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| failed(&e))?;
        let consumer = stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::All,
                filter_subject: format!("{}{}", self.prefix, hook.simple()),
                ack_policy: AckPolicy::None,
                memory_storage: true,
                num_replicas: 1,
                inactive_threshold: std::time::Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| failed(&e))?;
        let want = consumer.cached_info().num_pending as usize;
        let mut lines = Vec::with_capacity(want);
        while lines.len() < want {
            let mut batch = consumer
                .fetch()
                .max_messages((want - lines.len()).min(1000))
                .messages()
                .await
                .map_err(|e| failed(&e))?;
            let before = lines.len();
            while let Some(message) = batch.next().await {
                lines.push(message.map_err(|e| failed(&e))?.payload.to_vec());
            }
            if lines.len() == before {
                return Err(JournalError::Nats(format!(
                    "read of {} stopped after {before} of {want} attempts",
                    self.stream
                )));
            }
        }
        let _ = stream.delete_consumer(&consumer.cached_info().name).await;
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_engine::hooks::DeliveryState;

    fn attempt(n: u32) -> Attempt {
        Attempt {
            delivery: Uuid::from_u128(7),
            seq: 3,
            app: "api".parse().unwrap(),
            env: None,
            kind: "release.created".into(),
            attempt: n,
            at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            status: Some(500),
            error: None,
            state: DeliveryState::Retrying,
            next_attempt_at: None,
            done_through: 2,
            redelivery: None,
        }
    }

    #[tokio::test]
    async fn a_line_cut_short_is_skipped_then_cut_off_by_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let journals = Journals::in_dir(dir.path());
        let hook = Uuid::from_u128(1);
        journals.append(hook, &attempt(1)).await.unwrap();
        // A crash in the middle of the second line.
        let path = dir
            .path()
            .join("hooks")
            .join(format!("{}.jsonl", hook.simple()));
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"delivery\":\"0000").unwrap();
        drop(file);
        assert_eq!(journals.read(hook).await.unwrap(), vec![attempt(1)]);
        journals.append(hook, &attempt(2)).await.unwrap();
        assert_eq!(
            journals.read(hook).await.unwrap(),
            vec![attempt(1), attempt(2)]
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_the_hold_ends_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let journals = Journals::in_dir(dir.path());
        let hook = Uuid::from_u128(1);
        let held = journals.hold(hook).await.unwrap().expect("free");
        assert!(journals.hold(hook).await.unwrap().is_none());
        assert!(journals.hold(Uuid::from_u128(2)).await.unwrap().is_some());
        drop(held);
        assert!(journals.hold(hook).await.unwrap().is_some());
    }
}
