//! Importing an exported history: every event checked before anything is appended (its hash, its
//! id unique in the whole import, its app's hash chain, the domain rules of `validate`, or of
//! `access` for the access chain), then the whole history appended as one
//! [`EventStore::append_batch`], so an import is all or nothing.
//! Errors name the event by its place in the input (`line`), counted by the caller.

use crate::access::{self, AccessState, Pipelines};
use crate::chain::ChainVerifier;
use crate::codec::{encode_commit, encode_envelope};
use crate::event::{Envelope, Event, EventHash, Recorded};
use crate::names::{check_via, AppName};
use crate::state::AppState;
use crate::store::{EventStore, NewCommit, StoreError};
use crate::validate::check_event;
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// The first event of an import that cannot be taken, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {rule}")]
pub struct ImportError {
    pub line: usize,
    pub rule: String,
}

/// Checks an import's events one by one, in input order, and groups them into commits (events
/// of one app that share a log sequence, as the export wrote them).
#[derive(Debug, Default)]
pub struct Importer {
    chain: ChainVerifier,
    states: HashMap<AppName, AppState>,
    /// The access chain so far: its events are checked on it, with the apps created before them.
    access: AccessState,
    lines: HashMap<Uuid, usize>,
    commits: Vec<Vec<Envelope>>,
    last_seq: Option<u64>,
    events: usize,
}

/// An import checked whole: what to append.
#[derive(Debug)]
pub struct Checked {
    pub commits: Vec<Vec<Envelope>>,
    /// Every chain the import holds: apps, and the access chain when it has access events.
    pub apps: BTreeSet<AppName>,
    pub events: usize,
}

impl Importer {
    /// Takes the event read at input line `line`, or says why it cannot be taken.
    pub fn push(&mut self, line: usize, recorded: Recorded) -> Result<(), ImportError> {
        let fail = |rule: String| ImportError { line, rule };
        let envelope = &recorded.envelope;
        if EventHash::of(&encode_envelope(envelope)) != recorded.hash {
            return Err(fail(format!(
                "event {} does not hash to its recorded hash: it was altered",
                envelope.id
            )));
        }
        if let Some(first) = self.lines.insert(envelope.id, line) {
            return Err(fail(format!(
                "event id {} is repeated (first on line {first}): every event id is unique",
                envelope.id
            )));
        }
        self.chain
            .check(&recorded)
            .map_err(|e| fail(e.to_string()))?;
        let Some(event) = &envelope.event else {
            return Err(fail(format!(
                "event {} has a kind this version of hoist does not know",
                envelope.id
            )));
        };
        if let Some(via) = &envelope.via {
            check_via(via).map_err(|e| fail(format!("event {}: {e}", envelope.id)))?;
        }
        let checked = if envelope.app.is_access() {
            let apps = match event {
                // The apps created before the grant, with their pipelines: what its scope may name.
                Event::RoleGranted { .. } => self
                    .states
                    .iter()
                    .filter(|(_, state)| state.exists())
                    .map(|(app, state)| (app.clone(), state.pipeline.clone()))
                    .collect(),
                _ => Pipelines::new(),
            };
            access::check_event(&self.access, &apps, event)
        } else {
            let state = self.states.entry(envelope.app.clone()).or_default();
            check_event(&envelope.app, state, event)
        };
        checked.map_err(|e| fail(format!("{} event: {e}", event.kind())))?;
        let same_commit = self.last_seq == Some(recorded.seq)
            && self
                .commits
                .last()
                .is_some_and(|c| c[0].app == envelope.app);
        if !same_commit && self.last_seq.is_some_and(|last| recorded.seq <= last) {
            return Err(fail(format!(
                "log seq {} after {}: an export lists its commits in log order",
                recorded.seq,
                self.last_seq.unwrap_or_default()
            )));
        }
        self.last_seq = Some(recorded.seq);
        self.events += 1;
        if envelope.app.is_access() {
            self.access.apply_mut(&recorded);
        } else {
            let state = self.states.entry(envelope.app.clone()).or_default();
            state.apply_mut(&recorded);
        }
        if same_commit {
            self.commits
                .last_mut()
                .expect("checked above")
                .push(recorded.envelope);
        } else {
            self.commits.push(vec![recorded.envelope]);
        }
        Ok(())
    }

    pub fn finish(self) -> Checked {
        let mut apps: BTreeSet<AppName> = self.states.into_keys().collect();
        if self.access.event_count > 0 {
            apps.insert(AppName::access());
        }
        Checked {
            apps,
            commits: self.commits,
            events: self.events,
        }
    }
}

impl Checked {
    /// Appends the whole import in one batch, each app from scratch (it must not exist yet: a
    /// store where it does refuses the batch with a conflict). A commit's id is its first event's.
    pub async fn append<S: EventStore>(&self, store: &S) -> Result<(), StoreError> {
        let batch = self
            .commits
            .iter()
            .map(|commit| NewCommit {
                app: commit[0].app.clone(),
                expected_last_seq: 0,
                commit_id: commit[0].id,
                payload: encode_commit(commit),
            })
            .collect();
        store.append_batch(batch).await.map(drop)
    }
}
