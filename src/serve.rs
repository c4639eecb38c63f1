//! `hoist serve`: follows the log and reconciles every env whose current release has not reached
//! its target, within a moment of the event; resyncs every env periodically; stops cleanly on
//! SIGTERM or Ctrl-C, after the reconcile in flight.
//!
//! How it learns of new commits depends on the backend:
//! - **embedded store**: it reads the log (`read_from`, over the `EventStore` trait) from a
//!   checkpoint every `poll`, holding the store only for a pass (open, read, drop) and inside each
//!   reconcile only to read and to record, so CLI commands keep working while it runs.
//! - **NATS**: any number of instances share a durable consumer and per-env claims
//!   ([`hoist_stores::nats_work`]): each commit goes to one instance, which reconciles its app's pending
//!   envs; an env claimed by another instance is left to it (and the commit comes back later).
//!
//! Every env is reconciled in a task of its own: a hook or rollout that takes its whole timeout
//! holds only its env, never another env or app, nor the reading of new commits. An env already
//! being reconciled here is not started twice; it is looked at again after [`HELD_RETRY`], as an
//! env another instance holds.
//!
//! Crash safety needs no state of its own: after a restart the first pass is a full resync, and
//! an env whose outcome was never recorded is still pending, so it is applied again (a no-op on a
//! declarative target) and recorded once (the engine records an outcome once per version).

use crate::cli::ServeArgs;
use crate::commands::Ctx;
use crate::error::CliError;
use crate::reconcile::{parse_span, reconcile, Options};
use hoist_engine::service;
use hoist_engine::store::EventStore;
use hoist_engine::{AppName, EnvName, EnvState, Target};
use hoist_stores::nats_work::{
    Claim, Claimed, Claims, Deliveries, Delivery, HELD_RETRY, KEEPALIVE, RENEW_RETRY,
};
use hoist_stores::AnyStore;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;
use tracing::Instrument;

const PAGE: usize = 10_000;
const DEFAULT_RESYNC: Duration = Duration::from_secs(60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Embedded store: the bound on the delay from a release to its apply.
const DEFAULT_POLL: Duration = Duration::from_millis(100);
/// NATS: a commit ends a pull's wait at once; this only sets how often an idle pull is renewed.
const DEFAULT_NATS_POLL: Duration = Duration::from_secs(1);

/// `--config FILE`: the same settings as the flags, as spans (`resync = "5m"`). TOML, because
/// people edit and comment a daemon's settings file; unknown keys are refused so a typo is not
/// silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    resync: Option<String>,
    timeout: Option<String>,
    poll: Option<String>,
}

#[derive(Debug)]
struct Settings {
    resync: Duration,
    timeout: Duration,
    /// `None`: the backend's default.
    poll: Option<Duration>,
}

impl Settings {
    /// Flags, else the file, else defaults.
    fn resolve(args: &ServeArgs) -> Result<Settings, CliError> {
        let file = match &args.config {
            Some(path) => read_settings(path)?,
            None => SettingsFile::default(),
        };
        let shown = args
            .config
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let pick =
            |name: &str, flag: &Option<String>, in_file: &Option<String>| match (flag, in_file) {
                (Some(text), _) => parse_span(&format!("--{name}"), text).map(Some),
                (None, Some(text)) => parse_span(&format!("{name} in {shown}"), text).map(Some),
                (None, None) => Ok(None),
            };
        Ok(Settings {
            resync: pick("resync", &args.resync, &file.resync)?.unwrap_or(DEFAULT_RESYNC),
            timeout: pick("timeout", &args.timeout, &file.timeout)?.unwrap_or(DEFAULT_TIMEOUT),
            poll: pick("poll", &args.poll, &file.poll)?,
        })
    }
}

fn read_settings(path: &Path) -> Result<SettingsFile, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::rejected(format!("--config {shown}: {e}")))?;
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        // A span over several lines (the whole table, for an unknown key) names no line.
        let line = e
            .span()
            .map(|s| (s.start.min(text.len()), s.end.min(text.len())))
            .filter(|(start, end)| !text[*start..*end].trim_end().contains('\n'))
            .map(|(start, _)| text[..start].lines().count().max(1));
        let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        CliError::rejected(format!(
            "--config {shown}: not a serve settings file{at}: {}",
            e.message().trim()
        ))
    })
}

/// Where new commits come from.
enum Feed {
    /// The embedded store, read from a checkpoint.
    Log { next_seq: u64 },
    /// NATS: deliveries of the shared consumer, and the claims that keep instances apart.
    Nats(Box<Shared>),
}

struct Shared {
    deliveries: Deliveries,
    claims: Arc<Claims>,
}

/// The envs this process is reconciling now.
#[derive(Clone, Default)]
struct Running(Arc<Mutex<BTreeSet<(AppName, EnvName)>>>);

/// One env marked running; unmarked when dropped, however its reconcile ended.
struct RunningEnv {
    running: Running,
    env: (AppName, EnvName),
}

impl Running {
    /// Marks `app`/`env` running, unless it already is.
    fn start(&self, app: &AppName, env: &EnvName) -> Option<RunningEnv> {
        let env = (app.clone(), env.clone());
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(env.clone()).then(|| RunningEnv {
            running: self.clone(),
            env,
        })
    }
}

impl Drop for RunningEnv {
    fn drop(&mut self) {
        let mut running = self.running.0.lock().unwrap_or_else(|e| e.into_inner());
        running.remove(&self.env);
    }
}

pub async fn serve(ctx: &Ctx, args: ServeArgs) -> Result<(), CliError> {
    let settings = Settings::resolve(&args)?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads them, never in a log file or a journal, and
        // not for a person who set NO_COLOR.
        .with_ansi(crate::output::colour(std::io::stderr().is_terminal()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOIST_LOG")
                // The NATS client logs every connection at info: one per store access.
                .unwrap_or_else(|_| "info,async_nats=warn".into()),
        )
        .init();
    let options = Options {
        wait: true,
        timeout: settings.timeout,
    };
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::rejected(format!("cannot listen for SIGTERM: {e}")))?;
    let mut feed = match ctx.open().await? {
        // Past commits are the first resync's: follow the log from its end.
        AnyStore::Embedded(store) => Feed::Log {
            next_seq: store.last_seq().await? + 1,
        },
        AnyStore::Nats(store) => {
            let unavailable = |e: String| CliError::Unavailable(format!("serve on NATS: {e}"));
            Feed::Nats(Box::new(Shared {
                deliveries: Deliveries::open(&store).await.map_err(unavailable)?,
                claims: Arc::new(
                    Claims::open(&store, usize::from(ctx.global.replicas))
                        .await
                        .map_err(unavailable)?,
                ),
            }))
        }
    };
    let poll = settings.poll.unwrap_or(match feed {
        Feed::Log { .. } => DEFAULT_POLL,
        Feed::Nats(_) => DEFAULT_NATS_POLL,
    });
    match &feed {
        Feed::Log { .. } => {
            tracing::info!(resync = ?settings.resync, timeout = ?options.timeout, ?poll, "serving")
        }
        Feed::Nats(shared) => tracing::info!(
            resync = ?settings.resync, timeout = ?options.timeout, ?poll,
            consumer = hoist_stores::nats_work::CONSUMER, instance = shared.claims.holder(), "serving"
        ),
    }
    let ctx = Arc::new(ctx.clone());
    let running = Running::default();
    // Reconcile passes in flight, each returning the apps it left for later.
    let mut passes: JoinSet<BTreeSet<AppName>> = JoinSet::new();
    let mut last_resync: Option<Instant> = None;
    // Apps with an env another instance held when we looked (NATS): looked at again every
    // HELD_RETRY rather than at the next resync, in case the holder died.
    let mut held = BTreeSet::new();
    let mut last_retry = Instant::now();
    loop {
        while let Some(pass) = passes.try_join_next() {
            match pass {
                Ok(left) => held.extend(left),
                Err(e) => tracing::warn!(error = %e, "a reconcile pass ended abnormally"),
            }
        }
        let claims = match &feed {
            Feed::Log { .. } => None,
            Feed::Nats(shared) => Some(Arc::clone(&shared.claims)),
        };
        let pass = Pass {
            ctx: Arc::clone(&ctx),
            claims: claims.clone(),
            running: running.clone(),
            options,
        };
        if last_resync.is_none_or(|at| at.elapsed() >= settings.resync) {
            last_resync = Some(Instant::now());
            let pass = pass.clone();
            passes.spawn(async move {
                match all_apps(&pass.ctx).await {
                    Ok(apps) => {
                        let count = apps.len();
                        let left = pass.run(apps, true, None).await;
                        tracing::info!(apps = count, "resynced");
                        left
                    }
                    Err(e) => {
                        tracing::warn!(error = e.message(), "resync: reading the log");
                        BTreeSet::new()
                    }
                }
            });
        }
        if !held.is_empty() && last_retry.elapsed() >= HELD_RETRY {
            last_retry = Instant::now();
            let apps = std::mem::take(&mut held);
            let pass = pass.clone();
            passes.spawn(async move { pass.run(apps, false, None).await });
        }
        match &mut feed {
            Feed::Log { next_seq } => {
                match touched_apps(&ctx, next_seq).await {
                    Ok(apps) if apps.is_empty() => {}
                    Ok(apps) => {
                        passes.spawn(async move { pass.run(apps, false, None).await });
                    }
                    // A busy or unreachable store is weathered: the next pass tries again.
                    Err(e) => tracing::warn!(error = e.message(), "reading the log"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = terminate.recv() => break,
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
            Feed::Nats(shared) => {
                let deliveries = &shared.deliveries;
                let until_resync = settings
                    .resync
                    .saturating_sub(last_resync.map_or(Duration::ZERO, |at| at.elapsed()));
                let mut wait = poll.min(until_resync);
                if !held.is_empty() {
                    wait = wait.min(HELD_RETRY.saturating_sub(last_retry.elapsed()));
                }
                let wait = wait.max(Duration::from_millis(10));
                let next = tokio::select! {
                    next = deliveries.next(wait) => next,
                    _ = terminate.recv() => break,
                    _ = tokio::signal::ctrl_c() => break,
                };
                match next {
                    Ok(Some(delivery)) => {
                        passes.spawn(async move { handle(&pass, delivery).await });
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "waiting for commits");
                        tokio::select! {
                            _ = tokio::time::sleep(poll) => {}
                            _ = terminate.recv() => break,
                            _ = tokio::signal::ctrl_c() => break,
                        }
                    }
                }
            }
        }
    }
    // Stopping lets the reconciles in flight finish (and record what they did).
    while passes.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// What a reconcile pass needs, owned, so that it runs in a task of its own.
#[derive(Clone)]
struct Pass {
    ctx: Arc<Ctx>,
    claims: Option<Arc<Claims>>,
    running: Running,
    options: Options,
}

impl Pass {
    async fn run(
        &self,
        apps: BTreeSet<AppName>,
        full: bool,
        delivery: Option<&Delivery>,
    ) -> BTreeSet<AppName> {
        reconcile_apps(
            &self.ctx,
            self.claims.as_deref(),
            &self.running,
            apps,
            full,
            &self.options,
            delivery,
        )
        .await
    }
}

/// One commit delivered to this instance: its app's pending envs reconciled, then acked; if one
/// of them is held by another instance, the commit comes back later to look again.
/// Reconciles a delivered commit's app; returns the apps left for later, which this instance
/// looks at again every HELD_RETRY (as the commit, handed back, may go to another instance, and
/// an env kept until its outcome is recorded is this instance's to finish).
async fn handle(pass: &Pass, delivery: Delivery) -> BTreeSet<AppName> {
    tracing::debug!(app = %delivery.app, seq = delivery.seq, "delivered");
    let apps = BTreeSet::from([delivery.app.clone()]);
    let left = pass.run(apps, false, Some(&delivery)).await;
    let acked = if left.is_empty() {
        delivery.done().await
    } else {
        delivery.retry_later().await
    };
    if let Err(e) = acked {
        // Unacked, it comes back after the ack wait; looking again is harmless.
        tracing::warn!(error = %e, "acknowledging a commit");
    }
    left
}

/// Every app of the log.
async fn all_apps(ctx: &Ctx) -> Result<BTreeSet<AppName>, CliError> {
    Ok(ctx.open().await?.apps().await?.into_iter().collect())
}

/// The apps that commits since `next_seq` touched; moves `next_seq` past them.
async fn touched_apps(ctx: &Ctx, next_seq: &mut u64) -> Result<BTreeSet<AppName>, CliError> {
    let store = ctx.open().await?;
    let mut apps = BTreeSet::new();
    // Nothing new is the common case: answered from the log's last sequence (on the embedded
    // store a small file), without reading the log.
    if store.last_seq().await? < *next_seq {
        return Ok(apps);
    }
    loop {
        let page = store.read_from(*next_seq, PAGE).await?;
        let Some(last) = page.last() else { break };
        *next_seq = last.seq + 1;
        apps.extend(page.into_iter().map(|c| c.app));
    }
    Ok(apps)
}

/// Whether `env` needs a reconcile now: its current release is pending; or, on a full resync, it
/// has a declarative target (applying again repairs drift and changes nothing otherwise). Exec
/// hooks are not re-run by a resync: they need not be idempotent.
fn needs_reconcile(env: &EnvState, full: bool) -> bool {
    let declarative = matches!(env.target, Target::Kube { .. } | Target::Manifests { .. });
    env.pending().is_some() || (full && declarative && env.current().is_some())
}

/// The envs of `apps` that need a reconcile, read with the store held only for the read.
async fn envs_to_reconcile(
    ctx: &Ctx,
    apps: BTreeSet<AppName>,
    full: bool,
) -> Result<Vec<(AppName, EnvName)>, CliError> {
    let store = ctx.open().await?;
    let mut work = Vec::new();
    for app in apps {
        let state = service::load_app(&store, &app).await?;
        work.extend(
            state
                .envs
                .iter()
                .filter(|(_, env)| needs_reconcile(env, full))
                .map(|(env, _)| (app.clone(), env.clone())),
        );
    }
    Ok(work)
}

/// Reconciles every env of `apps` that needs it, all at once. Returns the apps left for later:
/// with an env another instance held or this one is already reconciling, or all of them when the
/// log could not be read.
async fn reconcile_apps(
    ctx: &Ctx,
    claims: Option<&Claims>,
    running: &Running,
    apps: BTreeSet<AppName>,
    full: bool,
    options: &Options,
    delivery: Option<&Delivery>,
) -> BTreeSet<AppName> {
    let work = match envs_to_reconcile(ctx, apps.clone(), full).await {
        Ok(work) => work,
        Err(e) => {
            tracing::warn!(error = e.message(), "reading the log");
            return apps;
        }
    };
    let mut left = BTreeSet::new();
    let mut runs = Vec::new();
    for (app, env) in work {
        let Some(marked) = running.start(&app, &env) else {
            left.insert(app);
            continue;
        };
        let span = tracing::info_span!("reconcile", %app, %env);
        runs.push(async move {
            let done = reconcile_env(ctx, claims, &app, &env, full, options, delivery)
                .instrument(span)
                .await;
            drop(marked);
            (app, done)
        });
    }
    for (app, done) in futures::future::join_all(runs).await {
        if !done {
            left.insert(app);
        }
    }
    left
}

/// One env: under its claim on NATS (looked at again once claimed: another instance may have
/// just recorded it), directly on the embedded store. Returns false when another instance holds
/// it, or when this one applied it and could not record the outcome yet: then the claim is kept
/// (renewed at each retry, every HELD_RETRY) so that no other instance applies it again. A
/// reconcile that fails otherwise records nothing: the env stays pending for the next resync.
async fn reconcile_env(
    ctx: &Ctx,
    claims: Option<&Claims>,
    app: &AppName,
    env: &EnvName,
    full: bool,
    options: &Options,
    delivery: Option<&Delivery>,
) -> bool {
    let Some(claims) = claims else {
        report(reconcile(ctx, app, env, options).await);
        return true;
    };
    let mut claim = match claims.claim(app, env).await {
        Ok(Claimed::Mine(claim)) => claim,
        Ok(Claimed::Held(holder)) => {
            tracing::debug!(%holder, "held by another instance");
            return false;
        }
        Err(e) => {
            tracing::warn!(error = %e, "claiming");
            return false;
        }
    };
    match still_needed(ctx, app, env, full).await {
        Ok(true) => {
            tokio::select! {
                done = reconcile(ctx, app, env, options) => report(done),
                _ = keep_alive(claims, &mut claim, delivery) => unreachable!("keeps alive until dropped"),
            }
        }
        Ok(false) => {
            tracing::debug!("already reconciled by another instance");
            crate::reconcile::forget_unrecorded(app, env);
        }
        Err(e) => tracing::warn!(error = e.message(), "reading the log"),
    }
    if crate::reconcile::outcome_unrecorded(app, env) {
        tracing::info!("keeping the env until its outcome is recorded");
        claims.keep(claim);
        return false;
    }
    if let Err(e) = claims.release(claim).await {
        tracing::warn!(error = %e, "releasing the claim (it lapses by itself)");
    }
    true
}

async fn still_needed(
    ctx: &Ctx,
    app: &AppName,
    env: &EnvName,
    full: bool,
) -> Result<bool, CliError> {
    let store = ctx.open().await?;
    let state = service::load_app(&store, app).await?;
    Ok(state.env(env).is_some_and(|e| needs_reconcile(e, full)))
}

/// Renews the claim and the delivery while a reconcile runs (its outcome's record included,
/// which may wait out a leader election); never returns. A renewal that fails is tried again
/// after [`RENEW_RETRY`], not a whole [`KEEPALIVE`] later, so an election of the claims stream's
/// leader does not let the claim lapse.
async fn keep_alive(claims: &Claims, claim: &mut Claim, delivery: Option<&Delivery>) {
    let mut pause = KEEPALIVE;
    loop {
        tokio::time::sleep(pause).await;
        pause = KEEPALIVE;
        if let Err(e) = claims.renew(claim).await {
            tracing::warn!(error = %e, "renewing the claim");
            pause = RENEW_RETRY;
        }
        if let Some(delivery) = delivery {
            if let Err(e) = delivery.in_progress().await {
                tracing::warn!(error = %e, "extending the commit's ack wait");
            }
        }
    }
}

fn report(reconciled: Result<crate::reconcile::Reconciled, CliError>) {
    match reconciled {
        Ok(done) => tracing::info!(
            version = done.version,
            outcome = done.outcome,
            rolled_back_to = done.rolled_back_to,
            // Hook output is data: escaped, so it cannot drive the terminal or forge a log line.
            detail = %crate::output::escape(&done.detail.replace('\n', "; ")),
            "reconciled"
        ),
        // Nothing was recorded: the env stays pending and the next resync retries it.
        Err(e) => tracing::warn!(error = e.message(), "reconcile failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<&Path>, resync: Option<&str>) -> ServeArgs {
        ServeArgs {
            config: config.map(Path::to_path_buf),
            resync: resync.map(str::to_string),
            timeout: None,
            poll: None,
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.toml");
        std::fs::write(
            &file,
            "# our slowest rollout\ntimeout = \"10m\"\nresync = \"5m\"\n",
        )
        .unwrap();
        let from_file = Settings::resolve(&args(Some(&file), None)).unwrap();
        assert_eq!(from_file.resync, Duration::from_secs(300));
        assert_eq!(from_file.timeout, Duration::from_secs(600));
        assert_eq!(from_file.poll, None);
        let flagged = Settings::resolve(&args(Some(&file), Some("30s"))).unwrap();
        assert_eq!(flagged.resync, Duration::from_secs(30));
        assert_eq!(flagged.timeout, Duration::from_secs(600));
        let defaults = Settings::resolve(&args(None, None)).unwrap();
        assert_eq!(
            (defaults.resync, defaults.timeout),
            (DEFAULT_RESYNC, DEFAULT_TIMEOUT)
        );
    }

    #[test]
    fn a_bad_settings_file_is_named_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.toml");
        std::fs::write(&file, "timeout = \"10m\"\nresink = \"5m\"\n").unwrap();
        let e = Settings::resolve(&args(Some(&file), None)).unwrap_err();
        let message = e.message();
        assert!(message.contains("serve.toml"), "{message}");
        assert!(message.contains("resink"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        std::fs::write(&file, "timeout = \"10m\"\nresync = 5m\n").unwrap();
        let e = Settings::resolve(&args(Some(&file), None)).unwrap_err();
        let message = e.message();
        assert!(message.contains("(line 2)"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        std::fs::write(&file, "poll = \"soon\"\n").unwrap();
        let e = Settings::resolve(&args(Some(&file), None)).unwrap_err();
        assert!(e.message().contains("invalid poll in"), "{}", e.message());
    }
}
