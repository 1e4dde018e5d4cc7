//! The server's shared state: store, key protector, cache, policy, clock,
//! audit and metrics, built once at start and shared by every connection.

use crate::access::AccessPolicy;
use crate::audit::Audit;
use crate::catalog::Catalog;
use crate::keycache::KeyCache;
use crate::metrics::Metrics;
use kmipd_hsm::KeyProtector;
use std::sync::Arc;
use std::time::Instant;

/// Where time comes from: the system clock in production, a fake in tests.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the epoch.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
}

/// A settable clock for tests.
#[derive(Debug, Default)]
pub struct FakeClock(pub std::sync::atomic::AtomicI64);

impl Clock for FakeClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Number of lock stripes serialising writes to the same object.
const STRIPES: usize = 256;

/// Shared server state.
#[derive(Debug)]
pub struct Server {
    /// Objects.
    pub catalog: Catalog,
    /// Master key.
    pub protector: Arc<dyn KeyProtector>,
    /// Unwrapped content cache.
    pub cache: KeyCache,
    /// Identities and permissions.
    pub policy: AccessPolicy,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Audit trail.
    pub audit: Audit,
    /// Metrics.
    pub metrics: Metrics,
    /// Vendor Identification for Query.
    pub vendor: String,
    /// Start time, for status.
    pub started: Instant,
    /// State of kmipd's admin operations (last-fetched times, backups).
    pub admin: crate::ops::admin::AdminState,
    /// Background jobs (master-key rotation) and their control.
    pub jobs: crate::jobs::Jobs,
    /// Object groups: default-member positions and on-demand groups.
    pub groups: crate::groups::Groups,
    /// Asynchronous operations awaiting Poll (ops/pending.rs).
    pub pending: crate::ops::pending::Pending,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl Server {
    /// Assembles the state.
    pub fn new(
        catalog: Catalog,
        protector: Arc<dyn KeyProtector>,
        cache: KeyCache,
        policy: AccessPolicy,
        clock: Arc<dyn Clock>,
        audit: Audit,
        vendor: String,
    ) -> Self {
        Self {
            catalog,
            protector,
            cache,
            policy,
            clock,
            audit,
            metrics: Metrics::default(),
            vendor,
            started: Instant::now(),
            admin: Default::default(),
            jobs: Default::default(),
            groups: Default::default(),
            pending: Default::default(),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    fn stripe(id: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        (h.finish() as usize) % STRIPES
    }

    /// Serialises read-modify-write of one object (striped by id).
    pub async fn lock(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        // stripe() is below STRIPES, so the index is in bounds.
        self.stripes[Self::stripe(id)].lock().await
    }

    /// Locks the stripes of several objects, in stripe order so that two
    /// callers never deadlock (batch changes: master-key rotation). Holders
    /// of one stripe lock must not wait for another.
    pub async fn lock_many(&self, ids: &[&str]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = ids.iter().map(|id| Self::stripe(id)).collect();
        idx.sort_unstable();
        idx.dedup();
        let mut guards = Vec::with_capacity(idx.len());
        for i in idx {
            guards.push(self.stripes[i].lock().await);
        }
        guards
    }
}
