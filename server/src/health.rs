//! The routes that need no token (API.md, "Outside /v1"): `/healthz` (the process answers),
//! `/readyz` (the store answers and the read models are caught up), `/metrics` and
//! `/v1/openapi.json`.

use crate::error::{ApiError, ErrorBody};
use crate::{ok, Answer, Api};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "`{\"ok\": true}`")))]
async fn healthz() -> Answer {
    ok(json!({"ok": true}))
}

/// The store answers and the read models are caught up with the log.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "`{\"ready\": true, \"last_seq\", \"models_at\"}`"),
        (status = 503, description = "not ready, and why", body = ErrorBody)))]
async fn readyz(State(api): State<Api>) -> Answer {
    let state = api.hoist.ready().await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("not ready: {}", e.message()),
        )
    })?;
    ok(json!({"ready": true, "last_seq": state.last_seq, "models_at": state.models_at}))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
async fn metrics(State(api): State<Api>) -> Answer {
    let text = api.metrics.render(&api).await;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document of these routes")))]
async fn openapi_json(State(api): State<Api>) -> Answer {
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        api.openapi.as_str().to_string(),
    )
        .into_response())
}
