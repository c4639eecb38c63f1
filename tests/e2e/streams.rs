//! issue 15: `--stream NAME` is an independent history on a shared NATS server. The default
//! stream keeps `hoist.app.>`; any other takes `hoist.stream.<NAME>.app.>`, so two streams live
//! side by side, and neither sees the other's apps, releases or audit. A stream an earlier hoist
//! created under another name on `hoist.app.>` keeps working.

use crate::harness::{image, Hoist};
use crate::nats_server::{raw_request, NatsServer};
use serde_json::{json, Value};

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
    main.ok(&[
        "deploy",
        "api",
        "--env",
        "staging",
        "--image",
        &image("api", 'a'),
    ]);
    main.ok(&[
        "deploy",
        "api",
        "--env",
        "staging",
        "--image",
        &image("api", 'b'),
    ]);
    other.ok(&[
        "deploy",
        "api",
        "--env",
        "dev",
        "--image",
        &image("api", 'c'),
    ]);

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
    let subjects = |stream: &str| {
        let (_, info) = raw_request(
            server.port(),
            &format!("$JS.API.STREAM.INFO.{stream}"),
            &[],
            b"",
        );
        let info: Value = serde_json::from_slice(&info).expect("stream info is JSON");
        info["config"]["subjects"].clone()
    };
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
    legacy.ok(&[
        "deploy",
        "api",
        "--env",
        "staging",
        "--image",
        &image("api", 'a'),
    ]);
    assert_eq!(
        legacy.json(&["status", "api"])["envs"]["staging"]["version"],
        json!(1)
    );
    assert_eq!(apps(&legacy), [json!("api")]);
}
