//! `hoist serve`'s loops: follows the log and reconciles every env whose current release has not reached
//! its target, within a moment of the event; resyncs every env periodically; stops cleanly when the
//! front end says (SIGTERM, Ctrl-C), after the reconciles in flight.
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
//! Issue 16: a resync no longer re-applies a declarative target silently: it compares the target
//! with the applied release ([`Hoist::check_drift`]), records a drift once, and re-applies only
//! when the env's policy says self-heal. Every pass also looks for auto-promotions
//! ([`hoist_engine::pipeline::due_promotions`]): one due now is made at once, one due later is
//! kept in a schedule the loop looks at every `poll`, so it is made within a poll of its time.
//! Several instances may find the same promotion due; the engine makes it once.
//!
//! Crash safety needs no state of its own: after a restart the first pass is a full resync, and
//! an env whose outcome was never recorded is still pending, so it is applied again (a no-op on a
//! declarative target) and recorded once (the engine records an outcome once per version).

use crate::deliver::HookSettings;
use crate::error::{Error, Result};
use crate::pipeline::DriftCheck;
use crate::reconcile::{Context, Reconciled};
use crate::store::OpenMode;
use crate::text::escape;
use crate::time::parse_span;
use crate::Hoist;
use chrono::{DateTime, Utc};
use hoist_engine::pipeline::{due_promotions, DuePromotion};
use hoist_engine::service;
use hoist_engine::store::EventStore;
use hoist_engine::Principal;
use hoist_engine::{AppName, EnvName, EnvState, Target};
use hoist_stores::nats_work::{
    Claim, Claimed, Claims, Deliveries, Delivery, HELD_RETRY, KEEPALIVE, RENEW_RETRY,
};
use hoist_stores::AnyStore;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::Instrument;

const PAGE: usize = 10_000;
const DEFAULT_RESYNC: Duration = Duration::from_secs(60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Embedded store: the bound on the delay from a release to its apply.
const DEFAULT_POLL: Duration = Duration::from_millis(100);
/// How often each hook looks for new commits.
const HOOKS_POLL: Duration = Duration::from_millis(50);
/// NATS: a commit ends a pull's wait at once; this only sets how often an idle pull is renewed.
const DEFAULT_NATS_POLL: Duration = Duration::from_secs(1);

/// `serve`'s settings as given: each a span (`5m`) or unset.
#[derive(Debug, Clone, Default)]
pub struct SettingsFlags {
    /// A TOML file of the same settings; the flags override it.
    pub config: Option<PathBuf>,
    pub resync: Option<String>,
    pub timeout: Option<String>,
    pub poll: Option<String>,
    /// Where the HTTP API listens (`127.0.0.1:8080`); none: no listener.
    pub listen: Option<String>,
    /// TLS for the listener: a PEM certificate chain and its private key, both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// `--config FILE`: the same settings as the flags, as spans (`resync = "5m"`). TOML, because
/// people edit and comment a daemon's settings file; unknown keys are refused so a typo is not
/// silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    resync: Option<String>,
    timeout: Option<String>,
    poll: Option<String>,
    listen: Option<String>,
    /// Relative to the settings file.
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    /// issue 11: hooks' delivery.
    hooks: Option<HooksFile>,
    /// issue 12: the Matrix bot.
    matrix: Option<MatrixFile>,
    /// issue 12: Slack's slash commands and buttons over HTTP.
    slack: Option<SlackFile>,
}

/// `[slack]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackFile {
    /// Relative to the settings file; its content trimmed.
    signing_secret_file: Option<PathBuf>,
    bot_token_file: Option<PathBuf>,
    /// Socket Mode's app-level token (`xapp-…`).
    app_token_file: Option<PathBuf>,
    api_url: Option<String>,
}

/// `[matrix]`: the chat-command bot (CLI.md, "`hoist serve` and its settings file").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFile {
    homeserver: String,
    user: String,
    /// Relative to the settings file; its content trimmed.
    token_file: PathBuf,
    rooms: Vec<String>,
}

/// `[hooks]`: the retry schedule (spans), scalable for tests.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HooksFile {
    retry_schedule: Option<Vec<String>>,
}

/// `serve`'s settings, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub resync: Duration,
    pub timeout: Duration,
    /// `None`: the backend's default.
    pub poll: Option<Duration>,
    /// Where the HTTP API listens; `None`: no listener, the reconciler alone.
    pub listen: Option<SocketAddr>,
    /// TLS for the listener.
    pub tls: Option<TlsFiles>,
    /// Hooks' delivery (`[hooks]`).
    pub hooks: HookSettings,
    /// The Matrix bot (`[matrix]`), if configured.
    pub matrix: Option<crate::matrix_bot::MatrixBotSettings>,
    /// Slack's signing secret (`[slack]`): enables `/chat/slack/*` on the listener.
    pub slack_signing_secret: Option<crate::chat::SigningSecret>,
    /// Slack's Socket Mode (`[slack] app_token_file`), if configured.
    pub slack_socket: Option<crate::slack_socket::SocketModeSettings>,
}

/// The PEM files of the listener's TLS: the certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Settings {
    /// Flags, else the file, else defaults.
    pub fn resolve(args: &SettingsFlags) -> Result<Settings> {
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
        let listen = match (&args.listen, &file.listen) {
            (Some(text), _) => Some(parse_listen("--listen", text)?),
            (None, Some(text)) => Some(parse_listen(&format!("listen in {shown}"), text)?),
            (None, None) => None,
        };
        // A path in the file is relative to the file; a flag's, to the working directory.
        let beside_file = |path: &PathBuf| match args.config.as_deref().and_then(Path::parent) {
            Some(dir) => dir.join(path),
            None => path.clone(),
        };
        let cert = args
            .tls_cert
            .clone()
            .or(file.tls_cert.as_ref().map(beside_file));
        let key = args
            .tls_key
            .clone()
            .or(file.tls_key.as_ref().map(beside_file));
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(Error::rejected(
                    "TLS needs both --tls-cert and --tls-key (or tls_cert and tls_key in the settings file)",
                ))
            }
        };
        if tls.is_some() && listen.is_none() {
            return Err(Error::rejected(
                "TLS is for the HTTP listener: give --listen (or listen in the settings file) too",
            ));
        }
        let mut hooks = HookSettings::default();
        if let Some(schedule) = file.hooks.as_ref().and_then(|h| h.retry_schedule.as_ref()) {
            if schedule.is_empty() {
                return Err(Error::rejected(format!(
                    "hooks.retry_schedule in {shown}: must name at least one span (the first attempt's)"
                )));
            }
            hooks.schedule = schedule
                .iter()
                .map(|span| match span.trim() {
                    // The first attempt's wait is usually none.
                    "0" | "0s" => Ok(Duration::ZERO),
                    span => parse_span(&format!("hooks.retry_schedule in {shown}"), span),
                })
                .collect::<Result<_>>()?;
        }
        // A file holding a secret or token, named in the settings by `key`: read and trimmed.
        let read = |key: &str, path: &PathBuf| {
            let path = beside_file(path);
            let text = std::fs::read_to_string(&path)
                .map(|t| t.trim().to_string())
                .map_err(|e| {
                    Error::rejected(format!("{key} in {shown}: {}: {e}", path.display()))
                })?;
            if text.is_empty() {
                return Err(Error::rejected(format!(
                    "{key} in {shown}: {} is empty",
                    path.display()
                )));
            }
            Ok(text)
        };
        let matrix = match file.matrix {
            Some(m) => {
                let token = read("matrix.token_file", &m.token_file)?;
                if !(m.homeserver.starts_with("http://") || m.homeserver.starts_with("https://")) {
                    return Err(Error::rejected(format!(
                        "matrix.homeserver in {shown}: must start with http:// or https://"
                    )));
                }
                if m.rooms.iter().any(|r| !r.starts_with('!')) {
                    return Err(Error::rejected(format!(
                        "matrix.rooms in {shown}: each is a room id starting with '!'"
                    )));
                }
                Some(crate::matrix_bot::MatrixBotSettings {
                    homeserver: m.homeserver,
                    user: m.user,
                    token,
                    rooms: m.rooms,
                })
            }
            None => None,
        };
        let (slack_signing_secret, slack_socket) = match file.slack {
            Some(slack) => {
                if slack.bot_token_file.is_some() {
                    return Err(Error::rejected(format!(
                        "slack.bot_token_file in {shown}: a bot's token belongs to its hook: `hoist hooks add NAME --format slack --url https://slack.com/api --room CHANNEL --token-file F`"
                    )));
                }
                let signing = match &slack.signing_secret_file {
                    Some(path) => {
                        let secret = read("slack.signing_secret_file", path)?;
                        if listen.is_none() {
                            return Err(Error::rejected(format!(
                                "slack.signing_secret_file in {shown}: Slack posts to the HTTP listener: give --listen (or listen) too, or use Socket Mode (app_token_file)"
                            )));
                        }
                        Some(crate::chat::SigningSecret(secret))
                    }
                    None => None,
                };
                let api_url = slack
                    .api_url
                    .unwrap_or_else(|| "https://slack.com/api".to_string());
                if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
                    return Err(Error::rejected(format!(
                        "slack.api_url in {shown}: must start with http:// or https://"
                    )));
                }
                let socket = match &slack.app_token_file {
                    Some(path) => {
                        let app_token = read("slack.app_token_file", path)?;
                        if !app_token.starts_with("xapp-")
                            || app_token.chars().any(|c| c.is_control() || c == ' ')
                        {
                            return Err(Error::rejected(format!(
                                "slack.app_token_file in {shown}: an app-level token starts with xapp- and has no spaces"
                            )));
                        }
                        Some(crate::slack_socket::SocketModeSettings { app_token, api_url })
                    }
                    None => None,
                };
                if signing.is_none() && socket.is_none() {
                    return Err(Error::rejected(format!(
                        "slack in {shown}: give signing_secret_file (HTTP) or app_token_file (Socket Mode)"
                    )));
                }
                (signing, socket)
            }
            None => (None, None),
        };
        Ok(Settings {
            slack_signing_secret,
            slack_socket,
            matrix,
            hooks,
            resync: pick("resync", &args.resync, &file.resync)?.unwrap_or(DEFAULT_RESYNC),
            timeout: pick("timeout", &args.timeout, &file.timeout)?.unwrap_or(DEFAULT_TIMEOUT),
            poll: pick("poll", &args.poll, &file.poll)?,
            listen,
            tls,
        })
    }
}

/// A listen address: an IP address and a port (no name to resolve: what is bound is what was said).
fn parse_listen(what: &str, text: &str) -> Result<SocketAddr> {
    text.trim().parse().map_err(|_| {
        Error::rejected(format!(
            "invalid {what} {text:?}: must be an IP address and a port, like 127.0.0.1:8080 or [::1]:8080"
        ))
    })
}

fn read_settings(path: &Path) -> Result<SettingsFile> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::rejected(format!("--config {shown}: {e}")))?;
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        // A span over several lines (the whole table, for an unknown key) names no line.
        let line = e
            .span()
            .map(|s| (s.start.min(text.len()), s.end.min(text.len())))
            .filter(|(start, end)| !text[*start..*end].trim_end().contains('\n'))
            .map(|(start, _)| text[..start].lines().count().max(1));
        let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        Error::rejected(format!(
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

// issue 16
/// When each app has an auto-promotion due next: the loop passes over it then.
#[derive(Clone, Default)]
struct Schedule(Arc<Mutex<BTreeMap<AppName, DateTime<Utc>>>>);

impl Schedule {
    fn add(&self, app: &AppName, at: DateTime<Utc>) {
        let mut due = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = due.entry(app.clone()).or_insert(at);
        *entry = (*entry).min(at);
    }

    /// The apps whose time has come, taken off the schedule.
    fn take_due(&self, now: DateTime<Utc>) -> BTreeSet<AppName> {
        let mut due = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let apps: BTreeSet<AppName> = due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(app, _)| app.clone())
            .collect();
        due.retain(|app, _| !apps.contains(app));
        apps
    }

    /// How long until the next time on the schedule.
    fn until_next(&self, now: DateTime<Utc>) -> Option<Duration> {
        let due = self.0.lock().unwrap_or_else(|e| e.into_inner());
        due.values()
            .min()
            .map(|at| (*at - now).to_std().unwrap_or(Duration::ZERO))
    }
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

impl Hoist {
    /// The daemon: follows the log and reconciles as `principal`, until `shutdown` completes; then
    /// lets the reconciles in flight finish (and record what they did).
    pub async fn serve(
        &self,
        principal: &Principal,
        settings: &Settings,
        ctx: Context,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        serve(self, principal, settings, ctx, shutdown).await
    }
}

async fn serve(
    hoist: &Hoist,
    principal: &Principal,
    settings: &Settings,
    ctx: Context,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    hoist.allowed(
        principal,
        hoist_engine::Action::Apply,
        &hoist_engine::Scope::everything(),
    )?;
    let options = ctx.options;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut feed = match hoist.open_log(OpenMode::Create).await? {
        // Past commits are the first resync's: follow the log from its end.
        AnyStore::Embedded(store) => Feed::Log {
            next_seq: store.last_seq().await? + 1,
        },
        AnyStore::Nats(store) => {
            let unavailable = |e: String| Error::unavailable(format!("serve on NATS: {e}"));
            Feed::Nats(Box::new(Shared {
                deliveries: Deliveries::open(&store).await.map_err(unavailable)?,
                claims: Arc::new(
                    Claims::open(&store, hoist.replicas())
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
    // Hooks are delivered beside the reconciler, each in a task of its own.
    let (stop_hooks, hooks_stopped) = tokio::sync::watch::channel(false);
    let mut hook_settings = settings.hooks.clone();
    // Each hook looks at the log's last sequence this often (a small file, or one request on a
    // connection it keeps): the bound on the delay from an append to its delivery starting.
    hook_settings.poll = HOOKS_POLL;
    hook_settings.pause_after_send = hoist.hooks.pause_after_send.clone();
    let delivering = tokio::spawn(crate::deliver::supervise(
        hoist.clone(),
        principal.clone(),
        hook_settings,
        hooks_stopped,
    ));
    let matrix_bot = settings.matrix.clone().map(|bot| {
        tracing::info!(homeserver = %bot.homeserver, user = %bot.user, rooms = bot.rooms.len(), "matrix bot");
        tokio::spawn(crate::matrix_bot::run(hoist.clone(), bot, stop_hooks.subscribe()))
    });
    let slack_socket = settings.slack_socket.clone().map(|socket| {
        tracing::info!(api = %socket.api_url, "slack socket mode");
        tokio::spawn(crate::slack_socket::run(
            hoist.clone(),
            socket,
            stop_hooks.subscribe(),
        ))
    });
    let reconciler = Arc::new(Reconciler {
        hoist: hoist.clone(),
        principal: principal.clone(),
        ctx,
    });
    let running = Running::default();
    let schedule = Schedule::default();
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
            reconciler: Arc::clone(&reconciler),
            claims: claims.clone(),
            running: running.clone(),
            schedule: schedule.clone(),
        };
        // issue 16: apps with an auto-promotion due now.
        let due = schedule.take_due(Utc::now());
        if !due.is_empty() {
            let pass = pass.clone();
            passes.spawn(async move { pass.run(due, false, None).await });
        }
        if last_resync.is_none_or(|at| at.elapsed() >= settings.resync) {
            last_resync = Some(Instant::now());
            let pass = pass.clone();
            passes.spawn(async move {
                match all_apps(&pass.reconciler.hoist).await {
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
                match touched_apps(hoist, next_seq).await {
                    Ok(apps) if apps.is_empty() => {}
                    Ok(apps) => {
                        passes.spawn(async move { pass.run(apps, false, None).await });
                    }
                    // A busy or unreachable store is weathered: the next pass tries again.
                    Err(e) => tracing::warn!(error = e.message(), "reading the log"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = &mut shutdown => break,
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
                if let Some(next) = schedule.until_next(Utc::now()) {
                    wait = wait.min(next);
                }
                let wait = wait.max(Duration::from_millis(10));
                let next = tokio::select! {
                    next = deliveries.next(wait) => next,
                    _ = &mut shutdown => break,
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
                            _ = &mut shutdown => break,
                        }
                    }
                }
            }
        }
    }
    // Stopping lets the reconciles and deliveries in flight finish (and record what they did).
    let _ = stop_hooks.send(true);
    while passes.join_next().await.is_some() {}
    let _ = delivering.await;
    if let Some(bot) = matrix_bot {
        let _ = bot.await;
    }
    if let Some(socket) = slack_socket {
        let _ = socket.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// What every pass shares.
struct Reconciler {
    hoist: Hoist,
    principal: Principal,
    ctx: Context,
}

/// What a reconcile pass needs, owned, so that it runs in a task of its own.
#[derive(Clone)]
struct Pass {
    reconciler: Arc<Reconciler>,
    claims: Option<Arc<Claims>>,
    running: Running,
    schedule: Schedule,
}

impl Pass {
    async fn run(
        &self,
        apps: BTreeSet<AppName>,
        full: bool,
        delivery: Option<&Delivery>,
    ) -> BTreeSet<AppName> {
        reconcile_apps(self, apps, full, delivery).await
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
async fn all_apps(hoist: &Hoist) -> Result<BTreeSet<AppName>> {
    Ok(hoist
        .open_log(OpenMode::Create)
        .await?
        .apps()
        .await?
        .into_iter()
        .collect())
}

/// The apps that commits since `next_seq` touched; moves `next_seq` past them.
async fn touched_apps(hoist: &Hoist, next_seq: &mut u64) -> Result<BTreeSet<AppName>> {
    let store = hoist.open_log(OpenMode::Create).await?;
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

/// What one env needs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// Its current release is pending: apply it and record what came of it.
    Reconcile,
    /// On a full resync, a declarative target that holds its release: compare it (issue 16:
    /// drift is recorded, and healed only with self-heal on; nothing is re-applied silently).
    /// Exec hooks are never re-run by a resync: they need not be idempotent.
    CheckDrift,
}

/// What `env` needs now, if anything.
fn job(env: &EnvState, full: bool) -> Option<Job> {
    let declarative = matches!(env.target, Target::Kube { .. } | Target::Manifests { .. });
    if env.pending().is_some() {
        Some(Job::Reconcile)
    } else if full && declarative && env.current().is_some() && env.rollout.is_some() {
        Some(Job::CheckDrift)
    } else {
        None
    }
}

/// What a pass over some apps has to do.
#[derive(Default)]
struct Work {
    envs: Vec<(AppName, EnvName, Job)>,
    promotions: Vec<(AppName, DuePromotion)>,
}

/// The envs of `apps` that need a reconcile or a drift check, and the auto-promotions they
/// ask for, read with the store held only for the read.
async fn work_of(hoist: &Hoist, apps: BTreeSet<AppName>, full: bool) -> Result<Work> {
    let store = hoist.open_log(OpenMode::Create).await?;
    let mut work = Work::default();
    // The access chain has no envs to apply.
    for app in apps.into_iter().filter(|app| !app.is_access()) {
        let state = service::load_app(&store, &app).await?;
        work.envs
            .extend(state.envs.iter().filter_map(|(env, env_state)| {
                Some((app.clone(), env.clone(), job(env_state, full)?))
            }));
        work.promotions.extend(
            due_promotions(&state)
                .into_iter()
                .map(|due| (app.clone(), due)),
        );
    }
    Ok(work)
}

/// Reconciles every env of `apps` that needs it, all at once. Returns the apps left for later:
/// with an env another instance held or this one is already reconciling, or all of them when the
/// log could not be read.
async fn reconcile_apps(
    pass: &Pass,
    apps: BTreeSet<AppName>,
    full: bool,
    delivery: Option<&Delivery>,
) -> BTreeSet<AppName> {
    let Pass {
        reconciler,
        claims,
        running,
        schedule,
    } = pass;
    let claims = claims.as_deref();
    let work = match work_of(&reconciler.hoist, apps.clone(), full).await {
        Ok(work) => work,
        Err(e) => {
            tracing::warn!(error = e.message(), "reading the log");
            return apps;
        }
    };
    let mut left = BTreeSet::new();
    let mut runs = Vec::new();
    for (app, env, job) in work.envs {
        let Some(marked) = running.start(&app, &env) else {
            left.insert(app);
            continue;
        };
        let span = match job {
            Job::Reconcile => tracing::info_span!("reconcile", %app, %env),
            Job::CheckDrift => tracing::info_span!("drift", %app, %env),
        };
        runs.push(async move {
            let done = reconcile_env(reconciler, claims, &app, &env, full, job, delivery)
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
    // issue 16: auto-promotions due now are made; later ones wait on the schedule.
    let now = Utc::now();
    for (app, due) in work.promotions {
        if due.due_at > now {
            schedule.add(&app, due.due_at);
            continue;
        }
        let span = tracing::info_span!("promote", %app, from = %due.from, to = %due.to);
        let promote = reconciler
            .hoist
            .auto_promote(&reconciler.principal, &app, &due, &reconciler.ctx)
            .instrument(span);
        // The engine makes a promotion once whoever races; a verification command, though,
        // would run in each racing instance: on NATS it runs under the target env's claim.
        let promoted = match (claims, &due.verify) {
            (Some(claims), Some(_)) => match claims.claim(&app, &due.to).await {
                Ok(Claimed::Mine(mut claim)) => {
                    let promoted = tokio::select! {
                        promoted = promote => promoted,
                        _ = keep_alive(claims, &mut claim, None) => unreachable!("keeps alive until dropped"),
                    };
                    if let Err(e) = claims.release(claim).await {
                        tracing::warn!(error = %e, "releasing the claim (it lapses by itself)");
                    }
                    promoted
                }
                Ok(Claimed::Held(holder)) => {
                    tracing::debug!(%holder, %app, to = %due.to, "promotion target held by another instance");
                    left.insert(app.clone());
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming");
                    left.insert(app.clone());
                    continue;
                }
            },
            _ => promote.await,
        };
        match promoted {
            Ok(Some(version)) => tracing::info!(%app, from = %due.from, source = %due.version,
                to = %due.to, version, "auto-promoted"),
            Ok(None) => tracing::debug!(%app, to = %due.to, "promoted already, or not verified"),
            // Refused (locked or pinned since, not healthy any more): the next pass looks again.
            Err(e) => tracing::info!(%app, to = %due.to, error = e.message(), "not auto-promoted"),
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
    reconciler: &Reconciler,
    claims: Option<&Claims>,
    app: &AppName,
    env: &EnvName,
    full: bool,
    job: Job,
    delivery: Option<&Delivery>,
) -> bool {
    let Reconciler {
        hoist,
        principal,
        ctx,
    } = reconciler;
    let reconcile = || async move {
        match job {
            Job::Reconcile => report(hoist.reconcile(principal, app, env, ctx).await),
            Job::CheckDrift => report_drift(hoist.check_drift(principal, app, env, ctx).await),
        }
    };
    let Some(claims) = claims else {
        reconcile().await;
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
    match still_needed(hoist, app, env, full).await {
        Ok(true) => {
            tokio::select! {
                _ = reconcile() => {},
                _ = keep_alive(claims, &mut claim, delivery) => unreachable!("keeps alive until dropped"),
            }
        }
        Ok(false) => {
            tracing::debug!("already reconciled by another instance");
            ctx.forget_unrecorded(app, env);
        }
        Err(e) => tracing::warn!(error = e.message(), "reading the log"),
    }
    if ctx.outcome_unrecorded(app, env) {
        tracing::info!("keeping the env until its outcome is recorded");
        claims.keep(claim);
        return false;
    }
    if let Err(e) = claims.release(claim).await {
        tracing::warn!(error = %e, "releasing the claim (it lapses by itself)");
    }
    true
}

async fn still_needed(hoist: &Hoist, app: &AppName, env: &EnvName, full: bool) -> Result<bool> {
    let store = hoist.open_log(OpenMode::Create).await?;
    let state = service::load_app(&store, app).await?;
    Ok(state.env(env).is_some_and(|e| job(e, full).is_some()))
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

// issue 16
fn report_drift(checked: Result<DriftCheck>) {
    match checked {
        Ok(DriftCheck::Skipped | DriftCheck::Clean) => {}
        Ok(DriftCheck::Unchanged) => tracing::debug!("drift recorded before; self-heal is off"),
        Ok(DriftCheck::Recorded) => tracing::info!("drift recorded; self-heal is off"),
        Ok(DriftCheck::Healed) => tracing::info!("drift healed"),
        // Nothing was recorded: the next resync compares again.
        Err(e) => tracing::warn!(error = e.message(), "drift check failed"),
    }
}

fn report(reconciled: Result<Reconciled>) {
    match reconciled {
        Ok(done) => tracing::info!(
            version = done.version,
            outcome = done.outcome,
            rolled_back_to = done.rolled_back_to,
            // Hook output is data: escaped, so it cannot drive the terminal or forge a log line.
            detail = %escape(&done.detail.replace('\n', "; ")),
            "reconciled"
        ),
        // Nothing was recorded: the env stays pending and the next resync retries it.
        Err(e) => tracing::warn!(error = e.message(), "reconcile failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<&Path>, resync: Option<&str>) -> SettingsFlags {
        SettingsFlags {
            config: config.map(Path::to_path_buf),
            resync: resync.map(str::to_string),
            timeout: None,
            poll: None,
            ..SettingsFlags::default()
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
    fn slack_takes_http_or_socket_mode_and_names_each_mistake() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.toml");
        std::fs::write(dir.path().join("app-token"), "xapp-1-A1-s3cr3t\n").unwrap();
        std::fs::write(dir.path().join("bot-token"), "xoxb-1\n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        std::fs::write(&file, "[slack]\napp_token_file = \"app-token\"\n").unwrap();
        let socket = Settings::resolve(&args(Some(&file), None)).unwrap();
        let socket = socket.slack_socket.expect("socket mode");
        assert_eq!(socket.api_url, "https://slack.com/api");
        assert_eq!(socket.app_token, "xapp-1-A1-s3cr3t");
        assert!(!format!("{socket:?}").contains("s3cr3t"), "never printed");
        for (text, needle) in [
            (
                "[slack]\n",
                "give signing_secret_file (HTTP) or app_token_file",
            ),
            (
                "[slack]\napp_token_file = \"bot-token\"\n",
                "starts with xapp-",
            ),
            ("[slack]\napp_token_file = \"empty\"\n", "is empty"),
            (
                "[slack]\napp_token_file = \"nope\"\n",
                "slack.app_token_file in",
            ),
            (
                "[slack]\nbot_token_file = \"bot-token\"\n",
                "belongs to its hook",
            ),
            (
                "[slack]\napp_token_file = \"app-token\"\napi_url = \"slack.com\"\n",
                "slack.api_url",
            ),
            (
                "[slack]\nsigning_secret_file = \"bot-token\"\n",
                "give --listen",
            ),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = Settings::resolve(&args(Some(&file), None)).unwrap_err();
            assert!(e.message().contains(needle), "{text}: {}", e.message());
            assert!(!e.message().contains('\n'), "{}", e.message());
            assert!(!e.message().contains("xoxb-1"), "{}", e.message());
        }
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

    #[test]
    fn listen_and_tls_come_from_flags_or_the_file_with_paths_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:8080\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
        )
        .unwrap();
        let from_file = Settings::resolve(&args(Some(&file), None)).unwrap();
        assert_eq!(from_file.listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(
            from_file.tls,
            Some(TlsFiles {
                cert: dir.path().join("cert.pem"),
                key: dir.path().join("key.pem"),
            })
        );
        let mut flags = args(Some(&file), None);
        flags.listen = Some("[::1]:9000".into());
        let flagged = Settings::resolve(&flags).unwrap();
        assert_eq!(flagged.listen, Some("[::1]:9000".parse().unwrap()));
        assert_eq!(Settings::resolve(&args(None, None)).unwrap().listen, None);
        let mut bad = args(None, None);
        bad.listen = Some("localhost:8080".into());
        let e = Settings::resolve(&bad).unwrap_err();
        assert!(e.message().contains("invalid --listen"), "{}", e.message());
        let mut half = args(None, None);
        half.listen = Some("127.0.0.1:0".into());
        half.tls_cert = Some("cert.pem".into());
        let e = Settings::resolve(&half).unwrap_err();
        assert!(
            e.message().contains("both --tls-cert and --tls-key"),
            "{}",
            e.message()
        );
    }
}
