//! `hoist bench`: writes a realistic history ([`crate::workload`]: deploys, config changes,
//! promotions, rollbacks, locks across N apps) through the real command path (`service::execute_cached`, the cached form
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

use crate::config::Log;
use crate::error::{Error, Result};
use crate::workload::Workload;
use crate::Hoist;
use hoist_engine::service::{execute_cached, CommandContext};
use hoist_engine::store::EventStore;
use hoist_engine::{AppName, AppState};
use hoist_projections::audit::AuditQuery;
use hoist_projections::store::ProjectionStore;
use hoist_stores::file::FileStore;
use hoist_stores::nats::{raw_publish, NatsStore};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to write.
#[derive(Debug, Clone, Copy)]
pub struct BenchArgs {
    /// Apps written to concurrently.
    pub apps: usize,
    /// Events to write (about: the last command of each worker may add one more).
    pub events: u64,
    /// Write into the configured store instead of scratch space, to explore afterwards.
    pub keep: bool,
}

/// Worker threads appending at once (each owns a share of the apps).
const MAX_WORKERS: usize = 8;
/// Query samples per measured query.
const SAMPLES: usize = 300;

#[derive(Debug, Serialize)]
pub struct Rate {
    pub events_per_s: f64,
    pub baseline_per_s: f64,
    pub ratio: f64,
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
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
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
pub struct Report {
    pub backend: &'static str,
    pub apps: usize,
    pub events: u64,
    pub append: Rate,
    pub replay: Rate,
    pub status_query_us: Latency,
    pub audit_query_us: Latency,
    pub peak_rss_mb: f64,
    /// Where the history was kept (`keep` on the embedded store).
    #[serde(skip)]
    pub kept: Option<PathBuf>,
}

/// A directory removed when dropped: the scratch space of one run.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Result<Self> {
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

fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::unavailable(format!("bench: {}: {e}", path.display()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

impl Hoist {
    /// Runs the bench on a thread of its own (it drives its own runtimes, one per worker);
    /// `kept` in the report says where a `keep` history is.
    pub fn bench(&self, args: &BenchArgs) -> Result<Report> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| bench(self, args))
                .join()
                .expect("the bench does not panic")
        })
    }
}

fn bench(hoist: &Hoist, args: &BenchArgs) -> Result<Report> {
    if args.apps == 0 || args.events == 0 {
        return Err(Error::rejected(
            "bench: --apps and --events must be at least 1",
        ));
    }
    let store_dir = match &hoist.settings.log {
        Log::Nats(_) => return bench_nats(hoist, args),
        Log::Embedded { dir } => dir.clone(),
    };
    let scratch = Scratch::new("log")?;
    let dir = if args.keep {
        store_dir
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
    let written: Vec<Result<u64>> = std::thread::scope(|scope| {
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
    let events = written.into_iter().sum::<Result<u64>>()?;

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
    let mut models = crate::store::open_in(&models_dir.0)?;
    let started = Instant::now();
    let replayed = rt.block_on(models.catch_up(&store, &mut |_, _| {}))?;
    let replay_took = started.elapsed();

    let (status_query_us, audit_query_us) =
        rt.block_on(measure_queries(&mut models, &store, &apps))?;
    drop(models);
    if args.keep {
        let mut own = crate::store::open_in(&dir.join("projections"))?;
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
        kept: args.keep.then_some(dir),
    };
    drop(store);
    Ok(report)
}

/// `status` and `audit --app A --limit 20` latency on caught-up models, the catch-up check
/// (a look at the log's last sequence) included, as a command pays it.
async fn measure_queries<S: EventStore>(
    models: &mut ProjectionStore,
    store: &S,
    apps: &[AppName],
) -> Result<(Latency, Latency)> {
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
fn bench_nats(hoist: &Hoist, args: &BenchArgs) -> Result<Report> {
    let Log::Nats(nats) = &hoist.settings.log else {
        unreachable!("called for a NATS log")
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let run = format!("{:08x}", uuid::Uuid::now_v7().as_u128() as u32);
        let mut options = hoist.settings.nats_options(nats);
        options.timeout = Duration::from_secs(30);
        let mut raw_options = options.clone();
        raw_options.commit_check = None;
        raw_options.stream = format!("HOIST_BENCH_RAW_{run}");
        raw_options.subject_prefix = format!("hoist.bench.{run}.raw.");
        if !args.keep {
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
                hoist.warn(&format!("bench stream {stream} not deleted: {e}"));
            }
        }
        result
    })
}

async fn bench_on_nats(
    args: &BenchArgs,
    run: &str,
    store: &NatsStore,
    raw: &NatsStore,
) -> Result<Report> {
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
    let events = written.into_iter().sum::<Result<u64>>()?;

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
    let mut models = crate::store::open_in(&models_dir.0)?;
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
        kept: None,
    })
}

/// One worker's share: create its apps, then cycle through them issuing the workload's commands
/// until `quota` events are written. Returns the events written.
async fn write_history<S: EventStore>(
    store: &S,
    apps: &[&AppName],
    quota: u64,
    seed: usize,
) -> Result<u64> {
    let mut states: Vec<AppState> = vec![AppState::default(); apps.len()];
    let mut workload = Workload::new(seed as u64);
    let mut written = 0u64;
    let mut step = 0usize;
    while written < quota {
        let i = step % apps.len();
        step += 1;
        let (command, actor) = workload.next(&states[i])?;
        let ctx = CommandContext::new(actor);
        match execute_cached(store, apps[i], &command, &ctx, &mut states[i]).await {
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

impl Report {
    /// The rates beside their baselines, the query latencies and the peak memory.
    pub fn human(&self, width: crate::human::Width) -> String {
        let rate = |r: &Rate| {
            [
                format!("{:.0}", r.events_per_s),
                format!("{:.0}", r.baseline_per_s),
                format!("{:.3}", r.ratio),
            ]
        };
        let [a1, a2, a3] = rate(&self.append);
        let [r1, r2, r3] = rate(&self.replay);
        let mut text = format!(
            "hoist bench: {} backend, {} apps, {} events\n",
            self.backend, self.apps, self.events
        );
        text.push_str(&crate::human::table(
            ["", "EVENTS/S", "BASELINE/S", "RATIO"],
            [
                ["append (optimistic, many apps)".to_string(), a1, a2, a3],
                ["replay into read models".to_string(), r1, r2, r3],
            ],
            width,
        ));
        text.push_str(&format!(
            "status query: p50 {} µs, p99 {} µs\naudit --app --limit 20: p50 {} µs, p99 {} µs\npeak RSS: {} MB\n",
            self.status_query_us.p50,
            self.status_query_us.p99,
            self.audit_query_us.p50,
            self.audit_query_us.p99,
            self.peak_rss_mb
        ));
        if let Some(dir) = &self.kept {
            text.push_str(&format!("History kept in {}\n", dir.display()));
        }
        text
    }
}
