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

    /// The snapshot last put under `key`, if the server has one (and answers).
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
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
    pub async fn put(&self, key: &str, snapshot: Vec<u8>) -> Result<(), String> {
        let what = |e: &dyn std::fmt::Display| format!("shared models {}: {e}", self.stream);
        self.js
            .get_or_create_stream(self.config.clone())
            .await
            .map_err(|e| what(&e))?;
        self.js
            .publish(format!("{}{key}", self.prefix), snapshot.into())
            .await
            .map_err(|e| what(&e))?
            .await
            .map_err(|e| what(&e))?;
        Ok(())
    }
}
