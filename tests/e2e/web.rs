//! The web UI in a real headless Chromium (Debian's `chromium` and `chromium-driver`), driven
//! over WebDriver (fantoccini) against a real `hoist serve --listen` on an embedded store, with
//! real tokens from `hoist access token create`: sign in, the pipeline, a timeline, a rollback
//! clicked by an operator (seen in `hoist releases`), a release made elsewhere appearing without
//! a reload, a diff with its secret redacted, a forged post refused with nothing appended, a
//! viewer without buttons, and a session that ends.
//!
//! `HOIST_SCREENSHOTS=1` also writes `docs/screenshots/{pipeline,timeline,diff}.png` at
//! 1280×800 (and `pipeline-phone.png` at 390×844) from this run.

use crate::api::start_api_with;
use crate::api_auth::token_with_role;
use crate::harness::{image, wait_for, Hoist};
use crate::nats_server::free_port;
use crate::nats_server::poll::poll_async;
use crate::serve::sigterm;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

/// A chromedriver process on a free port, in a process group of its own with the browser it
/// starts: dropped (a test that panicked too), the whole group is stopped by its id, so no
/// Chromium outlives the test.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new(std::env::var("CHROMEDRIVER").unwrap_or("chromedriver".into()))
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (scripts/test.sh installs chromium-driver)");
        wait_for("chromedriver to listen", DEADLINE, || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Driver {
            child,
            port,
            profile: tempfile::tempdir().expect("a profile dir"),
        }
    }

    /// The headless browser of this driver, on the driver's fresh profile.
    async fn browser(&self) -> Client {
        let args = json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-crash-reporter",
            "--window-size=1280,800",
            format!("--user-data-dir={}", self.profile.path().display()),
        ]);
        let mut capabilities = serde_json::Map::new();
        let binary = std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into());
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": binary, "args": args }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Evaluates `script` (a JavaScript expression) in the page until it is truthy; returns it.
async fn until(browser: &Client, what: &str, script: &str) -> Value {
    let found = poll_async(DEADLINE, Duration::from_millis(20), || async {
        let value = browser
            .execute(&format!("return ({script});"), Vec::new())
            .await
            .unwrap_or(Value::Null);
        let truthy = match &value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        truthy.then_some(value)
    })
    .await;
    match found {
        Some(value) => value,
        None => {
            let source = browser.source().await.unwrap_or_default();
            panic!("timed out after {DEADLINE:?} waiting for {what}; the page:\n{source}");
        }
    }
}

async fn path_of(browser: &Client) -> String {
    let url = browser.current_url().await.expect("a URL");
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    }
}

async fn sign_in(browser: &Client, base: &str, token: &str) {
    browser.goto(&format!("{base}/")).await.expect("opens /");
    assert!(
        path_of(browser).await.starts_with("/signin"),
        "sent to sign in"
    );
    let field = browser
        .find(Locator::Css("#token"))
        .await
        .expect("a token field");
    field.send_keys(token).await.expect("types the token");
    let button = browser.find(Locator::Css("form button[type=submit]")).await;
    button
        .expect("a sign-in button")
        .click()
        .await
        .expect("clicks");
    until(browser, "the pipelines page", "location.pathname === '/' && document.querySelector('h1') && document.querySelector('h1').textContent === 'Pipelines'").await;
    let source = browser.source().await.expect("the page");
    assert!(!source.contains(token), "the token never reaches the page");
}

async fn screenshot(browser: &Client, name: &str) {
    if std::env::var("HOIST_SCREENSHOTS").as_deref() != Ok("1") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).expect("docs/screenshots");
    let png = browser.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("writes the PNG");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A release life to look at: staging v1..v4 (an image, config, a secret, another image),
/// production v1 and v2 promoted from it.
fn history(h: &Hoist) {
    h.ok(&["apps", "create", "api", "--envs", "staging,production"]);
    h.deploy("api", "staging", &image("api", '1'));
    h.ok(&["config", "set", "api", "--env", "staging", "LOG_LEVEL=info"]);
    h.ok(&[
        "config",
        "set",
        "api",
        "--env",
        "staging",
        "--secret",
        "STRIPE_KEY=sk_live_web_e2e",
    ]);
    h.ok(&["promote", "api", "--from", "staging"]);
    h.deploy("api", "staging", &image("api", '2'));
    h.ok(&["promote", "api", "--from", "staging"]);
}

/// The whole tour in one browser: operator, then viewer.
pub fn the_web_ui_in_a_real_browser(h: &Hoist) {
    history(h);
    let operator = token_with_role(h, "bo@example.com", "operator");
    let viewer = token_with_role(h, "cy@example.com", "viewer");
    let (mut serve, port) = start_api_with(h, "web.log", &[]);
    let base = format!("http://127.0.0.1:{port}");
    let driver = Driver::start();
    runtime().block_on(async {
        let browser = driver.browser().await;
        browser.set_window_size(1280, 800).await.expect("1280×800");

        // Sign in; the pipeline: both envs side by side.
        sign_in(&browser, &base, &operator).await;
        let cards = browser.find_all(Locator::Css("ol.pipeline > li")).await.unwrap();
        assert_eq!(cards.len(), 2);
        let production = cards[1].text().await.unwrap();
        assert!(production.contains("v2") && production.contains("sha256:222222222222"), "{production}");
        screenshot(&browser, "pipeline").await;
        browser.set_window_size(390, 844).await.expect("a phone's width");
        let phone_width = browser
            .execute("return document.documentElement.scrollWidth <= window.innerWidth;", Vec::new())
            .await
            .unwrap();
        assert_eq!(phone_width, json!(true), "no sideways scrolling at a phone's width");
        screenshot(&browser, "pipeline-phone").await;
        browser.set_window_size(1280, 800).await.unwrap();

        // A timeline: open it from the pipeline.
        browser.find(Locator::LinkText("production")).await.unwrap().click().await.unwrap();
        until(&browser, "the production timeline", "location.pathname === '/apps/api/envs/production'").await;
        let rows = browser.find_all(Locator::Css("tbody tr")).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].text().await.unwrap().contains("from staging v4"));

        // A forged post (no CSRF token) from the signed-in browser: refused, nothing appended.
        let before = h.event_count();
        let status = browser
            .execute_async(
                "const done = arguments[0];
                 fetch('/apps/api/envs/production/rollback', {method: 'POST',
                   headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'to=1'})
                   .then(r => done(r.status));",
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(status, json!(403));
        assert_eq!(h.event_count(), before, "a forged post appends nothing");

        // Roll back, confirmed: the new release is on the page and in `hoist releases`.
        browser
            .find(Locator::LinkText("Roll back to the previous release…"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until(&browser, "the confirmation page", "document.querySelector('h1').textContent === 'Roll back api/production'").await;
        browser.find(Locator::Css("button.danger")).await.unwrap().click().await.unwrap();
        until(&browser, "v3 on the timeline", "location.pathname === '/apps/api/envs/production' && document.querySelector('tbody tr').textContent.includes('v3')").await;
        let released = h.json(&["releases", "api", "--env", "production"]);
        assert_eq!(released[0]["version"], 3, "{released}");
        assert_eq!(released[0]["kind"], "rollback");
        assert_eq!(released[0]["actor"], "bo@example.com");
        let audit = h.json(&["audit", "--app", "api", "--kind", "rollback"]);
        assert_eq!(audit[0]["via"], "web", "{audit}");

        // Live: a release made elsewhere shows up without a reload.
        until(&browser, "the live stream to be open", "document.body.dataset.live === 'open'").await;
        browser.execute("window.notReloaded = true; return true;", Vec::new()).await.unwrap();
        h.ok(&["rollback", "api", "--env", "production", "--to", "2"]);
        until(&browser, "v4 to appear live", "document.querySelector('tbody tr').textContent.includes('v4')").await;
        let same_page = browser.execute("return window.notReloaded === true;", Vec::new()).await.unwrap();
        assert_eq!(same_page, json!(true), "updated in place, not reloaded");
        screenshot(&browser, "timeline").await;

        // A diff: image and config, the secret redacted.
        browser.goto(&format!("{base}/apps/api/envs/staging/diff?from=1&to=4")).await.unwrap();
        let diff = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(diff.contains("sha256:2222"), "{diff}");
        assert!(diff.contains("<redacted>") && !diff.contains("sk_live_web_e2e"), "{diff}");
        screenshot(&browser, "diff").await;

        // Sign out, then as a viewer: no rollback button, the confirmation page refused.
        browser.goto(&format!("{base}/")).await.unwrap();
        browser.find(Locator::Css("header form button")).await.unwrap().click().await.unwrap();
        until(&browser, "the sign-in page", "location.pathname === '/signin'").await;
        sign_in(&browser, &base, &viewer).await;
        browser.goto(&format!("{base}/apps/api/envs/production")).await.unwrap();
        let source = browser.source().await.unwrap();
        assert!(source.contains("<strong>v4</strong>"), "{source}");
        assert!(!source.contains("Roll back") && !source.contains("Lock…"), "{source}");
        browser.close().await.unwrap();
    });
    sigterm(&mut serve);
}

/// A session past `--web-session` sends the browser back to sign-in, saying why.
pub fn an_expired_session_goes_back_to_sign_in(h: &Hoist) {
    history(h);
    let operator = token_with_role(h, "bo@example.com", "operator");
    let (mut serve, port) = start_api_with(h, "web.log", &["--web-session", "2s"]);
    let base = format!("http://127.0.0.1:{port}");
    let driver = Driver::start();
    runtime().block_on(async {
        let browser = driver.browser().await;
        sign_in(&browser, &base, &operator).await;
        let timeline = format!("{base}/apps/api/envs/staging");
        let ended = poll_async(DEADLINE, Duration::from_millis(200), || async {
            browser.goto(&timeline).await.unwrap();
            path_of(&browser).await.starts_with("/signin").then_some(())
        })
        .await;
        assert!(ended.is_some(), "the session never ended");
        assert_eq!(
            path_of(&browser).await,
            "/signin?next=%2Fapps%2Fapi%2Fenvs%2Fstaging&ended=session"
        );
        let notice = browser.find(Locator::Css("[role=alert]")).await.unwrap();
        assert_eq!(
            notice.text().await.unwrap(),
            "Your session has ended: sign in again."
        );
        browser.close().await.unwrap();
    });
    sigterm(&mut serve);
}
