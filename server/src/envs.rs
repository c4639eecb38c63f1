//! One env of an app: releases, deploy, config, rollback, lock, diff, target, policy, apply.

use crate::auth::Authenticated;
use crate::command::{bad_query, respond, Shown};
use crate::error::{ApiError, ErrorBody};
use crate::json::{Body, Query};
use crate::names::EnvPath;
use crate::{Answer, Api};
use axum::extract::State;
use hoist_control::engine::{
    Artifact, BuildId, ConfigKey, ImageRef, PolicyChanges, ReleaseVersion, Routing, Target, VarName,
};
use hoist_control::reconcile::Options;
use hoist_control::time::{parse_instant, parse_span};
use hoist_control::Request;
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
        // issue 16
        .routes(routes!(pin, unpin))
        .routes(routes!(drift))
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
    shown: Shown,
) -> Answer {
    let at = query
        .at
        .map(|t| parse_instant("at", &t))
        .transpose()
        .map_err(bad_query)?;
    let request = Request::Releases {
        app,
        env,
        at,
        limit: query.limit,
    };
    respond(&api, &caller, shown, request).await
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
    shown: Shown,
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
    let request = Request::Deploy { app, env, artifact };
    respond(&api, &caller, shown, request).await
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
    shown: Shown,
) -> Answer {
    let request = Request::ConfigGet {
        app,
        env,
        reveal: query.reveal,
    };
    respond(&api, &caller, shown, request).await
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
    shown: Shown,
    Body(body): Body<ConfigChange>,
) -> Answer {
    let rejected = |m: &str| ApiError::of(&hoist_control::Error::rejected(m));
    let request = match (body.set.is_empty(), body.unset.is_empty()) {
        (false, true) => {
            let mut values = Vec::with_capacity(body.set.len());
            for (key, value) in body.set {
                values.push((key.parse::<ConfigKey>()?, value));
            }
            Request::ConfigSet {
                app,
                env,
                values,
                secret: body.secret,
            }
        }
        (true, false) if !body.secret => {
            let keys = body
                .unset
                .iter()
                .map(|k| k.parse::<ConfigKey>())
                .collect::<Result<_, _>>()?;
            Request::ConfigUnset { app, env, keys }
        }
        (true, false) => return Err(rejected("secret applies to set, not to unset")),
        (true, true) => return Err(rejected("a config change needs set or unset")),
        (false, false) => {
            return Err(rejected(
                "set and unset are two releases: send them as two requests",
            ))
        }
    };
    respond(&api, &caller, shown, request).await
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
    shown: Shown,
    Body(body): Body<Rollback>,
) -> Answer {
    // issue 16: `"to": "last-healthy"`.
    if matches!(&body.to, Some(Version::Text(t)) if t == hoist_control::api::LAST_HEALTHY) {
        let request = Request::RollbackLastHealthy { app, env };
        return respond(&api, &caller, shown, request).await;
    }
    let to = body.to.as_ref().map(Version::parse).transpose()?;
    let request = Request::Rollback { app, env, to };
    respond(&api, &caller, shown, request).await
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
    shown: Shown,
    Body(body): Body<Lock>,
) -> Answer {
    let request = Request::Lock {
        app,
        env,
        reason: body.reason,
    };
    respond(&api, &caller, shown, request).await
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
    shown: Shown,
) -> Answer {
    respond(&api, &caller, shown, Request::Unlock { app, env }).await
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
    shown: Shown,
) -> Answer {
    let version = |text: &str| {
        text.parse::<ReleaseVersion>()
            .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))
    };
    let (from, to) = (version(&query.from)?, version(&query.to)?);
    let request = Request::Diff { app, env, from, to };
    respond(&api, &caller, shown, request).await
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
        /// issue 14: `{"ingress_class", "tls_secret", "health_path"}`, each optional.
        #[serde(default)]
        #[schema(value_type = Object)]
        routing: Routing,
    },
    /// A directory of YAML manifests on the server (an absolute path).
    Manifests {
        dir: String,
        /// issue 14: as for `kube`.
        #[serde(default)]
        #[schema(value_type = Object)]
        routing: Routing,
    },
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
    shown: Shown,
    Body(body): Body<TargetBody>,
) -> Answer {
    let target = match body {
        TargetBody::Kube {
            context,
            namespace,
            routing,
        } => Target::Kube {
            context,
            namespace: namespace.unwrap_or_else(|| env.to_string()),
            routing,
        },
        TargetBody::Manifests { dir, routing } => {
            // The server's working directory is nobody's business: a path the caller names
            // must say where it is.
            if !std::path::Path::new(&dir).is_absolute() {
                return Err(ApiError::of(&hoist_control::Error::rejected(format!(
                    "manifests dir {dir:?} must be an absolute path on the server"
                ))));
            }
            Target::Manifests { dir, routing }
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
    let request = Request::EnvsTarget { app, env, target };
    respond(&api, &caller, shown, request).await
}

/// `envs policy`: the settings given change, the others stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Roll back to the last healthy release when a rollout fails.
    auto_rollback: Option<bool>,
    /// Promote into the env the previous env's release once healthy for `after` (issue 16).
    auto_promote: Option<bool>,
    /// How long the previous env's release must have been healthy: `90s`, `10m`.
    after: Option<String>,
    /// The command verifying a release before its auto-promotion; `null` drops it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    verify: Option<Option<String>>,
    /// Re-apply the release when its target drifts.
    self_heal: Option<bool>,
}

/// A field that is present (`Some`, maybe `null`) or absent (`None`, by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
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
    shown: Shown,
    Body(body): Body<Policy>,
) -> Answer {
    let after_secs = body
        .after
        .map(|a| parse_span("after", &a).map(|span| span.as_secs()))
        .transpose()
        .map_err(|e| ApiError::of(&e))?;
    let changes = PolicyChanges {
        auto_rollback: body.auto_rollback,
        auto_promote: body.auto_promote,
        after_secs,
        verify: body.verify,
        self_heal: body.self_heal,
    };
    let request = Request::EnvsPolicy { app, env, changes };
    respond(&api, &caller, shown, request).await
}

// issue 16
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// Why: shown by `status` and to whoever is refused.
    reason: Option<String>,
}

/// `hoist pin`.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/pin", tag = "envs", request_body = Pin,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`pin --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn pin(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    shown: Shown,
    Body(body): Body<Pin>,
) -> Answer {
    let request = Request::Pin {
        app,
        env,
        reason: body.reason,
    };
    respond(&api, &caller, shown, request).await
}

/// `hoist unpin`.
#[utoipa::path(delete, path = "/v1/apps/{app}/envs/{env}/pin", tag = "envs",
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`unpin --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn unpin(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    shown: Shown,
) -> Answer {
    respond(&api, &caller, shown, Request::Unpin { app, env }).await
}

/// `hoist drift`: a POST, as it records a drift it finds (when the caller may apply there).
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/drift", tag = "envs",
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`drift --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn drift(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    shown: Shown,
) -> Answer {
    respond(&api, &caller, shown, Request::Drift { app, env }).await
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
/// applied and recorded), with the headers `Hoist-Failure` and `Hoist-Failure-Message`; the
/// CLI exits 1 on it.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/apply", tag = "envs", request_body = Apply,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`apply --json` (or `apply --dry-run --json`)"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn apply(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    shown: Shown,
    Body(body): Body<Apply>,
) -> Answer {
    let timeout = parse_span("timeout", body.timeout.as_deref().unwrap_or("5m"))
        .map_err(|e| ApiError::of(&e))?;
    let request = Request::Apply {
        app,
        env,
        options: Options {
            wait: body.wait,
            timeout,
            // issue 14: a timeout given bounds the release phase too.
            release_timeout: body.timeout.is_some().then_some(timeout),
        },
        dry_run: body.dry_run,
    };
    respond(&api, &caller, shown, request).await
}
