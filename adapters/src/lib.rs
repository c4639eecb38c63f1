//! hoist's outside world: turn a release into what a target needs and report what happened.
//!
//! - `render`: the desired Kubernetes objects of a release (one renderer for every target);
//! - `cluster`: the kube target: server-side apply, rollout wait, garbage collection;
//! - `manifests`: the GitOps target: YAML files in a directory;
//! - `exec`: the escape hatch: a shell command handed the release;
//! - `target`: every target kind behind one `apply` and one `plan` (`apply --dry-run`).
//!
//! **Architecture invariant**: adapters never decide. They apply what a release says and return a
//! [`Report`]; the caller records it as an event through the engine, whose rules (idempotent
//! recording, auto-rollback) decide what follows. Nothing here appends to the log.

pub mod cluster;
pub mod drift; // issue 16
pub mod exec;
pub mod manifests;
pub mod notify;
pub mod render;
pub mod target;

pub use hoist_engine::Outcome;

/// What applying a release to a target came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    /// Whether the target changed: `false` when it already held exactly this release.
    pub changed: bool,
    /// For humans: what happened, first line a summary. Never a secret.
    pub detail: String,
}
