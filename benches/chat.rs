//! Slack slash commands under a real `hoist serve --listen` (issue 12): the time from a signed
//! `POST /chat/slack/commands` to its acknowledgement (Slack waits 3 s at most; goal p99 <
//! 500 ms), and to the answer reaching `response_url` (a plain TCP receiver here), on an embedded
//! store. Beside them, the raw floor: `GET /healthz` on the same server.
//!
//! Run: `cargo bench --bench chat` (figures in the README's "ChatOps").

use hoist_control::engine::{Artifact, Command};
use hoist_control::{Backend, Caller, Config, Hoist};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[path = "../tests/support/http.rs"]
mod http;
#[path = "support/receiver.rs"]
mod receiver;

const BIN: &str = env!("CARGO_BIN_EXE_hoist");
const COMMANDS: usize = 200;
const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One request on a connection of its own; its status and the time to the answer's first line.
fn post(port: u16, request: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let status = http::read_response(&mut reader);
    (status, started.elapsed())
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hoist = Hoist::open(Config {
        backend: Backend::Embedded {
            dir: Some(store.clone()),
        },
        cache: None,
        secret_key_file: Some(dir.path().join("secret.key")),
    })
    .unwrap();
    let owner = Caller::owner("owner@example.com".parse().unwrap());
    let app = "api".parse().unwrap();
    rt.block_on(async {
        let pipeline = vec!["staging".parse().unwrap()];
        hoist
            .execute(&owner, &app, Command::CreateApp { pipeline })
            .await
            .unwrap();
        let image = format!("registry.example/api@sha256:{:064x}", 1)
            .parse()
            .unwrap();
        let deploy = Command::Deploy {
            env: "staging".parse().unwrap(),
            artifact: Artifact::Image(image),
        };
        hoist.execute(&owner, &app, deploy).await.unwrap();
        let viewer = "vic@example.com".parse().unwrap();
        let grant = hoist_control::engine::Grant {
            role: hoist_control::engine::Role::Viewer,
            app: Some(app.clone()),
            env: None,
        };
        hoist.access_grant(&owner, &viewer, grant).await.unwrap();
        hoist
            .access_link(&owner, &"slack:T1/U2".parse().unwrap(), &viewer)
            .await
            .unwrap();
    });
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.path().join("signing"), SECRET).unwrap();
    std::fs::write(
        dir.path().join("serve.toml"),
        format!("listen = \"127.0.0.1:{port}\"\n[slack]\nsigning_secret_file = \"signing\"\n"),
    )
    .unwrap();
    let mut serve = std::process::Command::new(BIN)
        .args([
            "--store",
            store.to_str().unwrap(),
            "serve",
            "--resync",
            "1h",
        ])
        .arg("--config")
        .arg(dir.path().join("serve.toml"))
        .env("HOIST_SECRET_KEY_FILE", dir.path().join("secret.key"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "serve listens");
        std::thread::yield_now();
    }
    let (answers_port, answers) = receiver::start();
    let mut acks = Vec::with_capacity(COMMANDS);
    let mut replies = Vec::with_capacity(COMMANDS);
    for n in 0..COMMANDS {
        let body = format!(
            "team_id=T1&user_id=U2&command=%2Fhoist&text=status+api&trigger_id={n}&response_url=http%3A%2F%2F127.0.0.1%3A{answers_port}%2Fr"
        );
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let signature =
            hoist_adapters::notify::slack::request_signature(SECRET, &timestamp, body.as_bytes());
        let request = format!(
            "POST /chat/slack/commands HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Slack-Request-Timestamp: {timestamp}\r\nX-Slack-Signature: {signature}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = Instant::now();
        let (status, ack) = post(port, &request);
        assert_eq!(status, 200, "a signed command is acknowledged");
        let (answered, _) = answers
            .recv_timeout(Duration::from_secs(30))
            .expect("the answer reaches response_url");
        acks.push(ack);
        replies.push(answered.saturating_duration_since(sent));
    }
    let mut raw = Vec::with_capacity(COMMANDS);
    for _ in 0..COMMANDS {
        let (status, took) = post(
            port,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 200);
        raw.push(took);
    }
    let _ = serve.kill();
    let _ = serve.wait();
    for list in [&mut acks, &mut replies, &mut raw] {
        list.sort();
    }
    println!(
        "slack (embedded): command → ack p50 {}, p99 {} (goal p99 < 500 ms); command → answer on response_url p50 {}, p99 {}; raw GET /healthz p50 {}, p99 {} ({COMMANDS} commands)",
        ms(percentile(&acks, 0.5)),
        ms(percentile(&acks, 0.99)),
        ms(percentile(&replies, 0.5)),
        ms(percentile(&replies, 0.99)),
        ms(percentile(&raw, 0.5)),
        ms(percentile(&raw, 0.99)),
    );
}
