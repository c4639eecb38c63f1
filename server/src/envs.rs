//! One env of an app: releases, deploy, config, rollback, lock, diff, target, policy, apply.

use crate::auth::Authenticated;
use crate::command::{self, bad_query};
use crate::error::{ApiError, ErrorBody};
use crate::json::{Body, Query};
use crate::names::EnvPath;
use crate::{metrics, ok, Answer, Api};
use axum::extract::State;
use hoist_control::engine::{
    authorize, Action, Artifact, BuildId, Command, ConfigKey, ConfigValue, ImageRef,
    ReleaseVersion, Scope, Target, VarName,
};
use hoist_control::reconcile::{Context, Options};
use hoist_control::time::{parse_instant, parse_span};
use hoist_control::views::{self, ReleaseView};
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(releases))
        .routes(routes!(deploy))
        .routes(routes!(config_get, config_change))
        .routes(routes!(rollback))
        .routes(routes!(lock, unlock))
        .routes(routes!(diff))
        .routes(routes!(target))
        .routes(routes!(policy))
        .routes(routes!(apply))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReleasesQuery {
    /// At most this many, newest first.
    limit: Option<usize>,
    /// The history as of this time: RFC 3339 or a span back from now (`7d`).
    at: Option<String>,
}

/// `hoist releases`.
#[utoipa::path(get, path = "/v1/apps/{app}/envs/{env}/releases", tag = "envs",
    params(("app" = String, Path), ("env" = String, Path), ReleasesQuery),
    responses((status = 200, description = "releases, newest first, as `releases --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn releases(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    Query(query): Query<ReleasesQuery>,
) -> Answer {
    let at = query
        .at
        .map(|t| parse_instant("at", &t))
        .transpose()
        .map_err(bad_query)?;
    let limit = query.limit.unwrap_or(usize::MAX);
    let records = api
        .hoist
        .releases(&caller.principal, &app, &env, at, limit)
        .await?;
    let views: Vec<ReleaseView> = records
        .iter()
        .map(|r| ReleaseView::new(&app, &env, r))
        .collect();
    ok(views)
}

/// What to deploy: an image (registered as a build on the way) or a registered build.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// A digest-pinned image reference (`repo@sha256:…`).
    image: Option<String>,
    /// A registered build's id.
    build: Option<String>,
}

/// `hoist deploy`.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/deploy", tag = "envs", request_body = Deploy,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "the release created, as `deploy --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn deploy(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    Body(body): Body<Deploy>,
) -> Answer {
    let artifact = match (body.image, body.build) {
        (Some(image), None) => Artifact::Image(image.parse::<ImageRef>()?),
        (None, Some(build)) => Artifact::Build(build.parse::<BuildId>()?),
        _ => {
            return Err(ApiError::of(&hoist_control::Error::rejected(
                "deploy needs exactly one of image and build",
            )))
        }
    };
    command::release(
        &api,
        &caller,
        "deploy",
        &app,
        Command::Deploy { env, artifact },
    )
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConfigQuery {
    /// Secrets in clear (needs the admin role).
    #[serde(default)]
    reveal: bool,
}

/// `hoist config get`.
#[utoipa::path(get, path = "/v1/apps/{app}/envs/{env}/config", tag = "envs",
    params(("app" = String, Path), ("env" = String, Path), ConfigQuery),
    responses((status = 200, description = "`config get --json`: secrets `<redacted>` unless revealed"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn config_get(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    Query(query): Query<ConfigQuery>,
) -> Answer {
    let shown = api
        .hoist
        .config(&caller.principal, &app, &env, query.reveal)
        .await?;
    ok(shown.json())
}

/// A config change: keys set, or keys unset (one release each, as the CLI's `config set` and
/// `config unset`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigChange {
    /// Keys to set, with their values.
    #[serde(default)]
    set: BTreeMap<String, String>,
    /// Keys to remove.
    #[serde(default)]
    unset: Vec<String>,
    /// Seal the values of `set` as secrets.
    #[serde(default)]
    secret: bool,
}

/// `hoist config set` / `hoist config unset`.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/config", tag = "envs", request_body = ConfigChange,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "the release created, as `config set --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn config_change(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    Body(body): Body<ConfigChange>,
) -> Answer {
    let rejected = |m: &str| ApiError::of(&hoist_control::Error::rejected(m));
    match (body.set.is_empty(), body.unset.is_empty()) {
        (false, true) => {
            let mut parsed = Vec::with_capacity(body.set.len());
            for (key, value) in body.set {
                parsed.push((key.parse::<ConfigKey>()?, value));
            }
            let values = if body.secret {
                // Asked before sealing: a caller who may not change config seals nothing (and
                // so creates no key on a store without secrets).
                authorize(&caller.principal, &Action::Config, &Scope::env(&app, &env))
                    .map_err(|d| ApiError::of(&d.into()))?;
                api.hoist.seal(&app, parsed).await?
            } else {
                let plain = |(key, value)| (key, ConfigValue::Plain(value));
                parsed.into_iter().map(plain).collect()
            };
            let values = values.into_iter().collect();
            let command = Command::SetConfig { env, values };
            command::release(&api, &caller, "config_set", &app, command).await
        }
        (true, false) if !body.secret => {
            let keys = body
                .unset
                .iter()
                .map(|k| k.parse::<ConfigKey>())
                .collect::<Result<_, _>>()?;
            let command = Command::UnsetConfig { env, keys };
            command::release(&api, &caller, "config_unset", &app, command).await
        }
        (true, false) => Err(rejected("secret applies to set, not to unset")),
        (true, true) => Err(rejected("a config change needs set or unset")),
        (false, false) => Err(rejected(
            "set and unset are two releases: send them as two requests",
        )),
    }
}

/// A release version, written `12` or `"v12"`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Version {
    Number(u64),
    Text(String),
}

impl Version {
    fn parse(&self) -> Result<ReleaseVersion, ApiError> {
        let text = match self {
            Version::Number(n) => n.to_string(),
            Version::Text(t) => t.clone(),
        };
        Ok(text.parse()?)
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The release to copy [default: the one before the current one].
    to: Option<Version>,
}

/// `hoist rollback`.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/rollback", tag = "envs", request_body = Rollback,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "the release created, as `rollback --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn rollback(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    Body(body): Body<Rollback>,
) -> Answer {
    let to = body.to.as_ref().map(Version::parse).transpose()?;
    command::release(
        &api,
        &caller,
        "rollback",
        &app,
        Command::Rollback { env, to },
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Why: shown to whoever is refused.
    reason: String,
}

/// `hoist lock`.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/lock", tag = "envs", request_body = Lock,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`lock --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn lock(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    Body(body): Body<Lock>,
) -> Answer {
    let command = Command::Lock {
        env: env.clone(),
        reason: body.reason,
    };
    let state = command::execute(&api, &caller, "lock", &app, command)
        .await?
        .state;
    ok(views::lock_json(&app, &env, state.envs[&env].lock.as_ref()))
}

/// `hoist unlock`.
#[utoipa::path(delete, path = "/v1/apps/{app}/envs/{env}/lock", tag = "envs",
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`unlock --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn unlock(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
) -> Answer {
    let command = Command::Unlock { env: env.clone() };
    let state = command::execute(&api, &caller, "unlock", &app, command)
        .await?
        .state;
    ok(views::lock_json(&app, &env, state.envs[&env].lock.as_ref()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The older version (`3` or `v3`).
    from: String,
    /// The newer version.
    to: String,
}

/// `hoist diff`.
#[utoipa::path(get, path = "/v1/apps/{app}/envs/{env}/diff", tag = "envs",
    params(("app" = String, Path), ("env" = String, Path), DiffQuery),
    responses((status = 200, description = "`diff --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn diff(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    Query(query): Query<DiffQuery>,
) -> Answer {
    let version = |text: &str| {
        text.parse::<ReleaseVersion>()
            .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))
    };
    let (from, to) = (version(&query.from)?, version(&query.to)?);
    let diff = api
        .hoist
        .diff(&caller.principal, &app, &env, from, to)
        .await?;
    ok(diff.json())
}

/// Where an env's releases are applied: `envs target`'s choices.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetBody {
    /// A Kubernetes cluster from the server's kubeconfig.
    Kube {
        context: Option<String>,
        /// [default: the env's name]
        namespace: Option<String>,
    },
    /// A directory of YAML manifests on the server (an absolute path).
    Manifests { dir: String },
    /// A shell command the server runs with the release on stdin.
    Exec {
        command: String,
        #[serde(default)]
        pass_env: Vec<String>,
    },
    /// Recorded, not applied.
    None,
}

/// `hoist envs target`.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/target", tag = "envs", request_body = TargetBody,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`envs target --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn target(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    Body(body): Body<TargetBody>,
) -> Answer {
    let target = match body {
        TargetBody::Kube { context, namespace } => Target::Kube {
            context,
            namespace: namespace.unwrap_or_else(|| env.to_string()),
        },
        TargetBody::Manifests { dir } => {
            // The server's working directory is nobody's business: a path the caller names
            // must say where it is.
            if !std::path::Path::new(&dir).is_absolute() {
                return Err(ApiError::of(&hoist_control::Error::rejected(format!(
                    "manifests dir {dir:?} must be an absolute path on the server"
                ))));
            }
            Target::Manifests { dir }
        }
        TargetBody::Exec { command, pass_env } => Target::Exec {
            command,
            pass_env: pass_env
                .iter()
                .map(|n| n.parse::<VarName>())
                .collect::<Result<_, _>>()?,
        },
        TargetBody::None => Target::None,
    };
    let set = Command::SetTarget {
        env: env.clone(),
        target: target.clone(),
    };
    let changed = !command::execute(&api, &caller, "envs_target", &app, set)
        .await?
        .events
        .is_empty();
    ok(views::target_json(&app, &env, &target, changed))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Roll back to the last healthy release when a rollout fails.
    auto_rollback: bool,
}

/// `hoist envs policy`.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/policy", tag = "envs", request_body = Policy,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`envs policy --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn policy(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    Body(body): Body<Policy>,
) -> Answer {
    let on = body.auto_rollback;
    let set = Command::SetPolicy {
        env: env.clone(),
        auto_rollback: on,
    };
    let changed = !command::execute(&api, &caller, "envs_policy", &app, set)
        .await?
        .events
        .is_empty();
    ok(views::policy_json(&app, &env, on, changed))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Apply {
    /// Wait for the rollout to become healthy (kube).
    #[serde(default)]
    wait: bool,
    /// How long to wait for a rollout or an exec command [default: 5m].
    timeout: Option<String>,
    /// Say what would be applied; apply and record nothing.
    #[serde(default)]
    dry_run: bool,
}

/// `hoist apply`: a rollout that fails is still a 200 whose `outcome` is `failed` (it was
/// applied and recorded); the CLI exits 1 on it.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/apply", tag = "envs", request_body = Apply,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`apply --json` (or `apply --dry-run --json`)"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn apply(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    Body(body): Body<Apply>,
) -> Answer {
    let timeout = parse_span("timeout", body.timeout.as_deref().unwrap_or("5m"))
        .map_err(|e| ApiError::of(&e))?;
    if body.dry_run {
        let planned = api.hoist.plan(&caller.principal, &app, &env).await?;
        return ok(planned.json());
    }
    let context = Context::new(Options {
        wait: body.wait,
        timeout,
    });
    let result = api
        .hoist
        .reconcile(&caller.principal, &app, &env, &context)
        .await;
    metrics::command("apply", command::outcome(&result));
    let reconciled = result?;
    metrics::rollout(reconciled.outcome);
    ok(reconciled)
}
