//! `hoist events --follow` sees new events as they are appended, while other commands keep working.

use crate::harness::{image, Hoist};
use std::io::BufRead;
use std::time::Duration;

pub fn follow_sees_new_events(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    let mut child = h
        .command(&["events", "--follow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("hoist events --follow starts");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines.send(line.expect("a line")).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> serde_json::Value {
        let line = received
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("--follow printed no line for {what}"));
        serde_json::from_str(&line).expect("an event line")
    };
    assert_eq!(next("the existing event")["event"]["type"], "app_created");
    // A write while the follower runs succeeds, and the follower prints it.
    h.deploy("api", "staging", &image("api", '1'));
    let event = next("the deploy");
    assert_eq!(event["event"]["type"], "release_created");
    assert_eq!(event["event"]["release"]["version"], 1);
    child.kill().expect("kill follower");
    child.wait().expect("reap follower");
}
