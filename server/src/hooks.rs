//! `hoist hooks …` over HTTP (issue 11): each route a `Request` answered by `Hoist::answer` as
//! the caller (admin on the hook's scope). Routes: `GET`/`POST /v1/hooks`,
//! `DELETE /v1/hooks/{name}`, `POST /v1/hooks/{name}/test`, `GET /v1/hooks/{name}/deliveries`,
//! `POST /v1/hooks/{name}/deliveries/{id}/redeliver`, `POST /v1/hooks/{name}/rotate`. Secrets travel in the body (`secret`: a
//! `whsec_` secret or a Matrix token; a Slack hook's is its `url`), never in a query.

use crate::auth::Authenticated;
use crate::command::{respond, Shown};
use crate::error::{ApiError, ErrorBody};
use crate::json::{Body, Query};
use crate::{Answer, Api};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use hoist_control::engine::hooks::{HookFormat, HookKind};
use hoist_control::engine::{AppName, EnvName, HookName};
use hoist_control::hooks::HookAdd;
use hoist_control::{Error, Request};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(hooks_add, hooks_list))
        .routes(routes!(hooks_remove))
        .routes(routes!(hooks_test))
        .routes(routes!(hooks_deliveries))
        .routes(routes!(hooks_redeliver))
        .routes(routes!(hooks_rotate))
}

fn name(text: &str) -> Result<HookName, ApiError> {
    Ok(text.parse::<HookName>()?)
}

fn path<T>(path: Result<Path<T>, axum::extract::rejection::PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookAddBody {
    name: String,
    url: String,
    /// `standard-webhooks` (default), `cloudevents`, `slack` or `matrix`.
    format: Option<String>,
    app: Option<String>,
    env: Option<String>,
    /// Comma-separated kinds [default: `release,rollout,lock`].
    events: Option<String>,
    /// A `whsec_` signing secret, or a Matrix access token [default: a new signing secret].
    secret: Option<String>,
    /// Matrix: the room id.
    room: Option<String>,
}

/// `hoist hooks add`: the answer holds the new signing secret, once.
#[utoipa::path(post, path = "/v1/hooks", tag = "hooks", request_body = HookAddBody,
    responses((status = 201, description = "`hooks add --json`: `{\"name\", \"url\", \"format\", \"secret\"}`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn hooks_add(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    shown: Shown,
    Body(body): Body<HookAddBody>,
) -> Answer {
    let format = body
        .format
        .as_deref()
        .unwrap_or("standard-webhooks")
        .parse::<HookFormat>()
        .map_err(Error::rejected)?;
    let kinds = HookKind::parse_list(body.events.as_deref().unwrap_or("release,rollout,lock"))
        .map_err(Error::rejected)?;
    let add = HookAdd {
        name: name(&body.name)?,
        url: body.url,
        format,
        app: body.app.map(|a| a.parse::<AppName>()).transpose()?,
        env: body.env.map(|e| e.parse::<EnvName>()).transpose()?,
        kinds,
        secret: body.secret.map(|s| s.trim().to_string()),
        room: body.room,
    };
    let mut response = respond(&api, &caller, shown, Request::HooksAdd { add }).await?;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `hoist hooks list`: the hooks the caller administers; never a secret.
#[utoipa::path(get, path = "/v1/hooks", tag = "hooks",
    responses((status = 200, description = "`hooks list --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn hooks_list(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    shown: Shown,
) -> Answer {
    respond(&api, &caller, shown, Request::HooksList).await
}

/// `hoist hooks remove`.
#[utoipa::path(delete, path = "/v1/hooks/{name}", tag = "hooks",
    params(("name" = String, Path, description = "the hook's name")),
    responses((status = 200, description = "`hooks remove --json`: the hook removed"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn hooks_remove(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    hook: Result<Path<String>, axum::extract::rejection::PathRejection>,
    shown: Shown,
) -> Answer {
    let request = Request::HooksRemove {
        name: name(&path(hook)?)?,
    };
    respond(&api, &caller, shown, request).await
}

/// `hoist hooks test`: a ping sent now by the server.
#[utoipa::path(post, path = "/v1/hooks/{name}/test", tag = "hooks",
    params(("name" = String, Path, description = "the hook's name")),
    responses((status = 200, description = "`hooks test --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn hooks_test(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    hook: Result<Path<String>, axum::extract::rejection::PathRejection>,
    shown: Shown,
) -> Answer {
    let request = Request::HooksTest {
        name: name(&path(hook)?)?,
    };
    respond(&api, &caller, shown, request).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// At most this many, newest first.
    limit: Option<usize>,
}

/// `hoist hooks deliveries`.
#[utoipa::path(get, path = "/v1/hooks/{name}/deliveries", tag = "hooks",
    params(("name" = String, Path, description = "the hook's name"), DeliveriesQuery),
    responses((status = 200, description = "`hooks deliveries --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn hooks_deliveries(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    hook: Result<Path<String>, axum::extract::rejection::PathRejection>,
    Query(query): Query<DeliveriesQuery>,
    shown: Shown,
) -> Answer {
    let request = Request::HooksDeliveries {
        name: name(&path(hook)?)?,
        limit: query.limit,
    };
    respond(&api, &caller, shown, request).await
}

/// `hoist hooks redeliver`.
#[utoipa::path(post, path = "/v1/hooks/{name}/deliveries/{id}/redeliver", tag = "hooks",
    params(("name" = String, Path, description = "the hook's name"),
        ("id" = String, Path, description = "the delivery's id")),
    responses((status = 200, description = "`hooks redeliver --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn hooks_redeliver(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    ids: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    shown: Shown,
) -> Answer {
    let (hook, delivery) = path(ids)?;
    let delivery = delivery.parse().map_err(|_| {
        Error::rejected(format!(
            "invalid DELIVERY_ID {delivery:?}: must be a delivery's id as `hoist hooks deliveries` shows it"
        ))
    })?;
    let request = Request::HooksRedeliver {
        name: name(&hook)?,
        delivery,
    };
    respond(&api, &caller, shown, request).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// The new `whsec_` secret [default: a new one, in the answer once].
    secret: Option<String>,
    /// How long the previous secret keeps signing too [default: 86400].
    keep_seconds: Option<u64>,
}

/// `hoist hooks rotate`: the answer may hold the new secret, once.
#[utoipa::path(post, path = "/v1/hooks/{name}/rotate", tag = "hooks", request_body = RotateBody,
    params(("name" = String, Path, description = "the hook's name")),
    responses((status = 200, description = "`hooks rotate --json`: `{\"name\", \"secret\", \"previous_valid_until\"}`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn hooks_rotate(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    hook: Result<Path<String>, axum::extract::rejection::PathRejection>,
    shown: Shown,
    Body(body): Body<RotateBody>,
) -> Answer {
    let request = Request::HooksRotate {
        name: name(&path(hook)?)?,
        secret: body.secret.map(|s| s.trim().to_string()),
        keep: std::time::Duration::from_secs(body.keep_seconds.unwrap_or(86_400)),
    };
    let mut response = respond(&api, &caller, shown, request).await?;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
