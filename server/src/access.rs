//! `hoist access …` over HTTP: tokens, grants, chat links and `access check`, each a `Request`
//! answered by `Hoist::answer` as the caller (whose own grants say whether it may: tokens and
//! links need admin on every app, a grant admin on its scope).
//!
//! A value that breaks its rule — in a body, a query or the token id of the path — is a 422
//! `rejected` naming the field, as the CLI rejects the same argument (exit 1); an identity is
//! named `identity`. A body or query that does not parse as the route's shape is a 400.

use crate::auth::Authenticated;
use crate::command::{respond, Shown};
use crate::error::{ApiError, ErrorBody};
use crate::json::{Body, Query};
use crate::{Answer, Api};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use hoist_control::api::parse_identity;
use hoist_control::engine::{Actor, AppName, EnvName, Grant, Scope};
use hoist_control::time::parse_rfc3339;
use hoist_control::Request;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(token_create, token_list))
        .routes(routes!(token_revoke))
        .routes(routes!(grant, access_list))
        .routes(routes!(revoke))
        .routes(routes!(link))
        .routes(routes!(unlink))
        .routes(routes!(check))
}

/// A value of a body or query that breaks its rule: rejected, naming the field.
fn value<T>(text: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = hoist_control::engine::ValidationError>,
{
    Ok(text.parse::<T>()?)
}

fn identity(text: &str) -> Result<Actor, ApiError> {
    Ok(parse_identity(text)?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// Who the token acts as (an e-mail-like name).
    identity: String,
    /// A name to tell the token by in `access token list`.
    name: Option<String>,
    /// When it stops working, RFC 3339 [default: never].
    expires_at: Option<String>,
}

/// `hoist access token create`: the token is in the answer, once; only its hash is stored.
#[utoipa::path(post, path = "/v1/access/tokens", tag = "access", request_body = TokenCreate,
    responses((status = 201, description = "`access token create --json`: `{\"id\", \"identity\", \"token\", \"expires_at\"}`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn token_create(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    shown: Shown,
    Body(body): Body<TokenCreate>,
) -> Answer {
    let request = Request::TokenCreate {
        identity: identity(&body.identity)?,
        name: body.name,
        expires_at: body
            .expires_at
            .map(|at| parse_rfc3339("expires_at", &at))
            .transpose()?,
    };
    let mut response = respond(&api, &caller, shown, request).await?;
    // The one answer that holds a credential: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokenListQuery {
    /// Only this identity's tokens [default: every identity's].
    identity: Option<String>,
}

/// `hoist access token list`: every token (revoked ones too), never the token itself.
#[utoipa::path(get, path = "/v1/access/tokens", tag = "access", params(TokenListQuery),
    responses((status = 200, description = "`access token list --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn token_list(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Query(query): Query<TokenListQuery>,
    shown: Shown,
) -> Answer {
    let identity = query.identity.as_deref().map(identity).transpose()?;
    let request = Request::TokenList { identity };
    respond(&api, &caller, shown, request).await
}

/// `hoist access token revoke`: the token opens nothing from the next request on.
#[utoipa::path(delete, path = "/v1/access/tokens/{id}", tag = "access",
    params(("id" = String, Path, description = "the token's id (12 hex digits)")),
    responses((status = 200, description = "`access token revoke --json`: the token revoked"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn token_revoke(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    shown: Shown,
) -> Answer {
    let Path(id) =
        path.map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))?;
    let request = Request::TokenRevoke { id: value(&id)? };
    respond(&api, &caller, shown, request).await
}

/// A role on a scope, for an identity: what `access grant` gives and `access revoke` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    identity: String,
    /// `viewer`, `deployer`, `operator` or `admin`.
    role: String,
    /// [default: every app]
    app: Option<String>,
    /// [default: every env]
    env: Option<String>,
}

impl GrantBody {
    fn parse(self) -> Result<(Actor, Grant), ApiError> {
        let grant = Grant {
            role: value(&self.role)?,
            app: self.app.as_deref().map(value::<AppName>).transpose()?,
            env: self.env.as_deref().map(value::<EnvName>).transpose()?,
        };
        Ok((identity(&self.identity)?, grant))
    }
}

/// `hoist access grant`: needs admin on the scope it names.
#[utoipa::path(post, path = "/v1/access/grants", tag = "access", request_body = GrantBody,
    responses((status = 200, description = "`access grant --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn grant(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    shown: Shown,
    Body(body): Body<GrantBody>,
) -> Answer {
    let (identity, grant) = body.parse()?;
    let request = Request::Grant { identity, grant };
    respond(&api, &caller, shown, request).await
}

/// `hoist access revoke`: needs admin on the scope it names.
#[utoipa::path(post, path = "/v1/access/grants/revoke", tag = "access", request_body = GrantBody,
    responses((status = 200, description = "`access revoke --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn revoke(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    shown: Shown,
    Body(body): Body<GrantBody>,
) -> Answer {
    let (identity, grant) = body.parse()?;
    let request = Request::Revoke { identity, grant };
    respond(&api, &caller, shown, request).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccessListQuery {
    /// Only this identity's grants.
    identity: Option<String>,
    /// Only grants that reach this app.
    app: Option<String>,
}

/// `hoist access list`: the grants in force.
#[utoipa::path(get, path = "/v1/access/grants", tag = "access", params(AccessListQuery),
    responses((status = 200, description = "`access list --json`: `[{\"identity\", \"role\", \"app\", \"env\", \"granted_by\", \"at\"}]`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn access_list(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Query(query): Query<AccessListQuery>,
    shown: Shown,
) -> Answer {
    let request = Request::AccessList {
        identity: query.identity.as_deref().map(identity).transpose()?,
        app: query.app.as_deref().map(value::<AppName>).transpose()?,
    };
    respond(&api, &caller, shown, request).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// `slack:TEAM/USER` or `matrix:@user:server`.
    chat_id: String,
    /// Who the chat user acts as.
    identity: String,
}

/// `hoist access link`: the chat user acts as the identity in chat.
#[utoipa::path(post, path = "/v1/access/links", tag = "access", request_body = LinkBody,
    responses((status = 200, description = "`access link --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn link(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    shown: Shown,
    Body(body): Body<LinkBody>,
) -> Answer {
    let request = Request::Link {
        chat_id: value(&body.chat_id)?,
        identity: identity(&body.identity)?,
    };
    respond(&api, &caller, shown, request).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlinkBody {
    /// `slack:TEAM/USER` or `matrix:@user:server`.
    chat_id: String,
}

/// `hoist access unlink`.
#[utoipa::path(post, path = "/v1/access/links/unlink", tag = "access", request_body = UnlinkBody,
    responses((status = 200, description = "`access unlink --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn unlink(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    shown: Shown,
    Body(body): Body<UnlinkBody>,
) -> Answer {
    let request = Request::Unlink {
        chat_id: value(&body.chat_id)?,
    };
    respond(&api, &caller, shown, request).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    identity: String,
    /// `view`, `deploy`, `config`, `promote`, `rollback`, `lock`, `apply`, `reveal` or `admin`.
    action: String,
    app: String,
    /// [default: every env of the app]
    env: Option<String>,
}

/// `hoist access check`: 200 whether or not the identity may.
#[utoipa::path(get, path = "/v1/access/check", tag = "access", params(CheckQuery),
    responses((status = 200, description = "`access check --json`: `{\"allowed\", \"because\"}`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn check(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Query(query): Query<CheckQuery>,
    shown: Shown,
) -> Answer {
    let request = Request::AccessCheck {
        identity: identity(&query.identity)?,
        action: value(&query.action)?,
        scope: Scope {
            app: Some(value(&query.app)?),
            env: query.env.as_deref().map(value::<EnvName>).transpose()?,
        },
    };
    respond(&api, &caller, shown, request).await
}
