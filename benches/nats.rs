//! criterion benches of the NATS JetStream backend, each beside its raw baseline, on a
//! `nats-server` the bench starts itself (`$NATS_SERVER_BIN`, else `nats-server` on `PATH`):
//!
//! - append: `NatsStore::append` (expected last subject sequence + message id, one app's
//!   appends in order, every app in flight) vs raw async publish of the same payloads with the
//!   same number of tasks, acks awaited in windows;
//!   between them, the same headers and one publish per app in flight without hoist's code (what
//!   the protocol alone costs);
//! - replay: catch-up of fresh read models vs an ordered push consumer reading the stream.
//!
//! Run: `cargo bench --bench nats` (medians in docs/performance.md).

#[path = "../tests/support/nats_server.rs"]
mod nats_server;

#[path = "support/history.rs"]
mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hoist_engine::store::EventStore;
use hoist_engine::AppName;
use hoist_stores::nats::{raw_publish, raw_publish_expecting, NatsOptions, NatsStore};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Apps in flight at once, and commits each appends per measured round.
const APPS: usize = 20;
const COMMITS_PER_APP: usize = 250;
/// Publishes in flight per baseline task before their acks are awaited.
const WINDOW: usize = 1_000;

fn apps() -> Vec<AppName> {
    (0..APPS)
        .map(|i| format!("app-{i}").parse().unwrap())
        .collect()
}

/// `hoist bench`'s workload through the command path, every app in flight.
async fn history(store: &NatsStore) {
    futures::future::join_all(apps().into_iter().enumerate().map(|(i, app)| async move {
        let mut writer = common::Writer::new(app, i as u64);
        for _ in 0..COMMITS_PER_APP {
            writer.commit(store).await;
        }
    }))
    .await;
}

fn benches(c: &mut Criterion) {
    let server = nats_server::NatsServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let connect = |stream: &str, prefix: &str| {
        let mut options = NatsOptions::new(server.url());
        options.stream = stream.to_string();
        options.subject_prefix = prefix.to_string();
        options.timeout = Duration::from_secs(30);
        rt.block_on(NatsStore::connect(options)).unwrap()
    };
    let store = connect("HOIST", "hoist.app.");
    rt.block_on(history(&store));
    let commits = rt.block_on(store.read_from(1, usize::MAX)).unwrap();
    let n_commits = commits.len() as u64;
    let apps = apps();
    let by_app: Vec<Vec<Vec<u8>>> = apps
        .iter()
        .map(|app| {
            commits
                .iter()
                .filter(|c| c.app == *app)
                .map(|c| c.payload.clone())
                .collect()
        })
        .collect();

    let mut g = c.benchmark_group("nats append");
    g.throughput(Throughput::Elements(n_commits))
        .sample_size(10);
    let append = connect("APPEND", "append.app.");
    let mut round = 0;
    g.bench_function("NatsStore::append, 20 apps in flight", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let apps: Vec<AppName> = (0..APPS)
                    .map(|i| format!("r{round}-app-{i}").parse().unwrap())
                    .collect();
                let started = Instant::now();
                rt.block_on(futures::future::join_all(apps.iter().zip(&by_app).map(
                    |(app, payloads)| {
                        let append = &append;
                        async move {
                            let mut last = 0;
                            for payload in payloads {
                                last = append
                                    .append(app, last, Uuid::now_v7(), payload.clone())
                                    .await
                                    .unwrap()
                                    .seq;
                            }
                        }
                    },
                )));
                took += started.elapsed();
            }
            took
        })
    });
    // Where the append's time goes: the same protocol as `NatsStore::append` without hoist's
    // code around it.
    let same_headers = connect("HEADERS", "headers.app.");
    let mut round = 0;
    g.bench_function("publish with append's headers, 20 apps in flight", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let subjects: Vec<String> = (0..APPS)
                    .map(|i| same_headers.subject(&format!("r{round}-app-{i}").parse().unwrap()))
                    .collect();
                let started = Instant::now();
                for published in rt.block_on(futures::future::join_all(
                    subjects.iter().zip(&by_app).map(|(subject, payloads)| {
                        raw_publish_expecting(same_headers.jetstream(), subject, payloads)
                    }),
                )) {
                    published.unwrap();
                }
                took += started.elapsed();
            }
            took
        })
    });
    let grouped = connect("GROUPED", "grouped.app.");
    let mut round = 0;
    g.bench_function(
        "atomic batches of one commit per app, append's headers",
        |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let apps: Vec<AppName> = (0..APPS)
                        .map(|i| format!("r{round}-app-{i}").parse().unwrap())
                        .collect();
                    let started = Instant::now();
                    rt.block_on(grouped.raw_publish_grouped(&apps, &by_app))
                        .unwrap();
                    took += started.elapsed();
                }
                took
            })
        },
    );
    let raw = connect("RAW", "raw.app.");
    g.bench_function("baseline raw publish, 20 tasks, windowed acks", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let messages: Vec<Vec<(String, Vec<u8>)>> = apps
                    .iter()
                    .zip(&by_app)
                    .map(|(app, payloads)| {
                        payloads
                            .iter()
                            .map(|p| (raw.subject(app), p.clone()))
                            .collect()
                    })
                    .collect();
                let started = Instant::now();
                for published in rt.block_on(futures::future::join_all(
                    messages
                        .iter()
                        .map(|m| raw_publish(raw.jetstream(), m, WINDOW)),
                )) {
                    published.unwrap();
                }
                took += started.elapsed();
            }
            took
        })
    });
    g.finish();

    let mut g = c.benchmark_group("nats replay");
    g.throughput(Throughput::Elements(n_commits))
        .sample_size(10);
    common::bench_catch_up(&mut g, &rt, &store);
    g.bench_function("baseline ordered consumer read", |b| {
        b.iter(|| std::hint::black_box(rt.block_on(store.raw_read()).unwrap()))
    });
    g.finish();
}

criterion_group!(nats, benches);
criterion_main!(nats);
