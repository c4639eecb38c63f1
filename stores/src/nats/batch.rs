//! Atomic batches on JetStream (ADR-50; nats-server ≥ 2.12, a stream with `allow_atomic`): every
//! message of a batch carries `Nats-Batch-Id` and `Nats-Batch-Sequence`, the last one
//! `Nats-Batch-Commit: 1`. The server stages the messages and stores all of them, contiguously,
//! when the commit arrives, or none (a client that dies mid-batch leaves a staged batch the server
//! drops after its inactivity timeout, 10 s by default).
//!
//! - Each app's first message carries `Nats-Expected-Last-Subject-Sequence` (the server refuses
//!   the expectation on a subject already written in the batch, and the batch is stored
//!   contiguously anyway); every message carries `Nats-Msg-Id: <commit id>`.
//! - **Size**: a server takes at most `max_batch_size` messages per batch (jetstream limits,
//!   1,000 by default). A larger batch is refused, whole, with a line saying so: hoist does not
//!   split an import into batches that could be stored apart. Each message is checked against
//!   `max_payload` and the stream's `max_msg_size` (with its batch headers) before anything is
//!   sent, as a single append is: the server's refusal of a staged message would read as a
//!   transient failure, retried until the timeout.
//! - **Retries**: a transient failure retries the whole batch under a new batch id. If the first
//!   try was committed and only its acknowledgement lost, the retry is refused (its commit ids
//!   are stored, or its expectation is stale); then the app's first message after the
//!   expectation names the first commit, and the batch is reported as the duplicate it is.

use super::{
    api_failure, at_least, one_line, refused_sequence, After, Failure, NatsStore,
    MAX_QUARANTINE_SKIPS,
};
use async_nats::header::HeaderName;
use async_nats::header::{
    NATS_BATCH_COMMIT, NATS_BATCH_COMMIT_FINAL, NATS_BATCH_ID, NATS_BATCH_SEQUENCE,
    NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID,
};
use async_nats::jetstream::response::Response;
use async_nats::jetstream::ErrorCode;
use async_nats::HeaderMap;
use hoist_engine::store::{check_batch, Appended, NewCommit, StoreError};
use hoist_engine::AppName;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How the server refused a batch it was able to judge: the answer depends on what is stored.
enum Refusal {
    WrongLast(String),
    Duplicate,
}

/// The headers of each message of a batch (see the module docs), as sent and as sized.
/// `expected` holds each app's expectation, moved past quarantined messages where some were
/// found after the caller's.
fn batch_headers(
    batch_id: &str,
    commits: &[NewCommit],
    expected: &HashMap<AppName, u64>,
) -> Vec<Vec<(HeaderName, String)>> {
    let mut first_of_app = HashSet::new();
    commits
        .iter()
        .enumerate()
        .map(|(i, commit)| {
            let mut headers = vec![
                (NATS_BATCH_ID, batch_id.to_string()),
                (NATS_BATCH_SEQUENCE, (i + 1).to_string()),
                (NATS_MESSAGE_ID, commit.commit_id.to_string()),
            ];
            if first_of_app.insert(&commit.app) {
                headers.push((
                    NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                    expected[&commit.app].to_string(),
                ));
            }
            if i + 1 == commits.len() {
                headers.push((NATS_BATCH_COMMIT, NATS_BATCH_COMMIT_FINAL.to_string()));
            }
            headers
        })
        .collect()
}

fn header_map(named: Vec<(HeaderName, String)>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in named {
        headers.insert(name, value.as_str());
    }
    headers
}

/// What a refused batch turned out to be.
enum BatchResolved {
    /// This very batch, stored by an earlier try.
    Stored(Vec<Appended>),
    /// These apps were followed only by quarantined messages: the last of them, for each.
    PastQuarantined(Vec<(AppName, u64)>),
}

#[derive(Deserialize)]
struct BatchAck {
    stream: String,
    seq: u64,
}

impl NatsStore {
    pub(super) async fn publish_batch(
        &self,
        commits: &[NewCommit],
    ) -> Result<Vec<Appended>, StoreError> {
        check_batch(commits)?;
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        self.check_atomic().await?;
        let mut expected = HashMap::new();
        for commit in commits {
            expected
                .entry(commit.app.clone())
                .or_insert(commit.expected_last_seq);
        }
        // A message the server would refuse for its size is refused here, naming the limit:
        // the server's refusal of a staged message reads as a transient failure.
        let sizing_id = Uuid::nil().to_string(); // every batch id is a UUID: the same length
        for (commit, headers) in commits
            .iter()
            .zip(batch_headers(&sizing_id, commits, &expected))
        {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_ref(), v.as_str()))
                .collect();
            self.check_size(&self.subject(&commit.app), &headers, commit.payload.len())
                .map_err(|e| match e {
                    StoreError::TooLarge(why) => StoreError::TooLarge(format!(
                        "{why} (the commit of event {}); nothing was appended",
                        commit.commit_id
                    )),
                    other => other,
                })?;
        }
        for _ in 0..=MAX_QUARANTINE_SKIPS {
            let refusal = match self.batch_retrying(commits, &expected).await? {
                Ok(last) => {
                    let n = commits.len() as u64;
                    return Ok((last + 1 - n..=last)
                        .map(|seq| Appended {
                            seq,
                            duplicate: false,
                        })
                        .collect());
                }
                Err(refusal) => refusal,
            };
            match self.resolve_batch(commits, &expected, refusal).await? {
                BatchResolved::Stored(appended) => return Ok(appended),
                BatchResolved::PastQuarantined(moved) => expected.extend(moved),
            }
        }
        Err(StoreError::Unavailable(format!(
            "atomic batch on stream {}: more than {MAX_QUARANTINE_SKIPS} messages that are not hoist commits keep arriving on its apps' subjects (see `hoist admin check`)",
            self.stream
        )))
    }

    /// Publishes the batch, trying again after transient failures: the last message's
    /// sequence, or how the server refused it.
    async fn batch_retrying(
        &self,
        commits: &[NewCommit],
        expected: &HashMap<AppName, u64>,
    ) -> Result<Result<u64, Refusal>, StoreError> {
        // Not `retrying`: its bound on one attempt would cut a long batch that is making
        // progress. Each message's request is bounded by the client's request timeout instead,
        // and a failed attempt is tried again while the operation's bound allows.
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            match self.batch_once(commits, expected).await {
                Ok(outcome) => return Ok(outcome),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(why)) if started.elapsed() + pause > self.timeout => {
                    return Err(StoreError::Unavailable(format!(
                        "atomic batch on stream {}: {why} (gave up after {:?}); it is stored whole or not at all",
                        self.stream,
                        started.elapsed()
                    )))
                }
                Err(Failure::Transient(_)) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// An older server would store the messages one by one, ignoring the batch headers: refuse
    /// before publishing anything.
    async fn check_atomic(&self) -> Result<(), StoreError> {
        let version = self.js.client().server_info().version;
        if !at_least(&version, 2, 12) {
            return Err(StoreError::Refused(format!(
                "nats-server {version} cannot store a batch atomically (2.12 or later can): nothing was appended"
            )));
        }
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| StoreError::Unavailable(one_line(&e)))?;
        if !stream.cached_info().config.allow_atomic_publish {
            return Err(StoreError::Refused(format!(
                "stream {} does not allow atomic batches: set `allow_atomic` on it (hoist never changes an existing stream); nothing was appended",
                self.stream
            )));
        }
        Ok(())
    }

    /// Publishes the batch once: the last message's sequence, or how the server refused it.
    async fn batch_once(
        &self,
        commits: &[NewCommit],
        expected: &HashMap<AppName, u64>,
    ) -> Result<Result<u64, Refusal>, Failure> {
        let client = self.js.client();
        let batch_id = Uuid::now_v7().to_string();
        for ((i, commit), named) in commits
            .iter()
            .enumerate()
            .zip(batch_headers(&batch_id, commits, expected))
        {
            let last = i + 1 == commits.len();
            let reply = client
                .request_with_headers(
                    self.subject(&commit.app),
                    header_map(named),
                    commit.payload.clone().into(),
                )
                .await
                .map_err(|e| {
                    Failure::Transient(format!("batch message {}: {}", i + 1, one_line(&e)))
                })?;
            // A staged message is answered with an empty message; the commit with an ack.
            if reply.payload.is_empty() && !last {
                continue;
            }
            match serde_json::from_slice::<Response<BatchAck>>(&reply.payload) {
                Ok(Response::Ok(ack)) if last => {
                    if ack.stream != self.stream {
                        return Err(Failure::Fatal(StoreError::Corrupt(format!(
                            "the batch was stored by stream {}, not {}: two streams claim hoist's subjects",
                            ack.stream, self.stream
                        ))));
                    }
                    return Ok(Ok(ack.seq));
                }
                Ok(Response::Err { error }) => {
                    let code = error.error_code();
                    return if code == ErrorCode::STREAM_WRONG_LAST_SEQUENCE {
                        Ok(Err(Refusal::WrongLast(error.to_string())))
                    } else if code == ErrorCode::ATOMIC_PUBLISH_CONTAINS_DUPLICATE_MESSAGE {
                        Ok(Err(Refusal::Duplicate))
                    } else if code == ErrorCode::ATOMIC_PUBLISH_TOO_LARGE_BATCH {
                        Err(Failure::Fatal(StoreError::Refused(format!(
                            "a batch of {} commits is over the server's limit ({error}): raise `max_batch_size` in the server's jetstream limits, or import fewer apps at a time; nothing was appended",
                            commits.len()
                        ))))
                    } else if code == ErrorCode::ATOMIC_PUBLISH_INCOMPLETE_BATCH
                        || code == ErrorCode::ATOMIC_PUBLISH_TOO_MANY_INFLIGHT
                        // Another append to one of the batch's apps is in flight (replicated
                        // streams): once it lands, the retry meets its expectation.
                        || code == ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT
                    {
                        Err(Failure::Transient(format!("batch refused: {error}")))
                    } else {
                        Err(api_failure(&error, "batch refused"))
                    };
                }
                _ => {
                    return Err(Failure::Transient(format!(
                        "unexpected answer to batch message {}: {}",
                        i + 1,
                        String::from_utf8_lossy(&reply.payload)
                    )))
                }
            }
        }
        unreachable!("the last message of a batch is answered with an ack or an error")
    }

    /// After a refusal, looking at what follows each app's expectation, quarantined messages
    /// passed over (as a single append does, [`NatsStore::first_commit_after`]): the batch's
    /// own earlier try, stored (a duplicate); a conflict naming the app that moved on; or apps
    /// followed only by quarantined messages, whose expectations move past them.
    async fn resolve_batch(
        &self,
        commits: &[NewCommit],
        expected: &HashMap<AppName, u64>,
        refusal: Refusal,
    ) -> Result<BatchResolved, StoreError> {
        let first = &commits[0];
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| StoreError::Unavailable(one_line(&e)))?;
        let mut moved = Vec::new();
        let mut seen = HashSet::new();
        for commit in commits.iter().filter(|c| seen.insert(&c.app)) {
            let subject = self.subject(&commit.app);
            let after = expected[&commit.app];
            let conflict = |actual| StoreError::Conflict {
                app: commit.app.clone(),
                expected: commit.expected_last_seq,
                actual,
            };
            match self.first_commit_after(&stream, &subject, after).await {
                // Stored whole, so contiguously from the first message on.
                After::Commit { seq, msg_id }
                    if commit.app == first.app
                        && msg_id.as_deref() == Some(first.commit_id.to_string().as_str()) =>
                {
                    return Ok(BatchResolved::Stored(
                        (0..commits.len() as u64)
                            .map(|i| Appended {
                                seq: seq + i,
                                duplicate: true,
                            })
                            .collect(),
                    ));
                }
                After::End {
                    past_quarantined: Some(last),
                } => moved.push((commit.app.clone(), last)),
                // Another commit, or nothing found: a conflict if the app's subject moved on.
                After::Commit { .. }
                | After::End {
                    past_quarantined: None,
                }
                | After::Unknown => {
                    let actual = match self.leader_last(&subject).await {
                        Ok(actual) => actual,
                        Err(Failure::Fatal(e)) => return Err(e),
                        Err(Failure::Transient(why)) => return Err(StoreError::Unavailable(why)),
                    };
                    if actual != after {
                        return Err(conflict(actual));
                    }
                }
            }
        }
        if !moved.is_empty() {
            return Ok(BatchResolved::PastQuarantined(moved));
        }
        Err(match refusal {
            Refusal::Duplicate => StoreError::Refused(
                "a commit id of the batch is already stored while the batch is not: nothing was appended".to_string(),
            ),
            Refusal::WrongLast(said) => StoreError::Conflict {
                app: first.app.clone(),
                expected: first.expected_last_seq,
                actual: refused_sequence(&said).unwrap_or(0),
            },
        })
    }
}

#[cfg(feature = "bench")]
impl NatsStore {
    /// Publishes `payloads[i]` (app `apps[i]`'s commits, each in order) as atomic batches of one
    /// commit per app, with the headers `append_batch` sends, but the staged messages without a
    /// reply and no check or retry: one batch in flight. What a group commit across apps would
    /// cost on the server, measured beside the appends.
    pub async fn raw_publish_grouped(
        &self,
        apps: &[AppName],
        payloads: &[Vec<Vec<u8>>],
    ) -> Result<(), StoreError> {
        let failed = |e: &dyn std::fmt::Display| StoreError::Unavailable(one_line(e));
        let client = self.js.client();
        let mut expected: HashMap<AppName, u64> = apps.iter().map(|a| (a.clone(), 0)).collect();
        let rounds = payloads.iter().map(Vec::len).max().unwrap_or(0);
        for round in 0..rounds {
            let commits: Vec<NewCommit> = apps
                .iter()
                .zip(payloads)
                .filter_map(|(app, own)| {
                    own.get(round).map(|payload| NewCommit {
                        app: app.clone(),
                        expected_last_seq: expected[app],
                        commit_id: Uuid::now_v7(),
                        payload: payload.clone(),
                    })
                })
                .collect();
            let batch_id = Uuid::now_v7().to_string();
            let named = batch_headers(&batch_id, &commits, &expected);
            for (i, (commit, named)) in commits.iter().zip(named).enumerate() {
                let (subject, payload) = (self.subject(&commit.app), commit.payload.clone());
                if i + 1 < commits.len() {
                    client
                        .publish_with_headers(subject, header_map(named), payload.into())
                        .await
                        .map_err(|e| failed(&e))?;
                    continue;
                }
                let reply = client
                    .request_with_headers(subject, header_map(named), payload.into())
                    .await
                    .map_err(|e| failed(&e))?;
                let last = match serde_json::from_slice::<Response<BatchAck>>(&reply.payload) {
                    Ok(Response::Ok(ack)) => ack.seq,
                    Ok(Response::Err { error }) => return Err(failed(&error)),
                    Err(e) => return Err(failed(&e)),
                };
                for (k, commit) in commits.iter().enumerate() {
                    expected.insert(commit.app.clone(), last + 1 - (commits.len() - k) as u64);
                }
            }
        }
        Ok(())
    }
}
