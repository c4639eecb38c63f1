//! The web UI driven in-process (tower's `oneshot` on the router) over a real embedded store
//! holding a fixed history (`fixtures/web_history.jsonl`, imported as exported: fixed times and
//! ids) and a fixed clock: each page's HTML is a file snapshot (`UPDATE_EXPECT=1` refreshes
//! them), then the rules around them — who sees which button, forged and refused posts that
//! append nothing, sessions that end.
//!
//! Tokens: fixed ones (`router_with_auth_and_web`), one per role: the pages authorize through
//! control as they would with real tokens (tests/e2e/web.rs drives real tokens in a browser).

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use expect_test::{expect_file, ExpectFile};
use futures::future::BoxFuture;
use hoist_control::engine::{Actor, Command, Grant, Principal, Role};
use hoist_control::{Backend, Caller, Config, Error, ErrorKind, Hoist};
use hoist_server::{Authenticator, Stopping, WebSettings};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const OWNER: &str = "owner-token";
const OPERATOR: &str = "operator-token";
const VIEWER: &str = "viewer-token";

/// One token per role, on every app.
struct FixedTokens;

impl Authenticator for FixedTokens {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, hoist_control::Result<Caller>> {
        Box::pin(async move {
            let identity = |name: &str, role| {
                let name: Actor = name.parse().expect("an identity");
                let grants = vec![Grant {
                    role,
                    app: None,
                    env: None,
                }];
                (name.clone(), Principal::Identity { name, grants })
            };
            let (actor, principal) = match token {
                OWNER => (
                    "root@example.com".parse().expect("an actor"),
                    Principal::Owner,
                ),
                OPERATOR => identity("bo@example.com", Role::Operator),
                VIEWER => identity("cy@example.com", Role::Viewer),
                _ => {
                    return Err(Error::new(
                        ErrorKind::Unauthenticated,
                        "token not recognized",
                    ))
                }
            };
            Ok(Caller {
                principal,
                actor,
                via: Some("api".into()),
                command_id: None,
            })
        })
    }
}

/// An hour after the fixture's history was made.
fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 13, 30, 0).unwrap()
}

const HISTORY: &str = include_str!("fixtures/web_history.jsonl");

struct Fixture {
    _dir: tempfile::TempDir,
    hoist: Hoist,
    router: Router,
}

impl Fixture {
    async fn new(web: WebSettings) -> Fixture {
        let dir = tempfile::tempdir().expect("a temp dir");
        let hoist = Hoist::open(Config {
            backend: Backend::Embedded {
                dir: Some(dir.path().join("store")),
            },
            cache: None,
            secret_key_file: Some(dir.path().join("secret.key")),
        })
        .expect("settings");
        let lines = HISTORY
            .lines()
            .enumerate()
            .map(|(n, line)| (n + 1, Ok(line.to_string())));
        hoist
            .import(&Principal::Owner, lines)
            .await
            .expect("the fixed history imports");
        let router = hoist_server::router_with_auth_and_web(
            hoist.clone(),
            Arc::new(FixedTokens),
            Stopping::never(),
            web,
        );
        Fixture {
            _dir: dir,
            hoist,
            router,
        }
    }

    async fn fixed() -> Fixture {
        Fixture::new(WebSettings {
            clock: fixed_now,
            ..WebSettings::default()
        })
        .await
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("answered");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("a body");
        Reply {
            status,
            location: headers
                .get(header::LOCATION)
                .map(|v| v.to_str().unwrap().to_string()),
            cookies: headers
                .get_all(header::SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect(),
            body: String::from_utf8(bytes.to_bytes().to_vec()).expect("UTF-8"),
        }
    }

    /// Signs in with `token` as a browser would: the form (and its cookie), then the post.
    async fn sign_in(&self, token: &str) -> Session {
        let form = self.send(get("/signin", None)).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let signin_cookie = cookie_pair(&form.cookies, "hoist_signin");
        let csrf = csrf_of(&form.body);
        let body = format!("csrf={csrf}&token={token}&next=%2F");
        let posted = self
            .send(post("/signin", Some(&signin_cookie), &body))
            .await;
        assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
        assert_eq!(posted.location.as_deref(), Some("/"));
        let session_cookie = posted
            .cookies
            .iter()
            .find(|c| c.starts_with("hoist_session="))
            .expect("a session cookie");
        assert!(
            session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Strict"),
            "{session_cookie}"
        );
        let cookie = cookie_pair(&posted.cookies, "hoist_session");
        let home = self.send(get("/", Some(&cookie))).await;
        Session {
            cookie,
            csrf: csrf_of(&home.body),
        }
    }

    async fn page(&self, session: &Session, uri: &str) -> String {
        let reply = self.send(get(uri, Some(&session.cookie))).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        assert!(!reply.body.contains(OWNER) && !reply.body.contains(OPERATOR));
        reply.body
    }

    async fn last_seq(&self) -> u64 {
        self.hoist.last_seq().await.expect("the log's end")
    }
}

struct Reply {
    status: StatusCode,
    location: Option<String>,
    cookies: Vec<String>,
    body: String,
}

struct Session {
    /// `hoist_session=…`, as a `Cookie` header sends it.
    cookie: String,
    csrf: String,
}

fn get(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::builder().method(Method::GET).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).unwrap()
}

fn post(uri: &str, cookie: Option<&str>, form: &str) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(form.to_string())).unwrap()
}

/// `name=value` of a `Set-Cookie` among `cookies`.
fn cookie_pair(cookies: &[String], name: &str) -> String {
    let set = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"));
    set.split(';').next().unwrap().to_string()
}

const CSRF_FIELD: &str = "name=\"csrf\" value=\"";

/// The CSRF token a page's forms carry.
fn csrf_of(html: &str) -> String {
    let at = html.find(CSRF_FIELD).expect("a form with a CSRF token") + CSRF_FIELD.len();
    html[at..at + 64].to_string()
}

/// A page as its snapshot holds it: one tag a line, without the (constant) style sheet, the
/// session's random CSRF token masked.
fn shown(html: &str, session: &Session) -> String {
    let start = html.find("<style>").expect("a style sheet");
    let end = html.find("</style>").expect("its end") + "</style>".len();
    let html = format!("{}<style>…</style>{}", &html[..start], &html[end..]);
    html.replace(&session.csrf, "CSRF").replace("><", ">\n<") + "\n"
}

fn snapshot(html: &str, session: &Session, expected: ExpectFile) {
    expected.assert_eq(&shown(html, session));
}

#[tokio::test]
async fn the_pipelines_page_shows_each_env_side_by_side() {
    let fixture = Fixture::fixed().await;
    let owner = fixture.sign_in(OWNER).await;
    let html = fixture.page(&owner, "/").await;
    snapshot(&html, &owner, expect_file!["snapshots/web_pipelines.html"]);
}

#[tokio::test]
async fn a_timeline_marks_rollbacks_and_shows_promotion_sources_and_the_lock() {
    let fixture = Fixture::fixed().await;
    let owner = fixture.sign_in(OWNER).await;
    let html = fixture.page(&owner, "/apps/api/envs/production").await;
    assert!(html.contains("↩ rollback"), "{html}");
    snapshot(
        &html,
        &owner,
        expect_file!["snapshots/web_timeline_production.html"],
    );
}

#[tokio::test]
async fn a_timeline_shows_rollout_outcomes_under_their_release() {
    let fixture = Fixture::fixed().await;
    let operator = fixture.sign_in(OPERATOR).await;
    let html = fixture.page(&operator, "/apps/api/envs/staging").await;
    assert!(html.contains("failed (exit 1)"), "{html}");
    snapshot(
        &html,
        &operator,
        expect_file!["snapshots/web_timeline_staging.html"],
    );
}

#[tokio::test]
async fn a_diff_shows_image_and_config_with_secrets_redacted() {
    let fixture = Fixture::fixed().await;
    let owner = fixture.sign_in(OWNER).await;
    let html = fixture
        .page(&owner, "/apps/api/envs/staging/diff?from=2&to=5")
        .await;
    assert!(html.contains("&lt;redacted&gt;"), "{html}");
    assert!(!html.contains("sk_live_example"), "{html}");
    snapshot(&html, &owner, expect_file!["snapshots/web_diff.html"]);
}

#[tokio::test]
async fn the_audit_page_filters_as_the_cli_does() {
    let fixture = Fixture::fixed().await;
    let viewer = fixture.sign_in(VIEWER).await;
    let html = fixture
        .page(
            &viewer,
            "/audit?app=api&env=&actor=&kind=rollback&since=&until=&limit=",
        )
        .await;
    snapshot(&html, &viewer, expect_file!["snapshots/web_audit.html"]);
    let everything = fixture.page(&viewer, "/audit").await;
    assert!(everything.contains("Promote staging v4"), "{everything}");
    let bad = fixture
        .send(get("/audit?kind=nonsense", Some(&viewer.cookie)))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.body.contains("invalid kind"), "{}", bad.body);
}

#[tokio::test]
async fn time_travel_shows_the_pipeline_as_it_was_without_actions() {
    let fixture = Fixture::fixed().await;
    let owner = fixture.sign_in(OWNER).await;
    // Just after production's first release (seq 5), before the second deploy.
    let at = HISTORY.lines().nth(4).unwrap();
    let at: serde_json::Value = serde_json::from_str(at).unwrap();
    let at = at["at"].as_str().unwrap();
    let html = fixture.page(&owner, &format!("/?at={at}")).await;
    assert!(html.contains("a past state"), "{html}");
    assert!(!html.contains("Promote staging"), "{html}");
    snapshot(
        &html,
        &owner,
        expect_file!["snapshots/web_pipelines_at.html"],
    );
    let timeline = fixture
        .page(&owner, &format!("/apps/api/envs/production?at={at}"))
        .await;
    assert!(timeline.contains("v1") && !timeline.contains("<strong>v3</strong>"));
    assert!(!timeline.contains("Roll back"), "{timeline}");
}

#[tokio::test]
async fn a_viewer_sees_no_action_and_is_refused_the_confirmation_page() {
    let fixture = Fixture::fixed().await;
    let viewer = fixture.sign_in(VIEWER).await;
    let html = fixture.page(&viewer, "/apps/api/envs/production").await;
    for action in ["Roll back", "Lock…", "Unlock…"] {
        assert!(!html.contains(action), "{action}: {html}");
    }
    let pipelines = fixture.page(&viewer, "/").await;
    assert!(!pipelines.contains("Promote"), "{pipelines}");
    let confirm = fixture
        .send(get(
            "/apps/api/envs/production/rollback",
            Some(&viewer.cookie),
        ))
        .await;
    assert_eq!(confirm.status, StatusCode::FORBIDDEN);
    assert!(
        confirm
            .body
            .contains("may not rollback on api/production: that needs the operator role"),
        "{}",
        confirm.body
    );
}

#[tokio::test]
async fn a_forged_post_is_refused_and_appends_nothing() {
    let fixture = Fixture::fixed().await;
    let operator = fixture.sign_in(OPERATOR).await;
    let viewer = fixture.sign_in(VIEWER).await;
    let before = fixture.last_seq().await;
    // No CSRF token, a wrong one, another session's.
    for form in [
        String::new(),
        "csrf=0000".to_string(),
        format!("csrf={}", viewer.csrf),
    ] {
        let reply = fixture
            .send(post(
                "/apps/api/envs/production/rollback",
                Some(&operator.cookie),
                &form,
            ))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{form}: {}",
            reply.body
        );
        assert!(reply.body.contains("CSRF token is missing or wrong"));
    }
    // A viewer's own, well-formed post: control's authorizer refuses it.
    let reply = fixture
        .send(post(
            "/apps/api/envs/production/rollback",
            Some(&viewer.cookie),
            &format!("csrf={}", viewer.csrf),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert!(
        reply.body.contains("needs the operator role"),
        "{}",
        reply.body
    );
    // No session at all: to sign-in.
    let reply = fixture
        .send(post("/apps/api/envs/production/lock", None, "reason=x"))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(fixture.last_seq().await, before, "nothing appended");
}

#[tokio::test]
async fn a_confirmed_rollback_appends_one_release_as_the_identity_via_web() {
    let fixture = Fixture::fixed().await;
    let operator = fixture.sign_in(OPERATOR).await;
    let confirm = fixture
        .page(&operator, "/apps/api/envs/staging/rollback?to=4")
        .await;
    assert!(
        confirm.contains("Roll back api/staging to v4?"),
        "{confirm}"
    );
    let reply = fixture
        .send(post(
            "/apps/api/envs/staging/rollback",
            Some(&operator.cookie),
            &format!("csrf={}&to=4", operator.csrf),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location.as_deref(), Some("/apps/api/envs/staging"));
    let html = fixture.page(&operator, "/apps/api/envs/staging").await;
    assert!(html.contains("<strong>v6</strong>"), "{html}");
    assert!(html.contains("copy of v4"), "{html}");
    let audit = fixture.page(&operator, "/audit?kind=rollback").await;
    assert!(
        audit.contains("bo@example.com<span class=\"muted\"> via web"),
        "{audit}"
    );
}

#[tokio::test]
async fn a_lock_needs_its_reason_and_an_unlock_lifts_it() {
    let fixture = Fixture::fixed().await;
    let owner = fixture.sign_in(OWNER).await;
    let path = "/apps/api/envs/staging";
    let lock = format!("{path}/lock");
    let reply = fixture
        .send(post(
            &lock,
            Some(&owner.cookie),
            &format!("csrf={}&reason=", owner.csrf),
        ))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let reply = fixture
        .send(post(
            &lock,
            Some(&owner.cookie),
            &format!("csrf={}&reason=incident+42", owner.csrf),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert!(fixture.page(&owner, path).await.contains("incident 42"));
    let reply = fixture
        .send(post(
            &format!("{path}/unlock"),
            Some(&owner.cookie),
            &format!("csrf={}", owner.csrf),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert!(!fixture.page(&owner, path).await.contains("incident 42"));
}

#[tokio::test]
async fn an_ended_session_goes_back_to_sign_in() {
    let fixture = Fixture::new(WebSettings {
        session_lifetime: Duration::ZERO,
        clock: fixed_now,
        ..WebSettings::default()
    })
    .await;
    let form = fixture.send(get("/signin", None)).await;
    let signin_cookie = cookie_pair(&form.cookies, "hoist_signin");
    let body = format!("csrf={}&token={OWNER}", csrf_of(&form.body));
    let posted = fixture
        .send(post("/signin", Some(&signin_cookie), &body))
        .await;
    let cookie = cookie_pair(&posted.cookies, "hoist_session");
    let reply = fixture
        .send(get("/apps/api/envs/staging", Some(&cookie)))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        reply.location.as_deref(),
        Some("/signin?next=%2Fapps%2Fapi%2Fenvs%2Fstaging&ended=session")
    );
    let again = fixture
        .send(get(reply.location.as_deref().unwrap(), None))
        .await;
    assert!(
        again.body.contains("Your session has ended"),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn sign_in_refuses_a_bad_token_or_a_form_from_elsewhere_and_sign_out_ends_it() {
    let fixture = Fixture::fixed().await;
    let form = fixture.send(get("/signin", None)).await;
    let signin_cookie = cookie_pair(&form.cookies, "hoist_signin");
    let csrf = csrf_of(&form.body);
    let wrong = fixture
        .send(post(
            "/signin",
            Some(&signin_cookie),
            &format!("csrf={csrf}&token=hoist_guess"),
        ))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("token not recognized") && !wrong.body.contains("hoist_guess"));
    let forged = fixture
        .send(post("/signin", None, &format!("csrf={csrf}&token={OWNER}")))
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    assert!(forged
        .cookies
        .iter()
        .all(|c| !c.starts_with("hoist_session=")));

    let owner = fixture.sign_in(OWNER).await;
    let out = fixture
        .send(post(
            "/signout",
            Some(&owner.cookie),
            &format!("csrf={}", owner.csrf),
        ))
        .await;
    assert_eq!(out.location.as_deref(), Some("/signin"));
    assert!(out.cookies.iter().any(|c| c.contains("Max-Age=0")));
    let after = fixture.send(get("/", Some(&owner.cookie))).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_confirmed_promotion_releases_the_next_env_unless_it_is_locked() {
    let fixture = Fixture::fixed().await;
    let owner = fixture.sign_in(OWNER).await;
    let pipelines = fixture.page(&owner, "/").await;
    assert!(
        pipelines.contains("Promote staging v5 here…"),
        "{pipelines}"
    );
    let confirm = fixture.page(&owner, "/apps/api/promote?from=staging").await;
    assert!(
        confirm.contains("Promote api/staging v5 into production?"),
        "{confirm}"
    );
    let promote = |csrf: &str| {
        post(
            "/apps/api/promote",
            Some(&owner.cookie),
            &format!("csrf={csrf}&from=staging"),
        )
    };
    // Production is locked in the fixed history: refused by control, nothing appended.
    let before = fixture.last_seq().await;
    let refused = fixture.send(promote(&owner.csrf)).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("is locked by bo@example.com"),
        "{}",
        refused.body
    );
    assert_eq!(fixture.last_seq().await, before);
    let unlock = post(
        "/apps/api/envs/production/unlock",
        Some(&owner.cookie),
        &format!("csrf={}", owner.csrf),
    );
    assert_eq!(fixture.send(unlock).await.status, StatusCode::SEE_OTHER);
    // Unlocked, still pinned by the rollback: the CLI's `promote` refuses a pinned env too.
    let pinned = fixture.send(promote(&owner.csrf)).await;
    assert_eq!(
        pinned.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        pinned.body
    );
    assert!(pinned.body.contains("pinned"), "{}", pinned.body);
    // Unpinned (the CLI's `unpin`), the promotion goes through.
    let root = Caller::owner("root@example.com".parse().unwrap());
    let unpin = Command::Unpin {
        env: "production".parse().unwrap(),
    };
    let app = "api".parse().unwrap();
    fixture.hoist.execute(&root, &app, unpin).await.unwrap();
    let promoted = fixture.send(promote(&owner.csrf)).await;
    assert_eq!(promoted.status, StatusCode::SEE_OTHER, "{}", promoted.body);
    let timeline = fixture.page(&owner, "/apps/api/envs/production").await;
    assert!(timeline.contains("<strong>v4</strong>"), "{timeline}");
    assert!(timeline.contains("from staging v5"), "{timeline}");
}
