//! The NATS JetStream backend against real `nats-server` processes (see
//! tests/support/nats_server.rs): the conformance suite, concurrency, idempotency, refusing an
//! incompatible stream, an unreachable server, kill -9 and restart, and an R3 cluster losing a node.

#[path = "../../tests/support/nats_server.rs"]
mod nats_server;

use async_nats::jetstream::stream::{Config, StorageType};
use futures::future::join_all;
use hoist_engine::names::AppName;
use hoist_engine::store::{conformance, Appended, EventStore, NewCommit, StoreError, StoredCommit};
use hoist_stores::nats::{NatsOptions, NatsStore, DEFAULT_STREAM};
use nats_server::{NatsCluster, NatsServer};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

fn app(name: &str) -> AppName {
    name.parse().expect("valid app name")
}

async fn connect(url: &str) -> NatsStore {
    NatsStore::connect(NatsOptions::new(url))
        .await
        .expect("connect to the test server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let server = NatsServer::start();
    let store = connect(&server.url()).await;
    assert!(
        store.direct_reads(),
        "nats-server ≥ 2.11 serves batched direct gets"
    );
    conformance::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_app_conflicts_while_different_apps_all_succeed() {
    let server = NatsServer::start();
    let store = connect(&server.url()).await;

    // 32 racers with one expectation on one app: exactly one wins, the rest conflict.
    let hot = app("hot");
    let base = store
        .append(&hot, 0, Uuid::now_v7(), b"base".to_vec())
        .await
        .unwrap();
    let racers = (0..32).map(|i| {
        store.append(
            &hot,
            base.seq,
            Uuid::now_v7(),
            format!("racer {i}").into_bytes(),
        )
    });
    let results = join_all(racers).await;
    let winners: Vec<&Appended> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for result in &results {
        match result {
            Ok(_) => {}
            Err(StoreError::Conflict {
                app,
                expected,
                actual,
            }) => {
                assert_eq!(
                    (app, *expected, *actual),
                    (&hot, base.seq, winners[0].seq),
                    "the conflict names the winner"
                );
            }
            Err(other) => panic!("a lost race is a conflict, got {other}"),
        }
    }

    // 64 apps, each a chain of 10 appends, all in flight at once: none conflicts.
    let apps: Vec<AppName> = (0..64).map(|i| app(&format!("app-{i:02}"))).collect();
    let chains = apps.iter().map(|a| {
        let store = &store;
        async move {
            let mut last = 0;
            for n in 0..10 {
                last = store
                    .append(a, last, Uuid::now_v7(), format!("{a} {n}").into_bytes())
                    .await
                    .unwrap()
                    .seq;
            }
        }
    });
    join_all(chains).await;
    for a in &apps {
        let commits = store.read_app(a).await.unwrap();
        let payloads: Vec<String> = commits
            .iter()
            .map(|c| String::from_utf8(c.payload.clone()).unwrap())
            .collect();
        assert_eq!(
            payloads,
            (0..10).map(|n| format!("{a} {n}")).collect::<Vec<_>>()
        );
        assert!(commits.windows(2).all(|w| w[0].seq < w[1].seq));
    }
    assert_eq!(store.last_seq().await.unwrap(), 2 + 64 * 10);
    let listed = store.apps().await.unwrap();
    assert_eq!(listed.len(), 65);
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "apps are sorted");
    let all = store.read_from(1, usize::MAX).await.unwrap();
    assert_eq!(all.len(), 2 + 64 * 10);
    assert!(
        all.iter().enumerate().all(|(i, c)| c.seq == i as u64 + 1),
        "the log is gap-free and in order"
    );
    // Pages that cross from direct gets to a consumer (past DIRECT_BATCH) and end exactly at `max`.
    assert_eq!(store.read_from(200, 300).await.unwrap(), all[199..499]);
    assert_eq!(store.read_from(600, usize::MAX).await.unwrap(), all[599..]);
    assert!(store
        .read_from(all.len() as u64 + 1, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_history_is_read_whole_and_in_order() {
    let server = NatsServer::start();
    let store = connect(&server.url()).await;
    let (long, other) = (app("long"), app("other"));
    let (mut long_last, mut other_last) = (0, 0);
    let mut expected = Vec::new();
    // Interleaved, so reading one app must skip the other's commits; longer than a direct batch.
    for n in 0..600 {
        let payload = format!("long {n}").into_bytes();
        long_last = store
            .append(&long, long_last, Uuid::now_v7(), payload.clone())
            .await
            .unwrap()
            .seq;
        expected.push((long_last, payload));
        other_last = store
            .append(&other, other_last, Uuid::now_v7(), b"noise".to_vec())
            .await
            .unwrap()
            .seq;
    }
    let read = store.read_app(&long).await.unwrap();
    assert_eq!(
        read.iter()
            .map(|c| (c.seq, c.payload.clone()))
            .collect::<Vec<_>>(),
        expected
    );
    assert!(read.iter().all(|c| c.app == long));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_commit_id_is_stored_once() {
    let server = NatsServer::start();
    let store = connect(&server.url()).await;
    let web = app("web");
    let id = Uuid::now_v7();
    let first = store.append(&web, 0, id, b"v1".to_vec()).await.unwrap();
    assert!(!first.duplicate);

    // The same publish many times at once (a client retrying over a flaky link).
    let retries = join_all((0..16).map(|_| store.append(&web, 0, id, b"v1".to_vec()))).await;
    for retry in retries {
        assert_eq!(
            retry.unwrap(),
            Appended {
                seq: first.seq,
                duplicate: true
            }
        );
    }
    // Even with an expectation that would now pass, the id is not stored again.
    assert_eq!(
        store
            .append(&web, first.seq, id, b"v1".to_vec())
            .await
            .unwrap(),
        Appended {
            seq: first.seq,
            duplicate: true
        }
    );
    assert_eq!(store.read_app(&web).await.unwrap().len(), 1);
    assert_eq!(store.last_seq().await.unwrap(), first.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_its_stale_expectation_is_a_duplicate_even_past_the_window() {
    let server = NatsServer::start();
    let mut options = NatsOptions::new(server.url());
    options.duplicate_window = Duration::from_secs(1);
    let store = NatsStore::connect(options).await.unwrap();
    let (api, worker) = (app("api"), app("worker"));
    let lost = Uuid::now_v7();
    let stored = store
        .append(&api, 0, lost, b"lost ack".to_vec())
        .await
        .unwrap();
    let buried = Uuid::now_v7();
    let stored_buried = store
        .append(&worker, 0, buried, b"w1".to_vec())
        .await
        .unwrap();
    let w2 = store
        .append(&worker, stored_buried.seq, Uuid::now_v7(), b"w2".to_vec())
        .await
        .unwrap();

    // Within the window: the server refuses the stale expectation before it looks at the id;
    // the store recognises its own commit.
    assert_eq!(
        store
            .append(&api, 0, lost, b"lost ack".to_vec())
            .await
            .unwrap(),
        Appended {
            seq: stored.seq,
            duplicate: true
        }
    );
    assert_eq!(
        store
            .append(&worker, 0, buried, b"w1".to_vec())
            .await
            .unwrap(),
        Appended {
            seq: stored_buried.seq,
            duplicate: true
        }
    );

    // Waiting out the server's memory of the ids is the point of what follows.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        store
            .append(&api, 0, lost, b"lost ack".to_vec())
            .await
            .unwrap(),
        Appended {
            seq: stored.seq,
            duplicate: true
        }
    );
    // Also when other commits came after it.
    assert_eq!(
        store
            .append(&worker, 0, buried, b"w1".to_vec())
            .await
            .unwrap(),
        Appended {
            seq: stored_buried.seq,
            duplicate: true
        }
    );
    // A different commit with that stale expectation is a conflict naming the app's last.
    match store
        .append(&worker, 0, Uuid::now_v7(), b"w1'".to_vec())
        .await
    {
        Err(StoreError::Conflict {
            expected: 0,
            actual,
            ..
        }) => assert_eq!(actual, w2.seq),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.last_seq().await.unwrap(), 3);
}

/// Connects to a stream created beforehand with hoist's configuration as `edit` changes it.
async fn connect_to_stream(server: &NatsServer, edit: impl FnOnce(&mut Config)) -> NatsStore {
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut config = NatsStore::stream_config(&NatsOptions::new(server.url()));
    edit(&mut config);
    js.create_stream(config).await.unwrap();
    connect(&server.url()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_direct_gets_is_read_through_a_consumer() {
    let server = NatsServer::start();
    let store = connect_to_stream(&server, |config| config.allow_direct = false).await;
    assert!(!store.direct_reads());
    conformance::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_atomic_batches_refuses_a_batch_and_stores_nothing() {
    let server = NatsServer::start();
    let store = connect_to_stream(&server, |config| config.allow_atomic_publish = false).await;
    let batch = ["a", "b"].map(|a| NewCommit {
        app: app(a),
        expected_last_seq: 0,
        commit_id: Uuid::now_v7(),
        payload: b"x".to_vec(),
    });
    match store.append_batch(batch.to_vec()).await {
        Err(StoreError::Refused(why)) => assert!(why.contains("allow_atomic"), "{why}"),
        other => panic!("a stream without allow_atomic refuses batches, got {other:?}"),
    }
    assert_eq!(store.last_seq().await.unwrap(), 0, "nothing was stored");
    // Single appends still work on such a stream.
    store
        .append(&app("a"), 0, Uuid::now_v7(), b"x".to_vec())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_existing_stream_is_reported_and_left_alone() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);

    // Right subjects, wrong storage.
    js.create_stream(Config {
        name: DEFAULT_STREAM.into(),
        subjects: vec!["hoist.app.>".into()],
        storage: StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let err = NatsStore::connect(NatsOptions::new(server.url()))
        .await
        .err()
        .expect("a memory stream is refused");
    let message = err.to_string();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        message.contains("stream HOIST") && message.contains("memory"),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
    let config = js
        .get_stream(DEFAULT_STREAM)
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    assert_eq!(
        config.storage,
        StorageType::Memory,
        "the stream was not changed"
    );

    // Other subjects, and a cap that would drop history.
    js.create_stream(Config {
        name: "ELSEWHERE".into(),
        subjects: vec!["other.>".into()],
        max_messages: 10,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut options = NatsOptions::new(server.url());
    options.stream = "ELSEWHERE".into();
    let message = NatsStore::connect(options)
        .await
        .err()
        .expect("a foreign stream is refused")
        .to_string();
    assert!(
        message.contains("other.>") && message.contains("max_msgs is 10"),
        "{message}"
    );

    // A new stream whose subjects another stream already takes.
    let mut options = NatsOptions::new(server.url());
    options.stream = "HOIST2".into();
    let message = NatsStore::connect(options)
        .await
        .err()
        .expect("overlapping subjects are refused")
        .to_string();
    assert!(
        message.contains("another stream already takes subjects hoist.app.>"),
        "{message}"
    );

    // Fewer replicas than asked for (and a single server cannot make three).
    let mut options = NatsOptions::new(server.url());
    options.replicas = 3;
    let message = NatsStore::connect(options)
        .await
        .err()
        .expect("R3 on one server is refused")
        .to_string();
    assert!(message.contains("stream HOIST"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_within_the_bound() {
    let bound = Duration::from_secs(2);

    // Nothing listens on the port: refused at once.
    let port = nats_server::free_port();
    let mut options = NatsOptions::new(format!("nats://hoist:s3cret@127.0.0.1:{port}"));
    options.timeout = bound;
    let started = Instant::now();
    let err = NatsStore::connect(options)
        .await
        .err()
        .expect("nothing listens there");
    assert!(
        started.elapsed() < bound + Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );
    let message = err.to_string();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        message.contains(&format!("nats://***@127.0.0.1:{port}")),
        "names the URL: {message}"
    );
    assert!(
        !message.contains("s3cret"),
        "never shows the password: {message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");

    // Something accepts the connection but never speaks NATS: bounded too.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let mut options = NatsOptions::new(url.clone());
    options.timeout = bound;
    let started = Instant::now();
    let err = NatsStore::connect(options)
        .await
        .err()
        .expect("a silent server is not a server");
    assert!(
        started.elapsed() < bound + Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains(&url)),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_authenticate() {
    let server = NatsServer::start_with_args(&["--user", "hoist", "--pass", "p@ss:word"]);
    let url = format!("nats://hoist:p%40ss%3Aword@127.0.0.1:{}", server.port());
    let store = connect(&url).await;
    store
        .append(&app("api"), 0, Uuid::now_v7(), b"x".to_vec())
        .await
        .unwrap();
    let wrong = format!("nats://hoist:nope@127.0.0.1:{}", server.port());
    let err = NatsStore::connect(NatsOptions::new(wrong))
        .await
        .err()
        .expect("a wrong password is refused");
    assert!(err.to_string().contains("authorization"), "{err}");

    let server = NatsServer::start_with_args(&["--auth", "t0ken"]);
    let store = connect(&format!("nats://t0ken@127.0.0.1:{}", server.port())).await;
    assert_eq!(store.last_seq().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_urls_connect_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl (Debian package openssl) is needed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca_subject = "/CN=hoist test CA";
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        ca_subject,
        "-keyout",
        &path("ca.key"),
        "-out",
        &path("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &path("server.key"),
        "-out",
        &path("server.csr"),
    ]);
    std::fs::write(
        path("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("server.csr"),
        "-CA",
        &path("ca.pem"),
        "-CAkey",
        &path("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &path("ext.cnf"),
        "-out",
        &path("server.pem"),
    ]);
    let server = NatsServer::start_with_args(&[
        "--tls",
        "--tlscert",
        &path("server.pem"),
        "--tlskey",
        &path("server.key"),
    ]);
    let mut options = NatsOptions::new(format!("tls://localhost:{}", server.port()));
    options.tls_ca_file = Some(path("ca.pem").into());
    let store = NatsStore::connect(options)
        .await
        .expect("TLS with the private CA");
    store
        .append(&app("api"), 0, Uuid::now_v7(), b"over tls".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.read_app(&app("api")).await.unwrap()[0].payload,
        b"over tls"
    );

    // Without the CA, the certificate is not trusted: a clear, bounded failure.
    let mut options = NatsOptions::new(format!("tls://localhost:{}", server.port()));
    options.timeout = Duration::from_secs(2);
    let err = NatsStore::connect(options)
        .await
        .err()
        .expect("an untrusted certificate is refused");
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("tls://localhost")),
        "{err:?}"
    );
}

/// What writers saw acknowledged, by app: commit id → (seq, payload).
type Acked = Arc<Mutex<BTreeMap<AppName, Vec<(Uuid, u64, Vec<u8>)>>>>;

/// Appends to `app` until `stop`, as the service would: a failure without an answer is retried
/// with the same commit id and expectation until it is acknowledged or conflicts.
async fn writer(
    store: Arc<NatsStore>,
    app: AppName,
    acked: Acked,
    total: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let mut last = 0;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = Uuid::now_v7();
        let payload = format!("{app} {n}").into_bytes();
        loop {
            match store.append(&app, last, id, payload.clone()).await {
                Ok(appended) => {
                    acked.lock().unwrap().entry(app.clone()).or_default().push((
                        id,
                        appended.seq,
                        payload.clone(),
                    ));
                    total.fetch_add(1, Ordering::Relaxed);
                    last = appended.seq;
                    break;
                }
                Err(StoreError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("{app}: {e}"),
            }
        }
        n += 1;
    }
}

async fn wait_for(total: &AtomicUsize, at_least: usize, within: Duration) {
    let started = Instant::now();
    while total.load(Ordering::Relaxed) < at_least {
        assert!(
            started.elapsed() < within,
            "only {} appends acknowledged after {within:?}",
            total.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every acknowledged commit is in the log once, at its acknowledged sequence, and nothing else is.
async fn assert_log_matches(store: &NatsStore, acked: &Acked) {
    let acked = acked.lock().unwrap().clone();
    let mut expected_total = 0;
    for (app, commits) in &acked {
        let stored: Vec<StoredCommit> = store.read_app(app).await.unwrap();
        let got: Vec<(u64, &[u8])> = stored
            .iter()
            .map(|c| (c.seq, c.payload.as_slice()))
            .collect();
        let want: Vec<(u64, &[u8])> = commits
            .iter()
            .map(|(_, seq, p)| (*seq, p.as_slice()))
            .collect();
        assert_eq!(
            got, want,
            "{app}: the log holds exactly the acknowledged commits, once each"
        );
        let unique: HashSet<&[u8]> = got.iter().map(|(_, p)| *p).collect();
        assert_eq!(unique.len(), got.len(), "{app}: no payload twice");
        expected_total += commits.len();
    }
    let all = store.read_from(1, usize::MAX).await.unwrap();
    assert_eq!(all.len(), expected_total);
    assert_eq!(
        store.last_seq().await.unwrap(),
        all.last().map_or(0, |c| c.seq)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_keeps_every_acknowledged_append_exactly_once() {
    let mut server = NatsServer::start();
    let mut options = NatsOptions::new(server.url());
    options.timeout = Duration::from_secs(3);
    let store = Arc::new(NatsStore::connect(options).await.unwrap());
    let acked: Acked = Default::default();
    let total = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|i| {
            tokio::spawn(writer(
                store.clone(),
                app(&format!("app-{i}")),
                acked.clone(),
                total.clone(),
                stop.clone(),
            ))
        })
        .collect();

    wait_for(&total, 300, Duration::from_secs(60)).await;
    tokio::task::block_in_place(|| server.kill9());
    let acked_before_kill = total.load(Ordering::Relaxed);
    tokio::task::block_in_place(|| server.restart());
    wait_for(&total, acked_before_kill + 300, Duration::from_secs(60)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert_log_matches(&store, &acked).await;

    // A fresh connection to the restarted server sees the same log.
    let fresh = connect(&server.url()).await;
    assert_log_matches(&fresh, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_stream_appends_batches_all_or_nothing() {
    // Replicated, a batch is staged on the leader and proposed whole: still all or nothing, and
    // still contiguous.
    let cluster = NatsCluster::start(3);
    let mut options = NatsOptions::new(cluster.urls());
    options.replicas = 3;
    options.timeout = Duration::from_secs(20);
    let store = NatsStore::connect(options)
        .await
        .expect("connect to the cluster");
    conformance::batch_is_all_or_nothing(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_stream_keeps_every_append_when_a_node_dies() {
    let mut cluster = NatsCluster::start(3);
    let mut options = NatsOptions::new(cluster.urls());
    options.replicas = 3;
    // A stream leader's death means an election: give appends time to ride it out.
    options.timeout = Duration::from_secs(20);
    let store = Arc::new(NatsStore::connect(options).await.unwrap());
    let info = store
        .jetstream()
        .get_stream(DEFAULT_STREAM)
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(info.config.num_replicas, 3);

    let first = app("app-0");
    let id = Uuid::now_v7();
    let original = store
        .append(&first, 0, id, b"first".to_vec())
        .await
        .unwrap();
    let acked: Acked = Default::default();
    acked
        .lock()
        .unwrap()
        .insert(first.clone(), vec![(id, original.seq, b"first".to_vec())]);
    // A retry with the original (now stale) expectation is the duplicate it is, on R3 too.
    assert_eq!(
        store
            .append(&first, 0, id, b"first".to_vec())
            .await
            .unwrap(),
        Appended {
            seq: original.seq,
            duplicate: true
        }
    );

    let total = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (1..5)
        .map(|i| {
            tokio::spawn(writer(
                store.clone(),
                app(&format!("app-{i}")),
                acked.clone(),
                total.clone(),
                stop.clone(),
            ))
        })
        .collect();
    wait_for(&total, 100, Duration::from_secs(60)).await;

    // Kill the stream's leader: the hardest node to lose.
    let mut stream = store.jetstream().get_stream(DEFAULT_STREAM).await.unwrap();
    let leader = stream
        .info()
        .await
        .unwrap()
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("the stream has a leader");
    let victim = cluster
        .index_of(&leader)
        .expect("the leader is one of ours");
    tokio::task::block_in_place(|| cluster.kill9(victim));
    let acked_before_kill = total.load(Ordering::Relaxed);
    wait_for(&total, acked_before_kill + 100, Duration::from_secs(90)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert_log_matches(&store, &acked).await;

    // The node comes back and catches up; the log is whole from every seed.
    tokio::task::block_in_place(|| cluster.restart(victim));
    let mut options = NatsOptions::new(cluster.nodes()[victim].url());
    options.replicas = 3;
    assert_log_matches(&NatsStore::connect(options).await.unwrap(), &acked).await;
}

/// A payload check as the binary's, simplified: a commit is any payload starting with "commit".
fn starts_with_commit(_: &AppName, payload: &[u8]) -> Result<(), String> {
    payload
        .starts_with(b"commit")
        .then_some(())
        .ok_or_else(|| "does not start with \"commit\"".to_string())
}

/// Foreign messages on hoist's subjects are skipped by every read (even a whole page of them),
/// listed by `quarantined()`, and passed over by appends to the app whose subject they are on;
/// a retry of an append stored past them is still recognised as the duplicate it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_are_not_commits_are_quarantined_and_read_past() {
    let server = NatsServer::start();
    let mut options = NatsOptions::new(server.url());
    options.commit_check = Some(starts_with_commit);
    let store = NatsStore::connect(options).await.unwrap();
    let api = app("api");
    let first = store
        .append(&api, 0, Uuid::now_v7(), b"commit 1".to_vec())
        .await
        .unwrap();
    let js = store.jetstream();
    let publish = |subject: &'static str, id: Option<String>, payload: &'static [u8]| async move {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = id {
            headers.insert("Nats-Msg-Id", id.as_str());
        }
        js.publish_with_headers(subject, headers, payload.into())
            .await
            .unwrap()
            .await
            .unwrap()
            .sequence
    };
    let mut foreign = vec![
        publish("hoist.app.api", None, b"commit without an id").await,
        publish(
            "hoist.app.Bad_Name",
            Some(Uuid::now_v7().to_string()),
            b"commit",
        )
        .await,
        publish("hoist.app.api", Some("not-a-uuid".into()), b"commit").await,
    ];
    // More than a direct-get batch of them in a row: a read goes on past a page of nothing.
    for _ in 0..300 {
        foreign.push(
            publish(
                "hoist.app.web",
                Some(Uuid::now_v7().to_string()),
                b"garbage",
            )
            .await,
        );
    }
    assert_eq!(store.read_app(&api).await.unwrap().len(), 1);
    assert!(store.read_app(&app("web")).await.unwrap().is_empty());
    assert_eq!(store.read_from(first.seq + 1, 10).await.unwrap(), vec![]);
    assert_eq!(store.apps().await.unwrap(), [app("api"), app("web")]);

    // The app's expectation is its last commit, though the server's last message on it is not.
    let id = Uuid::now_v7();
    let second = store
        .append(&api, first.seq, id, b"commit 2".to_vec())
        .await
        .unwrap();
    assert!(!second.duplicate);
    assert_eq!(
        store
            .append(&api, first.seq, id, b"commit 2".to_vec())
            .await
            .unwrap(),
        Appended {
            seq: second.seq,
            duplicate: true
        },
        "a retry under the stale expectation is recognised past the quarantined messages"
    );
    // A real conflict stays one.
    assert!(matches!(
        store
            .append(&api, first.seq, Uuid::now_v7(), b"commit 3".to_vec())
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let commits: Vec<u64> = store
        .read_from(1, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(commits, [first.seq, second.seq]);

    // An atomic batch (an import) passes over them too: web's subject holds only quarantined
    // messages, and a retry of the stored batch is recognised as the duplicate it is.
    let batch: Vec<NewCommit> = ["web", "web", "new"]
        .into_iter()
        .map(|a| NewCommit {
            app: app(a),
            expected_last_seq: 0,
            commit_id: Uuid::now_v7(),
            payload: b"commit".to_vec(),
        })
        .collect();
    let stored = store.append_batch(batch.clone()).await.unwrap();
    assert!(stored.iter().all(|a| !a.duplicate), "{stored:?}");
    assert_eq!(store.read_app(&app("web")).await.unwrap().len(), 2);
    let again = store.append_batch(batch).await.unwrap();
    assert_eq!(
        again
            .iter()
            .map(|a| (a.seq, a.duplicate))
            .collect::<Vec<_>>(),
        stored.iter().map(|a| (a.seq, true)).collect::<Vec<_>>()
    );
    let after_batch = store.read_from(1, usize::MAX).await.unwrap();
    let stored_seqs: Vec<u64> = stored.iter().map(|a| a.seq).collect();
    assert_eq!(after_batch.len(), 5);
    assert!(after_batch
        .iter()
        .rev()
        .map(|c| c.seq)
        .take(3)
        .all(|s| stored_seqs.contains(&s)));

    let listed: Vec<u64> = store
        .quarantined()
        .await
        .unwrap()
        .iter()
        .map(|q| q.seq)
        .collect();
    assert_eq!(listed, foreign);
    let fresh = NatsStore::connect({
        let mut o = NatsOptions::new(server.url());
        o.commit_check = Some(starts_with_commit);
        o
    })
    .await
    .unwrap();
    let reasons = fresh.quarantined().await.unwrap();
    assert!(
        reasons[0].reason.contains("Nats-Msg-Id"),
        "{:?}",
        reasons[0]
    );
    assert!(reasons[1].reason.contains("subject"), "{:?}", reasons[1]);
    assert_eq!(reasons[1].subject, "hoist.app.Bad_Name");
    assert!(reasons[3].reason.contains("payload"), "{:?}", reasons[3]);
}

/// A commit over the server's max_payload, or over an existing stream's max_msg_size, is refused
/// before it is sent, naming the limit and the size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_over_a_size_limit_are_refused_before_publishing() {
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("small.conf");
    std::fs::write(&conf, "max_payload: 4096\n").unwrap();
    let server = NatsServer::start_with_args(&["-c", conf.to_str().unwrap()]);
    let store = connect(&server.url()).await;
    let api = app("api");
    match store
        .append(&api, 0, Uuid::now_v7(), vec![b'x'; 5000])
        .await
    {
        Err(StoreError::TooLarge(m)) => {
            assert!(
                m.contains("max_payload of 4096 bytes") && m.contains("hoist.app.api"),
                "{m}"
            )
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // At the limit exactly, headers counted as the server counts them (103 bytes here: an
    // expectation of 0 and a commit id), the server takes it; a byte more is refused.
    assert!(matches!(
        store
            .append(&api, 0, Uuid::now_v7(), vec![b'x'; 4096 - 103 + 1])
            .await,
        Err(StoreError::TooLarge(_))
    ));
    let at_limit = store
        .append(&api, 0, Uuid::now_v7(), vec![b'x'; 4096 - 103])
        .await;
    assert!(at_limit.is_ok(), "{at_limit:?}");

    let js = store.jetstream();
    let mut config = NatsStore::stream_config(&NatsOptions::new(server.url()));
    config.name = "SMALL".into();
    config.subjects = vec!["small.app.>".into()];
    config.max_message_size = 1000;
    js.create_stream(config).await.unwrap();
    let mut options = NatsOptions::new(server.url());
    options.stream = "SMALL".into();
    options.subject_prefix = "small.app.".into();
    let small = NatsStore::connect(options).await.unwrap();
    match small.append(&api, 0, Uuid::now_v7(), vec![b'x'; 990]).await {
        Err(StoreError::TooLarge(m)) => assert!(
            m.contains("max_msg_size of 1000 bytes of stream SMALL"),
            "{m}"
        ),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(small
        .append(&api, 0, Uuid::now_v7(), vec![b'x'; 800])
        .await
        .is_ok());
    assert_eq!(
        small.last_seq().await.unwrap(),
        1,
        "nothing of the refused commit was stored"
    );
}
