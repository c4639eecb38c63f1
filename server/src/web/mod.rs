//! The web UI under `/` (issue 13): the apps' pipelines, an env's timeline, a diff, the audit
//! trail, time travel (`?at=`), and the actions — promote, roll back, lock, unlock — each behind
//! a confirmation page. Server-rendered HTML (`pages`, maud) with one small script (`assets`)
//! that follows the session's event stream and swaps the page's live part in.
//!
//! - Every page asks `Hoist::answer` (through `command::counted`) the request the CLI and the
//!   API would: the same views, the same authorization (`control`'s one authorizer, as the
//!   signed-in identity, `via` `web`). A button shows only when the engine's `authorize` rule
//!   allows it; a forged form is refused by `control` all the same, appending nothing.
//! - `session`: a token traded for a session cookie; a CSRF token on every POST (the sign-in
//!   form's own, double-submitted), compared in constant time. Tokens never reach a page, a
//!   cookie or a log line.
//!
//! Neighbours: `events::follow` (the SSE stream, here authenticated by the session cookie),
//! `audit::AuditParams` (the audit filters), `error::status_of` (the status of a refusal).

mod assets;
pub mod pages;
pub mod session;

use crate::audit::AuditParams;
use crate::command::counted;
use crate::error::status_of;
use crate::names::{AppPath, EnvPath};
use crate::Api;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use hoist_control::engine::{authorize, Action, AppName, Denied, EnvName, ReleaseVersion, Scope};
use hoist_control::time::parse_instant;
use hoist_control::{Caller, ErrorKind, Request};
use maud::Markup;
use pages::{Allowed, Viewer};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use session::{Found, Sessions, SESSION_COOKIE, SIGNIN_COOKIE};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the audit entries and the log carry as `via` for what is done through the web UI.
pub const VIA: &str = "web";

/// Releases a timeline shows, newest first.
const TIMELINE_RELEASES: usize = 100;
/// Rollout outcomes a timeline reads to put under its releases.
const TIMELINE_ROLLOUTS: usize = 500;
/// The longest token a sign-in form takes (as the API's header).
const MAX_TOKEN: usize = 512;

/// How the web UI's sessions behave.
#[derive(Clone)]
pub struct WebSettings {
    /// How long a session lasts after sign-in (the token's own expiry ends it sooner).
    pub session_lifetime: Duration,
    /// Cookies marked `Secure`: the server has TLS.
    pub secure_cookies: bool,
    /// What time it is (a fixed time in snapshot tests).
    pub clock: fn() -> DateTime<Utc>,
}

/// A session lasts 12 hours unless told otherwise: a working day.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            session_lifetime: SESSION_LIFETIME,
            secure_cookies: false,
            clock: Utc::now,
        }
    }
}

/// The web UI's state beside the API's.
pub struct Web {
    settings: WebSettings,
    sessions: Sessions,
}

impl Web {
    pub fn new(settings: WebSettings) -> Web {
        Web {
            sessions: Sessions::new(settings.session_lifetime),
            settings,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        (self.settings.clock)()
    }
}

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/", get(pipelines))
        .route("/signin", get(sign_in_form).post(sign_in))
        .route("/signout", axum::routing::post(sign_out))
        .route("/live", get(live))
        .route(assets::SCRIPT_PATH, get(script))
        .route("/audit", get(audit))
        .route("/apps/{app}/envs/{env}", get(timeline))
        .route("/apps/{app}/envs/{env}/diff", get(diff))
        .route(
            "/apps/{app}/envs/{env}/rollback",
            get(rollback_confirm).post(rollback),
        )
        .route("/apps/{app}/envs/{env}/lock", get(lock_confirm).post(lock))
        .route(
            "/apps/{app}/envs/{env}/unlock",
            get(unlock_confirm).post(unlock),
        )
        .route("/apps/{app}/promote", get(promote_confirm).post(promote))
}

/// A page: HTML that no cache keeps, no other site frames, and that runs no inline script.
fn html(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name, value| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(headers, header::CACHE_CONTROL, "no-store");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; \
         img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    response
}

/// A page answered instead of the one asked for (a refusal, a failure). Boxed: a `Response` is
/// large, and handlers pass one up with `?`.
pub struct Refused(Box<Response>);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<Response> for Refused {
    fn from(response: Response) -> Self {
        Refused(Box::new(response))
    }
}

/// What a page's handler answers.
type Page = Result<Response, Refused>;

/// 303 to `location` (after a POST: the browser GETs it), setting `cookies`.
fn see_other(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A place in this site to go back to: a path, never another origin (`//host`, `\`).
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path
        }
        _ => "/",
    }
}

/// The signed-in caller of a page: its session active, its token still good.
pub struct SignedIn {
    caller: Caller,
    csrf: String,
    session: String,
    now: DateTime<Utc>,
}

impl SignedIn {
    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            identity: self.caller.actor.as_str(),
            csrf: &self.csrf,
            now: self.now,
        }
    }

    fn may(&self, action: Action, app: &AppName, env: &EnvName) -> bool {
        self.allowed(action, app, env).is_ok()
    }

    /// The authorizer's answer for `action` on `app`/`env`: the buttons shown and the
    /// confirmation pages refused both ask it here.
    fn allowed(&self, action: Action, app: &AppName, env: &EnvName) -> Result<(), Denied> {
        authorize(&self.caller.principal, &action, &Scope::env(app, env))
    }

    /// What a form's CSRF token must be; a refusal page (403, nothing done) otherwise.
    fn check_csrf(&self, posted: &str) -> Result<(), Refused> {
        if session::csrf_matches(&self.csrf, posted) {
            Ok(())
        } else {
            Err(html(
                StatusCode::FORBIDDEN,
                pages::failure(
                    Some(&self.viewer()),
                    "Refused",
                    "refused: the form's CSRF token is missing or wrong (reload the page and try again); nothing was done",
                    "/",
                ),
            )
            .into())
        }
    }

    /// A refusal or failure of hoist's, as a page with its status.
    fn failed(&self, e: &hoist_control::Error, back: &str) -> Refused {
        let (status, _) = status_of(e.kind());
        html(
            status,
            pages::failure(Some(&self.viewer()), "Not done", e.message(), back),
        )
        .into()
    }

    /// A confirmation step's page.
    fn confirm(&self, confirm: &pages::Confirm) -> Response {
        html(StatusCode::OK, pages::confirm(&self.viewer(), confirm))
    }

    /// A bad value in a query or form (400), naming it.
    fn bad(&self, message: &str, back: &str) -> Refused {
        html(
            StatusCode::BAD_REQUEST,
            pages::failure(Some(&self.viewer()), "Bad request", message, back),
        )
        .into()
    }

    /// `request` answered as this caller, its JSON read back as `T`.
    async fn ask<T: DeserializeOwned>(
        &self,
        api: &Api,
        request: Request,
        back: &str,
    ) -> Result<T, Refused> {
        let answer = counted(api, &self.caller, request, None)
            .await
            .map_err(|e| self.failed(&e, back))?;
        serde_json::from_str(&answer.json).map_err(|e| {
            let e = hoist_control::Error::new(
                ErrorKind::Unavailable,
                format!("hoist answered in a shape this page does not know: {e}"),
            );
            self.failed(&e, back)
        })
    }

    /// Runs an action, then back to `back`; a refusal is a page saying why.
    async fn act(&self, api: &Api, request: Request, back: &str) -> Page {
        match counted(api, &self.caller, request, None).await {
            Ok(_) => Ok(see_other(back, &[])),
            Err(e) => Err(self.failed(&e, back)),
        }
    }
}

impl FromRequestParts<Api> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Response> {
        let now = api.web.now();
        let here = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let to_sign_in = |why: Option<&str>| {
            let mut location = format!("/signin?next={}", crate::percent::encode(&here));
            if let Some(why) = why {
                location.push_str("&ended=");
                location.push_str(why);
            }
            see_other(&location, &[])
        };
        let id = parts
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| session::cookie(v, SESSION_COOKIE))
            .unwrap_or("")
            .to_string();
        let found = api.web.sessions.find(&id, now);
        let session = match found {
            Found::Active(session) => session,
            Found::Expired => return Err(to_sign_in(Some("session"))),
            Found::Unknown => return Err(to_sign_in(None)),
        };
        match api.auth.authenticate(&session.token).await {
            Ok(mut caller) => {
                caller.via = Some(VIA.to_string());
                Ok(SignedIn {
                    caller,
                    csrf: session.csrf,
                    session: id,
                    now,
                })
            }
            Err(e) if e.kind() == ErrorKind::Unauthenticated => {
                api.web.sessions.close(&id);
                Err(to_sign_in(Some("token")))
            }
            Err(e) => Err(html(
                status_of(e.kind()).0,
                pages::failure(None, "Unavailable", e.message(), "/"),
            )),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct AtQuery {
    at: Option<String>,
}

/// `?at=`: a time (RFC 3339, or a span back), or none for now; an empty field is none.
fn at_of(query: &AtQuery) -> Result<Option<DateTime<Utc>>, hoist_control::Error> {
    match query.at.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => parse_instant("at", text).map(Some),
    }
}

async fn pipelines(State(api): State<Api>, signed: SignedIn, Query(query): Query<AtQuery>) -> Page {
    let at = at_of(&query).map_err(|e| signed.bad(e.message(), "/"))?;
    let names = api
        .hoist
        .app_names(&signed.caller.principal)
        .await
        .map_err(|e| signed.failed(&e, "/"))?;
    let mut apps = Vec::with_capacity(names.len());
    for app in names {
        let request = Request::Status {
            app: app.clone(),
            at,
        };
        let status: pages::Status = match signed.ask(&api, request, "/").await {
            Ok(status) => status,
            // An app created after `at` did not exist then: it is left out.
            Err(_) if at.is_some() => continue,
            Err(page) => return Err(page),
        };
        let allowed = status
            .envs
            .iter()
            .enumerate()
            .map(|(i, (env, _))| Allowed {
                promote_into: i > 0
                    && env
                        .parse::<EnvName>()
                        .is_ok_and(|env| signed.may(Action::Promote, &app, &env)),
                ..Allowed::default()
            })
            .collect();
        apps.push((status, allowed));
    }
    let shown_at = at.map(hoist_control::views::timestamp);
    Ok(html(
        StatusCode::OK,
        pages::pipelines(&signed.viewer(), &apps, shown_at.as_deref()),
    ))
}

async fn timeline(
    State(api): State<Api>,
    signed: SignedIn,
    EnvPath(app, env): EnvPath,
    Query(query): Query<AtQuery>,
) -> Page {
    let at = at_of(&query).map_err(|e| signed.bad(e.message(), "/"))?;
    let releases: Vec<pages::Release> = signed
        .ask(
            &api,
            Request::Releases {
                app: app.clone(),
                env: env.clone(),
                at,
                limit: Some(TIMELINE_RELEASES),
            },
            "/",
        )
        .await?;
    let status: pages::Status = signed
        .ask(
            &api,
            Request::Status {
                app: app.clone(),
                at,
            },
            "/",
        )
        .await?;
    let rollouts: Vec<pages::AuditEntry> = signed
        .ask(
            &api,
            Request::Audit {
                query: hoist_control::AuditQuery {
                    app: Some(app.clone()),
                    env: Some(env.clone()),
                    kind: Some("rollout".into()),
                    until: at,
                    ..Default::default()
                },
                limit: Some(TIMELINE_ROLLOUTS),
            },
            "/",
        )
        .await?;
    let mut by_version: BTreeMap<u64, Vec<pages::AuditEntry>> = BTreeMap::new();
    // Oldest first under each release.
    for entry in rollouts.into_iter().rev() {
        if let Some(version) = pages::rollout_version(&entry.summary) {
            by_version.entry(version).or_default().push(entry);
        }
    }
    let Some((_, env_status)) = status.envs.iter().find(|(name, _)| name == env.as_str()) else {
        let e = hoist_control::Error::rejected(format!("env {env} is not in {app}'s pipeline"));
        return Err(signed.failed(&e, "/"));
    };
    let allowed = Allowed {
        rollback: signed.may(Action::Rollback, &app, &env),
        lock: signed.may(Action::Lock, &app, &env),
        promote_into: false,
    };
    let shown_at = at.map(hoist_control::views::timestamp);
    Ok(html(
        StatusCode::OK,
        pages::timeline(
            &signed.viewer(),
            app.as_str(),
            env.as_str(),
            env_status,
            &releases,
            &by_version,
            allowed,
            shown_at.as_deref(),
        ),
    ))
}

#[derive(Debug, Deserialize)]
struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn diff(
    State(api): State<Api>,
    signed: SignedIn,
    EnvPath(app, env): EnvPath,
    Query(query): Query<DiffQuery>,
) -> Page {
    let back = pages::env_path(app.as_str(), env.as_str());
    let version = |text: Option<&str>| {
        text.unwrap_or("")
            .parse::<ReleaseVersion>()
            .map_err(|e| signed.bad(&format!("bad query: {e}"), &back))
    };
    let (from, to) = (
        version(query.from.as_deref())?,
        version(query.to.as_deref())?,
    );
    let request = Request::Diff { app, env, from, to };
    let diff: pages::Diff = signed.ask(&api, request, &back).await?;
    Ok(html(StatusCode::OK, pages::diff(&signed.viewer(), &diff)))
}

async fn audit(
    State(api): State<Api>,
    signed: SignedIn,
    Query(raw): Query<Vec<(String, String)>>,
) -> Page {
    // The form sends every field, empty ones too: an empty filter is no filter.
    let given: Vec<(String, String)> = raw
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .collect();
    let mut params = serde_urlencoded::to_string(&given)
        .ok()
        .and_then(|q| serde_urlencoded::from_str::<AuditParams>(&q).ok())
        .ok_or_else(|| {
            signed.bad(
                "bad query: the audit filters are app, env, actor, kind, since, until and limit (a number)",
                "/audit",
            )
        })?;
    params.limit = Some(params.limit.unwrap_or(100));
    let request = params
        .clone()
        .into_request()
        .map_err(|e| signed.bad(&e.message, "/audit"))?;
    let entries: Vec<pages::AuditEntry> = signed.ask(&api, request, "/audit").await?;
    let kinds = hoist_control::AUDIT_KINDS;
    Ok(html(
        StatusCode::OK,
        pages::audit(&signed.viewer(), &params, kinds, &entries),
    ))
}

/// The SSE stream of what the session may view (`GET /v1/events`'s, followed from now or from
/// `Last-Event-ID`), for the pages' script.
async fn live(State(api): State<Api>, signed: SignedIn, headers: HeaderMap) -> Page {
    let from = match crate::events::last_event_id(&headers) {
        Ok(Some(id)) => id.saturating_add(1),
        Ok(None) => {
            let last = api.hoist.last_seq().await;
            last.map_err(|e| signed.failed(&e, "/"))?.saturating_add(1)
        }
        Err(e) => return Err(signed.bad(&e.message, "/")),
    };
    let stream = crate::events::follow(api, signed.caller.principal, from);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        assets::SCRIPT,
    )
        .into_response()
}

/// A posted form's fields, its CSRF token checked first: a form without the session's token is
/// refused (403) before anything is read from it or done.
fn form<T: DeserializeOwned>(signed: &SignedIn, body: &Bytes, back: &str) -> Result<T, Refused> {
    let posted: Csrf = serde_urlencoded::from_bytes(body).unwrap_or_default();
    signed.check_csrf(&posted.csrf)?;
    serde_urlencoded::from_bytes(body).map_err(|e| signed.bad(&format!("bad form: {e}"), back))
}

/// The CSRF token of any form (its other fields ignored).
#[derive(Debug, Default, Deserialize)]
struct Csrf {
    #[serde(default)]
    csrf: String,
}

#[derive(Debug, Deserialize)]
struct RollbackForm {
    to: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ToQuery {
    to: Option<String>,
}

/// `?to=` or a form's `to`: a release number, or none for the one before the current one.
fn version_of(
    signed: &SignedIn,
    text: Option<&str>,
    back: &str,
) -> Result<Option<ReleaseVersion>, Refused> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|e| signed.bad(&format!("bad version: {e}"), back)),
    }
}

/// Refuses, before its form is shown, an action the viewer may not take: in the authorizer's
/// own words.
fn may(
    signed: &SignedIn,
    action: Action,
    app: &AppName,
    env: &EnvName,
    back: &str,
) -> Result<(), Refused> {
    signed
        .allowed(action, app, env)
        .map_err(|denied| signed.failed(&hoist_control::Error::from(denied), back))
}

async fn rollback_confirm(
    signed: SignedIn,
    EnvPath(app, env): EnvPath,
    Query(query): Query<ToQuery>,
) -> Page {
    let back = pages::env_path(app.as_str(), env.as_str());
    may(&signed, Action::Rollback, &app, &env, &back)?;
    let (question, hidden) = match version_of(&signed, query.to.as_deref(), &back)? {
        Some(to) => (
            format!("Roll back {app}/{env} to {to}? This makes a new release that copies {to}, and pins {env} until unpinned."),
            vec![("to", to.get().to_string())],
        ),
        None => (
            format!("Roll back {app}/{env} to the release before the current one? This makes a new release that copies it, and pins {env} until unpinned."),
            Vec::new(),
        ),
    };
    let confirm = pages::Confirm {
        title: format!("Roll back {app}/{env}"),
        question,
        action: format!("{back}/rollback"),
        hidden,
        reason: false,
        button: "Roll back",
        back,
    };
    Ok(signed.confirm(&confirm))
}

async fn rollback(
    State(api): State<Api>,
    signed: SignedIn,
    EnvPath(app, env): EnvPath,
    body: Bytes,
) -> Page {
    let back = pages::env_path(app.as_str(), env.as_str());
    let posted: RollbackForm = form(&signed, &body, &back)?;
    let to = version_of(&signed, posted.to.as_deref(), &back)?;
    signed
        .act(&api, Request::Rollback { app, env, to }, &back)
        .await
}

async fn lock_confirm(signed: SignedIn, EnvPath(app, env): EnvPath) -> Page {
    let back = pages::env_path(app.as_str(), env.as_str());
    may(&signed, Action::Lock, &app, &env, &back)?;
    let confirm = pages::Confirm {
        title: format!("Lock {app}/{env}"),
        question: format!("Lock {app}/{env}? Deploys, config changes and promotions into it are refused until it is unlocked; rollback stays allowed."),
        action: format!("{back}/lock"),
        hidden: Vec::new(),
        reason: true,
        button: "Lock",
        back,
    };
    Ok(signed.confirm(&confirm))
}

#[derive(Debug, Deserialize)]
struct LockForm {
    #[serde(default)]
    reason: String,
}

async fn lock(
    State(api): State<Api>,
    signed: SignedIn,
    EnvPath(app, env): EnvPath,
    body: Bytes,
) -> Page {
    let back = pages::env_path(app.as_str(), env.as_str());
    let posted: LockForm = form(&signed, &body, &back)?;
    let request = Request::Lock {
        app,
        env,
        reason: posted.reason,
    };
    signed.act(&api, request, &back).await
}

async fn unlock_confirm(signed: SignedIn, EnvPath(app, env): EnvPath) -> Page {
    let back = pages::env_path(app.as_str(), env.as_str());
    may(&signed, Action::Lock, &app, &env, &back)?;
    let confirm = pages::Confirm {
        title: format!("Unlock {app}/{env}"),
        question: format!("Unlock {app}/{env}? Deploys and promotions into it are taken again."),
        action: format!("{back}/unlock"),
        hidden: Vec::new(),
        reason: false,
        button: "Unlock",
        back,
    };
    Ok(signed.confirm(&confirm))
}

async fn unlock(
    State(api): State<Api>,
    signed: SignedIn,
    EnvPath(app, env): EnvPath,
    body: Bytes,
) -> Page {
    let back = pages::env_path(app.as_str(), env.as_str());
    let _: Csrf = form(&signed, &body, &back)?;
    signed.act(&api, Request::Unlock { app, env }, &back).await
}

/// `?from=` of a promotion, or its form's `from`.
#[derive(Debug, Deserialize)]
struct FromEnv {
    from: Option<String>,
}

/// The env named as a promotion's source, or a 400 page.
fn source_env(signed: &SignedIn, from: Option<&str>) -> Result<EnvName, Refused> {
    from.unwrap_or("")
        .parse::<EnvName>()
        .map_err(|e| signed.bad(&format!("bad from: {e}"), "/"))
}

async fn promote_confirm(
    State(api): State<Api>,
    signed: SignedIn,
    AppPath(app): AppPath,
    Query(query): Query<FromEnv>,
) -> Page {
    let from = source_env(&signed, query.from.as_deref())?;
    let request = Request::Status {
        app: app.clone(),
        at: None,
    };
    let status: pages::Status = signed.ask(&api, request, "/").await?;
    let at = status.envs.iter().position(|(env, _)| env == from.as_str());
    let (Some((_, source)), Some((next, _))) = (
        at.and_then(|i| status.envs.get(i)),
        at.and_then(|i| status.envs.get(i + 1)),
    ) else {
        let e =
            hoist_control::Error::rejected(format!("{app}/{from} has no next env to promote into"));
        return Err(signed.failed(&e, "/"));
    };
    if let Ok(next) = next.parse::<EnvName>() {
        may(&signed, Action::Promote, &app, &next, "/")?;
    }
    let version = source
        .version
        .map_or("its current release".to_string(), |v| format!("v{v}"));
    let confirm = pages::Confirm {
        title: format!("Promote {app} {from} → {next}"),
        question: format!(
            "Promote {app}/{from} {version} into {next}? This makes a new release of {next} with {from}'s image and config."
        ),
        action: format!("/apps/{app}/promote"),
        hidden: vec![("from", from.to_string())],
        reason: false,
        button: "Promote",
        back: "/".into(),
    };
    Ok(signed.confirm(&confirm))
}

async fn promote(
    State(api): State<Api>,
    signed: SignedIn,
    AppPath(app): AppPath,
    body: Bytes,
) -> Page {
    let posted: FromEnv = form(&signed, &body, "/")?;
    let from = source_env(&signed, posted.from.as_deref())?;
    let request = Request::Promote {
        app,
        from,
        to: None,
    };
    signed.act(&api, request, "/").await
}

#[derive(Debug, Default, Deserialize)]
struct SignInQuery {
    next: Option<String>,
    /// Why the last session ended: `session` (its time was up) or `token` (revoked, expired).
    ended: Option<String>,
}

fn ended_notice(ended: Option<&str>) -> Option<&'static str> {
    match ended? {
        "session" => Some("Your session has ended: sign in again."),
        "token" => Some(
            "Your token no longer opens hoist (revoked or expired): sign in with a current one.",
        ),
        _ => None,
    }
}

/// No session id or CSRF token can be made: 503.
fn no_randomness() -> Response {
    let message = "the OS random number generator failed";
    let page = pages::failure(None, "Unavailable", message, "/signin");
    html(StatusCode::SERVICE_UNAVAILABLE, page)
}

/// The sign-in form, with a fresh CSRF token in a cookie of its own and in the form.
fn sign_in_page(api: &Api, status: StatusCode, next: &str, notice: Option<&str>) -> Response {
    let Ok(csrf) = session::random_token() else {
        return no_randomness();
    };
    let mut response = html(status, pages::sign_in(&csrf, next, notice));
    let cookie = session::set_cookie(
        SIGNIN_COOKIE,
        &csrf,
        Some(session::SIGNIN_TTL),
        api.web.settings.secure_cookies,
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn sign_in_form(State(api): State<Api>, Query(query): Query<SignInQuery>) -> Response {
    let next = local_path(query.next.as_deref());
    sign_in_page(
        &api,
        StatusCode::OK,
        next,
        ended_notice(query.ended.as_deref()),
    )
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    next: Option<String>,
}

async fn sign_in(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(posted) = serde_urlencoded::from_bytes::<SignInForm>(&body) else {
        return sign_in_page(
            &api,
            StatusCode::BAD_REQUEST,
            "/",
            Some("That form was not the sign-in form: try again."),
        );
    };
    let next = local_path(posted.next.as_deref()).to_string();
    let expected = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| session::cookie(v, SIGNIN_COOKIE))
        .unwrap_or("");
    if !session::csrf_matches(expected, &posted.csrf) {
        return sign_in_page(
            &api,
            StatusCode::FORBIDDEN,
            &next,
            Some("That sign-in form expired or came from elsewhere: sign in again."),
        );
    }
    let token = posted.token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN {
        return sign_in_page(
            &api,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Paste a token from `hoist access token create`."),
        );
    }
    match api.auth.authenticate(token).await {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::Unauthenticated => {
            // The message names the token's id at most, never the token.
            let notice = format!("That token does not open hoist: {}", e.message());
            return sign_in_page(&api, StatusCode::UNAUTHORIZED, &next, Some(&notice));
        }
        Err(e) => {
            return html(
                status_of(e.kind()).0,
                pages::failure(None, "Unavailable", e.message(), "/signin"),
            )
        }
    }
    let now = api.web.now();
    let Ok((id, _)) = api.web.sessions.open(token.to_string(), now) else {
        return no_randomness();
    };
    let secure = api.web.settings.secure_cookies;
    let cookies = [
        session::set_cookie(SESSION_COOKIE, &id, None, secure),
        session::set_cookie(SIGNIN_COOKIE, "", Some(Duration::ZERO), secure),
    ];
    see_other(&next, &cookies)
}

async fn sign_out(State(api): State<Api>, signed: SignedIn, body: Bytes) -> Page {
    let _: Csrf = form(&signed, &body, "/")?;
    api.web.sessions.close(&signed.session);
    let cookie = session::set_cookie(
        SESSION_COOKIE,
        "",
        Some(Duration::ZERO),
        api.web.settings.secure_cookies,
    );
    Ok(see_other("/signin", &[cookie]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_path_of_this_site_is_gone_back_to() {
        assert_eq!(
            local_path(Some("/apps/api/envs/staging?at=2h")),
            "/apps/api/envs/staging?at=2h"
        );
        for elsewhere in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "",
            "apps",
        ] {
            assert_eq!(local_path(Some(elsewhere)), "/", "{elsewhere:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}
