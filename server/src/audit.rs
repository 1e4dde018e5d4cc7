//! The audit trail: one record per operation (time, identity, peer,
//! operation, object, result), never key material, appended as JSON lines
//! where each record carries the SHA-256 of the one before, so a changed,
//! removed or reordered record breaks the chain ([`verify`]).
//!
//! Records are written by a dedicated thread: the request path only sends
//! them on a channel.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
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

/// The audit sink.
#[derive(Debug, Clone)]
pub struct Audit {
    tx: Option<mpsc::Sender<Event>>,
}

impl Audit {
    /// Audit records go to the tracing log only.
    pub fn to_log() -> Self {
        Self { tx: None }
    }

    /// Appends to `path`, continuing its chain.
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        let (mut seq, mut prev) = (0u64, ZERO.to_owned());
        if let Ok(f) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(f).lines() {
                if let Ok(r) = serde_json::from_str::<Record>(&line?) {
                    seq = r.seq + 1;
                    prev = r.hash;
                }
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::channel::<Event>();
        let path: PathBuf = path.to_owned();
        std::thread::Builder::new()
            .name("kmipd-audit".into())
            .spawn(move || {
                while let Ok(ev) = rx.recv() {
                    let mut batch = vec![ev];
                    batch.extend(rx.try_iter());
                    let mut out = String::new();
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
                        if let Ok(line) = serde_json::to_string(&r) {
                            out.push_str(&line);
                            out.push('\n');
                        }
                    }
                    if let Err(e) = file.write_all(out.as_bytes()).and_then(|_| file.flush()) {
                        tracing::error!(error = %e, path = %path.display(), "audit write failed");
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

/// Verifies the chains of audit files given in order; returns the number of
/// records checked or the first break.
pub fn verify(paths: &[PathBuf]) -> Result<u64, Break> {
    let mut expected_prev: Option<String> = None;
    let mut expected_seq: Option<u64> = None;
    let mut n = 0;
    for p in paths {
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
            if let Some(prev) = &expected_prev {
                if &r.prev != prev {
                    return Err(at(format!(
                        "record {} does not follow the one before (removed or reordered)",
                        r.seq
                    )));
                }
            }
            if let Some(s) = expected_seq {
                if r.seq != s {
                    return Err(at(format!("record {} found where {s} was expected", r.seq)));
                }
            }
            expected_prev = Some(r.hash.clone());
            expected_seq = Some(r.seq + 1);
            n += 1;
        }
    }
    Ok(n)
}
