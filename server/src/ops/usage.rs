//! When each object was last fetched (Get), and the kmipd Object Info
//! operation that reports it with the object's owner and group.
//!
//! vCenter and ESXi fetch keys on every VM power-on and host boot, so a
//! store write per Get would turn a boot storm into a write storm. The
//! tracker keeps the time in memory and writes it to the store (table
//! Meta, key `last_get/<id>`) only when the stored time is an hour old or
//! more: at most one small write per object per hour, none on the Get's
//! critical path beyond a non-blocking commit attempt. After a crash the
//! stored time is at most an hour stale, which is plenty for a guard
//! measured in days.

use super::admin::{entry, tag};
use super::OpCtx;
use crate::catalog::Catalog;
use crate::errors::{OpError, OpResult};
use crate::store::{Table, Transaction};
use kmip::tables::Tag;
use kmip::Ttlv;
use std::collections::HashMap;
use std::sync::Mutex;

/// How stale the stored last-fetched time may become (seconds).
pub const PERSIST_EVERY_SECS: i64 = 3600;

/// Most objects one Object Info request may name.
pub const MAX_IDS: usize = 10_000;

const SHARDS: usize = 32;
const KEY_PREFIX: &[u8] = b"last_get/";

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// Latest Get seen.
    last: i64,
    /// The time last written to the store (or found there).
    stored: Option<i64>,
}

/// In-memory last-Get times, written through to the store hourly.
#[derive(Debug)]
pub struct FetchTracker {
    shards: Vec<Mutex<HashMap<String, Seen>>>,
}

impl Default for FetchTracker {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

fn store_key(id: &str) -> Vec<u8> {
    let mut k = KEY_PREFIX.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

fn stored_time(catalog: &Catalog, id: &str) -> Option<i64> {
    let v = catalog.backend().get(Table::Meta, &store_key(id)).ok()??;
    Some(i64::from_be_bytes(v.as_slice().try_into().ok()?))
}

impl FetchTracker {
    fn shard(&self, id: &str) -> &Mutex<HashMap<String, Seen>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        // SHARDS is non-zero and `shards` has SHARDS entries.
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Notes a Get of `id` at `now`; writes it through when the stored time
    /// is older than [`PERSIST_EVERY_SECS`].
    pub fn note(&self, catalog: &Catalog, id: &str, now: i64) {
        let known = {
            let map = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
            map.get(id).copied()
        };
        // First sight since start: learn what the store has (one read).
        let stored = match known {
            Some(s) => s.stored,
            None => stored_time(catalog, id),
        };
        let due = stored.is_none_or(|s| now - s >= PERSIST_EVERY_SECS);
        let mut written = stored;
        if due {
            let mut t = Transaction::new();
            t.put(Table::Meta, store_key(id), now.to_be_bytes().to_vec());
            match catalog.group_commit().try_commit(&t) {
                Some(Ok(_)) => written = Some(now),
                Some(Err(e)) => tracing::warn!(error = %e, "cannot record a last-fetched time"),
                // A backup is scanning: the next Get tries again.
                None => {}
            }
        }
        let mut map = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(id.to_owned()).or_insert(Seen {
            last: now,
            stored: written,
        });
        e.last = e.last.max(now);
        e.stored = match (e.stored, written) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// The last Get of `id` this server knows of, from memory or the store.
    pub fn last(&self, catalog: &Catalog, id: &str) -> Option<i64> {
        let mem = {
            let map = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
            map.get(id).map(|s| s.last)
        };
        match (mem, stored_time(catalog, id)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// kmipd Object Info: for each OBJECT id in the request, an ENTRY named by
/// the id whose value holds `owner`, `group` and `last_fetched` (seconds,
/// absent when never fetched) entries. Unknown ids are left out.
pub fn object_info(ctx: &OpCtx<'_>, payload: &Ttlv) -> OpResult<Ttlv> {
    let ids: Vec<&str> = payload
        .children_with(tag::OBJECT)
        .filter_map(|t| t.as_text().ok())
        .collect();
    if ids.len() > MAX_IDS {
        return Err(OpError::InvalidField(format!(
            "at most {MAX_IDS} objects per Object Info request"
        )));
    }
    let s = ctx.server;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(o) = s.catalog.get(id)? else {
            continue;
        };
        let mut c = vec![
            entry("owner", Ttlv::text(Tag(0), o.owner)),
            entry("group", Ttlv::text(Tag(0), o.group)),
        ];
        if let Some(t) = s.admin.fetches.last(&s.catalog, id) {
            c.push(entry("last_fetched", Ttlv::long(Tag(0), t)));
        }
        out.push(entry(id, Ttlv::structure(tag::VALUE, c)));
    }
    Ok(Ttlv::structure(Tag::RESPONSE_PAYLOAD, out))
}
