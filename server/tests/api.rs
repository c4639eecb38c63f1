//! The HTTP API driven in-process (tower's `oneshot` on the router) over a real embedded store in
//! a temp dir: the anonymous routes, the refusals (401, 400, 404, 405, 413), every route's body
//! against the CLI's view of the same answer, the event stream, the metrics as a scraper parses
//! them and the OpenAPI document.
//!
//! Tokens: the production router asks `Hoist::authenticate`, which knows no token until
//! identities are events, so the refusals of unknown tokens run on it; the routes behind a token
//! run on `router_with` and two fixed tokens — the store's owner, and an identity without grants.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use futures::future::BoxFuture;
use hoist_control::engine::{Actor, AppName, EnvName, Principal};
use hoist_control::views::{AppView, ReleaseView};
use hoist_control::Request as Command;
use hoist_control::{Backend, Caller, Config, Error, ErrorKind, Hoist};
use hoist_server::{Authenticator, Stopping};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const OWNER: &str = "owner-token-0123456789";
const NOBODY: &str = "nobody-token-0123456789";
const IMAGE: &str =
    "registry.example/web@sha256:0000000000000000000000000000000000000000000000000000000000000001";
const IMAGE_2: &str =
    "registry.example/web@sha256:0000000000000000000000000000000000000000000000000000000000000002";

/// Two fixed tokens: the store's owner (allowed everything) and an identity with no grant.
struct FixedTokens;

impl Authenticator for FixedTokens {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, hoist_control::Result<Caller>> {
        Box::pin(async move {
            let actor: Actor = "ana@example.com".parse().expect("an actor");
            let principal = match token {
                OWNER => Principal::Owner,
                NOBODY => Principal::Identity {
                    name: "nobody@example.com".parse().expect("an actor"),
                    grants: Vec::new(),
                },
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

struct Fixture {
    _dir: tempfile::TempDir,
    hoist: Hoist,
    /// The production router: `Hoist::authenticate`.
    real: Router,
    /// The router with [`FixedTokens`].
    api: Router,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("a temp dir");
        let hoist = Hoist::open(Config {
            backend: Backend::Embedded {
                dir: Some(dir.path().join("store")),
            },
            cache: None,
            secret_key_file: Some(dir.path().join("secret.key")),
        })
        .expect("settings");
        let real = hoist_server::router(hoist.clone(), Stopping::never());
        let api =
            hoist_server::router_with(hoist.clone(), Arc::new(FixedTokens), Stopping::never());
        Fixture {
            _dir: dir,
            hoist,
            real,
            api,
        }
    }

    /// A fixture whose store holds app `web` (staging, production).
    async fn with_app() -> Fixture {
        let fixture = Fixture::new();
        let (status, _, body) = fixture
            .send(
                Method::POST,
                "/v1/apps",
                Some(OWNER),
                Some(r#"{"app": "web"}"#),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        fixture
    }

    async fn last_seq(&self) -> u64 {
        self.hoist.last_seq().await.expect("the log's end")
    }

    async fn as_owner(
        &self,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        self.send(method, uri, Some(OWNER), body).await
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        call(&self.api, request(method, uri, token, body)).await
    }
}

fn request(method: Method, uri: &str, token: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("a request")
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("a body").to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
    (parts.status, parts.headers, text)
}

/// API.md's error shape, with `status` and `code`; the message is one line.
fn assert_error(status: StatusCode, body: &str, expected: StatusCode, code: &str) -> String {
    assert_eq!(status, expected, "{body}");
    let value: Value = serde_json::from_str(body).expect("a JSON error");
    assert_eq!(value["error"]["code"], code, "{body}");
    let message = value["error"]["message"].as_str().expect("a message");
    assert!(
        !message.is_empty() && !message.contains('\n'),
        "{message:?}"
    );
    assert_eq!(value.as_object().map(|o| o.len()), Some(1), "{body}");
    message.to_string()
}

/// The bytes `hoist --json` prints for `value`.
fn cli_json<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("serializes");
    text.push('\n');
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_routes_answer_without_a_token() {
    let fixture = Fixture::with_app().await;
    for router in [&fixture.real, &fixture.api] {
        let (status, headers, body) =
            call(router, request(Method::GET, "/healthz", None, None)).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "{\n  \"ok\": true\n}\n")
        );
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let (status, _, body) = call(router, request(Method::GET, "/readyz", None, None)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ready: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(ready, json!({"ready": true, "last_seq": 1, "models_at": 1}));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_where_there_is_no_store() {
    let fixture = Fixture::new();
    let (status, _, body) = call(&fixture.real, request(Method::GET, "/readyz", None, None)).await;
    let message = assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    assert!(message.contains("no hoist store"), "{message}");
    let (status, _, _) = call(&fixture.real, request(Method::GET, "/healthz", None, None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_malformed_and_unknown_tokens_are_401_and_append_nothing() {
    let fixture = Fixture::with_app().await;
    let before = fixture.last_seq().await;
    let cases: [(&str, Option<&str>); 5] = [
        ("missing", None),
        ("not bearer", Some("Basic YW5hOnNlY3JldA==")),
        ("empty", Some("Bearer ")),
        ("two words", Some("Bearer a b")),
        ("unknown", Some("Bearer hst_unknown_token_value")),
    ];
    for (what, authorization) in cases {
        for (method, uri, body) in [
            (Method::GET, "/v1/apps", None),
            (Method::POST, "/v1/apps", Some(r#"{"app": "api"}"#)),
            (
                Method::POST,
                "/v1/apps/web/envs/staging/deploy",
                Some(&*format!(r#"{{"image": "{IMAGE}"}}"#)),
            ),
            (Method::GET, "/v1/events", None),
        ] {
            let mut builder = Request::builder().method(method.clone()).uri(uri);
            if let Some(value) = authorization {
                builder = builder.header(header::AUTHORIZATION, value);
            }
            let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
            let request = builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .unwrap();
            // The production router: `Hoist::authenticate` knows no token yet.
            let (status, headers, text) = call(&fixture.real, request).await;
            let message = assert_error(status, &text, StatusCode::UNAUTHORIZED, "unauthenticated");
            assert!(
                headers[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{what}"
            );
            assert!(!message.contains("YW5hOnNlY3JldA"), "{message}");
            assert!(!message.contains("hst_unknown"), "{message}");
        }
    }
    assert_eq!(
        fixture.last_seq().await,
        before,
        "a refused request appends nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_in_the_query_string_is_refused_on_every_route() {
    let fixture = Fixture::with_app().await;
    for uri in [
        "/v1/apps?token=abc",
        "/v1/apps?limit=1&access_token=abc",
        "/v1/apps?%74oken=abc",
        "/healthz?Token=abc",
        "/v1/nowhere?bearer=abc",
    ] {
        // Even with a valid header: the URL has leaked the credential already.
        let (status, _, body) = fixture.send(Method::GET, uri, Some(OWNER), None).await;
        let message = assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
        assert!(message.contains("Authorization header"), "{message}");
        assert!(!message.contains("abc"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_413_with_or_without_a_length() {
    let fixture = Fixture::with_app().await;
    let before = fixture.last_seq().await;
    let big = format!(
        r#"{{"set": {{"BIG": "{}"}}}}"#,
        "x".repeat(hoist_server::BODY_LIMIT + 1)
    );
    let uri = "/v1/apps/web/envs/staging/config";
    // Declared: refused before the token is looked at.
    let declared = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    let (status, _, body) = call(&fixture.real, declared).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "bad_request");
    // Streamed without a length: cut at the limit as it is read.
    let chunks = futures::stream::iter(
        big.as_bytes()
            .chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let streamed = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {OWNER}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(chunks))
        .unwrap();
    let (status, _, body) = call(&fixture.api, streamed).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "bad_request");
    assert_eq!(fixture.last_seq().await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_and_queries_are_400() {
    let fixture = Fixture::with_app().await;
    let before = fixture.last_seq().await;
    let deploy = "/v1/apps/web/envs/staging/deploy";
    for body in [
        "{\"image\": ",
        "not json",
        "[]",
        "{\"image\": 7}",
        &format!(r#"{{"image": "{IMAGE}", "imag": "typo"}}"#),
    ] {
        let (status, _, text) = fixture
            .send(Method::POST, deploy, Some(OWNER), Some(body))
            .await;
        assert_error(status, &text, StatusCode::BAD_REQUEST, "bad_request");
    }
    let no_type = Request::builder()
        .method(Method::POST)
        .uri(deploy)
        .header(header::AUTHORIZATION, format!("Bearer {OWNER}"))
        .body(Body::from(format!(r#"{{"image": "{IMAGE}"}}"#)))
        .unwrap();
    let (status, _, text) = call(&fixture.api, no_type).await;
    assert_error(status, &text, StatusCode::BAD_REQUEST, "bad_request");
    for uri in [
        "/v1/apps/web/envs/staging/releases?limit=many",
        "/v1/apps/web/envs/staging/releases?at=yesterday-ish",
        "/v1/apps/web/status?colour=blue",
        "/v1/apps/web/envs/staging/diff?from=1",
        "/v1/apps/web/envs/staging/diff?from=1&to=x",
        "/v1/audit?app=Not_A_Label",
        "/v1/events?from=-1",
    ] {
        let (status, _, text) = fixture.send(Method::GET, uri, Some(OWNER), None).await;
        assert_error(status, &text, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(fixture.last_seq().await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_methods_and_tricky_paths_are_refused() {
    let fixture = Fixture::with_app().await;
    let (status, _, body) = fixture
        .send(Method::GET, "/v1/nowhere", Some(OWNER), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, _, body) = fixture.send(Method::GET, "/nowhere", None, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, _, body) = fixture
        .send(Method::PUT, "/v1/apps", Some(OWNER), None)
        .await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "bad_request");
    for uri in [
        "/v1/apps/../audit",
        "/v1/apps/web/envs/%2e%2e/releases",
        "/v1/apps/web%2Fenvs/status",
        "/v1/apps/web/envs/staging%00/releases",
        "/v1//apps",
    ] {
        let (status, _, body) = fixture.send(Method::GET, uri, Some(OWNER), None).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    // A segment that is no DNS label names nothing that can exist.
    let (status, _, body) = fixture
        .send(Method::GET, "/v1/apps/Web_App/status", Some(OWNER), None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    // A well-formed name of no app: 404, as API.md says.
    let (status, _, body) = fixture
        .send(Method::GET, "/v1/apps/api", Some(OWNER), None)
        .await;
    let message = assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert!(message.contains("app api does not exist"), "{message}");
    let (status, _, body) = fixture
        .send(
            Method::POST,
            "/v1/apps/api/envs/staging/deploy",
            Some(OWNER),
            Some(&format!(r#"{{"image": "{IMAGE}"}}"#)),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_without_grants_is_403_and_appends_nothing() {
    let fixture = Fixture::with_app().await;
    let before = fixture.last_seq().await;
    for (method, uri, body) in [
        (Method::GET, "/v1/apps/web/status", None),
        (
            Method::POST,
            "/v1/apps/web/envs/staging/deploy",
            Some(format!(r#"{{"image": "{IMAGE}"}}"#)),
        ),
        (
            Method::POST,
            "/v1/apps/web/envs/staging/config",
            Some(r#"{"set": {"TOKEN": "x"}, "secret": true}"#.to_string()),
        ),
        (Method::DELETE, "/v1/apps/web/envs/staging/lock", None),
    ] {
        let (status, _, text) = fixture
            .send(method, uri, Some(NOBODY), body.as_deref())
            .await;
        let message = assert_error(status, &text, StatusCode::FORBIDDEN, "forbidden");
        assert!(message.contains("nobody@example.com may not"), "{message}");
    }
    assert_eq!(fixture.last_seq().await, before);
    // Its list of apps and its event stream are empty, not refused: it may view no app.
    for uri in ["/v1/apps", "/v1/events"] {
        let (status, _, body) = fixture.send(Method::GET, uri, Some(NOBODY), None).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "[]\n"), "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_with_the_clis_json() {
    let fixture = Fixture::with_app().await;
    let app: AppName = "web".parse().unwrap();
    let staging: EnvName = "staging".parse().unwrap();
    let owner = Principal::Owner;
    let send = |method, uri: &str, body: Option<String>| {
        let fixture = &fixture;
        let uri = uri.to_string();
        async move {
            fixture
                .send(method, &uri, Some(OWNER), body.as_deref())
                .await
        }
    };

    // apps list and show: AppView, as `apps list --json` / `apps show --json`.
    let (status, _, body) = send(Method::GET, "/v1/apps", None).await;
    assert_eq!(status, StatusCode::OK);
    let apps = fixture.hoist.apps(&owner).await.unwrap();
    let views: Vec<_> = apps.iter().map(|(a, s)| AppView::new(a, s)).collect();
    assert_eq!(body, cli_json(&views));
    let (_, _, body) = send(Method::GET, "/v1/apps/web", None).await;
    let state = fixture.hoist.app(&owner, &app, None).await.unwrap();
    assert_eq!(body, cli_json(&AppView::new(&app, &state)));

    // deploy: the release created; its actor is the token's identity.
    let (status, _, body) = send(
        Method::POST,
        "/v1/apps/web/envs/staging/deploy",
        Some(format!(r#"{{"image": "{IMAGE}"}}"#)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let records = fixture
        .hoist
        .releases(&owner, &app, &staging, None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        body,
        cli_json(&ReleaseView::new(&app, &staging, &records[0]))
    );
    let release: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(release["version"], 1);
    assert_eq!(release["actor"], "ana@example.com");

    // config set (a secret) and get: redacted unless revealed.
    let (status, _, body) = send(
        Method::POST,
        "/v1/apps/web/envs/staging/config",
        Some(r#"{"set": {"DATABASE_URL": "postgres://db"}, "secret": true}"#.into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, body) = send(Method::GET, "/v1/apps/web/envs/staging/config", None).await;
    let shown = fixture
        .hoist
        .config(&owner, &app, &staging, false)
        .await
        .unwrap();
    assert_eq!(body, cli_json(&shown.json()));
    assert!(
        body.contains("<redacted>") && !body.contains("postgres://db"),
        "{body}"
    );
    let (_, _, body) = send(
        Method::GET,
        "/v1/apps/web/envs/staging/config?reveal=true",
        None,
    )
    .await;
    assert!(body.contains("postgres://db"), "{body}");

    // promote, lock (deploy refused with 422, nothing appended), unlock, rollback.
    let (status, _, body) = send(
        Method::POST,
        "/v1/apps/web/promote",
        Some(r#"{"from": "staging"}"#.into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let promoted: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (promoted["env"].clone(), promoted["kind"].clone()),
        (json!("production"), json!("promote"))
    );
    let (status, _, body) = send(
        Method::POST,
        "/v1/apps/web/envs/staging/lock",
        Some(r#"{"reason": "incident 42"}"#.into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"app": "web", "env": "staging", "locked": true, "by": "ana@example.com", "reason": "incident 42"})
    );
    let before = fixture.last_seq().await;
    let (status, _, body) = send(
        Method::POST,
        "/v1/apps/web/envs/staging/deploy",
        Some(format!(r#"{{"image": "{IMAGE_2}"}}"#)),
    )
    .await;
    let message = assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "rejected");
    assert!(
        message.contains("locked by ana@example.com: incident 42"),
        "{message}"
    );
    assert_eq!(fixture.last_seq().await, before);
    let (status, _, _) = send(Method::DELETE, "/v1/apps/web/envs/staging/lock", None).await;
    assert_eq!(status, StatusCode::OK);
    send(
        Method::POST,
        "/v1/apps/web/envs/staging/deploy",
        Some(format!(r#"{{"image": "{IMAGE_2}"}}"#)),
    )
    .await;
    let (status, _, body) = send(
        Method::POST,
        "/v1/apps/web/envs/staging/rollback",
        Some(r#"{"to": "v2"}"#.into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rolled: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (rolled["version"].clone(), rolled["rollback_to"].clone()),
        (json!(4), json!(2))
    );

    // releases (newest first, limit), status (now and as of a time), diff.
    let (_, _, body) = send(
        Method::GET,
        "/v1/apps/web/envs/staging/releases?limit=2",
        None,
    )
    .await;
    let records = fixture
        .hoist
        .releases(&owner, &app, &staging, None, 2)
        .await
        .unwrap();
    let views: Vec<_> = records
        .iter()
        .map(|r| ReleaseView::new(&app, &staging, r))
        .collect();
    assert_eq!(body, cli_json(&views));
    let (_, _, body) = send(Method::GET, "/v1/apps/web/status", None).await;
    let status_now = fixture.hoist.status(&owner, &app, None).await.unwrap();
    assert_eq!(body, cli_json(&status_now.view()));
    let (status, _, body) = send(
        Method::GET,
        "/v1/apps/web/status?at=2000-01-01T00:00:00Z",
        None,
    )
    .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "rejected");
    let (_, _, body) = send(
        Method::GET,
        "/v1/apps/web/envs/staging/diff?from=1&to=v3",
        None,
    )
    .await;
    let diff = fixture
        .hoist
        .diff(
            &owner,
            &app,
            &staging,
            "1".parse().unwrap(),
            "3".parse().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(body, cli_json(&diff.json()));

    // target, policy, apply (dry run and for real on a `none` target).
    let (status, _, body) = send(
        Method::POST,
        "/v1/apps/web/envs/staging/target",
        Some(r#"{"kind": "manifests", "dir": "relative/dir"}"#.into()),
    )
    .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "rejected");
    let (status, _, body) = send(
        Method::POST,
        "/v1/apps/web/envs/staging/target",
        Some(r#"{"kind": "exec", "command": "true"}"#.into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"app": "web", "env": "staging", "target": {"kind": "exec", "command": "true"}, "changed": true})
    );
    let (status, _, body) = send(
        Method::POST,
        "/v1/apps/web/envs/staging/policy",
        Some(r#"{"auto_rollback": true}"#.into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = send(
        Method::POST,
        "/v1/apps/web/envs/staging/apply",
        Some(r#"{"dry_run": true}"#.into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = send(
        Method::POST,
        "/v1/apps/web/envs/staging/apply",
        Some(r#"{"timeout": "30s"}"#.into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let applied: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (applied["version"].clone(), applied["outcome"].clone()),
        (json!(4), json!("applied"))
    );

    // audit (filtered, limited) and verify.
    let (_, _, body) = send(Method::GET, "/v1/audit?app=web&kind=deploy&limit=5", None).await;
    let query = hoist_control::AuditQuery {
        app: Some(app.clone()),
        kind: Some("deploy".into()),
        ..Default::default()
    };
    let entries = fixture.hoist.audit(&owner, &query, 5).await.unwrap();
    assert_eq!(body, cli_json(&entries));
    assert_eq!(entries.len(), 2);
    let (_, _, body) = send(Method::GET, "/v1/audit/verify", None).await;
    let verified: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(verified["ok"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_come_in_pages_with_a_link_to_the_next() {
    let fixture = Fixture::with_app().await;
    for _ in 0..3 {
        fixture
            .send(
                Method::POST,
                "/v1/apps/web/envs/staging/config",
                Some(OWNER),
                Some(&format!(
                    r#"{{"set": {{"N": "{}"}}}}"#,
                    fixture.last_seq().await
                )),
            )
            .await;
    }
    let (status, headers, body) = fixture
        .send(Method::GET, "/v1/events?from=2&limit=2", Some(OWNER), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events: Vec<Value> = serde_json::from_str(&body).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs.first(), Some(&2));
    assert_eq!(seqs.last(), Some(&3));
    assert_eq!(headers[header::LINK], "</v1/events?from=4>; rel=\"next\"");
    let (_, headers, body) = fixture
        .send(Method::GET, "/v1/events?from=5", Some(OWNER), None)
        .await;
    assert_eq!(body, "[]\n");
    assert!(headers.get(header::LINK).is_none());
}

/// Reads SSE events from `body` until `count` data lines came (or a second passed).
async fn read_sse(body: &mut Body, count: usize) -> Vec<(Option<u64>, Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("an event within 5 s")
            .expect("the stream goes on")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut id = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse().unwrap());
                }
                if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str(v.trim()).unwrap());
                }
            }
            if let Some(data) = data {
                events.push((id, data));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_stream_replays_follows_and_resumes_after_last_event_id() {
    let fixture = Fixture::with_app().await;
    let set = |n: u32| {
        let fixture = &fixture;
        async move {
            let body = format!(r#"{{"set": {{"N": "{n}"}}}}"#);
            let (status, _, text) = fixture
                .send(
                    Method::POST,
                    "/v1/apps/web/envs/staging/config",
                    Some(OWNER),
                    Some(&body),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{text}");
        }
    };
    set(1).await;
    let sse = |from: Option<&str>, last_id: Option<&str>| {
        let mut builder = Request::builder()
            .uri(format!(
                "/v1/events{}",
                from.map(|f| format!("?from={f}")).unwrap_or_default()
            ))
            .header(header::AUTHORIZATION, format!("Bearer {OWNER}"))
            .header(header::ACCEPT, "text/event-stream");
        if let Some(id) = last_id {
            builder = builder.header("last-event-id", id);
        }
        builder.body(Body::empty()).unwrap()
    };
    let response = fixture
        .api
        .clone()
        .oneshot(sse(Some("1"), None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    // Replayed: app_created (seq 1), then the config release (seq 2).
    let replayed = read_sse(&mut body, 2).await;
    assert_eq!(replayed[0].1["seq"], 1);
    assert_eq!(
        replayed[0].0,
        Some(1),
        "the last event of a commit carries its seq as id"
    );
    assert_eq!(replayed[1].1["seq"], 2);
    // Followed: a commit appended now arrives.
    set(2).await;
    let followed = read_sse(&mut body, 1).await;
    assert_eq!(
        (followed[0].0, followed[0].1["seq"].clone()),
        (Some(3), json!(3))
    );
    drop(body);

    // Resumed after Last-Event-ID 2: seq 3 first, whatever `from` says.
    let response = fixture
        .api
        .clone()
        .oneshot(sse(Some("1"), Some("2")))
        .await
        .unwrap();
    let mut body = response.into_body();
    let resumed = read_sse(&mut body, 1).await;
    assert_eq!(resumed[0].1["seq"], 3);
    drop(body);

    // Without `from`: live only.
    let response = fixture.api.clone().oneshot(sse(None, None)).await.unwrap();
    let mut body = response.into_body();
    set(3).await;
    let live = read_sse(&mut body, 1).await;
    assert_eq!(live[0].1["seq"], 4);
    drop(body);

    // A caller who may view nothing gets an open stream with nothing in it.
    let mut builder = sse(Some("1"), None);
    builder.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {NOBODY}").parse().unwrap(),
    );
    let response = fixture.api.clone().oneshot(builder).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let nothing = tokio::time::timeout(Duration::from_millis(600), read_sse(&mut body, 1)).await;
    assert!(nothing.is_err(), "no event for a caller who may view none");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_stream_ends_when_the_server_stops() {
    let fixture = Fixture::with_app().await;
    let (stop, stopping) = hoist_server::Stop::new();
    let router = hoist_server::router_with(fixture.hoist.clone(), Arc::new(FixedTokens), stopping);
    let request = Request::builder()
        .uri("/v1/events")
        .header(header::AUTHORIZATION, format!("Bearer {OWNER}"))
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    stop.stop();
    let ended = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect()).await;
    assert!(ended.is_ok(), "the stream ended on stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_as_prometheus_text_and_count_commands() {
    let fixture = Fixture::with_app().await;
    fixture
        .send(
            Method::POST,
            "/v1/apps/web/envs/staging/deploy",
            Some(OWNER),
            Some(&format!(r#"{{"image": "{IMAGE}"}}"#)),
        )
        .await;
    fixture
        .send(
            Method::POST,
            "/v1/apps/web/envs/staging/deploy",
            Some(NOBODY),
            Some(&format!(r#"{{"image": "{IMAGE}"}}"#)),
        )
        .await;
    let (status, headers, text) = fixture.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let value = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| s.value.clone())
    };
    assert!(
        matches!(value("hoist_log_last_seq", &[]), Some(prometheus_parse::Value::Gauge(v)) if v >= 2.0),
        "{text}"
    );
    assert!(matches!(
        value("hoist_projection_lag_events", &[]),
        Some(prometheus_parse::Value::Gauge(_))
    ));
    for outcome in ["ok", "forbidden"] {
        assert!(
            matches!(
                value("hoist_commands_total", &[("kind", "deploy"), ("outcome", outcome)]),
                Some(prometheus_parse::Value::Counter(v)) if v >= 1.0
            ),
            "{outcome}: {text}"
        );
    }
    let histogram = value(
        "hoist_http_request_duration_seconds",
        &[
            ("route", "/v1/apps/:app/envs/:env/deploy"),
            ("status", "200"),
        ],
    );
    assert!(
        matches!(histogram, Some(prometheus_parse::Value::Histogram(_))),
        "{text}"
    );
    // No name from a path reaches a label: the route is the template.
    assert!(!text.contains("route=\"/v1/apps/web"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_lists_every_route() {
    let fixture = Fixture::new();
    let (status, _, body) = fixture
        .send(Method::GET, "/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).expect("valid JSON");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let expected = [
        ("/v1/apps", &["get", "post"][..]),
        ("/v1/apps/{app}", &["get"]),
        ("/v1/apps/{app}/status", &["get"]),
        ("/v1/apps/{app}/builds", &["post"]),
        ("/v1/apps/{app}/promote", &["post"]),
        ("/v1/apps/{app}/envs/{env}/releases", &["get"]),
        ("/v1/apps/{app}/envs/{env}/deploy", &["post"]),
        ("/v1/apps/{app}/envs/{env}/config", &["get", "post"]),
        ("/v1/apps/{app}/envs/{env}/rollback", &["post"]),
        ("/v1/apps/{app}/envs/{env}/lock", &["post", "delete"]),
        ("/v1/apps/{app}/envs/{env}/diff", &["get"]),
        ("/v1/apps/{app}/envs/{env}/target", &["post"]),
        ("/v1/apps/{app}/envs/{env}/policy", &["post"]),
        ("/v1/apps/{app}/envs/{env}/apply", &["post"]),
        // issue 16
        ("/v1/apps/{app}/envs/{env}/pin", &["post", "delete"]),
        ("/v1/apps/{app}/envs/{env}/drift", &["post"]),
        // issue 14
        ("/v1/apps/{app}/envs/{env}/ps", &["get"]),
        ("/v1/apps/{app}/envs/{env}/ps/scale", &["post"]),
        ("/v1/apps/{app}/envs/{env}/domains", &["get", "post"]),
        ("/v1/apps/{app}/envs/{env}/domains/remove", &["post"]),
        ("/v1/audit", &["get"]),
        ("/v1/audit/verify", &["get"]),
        ("/v1/access/tokens", &["get", "post"]),
        ("/v1/access/tokens/{id}", &["delete"]),
        ("/v1/access/grants", &["get", "post"]),
        ("/v1/access/grants/revoke", &["post"]),
        ("/v1/access/links", &["post"]),
        ("/v1/access/links/unlink", &["post"]),
        ("/v1/access/check", &["get"]),
        ("/v1/events", &["get"]),
        // issue 11
        ("/v1/hooks", &["get", "post"]),
        ("/v1/hooks/{name}", &["delete"]),
        ("/v1/hooks/{name}/test", &["post"]),
        ("/v1/hooks/{name}/deliveries", &["get"]),
        ("/v1/hooks/{name}/deliveries/{id}/redeliver", &["post"]),
        ("/v1/hooks/{name}/rotate", &["post"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/v1/openapi.json", &["get"]),
    ];
    for (path, methods) in expected {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path}"
            );
        }
    }
    assert_eq!(
        paths.len(),
        expected.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    // The document the router serves is the one `openapi()` builds.
    let built: Value = serde_json::from_str(&hoist_server::openapi().to_json().unwrap()).unwrap();
    assert_eq!(doc, built);
}

/// `request` with the extra `headers`.
fn with_headers(mut request: Request<Body>, headers: &[(&str, &str)]) -> Request<Body> {
    for (name, value) in headers {
        request.headers_mut().append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    request
}

/// The store's owner, as `FixedTokens` names it: whom `Hoist::answer` is asked as beside the API.
fn owner_caller() -> Caller {
    Caller {
        principal: Principal::Owner,
        actor: "ana@example.com".parse().unwrap(),
        via: Some("api".into()),
        command_id: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn accept_text_plain_answers_with_the_human_text_at_the_width_asked() {
    let fixture = Fixture::with_app().await;
    let deploy = format!(r#"{{"image": "{IMAGE}"}}"#);
    let (status, _, body) = fixture
        .send(
            Method::POST,
            "/v1/apps/web/envs/staging/deploy",
            Some(OWNER),
            Some(&deploy),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let releases = || Command::Releases {
        app: "web".parse().unwrap(),
        env: "staging".parse().unwrap(),
        at: None,
        limit: None,
    };
    let uri = "/v1/apps/web/envs/staging/releases";
    let get = |headers: &[(&str, &str)]| {
        with_headers(request(Method::GET, uri, Some(OWNER), None), headers)
    };

    // Text: the human text, as `Hoist::answer` makes it (no width: rows are never wrapped).
    let answer = fixture
        .hoist
        .answer(&owner_caller(), releases(), None)
        .await
        .unwrap();
    let (status, headers, body) = call(&fixture.api, get(&[("accept", "text/plain")])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(body, answer.human);
    assert!(body.contains("VERSION") && body.contains("v1"), "{body}");

    // The width of Hoist-Width: the table wraps to it.
    let narrow = fixture
        .hoist
        .answer(&owner_caller(), releases(), Some(40))
        .await
        .unwrap();
    assert_ne!(narrow.human, answer.human, "40 columns wrap this table");
    let (_, _, body) = call(
        &fixture.api,
        get(&[("accept", "text/plain"), ("hoist-width", "40")]),
    )
    .await;
    assert_eq!(body, narrow.human);

    // JSON otherwise: no Accept, JSON named (even beside text), anything else.
    for accept in [
        None,
        Some("application/json"),
        Some("text/plain, application/json"),
        Some("*/*"),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let (status, response_headers, body) = call(&fixture.api, get(&headers)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            response_headers[header::CONTENT_TYPE],
            "application/json",
            "{accept:?}"
        );
        assert_eq!(body, answer.json, "{accept:?}");
    }

    // A created app: 201 in either form.
    let create = with_headers(
        request(
            Method::POST,
            "/v1/apps",
            Some(OWNER),
            Some(r#"{"app": "api"}"#),
        ),
        &[("accept", "text/plain")],
    );
    let (status, _, body) = call(&fixture.api, create).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.starts_with("Created app api"), "{body}");

    // A bad width is a 400; an error is JSON whatever Accept says.
    for width in ["wide", "-3", "70000"] {
        let (status, _, body) = call(
            &fixture.api,
            get(&[("accept", "text/plain"), ("hoist-width", width)]),
        )
        .await;
        let message = assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
        assert!(message.contains("Hoist-Width"), "{message}");
    }
    let missing = with_headers(
        request(Method::GET, "/v1/apps/nope/status", Some(OWNER), None),
        &[("accept", "text/plain")],
    );
    let (status, headers, body) = call(&fixture.api, missing).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_rollout_is_its_answer_with_the_failure_in_headers() {
    let fixture = Fixture::with_app().await;
    for (uri, body) in [
        (
            "/v1/apps/web/envs/staging/deploy",
            format!(r#"{{"image": "{IMAGE}"}}"#),
        ),
        (
            "/v1/apps/web/envs/staging/target",
            r#"{"kind": "exec", "command": "exit 1"}"#.to_string(),
        ),
    ] {
        let (status, _, text) = fixture
            .send(Method::POST, uri, Some(OWNER), Some(&body))
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    let apply = "/v1/apps/web/envs/staging/apply";
    let (status, headers, body) = fixture
        .send(
            Method::POST,
            apply,
            Some(OWNER),
            Some(r#"{"timeout": "30s"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let applied: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(applied["outcome"], "failed", "{body}");
    assert_eq!(headers["hoist-failure"], "rejected");
    let message = hoist_server::percent::decode(headers["hoist-failure-message"].to_str().unwrap());
    assert_eq!(message, "web/staging v1: the rollout failed");
    assert!(
        headers["hoist-failure-message"]
            .to_str()
            .unwrap()
            .starts_with("web%2Fstaging%20v1%3A%20"),
        "{headers:?}"
    );

    // In text too; and an apply that works carries no failure.
    let text = with_headers(
        request(
            Method::POST,
            apply,
            Some(OWNER),
            Some(r#"{"timeout": "30s"}"#),
        ),
        &[("accept", "text/plain")],
    );
    let (status, headers, body) = call(&fixture.api, text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["hoist-failure"], "rejected");
    assert!(body.contains("failed"), "{body}");
    fixture
        .send(
            Method::POST,
            "/v1/apps/web/envs/staging/target",
            Some(OWNER),
            Some(r#"{"kind": "exec", "command": "true"}"#),
        )
        .await;
    let (status, headers, body) = fixture
        .send(
            Method::POST,
            apply,
            Some(OWNER),
            Some(r#"{"timeout": "30s"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers.get("hoist-failure").is_none(), "{headers:?}");
    assert!(headers.get("hoist-failure-message").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn access_routes_make_grant_check_and_revoke_tokens() {
    let fixture = Fixture::with_app().await;
    // A token for ana, created by the owner: 201, shown once, never cached.
    let (status, headers, body) = fixture.as_owner(
        Method::POST,
        "/v1/access/tokens",
        Some(r#"{"identity": "ana@example.com", "name": "laptop", "expires_at": "2999-01-01T00:00:00Z"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["identity"], "ana@example.com");
    assert_eq!(created["expires_at"], "2999-01-01T00:00:00Z");
    let token = created["token"].as_str().expect("the token").to_string();
    let id = created["id"].as_str().expect("its id").to_string();

    // Without a grant it names ana, who may view nothing yet.
    let (status, _, body) = call(
        &fixture.real,
        request(Method::GET, "/v1/apps/web/status", Some(&token), None),
    )
    .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, _, body) = fixture
        .as_owner(
            Method::POST,
            "/v1/access/grants",
            Some(r#"{"identity": "ana@example.com", "role": "admin"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["role"],
        "admin"
    );

    // The token works on the production router, which asks `Hoist::authenticate`.
    let (status, _, body) = call(
        &fixture.real,
        request(Method::GET, "/v1/apps/web/status", Some(&token), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // … and acts as ana on the access routes themselves: a grant for bo.
    let (status, _, body) = call(
        &fixture.real,
        request(
            Method::POST,
            "/v1/access/grants",
            Some(&token),
            Some(r#"{"identity": "bo@example.com", "role": "operator", "app": "web", "env": "production"}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let granted: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(granted["granted_by"], "ana@example.com", "{body}");

    // Every answer is the CLI's, asked through `Hoist::answer` as the same caller.
    let ana = fixture.hoist.authenticate(&token, "api").await.unwrap();
    let answer = |request: Command| {
        let (hoist, ana) = (fixture.hoist.clone(), ana.clone());
        async move { hoist.answer(&ana, request, None).await.unwrap().json }
    };
    let identity = |name: &str| name.parse::<Actor>().unwrap();
    for (uri, expected) in [
        (
            "/v1/access/tokens?identity=ana@example.com",
            Command::TokenList {
                identity: Some(identity("ana@example.com")),
            },
        ),
        (
            "/v1/access/grants?app=web",
            Command::AccessList {
                identity: None,
                app: Some("web".parse().unwrap()),
            },
        ),
        (
            "/v1/access/check?identity=bo@example.com&action=rollback&app=web&env=production",
            Command::AccessCheck {
                identity: identity("bo@example.com"),
                action: "rollback".parse().unwrap(),
                scope: hoist_control::engine::Scope {
                    app: Some("web".parse().unwrap()),
                    env: Some("production".parse().unwrap()),
                },
            },
        ),
    ] {
        let (status, _, body) =
            call(&fixture.real, request(Method::GET, uri, Some(&token), None)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(body, answer(expected).await, "{uri}");
    }
    let (_, _, body) = call(
        &fixture.real,
        request(
            Method::GET,
            "/v1/access/check?identity=bo@example.com&action=deploy&app=web&env=staging",
            Some(&token),
            None,
        ),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["allowed"],
        false
    );

    // Revoke bo's grant, link and unlink a chat user.
    for (uri, body) in [
        (
            "/v1/access/grants/revoke",
            r#"{"identity": "bo@example.com", "role": "operator", "app": "web", "env": "production"}"#,
        ),
        (
            "/v1/access/links",
            r#"{"chat_id": "slack:T1/U1", "identity": "bo@example.com"}"#,
        ),
        ("/v1/access/links/unlink", r#"{"chat_id": "slack:T1/U1"}"#),
    ] {
        let (status, _, text) = call(
            &fixture.real,
            request(Method::POST, uri, Some(&token), Some(body)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{uri}: {text}");
    }
    let grants = fixture
        .hoist
        .access_list(&Principal::Owner, Some(&identity("bo@example.com")), None)
        .await
        .unwrap();
    assert!(grants.is_empty(), "bo's grant was revoked");
    assert!(fixture
        .hoist
        .authenticate_chat(&"slack:T1/U1".parse().unwrap())
        .await
        .is_err());

    // Refusals: a bad value names its field (422), a malformed or unknown-field body is a 400,
    // a check without app a 400; none appends.
    let before = fixture.last_seq().await;
    for (method, uri, body, expected, field) in [
        (
            Method::POST,
            "/v1/access/tokens",
            Some(r#"{"identity": " "}"#),
            422,
            "identity",
        ),
        (
            Method::POST,
            "/v1/access/tokens",
            Some(r#"{"identity": "a@b", "expires_at": "90d"}"#),
            422,
            "expires_at",
        ),
        (
            Method::POST,
            "/v1/access/grants",
            Some(r#"{"identity": "a@b", "role": "king"}"#),
            422,
            "role",
        ),
        (
            Method::POST,
            "/v1/access/links",
            Some(r#"{"chat_id": "irc:x", "identity": "a@b"}"#),
            422,
            "chat id",
        ),
        (
            Method::DELETE,
            "/v1/access/tokens/not-an-id",
            None,
            422,
            "token id",
        ),
        (
            Method::GET,
            "/v1/access/tokens?identity=%20",
            None,
            422,
            "identity",
        ),
        (
            Method::GET,
            "/v1/access/check?identity=a@b&action=fly&app=web",
            None,
            422,
            "action",
        ),
        (Method::POST, "/v1/access/grants", Some("{"), 400, ""),
        (
            Method::POST,
            "/v1/access/grants",
            Some(r#"{"identity": "a@b", "role": "admin", "scope": "all"}"#),
            400,
            "",
        ),
        (
            Method::GET,
            "/v1/access/check?identity=a@b&action=view",
            None,
            400,
            "",
        ),
    ] {
        let (status, _, text) = fixture.as_owner(method, uri, body).await;
        let message = if expected == 422 {
            assert_error(status, &text, StatusCode::UNPROCESSABLE_ENTITY, "rejected")
        } else {
            assert_error(status, &text, StatusCode::BAD_REQUEST, "bad_request")
        };
        assert!(message.contains(field), "{uri}: {message}");
    }
    assert_eq!(fixture.last_seq().await, before);

    // Revoked (as the owner), the token stops working at once.
    let (status, _, body) = fixture
        .as_owner(Method::DELETE, &format!("/v1/access/tokens/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        serde_json::from_str::<Value>(&body).unwrap()["revoked_at"].is_string(),
        "{body}"
    );
    let (status, _, body) = call(
        &fixture.real,
        request(Method::GET, "/v1/apps/web/status", Some(&token), None),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_of_one_app_lists_that_app() {
    let fixture = Fixture::with_app().await;
    let (status, _, body) = fixture
        .send(
            Method::POST,
            "/v1/apps",
            Some(OWNER),
            Some(r#"{"app": "api"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut tokens = Vec::new();
    for body in [
        r#"{"identity": "val@example.com"}"#,
        r#"{"identity": "val@example.com"}"#,
    ] {
        let (_, _, text) = fixture
            .send(Method::POST, "/v1/access/tokens", Some(OWNER), Some(body))
            .await;
        let created: Value = serde_json::from_str(&text).unwrap();
        tokens.push(created["token"].as_str().unwrap().to_string());
    }
    let (status, _, body) = fixture
        .send(
            Method::POST,
            "/v1/access/grants",
            Some(OWNER),
            Some(r#"{"identity": "val@example.com", "role": "viewer", "app": "web"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = call(
        &fixture.real,
        request(Method::GET, "/v1/apps", Some(&tokens[0]), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["app"])
        .collect();
    assert_eq!(names, [&json!("web")], "{body}");
    let val = fixture.hoist.authenticate(&tokens[0], "api").await.unwrap();
    let answer = fixture
        .hoist
        .answer(&val, Command::AppsList, None)
        .await
        .unwrap();
    assert_eq!(body, answer.json);
    // The owner still lists every app.
    let (_, _, body) = fixture
        .send(Method::GET, "/v1/apps", Some(OWNER), None)
        .await;
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{body}");
    // Viewing is not showing the other app.
    let (status, _, body) = call(
        &fixture.real,
        request(Method::GET, "/v1/apps/api", Some(&tokens[1]), None),
    )
    .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}
