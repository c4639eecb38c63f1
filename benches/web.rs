//! The web UI (issue 13), over HTTP on loopback to the real router served in-process
//! (`hoist_server::serve`), on embedded stores holding `hoist bench`'s realistic history of 20
//! apps, signed in with a real token:
//!
//! - `pipeline page/10k` and `/200k`: `GET /` (every app's pipeline) at 10,000 and 200,000
//!   events — the goal is flat (200k within 1.5× of 10k); `timeline page/…`: `GET` of one env's
//!   timeline, the request the page's script makes after an event;
//! - `live/append to SSE event`: from the start of an append (`Hoist::execute`, a lock or an
//!   unlock) to its event's `data:` line reaching a client of `/live`, beside
//!   `live/append alone` (the same append, returned): the raw floor; and, when chromedriver is
//!   on PATH, `live/append to page updated (Chromium)`: to the timeline open in a real headless
//!   Chromium having swapped the new content in (the page's `data-updated-at`).
//!
//! Run: `cargo bench --bench web` (medians in README's "Web UI").

use criterion::{criterion_group, criterion_main, Criterion};
use hoist_control::bench::BenchArgs;
use hoist_control::engine::{Command, Grant, Role};
use hoist_control::{Backend, Caller, Config, Hoist};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../tests/support/http.rs"]
mod http;
// The waits' one pause.
#[allow(dead_code)]
#[path = "../tests/support/poll.rs"]
mod poll;

const APPS: usize = 20;

/// A store with `events` events of history, served in-process, and a signed-in session.
struct Served {
    _dir: tempfile::TempDir,
    hoist: Hoist,
    rt: tokio::runtime::Runtime,
    port: u16,
    /// `hoist_session=…`.
    cookie: String,
    /// The operator's bearer token the session was signed in with.
    token: String,
}

impl Served {
    fn new(events: u64) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let hoist = Hoist::open(Config {
            backend: Backend::Embedded {
                dir: Some(dir.path().join("store")),
            },
            cache: None,
            secret_key_file: Some(dir.path().join("secret.key")),
        })
        .unwrap();
        let args = BenchArgs {
            apps: APPS,
            events,
            keep: true,
        };
        hoist.bench(&args).expect("the history is written");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let owner = Caller::owner("owner@example.com".parse().unwrap());
        let operator = "bo@example.com".parse().unwrap();
        let token = rt.block_on(async {
            let grant = Grant {
                role: Role::Operator,
                app: None,
                env: None,
            };
            hoist.access_grant(&owner, &operator, grant).await.unwrap();
            hoist
                .access_token_create(&owner, &operator, None, None)
                .await
                .unwrap()
                .token
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = hoist_server::router(hoist.clone(), hoist_server::Stopping::never());
        rt.spawn(hoist_server::serve(
            listener,
            router,
            None,
            hoist_server::Stopping::never(),
        ));
        let cookie = sign_in(port, &token);
        Served {
            _dir: dir,
            hoist,
            rt,
            port,
            cookie,
            token,
        }
    }
}

/// One request on a fresh connection; the status, headers and body.
fn exchange(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn header_value<'a>(answer: &'a str, prefix: &str) -> &'a str {
    let at = answer.find(prefix).expect(prefix) + prefix.len();
    let rest = &answer[at..];
    &rest[..rest.find([';', '"', '\r']).unwrap()]
}

/// Signs in as a browser would: the form's cookie and CSRF token, then the token posted.
fn sign_in(port: u16, token: &str) -> String {
    let form = exchange(
        port,
        "GET /signin HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
    );
    let signin = header_value(&form, "set-cookie: hoist_signin=").to_string();
    let csrf = header_value(&form, "name=\"csrf\" value=\"").to_string();
    let body = format!("csrf={csrf}&token={token}");
    let posted = exchange(
        port,
        &format!(
            "POST /signin HTTP/1.1\r\nHost: b\r\nConnection: close\r\nCookie: hoist_signin={signin}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    format!(
        "hoist_session={}",
        header_value(&posted, "set-cookie: hoist_session=")
    )
}

/// `GET path` on a keep-alive connection, as the session; asserts a 200.
fn get_page(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>, path: &str, cookie: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: b\r\nCookie: {cookie}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    assert_eq!(http::read_response(reader), 200, "{path}");
}

fn pages(c: &mut Criterion) {
    // `cargo test --all-targets` runs each bench once, in a debug build: a small history then.
    let sizes = if measuring() {
        [("10k", 10_000), ("200k", 200_000)]
    } else {
        [("1k", 1_000), ("2k", 2_000)]
    };
    let stores: Vec<(&str, Served)> = sizes
        .into_iter()
        .map(|(name, events)| (name, Served::new(events)))
        .collect();
    for (page, path) in [
        ("pipeline page", None),
        ("timeline page", Some("production")),
    ] {
        let mut group = c.benchmark_group(page);
        group.sample_size(30);
        group.measurement_time(Duration::from_secs(5));
        for (name, served) in &stores {
            let path = match path {
                Some(env) => format!("/apps/{}/envs/{env}", app_name(served)),
                None => "/".to_string(),
            };
            let mut stream = TcpStream::connect(("127.0.0.1", served.port)).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            group.bench_function(*name, |b| {
                b.iter(|| get_page(&mut stream, &mut reader, &path, &served.cookie))
            });
        }
        group.finish();
    }
}

/// The first app of the store.
fn app_name(served: &Served) -> String {
    let principal = hoist_control::engine::Principal::Owner;
    let names = served
        .rt
        .block_on(served.hoist.app_names(&principal))
        .unwrap();
    names[0].to_string()
}

/// The instants at which `/live` delivers `data:` lines.
fn follow_live(port: u16, cookie: &str) -> mpsc::Receiver<Instant> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!(
        "GET /live HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    // The stream starts after the log's end as of the request: wait for its headers, or an
    // append made meanwhile would come before it.
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    while lines.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    line.clear();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.contains("data:") && tx.send(Instant::now()).is_err() {
                return;
            }
            line.clear();
        }
    });
    rx
}

/// Whether this is `cargo bench` (criterion is passed `--bench`), not a test run.
fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn live(c: &mut Criterion) {
    let served = Served::new(if measuring() { 10_000 } else { 1_000 });
    let app: hoist_control::engine::AppName = app_name(&served).parse().unwrap();
    let owner = Caller::owner("owner@example.com".parse().unwrap());
    let env: hoist_control::engine::EnvName = "staging".parse().unwrap();
    // Unlocked to start with: every lock is followed by an unlock.
    let _ = served.rt.block_on(served.hoist.execute(
        &owner,
        &app,
        Command::Unlock { env: env.clone() },
    ));
    let mut locked = false;
    let mut toggle = |served: &Served| {
        let command = if locked {
            Command::Unlock { env: env.clone() }
        } else {
            Command::Lock {
                env: env.clone(),
                reason: "bench".into(),
            }
        };
        locked = !locked;
        served
            .rt
            .block_on(served.hoist.execute(&owner, &app, command))
            .expect("appended");
    };
    let events = follow_live(served.port, &served.cookie);
    // The stream follows from its start: one append seen before measuring.
    toggle(&served);
    events
        .recv_timeout(Duration::from_secs(10))
        .expect("the stream is live");
    let mut group = c.benchmark_group("live");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("append to SSE event", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                toggle(&served);
                let seen = events.recv_timeout(Duration::from_secs(10)).expect("seen");
                total += seen - started;
            }
            total
        })
    });
    group.bench_function("append alone", |b| b.iter(|| toggle(&served)));
    if let Some(driver) = Chromium::start() {
        let browser = served.rt.block_on(driver.signed_in(&served, &app));
        group.bench_function("append to page updated (Chromium)", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let before = served.rt.block_on(updated_at(&browser));
                    let started = epoch_ms();
                    toggle(&served);
                    let updated = served.rt.block_on(async {
                        loop {
                            let at = updated_at(&browser).await;
                            if at != before {
                                return at;
                            }
                        }
                    });
                    total += Duration::from_secs_f64((updated - started).max(0.0) / 1000.0);
                }
                total
            })
        });
        served.rt.block_on(browser.close()).unwrap();
    }
    group.finish();
    // The appends above were not followed by the stream's reader: drop what came.
    while events.try_recv().is_ok() {}
}

fn epoch_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// When the page last swapped new content in (ms since the epoch), 0 before any.
async fn updated_at(browser: &fantoccini::Client) -> f64 {
    let value = browser
        .execute(
            "return Number(document.body.dataset.updatedAt || '0');",
            Vec::new(),
        )
        .await
        .unwrap();
    value.as_f64().unwrap_or(0.0)
}

/// A chromedriver on a free port, killed when dropped; none when it is not installed.
struct Chromium {
    child: std::process::Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Chromium {
    fn start() -> Option<Chromium> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        use std::os::unix::process::CommandExt;
        // In a process group of its own with its browser, stopped whole when dropped.
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        poll::poll(Duration::from_secs(20), Duration::from_millis(20), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .expect("chromedriver listens");
        Some(Chromium {
            child,
            port,
            profile: tempfile::tempdir().ok()?,
        })
    }

    /// A headless Chromium signed in as the served operator, on `app`'s production timeline
    /// with its event stream open.
    async fn signed_in(
        &self,
        served: &Served,
        app: &hoist_control::engine::AppName,
    ) -> fantoccini::Client {
        use fantoccini::Locator;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": "/usr/bin/chromium", "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--disable-crash-reporter",
                format!("--user-data-dir={}", self.profile.path().display()),
            ]}),
        );
        let browser = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", self.port))
        .await
        .expect("a Chromium session");
        let base = format!("http://127.0.0.1:{}", served.port);
        browser.goto(&format!("{base}/signin")).await.unwrap();
        let field = browser.find(Locator::Css("#token")).await.unwrap();
        field.send_keys(&served.token).await.unwrap();
        let submit = browser.find(Locator::Css("form button")).await.unwrap();
        submit.click().await.unwrap();
        browser
            .goto(&format!("{base}/apps/{app}/envs/staging"))
            .await
            .unwrap();
        loop {
            let open = browser
                .execute("return document.body.dataset.live === 'open';", Vec::new())
                .await
                .unwrap();
            if open == serde_json::json!(true) {
                return browser;
            }
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

criterion_group!(web, pages, live);
criterion_main!(web);
