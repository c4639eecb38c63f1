//! The read models' stores: both implementations keep the engine's `ModelStore` contract (its
//! conformance suite), and the sled one copes with what sled leaves on disk: leftovers of an
//! interrupted removal or rebuild, unfinished snapshots, damaged files, a full disk, a second
//! process.

use hoist_engine::models::{conformance, Batch, ModelError, ModelStore, Order};
use hoist_engine::store::StoreError;
use hoist_stores::memory::MemoryModels;
use hoist_stores::models::{SledModels, WRITE_HEADROOM};
use std::path::Path;
use std::time::Duration;

#[test]
fn memory_models_pass_the_conformance_suite() {
    conformance::run(&MemoryModels::new());
}

#[test]
fn sled_models_pass_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(&SledModels::open(dir.path()).unwrap());
}

fn write(models: &dyn ModelStore, name: &str, key: &[u8]) {
    let db = models.open(name).unwrap();
    let mut batch = Batch::default();
    batch.insert(key, b"v");
    db.apply(batch).unwrap();
    db.flush().unwrap();
}

fn row_count(models: &dyn ModelStore, name: &str) -> usize {
    models
        .open(name)
        .unwrap()
        .scan(b"", Order::Ascending)
        .count()
}

#[test]
fn opening_removes_what_an_interrupted_removal_or_rebuild_left() {
    let dir = tempfile::tempdir().unwrap();
    write(&SledModels::open(dir.path()).unwrap(), "state", b"k");
    for left in ["history-17.trash", "rebuild.staging"] {
        std::fs::create_dir_all(dir.path().join(left).join("state")).unwrap();
    }
    let models = SledModels::open(dir.path()).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["state"]);
    assert_eq!(row_count(&models, "state"), 1, "the databases stay");
}

/// A stray file where a database should be (what a damaged model can be) is removed like a
/// database, and so is a file left in the trash; the name then opens as a fresh database.
#[test]
fn a_file_in_a_databases_place_is_removed_like_a_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state"), b"not a database").unwrap();
    std::fs::write(dir.path().join("history-3.trash"), b"left over").unwrap();
    let models = SledModels::open(dir.path()).unwrap();
    assert!(!dir.path().join("history-3.trash").exists());
    models.remove("state").unwrap();
    assert!(std::fs::symlink_metadata(dir.path().join("state")).is_err());
    write(&models, "state", b"k");
    assert_eq!(row_count(&models, "state"), 1);
}

/// sled 0.34 reads a snapshot a killed process left unfinished and then fails every open; the
/// file is removed first, and the database opens from its previous snapshot and log.
#[test]
fn an_unfinished_snapshot_does_not_stop_a_database_opening() {
    let dir = tempfile::tempdir().unwrap();
    write(&SledModels::open(dir.path()).unwrap(), "state", b"k");
    let unfinished = dir
        .path()
        .join("state")
        .join("snap.00000000000000A0.generating");
    std::fs::write(&unfinished, b"half a snapshot").unwrap();
    let models = SledModels::open(dir.path()).unwrap();
    assert_eq!(row_count(&models, "state"), 1);
    assert!(!unfinished.exists());
}

fn open_error(models: &SledModels, name: &str) -> ModelError {
    match models.open(name) {
        Ok(_) => panic!("{name} opened"),
        Err(e) => e,
    }
}

#[test]
fn damaged_files_are_damage_and_an_unusable_place_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let models = SledModels::open(dir.path()).unwrap();
    write(&models, "state", b"k");
    // What sled wrote, overwritten: its own files are damaged.
    let conf = dir.path().join("state").join("conf");
    std::fs::write(&conf, b"not sled's configuration").unwrap();
    let damaged = open_error(&models, "state");
    assert!(damaged.is_damage(), "{damaged}");
    assert!(
        damaged
            .to_string()
            .contains(&dir.path().join("state").display().to_string()),
        "names the database: {damaged}"
    );
    // A file where the database's directory should be is not sled's damage: it is reported,
    // never thrown away.
    std::fs::write(dir.path().join("other"), b"a file").unwrap();
    let unusable = open_error(&models, "other");
    assert!(!unusable.is_damage(), "{unusable}");
}

#[test]
fn a_write_needs_room_to_spare() {
    let dir = tempfile::tempdir().unwrap();
    let models = SledModels::open(dir.path()).unwrap();
    models.ensure_room(0).unwrap();
    match models.ensure_room(u64::MAX / 2) {
        Err(ModelError::Full { at, free, needed }) => {
            assert_eq!(needed, WRITE_HEADROOM + u64::MAX / 2);
            assert!(free < needed);
            assert_eq!(at, dir.path().display().to_string());
        }
        other => panic!("no room: {other:?}"),
    }
}

#[test]
fn names_reaching_outside_the_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let models = SledModels::open(&dir.path().join("models")).unwrap();
    for name in [
        "../x",
        "",
        "a//b",
        "rebuild.staging",
        "history/p1.trash",
        ".",
    ] {
        let refused = open_error(&models, name);
        assert!(!refused.is_damage(), "{name}: {refused}");
        assert!(models.remove(name).is_err(), "{name}");
    }
    assert!(!dir.path().join("x").exists());
}

fn busy(dir: &Path) -> bool {
    matches!(
        SledModels::open_exclusive(dir, Duration::from_millis(50)),
        Err(StoreError::Busy { .. })
    )
}

#[test]
fn an_exclusive_directory_is_held_until_its_models_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let held = SledModels::open_exclusive(dir.path(), Duration::from_secs(1)).unwrap();
    assert!(busy(dir.path()), "another process waits, then is told");
    drop(held);
    assert!(!busy(dir.path()), "and takes it once it is let go");
}
