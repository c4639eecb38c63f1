//! criterion benches of the log's hot paths, each beside its raw baseline:
//!
//! - decode: `codec::decode_commit` (protobuf → domain, with the hash) vs prost's decode alone;
//! - fold: the engine's `AppState` fold and the status read model's fold vs a bare walk;
//! - embedded append: `FileStore::append` (checks, one record, fdatasync) vs a plain file append +
//!   fdatasync of the same payload;
//! - replay: catch-up of fresh read models vs `FileStore::raw_scan` (no decoding);
//! - snapshot (issue 15): restoring (`SnapshotDir::load` + `snapshot::decode`) and saving
//!   (`snapshot::encode` + `SnapshotDir::save`) the decide snapshot of one app at 1k and at 20k
//!   own events (the 1k figures are the 20k ones' baseline: the goal is flat, ≤ 1.5×), beside a
//!   plain read and a plain write + rename of the same bytes.
//!
//! Run: `cargo bench --bench log` (medians in docs/performance.md).

#[path = "support/history.rs"]
mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hoist_engine::codec::decode_commit;
use hoist_engine::service::decode_commits;
use hoist_engine::snapshot::{self, SnapshotStore};
use hoist_engine::store::EventStore;
use hoist_engine::{AppName, AppState, Recorded};
use hoist_projections::model::AppStatus;
use hoist_proto::Message;
use hoist_stores::file::FileStore;
use hoist_stores::memory::MemoryStore;
use hoist_stores::snapshots::SnapshotDir;
use std::io::Write;
use std::time::Duration;
use uuid::Uuid;

const COMMITS: u64 = 5_000;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// A log of `COMMITS` commits over 10 apps, in turn: `hoist bench`'s workload.
fn history(dir: &std::path::Path) -> FileStore {
    let store = FileStore::open(dir, Duration::from_secs(30)).unwrap();
    rt().block_on(async {
        let mut apps: Vec<common::Writer> = (0..10)
            .map(|i| common::Writer::new(format!("app-{i}").parse().unwrap(), i))
            .collect();
        for n in 0..COMMITS as usize {
            let i = n % apps.len();
            apps[i].commit(&store).await;
        }
    });
    store
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = history(dir.path());
    let commits = rt().block_on(store.read_from(1, usize::MAX)).unwrap();
    let events = decode_commits(&commits).unwrap();
    let n_events = events.len() as u64;

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(commits.len() as u64));
    g.bench_function("hoist decode_commit", |b| {
        b.iter(|| {
            for commit in &commits {
                std::hint::black_box(decode_commit(commit.seq, &commit.payload).unwrap());
            }
        })
    });
    g.bench_function("baseline prost decode", |b| {
        b.iter(|| {
            for commit in &commits {
                std::hint::black_box(
                    hoist_proto::v1::Commit::decode(commit.payload.as_slice()).unwrap(),
                );
            }
        })
    });
    g.finish();

    // The folds take owned events, as a replay has them (decoded, then moved into the
    // model); copying the input is setup, not measured.
    let mut g = c.benchmark_group("fold");
    g.throughput(Throughput::Elements(n_events));
    g.bench_function("engine AppState fold", |b| {
        b.iter_batched(
            || events.clone(),
            AppState::fold::<Recorded>,
            BatchSize::LargeInput,
        )
    });
    g.bench_function("status model fold", |b| {
        b.iter_batched(
            || events.clone(),
            |events| {
                let mut status = AppStatus::default();
                for e in events {
                    status.apply(e.seq, e.envelope);
                }
                status
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("baseline walk", |b| {
        b.iter_batched(
            || events.clone(),
            |events| (events.iter().map(|e| e.seq).sum::<u64>(), events),
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let payload = commits[commits.len() / 2].payload.clone();
    let mut g = c.benchmark_group("embedded append");
    g.throughput(Throughput::Elements(1)).sample_size(20);
    let append_dir = tempfile::tempdir().unwrap();
    let append_store = FileStore::open(append_dir.path(), Duration::from_secs(30)).unwrap();
    let app: AppName = "bench".parse().unwrap();
    let mut last = 0;
    let rt = rt();
    g.bench_function("FileStore::append", |b| {
        b.iter(|| {
            let appended = rt
                .block_on(append_store.append(&app, last, Uuid::now_v7(), payload.clone()))
                .unwrap();
            last = appended.seq;
        })
    });
    let raw_dir = tempfile::tempdir().unwrap();
    let mut raw = std::fs::File::create(raw_dir.path().join("raw")).unwrap();
    g.bench_function("baseline file append+sync", |b| {
        b.iter(|| {
            raw.write_all(&payload).unwrap();
            raw.sync_data().unwrap();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(n_events)).sample_size(10);
    common::bench_catch_up(&mut g, &rt, &store);
    g.bench_function("baseline raw log scan", |b| {
        b.iter(|| std::hint::black_box(store.raw_scan().unwrap()))
    });
    g.finish();
}

/// One app's state after `commits` of `hoist bench`'s workload (one event each, mostly), as a
/// command saving a snapshot has it: restored from the snapshot taken `SNAPSHOT_EVERY` events
/// before, then the commits after it applied.
fn app_state(commits: usize) -> AppState {
    let store = MemoryStore::new();
    let app: AppName = "bench".parse().unwrap();
    let mut writer = common::Writer::new(app.clone(), 1);
    let events = rt().block_on(async {
        for _ in 0..commits {
            writer.commit(&store).await;
        }
        hoist_engine::service::load_events(&store, &app)
            .await
            .unwrap()
    });
    let cut = events.len() - hoist_engine::service::SNAPSHOT_EVERY as usize;
    let earlier = snapshot::encode(&app, &AppState::fold(&events[..cut]));
    let mut state = snapshot::decode(&app, &earlier).unwrap();
    for recorded in &events[cut..] {
        state.apply_mut(recorded);
    }
    state
}

fn snapshot_benches(c: &mut Criterion) {
    let app: AppName = "bench".parse().unwrap();
    let mut g = c.benchmark_group("snapshot");
    for (label, commits) in [("1k", 1_000), ("20k", 20_000)] {
        let state = app_state(commits);
        let dir = tempfile::tempdir().unwrap();
        let snapshots = SnapshotDir::new(dir.path());
        let bytes = snapshot::encode(&app, &state);
        snapshots.save(&app, &bytes).unwrap();
        let path = snapshots.path(&app);
        println!(
            "snapshot {label}: {} events, {} bytes",
            state.event_count,
            std::fs::metadata(&path).unwrap().len()
        );
        g.bench_function(format!("restore {label}"), |b| {
            b.iter(|| {
                let bytes = snapshots.load(&app).unwrap();
                snapshot::decode(&app, &bytes).unwrap()
            })
        });
        g.bench_function(format!("save {label}"), |b| {
            b.iter(|| {
                snapshots
                    .save(&app, &snapshot::encode(&app, &state))
                    .unwrap()
            })
        });
        g.bench_function(format!("baseline read {label}"), |b| {
            b.iter(|| std::fs::read(&path).unwrap())
        });
        let raw = std::fs::read(&path).unwrap();
        let tmp = dir.path().join("raw.tmp");
        let raw_path = dir.path().join("raw");
        g.bench_function(format!("baseline write+rename {label}"), |b| {
            b.iter(|| {
                std::fs::write(&tmp, &raw).unwrap();
                std::fs::rename(&tmp, &raw_path).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(log, benches, snapshot_benches);
criterion_main!(log);
