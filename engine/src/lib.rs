//! hoist's domain and log.
//!
//! - `names`: validated names and identifiers;
//! - `event`: what happened (domain events and their envelope);
//! - `codec`: domain ↔ protobuf, the only module that sees `hoist-proto`'s types;
//! - `state` + `decide`: the pure core, `apply(state, event)` and `decide(state, command)`;
//! - `authorize`: whether a principal may take an action on apps × envs (pure, before `decide`);
//! - `access`: identities' tokens, grants and chat links on the access chain: their fold,
//!   `decide` and `check_event`;
//! - `secrets`: sealing secret config values before they reach the log;
//! - `store`: the `EventStore` trait and its conformance suite (the backends: `hoist-stores`);
//! - `models`: the `ModelStore` trait the read models are kept through, and its conformance
//!   suite (the implementations: `hoist-stores`);
//! - `service`: the edge that runs a command against a store, with optimistic retries;
//! - `chain`: verification of the per-app hash chain;
//! - `validate`: whether a recorded event could have happened (the domain rules, on events);
//! - `import`: an exported history checked whole, then appended as one batch;
//! - `snapshot` + `index`: snapshots of an app's decide state, and the compact indexes in it
//!   that grow with its history (issue 15).
//!
//! **Architecture invariant**: nothing here knows about the CLI, Kubernetes or HTTP, and nothing
//! here does I/O: no sled, NATS client or async runtime (checked by `tests/architecture.rs`).

pub mod access;
pub mod authorize;
pub mod chain;
pub mod codec;
pub mod decide;
pub mod event;
pub mod formation;
pub mod hooks;
pub mod import;
pub mod index; // issue 15
pub mod models;
pub mod names;
pub mod pipeline; // issue 16
pub mod secrets;
pub mod service;
pub mod snapshot; // issue 15
pub mod state;
pub mod store;
pub mod validate;

pub use access::{AccessCommand, AccessState, TokenHash};
pub use authorize::{authorize, Action, Denied, Grant, Principal, Role, Scope};
pub use decide::{decide, Artifact, Command, DomainError, PolicyChanges, Verification};
pub use event::{
    Build, Config, ConfigValue, DriftedField, DriftedObject, Envelope, Event, EventHash, Outcome,
    PipelinePolicy, PromotionSource, Recorded, Release, ReleaseKind, Summary, Target,
};
pub use names::{
    Actor, AppName, BuildId, ChatId, ConfigKey, EnvName, HookName, ImageRef, ReleaseVersion,
    TokenId, ValidationError, VarName,
};
// issue 14
pub use formation::{Formation, Process, Processes, Routing, Scale};
pub use names::{Hostname, ProcessType};
pub use state::{AppState, Drift, EnvState, Lock, Pin, ReleaseRecord, Rollout};
