//! `hoist bench`: writes a realistic history (deploys, config changes, promotions, rollbacks,
//! locks across N apps) through the real command path (`service::execute_cached`, the cached form
//! of `execute`), then measures, each beside its raw baseline in the same process and run:
//!
//! - append, many apps in flight (one app's commands stay ordered) vs the raw medium with the same
//!   concurrency: on the embedded store, one worker thread per group of apps vs plain appends of
//!   the same payloads to a file, synced each; on NATS (`bench_nats`), one task per app vs raw async publishes of
//!   the same payloads, acks awaited in windows;
//! - replay into fresh read models vs a raw read of the log without decoding (a pass over the log
//!   file, an ordered push consumer);
//! - `status` and `audit --app A --limit 20` latency on the models (catch-up check included);
//! - peak RSS.
//!
//! Without `--keep` it works in scratch space removed afterwards (a directory; on NATS a stream of
//! its own); with it, in the configured store or stream (on the embedded store, whose read
//! models it then catches up).

use crate::backend::store_dir;
use crate::cli::GlobalArgs;
use crate::error::CliError;
use crate::output::{out, outln, print_json, table};
use hoist_engine::service::{execute_cached, CommandContext};
use hoist_engine::store::EventStore;
use hoist_engine::{AppName, AppState, Artifact, Command, ConfigKey, ConfigValue, EnvName};
use hoist_projections::audit::AuditQuery;
use hoist_projections::store::ProjectionStore;
use hoist_stores::file::FileStore;
use hoist_stores::nats::{raw_publish, NatsOptions, NatsStore};
use serde::Serialize;
use std::io::Write;
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
    if args.apps == 0 || args.events == 0 {
        return Err(CliError::rejected(
            "bench: --apps and --events must be at least 1",
        ));
    }
    if let Some(url) = &global.nats {
        return bench_nats(global, args, url);
    }
    let scratch = Scratch::new("log")?;
    let dir = if args.keep {
        store_dir(global)?
    } else {
        scratch.0.clone()
    };
    let store = FileStore::open(&dir, Duration::from_secs(30))?;
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

    // ---- append baseline: the same payloads appended and synced to a plain file, from the
    // same number of threads taking turns (one file has one end) ----
    let commits = rt.block_on(store.read_from(first_seq, usize::MAX))?;
    let baseline_dir = Scratch::new("raw")?;
    let raw_path = baseline_dir.0.join("raw");
    let raw =
        std::sync::Mutex::new(std::fs::File::create(&raw_path).map_err(|e| io(&raw_path, e))?);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..workers {
            let (raw, commits, apps) = (&raw, &commits, &apps);
            scope.spawn(move || {
                for commit in commits {
                    let owner = apps.iter().position(|a| *a == commit.app).unwrap_or(0);
                    if owner % workers == w {
                        let mut file = raw.lock().expect("no writer panics");
                        file.write_all(&commit.payload).expect("raw append");
                        file.sync_data().expect("raw sync");
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
    let mut models = crate::models::open_in(&models_dir.0)?;
    let started = Instant::now();
    let replayed = rt.block_on(models.catch_up(&store, &mut |_, _| {}))?;
    let replay_took = started.elapsed();

    let (status_query_us, audit_query_us) =
        rt.block_on(measure_queries(&mut models, &store, &apps))?;
    drop(models);
    if args.keep {
        let mut own = crate::models::open_in(&dir.join("projections"))?;
        rt.block_on(own.catch_up(&store, &mut |_, _| {}))?;
    }
    let report = Report {
        backend: "embedded",
        apps: args.apps,
        events,
        append: Rate::of(events, append_took, append_baseline),
        replay: Rate::of(replayed.events, replay_took, scan_took),
        status_query_us,
        audit_query_us,
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

/// `status` and `audit --app A --limit 20` latency on caught-up models, the catch-up check
/// (a look at the log's last sequence) included, as a command pays it.
async fn measure_queries<S: EventStore>(
    models: &mut ProjectionStore,
    store: &S,
    apps: &[AppName],
) -> Result<(Latency, Latency), CliError> {
    let (mut status_us, mut audit_us) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        let app = &apps[i % apps.len()];
        let started = Instant::now();
        models.catch_up_state(store).await?;
        let status = models.status(app)?;
        status_us.push(started.elapsed().as_secs_f64() * 1e6);
        assert!(status.is_some(), "bench app {app} has a status");
        let query = AuditQuery {
            app: Some(app.clone()),
            ..AuditQuery::default()
        };
        let started = Instant::now();
        models.catch_up_state(store).await?;
        let entries = models.audit(store, &query, 20).await?;
        audit_us.push(started.elapsed().as_secs_f64() * 1e6);
        assert!(!entries.is_empty());
    }
    Ok((Latency::of(status_us), Latency::of(audit_us)))
}

/// Publishes in flight per baseline task, before their acks are awaited.
const RAW_WINDOW: usize = 1_000;

/// `hoist --nats URL bench`: the same measurements on JetStream. Scratch space is a stream of
/// its own (`HOIST_BENCH_<run>`, subjects `hoist.bench.<run>.app.>`) deleted afterwards, unless
/// `--keep` writes into the configured stream. One task per app appends (one app's commands in
/// order, every app in flight at once); the baseline publishes the same payloads with the same
/// number of tasks, into another scratch stream, acks awaited in windows; replay is measured
/// against an ordered push consumer reading the stream.
fn bench_nats(global: &GlobalArgs, args: &BenchArgs, url: &str) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let run = format!("{:08x}", uuid::Uuid::now_v7().as_u128() as u32);
        let mut options = NatsOptions::new(url);
        options.creds_file = global.nats_creds.clone();
        options.tls_ca_file = global.nats_tls_ca.clone();
        options.replicas = usize::from(global.replicas);
        options.timeout = Duration::from_secs(30);
        let mut raw_options = options.clone();
        // The hoist side reads as the commands do: every message checked to be a commit.
        options.commit_check = Some(hoist_engine::codec::check_commit);
        raw_options.stream = format!("HOIST_BENCH_RAW_{run}");
        raw_options.subject_prefix = format!("hoist.bench.{run}.raw.");
        if args.keep {
            options.stream = global.stream.clone();
        } else {
            options.stream = format!("HOIST_BENCH_{run}");
            options.subject_prefix = format!("hoist.bench.{run}.app.");
        }
        let store = NatsStore::connect(options).await?;
        let raw = NatsStore::connect(raw_options).await?;
        let result = bench_on_nats(args, &run, &store, &raw).await;
        let mut streams = vec![raw.stream_name().to_string()];
        if !args.keep {
            streams.push(store.stream_name().to_string());
        }
        for stream in streams {
            if let Err(e) = store.jetstream().delete_stream(&stream).await {
                crate::output::warn(&format!("bench stream {stream} not deleted: {e}"));
            }
        }
        let report = result?;
        if global.json {
            print_json(&report);
        } else {
            print_report(&report, None);
        }
        Ok(())
    })
}

async fn bench_on_nats(
    args: &BenchArgs,
    run: &str,
    store: &NatsStore,
    raw: &NatsStore,
) -> Result<Report, CliError> {
    let first_seq = store.last_seq().await? + 1;
    let apps: Vec<AppName> = (0..args.apps)
        .map(|i| format!("bench-{run}-{i:04}").parse())
        .collect::<Result<_, _>>()?;

    // ---- append: the real command path, one task per app, all in flight ----
    let started = Instant::now();
    let written = futures::future::join_all(apps.iter().enumerate().map(|(i, app)| {
        let quota =
            args.events / args.apps as u64 + u64::from((i as u64) < args.events % args.apps as u64);
        async move { write_history(store, &[app], quota, i).await }
    }))
    .await;
    let append_took = started.elapsed();
    let events = written.into_iter().sum::<Result<u64, CliError>>()?;

    // ---- append baseline: the same payloads, raw async publish, one task per app ----
    let commits = store.read_from(first_seq, usize::MAX).await?;
    let mut by_app: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new(); apps.len()];
    for commit in commits {
        if let Some(i) = apps.iter().position(|a| *a == commit.app) {
            by_app[i].push((raw.subject(&commit.app), commit.payload));
        }
    }
    let started = Instant::now();
    for published in futures::future::join_all(
        by_app
            .iter()
            .map(|messages| raw_publish(raw.jetstream(), messages, RAW_WINDOW)),
    )
    .await
    {
        published?;
    }
    let append_baseline = started.elapsed();
    drop(by_app);

    // ---- replay: fresh read models vs an ordered consumer reading the same stream ----
    store.raw_read().await?; // warm both
    let started = Instant::now();
    store.raw_read().await?;
    let read_took = started.elapsed();
    let models_dir = Scratch::new("models")?;
    let mut models = crate::models::open_in(&models_dir.0)?;
    let started = Instant::now();
    let replayed = models.catch_up(store, &mut |_, _| {}).await?;
    let replay_took = started.elapsed();

    let (status_query_us, audit_query_us) = measure_queries(&mut models, store, &apps).await?;
    Ok(Report {
        backend: "nats",
        apps: args.apps,
        events,
        append: Rate::of(events, append_took, append_baseline),
        replay: Rate::of(replayed.events, replay_took, read_took),
        status_query_us,
        audit_query_us,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// One worker's share: create its apps, then cycle through them issuing a realistic mix of
/// commands until `quota` events are written. Returns the events written.
async fn write_history<S: EventStore>(
    store: &S,
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
    outln!(
        "hoist bench: {} backend, {} apps, {} events",
        report.backend,
        report.apps,
        report.events
    );
    out!(
        "{}",
        table(
            ["", "EVENTS/S", "BASELINE/S", "RATIO"],
            [
                ["append (optimistic, many apps)".to_string(), a1, a2, a3],
                ["replay into read models".to_string(), r1, r2, r3],
            ]
        )
    );
    outln!(
        "status query: p50 {} µs, p99 {} µs\naudit --app --limit 20: p50 {} µs, p99 {} µs\npeak RSS: {} MB",
        report.status_query_us.p50,
        report.status_query_us.p99,
        report.audit_query_us.p50,
        report.audit_query_us.p99,
        report.peak_rss_mb
    );
    if let Some(dir) = kept {
        outln!("History kept in {}", dir.display());
    }
}
