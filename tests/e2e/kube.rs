//! The kube target end to end: the real `hoist` binary, its real kube-rs client, real HTTP to the
//! API-server stand-in of `kube_apiserver` through a kubeconfig in `$HOME/.kube/config`.

use crate::harness::{image, Hoist};
use crate::kube_apiserver::{raw, ApiServer};
use serde_json::{json, Value};

pub(crate) fn with_cluster(h: &Hoist) -> ApiServer {
    let server = ApiServer::start();
    let kube_dir = h.dir.path().join(".kube");
    std::fs::create_dir_all(&kube_dir).unwrap();
    std::fs::write(kube_dir.join("config"), server.kubeconfig()).unwrap();
    server
}

fn deployed_image(server: &ApiServer, ns: &str) -> Value {
    server
        .get("deployments", ns, "api")
        .expect("deployment api")["spec"]["template"]["spec"]["containers"][0]["image"]
        .clone()
}

fn release_annotation(server: &ApiServer, ns: &str) -> Value {
    server.get("deployments", ns, "api").unwrap()["spec"]["template"]["metadata"]["annotations"]
        ["hoist.dev/release"]
        .clone()
}

pub fn kube_apply_reapply_and_rollback(h: &Hoist) {
    let server = with_cluster(h);
    h.ok(&["apps", "create", "api"]);
    h.ok(&["envs", "target", "api", "--env", "production", "--kube"]);
    h.deploy("api", "production", &image("api", '1'));
    h.ok(&["config", "set", "api", "--env", "production", "PORT=8080"]);

    let applied = h.json(&[
        "apply",
        "api",
        "--env",
        "production",
        "--wait",
        "--timeout",
        "20s",
    ]);
    assert_eq!(applied["outcome"], "healthy", "{applied}");
    assert_eq!(applied["version"], 2);
    assert_eq!(
        deployed_image(&server, "production"),
        json!(image("api", '1'))
    );
    assert_eq!(release_annotation(&server, "production"), json!("2"));
    let config = server
        .get("configmaps", "production", "api-config-v2")
        .unwrap();
    assert_eq!(config["data"], json!({"PORT": "8080"}));
    assert_eq!(config["immutable"], json!(true));
    // Every write was a server-side apply under field manager hoist.
    let patches: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    // ConfigMap, Deployment, and (issue 14) web's Service.
    assert_eq!(patches.len(), 3);
    for patch in &patches {
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(
            patch.query.get("fieldManager").map(String::as_str),
            Some("hoist")
        );
        assert_eq!(patch.query.get("force").map(String::as_str), Some("true"));
    }

    // Re-apply: nothing changes in the cluster, nothing new in the log.
    let version_before = server.get("deployments", "production", "api").unwrap()["metadata"]
        ["resourceVersion"]
        .clone();
    let events_before = h.event_count();
    let again = h.json(&["apply", "api", "--env", "production"]);
    assert_eq!(again["outcome"], "unchanged", "{again}");
    assert_eq!(
        server.get("deployments", "production", "api").unwrap()["metadata"]["resourceVersion"],
        version_before
    );
    assert_eq!(h.event_count(), events_before);

    // A new image, then a rollback: the rollback reaches the cluster.
    h.deploy("api", "production", &image("api", '2'));
    let dry = h.ok(&["apply", "api", "--env", "production", "--dry-run"]);
    assert!(
        dry.contains("would create ConfigMap api-config-v3"),
        "{dry}"
    );
    assert!(dry.contains("would update Deployment api"), "{dry}");
    assert_eq!(
        deployed_image(&server, "production"),
        json!(image("api", '1')),
        "dry-run applied nothing"
    );
    assert_eq!(
        h.json(&["apply", "api", "--env", "production", "--wait"])["outcome"],
        "healthy"
    );
    assert_eq!(
        deployed_image(&server, "production"),
        json!(image("api", '2'))
    );
    h.ok(&["rollback", "api", "--env", "production", "--to", "2"]);
    assert_eq!(
        h.json(&["apply", "api", "--env", "production", "--wait"])["outcome"],
        "healthy"
    );
    assert_eq!(
        deployed_image(&server, "production"),
        json!(image("api", '1'))
    );
    assert_eq!(release_annotation(&server, "production"), json!("4"));
    assert_eq!(
        server
            .get("configmaps", "production", "api-config-v4")
            .unwrap()["data"],
        json!({"PORT": "8080"})
    );
    let status = h.json(&["status", "api"]);
    assert_eq!(status["envs"]["production"]["applied_version"], 4);
    assert_eq!(status["envs"]["production"]["health"], "healthy");

    // Versioned config of releases past the history limit (5) is garbage-collected.
    for n in 0..3 {
        h.ok(&[
            "config",
            "set",
            "api",
            "--env",
            "production",
            &format!("N={n}"),
        ]);
        h.ok(&["apply", "api", "--env", "production"]);
    }
    let names = server.names("configmaps", "production");
    assert_eq!(
        names,
        [
            "api-config-v3",
            "api-config-v4",
            "api-config-v5",
            "api-config-v6",
            "api-config-v7"
        ]
    );
}

pub fn kube_rollout_that_never_becomes_available(h: &Hoist) {
    let server = with_cluster(h);
    let broken = image("api", 'f');
    server.break_image(&broken);
    h.ok(&["apps", "create", "api"]);
    for env in ["staging", "production"] {
        h.ok(&["envs", "target", "api", "--env", env, "--kube"]);
        h.ok(&["deploy", "api", "--env", env, "--image", &image("api", '1')]);
        assert_eq!(
            h.json(&["apply", "api", "--env", env, "--wait"])["outcome"],
            "healthy"
        );
        h.ok(&["deploy", "api", "--env", env, "--image", &broken]);
    }
    h.ok(&[
        "envs",
        "policy",
        "api",
        "--env",
        "staging",
        "--auto-rollback",
        "on",
    ]);

    // Policy off (production): the failure is recorded and reported, the cluster stays broken.
    let output = h.run(&[
        "apply",
        "api",
        "--env",
        "production",
        "--wait",
        "--timeout",
        "20s",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let failed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["rolled_back_to"], Value::Null);
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .contains("exceeded its progress deadline"),
        "{failed}"
    );
    assert_eq!(deployed_image(&server, "production"), json!(broken));
    assert_eq!(
        h.json(&["status", "api"])["envs"]["production"]["version"],
        2
    );

    // Policy on (staging): a rollback release by hoist to v1, applied, healthy; still exit 1.
    let output = h.run(&[
        "apply",
        "api",
        "--env",
        "staging",
        "--wait",
        "--timeout",
        "20s",
        "--json",
    ]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let recovered: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(recovered["outcome"], "failed");
    assert_eq!(recovered["version"], 2);
    assert_eq!(recovered["rolled_back_to"], 1);
    assert_eq!(deployed_image(&server, "staging"), json!(image("api", '1')));
    assert_eq!(release_annotation(&server, "staging"), json!("3"));
    let staging = &h.json(&["status", "api"])["envs"]["staging"];
    assert_eq!(staging["version"], 3);
    assert_eq!(staging["applied_version"], 3);
    assert_eq!(staging["health"], "healthy");
    let releases = h.json(&["releases", "api", "--env", "staging"]);
    assert_eq!(releases[0]["kind"], "rollback");
    assert_eq!(releases[0]["actor"], "hoist");
    assert_eq!(releases[0]["rollback_to"], 1);
    // The rollback release and the record of its outcome name the failed rollout as their cause.
    let staging_events: Vec<Value> = h
        .ok(&["events"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"]["env"] == "staging")
        .collect();
    let [.., failed_rollout, rollback, rollback_rollout] = &staging_events[..] else {
        panic!("staging events: {staging_events:?}");
    };
    assert_eq!(failed_rollout["event"]["outcome"], "failed");
    assert_eq!(failed_rollout.get("causation_id"), None);
    assert_eq!(rollback["event"]["type"], "release_created");
    assert_eq!(rollback["causation_id"], failed_rollout["id"]);
    assert_eq!(rollback_rollout["event"]["version"], 3);
    assert_eq!(rollback_rollout["causation_id"], failed_rollout["id"]);
    // And it does not loop: applying again changes nothing.
    let events = h.event_count();
    h.ok(&["apply", "api", "--env", "staging"]);
    assert_eq!(h.event_count(), events);
}

pub fn standin_rejects_what_a_real_api_server_rejects() {
    let server = ApiServer::start();
    let path = "/api/v1/namespaces/default/configmaps/app-config-v1";
    let body = |data: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"app-config-v1"}},"data":{{"A":"{data}"}},"immutable":true}}"#
        )
    };
    let apply = |path: &str, content_type: &str, body: &str| {
        raw(server.port, "PATCH", path, content_type, body)
    };
    let (code, status) = apply(
        &format!("{path}?fieldManager=t"),
        "application/json",
        &body("1"),
    );
    assert_eq!(
        (code, status["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let (code, status) = apply(path, "application/apply-patch+yaml", &body("1"));
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("fieldManager: Required value"));
    let (code, _) = apply(
        "/api/v1/namespaces/default/configmaps/Bad_Name?fieldManager=t",
        "application/apply-patch+yaml",
        &body("1"),
    );
    assert_eq!(code, 422);
    let (code, _) = apply(
        &format!("{path}?fieldManager=t"),
        "application/apply-patch+yaml",
        &body("1"),
    );
    assert_eq!(code, 200);
    let (code, status) = apply(
        &format!("{path}?fieldManager=t"),
        "application/apply-patch+yaml",
        &body("2"),
    );
    assert_eq!(code, 422, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("field is immutable"));
    let (code, _) = raw(
        server.port,
        "GET",
        "/api/v1/namespaces/default/configmaps/nope",
        "application/json",
        "",
    );
    assert_eq!(code, 404);
}
