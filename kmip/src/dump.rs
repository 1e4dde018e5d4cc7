//! A readable tree dump of TTLV for logs and debugging, with key material,
//! key values and credentials redacted.

use crate::tables::{enum_for_tag, mask_for_tag, mask_to_names, Tag};
use crate::ttlv::{Ttlv, Value};
use std::fmt::Write;

/// Tags under which every byte, text and big-integer value is secret.
const SECRET_SUBTREES: &[Tag] = &[
    Tag::KEY_MATERIAL,
    Tag::KEY_VALUE,
    Tag::CREDENTIAL_VALUE,
    Tag::PASSWORD,
    Tag::DATA,
    Tag::OPAQUE_DATA_VALUE,
];

/// Dumps `item` as an indented tree, one item a line.
pub fn dump(item: &Ttlv) -> String {
    let mut out = String::new();
    walk(item, 0, false, &mut out);
    out
}

fn walk(item: &Ttlv, depth: usize, secret: bool, out: &mut String) {
    let secret = secret || SECRET_SUBTREES.contains(&item.tag);
    let _ = write!(
        out,
        "{:indent$}{} ({}): ",
        "",
        item.tag,
        item.item_type().name(),
        indent = depth * 2
    );
    match &item.value {
        Value::Structure(children) => {
            out.push('\n');
            for c in children {
                walk(c, depth + 1, secret, out);
            }
            return;
        }
        Value::ByteString(b) if secret => {
            let _ = write!(out, "<redacted {} bytes>", b.len());
        }
        Value::TextString(s) if secret => {
            let _ = write!(out, "<redacted {} chars>", s.chars().count());
        }
        Value::BigInteger(b) if secret => {
            let _ = write!(out, "<redacted {} bytes>", b.as_bytes().len());
        }
        Value::ByteString(b) => {
            let _ = write!(out, "{}", hex::encode(b));
        }
        Value::TextString(s) => {
            let _ = write!(out, "{s:?}");
        }
        Value::BigInteger(b) => {
            let _ = write!(out, "0x{}", hex::encode(b.as_bytes()));
        }
        Value::Enumeration(v) => match enum_for_tag(item.tag).and_then(|t| t.name_of(*v)) {
            Some(n) => out.push_str(n),
            None => {
                let _ = write!(out, "0x{v:08X}");
            }
        },
        Value::Integer(v) => match mask_for_tag(item.tag) {
            Some(t) => out.push_str(&mask_to_names(t, *v as u32, "|")),
            None => {
                let _ = write!(out, "{v}");
            }
        },
        Value::LongInteger(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Boolean(v) => {
            let _ = write!(out, "{v}");
        }
        Value::DateTime(v) => {
            let _ = write!(out, "{}", crate::time::format_rfc3339(*v));
        }
        Value::DateTimeExtended(v) => {
            let _ = write!(out, "{v}us");
        }
        Value::Interval(v) => {
            let _ = write!(out, "{v}s");
        }
    }
    out.push('\n');
}
