//! Broker faults under the CLI: a killed and restarted server, a lost cluster node. Whatever a
//! command reported, the log must agree: every append that exited 0 is there exactly once, and
//! none that failed is.

use crate::harness::{image, wait_for, Hoist};
use crate::nats_server::{NatsCluster, NatsServer};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How many releases in `releases` set `key` (descriptions read "Set KEY").
fn releases_setting(releases: &Value, key: &str) -> usize {
    let wanted = format!("Set {key}");
    releases
        .as_array()
        .expect("releases array")
        .iter()
        .filter(|r| r["description"] == wanted.as_str())
        .count()
}

pub fn kill9_of_the_server_during_a_burst_loses_no_acknowledged_append() {
    let mut server = NatsServer::start();
    let h = Arc::new(Hoist::nats(&server.url(), "HOIST", &server.store_dir()));
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", '7'));

    const BURST: usize = 40;
    let finished = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (h, finished) = (Arc::clone(&h), Arc::clone(&finished));
        std::thread::spawn(move || {
            (0..BURST)
                .map(|i| {
                    let pair = format!("BURST_{i}=v{i}");
                    let output = h.run(&["config", "set", "api", "--env", "staging", &pair]);
                    finished.fetch_add(1, Ordering::SeqCst);
                    (
                        format!("BURST_{i}"),
                        output.status.code(),
                        String::from_utf8_lossy(&output.stderr).to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
    };
    wait_for("a third of the burst", Duration::from_secs(60), || {
        (finished.load(Ordering::SeqCst) >= BURST / 3).then_some(())
    });
    server.kill9();
    server.restart();
    let outcomes = writer.join().expect("the writer thread");

    let releases = h.json(&["releases", "api", "--env", "staging"]);
    let mut failed = 0;
    for (key, code, stderr) in &outcomes {
        match code {
            Some(0) => assert_eq!(
                releases_setting(&releases, key),
                1,
                "{key} exited 0: it must be stored exactly once"
            ),
            Some(4) => {
                failed += 1;
                assert_eq!(
                    stderr.trim_end().lines().count(),
                    1,
                    "one line on stderr: {stderr}"
                );
                assert_eq!(
                    releases_setting(&releases, key),
                    0,
                    "{key} failed ({stderr}): it must not be stored"
                );
            }
            other => panic!("{key}: exit {other:?} is neither done nor unavailable: {stderr}"),
        }
    }
    let versions: Vec<u64> = releases
        .as_array()
        .expect("array")
        .iter()
        .rev()
        .map(|r| r["version"].as_u64().expect("version"))
        .collect();
    assert_eq!(
        versions,
        (1..=versions.len() as u64).collect::<Vec<_>>(),
        "versions stay contiguous"
    );
    assert_eq!(versions.len(), 1 + BURST - failed);
    assert_eq!(h.json(&["audit", "verify"])["ok"], true);
    eprintln!(
        "burst of {BURST}: {failed} exited 4 while the server was down, the rest are stored once"
    );
}

/// Until the cluster serves the stream again after losing a node: its replica group may need a
/// new leader, and until then a command exits 4 after its bound (appending nothing); a user would
/// retry, the test waits for a read to succeed.
pub(crate) fn wait_until_served(h: &Hoist) {
    wait_for(
        "the stream to be served again",
        Duration::from_secs(60),
        || h.run(&["status", "api"]).status.success().then_some(()),
    );
}

pub fn r3_cluster_survives_losing_a_node() {
    let mut cluster = NatsCluster::start(3);
    let data_dir = cluster.nodes()[0].store_dir();
    let h = Hoist::nats(&cluster.urls(), "HOIST", &data_dir).with_args(&["--replicas", "3"]);
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", '8'));
    h.ok(&["config", "set", "api", "--env", "staging", "A=1"]);
    h.ok(&["promote", "api", "--from", "staging"]);

    // Lose a node mid-way; the rest of the life goes on against the two left, once they have
    // agreed on a JetStream leader (until then a command exits 4 after its bound).
    cluster.kill9(0);
    cluster.wait_for_meta_leader(Duration::from_secs(30));
    wait_until_served(&h);
    h.ok(&["config", "set", "api", "--env", "staging", "B=2"]);
    h.deploy("api", "staging", &image("api", '9'));
    h.ok(&["promote", "api", "--from", "staging"]);
    h.ok(&["rollback", "api", "--env", "production"]);
    h.ok(&[
        "lock",
        "api",
        "--env",
        "production",
        "--reason",
        "node lost",
    ]);

    let check = |h: &Hoist| {
        let staging = h.json(&["releases", "api", "--env", "staging"]);
        assert_eq!(staging.as_array().map(Vec::len), Some(4));
        let production = h.json(&["releases", "api", "--env", "production"]);
        let versions: Vec<u64> = production
            .as_array()
            .expect("array")
            .iter()
            .map(|r| r["version"].as_u64().expect("v"))
            .collect();
        assert_eq!(versions, [3, 2, 1]);
        assert_eq!(production[0]["rollback_to"], 1);
        assert_eq!(
            h.json(&["status", "api"])["envs"]["production"]["locked"],
            true
        );
        // Nine commands; the rollback's commit also pins production (issue 16).
        assert_eq!(h.json(&["audit", "verify"])["events"], 10);
    };
    check(&h);
    // The lost node comes back into a cluster that moved on without it.
    cluster.restart(0);
    cluster.wait_for_meta_leader(Duration::from_secs(30));
    wait_until_served(&h);
    check(&h);
}

/// The NATS read-model cache belongs to one stream: when the stream is deleted and created again
/// under the same name, nothing of the old cache is trusted.
pub fn a_recreated_stream_is_not_answered_from_the_old_cache() {
    let mut server = NatsServer::start();
    let h = Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", 'a'));
    assert_eq!(h.json(&["status", "api"])["envs"]["staging"]["version"], 1);

    // The stream goes away with its data; hoist creates a new, empty one on first use.
    server.kill9();
    std::fs::remove_dir_all(server.store_dir()).expect("wipe the JetStream store");
    server.restart();
    // Another user (with a cache of their own) writes more to the new stream than the old one
    // had, so a cache that only compared sequences would take it for a continuation.
    let other = Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    other.ok(&["apps", "create", "api", "--envs", "dev,prod"]);
    other.ok(&["config", "set", "api", "--env", "dev", "A=1"]);
    other.ok(&["config", "set", "api", "--env", "dev", "B=2"]);
    let status = h.json(&["status", "api"]);
    assert_eq!(status["envs"]["dev"]["version"], 2);
    assert!(
        status["envs"].get("staging").is_none(),
        "nothing of the old stream: {status}"
    );
    assert_eq!(h.json(&["audit"]).as_array().map(Vec::len), Some(3));
}
