//! `hoist apply` and the one reconcile step `hoist serve` repeats: read the env's current release
//! and target, hand the release to its adapter (`hoist_adapters::target`), record what came of it
//! through the engine (whose rules decide an auto-rollback), and apply that rollback too when one
//! was decided.
//!
//! The store is held only to read and to record, never while an adapter works (a rollout wait can
//! take minutes): other hoist processes on the same embedded store keep working meanwhile.

use crate::error::{Error, ErrorKind, Result};
use crate::queries::env_of;
use crate::store::OpenMode;
use crate::views::ReleaseView;
use crate::Hoist;
use hoist_adapters::target::{self, Applying};
use hoist_adapters::Report;
use hoist_engine::service::{self, CommandContext};
use hoist_engine::Principal;
use hoist_engine::{
    Action, Actor, AppName, Command, ConfigValue, EnvName, EnvState, Event, Outcome, ReleaseRecord,
    ReleaseVersion, Scope, Target,
};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub use hoist_adapters::render::to_yaml;
pub use hoist_adapters::target::{Options, Plan};

/// The actor of everything the reconciler records: outcomes and auto-rollbacks.
pub const RECONCILER: &str = "hoist";

/// How long recording an outcome keeps trying, under one command id, while the log does not
/// answer (NATS): well past a JetStream leader election (measured 5–7 s on a 3-node cluster
/// after the leader's node is killed), so an election delays a record and never loses it.
pub const RECORD_PATIENCE: Duration = Duration::from_secs(30);
/// The pause between two tries of recording an outcome.
const RECORD_RETRY: Duration = Duration::from_millis(500);

/// What every reconcile of one process shares: how to apply, how long to keep trying to record,
/// and the outcomes applied but not recorded yet.
#[derive(Clone)]
pub struct Context {
    pub options: Options,
    /// How long recording an outcome keeps trying while a NATS log does not answer.
    pub record_patience: Duration,
    /// Crash-safety tests: when set, the reconciler writes the version to this file right after
    /// an adapter applied it and then stops forever, before recording the outcome, so a test can
    /// `kill -9` it at exactly that point.
    pub pause_after_apply: Option<PathBuf>,
    /// Outcomes applied but not recorded (the log did not answer within the patience), by app
    /// and env, with the command they were being recorded under: the next reconcile of that env
    /// records the outcome under the same command id instead of applying the release again (a
    /// hook need not be idempotent; the same id makes the record happen once).
    unrecorded: Arc<Mutex<HashMap<(AppName, EnvName), Unrecorded>>>,
}

struct Unrecorded {
    version: ReleaseVersion,
    report: Report,
    command: CommandContext,
}

impl Context {
    pub fn new(options: Options) -> Self {
        Context {
            options,
            record_patience: RECORD_PATIENCE,
            pause_after_apply: None,
            unrecorded: Arc::default(),
        }
    }

    fn unrecorded(&self) -> std::sync::MutexGuard<'_, HashMap<(AppName, EnvName), Unrecorded>> {
        self.unrecorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_unrecorded(&self, app: &AppName, env: &EnvName) -> Option<Unrecorded> {
        self.unrecorded().remove(&(app.clone(), env.clone()))
    }

    /// Whether this process applied `app`/`env`'s current release and still has its outcome to
    /// record: `serve` then keeps the env (and its claim) until it is recorded.
    pub fn outcome_unrecorded(&self, app: &AppName, env: &EnvName) -> bool {
        self.unrecorded().contains_key(&(app.clone(), env.clone()))
    }

    /// Drops an unrecorded outcome the log shows is no longer needed (recorded after all, its
    /// ack lost, or the env moved on).
    pub fn forget_unrecorded(&self, app: &AppName, env: &EnvName) {
        self.take_unrecorded(app, env);
    }
}

/// What one reconcile did: `apply`'s JSON (CLI.md).
#[derive(Debug, Serialize)]
pub struct Reconciled {
    pub app: AppName,
    pub env: EnvName,
    pub version: u64,
    /// `applied`, `unchanged`, `healthy` or `failed`.
    pub outcome: &'static str,
    pub detail: String,
    pub rolled_back_to: Option<u64>,
}

impl Reconciled {
    /// The error a failed rollout ends `apply` with (rejected), naming any auto-rollback.
    pub fn failure(&self) -> Option<Error> {
        (self.outcome == Outcome::Failed.as_str()).then(|| {
            let recovered = self
                .rolled_back_to
                .map(|v| format!("; auto-rollback to v{v}"))
                .unwrap_or_default();
            Error::rejected(format!(
                "{}/{} v{}: the rollout failed{recovered}",
                self.app, self.env, self.version
            ))
        })
    }
}

/// What applying the current release would do (`apply --dry-run`).
pub struct Planned {
    pub app: AppName,
    pub env: EnvName,
    pub target: Target,
    pub record: ReleaseRecord,
    pub plan: Plan,
    /// issue 14: what the release runs in the env (an exec target's stdin names it).
    pub formation: hoist_engine::Formation,
}

impl Hoist {
    /// One reconcile of `env`: its current release applied and the outcome recorded; after a
    /// failure that the policy answers with an auto-rollback, the rollback release applied and
    /// recorded too.
    pub async fn reconcile(
        &self,
        principal: &Principal,
        app: &AppName,
        env: &EnvName,
        ctx: &Context,
    ) -> Result<Reconciled> {
        self.allowed(principal, Action::Apply, &Scope::env(app, env))?;
        let (target, record, where_) = self.current(principal, app, env).await?;
        let version = record.release.version;
        // An outcome this process could not record: recorded now, under its command id; applied
        // again only if the env moved on to another release meanwhile.
        let (report, command) = match ctx.take_unrecorded(app, env) {
            Some(earlier) if earlier.version == version => {
                tracing::info!(%app, %env, %version, "recording the outcome of an earlier apply");
                (earlier.report, Some(earlier.command))
            }
            _ => (
                self.apply_release(app, env, &target, &record, &where_, ctx)
                    .await?,
                None,
            ),
        };
        if let Some(marker) = &ctx.pause_after_apply {
            std::fs::write(marker, version.to_string()).expect("test hook: marker file writable");
            tracing::warn!(%app, %env, %version, "paused after apply, before recording (test hook)");
            std::future::pending::<()>().await;
        }
        let recorded = self
            .record_outcome(principal, app, env, &record, &report, None, command, ctx)
            .await?;
        let mut reconciled = Reconciled {
            app: app.clone(),
            env: env.clone(),
            version: version.get(),
            outcome: outcome_name(&report),
            detail: report.detail,
            rolled_back_to: None,
        };
        if let Some((rollback, failed_rollout)) = recorded {
            let to = rollback.release.rollback_to.map(|v| v.get());
            let second = self
                .apply_release(app, env, &target, &rollback, &where_, ctx)
                .await?;
            // A failure of the rollback is recorded, and the engine decides no second rollback.
            // Its outcome is part of the auto-rollback, so the failed rollout is its cause too.
            self.record_outcome(
                principal,
                app,
                env,
                &rollback,
                &second,
                Some(failed_rollout),
                None,
                ctx,
            )
            .await?;
            reconciled.rolled_back_to = to;
            reconciled.detail = format!(
                "{}\nauto-rollback to v{} as {}: {} ({})",
                reconciled.detail,
                to.unwrap_or_default(),
                rollback.release.version,
                outcome_name(&second),
                second.detail.replace('\n', "; ")
            );
        }
        Ok(reconciled)
    }

    /// What [`reconcile`](Self::reconcile) would apply and change: nothing applied, nothing
    /// recorded.
    pub async fn plan(
        &self,
        principal: &Principal,
        app: &AppName,
        env: &EnvName,
    ) -> Result<Planned> {
        self.allowed(principal, Action::View, &Scope::env(app, env))?;
        let (target, record, where_) = self.current(principal, app, env).await?;
        let key = self.key_for(&record)?;
        let formation = where_.formation(&record);
        let applying = Applying {
            app,
            env,
            record: &record,
            key: key.as_ref(),
            release_json: Vec::new(),
            formation: &formation,
        };
        let plan = target::plan(&target, &applying).await?;
        Ok(Planned {
            app: app.clone(),
            env: env.clone(),
            target,
            record,
            plan,
            formation,
        })
    }

    /// The env's target and current release, read with the store held only for the read, and
    /// the env's scale, domains and routing (issue 14: what a release of it runs).
    async fn current(
        &self,
        principal: &Principal,
        app: &AppName,
        env: &EnvName,
    ) -> Result<(Target, ReleaseRecord, EnvState)> {
        let state = self.app(principal, app, None).await?;
        let env_state = env_of(app, &state, env)?;
        if env_state.target == Target::None {
            return Err(Error::rejected(format!(
                "{app}/{env} has no target: set one with `hoist envs target`"
            )));
        }
        let record = env_state
            .current()
            .ok_or_else(|| Error::rejected(format!("{app}/{env} has no release to apply yet")))?;
        let where_ = EnvState {
            target: env_state.target.clone(),
            scale: env_state.scale.clone(),
            domains: env_state.domains.clone(),
            ..EnvState::default()
        };
        Ok((env_state.target.clone(), record.clone(), where_))
    }

    /// The key that opens the release's secrets, when it has any.
    pub(crate) fn key_for(
        &self,
        record: &ReleaseRecord,
    ) -> Result<Option<hoist_engine::secrets::SecretKey>> {
        let config = &record.release.config;
        let sealed = config.values().any(|v| matches!(v, ConfigValue::Sealed(_)));
        sealed.then(|| self.opening_key(config)).transpose()
    }

    /// Hands one release to the env's target.
    pub(crate) async fn apply_release(
        &self,
        app: &AppName,
        env: &EnvName,
        target: &Target,
        record: &ReleaseRecord,
        where_: &EnvState,
        ctx: &Context,
    ) -> Result<Report> {
        let key = self.key_for(record)?;
        let view = ReleaseView::new(app, env, record);
        let formation = where_.formation(record);
        let applying = Applying {
            app,
            env,
            record,
            key: key.as_ref(),
            release_json: crate::formation::exec_payload(&view, &formation),
            formation: &formation,
        };
        Ok(target::apply(target, &applying, &ctx.options).await?)
    }

    /// Records `report` for `record`'s version as the reconciler, caused by the event `causation`
    /// when given, under `command` (an earlier try's) or a new command; returns the auto-rollback
    /// release the engine decided with it, if any, and the id of the failed-rollout event that
    /// caused it.
    ///
    /// On NATS, a log that does not answer (a leader election) is tried again under the same
    /// command id for the context's patience: a try that was stored without its ack is then
    /// found in the log (the engine records an outcome once), never stored twice. Past that, the
    /// outcome is kept for the env's next reconcile in this process, which records it instead of
    /// applying again.
    #[allow(clippy::too_many_arguments)]
    async fn record_outcome(
        &self,
        principal: &Principal,
        app: &AppName,
        env: &EnvName,
        record: &ReleaseRecord,
        report: &Report,
        causation: Option<Uuid>,
        command: Option<CommandContext>,
        ctx: &Context,
    ) -> Result<Option<(ReleaseRecord, Uuid)>> {
        let command_ctx = match command {
            Some(command) => command,
            None => {
                let mut command = CommandContext::new(RECONCILER.parse::<Actor>()?);
                command.causation_id = causation;
                command.principal = principal.clone();
                command
            }
        };
        let recording = Command::RecordRollout {
            env: env.clone(),
            version: record.release.version,
            outcome: report.outcome,
            detail: report.detail.clone(),
        };
        // The embedded store waits for its lock on its own; only a replicated log has elections.
        let patience = if self.is_nats() {
            ctx.record_patience
        } else {
            Duration::ZERO
        };
        let started = Instant::now();
        let mut log = None;
        let executed = loop {
            let tried = match &log {
                Some(log) => service::execute(log, app, &recording, &command_ctx)
                    .await
                    .map_err(Error::from),
                None => match self.open_log(OpenMode::Create).await {
                    Ok(opened) => {
                        log = Some(opened);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match tried {
                Ok(executed) => break executed,
                Err(e) if e.kind() == ErrorKind::Unavailable && started.elapsed() < patience => {
                    tracing::warn!(error = %e, %app, %env, version = %record.release.version,
                        "the log does not answer: recording the outcome again under the same command id");
                    tokio::time::sleep(RECORD_RETRY).await;
                }
                Err(e) if e.kind() == ErrorKind::Unavailable && self.is_nats() => {
                    ctx.unrecorded().insert(
                        (app.clone(), env.clone()),
                        Unrecorded {
                            version: record.release.version,
                            report: report.clone(),
                            command: command_ctx,
                        },
                    );
                    return Err(Error::unavailable(format!(
                        "{app}/{env} {} was applied but its outcome could not be recorded within {patience:?}: {e}",
                        record.release.version
                    )));
                }
                Err(e) => return Err(e),
            }
        };
        let rollback = executed
            .events
            .iter()
            .find_map(|r| match &r.envelope.event {
                Some(Event::ReleaseCreated { release, .. }) => {
                    Some((release.version, r.envelope.causation_id?))
                }
                _ => None,
            });
        Ok(rollback.and_then(|(v, cause)| {
            let record = executed.state.envs[env].release(v)?;
            Some((record.clone(), cause))
        }))
    }
}

fn outcome_name(report: &Report) -> &'static str {
    match report.outcome {
        Outcome::Applied if !report.changed => "unchanged",
        outcome => outcome.as_str(),
    }
}
