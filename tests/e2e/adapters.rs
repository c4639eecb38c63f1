//! Targets without a cluster: the exec hook and the manifests directory, driven through
//! `hoist envs target` and `hoist apply`, their outcomes seen in `status` and `audit`.

use crate::harness::{image, Hoist};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn rollout_events(h: &Hoist) -> Vec<Value> {
    h.ok(&["events"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("an event line"))
        .filter(|e| e["event"]["type"] == "rollout_recorded")
        .collect()
}

pub fn exec_target_gets_the_release_on_stdin_and_in_its_environment(h: &Hoist) {
    let out = h.dir.path().join("hook");
    std::fs::create_dir_all(&out).unwrap();
    let script = format!(
        "cat > {0}/stdin.json; env | grep -E '^HOIST_(APP|ENV|VERSION|IMAGE)=' | sort > {0}/env; echo rolled out",
        out.display()
    );
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", '1'));
    h.ok(&["config", "set", "api", "--env", "staging", "PORT=8080"]);
    h.ok(&[
        "envs", "target", "api", "--env", "staging", "--exec", &script,
    ]);

    let applied = h.json(&["apply", "api", "--env", "staging"]);
    assert_eq!(
        applied,
        serde_json::json!({"app": "api", "env": "staging", "version": 2, "outcome": "applied",
            "detail": "exit 0\nrolled out", "rolled_back_to": null})
    );
    let stdin: Value =
        serde_json::from_slice(&std::fs::read(out.join("stdin.json")).unwrap()).unwrap();
    assert_eq!(stdin["version"], 2);
    assert_eq!(stdin["kind"], "config");
    assert_eq!(stdin["config"]["PORT"], "8080");
    assert_eq!(stdin["image"], image("api", '1'));
    let env = std::fs::read_to_string(out.join("env")).unwrap();
    assert_eq!(
        env,
        format!(
            "HOIST_APP=api\nHOIST_ENV=staging\nHOIST_IMAGE={}\nHOIST_VERSION=2\n",
            image("api", '1')
        )
    );

    let status = h.json(&["status", "api"]);
    assert_eq!(status["envs"]["staging"]["applied_version"], 2);
    assert_eq!(status["envs"]["staging"]["health"], "applied");
    assert_eq!(status["envs"]["production"]["applied_version"], Value::Null);
    assert_eq!(status["envs"]["production"]["health"], Value::Null);

    let audit = h.json(&["audit", "--kind", "rollout"]);
    assert_eq!(audit[0]["actor"], "hoist");
    assert_eq!(audit[0]["summary"], "staging v2: applied (exit 0)");

    // A failing hook: exit 1 naming the env and version, the outcome recorded with the tail.
    h.ok(&[
        "envs",
        "target",
        "api",
        "--env",
        "staging",
        "--exec",
        "echo no cluster today >&2; exit 7",
    ]);
    let output = h.run(&["apply", "api", "--env", "staging", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let failed: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["detail"], "exit 7\nno cluster today");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("api/staging v2: the rollout failed"),
        "{stderr}"
    );
    assert_eq!(
        h.json(&["status", "api"])["envs"]["staging"]["health"],
        "failed"
    );
}

/// Sets `app`/`env`'s target to the manifests directory `DIR/gitops`; returns the directory.
pub fn manifests_target(h: &Hoist, app: &str, env: &str) -> PathBuf {
    let dir = h.dir.path().join("gitops");
    let shown = dir.display().to_string();
    h.ok(&["envs", "target", app, "--env", env, "--manifests", &shown]);
    dir
}

pub fn manifests_target_writes_valid_stable_yaml(h: &Hoist) {
    h.ok(&["apps", "create", "shop"]);
    let dir = manifests_target(h, "shop", "production");
    h.deploy("shop", "production", &image("shop", 'c'));
    h.ok(&[
        "config",
        "set",
        "shop",
        "--env",
        "production",
        "LOG_LEVEL=info",
        "PORT=8080",
    ]);
    h.ok(&[
        "config",
        "set",
        "shop",
        "--env",
        "production",
        "--secret",
        "DB_PASSWORD=hunter2",
    ]);

    let dry = h.ok(&["apply", "shop", "--env", "production", "--dry-run"]);
    assert!(dry.contains("would create File"), "{dry}");
    assert!(!dry.contains("hunter2"));
    assert!(
        !dir.join("shop/production.yaml").exists(),
        "--dry-run wrote nothing"
    );
    assert!(rollout_events(h).is_empty(), "--dry-run recorded nothing");

    assert_eq!(
        h.json(&["apply", "shop", "--env", "production"])["outcome"],
        "applied"
    );
    let file = dir.join("shop/production.yaml");
    let written = std::fs::read_to_string(&file).unwrap();
    expect_test::expect_file!["snapshots/shop-production.yaml"].assert_eq(&written);
    kubernetes_validate(&file);
    crate::harness::assert_no_file_contains(&dir, "hunter2");

    // Applying again changes nothing: same bytes, same mtime, no second outcome.
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let again = h.json(&["apply", "shop", "--env", "production"]);
    assert_eq!(again["outcome"], "unchanged");
    assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), mtime);
    assert_eq!(rollout_events(h).len(), 1);

    // A rollback reaches the directory as the old objects under the new version.
    h.ok(&["rollback", "shop", "--env", "production", "--to", "2"]);
    assert_eq!(
        h.json(&["apply", "shop", "--env", "production"])["outcome"],
        "applied"
    );
    let rolled_back = std::fs::read_to_string(&file).unwrap();
    assert!(
        rolled_back.contains("name: \"shop-config-v4\""),
        "{rolled_back}"
    );
    assert!(
        !rolled_back.contains("secretRef"),
        "v2 had no secrets:\n{rolled_back}"
    );
    kubernetes_validate(&file);
}

/// `kubernetes-validate --strict` (PyPI; the official schemas, offline; `scripts/test.sh`
/// installs it). A machine without it fails this test with the install hint, never skips it.
pub fn kubernetes_validate(file: &Path) {
    let have = std::process::Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have,
        "kubernetes-validate is missing: install it with `python3 -m pip install kubernetes-validate` (scripts/test.sh does)"
    );
    let output = std::process::Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(file)
        .output()
        .expect("kubernetes-validate runs");
    assert!(
        output.status.success(),
        "{} is not valid Kubernetes:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Values a YAML 1.1 reader (PyYAML, so `kubernetes-validate`) would type as booleans, null,
/// dates, numbers, or cut at a comment, under keys it would read as booleans too.
const TRICKY_CONFIG: [(&str, &str); 18] = [
    ("ON", "yes"),
    ("YES", "no"),
    ("Y", "on"),
    ("N", "off"),
    ("NULL", "null"),
    ("TILDE", "~"),
    ("DATE", "2001-12-14"),
    ("TIME", "1:20"),
    ("HEX", "0x1F"),
    ("EXP", "1e3"),
    ("INF", ".inf"),
    ("NUMBER", "8080"),
    ("PADDED", "  padded  "),
    ("HASH", "# not a comment"),
    ("MULTI", "line one\nline two\n"),
    ("EMPTY", ""),
    ("QUOTES", "say \"hi\" and 'bye' \\o/"),
    ("COLON", "key: value"),
];

pub fn manifests_yaml_keeps_every_string_a_string(h: &Hoist) {
    h.ok(&["apps", "create", "shop"]);
    let dir = manifests_target(h, "shop", "staging");
    h.deploy("shop", "staging", &image("shop", 'c'));
    let pairs: Vec<String> = TRICKY_CONFIG
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut args = vec!["config", "set", "shop", "--env", "staging"];
    args.extend(pairs.iter().map(String::as_str));
    h.ok(&args);
    assert_eq!(
        h.json(&["apply", "shop", "--env", "staging"])["outcome"],
        "applied"
    );
    let file = dir.join("shop/staging.yaml");
    let written = std::fs::read_to_string(&file).unwrap();
    expect_test::expect_file!["snapshots/shop-staging-tricky.yaml"].assert_eq(&written);
    kubernetes_validate(&file);
    // A YAML 1.1 reader gets back exactly the strings that were set.
    let read_back = yaml_1_1_config_map_data(&file);
    let expected: serde_json::Map<String, Value> = TRICKY_CONFIG
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    assert_eq!(read_back, Value::Object(expected));
}

/// The first document's `data`, as PyYAML (`yaml.safe_load_all`, YAML 1.1) reads it.
fn yaml_1_1_config_map_data(file: &Path) -> Value {
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; docs = list(yaml.safe_load_all(open(sys.argv[1]))); \
             print(json.dumps(docs[0]['data'], default=repr))",
        ])
        .arg(file)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "PyYAML could not read {} (install it with `python3 -m pip install pyyaml`; \
         kubernetes-validate brings it): {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from python")
}
