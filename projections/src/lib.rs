//! Read models folded from the event log, persisted with their checkpoints.
//!
//! - `audit`: one entry per event and the filters of `hoist audit`;
//! - `model`: the read models as pure folds (current state per app and env, release history,
//!   audit index);
//! - `store`: their persistence through the engine's `ModelStore` trait (implemented in
//!   `hoist-stores`: sled databases in a directory), catch-up from checkpoints, rebuild and the
//!   queries of `status`, `releases` and `audit`.
//!
//! **Architecture invariant**: projections never decide and never write to the log; they only
//! read what the engine recorded, through the `EventStore` trait, so they serve every backend,
//! and keep what they fold through the `ModelStore` trait: this crate depends on the engine
//! alone, no storage crate.

pub mod audit;
pub mod model;
pub mod store;
