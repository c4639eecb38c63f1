//! `events export | events import`: full fidelity between stores, and nothing but whole,
//! untampered histories accepted.

use crate::harness::{assert_success, image, Hoist};
use serde_json::json;

/// A small history across two apps, with a secret.
pub fn write_history(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    h.ok(&["apps", "create", "web", "--envs", "dev,staging,production"]);
    h.deploy("api", "staging", &image("api", 'e'));
    h.deploy("web", "dev", &image("web", 'f'));
    h.ok(&[
        "config",
        "set",
        "api",
        "--env",
        "staging",
        "--secret",
        "TOKEN=t0ps3cret",
    ]);
    h.ok(&["config", "set", "api", "--env", "staging", "LOG=debug"]);
    h.ok(&["promote", "api", "--from", "staging"]);
    h.ok(&["promote", "web", "--from", "dev"]);
    h.ok(&["rollback", "api", "--env", "staging"]);
    h.ok(&["lock", "api", "--env", "production", "--reason", "audit"]);
}

pub fn export(h: &Hoist) -> Vec<u8> {
    let output = h.run(&["events", "export"]);
    assert_success(&["events", "export"], &output);
    output.stdout
}

/// Everything a user can ask of an app's history, for comparing two stores.
pub fn answers(h: &Hoist) -> Vec<serde_json::Value> {
    let mut answers = vec![h.json(&["apps", "list"])];
    for (app, envs) in [
        ("api", &["staging", "production"][..]),
        ("web", &["dev", "staging", "production"]),
    ] {
        answers.push(h.json(&["status", app]));
        for env in envs {
            answers.push(h.json(&["releases", app, "--env", env]));
            answers.push(h.json(&["config", "get", app, "--env", env, "--reveal"]));
        }
    }
    answers
}

pub fn export_import_round_trip(from: &Hoist, to: &Hoist) {
    write_history(from);
    import_into(from, to);
}

/// Moves `from`'s whole history into the empty `to`, and checks every answer is the same.
pub fn import_into(from: &Hoist, to: &Hoist) {
    let exported = export(from);
    assert!(
        !String::from_utf8_lossy(&exported).contains("t0ps3cret"),
        "export keeps secrets sealed"
    );
    // The target shares the source's secret key, as a migrated installation would.
    std::fs::copy(
        from.dir.path().join("secret.key"),
        to.dir.path().join("secret.key"),
    )
    .expect("copy key");
    let output = to.run_with_input(&["events", "import", "--json"], &exported);
    assert_success(&["events", "import"], &output);
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("import summary");
    assert_eq!(summary["apps"], json!(2));
    assert_eq!(
        summary["events"],
        json!(exported
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count())
    );
    assert_eq!(answers(to), answers(from));
    assert_eq!(to.json(&["audit", "verify"])["ok"], json!(true));
    assert_eq!(export(to), exported, "a second export is byte-identical");
    // Importing the same apps again is refused whole.
    to.fails_with_input(
        &["events", "import"],
        &exported,
        1,
        &["app api already exists"],
    );
}

pub fn tampered_imports_are_refused(from: &Hoist, to: &Hoist) {
    write_history(from);
    let exported = String::from_utf8(export(from)).expect("utf-8 export");
    let lines: Vec<&str> = exported.lines().collect();

    let mut altered = lines.clone();
    let forged = altered[3].replace("ana@example.com", "eve@example.com");
    assert_ne!(forged, altered[3]);
    altered[3] = &forged;
    to.fails_with_input(
        &["events", "import"],
        altered.join("\n").as_bytes(),
        1,
        &["line 4", "altered"],
    );

    let mut missing = lines.clone();
    missing.remove(2);
    to.fails_with_input(
        &["events", "import"],
        missing.join("\n").as_bytes(),
        1,
        &["hash chain", "broken"],
    );

    let mut swapped = lines.clone();
    swapped.swap(2, 4);
    to.fails_with_input(
        &["events", "import"],
        swapped.join("\n").as_bytes(),
        1,
        &["hash chain", "broken"],
    );

    let mut garbage = lines.clone();
    garbage.push("{\"not\": \"an event\"}");
    to.fails_with_input(
        &["events", "import"],
        garbage.join("\n").as_bytes(),
        1,
        &[
            &format!("line {}", lines.len() + 1),
            "not an exported event",
        ],
    );
    assert_eq!(
        to.event_count(),
        0,
        "a refused import leaves the store empty"
    );
}
