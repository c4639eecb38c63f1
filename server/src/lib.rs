//! hoist's HTTP API (API.md): every command route turns its path, query and body into the
//! `hoist_control::Request` the CLI builds from its arguments, and answers with
//! `Hoist::answer` as the caller its bearer token names — the CLI's `--json` bytes, or its human
//! text for `Accept: text/plain` — so the remote CLI prints what the local one would.
//!
//! - [`router`]: the routes, their guards (tokens only in the header, no dot segments or encoded
//!   separators in paths, bodies bounded in size and time) and the metrics of every request;
//! - `listen`: the accept loop (header read timeout, connection bound, optional TLS, graceful
//!   shutdown) that [`serve`] runs the router on; `tls`: the listener's rustls setup;
//! - `auth`, `error`, `json`: who calls, API.md's error shape, JSON in and out;
//! - `command`: the one way a command route answers (JSON or text, `Hoist-Width`, the
//!   `Hoist-Failure` headers, `hoist_commands_total`);
//! - `apps`, `envs`, `audit`, `access`, `events`, `health`: the routes;
//! - `metrics`: `/metrics`, Prometheus text through the `metrics` facade;
//! - [`openapi`]: the OpenAPI 3.1 document, collected from the handlers as the router is built.
//!
//! **Architecture invariant**: this crate depends on `hoist-control` alone among hoist's crates
//! (`tests/architecture.rs`); the domain comes in through its re-exports.

mod access;
mod apps;
mod audit;
mod auth;
mod chat;
pub mod client;
mod command;
mod envs;
pub mod error;
mod events;
// issue 14
mod formation;
mod health;
mod hooks;
mod json;
mod listen;
mod metrics;
mod names;
pub mod percent;
mod tls;
// issue 13
pub mod web;

pub use auth::{Authenticator, HoistTokens, VIA};
pub use listen::serve;
pub use tls::{Tls, TlsError};
// issue 13
pub use web::WebSettings;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::Router;
use error::ApiError;
use hoist_control::Hoist;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// The largest request body taken (a config change with many keys fits many times over).
pub const BODY_LIMIT: usize = 64 * 1024;
/// How long a request body may take to arrive, once its headers have.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an event stream looks for new commits.
pub const EVENTS_POLL: Duration = Duration::from_millis(200);

/// What every handler shares: hoist, and whether the server is stopping (event streams end then,
/// so that a graceful shutdown does not wait on them forever).
#[derive(Clone)]
pub struct Api {
    hoist: Hoist,
    auth: Arc<dyn Authenticator>,
    stopping: Stopping,
    metrics: Arc<metrics::Metrics>,
    openapi: Arc<String>,
    /// Slack's signed requests, when `[slack]` is set up.
    slack: Option<Arc<hoist_control::chat::SlackGate>>,
    // issue 13: the web UI's sessions and settings.
    web: Arc<web::Web>,
}

/// Says when the server begins to stop; cheap to clone.
#[derive(Clone)]
pub struct Stopping(watch::Receiver<bool>);

/// The sending side of [`Stopping`].
pub struct Stop(watch::Sender<bool>);

impl Stop {
    pub fn new() -> (Stop, Stopping) {
        let (tx, rx) = watch::channel(false);
        (Stop(tx), Stopping(rx))
    }

    /// Tells every holder of a [`Stopping`] (and the accept loop) to stop.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Stopping {
    /// A signal that never fires: for a router driven in-process (tests).
    pub fn never() -> Stopping {
        let (tx, rx) = watch::channel(false);
        // Kept alive forever: a dropped sender would read as "stopping".
        std::mem::forget(tx);
        Stopping(rx)
    }

    /// Completes once the server begins to stop.
    pub async fn wait(&mut self) {
        // A sender gone counts as stopping too.
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }

    pub fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hoist",
        description = "The HTTP API of `hoist serve` (API.md): every body is the JSON the CLI prints with --json (CLI.md)."
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

/// The bearer scheme every `/v1` route but the document itself requires.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes of API.md with their OpenAPI description, not yet bound to a state.
fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(apps::routes())
        .merge(access::routes())
        .merge(hooks::routes())
        .merge(envs::routes())
        .merge(audit::routes())
        .merge(events::routes())
        .merge(health::routes())
        // issue 14
        .merge(formation::routes())
}

/// The OpenAPI 3.1 document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// The whole HTTP API over `hoist`: routes, guards, metrics; tokens are `hoist`'s. `stopping`
/// ends event streams.
pub fn router(hoist: Hoist, stopping: Stopping) -> Router {
    let tokens = HoistTokens(hoist.clone());
    router_with(hoist, Arc::new(tokens), stopping)
}

/// [`router`], with Slack's endpoints when a signing secret is given.
pub fn router_with_chat(
    hoist: Hoist,
    stopping: Stopping,
    slack: Option<hoist_control::chat::SigningSecret>,
) -> Router {
    router_with_web(hoist, stopping, slack, WebSettings::default())
}

// issue 13
/// [`router_with_chat`], with the web UI's sessions set up as `web` says.
pub fn router_with_web(
    hoist: Hoist,
    stopping: Stopping,
    slack: Option<hoist_control::chat::SigningSecret>,
    web: WebSettings,
) -> Router {
    let tokens = HoistTokens(hoist.clone());
    build(hoist, Arc::new(tokens), stopping, slack, web)
}

/// [`router`], with tokens traded for callers by `auth`.
pub fn router_with(hoist: Hoist, auth: Arc<dyn Authenticator>, stopping: Stopping) -> Router {
    build(hoist, auth, stopping, None, WebSettings::default())
}

// issue 13
/// [`router_with`] with the web UI's sessions set up as `web` says (a fixed clock in tests).
pub fn router_with_auth_and_web(
    hoist: Hoist,
    auth: Arc<dyn Authenticator>,
    stopping: Stopping,
    web: WebSettings,
) -> Router {
    build(hoist, auth, stopping, None, web)
}

fn build(
    hoist: Hoist,
    auth: Arc<dyn Authenticator>,
    stopping: Stopping,
    slack: Option<hoist_control::chat::SigningSecret>,
    web: WebSettings,
) -> Router {
    let (routes, doc) = routes().split_for_parts();
    let openapi = doc
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    let api = Api {
        hoist,
        auth,
        stopping,
        metrics: Arc::new(metrics::Metrics::install()),
        openapi: Arc::new(openapi),
        slack: slack.map(|secret| Arc::new(hoist_control::chat::SlackGate::new(secret))),
        web: Arc::new(web::Web::new(web)),
    };
    routes
        .route(
            "/chat/slack/commands",
            axum::routing::post(chat::slack_commands),
        )
        .route(
            "/chat/slack/interactions",
            axum::routing::post(chat::slack_interactions),
        )
        // issue 13
        .merge(web::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Layers run bottom-up: the metrics see every answer, the guards' refusals included.
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            BODY_TIMEOUT,
        ))
        .layer(middleware::from_fn(auth::refuse_tokens_in_url))
        .layer(middleware::from_fn(json::refuse_large_bodies))
        .layer(middleware::from_fn(names::refuse_tricky_paths))
        .layer(middleware::from_fn_with_state(
            api.clone(),
            metrics::track_request,
        ))
        .with_state(api)
}

async fn unknown_route(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {} (see /v1/openapi.json)",
        request.method(),
        names::shown_path(request.uri().path())
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "bad_request",
        format!(
            "{} is not a method of {} (see /v1/openapi.json)",
            request.method(),
            names::shown_path(request.uri().path())
        ),
    )
}

/// Runs a middleware-free handler body: a `Result` whose error is API.md's shape.
pub(crate) type Answer = Result<Response, ApiError>;

/// Shorthand for a JSON answer with status 200.
pub(crate) fn ok<T: serde::Serialize>(value: T) -> Answer {
    Ok(json::Pretty(value).into_response())
}
