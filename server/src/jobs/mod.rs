//! Background jobs: online master-key rotation (re-wrapping every stored
//! object under a new master key version) and the policy scheduler.
//!
//! A job's state lives in [`Table::Jobs`] as a small versioned JSON record
//! (never key material), written in the same store transaction as the
//! objects it changed: after a crash the record and the objects agree, and
//! the runner resumes every unfinished job at start-up.
//!
//! One job runs at a time. The runner ([`spawn`]) waits for work (a new
//! job, a resume, or the scheduler), runs it batch by batch, and stops at a
//! batch boundary on pause or shutdown.
//!
//! [`summary`] is what other parts of kmipd (status) call to show jobs.

mod record;
pub mod rotation;
pub mod scheduler;

use crate::state::Server;
use crate::store::{StoreError, Table, Transaction};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// Format of job records this build writes.
const RECORD_FORMAT: u32 = 1;
/// Key prefix of job records in [`Table::Jobs`].
const JOB_PREFIX: &str = "job/";
/// At most this many failed object ids are kept in a job record.
pub const MAX_FAILED_IDS: usize = 100;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// Re-wrap every object under the newest master key version.
    MasterRotate,
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobKind::MasterRotate => "master-rotate",
        })
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Runs (or will run as soon as the runner gets to it).
    Running,
    /// Stopped by an administrator; `resume` continues it.
    Paused,
    /// Finished; `failed` objects (if any) could not be re-wrapped.
    Completed,
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Completed => "completed",
        })
    }
}

/// A job as stored in [`Table::Jobs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Record format.
    pub format: u32,
    /// Job number (1, 2, ...).
    pub id: u64,
    /// What it does.
    pub kind: JobKind,
    /// Running, paused or completed.
    pub state: JobState,
    /// The current master key version when the job was requested.
    pub base_version: u32,
    /// The version objects are re-wrapped to; `None` until it exists (a
    /// crash between the request and the version's creation leaves it
    /// unset and the runner finishes the creation).
    pub target_version: Option<u32>,
    /// Objects under older versions when the job started.
    pub total: u64,
    /// Objects re-wrapped so far.
    pub done: u64,
    /// Objects that could not be re-wrapped (corrupt or undecryptable).
    pub failed_count: u64,
    /// The first [`MAX_FAILED_IDS`] of them.
    pub failed: Vec<String>,
    /// Who asked for it (identity, or `kmipd-scheduler`).
    pub requested_by: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// Last progress.
    pub updated: i64,
    /// When it completed.
    pub finished: Option<i64>,
    /// Times it was resumed after a restart.
    pub resumes: u32,
    /// Last transient problem (HSM unreachable...), cleared on progress.
    pub message: Option<String>,
}

impl JobRecord {
    fn key(id: u64) -> Vec<u8> {
        format!("{JOB_PREFIX}{id:020}").into_bytes()
    }

    /// Whether it still has work to do.
    pub fn unfinished(&self) -> bool {
        self.state != JobState::Completed
    }

    /// Adds the record to a transaction.
    pub fn stage(&self, txn: &mut Transaction) {
        // Serialising a struct of plain fields cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        txn.put(Table::Jobs, Self::key(self.id), bytes);
    }
}

/// Every job record, oldest first.
pub fn list(server: &Server) -> Result<Vec<JobRecord>, StoreError> {
    let mut out = Vec::new();
    let mut err = None;
    server
        .catalog
        .backend()
        .scan(Table::Jobs, JOB_PREFIX.as_bytes(), &mut |k, v| {
            match serde_json::from_slice::<JobRecord>(v) {
                Ok(r) if r.format == RECORD_FORMAT => out.push(r),
                Ok(r) => {
                    err = Some(StoreError::Corrupt {
                        key: String::from_utf8_lossy(k).into_owned(),
                        message: format!("job record format {} unknown", r.format),
                    })
                }
                Err(e) => {
                    err = Some(StoreError::Corrupt {
                        key: String::from_utf8_lossy(k).into_owned(),
                        message: e.to_string(),
                    })
                }
            }
            err.is_none()
        })?;
    err.map_or(Ok(out), Err)
}

/// One job.
pub fn get(server: &Server, id: u64) -> Result<Option<JobRecord>, StoreError> {
    Ok(list(server)?.into_iter().find(|j| j.id == id))
}

/// The unfinished job, if any (there is at most one).
pub fn unfinished(server: &Server) -> Result<Option<JobRecord>, StoreError> {
    Ok(list(server)?.into_iter().find(JobRecord::unfinished))
}

/// Stores a job record durably.
pub async fn save(server: &Server, job: &JobRecord) -> Result<(), StoreError> {
    let mut txn = Transaction::new();
    job.stage(&mut txn);
    server.catalog.commit(&txn).await
}

/// Live, in-memory view of the running job (rate, time left).
#[derive(Debug, Clone)]
pub struct Live {
    /// Job number.
    pub id: u64,
    /// Objects re-wrapped when this process started running it.
    pub done_at_start: u64,
    /// When this process started running it.
    pub started: Instant,
}

/// Per-server job state: wake-ups, pause requests and the running job.
#[derive(Debug, Default)]
pub struct Jobs {
    /// Wakes the runner (new job, resume).
    wake: tokio::sync::Notify,
    /// Serialises job creation, pause, resume and the runner's pick-up.
    pub(crate) control: tokio::sync::Mutex<()>,
    /// The job the runner is running, shared with pause.
    running: Mutex<Option<Arc<Mutex<JobRecord>>>>,
    live: Mutex<Option<Live>>,
    /// Objects re-wrapped by this process (metrics).
    pub rewrapped: AtomicU64,
}

impl Jobs {
    /// Wakes the runner.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The live view of the running job.
    pub fn live(&self) -> Option<Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_running(&self, job: Option<Arc<Mutex<JobRecord>>>) {
        let live = job.as_ref().map(|j| {
            let j = j.lock().unwrap_or_else(|p| p.into_inner());
            Live {
                id: j.id,
                done_at_start: j.done,
                started: Instant::now(),
            }
        });
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = job;
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = live;
    }

    /// The running job's shared record, when `id` is running.
    fn running(&self, id: u64) -> Option<Arc<Mutex<JobRecord>>> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|j| j.lock().unwrap_or_else(|p| p.into_inner()).id == id)
            .cloned()
    }
}

/// A job as shown by status: the stored record plus the live rate.
#[derive(Debug, Clone)]
pub struct JobSummary {
    /// The record (the running job's in-memory copy, fresher than the store's).
    pub record: JobRecord,
    /// Objects per second since this process started running it.
    pub rate: Option<f64>,
}

/// Every job with the live rate of the running one, newest first. For
/// `kmipctl jobs status` and the status operation.
pub fn summary(server: &Server) -> Result<Vec<JobSummary>, StoreError> {
    let live = server.jobs.live();
    let mut out: Vec<JobSummary> = list(server)?
        .into_iter()
        .rev()
        .map(|mut record| {
            let mut rate = None;
            if let Some(shared) = server.jobs.running(record.id) {
                record = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
            }
            if let Some(l) = live.as_ref().filter(|l| l.id == record.id) {
                let secs = l.started.elapsed().as_secs_f64();
                if secs > 0.0 {
                    rate = Some(record.done.saturating_sub(l.done_at_start) as f64 / secs);
                }
            }
            JobSummary { record, rate }
        })
        .collect();
    out.truncate(20);
    Ok(out)
}

/// Errors of job control.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The request conflicts with the jobs' state.
    #[error("{0}")]
    Conflict(String),
    /// No such job.
    #[error("{0}")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key protector failed.
    #[error("key protection: {0}")]
    Hsm(#[from] kmipd_hsm::Error),
    /// A background task failed.
    #[error("{0}")]
    Internal(String),
}

impl From<JobError> for crate::errors::OpError {
    fn from(e: JobError) -> Self {
        use crate::errors::OpError;
        match e {
            JobError::Conflict(m) => OpError::IllegalOperation(m),
            JobError::NotFound(m) => OpError::NotFound(m),
            JobError::Store(s) => s.into(),
            JobError::Hsm(h) => h.into(),
            JobError::Internal(m) => OpError::Internal(m),
        }
    }
}

/// Pauses job `id` at its next batch boundary (persisted: it stays paused
/// across restarts).
pub async fn pause(server: &Server, id: u64) -> Result<JobRecord, JobError> {
    set_state(server, id, JobState::Paused).await
}

/// Resumes a paused job.
pub async fn resume(server: &Server, id: u64) -> Result<JobRecord, JobError> {
    set_state(server, id, JobState::Running).await
}

/// Moves job `id` between Running and Paused. A job the runner holds is
/// changed in place (the runner sees it at its next batch boundary); a
/// stored one is saved, and the runner is woken to resume it.
async fn set_state(server: &Server, id: u64, to: JobState) -> Result<JobRecord, JobError> {
    let _control = server.jobs.control.lock().await;
    if let Some(shared) = server.jobs.running(id) {
        let copy = {
            let mut j = shared.lock().unwrap_or_else(|p| p.into_inner());
            j.state = to;
            j.clone()
        };
        save(server, &copy).await?;
        return Ok(copy);
    }
    let mut job = get(server, id)?.ok_or_else(|| JobError::NotFound(format!("no job {id}")))?;
    match job.state {
        JobState::Completed => Err(JobError::Conflict(format!("job {id} has completed"))),
        s if s == to => Ok(job),
        _ => {
            job.state = to;
            job.updated = server.clock.now();
            save(server, &job).await?;
            if to == JobState::Running {
                server.jobs.wake();
            }
            Ok(job)
        }
    }
}

/// Why [`run_pending`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// No job left to run.
    NoWork,
    /// A job stopped because it was paused.
    Paused,
    /// Shutdown was requested.
    Shutdown,
}

/// Runs the unfinished job until it completes, is paused or `shutdown`
/// turns true. Used by the runner and, directly, by tests.
pub async fn run_pending(
    server: &Arc<Server>,
    options: &rotation::Options,
    shutdown: &watch::Receiver<bool>,
) -> Result<Idle, JobError> {
    let shared = {
        let _control = server.jobs.control.lock().await;
        match unfinished(server)? {
            Some(job) if job.state == JobState::Running => {
                let shared = Arc::new(Mutex::new(job));
                server.jobs.set_running(Some(shared.clone()));
                shared
            }
            Some(_) => return Ok(Idle::Paused),
            None => return Ok(Idle::NoWork),
        }
    };
    let r = rotation::run(server, &shared, options, shutdown).await;
    let _control = server.jobs.control.lock().await;
    server.jobs.set_running(None);
    r
}

/// Starts the job runner: resumes the unfinished job at once, then waits for
/// work until `shutdown`.
pub fn spawn(
    server: Arc<Server>,
    options: rotation::Options,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // A job found running at start-up was interrupted (crash, restart).
        match unfinished(&server) {
            Ok(Some(mut job)) if job.state == JobState::Running => {
                job.resumes += 1;
                tracing::info!(job = job.id, kind = %job.kind, done = job.done, total = job.total, "resuming an interrupted job");
                if let Err(e) = save(&server, &job).await {
                    tracing::error!(error = %e, "cannot record the job's resumption");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the jobs table"),
        }
        loop {
            if *shutdown.borrow() {
                return;
            }
            let notified = server.jobs.wake.notified();
            match run_pending(&server, &options, &shutdown).await {
                Ok(Idle::Shutdown) => return,
                Ok(Idle::NoWork) | Ok(Idle::Paused) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "job failed; retrying in 10 s");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
                        _ = notified => {}
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                }
            }
        }
    })
}

/// Records an event in the audit trail as kmipd itself.
pub fn audit(
    server: &Server,
    identity: &str,
    operation: &str,
    object: Option<String>,
    result: &str,
) {
    server.audit.record(crate::audit::Event {
        time: server.clock.now(),
        identity: identity.to_owned(),
        peer: "-".into(),
        operation: operation.to_owned(),
        object,
        result: result.to_owned(),
    });
}

/// The next job number.
fn next_id(server: &Server) -> Result<u64, StoreError> {
    Ok(list(server)?.last().map_or(1, |j| j.id + 1))
}

/// Identity of changes kmipd makes by itself.
pub const SCHEDULER_IDENTITY: &str = "kmipd-scheduler";

/// Number of objects re-wrapped by this process.
pub fn rewrapped(server: &Server) -> u64 {
    server.jobs.rewrapped.load(Ordering::Relaxed)
}
