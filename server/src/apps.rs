//! Apps: list, create, show, status (now or as of a time), builds, promotion.

use crate::auth::Authenticated;
use crate::command::{bad_query, respond, Shown};
use crate::error::ErrorBody;
use crate::json::{Body, Query};
use crate::names::AppPath;
use crate::{Answer, Api};
use axum::extract::State;
use hoist_control::engine::{AppName, EnvName};
use hoist_control::time::parse_instant;
use hoist_control::Request;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(list_apps, create_app))
        .routes(routes!(show_app))
        .routes(routes!(status))
        .routes(routes!(register_build))
        .routes(routes!(promote))
}

/// `hoist apps list`: the apps the caller may view.
#[utoipa::path(get, path = "/v1/apps", tag = "apps",
    responses((status = 200, description = "every app the caller may view, as `apps list --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn list_apps(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    shown: Shown,
) -> Answer {
    respond(&api, &caller, shown, Request::AppsList).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// The app's name, a DNS label.
    app: String,
    /// Environments in promotion order [default: staging, production].
    #[serde(default)]
    envs: Option<Vec<String>>,
}

/// `hoist apps create`.
#[utoipa::path(post, path = "/v1/apps", tag = "apps", request_body = CreateApp,
    responses((status = 201, description = "the new app, as `apps create --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn create_app(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    shown: Shown,
    Body(body): Body<CreateApp>,
) -> Answer {
    let app: AppName = body.app.parse()?;
    let envs = body
        .envs
        .unwrap_or_else(|| vec!["staging".into(), "production".into()]);
    let envs = envs
        .iter()
        .map(|e| e.parse::<EnvName>())
        .collect::<Result<_, _>>()?;
    let request = Request::AppsCreate { app, envs };
    respond(&api, &caller, shown, request).await
}

/// `hoist apps show`.
#[utoipa::path(get, path = "/v1/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "the app")),
    responses((status = 200, description = "the app, as `apps show --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn show_app(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    AppPath(app): AppPath,
    shown: Shown,
) -> Answer {
    respond(&api, &caller, shown, Request::AppsShow { app }).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AtQuery {
    /// The answer as of this time: RFC 3339 or a span back from now (`7d`, `12h`).
    at: Option<String>,
}

/// `hoist status [--at T]`.
#[utoipa::path(get, path = "/v1/apps/{app}/status", tag = "apps",
    params(("app" = String, Path, description = "the app"), AtQuery),
    responses((status = 200, description = "`status --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn status(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    AppPath(app): AppPath,
    Query(query): Query<AtQuery>,
    shown: Shown,
) -> Answer {
    let at = query
        .at
        .map(|t| parse_instant("at", &t))
        .transpose()
        .map_err(bad_query)?;
    respond(&api, &caller, shown, Request::Status { app, at }).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBuild {
    /// A digest-pinned image reference (`repo@sha256:…`).
    image: String,
    commit: Option<String>,
    note: Option<String>,
    /// issue 14: process types and their commands (`{"web": "bin/server"}`) [default: one
    /// `web` with the image's entrypoint].
    #[serde(default)]
    processes: std::collections::BTreeMap<String, String>,
    /// issue 14: the release-phase command.
    release_command: Option<String>,
}

/// `hoist builds register`.
#[utoipa::path(post, path = "/v1/apps/{app}/builds", tag = "apps", request_body = RegisterBuild,
    params(("app" = String, Path, description = "the app")),
    responses((status = 200, description = "`builds register --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn register_build(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    AppPath(app): AppPath,
    shown: Shown,
    Body(body): Body<RegisterBuild>,
) -> Answer {
    let request = Request::BuildsRegister {
        app,
        image: body.image.parse()?,
        commit: body.commit,
        note: body.note,
        processes: body
            .processes
            .into_iter()
            .map(|(t, c)| Ok((t.parse()?, c)))
            .collect::<Result<_, hoist_control::engine::ValidationError>>()?,
        release_command: body.release_command,
    };
    respond(&api, &caller, shown, request).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    /// The env whose current build is promoted.
    from: String,
    /// The target env [default: the next env in the pipeline].
    to: Option<String>,
    /// Promote into a pinned env too (issue 16).
    #[serde(default)]
    force: bool,
}

/// `hoist promote`.
#[utoipa::path(post, path = "/v1/apps/{app}/promote", tag = "apps", request_body = Promote,
    params(("app" = String, Path, description = "the app")),
    responses((status = 200, description = "the release created, as `promote --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn promote(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    AppPath(app): AppPath,
    shown: Shown,
    Body(body): Body<Promote>,
) -> Answer {
    let from: EnvName = body.from.parse()?;
    let to = body.to.map(|t| t.parse::<EnvName>()).transpose()?;
    let request = if body.force {
        Request::PromoteForced { app, from, to }
    } else {
        Request::Promote { app, from, to }
    };
    respond(&api, &caller, shown, request).await
}
