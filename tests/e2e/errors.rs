//! Bad input: the contract's exit code, one line naming the thing and the rule, nothing appended.

use crate::harness::{image, Hoist};

pub fn bad_input_is_rejected_and_appends_nothing(h: &Hoist) {
    let img = image("api", 'c');
    // Before the app exists.
    h.fails(
        &["deploy", "api", "--env", "staging", "--image", &img],
        1,
        &["app api does not exist"],
    );
    h.fails(&["status", "api"], 1, &["app api does not exist"]);
    h.fails(
        &["apps", "create", "Bad_Name"],
        1,
        &["app name", "DNS label"],
    );
    h.fails(
        &["apps", "create", "api", "--envs", "staging,staging"],
        1,
        &["staging", "twice"],
    );
    h.fails(
        &["apps", "create", "api", "--envs", "staging,Prod"],
        1,
        &["env name", "\"Prod\""],
    );
    h.ok(&["apps", "create", "api"]);
    h.fails(&["apps", "create", "api"], 1, &["app api already exists"]);

    // Images must be pinned by digest.
    h.fails(
        &[
            "deploy",
            "api",
            "--env",
            "staging",
            "--image",
            "registry.example/api:latest",
        ],
        1,
        &["image", "pinned by digest"],
    );
    h.fails(
        &["builds", "register", "api", "--image", "api@sha256:abc"],
        1,
        &["image", "sha256"],
    );
    h.fails(
        &["deploy", "api", "--env", "qa", "--image", &img],
        1,
        &["env qa", "pipeline", "staging, production"],
    );
    h.fails(
        &[
            "deploy",
            "api",
            "--env",
            "staging",
            "--build",
            "0123456789ab",
        ],
        1,
        &["build 0123456789ab", "not registered"],
    );
    h.fails(
        &["deploy", "api", "--env", "staging", "--build", "xyz"],
        1,
        &["build id"],
    );

    // Nothing to promote or roll back yet.
    h.fails(
        &["promote", "api", "--from", "staging"],
        1,
        &["nothing to promote"],
    );
    h.fails(
        &["rollback", "api", "--env", "staging"],
        1,
        &["nothing to roll back", "no releases"],
    );
    h.ok(&["deploy", "api", "--env", "staging", "--image", &img]);
    h.fails(
        &["rollback", "api", "--env", "staging"],
        1,
        &["nothing to roll back", "v1 is its only release"],
    );
    h.fails(
        &["rollback", "api", "--env", "staging", "--to", "v9"],
        1,
        &["no release v9", "latest is v1"],
    );
    h.fails(
        &["rollback", "api", "--env", "staging", "--to", "latest"],
        1,
        &["version", "v12"],
    );
    h.fails(
        &["promote", "api", "--from", "production"],
        1,
        &["production", "last env", "--to"],
    );
    h.fails(
        &["promote", "api", "--from", "staging", "--to", "staging"],
        1,
        &["itself"],
    );

    // Config keys and pairs.
    h.fails(
        &["config", "set", "api", "--env", "staging", "1BAD=x"],
        1,
        &["config key", "\"1BAD\"", "[A-Za-z_]"],
    );
    h.fails(
        &["config", "set", "api", "--env", "staging", "NOEQUALS"],
        1,
        &["NOEQUALS", "KEY=VALUE"],
    );
    h.fails(
        &["config", "unset", "api", "--env", "staging", "MISSING"],
        1,
        &["MISSING", "not set"],
    );
    h.fails(
        &["diff", "api", "--env", "staging", "1", "2"],
        1,
        &["no release v2"],
    );

    // Queries.
    h.fails(&["audit", "--kind", "bogus"], 1, &["kind", "deploy"]);
    h.fails(
        &["audit", "--since", "yesterday"],
        1,
        &["--since", "RFC 3339"],
    );
    h.fails(
        &["lock", "api", "--env", "staging", "--reason", " "],
        1,
        &["reason"],
    );
    h.fails(&["config", "get", "api", "--env", "nope"], 1, &["env nope"]);

    // Usage errors are exit 2.
    h.fails(&["deploy", "api", "--image", &img], 2, &["--env"]);
    h.fails(
        &[
            "deploy",
            "api",
            "--env",
            "staging",
            "--image",
            &img,
            "--build",
            "0123456789ab",
        ],
        2,
        &["cannot be used with"],
    );
    h.fails(&["deploy", "api", "--env", "staging"], 2, &["--image"]);
    h.fails(
        &["config", "set", "api", "--env", "staging"],
        2,
        &["KEY=VALUE"],
    );
    h.fails(&["frobnicate"], 2, &["frobnicate"]);
    h.fails(
        &["releases", "api", "--env", "staging", "--limit", "many"],
        2,
        &["--limit"],
    );
}

pub fn missing_secret_key_is_named(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    h.ok(&[
        "config", "set", "api", "--env", "staging", "--secret", "TOKEN=x",
    ]);
    std::fs::remove_file(h.dir.path().join("secret.key")).expect("key file exists");
    h.fails(
        &["config", "get", "api", "--env", "staging", "--reveal"],
        1,
        &["secret key file", "secret.key"],
    );
    // Without --reveal nothing needs the key.
    assert!(h
        .ok(&["config", "get", "api", "--env", "staging"])
        .contains("TOKEN=<redacted>"));
}
