//! Every target kind behind one entry: [`apply`] hands a release to the env's target and reports
//! what came of it; [`plan`] says what applying it would do (`apply --dry-run`), changing nothing.
//! The caller records the report through the engine; nothing here decides or appends.

use crate::cluster::{Change, Cluster, ClusterError};
use crate::render::{render, Desired, RenderError};
use crate::{exec, manifests, Report};
use hoist_engine::secrets::SecretKey;
use hoist_engine::{AppName, EnvName, Formation, Outcome, ReleaseRecord, Target};
use std::path::Path;
use std::time::Duration;

/// One release, as every target kind needs it.
pub struct Applying<'a> {
    pub app: &'a AppName,
    pub env: &'a EnvName,
    pub record: &'a ReleaseRecord,
    /// The key that opens the release's secret config, when it has any.
    pub key: Option<&'a SecretKey>,
    /// The release as CLI.md's JSON shape (secrets redacted): an exec hook's stdin.
    pub release_json: Vec<u8>,
    /// issue 14: what the release runs in the env (processes at the env's scale, domains,
    /// routing, release command).
    pub formation: &'a Formation,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Wait for rollouts (kube) up to `timeout`; exec commands always get `timeout`.
    pub wait: bool,
    pub timeout: Duration,
    /// issue 14: how long the release phase may take [default: [`RELEASE_TIMEOUT`]].
    pub release_timeout: Option<Duration>,
}

/// How long a release phase is awaited unless `--timeout` says otherwise (as on Heroku).
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why a release could not be handed to its target (nothing was applied, or nothing can be said
/// of it): not a report to record.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The env has no target, or what the release or target holds cannot be applied.
    #[error("{0}")]
    Rejected(String),
    /// The target could not be reached.
    #[error("{0}")]
    Unreachable(String),
}

impl From<ClusterError> for TargetError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Config(_) => TargetError::Rejected(e.to_string()),
            ClusterError::Unreachable { .. } => TargetError::Unreachable(e.to_string()),
        }
    }
}

fn rejected(e: impl std::fmt::Display) -> TargetError {
    TargetError::Rejected(e.to_string())
}

/// Hands the release to `target`. Failures that say something about the release are reports
/// (to record); failures to reach the target are errors (nothing to record).
pub async fn apply(
    target: &Target,
    release: &Applying<'_>,
    options: &Options,
) -> Result<Report, TargetError> {
    let Applying {
        app, env, record, ..
    } = release;
    let version = record.release.version;
    tracing::info!(%app, %env, %version, target = target.kind(), "applying");
    match target {
        Target::None => Err(TargetError::Rejected(format!("{app}/{env} has no target"))),
        Target::Exec { command, pass_env } => {
            let hook = exec::Hook {
                command,
                release_json: release.release_json.clone(),
                app: app.as_str(),
                env: env.as_str(),
                version: version.get(),
                image: record
                    .release
                    .build
                    .as_ref()
                    .map_or("", |b| b.image.as_str()),
                timeout: options.timeout,
                pass_env: pass_env.iter().map(|n| n.as_str()).collect(),
            };
            exec::run(hook).await.map_err(rejected)
        }
        Target::Manifests { dir, .. } => match desired(release, None)? {
            Err(no_image) => Ok(no_image),
            Ok(desired) => {
                manifests::write(Path::new(dir), app, env, version, &desired).map_err(rejected)
            }
        },
        Target::Kube {
            context, namespace, ..
        } => match desired(release, Some(namespace))? {
            Err(no_image) => Ok(no_image),
            Ok(desired) => {
                let cluster = Cluster::connect(context.as_deref(), namespace).await?;
                let wait = options.wait.then_some(options.timeout);
                let release_timeout = options.release_timeout.unwrap_or(RELEASE_TIMEOUT);
                Ok(cluster
                    .apply(app, version, &desired, wait, release_timeout)
                    .await?)
            }
        },
    }
}

/// What applying a release would do.
pub enum Plan {
    /// An exec target: the command that would run, handed the release's JSON.
    Exec { command: String },
    /// The rendered objects (the Secret's values redacted) and what applying them would change.
    /// `with_secret`: whether the target receives the Secret (a manifests directory never does).
    Objects {
        shown: Box<Desired>,
        changes: Vec<Change>,
        with_secret: bool,
    },
}

/// What [`apply`] would do with the release on `target`: nothing applied.
pub async fn plan(target: &Target, release: &Applying<'_>) -> Result<Plan, TargetError> {
    let Applying {
        app, env, record, ..
    } = release;
    let (desired, changes, with_secret) = match target {
        Target::None => return Err(TargetError::Rejected(format!("{app}/{env} has no target"))),
        Target::Exec { command, .. } => {
            return Ok(Plan::Exec {
                command: command.clone(),
            })
        }
        Target::Manifests { dir, .. } => {
            let desired = desired(release, None)?.map_err(|r| rejected(r.detail))?;
            let path = manifests::path(Path::new(dir), app, env);
            let content = manifests::content(app, env, record.release.version, &desired);
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
            (desired, vec![change], false)
        }
        Target::Kube {
            context, namespace, ..
        } => {
            let desired = desired(release, Some(namespace))?.map_err(|r| rejected(r.detail))?;
            let cluster = Cluster::connect(context.as_deref(), namespace).await?;
            let changes = cluster.plan(&desired).await?;
            (desired, changes, true)
        }
    };
    // Secret values stay out of a plan: only the Secret's name and keys are shown.
    Ok(Plan::Objects {
        shown: Box::new(desired.redacted()),
        changes,
        with_secret,
    })
}

/// The release's objects, or (inner `Err`) a failed report when it has no image to run.
fn desired(
    release: &Applying<'_>,
    namespace: Option<&str>,
) -> Result<Result<Desired, Report>, TargetError> {
    match render(
        release.app,
        namespace,
        &release.record.release,
        release.formation,
        release.key,
    ) {
        Ok(desired) => Ok(Ok(desired)),
        Err(e @ RenderError::NoImage { .. }) => Ok(Err(Report {
            outcome: Outcome::Failed,
            changed: false,
            detail: e.to_string(),
        })),
        Err(e) => Err(rejected(e)),
    }
}

// issue 16
/// What `target` holds that differs from the release ([`crate::drift`]); `None` for a target
/// whose drift cannot be known (an exec hook is a black box; no target holds nothing).
pub async fn drift(
    target: &Target,
    release: &Applying<'_>,
) -> Result<Option<Vec<hoist_engine::DriftedObject>>, TargetError> {
    let Applying {
        app, env, record, ..
    } = release;
    match target {
        Target::None | Target::Exec { .. } => Ok(None),
        Target::Manifests { dir, .. } => {
            let desired = desired(release, None)?.map_err(|r| rejected(r.detail))?;
            let content = manifests::content(app, env, record.release.version, &desired);
            Ok(Some(manifests::drift(Path::new(dir), app, env, &content)))
        }
        Target::Kube {
            context, namespace, ..
        } => {
            let desired = desired(release, Some(namespace))?.map_err(|r| rejected(r.detail))?;
            let cluster = Cluster::connect(context.as_deref(), namespace).await?;
            Ok(Some(cluster.drift(&desired).await?))
        }
    }
}

/// issue 14: the ready replicas of each process of `formation` on `target` (`ps`); `None` where
/// the target cannot say (not kube) or did not answer.
pub async fn ready(target: &Target, app: &AppName, formation: &Formation) -> Option<Vec<i32>> {
    let Target::Kube {
        context, namespace, ..
    } = target
    else {
        return None;
    };
    let names: Vec<String> = formation
        .processes
        .iter()
        .map(|p| crate::render::deployment_name(app, &p.process_type))
        .collect();
    // `ps` answers without the counts rather than wait on a cluster that does not answer.
    let asked = async {
        let cluster = Cluster::connect(context.as_deref(), namespace).await.ok()?;
        cluster.ready(&names).await.ok()
    };
    tokio::time::timeout(READY_PATIENCE, asked)
        .await
        .ok()
        .flatten()
}

/// How long `ps` waits for a cluster's ready counts.
const READY_PATIENCE: Duration = Duration::from_secs(5);
