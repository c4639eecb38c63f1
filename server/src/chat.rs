//! Slack over HTTP (issue 12): `POST /chat/slack/commands` (slash commands) and
//! `POST /chat/slack/interactions` (button clicks). No bearer token: each request must carry
//! Slack's `v0` signature over its raw body under the app's signing secret, at most 300 s old,
//! never seen before (`control::chat::SlackGate`); otherwise 401 and nothing runs. A valid
//! request is acknowledged at once (Slack waits 3 s at most) and the command runs in the
//! background as `slack:TEAM/USER`, its answer posted to the request's `response_url`.

use crate::error::ApiError;
use crate::Api;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hoist_control::chat::SlackCommand;
use std::collections::HashMap;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The signature check every Slack route makes first.
fn admitted(api: &Api, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let Some(gate) = &api.slack else {
        return Err(ApiError::not_found(
            "Slack is not set up on this server ([slack] signing_secret_file in serve.toml)",
        ));
    };
    gate.admit(
        header(headers, "x-slack-request-timestamp"),
        header(headers, "x-slack-signature"),
        body,
        chrono::Utc::now().timestamp(),
    )
    .map_err(ApiError::unauthenticated)
}

pub async fn slack_commands(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    admitted(&api, &headers, &body)?;
    let command: SlackCommand = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ApiError::bad_request(format!("not a Slack slash command: {e}")))?;
    let text = hoist_control::chat::working(&command.text);
    let hoist = api.hoist.clone();
    tokio::spawn(async move { hoist.slack_command(command).await });
    Ok(Json(serde_json::json!({
        "response_type": "ephemeral",
        "text": text,
    }))
    .into_response())
}

pub async fn slack_interactions(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    admitted(&api, &headers, &body)?;
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ApiError::bad_request(format!("not a Slack interaction: {e}")))?;
    let payload: serde_json::Value = form
        .get("payload")
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| ApiError::bad_request("a Slack interaction carries a JSON payload"))?;
    if payload["type"] != "block_actions" {
        return Ok(axum::http::StatusCode::OK.into_response());
    }
    let hoist = api.hoist.clone();
    tokio::spawn(async move { hoist.slack_action(&payload).await });
    Ok(axum::http::StatusCode::OK.into_response())
}
