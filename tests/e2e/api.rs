//! `hoist serve --listen` as a real process over a real store: it answers HTTP beside the
//! reconciler, refuses what has no token (appending nothing), cuts off a client that trickles its
//! headers, and stops cleanly on SIGTERM. A plain HTTP/1.1 client over `TcpStream`: what is
//! checked is what goes over the wire.

use crate::harness::{wait_for, Hoist};
use crate::nats_server::free_port;
use crate::serve::{serve_log, sigterm};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: not JSON: {:?}", self.body))
    }

    /// API.md's error shape with `code`; returns the message (one line).
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{self:?}");
        let value = self.json();
        assert_eq!(value["error"]["code"], code, "{self:?}");
        let message = value["error"]["message"].as_str().expect("a message");
        assert!(!message.contains('\n'), "{message:?}");
        message.to_string()
    }
}

/// One request on a connection of its own (`Connection: close`), read to its end.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to serve");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

/// A `hoist serve` a test started: killed when dropped, so a test that fails before it stops it
/// leaves no server running. (A test stops it with `sigterm`, which checks the clean exit.)
pub(crate) struct Serve(Child);

impl std::ops::Deref for Serve {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Serve {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `hoist serve --listen 127.0.0.1:<free port>`, answering `/healthz`; its stderr in `log`.
pub(crate) fn start_api(h: &Hoist, log: &str) -> (Serve, u16) {
    start_api_with(h, log, &[])
}

/// [`start_api`] with more `serve` flags (issue 13: `--web-session`).
pub(crate) fn start_api_with(h: &Hoist, log: &str, flags: &[&str]) -> (Serve, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["serve", "--resync", "60s", "--listen", &listen];
    args.extend_from_slice(flags);
    let mut child = Serve(
        h.command(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(h.dir.path().join(log)).unwrap())
            .spawn()
            .expect("hoist serve starts"),
    );
    wait_for(
        "the API to answer /healthz",
        Duration::from_secs(20),
        || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("serve exited {status:?}:\n{}", serve_log(h, log));
            }
            TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| http(port, "GET", "/healthz", &[], None))
                .filter(|r| r.status == 200)
        },
    );
    (child, port)
}

/// The anonymous routes answer, a request without a token is 401 with nothing appended, the
/// reconciler still works beside the API, and SIGTERM stops both cleanly.
pub fn serve_answers_http_and_stops_on_sigterm(h: &Hoist) {
    h.ok(&["apps", "create", "web"]);
    let (mut serve, port) = start_api(h, "api.log");

    let health = http(port, "GET", "/healthz", &[], None);
    assert_eq!(health.json(), serde_json::json!({"ok": true}));
    assert_eq!(health.header("content-type"), Some("application/json"));
    let ready = http(port, "GET", "/readyz", &[], None);
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.json()["ready"], true);

    let before = h.event_count();
    let refused = [
        http(port, "GET", "/v1/apps", &[], None),
        http(
            port,
            "POST",
            "/v1/apps",
            &[("Authorization", "Bearer not-a-token")],
            Some(r#"{"app": "api"}"#),
        ),
        http(
            port,
            "POST",
            "/v1/apps/web/envs/staging/deploy",
            &[],
            Some(&format!(
                r#"{{"image": "{}"}}"#,
                crate::harness::image("web", '1')
            )),
        ),
    ];
    for reply in &refused {
        reply.error(401, "unauthenticated");
        assert!(reply.header("www-authenticate").is_some(), "{reply:?}");
    }
    let in_url = http(port, "GET", "/v1/apps?token=abc", &[], None);
    in_url.error(400, "bad_request");
    http(port, "GET", "/v1/nowhere", &[], None).error(404, "not_found");
    http(port, "GET", "/v1/apps/..%2Fetc/status", &[], None).error(400, "bad_request");
    assert_eq!(h.event_count(), before, "a refused request appends nothing");

    let metrics = http(port, "GET", "/metrics", &[], None);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("hoist_log_last_seq "),
        "{}",
        metrics.body
    );
    assert!(metrics
        .body
        .contains("hoist_http_request_duration_seconds_bucket{route=\"/healthz\""));
    let doc = http(port, "GET", "/v1/openapi.json", &[], None).json();
    assert!(doc["paths"]["/v1/apps/{app}/envs/{env}/deploy"]["post"].is_object());

    // The CLI keeps working on the same store while serve holds it now and then.
    h.deploy("web", "staging", &crate::harness::image("web", '1'));
    sigterm(&mut serve);
    let log = serve_log(h, "api.log");
    assert!(log.contains("HTTP API stopped"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens after the stop"
    );
}

/// A client that sends half its headers and then nothing is cut off after the header read
/// timeout, and the server keeps answering others meanwhile.
pub fn a_slow_loris_client_is_cut_off(h: &Hoist) {
    let (mut serve, port) = start_api(h, "api.log");
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    // Others are served while it dawdles.
    assert_eq!(http(port, "GET", "/healthz", &[], None).status, 200);
    let mut buffer = Vec::new();
    // The server closes the connection (possibly after a 408): the read ends.
    let _ = slow.read_to_end(&mut buffer);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(25),
        "cut off after the header read timeout, not left open: {waited:?}"
    );
    let answered = String::from_utf8_lossy(&buffer);
    assert!(
        answered.is_empty() || answered.starts_with("HTTP/1.1 408"),
        "{answered:?}"
    );
    sigterm(&mut serve);
}
