//! The sled 0.34 backend: every table in one tree under a one-byte prefix,
//! so that a transaction is one atomic `apply_batch`.

use super::{Backend, Change, Result, StoreError, Table, Transaction};
use std::path::Path;

/// sled-backed storage.
#[derive(Debug, Clone)]
pub struct SledBackend {
    db: sled::Db,
    tree: sled::Tree,
}

fn err(e: sled::Error) -> StoreError {
    StoreError::Backend {
        backend: "sled",
        message: e.to_string(),
    }
}

fn prefixed(table: Table, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(table.prefix());
    k.extend_from_slice(key);
    k
}

impl SledBackend {
    /// Opens (or creates) the store in `dir`.
    ///
    /// sled holds an exclusive lock on its directory, released by its
    /// background threads shortly after the previous instance is dropped
    /// (a restart in the same process): a lock conflict is retried for up
    /// to five seconds before it is reported as another process's store.
    pub fn open(dir: &Path) -> Result<Self> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let db = loop {
            let r = sled::Config::new()
                .path(dir)
                // Durability comes from explicit group-commit flushes, not a timer.
                .flush_every_ms(None)
                .open();
            match r {
                Err(e) if e.to_string().contains("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Backend {
                            backend: "sled",
                            message: format!(
                                "{} is locked: is another kmipd using this data directory?",
                                dir.display()
                            ),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other.map_err(err)?,
            }
        };
        let tree = db.open_tree("kmipd").map_err(err)?;
        Ok(Self { db, tree })
    }
}

impl Backend for SledBackend {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tree
            .get(prefixed(table, key))
            .map_err(err)?
            .map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        for kv in self.tree.scan_prefix(prefixed(table, prefix)) {
            let (k, v) = kv.map_err(err)?;
            // Every key in this scan starts with the one-byte table prefix.
            if !visit(&k[1..], &v) {
                break;
            }
        }
        Ok(())
    }

    fn commit(&self, txn: &Transaction) -> Result<()> {
        let mut batch = sled::Batch::default();
        for c in &txn.changes {
            match c {
                Change::Put { table, key, value } => {
                    batch.insert(prefixed(*table, key), value.as_slice())
                }
                Change::Delete { table, key } => batch.remove(prefixed(*table, key)),
            }
        }
        self.tree.apply_batch(batch).map_err(err)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(err)
    }
}
