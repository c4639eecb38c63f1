//! The HTTP API beside the local CLI (issue 10's measurements), on an embedded store with a real
//! history and a real `hoist serve --listen` process:
//!
//! - `GET /v1/apps/{app}/status` with a viewer's token: requests/s, p50 and p99 at 1, 16 and 128
//!   concurrent clients (each a keep-alive connection of its own), beside the same number of
//!   tasks asking `Hoist::answer` for the same status in-process (no HTTP, no token): the raw
//!   floor of the answer itself;
//! - whole processes: `hoist --server … status` / `deploy` beside `hoist --store … status` /
//!   `deploy` (median of 30 runs each).
//!
//! Run: `cargo bench --bench api` (figures in the README's "Serving a team").

use hoist_control::engine::{Artifact, Command, Grant, Principal, Role};
use hoist_control::{Backend, Caller, Config, Hoist, Request};
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/support/http.rs"]
mod http;

use http::read_response;

const BIN: &str = env!("CARGO_BIN_EXE_hoist");
/// How long each concurrency level is measured.
const SPAN: Duration = Duration::from_secs(3);

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
    let token = rt.block_on(async {
        let pipeline = vec!["staging".parse().unwrap(), "production".parse().unwrap()];
        hoist
            .execute(&owner, &app, Command::CreateApp { pipeline })
            .await
            .unwrap();
        // A history of a busy week: 500 deploys.
        for n in 0..500u32 {
            let image = format!("registry.example/api@sha256:{n:064x}")
                .parse()
                .unwrap();
            let deploy = Command::Deploy {
                env: "staging".parse().unwrap(),
                artifact: Artifact::Image(image),
            };
            hoist.execute(&owner, &app, deploy).await.unwrap();
        }
        let viewer = "vic@example.com".parse().unwrap();
        let grant = Grant {
            role: Role::Viewer,
            app: Some(app.clone()),
            env: None,
        };
        hoist.access_grant(&owner, &viewer, grant).await.unwrap();
        let admin = "ana@example.com".parse().unwrap();
        let grant = Grant {
            role: Role::Admin,
            app: None,
            env: None,
        };
        hoist.access_grant(&owner, &admin, grant).await.unwrap();
        let viewer_token = hoist
            .access_token_create(&owner, &viewer, None, None)
            .await
            .unwrap()
            .token;
        let admin_token = hoist
            .access_token_create(&owner, &admin, None, None)
            .await
            .unwrap()
            .token;
        (viewer_token, admin_token)
    });
    let (viewer_token, admin_token) = token;
    let port = free_port();
    let mut serve = std::process::Command::new(BIN)
        .args(["--store", store.to_str().unwrap(), "serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("HOIST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_up(port, &mut serve);

    println!("GET /v1/apps/api/status (500-release history), {SPAN:?} per level");
    println!("clients  api req/s  p50 µs  p99 µs   in-process answers/s  ratio");
    for clients in [1, 16, 128] {
        let api = measure_api(port, &viewer_token, clients);
        let floor = measure_in_process(&rt, &hoist, clients);
        println!(
            "{clients:>7}  {:>9.0}  {:>6}  {:>6}   {:>20.0}  {:.3}",
            api.per_s,
            api.p50_us,
            api.p99_us,
            floor,
            api.per_s / floor
        );
    }

    let server = format!("http://127.0.0.1:{port}");
    let image = |n: u32| format!("registry.example/api@sha256:{:064x}", 10_000 + n);
    let store_args = ["--store", store.to_str().unwrap()];
    let server_args = ["--server", &server, "--token", &admin_token];
    let mut n = 0;
    let mut deploy = |backend: &[&str]| {
        n += 1;
        let args = ["deploy", "api", "--env", "staging", "--image", &image(n)];
        whole_process(backend, &args)
    };
    let remote_deploy = median_of(30, || deploy(&server_args));
    let local_deploy = median_of(30, || deploy(&store_args));
    let remote_status = median_of(30, || whole_process(&server_args, &["status", "api"]));
    let local_status = median_of(30, || whole_process(&store_args, &["status", "api"]));
    println!("whole process, median of 30   remote      local   ratio");
    for (what, remote, local) in [
        ("hoist deploy", remote_deploy, local_deploy),
        ("hoist status", remote_status, local_status),
    ] {
        println!(
            "{what:<30} {:>6.1} ms  {:>6.1} ms  {:.2}",
            remote * 1e3,
            local * 1e3,
            remote / local
        );
    }
    let _ = serve.kill();
    let _ = serve.wait();
}

struct Measured {
    per_s: f64,
    p50_us: u64,
    p99_us: u64,
}

/// `clients` keep-alive connections asking for the status as fast as answered, for `SPAN`.
fn measure_api(port: u16, token: &str, clients: usize) -> Measured {
    let request = format!(
        "GET /v1/apps/api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let started = Instant::now();
    let mut latencies: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let request = request.as_bytes();
                scope.spawn(move || {
                    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    stream.set_nodelay(true).unwrap();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    let mut latencies = Vec::new();
                    while started.elapsed() < SPAN {
                        let asked = Instant::now();
                        writer.write_all(request).unwrap();
                        assert_eq!(read_response(&mut reader), 200);
                        latencies.push(asked.elapsed().as_micros() as u64);
                    }
                    latencies
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let took = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Measured {
        per_s: latencies.len() as f64 / took,
        p50_us: at(0.5),
        p99_us: at(0.99),
    }
}

/// The same answer in-process: `clients` tasks asking `Hoist::answer` for it, for `SPAN`.
fn measure_in_process(rt: &tokio::runtime::Runtime, hoist: &Hoist, clients: usize) -> f64 {
    let viewer = Caller {
        principal: Principal::Owner,
        actor: "vic@example.com".parse().unwrap(),
        via: None,
        command_id: None,
    };
    let started = Instant::now();
    let answered: usize = rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (hoist, viewer) = (hoist.clone(), viewer.clone());
                tokio::spawn(async move {
                    let mut answered = 0;
                    while started.elapsed() < SPAN {
                        let status = Request::Status {
                            app: "api".parse().unwrap(),
                            at: None,
                        };
                        hoist.answer(&viewer, status, None).await.unwrap();
                        answered += 1;
                    }
                    answered
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        total
    });
    answered as f64 / started.elapsed().as_secs_f64()
}

fn whole_process(backend: &[&str], args: &[&str]) -> f64 {
    let started = Instant::now();
    let output = std::process::Command::new(BIN)
        .args(backend)
        .args(args)
        .env("HOIST_ACTOR", "owner@example.com")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    started.elapsed().as_secs_f64()
}

fn median_of(runs: usize, mut run: impl FnMut() -> f64) -> f64 {
    let mut times: Vec<f64> = (0..runs).map(|_| run()).collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until_up(port: u16, serve: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(serve.try_wait().unwrap().is_none(), "serve exited");
        assert!(Instant::now() < deadline, "serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}
