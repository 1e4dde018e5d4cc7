//! kmipd Backup: a consistent online snapshot of the store, and the backup
//! file format that `kmipctl backup`, `kmipctl backup verify` and
//! `kmipd restore` share.
//!
//! Consistency comes from the commit gate of group commit
//! ([`crate::store::GroupCommit::snapshot`]): the scan runs while no
//! transaction can commit, so a multi-record transaction (Re-key writes the
//! old and the new key; every object write carries its index entries) is in
//! the snapshot whole or not at all, and the snapshot is durable before it
//! is handed out. Key material stays wrapped under the master key: a backup
//! is useless without the same master key (HSM or `master.key`).
//!
//! A backup may be larger than one KMIP message, so the first Backup
//! request takes the snapshot, keeps the encoded file in memory and answers
//! with its identifier, size and SHA-256; later requests fetch it in chunks
//! (`JOB` = identifier, `OFFSET` = byte offset). An unfinished download is
//! dropped after [`PENDING_TTL`].
//!
//! # File format (version 1)
//! ```text
//! KMIPD-BACKUP 1\n
//! {manifest as one JSON line}\n
//! body: entries, each  table prefix (1 byte) | key length (u32 BE) | key | value length (u32 BE) | value
//! \nSHA256 <hex of every byte before this line>\n
//! ```
//! The manifest records the entry counts per table, objects by state, the
//! master key versions the material is wrapped under, the body's length and
//! SHA-256. [`parse`] checks all of it, decodes every object record and
//! checks the secondary index against the objects.

use super::admin::{entry, tag, text_of};
use super::OpCtx;
use crate::catalog::{decode_record, index_entries};
use crate::errors::{OpError, OpResult};
use crate::store::{Backend, SledBackend, Table, Transaction};
use kmip::tables::Tag;
use kmip::Ttlv;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// First line of a backup file.
pub const MAGIC: &str = "KMIPD-BACKUP 1";
/// Largest chunk one Backup response carries.
pub const CHUNK: usize = 4 << 20;
/// How long an unfinished download is kept.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Most downloads kept at once (each holds a whole backup in memory).
const MAX_PENDING: usize = 2;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// File format version (1).
    pub format: u32,
    /// kmipd version that took it.
    pub kmipd_version: String,
    /// When (RFC 3339).
    pub created: String,
    /// When (seconds since the epoch).
    pub created_unix: i64,
    /// Store schema version.
    pub schema_version: u32,
    /// Store backend the snapshot came from.
    pub store_backend: String,
    /// Entries per table (`objects`, `index`, `meta`, `jobs`).
    pub entries: BTreeMap<String, u64>,
    /// Objects per state name.
    pub objects_by_state: BTreeMap<String, u64>,
    /// Master key versions the material is wrapped under.
    pub master_key_versions: Vec<u32>,
    /// Body length in bytes.
    pub body_len: u64,
    /// SHA-256 of the body (hex).
    pub body_sha256: String,
}

/// Why a backup file is not valid.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not a kmipd backup (or a format this build does not read).
    #[error("not a kmipd backup: {0}")]
    Format(String),
    /// The checksum or a count does not match: the file was changed or cut.
    #[error("backup is damaged: {0}")]
    Damaged(String),
    /// A record inside does not decode or the index disagrees with it.
    #[error("backup content is inconsistent: {0}")]
    Inconsistent(String),
    /// Restore refused or failed.
    #[error("restore: {0}")]
    Restore(String),
}

/// One store entry.
pub type StoreEntry = (Table, Vec<u8>, Vec<u8>);

fn table_name(t: Table) -> &'static str {
    match t {
        Table::Objects => "objects",
        Table::Index => "index",
        Table::Meta => "meta",
        Table::Jobs => "jobs",
    }
}

/// Encodes a backup file from store entries taken at `now`.
pub fn encode(entries: &[StoreEntry], now: i64, store_backend: &str) -> Vec<u8> {
    let mut body = Vec::new();
    let mut counts: BTreeMap<String, u64> = Table::ALL
        .iter()
        .map(|t| (table_name(*t).to_owned(), 0))
        .collect();
    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    let mut versions = BTreeSet::new();
    let mut schema_version = crate::catalog::SCHEMA_VERSION;
    for (t, k, v) in entries {
        body.push(t.prefix());
        body.extend_from_slice(&(k.len() as u32).to_be_bytes());
        body.extend_from_slice(k);
        body.extend_from_slice(&(v.len() as u32).to_be_bytes());
        body.extend_from_slice(v);
        *counts.entry(table_name(*t).to_owned()).or_default() += 1;
        if *t == Table::Objects {
            if let Ok(o) = decode_record(&String::from_utf8_lossy(k), v) {
                let s = o.stored_state();
                *by_state
                    .entry(s.name().unwrap_or("unknown").to_owned())
                    .or_default() += 1;
                if let Some(m) = &o.material {
                    versions.insert(m.master_version);
                }
            }
        }
        if *t == Table::Meta && k == b"schema_version" {
            if let Ok(n) = String::from_utf8_lossy(v).parse() {
                schema_version = n;
            }
        }
    }
    let manifest = Manifest {
        format: 1,
        kmipd_version: env!("CARGO_PKG_VERSION").to_owned(),
        created: kmip::time::format_rfc3339(now),
        created_unix: now,
        schema_version,
        store_backend: store_backend.to_owned(),
        entries: counts,
        objects_by_state: by_state,
        master_key_versions: versions.into_iter().collect(),
        body_len: body.len() as u64,
        body_sha256: hex::encode(Sha256::digest(&body)),
    };
    let mut out = Vec::with_capacity(body.len() + 1024);
    out.extend_from_slice(MAGIC.as_bytes());
    out.push(b'\n');
    // A struct of strings, numbers and maps always serialises.
    out.extend_from_slice(
        serde_json::to_string(&manifest)
            .unwrap_or_default()
            .as_bytes(),
    );
    out.push(b'\n');
    out.extend_from_slice(&body);
    let sum = hex::encode(Sha256::digest(&out));
    out.extend_from_slice(format!("\nSHA256 {sum}\n").as_bytes());
    out
}

/// A parsed, verified backup.
#[derive(Debug)]
pub struct Backup {
    /// The manifest.
    pub manifest: Manifest,
    /// Every store entry.
    pub entries: Vec<StoreEntry>,
}

fn take_line<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let i = b.iter().position(|c| *c == b'\n')?;
    let (line, rest) = b.split_at(i);
    *b = rest.get(1..)?;
    Some(line)
}

fn take_u32(b: &mut &[u8]) -> Option<usize> {
    let (n, rest) = b.split_first_chunk::<4>()?;
    *b = rest;
    Some(u32::from_be_bytes(*n) as usize)
}

fn take_bytes(b: &mut &[u8], n: usize) -> Option<Vec<u8>> {
    if b.len() < n {
        return None;
    }
    let (v, rest) = b.split_at(n);
    *b = rest;
    Some(v.to_vec())
}

/// Parses and verifies a backup file: checksums, counts, every object
/// record, and the index against the objects.
pub fn parse(file: &[u8]) -> Result<Backup, BackupError> {
    // Trailer: "\nSHA256 " + 64 hex + "\n".
    const TRAILER: usize = 1 + 7 + 64 + 1;
    if file.len() < TRAILER || !file.starts_with(MAGIC.as_bytes()) {
        return Err(BackupError::Format(format!(
            "the file does not start with {MAGIC:?}"
        )));
    }
    let (content, trailer) = file.split_at(file.len() - TRAILER);
    let trailer = std::str::from_utf8(trailer)
        .ok()
        .and_then(|t| t.strip_prefix("\nSHA256 "))
        .and_then(|t| t.strip_suffix('\n'))
        .ok_or_else(|| {
            BackupError::Damaged("the checksum line at the end is missing (cut short?)".into())
        })?;
    let sum = hex::encode(Sha256::digest(content));
    if sum != trailer {
        return Err(BackupError::Damaged(format!(
            "checksum mismatch: the file says {trailer}, its content hashes to {sum}"
        )));
    }
    let mut rest = content;
    take_line(&mut rest);
    let manifest_line =
        take_line(&mut rest).ok_or_else(|| BackupError::Format("no manifest line".into()))?;
    let manifest: Manifest = serde_json::from_slice(manifest_line)
        .map_err(|e| BackupError::Format(format!("manifest: {e}")))?;
    if manifest.format != 1 {
        return Err(BackupError::Format(format!(
            "format {} is not supported (1)",
            manifest.format
        )));
    }
    if manifest.schema_version > crate::catalog::SCHEMA_VERSION {
        return Err(BackupError::Format(format!(
            "store schema {} is newer than this kmipd supports ({})",
            manifest.schema_version,
            crate::catalog::SCHEMA_VERSION
        )));
    }
    if rest.len() as u64 != manifest.body_len {
        return Err(BackupError::Damaged(format!(
            "body is {} bytes, the manifest says {}",
            rest.len(),
            manifest.body_len
        )));
    }
    if hex::encode(Sha256::digest(rest)) != manifest.body_sha256 {
        return Err(BackupError::Damaged("body checksum mismatch".into()));
    }
    let mut entries = Vec::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    while !rest.is_empty() {
        let bad =
            |what: &str| BackupError::Inconsistent(format!("entry {}: {what}", entries.len() + 1));
        let (p, r) = rest.split_first().ok_or_else(|| bad("truncated"))?;
        rest = r;
        let t = Table::from_prefix(*p).ok_or_else(|| bad("unknown table"))?;
        let kl = take_u32(&mut rest).ok_or_else(|| bad("truncated key length"))?;
        let k = take_bytes(&mut rest, kl).ok_or_else(|| bad("truncated key"))?;
        let vl = take_u32(&mut rest).ok_or_else(|| bad("truncated value length"))?;
        let v = take_bytes(&mut rest, vl).ok_or_else(|| bad("truncated value"))?;
        *counts.entry(table_name(t).to_owned()).or_default() += 1;
        entries.push((t, k, v));
    }
    for t in Table::ALL {
        let n = counts.get(table_name(t)).copied().unwrap_or(0);
        let m = manifest.entries.get(table_name(t)).copied().unwrap_or(0);
        if n != m {
            return Err(BackupError::Inconsistent(format!(
                "{n} {} entries, the manifest says {m}",
                table_name(t)
            )));
        }
    }
    let mut expected_index = BTreeSet::new();
    for (t, k, v) in &entries {
        if *t == Table::Objects {
            let key = String::from_utf8_lossy(k);
            let o = decode_record(&key, v).map_err(|e| BackupError::Inconsistent(e.to_string()))?;
            if o.id != key {
                return Err(BackupError::Inconsistent(format!(
                    "record stored under {key} is object {}",
                    o.id
                )));
            }
            expected_index.extend(index_entries(&o));
        }
    }
    let mut index: BTreeSet<Vec<u8>> = entries
        .iter()
        .filter(|(t, _, _)| *t == Table::Index)
        .map(|(_, k, _)| k.clone())
        .collect();
    if manifest.schema_version < 3 {
        // Schema 3 keyed the creation order in nanoseconds: a store of an
        // older schema holds the old keys, which opening the restored store
        // rebuilds (its Meta table still names the old schema).
        let old = |k: &Vec<u8>| k.starts_with(b"c\0");
        index.retain(|k| !old(k));
        expected_index.retain(|k| !old(k));
    }
    if index != expected_index {
        let missing = expected_index.difference(&index).count();
        let extra = index.difference(&expected_index).count();
        return Err(BackupError::Inconsistent(format!(
            "the index disagrees with the objects ({missing} entries missing, {extra} extra): a torn snapshot?"
        )));
    }
    Ok(Backup { manifest, entries })
}

/// Restores a verified backup into `data_dir/store` (sled); `data_dir`
/// must not exist or be empty. `progress` is called with entries written.
pub fn restore(
    backup: &Backup,
    data_dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, BackupError> {
    if data_dir.exists() {
        let mut it = std::fs::read_dir(data_dir)
            .map_err(|e| BackupError::Restore(format!("{}: {e}", data_dir.display())))?;
        if it.next().is_some() {
            return Err(BackupError::Restore(format!(
                "{} is not empty: restore only into a new or empty directory (nothing was changed)",
                data_dir.display()
            )));
        }
    }
    let store = data_dir.join("store");
    std::fs::create_dir_all(&store)
        .map_err(|e| BackupError::Restore(format!("{}: {e}", store.display())))?;
    let b = SledBackend::open(&store).map_err(|e| BackupError::Restore(e.to_string()))?;
    let mut n = 0u64;
    for chunk in backup.entries.chunks(1000) {
        let mut t = Transaction::new();
        for (table, k, v) in chunk {
            t.put(*table, k.clone(), v.clone());
        }
        b.commit(&t)
            .map_err(|e| BackupError::Restore(e.to_string()))?;
        n += chunk.len() as u64;
        progress(n);
    }
    b.flush().map_err(|e| BackupError::Restore(e.to_string()))?;
    Ok(n)
}

/// Backup files by identifier, with when they were taken.
type Downloads = HashMap<String, (Arc<Vec<u8>>, Instant)>;

/// Backups taken and not yet fully downloaded.
#[derive(Debug, Default)]
pub struct Pending {
    files: Mutex<Downloads>,
}

impl Pending {
    fn put(&self, file: Vec<u8>) -> OpResult<String> {
        let mut m = self.files.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (_, t)| t.elapsed() < PENDING_TTL);
        if m.len() >= MAX_PENDING {
            return Err(OpError::IllegalOperation(
                "two backups are already being downloaded; finish them or wait 10 minutes".into(),
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        m.insert(id.clone(), (Arc::new(file), Instant::now()));
        Ok(id)
    }

    fn get(&self, id: &str) -> Option<Arc<Vec<u8>>> {
        let m = self.files.lock().unwrap_or_else(|p| p.into_inner());
        m.get(id)
            .filter(|(_, t)| t.elapsed() < PENDING_TTL)
            .map(|(f, _)| f.clone())
    }

    fn done(&self, id: &str) {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// kmipd Backup. Without `JOB`: takes the snapshot and answers entries
/// `backup` (identifier), `size`, `sha256` (of the whole file) and
/// `manifest` (JSON). With `JOB` and `OFFSET`: answers `BLOB` with up to
/// [`CHUNK`] bytes from that offset; the last chunk ends the download.
pub async fn backup(ctx: &OpCtx<'_>, payload: &Ttlv) -> OpResult<Ttlv> {
    let pending = &ctx.server.admin.backups;
    if let Some(id) = text_of(payload, tag::JOB) {
        let offset = payload
            .child(tag::OFFSET)
            .map(|o| o.as_long())
            .transpose()?
            .unwrap_or(0);
        let file = pending
            .get(&id)
            .ok_or_else(|| OpError::NotFound(format!("backup {id} is unknown or expired")))?;
        let start = usize::try_from(offset)
            .ok()
            .filter(|s| *s <= file.len())
            .ok_or_else(|| OpError::InvalidField("offset past the end of the backup".into()))?;
        let end = (start + CHUNK).min(file.len());
        // start <= end <= len by construction.
        let chunk = file[start..end].to_vec();
        if end == file.len() {
            pending.done(&id);
        }
        return Ok(Ttlv::structure(
            Tag::RESPONSE_PAYLOAD,
            vec![Ttlv::bytes(tag::BLOB, chunk)],
        ));
    }
    let catalog = &ctx.server.catalog;
    let (entries, _seq) = catalog.snapshot().await?;
    let backend = catalog.backend().name();
    let now = ctx.now;
    let file = tokio::task::spawn_blocking(move || encode(&entries, now, backend))
        .await
        .map_err(|e| OpError::Internal(format!("encoding the backup: {e}")))?;
    let sha = hex::encode(Sha256::digest(&file));
    let size = file.len() as i64;
    let manifest = file
        .split(|c| *c == b'\n')
        .nth(1)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default();
    let id = pending.put(file)?;
    Ok(Ttlv::structure(
        Tag::RESPONSE_PAYLOAD,
        vec![
            entry("backup", Ttlv::text(Tag(0), id)),
            entry("size", Ttlv::long(Tag(0), size)),
            entry("sha256", Ttlv::text(Tag(0), sha)),
            entry("manifest", Ttlv::text(Tag(0), manifest)),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{encode_record, field, Catalog};
    use crate::model::{names, ManagedObject};
    use crate::store::Backend;
    use kmip::tables::ObjectType;
    use kmip::{Limits, Ttlv, Value};

    /// A store as schema 2 wrote it: a record without the creation stamp
    /// and a creation-order key in seconds.
    fn schema_2_entries() -> Vec<StoreEntry> {
        let mut o = ManagedObject {
            id: "k1".into(),
            object_type: ObjectType::SYMMETRIC_KEY,
            owner: "admin".into(),
            group: "default".into(),
            creator: None,
            revision: 1,
            attributes: Vec::new(),
            material: None,
            archived: false,
            created: 0,
        };
        o.set(names::INITIAL_DATE, Value::DateTime(1_700_000_000));
        let t = kmip::ttlv::decode(&encode_record(&o), &Limits::default()).unwrap();
        let Value::Structure(c) = t.value else {
            panic!("a record is a structure")
        };
        // 0x54FF08: the creation stamp schema 3 added.
        let c = c.into_iter().filter(|x| x.tag.0 != 0x54FF08).collect();
        let record = Ttlv::structure(t.tag, c).to_bytes().unwrap();
        let mut entries = vec![
            (Table::Meta, b"schema_version".to_vec(), b"2".to_vec()),
            (Table::Objects, b"k1".to_vec(), record.clone()),
        ];
        let now = crate::catalog::decode_record("k1", &record).unwrap();
        for k in crate::catalog::index_entries(&now) {
            let mut k = k;
            if k.starts_with(b"c\0") {
                k = format!("c\0{:020}\0k1", 1_700_000_000).into_bytes();
            }
            entries.push((Table::Index, k, Vec::new()));
        }
        entries
    }

    #[test]
    fn a_schema_2_backup_verifies_restores_and_migrates() {
        let file = encode(&schema_2_entries(), 1_700_000_100, "sled");
        let backup = parse(&file).expect("an older schema's backup verifies");
        assert_eq!(backup.manifest.schema_version, 2);
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("restored");
        restore(&backup, &data, &mut |_| {}).unwrap();
        let backend: std::sync::Arc<dyn Backend> =
            std::sync::Arc::new(crate::store::SledBackend::open(&data.join("store")).unwrap());
        let cat = Catalog::open(backend).unwrap();
        assert_eq!(
            cat.scan_field(field::CREATED).unwrap(),
            vec![(format!("{:020}", 1_700_000_000_000_000_000u64), "k1".into())]
        );
        // A schema-3 backup whose creation key is wrong is still refused.
        let mut entries = schema_2_entries();
        entries[0].2 = b"3".to_vec();
        assert!(matches!(
            parse(&encode(&entries, 1_700_000_100, "sled")),
            Err(BackupError::Inconsistent(_))
        ));
    }
}
