//! `hoist serve`: follows the log and reconciles every env whose current release has not reached
//! its target, within a poll interval of the event; resyncs every env periodically; stops cleanly
//! on SIGTERM or Ctrl-C, after the reconcile in flight.
//!
//! It holds the store only for a pass over new commits (open, read, drop) and inside each
//! reconcile only to read and to record: on the embedded store, CLI commands keep working while
//! it runs. It is written over the `EventStore` trait (`read_from` from a checkpoint), so any
//! backend serves. Crash safety needs no state of its own: after a restart the first pass is a
//! full resync, and an env whose outcome was never recorded is still pending, so it is applied
//! again (a no-op on a declarative target) and recorded once (the engine records an outcome once).

use crate::cli::ServeArgs;
use crate::commands::Ctx;
use crate::error::CliError;
use crate::reconcile::{parse_span, reconcile, Options};
use hoist_engine::service;
use hoist_engine::store::EventStore;
use hoist_engine::{AppName, EnvName, Target};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tracing::Instrument;

/// How often the log is read for new commits: the bound on the delay from a release to its apply.
const POLL: Duration = Duration::from_millis(100);
const PAGE: usize = 10_000;

pub async fn serve(ctx: &Ctx, args: ServeArgs) -> Result<(), CliError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOIST_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let resync = parse_span("--resync", &args.resync)?;
    let options = Options {
        wait: true,
        timeout: parse_span("--timeout", &args.timeout)?,
    };
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::rejected(format!("cannot listen for SIGTERM: {e}")))?;
    let mut next_seq = 1;
    let mut last_resync: Option<Instant> = None;
    tracing::info!(?resync, timeout = ?options.timeout, "serving");
    loop {
        let full = last_resync.is_none_or(|at| at.elapsed() >= resync);
        if full {
            last_resync = Some(Instant::now());
        }
        let work = match pass(ctx, &mut next_seq, full).await {
            Ok(work) => work,
            Err(e) => {
                // A busy or unreachable store is weathered: the next pass tries again.
                tracing::warn!(error = e.message(), "reading the log");
                vec![]
            }
        };
        for (app, env) in work {
            let span = tracing::info_span!("reconcile", %app, %env);
            match reconcile(ctx, &app, &env, &options).instrument(span).await {
                Ok(done) => tracing::info!(
                    version = done.version,
                    outcome = done.outcome,
                    rolled_back_to = done.rolled_back_to,
                    detail = %done.detail.replace('\n', "; "),
                    "reconciled"
                ),
                // Nothing was recorded: the env stays pending and the next resync retries it.
                Err(e) => tracing::warn!(error = e.message(), "reconcile failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The envs to reconcile now: those with a pending release among the apps that new commits
/// touched; on a full resync, every env of every app that has a declarative target (applying
/// again repairs drift and changes nothing otherwise) and every pending one. Exec hooks are not
/// re-run by a resync: they need not be idempotent.
async fn pass(
    ctx: &Ctx,
    next_seq: &mut u64,
    full: bool,
) -> Result<Vec<(AppName, EnvName)>, CliError> {
    let store = ctx.open().await?;
    let mut apps = BTreeSet::new();
    loop {
        let page = store.read_from(*next_seq, PAGE).await?;
        let Some(last) = page.last() else { break };
        *next_seq = last.seq + 1;
        apps.extend(page.into_iter().map(|c| c.app));
    }
    if full {
        apps.extend(store.apps().await?);
    }
    let mut work = Vec::new();
    for app in apps {
        let state = service::load_app(&store, &app).await?;
        for (env, env_state) in &state.envs {
            let declarative = matches!(
                env_state.target,
                Target::Kube { .. } | Target::Manifests { .. }
            );
            let resynced = full && declarative && env_state.current().is_some();
            if env_state.pending().is_some() || resynced {
                work.push((app.clone(), env.clone()));
            }
        }
    }
    Ok(work)
}
