//! Locking down NATS (`deploy/nats/locked-down.conf`): only hoist serve's NATS user may use the
//! stream. Another user of the server is refused by the server itself; hoist says so in one line,
//! exits 5 (not allowed), and nothing is appended.

use crate::harness::Hoist;
use crate::nats_server::NatsServer;

/// The shipped config, its passwords given (the file reads them from the environment).
fn locked_down_server() -> (NatsServer, tempfile::TempDir) {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nats/locked-down.conf"
    ))
    .expect("the shipped config");
    let conf = shipped
        .replace("$HOIST_SERVE_NATS_PASSWORD", "\"serve-secret\"")
        .replace("$HOIST_OBSERVER_NATS_PASSWORD", "\"observer-secret\"")
        // The test's own store dir and ports come from the harness's flags.
        .replace("store_dir: /var/lib/hoist-nats", "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked-down.conf");
    std::fs::write(&path, conf).unwrap();
    (
        NatsServer::start_with_args(&["-c", path.to_str().unwrap()]),
        dir,
    )
}

fn as_user(server: &NatsServer, user: &str, password: &str) -> Hoist {
    let url = format!("nats://{user}:{password}@127.0.0.1:{}", server.port());
    Hoist::nats(&url, "HOIST", &server.store_dir())
}

pub fn only_hoist_serves_user_may_append() {
    let (server, _conf) = locked_down_server();
    let serve = as_user(&server, "hoist-serve", "serve-secret");
    serve.ok(&["apps", "create", "api"]);
    let before = serve.ok(&["events"]);

    let observer = as_user(&server, "observer", "observer-secret");
    for args in [
        &["lock", "api", "--env", "production", "--reason", "mine now"][..],
        &["apps", "create", "web"][..],
        &["status", "api"][..],
    ] {
        // `fails` would count the events as the observer, who may not read them either.
        let output = observer.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(5), "hoist {args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(output.stdout.is_empty());
        for needle in [
            "does not let this user use hoist's stream",
            "Permissions Violation",
        ] {
            assert!(stderr.contains(needle), "hoist {args:?}: {stderr}");
        }
        assert!(!stderr.contains("observer-secret"), "{stderr}");
    }
    assert_eq!(serve.ok(&["events"]), before, "nothing appended");
}
