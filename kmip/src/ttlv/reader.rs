//! The strict TTLV reader over a byte slice.
//!
//! Every length is checked against the bytes that remain and against the
//! configured [`Limits`] before anything is allocated, so a hostile length
//! field never costs more memory than the bytes actually received.

use super::{BigInt, Error, ErrorKind, ItemType, Ttlv, Value};
use crate::tables::Tag;

/// Limits applied while decoding untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, header included.
    pub max_message_size: usize,
    /// Deepest nesting of structures (the root is depth 1).
    pub max_depth: usize,
    /// Most items in one message.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            max_depth: 32,
            max_items: 65_536,
        }
    }
}

/// Decodes exactly one item from `input`; trailing bytes are an error.
pub fn decode(input: &[u8], limits: &Limits) -> Result<Ttlv, Error> {
    if input.len() > limits.max_message_size {
        return Err(Error::at(
            0,
            &[],
            ErrorKind::TooLarge {
                size: input.len(),
                limit: limits.max_message_size,
            },
        ));
    }
    let mut r = Reader {
        buf: input,
        pos: 0,
        limits,
        items: 0,
        path: Vec::with_capacity(8),
    };
    let item = r.item(input.len(), 1)?;
    if r.pos != input.len() {
        return Err(Error::at(
            r.pos,
            &[],
            ErrorKind::TrailingBytes(input.len() - r.pos),
        ));
    }
    Ok(item)
}

struct Reader<'a, 'l> {
    buf: &'a [u8],
    pos: usize,
    limits: &'l Limits,
    items: usize,
    path: Vec<Tag>,
}

fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// Counts the items at the top level of `body` by hopping over their headers,
/// at most `cap` of them. Only a capacity hint: the items are checked when
/// they are read, and the count can never exceed `body.len() / 8`, so a
/// hostile length cannot make the hint larger than the bytes received.
fn count_children(mut body: &[u8], cap: usize) -> usize {
    let mut n = 0;
    while n < cap {
        let Some(h) = body.get(..8) else { break };
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let value = if h[3] == ItemType::Structure as u8 {
            len
        } else {
            padded(len)
        };
        n += 1;
        match body.get(8usize.saturating_add(value)..) {
            Some(rest) => body = rest,
            None => break,
        }
    }
    n
}

impl Reader<'_, '_> {
    fn err(&self, offset: usize, kind: ErrorKind) -> Error {
        Error::at(offset, &self.path, kind)
    }

    /// Takes `n` bytes without going past `end`.
    fn take(&mut self, n: usize, end: usize) -> Result<&[u8], Error> {
        let available = end.saturating_sub(self.pos);
        if n > available {
            return Err(self.err(
                self.pos,
                ErrorKind::Truncated {
                    needed: n,
                    available,
                },
            ));
        }
        let start = self.pos;
        self.pos += n;
        // In bounds: pos + n <= end <= buf.len() was checked above.
        Ok(&self.buf[start..start + n])
    }

    fn item(&mut self, end: usize, depth: usize) -> Result<Ttlv, Error> {
        let start = self.pos;
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(self.err(start, ErrorKind::TooManyItems(self.limits.max_items)));
        }
        let h = self.take(8, end)?;
        let tag = Tag(u32::from_be_bytes([0, h[0], h[1], h[2]]));
        let type_byte = h[3];
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        self.path.push(tag);
        let item_type = ItemType::from_u8(type_byte)
            .ok_or_else(|| self.err(start + 3, ErrorKind::UnknownType(type_byte)))?;
        let bad_len = |r: &Self| {
            r.err(
                start + 4,
                ErrorKind::BadLength {
                    item_type,
                    length: len,
                },
            )
        };
        let fixed = |r: &Self, want: u32| if len == want { Ok(()) } else { Err(bad_len(r)) };
        let value_at = self.pos;
        let value = match item_type {
            ItemType::Structure => {
                if depth >= self.limits.max_depth {
                    return Err(self.err(start, ErrorKind::TooDeep(self.limits.max_depth)));
                }
                let len = len as usize;
                let available = end.saturating_sub(self.pos);
                if len > available {
                    return Err(self.err(
                        self.pos,
                        ErrorKind::Truncated {
                            needed: len,
                            available,
                        },
                    ));
                }
                let struct_end = self.pos + len;
                // Sizing the vector up front saves its regrowth (a copy of
                // every child so far, each time) on long structures such as
                // a Locate response's identifiers.
                let room = self.limits.max_items.saturating_sub(self.items);
                let mut children = Vec::with_capacity(count_children(
                    self.buf.get(self.pos..struct_end).unwrap_or_default(),
                    room,
                ));
                while self.pos < struct_end {
                    children.push(self.item(struct_end, depth + 1)?);
                }
                Value::Structure(children)
            }
            ItemType::Integer => {
                fixed(self, 4)?;
                let b = self.padded_value(4, end)?;
                Value::Integer(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            ItemType::Enumeration => {
                fixed(self, 4)?;
                let b = self.padded_value(4, end)?;
                Value::Enumeration(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            ItemType::Interval => {
                fixed(self, 4)?;
                let b = self.padded_value(4, end)?;
                Value::Interval(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            ItemType::LongInteger | ItemType::DateTime | ItemType::DateTimeExtended => {
                fixed(self, 8)?;
                let b = self.take(8, end)?;
                let v = i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                match item_type {
                    ItemType::LongInteger => Value::LongInteger(v),
                    ItemType::DateTime => Value::DateTime(v),
                    _ => Value::DateTimeExtended(v),
                }
            }
            ItemType::Boolean => {
                fixed(self, 8)?;
                let b = self.take(8, end)?;
                match u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) {
                    0 => Value::Boolean(false),
                    1 => Value::Boolean(true),
                    _ => return Err(self.err(value_at, ErrorKind::InvalidBoolean)),
                }
            }
            ItemType::BigInteger => {
                if len == 0 || len % 8 != 0 {
                    return Err(bad_len(self));
                }
                let b = self.take(len as usize, end)?.to_vec();
                Value::BigInteger(BigInt::from_wire(b).map_err(|_| bad_len(self))?)
            }
            ItemType::TextString => {
                let b = self.padded_value(len as usize, end)?;
                match std::str::from_utf8(b) {
                    Ok(s) => Value::TextString(s.to_owned()),
                    Err(_) => return Err(self.err(value_at, ErrorKind::InvalidUtf8)),
                }
            }
            ItemType::ByteString => {
                Value::ByteString(self.padded_value(len as usize, end)?.to_vec())
            }
        };
        self.path.pop();
        Ok(Ttlv { tag, value })
    }

    /// Reads a value of `len` bytes followed by zero padding to 8 bytes.
    fn padded_value(&mut self, len: usize, end: usize) -> Result<&[u8], Error> {
        let total = padded(len);
        let available = end.saturating_sub(self.pos);
        if total > available {
            return Err(self.err(
                self.pos,
                ErrorKind::Truncated {
                    needed: total,
                    available,
                },
            ));
        }
        let start = self.pos;
        self.pos += total;
        // In bounds: start + total <= end <= buf.len() was checked above.
        let all = &self.buf[start..start + total];
        if all[len..].iter().any(|b| *b != 0) {
            return Err(Error::at(
                start + len,
                &self.path,
                ErrorKind::NonZeroPadding,
            ));
        }
        Ok(&all[..len])
    }
}
