//! NATS: messages on hoist's subjects that hoist never wrote — garbage bytes, a subject whose app
//! name is invalid, a message without hoist's headers, a commit of another app, a payload that
//! does not decode — are quarantined: skipped by every read, listed by `hoist admin check`, and
//! never a reason for any command, of any app, to fail.

use crate::harness::{image, wait_for, Hoist};
use crate::nats_server::{publish_raw, NatsServer};
use crate::serve::{
    appending_hook, applies, rollouts, sigterm, start_serve_logging_to, wait_resynced,
};
use serde_json::Value;
use std::time::Duration;

/// Publishes every kind of foreign message on hoist's subjects: on an app's, on another app's,
/// on a subject that is no app's; returns their sequences.
fn poison(server: &NatsServer, a_commit_of_web: &[u8]) -> Vec<u64> {
    let port = server.port();
    let id = ("Nats-Msg-Id", "0192f0a4-7b7c-7cc0-8000-000000000001");
    vec![
        publish_raw(port, "hoist.app.api", &[], b"\x00\xffnot a commit"),
        publish_raw(port, "hoist.app.web", &[], b"{\"hello\": \"world\"}"),
        publish_raw(port, "hoist.app.Not_An_App", &[], b"garbage"),
        publish_raw(port, "hoist.app.ghost", &[id], b"\x0a\x03abc"),
        // A well-formed commit, but another app's: a copy, not api's history.
        publish_raw(
            port,
            "hoist.app.api",
            &[("Nats-Msg-Id", "0192f0a4-7b7c-7cc0-8000-000000000002")],
            a_commit_of_web,
        ),
        // hoist's headers, a payload that does not decode.
        publish_raw(
            port,
            "hoist.app.web",
            &[("Nats-Msg-Id", "0192f0a4-7b7c-7cc0-8000-000000000003")],
            b"\x0a\x05\x0a\x03\xff\xff\xff",
        ),
        // A commit of api, without hoist's commit id: nobody's append.
        publish_raw(port, "hoist.app.api", &[], a_commit_of_web),
    ]
}

fn lines(stdout: &str) -> usize {
    stdout.lines().count()
}

pub fn a_poisoned_stream_is_read_past_by_every_command() {
    let server = NatsServer::start();
    let h = Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    let hook_file = h.dir.path().join("applied");
    h.ok(&["apps", "create", "api"]);
    h.ok(&["apps", "create", "web"]);
    h.deploy("api", "staging", &image("api", '1'));
    h.deploy("web", "staging", &image("web", '1'));
    h.ok(&[
        "envs",
        "target",
        "api",
        "--env",
        "staging",
        "--exec",
        &appending_hook(&hook_file),
    ]);
    let exported_before = h.ok(&["events", "export"]);
    // web's first commit, as stored: a valid commit of another app.
    let web_commit = {
        let stream = h.ok(&["audit", "--app", "web", "--json"]);
        let entries: Value = serde_json::from_str(&stream).unwrap();
        let seq = entries.as_array().unwrap().last().unwrap()["seq"]
            .as_u64()
            .unwrap();
        raw_payload(&server, seq)
    };
    let mut poisoned = poison(&server, &web_commit);

    // Reads: every one skips what is not a commit, and says so where a person reads.
    let status = h.run(&["status", "api"]);
    assert!(status.status.success(), "{status:?}");
    let warning = String::from_utf8_lossy(&status.stderr).to_string();
    assert_eq!(lines(&warning), 1, "one warning: {warning}");
    assert!(
        warning.contains("7 messages on the stream are not hoist commits")
            && warning.contains("hoist admin check"),
        "{warning}"
    );
    assert_eq!(h.json(&["status", "api"])["envs"]["staging"]["version"], 1);
    assert_eq!(h.json(&["status", "web"])["envs"]["staging"]["version"], 1);
    let apps: Vec<String> = h
        .json(&["apps", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        apps,
        ["api", "web"],
        "no ghost app from a subject of garbage"
    );
    assert_eq!(
        h.ok(&["events", "export"]),
        exported_before,
        "export holds hoist's commits only"
    );
    assert_eq!(lines(&h.ok(&["events"])), lines(&exported_before));
    assert_eq!(h.json(&["audit", "verify"])["ok"], true);
    let audit = h.json(&["audit"]);
    assert_eq!(audit.as_array().unwrap().len(), lines(&exported_before));
    assert_eq!(
        h.json(&["releases", "api", "--env", "staging"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    h.ok(&["admin", "rebuild"]);

    // Writes: to the app whose subject ends in garbage, and to another app.
    h.deploy("api", "staging", &image("api", '2'));
    h.deploy("web", "production", &image("web", '2'));
    h.ok(&["config", "set", "api", "--env", "production", "A=1"]);
    assert_eq!(h.json(&["status", "api"])["envs"]["staging"]["version"], 2);
    assert_eq!(h.json(&["audit", "verify"])["ok"], true);

    // serve on the poisoned stream applies and records a release of the poisoned app.
    let mut serve = start_serve_logging_to(&h, "serve.log", &[]);
    wait_resynced(&h, "serve.log");
    poisoned.push(publish_raw(
        server.port(),
        "hoist.app.api",
        &[],
        b"while serving",
    ));
    h.deploy("api", "staging", &image("api", '3'));
    wait_for(
        "serve to apply and record staging v3",
        Duration::from_secs(30),
        || {
            rollouts(&h)
                .iter()
                .any(|r| r["event"]["version"] == 3)
                .then_some(())
        },
    );
    sigterm(&mut serve);
    let applied: Vec<String> = applies(&hook_file).into_iter().map(|(w, _)| w).collect();
    assert!(applied.contains(&"staging v3".to_string()), "{applied:?}");

    // admin check lists each one, by sequence.
    let check = h.run(&["admin", "check", "--json"]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let listed: Vec<u64> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, poisoned);
    for problem in report["problems"].as_array().unwrap() {
        assert!(problem["subject"]
            .as_str()
            .unwrap()
            .starts_with("hoist.app."));
        assert!(!problem["reason"].as_str().unwrap().is_empty());
    }
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(lines(&stderr), 1, "{stderr}");
    assert!(stderr.contains("8 problems"), "{stderr}");
}

/// Message `seq` as stored.
fn raw_payload(server: &NatsServer, seq: u64) -> Vec<u8> {
    crate::nats_server::get_raw(server.port(), "HOIST", seq)
}

/// An app whose subject holds only quarantined messages is no app: an import of that app is
/// not refused as "already exists", and its batch is stored past the quarantined messages.
pub fn an_import_goes_past_a_subject_that_holds_only_quarantined_messages() {
    let source = Hoist::sled();
    source.ok(&["apps", "create", "api"]);
    source.deploy("api", "staging", &image("api", '1'));
    let exported = source.ok(&["events", "export"]);

    let server = NatsServer::start();
    let h = Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    h.ok(&["apps", "create", "web"]);
    publish_raw(server.port(), "hoist.app.api", &[], b"\x00\xffnot a commit");
    publish_raw(server.port(), "hoist.app.api", &[], b"garbage");
    let output = h.run_with_input(&["events", "import"], exported.as_bytes());
    crate::harness::assert_success(&["events", "import"], &output);
    let apps = h.json(&["apps", "list"]);
    let names: Vec<&str> = apps
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "web"]);
    assert_eq!(h.ok(&["events", "export"]).lines().count(), 3);
    // Now api is an app: a second import of it is refused.
    h.fails_with_input(
        &["events", "import"],
        exported.as_bytes(),
        1,
        &["app api already exists"],
    );
}
