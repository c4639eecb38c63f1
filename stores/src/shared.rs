//! Read models shared on the NATS server (issue 15): a stream `<STREAM>_MODELS` beside the log,
//! subjects `hoist.models.<STREAM>.<key>`, one message kept per key (the newest), file storage,
//! the log's replicas. Writers put a snapshot of a model there now and then; a machine with an
//! empty cache starts from it and folds only the log after it, instead of the whole stream.
//!
//! What is kept here is a cache like the local one: the projections check each snapshot's
//! stream identity and sequence before they take it, and anything unreadable reads as absent.

use crate::nats::NatsStore;
use async_nats::jetstream::stream::{Config, DiscardPolicy, LastRawMessageErrorKind, StorageType};

/// The shared models of the stream a [`NatsStore`] is on.
pub struct SharedModels {
    js: async_nats::jetstream::Context,
    stream: String,
    prefix: String,
    config: Config,
}

impl SharedModels {
    /// The shared models of `store`'s stream (the models stream is created on the first put).
    pub fn of(store: &NatsStore, replicas: usize) -> Self {
        let log = store.stream_name();
        let stream = format!("{log}_MODELS");
        let prefix = format!("hoist.models.{log}.");
        let config = Config {
            name: stream.clone(),
            subjects: vec![format!("{prefix}>")],
            description: Some(format!("hoist: read-model snapshots of stream {log}")),
            storage: StorageType::File,
            max_messages_per_subject: 1,
            discard: DiscardPolicy::Old,
            allow_direct: true,
            num_replicas: replicas,
            ..Default::default()
        };
        SharedModels {
            js: store.jetstream().clone(),
            stream,
            prefix,
            config,
        }
    }

    /// The snapshot last put under `key` by [`Self::put`], whole, if the server has one (and
    /// answers), and its chunks are all of one put.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let head: Head = serde_json::from_slice(&self.get_one(key).await?).ok()?;
        let mut whole = Vec::with_capacity(head.len);
        for i in 0..head.chunks {
            whole.extend(self.get_one(&format!("{key}.{i}")).await?);
        }
        (whole.len() == head.len && crc32fast::hash(&whole) == head.crc).then_some(whole)
    }

    /// The last message of `{prefix}{key}`.
    async fn get_one(&self, key: &str) -> Option<Vec<u8>> {
        let stream = self.js.get_stream_no_info(&self.stream).await.ok()?;
        match stream
            .get_last_raw_message_by_subject(&format!("{}{key}", self.prefix))
            .await
        {
            Ok(message) => Some(message.payload.to_vec()),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => None,
            Err(_) => None,
        }
    }

    /// Puts `snapshot` under `key`, replacing the one before; returns once the server has it.
    /// A snapshot may be larger than a message: it goes in chunks (`key.0`, `key.1`, …), then a
    /// head (`key`) naming their count, length and CRC-32, so a reader never takes chunks of two
    /// puts for one snapshot.
    pub async fn put(&self, key: &str, snapshot: Vec<u8>) -> Result<(), String> {
        let what = |e: &dyn std::fmt::Display| format!("shared models {}: {e}", self.stream);
        self.js
            .get_or_create_stream(self.config.clone())
            .await
            .map_err(|e| what(&e))?;
        let chunks: Vec<&[u8]> = snapshot.chunks(CHUNK).collect();
        let head = Head {
            chunks: chunks.len(),
            len: snapshot.len(),
            crc: crc32fast::hash(&snapshot),
        };
        let head = serde_json::to_vec(&head).expect("a head serializes");
        let parts = chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| (format!("{key}.{i}"), chunk.to_vec()))
            .chain([(key.to_string(), head)]);
        for (subject, bytes) in parts {
            self.js
                .publish(format!("{}{subject}", self.prefix), bytes.into())
                .await
                .map_err(|e| what(&e))?
                .await
                .map_err(|e| what(&e))?;
        }
        Ok(())
    }
}

/// Bytes per chunk of a snapshot: well under the server's default `max_payload` (1 MiB).
const CHUNK: usize = 256 * 1024;

/// What a snapshot's head message says of its chunks.
#[derive(serde::Serialize, serde::Deserialize)]
struct Head {
    chunks: usize,
    len: usize,
    crc: u32,
}
