//! How several `hoist serve` instances share the work on NATS: a durable consumer hands each new
//! commit of the log to one instance, and a per-env claim keeps two instances from applying one
//! env at the same time. The reconciling itself is `serve`'s and `reconcile`'s; this module only
//! speaks JetStream, and the engine knows nothing of either.
//!
//! - **Deliveries**: one durable pull consumer, [`CONSUMER`], on the log stream (`hoist.app.>`),
//!   explicit acks. Each instance pulls one commit at a time; its reconciles run in tasks of
//!   their own (`serve`), so a long rollout does not keep it from pulling the next. A commit is
//!   acked once its
//!   app's pending envs were reconciled; while a reconcile runs (a rollout may be awaited for
//!   minutes) the delivery is kept alive with in-progress acks every [`KEEPALIVE`], so the short
//!   [`ACK_WAIT`] only matters when an instance dies: its commit goes to another after that long.
//!   The consumer is created with deliver-policy *new*: what was appended before it existed is
//!   covered by every instance's startup resync.
//! - **Claims**: a small stream beside the log, `<STREAM>_CLAIMS`, subjects
//!   `hoist.claims.<STREAM>.<app>.<env>`, one message per subject, in memory, every message
//!   expiring after [`CLAIM_TTL`]. Claiming an env publishes its holder under
//!   `Nats-Expected-Last-Subject-Sequence: 0`, which the server accepts only when no live claim
//!   exists (a revision-checked create, as a KV bucket's `create` is, but on any JetStream server:
//!   async-nats' KV API refuses nats-server 2.9). The holder renews by publishing again expecting
//!   its own sequence, and releases by deleting its message; a holder that dies is outlived by
//!   its claim for at most [`CLAIM_TTL`].

use crate::nats::NatsStore;
use async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use async_nats::HeaderMap;
use futures::StreamExt;
use hoist_engine::{AppName, EnvName};
use std::time::Duration;

/// The durable consumer every `serve` instance on a stream pulls from (consumer names are the
/// stream's own: one per stream).
pub const CONSUMER: &str = "hoist-serve";
/// How long a delivered commit waits for its ack before the server hands it to another instance.
pub const ACK_WAIT: Duration = Duration::from_secs(15);
/// How long a claim outlives its last renewal.
pub const CLAIM_TTL: Duration = Duration::from_secs(15);
/// How often a running reconcile renews its claim and its delivery: a third of their bounds, so
/// two renewals may be lost before either lapses.
pub const KEEPALIVE: Duration = Duration::from_secs(5);
/// How soon a renewal that failed (no answer: a leader election) is tried again.
pub const RENEW_RETRY: Duration = Duration::from_secs(1);
/// When a commit's env is held by another instance, the commit comes back after this long.
pub const HELD_RETRY: Duration = Duration::from_secs(1);
/// Commits delivered and not yet acked, over all instances: each holds one at a time, plus those
/// waiting out a [`HELD_RETRY`]. A cap, not a working figure.
const MAX_ACK_PENDING: i64 = 1024;

type Failed = String;

/// The log's new commits, one at a time, shared with every other instance.
pub struct Deliveries {
    consumer: PullConsumer,
    /// The store's subject prefix: what is left of a subject is the app.
    prefix: String,
}

/// One commit handed to this instance: it names the app to look at.
pub struct Delivery {
    pub app: AppName,
    pub seq: u64,
    message: jetstream::Message,
}

impl Deliveries {
    /// Finds or creates the durable consumer.
    pub async fn open(store: &NatsStore) -> Result<Self, Failed> {
        let stream = store
            .jetstream()
            .get_stream_no_info(store.stream_name())
            .await
            .map_err(|e| format!("stream {}: {e}", store.stream_name()))?;
        let config = pull::Config {
            durable_name: Some(CONSUMER.to_string()),
            description: Some(
                "hoist serve: new commits to reconcile, shared by every instance".into(),
            ),
            deliver_policy: DeliverPolicy::New,
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_deliver: -1,
            filter_subject: format!("{}>", store.subject_prefix()),
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer(CONSUMER, config)
            .await
            .map_err(|e| format!("durable consumer {CONSUMER}: {e}"))?;
        Ok(Deliveries {
            consumer,
            prefix: store.subject_prefix().to_string(),
        })
    }

    /// The next commit for this instance, waiting up to `wait` for one.
    pub async fn next(&self, wait: Duration) -> Result<Option<Delivery>, Failed> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| format!("pulling from {CONSUMER}: {e}"))?;
        let Some(message) = batch.next().await else {
            return Ok(None);
        };
        let message = message.map_err(|e| format!("pulling from {CONSUMER}: {e}"))?;
        let seq = message.info().map_or(0, |i| i.stream_sequence);
        let app = message
            .subject
            .as_str()
            .strip_prefix(self.prefix.as_str())
            .and_then(|a| AppName::from_log(a).ok());
        match app {
            Some(app) => Ok(Some(Delivery { app, seq, message })),
            None => {
                // Not an app's subject, so not a hoist commit (reads quarantine it, `hoist admin
                // check` lists it): nothing to act on, and no reason to pause the feed.
                tracing::warn!(seq, subject = %message.subject, "skipped a message that is not a hoist commit");
                let _ = message.ack_with(AckKind::Term).await;
                Ok(None)
            }
        }
    }
}

impl Delivery {
    /// Done with: the server forgets it (the ack is confirmed, so a lost one does not bring the
    /// commit back).
    pub async fn done(self) -> Result<(), Failed> {
        self.message.double_ack().await.map_err(|e| e.to_string())
    }

    /// Not done: to be delivered again (to any instance) after [`HELD_RETRY`].
    pub async fn retry_later(self) -> Result<(), Failed> {
        self.message
            .ack_with(AckKind::Nak(Some(HELD_RETRY)))
            .await
            .map_err(|e| e.to_string())
    }

    /// Still working on it: restarts its [`ACK_WAIT`].
    pub async fn in_progress(&self) -> Result<(), Failed> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Per-env claims, shared by every instance on the stream.
pub struct Claims {
    js: Context,
    stream: String,
    /// The claims stream's configuration: created again if the stream is lost (it lives in
    /// memory, so a restart of a standalone server loses it).
    config: Config,
    subject_prefix: String,
    /// Who this instance is, as other instances see it in a claim: `host:pid`.
    holder: String,
    /// Claims held past their reconcile ([`Claims::keep`]), by subject.
    kept: std::sync::Mutex<std::collections::HashMap<String, Claim>>,
}

/// An env this instance holds: the claim's message.
pub struct Claim {
    subject: String,
    seq: u64,
}

pub enum Claimed {
    Mine(Claim),
    /// Another instance holds it (`host:pid`, when it could be read).
    Held(String),
}

impl Claims {
    /// Finds or creates the claims stream of the log stream `store` is on.
    pub async fn open(store: &NatsStore, replicas: usize) -> Result<Self, Failed> {
        let log = store.stream_name();
        let stream = format!("{log}_CLAIMS");
        let subject_prefix = format!("hoist.claims.{log}.");
        let config = Config {
            name: stream.clone(),
            subjects: vec![format!("{subject_prefix}>")],
            description: Some(format!(
                "hoist serve: which instance is applying which env of stream {log}"
            )),
            // Claims are short-lived by nature: losing them with a whole cluster costs at most
            // one repeated apply; memory keeps the two writes per apply cheap.
            storage: StorageType::Memory,
            max_messages_per_subject: 1,
            max_age: CLAIM_TTL,
            // Not used (no message ids), and may not exceed max_age.
            duplicate_window: CLAIM_TTL,
            discard: DiscardPolicy::Old,
            num_replicas: replicas,
            ..Default::default()
        };
        store
            .jetstream()
            .get_or_create_stream(config.clone())
            .await
            .map_err(|e| format!("claims stream {stream}: {e}"))?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown-host".to_string());
        Ok(Claims {
            js: store.jetstream().clone(),
            stream,
            config,
            subject_prefix,
            // host:pid says who it is to a person; the random part keeps two instances apart
            // that share both (pid 1 in two containers on one host network).
            holder: format!(
                "{host}:{}:{}",
                std::process::id(),
                // A UUIDv7 ends in random bits.
                &uuid::Uuid::now_v7().simple().to_string()[24..]
            ),
            kept: Default::default(),
        })
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Claims `app`/`env` for this instance, unless another instance holds it. A claim this
    /// instance kept ([`Claims::keep`]) is renewed; one it still holds is taken up again.
    pub async fn claim(&self, app: &AppName, env: &EnvName) -> Result<Claimed, Failed> {
        self.claim_key(&format!("{app}.{env}")).await
    }

    /// Claims a piece of work named `key` (subject tokens: `[-_.a-z0-9]`), as [`Claims::claim`]
    /// an env: a hook's deliveries are claimed as `_hook.<id>` (no app starts with `_`).
    pub async fn claim_key(&self, key: &str) -> Result<Claimed, Failed> {
        let subject = format!("{}{key}", self.subject_prefix);
        let kept = self.kept_claims().remove(&subject);
        if let Some(mut kept) = kept {
            // If it lapsed (or the claims stream was lost), it is claimed afresh below.
            if self.renew(&mut kept).await.is_ok() {
                return Ok(Claimed::Mine(kept));
            }
        }
        match self.publish(&subject, 0).await? {
            Some(seq) => Ok(Claimed::Mine(Claim { subject, seq })),
            None => match self.last_claim(&subject).await {
                Some((seq, holder)) if holder == self.holder => {
                    Ok(Claimed::Mine(Claim { subject, seq }))
                }
                Some((_, holder)) => Ok(Claimed::Held(holder)),
                None => Ok(Claimed::Held("another instance".to_string())),
            },
        }
    }

    /// Holds `claim` past its reconcile, so that no other instance takes the env: the next
    /// [`Claims::claim`] of it here renews it. For an apply whose outcome is not recorded yet.
    pub fn keep(&self, claim: Claim) {
        self.kept_claims().insert(claim.subject.clone(), claim);
    }

    fn kept_claims(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Claim>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live claim of `subject`: its sequence and holder, when it can be read.
    async fn last_claim(&self, subject: &str) -> Option<(u64, String)> {
        let stream = self.js.get_stream_no_info(&self.stream).await.ok()?;
        let message = stream.get_last_raw_message_by_subject(subject).await.ok()?;
        Some((
            message.sequence,
            String::from_utf8_lossy(&message.payload).into_owned(),
        ))
    }

    /// Restarts the claim's [`CLAIM_TTL`]. Fails if the claim lapsed and another instance took
    /// the env meanwhile.
    pub async fn renew(&self, claim: &mut Claim) -> Result<(), Failed> {
        match self.publish(&claim.subject, claim.seq).await? {
            Some(seq) => {
                claim.seq = seq;
                Ok(())
            }
            None => match self.last_claim(&claim.subject).await {
                // An earlier renewal was stored but its ack was lost (a leader election): the
                // live claim is still this instance's, under a newer sequence.
                Some((seq, holder)) if holder == self.holder => {
                    claim.seq = seq;
                    Ok(())
                }
                _ => Err(format!("claim {} lapsed and was taken", claim.subject)),
            },
        }
    }

    /// Lets the env go. Deleting by sequence removes only this instance's claim, never a newer
    /// one; if it fails, the claim lapses after [`CLAIM_TTL`].
    pub async fn release(&self, claim: Claim) -> Result<(), Failed> {
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .delete_message(claim.seq)
            .await
            .map(|_| ())
            .map_err(|e| format!("releasing {}: {e}", claim.subject))
    }

    /// Publishes this instance as the holder of `subject` if its last claim is still `expected`
    /// (0: none): the new claim's sequence, or `None` when the expectation failed.
    async fn publish(&self, subject: &str, expected: u64) -> Result<Option<u64>, Failed> {
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        let published = async {
            self.js
                .publish_with_headers(subject.to_string(), headers, self.holder.clone().into())
                .await?
                .await
        };
        match published.await {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                // The claims stream is gone (kept in memory: a server restart loses it; or a
                // replicated one is electing its leader). Creating it again is harmless in the
                // second case, and without it no env could ever be claimed again in the first.
                self.js
                    .get_or_create_stream(self.config.clone())
                    .await
                    .map_err(|e| format!("claims stream {}: {e}", self.stream))?;
                Err(format!(
                    "claiming {subject}: the claims stream was missing: created it again"
                ))
            }
            Err(e) => Err(format!("claiming {subject}: {e}")),
        }
    }
}
