//! `hoist serve` as a user runs it: it picks up a release by itself within a second while other
//! commands keep working on the same embedded store, survives `kill -9` between applying and
//! recording (the restart re-applies as a no-op and records once), and stops cleanly on SIGTERM.

use crate::harness::{image, Hoist};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Polls `condition` every 20 ms until it holds, or panics naming `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_serve(h: &Hoist, env: &[(&str, &Path)]) -> Child {
    let mut command = h.command(&["serve", "--resync", "60s"]);
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(h.dir.path().join("serve.log")).unwrap())
        .spawn()
        .expect("hoist serve starts")
}

fn rollouts(h: &Hoist) -> Vec<Value> {
    h.ok(&["events"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("an event line"))
        .filter(|e| e["event"]["type"] == "rollout_recorded")
        .collect()
}

fn sigterm(child: &mut Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = wait_for("serve to stop on SIGTERM", Duration::from_secs(10), || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Returns the measured delay from `deploy` returning to the hook starting.
pub fn serve_picks_up_a_new_release_by_itself(h: &Hoist) -> Duration {
    let started_at = h.dir.path().join("hook-started");
    let script = format!("date +%s.%N > {}", started_at.display());
    h.ok(&["apps", "create", "api"]);
    h.ok(&[
        "envs", "target", "api", "--env", "staging", "--exec", &script,
    ]);
    let mut serve = start_serve(h, &[]);
    // The CLI keeps working while serve runs (it reads and writes the same store meanwhile).
    wait_for(
        "serve to log that it serves",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(h.dir.path().join("serve.log"))
                .ok()
                .filter(|l| l.contains("serving"))
        },
    );
    h.ok(&[
        "deploy",
        "api",
        "--env",
        "staging",
        "--image",
        &image("api", '1'),
    ]);
    let deployed = now_secs();
    let hook_started: f64 = wait_for("the hook to run", Duration::from_secs(10), || {
        std::fs::read_to_string(&started_at)
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    let delay = Duration::from_secs_f64((hook_started - deployed).max(0.0));
    let recorded = wait_for(
        "the outcome to be recorded",
        Duration::from_secs(10),
        || {
            let r = rollouts(h);
            (!r.is_empty()).then_some(r)
        },
    );
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["event"]["outcome"], "applied");
    assert_eq!(recorded[0]["actor"], "hoist");
    let status = h.json(&["status", "api"]);
    assert_eq!(status["envs"]["staging"]["applied_version"], 1);
    sigterm(&mut serve);
    assert!(rollouts(h).len() == 1, "applied once, not again");
    eprintln!("serve: deploy returned → hook started in {delay:?}");
    assert!(
        delay < Duration::from_secs(1),
        "applied within a second: {delay:?}"
    );
    delay
}

pub fn serve_killed_between_apply_and_record_records_once(h: &Hoist) {
    let dir = h.dir.path().join("gitops");
    let marker = h.dir.path().join("applied-not-recorded");
    h.ok(&["apps", "create", "api"]);
    h.ok(&[
        "envs",
        "target",
        "api",
        "--env",
        "production",
        "--manifests",
        &dir.display().to_string(),
    ]);
    let mut serve = start_serve(h, &[("HOIST_TEST_PAUSE_AFTER_APPLY", &marker)]);
    h.ok(&[
        "deploy",
        "api",
        "--env",
        "production",
        "--image",
        &image("api", '2'),
    ]);
    wait_for("serve to apply v1", Duration::from_secs(20), || {
        marker.exists().then_some(())
    });
    let file = dir.join("api/production.yaml");
    let mtime = std::fs::metadata(&file)
        .expect("v1 written")
        .modified()
        .unwrap();
    serve.kill().expect("kill -9 serve"); // SIGKILL: no cleanup, no outcome recorded
    serve.wait().unwrap();
    assert!(rollouts(h).is_empty(), "killed before recording");

    let mut serve = start_serve(h, &[]);
    let recorded = wait_for(
        "the restarted serve to record",
        Duration::from_secs(20),
        || {
            let r = rollouts(h);
            (!r.is_empty()).then_some(r)
        },
    );
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["event"]["version"], 1);
    let detail = recorded[0]["event"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("unchanged "),
        "re-applied as a no-op: {detail}"
    );
    assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), mtime);
    sigterm(&mut serve);
    assert_eq!(rollouts(h).len(), 1, "recorded once");
}
