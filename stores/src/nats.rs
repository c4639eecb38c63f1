//! The replicated backend: one NATS JetStream stream (default `HOIST`, file storage) over the
//! subjects `hoist.app.>`, one subject per app, `hoist.app.<app>` (app names are DNS labels, so
//! valid subject tokens). A commit is one message; its stream sequence is `StoredCommit::seq`.
//!
//! - **Concurrency**: every append carries `Nats-Expected-Last-Subject-Sequence`, checked by the
//!   stream leader; a mismatch (error 10071) is a [`StoreError::Conflict`].
//! - **Idempotency**: every append carries `Nats-Msg-Id: <commit id>`; the server answers a repeat
//!   within the stream's duplicate window with `duplicate: true` and the original sequence, *but
//!   only if the repeat's expectation still holds*: nats-server (2.15, measured; standalone and
//!   R3) checks the expected sequence before duplicates, so a retry after a lost ack, which
//!   repeats the now stale expectation, comes back as a conflict. The conflict path therefore
//!   looks at the app's first message after the expected sequence: a commit published with
//!   expectation `E` can only have been stored as exactly that message, so if it carries this
//!   commit id, the append is the duplicate it is (at any age, window or not). One request, only
//!   on conflicts.
//! - **Acknowledged means stored**: success is returned only for a publish ack from the stream
//!   (on an R3 stream, after a quorum stored it). A missing ack is an error, never a success;
//!   retrying with the same commit id is safe.
//! - **Bounded**: connecting and every request are bounded by [`NatsOptions::timeout`]; transient
//!   failures (no responders while a leader is elected, a reconnect, a lost ack) are retried with
//!   the same commit id until that bound, then reported as [`StoreError::Unavailable`].
//!
//! **Quarantine**: anyone allowed to publish on `hoist.app.>` can put there what hoist never
//! wrote. A message is taken for a commit only if its subject is an app's, it carries a commit id
//! (a UUID) in `Nats-Msg-Id`, as every append does, and its payload passes
//! [`NatsOptions::commit_check`] (hoist's decoder, set by the binary). Any other message is
//! quarantined: every read skips it (a read of `max` commits reads on past it), the store
//! remembers it ([`NatsStore::quarantined_seen`]), [`NatsStore::quarantined`] lists all of them,
//! and an append whose expectation is followed only by quarantined messages of its app goes on
//! past them (the server counts them in the subject's last sequence). It is never a reason for a
//! read, or another app, to fail. Sequences of commits therefore have gaps on NATS.
//!
//! **Limits**: a commit over the connected server's `max_payload` or the stream's `max_msg_size`
//! (both counting headers) is refused before it is sent, as [`StoreError::TooLarge`].
//!
//! **Reads** start with batched direct gets (`$JS.API.DIRECT.GET`, `{seq, next_by_subj, batch}`,
//! server ≥ 2.11, stream with `allow_direct`): one request returns up to [`DIRECT_BATCH`]
//! messages of a subject filter (`hoist.app.<app>`, or `hoist.app.>` for the whole log) and an
//! end-of-batch marker telling how many remain, so a read never waits for messages that do not
//! exist and leaves no state on the server. If more than a batch remains, the rest is read by an
//! ephemeral, R1, in-memory pull consumer without acks, created at the next sequence; its creation
//! reply says how many messages match, and it pulls exactly that many (or `max`) in large no-wait
//! batches. Measured (release, loopback, 200-byte commits), reading a 10-commit app: 0.30 ms with
//! a direct get vs 0.60 ms with a consumer standalone, 0.77 ms vs 2.97 ms on R3 (where every
//! consumer creation is a proposal through the meta leader); reading 20,000 commits: 180k msg/s
//! with direct gets vs 470k msg/s with a consumer (R3: 116k vs 306k). So: most apps are read in
//! one round trip, long histories and the whole log at consumer speed. An R1 consumer is placed on
//! a random replica (measured: 7 of 12 on followers), so neither path is fresher than the other.
//! Without direct gets (an older server, or an existing stream without `allow_direct`) the
//! consumer does the whole read.
//!
//! On a replicated stream any replica may answer a read, and a follower can lag the leader by the
//! last commits. Each read therefore asks the leader, concurrently, for the app's (or the log's)
//! last sequence, and tops the result up from the leader if the replica was behind: a read
//! includes every commit acknowledged before it began.

mod batch;

use async_nats::header::{
    NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID, NATS_SEQUENCE, NATS_SUBJECT,
};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream::{
    Config, ConsumerErrorKind, DiscardPolicy, LastRawMessageErrorKind, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::{HeaderMap, ServerAddr, StatusCode};
use futures::StreamExt;
use hoist_engine::store::{Appended, EventStore, NewCommit, StoreError, StoredCommit};
use hoist_engine::AppName;
use serde::Deserialize;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub const DEFAULT_STREAM: &str = "HOIST";
/// Every app's subject starts with this (unless `NatsOptions::subject_prefix` says otherwise).
pub const SUBJECT_PREFIX: &str = "hoist.app.";

// issue 15
/// What the app subjects of stream `stream` start with: [`SUBJECT_PREFIX`] for the default
/// stream (as always, so existing data keeps its subjects), `hoist.stream.<stream>.app.` for any
/// other, so that streams on one server are independent histories (two streams cannot share
/// subjects). A stream of another name that an earlier hoist created on `hoist.app.>` keeps
/// those subjects: [`NatsStore::connect`] finds it and adopts them.
pub fn subject_prefix_for(stream: &str) -> String {
    if stream == DEFAULT_STREAM {
        SUBJECT_PREFIX.to_string()
    } else {
        format!("hoist.stream.{stream}.app.")
    }
}

/// The subjects an earlier hoist gave every stream, whatever its name.
fn legacy_subjects() -> String {
    format!("{SUBJECT_PREFIX}>")
}
/// How long the server remembers a commit id. Because the server checks the expected sequence
/// first, a retry that repeats its original expectation is recognised by the conflict path at any
/// age; the window is the net for a repeat whose expectation holds (a caller that re-read and
/// tried again under the same commit id). Such retries come within the operation bound, a
/// reconnect or an R3 leader election (seconds to tens of seconds): two minutes covers them with a
/// wide margin, while the server keeps every id of the window in memory (at 10k appends/s, 1.2M
/// ids), so a much longer window costs memory for no gain.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages asked for by one direct get of a read; past that many, a read continues through a
/// consumer. Measured crossover (release, loopback): direct gets ≈ 0.2 ms + 5.5 µs/message,
/// consumer ≈ 0.6 ms + 2.1 µs/message standalone; on R3 0.8 ms + 8.6 µs vs 3.0 ms + 3.3 µs.
pub const DIRECT_BATCH: usize = 256;
/// Messages asked for by one pull request of a consumer read.
const READ_BATCH: usize = 10_000;
/// How far a replica may lag before a read asks another replica instead of topping up from the
/// leader message by message.
const TOP_UP_MAX: u64 = 100;
/// A read's consumer is deleted when the read ends; if the reader dies first, the server drops it
/// after this long idle.
const READ_CONSUMER_IDLE: Duration = Duration::from_secs(10);

/// How to reach the stream.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// One server URL, or several comma-separated (seeds of a cluster; the others are learnt).
    /// `nats://` or `tls://`; `nats://user:password@host` and `nats://token@host` authenticate.
    pub url: String,
    /// A `.creds` file (JWT + nkey seed), for operator-mode accounts.
    pub creds_file: Option<PathBuf>,
    /// Extra root certificates (PEM) for `tls://` servers signed by a private CA.
    pub tls_ca_file: Option<PathBuf>,
    /// The stream's name.
    pub stream: String,
    /// What every app's subject starts with; the stream takes `<prefix>>`. Default
    /// [`SUBJECT_PREFIX`]; another prefix lets a second stream (`hoist bench`'s scratch stream)
    /// live on the same server, since two streams cannot share subjects.
    pub subject_prefix: String,
    /// Replicas of the stream when hoist creates it (1, or 3 on a cluster). An existing stream
    /// must have at least this many.
    pub replicas: usize,
    /// The duplicate window of a stream hoist creates.
    pub duplicate_window: Duration,
    /// Bound on connecting (stream checks included) and on every operation, its retries of
    /// transient failures included; for reads, on every batch request.
    pub timeout: Duration,
    /// What a message's payload must pass to be taken for a commit of its app (the binary passes
    /// hoist's decoder, [`hoist_engine::codec::check_commit`]); `None` keeps payloads opaque (the
    /// store's own tests and benches). A message that fails it is quarantined (module docs).
    pub commit_check: Option<CommitCheck>,
}

/// Whether `payload` is a commit of `app`: `Err(why)` when it is not.
pub type CommitCheck = fn(&AppName, &[u8]) -> Result<(), String>;

/// A message on hoist's subjects that is not a hoist commit: skipped by every read, never a
/// reason for a read to fail (module docs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    pub seq: u64,
    pub subject: String,
    pub reason: String,
}

impl NatsOptions {
    /// The stream's only subject filter: `<prefix>>`.
    pub fn stream_subjects(&self) -> String {
        format!("{}>", self.subject_prefix)
    }

    pub fn new(url: impl Into<String>) -> Self {
        NatsOptions {
            url: url.into(),
            creds_file: None,
            tls_ca_file: None,
            stream: DEFAULT_STREAM.to_string(),
            subject_prefix: SUBJECT_PREFIX.to_string(),
            replicas: 1,
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            timeout: DEFAULT_TIMEOUT,
            commit_check: None,
        }
    }
}

/// The log in a JetStream stream.
pub struct NatsStore {
    js: jetstream::Context,
    stream: String,
    /// What every app's subject starts with, and the stream's filter (`<prefix>>`).
    prefix: String,
    all_subjects: String,
    timeout: Duration,
    /// Batched direct gets are available (server ≥ 2.11, stream allows direct gets).
    direct_reads: bool,
    /// More than one replica: any of them may answer a read.
    replicated: bool,
    identity: StreamIdentity,
    /// issue 15: the stream's name and creation time, whatever URL reached it.
    stream_id: String,
    commit_check: Option<CommitCheck>,
    /// The stream's `max_msg_size` (read from its configuration; -1: none).
    max_msg_size: i64,
    /// Every message this store's reads skipped, by sequence.
    quarantined: std::sync::Mutex<std::collections::BTreeMap<u64, Quarantined>>,
    /// The server's last "Permissions Violation" for this connection, if any: what a request
    /// that went unanswered really ran into (the server drops a publish it does not permit).
    violation: Violation,
}

/// One message as read, before it is taken for a commit or quarantined.
struct RawMessage {
    seq: u64,
    subject: String,
    /// `Nats-Msg-Id`: every hoist append carries its commit id there.
    msg_id: Option<String>,
    payload: Vec<u8>,
}

/// The servers (credentials hidden), the stream's name and its creation time: what a local cache
/// of the stream is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamIdentity(pub String);

/// Why one attempt failed: worth another attempt within the bound, or not.
enum Failure {
    Transient(String),
    Fatal(StoreError),
}

impl NatsStore {
    /// Connects, then finds the stream (checking that its configuration is one hoist can rely on)
    /// or creates it. Fails within `options.timeout` with [`StoreError::Unavailable`] naming the
    /// URL (credentials redacted) when the server cannot be reached.
    pub async fn connect(options: NatsOptions) -> Result<Self, StoreError> {
        let started = Instant::now();
        let (servers, shown) = parse_servers(&options.url)?;
        let mut connect = async_nats::ConnectOptions::new()
            .name("hoist")
            .connection_timeout(options.timeout)
            .request_timeout(Some(attempt_timeout(options.timeout)))
            // After the first connection, reconnect for as long as the process lives (a server
            // restart or a failover must not kill `hoist serve`), but quickly: each operation is
            // bounded on its own. async-nats asks this for the very first attempt too (attempts
            // == 1): that one must not wait, or every command pays the delay.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts.saturating_sub(1) as u64 * 100).min(1_000))
            });
        match servers.iter().find_map(|s| {
            s.username()
                .map(|u| (u.to_string(), s.password().map(str::to_string)))
        }) {
            Some((user, Some(pass))) => {
                connect = connect.user_and_password(percent_decode(&user), percent_decode(&pass))
            }
            Some((token, None)) => connect = connect.token(percent_decode(&token)),
            None => {}
        }
        if let Some(path) = &options.creds_file {
            connect = connect.credentials_file(path).await.map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot read NATS credentials {}: {e}",
                    path.display()
                ))
            })?;
        }
        if let Some(path) = &options.tls_ca_file {
            connect = connect.add_root_certificates(path.clone());
        }
        let violation = Violation::default();
        let seen = violation.clone();
        connect = connect.event_callback(move |event| {
            seen.note(&event);
            async {}
        });
        // No retry_on_initial_connect: one pass over the servers, then an error.
        let client = match tokio::time::timeout(options.timeout, connect.connect(servers)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot connect to NATS at {shown}: {}",
                    one_line(&e)
                )))
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot connect to NATS at {shown}: no answer within {:?}",
                    options.timeout
                )))
            }
        };
        let js = jetstream::ContextBuilder::new()
            .timeout(attempt_timeout(options.timeout))
            .build(client);
        let server_version = js.client().server_info().version;
        let mut store = NatsStore {
            js,
            stream: options.stream.clone(),
            prefix: options.subject_prefix.clone(),
            all_subjects: options.stream_subjects(),
            timeout: options.timeout,
            direct_reads: false,
            replicated: false,
            identity: StreamIdentity(String::new()),
            stream_id: String::new(),
            commit_check: options.commit_check,
            max_msg_size: -1,
            quarantined: Default::default(),
            violation,
        };
        let remaining = options.timeout.saturating_sub(started.elapsed());
        // A user the server does not permit hoist's requests gets no answer at all, only an
        // error on the connection: that error ends the wait at once.
        let ensured = async {
            tokio::select! {
                ensured = store.ensure_stream(&options) => ensured,
                why = store.violation.seen() => Err(StoreError::Denied(why)),
            }
        };
        let config = match tokio::time::timeout(remaining, ensured).await {
            Ok(result) => result.map_err(|e| match e {
                StoreError::Unavailable(m) => {
                    StoreError::Unavailable(format!("NATS at {shown}: {m}"))
                }
                StoreError::Denied(_) => store
                    .violation
                    .denied(&format!("NATS at {shown}"))
                    .expect("a violation was seen"),
                other => other,
            })?,
            Err(_) if store.violation.refused().is_some() => {
                let at = format!("NATS at {shown}");
                return Err(store.violation.denied(&at).expect("a violation was seen"));
            }
            Err(_) => {
                // The server says in its INFO whether JetStream is on: when it is, silence is a
                // cluster without a leader for the stream (an election, or too few nodes left).
                let hint = if store.js.client().server_info().jetstream {
                    "a leader election in the cluster, or too few nodes up for a quorum"
                } else {
                    "JetStream is not enabled on that server"
                };
                return Err(StoreError::Unavailable(format!(
                    "NATS at {shown}: JetStream did not answer within {:?} ({hint})",
                    options.timeout
                )));
            }
        };
        let (config, identity) = config;
        if config.subjects == [legacy_subjects()] {
            // A stream an earlier hoist created under this name (`subject_prefix_for`).
            store.prefix = SUBJECT_PREFIX.to_string();
            store.all_subjects = legacy_subjects();
        }
        store.stream_id = identity.0.clone();
        store.identity = StreamIdentity(format!("{shown}/{}", identity.0));
        store.direct_reads = config.allow_direct && at_least(&server_version, 2, 11);
        store.replicated = config.num_replicas > 1;
        store.max_msg_size = i64::from(config.max_message_size);
        Ok(store)
    }

    /// Which stream this is: its name and creation time. A stream deleted and created again under
    /// the same name is another stream, and caches of the old one must not be trusted.
    pub fn identity(&self) -> &StreamIdentity {
        &self.identity
    }

    /// The stream's name and creation time (`NAME@nanos`): the same from every server and URL
    /// (issue 15: what shared read models are keyed by).
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// Whether reads use batched direct gets (else an ephemeral consumer per read).
    pub fn direct_reads(&self) -> bool {
        self.direct_reads
    }

    /// The JetStream context, for raw baselines (benches) and tooling.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// What every app's subject starts with (`hoist.app.`).
    pub fn subject_prefix(&self) -> &str {
        &self.prefix
    }

    /// An app's subject, `hoist.app.<app>`.
    pub fn subject(&self, app: &AppName) -> String {
        format!("{}{app}", self.prefix)
    }

    /// The configuration of a stream hoist creates.
    pub fn stream_config(options: &NatsOptions) -> Config {
        Config {
            name: options.stream.clone(),
            subjects: vec![options.stream_subjects()],
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            // The log is the system of record: nothing ages out, nothing is trimmed.
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            max_age: Duration::ZERO,
            num_replicas: options.replicas,
            duplicate_window: options.duplicate_window,
            // History only grows. Kept although anyone allowed to publish on `hoist.app.>` can
            // put a message there that hoist never wrote: such a message is quarantined (every
            // read skips it, `hoist admin check` lists it), so it harms nothing and needs no
            // removal, while allowing deletes or purges would let the same publisher erase real
            // history through the JetStream API, and with it the audit trail the hash chains
            // exist for. Who may publish there is the account's permissions' business.
            deny_delete: true,
            deny_purge: true,
            // Reads of one app are batched direct gets (see the module docs).
            allow_direct: true,
            // An import is one atomic batch (see `batch`).
            allow_atomic_publish: true,
            description: Some("hoist event log: one subject per app".to_string()),
            ..Default::default()
        }
    }

    async fn ensure_stream(
        &self,
        options: &NatsOptions,
    ) -> Result<(Config, StreamIdentity), StoreError> {
        let checked = |info: &jetstream::stream::Info, options: &NatsOptions| {
            let identity = StreamIdentity(format!(
                "{}@{}",
                info.config.name,
                info.created.unix_timestamp_nanos()
            ));
            check_compatible(info, options).map(|config| (config, identity))
        };
        let name = &options.stream;
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("{what} stream {name}: {e}"))
        };
        loop {
            match self.js.get_stream(name).await {
                Ok(stream) => return checked(stream.cached_info(), options),
                Err(e) => match e.kind() {
                    GetStreamErrorKind::JetStream(js)
                        if js.error_code() == ErrorCode::STREAM_NOT_FOUND => {}
                    // No answer yet (a replicated stream electing its leader after a node was
                    // lost): ask again, within the caller's bound on connecting.
                    GetStreamErrorKind::Request => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    GetStreamErrorKind::JetStream(js) if js.code() == 503 => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    _ => return Err(unavailable("cannot look up", &one_line(&e))),
                },
            }
            match self.js.create_stream(Self::stream_config(options)).await {
                Ok(stream) => return checked(stream.cached_info(), options),
                Err(e) => match e.kind() {
                    // Created by someone else in between: look again.
                    CreateStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NAME_EXIST => continue,
                    // No answer in time (a new cluster still electing its meta leader, a busy
                    // one): look again, within the caller's bound; a creation that did land
                    // is found by the lookup, and creating the same stream again is a no-op.
                    CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    CreateStreamErrorKind::JetStream(js) if js.code() == 503 => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    CreateStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_SUBJECT_OVERLAP => {
                        return Err(StoreError::Unavailable(format!(
                            "cannot create stream {name}: another stream already takes subjects {} ({js})", options.stream_subjects()
                        )))
                    }
                    _ => return Err(unavailable("cannot create", &one_line(&e))),
                },
            }
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the operation's bound passes.
    async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let remaining = self.timeout.saturating_sub(started.elapsed());
            let per_attempt = attempt_timeout(self.timeout).min(remaining);
            let why = match tokio::time::timeout(per_attempt, attempt(per_attempt)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(Failure::Fatal(e))) => return Err(e),
                Ok(Err(Failure::Transient(why))) => why,
                Err(_) => format!("no answer within {per_attempt:?}"),
            };
            let remaining = self.timeout.saturating_sub(started.elapsed());
            if remaining < pause {
                return Err(StoreError::Unavailable(format!(
                    "{what} on stream {}: {why} (gave up after {:?})",
                    self.stream, self.timeout
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// One append under `expected`, retried on transient failures within the bound: the ack, or
    /// the server's refusal of the expectation.
    async fn publish_expecting(
        &self,
        subject: &str,
        expected: u64,
        commit_id: Uuid,
        payload: &[u8],
    ) -> Result<Result<Appended, String>, StoreError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        headers.insert(NATS_MESSAGE_ID, commit_id.to_string().as_str());
        self.retrying(&format!("append to {subject}"), |_| async {
            match self.publish_once(subject, &headers, payload).await {
                Ok(appended) => Ok(Ok(appended)),
                Err(PublishFailure::Fatal(e)) => Err(Failure::Fatal(e)),
                Err(PublishFailure::Publish(e)) => match e.kind() {
                    PublishErrorKind::WrongLastSequence => Ok(Err(e.to_string())),
                    // No responders (no stream leader right now), no ack, a dropped connection:
                    // the same commit id makes another try safe.
                    PublishErrorKind::StreamNotFound => Err(Failure::Transient(
                        "no stream answers (a leader election, or the stream was deleted)".into(),
                    )),
                    PublishErrorKind::TimedOut if self.violation.refused().is_some() => {
                        Err(Failure::Fatal(
                            self.violation
                                .denied(&format!("NATS stream {}", self.stream))
                                .expect("a violation was seen"),
                        ))
                    }
                    PublishErrorKind::TimedOut
                    | PublishErrorKind::BrokenPipe
                    | PublishErrorKind::MaxAckPending => Err(Failure::Transient(format!(
                        "no acknowledgement ({e}; a leader election?); it may or may not be stored"
                    ))),
                    PublishErrorKind::MaxPayloadExceeded => {
                        Err(Failure::Fatal(StoreError::TooLarge(format!(
                            "commit of {} bytes is over the NATS server's max_payload: {e}",
                            payload.len()
                        ))))
                    }
                    _ => match find_api_error(&e) {
                        Some(js) => Err(api_failure(js, "append refused")),
                        None => Err(Failure::Transient(one_line(&e))),
                    },
                },
            }
        })
        .await
    }

    /// Refuses, before anything is sent, a commit the server would refuse for its size: over the
    /// server's `max_payload` (from the connection's server info: the server connected now) or
    /// the stream's `max_msg_size` (from its configuration). Both count headers too.
    fn check_size(
        &self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: usize,
    ) -> Result<(), StoreError> {
        let size = payload + headers_len(headers);
        let max_payload = self.js.client().server_info().max_payload;
        let too_large = |limit: String| {
            Err(StoreError::TooLarge(format!(
                "commit to {subject} is {size} bytes (with headers), over {limit}"
            )))
        };
        if max_payload > 0 && size > max_payload {
            return too_large(format!(
                "the NATS server's max_payload of {max_payload} bytes"
            ));
        }
        if self.max_msg_size >= 0 && size as i64 > self.max_msg_size {
            return too_large(format!(
                "the max_msg_size of {} bytes of stream {}",
                self.max_msg_size, self.stream
            ));
        }
        Ok(())
    }

    async fn publish_once(
        &self,
        subject: &str,
        headers: &HeaderMap,
        payload: &[u8],
    ) -> Result<Appended, PublishFailure> {
        let ack = self
            .js
            .publish_with_headers(
                subject.to_string(),
                headers.clone(),
                payload.to_vec().into(),
            )
            .await
            .map_err(PublishFailure::Publish)?
            .await
            .map_err(PublishFailure::Publish)?;
        if ack.stream != self.stream {
            return Err(PublishFailure::Fatal(StoreError::Corrupt(format!(
                "{subject} was stored by stream {}, not {}: two streams claim hoist's subjects",
                ack.stream, self.stream
            ))));
        }
        Ok(Appended {
            seq: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// What follows `expected` on `subject`: the first hoist commit after it, passing over
    /// quarantined messages (at most [`MAX_QUARANTINE_SKIPS`] of them).
    pub(super) async fn first_commit_after(
        &self,
        stream: &async_nats::jetstream::stream::Stream<()>,
        subject: &str,
        expected: u64,
    ) -> After {
        let mut next = expected + 1;
        let mut past_quarantined = None;
        for _ in 0..=MAX_QUARANTINE_SKIPS {
            let found = tokio::time::timeout(
                attempt_timeout(self.timeout),
                stream
                    .raw_message_builder()
                    .sequence(next)
                    .next_by_subject(subject)
                    .send(),
            )
            .await;
            let message = match found {
                Ok(Ok(message)) => message,
                Ok(Err(e)) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                    return After::End { past_quarantined }
                }
                _ => return After::Unknown,
            };
            let seq = message.sequence;
            let msg_id = message
                .headers
                .get(NATS_MESSAGE_ID)
                .map(|v| v.as_str().to_string());
            let raw = RawMessage {
                seq,
                subject: message.subject.to_string(),
                msg_id: msg_id.clone(),
                payload: message.payload.to_vec(),
            };
            if self.admit(raw).is_some() {
                return After::Commit { seq, msg_id };
            }
            past_quarantined = Some(seq);
            next = seq + 1;
        }
        After::Unknown
    }

    /// After the server refused `expected`: looks at the app's messages after `expected`,
    /// passing over quarantined ones. If the first hoist commit there is this one, it was already
    /// stored (a retry after a lost ack repeats the now stale expectation: a commit published
    /// under expectation `E` can only be the first commit after `E`); if there is another, this is
    /// a conflict (the server's refusal names the actual last sequence); if there is none, only
    /// quarantined messages followed `expected`, and the append may go on past the last of them.
    async fn resolve_conflict(
        &self,
        app: &AppName,
        expected: u64,
        commit_id: Uuid,
        server_said: &str,
    ) -> Result<Resolved, StoreError> {
        let subject = self.subject(app);
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| StoreError::Unavailable(one_line(&e)))?;
        let mut actual = refused_sequence(server_said);
        // If a lookup fails, the conflict is still certain; whether it is this commit's own
        // retry is not, and if it is, the service's next attempt (same commit id) meets the
        // server's duplicate check.
        match self.first_commit_after(&stream, &subject, expected).await {
            After::Commit { seq, msg_id } if msg_id == Some(commit_id.to_string()) => {
                return Ok(Resolved::Stored(Appended {
                    seq,
                    duplicate: true,
                }));
            }
            After::End {
                past_quarantined: Some(last),
            } => return Ok(Resolved::PastQuarantined(last)),
            _ => {}
        }
        if actual.is_none() {
            // Not named by the server (never seen): ask the leader for the app's last message.
            if let Ok(Ok(last)) = tokio::time::timeout(
                attempt_timeout(self.timeout),
                stream.get_last_raw_message_by_subject(&subject),
            )
            .await
            {
                actual = Some(last.sequence);
            }
        }
        Err(StoreError::Conflict {
            app: app.clone(),
            expected,
            actual: actual.unwrap_or(0),
        })
    }

    /// Every commit of `filter` from `from`, at most `max`, in order, at least as fresh as the
    /// leader was when the read began; messages that are not hoist commits are quarantined and
    /// read past, so fewer than `max` means the end was reached.
    async fn read(
        &self,
        what: &str,
        filter: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        let mut commits = Vec::new();
        let mut next = from;
        while commits.len() < max {
            let asked = max - commits.len();
            let raw = self.read_raw(what, filter, next, asked).await?;
            let Some(last) = raw.last() else { break };
            next = last.seq + 1;
            let complete = raw.len() < asked;
            commits.extend(raw.into_iter().filter_map(|m| self.admit(m)));
            if complete {
                break;
            }
        }
        Ok(commits)
    }

    /// `message` as a commit, or quarantined (remembered) when it is not one.
    fn admit(&self, message: RawMessage) -> Option<StoredCommit> {
        match classify(&self.prefix, self.commit_check, message) {
            Ok(commit) => Some(commit),
            Err(quarantined) => {
                let mut seen = self.quarantined.lock().unwrap_or_else(|e| e.into_inner());
                seen.insert(quarantined.seq, quarantined);
                None
            }
        }
    }

    /// The messages this store's reads have skipped so far, by sequence.
    pub fn quarantined_seen(&self) -> Vec<Quarantined> {
        let seen = self.quarantined.lock().unwrap_or_else(|e| e.into_inner());
        seen.values().cloned().collect()
    }

    /// Every message on the stream that is not a hoist commit, by sequence: reads the whole log.
    pub async fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        let mut next = 1;
        loop {
            let raw = self
                .read_raw("check of the log", &self.all_subjects, next, READ_BATCH)
                .await?;
            let Some(last) = raw.last() else { break };
            next = last.seq + 1;
            let complete = raw.len() < READ_BATCH;
            raw.into_iter().for_each(|m| {
                self.admit(m);
            });
            if complete {
                break;
            }
        }
        Ok(self.quarantined_seen())
    }

    /// Every message of `filter` from `from`, at most `max`, in order, at least as fresh as the
    /// leader was when the read began; retried on transient failures within the bound.
    async fn read_raw(
        &self,
        what: &str,
        filter: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<RawMessage>, StoreError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let attempt = async {
                if !self.replicated {
                    return self.read_any_replica(filter, from, max).await;
                }
                let (commits, leader_last) = futures::join!(
                    self.read_any_replica(filter, from, max),
                    self.leader_last(filter)
                );
                let mut commits = commits?;
                self.top_up(filter, &mut commits, from, max, leader_last?)
                    .await?;
                Ok(commits)
            };
            match attempt.await {
                Ok(commits) => return Ok(commits),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(why)) if started.elapsed() + pause > self.timeout => {
                    return Err(StoreError::Unavailable(format!(
                        "{what} on stream {}: {why} (gave up after {:?})",
                        self.stream, self.timeout
                    )))
                }
                Err(Failure::Transient(_)) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    async fn read_any_replica(
        &self,
        filter: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<RawMessage>, Failure> {
        if self.direct_reads {
            self.read_direct(filter, from, max).await
        } else {
            self.read_consumer(filter, from, max).await
        }
    }

    /// Batched direct gets: each request returns up to a batch of `filter`'s messages from `next`
    /// and an end-of-batch marker with how many remain.
    async fn read_direct(
        &self,
        filter: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<RawMessage>, Failure> {
        let client = self.js.client();
        let inbox = client.new_inbox();
        let mut replies = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| Failure::Transient(format!("cannot subscribe: {e}")))?;
        let api = format!("$JS.API.DIRECT.GET.{}", self.stream);
        let mut commits = Vec::new();
        let mut next = from.max(1);
        while commits.len() < max {
            let batch = (max - commits.len()).min(DIRECT_BATCH);
            let request =
                serde_json::json!({ "seq": next, "next_by_subj": filter, "batch": batch });
            client
                .publish_with_reply(api.clone(), inbox.clone(), request.to_string().into())
                .await
                .map_err(|e| Failure::Transient(format!("cannot send a direct get: {e}")))?;
            let per_batch = attempt_timeout(self.timeout);
            let remaining = tokio::time::timeout(per_batch, async {
                loop {
                    let Some(reply) = replies.next().await else {
                        return Err(Failure::Transient("connection closed".to_string()));
                    };
                    match reply.status {
                        None | Some(StatusCode::OK) => {
                            let headers = reply.headers.as_ref();
                            let header =
                                |name| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
                            let seq = header(NATS_SEQUENCE).and_then(|s| s.parse::<u64>().ok());
                            let (Some(seq), Some(subject)) = (seq, header(NATS_SUBJECT)) else {
                                return Err(Failure::Transient(
                                    "a direct get reply without sequence or subject".to_string(),
                                ));
                            };
                            commits.push(RawMessage {
                                seq,
                                subject: subject.to_string(),
                                msg_id: header(NATS_MESSAGE_ID).map(str::to_string),
                                payload: reply.payload.to_vec(),
                            });
                        }
                        // Nothing (more) matches.
                        Some(StatusCode::NOT_FOUND) => return Ok(0),
                        Some(status) if status.as_u16() == 204 => {
                            let pending = reply
                                .headers
                                .as_ref()
                                .and_then(|h| h.get("Nats-Num-Pending"))
                                .and_then(|v| v.as_str().parse::<u64>().ok())
                                .unwrap_or(0);
                            return Ok(pending);
                        }
                        Some(StatusCode::NO_RESPONDERS) => {
                            return Err(Failure::Transient(
                                "no replica answers direct gets (leader election?)".to_string(),
                            ))
                        }
                        Some(status) => {
                            return Err(Failure::Transient(format!(
                                "direct get answered {status} {}",
                                reply.description.as_deref().unwrap_or("")
                            )))
                        }
                    }
                }
            })
            .await
            .map_err(|_| {
                Failure::Transient(format!(
                    "a direct get batch did not end within {per_batch:?}"
                ))
            })??;
            let Some(last) = commits.last() else { break };
            if remaining == 0 {
                break;
            }
            next = last.seq + 1;
            let left = (max.saturating_sub(commits.len()) as u64).min(remaining);
            if left > DIRECT_BATCH as u64 {
                // A long read: a consumer streams it faster than more direct gets.
                let rest = self
                    .read_consumer(filter, next, max - commits.len())
                    .await?;
                commits.extend(rest);
                break;
            }
        }
        commits.truncate(max);
        Ok(commits)
    }

    /// The leader's last sequence of `filter` (an app's subject, or the whole log).
    async fn leader_last(&self, filter: &str) -> Result<u64, Failure> {
        if filter == self.all_subjects {
            return self.stream_info_last_seq().await;
        }
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| Failure::Fatal(StoreError::Unavailable(one_line(&e))))?;
        let last = tokio::time::timeout(
            attempt_timeout(self.timeout),
            stream.get_last_raw_message_by_subject(filter),
        )
        .await
        .map_err(|_| Failure::Transient("the leader did not answer".to_string()))?;
        match last {
            Ok(message) => Ok(message.sequence),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(Failure::Transient(format!(
                "the leader did not answer: {}",
                one_line(&e)
            ))),
        }
    }

    async fn stream_info_last_seq(&self) -> Result<u64, Failure> {
        let subject = format!("STREAM.INFO.{}", self.stream);
        match self
            .js
            .request::<_, _, Response<InfoPage>>(subject, &serde_json::json!({}))
            .await
        {
            Ok(Response::Ok(info)) => Ok(info.state.last_seq),
            Ok(Response::Err { error }) => Err(api_failure(&error, "stream info refused")),
            Err(e) => Err(Failure::Transient(one_line(&e))),
        }
    }

    /// Completes a replica's read with what the leader had when the read began.
    async fn top_up(
        &self,
        filter: &str,
        commits: &mut Vec<RawMessage>,
        from: u64,
        max: usize,
        leader_last: u64,
    ) -> Result<(), Failure> {
        let mut next = commits.last().map_or(from.max(1), |c| c.seq + 1);
        if commits.len() >= max || next > leader_last {
            return Ok(());
        }
        if leader_last - next >= TOP_UP_MAX {
            return Err(Failure::Transient(format!(
                "the replica that answered is behind the leader ({} < {leader_last})",
                next - 1
            )));
        }
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| Failure::Fatal(StoreError::Unavailable(one_line(&e))))?;
        while commits.len() < max && next <= leader_last {
            let message = tokio::time::timeout(
                attempt_timeout(self.timeout),
                stream
                    .raw_message_builder()
                    .sequence(next)
                    .next_by_subject(filter)
                    .send(),
            )
            .await
            .map_err(|_| Failure::Transient("the leader did not answer".to_string()))?;
            match message {
                Ok(m) if m.sequence <= leader_last => {
                    commits.push(RawMessage {
                        seq: m.sequence,
                        subject: m.subject.to_string(),
                        msg_id: m
                            .headers
                            .get(NATS_MESSAGE_ID)
                            .map(|v| v.as_str().to_string()),
                        payload: m.payload.to_vec(),
                    });
                    next = m.sequence + 1;
                }
                Ok(_) => break,
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => break,
                Err(e) => {
                    return Err(Failure::Transient(format!(
                        "the leader did not answer: {}",
                        one_line(&e)
                    )))
                }
            }
        }
        Ok(())
    }

    /// Reads through an ephemeral, R1, in-memory pull consumer without acks (servers without
    /// batched direct gets): its creation reply says how many messages match, so the read pulls
    /// exactly `min(num_pending, max)` in large no-wait batches.
    async fn read_consumer(
        &self,
        filter: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<RawMessage>, Failure> {
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| Failure::Fatal(StoreError::Unavailable(one_line(&e))))?;
        let config = pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
            filter_subject: filter.to_string(),
            ack_policy: AckPolicy::None,
            max_deliver: 1,
            memory_storage: true,
            num_replicas: 1,
            inactive_threshold: READ_CONSUMER_IDLE,
            ..Default::default()
        };
        let consumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| match e.kind() {
                ConsumerErrorKind::JetStream(js) => {
                    api_failure(&js, "cannot create a read consumer")
                }
                _ => Failure::Transient(format!("cannot create a read consumer: {}", one_line(&e))),
            })?;
        let result = self.drain(&consumer, max).await;
        // Fire and forget: the read is done whatever the answer; the idle threshold is the net.
        let delete = format!(
            "$JS.API.CONSUMER.DELETE.{}.{}",
            self.stream,
            consumer.cached_info().name
        );
        let _ = self.js.client().publish(delete, Default::default()).await;
        result
    }

    async fn drain(
        &self,
        consumer: &jetstream::consumer::PullConsumer,
        max: usize,
    ) -> Result<Vec<RawMessage>, Failure> {
        let want = usize::try_from(consumer.cached_info().num_pending)
            .unwrap_or(usize::MAX)
            .min(max);
        let mut commits = Vec::with_capacity(want.min(READ_BATCH));
        let mut consumer_seq = 0;
        let mut failures = 0;
        while commits.len() < want {
            let asked = (want - commits.len()).min(READ_BATCH);
            let batch = async {
                let mut messages = consumer
                    .fetch()
                    .max_messages(asked)
                    .messages()
                    .await
                    .map_err(|e| format!("pull request failed: {}", one_line(&e)))?;
                let mut got = 0;
                while let Some(message) = messages.next().await {
                    let message = message.map_err(|e| format!("read interrupted: {e}"))?;
                    let info = message
                        .info()
                        .map_err(|e| format!("malformed delivery: {e}"))?;
                    if info.consumer_sequence != consumer_seq + 1 {
                        return Err(format!(
                            "read interrupted: delivery {} after {consumer_seq}",
                            info.consumer_sequence
                        ));
                    }
                    consumer_seq = info.consumer_sequence;
                    let message = &message.message;
                    commits.push(RawMessage {
                        seq: info.stream_sequence,
                        subject: message.subject.to_string(),
                        msg_id: message
                            .headers
                            .as_ref()
                            .and_then(|h| h.get(NATS_MESSAGE_ID))
                            .map(|v| v.as_str().to_string()),
                        payload: message.payload.to_vec(),
                    });
                    got += 1;
                }
                Ok(got)
            };
            let per_batch = attempt_timeout(self.timeout);
            match tokio::time::timeout(per_batch, batch).await {
                Ok(Ok(0)) => break, // fewer than counted: deleted meanwhile
                Ok(Ok(_)) => failures = 0,
                // A consumer just created on another server may not take pulls for a moment
                // (503): pull again, from where the consumer is.
                Ok(Err(why)) if failures < 5 => {
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(10 << failures)).await;
                    let _ = why;
                }
                Ok(Err(why)) => return Err(Failure::Transient(why)),
                Err(_) => {
                    return Err(Failure::Transient(format!(
                        "a batch of {asked} did not arrive within {per_batch:?}"
                    )))
                }
            }
        }
        Ok(commits)
    }
}

/// The raw floors hoist's own paths are measured against (`hoist bench`, criterion benches):
/// JetStream with nothing of hoist's on top.
#[cfg(feature = "bench")]
impl NatsStore {
    /// Reads the whole stream through an ordered push consumer, without decoding anything.
    /// Returns (messages, payload bytes).
    pub async fn raw_read(&self) -> Result<(u64, u64), StoreError> {
        use async_nats::jetstream::consumer::push::OrderedConfig;
        let unavailable = |e: &dyn std::fmt::Display| StoreError::Unavailable(one_line(e));
        let mut stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| unavailable(&e))?;
        let want = stream
            .info()
            .await
            .map_err(|e| unavailable(&e))?
            .state
            .messages;
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_subject: self.js.client().new_inbox(),
                filter_subject: self.all_subjects.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&e))?;
        let mut messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
        let (mut count, mut bytes) = (0u64, 0u64);
        while count < want {
            match tokio::time::timeout(self.timeout, messages.next()).await {
                Ok(Some(Ok(message))) => {
                    count += 1;
                    bytes += message.payload.len() as u64;
                }
                Ok(Some(Err(e))) => return Err(unavailable(&e)),
                Ok(None) | Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "raw read of {} stopped after {count} of {want} messages",
                        self.stream
                    )))
                }
            }
        }
        Ok((count, bytes))
    }
}

/// Publishes `messages` (subject, payload) in order with no expectation and no message id,
/// `window` publishes in flight before their acks are awaited: the floor appends are measured
/// against. Each task of a concurrent baseline calls it with its share.
///
/// Any number of tasks may share `js`: a JetStream context caps the acks outstanding over all its
/// publishers (async-nats `max_ack_inflight`, 5,000 by default), a publish waits for one of those
/// permits, and an ack gives its permit back only once it is polled to completion. So while a
/// publish waits for a permit, the acks this task already has in flight are collected: were they
/// left unpolled until the window is full, tasks × window above the cap (100 tasks of 200) would
/// leave every task waiting for a permit held by its own unpolled acks, forever.
#[cfg(feature = "bench")]
pub async fn raw_publish(
    js: &jetstream::Context,
    messages: &[(String, Vec<u8>)],
    window: usize,
) -> Result<(), StoreError> {
    use async_nats::jetstream::context::PublishAckFuture;
    use futures::stream::FuturesUnordered;
    use std::future::IntoFuture;
    let failed = |e: &dyn std::fmt::Display| StoreError::Unavailable(one_line(e));
    for chunk in messages.chunks(window.max(1)) {
        let mut acks: FuturesUnordered<<PublishAckFuture as IntoFuture>::IntoFuture> =
            FuturesUnordered::new();
        for (subject, payload) in chunk {
            let publish = js.publish(subject.clone(), payload.clone().into());
            tokio::pin!(publish);
            let ack = loop {
                tokio::select! {
                    biased;
                    ack = &mut publish => break ack.map_err(|e| failed(&e))?,
                    Some(acked) = acks.next(), if !acks.is_empty() => {
                        acked.map_err(|e| failed(&e))?;
                    }
                }
            };
            acks.push(ack.into_future());
        }
        while let Some(acked) = acks.next().await {
            acked.map_err(|e| failed(&e))?;
        }
    }
    Ok(())
}

/// Publishes `payloads` to `subject` one at a time, each with the headers an append sends (the
/// expectation its predecessor's ack gives, a fresh message id), and nothing else of an append:
/// what the protocol alone costs, to tell it from the store's own work.
#[cfg(feature = "bench")]
pub async fn raw_publish_expecting(
    js: &jetstream::Context,
    subject: &str,
    payloads: &[Vec<u8>],
) -> Result<(), StoreError> {
    let failed = |e: &dyn std::fmt::Display| StoreError::Unavailable(one_line(e));
    let mut last = 0u64;
    for payload in payloads {
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            last.to_string().as_str(),
        );
        headers.insert(NATS_MESSAGE_ID, Uuid::now_v7().to_string().as_str());
        last = js
            .publish_with_headers(subject.to_string(), headers, payload.clone().into())
            .await
            .map_err(|e| failed(&e))?
            .await
            .map_err(|e| failed(&e))?
            .sequence;
    }
    Ok(())
}

/// What a refused expectation turned out to be.
enum Resolved {
    /// This very commit, stored by an earlier try.
    Stored(Appended),
    /// Only quarantined messages followed the expectation; the last of them.
    PastQuarantined(u64),
}

/// What follows an expectation on an app's subject, quarantined messages passed over.
pub(super) enum After {
    /// The first hoist commit: its sequence and message id.
    Commit { seq: u64, msg_id: Option<String> },
    /// No hoist commit; only quarantined messages, the last of them at `past_quarantined`, or
    /// nothing at all.
    End { past_quarantined: Option<u64> },
    /// A lookup failed, or too many quarantined messages followed.
    Unknown,
}

/// How many quarantined messages an append passes over, or a conflict resolution looks at,
/// before it gives up: far more than a stray publish makes, few enough to stay bounded.
pub(super) const MAX_QUARANTINE_SKIPS: usize = 1000;

/// The bytes `headers` take on the wire (`NATS/1.0\r\n`, `Name: value\r\n` each, `\r\n`), which
/// the server counts against its size limits.
fn headers_len(headers: &[(&str, &str)]) -> usize {
    "NATS/1.0\r\n\r\n".len()
        + headers
            .iter()
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum::<usize>()
}

enum PublishFailure {
    Publish(async_nats::jetstream::context::PublishError),
    Fatal(StoreError),
}

impl EventStore for NatsStore {
    async fn append(
        &self,
        app: &AppName,
        expected_last_seq: u64,
        commit_id: Uuid,
        payload: Vec<u8>,
    ) -> Result<Appended, StoreError> {
        let subject = self.subject(app);
        self.check_size(
            &subject,
            &[
                (
                    NATS_EXPECTED_LAST_SUBJECT_SEQUENCE.as_ref(),
                    &expected_last_seq.to_string(),
                ),
                (NATS_MESSAGE_ID.as_ref(), &commit_id.to_string()),
            ],
            payload.len(),
        )?;
        // The expectation the server checks: the caller's, moved past any quarantined messages
        // found after it (they are not part of the app's history, yet the server counts them).
        let mut expected = expected_last_seq;
        for _ in 0..=MAX_QUARANTINE_SKIPS {
            match self
                .publish_expecting(&subject, expected, commit_id, &payload)
                .await?
            {
                Ok(appended) => return Ok(appended),
                Err(server_said) => {
                    match self
                        .resolve_conflict(app, expected, commit_id, &server_said)
                        .await?
                    {
                        Resolved::Stored(appended) => return Ok(appended),
                        Resolved::PastQuarantined(last) => expected = last,
                    }
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "append to {subject}: more than {MAX_QUARANTINE_SKIPS} messages that are not hoist commits keep arriving on it (see `hoist admin check`)"
        )))
    }

    async fn append_batch(&self, commits: Vec<NewCommit>) -> Result<Vec<Appended>, StoreError> {
        self.publish_batch(&commits).await
    }

    async fn read_app(&self, app: &AppName) -> Result<Vec<StoredCommit>, StoreError> {
        let subject = self.subject(app);
        self.read(&format!("read of {subject}"), &subject, 1, usize::MAX)
            .await
    }

    /// Starts at `after_seq + 1`: a cached fold reads only what it has not folded (one direct
    /// get when nothing is new), not the app's whole history.
    async fn read_app_after(
        &self,
        app: &AppName,
        after_seq: u64,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        let subject = self.subject(app);
        self.read(
            &format!("read of {subject}"),
            &subject,
            after_seq.saturating_add(1),
            usize::MAX,
        )
        .await
    }

    async fn read_from(&self, from_seq: u64, max: usize) -> Result<Vec<StoredCommit>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.read(
            &format!("read from {from_seq}"),
            &self.all_subjects,
            from_seq,
            max,
        )
        .await
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        self.retrying("stream info", |_| self.stream_info_last_seq())
            .await
    }

    async fn apps(&self) -> Result<Vec<AppName>, StoreError> {
        let subject = format!("STREAM.INFO.{}", self.stream);
        let subjects: Vec<String> = self
            .retrying("listing subjects", |_| async {
                let mut subjects = Vec::new();
                loop {
                    let request = serde_json::json!({ "subjects_filter": self.all_subjects, "offset": subjects.len() });
                    let page = match self.js.request::<_, _, Response<InfoPage>>(subject.clone(), &request).await {
                        Ok(Response::Ok(page)) => page,
                        Ok(Response::Err { error }) => return Err(api_failure(&error, "stream info refused")),
                        Err(e) => return Err(Failure::Transient(one_line(&e))),
                    };
                    let got = page.state.subjects.map(|s| s.into_keys().collect::<Vec<_>>()).unwrap_or_default();
                    let done = got.is_empty() || subjects.len() + got.len() >= page.total;
                    subjects.extend(got);
                    if done {
                        return Ok(subjects);
                    }
                }
            })
            .await?;
        // A subject that is no app's holds only messages that are not hoist commits: reads skip
        // them, `hoist admin check` lists them.
        let mut apps: Vec<AppName> = subjects
            .iter()
            .filter_map(|s| app_of(&self.prefix, s))
            .collect();
        apps.sort();
        apps.dedup();
        Ok(apps)
    }
}

/// The parts of a `STREAM.INFO` reply hoist reads.
#[derive(Deserialize)]
struct InfoPage {
    state: InfoState,
    #[serde(default)]
    total: usize,
}

#[derive(Deserialize)]
struct InfoState {
    last_seq: u64,
    #[serde(default)]
    subjects: Option<HashMap<String, u64>>,
}

/// A message read from the stream: a hoist commit, or quarantined with the reason it is not one.
/// A hoist commit is on an app's subject, carries its commit id (a UUID) in `Nats-Msg-Id` (every
/// append does), and passes `check` (hoist's decoder) when one is given.
fn classify(
    prefix: &str,
    check: Option<CommitCheck>,
    message: RawMessage,
) -> Result<StoredCommit, Quarantined> {
    let RawMessage {
        seq,
        subject,
        msg_id,
        payload,
    } = message;
    let why = |reason: String| Quarantined {
        seq,
        subject: subject.clone(),
        reason,
    };
    let Some(app) = app_of(prefix, &subject) else {
        return Err(why(format!(
            "its subject is not hoist's {prefix}<app> with a valid app name"
        )));
    };
    match msg_id.as_deref().map(Uuid::parse_str) {
        Some(Ok(_)) => {}
        Some(Err(_)) => return Err(why("its Nats-Msg-Id is not a hoist commit id".into())),
        None => {
            return Err(why(
                "it has no Nats-Msg-Id header: not appended by hoist".into()
            ))
        }
    }
    if let Some(check) = check {
        check(&app, &payload).map_err(|e| why(format!("its payload is not a commit: {e}")))?;
    }
    Ok(StoredCommit { seq, app, payload })
}

fn app_of(prefix: &str, subject: &str) -> Option<AppName> {
    AppName::from_log(subject.strip_prefix(prefix)?).ok()
}

/// Whether the stream's configuration keeps hoist's guarantees; anything else is reported, never
/// changed: the stream may be someone's on purpose.
fn check_compatible(
    info: &jetstream::stream::Info,
    options: &NatsOptions,
) -> Result<Config, StoreError> {
    let c = &info.config;
    let mut problems = Vec::new();
    // A stream created by an earlier hoist keeps `hoist.app.>` (`subject_prefix_for`).
    let legacy = options.stream != DEFAULT_STREAM && c.subjects == [legacy_subjects()];
    if c.subjects != [options.stream_subjects()] && !legacy {
        problems.push(format!(
            "its subjects are {:?}, hoist needs exactly [\"{}\"]",
            c.subjects,
            options.stream_subjects()
        ));
    }
    if c.storage != StorageType::File {
        problems.push("it is kept in memory, hoist needs file storage".to_string());
    }
    if c.retention != RetentionPolicy::Limits {
        problems.push(format!(
            "its retention is {:?}, which deletes messages; hoist needs limits retention",
            c.retention
        ));
    }
    for (what, value) in [
        ("max_msgs", c.max_messages),
        ("max_bytes", c.max_bytes),
        ("max_msgs_per_subject", c.max_messages_per_subject),
    ] {
        if value > 0 {
            problems.push(format!(
                "{what} is {value}, which would drop history; hoist needs it unlimited"
            ));
        }
    }
    if !c.max_age.is_zero() {
        problems.push(format!(
            "max_age is {:?}, which would drop history; hoist needs it unlimited",
            c.max_age
        ));
    }
    if c.mirror.is_some() || c.sealed {
        problems.push("it is a mirror or sealed, so it takes no appends".to_string());
    }
    if c.num_replicas < options.replicas {
        problems.push(format!(
            "it has {} replica(s), {} were asked for",
            c.num_replicas, options.replicas
        ));
    }
    if problems.is_empty() {
        Ok(c.clone())
    } else {
        Err(StoreError::Unavailable(format!(
            "stream {} exists but is not usable by hoist: {}; hoist never changes an existing stream: fix it or name another with the stream option",
            c.name,
            problems.join("; ")
        )))
    }
}

/// A JetStream API error: 503 (no leader, cluster busy) is worth retrying, anything else is final.
fn api_failure(error: &jetstream::Error, what: &str) -> Failure {
    if error.code() == 503 {
        Failure::Transient(format!("{what}: {error}"))
    } else {
        Failure::Fatal(StoreError::Unavailable(format!("{what}: {error}")))
    }
}

fn find_api_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a jetstream::Error> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(js) = err.downcast_ref::<jetstream::Error>() {
            return Some(js);
        }
        current = err.source();
    }
    None
}

/// Whether a server version ("2.15.1") is at least `major.minor`.
fn at_least(version: &str, major: u64, minor: u64) -> bool {
    let mut parts = version
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (v_major, v_minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (v_major, v_minor) >= (major, minor)
}

fn attempt_timeout(timeout: Duration) -> Duration {
    (timeout / 3).max(Duration::from_millis(500)).min(timeout)
}

/// The permissions violations the server reported on this connection. The server answers a
/// publish it does not permit with an error on the connection and drops the message, so the
/// request waits for nothing; this says why.
#[derive(Clone, Default)]
struct Violation(std::sync::Arc<(std::sync::Mutex<Option<String>>, tokio::sync::Notify)>);

impl Violation {
    fn note(&self, event: &async_nats::Event) {
        if let async_nats::Event::ServerError(async_nats::ServerError::Other(message)) = event {
            if message
                .to_ascii_lowercase()
                .contains("permissions violation")
            {
                *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) = Some(one_line(message));
                self.0 .1.notify_waiters();
            }
        }
    }

    fn refused(&self) -> Option<String> {
        self.0 .0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for the server's first permissions violation on this connection.
    async fn seen(&self) -> String {
        loop {
            let notified = self.0 .1.notified();
            if let Some(why) = self.refused() {
                return why;
            }
            notified.await;
        }
    }

    /// The error a command ends with when the server refused this user what hoist needs.
    fn denied(&self, at: &str) -> Option<StoreError> {
        self.refused().map(|why| {
            StoreError::Denied(format!(
                "{at} does not let this user use hoist's stream ({why}): a team gives only hoist serve's NATS user those rights; go through `hoist --server`"
            ))
        })
    }
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// N in the server's "wrong last sequence: N".
fn refused_sequence(server_said: &str) -> Option<u64> {
    let rest =
        &server_said[server_said.rfind("wrong last sequence: ")? + "wrong last sequence: ".len()..];
    rest[..rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())]
        .parse()
        .ok()
}

/// The servers of a comma-separated URL list, and the list as shown in messages (credentials
/// replaced by `***`).
fn parse_servers(urls: &str) -> Result<(Vec<ServerAddr>, String), StoreError> {
    let mut servers = Vec::new();
    let mut shown = Vec::new();
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let redacted = redact(url);
        let addr = url
            .parse::<ServerAddr>()
            .map_err(|e| StoreError::Unavailable(format!("bad NATS URL {redacted}: {e}")))?;
        servers.push(addr);
        shown.push(redacted);
    }
    if servers.is_empty() {
        return Err(StoreError::Unavailable("no NATS URL given".to_string()));
    }
    Ok((servers, shown.join(",")))
}

fn redact(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..start], &url[start + at + 1..]),
        None => url.to_string(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    fn starts_with_commit(_: &AppName, payload: &[u8]) -> Result<(), String> {
        payload
            .starts_with(b"commit")
            .then_some(())
            .ok_or_else(|| "no".to_string())
    }

    proptest::proptest! {
        /// Any message is either taken for a commit, exactly when it is on an app's subject,
        /// carries a UUID commit id and passes the check, or quarantined with a reason.
        #[test]
        fn every_message_is_a_commit_or_quarantined(
            subject in "hoist\\.app\\.[a-zA-Z0-9_.-]{0,12}|other\\.[a-z]{1,5}",
            msg_id in proptest::option::of(proptest::prop_oneof![
                proptest::prelude::any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
                "[0-9a-f-]{0,40}",
            ]),
            payload in proptest::prop_oneof![
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20)
                    .prop_map(|tail| [b"commit".to_vec(), tail].concat()),
            ],
            seq in 1..u64::MAX,
        ) {
            let valid_id = msg_id.as_deref().is_some_and(|id| Uuid::parse_str(id).is_ok());
            let app = app_of(SUBJECT_PREFIX, &subject);
            let message = RawMessage { seq, subject: subject.clone(), msg_id, payload: payload.clone() };
            match classify(SUBJECT_PREFIX, Some(starts_with_commit), message) {
                Ok(commit) => {
                    proptest::prop_assert!(valid_id && payload.starts_with(b"commit"));
                    proptest::prop_assert_eq!(Some(commit.app), app);
                    proptest::prop_assert_eq!((commit.seq, commit.payload), (seq, payload));
                }
                Err(q) => {
                    proptest::prop_assert!(app.is_none() || !valid_id || !payload.starts_with(b"commit"));
                    proptest::prop_assert_eq!((q.seq, q.subject), (seq, subject));
                    proptest::prop_assert!(!q.reason.is_empty());
                }
            }
        }
    }

    #[test]
    fn a_uuid_commit_is_taken_and_opaque_without_a_check() {
        let message = RawMessage {
            seq: 7,
            subject: "hoist.app.api".into(),
            msg_id: Some(Uuid::now_v7().to_string()),
            payload: b"anything".to_vec(),
        };
        assert!(classify(SUBJECT_PREFIX, None, message).is_ok());
    }

    #[test]
    fn header_bytes_are_counted_as_on_the_wire() {
        assert_eq!(headers_len(&[]), "NATS/1.0\r\n\r\n".len());
        assert_eq!(
            headers_len(&[("A", "bc")]),
            "NATS/1.0\r\nA: bc\r\n\r\n".len()
        );
    }

    #[test]
    fn server_versions_compare() {
        assert!(at_least("2.15.1", 2, 11));
        assert!(at_least("2.11.0-RC.1", 2, 11));
        assert!(!at_least("2.9.10", 2, 11));
        assert!(at_least("3.0.0", 2, 11));
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redact("nats://u:p@host:4222"), "nats://***@host:4222");
        assert_eq!(redact("tls://token@host"), "tls://***@host");
        assert_eq!(redact("nats://host:4222"), "nats://host:4222");
        assert_eq!(redact("host:4222"), "host:4222");
    }

    #[test]
    fn percent_encoded_credentials_are_decoded() {
        assert_eq!(percent_decode("p%40ss%3Aword"), "p@ss:word");
        assert_eq!(percent_decode("plain%"), "plain%");
        assert_eq!(percent_decode("x%4"), "x%4");
    }

    #[test]
    fn the_number_a_refusal_names() {
        assert_eq!(
            refused_sequence(
                "wrong last sequence: wrong last sequence: 42 (code 400, error code 10071)"
            ),
            Some(42)
        );
        assert_eq!(refused_sequence("wrong last sequence"), None);
    }
}
