//! NATS size limits: a commit over the server's `max_payload` or over an existing stream's
//! `max_msg_size` is refused before anything is published: exit 1, one line naming the limit and
//! the size, nothing appended.

use crate::harness::Hoist;
use crate::nats_server::{raw_request, NatsServer};

pub fn a_config_over_the_servers_max_payload_is_rejected() {
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("small.conf");
    std::fs::write(&conf, "max_payload: 4096\n").unwrap();
    let server = NatsServer::start_with_args(&["-c", conf.to_str().unwrap()]);
    let h = Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    h.ok(&["apps", "create", "api"]);
    let big = format!("BLOB={}", "x".repeat(5000));
    h.fails(
        &["config", "set", "api", "--env", "staging", &big],
        1,
        &[
            "max_payload of 4096 bytes",
            "bytes (with headers)",
            "hoist.app.api",
        ],
    );
    h.ok(&["config", "set", "api", "--env", "staging", "SMALL=1"]);
}

pub fn a_config_over_the_streams_max_msg_size_is_rejected() {
    let server = NatsServer::start();
    // Someone created the stream before hoist, with a small max_msg_size.
    let (_, created) = raw_request(
        server.port(),
        "$JS.API.STREAM.CREATE.HOIST",
        &[],
        br#"{"name":"HOIST","subjects":["hoist.app.>"],"storage":"file","retention":"limits","max_msg_size":1500,"allow_direct":true,"num_replicas":1}"#,
    );
    let created = String::from_utf8_lossy(&created);
    assert!(!created.contains("\"error\""), "{created}");
    let h = Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    h.ok(&["apps", "create", "api"]);
    let big = format!("BLOB={}", "x".repeat(2000));
    h.fails(
        &["config", "set", "api", "--env", "staging", &big],
        1,
        &[
            "max_msg_size of 1500 bytes of stream HOIST",
            "bytes (with headers)",
        ],
    );
    h.ok(&["config", "set", "api", "--env", "staging", "SMALL=1"]);
}

/// An import is one atomic batch: a commit in it over `max_payload` refuses the whole import at
/// once, naming the limit (not a batch retried until the timeout, exit 4).
pub fn an_import_with_a_commit_over_the_servers_max_payload_is_rejected() {
    let source = Hoist::sled();
    source.ok(&["apps", "create", "api"]);
    let big = format!("BLOB={}", "x".repeat(5000));
    source.ok(&["config", "set", "api", "--env", "staging", &big]);
    let exported = source.ok(&["events", "export"]);

    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("small.conf");
    std::fs::write(&conf, "max_payload: 4096\n").unwrap();
    let server = NatsServer::start_with_args(&["-c", conf.to_str().unwrap()]);
    let h = Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    h.fails_with_input(
        &["events", "import"],
        exported.as_bytes(),
        1,
        &[
            "max_payload of 4096 bytes",
            "hoist.app.api",
            "nothing was appended",
        ],
    );
    assert!(!h.ok(&["apps", "list"]).contains("api"));
}
