//! Answering a command as the caller, the way the CLI does: the route's `Request`, one call of
//! `Hoist::answer`, counted in `hoist_commands_total` (every request that is not a query), then
//! the answer — its JSON (the CLI's `--json` bytes), or its human text when the caller prefers
//! `text/plain` (what the remote CLI prints without `--json`).
//!
//! The contract the remote CLI relies on:
//! - `Accept`: the human text (`Content-Type: text/plain; charset=utf-8`) when it names
//!   `text/plain` and not `application/json`; otherwise the JSON (`application/json`);
//! - `Hoist-Width: <u16>`: the human text's table width (a terminal's columns); a bad value is a
//!   400;
//! - an answer that is also a failure (an `apply` whose rollout failed) keeps its status and
//!   body and adds `Hoist-Failure: <API.md code>` and `Hoist-Failure-Message: <the message,
//!   percent-encoded>`, so the client shows the answer and then fails as the CLI does;
//! - an error is API.md's JSON error, whatever `Accept` says.

use crate::error::{status_of, ApiError};
use crate::{metrics, Answer, Api};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use hoist_control::{Caller, Request};

/// Request header: the human text's table width.
pub const WIDTH: HeaderName = HeaderName::from_static("hoist-width");
/// Response header: the API.md code of the failure an answer also is.
pub const FAILURE: HeaderName = HeaderName::from_static("hoist-failure");
/// Response header: that failure's message, percent-encoded ([`crate::percent::encode`]).
pub const FAILURE_MESSAGE: HeaderName = HeaderName::from_static("hoist-failure-message");

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
/// The answer depends on these request headers: a cache must not hand one form for another.
const VARY: HeaderValue = HeaderValue::from_static("accept, hoist-width");

/// The outcomes a rollout's JSON names (`apply --json`'s `outcome`), as metric labels.
const ROLLOUT_OUTCOMES: [&str; 4] = ["applied", "unchanged", "healthy", "failed"];

/// How the caller wants its answer: JSON or human text (`Accept`), and how wide the text's
/// tables may be (`Hoist-Width`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    text: bool,
    width: Option<u16>,
}

impl<S: Send + Sync> FromRequestParts<S> for Shown {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Shown::of(&parts.headers)
    }
}

impl Shown {
    fn of(headers: &HeaderMap) -> Result<Shown, ApiError> {
        Ok(Shown {
            text: prefers_text(headers),
            width: width(headers)?,
        })
    }
}

/// Whether `Accept` asks for the human text: it names `text/plain` and not `application/json`
/// (no weighing of `q` values: the remote CLI sends one or the other).
fn prefers_text(headers: &HeaderMap) -> bool {
    let accepted: Vec<String> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .collect();
    let names = |media: &str| accepted.iter().any(|a| a.contains(media));
    names("text/plain") && !names("application/json")
}

/// `Hoist-Width`, if sent: one header, a whole number of columns that fits a `u16`.
fn width(headers: &HeaderMap) -> Result<Option<u16>, ApiError> {
    let mut values = headers.get_all(&WIDTH).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = || {
        let shown: String = String::from_utf8_lossy(value.as_bytes())
            .chars()
            .take(20)
            .collect();
        ApiError::bad_request(format!(
            "invalid Hoist-Width header {:?}: must be one whole number of columns, 0 to 65535",
            hoist_control::text::escape(&shown)
        ))
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let text = value.to_str().map_err(|_| invalid())?;
    text.trim().parse::<u16>().map(Some).map_err(|_| invalid())
}

/// Answers `request` as `caller` (on success 200, or 201 for what creates a resource: an app, a
/// token), in the form `shown` asks for; counts it unless it is a query.
pub async fn respond(api: &Api, caller: &Caller, shown: Shown, request: Request) -> Answer {
    let status = match request {
        Request::AppsCreate { .. } | Request::TokenCreate { .. } | Request::HooksAdd { .. } => {
            StatusCode::CREATED
        }
        _ => StatusCode::OK,
    };
    let answer = counted(api, caller, request, shown.width).await?;
    let (content_type, body) = if shown.text {
        (TEXT, answer.human)
    } else {
        (JSON, answer.json)
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::VARY, VARY);
    if let Some(failure) = &answer.failure {
        let code = status_of(failure.kind()).1;
        headers.insert(FAILURE, HeaderValue::from_static(code));
        let message = crate::percent::encode(failure.message());
        // Only unreserved characters and `%XX` remain: always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&message) {
            headers.insert(FAILURE_MESSAGE, value);
        }
    }
    Ok(response)
}

/// `Hoist::answer`, counted in `hoist_commands_total` unless it is a query (and an `apply`'s
/// rollout in `hoist_rollouts_total`): what every front end of this server answers with.
pub(crate) async fn counted(
    api: &Api,
    caller: &Caller,
    request: Request,
    width: Option<u16>,
) -> hoist_control::Result<hoist_control::Answer> {
    let kind = request.kind();
    let counted = !request.is_query();
    let rolls_out = matches!(request, Request::Apply { dry_run: false, .. });
    let result = api.hoist.answer(caller, request, width).await;
    if counted {
        metrics::command(kind, outcome(&result));
    }
    if let (true, Ok(answer)) = (rolls_out, &result) {
        metrics::rollout(rollout_outcome(&answer.json));
    }
    result
}

/// `ok`, or API.md's error code: the `outcome` label of a command.
fn outcome<T>(result: &Result<T, hoist_control::Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => status_of(e.kind()).1,
    }
}

/// The `outcome` of `apply --json`, as a label of bounded values. `Answer` carries the rollout
/// as JSON only, which is the contract every front end shares, so it is read back from there.
fn rollout_outcome(json: &str) -> &'static str {
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let named = value.get("outcome").and_then(|o| o.as_str());
    ROLLOUT_OUTCOMES
        .into_iter()
        .find(|known| Some(*known) == named)
        .unwrap_or("other")
}

/// A query value that does not parse (a time, a number): 400, the message saying which.
pub fn bad_query(e: hoist_control::Error) -> ApiError {
    ApiError::bad_request(e.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn text_only_when_accept_names_text_plain_and_not_json() {
        for (accept, text) in [
            (&[][..], false),
            (&["application/json"], false),
            (&["*/*"], false),
            (&["text/plain"], true),
            (&["Text/Plain; charset=utf-8"], true),
            (&["text/plain, application/json;q=0.5"], false),
            (&["text/plain", "application/json"], false),
            (&["text/html"], false),
        ] {
            let pairs: Vec<_> = accept.iter().map(|a| ("accept", *a)).collect();
            assert_eq!(prefers_text(&headers(&pairs)), text, "{accept:?}");
        }
    }

    #[test]
    fn a_width_is_one_u16() {
        assert_eq!(width(&headers(&[])), Ok(None));
        assert_eq!(width(&headers(&[("hoist-width", "80")])), Ok(Some(80)));
        assert_eq!(width(&headers(&[("Hoist-Width", " 120 ")])), Ok(Some(120)));
        for bad in [&["wide"][..], &["-1"], &["65536"], &["80", "100"], &[""]] {
            let pairs: Vec<_> = bad.iter().map(|v| ("hoist-width", *v)).collect();
            let e = width(&headers(&pairs)).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "bad_request"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(crate::percent::encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(
            crate::percent::encode("web/staging v2: failed\n100%"),
            "web%2Fstaging%20v2%3A%20failed%0A100%25"
        );
        assert_eq!(crate::percent::encode("é"), "%C3%A9");
    }

    #[test]
    fn a_rollout_outcome_is_a_known_label() {
        assert_eq!(rollout_outcome("{\"outcome\": \"failed\"}\n"), "failed");
        assert_eq!(rollout_outcome("{\"outcome\": \"healthy\"}"), "healthy");
        assert_eq!(rollout_outcome("{\"outcome\": \"made-up\"}"), "other");
        assert_eq!(rollout_outcome("not json"), "other");
    }
}
