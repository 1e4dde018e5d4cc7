//! Re-wrapping a stored record without decoding it.
//!
//! A catalog record is one TTLV structure whose top-level children include
//! the revision (Long Integer), the wrapped content (Byte String) and its
//! master key version (Integer) under kmipd's private tags (see
//! [`crate::catalog`]). Re-wrapping changes exactly those three, so the job
//! walks the top level (8-byte headers, no attribute decoding), reads them
//! and splices in the new values: a fraction of the cost of a full decode
//! and encode, which dominated the job's time. A record that does not have
//! the expected shape is left to the full decode/encode path; a unit test
//! checks that the splice is byte for byte what `encode_record` writes.

/// The catalog's record tags this module touches (see `catalog.rs`).
const T_RECORD: u32 = 0x54FF00;
const T_REVISION: u32 = 0x54FF04;
const T_WRAPPED: u32 = 0x54FF05;
const T_MASTER_VERSION: u32 = 0x54FF06;

const STRUCTURE: u8 = 0x01;
const INTEGER: u8 = 0x02;
const LONG_INTEGER: u8 = 0x03;
const BYTE_STRING: u8 = 0x08;

/// The parts of a record the rotation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts<'a> {
    /// Revision.
    pub revision: u64,
    /// The wrapped blob.
    pub wrapped: &'a [u8],
    /// Its master key version.
    pub master_version: u32,
    spans: [(usize, usize); 3],
}

fn header(b: &[u8], at: usize) -> Option<(u32, u8, usize)> {
    let h = b.get(at..at + 8)?;
    let tag = u32::from_be_bytes([0, h[0], h[1], h[2]]);
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    Some((tag, h[3], len))
}

/// Finds the revision, the wrapped blob and its version; `None` when the
/// record does not have the expected shape.
pub fn parts(record: &[u8]) -> Option<Parts<'_>> {
    let (tag, ty, len) = header(record, 0)?;
    if tag != T_RECORD || ty != STRUCTURE || len != record.len().checked_sub(8)? {
        return None;
    }
    let (mut revision, mut wrapped, mut version) = (None, None, None);
    let mut spans = [(0, 0); 3];
    let mut at = 8;
    while at < record.len() {
        let (tag, ty, len) = header(record, at)?;
        let end = at.checked_add(8)?.checked_add(len.div_ceil(8) * 8)?;
        let value = record.get(at + 8..at + 8 + len)?;
        if end > record.len() {
            return None;
        }
        match (tag, ty, len) {
            (T_REVISION, LONG_INTEGER, 8) => {
                revision = Some(u64::from_be_bytes(value.try_into().ok()?));
                spans[0] = (at, end);
            }
            (T_WRAPPED, BYTE_STRING, _) => {
                wrapped = Some(value);
                spans[1] = (at, end);
            }
            (T_MASTER_VERSION, INTEGER, 4) => {
                version = Some(u32::from_be_bytes(value.try_into().ok()?));
                spans[2] = (at, end);
            }
            (T_REVISION | T_WRAPPED | T_MASTER_VERSION, _, _) => return None,
            _ => {}
        }
        at = end;
    }
    Some(Parts {
        revision: revision?,
        wrapped: wrapped?,
        master_version: version?,
        spans,
    })
}

fn item(out: &mut Vec<u8>, tag: u32, ty: u8, value: &[u8]) {
    out.extend_from_slice(&tag.to_be_bytes()[1..]);
    out.push(ty);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + (8 - value.len() % 8) % 8, 0);
}

/// The record with revision + 1 and `wrapped` under `version` in place of
/// the old blob; every other byte as it was.
pub fn splice(record: &[u8], p: &Parts<'_>, wrapped: &[u8], version: u32) -> Option<Vec<u8>> {
    if wrapped.len() > u32::MAX as usize / 2 {
        return None;
    }
    let mut out = Vec::with_capacity(record.len() + wrapped.len() + 16);
    out.extend_from_slice(&record[..8]);
    let mut spans = p.spans;
    spans.sort_unstable();
    let mut at = 8;
    for (start, end) in spans {
        out.extend_from_slice(&record[at..start]);
        match header(record, start)?.0 {
            T_REVISION => item(
                &mut out,
                T_REVISION,
                LONG_INTEGER,
                &(p.revision + 1).to_be_bytes(),
            ),
            T_WRAPPED => item(&mut out, T_WRAPPED, BYTE_STRING, wrapped),
            _ => item(&mut out, T_MASTER_VERSION, INTEGER, &version.to_be_bytes()),
        }
        at = end;
    }
    out.extend_from_slice(&record[at..]);
    let len = u32::try_from(out.len() - 8).ok()?;
    out[4..8].copy_from_slice(&len.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{decode_record, encode_record};
    use crate::model::{ManagedObject, Material};
    use kmip::messages::attributes::Attribute;
    use kmip::tables::ObjectType;
    use kmip::Value;

    fn object(wrapped_len: usize) -> ManagedObject {
        ManagedObject {
            id: "1b4e28ba-2fa1-11d2-883f-0016d3cca427".into(),
            object_type: ObjectType::SYMMETRIC_KEY,
            owner: "vcenter".into(),
            group: "default".into(),
            creator: None,
            revision: 41,
            attributes: vec![
                Attribute::new("x-Product", Value::TextString("VMware vSphere".into())),
                Attribute::new("Cryptographic Length", Value::Integer(256)),
            ],
            material: Some(Material {
                wrapped: vec![7; wrapped_len],
                master_version: 3,
            }),
            archived: false,
            created: 0,
        }
    }

    #[test]
    fn splice_is_exactly_what_encode_record_writes() {
        for (old_len, new_len) in [(77, 93), (93, 77), (8, 8), (1, 300), (64, 65)] {
            let o = object(old_len);
            let rec = encode_record(&o);
            let p = parts(&rec).expect("parts");
            assert_eq!(p.revision, 41);
            assert_eq!(p.master_version, 3);
            assert_eq!(p.wrapped, vec![7u8; old_len].as_slice());
            let new_blob = vec![9u8; new_len];
            let out = splice(&rec, &p, &new_blob, 4).expect("splice");
            let mut want = o.clone();
            want.revision = 42;
            want.material = Some(Material {
                wrapped: new_blob,
                master_version: 4,
            });
            assert_eq!(out, encode_record(&want), "{old_len} -> {new_len}");
            assert_eq!(decode_record(&o.id, &out).expect("decodes"), want);
        }
    }

    #[test]
    fn unexpected_shapes_are_refused() {
        let mut o = object(10);
        o.material = None;
        assert!(parts(&encode_record(&o)).is_none(), "no material");
        let rec = encode_record(&object(10));
        assert!(parts(&rec[..rec.len() - 8]).is_none(), "truncated");
        let mut bad = rec.clone();
        bad[0] = 0x42;
        assert!(parts(&bad).is_none(), "not a record");
        assert!(parts(&[]).is_none());
    }
}
