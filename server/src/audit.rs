//! The audit trail: one record per operation (time, identity, peer,
//! operation, object, result), never key material, appended as JSON lines
//! where each record carries the SHA-256 of the one before, so a changed,
//! removed or reordered record breaks the chain ([`verify`]).
//!
//! Records are written by a dedicated thread: the request path only sends
//! them on a channel.
//!
//! The log is rotated by size: when `audit.log` would grow past
//! [`DEFAULT_MAX_BYTES`] (or the size given to [`Audit::to_file_with`]) it
//! is renamed `audit.log.<first seq, 12 digits>` and a new `audit.log`
//! starts. The chain continues across files: the first record of the new
//! file carries the hash of the last record of the old one and the next
//! sequence number, so [`verify_files`] checks a set of rotated files as one
//! chain and notices a whole file gone missing. On start the writer picks
//! the chain up from the current file or, when that is empty, from the
//! newest rotated file.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Sequence number within the file chain.
    pub seq: u64,
    /// RFC 3339 time.
    pub time: String,
    /// Identity.
    pub identity: String,
    /// Peer address.
    pub peer: String,
    /// Operation name.
    pub operation: String,
    /// Object id, when the operation named or produced one.
    pub object: Option<String>,
    /// "success" or the Result Reason.
    pub result: String,
    /// Hash of the previous record (hex), "0" * 64 for the first.
    pub prev: String,
    /// Hash of this record without this field (hex).
    pub hash: String,
}

/// What the request path reports.
#[derive(Debug, Clone)]
pub struct Event {
    /// Seconds since the epoch.
    pub time: i64,
    /// Identity.
    pub identity: String,
    /// Peer.
    pub peer: String,
    /// Operation.
    pub operation: String,
    /// Object.
    pub object: Option<String>,
    /// Result.
    pub result: String,
}

fn record_hash(r: &Record) -> String {
    let mut h = Sha256::new();
    for part in [
        r.seq.to_string().as_str(),
        &r.time,
        &r.identity,
        &r.peer,
        &r.operation,
        r.object.as_deref().unwrap_or(""),
        &r.result,
        &r.prev,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Size from which the audit log is rotated (64 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

/// The audit sink.
#[derive(Debug, Clone)]
pub struct Audit {
    tx: Option<mpsc::Sender<Event>>,
}

/// The last record of a file: (its seq, its hash), and the file's first seq.
fn chain_end(path: &Path) -> Option<(u64, String, u64)> {
    let f = std::fs::File::open(path).ok()?;
    let mut first = None;
    let mut last = None;
    for line in std::io::BufReader::new(f).lines() {
        if let Ok(r) = serde_json::from_str::<Record>(&line.ok()?) {
            first.get_or_insert(r.seq);
            last = Some((r.seq, r.hash));
        }
    }
    let (seq, hash) = last?;
    Some((seq, hash, first?))
}

/// Rotated files of `path` (`<name>.<12 digits>`), oldest first.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .and_then(|n| n.strip_prefix(&prefix).map(str::to_owned))
                        .is_some_and(|s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

struct Writer {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    /// Seq of the first record in the current file.
    first: Option<u64>,
    max_bytes: u64,
}

impl Writer {
    fn rotate_if_needed(&mut self, incoming: u64) -> std::io::Result<()> {
        if self.size == 0 || self.size + incoming <= self.max_bytes {
            return Ok(());
        }
        let Some(first) = self.first else {
            return Ok(());
        };
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{first:012}"));
        std::fs::rename(&self.path, PathBuf::from(name))?;
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        self.first = None;
        Ok(())
    }
}

impl Audit {
    /// Audit records go to the tracing log only.
    pub fn to_log() -> Self {
        Self { tx: None }
    }

    /// Appends to `path`, continuing its chain, rotating at [`DEFAULT_MAX_BYTES`].
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        Self::to_file_with(path, DEFAULT_MAX_BYTES)
    }

    /// Appends to `path`, continuing its chain (from the newest rotated file
    /// when `path` is empty), rotating when the file would pass `max_bytes`.
    pub fn to_file_with(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let current = chain_end(path);
        let (mut seq, mut prev) = match &current {
            Some((s, h, _)) => (s + 1, h.clone()),
            None => match rotated_files(path).last().and_then(|p| chain_end(p)) {
                Some((s, h, _)) => (s + 1, h),
                None => (0u64, ZERO.to_owned()),
            },
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.seek(std::io::SeekFrom::End(0))?;
        let mut w = Writer {
            path: path.to_owned(),
            file,
            size,
            first: current.map(|(_, _, f)| f),
            max_bytes: max_bytes.max(1),
        };
        let (tx, rx) = mpsc::channel::<Event>();
        std::thread::Builder::new()
            .name("kmipd-audit".into())
            .spawn(move || {
                while let Ok(ev) = rx.recv() {
                    let mut batch = vec![ev];
                    batch.extend(rx.try_iter());
                    let mut lines = Vec::with_capacity(batch.len());
                    for ev in batch {
                        let mut r = Record {
                            seq,
                            time: kmip::time::format_rfc3339(ev.time),
                            identity: ev.identity,
                            peer: ev.peer,
                            operation: ev.operation,
                            object: ev.object,
                            result: ev.result,
                            prev: prev.clone(),
                            hash: String::new(),
                        };
                        r.hash = record_hash(&r);
                        prev = r.hash.clone();
                        seq += 1;
                        if let Ok(mut line) = serde_json::to_string(&r) {
                            line.push('\n');
                            lines.push((r.seq, line));
                        }
                    }
                    for (seq, line) in lines {
                        let res = w
                            .rotate_if_needed(line.len() as u64)
                            .and_then(|_| w.file.write_all(line.as_bytes()));
                        match res {
                            Ok(()) => {
                                w.size += line.len() as u64;
                                w.first.get_or_insert(seq);
                            }
                            Err(e) => {
                                tracing::error!(error = %e, path = %w.path.display(), "audit write failed")
                            }
                        }
                    }
                    if let Err(e) = w.file.flush() {
                        tracing::error!(error = %e, path = %w.path.display(), "audit flush failed");
                    }
                }
            })?;
        Ok(Self { tx: Some(tx) })
    }

    /// Records one event.
    pub fn record(&self, ev: Event) {
        match &self.tx {
            Some(tx) => {
                let _ = tx.send(ev);
            }
            None => tracing::info!(
                target: "kmipd::audit",
                identity = %ev.identity,
                peer = %ev.peer,
                operation = %ev.operation,
                object = ev.object.as_deref().unwrap_or("-"),
                result = %ev.result,
                "audit"
            ),
        }
    }
}

/// A problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// What a successful [`verify_files`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// First and last sequence numbers (None when there were no records).
    pub seqs: Option<(u64, u64)>,
    /// Hash of the last record: note it elsewhere to detect a later
    /// truncation or rewrite of the whole tail.
    pub head: String,
    /// The files in the order checked.
    pub files: Vec<PathBuf>,
}

/// Verifies the chains of audit files given in order; returns the number of
/// records checked or the first break. Does not require the chain to start
/// at record 0 (see [`verify_files`]).
pub fn verify(paths: &[PathBuf]) -> Result<u64, Break> {
    verify_files(paths, false, false).map(|v| v.records)
}

fn first_seq(p: &Path) -> Option<u64> {
    let f = std::fs::File::open(p).ok()?;
    let line = std::io::BufReader::new(f).lines().next()?.ok()?;
    serde_json::from_str::<Record>(&line).ok().map(|r| r.seq)
}

/// Verifies audit files as one chain. With `sort`, files are put in the
/// order of their first record (rotated files and the current one can be
/// given in any order). With `from_start`, the chain must begin at record 0
/// with the all-zero previous hash, so a removed first record is caught.
///
/// Detects a changed record (its hash no longer matches), a removed record
/// (a gap in the sequence, or a previous-hash that does not match), and a
/// reordered record (a sequence number going back).
pub fn verify_files(paths: &[PathBuf], sort: bool, from_start: bool) -> Result<Verified, Break> {
    let mut files = paths.to_vec();
    if sort {
        files.sort_by_key(|p| first_seq(p).unwrap_or(u64::MAX));
    }
    let mut expected_prev: Option<String> = None;
    let mut expected_seq: Option<u64> = None;
    let mut n = 0;
    let mut first = None;
    for p in &files {
        let text = std::fs::read_to_string(p).map_err(|e| Break {
            line: 0,
            problem: format!("{}: {e}", p.display()),
        })?;
        for (i, line) in text.lines().enumerate() {
            let at = |problem: String| Break {
                line: i + 1,
                problem: format!("{}: {problem}", p.display()),
            };
            let r: Record =
                serde_json::from_str(line).map_err(|e| at(format!("not a record: {e}")))?;
            if record_hash(&r) != r.hash {
                return Err(at(format!("record {} was changed", r.seq)));
            }
            if expected_seq.is_none() && from_start && (r.seq != 0 || r.prev != ZERO) {
                return Err(at(format!(
                    "the chain starts at record {}, not 0: earlier records were removed (or give every rotated file)",
                    r.seq
                )));
            }
            if let Some(s) = expected_seq {
                if r.seq < s {
                    return Err(at(format!(
                        "record {} found where {s} was expected: records were reordered",
                        r.seq
                    )));
                }
                if r.seq > s {
                    return Err(at(format!(
                        "record {} found where {s} was expected: {} record(s) removed",
                        r.seq,
                        r.seq - s
                    )));
                }
            }
            if let Some(prev) = &expected_prev {
                if &r.prev != prev {
                    return Err(at(format!(
                        "record {} does not follow the one before (removed, reordered or replaced)",
                        r.seq
                    )));
                }
            }
            first.get_or_insert(r.seq);
            expected_prev = Some(r.hash.clone());
            expected_seq = Some(r.seq + 1);
            n += 1;
        }
    }
    Ok(Verified {
        records: n,
        seqs: first.zip(expected_seq.map(|s| s - 1)),
        head: expected_prev.unwrap_or_else(|| ZERO.to_owned()),
        files,
    })
}
