//! Whole-process cost of hoist's commands as history grows (issue 15): the same command against a
//! small and a large history, in one run, so each large figure stands beside its small baseline.
//!
//! - embedded store: one app with 1k vs 20k events of its own; 100 apps with 10k vs 200k events;
//! - NATS (a `nats-server` the bench starts): the same pairs with a warm cache (`deploy`,
//!   `status`, `releases`, `audit`), and `status`, `releases` and `audit` on a fresh cache (a new machine) on a stream of
//!   10k vs 200k and 1M events over 100 apps.
//!
//! Each sample is one `hoist` process (the release binary Cargo builds for benches) run to its
//! end; histories are written first by `hoist bench --keep` (the workload of deploys, config
//! changes, promotions, rollbacks and locks). After criterion's report the bench prints each
//! pair's ratio of medians (from criterion's own estimates) and each command's peak RSS (the median
//! run's and the largest).
//!
//! Run: `cargo bench --bench history` (`HISTORY_BENCH_ONLY=embedded` or `=nats`: one backend;
//! `HISTORY_BENCH_QUICK=1`: the NATS 1M-event stream is left out). Figures are in
//! docs/performance.md.

#[path = "../tests/support/nats_server.rs"]
mod nats_server;

use criterion::{BenchmarkGroup, Criterion};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const HOIST: &str = env!("CARGO_BIN_EXE_hoist");

/// A history to measure against: global flags selecting it, and one of its apps.
struct History {
    label: &'static str,
    flags: Vec<String>,
    /// The read models' cache (NATS), unless a run is given a fresh one.
    cache: Option<PathBuf>,
    app: String,
}

/// Runs `hoist` with `args` to its end; panics, naming the command, unless it succeeds.
fn hoist(args: &[String]) -> String {
    let out = Command::new(HOIST).args(args).output().expect("run hoist");
    assert!(
        out.status.success(),
        "hoist {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Writes `events` events over `apps` apps with `hoist bench --keep` into the history `flags`
/// select, and returns one of its apps.
fn history(
    label: &'static str,
    flags: Vec<String>,
    cache: Option<PathBuf>,
    apps: usize,
    events: usize,
) -> History {
    let started = Instant::now();
    let mut flags_and_cache = flags.clone();
    if let Some(cache) = &cache {
        flags_and_cache.extend(["--cache".into(), cache.display().to_string()]);
    }
    let mut args = flags_and_cache.clone();
    args.extend(
        [
            "bench",
            "--apps",
            &apps.to_string(),
            "--events",
            &events.to_string(),
            "--keep",
            "--json",
        ]
        .map(String::from),
    );
    hoist(&args);
    let mut list = flags_and_cache;
    list.extend(["apps", "list", "--json"].map(String::from));
    let listed: serde_json::Value = serde_json::from_str(&hoist(&list)).expect("apps list --json");
    let app = listed
        .as_array()
        .and_then(|apps| apps.first())
        .and_then(|app| app.get("app"))
        .and_then(|name| name.as_str())
        .expect("an app")
        .to_string();
    eprintln!(
        "history {label}: {events} events over {apps} apps written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    History {
        label,
        flags,
        cache,
        app,
    }
}

/// Runs one process and returns its wall time and peak RSS (bytes).
// Reaped by the wait4 below, which gives its rusage besides (std's wait does not).
#[allow(clippy::zombie_processes)]
fn measured_here(args: &[String]) -> (Duration, u64) {
    let started = Instant::now();
    let child = Command::new(HOIST)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hoist");
    let mut status = 0;
    // SAFETY: `rusage` is plain data written by wait4; the pid is our own unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let took = started.elapsed();
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "hoist {} failed",
        args.join(" ")
    );
    (took, usage.ru_maxrss as u64 * 1024)
}

/// Runs the measured processes from a small process of its own. Linux counts a child's peak
/// RSS from its parent's at fork (and keeps it across exec), so a child of this bench, which
/// holds whole histories, would report the bench's size, not its own.
struct Spawner {
    child: std::process::Child,
    replies: std::io::BufReader<std::process::ChildStdout>,
}

const SPAWNER: &str = "HISTORY_BENCH_SPAWNER";

impl Spawner {
    /// Started first thing, while this process is small.
    fn start() -> Spawner {
        let mut child = Command::new(std::env::current_exe().expect("this bench"))
            .env(SPAWNER, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the spawner");
        let replies = std::io::BufReader::new(child.stdout.take().expect("piped"));
        Spawner { child, replies }
    }

    fn measured(&mut self, args: &[String]) -> (Duration, u64) {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut().expect("piped");
        writeln!(stdin, "{}", serde_json::to_string(args).expect("json")).expect("to the spawner");
        let mut reply = String::new();
        self.replies
            .read_line(&mut reply)
            .expect("from the spawner");
        let (nanos, rss) = reply
            .trim()
            .split_once(' ')
            .unwrap_or_else(|| panic!("hoist {} failed", args.join(" ")));
        (
            Duration::from_nanos(nanos.parse().expect("nanos")),
            rss.parse().expect("bytes"),
        )
    }

    /// The spawner's side: one command line (JSON) in, "NANOS RSS" out, until stdin ends.
    fn serve() {
        use std::io::{BufRead, Write};
        let mut out = std::io::stdout().lock();
        for line in std::io::stdin().lock().lines() {
            let args: Vec<String> = serde_json::from_str(&line.expect("a line")).expect("json");
            let (took, rss) = measured_here(&args);
            writeln!(out, "{} {rss}", took.as_nanos()).expect("to the bench");
            out.flush().expect("to the bench");
        }
    }
}

/// The peak RSS of every run of each measured case.
type Peaks = BTreeMap<String, Vec<u64>>;

/// Fills `{app}` and `{n}` (a new 64-hex digest every run, so each `deploy` is a new release).
fn command(template: &[&str], app: &str, n: u64) -> Vec<String> {
    template
        .iter()
        .map(|part| {
            part.replace("{app}", app)
                .replace("{n}", &format!("{n:064x}"))
        })
        .collect()
}

static RUN: AtomicU64 = AtomicU64::new(1);

/// Benchmarks `template` against each history, as `GROUP/<history label>`; `fresh` gives every
/// run an empty cache directory of its own (NATS), removed outside the measured time.
fn case(
    c: &mut Criterion,
    spawner: &mut Spawner,
    name: &str,
    peaks: &mut Peaks,
    histories: &[&History],
    template: &[&str],
    fresh: Option<&Path>,
) {
    let mut group = group(c, name);
    for history in histories {
        let mut rss_of_runs = Vec::new();
        group.bench_function(history.label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let n = RUN.fetch_add(1, Ordering::Relaxed);
                    let mut args = history.flags.clone();
                    let cache = fresh.map(|root| root.join(n.to_string()));
                    if let Some(cache) = cache.as_ref().or(history.cache.as_ref()) {
                        args.extend(["--cache".into(), cache.display().to_string()]);
                    }
                    args.extend(command(template, &history.app, n));
                    let (took, rss) = spawner.measured(&args);
                    total += took;
                    rss_of_runs.push(rss);
                    if let Some(cache) = cache {
                        let _ = std::fs::remove_dir_all(cache);
                    }
                }
                total
            })
        });
        peaks.insert(format!("{name}/{}", history.label), rss_of_runs);
    }
    group.finish();
}

fn group<'c>(
    c: &'c mut Criterion,
    name: &str,
) -> BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group
}

const DEPLOY: &[&str] = &[
    "deploy",
    "{app}",
    "--env",
    "staging",
    "--image",
    "registry.example/bench@sha256:{n}",
];
const STATUS: &[&str] = &["status", "{app}"];
const RELEASES: &[&str] = &["releases", "{app}", "--env", "staging", "--limit", "20"];
const AUDIT: &[&str] = &["audit", "--app", "{app}", "--limit", "20"];

/// The median criterion estimated for `group/bench`, in seconds.
fn median(group: &str, bench: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let path = target
        .join("criterion")
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["median"]["point_estimate"]
        .as_f64()
        .map(|ns| ns / 1e9)
}

fn main() {
    if std::env::var_os(SPAWNER).is_some() {
        return Spawner::serve();
    }
    let mut spawner = Spawner::start();
    let mut c = Criterion::default().configure_from_args();
    // `cargo test` runs benches once each, without `--bench`: the same path on histories a
    // fiftieth the size, and no 1M-event stream.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let scale = if measuring { 1 } else { 50 };
    let quick = std::env::var_os("HISTORY_BENCH_QUICK").is_some() || !measuring;
    // `HISTORY_BENCH_ONLY=embedded` or `=nats`: one backend's groups.
    let only = std::env::var("HISTORY_BENCH_ONLY").unwrap_or_default();
    let (embedded, on_nats) = (only != "nats", only != "embedded");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let at = |name: &str| scratch.path().join(name);
    let store = |name: &str| vec!["--store".to_string(), at(name).display().to_string()];
    let mut peaks = Peaks::new();
    // (group, small, large): the pairs whose ratio the summary prints.
    let mut pairs: Vec<(&str, &str, &str)> = Vec::new();
    let sizes = [("1k", "20k"), ("100apps-10k", "100apps-200k")];

    if embedded {
        let e1k = history("1k", store("e1k"), None, 1, 1_000 / scale);
        let e20k = history("20k", store("e20k"), None, 1, 20_000 / scale);
        let e10k = history("100apps-10k", store("e10k"), None, 100, 10_000 / scale);
        let e200k = history("100apps-200k", store("e200k"), None, 100, 200_000 / scale);
        for (name, template) in [
            ("embedded-deploy", DEPLOY),
            ("embedded-status", STATUS),
            ("embedded-releases", RELEASES),
            ("embedded-audit", AUDIT),
        ] {
            case(
                &mut c,
                &mut spawner,
                name,
                &mut peaks,
                &[&e1k, &e20k, &e10k, &e200k],
                template,
                None,
            );
            pairs.extend(sizes.map(|(small, large)| (name, small, large)));
        }
    }
    if on_nats {
        let server = nats_server::NatsServer::start();
        let nats = |stream: &str| {
            ["--nats", &server.url(), "--stream", stream]
                .map(String::from)
                .to_vec()
        };
        let n1k = history("1k", nats("N1K"), Some(at("c1k")), 1, 1_000 / scale);
        let n20k = history("20k", nats("N20K"), Some(at("c20k")), 1, 20_000 / scale);
        let n10k = history(
            "100apps-10k",
            nats("N10K"),
            Some(at("c10k")),
            100,
            10_000 / scale,
        );
        let n200k = history(
            "100apps-200k",
            nats("N200K"),
            Some(at("c200k")),
            100,
            200_000 / scale,
        );
        for (name, template) in [
            ("nats-deploy", DEPLOY),
            ("nats-status", STATUS),
            ("nats-releases", RELEASES),
            ("nats-audit", AUDIT),
        ] {
            case(
                &mut c,
                &mut spawner,
                name,
                &mut peaks,
                &[&n1k, &n20k, &n10k, &n200k],
                template,
                None,
            );
            pairs.extend(sizes.map(|(small, large)| (name, small, large)));
        }
        // A new machine: an empty cache every run.
        let fresh_root = at("fresh");
        let n1m =
            (!quick).then(|| history("100apps-1m", nats("N1M"), Some(at("c1m")), 100, 1_000_000));
        let fresh: Vec<&History> = [Some(&n10k), Some(&n200k), n1m.as_ref()]
            .into_iter()
            .flatten()
            .collect();
        for (name, template) in [
            ("nats-fresh-status", STATUS),
            ("nats-fresh-releases", RELEASES),
            ("nats-fresh-audit", AUDIT),
        ] {
            case(
                &mut c,
                &mut spawner,
                name,
                &mut peaks,
                &fresh,
                template,
                Some(&fresh_root),
            );
            pairs.push((name, "100apps-10k", "100apps-200k"));
            pairs.push((name, "100apps-10k", "100apps-1m"));
        }
    }

    c.final_summary();
    // Peak RSS: the median run's, and the largest (the first command on a store without a
    // snapshot of its app folds the app's whole history once).
    println!("\nratio of medians (goal ≤ 1.5), and peak RSS, median run (largest), small → large:");
    for (group, small, large) in pairs {
        let (Some(a), Some(b)) = (median(group, small), median(group, large)) else {
            continue;
        };
        let rss = |label| {
            let mut runs = peaks
                .get(&format!("{group}/{label}"))
                .cloned()
                .unwrap_or_default();
            runs.sort_unstable();
            let mb = |bytes: Option<&u64>| bytes.map_or(0.0, |b| *b as f64 / 1e6);
            format!(
                "{:.1} ({:.1})",
                mb(runs.get(runs.len() / 2)),
                mb(runs.last())
            )
        };
        println!(
            "{group:<20} {small:>12} {:>8.1} ms  {large:>13} {:>8.1} ms  ratio {:.2}   RSS {} → {} MB",
            a * 1e3,
            b * 1e3,
            b / a,
            rss(small),
            rss(large),
        );
    }
}
