//! `hoist admin`: the store's upkeep.
//!
//! - `rebuild` folds the whole log into new read models beside the old ones and switches them in
//!   when complete (a rebuild killed midway leaves the old models), with a progress bar on stderr
//!   (plain progress lines when stderr is not a terminal), then reports the rate.
//! - `check` verifies what the store's users rely on: the log opens and every entry decodes, each
//!   app's hash chain holds, the read models equal a fresh fold of the log. It changes only what
//!   any command's open changes (an unfinished write is cut off, the models are caught up), never
//!   creates a store, and exits 1 naming what is wrong.

use crate::backend;
use crate::cli::GlobalArgs;
use crate::error::CliError;
use crate::output::{outln, print_json};
use hoist_engine::chain::ChainVerifier;
use hoist_engine::service;
use hoist_engine::store::EventStore;
use hoist_projections::store::ProjectionError;
use hoist_stores::AnyStore;
use std::io::IsTerminal;
use std::time::Instant;

/// Log entries read per step.
const PAGE: usize = 2048;

pub async fn rebuild(global: &GlobalArgs) -> Result<(), CliError> {
    let log = backend::open(global).await?;
    let models = crate::models::open_or_discard(global, &log)?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "rebuild {bar:40} {pos}/{len} log entries ({per_sec}, eta {eta})",
            )
            .expect("a valid template"),
        );
        bar
    });
    let started = Instant::now();
    let (_, done) = models
        .rebuild(&log, &mut |folded, end| match &bar {
            Some(bar) => {
                bar.set_length(end);
                bar.set_position(folded);
            }
            None => crate::output::stderr_line(&format!(
                "rebuild: folded log entries up to {folded} of {end}"
            )),
        })
        .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let events_per_s = (done.events as f64 / seconds.max(1e-9)).round();
    if global.json {
        print_json(&serde_json::json!({
            "commits": done.commits, "events": done.events, "seconds": seconds,
            "events_per_s": events_per_s, "checkpoint": done.checkpoint,
        }));
    } else {
        outln!(
            "Rebuilt the read models from {} events ({} log entries) in {seconds:.2} s: {events_per_s} events/s",
            done.events, done.commits
        );
    }
    Ok(())
}

/// What `admin check` found.
#[derive(Debug, Default, serde::Serialize)]
struct Findings {
    ok: bool,
    commits: u64,
    events: u64,
    apps: usize,
    /// What is wrong: each makes the check fail.
    problems: Vec<Problem>,
    /// What the store recovered from on its own, for the record.
    notes: Vec<String>,
}

/// One thing `admin check` found wrong: `kind` is `damaged_log` (the embedded log is damaged in
/// the middle: nothing else is checked), `not_a_commit` (a foreign message on NATS, skipped by
/// every read; with its `seq`, `subject` and `reason`), `undecodable`, `broken_chain` or
/// `models_differ`; `message` says it in a sentence.
#[derive(Debug, serde::Serialize)]
struct Problem {
    kind: &'static str,
    message: String,
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

pub async fn check(global: &GlobalArgs) -> Result<(), CliError> {
    let log = backend::open_as(global, backend::OpenMode::Existing).await?;
    let mut findings = Findings::default();
    match &log {
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
                return report(global, findings);
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
            apps.insert(commit.app.clone());
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
    // The models are compared only with a sound log: over a damaged one they cannot agree.
    if findings.problems.is_empty() {
        let mut models = crate::models::open(global, &log)?;
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
    report(global, findings)
}

/// Prints what `check` found; exit 1 naming the first problem when there is any.
fn report(global: &GlobalArgs, mut findings: Findings) -> Result<(), CliError> {
    findings.ok = findings.problems.is_empty();
    if global.json {
        print_json(&findings);
    } else {
        for note in &findings.notes {
            outln!("note: {note}");
        }
        for problem in &findings.problems {
            outln!("problem: {}", problem.message);
        }
        if findings.ok {
            outln!(
                "Store OK: {} log entries, {} events, {} apps; hash chains intact; read models match the log",
                findings.commits, findings.events, findings.apps
            );
        }
    }
    match findings.problems.as_slice() {
        [] => Ok(()),
        [one] => Err(CliError::rejected(format!(
            "admin check: 1 problem: {}",
            one.message
        ))),
        [first, ..] => Err(CliError::rejected(format!(
            "admin check: {} problems, the first: {}",
            findings.problems.len(),
            first.message
        ))),
    }
}
