//! The embedded backend: the shared conformance suite, durability across reopening, taking turns
//! with another holder of the directory, and `service::execute`'s optimistic retries against it.

use hoist_engine::service::{
    execute, load_app, load_events, CommandContext, ExecuteError, MAX_ATTEMPTS,
};
use hoist_engine::store::{Appended, EventStore, NewCommit, StoreError, StoredCommit};
use hoist_engine::{
    AppName, Artifact, Command, ConfigKey, ConfigValue, EnvName, Event, ImageRef, Outcome,
    ReleaseVersion,
};
use hoist_stores::file::FileStore;
use proptest::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Long enough never to be reached when nobody else holds the store.
const WAIT: Duration = Duration::from_secs(30);

fn app() -> AppName {
    "api".parse().unwrap()
}

fn staging() -> EnvName {
    "staging".parse().unwrap()
}

fn image(hex: char) -> ImageRef {
    format!("registry.example/api@sha256:{}", hex.to_string().repeat(64))
        .parse()
        .unwrap()
}

fn ctx(actor: &str) -> CommandContext {
    CommandContext::new(actor.parse().unwrap())
}

fn set(key: &str, value: &str) -> Command {
    Command::SetConfig {
        env: staging(),
        values: [(
            key.parse::<ConfigKey>().unwrap(),
            ConfigValue::Plain(value.into()),
        )]
        .into(),
    }
}

/// Creates `api` (staging → production) and deploys image `a` to staging.
async fn create_and_deploy<S: EventStore>(store: &S) {
    let create = Command::CreateApp {
        pipeline: vec![staging(), "production".parse().unwrap()],
    };
    execute(store, &app(), &create, &ctx("ana@example.com"))
        .await
        .unwrap();
    let deploy = Command::Deploy {
        env: staging(),
        artifact: Artifact::Image(image('a')),
    };
    execute(store, &app(), &deploy, &ctx("ana@example.com"))
        .await
        .unwrap();
}

#[tokio::test]
async fn file_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), WAIT).unwrap();
    hoist_engine::store::conformance::run(&store).await;
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (log, state) = {
        let store = FileStore::open(dir.path(), WAIT).unwrap();
        create_and_deploy(&store).await;
        (
            store.read_from(1, usize::MAX).await.unwrap(),
            load_app(&store, &app()).await.unwrap(),
        )
    };
    assert_eq!(log.len(), 2);

    let reopened = FileStore::open(dir.path(), WAIT).unwrap();
    assert_eq!(reopened.read_from(1, usize::MAX).await.unwrap(), log);
    assert_eq!(reopened.last_seq().await.unwrap(), log[1].seq);
    assert_eq!(reopened.apps().await.unwrap(), [app()]);
    assert_eq!(load_app(&reopened, &app()).await.unwrap(), state);
    // And the log goes on where it stopped.
    let executed = execute(&reopened, &app(), &set("A", "1"), &ctx("ana@example.com"))
        .await
        .unwrap();
    assert_eq!(executed.events[0].seq, log[1].seq + 1);
    assert_eq!(executed.events[0].envelope.prev_hash, state.last_hash);
}

#[test]
fn a_second_open_waits_while_the_store_is_held_then_succeeds() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = FileStore::open(dir.path(), WAIT).unwrap();
    runtime.block_on(create_and_deploy(&first));
    let path = dir.path().to_owned();
    let second = std::thread::spawn(move || {
        FileStore::open(&path, WAIT).map(|store| (store, Instant::now()))
    });
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        !second.is_finished(),
        "the second open waits while the first holds the store"
    );
    let released = Instant::now();
    drop(first);
    let (second, opened) = second
        .join()
        .unwrap()
        .expect("the second open succeeds once the first is dropped");
    assert!(
        opened >= released,
        "the second open succeeded only after the first was dropped"
    );
    assert_eq!(
        runtime.block_on(second.last_seq()).unwrap(),
        2,
        "and it sees what the first wrote"
    );
}

#[test]
fn a_second_open_with_a_short_wait_gives_up_busy() {
    let dir = tempfile::tempdir().unwrap();
    let _first = FileStore::open(dir.path(), WAIT).unwrap();
    let path = dir.path().to_owned();
    let wait = Duration::from_millis(150);
    let second = std::thread::spawn(move || FileStore::open(&path, wait))
        .join()
        .unwrap();
    match second {
        Err(StoreError::Busy { path, waited }) => {
            assert_eq!(path, dir.path());
            assert!(
                waited >= wait,
                "gave up after {waited:?}, before its bound {wait:?}"
            );
            assert!(waited < WAIT, "gave up after {waited:?}");
        }
        Err(other) => panic!("expected Busy, got {other}"),
        Ok(_) => panic!("expected Busy, the store opened while held"),
    }
}

/// A store where, before each of the first `races_to_lose` appends, a rival command lands on the
/// same app, so the append's expectation is stale and must conflict.
struct Rivalled<'a> {
    store: &'a FileStore,
    races_to_lose: AtomicU32,
    appends: AtomicU32,
}

impl<'a> Rivalled<'a> {
    fn new(store: &'a FileStore, races_to_lose: u32) -> Self {
        Rivalled {
            store,
            races_to_lose: AtomicU32::new(races_to_lose),
            appends: AtomicU32::new(0),
        }
    }
}

impl EventStore for Rivalled<'_> {
    async fn append(
        &self,
        app: &AppName,
        expected_last_seq: u64,
        commit_id: Uuid,
        payload: Vec<u8>,
    ) -> Result<Appended, StoreError> {
        let attempt = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        if self.races_to_lose.load(Ordering::SeqCst) > 0 {
            self.races_to_lose.fetch_sub(1, Ordering::SeqCst);
            let rival = set(&format!("RIVAL_{attempt}"), "x");
            execute(self.store, app, &rival, &ctx("rival@example.com"))
                .await
                .expect("the rival's command lands");
        }
        self.store
            .append(app, expected_last_seq, commit_id, payload)
            .await
    }

    async fn read_app(&self, app: &AppName) -> Result<Vec<StoredCommit>, StoreError> {
        self.store.read_app(app).await
    }

    async fn read_from(&self, from_seq: u64, max: usize) -> Result<Vec<StoredCommit>, StoreError> {
        self.store.read_from(from_seq, max).await
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        self.store.last_seq().await
    }

    async fn apps(&self) -> Result<Vec<AppName>, StoreError> {
        self.store.apps().await
    }
}

fn staging_versions(state: &hoist_engine::AppState) -> Vec<u64> {
    state
        .env(&staging())
        .unwrap()
        .releases
        .iter()
        .map(|r| r.release.version.get())
        .collect()
}

#[tokio::test]
async fn execute_re_decides_after_losing_a_race() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), WAIT).unwrap();
    create_and_deploy(&store).await;
    let rivalled = Rivalled::new(&store, 3);

    let executed = execute(
        &rivalled,
        &app(),
        &set("MINE", "1"),
        &ctx("ana@example.com"),
    )
    .await
    .unwrap();

    assert_eq!(
        rivalled.appends.load(Ordering::SeqCst),
        4,
        "three lost races, then the append that won"
    );
    let state = load_app(&store, &app()).await.unwrap();
    assert_eq!(executed.state, state);
    assert_eq!(
        staging_versions(&state),
        [1, 2, 3, 4, 5],
        "versions stay contiguous"
    );
    let [recorded] = executed.events.as_slice() else {
        panic!("one event, got {:?}", executed.events)
    };
    let Some(Event::ReleaseCreated { release, .. }) = &recorded.envelope.event else {
        panic!("a release, got {recorded:?}")
    };
    assert_eq!(
        release.version,
        ReleaseVersion::new(5).unwrap(),
        "decided on top of the rivals' releases"
    );
    let keys: Vec<&str> = release.config.keys().map(ConfigKey::as_str).collect();
    assert_eq!(
        keys,
        ["MINE", "RIVAL_1", "RIVAL_2", "RIVAL_3"],
        "the rivals' config changes are kept, not overwritten"
    );
    let events = load_events(&store, &app()).await.unwrap();
    assert_eq!(events.last(), Some(recorded));
    assert_eq!(
        recorded.envelope.prev_hash,
        Some(events[events.len() - 2].hash),
        "chained to the last rival's event"
    );
}

#[tokio::test]
async fn execute_gives_up_with_a_conflict_when_every_append_loses() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), WAIT).unwrap();
    create_and_deploy(&store).await;
    let rivalled = Rivalled::new(&store, u32::MAX);

    let error = execute(
        &rivalled,
        &app(),
        &set("MINE", "1"),
        &ctx("ana@example.com"),
    )
    .await
    .unwrap_err();

    match error {
        ExecuteError::Conflict {
            app: named,
            attempts,
        } => {
            assert_eq!((named, attempts), (app(), MAX_ATTEMPTS));
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(rivalled.appends.load(Ordering::SeqCst), MAX_ATTEMPTS);
    let state = load_app(&store, &app()).await.unwrap();
    let current = &state.env(&staging()).unwrap().current().unwrap().release;
    assert!(
        !current
            .config
            .contains_key(&"MINE".parse::<ConfigKey>().unwrap()),
        "the command appended nothing"
    );
    assert_eq!(
        staging_versions(&state).len() as u32,
        1 + MAX_ATTEMPTS,
        "only the rivals' releases"
    );
}

#[tokio::test]
async fn execute_repeated_with_the_same_command_id_reports_the_stored_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), WAIT).unwrap();
    create_and_deploy(&store).await;
    let ctx = ctx("ana@example.com");
    let deploy = Command::Deploy {
        env: staging(),
        artifact: Artifact::Image(image('b')),
    };

    let first = execute(&store, &app(), &deploy, &ctx).await.unwrap();
    // A retry of the same command (say, after a lost acknowledgement) is stored once.
    let retry = execute(&store, &app(), &deploy, &ctx).await.unwrap();

    assert_eq!(
        retry.events, first.events,
        "the retry reports what the first try stored"
    );
    let state = load_app(&store, &app()).await.unwrap();
    assert_eq!(staging_versions(&state), [1, 2]);
    assert_eq!(
        retry.state, state,
        "the reported state is the app's, with the commit applied once"
    );
}

/// The `head` hint lets a caught-up reader skip opening the log; it must never be stale.
#[tokio::test]
async fn head_hint_is_removed_while_the_log_is_open_and_written_back_on_release() {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    {
        let store = FileStore::open(dir.path(), WAIT).unwrap();
        create_and_deploy(&store).await;
        assert!(!head.exists(), "no head while a holder may still append");
    }
    let last = {
        let store = FileStore::open(dir.path(), WAIT).unwrap();
        let hinted = store.last_seq().await.unwrap();
        assert!(head.exists(), "reading last_seq from the hint keeps it");
        let log = store.read_from(1, usize::MAX).await.unwrap();
        assert_eq!(
            hinted,
            log.last().unwrap().seq,
            "the hint is the log's last seq"
        );
        hinted
    };
    // A holder killed before writing the hint back leaves none: the log answers instead.
    std::fs::remove_file(&head).unwrap();
    let store = FileStore::open(dir.path(), WAIT).unwrap();
    assert_eq!(store.last_seq().await.unwrap(), last);
}

#[tokio::test]
async fn an_auto_rollback_is_caused_by_the_failed_rollout_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), WAIT).unwrap();
    create_and_deploy(&store).await;
    let record = |version: u64, outcome| Command::RecordRollout {
        env: staging(),
        version: ReleaseVersion::new(version).unwrap(),
        outcome,
        detail: String::new(),
    };
    for command in [
        Command::SetTarget {
            env: staging(),
            target: hoist_engine::Target::Exec {
                command: "true".into(),
                pass_env: Default::default(),
            },
        },
        Command::SetPolicy {
            env: staging(),
            auto_rollback: true,
        },
    ] {
        execute(&store, &app(), &command, &ctx("ana@example.com"))
            .await
            .unwrap();
    }
    // A fresh context per command: one command id is one idempotent append.
    execute(&store, &app(), &record(1, Outcome::Healthy), &ctx("hoist"))
        .await
        .unwrap();
    let deploy = Command::Deploy {
        env: staging(),
        artifact: Artifact::Image(image('b')),
    };
    execute(&store, &app(), &deploy, &ctx("ana@example.com"))
        .await
        .unwrap();

    let failed = execute(&store, &app(), &record(2, Outcome::Failed), &ctx("hoist"))
        .await
        .unwrap();

    let [rollout, rollback] = &failed.events[..] else {
        panic!("a failed rollout and its rollback: {:?}", failed.events);
    };
    assert!(matches!(
        rollout.envelope.event,
        Some(Event::RolloutRecorded { .. })
    ));
    assert_eq!(rollout.envelope.causation_id, None);
    assert!(matches!(
        rollback.envelope.event,
        Some(Event::ReleaseCreated { .. })
    ));
    assert_eq!(rollback.envelope.causation_id, Some(rollout.envelope.id));
    // As stored, not only as reported.
    let stored = load_events(&store, &app()).await.unwrap();
    assert_eq!(stored.last().unwrap().envelope, rollback.envelope);
}

/// Writes a store as hoist did before the log file: one sled database in `DIR/sled`, keys by
/// prefix (`L` seq → app + payload, `A` app 0 seq, `H` app → seq, `C` commit id → seq, `M` → seq).
fn write_sled_era_store(dir: &std::path::Path, commits: &[(AppName, Uuid, &[u8])]) {
    let db = sled::open(dir.join("sled")).unwrap();
    for (i, (app, id, payload)) in commits.iter().enumerate() {
        let seq = (i as u64 + 1).to_be_bytes();
        let key = |prefix: u8, rest: &[u8]| [&[prefix][..], rest].concat();
        let mut entry = vec![app.as_str().len() as u8];
        entry.extend_from_slice(app.as_str().as_bytes());
        entry.extend_from_slice(payload);
        db.insert(key(b'L', &seq), entry).unwrap();
        db.insert(
            key(b'A', &[app.as_str().as_bytes(), &[0], &seq].concat()),
            &[][..],
        )
        .unwrap();
        db.insert(key(b'H', app.as_str().as_bytes()), &seq[..])
            .unwrap();
        db.insert(key(b'C', id.as_bytes()), &seq[..]).unwrap();
        db.insert(b"M", &seq[..]).unwrap();
    }
    db.flush().unwrap();
}

#[tokio::test]
async fn a_sled_era_store_is_migrated_whole_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let other: AppName = "other".parse().unwrap();
    let ids = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let commits: [(AppName, Uuid, &[u8]); 3] = [
        (app(), ids[0], b"a1"),
        (app(), ids[1], b"a2"),
        (other.clone(), ids[2], b"x"),
    ];
    write_sled_era_store(dir.path(), &commits);
    // A snapshot a killed sled left unfinished must not stop the migration.
    std::fs::write(
        dir.path().join("sled").join("snap.00000000001.generating"),
        b"half",
    )
    .unwrap();

    let store = FileStore::open(dir.path(), WAIT).unwrap();
    let read = store.read_from(1, usize::MAX).await.unwrap();
    let expected: Vec<(u64, AppName, Vec<u8>)> = commits
        .iter()
        .enumerate()
        .map(|(i, (app, _, payload))| (i as u64 + 1, app.clone(), payload.to_vec()))
        .collect();
    assert_eq!(
        read.into_iter()
            .map(|c| (c.seq, c.app, c.payload))
            .collect::<Vec<_>>(),
        expected
    );
    assert_eq!(store.apps().await.unwrap(), [app(), other.clone()]);
    // The commit ids came along: a retried command is still recognised.
    let again = store
        .append(&other, 3, ids[2], b"x".to_vec())
        .await
        .unwrap();
    assert_eq!((again.seq, again.duplicate), (3, true));
    assert!(dir.path().join("sled.pre-log").is_dir());
    assert!(!dir.path().join("sled").exists());
}

/// Writes `batches` (each a list of payloads for app `api`) through a fresh store and returns
/// the log file's bytes and, per batch, the file length after it.
fn written_log(batches: &[Vec<Vec<u8>>]) -> (Vec<u8>, Vec<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), WAIT).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut ends = Vec::new();
    let mut last = 0;
    for batch in batches {
        let commits: Vec<NewCommit> = batch
            .iter()
            .map(|payload| NewCommit {
                app: app(),
                expected_last_seq: last,
                commit_id: Uuid::now_v7(),
                payload: payload.clone(),
            })
            .collect();
        last = runtime
            .block_on(store.append_batch(commits))
            .unwrap()
            .last()
            .unwrap()
            .seq;
        ends.push(std::fs::metadata(dir.path().join("log")).unwrap().len() as usize);
    }
    drop(store);
    (std::fs::read(dir.path().join("log")).unwrap(), ends)
}

fn reopen_with(bytes: &[u8]) -> (tempfile::TempDir, FileStore) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("log"), bytes).unwrap();
    let store = FileStore::open(dir.path(), WAIT).unwrap();
    (dir, store)
}

fn batches() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
    prop::collection::vec(
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..4),
        1..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A crash can stop the file at any byte: what opens is the batches that were whole, and the
    /// log goes on from there.
    #[test]
    fn a_log_cut_at_any_byte_opens_as_its_whole_batches(batches in batches(), cut in any::<prop::sample::Index>()) {
        let (bytes, ends) = written_log(&batches);
        let cut = cut.index(bytes.len() + 1);
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        let expected: Vec<Vec<u8>> = batches[..whole].iter().flatten().cloned().collect();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (dir, store) = reopen_with(&bytes[..cut]);
        let read: Vec<Vec<u8>> = runtime
            .block_on(store.read_from(1, usize::MAX))
            .unwrap()
            .into_iter()
            .map(|c| c.payload)
            .collect();
        prop_assert_eq!(&read, &expected);
        let seq = runtime
            .block_on(store.append(&app(), expected.len() as u64, Uuid::now_v7(), b"next".to_vec()))
            .unwrap()
            .seq;
        prop_assert_eq!(seq, expected.len() as u64 + 1);
        let saved = dir.path().join("quarantine").read_dir().map_or(0, |d| d.count());
        let cut_anything = cut > ends.get(whole.wrapping_sub(1)).copied().unwrap_or(8);
        prop_assert_eq!(saved, usize::from(cut_anything));
    }

    /// A damaged byte is never read as data, and never costs an acknowledged record silently:
    /// damage in the last batch is cut off like a torn write (it may be one, and nothing after
    /// it was acknowledged); damage followed by another batch (whose first record says it starts
    /// one), or below the sequence a clean exit recorded in `head`, refuses to open and changes
    /// nothing — on every later open too.
    #[test]
    fn a_flipped_byte_is_cut_only_where_a_crash_could_have_left_it(
        batches in batches(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..,
        clean_exit in any::<bool>(),
    ) {
        let (mut bytes, ends) = written_log(&batches);
        let at = 8 + at.index(bytes.len() - 8);
        bytes[at] ^= flip;
        let damaged_batch = ends.iter().filter(|&&end| end <= at).count();
        let after = batches.len() - damaged_batch - 1;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("log"), &bytes).unwrap();
        if clean_exit {
            let records = batches.iter().flatten().count() as u64;
            std::fs::write(dir.path().join("head"), records.to_be_bytes()).unwrap();
        }
        let store = FileStore::open(dir.path(), WAIT).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        match runtime.block_on(store.read_from(1, usize::MAX)) {
            Ok(read) => {
                prop_assert!(!clean_exit, "a clean exit recorded every record: damage is refused");
                prop_assert_eq!(after, 0, "a batch after the damage proves it is not a torn write");
                let read: Vec<Vec<u8>> = read.into_iter().map(|c| c.payload).collect();
                let expected: Vec<Vec<u8>> =
                    batches[..damaged_batch].iter().flatten().cloned().collect();
                prop_assert_eq!(read, expected);
            }
            Err(StoreError::Corrupt(_)) => {
                prop_assert!(clean_exit || after >= 1, "damage in the last batch is a tail to cut");
                let head = std::fs::read(dir.path().join("head")).ok();
                drop(store);
                prop_assert_eq!(std::fs::read(dir.path().join("log")).unwrap(), bytes.clone(), "nothing changed");
                prop_assert_eq!(std::fs::read(dir.path().join("head")).ok(), head.clone(), "head is kept");
                // And so it stays: a second open finds the same damage, not a tail to cut.
                let again = FileStore::open(dir.path(), WAIT).unwrap();
                prop_assert!(matches!(runtime.block_on(again.read_from(1, 1)), Err(StoreError::Corrupt(_))));
                drop(again);
                prop_assert_eq!(std::fs::read(dir.path().join("log")).unwrap(), bytes, "nothing changed");
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }
}

#[test]
fn a_file_that_is_not_a_hoist_log_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("log"), b"some other file, not ours").unwrap();
    let store = FileStore::open(dir.path(), WAIT).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = runtime.block_on(store.read_from(1, 10)).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("log")).unwrap(),
        b"some other file, not ours"
    );
}

#[tokio::test]
async fn a_store_with_secrets_sealed_before_key_ids_never_gets_a_new_key() {
    use hoist_engine::secrets::{SecretError, SecretKey, StoreSecrets};
    use hoist_engine::service::store_secrets;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(&dir.path().join("store"), WAIT).unwrap();
    create_and_deploy(&store).await;
    let old = SecretKey::load_or_create(&dir.path().join("old.key")).unwrap();
    // The format before key ids: nonce and ciphertext, without `hsk1` and the 8-byte key id.
    let legacy = old.seal("TOKEN", "s3cr3t")[12..].to_vec();
    let values = [(
        "TOKEN".parse::<ConfigKey>().unwrap(),
        ConfigValue::Sealed(legacy.clone()),
    )];
    let set = Command::SetConfig {
        env: staging(),
        values: values.into(),
    };
    execute(&store, &app(), &set, &ctx("ana@example.com"))
        .await
        .unwrap();

    // Found from another app too: the key belongs to the store.
    let web: AppName = "web".parse().unwrap();
    let found = store_secrets(&store, &web).await.unwrap();
    assert_eq!(
        found,
        StoreSecrets::Unnamed {
            config_key: "TOKEN".into(),
            sealed: legacy
        }
    );
    let missing = dir.path().join("typo.key");
    assert!(matches!(
        SecretKey::for_sealing(&missing, &found),
        Err(SecretError::MissingForUnnamed { .. })
    ));
    assert!(!missing.exists(), "no key created for a store with secrets");
    let key = SecretKey::for_sealing(&dir.path().join("old.key"), &found).unwrap();
    assert_eq!(key.id(), old.id());

    // Once a value names its key, that key is the store's.
    let set = Command::SetConfig {
        env: staging(),
        values: [(
            "OTHER".parse::<ConfigKey>().unwrap(),
            ConfigValue::Sealed(key.seal("OTHER", "x")),
        )]
        .into(),
    };
    execute(&store, &app(), &set, &ctx("ana@example.com"))
        .await
        .unwrap();
    assert_eq!(
        store_secrets(&store, &web).await.unwrap(),
        StoreSecrets::Keyed(old.id())
    );
}

/// The file store, counting the commits its reads return.
struct Counting<'a> {
    store: &'a FileStore,
    read: std::sync::atomic::AtomicUsize,
}

impl Counting<'_> {
    fn counted(
        &self,
        read: Result<Vec<StoredCommit>, StoreError>,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        if let Ok(commits) = &read {
            self.read.fetch_add(commits.len(), Ordering::SeqCst);
        }
        read
    }
}

impl EventStore for Counting<'_> {
    async fn append_batch(&self, commits: Vec<NewCommit>) -> Result<Vec<Appended>, StoreError> {
        self.store.append_batch(commits).await
    }

    async fn read_app(&self, app: &AppName) -> Result<Vec<StoredCommit>, StoreError> {
        self.counted(self.store.read_app(app).await)
    }

    async fn read_app_after(
        &self,
        app: &AppName,
        after: u64,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        self.counted(self.store.read_app_after(app, after).await)
    }

    async fn read_app_back(
        &self,
        app: &AppName,
        through: u64,
        max: usize,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        self.counted(self.store.read_app_back(app, through, max).await)
    }

    async fn read_from(&self, from_seq: u64, max: usize) -> Result<Vec<StoredCommit>, StoreError> {
        self.counted(self.store.read_from(from_seq, max).await)
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        self.store.last_seq().await
    }

    async fn apps(&self) -> Result<Vec<AppName>, StoreError> {
        self.store.apps().await
    }
}

/// Issue 15: the key a store's secrets are sealed with is found in the newest commits, whatever
/// the history behind them: from the app's own (a secret set again), or from the log's (another
/// app's first secret), not by reading either from its start.
#[tokio::test]
async fn the_stores_key_is_found_in_the_newest_commits() {
    use hoist_engine::secrets::{SecretKey, StoreSecrets};
    use hoist_engine::service::store_secrets;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(&dir.path().join("store"), WAIT).unwrap();
    create_and_deploy(&store).await;
    let key = SecretKey::load_or_create(&dir.path().join("secret.key")).unwrap();
    let sealed = Command::SetConfig {
        env: staging(),
        values: [(
            "TOKEN".parse::<ConfigKey>().unwrap(),
            ConfigValue::Sealed(key.seal("TOKEN", "s3cr3t")),
        )]
        .into(),
    };
    execute(&store, &app(), &sealed, &ctx("ana@example.com"))
        .await
        .unwrap();
    // 300 plain changes after it: each release carries the sealed value on.
    for n in 0..300 {
        let plain = set("N", &n.to_string());
        execute(&store, &app(), &plain, &ctx("ana@example.com"))
            .await
            .unwrap();
    }

    let web: AppName = "web".parse().unwrap();
    for of in [app(), web] {
        let counting = Counting {
            store: &store,
            read: Default::default(),
        };
        let found = store_secrets(&counting, &of).await.unwrap();
        assert_eq!(found, StoreSecrets::Keyed(key.id()), "for {of}");
        let read = counting.read.load(Ordering::SeqCst);
        assert!(read <= 64, "{read} commits read for {of}'s key");
    }
}
