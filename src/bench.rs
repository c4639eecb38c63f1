//! `hoist bench`: writes a realistic history (deploys, config changes, promotions, rollbacks,
//! locks across N apps) through the real command path (`service::execute_cached`, the cached form
//! of `execute`), then measures, each beside its raw baseline in the same process and run:
//!
//! - append, many apps in flight (one worker thread per group of apps; one app's commands stay
//!   ordered) vs raw sled inserts of the same payloads, flushed each, with the same concurrency;
//! - replay into fresh read models vs a raw scan of the log without decoding;
//! - `status` and `audit --app A --limit 20` latency on the models (catch-up check included);
//! - peak RSS.
//!
//! Without `--keep` it works in a scratch directory removed afterwards; with it, in the configured
//! store, whose read models it then catches up.

use crate::backend::store_dir;
use crate::cli::GlobalArgs;
use crate::error::CliError;
use crate::output::{print_json, table};
use hoist_engine::service::{execute_cached, CommandContext};
use hoist_engine::store::sled::SledStore;
use hoist_engine::store::EventStore;
use hoist_engine::{AppName, AppState, Artifact, Command, ConfigKey, ConfigValue, EnvName};
use hoist_projections::audit::AuditQuery;
use hoist_projections::store::{ProjectionStore, PARTITION_SIZE};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Apps written to concurrently
    #[arg(long, default_value_t = 20)]
    pub apps: usize,
    /// Events to write (about: the last command of each worker may add one more)
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Write into the configured store instead of a scratch directory, to explore afterwards
    #[arg(long)]
    pub keep: bool,
}

/// Worker threads appending at once (each owns a share of the apps).
const MAX_WORKERS: usize = 8;
/// Query samples per measured query.
const SAMPLES: usize = 300;

#[derive(Debug, Serialize)]
struct Rate {
    events_per_s: f64,
    baseline_per_s: f64,
    ratio: f64,
}

impl Rate {
    fn of(events: u64, took: Duration, baseline: Duration) -> Self {
        let per_s = |d: Duration| (events as f64 / d.as_secs_f64().max(1e-9)).round();
        let (events_per_s, baseline_per_s) = (per_s(took), per_s(baseline));
        Rate {
            events_per_s,
            baseline_per_s,
            ratio: (events_per_s / baseline_per_s * 1000.0).round() / 1000.0,
        }
    }
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p99: f64,
}

impl Latency {
    fn of(mut micros: Vec<f64>) -> Self {
        micros.sort_by(f64::total_cmp);
        let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
        Latency {
            p50: at(0.5).round(),
            p99: at(0.99).round(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    backend: &'static str,
    apps: usize,
    events: u64,
    append: Rate,
    replay: Rate,
    status_query_us: Latency,
    audit_query_us: Latency,
    peak_rss_mb: f64,
}

/// A directory removed when dropped: the scratch space of one run.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Result<Self, CliError> {
        let dir = std::env::temp_dir().join(format!(
            "hoist-bench-{what}-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::Unavailable(format!("bench: {}: {e}", path.display()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs on a thread of its own: the bench drives its own runtimes, one per worker.
pub fn run(global: &GlobalArgs, args: &BenchArgs) -> Result<(), CliError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| bench(global, args))
            .join()
            .expect("the bench does not panic")
    })
}

fn bench(global: &GlobalArgs, args: &BenchArgs) -> Result<(), CliError> {
    if global.nats.is_some() {
        return Err(CliError::Unavailable(
            "--nats: the NATS backend is not built into this hoist yet".into(),
        ));
    }
    if args.apps == 0 || args.events == 0 {
        return Err(CliError::rejected(
            "bench: --apps and --events must be at least 1",
        ));
    }
    let scratch = Scratch::new("log")?;
    let dir = if args.keep {
        store_dir(global)?
    } else {
        scratch.0.clone()
    };
    let store = SledStore::open(&dir, Duration::from_secs(30))?;
    let rt = runtime();
    let first_seq = rt.block_on(store.last_seq())? + 1;

    // ---- append: the real command path, many apps in flight ----
    let run_id = format!("{:04x}", uuid::Uuid::now_v7().as_u128() as u16);
    let apps: Vec<AppName> = (0..args.apps)
        .map(|i| format!("bench-{run_id}-{i:04}").parse())
        .collect::<Result<_, _>>()?;
    let workers = args.apps.min(MAX_WORKERS);
    let started = Instant::now();
    let written: Vec<Result<u64, CliError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let mine: Vec<&AppName> = apps.iter().skip(w).step_by(workers).collect();
                let quota = args.events / workers as u64
                    + u64::from((w as u64) < args.events % workers as u64);
                let store = &store;
                scope.spawn(move || runtime().block_on(write_history(store, &mine, quota, w)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench worker does not panic"))
            .collect()
    });
    let append_took = started.elapsed();
    let events = written.into_iter().sum::<Result<u64, CliError>>()?;

    // ---- append baseline: the same payloads, raw sled inserts, same concurrency ----
    let commits = rt.block_on(store.read_from(first_seq, usize::MAX))?;
    let baseline_dir = Scratch::new("raw")?;
    let raw = sled::open(&baseline_dir.0).map_err(|e| io(&baseline_dir.0, e))?;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..workers {
            let (raw, commits, apps) = (&raw, &commits, &apps);
            scope.spawn(move || {
                for commit in commits {
                    let owner = apps.iter().position(|a| *a == commit.app).unwrap_or(0);
                    if owner % workers == w {
                        raw.insert(commit.seq.to_be_bytes(), commit.payload.as_slice())
                            .expect("raw sled insert");
                        raw.flush().expect("raw sled flush");
                    }
                }
            });
        }
    });
    let append_baseline = started.elapsed();
    drop(raw);
    drop(commits);

    // ---- replay: fresh read models vs a raw scan of the same log ----
    store.raw_scan()?; // warm the page cache for both
    let started = Instant::now();
    store.raw_scan()?;
    let scan_took = started.elapsed();
    let models_dir = Scratch::new("models")?;
    let mut models = ProjectionStore::open(&models_dir.0, PARTITION_SIZE)?;
    let started = Instant::now();
    let replayed = rt.block_on(models.catch_up(&store, &mut |_, _| {}))?;
    let replay_took = started.elapsed();

    // ---- queries, on the caught-up models ----
    let (mut status_us, mut audit_us) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        let app = &apps[i % apps.len()];
        let started = Instant::now();
        rt.block_on(models.catch_up_state(&store))?;
        let status = models.status(app)?;
        status_us.push(started.elapsed().as_secs_f64() * 1e6);
        assert!(status.is_some(), "bench app {app} has a status");
        let query = AuditQuery {
            app: Some(app.clone()),
            ..AuditQuery::default()
        };
        let started = Instant::now();
        rt.block_on(models.catch_up_state(&store))?;
        let entries = rt.block_on(models.audit(&store, &query, 20))?;
        audit_us.push(started.elapsed().as_secs_f64() * 1e6);
        assert!(!entries.is_empty());
    }
    drop(models);
    if args.keep {
        let mut own = ProjectionStore::open(&dir.join("projections"), PARTITION_SIZE)?;
        rt.block_on(own.catch_up(&store, &mut |_, _| {}))?;
    }
    let report = Report {
        backend: "sled",
        apps: args.apps,
        events,
        append: Rate::of(events, append_took, append_baseline),
        replay: Rate::of(replayed.events, replay_took, scan_took),
        status_query_us: Latency::of(status_us),
        audit_query_us: Latency::of(audit_us),
        peak_rss_mb: peak_rss_mb(),
    };
    drop(store);
    if global.json {
        print_json(&report);
    } else {
        print_report(&report, args.keep.then_some(&dir));
    }
    Ok(())
}

/// One worker's share: create its apps, then cycle through them issuing a realistic mix of
/// commands until `quota` events are written. Returns the events written.
async fn write_history(
    store: &SledStore,
    apps: &[&AppName],
    quota: u64,
    seed: usize,
) -> Result<u64, CliError> {
    let staging: EnvName = "staging".parse()?;
    let production: EnvName = "production".parse()?;
    let actor: hoist_engine::Actor = "bench@hoist.local".parse()?;
    let mut states: Vec<AppState> = vec![AppState::default(); apps.len()];
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (seed as u64 + 1);
    let mut written = 0u64;
    let mut step = 0usize;
    while written < quota {
        let i = step % apps.len();
        step += 1;
        let state = &mut states[i];
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let roll = rng % 100;
        let has = |env: &EnvName, n: usize| state.env(env).is_some_and(|e| e.releases.len() >= n);
        let command = if !state.exists() {
            Command::CreateApp {
                pipeline: vec![staging.clone(), production.clone()],
            }
        } else if roll < 35 || !has(&staging, 1) {
            Command::Deploy {
                env: staging.clone(),
                artifact: Artifact::Image(
                    format!("registry.example/bench@sha256:{:064x}", rng).parse()?,
                ),
            }
        } else if roll < 60 {
            let env = if roll.is_multiple_of(2) {
                &staging
            } else {
                &production
            };
            Command::SetConfig {
                env: env.clone(),
                values: [(
                    format!("KEY_{}", roll % 5).parse::<ConfigKey>()?,
                    ConfigValue::Plain(format!("value-{step}")),
                )]
                .into(),
            }
        } else if roll < 80 {
            Command::Promote {
                from: staging.clone(),
                to: None,
            }
        } else if roll < 95 && has(&production, 2) {
            Command::Rollback {
                env: production.clone(),
                to: None,
            }
        } else if state.env(&production).is_some_and(|e| e.lock.is_some()) {
            Command::Unlock {
                env: production.clone(),
            }
        } else {
            Command::Lock {
                env: production.clone(),
                reason: "bench freeze".into(),
            }
        };
        let ctx = CommandContext::new(match roll % 3 {
            0 => "ana@example.com".parse()?,
            1 => "bo@example.com".parse()?,
            _ => actor.clone(),
        });
        match execute_cached(store, apps[i], &command, &ctx, state).await {
            Ok(events) => written += events.len() as u64,
            // A locked production rejects promote and config: part of a realistic history.
            Err(hoist_engine::service::ExecuteError::Domain(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(written)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| (kb / 1024.0 * 10.0).round() / 10.0)
}

fn print_report(report: &Report, kept: Option<&PathBuf>) {
    let rate = |r: &Rate| {
        [
            format!("{:.0}", r.events_per_s),
            format!("{:.0}", r.baseline_per_s),
            format!("{:.3}", r.ratio),
        ]
    };
    let [a1, a2, a3] = rate(&report.append);
    let [r1, r2, r3] = rate(&report.replay);
    println!(
        "hoist bench: {} backend, {} apps, {} events",
        report.backend, report.apps, report.events
    );
    print!(
        "{}",
        table(
            ["", "EVENTS/S", "BASELINE/S", "RATIO"],
            [
                ["append (optimistic, many apps)".to_string(), a1, a2, a3],
                ["replay into read models".to_string(), r1, r2, r3],
            ]
        )
    );
    println!(
        "status query: p50 {} µs, p99 {} µs\naudit --app --limit 20: p50 {} µs, p99 {} µs\npeak RSS: {} MB",
        report.status_query_us.p50,
        report.status_query_us.p99,
        report.audit_query_us.p50,
        report.audit_query_us.p99,
        report.peak_rss_mb
    );
    if let Some(dir) = kept {
        println!("History kept in {}", dir.display());
    }
}
