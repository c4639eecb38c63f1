//! Hooks' delivery latency under a real `hoist serve` process (issue 11): from an append
//! returning (a deploy through `Hoist::execute`, in this process) to the hook's POST reaching a
//! receiver (a plain TCP listener here, timing the request's first line), on the embedded store
//! and on NATS. Beside it, the raw floor: one POST of the same size from this process to the
//! same receiver over a fresh connection.
//!
//! Run: `cargo bench --bench hooks` (figures in the README's "Notifications").

use hoist_control::engine::hooks::{HookFormat, HookKind};
use hoist_control::engine::{Artifact, Command};
use hoist_control::hooks::HookAdd;
use hoist_control::{Backend, Caller, Config, Hoist, NatsSettings};
use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/support/nats_server.rs"]
mod nats_server;
#[path = "support/receiver.rs"]
mod receiver;

const BIN: &str = env!("CARGO_BIN_EXE_hoist");
const DELIVERIES: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Measures one backend: `args` are the global flags `hoist serve` needs for it.
fn measure(name: &str, config: Config, args: &[String], dir: &std::path::Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hoist = Hoist::open(config).unwrap();
    let owner = Caller::owner("owner@example.com".parse().unwrap());
    let app = "api".parse().unwrap();
    let (port, arrivals) = receiver::start();
    rt.block_on(async {
        let pipeline = vec!["staging".parse().unwrap()];
        hoist
            .execute(&owner, &app, Command::CreateApp { pipeline })
            .await
            .unwrap();
        let add = HookAdd {
            name: "bench".parse().unwrap(),
            url: format!("http://127.0.0.1:{port}/hook"),
            format: HookFormat::StandardWebhooks,
            app: None,
            env: None,
            kinds: HookKind::defaults(),
            secret: None,
            room: None,
        };
        hoist.hooks_add(&owner, add).await.unwrap();
    });
    let mut serve: Child = std::process::Command::new(BIN)
        .args(args)
        .args(["serve", "--resync", "1h"])
        .env("HOIST_SECRET_KEY_FILE", dir.join("secret.key"))
        .env("HOIST_CACHE", dir.join("cache"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("serve-{name}.log"))).unwrap())
        .spawn()
        .unwrap();
    let mut latencies = Vec::with_capacity(DELIVERIES);
    // The first delivery waits for serve to start: not measured.
    for n in 0..=DELIVERIES {
        let image = format!("registry.example/api@sha256:{n:064x}")
            .parse()
            .unwrap();
        let deploy = Command::Deploy {
            env: "staging".parse().unwrap(),
            artifact: Artifact::Image(image),
        };
        let executed = rt.block_on(hoist.execute(&owner, &app, deploy)).unwrap();
        let appended = Instant::now();
        let seq = executed.events.last().unwrap().seq;
        let arrived = loop {
            let (at, body) = arrivals
                .recv_timeout(Duration::from_secs(60))
                .expect("the delivery arrives");
            let got = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["seq"].as_u64());
            if got == Some(seq) {
                break at;
            }
        };
        if n > 0 {
            latencies.push(arrived.saturating_duration_since(appended));
        }
    }
    let _ = serve.kill();
    let _ = serve.wait();
    latencies.sort();
    // The raw floor: the same POST from here, a fresh connection each time.
    let body = vec![b'x'; 600];
    let mut raw = Vec::with_capacity(DELIVERIES);
    for _ in 0..DELIVERIES {
        let started = Instant::now();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "POST /raw HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(&body).unwrap();
        let (at, _) = arrivals.recv().unwrap();
        raw.push(at.saturating_duration_since(started));
    }
    raw.sort();
    println!(
        "hooks latency ({name}): append → POST arrives: p50 {}, p99 {} over {DELIVERIES} deliveries (goal p50 < 200 ms, p99 < 1 s); raw POST: p50 {}, p99 {}",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&raw, 0.5)),
        ms(percentile(&raw, 0.99)),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks one backend.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    if wanted("embedded") {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let config = Config {
            backend: Backend::Embedded {
                dir: Some(store.clone()),
            },
            cache: None,
            secret_key_file: Some(dir.path().join("secret.key")),
        };
        let args = vec!["--store".to_string(), store.display().to_string()];
        measure("embedded", config, &args, dir.path());
    }
    if wanted("nats") {
        let dir = tempfile::tempdir().unwrap();
        let server = nats_server::NatsServer::start();
        let config = Config {
            backend: Backend::Nats(NatsSettings {
                url: server.url(),
                stream: "HOIST".into(),
                creds_file: None,
                tls_ca_file: None,
                replicas: 1,
            }),
            cache: Some(dir.path().join("cache")),
            secret_key_file: Some(dir.path().join("secret.key")),
        };
        let args = vec!["--nats".to_string(), server.url()];
        measure("nats", config, &args, dir.path());
    }
}
