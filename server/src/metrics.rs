//! `/metrics`: what the server did, recorded through the `metrics` facade and rendered as
//! Prometheus text by `metrics-exporter-prometheus`:
//!
//! - `hoist_http_request_duration_seconds{route,method,status}` (histogram): every request, by its
//!   route template (`/v1/apps/:app`, never the names in it, so the label set stays bounded);
//! - `hoist_commands_total{kind,outcome}`: the commands run through the API (every request
//!   but the queries), by `Request::kind` and outcome (`ok` or API.md's error code);
//! - `hoist_rollouts_total{outcome}`: rollouts applied through the API (`apply`);
//! - `hoist_log_last_seq`, `hoist_projection_lag_events` (gauges): read from the store at each
//!   scrape.

use crate::Api;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

pub const HTTP_DURATION: &str = "hoist_http_request_duration_seconds";
pub const COMMANDS: &str = "hoist_commands_total";
pub const ROLLOUTS: &str = "hoist_rollouts_total";
pub const LOG_LAST_SEQ: &str = "hoist_log_last_seq";
pub const PROJECTION_LAG: &str = "hoist_projection_lag_events";

/// Seconds: from a query answered from the read models (well under a millisecond) to an apply
/// that waits for a rollout (minutes).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// The process's recorder, installed once: the `metrics` facade has one global recorder.
static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// The process's Prometheus recorder, installed on first use.
    pub fn install() -> Metrics {
        let handle = RECORDER.get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_string()), BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed: /metrics will be empty");
            }
            metrics::describe_histogram!(
                HTTP_DURATION,
                metrics::Unit::Seconds,
                "HTTP requests by route template, method and status, until the response began"
            );
            metrics::describe_counter!(
                COMMANDS,
                "Commands run through the API, by kind and outcome (ok or the error code)"
            );
            metrics::describe_counter!(
                ROLLOUTS,
                "Rollouts applied through the API (apply), by outcome"
            );
            metrics::describe_gauge!(LOG_LAST_SEQ, "The log's last sequence");
            metrics::describe_gauge!(
                PROJECTION_LAG,
                "Commits in the log not yet folded into the read models"
            );
            handle
        });
        Metrics {
            handle: handle.clone(),
        }
    }

    /// The exposition, with the store's gauges read now (left as they were when the store does
    /// not answer: the scrape still succeeds, and `/readyz` says what is wrong).
    pub async fn render(&self, api: &Api) -> String {
        match api.hoist.log_state().await {
            Ok(state) => {
                metrics::gauge!(LOG_LAST_SEQ).set(state.last_seq as f64);
                metrics::gauge!(PROJECTION_LAG).set(state.lag() as f64);
            }
            Err(e) => tracing::warn!(error = e.message(), "metrics: reading the log's state"),
        }
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Counts one command run through the API.
pub fn command(kind: &'static str, outcome: &'static str) {
    metrics::counter!(COMMANDS, "kind" => kind, "outcome" => outcome).increment(1);
}

/// A route template as a label: `/v1/apps/:app`, not `/v1/apps/{app}` (braces inside a label
/// value are valid Prometheus text, but some parsers of it stumble on them).
fn route_label(template: &str) -> String {
    template.replace('{', ":").replace('}', "")
}

/// Counts one rollout that `apply` through the API recorded, by its outcome.
pub fn rollout(outcome: &'static str) {
    metrics::counter!(ROLLOUTS, "outcome" => outcome).increment(1);
}

/// Times every request, labelled by its route template (`unmatched` for a path no route has).
pub async fn track_request(State(_): State<Api>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| route_label(p.as_str()));
    // Only the standard methods by name: an invented one must not grow the label set.
    let method = match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m.to_string(),
        _ => "other".to_string(),
    };
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}
