//! Chat commands under a real `hoist serve` on an embedded store (issue 12), each beside a raw
//! floor measured in the same run:
//! - Slack over HTTP: a signed `POST /chat/slack/commands` to its acknowledgement (Slack waits
//!   3 s at most; goal p99 < 500 ms), and to the answer reaching `response_url` (a plain TCP
//!   receiver); floor: `GET /healthz` on the same server.
//! - Slack Socket Mode: an envelope sent by the stand-in (`tests/support/slack_socket.rs`) to
//!   its ack by `envelope_id`; floor: a ping to its pong on the same socket.
//! - Matrix: a `!hoist status api` sent to a real synapse (PyPI `matrix-synapse`) to the bot's
//!   reply arriving in the sender's `/sync` (goal p50 < 1 s); floor: the sender's own message
//!   arriving there.
//!
//! Run: `cargo bench --bench chat` (figures in the README's "ChatOps"; the Matrix part needs
//! matrix-synapse, which `scripts/test.sh` installs).

use hoist_control::engine::{Artifact, Command};
use hoist_control::{Backend, Caller, Config, Hoist};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/support/http.rs"]
mod http;
#[path = "support/receiver.rs"]
mod receiver;
// The waits' one pause, and part of the tests' stand-in.
#[allow(dead_code)]
#[path = "../tests/support/poll.rs"]
mod poll;
// The bench uses part of the tests' stand-in.
#[allow(dead_code)]
#[path = "../tests/support/slack_socket.rs"]
mod slack_socket;

const BIN: &str = env!("CARGO_BIN_EXE_hoist");
const COMMANDS: usize = 200;
/// Matrix commands: each is a few homeserver writes and a `/sync`.
const MATRIX_COMMANDS: usize = 50;
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
        for chat_id in ["slack:T1/U2", "matrix:@ana:localhost"] {
            hoist
                .access_link(&owner, &chat_id.parse().unwrap(), &viewer)
                .await
                .unwrap();
        }
    });
    slack_http(dir.path(), &store);
    slack_socket(dir.path(), &store);
    matrix(&rt, dir.path(), &store);
}

/// `hoist serve --config FILE` on `store`, its log beside the file.
fn serve(dir: &Path, store: &Path, config: &str) -> Child {
    std::process::Command::new(BIN)
        .args([
            "--store",
            store.to_str().unwrap(),
            "serve",
            "--resync",
            "1h",
        ])
        .arg("--config")
        .arg(dir.join(format!("{config}.toml")))
        .env("HOIST_SECRET_KEY_FILE", dir.join("secret.key"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{config}.log"))).unwrap())
        .spawn()
        .unwrap()
}

fn stop(mut serve: Child) {
    let _ = serve.kill();
    let _ = serve.wait();
}

fn report(
    what: &str,
    measured: &mut [Duration],
    floor_name: &str,
    floor: &mut [Duration],
    note: &str,
) {
    measured.sort();
    floor.sort();
    println!(
        "{what}: p50 {}, p99 {}{note}; {floor_name} p50 {}, p99 {} ({} samples)",
        ms(percentile(measured, 0.5)),
        ms(percentile(measured, 0.99)),
        ms(percentile(floor, 0.5)),
        ms(percentile(floor, 0.99)),
        measured.len(),
    );
}

fn slack_http(dir: &Path, store: &Path) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.join("signing"), SECRET).unwrap();
    std::fs::write(
        dir.join("http.toml"),
        format!("listen = \"127.0.0.1:{port}\"\n[slack]\nsigning_secret_file = \"signing\"\n"),
    )
    .unwrap();
    let serve = serve(dir, store, "http");
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
    stop(serve);
    report(
        "slack over HTTP: command → ack",
        &mut acks,
        "raw GET /healthz",
        &mut raw.clone(),
        " (goal p99 < 500 ms)",
    );
    report(
        "slack over HTTP: command → answer on response_url",
        &mut replies,
        "raw GET /healthz",
        &mut raw,
        "",
    );
}

fn slack_socket(dir: &Path, store: &Path) {
    let token = "xapp-1-A0BENCH-1-s3cr3t";
    let slack = slack_socket::SlackSocket::start(token);
    std::fs::write(dir.join("app-token"), token).unwrap();
    std::fs::write(
        dir.join("socket.toml"),
        format!(
            "[slack]\napp_token_file = \"app-token\"\napi_url = \"{}\"\n",
            slack.api_url()
        ),
    )
    .unwrap();
    let serve = serve(dir, store, "socket");
    poll::poll(Duration::from_secs(30), Duration::from_millis(5), || {
        (slack.connections() > 0).then_some(())
    })
    .expect("serve connects");
    let (answers_port, answers) = receiver::start();
    // Waits for the frame the app sends that `wanted` picks, by its position among all frames.
    let frame_after = |seen: usize, wanted: &dyn Fn(&serde_json::Value) -> bool| loop {
        let frames = slack.acks();
        if let Some((at, _)) = frames.iter().skip(seen).find(|(_, f)| wanted(f)) {
            return *at;
        }
        assert!(frames.len() < seen + 100, "the frame came");
        std::thread::yield_now();
    };
    let mut acks = Vec::with_capacity(COMMANDS);
    let mut pongs = Vec::with_capacity(COMMANDS);
    for n in 0..COMMANDS {
        let id = format!("e{n}");
        let envelope = serde_json::json!({
            "type": "slash_commands", "envelope_id": id, "accepts_response_payload": true,
            "payload": {"team_id": "T1", "user_id": "U2", "command": "/hoist", "text": "status api",
                "trigger_id": format!("t{n}"),
                "response_url": format!("http://127.0.0.1:{answers_port}/r")}
        });
        let seen = slack.acks().len();
        let sent = Instant::now();
        slack.send(&envelope);
        let acked = frame_after(seen, &|f| f["envelope_id"] == id.as_str());
        acks.push(acked.saturating_duration_since(sent));
        answers
            .recv_timeout(Duration::from_secs(30))
            .expect("the answer reaches response_url");
        let seen = slack.acks().len();
        let sent = Instant::now();
        slack.ping(&n.to_string());
        let ponged = frame_after(seen, &|f| f["pong"] == n.to_string().as_str());
        pongs.push(ponged.saturating_duration_since(sent));
    }
    stop(serve);
    report(
        "slack socket mode: envelope → ack",
        &mut acks,
        "raw ping → pong on the same socket",
        &mut pongs,
        " (goal p99 < 500 ms)",
    );
}

const HOMESERVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/matrix_homeserver.py"
);

fn matrix(rt: &tokio::runtime::Runtime, dir: &Path, store: &Path) {
    use hoist_adapters::notify::{Outgoing, Sender};
    use serde_json::{json, Value};
    let home = dir.join("matrix");
    std::fs::create_dir_all(&home).unwrap();
    let mut synapse = std::process::Command::new("python3")
        .args([HOMESERVER, "start"])
        .arg(&home)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.join("helper.stderr")).unwrap())
        .spawn()
        .expect("python3 runs synapse (scripts/test.sh installs matrix-synapse)");
    let info: Value = poll::poll(Duration::from_secs(120), Duration::from_millis(100), || {
        std::fs::read_to_string(home.join("matrix.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    })
    .expect("synapse serves");
    let (url, room) = (
        info["url"].as_str().unwrap(),
        info["room"].as_str().unwrap(),
    );
    let ana = info["user_token"].as_str().unwrap().to_string();
    std::fs::write(
        dir.join("matrix-token"),
        info["bot_token"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("matrix.toml"),
        format!(
            "[matrix]\nhomeserver = \"{url}\"\nuser = \"@hoist:localhost\"\ntoken_file = \"matrix-token\"\nrooms = [\"{room}\"]\n"
        ),
    )
    .unwrap();
    let serve = serve(dir, store, "matrix");
    let sender = Sender::new(Duration::from_secs(60));
    let call = |method: &'static str, path: String, body: Option<Value>| -> Value {
        let outgoing = Outgoing {
            method,
            url: format!("{url}/_matrix/client/v3{path}"),
            headers: vec![
                ("content-type", "application/json".into()),
                ("authorization", format!("Bearer {ana}")),
            ],
            body: body.map_or(Vec::new(), |b| b.to_string().into_bytes()),
        };
        let (status, body) = rt.block_on(sender.call(&outgoing, 16 << 20)).unwrap();
        assert!((200..300).contains(&status), "{method} {path}: {status}");
        serde_json::from_slice(&body).unwrap()
    };
    let encoded_room: String = room
        .bytes()
        .map(|b| match b {
            b'!' => "%21".to_string(),
            b':' => "%3A".to_string(),
            b => (b as char).to_string(),
        })
        .collect();
    let mut since = call("GET", "/sync?timeout=0".into(), None)["next_batch"]
        .as_str()
        .unwrap()
        .to_string();
    // Waits in ana's /sync for the first event `wanted` picks; when it arrived.
    let mut wait_for = |wanted: &dyn Fn(&Value) -> bool| -> Instant {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "the event came");
            let synced = call("GET", format!("/sync?timeout=30000&since={since}"), None);
            let at = Instant::now();
            since = synced["next_batch"].as_str().unwrap().to_string();
            let events = synced["rooms"]["join"][room]["timeline"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if events.iter().any(wanted) {
                return at;
            }
        }
    };
    let say = |n: usize, text: &str| -> String {
        call(
            "PUT",
            format!("/rooms/{encoded_room}/send/m.room.message/bench{n}"),
            Some(json!({"msgtype": "m.text", "body": text})),
        )["event_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The bot joins its room at start: the first command waits for that, unmeasured.
    let first = say(0, "!hoist status api");
    wait_for(&|e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == first.as_str());
    let mut replies = Vec::with_capacity(MATRIX_COMMANDS);
    let mut floor = Vec::with_capacity(MATRIX_COMMANDS);
    for n in 1..=MATRIX_COMMANDS {
        let sent = Instant::now();
        let id = say(2 * n, "!hoist status api");
        let replied =
            wait_for(&|e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == id.as_str());
        replies.push(replied.saturating_duration_since(sent));
        let sent = Instant::now();
        let id = say(2 * n + 1, "just talking");
        let seen = wait_for(&|e| e["event_id"] == id.as_str());
        floor.push(seen.saturating_duration_since(sent));
    }
    stop(serve);
    // SIGTERM: the helper stops synapse with itself (SIGKILL would leave synapse running).
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &synapse.id().to_string()])
        .status();
    let _ = synapse.wait();
    report(
        "matrix: command → the bot's reply in the sender's /sync",
        &mut replies,
        "raw: the sender's own message in its /sync",
        &mut floor,
        " (goal p50 < 1 s)",
    );
}
