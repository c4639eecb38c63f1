//! issue 15: `--stream NAME` is an independent history on a shared NATS server. The default
//! stream keeps `hoist.app.>`; any other takes `hoist.stream.<NAME>.app.>`, so two streams live
//! side by side, and neither sees the other's apps, releases or audit. A stream an earlier hoist
//! created under another name on `hoist.app.>` keeps working.

use crate::harness::{image, Hoist};
use crate::nats_server::{raw_request, NatsServer};
use serde_json::{json, Value};

/// `deploy api --env ENV` of the image whose digest is `digit` repeated.
fn deploy(h: &Hoist, env: &str, digit: char) {
    h.ok(&[
        "deploy",
        "api",
        "--env",
        env,
        "--image",
        &image("api", digit),
    ]);
}

fn apps(h: &Hoist) -> Vec<Value> {
    h.json(&["apps", "list"])
        .as_array()
        .expect("apps list is an array")
        .iter()
        .map(|a| a["app"].clone())
        .collect()
}

pub fn two_streams_on_one_server_are_independent_histories() {
    let server = NatsServer::start();
    let main = Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    let other = Hoist::nats(&server.url(), "OTHER", &server.store_dir());

    // The same app name in both, each with a history of its own.
    main.ok(&["apps", "create", "api"]);
    other.ok(&["apps", "create", "api", "--envs", "dev,staging,production"]);
    other.ok(&["apps", "create", "web"]);
    deploy(&main, "staging", 'a');
    deploy(&main, "staging", 'b');
    deploy(&other, "dev", 'c');

    assert_eq!(apps(&main), [json!("api")]);
    assert_eq!(apps(&other), [json!("api"), json!("web")]);

    let main_status = main.json(&["status", "api"]);
    assert_eq!(main_status["envs"]["staging"]["version"], json!(2));
    assert_eq!(main_status["envs"]["dev"], json!(null));
    let other_status = other.json(&["status", "api"]);
    assert_eq!(other_status["envs"]["dev"]["version"], json!(1));
    assert_eq!(other_status["envs"]["staging"]["version"], json!(null));

    let releases = main.json(&["releases", "api", "--env", "staging"]);
    assert_eq!(releases.as_array().map(Vec::len), Some(2));
    let releases = other.json(&["releases", "api", "--env", "dev"]);
    assert_eq!(releases[0]["image"], json!(image("api", 'c')));

    let audit = |h: &Hoist| h.json(&["audit", "--app", "api"]);
    assert_eq!(audit(&main).as_array().map(Vec::len), Some(3));
    assert_eq!(audit(&other).as_array().map(Vec::len), Some(2));
    main.ok(&["audit", "verify"]);
    other.ok(&["audit", "verify"]);

    // Each stream on its own subjects.
    let subjects = |stream: &str| stream_info(&server, stream)["config"]["subjects"].clone();
    assert_eq!(subjects("HOIST"), json!(["hoist.app.>"]));
    assert_eq!(subjects("OTHER"), json!(["hoist.stream.OTHER.app.>"]));
}

pub fn a_stream_an_earlier_hoist_created_under_another_name_keeps_its_subjects() {
    let server = NatsServer::start();
    // As an earlier hoist created `--stream LEGACY`: on `hoist.app.>`.
    let (_, created) = raw_request(
        server.port(),
        "$JS.API.STREAM.CREATE.LEGACY",
        &[],
        br#"{"name":"LEGACY","subjects":["hoist.app.>"],"storage":"file","retention":"limits","allow_direct":true,"deny_delete":true,"deny_purge":true,"num_replicas":1}"#,
    );
    let created = String::from_utf8_lossy(&created);
    assert!(!created.contains("\"error\""), "{created}");
    let legacy = Hoist::nats(&server.url(), "LEGACY", &server.store_dir());
    legacy.ok(&["apps", "create", "api"]);
    deploy(&legacy, "staging", 'a');
    assert_eq!(
        legacy.json(&["status", "api"])["envs"]["staging"]["version"],
        json!(1)
    );
    assert_eq!(apps(&legacy), [json!("api")]);
}

/// What JetStream says of stream `stream` (`$JS.API.STREAM.INFO`).
fn stream_info(server: &NatsServer, stream: &str) -> Value {
    let (_, info) = raw_request(
        server.port(),
        &format!("$JS.API.STREAM.INFO.{stream}"),
        &[],
        b"",
    );
    serde_json::from_slice(&info).expect("stream info is JSON")
}

/// CRC-32 (IEEE), as a shared snapshot's head names its bytes'.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Shares `snapshot` on `server` as a writer would: one chunk, then its head.
fn share_forged(server: &NatsServer, snapshot: &Value) {
    let bytes = serde_json::to_vec(snapshot).unwrap();
    let head = json!({"chunks": 1, "len": bytes.len(), "crc": crc32(&bytes)});
    let publish = |subject: &str, payload: &[u8]| {
        crate::nats_server::publish_raw(server.port(), subject, &[], payload)
    };
    publish("hoist.models.HOIST.state.0", &bytes);
    publish(
        "hoist.models.HOIST.state",
        &serde_json::to_vec(&head).unwrap(),
    );
}

/// A fresh cache (another HOME) on a stream whose writers shared their state model answers
/// `status`, `releases` and `audit` as a cache folded from the whole stream; a shared snapshot
/// of another stream, or one past the stream's end, is ignored.
pub fn a_fresh_cache_starts_from_the_shared_state_model() {
    // A history of more than 1024 commits, imported one app at a time (a server takes at most
    // 1000 commits in one atomic batch).
    let source = Hoist::sled();
    source.ok(&["bench", "--apps", "3", "--events", "1500", "--keep"]);
    let exported = source.ok(&["events", "export"]);
    let server = NatsServer::start();
    let fresh = || Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    let writer = fresh();
    let mut by_app: std::collections::BTreeMap<String, String> = Default::default();
    for line in exported.lines() {
        let event: Value = serde_json::from_str(line).expect("export lines are JSON");
        let app = event["app"].as_str().expect("an app").to_string();
        let lines = by_app.entry(app).or_default();
        lines.push_str(line);
        lines.push('\n');
    }
    for lines in by_app.values() {
        let imported = writer.run_with_input(&["events", "import"], lines.as_bytes());
        assert!(imported.status.success(), "{imported:?}");
    }
    let listed = apps(&writer);
    let app = listed[0].as_str().expect("an app name").to_string();
    // A command: its fold of the new events shares the state model.
    writer.ok(&[
        "lock",
        &app,
        "--env",
        "staging",
        "--reason",
        "release freeze",
    ]);
    let models = &stream_info(&server, "HOIST_MODELS")["state"];
    let (shared, head_seq) = (
        models["messages"].clone(),
        models["last_seq"].as_u64().unwrap(),
    );
    assert_eq!(
        shared, 2,
        "one state model is shared, in one chunk and its head"
    );
    let head = crate::nats_server::get_raw(server.port(), "HOIST_MODELS", head_seq);
    let head: Value = serde_json::from_slice(&head).expect("a head is JSON");
    assert_eq!(head["chunks"], json!(1));
    let snapshot = crate::nats_server::get_raw(server.port(), "HOIST_MODELS", head_seq - 1);

    let answers = |h: &Hoist| {
        (
            h.json(&["status", &app]),
            h.json(&["releases", &app, "--env", "staging", "--limit", "5"]),
            h.json(&["audit", "--app", &app, "--limit", "5"]),
            apps(h),
        )
    };
    let expected = answers(&writer);
    assert_eq!(answers(&fresh()), expected);

    // Shared snapshots this stream must not take: another stream's, one past its end. Both
    // claim no apps at all, so taking either would show.
    let mut forged: Value = serde_json::from_slice(&snapshot).expect("a snapshot is JSON");
    forged["statuses"] = json!([]);
    let mut foreign = forged.clone();
    foreign["log"] = json!("HOIST@1");
    let mut past_end = forged;
    past_end["checkpoint"] = json!(1_000_000_000u64);
    for bad in [foreign, past_end] {
        share_forged(&server, &bad);
        assert_eq!(answers(&fresh()), expected);
    }
}
