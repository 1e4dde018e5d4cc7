//! The TTLV writer: structure lengths are back-filled when a structure
//! closes, values are padded, and every length is checked to fit the wire's
//! 32 bits, so the output is always valid TTLV.

use super::{ItemType, Ttlv, Value};
use crate::tables::Tag;

/// An item too large for the wire's 32-bit length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item {tag} of {len} bytes is too long for TTLV")]
pub struct EncodeError {
    /// The item's tag.
    pub tag: Tag,
    /// Its length.
    pub len: usize,
}

/// Appends TTLV to a reusable buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// A new encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new encoder with capacity.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// Wraps an existing buffer (cleared), so connections can reuse theirs.
    pub fn from_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        Self { buf }
    }

    /// The bytes written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the buffer.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn header(&mut self, tag: Tag, t: ItemType, len: u32) {
        let tb = tag.0.to_be_bytes();
        self.buf.extend_from_slice(&[tb[1], tb[2], tb[3], t as u8]);
        self.buf.extend_from_slice(&len.to_be_bytes());
    }

    fn padded(&mut self, tag: Tag, t: ItemType, bytes: &[u8]) -> Result<(), EncodeError> {
        let len = u32::try_from(bytes.len()).map_err(|_| EncodeError {
            tag,
            len: bytes.len(),
        })?;
        self.header(tag, t, len);
        self.buf.extend_from_slice(bytes);
        let pad = bytes.len().div_ceil(8) * 8 - bytes.len();
        self.buf.extend_from_slice(&[0u8; 8][..pad]);
        Ok(())
    }

    /// Writes a structure whose children `f` writes; its length is back-filled.
    pub fn structure<F>(&mut self, tag: Tag, f: F) -> Result<(), EncodeError>
    where
        F: FnOnce(&mut Self) -> Result<(), EncodeError>,
    {
        let at = self.buf.len();
        self.header(tag, ItemType::Structure, 0);
        f(self)?;
        let len = self.buf.len() - at - 8;
        let len32 = u32::try_from(len).map_err(|_| EncodeError { tag, len })?;
        self.buf[at + 4..at + 8].copy_from_slice(&len32.to_be_bytes());
        Ok(())
    }

    /// Writes any item, recursively.
    pub fn item(&mut self, item: &Ttlv) -> Result<(), EncodeError> {
        let tag = item.tag;
        match &item.value {
            Value::Structure(children) => self.structure(tag, |e| {
                for c in children {
                    e.item(c)?;
                }
                Ok(())
            })?,
            Value::Integer(v) => self.int(tag, *v),
            Value::LongInteger(v) => self.eight(tag, ItemType::LongInteger, v.to_be_bytes()),
            Value::BigInteger(b) => self.padded(tag, ItemType::BigInteger, b.as_bytes())?,
            Value::Enumeration(v) => self.four(tag, ItemType::Enumeration, v.to_be_bytes()),
            Value::Boolean(v) => self.eight(tag, ItemType::Boolean, (*v as u64).to_be_bytes()),
            Value::TextString(s) => self.padded(tag, ItemType::TextString, s.as_bytes())?,
            Value::ByteString(b) => self.padded(tag, ItemType::ByteString, b)?,
            Value::DateTime(v) => self.eight(tag, ItemType::DateTime, v.to_be_bytes()),
            Value::Interval(v) => self.four(tag, ItemType::Interval, v.to_be_bytes()),
            Value::DateTimeExtended(v) => {
                self.eight(tag, ItemType::DateTimeExtended, v.to_be_bytes())
            }
        }
        Ok(())
    }

    /// Writes an Integer.
    pub fn int(&mut self, tag: Tag, v: i32) {
        self.four(tag, ItemType::Integer, v.to_be_bytes())
    }

    fn four(&mut self, tag: Tag, t: ItemType, b: [u8; 4]) {
        self.header(tag, t, 4);
        self.buf.extend_from_slice(&b);
        self.buf.extend_from_slice(&[0; 4]);
    }

    fn eight(&mut self, tag: Tag, t: ItemType, b: [u8; 8]) {
        self.header(tag, t, 8);
        self.buf.extend_from_slice(&b);
    }
}
