//! `hoist admin`: the store's upkeep.
//!
//! - `rebuild` folds the whole log into new read models beside the old ones and switches them in
//!   when complete (a rebuild killed midway leaves the old models), telling its progress, then
//!   reports the rate.
//! - `check` verifies what the store's users rely on: the log opens and every entry decodes, each
//!   app's hash chain holds, the read models equal a fresh fold of the log. It changes only what
//!   any command's open changes (an unfinished write is cut off, the models are caught up), never
//!   creates a store, and fails (rejected) naming what is wrong.

use crate::error::{Error, Result};
use crate::store::OpenMode;
use crate::views::Rebuilt;
use crate::Hoist;
use hoist_engine::chain::ChainVerifier;
use hoist_engine::service;
use hoist_engine::store::EventStore;
use hoist_engine::Principal;
use hoist_engine::{Action, Scope};
use hoist_projections::store::ProjectionError;
use hoist_stores::AnyStore;
use std::time::Instant;

/// Log entries read per step.
const PAGE: usize = 2048;

impl Hoist {
    /// Folds the whole log into fresh read models; `progress(folded, end)` after each step (log
    /// sequences).
    pub async fn rebuild(
        &self,
        principal: &Principal,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Rebuilt> {
        self.allowed(principal, Action::Admin, &Scope::everything())?;
        let log = self.open_log(OpenMode::Create).await?;
        let models = self.open_models_or_discard(&log)?;
        let started = Instant::now();
        let (_, done) = models.rebuild(&log, progress).await?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(Rebuilt {
            commits: done.commits,
            events: done.events,
            seconds,
            events_per_s: (done.events as f64 / seconds.max(1e-9)).round(),
            checkpoint: done.checkpoint,
        })
    }

    /// Verifies the store: see the module doc. Problems are findings, not an error: the caller
    /// shows them, then fails with [`Findings::failure`].
    pub async fn check(&self, principal: &Principal) -> Result<Findings> {
        self.allowed(principal, Action::Admin, &Scope::everything())?;
        let log = self.open_log(OpenMode::Existing).await?;
        let mut findings = Findings::default();
        check_log(&log, &mut findings).await?;
        // The models are compared only with a sound log: over a damaged one they cannot agree.
        if findings.problems.is_empty() {
            let mut models = self.open_models(&log)?;
            let compared = match models.catch_up(&log, &mut |_, _| {}).await {
                Ok(_) => models.differs_from_log(&log).await,
                Err(e) => Err(e),
            };
            match compared {
                Ok(None) => {}
                Ok(Some(difference)) => findings.problems.push(Problem::new(
                    "models_differ",
                    format!("{difference}; run `hoist admin rebuild` to fold them again"),
                )),
                // A full disk or an unreachable log is the backend's state, not the store's fault.
                Err(
                    e @ (ProjectionError::DiskFull { .. }
                    | ProjectionError::Io { .. }
                    | ProjectionError::Store(_)),
                ) => return Err(e.into()),
                Err(e) => findings.problems.push(Problem::new(
                    "models_differ",
                    format!("the read models cannot be brought up to the log: {e}"),
                )),
            }
        }
        findings.ok = findings.problems.is_empty();
        Ok(findings)
    }
}

/// What `admin check` found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Findings {
    pub ok: bool,
    pub commits: u64,
    pub events: u64,
    pub apps: usize,
    /// What is wrong: each makes the check fail.
    pub problems: Vec<Problem>,
    /// What the store recovered from on its own, for the record.
    pub notes: Vec<String>,
}

/// One thing `admin check` found wrong: `kind` is `damaged_log` (the embedded log is damaged in
/// the middle: nothing else is checked), `not_a_commit` (a foreign message on NATS, skipped by
/// every read; with its `seq`, `subject` and `reason`), `undecodable`, `broken_chain` or
/// `models_differ`; `message` says it in a sentence.
#[derive(Debug, serde::Serialize)]
pub struct Problem {
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl Problem {
    fn new(kind: &'static str, message: impl std::fmt::Display) -> Self {
        Problem {
            kind,
            message: message.to_string(),
            seq: None,
            subject: None,
            reason: None,
        }
    }
}

/// The log's part of the check: it opens, decodes, and its hash chains hold.
async fn check_log(log: &AnyStore, findings: &mut Findings) -> Result<()> {
    match log {
        AnyStore::Embedded(store) => {
            let recovery = store.recovery()?;
            if let Some((at, bytes, saved)) = recovery.cut {
                findings.notes.push(format!(
                    "the log ended in an unfinished write ({bytes} bytes at byte {at}, never acknowledged): cut off, saved as {}",
                    saved.display()
                ));
            }
            if let Some(damage) = recovery.damage {
                // Nothing else can be checked on a log that cannot be used.
                findings.problems.push(Problem::new("damaged_log", damage));
                return Ok(());
            }
        }
        AnyStore::Nats(nats) => {
            for q in nats.quarantined().await? {
                findings.problems.push(Problem {
                    message: format!(
                        "message {} on {} is not a hoist commit (skipped by every read): {}",
                        q.seq, q.subject, q.reason
                    ),
                    seq: Some(q.seq),
                    subject: Some(q.subject),
                    reason: Some(q.reason),
                    ..Problem::new("not_a_commit", "")
                });
            }
        }
    }
    let mut verifier = ChainVerifier::default();
    let mut apps = std::collections::BTreeSet::new();
    let mut from = 1;
    'log: loop {
        let page = log.read_from(from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        findings.commits += page.len() as u64;
        for commit in &page {
            if !commit.app.is_access() {
                apps.insert(commit.app.clone());
            }
            match service::decode_commits([commit]) {
                Err(e) => findings.problems.push(Problem::new("undecodable", e)),
                Ok(events) => {
                    for recorded in &events {
                        if let Err(broken) = verifier.check(recorded) {
                            findings.problems.push(Problem::new("broken_chain", broken));
                            break 'log;
                        }
                    }
                }
            }
        }
    }
    findings.events = verifier.checked;
    findings.apps = apps.len();
    Ok(())
}

impl Findings {
    /// The error the check ends with: rejected, naming the first problem, when there is any.
    pub fn failure(&self) -> Option<Error> {
        match self.problems.as_slice() {
            [] => None,
            [one] => Some(Error::rejected(format!(
                "admin check: 1 problem: {}",
                one.message
            ))),
            [first, ..] => Some(Error::rejected(format!(
                "admin check: {} problems, the first: {}",
                self.problems.len(),
                first.message
            ))),
        }
    }
}
