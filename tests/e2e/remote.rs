//! The remote CLI: `hoist --server URL --token T …` runs each command through `hoist serve
//! --listen`, as the token's identity under its roles. The answers are the local CLI's, byte for
//! byte (JSON and human text), the exit codes too; a refused command exits 5 and appends
//! nothing; the audit trail names the identities, `via` the API; a revoked token stops at once.

use crate::api::{http, start_api};
use crate::harness::{image, Hoist};
use crate::serve::sigterm;

/// A token for `identity` with `role` on `app` (and `env`, when given).
fn token_for(
    h: &Hoist,
    identity: &str,
    role: &str,
    app: &str,
    env: Option<&str>,
) -> (String, String) {
    let created = h.json(&["access", "token", "create", identity]);
    let mut grant = vec!["access", "grant", identity, "--role", role, "--app", app];
    if let Some(env) = env {
        grant.extend(["--env", env]);
    }
    h.ok(&grant);
    (
        created["token"].as_str().unwrap().to_string(),
        created["id"].as_str().unwrap().to_string(),
    )
}

/// Runs `args` remotely as `who`, expecting exit 5 (not allowed) and nothing appended.
fn refused(owner: &Hoist, who: &Hoist, args: &[&str]) {
    let before = owner.event_count();
    let output = who.run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "hoist {args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(output.stdout.is_empty());
    assert_eq!(
        owner.event_count(),
        before,
        "hoist {args:?} refused but appended"
    );
}

pub fn a_team_works_through_the_server(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    h.ok(&[
        "deploy",
        "api",
        "--env",
        "staging",
        "--image",
        &image("api", 'a'),
    ]);
    h.ok(&["promote", "api", "--from", "staging"]);
    let (dee, dee_id) = token_for(h, "dee@example.com", "deployer", "api", Some("staging"));
    let (opa, _) = token_for(h, "opa@example.com", "operator", "api", Some("production"));
    let (vic, _) = token_for(h, "vic@example.com", "viewer", "api", None);
    let (mut serve, port) = start_api(h, "serve-remote.log");
    let url = format!("http://127.0.0.1:{port}");
    let (dee, opa, vic) = (
        h.through_server(&url, &dee),
        h.through_server(&url, &opa),
        h.through_server(&url, &vic),
    );

    // The deployer ships to staging, and nothing else.
    let released = dee.json(&[
        "deploy",
        "api",
        "--env",
        "staging",
        "--image",
        &image("api", 'b'),
    ]);
    assert_eq!(released["actor"], "dee@example.com", "{released}");
    assert_eq!(released["version"], 2);
    refused(
        h,
        &dee,
        &[
            "deploy",
            "api",
            "--env",
            "production",
            "--image",
            &image("api", 'c'),
        ],
    );
    refused(h, &dee, &["rollback", "api", "--env", "staging"]);
    refused(
        h,
        &dee,
        &["lock", "api", "--env", "staging", "--reason", "mine"],
    );
    refused(
        h,
        &dee,
        &["access", "grant", "dee@example.com", "--role", "admin"],
    );
    h.ok(&["promote", "api", "--from", "staging"]);

    // The operator rolls production back and locks it, but cannot deploy.
    opa.ok(&[
        "lock",
        "api",
        "--env",
        "production",
        "--reason",
        "incident 42",
    ]);
    let rolled = opa.json(&["rollback", "api", "--env", "production"]);
    assert_eq!(rolled["kind"], "rollback", "{rolled}");
    refused(
        h,
        &opa,
        &[
            "deploy",
            "api",
            "--env",
            "production",
            "--image",
            &image("api", 'd'),
        ],
    );
    opa.ok(&["unlock", "api", "--env", "production"]);

    // The viewer reads what the owner reads, byte for byte, and changes nothing.
    for args in [
        &["status", "api"][..],
        &["releases", "api", "--env", "staging"][..],
        &["diff", "api", "--env", "staging", "1", "2"][..],
        &["apps", "show", "api"][..],
    ] {
        for json in [false, true] {
            let with = |args: &[&str]| {
                let mut all = args.to_vec();
                if json {
                    all.insert(0, "--json");
                }
                all.iter().map(|a| a.to_string()).collect::<Vec<_>>()
            };
            let args = with(args);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(
                vic.ok(&args),
                h.ok(&args),
                "hoist {args:?}: remote and local differ"
            );
        }
    }
    refused(
        h,
        &vic,
        &[
            "deploy",
            "api",
            "--env",
            "staging",
            "--image",
            &image("api", 'e'),
        ],
    );
    refused(
        h,
        &vic,
        &["config", "get", "api", "--env", "staging", "--reveal"],
    );
    // A rejection is the local one: same line, same exit code.
    let remote = vic.run(&["releases", "api", "--env", "qa"]);
    let local = h.run(&["releases", "api", "--env", "qa"]);
    assert_eq!(remote.status.code(), Some(1));
    assert_eq!(remote.stderr, local.stderr);

    // The audit trail names who did what, through the API; `--actor` is ignored there.
    // The rollback's commit pins production too (issue 16): one more entry of opa's.
    let audit = h.json(&["audit", "--app", "api", "--limit", "5"]);
    let actors: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["via"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        actors,
        [
            ("opa@example.com", "api"),
            ("opa@example.com", "api"),
            ("opa@example.com", "api"),
            ("opa@example.com", "api"),
            ("ana@example.com", "-"),
        ],
        "{audit}"
    );
    let spoofed = dee.json(&[
        "--actor",
        "boss@example.com",
        "deploy",
        "api",
        "--env",
        "staging",
        "--image",
        &image("api", 'f'),
    ]);
    assert_eq!(spoofed["actor"], "dee@example.com");

    // A revoked token stops working at once.
    h.ok(&["access", "token", "revoke", &dee_id]);
    refused(h, &dee, &["status", "api"]);

    sigterm(&mut serve);
}

/// Two `serve` instances on one log answer the same; 200 clients at once are all answered; a
/// token revoked through one is refused by both at once.
pub fn two_servers_answer_the_same_to_200_clients(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    h.ok(&[
        "deploy",
        "api",
        "--env",
        "staging",
        "--image",
        &image("api", 'a'),
    ]);
    let (token, id) = token_for(h, "ana@example.com", "viewer", "api", None);
    let (mut first, a) = start_api(h, "serve-a.log");
    let (mut second, b) = start_api(h, "serve-b.log");
    let bearer = format!("Bearer {token}");
    let status = |port: u16| {
        http(
            port,
            "GET",
            "/v1/apps/api/status",
            &[("Authorization", bearer.as_str())],
            None,
        )
    };
    let expected = h.ok(&["--json", "status", "api"]);
    assert_eq!(status(a).body, expected);
    assert_eq!(status(b).body, expected);

    let answers: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..200)
            .map(|i| scope.spawn(move || status(if i % 2 == 0 { a } else { b })))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for reply in &answers {
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, expected.as_str())
        );
    }

    h.ok(&["access", "token", "revoke", &id]);
    status(a).error(401, "unauthenticated");
    status(b).error(401, "unauthenticated");
    sigterm(&mut first);
    sigterm(&mut second);
}
