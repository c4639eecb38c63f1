//! `hoist serve` as a user runs it: it picks up a release by itself within a second while other
//! commands keep working on the same embedded store, survives `kill -9` between applying and
//! recording (the restart re-applies as a no-op and records once), and stops cleanly on SIGTERM.

use crate::harness::{image, wait_for, Hoist};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn start_serve(h: &Hoist, env: &[(&str, &Path)]) -> Child {
    start_serve_logging_to(h, "serve.log", env)
}

/// `hoist serve` with its stderr in `log` (under the test's dir).
pub(crate) fn start_serve_logging_to(h: &Hoist, log: &str, env: &[(&str, &Path)]) -> Child {
    let mut command = h.command(&["serve", "--resync", "60s"]);
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(h.dir.path().join(log)).unwrap())
        .spawn()
        .expect("hoist serve starts")
}

pub(crate) fn serve_log(h: &Hoist, log: &str) -> String {
    std::fs::read_to_string(h.dir.path().join(log)).unwrap_or_default()
}

/// Waits until the serve logging to `log` serves and has finished its startup resync.
pub(crate) fn wait_resynced(h: &Hoist, log: &str) {
    wait_for(
        &format!("{log}: serving, first resync done"),
        Duration::from_secs(20),
        || serve_log(h, log).contains("resynced").then_some(()),
    );
}

pub(crate) fn rollouts(h: &Hoist) -> Vec<Value> {
    h.ok(&["events"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("an event line"))
        .filter(|e| e["event"]["type"] == "rollout_recorded")
        .collect()
}

/// Waits until the serve logging to `log` says it serves: past its start, where a SIGTERM would
/// still find the default action.
pub(crate) fn wait_serving(log: &std::path::Path) {
    wait_for(
        "serve to log that it serves",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(log)
                .ok()
                .filter(|l| l.contains("serving"))
        },
    );
}

pub(crate) fn sigterm(child: &mut Child) {
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
    wait_serving(&h.dir.path().join("serve.log"));
    h.deploy("api", "staging", &image("api", '1'));
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
    let log = serve_log(h, "serve.log");
    assert!(
        !log.contains('\x1b'),
        "no colour codes in a log file:\n{log}"
    );
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
    h.deploy("api", "production", &image("api", '2'));
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
    // On NATS the killed serve's claim on the env lapses first (nats_work::CLAIM_TTL, 15 s).
    let recorded = wait_for(
        "the restarted serve to record",
        Duration::from_secs(40),
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

/// An exec hook that appends `ENV vVERSION TIME` to `file` when it starts.
pub(crate) fn appending_hook(file: &Path) -> String {
    format!(
        r#"echo "$HOIST_ENV v$HOIST_VERSION $(date +%s.%N)" >> {}"#,
        file.display()
    )
}

/// The lines of the apply file, as `(env version, start time)`.
pub(crate) fn applies(file: &Path) -> Vec<(String, f64)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (what, at) = l.rsplit_once(' ').expect("ENV vN TIME");
            (what.to_string(), at.parse().expect("a time"))
        })
        .collect()
}

/// When `env`'s release `version` was made: its event's time.
fn released_at(h: &Hoist, env: &str, version: u64) -> f64 {
    let events = h.ok(&["events"]);
    let event = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| {
            e["event"]["type"] == "release_created"
                && e["event"]["env"] == env
                && e["event"]["release"]["version"] == version
        })
        .unwrap_or_else(|| panic!("release {env} v{version} in {events}"));
    let at: chrono::DateTime<chrono::Utc> = event["at"].as_str().unwrap().parse().unwrap();
    at.timestamp_micros() as f64 / 1e6
}

/// Waits for `what` ("staging v2") to be applied and its outcome recorded; returns the delay from
/// the release's event to the hook starting. (`deploy` returns after it also folded its read
/// models, by which time the hook has usually started: the event's time is the stricter start.)
fn wait_applied_and_recorded(h: &Hoist, file: &Path, what: &str, deployed: f64) -> Duration {
    let (env, version) = what.split_once(" v").unwrap();
    let version: u64 = version.parse().unwrap();
    let started = wait_for(
        &format!("{what} to be applied"),
        Duration::from_secs(30),
        || {
            applies(file)
                .into_iter()
                .find(|(w, _)| w == what)
                .map(|(_, at)| at)
        },
    );
    wait_for(
        &format!("{what} to be recorded"),
        Duration::from_secs(30),
        || {
            rollouts(h)
                .iter()
                .any(|r| r["event"]["env"] == env && r["event"]["version"] == version)
                .then_some(())
        },
    );
    assert!(
        started - deployed < 1.0,
        "{what}: hook started {:.3} s after deploy returned",
        started - deployed
    );
    Duration::from_secs_f64((started - released_at(h, env, version)).max(0.0))
}

fn deploy(h: &Hoist, env: &str, n: char) -> f64 {
    h.ok(&["deploy", "api", "--env", env, "--image", &image("api", n)]);
    now_secs()
}

/// Every apply in the file happened once, and every recorded outcome was recorded once and
/// matches one apply.
pub(crate) fn assert_each_applied_and_recorded_once(h: &Hoist, file: &Path) {
    let applied: Vec<String> = applies(file).into_iter().map(|(w, _)| w).collect();
    let unique: std::collections::BTreeSet<&String> = applied.iter().collect();
    assert_eq!(unique.len(), applied.len(), "applied twice: {applied:?}");
    let recorded: Vec<String> = rollouts(h)
        .iter()
        .map(|r| {
            format!(
                "{} v{}",
                r["event"]["env"].as_str().unwrap(),
                r["event"]["version"]
            )
        })
        .collect();
    let unique_recorded: std::collections::BTreeSet<&String> = recorded.iter().collect();
    assert_eq!(
        unique_recorded.len(),
        recorded.len(),
        "recorded twice: {recorded:?}"
    );
    assert_eq!(unique_recorded, unique, "recorded = applied");
}

/// NATS: two `serve` processes on one stream share the durable consumer. While one is busy with a
/// hook that waits for a gate, a release of another env goes to the other; every release is
/// applied once and recorded once. Returns the deploy → hook delays measured.
pub fn two_serves_share_the_work_and_apply_each_release_once(h: &Hoist) -> Vec<Duration> {
    let file = h.dir.path().join("applied");
    let gate = h.dir.path().join("gate");
    // staging's hook then waits for the gate (bounded: 10 s), holding its instance busy.
    let gated = format!(
        "{}; for i in $(seq 500); do [ -e {} ] && break; sleep 0.02; done",
        appending_hook(&file),
        gate.display()
    );
    h.ok(&["apps", "create", "api"]);
    h.ok(&[
        "envs", "target", "api", "--env", "staging", "--exec", &gated,
    ]);
    h.ok(&[
        "envs",
        "target",
        "api",
        "--env",
        "production",
        "--exec",
        &appending_hook(&file),
    ]);
    let mut a = start_serve_logging_to(h, "a.log", &[]);
    let mut b = start_serve_logging_to(h, "b.log", &[]);
    wait_resynced(h, "a.log");
    wait_resynced(h, "b.log");

    let mut delays = Vec::new();
    deploy(h, "staging", '1');
    let started = wait_for("staging v1 to start", Duration::from_secs(10), || {
        applies(&file).first().map(|(_, at)| *at)
    });
    delays.push(Duration::from_secs_f64(
        (started - released_at(h, "staging", 1)).max(0.0),
    ));
    // The instance running staging's hook is busy: production's release goes to the other.
    let deployed = deploy(h, "production", '2');
    delays.push(wait_applied_and_recorded(
        h,
        &file,
        "production v1",
        deployed,
    ));
    assert!(
        !rollouts(h).iter().any(|r| r["event"]["env"] == "staging"),
        "staging's hook is still waiting for the gate"
    );
    let busy_with_staging = |log: &str| serve_log(h, log).contains("applying app=api env=staging");
    let applied_production =
        |log: &str| serve_log(h, log).contains("applying app=api env=production");
    assert!(
        (busy_with_staging("a.log") && applied_production("b.log"))
            || (busy_with_staging("b.log") && applied_production("a.log")),
        "one instance ran staging, the other production:\na: {}\nb: {}",
        serve_log(h, "a.log"),
        serve_log(h, "b.log")
    );
    std::fs::write(&gate, "").unwrap();
    wait_applied_and_recorded(h, &file, "staging v1", deployed);

    // More releases, one after the other as a team makes them.
    for (env, n, what) in [
        ("staging", '3', "staging v2"),
        ("production", '4', "production v2"),
        ("staging", '5', "staging v3"),
    ] {
        let deployed = deploy(h, env, n);
        delays.push(wait_applied_and_recorded(h, &file, what, deployed));
    }
    sigterm(&mut a);
    sigterm(&mut b);
    // Both stopped: nothing can be applied any more, so the file is final.
    assert_each_applied_and_recorded_once(h, &file);
    assert_eq!(applies(&file).len(), 5);
    eprintln!("two serves on NATS: release event → hook started in {delays:?}");
    for delay in &delays {
        assert!(
            *delay < Duration::from_secs(1),
            "applied within a second: {delays:?}"
        );
    }
    delays
}

/// NATS: `kill -9` of one of two serves: later releases are applied by the other; a restarted
/// serve re-applies nothing that was recorded. Returns the deploy → hook delays after the kill.
pub fn a_killed_serve_leaves_the_work_to_the_other(h: &Hoist) -> Vec<Duration> {
    let file = h.dir.path().join("applied");
    h.ok(&["apps", "create", "api"]);
    h.ok(&[
        "envs",
        "target",
        "api",
        "--env",
        "staging",
        "--exec",
        &appending_hook(&file),
    ]);
    let mut a = start_serve_logging_to(h, "a.log", &[]);
    let mut b = start_serve_logging_to(h, "b.log", &[]);
    wait_resynced(h, "a.log");
    wait_resynced(h, "b.log");
    let deployed = deploy(h, "staging", '1');
    wait_applied_and_recorded(h, &file, "staging v1", deployed);

    a.kill().expect("kill -9 one serve");
    a.wait().unwrap();
    let mut delays = Vec::new();
    for (n, what) in [('2', "staging v2"), ('3', "staging v3")] {
        let deployed = deploy(h, "staging", n);
        delays.push(wait_applied_and_recorded(h, &file, what, deployed));
    }

    let mut a = start_serve_logging_to(h, "a2.log", &[]);
    wait_resynced(h, "a2.log");
    let deployed = deploy(h, "staging", '4');
    delays.push(wait_applied_and_recorded(h, &file, "staging v4", deployed));
    sigterm(&mut a);
    sigterm(&mut b);
    assert_each_applied_and_recorded_once(h, &file);
    let applied: Vec<String> = applies(&file).into_iter().map(|(w, _)| w).collect();
    assert_eq!(
        applied,
        ["staging v1", "staging v2", "staging v3", "staging v4"]
    );
    eprintln!("after kill -9 of one serve: release event → hook started in {delays:?}");
    for delay in &delays {
        assert!(
            *delay < Duration::from_secs(1),
            "applied within a second: {delays:?}"
        );
    }
    delays
}

/// One env's hook hanging (for its whole timeout) holds neither another app nor reading the log.
pub fn a_hanging_hook_does_not_delay_another_app(h: &Hoist) {
    let slow_pid = h.dir.path().join("slow.pid");
    let fast_done = h.dir.path().join("fast.done");
    for app in ["slow", "fast"] {
        h.ok(&["apps", "create", app]);
    }
    h.ok(&[
        "envs",
        "target",
        "slow",
        "--env",
        "staging",
        "--exec",
        &format!("echo $$ > {}; exec sleep 120", slow_pid.display()),
    ]);
    h.ok(&[
        "envs",
        "target",
        "fast",
        "--env",
        "staging",
        "--exec",
        &format!("touch {}", fast_done.display()),
    ]);
    let mut serve = start_serve(h, &[]);
    wait_resynced(h, "serve.log");
    h.deploy("slow", "staging", &image("slow", '1'));
    let hanging: u32 = wait_for("the slow hook to start", Duration::from_secs(10), || {
        std::fs::read_to_string(&slow_pid).ok()?.trim().parse().ok()
    });
    h.deploy("fast", "staging", &image("fast", '1'));
    let deployed = std::time::Instant::now();
    wait_for(
        "the fast app's outcome while the slow hook hangs",
        Duration::from_secs(10),
        || rollouts(h).iter().any(|r| r["app"] == "fast").then_some(()),
    );
    let took = deployed.elapsed();
    assert!(fast_done.exists());
    assert!(
        rollouts(h).iter().all(|r| r["app"] != "slow"),
        "the slow hook still runs"
    );
    // End the hanging hook (a process this test's hook became): its failure is recorded, and
    // serve stops cleanly.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &hanging.to_string()])
        .status();
    wait_for("the slow hook's outcome", Duration::from_secs(10), || {
        rollouts(h)
            .iter()
            .any(|r| r["app"] == "slow" && r["event"]["outcome"] == "failed")
            .then_some(())
    });
    sigterm(&mut serve);
    eprintln!("serve: fast app applied {took:?} after its deploy, beside a hanging hook");
    assert!(took < Duration::from_secs(3), "{took:?}");
}
