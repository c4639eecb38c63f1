//! The embedded log's index file (`DIR/log.index`, issue 15): a cache of what opening the log
//! learns by reading every record, so that opening reads only the records after it. It must
//! never change what is read: whatever the index, the log's whole batches are what a store
//! reads, damage is never read as data, and a crash (a log cut at any byte, the index kept)
//! opens as before.

use hoist_engine::store::{EventStore, NewCommit, StoreError, StoredCommit};
use hoist_engine::AppName;
use hoist_stores::file::FileStore;
use proptest::prelude::*;
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const INDEX: &str = "log.index";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn app(n: u8) -> AppName {
    format!("app-{n}").parse().unwrap()
}

/// One commit to write: its app (0, 1 or 2) and payload.
type Planned = (u8, Vec<u8>);

fn batches() -> impl Strategy<Value = Vec<Vec<Planned>>> {
    prop::collection::vec(
        prop::collection::vec((0u8..2, prop::collection::vec(any::<u8>(), 0..40)), 1..4),
        1..7,
    )
}

/// What a log written from `batches` holds: per batch, its commits as stored, and the log
/// file's length after it.
struct Written {
    commits: Vec<StoredCommit>,
    ids: Vec<Uuid>,
    ends: Vec<usize>,
    batch_sizes: Vec<usize>,
}

/// Writes `batches[..indexed]` through one store and lets go of it (which writes the index),
/// then the rest through a second store (too few records after the index to write it anew).
fn write(dir: &Path, batches: &[Vec<Planned>], indexed: usize) -> Written {
    let rt = runtime();
    let mut written = Written {
        commits: Vec::new(),
        ids: Vec::new(),
        ends: Vec::new(),
        batch_sizes: Vec::new(),
    };
    for part in [&batches[..indexed], &batches[indexed..]] {
        let store = FileStore::open(dir, WAIT).unwrap();
        let mut heads = [0u64; 3];
        if !part.is_empty() {
            for (a, head) in heads.iter_mut().enumerate() {
                let own = rt.block_on(store.read_app(&app(a as u8))).unwrap();
                *head = own.last().map_or(0, |c| c.seq);
            }
        }
        for batch in part {
            let commits: Vec<NewCommit> = batch
                .iter()
                .map(|(a, payload)| NewCommit {
                    app: app(*a),
                    expected_last_seq: heads[usize::from(*a)],
                    commit_id: Uuid::now_v7(),
                    payload: payload.clone(),
                })
                .collect();
            let ids: Vec<Uuid> = commits.iter().map(|c| c.commit_id).collect();
            let appended = rt.block_on(store.append_batch(commits)).unwrap();
            for ((a, payload), (appended, id)) in batch.iter().zip(appended.iter().zip(ids)) {
                heads[usize::from(*a)] = appended.seq;
                written.commits.push(StoredCommit {
                    seq: appended.seq,
                    app: app(*a),
                    payload: payload.clone(),
                });
                written.ids.push(id);
            }
            written.batch_sizes.push(batch.len());
            written
                .ends
                .push(std::fs::metadata(dir.join("log")).unwrap().len() as usize);
        }
    }
    written
}

fn read_all(store: &FileStore) -> Result<Vec<StoredCommit>, StoreError> {
    runtime().block_on(store.read_from(1, usize::MAX))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Reopened beside its index, a log reads as it was written: every commit, each app's own
    /// (from a sequence on, and newest first), the app list, and a retried commit id (indexed or not) answered with its original.
    #[test]
    fn a_log_reopened_beside_its_index_reads_as_written(
        batches in batches(),
        indexed in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let indexed = indexed.index(batches.len() + 1);
        let written = write(dir.path(), &batches, indexed);
        prop_assert!(dir.path().join(INDEX).exists(), "letting go of a store writes the index");
        let rt = runtime();
        let store = FileStore::open(dir.path(), WAIT).unwrap();
        prop_assert_eq!(read_all(&store).unwrap(), written.commits.clone());
        prop_assert_eq!(rt.block_on(store.last_seq()).unwrap(), written.commits.len() as u64);
        let mut apps: Vec<AppName> = written.commits.iter().map(|c| c.app.clone()).collect();
        apps.sort();
        apps.dedup();
        prop_assert_eq!(rt.block_on(store.apps()).unwrap(), apps.clone());
        for a in &apps {
            let own: Vec<StoredCommit> =
                written.commits.iter().filter(|c| c.app == *a).cloned().collect();
            prop_assert_eq!(rt.block_on(store.read_app(a)).unwrap(), own.clone());
            let after = own[0].seq;
            prop_assert_eq!(
                rt.block_on(store.read_app_after(a, after)).unwrap(),
                own[1..].to_vec()
            );
            // Newest first, across the index's records and those after it.
            for through in [after, own[own.len() / 2].seq, written.commits.len() as u64] {
                let upto: Vec<StoredCommit> =
                    own.iter().filter(|c| c.seq <= through).cloned().collect();
                for max in [1, 2, own.len()] {
                    prop_assert_eq!(
                        rt.block_on(store.read_app_back(a, through, max)).unwrap(),
                        upto[upto.len().saturating_sub(max)..].to_vec()
                    );
                }
            }
        }
        for (commit, id) in written.commits.iter().zip(&written.ids) {
            let again = rt
                .block_on(store.append(&commit.app, 0, *id, commit.payload.clone()))
                .unwrap();
            prop_assert_eq!((again.seq, again.duplicate), (commit.seq, true));
        }
    }

    /// A crash can stop the log at any byte while its index stays: what opens is the batches
    /// that were whole, and the log goes on from there.
    #[test]
    fn a_log_cut_at_any_byte_beside_its_index_opens_as_its_whole_batches(
        batches in batches(),
        indexed in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let written = write(dir.path(), &batches, indexed.index(batches.len() + 1));
        let log = dir.path().join("log");
        let bytes = std::fs::read(&log).unwrap();
        let cut = cut.index(bytes.len() + 1);
        std::fs::write(&log, &bytes[..cut]).unwrap();
        // A crash leaves no `head`: it is written back only when a store is let go.
        std::fs::remove_file(dir.path().join("head")).unwrap();
        let whole_batches = written.ends.iter().filter(|&&end| end <= cut).count();
        let whole: usize = written.batch_sizes[..whole_batches].iter().sum();

        let store = FileStore::open(dir.path(), WAIT).unwrap();
        prop_assert_eq!(read_all(&store).unwrap(), written.commits[..whole].to_vec());
        let seq = runtime()
            .block_on(store.append(&app(9), 0, Uuid::now_v7(), b"next".to_vec()))
            .unwrap()
            .seq;
        prop_assert_eq!(seq, whole as u64 + 1);
        drop(store);
        let store = FileStore::open(dir.path(), WAIT).unwrap();
        prop_assert_eq!(read_all(&store).unwrap().len(), whole + 1, "and so it stays");
    }

    /// A damaged byte anywhere, the index kept, is never read as data: a read gives the whole
    /// batches before it (only where a crash could have left it: the last batch, no clean exit
    /// recorded) or fails as damaged, changing nothing.
    #[test]
    fn a_flipped_byte_beside_an_index_is_never_read_as_data(
        batches in batches(),
        indexed in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..,
        clean_exit in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let written = write(dir.path(), &batches, indexed.index(batches.len() + 1));
        let log = dir.path().join("log");
        let mut bytes = std::fs::read(&log).unwrap();
        let at = 8 + at.index(bytes.len() - 8);
        bytes[at] ^= flip;
        std::fs::write(&log, &bytes).unwrap();
        let head = dir.path().join("head");
        if !clean_exit {
            std::fs::remove_file(&head).unwrap();
        }
        let index = std::fs::read(dir.path().join(INDEX)).unwrap();
        let damaged_batch = written.ends.iter().filter(|&&end| end <= at).count();

        let store = FileStore::open(dir.path(), WAIT).unwrap();
        match read_all(&store) {
            Ok(read) => {
                prop_assert!(!clean_exit, "a clean exit recorded every record: damage is refused");
                prop_assert_eq!(damaged_batch + 1, batches.len(), "only the last batch is a tail to cut");
                let before: usize = written.batch_sizes[..damaged_batch].iter().sum();
                prop_assert_eq!(read, written.commits[..before].to_vec());
            }
            Err(StoreError::Corrupt(message)) => {
                prop_assert!(message.contains("nothing was changed"), "{}", message);
                let head_before = std::fs::read(&head).ok();
                drop(store);
                prop_assert_eq!(std::fs::read(&log).unwrap(), bytes, "the log is unchanged");
                prop_assert_eq!(std::fs::read(dir.path().join(INDEX)).unwrap(), index, "the index is unchanged");
                prop_assert_eq!(std::fs::read(&head).ok(), head_before, "head is unchanged");
            }
            Err(other) => prop_assert!(false, "unexpected {}", other),
        }
    }
}

/// An index that does not describe the log beside it (another log's, a torn one) is not used:
/// the log is read whole, as without one.
#[test]
fn an_index_that_does_not_match_its_log_is_not_used() {
    let rt = runtime();
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let batches: Vec<Vec<Planned>> = vec![vec![(0, b"a".to_vec())], vec![(1, b"bb".to_vec())]];
    write(one.path(), &batches, 2);
    let other: Vec<Vec<Planned>> = vec![vec![(1, b"c".to_vec())], vec![(1, b"dd".to_vec())]];
    let expected = write(two.path(), &other, 2).commits;
    let index = std::fs::read(one.path().join(INDEX)).unwrap();

    std::fs::write(two.path().join(INDEX), &index).unwrap();
    let store = FileStore::open(two.path(), WAIT).unwrap();
    assert_eq!(rt.block_on(store.read_from(1, 10)).unwrap(), expected);
    assert_eq!(rt.block_on(store.apps()).unwrap(), vec![app(1)]);
    drop(store);

    std::fs::write(two.path().join(INDEX), &index[..index.len() - 1]).unwrap();
    let store = FileStore::open(two.path(), WAIT).unwrap();
    assert_eq!(rt.block_on(store.read_from(1, 10)).unwrap(), expected);
}

/// With the index, opening does not read the records it covers: damage in one is found by the
/// reads that reach it (and then stops the log's use, changing nothing), while `recovery` — what
/// `hoist admin check` asks — reads every record and names it.
#[test]
fn damage_under_the_index_is_found_where_read_and_by_a_full_check() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let batches: Vec<Vec<Planned>> = (0..4).map(|n| vec![(0, vec![n; 16])]).collect();
    let written = write(dir.path(), &batches, 4);
    let log = dir.path().join("log");
    let mut bytes = std::fs::read(&log).unwrap();
    // Inside the first record's payload.
    bytes[written.ends[0] - 4] ^= 0x5a;
    std::fs::write(&log, &bytes).unwrap();

    let store = FileStore::open(dir.path(), WAIT).unwrap();
    assert_eq!(
        rt.block_on(store.read_app_after(&app(0), 1)).unwrap(),
        written.commits[1..].to_vec(),
        "the records after the damaged one read"
    );
    let err = rt.block_on(store.read_app(&app(0))).unwrap_err();
    let StoreError::Corrupt(message) = &err else {
        panic!("{err}")
    };
    assert!(message.contains("log seq 1"), "{message}");
    assert!(
        matches!(rt.block_on(store.last_seq()), Err(StoreError::Corrupt(_))),
        "once found, the damage stops every use"
    );
    drop(store);
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "nothing changed");

    let check = FileStore::open(dir.path(), WAIT).unwrap();
    let damage = check
        .recovery()
        .unwrap()
        .damage
        .expect("a full check finds it");
    assert!(damage.contains("nothing was changed"), "{damage}");
}

/// Far enough past its index, letting go of a store writes the index anew with the records after
/// it merged in (commit ids in order, each app's sequences after its own), and a store opened
/// beside the new index reads as written.
#[test]
fn an_index_far_behind_is_written_anew_with_the_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<Vec<Planned>> = (0..3u8).map(|n| vec![(n % 2, vec![n])]).collect();
    let mut written = write(dir.path(), &first, 3);
    let index = dir.path().join(INDEX);
    let before = std::fs::read(&index).unwrap();

    // 1,100 more, in batches of 100 over both apps: past the 1,024 that rewrite the index. Twice:
    // the second time the index merged in spans many of its checksummed blocks.
    let mut before = before;
    for round in 0..2u8 {
        let later: Vec<Vec<Planned>> = (0..11u8)
            .map(|b| {
                (0..100u8)
                    .map(|n| ((b + n) % 2, vec![round, b, n]))
                    .collect()
            })
            .collect();
        let rest = write(dir.path(), &later, 0);
        written.commits.extend(rest.commits);
        written.ids.extend(rest.ids);
        let after = std::fs::read(&index).unwrap();
        assert!(after.len() > before.len(), "the index was written anew");
        before = after;
    }

    let rt = runtime();
    let store = FileStore::open(dir.path(), WAIT).unwrap();
    assert_eq!(read_all(&store).unwrap(), written.commits);
    for a in [app(0), app(1)] {
        let own: Vec<StoredCommit> = written
            .commits
            .iter()
            .filter(|c| c.app == a)
            .cloned()
            .collect();
        assert_eq!(rt.block_on(store.read_app(&a)).unwrap(), own);
        assert_eq!(
            rt.block_on(store.read_app_after(&a, own[1].seq)).unwrap(),
            own[2..].to_vec()
        );
    }
    for (commit, id) in written.commits.iter().zip(&written.ids) {
        let again = rt
            .block_on(store.append(&commit.app, 0, *id, commit.payload.clone()))
            .unwrap();
        assert_eq!((again.seq, again.duplicate), (commit.seq, true), "{id}");
    }
    let head = rt
        .block_on(store.read_app(&app(1)))
        .unwrap()
        .last()
        .unwrap()
        .seq;
    let next = rt
        .block_on(store.append(&app(1), head, Uuid::now_v7(), vec![]))
        .unwrap();
    assert_eq!(
        next.seq,
        written.commits.len() as u64 + 1,
        "appending goes on"
    );
}

/// A log of `batches` batches of 100 commits over three apps, released (so beside its index,
/// which then spans many checksummed blocks): a base for damaging copies of its index.
fn indexed_log(batches: u8) -> (tempfile::TempDir, Written) {
    let dir = tempfile::tempdir().unwrap();
    let planned: Vec<Vec<Planned>> = (0..batches)
        .map(|b| (0..100u8).map(|n| ((b + n) % 3, vec![b, n])).collect())
        .collect();
    let written = write(dir.path(), &planned, planned.len());
    (dir, written)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// The index is a cache: a damaged byte anywhere in it (its header, a block the lookups read
    /// only later, a block checksum) never changes what is read, a retried commit id is still
    /// answered with its original rather than stored twice, and an index found damaged is
    /// written anew, sound, when the store is let go.
    #[test]
    fn a_damaged_byte_in_the_index_changes_nothing_read(
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        static BASE: std::sync::OnceLock<(tempfile::TempDir, Written)> = std::sync::OnceLock::new();
        let (base, written) = BASE.get_or_init(|| indexed_log(12));
        let mut index = std::fs::read(base.path().join(INDEX)).unwrap();
        let at = at.index(index.len());
        index[at] ^= flip;
        let damaged_copy = || {
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(base.path().join("log"), dir.path().join("log")).unwrap();
            std::fs::write(dir.path().join(INDEX), &index).unwrap();
            dir
        };

        // What `hoist events export` reads.
        let dir = damaged_copy();
        let store = FileStore::open(dir.path(), WAIT).unwrap();
        prop_assert_eq!(store.salvage(1, usize::MAX).unwrap(), (written.commits.clone(), None));
        drop(store);

        let dir = damaged_copy();
        let rt = runtime();
        let store = FileStore::open(dir.path(), WAIT).unwrap();
        for a in 0..3 {
            let own: Vec<StoredCommit> =
                written.commits.iter().filter(|c| c.app == app(a)).cloned().collect();
            let through = own[own.len() / 2].seq;
            prop_assert_eq!(
                rt.block_on(store.read_app_back(&app(a), through, 7)).unwrap(),
                own.iter().filter(|c| c.seq <= through).cloned().collect::<Vec<_>>()
                    .split_off(own.len() / 2 + 1 - 7)
            );
        }
        for i in [0, written.ids.len() / 2, written.ids.len() - 1] {
            let commit = &written.commits[i];
            let again = rt
                .block_on(store.append(&commit.app, 0, written.ids[i], commit.payload.clone()))
                .unwrap();
            prop_assert_eq!((again.seq, again.duplicate), (commit.seq, true));
        }
        prop_assert_eq!(read_all(&store).unwrap(), written.commits.clone());
        prop_assert_eq!(rt.block_on(store.apps()).unwrap(), vec![app(0), app(1), app(2)]);
        drop(store);

        let store = FileStore::open(dir.path(), WAIT).unwrap();
        prop_assert_eq!(read_all(&store).unwrap(), written.commits.clone());
        drop(store);
        // Damage in a block no read reached stays until one does; damage found is replaced by
        // a sound index.
        let now = std::fs::read(dir.path().join(INDEX)).unwrap();
        let sound = std::fs::read(base.path().join(INDEX)).unwrap();
        prop_assert!(now == sound || now == index, "the index is the damaged one or a sound one");
    }
}
