//! The backends of hoist's log, each an implementation of the engine's `EventStore` trait, and of
//! its read models' databases, the engine's `ModelStore` (the engine owns the traits and their
//! conformance suites; this crate owns every I/O behind them):
//!
//! - `file`: the embedded log, an append-only checksummed file in a directory;
//! - `sled`: reading a sled-era store once to migrate it into `file`, and the snapshot cleanup
//!   every sled database here needs;
//! - `models`: `SledModels`, the read models' databases (the engine's `ModelStore`) on disk;
//! - `nats`: a NATS JetStream stream, shared by any number of processes;
//! - `memory`: a log (`MemoryStore`) and read models' databases (`MemoryModels`) in memory, for
//!   tests;
//! - `any`: `AnyStore::open(StoreConfig)`, the one a front end opens from its settings;
//! - `nats_work`: how several `hoist serve` instances share the work on one NATS stream;
//! - `snapshots`: `SnapshotDir`, apps' decide-state snapshots in a directory (issue 15);
//! - `shared`: `SharedModels`, read-model snapshots shared on the NATS server (issue 15).
//!
//! The `bench` feature adds the raw baselines (`raw_scan`, `raw_read`, `raw_publish`) that
//! `hoist bench` and the criterion benches measure hoist against; production code does not see them.

pub mod any;
pub mod file;
pub mod journal;
pub mod memory;
pub mod models;
pub mod nats;
pub mod nats_work;
pub mod shared; // issue 15
pub mod sled;
pub mod snapshots; // issue 15

pub use any::{AnyStore, StoreConfig};

/// The last `max` of an app's ascending log sequences `seqs` in `after < seq <= through`: how
/// the stores with a per-app index answer `read_app_after` and `read_app_back`.
pub(crate) fn last_in(seqs: &[u64], after: u64, through: u64, max: usize) -> &[u64] {
    let first = seqs.partition_point(|&seq| seq <= after);
    let end = seqs.partition_point(|&seq| seq <= through).max(first);
    &seqs[end.saturating_sub(max).max(first)..end]
}
