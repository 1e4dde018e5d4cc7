//! The pool of logged-in PKCS#11 sessions, and the timeout on every call.
//!
//! A caller checks a session out of the pool, runs its PKCS#11 calls on its
//! own thread (the server's `spawn_blocking` thread), and puts the session
//! back. Waiting for a free session is bounded by the timeout; when every
//! session is busy that long, the call fails with [`Error::Timeout`] without
//! touching the HSM. A call already inside the module cannot be cancelled
//! (PKCS#11 has no way to); it keeps its session until the module returns,
//! so a hung HSM holds at most `sessions` threads and every later call
//! times out at checkout. The server additionally bounds its wait with
//! `tokio::time::timeout` around `spawn_blocking`.
//!
//! Running on the caller's thread instead of handing each call to a worker
//! thread saves two thread wake-ups per call: with SoftHSM2 on the 2-core
//! benchmark machine the hand-off cost a third of the throughput
//! (docs/benchmarks.md).
//!
//! Each session recovers by itself: when a call fails because the session
//! or login is gone (token removed, module restarted, login expired) the
//! caller opens and logs in a fresh session and retries the call once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};

use super::module::{find_slot, is_session_lost, map};
use super::Shared;
use crate::error::{Error, Result};

/// Why one attempt of an operation failed: a raw PKCS#11 error (which may be
/// retried on a fresh session) or one of ours (final).
#[derive(Debug)]
pub(crate) enum Fail {
    Ck(CkError),
    Ours(Error),
}

impl From<CkError> for Fail {
    fn from(e: CkError) -> Self {
        Fail::Ck(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Ours(e)
    }
}

/// A checked-out session, possibly not yet opened.
pub(crate) struct Worker {
    shared: Arc<Shared>,
    session: Option<Session>,
}

impl Worker {
    /// Runs `op` on this worker's session, opening one if needed; if the
    /// session turns out to be lost, or a cached key handle stale, it runs
    /// `op` once more on a fresh session with fresh handles.
    pub(crate) fn run<T>(
        &mut self,
        op: impl Fn(&Shared, &Session) -> Result<T, Fail>,
    ) -> Result<T> {
        let mut retried = false;
        loop {
            let session = ensure_session(&self.shared, &mut self.session)?;
            let err = match op(&self.shared, session) {
                Ok(v) => return Ok(v),
                Err(Fail::Ours(e)) => return Err(e),
                Err(Fail::Ck(e)) => e,
            };
            let CkError::Pkcs11(rv, _) = &err else {
                return Err(map(err));
            };
            let stale_handle =
                matches!(rv, RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid);
            if retried || !(is_session_lost(*rv) || stale_handle) {
                return Err(map(err));
            }
            retried = true;
            tracing::warn!(error = %map(err), "PKCS#11 session or handle lost; retrying once on a fresh session");
            // Start from nothing: a fresh session logs in again, and handles
            // are looked up again. Closing may fail on a dead session; it is
            // gone either way.
            self.shared.clear_handles();
            self.session = None;
        }
    }
}

fn ensure_session<'a>(shared: &Shared, slot: &'a mut Option<Session>) -> Result<&'a Session> {
    if slot.is_none() {
        let token = find_slot(&shared.ctx, &shared.token_label)?;
        let session = shared.ctx.open_rw_session(token).map_err(map)?;
        match session.login_with_raw(UserType::User, &shared.pin) {
            // Login state is per application: another session logged in.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(map(e)),
        }
        *slot = Some(session);
    }
    slot.as_ref().ok_or(Error::Unavailable {
        reason: "no PKCS#11 session".into(),
    })
}

/// The idle sessions and the count of sessions in use.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    idle: Mutex<Vec<Option<Session>>>,
    freed: Condvar,
    timeout: Duration,
    size: usize,
    busy: AtomicUsize,
}

/// Returns a checked-out session to the pool, even if the call panicked
/// (then without the session, which may be mid-operation).
struct Checkout<'a> {
    pool: &'a Pool,
    worker: Worker,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let session = if thread::panicking() {
            None
        } else {
            self.worker.session.take()
        };
        self.pool.busy.fetch_sub(1, Ordering::Relaxed);
        lock(&self.pool.idle).push(session);
        self.pool.freed.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The idle list is only pushed and popped whole, so it stays
    // consistent even if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// A pool of `size` sessions, opened on first use.
    pub(crate) fn new(shared: Arc<Shared>, size: usize, timeout: Duration) -> Pool {
        Pool {
            shared,
            idle: Mutex::new((0..size).map(|_| None).collect()),
            freed: Condvar::new(),
            timeout,
            size,
            busy: AtomicUsize::new(0),
        }
    }

    /// Runs `op` on a session, waiting at most the timeout for one.
    pub(crate) fn call<T>(&self, op: impl FnOnce(&mut Worker) -> Result<T>) -> Result<T> {
        let deadline = Instant::now() + self.timeout;
        let mut idle = lock(&self.idle);
        let session = loop {
            if let Some(session) = idle.pop() {
                break session;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    timeout_ms: self.timeout.as_millis().try_into().unwrap_or(u64::MAX),
                });
            }
            idle = self
                .freed
                .wait_timeout(idle, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        drop(idle);
        self.busy.fetch_add(1, Ordering::Relaxed);
        let mut checkout = Checkout {
            pool: self,
            worker: Worker {
                shared: Arc::clone(&self.shared),
                session,
            },
        };
        op(&mut checkout.worker)
    }

    /// Sessions currently checked out.
    pub(crate) fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Number of sessions.
    pub(crate) fn workers(&self) -> usize {
        self.size
    }
}
