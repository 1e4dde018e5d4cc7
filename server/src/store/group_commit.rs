//! Group commit: requests that change the store wait until their change is
//! durable, and every request that arrives while a flush runs is covered by
//! the next flush together, so durability costs one flush per group rather
//! than one per request.
//!
//! A dedicated thread does the flushing (it blocks on the disk); async
//! callers wait on a watch channel and never block the runtime.
//!
//! Snapshots (online backup) must not tear a multi-record transaction: a
//! scan of the backend is not isolated, so a Re-key that writes the old and
//! the new key in one batch could be seen half-applied. Every commit
//! therefore holds a *commit gate* shared (an async read lock, so writers
//! never exclude each other), and [`GroupCommit::snapshot`] holds it
//! exclusively for the span of its scan: the scan sees every transaction
//! either whole or not at all. Reads never touch the gate; writers wait
//! (asynchronously, off the runtime's threads) only while a snapshot scans.

use super::{Backend, Result, Transaction};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Commits transactions and tracks their durability.
#[derive(Debug)]
pub struct GroupCommit {
    inner: Arc<Inner>,
    durable_rx: watch::Receiver<u64>,
    /// Commits hold it shared, snapshots exclusively (see the module docs).
    gate: Arc<tokio::sync::RwLock<()>>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    /// Sequence number of the last committed transaction.
    committed: AtomicU64,
    /// Highest sequence number someone waits to see durable.
    wanted: Mutex<u64>,
    wake: Condvar,
    durable_tx: watch::Sender<u64>,
    flushes: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("backend", &self.backend.name())
            .field("committed", &self.committed.load(Ordering::Relaxed))
            .finish()
    }
}

impl GroupCommit {
    /// Starts the flusher thread for `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        let (durable_tx, durable_rx) = watch::channel(0);
        let inner = Arc::new(Inner {
            backend,
            committed: AtomicU64::new(0),
            wanted: Mutex::new(0),
            wake: Condvar::new(),
            durable_tx,
            flushes: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("kmipd-flush".into())
            .spawn(move || flusher(weak))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the flush thread"));
        Self {
            inner,
            durable_rx,
            gate: Arc::new(tokio::sync::RwLock::new(())),
        }
    }

    /// The backend, for reads.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// Applies `txn` atomically (visible at once) and returns its sequence
    /// number, to pass to [`GroupCommit::durable`]. Waits while a snapshot
    /// scans.
    pub async fn commit(&self, txn: &Transaction) -> Result<u64> {
        let _shared = self.gate.read().await;
        self.commit_gated(txn)
    }

    /// Like [`GroupCommit::commit`] but never waits: `None` when a snapshot
    /// holds the gate (the caller retries later). For best-effort writes
    /// such as last-fetched times.
    pub fn try_commit(&self, txn: &Transaction) -> Option<Result<u64>> {
        let _shared = self.gate.try_read().ok()?;
        Some(self.commit_gated(txn))
    }

    fn commit_gated(&self, txn: &Transaction) -> Result<u64> {
        self.inner.backend.commit(txn)?;
        Ok(self.inner.committed.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Runs `scan` over the backend while no transaction can commit, off the
    /// runtime, then waits until everything it saw is durable (a backup never
    /// holds a change the server could still lose). Returns what `scan`
    /// returned and the sequence number of the last transaction it saw.
    pub async fn snapshot<T, F>(&self, scan: F) -> Result<(T, u64)>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Backend) -> Result<T> + Send + 'static,
    {
        let exclusive = self.gate.clone().write_owned().await;
        let backend = self.inner.backend.clone();
        let seq = self.inner.committed.load(Ordering::SeqCst);
        let out = tokio::task::spawn_blocking(move || {
            let r = scan(backend.as_ref());
            drop(exclusive);
            r
        })
        .await
        .map_err(|e| super::StoreError::Backend {
            backend: "snapshot",
            message: e.to_string(),
        })??;
        self.durable(seq).await;
        Ok((out, seq))
    }

    /// Waits until the transaction numbered `seq` is on disk.
    pub async fn durable(&self, seq: u64) {
        if *self.durable_rx.borrow() >= seq {
            return;
        }
        {
            let mut w = self.inner.wanted.lock().unwrap_or_else(|p| p.into_inner());
            if *w < seq {
                *w = seq;
            }
            self.inner.wake.notify_one();
        }
        let mut rx = self.durable_rx.clone();
        // The sender lives as long as `inner`, which we hold.
        let _ = rx.wait_for(|d| *d >= seq).await;
    }

    /// Commits and waits for durability.
    pub async fn commit_durable(&self, txn: &Transaction) -> Result<()> {
        let seq = self.commit(txn).await?;
        self.durable(seq).await;
        Ok(())
    }

    /// Number of flushes so far (for metrics and tests of grouping).
    pub fn flushes(&self) -> u64 {
        self.inner.flushes.load(Ordering::Relaxed)
    }
}

fn flusher(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(me) = inner.upgrade() else { return };
        let target = {
            let mut wanted = me.wanted.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                let durable = *me.durable_tx.borrow();
                if *wanted > durable {
                    break;
                }
                let (w, _) = me
                    .wake
                    .wait_timeout(wanted, Duration::from_millis(200))
                    .unwrap_or_else(|p| p.into_inner());
                wanted = w;
                if Arc::strong_count(&me) == 1 {
                    return;
                }
            }
            // Everything committed so far is covered by this flush.
            me.committed.load(Ordering::SeqCst)
        };
        match me.backend.flush() {
            Ok(()) => {
                me.flushes.fetch_add(1, Ordering::Relaxed);
                me.durable_tx.send_modify(|d| *d = (*d).max(target));
            }
            Err(e) => {
                // Waiters stay waiting: nothing is acknowledged until it is on disk.
                tracing::error!(error = %e, "store flush failed; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
