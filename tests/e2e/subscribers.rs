//! Subscribers (issue 11) as a receiver sees them: `hoist serve` delivers to a real HTTP
//! receiver (`tests/support/hook_receiver.py`) whose checks are libraries hoist did not write —
//! PyPI's `standardwebhooks` verifies every signature, PyPI's `cloudevents` parses every
//! CloudEvent — and which deduplicates on `webhook-id` as the spec asks. Faults: answers 500,
//! a receiver down then up, `serve` killed between a send and its record, a hook removed while
//! its deliveries are pending, 410 Gone, two `serve` instances on one NATS stream.

use crate::harness::{image, wait_for, Hoist};
use crate::serve::{serve_log, sigterm, wait_serving};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const RECEIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/hook_receiver.py"
);

/// A receiver process and where it logs each request.
pub struct Receiver {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Receiver {
    /// Starts a receiver in `dir` under `name`, answering `plan`'s statuses first, checking
    /// signatures with `secret`; on `port` if given, else one the OS picks.
    pub fn start(dir: &Path, name: &str, secret: &str, plan: &str, port: Option<u16>) -> Self {
        Self::start_checking(dir, name, &[secret], plan, port)
    }

    /// [`Receiver::start`], checking each of `secrets` on its own (a rotation signs with two).
    pub fn start_checking(
        dir: &Path,
        name: &str,
        secrets: &[&str],
        plan: &str,
        port: Option<u16>,
    ) -> Self {
        let port_file = dir.join(format!("{name}.port"));
        let _ = std::fs::remove_file(&port_file);
        let log = dir.join(format!("{name}.jsonl"));
        let mut command = Command::new("python3");
        command
            .arg(RECEIVER)
            .arg(&port_file)
            .arg(&log)
            .args(secrets.iter().flat_map(|s| ["--secret", s]))
            .args(["--plan", plan])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap());
        if let Some(port) = port {
            command.args(["--port", &port.to_string()]);
        }
        let child = command.spawn().expect(
            "python3 runs the receiver (scripts/test.sh installs standardwebhooks and cloudevents)",
        );
        let port = wait_for(
            &format!("receiver {name} to listen"),
            Duration::from_secs(20),
            || {
                std::fs::read_to_string(&port_file)
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            },
        );
        Receiver { child, port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a receiver line"))
            .collect()
    }

    /// The requests it accepted (200, a `webhook-id` not seen before).
    pub fn accepted(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["status"] == 200 && r["duplicate"] != true)
            .collect()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `whsec_` secret of 32 bytes, as a test chooses it: 42 base64 digits and `A=` (whose
/// low bits are zero, so every decoder takes it).
fn secret(n: u8) -> String {
    let digit = (b'A' + n) as char;
    format!("whsec_{}A=", digit.to_string().repeat(42))
}

/// `serve` with a fast retry schedule (attempts 1 s apart), logging to `log`.
fn start_serve(h: &Hoist, log: &str, env: &[(&str, &Path)]) -> Child {
    let config = h.dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "[hooks]\nretry_schedule = [\"0s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\"]\n",
    )
    .unwrap();
    let mut command = h.command(&[
        "serve",
        "--resync",
        "60s",
        "--config",
        config.to_str().unwrap(),
    ]);
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(h.dir.path().join(log)).unwrap())
        .spawn()
        .expect("hoist serve starts")
}

fn add_hook(h: &Hoist, name: &str, url: &str, secret: &str, extra: &[&str]) {
    let file = h.dir.path().join(format!("{name}.secret"));
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let mut args = vec![
        "hooks",
        "add",
        name,
        "--url",
        url,
        "--secret-file",
        file.to_str().unwrap(),
    ];
    args.extend(extra);
    h.ok(&args);
}

fn deliveries(h: &Hoist, hook: &str) -> Vec<Value> {
    h.json(&["hooks", "deliveries", hook])
        .as_array()
        .expect("an array")
        .clone()
}

/// Waits until every delivery of `hook` is final and there are `count` of them.
fn wait_final(h: &Hoist, hook: &str, count: usize) -> Vec<Value> {
    wait_for(
        &format!("{count} final deliveries of {hook}"),
        Duration::from_secs(30),
        || {
            let all = deliveries(h, hook);
            (all.len() == count
                && all
                    .iter()
                    .all(|d| d["state"] == "succeeded" || d["state"] == "failed"))
            .then_some(all)
        },
    )
}

/// Signed, verified by `standardwebhooks`, parsed by `cloudevents`; a receiver answering 500
/// twice gets the same `webhook-id` a third time and accepts it once; events before the hook
/// are not sent; `hooks deliveries` tells it all; `redeliver` sends one again.
pub fn deliveries_are_signed_retried_in_order_and_logged(h: &Hoist) {
    let dir = h.dir.path();
    let web = Receiver::start(dir, "web", &secret(1), "500,500", None);
    let ce = Receiver::start(dir, "ce", &secret(2), "", None);
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", '0'));
    add_hook(h, "ci", &web.url("/hook"), &secret(1), &[]);
    add_hook(
        h,
        "events",
        &ce.url("/ce"),
        &secret(2),
        &["--format", "cloudevents", "--app", "api", "--events", "all"],
    );
    let mut serve = start_serve(h, "serve.log", &[]);
    h.deploy("api", "staging", &image("api", '1'));
    h.ok(&[
        "lock",
        "api",
        "--env",
        "production",
        "--reason",
        "freeze <b>",
    ]);
    let ci = wait_final(h, "ci", 2);
    assert_eq!(ci[0]["kind"], "env.locked");
    assert_eq!(ci[1]["kind"], "release.created");
    assert_eq!(ci[1]["attempts"], 3, "{ci:?}");
    assert_eq!(ci[1]["state"], "succeeded");
    assert_eq!(ci[1]["last_status"], 200);
    let requests = web.requests();
    assert_eq!(requests.len(), 4, "{requests:?}");
    for request in &requests {
        assert_eq!(request["verified"], true, "{request}");
    }
    // The release first (three tries, one id), then the lock: log order.
    let ids: Vec<&str> = requests
        .iter()
        .map(|r| r["headers"]["webhook-id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
    assert_ne!(ids[2], ids[3]);
    assert_eq!(ids[0], ci[1]["id"]);
    let body: Value = serde_json::from_str(requests[2]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "release.created");
    assert_eq!(body["app"], "api");
    assert_eq!(body["env"], "staging");
    assert_eq!(body["actor"], "ana@example.com");
    assert_eq!(body["data"]["version"], 2);
    assert_eq!(web.accepted().len(), 2);
    // CloudEvents: every event of api since the hook (the lock and the release), typed.
    let events = wait_final(h, "events", 2);
    assert!(events.iter().all(|d| d["state"] == "succeeded"));
    let types: Vec<String> = ce
        .requests()
        .iter()
        .map(|r| {
            assert_eq!(r["verified"], true, "{r}");
            assert_eq!(r["cloudevent"]["source"], "/apps/api", "{r}");
            assert_eq!(r["cloudevent"]["specversion"], "1.0");
            r["cloudevent"]["type"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        types,
        ["dev.hoist.release.created", "dev.hoist.env.locked"],
        "{:?}",
        ce.requests()
    );
    // Redelivery: asked through the log, sent by serve, the same id again.
    let id = ci[1]["id"].as_str().unwrap().to_string();
    h.ok(&["hooks", "redeliver", "ci", &id]);
    wait_for("the redelivery", Duration::from_secs(20), || {
        (web.requests().len() == 5).then_some(())
    });
    let again = &web.requests()[4];
    assert_eq!(again["headers"]["webhook-id"], id.as_str());
    assert_eq!(
        again["duplicate"], true,
        "the receiver has seen it: {again}"
    );
    let audit = h.json(&["audit", "--kind", "hook"]);
    assert_eq!(audit.as_array().unwrap().len(), 3, "{audit}");
    // A ping from the CLI, verified like the rest.
    let ping = h.json(&["hooks", "test", "ci"]);
    assert_eq!(ping["ok"], true, "{ping}");
    let pinged = web.requests().pop().unwrap();
    assert_eq!(pinged["verified"], true);
    assert_eq!(
        serde_json::from_str::<Value>(pinged["body"].as_str().unwrap()).unwrap()["type"],
        "ping"
    );
    sigterm(&mut serve);
}

/// `serve` killed after a send and before its record sends it again, under the same id; the
/// deduplicating receiver accepts it once.
pub fn a_serve_killed_between_send_and_record_sends_again_with_the_same_id(h: &Hoist) {
    let dir = h.dir.path();
    let web = Receiver::start(dir, "web", &secret(3), "", None);
    h.ok(&["apps", "create", "api"]);
    add_hook(h, "ci", &web.url("/hook"), &secret(3), &[]);
    let marker = dir.join("sent");
    let mut serve = start_serve(
        h,
        "serve-1.log",
        &[("HOIST_TEST_PAUSE_AFTER_SEND", &marker)],
    );
    h.deploy("api", "staging", &image("api", '1'));
    let id = wait_for("the send", Duration::from_secs(20), || {
        std::fs::read_to_string(&marker).ok()
    });
    serve.kill().expect("kill -9 serve");
    serve.wait().unwrap();
    assert_eq!(
        deliveries(h, "ci")[0]["state"],
        "pending",
        "nothing was recorded"
    );
    let mut serve = start_serve(h, "serve-2.log", &[]);
    let done = wait_final(h, "ci", 1);
    assert_eq!(done[0]["state"], "succeeded");
    assert_eq!(done[0]["id"], id.as_str());
    let requests = web.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0]["headers"]["webhook-id"], id.as_str());
    assert_eq!(requests[1]["headers"]["webhook-id"], id.as_str());
    assert_eq!(web.accepted().len(), 1);
    sigterm(&mut serve);
}

/// A receiver that is down is tried again on schedule, with the error in the delivery log; once
/// up, it gets every delivery, in order.
pub fn a_receiver_down_then_up_gets_everything_in_order(h: &Hoist) {
    let dir = h.dir.path();
    // A port nobody listens on yet: taken from a receiver started and stopped.
    let mut probe = Receiver::start(dir, "probe", &secret(4), "", None);
    let port = probe.port;
    probe.stop();
    h.ok(&["apps", "create", "api"]);
    add_hook(
        h,
        "ci",
        &format!("http://127.0.0.1:{port}/hook"),
        &secret(4),
        &[],
    );
    let mut serve = start_serve(h, "serve.log", &[]);
    for n in ['1', '2', '3'] {
        h.deploy("api", "staging", &image("api", n));
    }
    let retrying = wait_for("a failed attempt", Duration::from_secs(20), || {
        let all = deliveries(h, "ci");
        all.iter()
            .find(|d| d["state"] == "retrying" && d["attempts"].as_u64() >= Some(2))
            .cloned()
    });
    assert!(
        retrying["last_error"].as_str().unwrap().len() > 3,
        "{retrying}"
    );
    assert!(retrying["next_attempt_at"].is_string());
    let web = Receiver::start(dir, "web", &secret(4), "", Some(port));
    let done = wait_final(h, "ci", 3);
    assert!(done.iter().all(|d| d["state"] == "succeeded"), "{done:?}");
    let versions: Vec<u64> = web
        .accepted()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            body["data"]["version"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    sigterm(&mut serve);
}

/// A hook removed while its deliveries are pending sends nothing more; a 410 disables a hook (an
/// event) and `hooks list` says so; the other hooks are not held up by either.
pub fn removed_and_gone_hooks_stop_and_others_go_on(h: &Hoist) {
    let dir = h.dir.path();
    let failing = Receiver::start(dir, "failing", &secret(5), &"500,".repeat(50), None);
    let gone = Receiver::start(dir, "gone", &secret(5), "410", None);
    let fine = Receiver::start(dir, "fine", &secret(5), "", None);
    h.ok(&["apps", "create", "api"]);
    add_hook(h, "failing", &failing.url("/"), &secret(5), &[]);
    add_hook(h, "gone", &gone.url("/"), &secret(5), &[]);
    add_hook(h, "fine", &fine.url("/"), &secret(5), &[]);
    let mut serve = start_serve(h, "serve.log", &[]);
    h.deploy("api", "staging", &image("api", '1'));
    wait_for("two failed attempts", Duration::from_secs(20), || {
        (failing.requests().len() >= 2).then_some(())
    });
    assert_eq!(wait_final(h, "fine", 1)[0]["state"], "succeeded");
    h.ok(&["hooks", "remove", "failing"]);
    wait_for("the removal to stop it", Duration::from_secs(20), || {
        serve_log(h, "serve.log")
            .contains("hook=failing")
            .then_some(())
            .filter(|_| serve_log(h, "serve.log").contains("no more deliveries"))
    });
    let sent = failing.requests().len();
    // 410: disabled, recorded as an event, listed so.
    let list = wait_for("gone to be disabled", Duration::from_secs(20), || {
        let list = h.json(&["hooks", "list"]);
        list.as_array()
            .unwrap()
            .iter()
            .any(|hook| hook["name"] == "gone" && hook["state"] == "disabled")
            .then_some(list)
    });
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let audit = h.ok(&["audit", "--kind", "hook"]);
    assert!(audit.contains("Disabled hook gone"), "{audit}");
    // The fine hook goes on: a second release reaches it, and the removed one got nothing more.
    h.deploy("api", "staging", &image("api", '2'));
    assert_eq!(wait_final(h, "fine", 2)[0]["state"], "succeeded");
    assert_eq!(gone.requests().len(), 1, "nothing after 410");
    assert_eq!(failing.requests().len(), sent, "nothing after the removal");
    sigterm(&mut serve);
}

/// Bad input: one line naming the rule, exit 1, nothing appended.
pub fn bad_hooks_are_refused_and_nothing_appended(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    let bad_secret = h.dir.path().join("bad.secret");
    std::fs::write(&bad_secret, "whsec_c2hvcnQ=\n").unwrap();
    let bad_secret = bad_secret.to_str().unwrap();
    add_hook(h, "ci", "http://127.0.0.1:9/x", &secret(6), &[]);
    let before = h.event_count();
    let url = ["--url", "https://hooks.example/x"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["hooks", "add", "Bad_Name", url[0], url[1]],
            "hook name",
        ),
        (
            vec!["hooks", "add", "x", "--url", "ftp://x/"],
            "http:// or https://",
        ),
        (
            vec!["hooks", "add", "x", "--url", "https://u:p@x/"],
            "credentials",
        ),
        (
            vec!["hooks", "add", "x", url[0], url[1], "--format", "webhook"],
            "--format",
        ),
        (
            vec!["hooks", "add", "x", url[0], url[1], "--events", "deploys"],
            "\"deploys\"",
        ),
        (
            vec!["hooks", "add", "x", url[0], url[1], "--app", "nope"],
            "app nope does not exist",
        ),
        (
            vec![
                "hooks", "add", "x", url[0], url[1], "--app", "api", "--env", "qa",
            ],
            "env qa",
        ),
        (
            vec!["hooks", "add", "x", url[0], url[1], "--format", "matrix"],
            "--room",
        ),
        // issue 12: a Slack bot needs a channel id and its token.
        (
            vec![
                "hooks", "add", "x", url[0], url[1], "--format", "slack", "--room", "C0123",
            ],
            "--token-file FILE holding the bot token",
        ),
        (
            vec![
                "hooks", "add", "x", url[0], url[1], "--format", "slack", "--room", "#ops",
            ],
            "channel id",
        ),
        (
            vec![
                "hooks",
                "add",
                "x",
                url[0],
                url[1],
                "--secret-file",
                bad_secret,
            ],
            "24 to 64 bytes",
        ),
        (
            vec!["hooks", "add", "ci", url[0], url[1]],
            "hook ci already exists",
        ),
        (vec!["hooks", "remove", "nope"], "hook nope does not exist"),
        (
            vec!["hooks", "deliveries", "nope"],
            "hook nope does not exist",
        ),
        (vec!["hooks", "redeliver", "ci", "not-an-id"], "DELIVERY_ID"),
        (
            vec![
                "hooks",
                "redeliver",
                "ci",
                "01a22bc8-dc7c-716e-9c73-d38cb440b130",
            ],
            "no delivery",
        ),
    ];
    for (args, needle) in cases {
        let err = h.fails(&args, 1, &[needle]);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("whsec_"), "no secret in errors: {err}");
    }
    assert_eq!(h.event_count(), before, "nothing appended");
    // The secret is never listed, and sealed in the log.
    let list = h.ok(&["hooks", "list", "--json"]);
    assert!(!list.contains("whsec_"), "{list}");
    let events = h.ok(&["events"]);
    assert!(
        !events.contains(&secret(6)),
        "the secret is sealed in the log"
    );
}

/// Two `serve` instances on one stream: each delivery is sent by one of them, once.
pub fn two_serves_send_each_delivery_once(h: &Hoist) {
    let dir = h.dir.path();
    let web = Receiver::start(dir, "web", &secret(7), "", None);
    h.ok(&["apps", "create", "api"]);
    h.ok(&["apps", "create", "web"]);
    add_hook(h, "ci", &web.url("/hook"), &secret(7), &[]);
    let mut one = start_serve(h, "serve-1.log", &[]);
    let mut two = start_serve(h, "serve-2.log", &[]);
    for n in ['1', '2', '3', '4'] {
        h.deploy("api", "staging", &image("api", n));
        h.deploy("web", "staging", &image("web", n));
    }
    let done = wait_final(h, "ci", 8);
    assert!(done.iter().all(|d| d["state"] == "succeeded"));
    let requests = web.requests();
    assert_eq!(requests.len(), 8, "each sent once: {requests:?}");
    assert_eq!(web.accepted().len(), 8);
    sigterm(&mut one);
    sigterm(&mut two);
}

/// A real Matrix homeserver (`tests/support/matrix_homeserver.py`: PyPI's `matrix-synapse`).
struct Homeserver {
    child: Child,
    dir: PathBuf,
    info: Value,
}

const HOMESERVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/matrix_homeserver.py"
);

impl Homeserver {
    fn start(dir: &Path) -> Self {
        let dir = dir.join("matrix");
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("python3")
            .args([HOMESERVER, "start"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("helper.stderr")).unwrap())
            .spawn()
            .expect("python3 runs synapse (scripts/test.sh installs matrix-synapse)");
        let info = wait_for("synapse to serve", Duration::from_secs(90), || {
            let text = std::fs::read_to_string(dir.join("matrix.json")).ok()?;
            serde_json::from_str::<Value>(&text).ok()
        });
        Homeserver { child, dir, info }
    }

    /// The room's messages, oldest first, as ana reads them.
    fn messages(&self) -> Vec<Value> {
        let out = Command::new("python3")
            .args([HOMESERVER, "messages"])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Drop for Homeserver {
    fn drop(&mut self) {
        // SIGTERM: the helper kills synapse, its child.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// hoist posts a release into a room of a real homeserver (joining it first), as `m.notice`s
/// with an HTML body; a failed rollout is an alert; a redelivery posts nothing new (the event id
/// is the transaction id).
pub fn a_matrix_room_hears_of_releases_once(h: &Hoist) {
    let server = Homeserver::start(h.dir.path());
    let token = h.dir.path().join("matrix-token");
    std::fs::write(
        &token,
        format!("{}\n", server.info["bot_token"].as_str().unwrap()),
    )
    .unwrap();
    h.ok(&["apps", "create", "api"]);
    h.ok(&[
        "hooks",
        "add",
        "room",
        "--format",
        "matrix",
        "--url",
        server.info["url"].as_str().unwrap(),
        "--room",
        server.info["room"].as_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
    ]);
    h.ok(&[
        "envs",
        "target",
        "api",
        "--env",
        "production",
        "--exec",
        "echo '<script>' >&2; exit 3",
    ]);
    let mut serve = start_serve(h, "serve.log", &[]);
    h.deploy("api", "staging", &image("api", '1'));
    h.deploy("api", "production", &image("api", '1'));
    let done = wait_final(h, "room", 3);
    assert!(done.iter().all(|d| d["state"] == "succeeded"), "{done:?}");
    let notices: Vec<Value> = server
        .messages()
        .into_iter()
        .filter(|m| m["sender"] == "@hoist:localhost")
        .collect();
    assert_eq!(notices.len(), 3, "{notices:?}");
    for notice in &notices {
        assert_eq!(notice["content"]["msgtype"], "m.notice");
        assert_eq!(notice["content"]["format"], "org.matrix.custom.html");
    }
    let bodies: Vec<&str> = notices
        .iter()
        .map(|n| n["content"]["body"].as_str().unwrap())
        .collect();
    assert!(
        bodies[0].starts_with("api/staging v1 released by ana@example.com"),
        "{bodies:?}"
    );
    assert!(
        bodies[1].starts_with("api/production v1 released by"),
        "{bodies:?}"
    );
    assert!(
        bodies[2].starts_with("api/production v1 rollout failed"),
        "{bodies:?}"
    );
    let alert = notices[2]["content"]["formatted_body"].as_str().unwrap();
    assert!(alert.contains("<strong>"), "{alert}");
    assert!(!alert.contains("<script>"), "escaped: {alert}");
    // Sent again: the homeserver answers the same transaction with the same event.
    let id = done[2]["id"].as_str().unwrap().to_string();
    h.ok(&["hooks", "redeliver", "room", &id]);
    wait_for("the redelivery", Duration::from_secs(20), || {
        let all = deliveries(h, "room");
        all.iter()
            .any(|d| d["id"] == id.as_str() && d["attempts"] == 2)
            .then_some(())
    });
    let after: Vec<Value> = server
        .messages()
        .into_iter()
        .filter(|m| m["sender"] == "@hoist:localhost")
        .collect();
    assert_eq!(after.len(), 3, "posted once: {after:?}");
    sigterm(&mut serve);
}

/// A Slack incoming webhook gets Block Kit that Slack's own SDK validates, with a text
/// fallback; a failed rollout is an alert; the URL (the secret) is never shown or logged.
pub fn slack_gets_block_kit_and_its_url_stays_secret(h: &Hoist) {
    let dir = h.dir.path();
    let slack = Receiver::start(dir, "slack", &secret(8), "", None);
    let url = slack.url("/slack/services/T0001/B0002/s3cr3tp4th");
    h.ok(&["apps", "create", "api"]);
    h.ok(&["hooks", "add", "chat", "--format", "slack", "--url", &url]);
    h.ok(&[
        "envs", "target", "api", "--env", "staging", "--exec", "exit 3",
    ]);
    let mut serve = start_serve(h, "serve.log", &[]);
    h.deploy("api", "staging", &image("api", '1'));
    let done = wait_final(h, "chat", 2);
    assert!(done.iter().all(|d| d["state"] == "succeeded"), "{done:?}");
    let requests = slack.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert!(request.get("slack_error").is_none(), "{request}");
    }
    assert_eq!(
        requests[0]["slack"]["blocks"],
        serde_json::json!(["section", "context"])
    );
    assert!(requests[0]["slack"]["text"]
        .as_str()
        .unwrap()
        .starts_with("api/staging v1 released by ana@example.com"));
    assert_eq!(
        requests[1]["slack"]["blocks"],
        serde_json::json!(["header", "section", "context"]),
        "a failed rollout is an alert"
    );
    assert!(requests[1]["slack"]["text"]
        .as_str()
        .unwrap()
        .starts_with(":rotating_light: api/staging v1 rollout failed"));
    let shown =
        h.ok(&["hooks", "list", "--json"]) + &h.ok(&["events"]) + &serve_log(h, "serve.log");
    assert!(
        !shown.contains("s3cr3tp4th"),
        "the Slack URL is a secret: {shown}"
    );
    sigterm(&mut serve);
}

/// Through `hoist serve --listen` (the remote CLI): an admin of `api` adds a hook on api (the
/// server delivers it), but not one on every app; a deployer may not even list them; the answer
/// is the local CLI's.
pub fn hooks_through_the_server_follow_the_roles(h: &Hoist) {
    use crate::api::start_api;
    let web = Receiver::start(h.dir.path(), "web", &secret(9), "", None);
    h.ok(&["apps", "create", "api"]);
    let token = |identity: &str, role: &str| {
        let created = h.json(&["access", "token", "create", identity]);
        h.ok(&["access", "grant", identity, "--role", role, "--app", "api"]);
        created["token"].as_str().unwrap().to_string()
    };
    let admin = token("ada@example.com", "admin");
    let deployer = token("dee@example.com", "deployer");
    let (mut serve, port) = start_api(h, "serve-api.log");
    let url = format!("http://127.0.0.1:{port}");
    let ada = h.through_server(&url, &admin);
    let dee = h.through_server(&url, &deployer);
    let file = ada.dir.path().join("secret");
    std::fs::write(&file, secret(9)).unwrap();
    let file = file.to_str().unwrap();
    let before = h.event_count();
    let everything = [
        "hooks",
        "add",
        "all",
        "--url",
        &web.url("/"),
        "--secret-file",
        file,
    ];
    let refused = ada.run(&everything);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    let listing = dee.run(&["hooks", "list"]);
    assert_eq!(listing.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&listing.stdout).starts_with("No hooks"));
    assert_eq!(
        dee.run(&["hooks", "add", "x", "--url", &web.url("/"), "--app", "api"])
            .status
            .code(),
        Some(5)
    );
    assert_eq!(h.event_count(), before, "nothing appended");
    let added = ada.json(&[
        "hooks",
        "add",
        "ci",
        "--url",
        &web.url("/"),
        "--app",
        "api",
        "--secret-file",
        file,
    ]);
    assert_eq!(added["secret"], Value::Null, "given, so not shown");
    assert_eq!(ada.ok(&["hooks", "list"]), h.ok(&["hooks", "list"]));
    h.deploy("api", "staging", &image("api", '1'));
    let done = wait_for("the delivery", Duration::from_secs(20), || {
        let all = ada.json(&["hooks", "deliveries", "ci"]);
        (all[0]["state"] == "succeeded").then_some(all)
    });
    assert_eq!(web.accepted().len(), 1);
    assert_eq!(web.requests()[0]["verified"], true);
    let metrics = crate::api::http(port, "GET", "/metrics", &[], None).body;
    assert!(
        metrics.contains(
            "hoist_deliveries_total{format=\"standard-webhooks\",outcome=\"succeeded\"} 1"
        ),
        "{metrics}"
    );
    let ping = ada.json(&["hooks", "test", "ci"]);
    assert_eq!(ping["ok"], true);
    ada.ok(&["hooks", "redeliver", "ci", done[0]["id"].as_str().unwrap()]);
    let audit = h.ok(&["audit", "--kind", "hook"]);
    assert!(audit.contains("ada@example.com via api"), "{audit}");
    ada.ok(&["hooks", "remove", "ci"]);
    sigterm(&mut serve);
}

/// `hooks rotate`: deliveries carry a signature by the new secret and one by the previous,
/// each verified by `standardwebhooks` on its own, until the previous one's time ends.
pub fn a_rotated_secret_signs_beside_the_previous_one(h: &Hoist) {
    let dir = h.dir.path();
    let both = Receiver::start_checking(dir, "both", &[&secret(10), &secret(11)], "", None);
    h.ok(&["apps", "create", "api"]);
    add_hook(h, "ci", &both.url("/"), &secret(10), &[]);
    let new = dir.join("new.secret");
    std::fs::write(&new, secret(11)).unwrap();
    let rotated = h.json(&[
        "hooks",
        "rotate",
        "ci",
        "--secret-file",
        new.to_str().unwrap(),
        "--keep",
        "1h",
    ]);
    assert_eq!(rotated["secret"], Value::Null);
    assert!(rotated["previous_valid_until"].is_string());
    let mut serve = start_serve(h, "serve.log", &[]);
    h.deploy("api", "staging", &image("api", '1'));
    wait_final(h, "ci", 1);
    let request = &both.requests()[0];
    assert_eq!(
        request["verified_by"],
        serde_json::json!([0, 1]),
        "{request}"
    );
    let signature = request["headers"]["webhook-signature"].as_str().unwrap();
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    // A made secret is shown once; a Slack hook has no secret to rotate.
    let made = h.json(&["hooks", "rotate", "ci", "--keep", "1s"]);
    assert!(made["secret"].as_str().unwrap().starts_with("whsec_"));
    h.ok(&[
        "hooks",
        "add",
        "chat",
        "--format",
        "slack",
        "--url",
        "https://hooks.example/x",
    ]);
    let before = h.event_count();
    h.fails(&["hooks", "rotate", "chat"], 1, &["only signing formats"]);
    assert_eq!(h.event_count(), before);
    sigterm(&mut serve);
}

/// Crash torture for the delivery journal: `serve` killed with SIGKILL at random instants while
/// it delivers (and releases keep coming); after every kill the journal reads; in the end every
/// event was accepted by the receiver, none lost, and every delivery is `succeeded`.
pub fn deliveries_survive_serve_killed_at_random(h: &Hoist, iterations: usize) {
    use crate::torture::{kill_at_random, Rng, Tally};
    let dir = h.dir.path();
    // Every fifth answer a 500: retries are cut by kills too.
    let plan = ["500", "200", "200", "200", "200"].repeat(40).join(",");
    let web = Receiver::start(dir, "web", &secret(12), &plan, None);
    h.ok(&["apps", "create", "api"]);
    h.ok(&["apps", "create", "web"]);
    add_hook(h, "ci", &web.url("/hook"), &secret(12), &[]);
    const HEX: &[u8] = b"0123456789abcdef";
    for (n, digit) in HEX.iter().take(10).enumerate() {
        let app = if n % 2 == 0 { "api" } else { "web" };
        h.deploy(app, "staging", &image(app, char::from(*digit)));
    }
    let mut rng = Rng::seeded();
    let mut tally = Tally::default();
    for i in 0..iterations {
        let serve = start_serve(h, "serve-torture.log", &[]);
        if i % 3 == 0 {
            // A new build each time (the image differs from the env's current one).
            h.deploy(
                "api",
                "staging",
                &image("api", char::from(HEX[(i / 3 + 1) % 16])),
            );
        }
        kill_at_random(&mut rng, Duration::from_millis(1500), serve, &mut tally);
        // The journal reads after any kill, and tells of no delivery twice.
        let all = deliveries(h, "ci");
        let ids: std::collections::BTreeSet<&str> =
            all.iter().map(|d| d["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), all.len(), "{all:?}");
    }
    let releases = h
        .json(&["audit", "--kind", "deploy"])
        .as_array()
        .unwrap()
        .len();
    eprintln!("hooks torture: {tally:?}");
    let mut serve = start_serve(h, "serve-final.log", &[]);
    // Every delivery may be done already: the SIGTERM below must not find serve still starting.
    wait_serving(&h.dir.path().join("serve-final.log"));
    let done = wait_final(h, "ci", releases);
    assert!(done.iter().all(|d| d["state"] == "succeeded"), "{done:?}");
    let accepted: std::collections::BTreeSet<String> = web
        .accepted()
        .iter()
        .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_string())
        .collect();
    let wanted: std::collections::BTreeSet<String> = done
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(accepted, wanted, "every event accepted, none lost");
    assert!(web.requests().iter().all(|r| r["verified"] == true));
    sigterm(&mut serve);
}

impl Homeserver {
    /// Posts `text` as `who` (ana or eve) into `room` ("room" or "other_room"); its event id.
    fn say(&self, who: &str, room: &str, text: &str) -> String {
        let out = Command::new("python3")
            .args([HOMESERVER, "say"])
            .arg(&self.dir)
            .args([who, room, text])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// The Matrix bot (issue 12): a linked operator rolls back from the room and sees who did it; a
/// stranger, a missing role, an unknown command and a bad version get replies naming the rule and
/// append nothing; a room that is not configured is ignored; the bot never answers itself; a
/// restart neither replays nor misses a command.
pub fn the_matrix_bot_obeys_linked_people_under_their_roles(h: &Hoist) {
    let server = Homeserver::start(h.dir.path());
    let token = h.dir.path().join("matrix-token");
    std::fs::write(&token, server.info["bot_token"].as_str().unwrap()).unwrap();
    let config = h.dir.path().join("bot.toml");
    std::fs::write(
        &config,
        format!(
            "[matrix]\nhomeserver = \"{}\"\nuser = \"@hoist:localhost\"\ntoken_file = \"matrix-token\"\nrooms = [\"{}\"]\n",
            server.info["url"].as_str().unwrap(),
            server.info["room"].as_str().unwrap()
        ),
    )
    .unwrap();
    h.ok(&["apps", "create", "api"]);
    for n in ['1', '2', '3'] {
        h.deploy("api", "production", &image("api", n));
    }
    crate::chatops::link_an_operator(h, "matrix:@ana:localhost", "ana@example.com");
    let serve_with_bot = |log: &str| crate::chatops::serve_with_config(h, "bot.toml", log);
    let mut serve = serve_with_bot("bot-1.log");
    wait_for("the bot to join and sync", Duration::from_secs(30), || {
        h.dir
            .path()
            .join("store/hooks/matrix-sync.cursor")
            .exists()
            .then_some(())
            .or_else(|| (!h.is_embedded()).then_some(()))
            .filter(|_| serve_log(h, "bot-1.log").contains("matrix: joined"))
    });
    let replies = |n: usize| {
        wait_for(
            &format!("{n} replies from the bot"),
            Duration::from_secs(30),
            || {
                let notices: Vec<Value> = server
                    .messages()
                    .into_iter()
                    .filter(|m| m["sender"] == "@hoist:localhost")
                    .collect();
                (notices.len() >= n).then_some(notices)
            },
        )
    };
    let before = h.event_count();
    server.say("eve", "room", "!hoist rollback api production");
    let eve = replies(1);
    let text = eve[0]["content"]["body"].as_str().unwrap();
    assert!(
        text.contains("matrix:@eve:localhost is not linked"),
        "{text}"
    );
    assert_eq!(eve[0]["content"]["msgtype"], "m.notice");
    server.say("ana", "room", "!hoist deploy api production");
    server.say("ana", "room", "!hoist rollback api production v9");
    server.say("ana", "room", "!hoist promote api");
    server.say("ana", "other_room", "!hoist rollback api production");
    let refused = replies(4);
    let bodies: Vec<&str> = refused
        .iter()
        .map(|m| m["content"]["body"].as_str().unwrap())
        .collect();
    assert!(
        bodies[1].contains("unknown command \"deploy\""),
        "{bodies:?}"
    );
    assert!(bodies[2].contains("v9"), "{bodies:?}");
    assert!(
        bodies[3].contains("not allowed"),
        "an operator may not promote: {bodies:?}"
    );
    assert_eq!(h.event_count(), before, "nothing appended");
    let command = server.say("ana", "room", "!hoist rollback api production");
    let done = replies(5);
    let reply = &done[4];
    let body = reply["content"]["body"].as_str().unwrap();
    assert!(
        body.contains("api/production v4") && body.contains("by ana@example.com"),
        "{body}"
    );
    assert_eq!(
        reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        command.as_str()
    );
    let audit = h.json(&["audit", "--kind", "rollback"]);
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert!(
        audit[0]["actor"]
            .as_str()
            .unwrap()
            .contains("ana@example.com"),
        "{audit}"
    );
    let events = h.ok(&["events"]);
    assert!(
        events.contains("\"via\":\"matrix:@ana:localhost\""),
        "{events}"
    );
    // A restart: nothing replayed, and what is said meanwhile is heard.
    sigterm(&mut serve);
    server.say("ana", "room", "!hoist status api");
    let mut serve = serve_with_bot("bot-2.log");
    let after = replies(6);
    assert!(
        after[5]["content"]["body"]
            .as_str()
            .unwrap()
            .contains("production"),
        "{after:?}"
    );
    assert_eq!(
        h.json(&["audit", "--kind", "rollback"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        server
            .messages()
            .iter()
            .filter(|m| m["sender"] == "@hoist:localhost")
            .count(),
        6
    );
    sigterm(&mut serve);
}

const SLACK_SIGN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/slack_sign.py");

/// `X-Slack-Signature` for `body` at `timestamp`, as Slack's own SDK signs.
fn slack_signature(secret: &str, timestamp: i64, body: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args([SLACK_SIGN, secret, &timestamp.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs slack_sign.py (scripts/test.sh installs slack_sdk)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let encoded: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={encoded}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Slack over HTTP (issue 12): commands signed as Slack's SDK signs are acknowledged at once
/// and answered on `response_url`, as the linked identity under its roles; a bad signature, a
/// stale timestamp, a replay and an oversized body are refused (401/413) with nothing appended;
/// a button click rolls back as the clicking user.
pub fn slack_commands_are_signed_acknowledged_and_answered(h: &Hoist) {
    use crate::api::http;
    let dir = h.dir.path();
    let responses = Receiver::start(dir, "responses", &secret(13), "", None);
    let signing = "8f742231b10e8888abcd99yyyzzz85a5";
    std::fs::write(dir.join("slack-signing-secret"), format!("{signing}\n")).unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    std::fs::write(
        dir.join("chat.toml"),
        format!("listen = \"127.0.0.1:{port}\"\n[slack]\nsigning_secret_file = \"slack-signing-secret\"\n"),
    )
    .unwrap();
    h.ok(&["apps", "create", "api"]);
    for n in ['1', '2', '3'] {
        h.deploy("api", "production", &image("api", n));
    }
    crate::chatops::link_an_operator(h, "slack:T1/U2", "opa@example.com");
    let mut serve = crate::chatops::serve_with_config(h, "chat.toml", "chat.log");
    wait_for("the listener", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let command = |user: &str, text: &str| {
        form(&[
            ("token", "ignored"),
            ("team_id", "T1"),
            ("user_id", user),
            ("user_name", "not-trusted"),
            ("command", "/hoist"),
            ("text", text),
            ("response_url", &responses.url("/response")),
        ])
    };
    let post = |path: &str, body: &str, at: i64, signature: &str| {
        let at = at.to_string();
        http(
            port,
            "POST",
            path,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Slack-Request-Timestamp", &at),
                ("X-Slack-Signature", signature),
                ("Content-Length", &body.len().to_string()),
            ],
            Some(body),
        )
    };
    let before = h.event_count();
    // Refused before anything runs: a bad signature, a stale request, no signature.
    let body = command("U2", "rollback api production");
    let t = now();
    assert_eq!(post("/chat/slack/commands", &body, t, "v0=00").status, 401);
    let stale = t - 301;
    let reply = post(
        "/chat/slack/commands",
        &body,
        stale,
        &slack_signature(signing, stale, &body),
    );
    assert_eq!(reply.status, 401, "{reply:?}");
    assert!(reply.body.contains("stale"), "{reply:?}");
    let huge = command("U2", &"x".repeat(2 << 20));
    let reply = post(
        "/chat/slack/commands",
        &huge,
        t,
        &slack_signature(signing, t, &huge),
    );
    assert_eq!(reply.status, 413, "{:?}", reply.status);
    assert_eq!(h.event_count(), before);
    // The linked operator rolls back; the ack is at once, the answer on response_url.
    let signature = slack_signature(signing, t, &body);
    let ack = post("/chat/slack/commands", &body, t, &signature);
    assert_eq!(ack.status, 200, "{ack:?}");
    assert_eq!(ack.json()["response_type"], "ephemeral");
    let follow = wait_for(
        "the answer on response_url",
        Duration::from_secs(20),
        || responses.requests().into_iter().next(),
    );
    let answer: Value = serde_json::from_str(follow["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["response_type"], "in_channel", "{answer}");
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.contains("api/production v4") && text.contains("by opa@example.com"),
        "{text}"
    );
    // The same request again is a replay.
    assert_eq!(
        post("/chat/slack/commands", &body, t, &signature).status,
        401
    );
    // An unlinked user and a missing role: replies naming the rule, nothing appended.
    let count = h.event_count();
    for (user, text, needle) in [
        ("U9", "rollback api production", "not linked"),
        ("U2", "promote api", "not allowed"),
        ("U2", "rollback api production v42", "v42"),
    ] {
        let body = command(user, text);
        let t = now();
        let seen = responses.requests().len();
        assert_eq!(
            post(
                "/chat/slack/commands",
                &body,
                t,
                &slack_signature(signing, t, &body)
            )
            .status,
            200
        );
        let follow = wait_for("the refusal", Duration::from_secs(20), || {
            responses.requests().get(seen).cloned()
        });
        let answer: Value = serde_json::from_str(follow["body"].as_str().unwrap()).unwrap();
        assert_eq!(answer["response_type"], "ephemeral", "{answer}");
        assert!(
            answer["text"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
    assert_eq!(h.event_count(), count, "refusals append nothing");
    // A button click: roll back to v2 as the clicking user; the message is replaced.
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": {"id": "U2", "team_id": "T1", "username": "not-trusted"},
        "team": {"id": "T1"},
        "actions": [{"action_id": "hoist_rollback", "value": "rollback api production 2", "type": "button"}],
        "response_url": responses.url("/response"),
    });
    let body = form(&[("payload", &payload.to_string())]);
    let t = now();
    let seen = responses.requests().len();
    assert_eq!(
        post(
            "/chat/slack/interactions",
            &body,
            t,
            &slack_signature(signing, t, &body)
        )
        .status,
        200
    );
    let follow = wait_for("the click's answer", Duration::from_secs(20), || {
        responses.requests().get(seen).cloned()
    });
    let answer: Value = serde_json::from_str(follow["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["replace_original"], true, "{answer}");
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("clicked by <@U2>"),
        "{answer}"
    );
    let releases = h.json(&["releases", "api", "--env", "production", "--limit", "1"]);
    assert_eq!(releases[0]["rollback_to"], 2, "{releases}");
    let events = h.ok(&["events"]);
    assert!(events.contains("\"via\":\"slack:T1/U2\""), "{events}");
    sigterm(&mut serve);
}
