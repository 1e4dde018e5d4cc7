//! The KMIP JSON encoding of TTLV (KMIP Additional Message Encodings,
//! "JSON"), both directions.
//!
//! Every item is an object `{"tag": ..., "type": ..., "value": ...}`:
//! - `tag` is the tag name without non-alphanumerics (`"ActivationDate"`,
//!   as in the XML encoding) or hex `"0x540001"` for unnamed tags; reading
//!   accepts any spelling of a known name.
//! - `type` is the item type name; it is omitted for structures (and
//!   `"Structure"` is accepted), whose `value` is an array of items.
//! - Integer and Interval values are numbers (hex strings accepted); bit
//!   masks are names joined by `|` (`"Encrypt|Decrypt"`), with hex for
//!   unnamed bits. Long Integers are numbers when they fit the 53 bits a
//!   JSON number holds exactly, hex strings `"0x..."` otherwise.
//! - Enumerations are names (as in the XML encoding) or hex `"0x0000000A"`.
//! - Big Integers are hex strings with `0x`, Byte Strings hex strings,
//!   Booleans `true`/`false`, Date-Times ISO 8601 strings (hex when a
//!   calendar cannot hold them).
//! - As in XML, an `Attribute Value` takes its enumeration or mask table from
//!   the sibling `Attribute Name`.

use crate::tables::{enum_for_tag, mask_for_tag, Tag};
use crate::ttlv::{BigInt, ItemType, Ttlv, Value};
use crate::xml::{
    element_name, enum_name, format_micros, format_seconds, mask_names, parse_enum, parse_mask,
    parse_rfc3339_micros, TagPath,
};
use serde_json::{Map, Value as J};

/// Errors of the JSON encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not JSON.
    #[error("JSON syntax error: {0}")]
    Syntax(String),
    /// JSON that is not an item object of the encoding.
    #[error("not a KMIP JSON item at {path}: {what}")]
    Shape {
        /// What is wrong.
        what: String,
        /// Where.
        path: TagPath,
    },
    /// An unknown tag name.
    #[error("unknown tag {name:?} at {path}")]
    UnknownTag {
        /// The name.
        name: String,
        /// Where.
        path: TagPath,
    },
    /// An unknown item type.
    #[error("unknown type {found:?} at {path}")]
    BadType {
        /// The type text.
        found: String,
        /// Where.
        path: TagPath,
    },
    /// A value that does not fit its type.
    #[error("invalid {item_type:?} value {value} at {path}")]
    BadValue {
        /// The type.
        item_type: ItemType,
        /// The JSON value.
        value: String,
        /// Where.
        path: TagPath,
    },
}

/// Largest magnitude a JSON number (an IEEE double) holds exactly.
const MAX_SAFE: i64 = (1 << 53) - 1;

/// Encodes a tree as a JSON value.
pub fn to_json(item: &Ttlv) -> J {
    encode(item, item.tag)
}

/// Encodes a tree as pretty-printed JSON text.
pub fn to_json_string(item: &Ttlv) -> String {
    // Serialising a serde_json::Value to a String cannot fail: it has no
    // non-string map keys and writes to memory.
    serde_json::to_string_pretty(&to_json(item)).unwrap_or_default()
}

/// Decodes JSON text.
pub fn from_json_str(s: &str) -> Result<Ttlv, Error> {
    let v: J = serde_json::from_str(s).map_err(|e| Error::Syntax(e.to_string()))?;
    from_json(&v)
}

/// Decodes a JSON value.
pub fn from_json(v: &J) -> Result<Ttlv, Error> {
    let mut path = Vec::new();
    decode(v, None, &mut path)
}

fn hex_str(v: u64, digits: usize) -> J {
    J::String(format!("0x{v:0digits$X}"))
}

fn attribute_value_tag(children: &[Ttlv]) -> Option<Tag> {
    children
        .iter()
        .find(|c| c.tag == Tag::ATTRIBUTE_NAME)
        .and_then(|c| match &c.value {
            Value::TextString(s) => Tag::from_name(s),
            _ => None,
        })
}

fn encode(item: &Ttlv, table_tag: Tag) -> J {
    let mut m = Map::new();
    let tag = element_name(item.tag).unwrap_or_else(|| format!("0x{:06X}", item.tag.0));
    m.insert("tag".into(), J::String(tag));
    if item.item_type() != ItemType::Structure {
        m.insert("type".into(), J::String(item.item_type().name().into()));
    }
    let value = match &item.value {
        Value::Structure(children) => {
            let attr = attribute_value_tag(children);
            J::Array(
                children
                    .iter()
                    .map(|c| match attr {
                        Some(a) if c.tag == Tag::ATTRIBUTE_VALUE => encode(c, a),
                        _ => encode(c, c.tag),
                    })
                    .collect(),
            )
        }
        Value::Integer(v) => match mask_for_tag(table_tag) {
            Some(t) if *v != 0 => J::String(mask_names(t, *v as u32, "|")),
            _ => J::from(*v),
        },
        Value::LongInteger(v) if (-MAX_SAFE..=MAX_SAFE).contains(v) => J::from(*v),
        Value::LongInteger(v) => hex_str(*v as u64, 16),
        Value::BigInteger(b) => J::String(format!("0x{}", hex::encode(b.as_bytes()))),
        Value::Enumeration(v) => match enum_for_tag(table_tag).and_then(|t| enum_name(t, *v)) {
            Some(n) => J::String(n),
            None => hex_str(u64::from(*v), 8),
        },
        Value::Boolean(b) => J::Bool(*b),
        Value::TextString(s) => J::String(s.clone()),
        Value::ByteString(b) => J::String(hex::encode(b)),
        Value::DateTime(v) => format_seconds(*v)
            .map(J::String)
            .unwrap_or(hex_str(*v as u64, 16)),
        Value::Interval(v) => J::from(*v),
        Value::DateTimeExtended(v) => format_micros(*v)
            .map(J::String)
            .unwrap_or(hex_str(*v as u64, 16)),
    };
    m.insert("value".into(), value);
    J::Object(m)
}

fn shape(what: impl Into<String>, path: &[Tag]) -> Error {
    Error::Shape {
        what: what.into(),
        path: TagPath(path.to_vec()),
    }
}

fn parse_hex(s: &str) -> Option<u64> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if h.is_empty() || h.len() > 16 {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

fn decode(v: &J, table_tag: Option<Tag>, path: &mut Vec<Tag>) -> Result<Ttlv, Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| shape("expected an object", path))?;
    let tag_name = obj
        .get("tag")
        .and_then(J::as_str)
        .ok_or_else(|| shape("missing \"tag\" string", path))?;
    let tag = Tag::from_name(tag_name).ok_or_else(|| Error::UnknownTag {
        name: tag_name.to_owned(),
        path: TagPath(path.clone()),
    })?;
    path.push(tag);
    let item_type = match obj.get("type") {
        None => ItemType::Structure,
        Some(J::String(t)) => ItemType::from_name(t).ok_or_else(|| Error::BadType {
            found: t.clone(),
            path: TagPath(path.clone()),
        })?,
        Some(other) => {
            return Err(Error::BadType {
                found: other.to_string(),
                path: TagPath(path.clone()),
            })
        }
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "tag" | "type" | "value"))
    {
        return Err(shape(format!("unknown member {k:?}"), path));
    }
    let raw = obj
        .get("value")
        .ok_or_else(|| shape("missing \"value\"", path))?;
    let table_tag = table_tag.unwrap_or(tag);
    let value = if item_type == ItemType::Structure {
        let items = raw
            .as_array()
            .ok_or_else(|| shape("structure value is not an array", path))?;
        // The Attribute Name sibling decides the table of an Attribute Value.
        let attr = items.iter().find_map(|c| {
            let o = c.as_object()?;
            let t = Tag::from_name(o.get("tag")?.as_str()?)?;
            (t == Tag::ATTRIBUTE_NAME).then(|| o.get("value")?.as_str().and_then(Tag::from_name))?
        });
        let mut children = Vec::with_capacity(items.len());
        for c in items {
            let is_value = c
                .get("tag")
                .and_then(J::as_str)
                .and_then(Tag::from_name)
                .is_some_and(|t| t == Tag::ATTRIBUTE_VALUE);
            children.push(decode(c, if is_value { attr } else { None }, path)?);
        }
        Value::Structure(children)
    } else {
        leaf(item_type, raw, table_tag).ok_or_else(|| Error::BadValue {
            item_type,
            value: raw.to_string(),
            path: TagPath(path.clone()),
        })?
    };
    path.pop();
    Ok(Ttlv { tag, value })
}

fn leaf(item_type: ItemType, raw: &J, table_tag: Tag) -> Option<Value> {
    let s = raw.as_str();
    let hex = s.and_then(parse_hex);
    Some(match item_type {
        ItemType::Structure => return None,
        ItemType::Integer => Value::Integer(match (raw.as_i64(), mask_for_tag(table_tag)) {
            (Some(n), _) => i32::try_from(n).ok()?,
            (None, Some(t)) => parse_mask(t, s?)? as i32,
            (None, None) => u32::try_from(hex?).ok()? as i32,
        }),
        ItemType::LongInteger => Value::LongInteger(match raw.as_i64() {
            Some(n) => n,
            None => hex? as i64,
        }),
        ItemType::BigInteger => {
            let h = s?
                .strip_prefix("0x")
                .or_else(|| s?.strip_prefix("0X"))
                .unwrap_or(s?);
            let h = if h.len() % 2 == 1 {
                format!("0{h}")
            } else {
                h.to_owned()
            };
            let b = hex::decode(h).ok()?;
            if b.is_empty() {
                return None;
            }
            Value::BigInteger(BigInt::from_be_bytes(&b))
        }
        ItemType::Enumeration => Value::Enumeration(match (raw.as_u64(), hex) {
            (Some(n), _) => u32::try_from(n).ok()?,
            (None, Some(h)) => u32::try_from(h).ok()?,
            (None, None) => parse_enum(s?, table_tag)?,
        }),
        ItemType::Boolean => Value::Boolean(match (raw.as_bool(), hex) {
            (Some(b), _) => b,
            (None, Some(0)) => false,
            (None, Some(1)) => true,
            _ => return None,
        }),
        ItemType::TextString => Value::TextString(s?.to_owned()),
        ItemType::ByteString => Value::ByteString(hex::decode(s?).ok()?),
        ItemType::DateTime => Value::DateTime(match hex {
            Some(h) => h as i64,
            None => crate::time::parse_rfc3339(s?)?,
        }),
        ItemType::Interval => Value::Interval(match raw.as_u64() {
            Some(n) => u32::try_from(n).ok()?,
            None => u32::try_from(hex?).ok()?,
        }),
        ItemType::DateTimeExtended => Value::DateTimeExtended(match hex {
            Some(h) => h as i64,
            None => parse_rfc3339_micros(s?)?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_value_follows_name() {
        let j = r#"{"tag":"Attribute","value":[
            {"tag":"AttributeName","type":"TextString","value":"Cryptographic Algorithm"},
            {"tag":"AttributeValue","type":"Enumeration","value":"AES"}]}"#;
        let t = from_json_str(j).unwrap();
        assert_eq!(t.children().unwrap()[1].value, Value::Enumeration(3));
        assert_eq!(from_json(&to_json(&t)).unwrap(), t);
    }

    #[test]
    fn long_integers_beyond_53_bits_are_hex() {
        let t = Ttlv::long(Tag::ITERATION_COUNT, i64::MIN);
        let j = to_json(&t);
        assert_eq!(j["value"], J::String("0x8000000000000000".into()));
        assert_eq!(from_json(&j).unwrap(), t);
    }
}
