//! A team's whole release life through the CLI: create, build, deploy, config (plain and secret),
//! promote, rollback (default and --to), lock, audit, verify, time travel.

use crate::harness::{assert_no_file_contains, image, Hoist};
use serde_json::json;

pub fn team_release_life(h: &Hoist) {
    let created = h.json(&["apps", "create", "api"]);
    assert_eq!(created["pipeline"], json!(["staging", "production"]));
    let status = h.json(&["status", "api"]);
    assert_eq!(status["envs"]["staging"]["version"], json!(null));
    assert_eq!(status["envs"]["production"]["locked"], json!(false));

    // A build is registered once: the same digest again changes nothing.
    let img1 = image("api", 'a');
    let build = h.json(&[
        "builds", "register", "api", "--image", &img1, "--commit", "9fceb02", "--note", "first",
    ]);
    assert_eq!(build["registered"], json!(true));
    let build_id = build["id"].as_str().expect("build id").to_string();
    let count = h.event_count();
    let again = h.json(&["builds", "register", "api", "--image", &img1]);
    assert_eq!(
        (again["registered"].clone(), again["id"].clone()),
        (json!(false), json!(build_id))
    );
    assert_eq!(h.event_count(), count);

    let v1 = h.json(&["deploy", "api", "--env", "staging", "--build", &build_id]);
    assert_eq!(
        (
            v1["version"].clone(),
            v1["kind"].clone(),
            v1["image"].clone()
        ),
        (json!(1), json!("deploy"), json!(img1))
    );
    let after_v1 = chrono::Utc::now().to_rfc3339();

    let v2 = h.json(&[
        "config",
        "set",
        "api",
        "--env",
        "staging",
        "DATABASE_URL=postgres://db/api",
        "LOG=info",
    ]);
    assert_eq!(
        (
            v2["version"].clone(),
            v2["kind"].clone(),
            v2["image"].clone()
        ),
        (json!(2), json!("config"), json!(img1))
    );
    assert_eq!(
        v2["config"],
        json!({"DATABASE_URL": "postgres://db/api", "LOG": "info"})
    );

    // Secrets: sealed in the log, redacted everywhere but `config get --reveal`.
    let v3 = h.json(&[
        "config",
        "set",
        "api",
        "--env",
        "staging",
        "--secret",
        "API_TOKEN=s3cr3t-value",
    ]);
    assert_eq!(v3["config"]["API_TOKEN"], json!("<redacted>"));
    assert_eq!(
        h.json(&["config", "get", "api", "--env", "staging"])["config"]["API_TOKEN"],
        json!("<redacted>")
    );
    assert_eq!(
        h.json(&["config", "get", "api", "--env", "staging", "--reveal"])["config"]["API_TOKEN"],
        json!("s3cr3t-value")
    );
    for args in [
        &["events"][..],
        &["events", "export"],
        &["releases", "api", "--env", "staging"],
        &["audit"],
        &["releases", "api", "--env", "staging", "--json"],
    ] {
        assert!(
            !h.ok(args).contains("s3cr3t-value"),
            "hoist {args:?} shows a secret in clear"
        );
    }
    assert_no_file_contains(h.data_dir(), "s3cr3t-value");

    // Promotion: the source's build, the target's own config, and where it came from.
    let p1 = h.json(&["promote", "api", "--from", "staging"]);
    assert_eq!(
        (p1["env"].clone(), p1["version"].clone(), p1["kind"].clone()),
        (json!("production"), json!(1), json!("promote"))
    );
    assert_eq!(
        (p1["image"].clone(), p1["config"].clone()),
        (json!(img1), json!({}))
    );
    assert_eq!(p1["source"], json!({"env": "staging", "version": 3}));

    let p2 = h.json(&["config", "set", "api", "--env", "production", "WORKERS=4"]);
    assert_eq!(p2["version"], json!(2));
    let img2 = image("api", 'b');
    let v4 = h.json(&["deploy", "api", "--env", "staging", "--image", &img2]);
    assert_eq!(
        (v4["version"].clone(), v4["image"].clone()),
        (json!(4), json!(img2))
    );
    assert_eq!(
        v4["config"]["LOG"],
        json!("info"),
        "a deploy keeps the env's config"
    );
    let p3 = h.json(&["promote", "api", "--from", "staging", "--to", "production"]);
    assert_eq!(
        (
            p3["version"].clone(),
            p3["image"].clone(),
            p3["config"].clone()
        ),
        (json!(3), json!(img2), json!({"WORKERS": "4"}))
    );

    // Rollback copies build and config of the chosen release; history only grows.
    let p4 = h.json(&["rollback", "api", "--env", "production"]);
    assert_eq!(
        (
            p4["version"].clone(),
            p4["kind"].clone(),
            p4["rollback_to"].clone()
        ),
        (json!(4), json!("rollback"), json!(2))
    );
    assert_eq!(
        (p4["image"].clone(), p4["config"].clone()),
        (json!(img1), json!({"WORKERS": "4"}))
    );
    let p5 = h.json(&["rollback", "api", "--env", "production", "--to", "v1"]);
    assert_eq!(
        (
            p5["version"].clone(),
            p5["rollback_to"].clone(),
            p5["image"].clone(),
            p5["config"].clone()
        ),
        (json!(5), json!(1), json!(img1), json!({}))
    );
    assert_eq!(p5["description"], json!("Rollback to v1"));

    let releases = h.json(&["releases", "api", "--env", "production"]);
    let versions: Vec<i64> = releases
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["version"].as_i64().expect("version"))
        .collect();
    assert_eq!(versions, [5, 4, 3, 2, 1], "newest first");
    assert_eq!(
        h.json(&["releases", "api", "--env", "production", "--limit", "2"])
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    let diff = h.json(&["diff", "api", "--env", "staging", "1", "v4"]);
    assert_eq!(diff["image"], json!({"from": img1, "to": img2}));
    assert_eq!(
        diff["config"]["added"],
        json!({"API_TOKEN": "<redacted>", "DATABASE_URL": "postgres://db/api", "LOG": "info"})
    );

    // A lock freezes changes, names who and why, and still allows rollback.
    h.json(&[
        "lock",
        "api",
        "--env",
        "production",
        "--reason",
        "Black Friday freeze",
        "--actor",
        "ops@example.com",
    ]);
    let status = h.json(&["status", "api"]);
    assert_eq!(status["envs"]["production"]["locked"], json!(true));
    for args in [
        &["deploy", "api", "--env", "production", "--image", &img2][..],
        &["promote", "api", "--from", "staging"],
        &["config", "set", "api", "--env", "production", "X=1"],
        &["config", "unset", "api", "--env", "production", "WORKERS"],
    ] {
        h.fails(
            args,
            1,
            &[
                "production",
                "locked",
                "ops@example.com",
                "Black Friday freeze",
            ],
        );
    }
    let rolled = h.json(&["rollback", "api", "--env", "production", "--to", "3"]);
    assert_eq!(rolled["version"], json!(6));
    h.fails(
        &["lock", "api", "--env", "production", "--reason", "again"],
        1,
        &["locked"],
    );
    h.json(&["unlock", "api", "--env", "production"]);
    h.fails(
        &["unlock", "api", "--env", "production"],
        1,
        &["not locked"],
    );
    assert_eq!(
        h.json(&["config", "unset", "api", "--env", "production", "WORKERS"])["config"],
        json!({})
    );

    // Audit: who did what, newest first, filtered.
    let audit = h.json(&["audit", "--app", "api"]);
    let entries = audit.as_array().expect("array");
    assert_eq!(entries.len(), h.event_count());
    assert_eq!(entries[0]["kind"], json!("config"));
    assert!(
        entries
            .windows(2)
            .all(|w| w[0]["seq"].as_u64() >= w[1]["seq"].as_u64()),
        "newest first"
    );
    let rollbacks = h.json(&["audit", "--kind", "rollback"]);
    assert_eq!(rollbacks.as_array().map(Vec::len), Some(3));
    let by_ops = h.json(&["audit", "--actor", "ops@example.com"]);
    assert_eq!(by_ops.as_array().map(Vec::len), Some(1));
    assert_eq!(
        by_ops[0]["summary"],
        json!("Locked production: Black Friday freeze")
    );
    assert_eq!(by_ops[0]["env"], json!("production"));
    assert_eq!(
        h.json(&["audit", "--env", "staging", "--kind", "config"])
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        h.json(&["audit", "--since", "1h", "--limit", "3"])
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(
        h.json(&["audit", "--until", "2020-01-01T00:00:00Z"]),
        json!([])
    );
    assert_eq!(h.json(&["audit", "verify"])["ok"], json!(true));

    // Time travel: the answer as it was right after v1.
    let then = h.json(&["status", "api", "--at", &after_v1]);
    assert_eq!(then["envs"]["staging"]["version"], json!(1));
    assert_eq!(then["envs"]["production"]["version"], json!(null));
    let then = h.json(&["releases", "api", "--env", "staging", "--at", &after_v1]);
    assert_eq!(then.as_array().map(Vec::len), Some(1));
    h.fails(
        &["status", "api", "--at", "2020-01-01T00:00:00Z"],
        1,
        &["api", "did not exist"],
    );

    let listed = h.json(&["apps", "list"]);
    assert_eq!(listed[0]["app"], json!("api"));
    let shown = h.json(&["apps", "show", "api"]);
    assert_eq!(shown["builds"].as_array().map(Vec::len), Some(2));
    assert_eq!(shown["envs"]["production"]["version"], json!(7));
}
