//! The NATS store's raw baselines (feature `bench`: `hoist bench` and benches/ measure hoist
//! against them) against a real `nats-server` (see tests/support/nats_server.rs).

#[path = "../../tests/support/nats_server.rs"]
mod nats_server;

use futures::future::join_all;
use hoist_engine::names::AppName;
use hoist_engine::store::EventStore;
use hoist_stores::nats::{raw_publish, NatsOptions, NatsStore};
use nats_server::NatsServer;
use std::time::Duration;

/// `hoist --nats URL bench --apps 100` hung in its raw publish baseline: 100 tasks sharing one
/// JetStream context, each holding up to a window of unpolled acks, took the context's 5,000 ack
/// permits and then all waited for more. More tasks × window than permits must still finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_publish_from_many_tasks_past_the_ack_cap_finishes() {
    let server = NatsServer::start();
    let store = NatsStore::connect(NatsOptions::new(server.url()))
        .await
        .expect("connect to the test server");
    let (tasks, each) = (100, 200);
    let messages: Vec<Vec<(String, Vec<u8>)>> = (0..tasks)
        .map(|t| {
            let subject = store.subject(&format!("raw-{t}").parse::<AppName>().unwrap());
            (0..each)
                .map(|n| (subject.clone(), format!("{t}/{n}").into_bytes()))
                .collect()
        })
        .collect();
    let published = tokio::time::timeout(
        Duration::from_secs(60),
        join_all(
            messages
                .iter()
                .map(|m| raw_publish(store.jetstream(), m, 1_000)),
        ),
    )
    .await
    .expect("raw publishes past the ack cap finish");
    for result in published {
        result.unwrap();
    }
    assert_eq!(store.last_seq().await.unwrap(), (tasks * each) as u64);
}
