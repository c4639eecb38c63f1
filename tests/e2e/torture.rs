//! Crash torture: real `hoist` processes — config writers, `admin rebuild` and `serve` — killed
//! with SIGKILL at random instants, hundreds of times, and after every kill the store must open,
//! `admin check` must pass, and each command's effect must be all there or not there at all: a
//! writer that exited 0 is in the history exactly once, one that was killed at most once. Imports
//! get the same treatment in `transfer::killed_import_leaves_all_or_nothing`.
//!
//! The kill instant is the variable under test, so this is the one place that waits on time
//! itself: a random pause between start and SIGKILL, within 1.5 times the command's run time as
//! measured at the start of the test.
//! The seed is printed, and `HOIST_TORTURE_SEED` replays a run.

use crate::harness::{image, Hoist};
use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Duration;

/// A small, seedable generator: the schedule must be replayable from the printed seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn seeded() -> Self {
        let seed = std::env::var("HOIST_TORTURE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("a clock after 1970")
                    .as_nanos() as u64
            });
        eprintln!("torture: HOIST_TORTURE_SEED={seed}");
        Rng(seed | 1)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// How each kind of process fared.
#[derive(Debug, Default)]
pub struct Tally {
    pub kills: usize,
    pub finished: usize,
    pub checks: usize,
}

/// How a process under torture ended.
pub(crate) struct Ran {
    /// It exited 0 (on its own, possibly just before the kill).
    ok: bool,
    killed: bool,
}

/// Starts `child`, waits a random span up to `window`, kills it with SIGKILL (unless it
/// finished), and says how it ended.
pub(crate) fn kill_at_random(
    rng: &mut Rng,
    window: Duration,
    mut child: Child,
    tally: &mut Tally,
) -> Ran {
    std::thread::sleep(Duration::from_micros(rng.below(window.as_micros() as u64)));
    match child.try_wait().expect("child status") {
        Some(status) => {
            tally.finished += 1;
            Ran {
                ok: status.success(),
                killed: false,
            }
        }
        None => {
            child.kill().expect("SIGKILL");
            let status = child.wait().expect("child reaped");
            tally.kills += 1;
            Ran {
                ok: status.success(),
                killed: true,
            }
        }
    }
}

/// Unfinished writes the embedded store has cut off and kept so far (none on NATS).
fn cut_tails(h: &Hoist) -> usize {
    std::fs::read_dir(h.data_dir().join("quarantine")).map_or(0, |d| d.count())
}

/// The window kill instants are drawn from: one and a half times a whole run of the command
/// (measured here, on this machine and build), so some runs finish and most are cut inside.
fn run_time<T>(run: impl FnOnce() -> T) -> Duration {
    let started = std::time::Instant::now();
    run();
    started.elapsed() * 3 / 2
}

fn spawn(h: &Hoist, args: &[&str]) -> Child {
    h.command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hoist starts")
}

fn admin_check(h: &Hoist, tally: &mut Tally, after: &str) {
    let output = h.run(&["admin", "check", "--json"]);
    assert!(
        output.status.success(),
        "admin check after {after}: exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    tally.checks += 1;
}

/// Every config key set on `api`/staging, with how many releases set it.
fn keys_set(h: &Hoist) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let releases = h.json(&["releases", "api", "--env", "staging"]);
    for release in releases.as_array().expect("an array") {
        if release["kind"] == "config" {
            let description = release["description"].as_str().expect("a description");
            if let Some(key) = description.strip_prefix("Set ") {
                *counts.entry(key.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Writers, `admin rebuild` and `serve` killed at random on one store, `iterations` times.
pub fn writers_rebuilds_and_serve_survive_sigkill(h: &Hoist, iterations: usize) -> Tally {
    let mut rng = Rng::seeded();
    let mut tally = Tally::default();
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", 'a'));
    let window = run_time(|| h.ok(&["config", "set", "api", "--env", "staging", "WARM=1"]));
    let hook = format!(
        "cat > /dev/null; echo applied >> {}",
        h.dir.path().join("applies").display()
    );
    h.ok(&["envs", "target", "api", "--env", "staging", "--exec", &hook]);
    let mut exited_ok: Vec<String> = Vec::new();
    let mut killed: Vec<String> = Vec::new();
    let mut tails_before = cut_tails(h);
    for i in 0..iterations {
        let killed_any;
        let what = match rng.below(10) {
            0..=5 => {
                let key = format!("K{i}");
                let child = spawn(
                    h,
                    &[
                        "config",
                        "set",
                        "api",
                        "--env",
                        "staging",
                        &format!("{key}=v"),
                    ],
                );
                let ran = kill_at_random(&mut rng, window, child, &mut tally);
                killed_any = ran.killed;
                if ran.ok {
                    exited_ok.push(key);
                } else {
                    killed.push(key);
                }
                "config set"
            }
            6..=7 => {
                let child = spawn(h, &["admin", "rebuild"]);
                killed_any = kill_at_random(&mut rng, window, child, &mut tally).killed;
                "admin rebuild"
            }
            _ => {
                let child = spawn(h, &["serve", "--resync", "1s"]);
                killed_any = kill_at_random(&mut rng, window, child, &mut tally).killed;
                "serve"
            }
        };
        admin_check(h, &mut tally, &format!("a killed {what} (iteration {i})"));
        // Only a killed writer can leave an unfinished write behind.
        let tails = cut_tails(h);
        assert!(
            killed_any || tails == tails_before,
            "{what} (iteration {i}) finished on its own, yet a write was cut off"
        );
        tails_before = tails;
    }
    let keys = keys_set(h);
    for key in &exited_ok {
        assert_eq!(
            keys.get(key),
            Some(&1),
            "{key}: its config set exited 0, so it is stored exactly once"
        );
    }
    for key in &killed {
        assert!(
            keys.get(key).is_none_or(|&n| n == 1),
            "{key}: a killed config set is stored once or not at all"
        );
    }
    // The log and every read a user makes agree.
    let status = h.json(&["status", "api"]);
    let staging = &status["envs"]["staging"];
    let releases = h.json(&["releases", "api", "--env", "staging"]);
    assert_eq!(
        staging["version"], releases[0]["version"],
        "status and releases agree"
    );
    assert_eq!(
        releases.as_array().map(Vec::len),
        staging["version"].as_u64().map(|v| v as usize),
        "versions are contiguous from 1"
    );
    tally
}
