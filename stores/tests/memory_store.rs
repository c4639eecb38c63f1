//! The in-memory store keeps the `EventStore` contract: the engine's conformance suite; and the
//! contract's default reads, run over it.

use hoist_engine::store::{conformance, Appended, EventStore, NewCommit, StoreError, StoredCommit};
use hoist_engine::AppName;
use hoist_stores::memory::MemoryStore;
use uuid::Uuid;

#[tokio::test]
async fn conformance_suite() {
    conformance::run(&MemoryStore::new()).await;
}

/// The memory store with only the reads every backend must have: `read_app_back` is the
/// trait's default, the one the NATS store uses (windows of the log's sequences).
struct DefaultReads(MemoryStore);

impl EventStore for DefaultReads {
    async fn append_batch(&self, commits: Vec<NewCommit>) -> Result<Vec<Appended>, StoreError> {
        self.0.append_batch(commits).await
    }
    async fn read_app(&self, app: &AppName) -> Result<Vec<StoredCommit>, StoreError> {
        self.0.read_app(app).await
    }
    async fn read_from(&self, from_seq: u64, max: usize) -> Result<Vec<StoredCommit>, StoreError> {
        self.0.read_from(from_seq, max).await
    }
    async fn last_seq(&self) -> Result<u64, StoreError> {
        self.0.last_seq().await
    }
    async fn apps(&self) -> Result<Vec<AppName>, StoreError> {
        self.0.apps().await
    }
}

/// The default `read_app_back` gives what the memory store's own index gives, on a log long
/// enough that its windows grow several times (apps of every density: one app's commits are a
/// sixth of the log, another's most of it).
#[tokio::test]
async fn the_default_read_back_widens_its_windows_until_it_has_enough() {
    let store = DefaultReads(MemoryStore::new());
    let apps: Vec<AppName> = ["dense", "sparse", "rare"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let total: u64 = 24_000;
    for i in 0..total {
        let owner = &apps[match i % 6 {
            0 => 1,
            5 if i % 600 == 5 => 2,
            _ => 0,
        }];
        let head = store.0.read_app_back(owner, u64::MAX, 1).await.unwrap();
        let head = head.last().map_or(0, |c| c.seq);
        store
            .append(owner, head, Uuid::now_v7(), i.to_be_bytes().to_vec())
            .await
            .unwrap();
    }
    for app in &apps {
        for through in [total, total / 2, 1_000] {
            for max in [1, 50, 700, 3_000, usize::MAX] {
                assert_eq!(
                    store.read_app_back(app, through, max).await.unwrap(),
                    store.0.read_app_back(app, through, max).await.unwrap(),
                    "{app} through {through}, max {max}"
                );
            }
        }
    }
}
