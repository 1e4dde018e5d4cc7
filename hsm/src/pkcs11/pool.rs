//! Worker threads, each owning one logged-in PKCS#11 session, and the
//! timeout on every call.
//!
//! A PKCS#11 call cannot be cancelled: a network HSM that stops answering
//! keeps the calling thread inside the module. So callers never call the
//! module themselves; they queue a job for the workers and wait for the
//! answer at most `timeout`. The timeout therefore covers both waiting for a
//! free session and the call itself. A call that overruns keeps its worker
//! until the module returns (its answer is dropped, plaintext wiped); a job
//! whose caller already gave up is skipped instead of run.
//!
//! Each worker recovers its own session: when a call fails because the
//! session or login is gone (token removed, module restarted, login expired)
//! the worker opens and logs in a fresh session and retries the call once.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};

use super::module::{find_slot, is_session_lost, map};
use super::Shared;
use crate::error::{Error, Result};

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

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

/// The state one worker thread owns.
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

/// The queue of jobs and the workers serving it.
pub(crate) struct Pool {
    jobs: mpsc::Sender<Job>,
    timeout: Duration,
    workers: usize,
    busy: Arc<AtomicUsize>,
}

impl Pool {
    pub(crate) fn spawn(shared: Arc<Shared>, workers: usize, timeout: Duration) -> Result<Pool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let busy = Arc::new(AtomicUsize::new(0));
        for i in 0..workers {
            let queue = Arc::clone(&queue);
            let busy = Arc::clone(&busy);
            let mut worker = Worker {
                shared: Arc::clone(&shared),
                session: None,
            };
            thread::Builder::new()
                .name(format!("kmipd-hsm-{i}"))
                .spawn(move || loop {
                    // The guard is a temporary of this statement: the lock
                    // is released before the job runs.
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(job) = job else {
                        return; // The protector was dropped.
                    };
                    busy.fetch_add(1, Ordering::Relaxed);
                    if catch_unwind(AssertUnwindSafe(|| job(&mut worker))).is_err() {
                        // The session may be mid-operation: start afresh.
                        worker.session = None;
                    }
                    busy.fetch_sub(1, Ordering::Relaxed);
                })
                .map_err(|e| Error::Unavailable {
                    reason: format!("cannot start PKCS#11 worker thread: {e}"),
                })?;
        }
        Ok(Pool {
            jobs,
            timeout,
            workers,
            busy,
        })
    }

    /// Runs `op` on a worker and waits for it at most the timeout.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Worker) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let deadline = Instant::now() + self.timeout;
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |worker| {
            if Instant::now() >= deadline {
                return; // The caller has given up: do not touch the HSM.
            }
            // The caller may have given up meanwhile; the result is dropped.
            let _ = reply.send(op(worker));
        });
        self.jobs.send(job).map_err(|_| Error::Unavailable {
            reason: "PKCS#11 workers have stopped".into(),
        })?;
        match answer.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(Error::Timeout {
                timeout_ms: self.timeout.as_millis().try_into().unwrap_or(u64::MAX),
            }),
            Err(RecvTimeoutError::Disconnected) => {
                // The job was skipped at its deadline or panicked.
                if Instant::now() >= deadline {
                    Err(Error::Timeout {
                        timeout_ms: self.timeout.as_millis().try_into().unwrap_or(u64::MAX),
                    })
                } else {
                    Err(Error::Unavailable {
                        reason: "a PKCS#11 worker failed during the call".into(),
                    })
                }
            }
        }
    }

    /// Workers currently inside a job.
    pub(crate) fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Number of workers (and sessions).
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }
}
