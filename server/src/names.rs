//! The names in a path (`/v1/apps/{app}/envs/{env}/…`) as validated domain values, and the guard
//! that refuses paths built to confuse a router or a proxy: dot segments, encoded separators,
//! encoded dots, NUL. App and env names are DNS labels, so no real path needs any of these.

use crate::error::ApiError;
use crate::Api;
use axum::extract::{FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hoist_control::engine::{AppName, EnvName};
use std::collections::HashMap;

/// `{app}` of the path.
pub struct AppPath(pub AppName);

/// `{app}` and `{env}` of the path.
pub struct EnvPath(pub AppName, pub EnvName);

impl FromRequestParts<Api> for AppPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Self::Rejection> {
        let params = params(parts, api).await?;
        Ok(AppPath(name(&params, "app")?))
    }
}

impl FromRequestParts<Api> for EnvPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Self::Rejection> {
        let params = params(parts, api).await?;
        Ok(EnvPath(name(&params, "app")?, name(&params, "env")?))
    }
}

async fn params(parts: &mut Parts, api: &Api) -> Result<HashMap<String, String>, ApiError> {
    Path::<HashMap<String, String>>::from_request_parts(parts, api)
        .await
        .map(|Path(params)| params)
        .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
}

/// A path segment as an app or env name: one that breaks the DNS-label rule names nothing that
/// can exist (400, with the rule).
fn name<T>(params: &HashMap<String, String>, key: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = hoist_control::engine::ValidationError>,
{
    let text = params
        .get(key)
        .ok_or_else(|| ApiError::bad_request(format!("the path names no {key}")))?;
    text.parse()
        .map_err(|e| ApiError::bad_request(format!("bad path: {e}")))
}

/// Refuses a path with a dot segment, a backslash, an encoded `.`, `/`, `\` or NUL, or an empty
/// segment: 400 before any route sees it.
pub async fn refuse_tricky_paths(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if let Some(why) = tricky(path) {
        return ApiError::bad_request(format!("path refused: {why}")).into_response();
    }
    next.run(request).await
}

fn tricky(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return Some("it encodes a dot, a slash, a backslash or NUL");
    }
    if path.contains('\\') {
        return Some("it holds a backslash");
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Some("it holds a dot segment");
    }
    // A trailing slash is an empty last segment: `/v1/apps/` is a 404 like any unknown route.
    if segments.len() > 1 && segments[..segments.len() - 1].contains(&"") {
        return Some("it holds an empty segment");
    }
    None
}

/// A path as an error message shows it: at most 200 characters, control characters escaped.
pub fn shown_path(path: &str) -> String {
    let short: String = path.chars().take(200).collect();
    let more = if path.chars().count() > 200 {
        "…"
    } else {
        ""
    };
    format!("{}{more}", hoist_control::text::escape(&short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricks_are_told_from_plain_paths() {
        for plain in [
            "/",
            "/v1/apps",
            "/v1/apps/web/envs/staging/releases",
            "/v1/apps/",
        ] {
            assert_eq!(tricky(plain), None, "{plain}");
        }
        for trick in [
            "/v1/apps/../audit",
            "/v1/apps/./web",
            "/v1/apps/%2e%2e/audit",
            "/v1/apps/%2E%2E/audit",
            "/v1/apps/web%2Fenvs",
            "/v1/apps/web%5cenvs",
            "/v1/apps/web%00",
            "/v1//apps",
            "/v1/apps\\web",
        ] {
            assert!(tricky(trick).is_some(), "{trick}");
        }
    }
}
