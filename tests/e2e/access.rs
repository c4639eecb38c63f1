//! `hoist access`: tokens, grants and chat links on a store, run as its owner; the audit trail of
//! them; and an export carrying them into a fresh store. A token's value is printed once and is
//! found nowhere after: not in the log, the read models, `audit`, `events` or an export.

use crate::harness::{assert_no_file_contains, assert_success, Hoist};
use crate::transfer::{export, joined, lines_of, rechain};
use serde_json::{json, Value};

/// Creates the apps and a token, grants roles; returns the token's value.
fn grant_a_team(h: &Hoist) -> String {
    h.ok(&["apps", "create", "api"]);
    h.ok(&["apps", "create", "web", "--envs", "dev,production"]);
    let created = h.json(&[
        "access",
        "token",
        "create",
        "ana@example.com",
        "--name",
        "laptop",
        "--expires",
        "90d",
    ]);
    let keys: Vec<&str> = created
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["expires_at", "id", "identity", "name", "token"]);
    assert_eq!(created["identity"], "ana@example.com");
    let token = created["token"].as_str().expect("the token").to_string();
    assert!(token.starts_with("hoist_") && token.len() == 49, "{token}");
    assert!(created["expires_at"].is_string());

    for (who, role, app, env) in [
        ("ana@example.com", "deployer", Some("api"), Some("staging")),
        (
            "bo@example.com",
            "operator",
            Some("api"),
            Some("production"),
        ),
        ("cy@example.com", "viewer", None, None),
    ] {
        let mut args = vec!["access", "grant", who, "--role", role];
        args.extend(app.iter().flat_map(|a| ["--app", *a]));
        args.extend(env.iter().flat_map(|e| ["--env", *e]));
        let granted = h.json(&args);
        assert_eq!(granted["changed"], json!(true));
        assert_eq!(granted["app"], json!(app.unwrap_or("*")));
    }
    token
}

/// `access list --json` without the times (which differ from store to store only in `at`).
fn grants(h: &Hoist, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["access", "list"];
    all.extend(args);
    let listed = h.json(&all);
    listed.as_array().expect("an array").clone()
}

fn check(h: &Hoist, who: &str, action: &str, app: &str, env: Option<&str>) -> Value {
    let mut args = vec!["access", "check", who, action, "--app", app];
    args.extend(env.iter().flat_map(|e| ["--env", *e]));
    h.json(&args)
}

pub fn identities_tokens_and_roles(h: &Hoist, fresh: &Hoist) {
    let token = grant_a_team(h);

    // The human form says the token is shown once, and shows it.
    let human = h.ok(&["access", "token", "create", "ci@example.com"]);
    assert!(human.contains("shown this once"), "{human}");
    let ci_token = human
        .lines()
        .find(|l| l.starts_with("hoist_"))
        .expect("the token on a line of its own")
        .to_string();

    // Granting what is held changes nothing.
    let again = h.json(&[
        "access",
        "grant",
        "ana@example.com",
        "--role",
        "deployer",
        "--app",
        "api",
        "--env",
        "staging",
    ]);
    assert_eq!(again["changed"], json!(false));

    let listed = grants(h, &[]);
    let rows: Vec<Value> = listed
        .iter()
        .map(|g| {
            let mut g = g.clone();
            assert!(g["at"].is_string());
            g.as_object_mut().unwrap().remove("at");
            g
        })
        .collect();
    assert_eq!(
        rows,
        [
            json!({"identity": "ana@example.com", "role": "deployer", "app": "api", "env": "staging", "granted_by": "ana@example.com"}),
            json!({"identity": "bo@example.com", "role": "operator", "app": "api", "env": "production", "granted_by": "ana@example.com"}),
            json!({"identity": "cy@example.com", "role": "viewer", "app": "*", "env": "*", "granted_by": "ana@example.com"}),
        ]
    );
    let on_web: Vec<Value> = grants(h, &["--app", "web"])
        .iter()
        .map(|g| g["identity"].clone())
        .collect();
    assert_eq!(on_web, [json!("cy@example.com")]);
    assert_eq!(grants(h, &["--identity", "bo@example.com"]).len(), 1);

    // `access check`: exit 0 either way, with the reason.
    let allowed = check(h, "ana@example.com", "deploy", "api", Some("staging"));
    assert_eq!(allowed["allowed"], json!(true));
    assert!(allowed["because"]
        .as_str()
        .unwrap()
        .contains("holds deployer on api/staging"));
    let denied = check(h, "ana@example.com", "deploy", "api", Some("production"));
    assert_eq!(denied["allowed"], json!(false));
    assert_eq!(
        denied["because"],
        "ana@example.com may not deploy on api/production: that needs the deployer role there"
    );
    assert_eq!(
        check(h, "bo@example.com", "rollback", "api", Some("production"))["allowed"],
        json!(true)
    );
    assert_eq!(
        check(h, "bo@example.com", "deploy", "api", Some("production"))["allowed"],
        json!(false)
    );
    assert_eq!(
        check(h, "cy@example.com", "view", "web", None)["allowed"],
        json!(true)
    );
    assert_eq!(
        check(h, "eve@example.com", "view", "web", None)["allowed"],
        json!(false),
        "deny by default"
    );
    let human = h.ok(&[
        "access",
        "check",
        "ana@example.com",
        "deploy",
        "--app",
        "api",
        "--env",
        "production",
    ]);
    assert!(human.starts_with("denied: "), "{human}");

    // Bad input: one line naming the thing and the rule, exit 1 (2 for usage), nothing appended.
    for (args, needles) in [
        (
            &[
                "access",
                "grant",
                "eve@example.com",
                "--role",
                "viewer",
                "--app",
                "nope",
            ][..],
            &["app nope does not exist"][..],
        ),
        (
            &[
                "access",
                "grant",
                "eve@example.com",
                "--role",
                "viewer",
                "--app",
                "api",
                "--env",
                "dev",
            ],
            &["env dev is not in the pipeline of app api"],
        ),
        (
            &["access", "grant", "eve@example.com", "--role", "owner"],
            &[
                "invalid role \"owner\"",
                "viewer, deployer, operator, admin",
            ],
        ),
        (
            &["access", "grant", "", "--role", "viewer"],
            &["invalid identity"],
        ),
        (
            &["access", "revoke", "bo@example.com", "--role", "admin"],
            &[
                "bo@example.com holds no admin on every app (every env) to revoke",
                "operator on api/production",
            ],
        ),
        (
            &["access", "token", "revoke", "000000000000"],
            &["token 000000000000 does not exist"],
        ),
        (
            &["access", "token", "revoke", "nope"],
            &["invalid token id \"nope\""],
        ),
        (
            &[
                "access",
                "token",
                "create",
                "ana@example.com",
                "--expires",
                "soon",
            ],
            &["invalid --expires \"soon\""],
        ),
        (
            &["access", "link", "slack:T1", "ana@example.com"],
            &["invalid chat id \"slack:T1\"", "slack:TEAM/USER"],
        ),
        (
            &["access", "unlink", "slack:T1/U1"],
            &["chat id slack:T1/U1 is not linked"],
        ),
        (
            &["access", "check", "ana@example.com", "fly", "--app", "api"],
            &["invalid action \"fly\""],
        ),
    ] {
        h.fails(args, 1, needles);
    }
    h.fails(&["access", "grant", "eve@example.com"], 2, &["--role"]);
    h.fails(
        &["access", "check", "ana@example.com", "view"],
        2,
        &["--app"],
    );

    // Revoke a grant and a token.
    let revoked = h.json(&[
        "access",
        "revoke",
        "bo@example.com",
        "--role",
        "operator",
        "--app",
        "api",
        "--env",
        "production",
    ]);
    assert_eq!(revoked["revoked_by"], "ana@example.com");
    assert!(grants(h, &["--identity", "bo@example.com"]).is_empty());
    assert_eq!(
        check(h, "bo@example.com", "rollback", "api", Some("production"))["allowed"],
        json!(false)
    );
    let tokens = h.json(&["access", "token", "list"]);
    let ci = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["identity"] == "ci@example.com")
        .expect("ci's token is listed");
    let ci_id = ci["id"].as_str().unwrap().to_string();
    assert_eq!(ci["revoked_at"], Value::Null);
    let gone = h.json(&["access", "token", "revoke", &ci_id]);
    assert_eq!(gone["revoked_by"], "ana@example.com");
    assert!(gone["revoked_at"].is_string());
    h.fails(
        &["access", "token", "revoke", &ci_id],
        1,
        &["is already revoked"],
    );
    let listed = h.json(&["access", "token", "list", "--identity", "ci@example.com"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0]["revoked_at"].is_string());

    // Chat links.
    let linked = h.json(&["access", "link", "slack:T1/U1", "ana@example.com"]);
    assert_eq!(
        linked,
        json!({"chat_id": "slack:T1/U1", "identity": "ana@example.com", "linked": true, "changed": true})
    );
    h.fails(
        &["access", "link", "slack:T1/U1", "bo@example.com"],
        1,
        &["already linked to ana@example.com"],
    );
    h.ok(&["access", "link", "matrix:@cy:example.org", "cy@example.com"]);
    let unlinked = h.json(&["access", "unlink", "slack:T1/U1"]);
    assert_eq!(unlinked["linked"], json!(false));

    // The audit trail names every access event, made directly on the store (`via` null).
    let audit = h.json(&["audit", "--kind", "access"]);
    let entries = audit.as_array().unwrap();
    let summaries: Vec<&str> = entries
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(entries.len(), 10, "{summaries:#?}");
    for entry in entries {
        assert_eq!(entry["kind"], "access");
        assert_eq!(entry["via"], Value::Null);
        assert_eq!(entry["actor"], "ana@example.com");
    }
    assert_eq!(summaries[0], "Unlinked slack:T1/U1");
    assert!(summaries.contains(&format!("Revoked token {ci_id}").as_str()));
    assert!(summaries.contains(&"Revoked operator on api/production from bo@example.com"));
    assert!(summaries.contains(&"Granted viewer on every app (every env) to cy@example.com"));
    let releases = h.json(&["audit", "--kind", "create"]);
    assert_eq!(
        releases.as_array().unwrap().len(),
        2,
        "other kinds as before"
    );
    assert_eq!(releases[0]["via"], Value::Null);

    // The access chain is no app.
    let apps = h.json(&["apps", "list"]);
    let names: Vec<&Value> = apps.as_array().unwrap().iter().map(|a| &a["app"]).collect();
    assert_eq!(names, [&json!("api"), &json!("web")]);
    assert_eq!(h.json(&["admin", "check"])["apps"], json!(2));
    h.fails(&["apps", "create", "_access"], 1, &["invalid app name"]);

    // The token values are found nowhere: not in what hoist prints, nor in the store's bytes.
    let exported = export(h);
    for secret in [&token, &ci_token] {
        for answer in [
            String::from_utf8_lossy(&exported).to_string(),
            h.ok(&["events"]),
            h.ok(&["audit"]),
            h.ok(&["access", "token", "list", "--json"]),
        ] {
            assert!(!answer.contains(secret.as_str()), "a token value was shown");
        }
        assert_no_file_contains(h.data_dir(), secret);
        assert_no_file_contains(h.dir.path(), secret);
    }

    // Export | import into a fresh store keeps every answer about access.
    let output = fresh.run_with_input(&["events", "import", "--json"], &exported);
    assert_success(&["events", "import"], &output);
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["apps"], json!(2), "the access chain is no app");
    for args in [
        &["access", "list"][..],
        &["access", "token", "list"],
        &[
            "access",
            "check",
            "ana@example.com",
            "deploy",
            "--app",
            "api",
            "--env",
            "staging",
        ],
        &[
            "access",
            "check",
            "bo@example.com",
            "rollback",
            "--app",
            "api",
            "--env",
            "production",
        ],
        &["audit", "--kind", "access"],
        &["apps", "list"],
    ] {
        assert_eq!(fresh.json(args), h.json(args), "{args:?}");
    }
    assert_eq!(export(fresh), exported, "a second export is byte-identical");
    fresh.fails_with_input(
        &["events", "import"],
        &exported,
        1,
        &["already holds identities, tokens or grants"],
    );
}

/// An export whose access events break the access chain's rules (every hash recomputed, as a
/// forger would) is refused whole, naming the line.
pub fn forged_access_imports_are_refused(from: &Hoist, to: &Hoist) {
    grant_a_team(from);
    from.ok(&["access", "link", "slack:T1/U1", "ana@example.com"]);
    let exported = export(from);
    let lines = lines_of(&exported);
    let at = |kind: &str| {
        lines
            .iter()
            .position(|l| l["event"]["type"] == kind)
            .expect("the history has such an event")
    };
    let (grant, token, link) = (at("role_granted"), at("token_created"), at("chat_linked"));
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(usize, Edit, &[&str])> = vec![
        (
            grant,
            Box::new(|l| l["event"]["grant"]["app"] = json!("nope")),
            &["access event", "app nope does not exist"],
        ),
        (
            grant,
            Box::new(|l| l["event"]["type"] = json!("role_revoked")),
            &["holds no deployer on api/staging to revoke"],
        ),
        (
            link,
            Box::new(|l| {
                *l.get_mut("event").unwrap() =
                    json!({"type": "chat_unlinked", "chat_id": "slack:T9/U9"})
            }),
            &["chat id slack:T9/U9 is not linked"],
        ),
        (
            token,
            Box::new(|l| l["event"] = json!({"type": "token_revoked", "id": "000000000000"})),
            &["token 000000000000 does not exist"],
        ),
        (
            // An access event moved onto an app's chain.
            grant,
            Box::new(|l| l["app"] = json!("api")),
            &["access events belong on the access chain, not on api"],
        ),
        (
            // An app's event moved onto the access chain.
            0,
            Box::new(|l| l["app"] = json!("_access")),
            &["create events belong on an app's chain, not on _access"],
        ),
        (
            token,
            Box::new(|l| l["via"] = json!("api\nforged")),
            &["invalid via"],
        ),
    ];
    for (line, edit, needles) in cases {
        let mut forged = lines.clone();
        edit(&mut forged[line]);
        rechain(&mut forged);
        let mut needles = needles.to_vec();
        let named = format!("stdin line {}:", line + 1);
        needles.push(&named);
        to.fails_with_input(&["events", "import"], &joined(&forged), 1, &needles);
    }
    // An altered access event, its hash left as it was.
    let mut altered = lines.clone();
    altered[grant]["event"]["grant"]["role"] = json!("admin");
    to.fails_with_input(
        &["events", "import"],
        &joined(&altered),
        1,
        &["altered", &format!("line {}", grant + 1)],
    );
    assert_eq!(
        to.event_count(),
        0,
        "a refused import leaves the store empty"
    );
    let output = to.run_with_input(&["events", "import"], &exported);
    assert_success(&["events", "import"], &output);
}
