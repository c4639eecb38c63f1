//! `hoist apply` and the one reconcile step `hoist serve` repeats: read the env's current release
//! and target, hand the release to its adapter, record what came of it through the engine (whose
//! rules decide an auto-rollback), and apply that rollback too when one was decided.
//!
//! The store is held only to read and to record, never while an adapter works (a rollout wait can
//! take minutes): other hoist processes on the same embedded store keep working meanwhile.

use crate::cli::ApplyArgs;
use crate::commands::{env_of, opening_key, Ctx};
use crate::error::CliError;
use crate::output::{escape, out, outln, print_json, ReleaseView};
use hoist_adapters::cluster::{Change, Cluster, ClusterError};
use hoist_adapters::render::{render, to_yaml, Desired, RenderError};
use hoist_adapters::{exec, manifests, Report};
use hoist_engine::service::{execute, CommandContext};
use hoist_engine::{
    Actor, AppName, Command as DomainCommand, ConfigValue, EnvName, Event, Outcome, ReleaseRecord,
    Target,
};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The actor of everything the reconciler records: outcomes and auto-rollbacks.
pub const RECONCILER: &str = "hoist";

/// Test hook for crash-safety tests: when set to a path, the reconciler creates that file right
/// after an adapter applied a release and then stops forever, before recording the outcome, so a
/// test can `kill -9` it at exactly that point.
const PAUSE_AFTER_APPLY: &str = "HOIST_TEST_PAUSE_AFTER_APPLY";

/// How long recording an outcome keeps trying, under one command id, while the log does not
/// answer (NATS): well past a JetStream leader election (measured 5–7 s on a 3-node cluster
/// after the leader's node is killed), so an election delays a record and never loses it.
pub const RECORD_PATIENCE: Duration = Duration::from_secs(30);
/// Test hook: a span (`2s`) replacing [`RECORD_PATIENCE`], so a test can outlast it quickly.
const RECORD_PATIENCE_OVERRIDE: &str = "HOIST_TEST_RECORD_PATIENCE";
/// The pause between two tries of recording an outcome.
const RECORD_RETRY: Duration = Duration::from_millis(500);

/// Outcomes applied but not recorded (the log did not answer within [`RECORD_PATIENCE`]), by
/// app and env, with the command they were being recorded under: the next reconcile of that env
/// in this process records the outcome under the same command id instead of applying the
/// release again (a hook need not be idempotent; the same id makes the record happen once).
static UNRECORDED: Mutex<Option<HashMap<(AppName, EnvName), Unrecorded>>> = Mutex::new(None);

struct Unrecorded {
    version: hoist_engine::ReleaseVersion,
    report: Report,
    command: CommandContext,
}

fn take_unrecorded(app: &AppName, env: &EnvName) -> Option<Unrecorded> {
    let mut unrecorded = UNRECORDED.lock().unwrap_or_else(|e| e.into_inner());
    unrecorded.as_mut()?.remove(&(app.clone(), env.clone()))
}

/// Whether this process applied `app`/`env`'s current release and still has its outcome to
/// record: `serve` then keeps the env (and its claim) until it is recorded.
pub fn outcome_unrecorded(app: &AppName, env: &EnvName) -> bool {
    let unrecorded = UNRECORDED.lock().unwrap_or_else(|e| e.into_inner());
    unrecorded
        .as_ref()
        .is_some_and(|all| all.contains_key(&(app.clone(), env.clone())))
}

/// Drops an unrecorded outcome the log shows is no longer needed (recorded after all, its ack
/// lost, or the env moved on).
pub fn forget_unrecorded(app: &AppName, env: &EnvName) {
    take_unrecorded(app, env);
}

fn keep_unrecorded(app: &AppName, env: &EnvName, unrecorded: Unrecorded) {
    let mut all = UNRECORDED.lock().unwrap_or_else(|e| e.into_inner());
    all.get_or_insert_with(HashMap::new)
        .insert((app.clone(), env.clone()), unrecorded);
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Wait for rollouts (kube) up to `timeout`; exec commands always get `timeout`.
    pub wait: bool,
    pub timeout: Duration,
}

/// `apply`'s JSON (CLI.md).
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

pub async fn apply(ctx: &Ctx, args: ApplyArgs) -> Result<(), CliError> {
    let (app, env) = args.target.parse()?;
    let options = Options {
        wait: args.wait,
        timeout: parse_span("--timeout", &args.timeout)?,
    };
    if args.dry_run {
        return dry_run(ctx, &app, &env).await;
    }
    let reconciled = reconcile(ctx, &app, &env, &options).await?;
    if ctx.global.json {
        print_json(&reconciled);
    } else {
        outln!(
            "{app}/{env} v{}: {} ({})",
            reconciled.version,
            reconciled.outcome,
            escape(&reconciled.detail.replace('\n', "; "))
        );
    }
    if reconciled.outcome == Outcome::Failed.as_str() {
        let recovered = reconciled
            .rolled_back_to
            .map(|v| format!("; auto-rollback to v{v}"))
            .unwrap_or_default();
        return Err(CliError::rejected(format!(
            "{app}/{env} v{}: the rollout failed{recovered}",
            reconciled.version
        )));
    }
    Ok(())
}

/// One reconcile of `env`: its current release applied and the outcome recorded; after a failure
/// that the policy answers with an auto-rollback, the rollback release applied and recorded too.
pub async fn reconcile(
    ctx: &Ctx,
    app: &AppName,
    env: &EnvName,
    options: &Options,
) -> Result<Reconciled, CliError> {
    let (target, record) = current(ctx, app, env).await?;
    let version = record.release.version;
    // An outcome this process could not record: recorded now, under its command id; applied
    // again only if the env moved on to another release meanwhile.
    let earlier = take_unrecorded(app, env);
    let (report, command) = match earlier {
        Some(earlier) if earlier.version == version => {
            tracing::info!(%app, %env, %version, "recording the outcome of an earlier apply");
            (earlier.report, Some(earlier.command))
        }
        _ => {
            let report = apply_release(app, env, &target, &record, options).await?;
            (report, None)
        }
    };
    if let Some(marker) = std::env::var_os(PAUSE_AFTER_APPLY) {
        std::fs::write(&marker, version.to_string()).expect("test hook: marker file writable");
        tracing::warn!(%app, %env, %version, "{PAUSE_AFTER_APPLY}: paused after apply, before recording");
        std::future::pending::<()>().await;
    }
    let rollback = record_outcome(ctx, app, env, &record, &report, None, command).await?;
    let mut reconciled = Reconciled {
        app: app.clone(),
        env: env.clone(),
        version: version.get(),
        outcome: outcome_name(&report),
        detail: report.detail,
        rolled_back_to: None,
    };
    if let Some((rollback, failed_rollout)) = rollback {
        let to = rollback.release.rollback_to.map(|v| v.get());
        let second = apply_release(app, env, &target, &rollback, options).await?;
        // A failure of the rollback is recorded, and the engine decides no second rollback.
        // Its outcome is part of the auto-rollback, so the failed rollout is its cause too.
        record_outcome(
            ctx,
            app,
            env,
            &rollback,
            &second,
            Some(failed_rollout),
            None,
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

fn outcome_name(report: &Report) -> &'static str {
    match report.outcome {
        Outcome::Applied if !report.changed => "unchanged",
        outcome => outcome.as_str(),
    }
}

/// The env's target and current release, read with the store held only for the read.
async fn current(
    ctx: &Ctx,
    app: &AppName,
    env: &EnvName,
) -> Result<(Target, ReleaseRecord), CliError> {
    let state = ctx.existing_app(app, None).await?;
    let env_state = env_of(app, &state, env)?;
    if env_state.target == Target::None {
        return Err(CliError::rejected(format!(
            "{app}/{env} has no target: set one with `hoist envs target`"
        )));
    }
    let record = env_state
        .current()
        .ok_or_else(|| CliError::rejected(format!("{app}/{env} has no release to apply yet")))?;
    Ok((env_state.target.clone(), record.clone()))
}

/// Records `report` for `record`'s version as the reconciler, caused by the event `causation`
/// when given, under `command` (an earlier try's) or a new command; returns the auto-rollback
/// release the engine decided with it, if any, and the id of the failed-rollout event that
/// caused it.
///
/// On NATS, a log that does not answer (a leader election) is tried again under the same
/// command id for [`RECORD_PATIENCE`]: a try that was stored without its ack is then found in
/// the log (the engine records an outcome once), never stored twice. Past that, the outcome is
/// kept for the env's next reconcile in this process, which records it instead of applying again.
async fn record_outcome(
    ctx: &Ctx,
    app: &AppName,
    env: &EnvName,
    record: &ReleaseRecord,
    report: &Report,
    causation: Option<Uuid>,
    command: Option<CommandContext>,
) -> Result<Option<(ReleaseRecord, Uuid)>, CliError> {
    let command_ctx = match command {
        Some(command) => command,
        None => {
            let mut command = CommandContext::new(RECONCILER.parse::<Actor>()?);
            command.causation_id = causation;
            command.principal = ctx.principal();
            command
        }
    };
    let recording = DomainCommand::RecordRollout {
        env: env.clone(),
        version: record.release.version,
        outcome: report.outcome,
        detail: report.detail.clone(),
    };
    // The embedded store waits for its lock on its own; only a replicated log has elections.
    let patience = if ctx.global.nats.is_some() {
        std::env::var(RECORD_PATIENCE_OVERRIDE)
            .ok()
            .and_then(|span| parse_span(RECORD_PATIENCE_OVERRIDE, &span).ok())
            .unwrap_or(RECORD_PATIENCE)
    } else {
        Duration::ZERO
    };
    let started = Instant::now();
    let mut store = None;
    let executed = loop {
        let tried = match &store {
            Some(store) => execute(store, app, &recording, &command_ctx)
                .await
                .map_err(CliError::from),
            None => match ctx.open().await {
                Ok(opened) => {
                    store = Some(opened);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        match tried {
            Ok(executed) => break executed,
            Err(CliError::Unavailable(why)) if started.elapsed() < patience => {
                tracing::warn!(error = %why, %app, %env, version = %record.release.version,
                    "the log does not answer: recording the outcome again under the same command id");
                tokio::time::sleep(RECORD_RETRY).await;
            }
            Err(CliError::Unavailable(why)) if ctx.global.nats.is_some() => {
                keep_unrecorded(
                    app,
                    env,
                    Unrecorded {
                        version: record.release.version,
                        report: report.clone(),
                        command: command_ctx,
                    },
                );
                return Err(CliError::Unavailable(format!(
                    "{app}/{env} {} was applied but its outcome could not be recorded within {patience:?}: {why}",
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

/// Hands one release to the env's target. Adapter failures that say something about the release
/// are reports (recorded); failures to reach the target are errors (nothing is recorded).
async fn apply_release(
    app: &AppName,
    env: &EnvName,
    target: &Target,
    record: &ReleaseRecord,
    options: &Options,
) -> Result<Report, CliError> {
    let release = &record.release;
    tracing::info!(%app, %env, version = %release.version, target = target.kind(), "applying");
    match target {
        Target::None => Err(CliError::rejected(format!("{app}/{env} has no target"))),
        Target::Exec { command, pass_env } => {
            let view = ReleaseView::new(app, env, record);
            let hook = exec::Hook {
                command,
                release_json: serde_json::to_vec(&view).expect("views serialize"),
                app: app.as_str(),
                env: env.as_str(),
                version: release.version.get(),
                image: release.build.as_ref().map_or("", |b| b.image.as_str()),
                timeout: options.timeout,
                pass_env: pass_env.iter().map(|n| n.as_str()).collect(),
            };
            exec::run(hook).await.map_err(CliError::rejected)
        }
        Target::Manifests { dir } => match desired(app, None, record)? {
            Err(no_image) => Ok(no_image),
            Ok(desired) => manifests::write(
                std::path::Path::new(dir),
                app,
                env,
                release.version,
                &desired,
            )
            .map_err(CliError::rejected),
        },
        Target::Kube { context, namespace } => match desired(app, Some(namespace), record)? {
            Err(no_image) => Ok(no_image),
            Ok(desired) => {
                let cluster = Cluster::connect(context.as_deref(), namespace)
                    .await
                    .map_err(cluster_error)?;
                cluster
                    .apply(
                        app,
                        release.version,
                        &desired,
                        options.wait.then_some(options.timeout),
                    )
                    .await
                    .map_err(cluster_error)
            }
        },
    }
}

fn cluster_error(e: ClusterError) -> CliError {
    match e {
        ClusterError::Config(_) => CliError::rejected(e),
        ClusterError::Unreachable { .. } => CliError::Unavailable(e.to_string()),
    }
}

/// The release's objects, or (inner `Err`) a failed report when it has no image to run.
fn desired(
    app: &AppName,
    namespace: Option<&str>,
    record: &ReleaseRecord,
) -> Result<Result<Desired, Report>, CliError> {
    let release = &record.release;
    let sealed = release
        .config
        .values()
        .any(|v| matches!(v, ConfigValue::Sealed(_)));
    let key = if sealed {
        Some(opening_key(&release.config)?)
    } else {
        None
    };
    match render(app, namespace, release, key.as_ref()) {
        Ok(desired) => Ok(Ok(desired)),
        Err(e @ RenderError::NoImage { .. }) => Ok(Err(Report {
            outcome: Outcome::Failed,
            changed: false,
            detail: e.to_string(),
        })),
        Err(e) => Err(CliError::rejected(e)),
    }
}

/// `apply --dry-run`: the rendered objects and what applying them would change; nothing applied,
/// nothing recorded.
async fn dry_run(ctx: &Ctx, app: &AppName, env: &EnvName) -> Result<(), CliError> {
    let (target, record) = current(ctx, app, env).await?;
    let version = record.release.version;
    let (objects, changes): (Option<Desired>, Vec<Change>) = match &target {
        Target::None => unreachable!("`current` rejects an env without a target"),
        Target::Exec { command, .. } => {
            let view = ReleaseView::new(app, env, &record);
            if ctx.global.json {
                print_json(&serde_json::json!({
                    "app": app, "env": env, "version": version.get(), "target": target,
                    "stdin": view, "changes": [{"kind": "exec", "name": command, "action": "run"}],
                }));
            } else {
                outln!(
                    "would run `sh -c {}` with HOIST_VERSION={} and on stdin:\n{}",
                    escape(command),
                    version.get(),
                    serde_json::to_string_pretty(&view).expect("views serialize")
                );
            }
            return Ok(());
        }
        Target::Manifests { dir } => {
            let desired = desired(app, None, &record)?.map_err(|r| CliError::rejected(r.detail))?;
            let path = manifests::path(std::path::Path::new(dir), app, env);
            let content = manifests::content(app, env, version, &desired);
            let action = match std::fs::read(&path) {
                Ok(existing) if existing == content.as_bytes() => "unchanged",
                Ok(_) => "update",
                Err(_) => "create",
            };
            let change = Change {
                kind: "File",
                name: path.display().to_string(),
                action,
            };
            (Some(desired), vec![change])
        }
        Target::Kube { context, namespace } => {
            let desired = desired(app, Some(namespace), &record)?
                .map_err(|r| CliError::rejected(r.detail))?;
            let cluster = Cluster::connect(context.as_deref(), namespace)
                .await
                .map_err(cluster_error)?;
            let changes = cluster.plan(&desired).await.map_err(cluster_error)?;
            (Some(desired), changes)
        }
    };
    let desired = objects.expect("rendered above");
    // Secret values stay out of dry-run output: only the Secret's name and keys are shown.
    let shown = desired.redacted();
    if ctx.global.json {
        let mut objects = vec![serde_json::to_value(&shown.config_map).expect("serializes")];
        objects.extend(
            shown
                .secret
                .as_ref()
                .map(|s| serde_json::to_value(s).expect("serializes")),
        );
        objects.push(serde_json::to_value(&shown.deployment).expect("serializes"));
        print_json(&serde_json::json!({
            "app": app, "env": env, "version": version.get(), "target": target,
            "objects": objects, "changes": changes,
        }));
    } else {
        // A manifests directory never receives the Secret: show what would really be written.
        out!("{}", to_yaml(&shown, matches!(target, Target::Kube { .. })));
        outln!();
        for change in &changes {
            outln!("would {} {} {}", change.action, change.kind, change.name)
        }
    }
    Ok(())
}

/// A span of more than zero, like `500ms`, `90s`, `5m`, `1h` (see [`crate::span`]).
pub fn parse_span(flag: &str, text: &str) -> Result<Duration, CliError> {
    crate::span::parse(text)
        .filter(|span| !span.is_zero())
        .ok_or_else(|| {
            CliError::rejected(format!(
                "invalid {flag} {text:?}: must be a span like 500ms, 90s, 5m, 1h"
            ))
        })
}
