//! The domain's size limits (`hoist_engine::names::limits`) as a user meets them: one line naming
//! the field and the limit, exit 1, nothing appended; a config just under the limits is kept.

use crate::harness::{image, Hoist};

pub fn oversized_input_is_rejected_naming_the_field_and_the_limit(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", '1'));
    let big = format!("CERT={}", "x".repeat(32 * 1024 + 1));
    h.fails(
        &["config", "set", "api", "--env", "staging", &big],
        1,
        &[
            "config value of CERT",
            "32769 bytes",
            "the limit is 32768 bytes",
        ],
    );
    h.fails(
        &["config", "set", "api", "--env", "staging", "--secret", &big],
        1,
        &["config value of CERT", "the limit is 32768 bytes"],
    );
    // Eight values of 30 KiB fit a release (and one NATS message); a ninth does not.
    let value = "v".repeat(30 * 1024);
    let pairs: Vec<String> = (0..8).map(|i| format!("K{i}={value}")).collect();
    let mut args = vec!["config", "set", "api", "--env", "staging"];
    args.extend(pairs.iter().map(String::as_str));
    h.ok(&args);
    let config = h.json(&["config", "get", "api", "--env", "staging"]);
    assert_eq!(
        config["config"]["K7"].as_str().map(str::len),
        Some(30 * 1024)
    );
    let ninth = format!("K8={value}");
    h.fails(
        &["config", "set", "api", "--env", "staging", &ninth],
        1,
        &["the config of api/staging", "the limit is 262144 bytes"],
    );
    h.fails(
        &[
            "lock",
            "api",
            "--env",
            "staging",
            "--reason",
            &"r".repeat(1025),
        ],
        1,
        &["lock reason is 1025 bytes", "the limit is 1024 bytes"],
    );
    h.fails(
        &[
            "builds",
            "register",
            "api",
            "--image",
            &image("api", '2'),
            "--note",
            &"n".repeat(2000),
        ],
        1,
        &["--note is 2000 bytes", "the limit is 1024 bytes"],
    );
}
