//! The in-memory backend, for tests: a BTreeMap per table behind one lock.

use super::{Backend, Change, Result, Table, Transaction};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// Every table's keys and values, ordered by (table, key).
type Tables = BTreeMap<(Table, Vec<u8>), Vec<u8>>;

/// In-memory storage (nothing survives the process).
#[derive(Debug, Default)]
pub struct MemoryBackend {
    tables: RwLock<Tables>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let t = self.tables.read().unwrap_or_else(|p| p.into_inner());
        Ok(t.get(&(table, key.to_vec())).cloned())
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let t = self.tables.read().unwrap_or_else(|p| p.into_inner());
        for ((tb, k), v) in t.range((table, prefix.to_vec())..) {
            if *tb != table || !k.starts_with(prefix) || !visit(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn commit(&self, txn: &Transaction) -> Result<()> {
        let mut t = self.tables.write().unwrap_or_else(|p| p.into_inner());
        for c in &txn.changes {
            match c {
                Change::Put { table, key, value } => {
                    t.insert((*table, key.clone()), value.clone());
                }
                Change::Delete { table, key } => {
                    t.remove(&(*table, key.clone()));
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}
