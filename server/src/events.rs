//! `GET /v1/events`: the log's events the caller may view (the others skipped). As JSON, one
//! page: an array of `hoist events` lines, with a `Link: rel="next"` to the next page while the
//! log goes on. With `Accept: text/event-stream`, a Server-Sent Events stream that replays from
//! `from` (without it: only what is appended from now on) and then follows the log; it resumes
//! after `Last-Event-ID`.
//!
//! Each SSE event's data is one `hoist events` line. A commit's events share its sequence, and
//! only the last event of a commit carries `id:` (that sequence): a stream cut inside a commit
//! resumes at the commit's start, so no event is lost (a few may come twice; their `id` in the
//! data tells them apart).

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::json::{Pretty, Query};
use crate::{Answer, Api, EVENTS_POLL};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::stream::{self, Stream, StreamExt};
use hoist_control::engine::Principal;
use hoist_control::views::EventLine;
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(events))
}

/// Commits read per page, unless the caller asks for fewer.
const PAGE: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// The first log sequence [JSON default: 1; SSE default: what is appended from now on].
    from: Option<u64>,
    /// JSON: at most this many commits read for the page [default and at most: 1000].
    limit: Option<usize>,
}

/// `hoist events`, or `hoist events --follow` as SSE.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "SSE: resume after this sequence")),
    responses((status = 200, description = "an array of `hoist events` lines (JSON), or an SSE stream of them (text/event-stream)"),
        (status = "default", description = "an error", body = ErrorBody)))]
async fn events(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Query(params): Query<EventsParams>,
) -> Answer {
    if wants_event_stream(&headers) {
        let from = match (last_event_id(&headers)?, params.from) {
            (Some(id), _) => id.saturating_add(1),
            (None, Some(from)) => from,
            (None, None) => api.hoist.last_seq().await?.saturating_add(1),
        };
        let stream = follow(api, caller.principal, from);
        return Ok(Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let from = params.from.unwrap_or(1).max(1);
    let limit = params.limit.unwrap_or(PAGE).clamp(1, PAGE);
    let page = api
        .hoist
        .visible_events(&caller.principal, from, limit)
        .await?;
    let mut response = Pretty(&page.events).into_response();
    if page.next > from {
        let link = format!("</v1/events?from={}>; rel=\"next\"", page.next);
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

pub(crate) fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .and_then(|v| v.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be a log sequence (a number)"))
}

/// Where a follower is.
struct Follower {
    api: Api,
    principal: Principal,
    next: u64,
    ready: VecDeque<Event>,
}

/// The events from `from` on, then every new one as it is appended, until the server stops. A
/// store that fails ends the stream with an `error` event saying why.
pub(crate) fn follow(
    api: Api,
    principal: Principal,
    from: u64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let follower = Follower {
        api,
        principal,
        next: from.max(1),
        ready: VecDeque::new(),
    };
    stream::unfold(Some(follower), |state| async move {
        let mut follower = state?;
        loop {
            if let Some(event) = follower.ready.pop_front() {
                return Some((event, Some(follower)));
            }
            let mut stopping = follower.api.stopping.clone();
            if stopping.is_stopping() {
                return None;
            }
            let page = follower
                .api
                .hoist
                .visible_events(&follower.principal, follower.next, PAGE)
                .await;
            match page {
                Ok(page) if page.next == follower.next => {
                    tokio::select! {
                        _ = tokio::time::sleep(EVENTS_POLL) => {}
                        _ = stopping.wait() => return None,
                    }
                }
                Ok(page) => {
                    follower.next = page.next;
                    follower.ready.extend(sse_events(&page.events));
                }
                Err(e) => {
                    let error = ApiError::of(&e);
                    let data = serde_json::json!({"error": {"code": error.code, "message": error.message}});
                    let event = Event::default().event("error").data(data.to_string());
                    return Some((event, None));
                }
            }
        }
    })
    .map(Ok)
}

/// One SSE event per line; `id:` on the last event of each commit.
fn sse_events(lines: &[EventLine]) -> Vec<Event> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let data = serde_json::to_string(line).expect("events serialize");
            let event = Event::default().data(data);
            let last_of_commit = lines.get(i + 1).is_none_or(|next| next.seq != line.seq);
            if last_of_commit {
                event.id(line.seq.to_string())
            } else {
                event
            }
        })
        .collect()
}
