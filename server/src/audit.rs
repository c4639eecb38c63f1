//! The audit trail and its hash chains.

use crate::auth::Authenticated;
use crate::command::{bad_query, respond, Shown};
use crate::error::{ApiError, ErrorBody};
use crate::json::Query;
use crate::{Answer, Api};
use axum::extract::State;
use hoist_control::engine::{AppName, EnvName};
use hoist_control::time::parse_instant;
use hoist_control::{AuditQuery, Request};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(audit))
        .routes(routes!(verify))
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub(crate) app: Option<String>,
    pub(crate) env: Option<String>,
    pub(crate) actor: Option<String>,
    /// One of the kinds of `hoist audit --kind`.
    pub(crate) kind: Option<String>,
    /// RFC 3339 or a span back from now (`7d`, `12h`).
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) limit: Option<usize>,
}

/// A name in a query: one that breaks its rule is a bad query (400).
fn query_name<T>(text: Option<String>) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr<Err = hoist_control::engine::ValidationError>,
{
    text.map(|t| t.parse::<T>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))
}

/// `hoist audit`: events, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, description = "`audit --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn audit(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Query(params): Query<AuditParams>,
    shown: Shown,
) -> Answer {
    respond(&api, &caller, shown, params.into_request()?).await
}

impl AuditParams {
    /// `hoist audit`'s request, every filter checked (a bad one is a 400 naming it).
    pub(crate) fn into_request(self) -> Result<Request, ApiError> {
        let params = self;
        let instant = |what, t: Option<String>| {
            t.map(|t| parse_instant(what, &t))
                .transpose()
                .map_err(bad_query)
        };
        let query = AuditQuery {
            app: query_name::<AppName>(params.app)?,
            env: query_name::<EnvName>(params.env)?,
            actor: params.actor,
            kind: params.kind,
            since: instant("since", params.since)?,
            until: instant("until", params.until)?,
        };
        Ok(Request::Audit {
            query,
            limit: params.limit,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VerifyParams {
    /// One app's chain [default: every app's].
    app: Option<String>,
}

/// `hoist audit verify`: 422 naming the first broken link.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(VerifyParams),
    responses((status = 200, description = "`audit verify --json`"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn verify(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Query(params): Query<VerifyParams>,
    shown: Shown,
) -> Answer {
    let app = query_name::<AppName>(params.app)?;
    respond(&api, &caller, shown, Request::AuditVerify { app }).await
}
