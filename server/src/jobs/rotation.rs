//! Online master-key rotation: a new master key version, then a job that
//! re-wraps every stored object under it while clients keep reading and
//! writing.
//!
//! The job works in batches of objects taken from the master-key-version
//! index (`mv`). For each batch:
//!
//! 1. the records are read and each object's content is unwrapped and
//!    wrapped again under the new version, on blocking threads in parallel
//!    (no lock held: the HSM work is the slow part);
//! 2. the stripe locks of the batch's objects are taken (in stripe order),
//!    each record is read again and compared byte for byte with what was
//!    re-wrapped; an object changed meanwhile is left for a later batch;
//! 3. the unchanged ones are written in **one** store transaction together
//!    with the job's progress record, the locks are released, and the
//!    durability of that transaction is awaited while the next batch is
//!    being re-wrapped (one flush per batch, never one per object).
//!
//! A re-wrapped record keeps its attributes (Last Change Date included: the
//! object did not change for its users) and gets revision + 1, so the cache
//! of unwrapped content drops the entry read under the old version. Because
//! the record and the job's progress commit together, a crash loses at most
//! the batches not yet flushed, and those are redone after restart (the
//! index, not a cursor, says what is left).

use super::{audit, next_id, save, Idle, JobError, JobKind, JobRecord, JobState, MAX_FAILED_IDS};
use crate::catalog::{decode_record, encode_record, field, index_entries};
use crate::model::Material;
use crate::state::Server;
use crate::store::{Change, StoreError, Table, Transaction};
use kmipd_hsm::WrappedKey;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How the rotation job runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Objects per store transaction.
    pub batch_size: usize,
    /// Blocking threads re-wrapping in parallel.
    pub workers: usize,
    /// Upper bound of the re-wrap rate (objects per second), to spare a
    /// busy HSM; `None`: as fast as possible.
    pub max_per_sec: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            batch_size: 1024,
            workers: cores,
            max_per_sec: None,
        }
    }
}

/// The index prefix of objects under master key version `v`; the same
/// layout as `catalog::index_key` (`field \0 value \0 id`).
fn mv_prefix(v: u32) -> Vec<u8> {
    format!("{}\0{v}\0", field::MASTER_VERSION).into_bytes()
}

/// Objects per master key version, from the index (versions the key
/// protector no longer holds included).
pub fn objects_per_version(server: &Server) -> Result<BTreeMap<u32, u64>, StoreError> {
    let prefix = format!("{}\0", field::MASTER_VERSION).into_bytes();
    let mut counts = BTreeMap::new();
    server
        .catalog
        .backend()
        .scan(Table::Index, &prefix, &mut |k, _| {
            let rest = &k[prefix.len()..];
            if let Some(end) = rest.iter().position(|b| *b == 0) {
                if let Some(v) = std::str::from_utf8(&rest[..end])
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                {
                    *counts.entry(v).or_insert(0) += 1;
                }
            }
            true
        })?;
    Ok(counts)
}

/// Objects under master key version `v`.
pub fn count_under(server: &Server, v: u32) -> Result<u64, StoreError> {
    let mut n = 0;
    server
        .catalog
        .backend()
        .scan(Table::Index, &mv_prefix(v), &mut |_, _| {
            n += 1;
            true
        })?;
    Ok(n)
}

/// Up to `limit` ids under the versions `old`, skipping `skip`.
fn next_batch(
    server: &Server,
    old: &[u32],
    skip: &HashSet<String>,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let mut ids = Vec::with_capacity(limit);
    for v in old {
        let prefix = mv_prefix(*v);
        server
            .catalog
            .backend()
            .scan(Table::Index, &prefix, &mut |k, _| {
                let id = String::from_utf8_lossy(&k[prefix.len()..]);
                if !skip.contains(id.as_ref()) {
                    ids.push(id.into_owned());
                }
                ids.len() < limit
            })?;
        if ids.len() >= limit {
            break;
        }
    }
    Ok(ids)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| JobError::Internal(format!("background task: {e}")))
}

/// Requests a rotation: records the job, creates the new master key version
/// (current at once: every later write uses it) and wakes the runner.
/// Refused while another job is unfinished.
pub async fn start(server: &Server, requested_by: &str) -> Result<JobRecord, JobError> {
    let _control = server.jobs.control.lock().await;
    if let Some(j) = super::unfinished(server)? {
        return Err(JobError::Conflict(format!(
            "job {} ({}) is {}: wait for it or resume it before rotating again",
            j.id, j.kind, j.state
        )));
    }
    let now = server.clock.now();
    let base = server.protector.current_version();
    let mut job = JobRecord {
        format: super::RECORD_FORMAT,
        id: next_id(server)?,
        kind: JobKind::MasterRotate,
        state: JobState::Running,
        base_version: base,
        target_version: None,
        total: 0,
        done: 0,
        failed_count: 0,
        failed: Vec::new(),
        requested_by: requested_by.to_owned(),
        created: now,
        updated: now,
        finished: None,
        resumes: 0,
        message: None,
    };
    // Recorded first: a crash after the version's creation still finds the
    // job and re-wraps under it.
    save(server, &job).await?;
    let protector = server.protector.clone();
    let version = match blocking(move || protector.new_version()).await? {
        Ok(v) => v,
        Err(e) => {
            let mut txn = Transaction::new();
            txn.delete(Table::Jobs, JobRecord::key(job.id));
            server.catalog.commit(&txn).await?;
            return Err(e.into());
        }
    };
    job.target_version = Some(version);
    job.updated = server.clock.now();
    save(server, &job).await?;
    tracing::info!(
        job = job.id,
        from = base,
        to = version,
        "master key rotation started"
    );
    server.jobs.wake();
    Ok(job)
}

/// What one object's re-wrap produced.
enum Prepared {
    /// Re-wrapped: the record read and the changes that store the new one.
    Ready {
        id: String,
        read: Vec<u8>,
        changes: Vec<Change>,
    },
    /// Nothing to do (destroyed or already under a newer version meanwhile).
    Skip,
    /// Cannot be re-wrapped (corrupt record or blob, unknown version).
    Failed { id: String, why: String },
    /// The key protector failed transiently; retried later.
    Transient { why: String },
}

fn permanent(e: &kmipd_hsm::Error) -> bool {
    use kmipd_hsm::Error as E;
    matches!(
        e,
        E::IntegrityFailure
            | E::Malformed { .. }
            | E::WrongBackend { .. }
            | E::UnknownVersion { .. }
            | E::InvalidInput { .. }
    )
}

fn prepare_one(server: &Server, id: String, target: u32) -> Prepared {
    let read = match server.catalog.backend().get(Table::Objects, id.as_bytes()) {
        Ok(Some(b)) => b,
        Ok(None) => return Prepared::Skip,
        Err(e) => return Prepared::Transient { why: e.to_string() },
    };
    if let Some(p) = super::record::parts(&read) {
        return match prepare_fast(server, &id, &read, &p, target) {
            Ok(changes) => Prepared::Ready { id, read, changes },
            Err(other) => other,
        };
    }
    // Not the usual shape: the full decode / encode path.
    let old = match decode_record(&id, &read) {
        Ok(o) => o,
        Err(e) => {
            return Prepared::Failed {
                id,
                why: e.to_string(),
            }
        }
    };
    let Some(m) = &old.material else {
        return Prepared::Skip;
    };
    if m.master_version >= target {
        return Prepared::Skip;
    }
    let w = match rewrap_blob(server, &id, &m.wrapped) {
        Ok(w) => w,
        Err(e) => return e,
    };
    let mut new = old.clone();
    new.material = Some(Material {
        master_version: w.master_version(),
        wrapped: w.to_bytes(),
    });
    // Same attributes (Last Change Date untouched); a new revision so that
    // cached content read under the old version is not served as this one.
    new.revision = old.revision + 1;
    // Only the changed index entries (the master key version's): a third
    // of the writes of a full `stage_put`.
    let before = index_entries(&old);
    let after = index_entries(&new);
    let mut txn = Transaction::new();
    for k in &before {
        if after.binary_search(k).is_err() {
            txn.delete(Table::Index, k.clone());
        }
    }
    for k in after {
        if before.binary_search(&k).is_err() {
            txn.put(Table::Index, k, Vec::new());
        }
    }
    txn.put(Table::Objects, id.as_bytes().to_vec(), encode_record(&new));
    Prepared::Ready {
        id,
        read,
        changes: txn.changes,
    }
}

fn rewrap_blob(server: &Server, id: &str, blob: &[u8]) -> Result<WrappedKey, Prepared> {
    WrappedKey::from_bytes(blob)
        .and_then(|w| {
            kmipd_hsm::rewrap(
                server.protector.as_ref(),
                server.protector.as_ref(),
                &w,
                id.as_bytes(),
            )
        })
        .map_err(|e| {
            if permanent(&e) {
                Prepared::Failed {
                    id: id.to_owned(),
                    why: e.to_string(),
                }
            } else {
                Prepared::Transient { why: e.to_string() }
            }
        })
}

/// The usual case: the record's blob, version and revision are spliced in
/// place (see [`super::record`]) and only the version's index entry moves.
fn prepare_fast(
    server: &Server,
    id: &str,
    read: &[u8],
    p: &super::record::Parts<'_>,
    target: u32,
) -> Result<Vec<Change>, Prepared> {
    if p.master_version >= target {
        return Err(Prepared::Skip);
    }
    let w = rewrap_blob(server, id, p.wrapped)?;
    let record =
        super::record::splice(read, p, &w.to_bytes(), w.master_version()).ok_or_else(|| {
            Prepared::Failed {
                id: id.to_owned(),
                why: "record cannot be rewritten".into(),
            }
        })?;
    let mut txn = Transaction::new();
    let mut old_key = mv_prefix(p.master_version);
    old_key.extend_from_slice(id.as_bytes());
    let mut new_key = mv_prefix(w.master_version());
    new_key.extend_from_slice(id.as_bytes());
    txn.delete(Table::Index, old_key);
    txn.put(Table::Index, new_key, Vec::new());
    txn.put(Table::Objects, id.as_bytes().to_vec(), record);
    Ok(txn.changes)
}

/// Re-wraps `ids` on `workers` blocking threads.
async fn prepare(
    server: &Arc<Server>,
    ids: Vec<String>,
    target: u32,
    workers: usize,
) -> Result<Vec<Prepared>, JobError> {
    let per = ids.len().div_ceil(workers.max(1)).max(1);
    let mut tasks = Vec::new();
    let mut ids = ids.into_iter();
    loop {
        let chunk: Vec<String> = ids.by_ref().take(per).collect();
        if chunk.is_empty() {
            break;
        }
        let server = server.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|id| prepare_one(&server, id, target))
                .collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.extend(
            t.await
                .map_err(|e| JobError::Internal(format!("re-wrap task: {e}")))?,
        );
    }
    Ok(out)
}

fn snapshot(shared: &Mutex<JobRecord>) -> JobRecord {
    shared.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn update<T>(shared: &Mutex<JobRecord>, f: impl FnOnce(&mut JobRecord) -> T) -> T {
    f(&mut shared.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Runs a rotation job until it completes, is paused or shutdown is asked.
pub(super) async fn run(
    server: &Arc<Server>,
    shared: &Arc<Mutex<JobRecord>>,
    opts: &Options,
    shutdown: &watch::Receiver<bool>,
) -> Result<Idle, JobError> {
    let job = snapshot(shared);
    let target = match job.target_version {
        Some(t) => t,
        None => {
            // Interrupted between the request and the version's creation.
            let current = server.protector.current_version();
            let t = if current > job.base_version {
                current
            } else {
                let protector = server.protector.clone();
                blocking(move || protector.new_version()).await??
            };
            let copy = update(shared, |j| {
                j.target_version = Some(t);
                j.clone()
            });
            save(server, &copy).await?;
            t
        }
    };
    let protector = server.protector.clone();
    let held = blocking(move || protector.versions()).await??;
    // Versions the index still names but the protector lost are included:
    // their objects fail (unknown version) instead of being ignored.
    let mut old: Vec<u32> = held
        .iter()
        .map(|i| i.version)
        .filter(|v| *v < target)
        .collect();
    {
        let s = server.clone();
        for v in blocking(move || objects_per_version(&s))
            .await??
            .into_keys()
        {
            if v < target && !old.contains(&v) {
                old.push(v);
            }
        }
    }
    old.sort_unstable();
    if job.total == 0 && job.done == 0 {
        let s = server.clone();
        let o = old.clone();
        let total = blocking(move || -> Result<u64, StoreError> {
            o.iter().map(|v| count_under(&s, *v)).sum()
        })
        .await??;
        let copy = update(shared, |j| {
            j.total = total;
            j.clone()
        });
        save(server, &copy).await?;
    }

    let mut failed: HashSet<String> = job.failed.iter().cloned().collect();
    let started = Instant::now();
    let done_at_start = job.done;
    let batch_size = match opts.max_per_sec {
        // About ten batches a second when the rate is bounded.
        Some(r) => (r as usize / 10).clamp(1, opts.batch_size.max(1)),
        None => opts.batch_size.max(1),
    };
    // A two-stage pipeline: while batch k is locked, checked, committed and
    // flushed, batch k+1 is re-wrapped on the blocking threads.
    let mut carry: Option<Vec<Prepared>> = None;
    loop {
        let stop = *shutdown.borrow() || snapshot(shared).state == JobState::Paused;
        let ids = if stop {
            Vec::new()
        } else {
            let mut skip = failed.clone();
            for p in carry.iter().flatten() {
                if let Prepared::Ready { id, .. } = p {
                    skip.insert(id.clone());
                }
            }
            let s = server.clone();
            let o = old.clone();
            blocking(move || next_batch(&s, &o, &skip, batch_size)).await??
        };
        if ids.is_empty() && carry.is_none() {
            if stop {
                break;
            }
            // Nothing in flight and nothing left: done (a batch committed
            // just now is visible to the scan, so this is final).
            return finish(server, shared, &old, target).await;
        }
        let previous = carry.take();
        let (prepared, committed) = tokio::join!(
            async {
                if ids.is_empty() {
                    Ok(None)
                } else {
                    prepare(server, ids, target, opts.workers).await.map(Some)
                }
            },
            async {
                match previous {
                    Some(p) => commit_batch(server, shared, p, &mut failed).await.map(Some),
                    None => Ok(None),
                }
            }
        );
        carry = prepared?;
        let transient = committed?.flatten();
        if let Some(why) = transient {
            tracing::warn!(error = %why, "key protection failing; the job retries in 5 s");
            let mut sd = shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = sd.wait_for(|s| *s) => {}
            }
        } else if let Some(rate) = opts.max_per_sec.filter(|r| *r > 0) {
            let done = snapshot(shared).done;
            let due =
                Duration::from_secs_f64(done.saturating_sub(done_at_start) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                let mut sd = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = sd.wait_for(|s| *s) => {}
                }
            }
        }
    }
    // Stopping (pause or shutdown): the record is durable with the last batch.
    let copy = update(shared, |j| {
        j.updated = server.clock.now();
        j.clone()
    });
    save(server, &copy).await?;
    if *shutdown.borrow() {
        return Ok(Idle::Shutdown);
    }
    tracing::info!(
        job = copy.id,
        done = copy.done,
        total = copy.total,
        "job paused"
    );
    Ok(Idle::Paused)
}

/// Locks a prepared batch's objects, writes those unchanged since they were
/// read in one transaction with the job's progress, and waits until it is
/// durable. Returns the transient key-protection error of the batch, if any.
async fn commit_batch(
    server: &Arc<Server>,
    shared: &Arc<Mutex<JobRecord>>,
    prepared: Vec<Prepared>,
    failed: &mut HashSet<String>,
) -> Result<Option<String>, JobError> {
    let ready_ids: Vec<String> = prepared
        .iter()
        .filter_map(|p| match p {
            Prepared::Ready { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    let refs: Vec<&str> = ready_ids.iter().map(String::as_str).collect();
    let guards = server.lock_many(&refs).await;
    let mut transient = None;
    let mut newly_failed = Vec::new();
    let mut ready = Vec::new();
    for p in prepared {
        match p {
            Prepared::Ready { id, read, changes } => ready.push((id, read, changes)),
            Prepared::Skip => {}
            Prepared::Failed { id, why } => {
                tracing::warn!(object = %id, error = %why, "cannot re-wrap object; skipped");
                failed.insert(id.clone());
                newly_failed.push(id);
            }
            Prepared::Transient { why } => transient = Some(why),
        }
    }
    // Check and commit off the runtime: a batch is a large transaction.
    let s = server.clone();
    let sh = shared.clone();
    let msg = transient.clone();
    let (seq, written) = blocking(move || -> Result<(u64, Vec<String>), StoreError> {
        let backend = s.catalog.backend();
        let mut txn = Transaction::new();
        let mut written = Vec::with_capacity(ready.len());
        for (id, read, changes) in ready {
            if backend.get(Table::Objects, id.as_bytes())?.as_deref() == Some(read.as_slice()) {
                txn.changes.extend(changes);
                written.push(id);
            }
        }
        let copy = update(&sh, |j| {
            j.done += written.len() as u64;
            j.failed_count += newly_failed.len() as u64;
            for id in &newly_failed {
                if j.failed.len() < MAX_FAILED_IDS {
                    j.failed.push(id.clone());
                }
            }
            j.message = msg;
            j.updated = s.clock.now();
            j.clone()
        });
        copy.stage(&mut txn);
        let seq =
            tokio::runtime::Handle::current().block_on(s.catalog.group_commit().commit(&txn))?;
        Ok((seq, written))
    })
    .await??;
    drop(guards);
    for id in &written {
        server.cache.evict(id);
    }
    server
        .jobs
        .rewrapped
        .fetch_add(written.len() as u64, Ordering::Relaxed);
    server.catalog.group_commit().durable(seq).await;
    Ok(transient)
}

/// Marks the job completed, drops cached content of the old versions, audits.
async fn finish(
    server: &Arc<Server>,
    shared: &Arc<Mutex<JobRecord>>,
    old: &[u32],
    target: u32,
) -> Result<Idle, JobError> {
    let copy = update(shared, |j| {
        j.state = JobState::Completed;
        j.message = None;
        j.finished = Some(server.clock.now());
        j.updated = server.clock.now();
        j.clone()
    });
    save(server, &copy).await?;
    for v in old {
        server.cache.evict_master_version(*v);
    }
    let result = format!(
        "completed: {} re-wrapped to version {target}, {} failed",
        copy.done, copy.failed_count
    );
    tracing::info!(
        job = copy.id,
        done = copy.done,
        failed = copy.failed_count,
        target,
        "master key rotation completed"
    );
    audit(
        server,
        super::SCHEDULER_IDENTITY,
        "kmipd Master Rotation",
        Some(format!("job {}", copy.id)),
        &result,
    );
    Ok(Idle::NoWork)
}

/// One master key version with the objects under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// Version.
    pub version: u32,
    /// Whether new writes use it.
    pub current: bool,
    /// Whether the key protector holds it (false: objects under it are lost).
    pub held: bool,
    /// Label or key file location.
    pub label: String,
    /// Objects wrapped under it.
    pub objects: u64,
}

/// Every master key version held or named by an object.
///
/// The index scan runs inline: one short prefix scan of the index, on an
/// administrator's request.
pub async fn versions(server: &Server) -> Result<Vec<VersionInfo>, JobError> {
    let protector = server.protector.clone();
    let held = blocking(move || protector.versions()).await??;
    let mut counts = objects_per_version(server)?;
    let mut out: Vec<VersionInfo> = held
        .into_iter()
        .map(|i| VersionInfo {
            objects: counts.remove(&i.version).unwrap_or(0),
            version: i.version,
            current: i.current,
            held: true,
            label: i.label,
        })
        .collect();
    out.extend(counts.into_iter().map(|(version, objects)| VersionInfo {
        version,
        current: false,
        held: false,
        label: String::new(),
        objects,
    }));
    out.sort_by_key(|v| v.version);
    Ok(out)
}

/// Retires master key version `version`: refused for the current version,
/// while a rotation is unfinished, and while any object is wrapped under it.
pub async fn retire(server: &Server, version: u32) -> Result<(), JobError> {
    let _control = server.jobs.control.lock().await;
    if version == server.protector.current_version() {
        return Err(JobError::Conflict(format!(
            "master key version {version} is the current one: rotate first"
        )));
    }
    if let Some(j) = super::unfinished(server)? {
        return Err(JobError::Conflict(format!(
            "job {} ({}) is {}: retire once it has completed",
            j.id, j.kind, j.state
        )));
    }
    let n = count_under(server, version)?;
    if n > 0 {
        return Err(JobError::Conflict(format!(
            "{n} objects are still wrapped under master key version {version}: rotate (or finish the rotation) first"
        )));
    }
    let protector = server.protector.clone();
    blocking(move || protector.retire_version(version)).await??;
    server.cache.evict_master_version(version);
    tracing::info!(version, "master key version retired");
    Ok(())
}
