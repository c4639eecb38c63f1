//! Issue 16 end to end: pins and the rollbacks that make them, `rollback --to last-healthy`,
//! `promote --force`, auto-promotion by `serve` (two instances, one promotion, none into a
//! pinned env until `unpin`), and drift against the kube API-server stand-in (an edit by another
//! field manager is drift, a field only another manager sets is not; self-heal off records it,
//! on repairs it).

use crate::harness::{image, wait_for, Hoist};
use crate::kube_apiserver::{raw, ApiServer};
use crate::serve::{serve_log, sigterm, start_serve_logging_to, wait_resynced};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::time::Duration;

fn with_cluster(h: &Hoist) -> ApiServer {
    let server = ApiServer::start();
    let kube_dir = h.dir.path().join(".kube");
    std::fs::create_dir_all(&kube_dir).unwrap();
    std::fs::write(kube_dir.join("config"), server.kubeconfig()).unwrap();
    server
}

fn events(h: &Hoist) -> Vec<Value> {
    h.ok(&["events"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("an event line"))
        .collect()
}

fn of_type(h: &Hoist, kind: &str) -> Vec<Value> {
    events(h)
        .into_iter()
        .filter(|e| e["event"]["type"] == kind)
        .collect()
}

fn at(event: &Value) -> DateTime<Utc> {
    event["at"].as_str().unwrap().parse().unwrap()
}

fn env_status(h: &Hoist, env: &str) -> Value {
    h.json(&["status", "api"])["envs"][env].clone()
}

/// Pins by hand and by rollback; a promotion into a pinned env refused, forced, audited; bad
/// input refused in one line with nothing appended.
pub fn pins_rollbacks_and_forced_promotion(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    for n in ['1', '2'] {
        h.deploy("api", "staging", &image("api", n));
        h.ok(&["promote", "api", "--from", "staging"]);
    }
    assert_eq!(env_status(h, "production")["pinned"], Value::Null);
    let rolled = h.json(&["rollback", "api", "--env", "production"]);
    assert_eq!(rolled["rollback_to"], 1);
    let pinned = env_status(h, "production")["pinned"].clone();
    assert_eq!(pinned["reason"], "rolled back by ana@example.com to v1");
    assert_eq!(pinned["by"], "ana@example.com");
    assert!(pinned["at"].as_str().unwrap().ends_with('Z'), "{pinned}");
    assert_eq!(env_status(h, "production")["drifted"], false);
    let human = h.ok(&["status", "api"]);
    assert!(
        human.contains("production is pinned by ana@example.com since")
            && human.contains("rolled back by ana@example.com to v1"),
        "{human}"
    );

    // A manual promotion into the pinned env: refused, naming the pin's reason, who and when.
    h.deploy("api", "staging", &image("api", '3'));
    h.fails(
        &["promote", "api", "--from", "staging"],
        1,
        &[
            "api/production is pinned by ana@example.com since",
            "rolled back by ana@example.com to v1",
            "--force",
        ],
    );
    let forced = h.json(&["promote", "api", "--from", "staging", "--force"]);
    assert_eq!(forced["version"], 4);
    assert!(forced["description"]
        .as_str()
        .unwrap()
        .ends_with("forced past the pin (rolled back by ana@example.com to v1)"));
    let audit = h.ok(&["audit", "--app", "api", "--kind", "promote", "--limit", "1"]);
    assert!(audit.contains("forced past the pin"), "{audit}");
    assert!(
        env_status(h, "production")["pinned"].is_object(),
        "still pinned"
    );

    let unpinned = h.json(&["unpin", "api", "--env", "production"]);
    assert_eq!(
        unpinned,
        json!({"app": "api", "env": "production", "pinned": null})
    );
    h.ok(&["promote", "api", "--from", "staging"]);
    let pin = h.json(&[
        "pin",
        "api",
        "--env",
        "production",
        "--reason",
        "incident\n42",
    ]);
    assert_eq!(pin["pinned"]["reason"], "incident\n42");
    let human = h.ok(&["status", "api"]);
    assert!(
        human.contains("incident\\n42"),
        "free text escaped: {human}"
    );
    assert_eq!(of_type(h, "env_pinned").len(), 2);

    // Bad input: exit 1, one line, nothing appended.
    h.fails(
        &["pin", "api", "--env", "production"],
        1,
        &["already pinned by ana@example.com", "incident"],
    );
    h.fails(
        &["pin", "api", "--env", "qa"],
        1,
        &["env qa is not in the pipeline"],
    );
    h.fails(&["pin", "nope", "--env", "production"], 1, &["app nope"]);
    h.ok(&["unpin", "api", "--env", "production"]);
    h.fails(
        &[
            "pin",
            "api",
            "--env",
            "production",
            "--reason",
            &"x".repeat(2000),
        ],
        1,
        &["pin reason is 2000 bytes"],
    );
    h.fails(
        &["unpin", "api", "--env", "production"],
        1,
        &["api/production is not pinned"],
    );
    h.fails(
        &[
            "rollback",
            "api",
            "--env",
            "staging",
            "--to",
            "last-healthy",
        ],
        1,
        &["no release of it was recorded healthy"],
    );
    h.fails(
        &["rollback", "api", "--env", "staging", "--to", "latest"],
        1,
        &["latest"],
    );
    h.fails(
        &[
            "envs",
            "policy",
            "api",
            "--env",
            "production",
            "--after",
            "soon",
        ],
        1,
        &["--after", "soon"],
    );
    h.fails(
        &[
            "envs",
            "policy",
            "api",
            "--env",
            "staging",
            "--auto-promote",
            "on",
        ],
        1,
        &["first env of the pipeline"],
    );
    h.fails(
        &[
            "envs",
            "policy",
            "api",
            "--env",
            "production",
            "--verify",
            " ",
        ],
        1,
        &["--verify must not be empty"],
    );
    h.fails(
        &["envs", "policy", "api", "--env", "production"],
        2,
        &["--auto-promote"],
    );
    h.fails(&["drift", "api", "--env", "production"], 1, &["no target"]);

    // A subset of settings changes only those.
    h.ok(&[
        "envs",
        "policy",
        "api",
        "--env",
        "production",
        "--auto-rollback",
        "on",
    ]);
    let policy = h.json(&[
        "envs",
        "policy",
        "api",
        "--env",
        "production",
        "--auto-promote",
        "on",
        "--after",
        "90s",
    ]);
    assert_eq!(
        (
            &policy["auto_rollback"],
            &policy["auto_promote"],
            &policy["after"],
            &policy["self_heal"]
        ),
        (&json!(true), &json!(true), &json!("90s"), &json!(false))
    );
}

/// `rollback --to last-healthy` after a failed rollout: the release recorded healthy, pinned.
pub fn rollback_to_last_healthy(h: &Hoist) {
    let server = with_cluster(h);
    h.ok(&["apps", "create", "api"]);
    h.ok(&["envs", "target", "api", "--env", "production", "--kube"]);
    h.deploy("api", "production", &image("api", '1'));
    let apply = [
        "apply",
        "api",
        "--env",
        "production",
        "--wait",
        "--timeout",
        "20s",
    ];
    assert_eq!(h.json(&apply)["outcome"], "healthy");
    let broken = image("api", '2');
    server.break_image(&broken);
    h.deploy("api", "production", &broken);
    // The failed outcome is recorded: the answer is shown, then the command fails.
    let failed = h.run(&apply);
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(env_status(h, "production")["health"], "failed");
    let rolled = h.json(&[
        "rollback",
        "api",
        "--env",
        "production",
        "--to",
        "last-healthy",
    ]);
    assert_eq!(
        (&rolled["version"], &rolled["rollback_to"], &rolled["image"]),
        (&json!(3), &json!(1), &json!(image("api", '1')))
    );
    assert_eq!(
        env_status(h, "production")["pinned"]["reason"],
        "rolled back by ana@example.com to v1"
    );
}

/// Two `serve` instances on one log: a staging release healthy for the span is promoted into
/// production once, by `hoist`, caused by the healthy outcome; a rollback pins production, and
/// the next healthy staging release waits for `unpin`. Returns the delays from the span's end to
/// the promotion, measured from the events' timestamps.
pub fn two_serves_auto_promote_once(h: &Hoist) -> Vec<Duration> {
    let _server = with_cluster(h);
    h.ok(&["apps", "create", "api"]);
    for env in ["staging", "production"] {
        h.ok(&["envs", "target", "api", "--env", env, "--kube"]);
    }
    let after = chrono::Duration::seconds(1);
    h.ok(&[
        "envs",
        "policy",
        "api",
        "--env",
        "production",
        "--auto-promote",
        "on",
        "--after",
        "1s",
    ]);
    let mut a = start_serve_logging_to(h, "a.log", &[]);
    let mut b = start_serve_logging_to(h, "b.log", &[]);
    wait_resynced(h, "a.log");
    wait_resynced(h, "b.log");

    let mut delays = Vec::new();
    // The delay from a healthy outcome + the span to the promotion it caused.
    let mut promoted = |version: u64| {
        let promotion = wait_for(
            &format!("production's promotion of staging v{version}"),
            Duration::from_secs(20),
            || {
                of_type(h, "release_created").into_iter().find(|e| {
                    e["event"]["env"] == "production"
                        && e["event"]["release"]["source"]["version"] == version
                })
            },
        );
        assert_eq!(promotion["actor"], "hoist");
        let healthy = of_type(h, "rollout_recorded")
            .into_iter()
            .find(|e| {
                e["event"]["env"] == "staging"
                    && e["event"]["version"] == version
                    && e["event"]["outcome"] == "healthy"
            })
            .expect("the healthy outcome");
        assert_eq!(promotion["causation_id"], healthy["id"], "caused by it");
        // Due at the span's end, or at the unpin that let it go, whichever came last.
        let unpinned = of_type(h, "env_unpinned")
            .iter()
            .map(at)
            .filter(|t| *t < at(&promotion))
            .max();
        let due = (at(&healthy) + after).max(unpinned.unwrap_or_default());
        let delay = (at(&promotion) - due).to_std().unwrap();
        delays.push(delay);
        promotion
    };

    h.deploy("api", "staging", &image("api", '1'));
    let first = promoted(1);
    assert_eq!(first["event"]["release"]["kind"], "promote");
    // Production's own release is applied and healthy; nothing more is promoted.
    wait_for("production v1 healthy", Duration::from_secs(20), || {
        (env_status(h, "production")["health"] == "healthy").then_some(())
    });
    let promotions = |h: &Hoist| {
        of_type(h, "release_created")
            .into_iter()
            .filter(|e| e["event"]["env"] == "production" && e["actor"] == "hoist")
            .count()
    };
    assert_eq!(promotions(h), 1, "two instances, one promotion");

    // A rollback pins production: the next healthy staging release is not promoted...
    h.deploy("api", "staging", &image("api", '2'));
    promoted(2);
    h.ok(&["rollback", "api", "--env", "production"]);
    h.deploy("api", "staging", &image("api", '3'));
    let healthy = wait_for("staging v3 healthy", Duration::from_secs(20), || {
        of_type(h, "rollout_recorded").into_iter().find(|e| {
            e["event"]["env"] == "staging"
                && e["event"]["version"] == 3
                && e["event"]["outcome"] == "healthy"
        })
    });
    let due = at(&healthy) + after + chrono::Duration::milliseconds(500);
    wait_for("the span to pass", Duration::from_secs(10), || {
        (Utc::now() > due).then_some(())
    });
    assert_eq!(promotions(h), 2, "pinned: v3 waits");
    // ... until unpin.
    h.ok(&["unpin", "api", "--env", "production"]);
    let third = promoted(3);
    assert_eq!(third["event"]["release"]["version"], 4);
    sigterm(&mut a);
    sigterm(&mut b);
    assert_eq!(promotions(h), 3, "each source release once");
    let logs = serve_log(h, "a.log") + &serve_log(h, "b.log");
    assert_eq!(logs.matches("auto-promoted").count(), 3, "{logs}");
    eprintln!("auto-promotion: healthy + span → promoted in {delays:?}");
    // What the README shows: the instances' promotion lines and production's audit.
    for line in logs.lines().filter(|l| l.contains("auto-promoted")) {
        eprintln!("{line}");
    }
    eprintln!(
        "{}",
        h.ok(&[
            "audit",
            "--app",
            "api",
            "--env",
            "production",
            "--limit",
            "9"
        ])
    );
    delays
}

/// Patches the Deployment `api` in `ns` as `kubectl edit` would: a merge patch by another field
/// manager.
fn edit(server: &ApiServer, ns: &str, manager: &str, patch: Value) {
    let (code, body) = raw(
        server.port,
        "PATCH",
        &format!("/apis/apps/v1/namespaces/{ns}/deployments/api?fieldManager={manager}"),
        "application/merge-patch+json",
        &patch.to_string(),
    );
    assert_eq!(code, 200, "{body}");
}

fn container(server: &ApiServer) -> Value {
    server.get("deployments", "production", "api").unwrap()["spec"]["template"]["spec"]
        ["containers"][0]
        .clone()
}

/// Drift against the kube stand-in: `kubectl edit` of the image and the ConfigMap reference is
/// drift (reported, shown by status, recorded once, left alone with self-heal off, repaired and
/// recorded healed with it on); an HPA's replicas are not. Returns the delays from the edit to
/// the drift's event (resync 1 s).
pub fn drift_of_a_kube_target(h: &Hoist) -> Vec<Duration> {
    let server = with_cluster(h);
    h.ok(&["apps", "create", "api"]);
    h.ok(&["envs", "target", "api", "--env", "production", "--kube"]);
    h.deploy("api", "production", &image("api", '1'));
    h.ok(&["config", "set", "api", "--env", "production", "PORT=8080"]);
    h.ok(&["config", "set", "api", "--env", "production", "PORT=9090"]);
    h.ok(&[
        "apply",
        "api",
        "--env",
        "production",
        "--wait",
        "--timeout",
        "20s",
    ]);
    let clean = h.json(&["drift", "api", "--env", "production"]);
    assert_eq!(
        (&clean["drifted"], &clean["objects"], &clean["version"]),
        (&json!(false), &json!([]), &json!(3))
    );

    // Another manager's own field (an HPA scaling) is not drift.
    edit(
        &server,
        "production",
        "hpa",
        json!({"spec": {"replicas": 4}}),
    );
    let managers: Vec<Value> = server.get("deployments", "production", "api").unwrap()["metadata"]
        ["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].clone())
        .collect();
    assert_eq!(managers, vec![json!("hoist"), json!("hpa")]);
    assert_eq!(
        h.json(&["drift", "api", "--env", "production"])["drifted"],
        false
    );

    // kubectl edit: the image and the ConfigMap the pods read.
    let mut edited = container(&server);
    edited["image"] = json!(image("api", 'e'));
    edited["envFrom"][0]["configMapRef"]["name"] = json!("api-config-v2");
    let events_before = h.event_count();
    edit(
        &server,
        "production",
        "kubectl-edit",
        json!({"spec": {"template": {"spec": {"containers": [edited]}}}}),
    );
    let drift = h.json(&["drift", "api", "--env", "production"]);
    assert_eq!(drift["drifted"], true, "{drift}");
    assert_eq!(
        drift["objects"],
        json!([{"kind": "Deployment", "name": "api", "fields": [
            {"path": "spec.template.spec.containers[name=api].envFrom[0].configMapRef.name",
             "want": "\"api-config-v3\"", "got": "\"api-config-v2\"", "by": "kubectl-edit"},
            {"path": "spec.template.spec.containers[name=api].image",
             "want": format!("\"{}\"", image("api", '1')), "got": format!("\"{}\"", image("api", 'e')),
             "by": "kubectl-edit"},
        ]}])
    );
    let human = h.ok(&["drift", "api", "--env", "production"]);
    assert!(
        human.contains("has drifted from v3") && human.contains("(by kubectl-edit)"),
        "{human}"
    );
    // Recorded once, however often it is looked at.
    assert_eq!(of_type(h, "drift_detected").len(), 1);
    assert_eq!(h.event_count(), events_before + 1);
    assert_eq!(env_status(h, "production")["drifted"], true);
    assert!(h.ok(&["status", "api"]).contains("production has drifted"));

    // serve's resync with self-heal off: recorded already, left as it is.
    let mut serve = h
        .command(&["serve", "--resync", "1s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(h.dir.path().join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    wait_for("two resyncs", Duration::from_secs(20), || {
        (serve_log(h, "serve.log").matches("resynced").count() >= 2).then_some(())
    });
    assert_eq!(container(&server)["image"], json!(image("api", 'e')));
    assert_eq!(of_type(h, "drift_detected").len(), 1);
    assert_eq!(of_type(h, "drift_healed").len(), 0);

    // Self-heal on: the next resync applies the release again and records the healing.
    h.ok(&[
        "envs",
        "policy",
        "api",
        "--env",
        "production",
        "--self-heal",
        "on",
    ]);
    let healed = wait_for("drift healed", Duration::from_secs(20), || {
        of_type(h, "drift_healed").pop()
    });
    assert_eq!(container(&server)["image"], json!(image("api", '1')));
    assert_eq!(
        container(&server)["envFrom"][0]["configMapRef"]["name"],
        json!("api-config-v3")
    );
    let detected = of_type(h, "drift_detected").pop().unwrap();
    assert_eq!(
        healed["causation_id"],
        Value::Null,
        "healed a drift recorded before"
    );
    assert!(at(&healed) >= at(&detected));
    assert_eq!(env_status(h, "production")["drifted"], false);
    assert_eq!(
        h.json(&["drift", "api", "--env", "production"])["drifted"],
        false
    );
    assert_eq!(
        server.get("deployments", "production", "api").unwrap()["spec"]["replicas"],
        4,
        "the HPA's field stays the HPA's"
    );

    // A new edit while serve runs: detected within a resync, healed at once.
    let mut delays = Vec::new();
    let mut edited = container(&server);
    edited["image"] = json!(image("api", 'f'));
    let edited_at = Utc::now();
    edit(
        &server,
        "production",
        "kubectl-edit",
        json!({"spec": {"template": {"spec": {"containers": [edited]}}}}),
    );
    let detected = wait_for("the second drift", Duration::from_secs(20), || {
        (of_type(h, "drift_detected").len() == 2)
            .then(|| of_type(h, "drift_detected").pop().unwrap())
    });
    delays.push((at(&detected) - edited_at).to_std().unwrap_or_default());
    let healed = wait_for("the second healing", Duration::from_secs(20), || {
        (of_type(h, "drift_healed").len() == 2).then(|| of_type(h, "drift_healed").pop().unwrap())
    });
    assert_eq!(healed["causation_id"], detected["id"]);
    assert_eq!(container(&server)["image"], json!(image("api", '1')));
    sigterm(&mut serve);
    eprintln!("drift: edit → drift_detected in {delays:?} (resync 1s)");
    delays
}

/// A token for `identity` with `role` on every env of `app`.
fn token(h: &Hoist, identity: &str, role: &str) -> String {
    let created = h.json(&["access", "token", "create", identity]);
    h.ok(&["access", "grant", identity, "--role", role, "--app", "api"]);
    created["token"].as_str().unwrap().to_string()
}

/// The new commands through `hoist serve --listen` (the remote CLI): the same answers and exit
/// codes as locally; a manifests target's drift (a file edited behind hoist's back) reported to
/// a viewer without recording it, recorded for an admin; an exec target has no drift detection.
pub fn pipelines_through_the_server(h: &Hoist) {
    let dir = h.dir.path().join("gitops");
    h.ok(&["apps", "create", "api"]);
    h.ok(&[
        "envs",
        "target",
        "api",
        "--env",
        "production",
        "--manifests",
        dir.to_str().unwrap(),
    ]);
    h.ok(&[
        "envs", "target", "api", "--env", "staging", "--exec", "true",
    ]);
    for n in ['1', '2'] {
        h.deploy("api", "staging", &image("api", n));
        h.ok(&["promote", "api", "--from", "staging"]);
    }
    let (admin, viewer) = (
        token(h, "ada@example.com", "admin"),
        token(h, "vic@example.com", "viewer"),
    );
    h.fails(
        &["drift", "api", "--env", "production"],
        1,
        &["no release applied"],
    );
    let (mut serve, port) = crate::api::start_api(h, "serve-api.log");
    // serve applies staging's v2 as it starts: wait for that record, so the refusals below are
    // counted against a log nothing else writes to.
    wait_for("serve to apply staging", Duration::from_secs(30), || {
        (h.json(&["status", "api"])["envs"]["staging"]["applied_version"] == 2).then_some(())
    });
    let url = format!("http://127.0.0.1:{port}");
    let (ada, vic) = (
        h.through_server(&url, &admin),
        h.through_server(&url, &viewer),
    );

    let rolled = ada.json(&["rollback", "api", "--env", "production"]);
    assert_eq!(rolled["actor"], "ada@example.com");
    assert_eq!(
        vic.json(&["status", "api"])["envs"]["production"]["pinned"]["reason"],
        "rolled back by ada@example.com to v1"
    );
    let local = h.run(&["promote", "api", "--from", "staging"]);
    let remote = ada.run(&["promote", "api", "--from", "staging"]);
    assert_eq!(remote.status.code(), Some(1));
    assert_eq!(remote.stderr, local.stderr, "the same refusal");
    let forced = ada.json(&["promote", "api", "--from", "staging", "--force"]);
    assert!(forced["description"]
        .as_str()
        .unwrap()
        .contains("forced past the pin"));
    assert_eq!(
        ada.json(&["unpin", "api", "--env", "production"])["pinned"],
        Value::Null
    );
    let pinned = ada.json(&[
        "pin",
        "api",
        "--env",
        "production",
        "--reason",
        "audit week",
    ]);
    assert_eq!(pinned["pinned"]["by"], "ada@example.com");
    let refused = vic.run(&["unpin", "api", "--env", "production"]);
    assert_eq!(refused.status.code(), Some(5), "a viewer may not unpin");
    // serve applies production's rollback and forced release in the background: wait for the
    // record of the last, so the refusal below is counted against a log nothing else writes to.
    wait_for("serve to apply production", Duration::from_secs(30), || {
        let status = h.json(&["status", "api"]);
        let production = &status["envs"]["production"];
        (production["applied_version"] == production["version"]).then_some(())
    });
    ada.fails(
        &[
            "rollback",
            "api",
            "--env",
            "staging",
            "--to",
            "last-healthy",
        ],
        1,
        &["no release of it was recorded healthy"],
    );
    let policy = ada.json(&[
        "envs",
        "policy",
        "api",
        "--env",
        "production",
        "--auto-promote",
        "on",
        "--after",
        "2m",
        "--verify",
        "./smoke",
    ]);
    assert_eq!(
        (&policy["after"], &policy["verify"]),
        (&json!("2m"), &json!("./smoke"))
    );
    let policy = ada.json(&[
        "envs",
        "policy",
        "api",
        "--env",
        "production",
        "--no-verify",
    ]);
    assert_eq!(
        (&policy["after"], &policy["verify"]),
        (&json!("2m"), &Value::Null)
    );

    // Drift of the manifests file (serve has applied it meanwhile): clean, then edited.
    h.ok(&["apply", "api", "--env", "production"]);
    assert_eq!(
        vic.json(&["drift", "api", "--env", "production"])["drifted"],
        false
    );
    let file = dir.join("api").join("production.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "app.kubernetes.io/managed-by: \"hoist\"",
            "app.kubernetes.io/managed-by: \"helm\"",
        ),
    )
    .unwrap();
    let before = h.event_count();
    let seen = vic.json(&["drift", "api", "--env", "production"]);
    assert_eq!(seen["drifted"], true, "{seen}");
    let fields = &seen["objects"][0]["fields"][0];
    assert_eq!(
        (&fields["path"], &fields["want"], &fields["got"]),
        (
            &json!("metadata.labels.app.kubernetes.io/managed-by"),
            &json!("\"hoist\""),
            &json!("\"helm\"")
        )
    );
    assert_eq!(h.event_count(), before, "a viewer's look records nothing");
    assert_eq!(ada.json(&["drift", "api", "--env", "production"]), seen);
    assert_eq!(
        h.event_count(),
        before + 1,
        "an admin's look records the drift"
    );
    let human = vic.ok(&["drift", "api", "--env", "production"]);
    assert_eq!(
        human,
        h.ok(&["drift", "api", "--env", "production"]),
        "byte for byte"
    );
    // An exec hook is a black box.
    h.ok(&["apply", "api", "--env", "staging"]);
    let exec = ada.json(&["drift", "api", "--env", "staging"]);
    assert_eq!(
        (&exec["drifted"], &exec["checked"]),
        (&json!(false), &json!(false))
    );
    sigterm(&mut serve);
}

/// `--verify CMD` before an auto-promotion: the source release's JSON on its stdin; its outcome
/// recorded; a refused release not promoted (ever), a verified one promoted.
pub fn a_verification_gates_auto_promotion(h: &Hoist) {
    let _server = with_cluster(h);
    h.ok(&["apps", "create", "api"]);
    for env in ["staging", "production"] {
        h.ok(&["envs", "target", "api", "--env", env, "--kube"]);
    }
    // Verified: only releases of image 2 (the JSON on stdin names the image).
    let verify = format!("grep -q '{}'", image("api", '2'));
    h.ok(&[
        "envs",
        "policy",
        "api",
        "--env",
        "production",
        "--auto-promote",
        "on",
        "--after",
        "1s",
        "--verify",
        &verify,
    ]);
    let mut serve = start_serve_logging_to(h, "serve.log", &[]);
    wait_resynced(h, "serve.log");
    h.deploy("api", "staging", &image("api", '1'));
    let refused = wait_for("staging v1's verification", Duration::from_secs(20), || {
        of_type(h, "promotion_verified").pop()
    });
    assert_eq!(
        (
            &refused["event"]["version"],
            &refused["event"]["passed"],
            &refused["actor"]
        ),
        (&json!(1), &json!(false), &json!("hoist"))
    );
    h.deploy("api", "staging", &image("api", '2'));
    let promotion = wait_for("staging v2's promotion", Duration::from_secs(20), || {
        of_type(h, "release_created")
            .into_iter()
            .find(|e| e["event"]["env"] == "production")
    });
    assert_eq!(promotion["event"]["release"]["source"]["version"], 2);
    let verified = of_type(h, "promotion_verified");
    assert_eq!(verified.len(), 2, "v1 refused once, never tried again");
    assert_eq!(verified[1]["event"]["passed"], true);
    assert_eq!(promotion["causation_id"], verified[1]["causation_id"]);
    let audit = h.ok(&["audit", "--app", "api", "--kind", "verification"]);
    assert!(
        audit.contains("staging v1 not verified for promotion into production")
            && audit.contains("staging v2 verified for promotion into production"),
        "{audit}"
    );
    sigterm(&mut serve);
}
