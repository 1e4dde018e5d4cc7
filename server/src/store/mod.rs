//! The storage trait: an ordered key-value store with atomic transactions
//! over a few named tables, and a flush that makes every committed change
//! durable.
//!
//! Nothing backend-specific crosses this trait: the object catalog
//! ([`crate::catalog`]) encodes records and secondary indexes itself, so the
//! in-memory backend (tests), sled (the default) and a future networked
//! backend (PostgreSQL for KMS clusters) all serve it alike. Durability is
//! coordinated above the trait by [`GroupCommit`].

mod group_commit;
mod memory;
mod sled_backend;

pub use group_commit::GroupCommit;
pub use memory::MemoryBackend;
pub use sled_backend::SledBackend;

/// The tables of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Object records by Unique Identifier.
    Objects,
    /// Secondary index entries (`field \0 value \0 id`), no values.
    Index,
    /// Schema version and server metadata.
    Meta,
    /// Background job state (rotation progress).
    Jobs,
}

impl Table {
    /// Every table, in prefix order.
    pub const ALL: [Table; 4] = [Table::Index, Table::Jobs, Table::Meta, Table::Objects];

    /// The table of a one-byte prefix.
    pub fn from_prefix(p: u8) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.prefix() == p)
    }

    /// A one-byte prefix, for backends that keep all tables in one keyspace.
    pub fn prefix(self) -> u8 {
        match self {
            Table::Objects => b'o',
            Table::Index => b'i',
            Table::Meta => b'm',
            Table::Jobs => b'j',
        }
    }
}

/// One change inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Insert or replace.
    Put {
        /// Table.
        table: Table,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Remove (absent keys are fine).
    Delete {
        /// Table.
        table: Table,
        /// Key.
        key: Vec<u8>,
    },
}

/// Changes applied atomically: all or none become visible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    /// The changes, applied in order.
    pub changes: Vec<Change>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a put.
    pub fn put(&mut self, table: Table, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.changes.push(Change::Put {
            table,
            key: key.into(),
            value: value.into(),
        });
    }
    /// Adds a delete.
    pub fn delete(&mut self, table: Table, key: impl Into<Vec<u8>>) {
        self.changes.push(Change::Delete {
            table,
            key: key.into(),
        });
    }
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed.
    #[error("storage backend {backend}: {message}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What it said.
        message: String,
    },
    /// A stored record could not be decoded.
    #[error("corrupt record {key}: {message}")]
    Corrupt {
        /// Which record.
        key: String,
        /// Why.
        message: String,
    },
    /// The store's schema is newer than this build understands.
    #[error("store schema version {found} is newer than supported {supported}")]
    SchemaTooNew {
        /// Found.
        found: u32,
        /// Supported.
        supported: u32,
    },
}

/// Result of storage calls.
pub type Result<T> = std::result::Result<T, StoreError>;

/// An ordered key-value backend with atomic multi-table transactions.
///
/// Calls are blocking but short for local backends (sled serves reads from
/// its page cache); `flush` is the one slow call and runs on the group-commit
/// thread, never on the async runtime.
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;
    /// Reads one value.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Visits keys with `prefix` in order until `visit` returns false.
    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;
    /// Applies a transaction atomically; its changes are visible on return.
    fn commit(&self, txn: &Transaction) -> Result<()>;
    /// Makes every committed transaction durable.
    fn flush(&self) -> Result<()>;
}

#[cfg(test)]
pub(crate) mod suite;
