//! Read models through the real binary: a rebuild killed with SIGKILL midway leaves nothing a
//! command can observe (each model and its checkpoint change together; the next command resumes
//! from the checkpoint), and `--at` answers match a history whose answers are written by hand.

use crate::harness::{image, Hoist};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What a user sees of one app, from the read models (`status`, `releases`, `audit`).
fn answers(h: &Hoist, app: &str) -> Value {
    json!({
        "status": h.json(&["status", app]),
        "releases": h.json(&["releases", app, "--env", "staging", "--limit", "40"]),
        "audit": h.json(&["audit", "--app", app, "--limit", "50"]),
        "all": h.json(&["audit", "--limit", "30"]),
    })
}

pub fn killed_rebuild_leaves_no_trace(h: &Hoist) {
    let bench = h.json(&["bench", "--keep", "--apps", "3", "--events", "9000"]);
    assert!(bench["events"].as_u64().unwrap() >= 9000);
    let apps: Vec<String> = h
        .json(&["apps", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app"].as_str().unwrap().to_string())
        .collect();
    let app = &apps[0];
    let before = answers(h, app);
    // The same answers by replay, the truth the models must give.
    let replayed = h.json(&["status", app, "--at", "2999-01-01T00:00:00Z"]);
    assert_eq!(before["status"], replayed);

    let mut killed_midway = 0;
    for _attempt in 0..3 {
        let mut child = h
            .command(&["admin", "rebuild"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hoist starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        // The first progress line: the rebuild has written a batch and is not done.
        let progress = lines.next().expect("a progress line").unwrap();
        assert!(progress.starts_with("rebuild:"), "{progress}");
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed_midway += 1;
        }
        child.wait().unwrap();
        assert!(Instant::now() < deadline);
        // Whatever was written, the next commands resume from the checkpoints.
        assert_eq!(
            answers(h, app),
            before,
            "answers after a rebuild killed at {progress}"
        );
    }
    assert!(
        killed_midway > 0,
        "no rebuild was still running when killed"
    );
    h.ok(&["admin", "rebuild"]);
    assert_eq!(answers(h, app), before);
}

/// Waits (bounded) until the wall clock is in a later second than `than`, and returns that
/// second: events written afterwards are later than it, events before it are not.
fn next_second(than: chrono::DateTime<chrono::Utc>) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = chrono::Utc::now();
        if now.timestamp() > than.timestamp() {
            return now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        }
        assert!(Instant::now() < deadline, "the clock does not move");
        std::thread::yield_now();
    }
}

pub fn time_travel_matches_a_hand_built_history(h: &Hoist) {
    let (a, b) = (image("shop", 'a'), image("shop", 'b'));
    h.ok(&["apps", "create", "shop"]);
    h.ok(&["deploy", "shop", "--env", "staging", "--image", &a]);
    h.ok(&["config", "set", "shop", "--env", "staging", "MODE=one"]);
    let t1 = next_second(chrono::Utc::now());
    h.ok(&["promote", "shop", "--from", "staging"]);
    h.ok(&["deploy", "shop", "--env", "staging", "--image", &b]);
    h.ok(&["lock", "shop", "--env", "production", "--reason", "audit"]);
    let t2 = next_second(chrono::Utc::now());
    h.ok(&["rollback", "shop", "--env", "staging"]);

    let envs = |s: &Value| {
        let e = &s["envs"];
        json!([
            e["staging"]["version"],
            e["staging"]["image"],
            e["staging"]["locked"],
            e["production"]["version"],
            e["production"]["image"],
            e["production"]["locked"]
        ])
    };
    // Written by hand from the commands above.
    assert_eq!(
        envs(&h.json(&["status", "shop", "--at", &t1])),
        json!([2, a, false, null, null, false])
    );
    assert_eq!(
        envs(&h.json(&["status", "shop", "--at", &t2])),
        json!([3, b, false, 1, a, true])
    );
    assert_eq!(
        envs(&h.json(&["status", "shop"])),
        json!([4, a, false, 1, a, true])
    );
    let versions = |at: &str| -> Value {
        let releases = h.json(&["releases", "shop", "--env", "staging", "--at", at]);
        releases
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!([r["version"], r["kind"]]))
            .collect()
    };
    assert_eq!(versions(&t1), json!([[2, "config"], [1, "deploy"]]));
    assert_eq!(
        versions(&t2),
        json!([[3, "deploy"], [2, "config"], [1, "deploy"]])
    );
    h.fails(
        &["status", "shop", "--at", "2000-01-01T00:00:00Z"],
        1,
        &["shop", "did not exist"],
    );
    // Now, from the read models, the same as by replay.
    assert_eq!(
        h.json(&["releases", "shop", "--env", "staging"]),
        h.json(&[
            "releases",
            "shop",
            "--env",
            "staging",
            "--at",
            "2999-01-01T00:00:00Z"
        ])
    );
}
