//! The behaviour every `ModelStore` must show, as one suite each implementation's tests call on
//! a fresh, empty store. Panics (with what broke) on the first difference.

use super::{Batch, ModelDb, ModelStore, Order, Row};

/// Runs every check on `store`, which must be empty.
pub fn run(store: &dyn ModelStore) {
    batches_and_scans(store);
    groups_are_listed_and_removed_whole(store);
    staging_replaces_what_it_names(store);
}

fn rows(db: &dyn ModelDb, prefix: &[u8], order: Order) -> Vec<Row> {
    db.scan(prefix, order)
        .collect::<Result<_, _>>()
        .expect("scan")
}

fn row(key: &[u8], value: &[u8]) -> Row {
    (key.to_vec(), value.to_vec())
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

fn batches_and_scans(store: &dyn ModelStore) {
    let db = store.open("conf-a").unwrap();
    assert_eq!(db.get(b"k1").unwrap(), None, "a new database is empty");
    let mut batch = Batch::default();
    for key in [&b"k2"[..], b"k1", b"j1", b"k3", b"l"] {
        batch.insert(key, [b"v".as_slice(), key].concat());
    }
    batch.remove(b"k3");
    db.apply(batch).unwrap();
    assert_eq!(db.get(b"k1").unwrap(), Some(b"vk1".to_vec()));
    assert_eq!(db.get(b"k3").unwrap(), None, "a later write of a key wins");
    let expected = vec![row(b"k1", b"vk1"), row(b"k2", b"vk2")];
    assert_eq!(
        rows(&*db, b"k", Order::Ascending),
        expected,
        "a prefix scan"
    );
    let reversed: Vec<Row> = expected.iter().rev().cloned().collect();
    assert_eq!(rows(&*db, b"k", Order::Descending), reversed);
    assert_eq!(rows(&*db, b"", Order::Ascending).len(), 4, "every row");
    assert!(rows(&*db, b"m", Order::Ascending).is_empty());
    db.flush().unwrap();
    drop(db);

    let db = store.open("conf-a").unwrap();
    assert_eq!(
        rows(&*db, b"", Order::Ascending).len(),
        4,
        "kept when reopened"
    );
    let mut batch = Batch::default();
    batch.remove(b"k1");
    batch.insert(b"k1x", b"x");
    db.apply(batch).unwrap();
    assert_eq!(db.get(b"k1").unwrap(), None);
    assert_eq!(
        rows(&*db, b"k1", Order::Ascending),
        [row(b"k1x", b"x")],
        "a removed key is gone from scans"
    );
    drop(db);
    store.remove("conf-a").unwrap();
    let db = store.open("conf-a").unwrap();
    assert!(rows(&*db, b"", Order::Ascending).is_empty(), "removed");
}

fn groups_are_listed_and_removed_whole(store: &dyn ModelStore) {
    assert!(store.list("conf-g").unwrap().is_empty(), "no such group");
    for name in ["conf-g/p2", "conf-g/p1"] {
        let db = store.open(name).unwrap();
        let mut batch = Batch::default();
        batch.insert(name, b"here");
        db.apply(batch).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(sorted(store.list("conf-g").unwrap()), ["p1", "p2"]);
    let db = store.open("conf-g/p1").unwrap();
    assert_eq!(db.get(b"conf-g/p1").unwrap(), Some(b"here".to_vec()));
    assert_eq!(db.get(b"conf-g/p2").unwrap(), None, "databases are apart");
    drop(db);
    store.remove("conf-g").unwrap();
    assert!(
        store.list("conf-g").unwrap().is_empty(),
        "the group is gone"
    );
    store.remove("conf-g").unwrap();
    store.remove("conf-none").unwrap();
}

fn write(store: &dyn ModelStore, name: &str, key: &[u8]) {
    let db = store.open(name).unwrap();
    let mut batch = Batch::default();
    batch.insert(key, b"");
    db.apply(batch).unwrap();
    db.flush().unwrap();
}

fn keys(store: &dyn ModelStore, name: &str) -> Vec<Vec<u8>> {
    let db = store.open(name).unwrap();
    rows(&*db, b"", Order::Ascending)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

fn staging_replaces_what_it_names(store: &dyn ModelStore) {
    write(store, "conf-s", b"old");
    write(store, "conf-t/p1", b"old");
    write(store, "conf-u", b"old");
    let staging = store.staging().unwrap();
    write(&*staging, "conf-s", b"leftover");
    drop(staging);
    let staging = store.staging().unwrap();
    assert!(
        keys(&*staging, "conf-s").is_empty(),
        "a staging store starts empty"
    );
    write(&*staging, "conf-s", b"new");
    write(&*staging, "conf-t/p2", b"new");
    drop(staging);
    store.switch_in_staging(&["conf-t", "conf-s"]).unwrap();
    assert_eq!(keys(store, "conf-s"), [b"new"]);
    assert_eq!(store.list("conf-t").unwrap(), ["p2"], "a group whole");
    assert_eq!(keys(store, "conf-u"), [b"old"], "what is not named stays");

    let staging = store.staging().unwrap();
    write(&*staging, "conf-u", b"new");
    drop(staging);
    store.discard_staging().unwrap();
    store.switch_in_staging(&["conf-u"]).unwrap();
    assert!(
        keys(store, "conf-u").is_empty(),
        "a name the staging store lacks ends up absent"
    );
}
