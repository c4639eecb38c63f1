//! Issue 14, Heroku's formation, from the real CLI binary: process types of a build (flags and a
//! Procfile), `ps` and `ps scale` (an event, not a release), domains, what the manifests and exec
//! targets get, the same through `--server`, every bad input refused on one line with nothing
//! appended; and on a cluster (the API-server stand-in): the release phase gating the
//! Deployments, a rollback running it again, scale reaching the cluster without a new version,
//! a process type a new build dropped garbage-collected.

use crate::adapters::kubernetes_validate;
use crate::harness::{image, wait_for, Hoist};
use serde_json::{json, Value};
use std::time::Duration;

const PROCFILE: &str =
    "# the app's processes\nweb: bin/server --port $PORT\nworker: bin/jobs\nrelease: bin/migrate\n";

/// Registers a two-process build with a release phase from a Procfile; returns its id.
fn two_process_build(h: &Hoist, app: &str, hex: char) -> String {
    let procfile = h.dir.path().join("Procfile");
    std::fs::write(&procfile, PROCFILE).unwrap();
    let registered = h.json(&[
        "builds",
        "register",
        app,
        "--image",
        &image(app, hex),
        "--procfile",
        procfile.to_str().unwrap(),
    ]);
    registered["id"].as_str().unwrap().to_string()
}

pub fn processes_scale_and_domains_from_the_cli(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    // A bare image keeps its old shape: one web process with the image's entrypoint.
    let bare = h.json(&["builds", "register", "api", "--image", &image("api", '1')]);
    assert_eq!(bare["processes"], json!({"web": null}));
    assert_eq!(bare["release_command"], Value::Null);
    let id = two_process_build(h, "api", '1');
    let registered = h.json(&[
        "builds",
        "register",
        "api",
        "--image",
        &image("api", '1'),
        "--process",
        "web=bin/server --port $PORT",
        "--process",
        "worker=bin/jobs",
        "--release-command",
        "bin/migrate",
    ]);
    assert_eq!(
        registered,
        json!({"app": "api", "id": id, "image": image("api", '1'), "commit": null, "note": null,
            "registered": false,
            "processes": {"web": "bin/server --port $PORT", "worker": "bin/jobs"},
            "release_command": "bin/migrate"}),
        "the same processes by flags are the same build"
    );
    h.ok(&["deploy", "api", "--env", "staging", "--build", &id]);
    assert_eq!(
        h.json(&["ps", "api", "--env", "staging"]),
        json!([
            {"type": "web", "command": "bin/server --port $PORT", "replicas": 1, "ready": null},
            {"type": "worker", "command": "bin/jobs", "replicas": 1, "ready": null},
        ])
    );

    // Scale: an event of kind `scale`, no new release; kept across a promotion's own env and a
    // rollback.
    let scaled = h.json(&[
        "ps", "scale", "api", "--env", "staging", "web=3", "worker=0",
    ]);
    assert_eq!(scaled[0]["replicas"], 3);
    assert_eq!(scaled[1]["replicas"], 0);
    assert_eq!(
        h.json(&["releases", "api", "--env", "staging"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let audit = h.json(&["audit", "--kind", "scale"]);
    assert_eq!(audit[0]["summary"], "Scaled staging: web=3, worker=0");
    h.ok(&["promote", "api", "--from", "staging"]);
    let production = h.json(&["ps", "api", "--env", "production"]);
    assert_eq!(production[0]["replicas"], 1, "the target env's own scale");
    assert_eq!(
        production[1]["command"], "bin/jobs",
        "promotion carries the processes"
    );
    h.deploy("api", "staging", &image("api", '2'));
    h.ok(&["rollback", "api", "--env", "staging"]);
    assert_eq!(
        h.ok(&["diff", "api", "--env", "staging", "1", "2"]),
        format!(
            "image: {} → {}\n~ process web: \"bin/server --port \\$PORT\" → (image entrypoint)\n- process worker: bin/jobs\nrelease command: bin/migrate → none\n",
            image("api", '1'),
            image("api", '2')
        ),
        "diff names the processes and the release command"
    );
    let rolled_back = h.json(&["ps", "api", "--env", "staging"]);
    assert_eq!(rolled_back[0]["replicas"], 3, "a rollback keeps the scale");
    assert_eq!(
        rolled_back[1]["type"], "worker",
        "and brings back v1's processes"
    );

    // Domains.
    assert_eq!(
        h.json(&[
            "domains",
            "add",
            "api",
            "--env",
            "production",
            "api.example.com"
        ]),
        json!(["api.example.com"])
    );
    h.ok(&[
        "domains",
        "add",
        "api",
        "--env",
        "production",
        "*.api.example.com",
    ]);
    assert_eq!(
        h.json(&["domains", "list", "api", "--env", "production"]),
        json!(["*.api.example.com", "api.example.com"])
    );
    h.ok(&["apps", "create", "web"]);

    // Bad input: exit 1, one line naming the rule, nothing appended.
    let procfile = h.dir.path().join("Procfile.bad");
    std::fs::write(&procfile, "web: a\nweb: b\n").unwrap();
    let bad_procfile = procfile.to_str().unwrap();
    let junk = h.dir.path().join("Procfile.junk");
    std::fs::write(&junk, "web: a\n\nthis is not a process\n").unwrap();
    let junk = junk.to_str().unwrap();
    let img = image("api", '3');
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "builds",
                "register",
                "api",
                "--image",
                &img,
                "--procfile",
                bad_procfile,
            ],
            "Procfile line 2: process type web is declared twice (first on line 1)",
        ),
        (
            vec![
                "builds",
                "register",
                "api",
                "--image",
                &img,
                "--procfile",
                junk,
            ],
            "Procfile line 3: expected `TYPE: COMMAND`",
        ),
        (
            vec![
                "builds",
                "register",
                "api",
                "--image",
                &img,
                "--process",
                "Web_1=x",
            ],
            "invalid process type \"Web_1\"",
        ),
        (
            vec![
                "builds",
                "register",
                "api",
                "--image",
                &img,
                "--process",
                "web=",
            ],
            "the command of process type web: must not be empty",
        ),
        (
            vec![
                "builds",
                "register",
                "api",
                "--image",
                &img,
                "--process",
                "web",
            ],
            "must be TYPE=CMD",
        ),
        (
            vec![
                "builds",
                "register",
                "api",
                "--image",
                &img,
                "--process",
                "release=bin/x",
            ],
            "other than `release`",
        ),
        (
            vec!["ps", "scale", "api", "--env", "staging", "web=-1"],
            "invalid scale web=-1: N must be a whole number from 0 to 10000",
        ),
        (
            vec!["ps", "scale", "api", "--env", "staging", "web=abc"],
            "invalid scale web=abc",
        ),
        (
            vec!["ps", "scale", "api", "--env", "staging", "clock=1"],
            "the current build has no process type clock (it has web, worker)",
        ),
        (
            vec![
                "domains",
                "add",
                "api",
                "--env",
                "staging",
                "api.example.com",
            ],
            "domain api.example.com is already routed to api/production",
        ),
        (
            vec![
                "domains",
                "add",
                "web",
                "--env",
                "staging",
                "api.example.com",
            ],
            "domain api.example.com is already routed to another app",
        ),
        (
            vec![
                "domains",
                "add",
                "api",
                "--env",
                "production",
                "api.example.com",
            ],
            "api/production: api.example.com is already one of its domains",
        ),
        (
            vec![
                "domains",
                "add",
                "api",
                "--env",
                "staging",
                "a.*.example.com",
            ],
            "invalid host \"a.*.example.com\"",
        ),
        (
            vec!["domains", "add", "api", "--env", "staging", "Bad_Host"],
            "must be an RFC 1123 host name",
        ),
        (
            vec![
                "domains",
                "remove",
                "api",
                "--env",
                "staging",
                "nope.example.com",
            ],
            "is not one of its domains",
        ),
        (
            vec![
                "envs",
                "target",
                "api",
                "--env",
                "staging",
                "--kube",
                "--health-path",
                "healthz",
            ],
            "--health-path must be an absolute URL path",
        ),
    ];
    for (args, needle) in &cases {
        h.fails(args, 1, &[needle]);
    }
}

/// The manifests target writes every object of a two-process app with a release phase, a
/// domain, TLS and a health path; the exec target's JSON names what runs.
pub fn manifests_and_exec_targets_get_the_formation(h: &Hoist) {
    h.ok(&["apps", "create", "shop"]);
    let id = two_process_build(h, "shop", 'c');
    h.ok(&["deploy", "shop", "--env", "production", "--build", &id]);
    h.ok(&[
        "config",
        "set",
        "shop",
        "--env",
        "production",
        "--secret",
        "DB_PASSWORD=hunter2",
    ]);
    h.ok(&["ps", "scale", "shop", "--env", "production", "web=2"]);
    h.ok(&[
        "domains",
        "add",
        "shop",
        "--env",
        "production",
        "shop.example.com",
    ]);
    let dir = h.dir.path().join("gitops");
    h.ok(&[
        "envs",
        "target",
        "shop",
        "--env",
        "production",
        "--manifests",
        dir.to_str().unwrap(),
        "--ingress-class",
        "nginx",
        "--tls-secret",
        "shop-tls",
        "--health-path",
        "/healthz",
    ]);
    assert_eq!(
        h.json(&["apply", "shop", "--env", "production"])["outcome"],
        "applied"
    );
    let file = dir.join("shop/production.yaml");
    let written = std::fs::read_to_string(&file).unwrap();
    expect_test::expect_file!["snapshots/shop-production-formation.yaml"].assert_eq(&written);
    kubernetes_validate(&file);
    crate::harness::assert_no_file_contains(&dir, "hunter2");

    // A scale change reaches the directory under the same version.
    h.ok(&["ps", "scale", "shop", "--env", "production", "worker=4"]);
    assert_eq!(
        h.json(&["apply", "shop", "--env", "production"])["version"],
        2
    );
    let rescaled = std::fs::read_to_string(&file).unwrap();
    assert!(rescaled.contains("replicas: 4"), "{rescaled}");

    // exec: the release JSON gains formation, domains and release_command.
    let out = h.dir.path().join("stdin.json");
    let hook = format!("cat > {}", out.display());
    h.ok(&[
        "envs",
        "target",
        "shop",
        "--env",
        "production",
        "--exec",
        &hook,
    ]);
    let planned = h.json(&["apply", "shop", "--env", "production", "--dry-run"]);
    assert_eq!(
        planned["stdin"]["release_command"], "bin/migrate",
        "{planned}"
    );
    h.ok(&["apply", "shop", "--env", "production"]);
    let stdin: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        stdin["formation"],
        json!([{"type": "web", "command": "bin/server --port $PORT", "replicas": 2},
            {"type": "worker", "command": "bin/jobs", "replicas": 4}])
    );
    assert_eq!(stdin["domains"], json!(["shop.example.com"]));
    assert_eq!(stdin["release_command"], "bin/migrate");
}

/// The kube target: release phase, scale, domains and garbage collection against the stand-in.
pub fn kube_formation(h: &Hoist) {
    let server = crate::kube::with_cluster(h);
    h.ok(&["apps", "create", "api"]);
    h.ok(&[
        "envs",
        "target",
        "api",
        "--env",
        "production",
        "--kube",
        "--health-path",
        "/healthz",
        "--ingress-class",
        "nginx",
    ]);
    let v1 = two_process_build(h, "api", '1');
    h.ok(&["deploy", "api", "--env", "production", "--build", &v1]);
    h.ok(&[
        "domains",
        "add",
        "api",
        "--env",
        "production",
        "api.example.com",
    ]);
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
    let detail = applied["detail"].as_str().unwrap();
    assert!(detail.starts_with("deployment api successfully rolled out, deployment api-worker successfully rolled out; release phase job api-release-v1 completed; applied "), "{detail}");
    assert_eq!(server.jobs_created(), ["api-release-v1"]);
    let deployment = |name: &str| server.get("deployments", "production", name);
    let web = deployment("api").expect("web keeps the app's name");
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["command"],
        json!(["/bin/sh", "-c", "bin/server --port $PORT"])
    );
    assert_eq!(container["env"], json!([{"name": "PORT", "value": "8080"}]));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert!(deployment("api-worker").is_some());
    let service = server
        .get("services", "production", "api")
        .expect("web's Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let ingress = server
        .get("ingresses", "production", "api")
        .expect("an Ingress");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "api.example.com");

    // Scale reaches the cluster without a new release version, and without a second release
    // phase; `ps` shows the ready replicas.
    h.ok(&["ps", "scale", "api", "--env", "production", "web=3"]);
    let rescaled = h.json(&["apply", "api", "--env", "production", "--wait"]);
    assert_eq!(
        (rescaled["version"].clone(), rescaled["outcome"].clone()),
        (json!(1), json!("healthy"))
    );
    assert_eq!(deployment("api").unwrap()["spec"]["replicas"], 3);
    assert_eq!(
        server.jobs_created(),
        ["api-release-v1"],
        "a scale change runs no release phase"
    );
    wait_for(
        "ps to show 3 ready web replicas",
        Duration::from_secs(10),
        || {
            let ps = h.json(&["ps", "api", "--env", "production"]);
            (ps[0]["ready"] == 3 && ps[1]["ready"] == 1).then_some(())
        },
    );
    assert_eq!(
        h.json(&["releases", "api", "--env", "production"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A failed release phase: outcome failed with the reason, the Deployments untouched.
    let procfile = h.dir.path().join("Procfile.v2");
    std::fs::write(
        &procfile,
        "web: bin/server\nworker: bin/jobs\nrelease: bin/migrate --broken\n",
    )
    .unwrap();
    server.fail_command("bin/migrate --broken");
    let v2 = h.json(&[
        "builds",
        "register",
        "api",
        "--image",
        &image("api", '2'),
        "--procfile",
        procfile.to_str().unwrap(),
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.ok(&["deploy", "api", "--env", "production", "--build", &v2]);
    let output = h.run(&["apply", "api", "--env", "production", "--wait", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let failed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(failed["outcome"], "failed");
    assert!(failed["detail"].as_str().unwrap().starts_with(
        "release phase failed: job api-release-v2: BackoffLimitExceeded: Job has reached the specified backoff limit; the Deployments were left as they were"),
        "{failed}");
    let image_of = |name: &str| {
        deployment(name).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"].clone()
    };
    assert_eq!(
        image_of("api"),
        json!(image("api", '1')),
        "the previous release keeps serving"
    );
    assert_eq!(image_of("api-worker"), json!(image("api", '1')));
    assert_eq!(
        h.json(&["status", "api"])["envs"]["production"]["health"],
        "failed"
    );

    // A rollback runs the release phase again (its own Job), then rolls the Deployments.
    h.ok(&["rollback", "api", "--env", "production", "--to", "1"]);
    let rolled = h.json(&["apply", "api", "--env", "production", "--wait"]);
    assert_eq!(rolled["outcome"], "healthy", "{rolled}");
    assert_eq!(
        server.jobs_created(),
        ["api-release-v1", "api-release-v2", "api-release-v3"]
    );
    assert_eq!(
        deployment("api").unwrap()["spec"]["replicas"],
        3,
        "the scale is kept"
    );

    // A build without the worker: its Deployment is garbage-collected; without a release
    // command no Job runs.
    h.ok(&[
        "builds",
        "register",
        "api",
        "--image",
        &image("api", '4'),
        "--process",
        "web=bin/server",
    ]);
    h.ok(&[
        "deploy",
        "api",
        "--env",
        "production",
        "--image",
        &image("api", '4'),
    ]);
    let dropped = h.json(&["apply", "api", "--env", "production", "--wait"]);
    assert_eq!(dropped["outcome"], "healthy", "{dropped}");
    assert!(
        dropped["detail"]
            .as_str()
            .unwrap()
            .contains("deleted Deployment/api-worker"),
        "{dropped}"
    );
    assert_eq!(server.names("deployments", "production"), ["api"]);
    assert_eq!(server.jobs_created().len(), 3);
    assert_eq!(image_of("api"), json!(image("api", '4')));
    // The last domain removed: the Ingress goes too.
    h.ok(&[
        "domains",
        "remove",
        "api",
        "--env",
        "production",
        "api.example.com",
    ]);
    h.ok(&["apply", "api", "--env", "production"]);
    assert!(server.get("ingresses", "production", "api").is_none());
    assert!(server.get("services", "production", "api").is_some());
}

/// The same commands through `hoist serve --listen` and `--server`: the answers are the local
/// CLI's.
pub fn formation_through_the_server(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    let id = two_process_build(h, "api", '1');
    h.ok(&["deploy", "api", "--env", "staging", "--build", &id]);
    let token = h.json(&["access", "token", "create", "ana@example.com"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    h.ok(&[
        "access",
        "grant",
        "ana@example.com",
        "--role",
        "deployer",
        "--app",
        "api",
    ]);
    let (mut serve, port) = crate::api::start_api(h, "serve-formation.log");
    let remote = h.through_server(&format!("http://127.0.0.1:{port}"), &token);
    let local_ps = h.ok(&["ps", "api", "--env", "staging"]);
    assert_eq!(remote.ok(&["ps", "api", "--env", "staging"]), local_ps);
    let scaled = remote.json(&["ps", "scale", "api", "--env", "staging", "worker=2"]);
    assert_eq!(scaled[1]["replicas"], 2);
    assert_eq!(h.json(&["audit", "--kind", "scale"])[0]["via"], "api");
    assert_eq!(
        remote.json(&[
            "domains",
            "add",
            "api",
            "--env",
            "staging",
            "api.example.com"
        ]),
        json!(["api.example.com"])
    );
    remote.fails(
        &["ps", "scale", "api", "--env", "staging", "web=-1"],
        1,
        &["invalid scale web=-1"],
    );
    remote.fails(
        &[
            "domains",
            "add",
            "api",
            "--env",
            "staging",
            "api.example.com",
        ],
        1,
        &["already one of its domains"],
    );
    let registered = remote.json(&[
        "builds",
        "register",
        "api",
        "--image",
        &image("api", '2'),
        "--process",
        "web=bin/web",
        "--release-command",
        "bin/migrate",
    ]);
    assert_eq!(registered["processes"], json!({"web": "bin/web"}));
    assert_eq!(registered["release_command"], "bin/migrate");
    assert_eq!(
        remote.json(&[
            "domains",
            "remove",
            "api",
            "--env",
            "staging",
            "api.example.com"
        ]),
        json!([])
    );
    crate::serve::sigterm(&mut serve);
}

/// `serve` applies a scale change by itself, under the same version (CLI.md: "applied by the
/// reconciler"), and a domain change too; the exec hook sees the new formation. Returns how long
/// after `ps scale` returned the hook saw the new count.
pub fn serve_applies_a_scale_change_under_the_same_version(h: &Hoist) -> Duration {
    use crate::serve::{rollouts, serve_log, start_serve_logging_to};
    h.ok(&["apps", "create", "api"]);
    let id = two_process_build(h, "api", '1');
    h.ok(&["deploy", "api", "--env", "staging", "--build", &id]);
    let seen = h.dir.path().join("seen.json");
    let hook = format!("cat > {0}.tmp && mv {0}.tmp {0}", seen.display());
    h.ok(&["envs", "target", "api", "--env", "staging", "--exec", &hook]);
    let mut serve = start_serve_logging_to(h, "serve-scale.log", &[]);
    let read = || -> Option<Value> { serde_json::from_slice(&std::fs::read(&seen).ok()?).ok() };
    wait_for("serve to apply v1", Duration::from_secs(20), || {
        read().filter(|s| s["version"] == 1)
    });
    h.ok(&["ps", "scale", "api", "--env", "staging", "worker=3"]);
    let scaled = std::time::Instant::now();
    let applied = wait_for("serve to apply the scale", Duration::from_secs(20), || {
        read().filter(|s| s["formation"][1]["replicas"] == 3)
    });
    let delay = scaled.elapsed();
    assert_eq!(applied["version"], 1, "the same version: {applied}");
    h.ok(&[
        "domains",
        "add",
        "api",
        "--env",
        "staging",
        "api.example.com",
    ]);
    wait_for("serve to apply the domain", Duration::from_secs(20), || {
        read().filter(|s| s["domains"] == json!(["api.example.com"]))
    });
    wait_for("three outcomes recorded", Duration::from_secs(20), || {
        (rollouts(h).len() == 3).then_some(())
    });
    assert_eq!(
        h.json(&["releases", "api", "--env", "staging"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    crate::serve::sigterm(&mut serve);
    let log = serve_log(h, "serve-scale.log");
    assert!(log.contains("reconciled version=1"), "{log}");
    eprintln!("serve: ps scale returned → hook saw the new count in {delay:?}");
    delay
}
