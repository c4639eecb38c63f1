//! NATS failover under `serve`: on a 3-node cluster with an R3 stream and two `serve` instances,
//! the stream leader's node is killed (SIGKILL) while an exec hook runs. The instance applying
//! keeps its claim alive and records the outcome under the same command id once a new leader is
//! elected: each release is applied exactly once and its outcome recorded exactly once.

use crate::faults::wait_until_served;
use crate::harness::{image, wait_for, Hoist};
use crate::nats_server::{raw_request, NatsCluster, NatsServer};
use crate::serve::{
    appending_hook, applies, assert_each_applied_and_recorded_once, serve_log, sigterm,
    start_serve_logging_to, wait_resynced,
};
use serde_json::Value;
use std::time::Duration;

/// Kills of the stream leader, one per release.
const ROUNDS: u64 = 3;

/// The node that leads stream HOIST now, asked of a running node.
fn stream_leader(cluster: &mut NatsCluster) -> usize {
    wait_for(
        "the stream to have a leader",
        Duration::from_secs(30),
        || {
            let port = (0..cluster.nodes().len())
                .find(|&i| cluster.node_mut(i).is_running())
                .map(|i| cluster.nodes()[i].port())?;
            let (_, info) = raw_request(port, "$JS.API.STREAM.INFO.HOIST", &[], b"");
            let info: Value = serde_json::from_slice(&info).ok()?;
            let leader = info["cluster"]["leader"].as_str()?;
            cluster.index_of(leader)
        },
    )
}

/// The outcomes recorded for staging `version` (none while the log does not answer).
fn recorded(h: &Hoist, version: u64) -> Option<usize> {
    let events = h.run(&["events"]);
    if !events.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&events.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| {
                e["event"]["type"] == "rollout_recorded" && e["event"]["version"] == version
            })
            .count(),
    )
}

pub fn killing_the_stream_leader_mid_apply_records_each_outcome_once() {
    let mut cluster = NatsCluster::start(3);
    let data_dir = cluster.nodes()[0].store_dir();
    let h = Hoist::nats(&cluster.urls(), "HOIST", &data_dir).with_args(&["--replicas", "3"]);
    let file = h.dir.path().join("applied");
    // The hook records its start, then waits (bounded: 60 s) for its release's gate.
    let hook = format!(
        "{}; for i in $(seq 3000); do [ -e {}/gate-$HOIST_VERSION ] && break; sleep 0.02; done",
        appending_hook(&file),
        h.dir.path().display()
    );
    h.ok(&["apps", "create", "api"]);
    h.ok(&["envs", "target", "api", "--env", "staging", "--exec", &hook]);
    let mut a = start_serve_logging_to(&h, "a.log", &[]);
    let mut b = start_serve_logging_to(&h, "b.log", &[]);
    wait_resynced(&h, "a.log");
    wait_resynced(&h, "b.log");

    for version in 1..=ROUNDS {
        let what = format!("staging v{version}");
        h.deploy(
            "api",
            "staging",
            &image("api", char::from(b'0' + version as u8)),
        );
        wait_for(
            &format!("{what} to be applied"),
            Duration::from_secs(30),
            || applies(&file).iter().any(|(w, _)| *w == what).then_some(()),
        );
        // Mid-apply: the leader goes, then the hook finishes and its outcome is to be recorded.
        let victim = stream_leader(&mut cluster);
        cluster.kill9(victim);
        std::fs::write(h.dir.path().join(format!("gate-{version}")), "").unwrap();
        let gated = std::time::Instant::now();
        let count = wait_for(
            &format!("{what}'s outcome to be recorded"),
            Duration::from_secs(90),
            || recorded(&h, version).filter(|&n| n > 0),
        );
        assert_eq!(count, 1, "{what} recorded once");
        eprintln!(
            "{what}: leader n{} killed; recorded {:?} after the hook ended",
            victim + 1,
            gated.elapsed()
        );
        cluster.restart(victim);
        cluster.wait_for_meta_leader(Duration::from_secs(30));
        wait_until_served(&h);
    }
    sigterm(&mut a);
    sigterm(&mut b);
    let logs = serve_log(&h, "a.log") + &serve_log(&h, "b.log");
    assert!(
        logs.contains("recording the outcome again under the same command id"),
        "the kills fell on the records (else this test tests nothing):\n{logs}"
    );
    // Both stopped: nothing can be applied any more, so the file is final.
    assert_each_applied_and_recorded_once(&h, &file);
    assert_eq!(applies(&file).len() as u64, ROUNDS, "{:?}", applies(&file));
}

/// NATS: the server is down for longer than a record's patience while a hook runs. The outcome
/// the serve could not record is kept; once the server is back it is recorded (once), and the
/// hook is not run again for that release.
pub fn an_outcome_unrecorded_for_longer_than_the_patience_is_recorded_later_not_reapplied() {
    let mut server = NatsServer::start();
    let h = Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    let file = h.dir.path().join("applied");
    let gate = h.dir.path().join("gate");
    let hook = format!(
        "{}; for i in $(seq 3000); do [ -e {} ] && break; sleep 0.02; done",
        appending_hook(&file),
        gate.display()
    );
    h.ok(&["apps", "create", "api"]);
    h.ok(&["envs", "target", "api", "--env", "staging", "--exec", &hook]);
    let mut serve = h
        .command(&["serve", "--resync", "1s"])
        .env("HOIST_TEST_RECORD_PATIENCE", "2s")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(h.dir.path().join("serve.log")).unwrap())
        .spawn()
        .expect("hoist serve starts");
    wait_resynced(&h, "serve.log");
    h.deploy("api", "staging", &image("api", '1'));
    wait_for("the hook to start", Duration::from_secs(30), || {
        (!applies(&file).is_empty()).then_some(())
    });
    server.kill9();
    std::fs::write(&gate, "").unwrap();
    wait_for(
        "the serve to give up recording for now",
        Duration::from_secs(60),
        || {
            serve_log(&h, "serve.log")
                .contains("its outcome could not be recorded within 2s")
                .then_some(())
        },
    );
    // The env stays this instance's (not released to another that would run the hook again)
    // until the outcome is recorded.
    wait_for("the serve to keep the env", Duration::from_secs(30), || {
        serve_log(&h, "serve.log")
            .contains("keeping the env until its outcome is recorded")
            .then_some(())
    });
    server.restart();
    let count =
        crate::nats_server::poll::poll(Duration::from_secs(60), Duration::from_millis(50), || {
            recorded(&h, 1).filter(|&n| n > 0)
        })
        .unwrap_or_else(|| {
            panic!(
                "not recorded after 60 s; serve's log:\n{}",
                serve_log(&h, "serve.log")
            )
        });
    assert_eq!(count, 1);
    assert!(
        serve_log(&h, "serve.log").contains("recording the outcome of an earlier apply"),
        "{}",
        serve_log(&h, "serve.log")
    );
    sigterm(&mut serve);
    assert_each_applied_and_recorded_once(&h, &file);
    assert_eq!(applies(&file).len(), 1, "{:?}", applies(&file));
}
