//! JSON in and out. Out: exactly the bytes `hoist --json` prints (serde_json's pretty form and a
//! newline), so the remote CLI can hand a body on unchanged. In: a body that does not parse as
//! the route's shape is a 400 (API.md), one over the limit a 413, never axum's own plain-text
//! rejections.

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A response body as the CLI's `--json` prints it.
pub struct Pretty<T>(pub T);

impl<T: Serialize> IntoResponse for Pretty<T> {
    fn into_response(self) -> Response {
        match serde_json::to_string_pretty(&self.0) {
            Ok(mut text) => {
                text.push('\n');
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    text,
                )
                    .into_response()
            }
            // The views serialize by construction; were one not to, the client is told plainly.
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
}

/// A JSON request body of shape `T`; a malformed one is a 400 in API.md's shape.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(body_rejection(&rejection)),
        }
    }
}

/// A body over [`crate::BODY_LIMIT`]: 413.
fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "bad_request",
        format!(
            "request body over {} KiB: send less",
            crate::BODY_LIMIT / 1024
        ),
    )
}

/// Refuses a request whose `Content-Length` is over the limit before anything reads it (or
/// authenticates it); a body without a length is cut at the limit as it is read.
pub async fn refuse_large_bodies(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > crate::BODY_LIMIT as u64) {
        return too_large().into_response();
    }
    next.run(request).await
}

fn body_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            too_large()
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad_request("the body must be JSON (Content-Type: application/json)")
        }
        other => ApiError::bad_request(format!("malformed JSON body: {}", other.body_text())),
    }
}

/// A query string of shape `T`; a malformed one is a 400 in API.md's shape.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::bad_request(format!("bad query: {}", rejection.body_text()))
}
