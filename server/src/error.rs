//! API.md's one error shape, `{"error": {"code", "message"}}`, and the status each kind of
//! failure answers with. Every refusal of the API goes through [`ApiError`], so no handler
//! invents a status or a body of its own.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hoist_control::{Error, ErrorKind};
use serde::Serialize;

/// A refused or failed request: its status, API.md's code and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The body of every error response (API.md, "Auth").
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `unauthenticated`, `forbidden`, `not_found`, `rejected`, `conflict`, `unavailable` or
    /// `bad_request`.
    pub code: &'static str,
    /// One line naming the thing and the rule.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl std::fmt::Display) -> Self {
        ApiError {
            status,
            code,
            message: one_line(&message.to_string()),
        }
    }

    /// Malformed JSON, a bad query, a path that cannot name anything: 400.
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// No token, or one that names nobody: 401.
    pub fn unauthenticated(message: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    pub fn not_found(message: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// What `hoist_control` answered, as its kind's status (API.md: 422, 404, 409, 503, 403, 401).
    pub fn of(e: &Error) -> Self {
        let (status, code) = status_of(e.kind());
        ApiError::new(status, code, e.message())
    }
}

/// The status and API.md code of each kind of failure.
pub fn status_of(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::Rejected => (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
        // A damaged store, like an unreachable one, cannot serve the request; a retry may.
        ErrorKind::Unavailable | ErrorKind::Corrupt => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        ErrorKind::Denied => (StatusCode::FORBIDDEN, "forbidden"),
        ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::of(&e)
    }
}

impl From<hoist_control::engine::ValidationError> for ApiError {
    /// A value in a body or query that breaks its rule (an app name, an image reference): rejected,
    /// as the CLI rejects the same argument.
    fn from(e: hoist_control::engine::ValidationError) -> Self {
        ApiError::of(&Error::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.status, crate::json::Pretty(&body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: the scheme the client should use.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hoist\""),
            );
        }
        response
    }
}

/// One line: line breaks in a message (a hook's output quoted in an error) become "; ".
fn one_line(text: &str) -> String {
    if !text.contains(['\n', '\r']) {
        return text.to_string();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_status_of_api_md() {
        let cases = [
            (ErrorKind::Rejected, 422, "rejected"),
            (ErrorKind::NotFound, 404, "not_found"),
            (ErrorKind::Conflict, 409, "conflict"),
            (ErrorKind::Unavailable, 503, "unavailable"),
            (ErrorKind::Corrupt, 503, "unavailable"),
            (ErrorKind::Denied, 403, "forbidden"),
            (ErrorKind::Unauthenticated, 401, "unauthenticated"),
        ];
        for (kind, status, code) in cases {
            assert_eq!(
                status_of(kind),
                (StatusCode::from_u16(status).unwrap(), code)
            );
        }
    }

    #[test]
    fn a_message_is_one_line() {
        let e = ApiError::bad_request("first\r\n  second\n\nthird");
        assert_eq!(e.message, "first; second; third");
    }
}
