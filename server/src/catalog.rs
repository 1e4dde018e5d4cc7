//! The object catalog over the storage trait: versioned records in our own
//! TTLV encoding, secondary indexes for Locate, the schema version and its
//! migration hook, and group-committed durable writes.
//!
//! A record is a TTLV structure under kmipd's private extension tags:
//! record version, identifier, object type, owner, group, revision, archive
//! flag, the creator's credential principal (optional), every attribute (1.x form, index kept) and the wrapped material with
//! its master key version. Never a serde dump of internal structs, so the
//! meaning of stored bytes does not move with the code.

use crate::model::{names, ManagedObject, Material};
use crate::store::{Backend, GroupCommit, Result, StoreError, Table, Transaction};
use kmip::messages::attributes::Attribute;
use kmip::tables::{ObjectType, Tag};
use kmip::{Limits, Ttlv, Value};
use std::sync::Arc;

/// The schema this build writes.
/// Schema history: 1, the first; 2 added the creation-order (`c`) and
/// archived (`ar`) index fields, rebuilt for existing objects on open;
/// 3 keys the creation order by the record's creation stamp in
/// nanoseconds (Initial Date × 10⁹ for records written before), so
/// objects made in the same second keep their order.
pub const SCHEMA_VERSION: u32 = 3;
const RECORD_VERSION: i32 = 1;

const T_RECORD: Tag = Tag(0x54FF00);
const T_RECORD_VERSION: Tag = Tag(0x54FF01);
const T_OWNER: Tag = Tag(0x54FF02);
const T_GROUP: Tag = Tag(0x54FF03);
const T_REVISION: Tag = Tag(0x54FF04);
const T_WRAPPED: Tag = Tag(0x54FF05);
const T_MASTER_VERSION: Tag = Tag(0x54FF06);
const T_ARCHIVED: Tag = Tag(0x54FF07);
const T_CREATED: Tag = Tag(0x54FF08);
/// The creating request's credential principal; optional (records written
/// before it existed, and objects created without a credential, lack it),
/// not indexed, so it needs no schema change.
const T_CREATOR: Tag = Tag(0x54FF10);

/// Index fields.
pub mod field {
    #![allow(missing_docs)]
    pub const OBJECT_TYPE: &str = "t";
    pub const STATE: &str = "s";
    pub const GROUP: &str = "g";
    pub const NAME: &str = "n";
    pub const OBJECT_GROUP: &str = "og";
    pub const MASTER_VERSION: &str = "mv";
    /// Custom attributes: `x:` + attribute name.
    pub const CUSTOM_PREFIX: &str = "x:";
    /// Creation order: the creation stamp (nanoseconds), zero-padded so
    /// keys sort by time.
    pub const CREATED: &str = "c";
    /// Archived objects.
    pub const ARCHIVED: &str = "ar";
}

/// Encodes a record.
pub fn encode_record(o: &ManagedObject) -> Vec<u8> {
    let mut c = vec![
        Ttlv::int(T_RECORD_VERSION, RECORD_VERSION),
        Ttlv::text(Tag::UNIQUE_IDENTIFIER, o.id.clone()),
        Ttlv::enumeration(Tag::OBJECT_TYPE, o.object_type.0),
        Ttlv::text(T_OWNER, o.owner.clone()),
        Ttlv::text(T_GROUP, o.group.clone()),
        Ttlv::long(T_REVISION, o.revision as i64),
        Ttlv::boolean(T_ARCHIVED, o.archived),
        Ttlv::long(T_CREATED, o.created),
    ];
    if let Some(p) = &o.creator {
        c.push(Ttlv::text(T_CREATOR, p.clone()));
    }
    c.extend(o.attributes.iter().map(|a| a.encode_1x(Tag::ATTRIBUTE)));
    if let Some(m) = &o.material {
        c.push(Ttlv::bytes(T_WRAPPED, m.wrapped.clone()));
        c.push(Ttlv::int(T_MASTER_VERSION, m.master_version as i32));
    }
    // A record is built from values we hold; none can exceed TTLV's 4 GiB.
    Ttlv::structure(T_RECORD, c).to_bytes().unwrap_or_default()
}

/// Decodes a record.
pub fn decode_record(key: &str, bytes: &[u8]) -> Result<ManagedObject> {
    let corrupt = |m: String| StoreError::Corrupt {
        key: key.to_owned(),
        message: m,
    };
    let limits = Limits {
        max_message_size: usize::MAX,
        max_depth: 64,
        max_items: usize::MAX,
    };
    let t = kmip::ttlv::decode(bytes, &limits).map_err(|e| corrupt(e.to_string()))?;
    if t.tag != T_RECORD {
        return Err(corrupt("not a kmipd record".into()));
    }
    let version = t
        .required(T_RECORD_VERSION)
        .and_then(|v| v.as_int())
        .map_err(|e| corrupt(e.to_string()))?;
    if version != RECORD_VERSION {
        return Err(corrupt(format!("record version {version} unknown")));
    }
    let text = |tag| -> Result<String> {
        t.required(tag)
            .and_then(|v| v.as_text().map(str::to_owned))
            .map_err(|e| corrupt(e.to_string()))
    };
    let mut attributes = Vec::new();
    for a in t.children_with(Tag::ATTRIBUTE) {
        attributes.push(Attribute::decode_1x(a).map_err(|e| corrupt(e.to_string()))?);
    }
    let material = match (t.child(T_WRAPPED), t.child(T_MASTER_VERSION)) {
        (Some(w), Some(v)) => Some(Material {
            wrapped: w.as_bytes().map_err(|e| corrupt(e.to_string()))?.to_vec(),
            master_version: v.as_int().map_err(|e| corrupt(e.to_string()))? as u32,
        }),
        _ => None,
    };
    Ok(ManagedObject {
        id: text(Tag::UNIQUE_IDENTIFIER)?,
        object_type: ObjectType(
            t.required(Tag::OBJECT_TYPE)
                .and_then(|v| v.as_enum())
                .map_err(|e| corrupt(e.to_string()))?,
        ),
        owner: text(T_OWNER)?,
        group: text(T_GROUP)?,
        creator: t
            .child(T_CREATOR)
            .map(|v| v.as_text().map(str::to_owned))
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?,
        revision: t
            .required(T_REVISION)
            .and_then(|v| v.as_long())
            .map_err(|e| corrupt(e.to_string()))? as u64,
        archived: t
            .child(T_ARCHIVED)
            .map(|v| v.as_bool())
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?
            .unwrap_or(false),
        created: match t.child(T_CREATED) {
            Some(c) => c.as_long().map_err(|e| corrupt(e.to_string()))?,
            // Written before schema 3: the Initial Date's second.
            None => attributes
                .iter()
                .find(|a| a.name == names::INITIAL_DATE)
                .and_then(|a| a.date_time())
                .unwrap_or(0)
                .saturating_mul(1_000_000_000),
        },
        attributes,
        material,
    })
}

fn index_key(field: &str, value: &str, id: &str) -> Option<Vec<u8>> {
    if value.contains('\0') || field.contains('\0') {
        return None;
    }
    let mut k = Vec::with_capacity(field.len() + value.len() + id.len() + 2);
    k.extend_from_slice(field.as_bytes());
    k.push(0);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    Some(k)
}

/// Longest custom attribute value kept in the index; Locate checks longer
/// ones on the records.
pub const MAX_INDEXED_VALUE: usize = 512;

/// The index entries of an object.
pub fn index_entries(o: &ManagedObject) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut add = |f: &str, v: &str| {
        if let Some(k) = index_key(f, v, &o.id) {
            out.push(k);
        }
    };
    add(field::OBJECT_TYPE, &o.object_type.0.to_string());
    add(field::STATE, &o.stored_state().0.to_string());
    add(field::GROUP, &o.group);
    add(field::CREATED, &format!("{:020}", o.created.max(0)));
    if o.archived {
        add(field::ARCHIVED, "1");
    }
    if let Some(m) = &o.material {
        add(field::MASTER_VERSION, &m.master_version.to_string());
    }
    for a in &o.attributes {
        match a.name.as_str() {
            names::NAME => {
                if let Value::Structure(c) = &a.value {
                    if let Some(Ok(n)) = c
                        .iter()
                        .find(|t| t.tag == Tag::NAME_VALUE)
                        .map(|t| t.as_text())
                    {
                        add(field::NAME, n);
                    }
                }
            }
            names::OBJECT_GROUP => {
                if let Some(g) = a.text() {
                    add(field::OBJECT_GROUP, g);
                }
            }
            n if kmip::messages::attributes::is_custom(n) => {
                if let Some(v) = a.text() {
                    if v.len() <= MAX_INDEXED_VALUE {
                        add(&format!("{}{n}", field::CUSTOM_PREFIX), v);
                    }
                }
            }
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The catalog of managed objects.
#[derive(Debug)]
pub struct Catalog {
    gc: GroupCommit,
}

impl Catalog {
    /// Opens the catalog, initialising or checking the schema version.
    pub fn open(backend: Arc<dyn Backend>) -> Result<Self> {
        let gc = GroupCommit::new(backend);
        let cat = Self { gc };
        match cat.backend().get(Table::Meta, b"schema_version")? {
            None => {
                let mut t = Transaction::new();
                t.put(
                    Table::Meta,
                    b"schema_version".to_vec(),
                    SCHEMA_VERSION.to_string().into_bytes(),
                );
                cat.backend().commit(&t)?;
                cat.backend().flush()?;
            }
            Some(v) => {
                let found: u32 =
                    String::from_utf8_lossy(&v)
                        .parse()
                        .map_err(|_| StoreError::Corrupt {
                            key: "schema_version".into(),
                            message: "not a number".into(),
                        })?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooNew {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                cat.migrate(found)?;
            }
        }
        Ok(cat)
    }

    /// The migration hook: brings a store of schema `from` to the current
    /// schema. Version 1 is the first; later versions add steps here.
    fn migrate(&self, from: u32) -> Result<()> {
        if from >= SCHEMA_VERSION {
            return Ok(());
        }
        if from < 3 {
            // Version 2 added index fields and version 3 changed the
            // creation-order keys: drop the old creation keys, then write
            // every object's entries again.
            let mut prefix = field::CREATED.as_bytes().to_vec();
            prefix.push(0);
            let mut old = Vec::new();
            self.backend().scan(Table::Index, &prefix, &mut |k, _| {
                old.push(k.to_vec());
                true
            })?;
            for chunk in old.chunks(1000) {
                let mut t = Transaction::new();
                for k in chunk {
                    t.delete(Table::Index, k.clone());
                }
                self.backend().commit(&t)?;
            }
            let mut ids = self.all_ids()?.into_iter().peekable();
            while ids.peek().is_some() {
                let mut t = Transaction::new();
                for id in ids.by_ref().take(1000) {
                    if let Some(o) = self.get(&id)? {
                        for k in index_entries(&o) {
                            t.put(Table::Index, k, Vec::new());
                        }
                    }
                }
                self.backend().commit(&t)?;
            }
        }
        let mut t = Transaction::new();
        t.put(
            Table::Meta,
            b"schema_version".to_vec(),
            SCHEMA_VERSION.to_string().into_bytes(),
        );
        self.backend().commit(&t)?;
        self.backend().flush()?;
        tracing::info!(from, to = SCHEMA_VERSION, "store schema migrated");
        Ok(())
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        self.gc.backend()
    }

    /// The group committer.
    pub fn group_commit(&self) -> &GroupCommit {
        &self.gc
    }

    /// Reads an object.
    pub fn get(&self, id: &str) -> Result<Option<ManagedObject>> {
        match self.backend().get(Table::Objects, id.as_bytes())? {
            Some(b) => decode_record(id, &b).map(Some),
            None => Ok(None),
        }
    }

    /// Adds to `txn` the changes that store `new` (replacing `old`).
    pub fn stage_put(
        &self,
        txn: &mut Transaction,
        old: Option<&ManagedObject>,
        new: &ManagedObject,
    ) {
        let new_idx = index_entries(new);
        if let Some(old) = old {
            for k in index_entries(old) {
                if new_idx.binary_search(&k).is_err() {
                    txn.delete(Table::Index, k);
                }
            }
        }
        for k in new_idx {
            txn.put(Table::Index, k, Vec::new());
        }
        txn.put(
            Table::Objects,
            new.id.as_bytes().to_vec(),
            encode_record(new),
        );
    }

    /// Commits `txn` and waits until it is durable.
    pub async fn commit(&self, txn: &Transaction) -> Result<()> {
        self.gc.commit_durable(txn).await
    }

    /// Every key and value of every table, read while no transaction can
    /// commit (see [`GroupCommit::snapshot`]), durable on return; with the
    /// sequence number of the last transaction included.
    pub async fn snapshot(&self) -> Result<(Vec<(Table, Vec<u8>, Vec<u8>)>, u64)> {
        self.gc
            .snapshot(|b| {
                let mut out = Vec::new();
                for t in Table::ALL {
                    b.scan(t, b"", &mut |k, v| {
                        out.push((t, k.to_vec(), v.to_vec()));
                        true
                    })?;
                }
                Ok(out)
            })
            .await
    }

    /// Identifiers indexed under `field` = `value`, in order.
    pub fn ids_where(&self, field: &str, value: &str) -> Result<Vec<String>> {
        let Some(prefix) = index_key(field, value, "") else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::new();
        self.backend().scan(Table::Index, &prefix, &mut |k, _| {
            ids.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
            true
        })?;
        Ok(ids)
    }

    /// Every (value, identifier) pair indexed under `field`, in order.
    pub fn scan_field(&self, field: &str) -> Result<Vec<(String, String)>> {
        let mut prefix = field.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        self.backend().scan(Table::Index, &prefix, &mut |k, _| {
            let rest = &k[prefix.len()..];
            if let Some(split) = rest.iter().position(|b| *b == 0) {
                out.push((
                    String::from_utf8_lossy(&rest[..split]).into_owned(),
                    String::from_utf8_lossy(&rest[split + 1..]).into_owned(),
                ));
            }
            true
        })?;
        Ok(out)
    }

    /// Every identifier, in order.
    pub fn all_ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        self.backend().scan(Table::Objects, b"", &mut |k, _| {
            ids.push(String::from_utf8_lossy(k).into_owned());
            true
        })?;
        Ok(ids)
    }

    /// Visits every object until `visit` returns false.
    pub fn for_each(&self, visit: &mut dyn FnMut(ManagedObject) -> bool) -> Result<()> {
        let mut err = None;
        self.backend()
            .scan(Table::Objects, b"", &mut |k, v| match decode_record(
                &String::from_utf8_lossy(k),
                v,
            ) {
                Ok(o) => visit(o),
                Err(e) => {
                    err = Some(e);
                    false
                }
            })?;
        err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryBackend;

    fn object(id: &str, created: i64) -> ManagedObject {
        let mut o = ManagedObject {
            id: id.into(),
            object_type: ObjectType::SYMMETRIC_KEY,
            owner: "admin".into(),
            group: "default".into(),
            creator: None,
            revision: 1,
            attributes: Vec::new(),
            material: None,
            archived: false,
            created: created * 1_000_000_000,
        };
        o.set(names::INITIAL_DATE, Value::DateTime(created));
        o
    }

    /// A record as schema 1 and 2 wrote it: no creation stamp.
    fn old_record(o: &ManagedObject) -> Vec<u8> {
        let t = kmip::ttlv::decode(&encode_record(o), &Limits::default()).unwrap();
        let Value::Structure(c) = t.value else {
            panic!("a record is a structure")
        };
        let c = c.into_iter().filter(|x| x.tag != T_CREATED).collect();
        Ttlv::structure(T_RECORD, c).to_bytes().unwrap()
    }

    #[test]
    fn records_round_trip() {
        let mut o = object("k1", 1_700_000_000);
        o.material = Some(Material {
            wrapped: vec![1, 2, 3],
            master_version: 4,
        });
        o.archived = true;
        assert_eq!(decode_record("k1", &encode_record(&o)).unwrap(), o);
        assert!(decode_record("k1", b"garbage").is_err());
    }

    #[test]
    fn the_creator_principal_is_optional_in_records() {
        let mut o = object("k1", 1_700_000_000);
        o.creator = Some("user:Fred".into());
        let bytes = encode_record(&o);
        assert_eq!(
            decode_record("k1", &bytes).unwrap().creator.as_deref(),
            Some("user:Fred")
        );
        // A record as earlier builds wrote it: no creator tag at all.
        let old = Ttlv::structure(
            T_RECORD,
            vec![
                Ttlv::int(T_RECORD_VERSION, RECORD_VERSION),
                Ttlv::text(Tag::UNIQUE_IDENTIFIER, "k2"),
                Ttlv::enumeration(Tag::OBJECT_TYPE, ObjectType::SYMMETRIC_KEY.0),
                Ttlv::text(T_OWNER, "admin"),
                Ttlv::text(T_GROUP, "default"),
                Ttlv::long(T_REVISION, 3),
                Ttlv::boolean(T_ARCHIVED, false),
            ],
        )
        .to_bytes()
        .unwrap();
        let d = decode_record("k2", &old).unwrap();
        assert_eq!((d.creator, d.revision), (None, 3));
        // A creator of the wrong type is a corrupt record, not a panic.
        let mut t = kmip::ttlv::decode(&bytes, &Limits::default()).unwrap();
        if let Value::Structure(c) = &mut t.value {
            for x in c.iter_mut().filter(|x| x.tag == T_CREATOR) {
                *x = Ttlv::int(T_CREATOR, 1);
            }
        }
        assert!(decode_record("k1", &t.to_bytes().unwrap()).is_err());
    }

    #[test]
    fn record_tags_are_distinct() {
        let tags = [
            T_RECORD,
            T_RECORD_VERSION,
            T_OWNER,
            T_GROUP,
            T_REVISION,
            T_WRAPPED,
            T_MASTER_VERSION,
            T_ARCHIVED,
            T_CREATOR,
        ];
        let set: std::collections::HashSet<u32> = tags.iter().map(|t| t.0).collect();
        assert_eq!(set.len(), tags.len());
    }

    #[test]
    fn schema_1_stores_get_the_new_index_fields() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let mut t = Transaction::new();
        t.put(Table::Meta, b"schema_version".to_vec(), b"1".to_vec());
        for (id, at) in [("a", 100), ("b", 50)] {
            t.put(
                Table::Objects,
                id.as_bytes().to_vec(),
                encode_record(&object(id, at)),
            );
        }
        backend.commit(&t).unwrap();
        let cat = Catalog::open(backend.clone()).unwrap();
        let created = cat.scan_field(field::CREATED).unwrap();
        assert_eq!(
            created,
            vec![
                (format!("{:020}", 50_000_000_000u64), "b".to_owned()),
                (format!("{:020}", 100_000_000_000u64), "a".to_owned())
            ]
        );
        let v = backend
            .get(Table::Meta, b"schema_version")
            .unwrap()
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION.to_string().into_bytes());
        // A newer schema than this build understands is refused.
        let mut t = Transaction::new();
        t.put(Table::Meta, b"schema_version".to_vec(), b"99".to_vec());
        backend.commit(&t).unwrap();
        assert!(matches!(
            Catalog::open(backend),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn schema_2_stores_get_creation_keys_in_nanoseconds() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let mut t = Transaction::new();
        t.put(Table::Meta, b"schema_version".to_vec(), b"2".to_vec());
        for (id, at) in [("a", 100), ("b", 50)] {
            let o = object(id, at);
            t.put(Table::Objects, id.as_bytes().to_vec(), old_record(&o));
            // Schema 2's creation key: the Initial Date in seconds.
            t.put(
                Table::Index,
                index_key(field::CREATED, &format!("{at:020}"), id).unwrap(),
                Vec::new(),
            );
        }
        backend.commit(&t).unwrap();
        let cat = Catalog::open(backend).unwrap();
        assert_eq!(
            cat.scan_field(field::CREATED).unwrap(),
            vec![
                (format!("{:020}", 50_000_000_000u64), "b".to_owned()),
                (format!("{:020}", 100_000_000_000u64), "a".to_owned())
            ],
            "the second-resolution keys are gone, the new ones written"
        );
        assert_eq!(cat.get("a").unwrap().unwrap().created, 100_000_000_000);
    }

    #[test]
    fn creation_stamps_order_objects_made_in_the_same_second() {
        let a = crate::model::creation_stamp(1_700_000_000);
        let b = crate::model::creation_stamp(1_700_000_000);
        let c = crate::model::creation_stamp(1_699_999_999);
        assert!(
            a < b && b < c,
            "{a} {b} {c}: strictly increasing in a process"
        );
        assert!(a >= 1_700_000_000 * 1_000_000_000);
        let mut o = object("k", 1_700_000_000);
        o.created = b;
        assert_eq!(decode_record("k", &encode_record(&o)).unwrap().created, b);
    }
}
