//! The behaviour every `EventStore` backend must show, as one suite each backend's tests call on
//! a fresh, empty store. Panics (with what broke) on the first difference.

use super::{EventStore, NewCommit, StoreError};
use crate::names::AppName;
use uuid::Uuid;

fn app(name: &str) -> AppName {
    name.parse().expect("valid app name")
}

/// Runs every check on `store`, which must be empty.
pub async fn run<S: EventStore>(store: &S) {
    empty_store(store).await;
    append_and_read(store).await;
    stale_expectation_conflicts(store).await;
    duplicate_commit_is_stored_once(store).await;
    apps_do_not_conflict_with_each_other(store).await;
    read_from_pages_in_order(store).await;
    read_app_back_gives_the_newest(store).await;
    concurrent_appends_to_one_app_admit_exactly_one(store).await;
    batch_is_all_or_nothing(store).await;
}

async fn empty_store<S: EventStore>(store: &S) {
    assert_eq!(store.last_seq().await.unwrap(), 0, "a fresh store is empty");
    assert!(store.apps().await.unwrap().is_empty());
    assert!(store.read_app(&app("nobody")).await.unwrap().is_empty());
    assert!(store.read_from(1, 10).await.unwrap().is_empty());
}

async fn append_and_read<S: EventStore>(store: &S) {
    let api = app("conf-api");
    let first = store
        .append(&api, 0, Uuid::now_v7(), b"one".to_vec())
        .await
        .unwrap();
    assert!(!first.duplicate);
    let second = store
        .append(&api, first.seq, Uuid::now_v7(), b"two".to_vec())
        .await
        .unwrap();
    assert!(second.seq > first.seq);
    let read = store.read_app(&api).await.unwrap();
    assert_eq!(
        read.iter()
            .map(|c| (c.seq, c.payload.as_slice()))
            .collect::<Vec<_>>(),
        [(first.seq, &b"one"[..]), (second.seq, b"two")]
    );
    assert!(read.iter().all(|c| c.app == api));
    assert_eq!(store.last_seq().await.unwrap(), second.seq);
    for (after, expected) in [
        (0, &read[..]),
        (first.seq, &read[1..]),
        (second.seq, &[][..]),
    ] {
        assert_eq!(
            store.read_app_after(&api, after).await.unwrap(),
            expected,
            "read_app_after({after}) gives the app's commits after that sequence"
        );
    }
}

/// `read_app_back(app, through, max)` is the last `max` of the app's commits up to `through`,
/// for every cut and count, with other apps' commits in between.
async fn read_app_back_gives_the_newest<S: EventStore>(store: &S) {
    let (one, other) = (app("conf-back-one"), app("conf-back-two"));
    for (i, owner) in [&one, &other, &one, &one, &other, &one]
        .into_iter()
        .enumerate()
    {
        let head = store
            .read_app(owner)
            .await
            .unwrap()
            .last()
            .map_or(0, |c| c.seq);
        let payload = format!("commit {i}").into_bytes();
        store
            .append(owner, head, Uuid::now_v7(), payload)
            .await
            .unwrap();
    }
    let all = store.read_app(&one).await.unwrap();
    let last = store.last_seq().await.unwrap();
    for through in 0..=last {
        let upto: Vec<_> = all.iter().filter(|c| c.seq <= through).cloned().collect();
        for max in 0..=all.len() + 1 {
            let expected = &upto[upto.len().saturating_sub(max)..];
            assert_eq!(
                store.read_app_back(&one, through, max).await.unwrap(),
                expected,
                "read_app_back(through {through}, max {max})"
            );
        }
    }
    assert!(store
        .read_app_back(&app("conf-back-none"), last, 3)
        .await
        .unwrap()
        .is_empty());
}

async fn stale_expectation_conflicts<S: EventStore>(store: &S) {
    let web = app("conf-web");
    let first = store
        .append(&web, 0, Uuid::now_v7(), b"a".to_vec())
        .await
        .unwrap();
    let before = store.last_seq().await.unwrap();
    for stale in [0, first.seq + 1000] {
        match store
            .append(&web, stale, Uuid::now_v7(), b"b".to_vec())
            .await
        {
            Err(StoreError::Conflict { app, expected, .. }) => {
                assert_eq!(app, web);
                assert_eq!(expected, stale);
            }
            other => panic!("a stale expectation ({stale}) must conflict, got {other:?}"),
        }
    }
    assert_eq!(
        store.last_seq().await.unwrap(),
        before,
        "a conflict appends nothing"
    );
    assert_eq!(store.read_app(&web).await.unwrap().len(), 1);
}

async fn duplicate_commit_is_stored_once<S: EventStore>(store: &S) {
    let worker = app("conf-worker");
    let id = Uuid::now_v7();
    let first = store.append(&worker, 0, id, b"x".to_vec()).await.unwrap();
    // A retry after a lost ack repeats the same id and the same expectation.
    let retry = store.append(&worker, 0, id, b"x".to_vec()).await.unwrap();
    assert!(
        retry.duplicate,
        "a repeated commit id is reported as a duplicate"
    );
    assert_eq!(retry.seq, first.seq);
    assert_eq!(store.read_app(&worker).await.unwrap().len(), 1);
}

async fn apps_do_not_conflict_with_each_other<S: EventStore>(store: &S) {
    let (a, b) = (app("conf-a"), app("conf-b"));
    let a1 = store
        .append(&a, 0, Uuid::now_v7(), b"a1".to_vec())
        .await
        .unwrap();
    let b1 = store
        .append(&b, 0, Uuid::now_v7(), b"b1".to_vec())
        .await
        .unwrap();
    // a's expectation is a's own last sequence, although b appended after it.
    let a2 = store
        .append(&a, a1.seq, Uuid::now_v7(), b"a2".to_vec())
        .await
        .unwrap();
    store
        .append(&b, b1.seq, Uuid::now_v7(), b"b2".to_vec())
        .await
        .unwrap();
    assert!(a2.seq > b1.seq);
    let apps = store.apps().await.unwrap();
    for name in [&a, &b] {
        assert!(apps.contains(name), "{name} is listed");
    }
    let mut sorted = apps.clone();
    sorted.sort();
    assert_eq!(apps, sorted, "apps are listed by name");
}

async fn read_from_pages_in_order<S: EventStore>(store: &S) {
    let last = store.last_seq().await.unwrap();
    let all = store.read_from(1, usize::MAX).await.unwrap();
    assert_eq!(all.last().map(|c| c.seq), Some(last));
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "the log is in sequence order"
    );
    let mut paged = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_from(from, 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(tail) = page.last() else { break };
        from = tail.seq + 1;
        paged.extend(page);
    }
    assert_eq!(paged, all, "reading in pages of 3 gives the whole log");
    let tail = store.read_from(all[2].seq, 2).await.unwrap();
    assert_eq!(tail, all[2..4]);
}

async fn concurrent_appends_to_one_app_admit_exactly_one<S: EventStore>(store: &S) {
    let hot = app("conf-hot");
    let base = store
        .append(&hot, 0, Uuid::now_v7(), b"base".to_vec())
        .await
        .unwrap();
    let racers = (0..8).map(|i| {
        store.append(
            &hot,
            base.seq,
            Uuid::now_v7(),
            format!("racer {i}").into_bytes(),
        )
    });
    let results = futures::future::join_all(racers).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        won, 1,
        "exactly one of eight appends with the same expectation wins: {results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(StoreError::Conflict { .. }))),
        "{results:?}"
    );
    assert_eq!(store.read_app(&hot).await.unwrap().len(), 2);
}

fn commit(app: &AppName, expected_last_seq: u64, payload: &str) -> NewCommit {
    NewCommit {
        app: app.clone(),
        expected_last_seq,
        commit_id: Uuid::now_v7(),
        payload: payload.as_bytes().to_vec(),
    }
}

/// The batch case alone (also run by `run`): for configurations whose other cases are covered
/// elsewhere.
pub async fn batch_is_all_or_nothing<S: EventStore>(store: &S) {
    let (x, y, z) = (
        app("conf-batch-x"),
        app("conf-batch-y"),
        app("conf-batch-z"),
    );
    let y1 = store
        .append(&y, 0, Uuid::now_v7(), b"y1".to_vec())
        .await
        .unwrap();

    // One stale expectation (y is at y1, not 0) and nothing of the batch is stored.
    let before = store.last_seq().await.unwrap();
    let stale = vec![
        commit(&x, 0, "x1"),
        commit(&x, 0, "x2"),
        commit(&y, 0, "y2"),
    ];
    match store.append_batch(stale).await {
        Err(StoreError::Conflict {
            app,
            expected,
            actual,
        }) => {
            assert_eq!((app, expected, actual), (y.clone(), 0, y1.seq));
        }
        other => panic!("a batch with a stale expectation conflicts, got {other:?}"),
    }
    assert_eq!(
        store.last_seq().await.unwrap(),
        before,
        "a refused batch stores nothing"
    );
    assert!(store.read_app(&x).await.unwrap().is_empty());

    // A commit id twice in one batch is refused, whatever the store holds.
    let twice = commit(&z, 0, "z1");
    let batch = vec![
        twice.clone(),
        commit(&x, 0, "x1"),
        NewCommit {
            payload: b"z2".to_vec(),
            ..twice
        },
    ];
    assert!(
        matches!(store.append_batch(batch).await, Err(StoreError::Refused(_))),
        "a repeated commit id is refused"
    );
    assert_eq!(store.last_seq().await.unwrap(), before);

    // A good batch: contiguous sequences, in order, each app after its own expectation.
    let batch = vec![
        commit(&x, 0, "x1"),
        commit(&y, y1.seq, "y2"),
        commit(&x, 0, "x2"),
        commit(&z, 0, "z1"),
    ];
    let appended = store.append_batch(batch.clone()).await.unwrap();
    let seqs: Vec<u64> = appended.iter().map(|a| a.seq).collect();
    assert_eq!(
        seqs,
        (before + 1..=before + 4).collect::<Vec<_>>(),
        "contiguous sequences"
    );
    assert!(appended.iter().all(|a| !a.duplicate));
    assert_eq!(store.last_seq().await.unwrap(), before + 4);
    let read = store.read_from(before + 1, 10).await.unwrap();
    assert_eq!(
        read.iter()
            .map(|c| (&c.app, c.payload.as_slice()))
            .collect::<Vec<_>>(),
        batch
            .iter()
            .map(|c| (&c.app, c.payload.as_slice()))
            .collect::<Vec<_>>()
    );
    assert_eq!(store.read_app(&x).await.unwrap().len(), 2);

    // The same batch again (a retry after a lost acknowledgement) stores nothing more.
    let z1 = batch[3].clone();
    let retry = store.append_batch(batch).await.unwrap();
    assert_eq!(retry.iter().map(|a| a.seq).collect::<Vec<_>>(), seqs);
    assert!(
        retry.iter().all(|a| a.duplicate),
        "a retried batch is a duplicate"
    );
    assert_eq!(store.last_seq().await.unwrap(), before + 4);

    // A batch mixing a stored commit with a new one is refused whole.
    let z_last = store.read_app(&z).await.unwrap()[0].seq;
    let mixed = vec![
        commit(&x, seqs[2], "x3"),
        NewCommit {
            expected_last_seq: z_last,
            ..z1
        },
    ];
    assert!(
        store.append_batch(mixed).await.is_err(),
        "a batch that repeats a stored commit among new ones is refused"
    );
    assert_eq!(store.last_seq().await.unwrap(), before + 4);
    assert!(
        store.append_batch(Vec::new()).await.unwrap().is_empty(),
        "an empty batch is a no-op"
    );
}
