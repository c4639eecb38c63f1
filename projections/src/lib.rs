//! Read models folded from the event log. Today: the audit view (one entry per event, and the
//! filter `hoist audit` applies). Every model here is a pure function of events; none writes to
//! the log.
//!
//! **Architecture invariant**: projections never decide; they only read what the engine recorded.

pub mod audit;
