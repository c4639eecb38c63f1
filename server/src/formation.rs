//! Issue 14's routes: an env's processes (`ps`, `ps scale`) and domains. Each turns its path and
//! body into the `control::Request` the CLI builds, and answers it with `respond`.

use crate::auth::Authenticated;
use crate::command::{respond, Shown};
use crate::error::{ApiError, ErrorBody};
use crate::json::Body;
use crate::names::EnvPath;
use crate::{Answer, Api};
use axum::extract::State;
use hoist_control::engine::Hostname;
use hoist_control::Request;
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(ps))
        .routes(routes!(scale))
        .routes(routes!(domains_list, domains_add))
        .routes(routes!(domains_remove))
}

/// `hoist ps`.
#[utoipa::path(get, path = "/v1/apps/{app}/envs/{env}/ps", tag = "envs",
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`ps --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn ps(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    shown: Shown,
) -> Answer {
    respond(&api, &caller, shown, Request::Ps { app, env }).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Replicas per process type: `{"web": 3, "worker": 1}`.
    #[schema(value_type = BTreeMap<String, u32>)]
    replicas: BTreeMap<String, serde_json::Value>,
}

/// `hoist ps scale`: an event, not a release.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/ps/scale", tag = "envs", request_body = Scale,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`ps scale --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn scale(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    shown: Shown,
    Body(body): Body<Scale>,
) -> Answer {
    let replicas = body
        .replicas
        .iter()
        // A count that is not a whole number is refused by the same rule as on the CLI.
        .map(|(t, n)| hoist_control::formation::scale_entry(t, &n.to_string()))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::of(&e))?;
    respond(
        &api,
        &caller,
        shown,
        Request::PsScale { app, env, replicas },
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// A host name (`api.example.com`, `*.example.com`).
    host: String,
}

/// `hoist domains list`.
#[utoipa::path(get, path = "/v1/apps/{app}/envs/{env}/domains", tag = "envs",
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`domains list --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn domains_list(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    shown: Shown,
) -> Answer {
    respond(&api, &caller, shown, Request::DomainsList { app, env }).await
}

/// `hoist domains add`.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/domains", tag = "envs", request_body = Domain,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`domains add --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn domains_add(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    shown: Shown,
    Body(body): Body<Domain>,
) -> Answer {
    let host = body.host.parse::<Hostname>()?;
    respond(&api, &caller, shown, Request::DomainsAdd { app, env, host }).await
}

/// `hoist domains remove`.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/domains/remove", tag = "envs", request_body = Domain,
    params(("app" = String, Path), ("env" = String, Path)),
    responses((status = 200, description = "`domains remove --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn domains_remove(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    EnvPath(app, env): EnvPath,
    shown: Shown,
    Body(body): Body<Domain>,
) -> Answer {
    let host = body.host.parse::<Hostname>()?;
    respond(
        &api,
        &caller,
        shown,
        Request::DomainsRemove { app, env, host },
    )
    .await
}
