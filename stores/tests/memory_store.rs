//! The in-memory store keeps the `EventStore` contract: the engine's conformance suite.

use hoist_engine::store::conformance;
use hoist_stores::memory::MemoryStore;

#[tokio::test]
async fn conformance_suite() {
    conformance::run(&MemoryStore::new()).await;
}
