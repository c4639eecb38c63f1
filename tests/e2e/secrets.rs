//! The store's sealing key: secrets name the key that sealed them, so a missing or different key
//! file is refused naming the key that is expected, instead of sealing under a key nobody else
//! has, and opening with the wrong key says which one is needed.

use crate::harness::{image, Hoist};
use std::path::Path;

/// Runs `args` with `HOIST_SECRET_KEY_FILE=key_file`; asserts exit 1, one line on stderr
/// holding every `needles`, nothing on stdout and nothing appended. Returns the line.
fn refused_with_key(h: &Hoist, key_file: &Path, args: &[&str], needles: &[&str]) -> String {
    let before = h.event_count();
    let output = h
        .command(args)
        .env("HOIST_SECRET_KEY_FILE", key_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?}: nothing on stdout");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle:?} not in {stderr}"
        );
    }
    assert_eq!(h.event_count(), before, "{args:?} appended events");
    stderr
}

/// The 16-hex-digit key named after `after` in `line`.
fn key_after(line: &str, after: &str) -> String {
    let at = line
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} in {line}"))
        + after.len();
    let id: String = line[at..].chars().take(16).collect();
    assert!(
        id.chars().all(|c| c.is_ascii_hexdigit()) && id.len() == 16,
        "{line}"
    );
    id
}

pub fn a_store_refuses_a_key_other_than_the_one_its_secrets_are_sealed_with(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", '1'));
    // A store without secrets creates its key on first use.
    assert!(!h.dir.path().join("secret.key").exists());
    h.ok(&[
        "config",
        "set",
        "api",
        "--env",
        "staging",
        "--secret",
        "TOKEN=s3cr3t",
    ]);
    assert!(h.dir.path().join("secret.key").exists());

    // A mistyped key file path: refused, and no key is created there.
    let missing = h.dir.path().join("typo/secret.key");
    let set = [
        "config", "set", "api", "--env", "staging", "--secret", "OTHER=x",
    ];
    let line = refused_with_key(h, &missing, &set, &["does not exist", "sealed with key "]);
    let expected = key_after(&line, "sealed with key ");
    assert!(!missing.exists(), "no key file created: {line}");
    assert!(
        !missing.parent().unwrap().exists(),
        "not even its directory"
    );
    // Even for another app: the key belongs to the store.
    h.ok(&["apps", "create", "web"]);
    h.deploy("web", "staging", &image("web", '1'));
    let line = refused_with_key(
        h,
        &missing,
        &[
            "config", "set", "web", "--env", "staging", "--secret", "A=b",
        ],
        &["does not exist"],
    );
    assert_eq!(key_after(&line, "sealed with key "), expected);

    // Another existing key: refused, naming the key found and the key expected.
    let other = h.dir.path().join("other.key");
    std::fs::write(&other, "ab".repeat(32)).unwrap();
    let line = refused_with_key(h, &other, &set, &[&format!("sealed with key {expected}")]);
    let found = key_after(&line, " holds key ");
    assert_ne!(found, expected);

    // Opening with the wrong key says which key is needed: reveal, and apply (nothing recorded).
    refused_with_key(
        h,
        &other,
        &["config", "get", "api", "--env", "staging", "--reveal"],
        &[&format!("sealed with key {expected}")],
    );
    refused_with_key(
        h,
        &missing,
        &["config", "get", "api", "--env", "staging", "--reveal"],
        &["does not exist", &expected],
    );
    let gitops = crate::adapters::manifests_target(h, "api", "staging");
    refused_with_key(
        h,
        &other,
        &["apply", "api", "--env", "staging"],
        &[&format!("sealed with key {expected}")],
    );
    assert!(!gitops.join("api/staging.yaml").exists());

    // The right key still works for all of it.
    h.ok(&[
        "config", "set", "api", "--env", "staging", "--secret", "OTHER=x",
    ]);
    let config = h.json(&["config", "get", "api", "--env", "staging", "--reveal"]);
    assert_eq!(config["config"]["TOKEN"], "s3cr3t");
    assert_eq!(config["config"]["OTHER"], "x");
    assert_eq!(
        h.json(&["apply", "api", "--env", "staging"])["outcome"],
        "applied"
    );

    // The log carries the key's name: an imported copy expects the same key.
    let exported = h.ok(&["events", "export"]);
    let copy = Hoist::sled();
    let output = copy.run_with_input(&["events", "import"], exported.as_bytes());
    crate::harness::assert_success(&["events", "import"], &output);
    let line = refused_with_key(
        &copy,
        &copy.dir.path().join("secret.key"),
        &[
            "config", "set", "web", "--env", "staging", "--secret", "A=b",
        ],
        &["does not exist"],
    );
    assert_eq!(key_after(&line, "sealed with key "), expected);
}
