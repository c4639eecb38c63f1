//! Where read models are kept: the `ModelStore` trait, a few named, ordered key-value databases
//! (`hoist-projections` keeps `state` and the history partitions `history/p<id>`), and the
//! conformance suite every implementation passes. The implementations (sled on disk, in memory)
//! live in `hoist-stores`: the engine does no I/O.
//!
//! What is kept here is disposable (the log is the truth), so the contract is small: writes
//! are atomic batches, a database or group is removed whole, and a store says whether what it
//! failed on is *damaged* (then its owner throws it away and folds it again) or merely
//! unavailable (a busy, full or unreadable disk: reported, never thrown away).
//!
//! Names are `/`-separated paths of plain segments: `state` is a database, `history` the group of
//! the databases `history/…`.

pub mod conformance;

/// One row: key and value.
pub type Row = (Vec<u8>, Vec<u8>);

/// The rows a scan yields, one at a time.
pub type Rows<'a> = Box<dyn Iterator<Item = Result<Row, ModelError>> + 'a>;

/// The order of a scan's rows, by key (bytewise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// Writes to one database applied together: all of them or, even across a crash, none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// In order; `None` removes the key.
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.push((key.into(), Some(value.into())));
    }

    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.writes.push((key.into(), None));
    }

    /// The writes, in the order they were added (a later one of a key wins): what an
    /// implementation applies.
    pub fn into_writes(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.writes
    }
}

/// Why a model store failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// What the store keeps at `at` is damaged: its owner throws it away and folds it again.
    #[error("{at} is damaged: {message}")]
    Damaged { at: String, message: String },
    /// Not enough room to start a write (`ModelStore::ensure_room`).
    #[error("{at}: a write needs {needed} bytes free, {free} are")]
    Full { at: String, free: u64, needed: u64 },
    /// Anything else: the store cannot be read or written now. Nothing is thrown away for it.
    #[error("{at}: {message}")]
    Unavailable { at: String, message: String },
}

impl ModelError {
    /// Whether the store's own data is damaged, rather than the store unavailable.
    pub fn is_damage(&self) -> bool {
        matches!(self, ModelError::Damaged { .. })
    }
}

/// One open database. Dropping it closes it.
pub trait ModelDb: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ModelError>;

    /// Applies `batch` atomically.
    fn apply(&self, batch: Batch) -> Result<(), ModelError>;

    /// The rows whose keys start with `prefix` (every row for an empty one), in `order`.
    fn scan(&self, prefix: &[u8], order: Order) -> Rows<'_>;

    /// Makes every batch applied so far durable.
    fn flush(&self) -> Result<(), ModelError>;
}

/// A set of named databases.
pub trait ModelStore: Send + Sync {
    /// Where the databases are, for messages (a directory, a bucket).
    fn location(&self) -> &str;

    /// Opens database `name`, creating it empty if there is none. Fails with
    /// [`ModelError::Damaged`] when what is stored under `name` cannot be read as a database.
    fn open(&self, name: &str) -> Result<Box<dyn ModelDb>, ModelError>;

    /// The names (last segment) of the databases and groups directly in group `group`, in no
    /// particular order; none when there is no such group.
    fn list(&self, group: &str) -> Result<Vec<String>, ModelError>;

    /// Removes database or group `name`, whole even across a crash: afterwards it is absent, or
    /// (a crash) as it was. Nothing of it may be open.
    fn remove(&self, name: &str) -> Result<(), ModelError>;

    /// Fails with [`ModelError::Full`] unless a write of about `bytes` can start. Its owner asks
    /// before it writes a batch of folded rows, so a full disk is refused, not hung on.
    fn ensure_room(&self, bytes: u64) -> Result<(), ModelError>;

    /// A new, empty store beside this one, for folding models afresh before they replace these
    /// (`switch_in_staging`); whatever an earlier staging store held is thrown away.
    fn staging(&self) -> Result<Box<dyn ModelStore>, ModelError>;

    /// Replaces this store's databases or groups `names` by the staging store's (a name the
    /// staging store lacks ends up absent), then removes the staging store. They are removed
    /// here last to first, then moved in first to last: the last one named is absent from before
    /// any other changes until every other is new, so a crash leaves the old ones, the new ones,
    /// or the last one absent. Nothing of either store may be open.
    fn switch_in_staging(&self, names: &[&str]) -> Result<(), ModelError>;

    /// Removes the staging store. Nothing of it may be open.
    fn discard_staging(&self) -> Result<(), ModelError>;
}
