//! Several processes on one store at once: each waits its turn, none loses an update.

use crate::harness::{assert_success, image, Hoist};
use serde_json::json;

pub fn parallel_config_sets_lose_nothing(h: &Hoist, writers: usize) {
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", 'd'));
    let keys: Vec<String> = (0..writers).map(|i| format!("KEY_{i}=value-{i}")).collect();
    let children: Vec<_> = keys
        .iter()
        .map(|pair| {
            let args = [
                "config",
                "set",
                "api",
                "--env",
                "staging",
                pair.as_str(),
                "--json",
            ];
            (
                args,
                h.command(&args)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("hoist starts"),
            )
        })
        .collect();
    let mut versions = Vec::new();
    for (args, child) in children {
        let output = child.wait_with_output().expect("hoist finishes");
        assert_success(&args, &output);
        let release: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("one JSON release");
        versions.push(release["version"].as_u64().expect("version"));
    }
    versions.sort_unstable();
    let expected: Vec<u64> = (2..2 + writers as u64).collect();
    assert_eq!(
        versions, expected,
        "every writer got its own version, contiguous after v1"
    );
    let config = h.json(&["config", "get", "api", "--env", "staging"]);
    for i in 0..writers {
        assert_eq!(
            config["config"][format!("KEY_{i}")],
            json!(format!("value-{i}")),
            "no lost update"
        );
    }
    assert_eq!(h.json(&["audit", "verify"])["ok"], json!(true));
}
