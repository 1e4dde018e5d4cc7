//! The TTLV item model: a tag and a typed value, structures holding children.

use super::Error;
use super::ErrorKind;
use crate::tables::Tag;

/// The eleven TTLV item types (KMIP 1.x ten plus 2.x Date-Time Extended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ItemType {
    /// Structure.
    Structure = 0x01,
    /// 32-bit signed integer.
    Integer = 0x02,
    /// 64-bit signed integer.
    LongInteger = 0x03,
    /// Big-endian two's complement, a multiple of 8 bytes.
    BigInteger = 0x04,
    /// 32-bit unsigned enumeration.
    Enumeration = 0x05,
    /// 64-bit 0 or 1.
    Boolean = 0x06,
    /// UTF-8 text.
    TextString = 0x07,
    /// Bytes.
    ByteString = 0x08,
    /// Seconds since the epoch, 64-bit signed.
    DateTime = 0x09,
    /// Seconds, 32-bit unsigned.
    Interval = 0x0A,
    /// Microseconds since the epoch, 64-bit signed (KMIP 2.x).
    DateTimeExtended = 0x0B,
}

impl ItemType {
    /// Parses the wire type byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::Structure,
            0x02 => Self::Integer,
            0x03 => Self::LongInteger,
            0x04 => Self::BigInteger,
            0x05 => Self::Enumeration,
            0x06 => Self::Boolean,
            0x07 => Self::TextString,
            0x08 => Self::ByteString,
            0x09 => Self::DateTime,
            0x0A => Self::Interval,
            0x0B => Self::DateTimeExtended,
            _ => return None,
        })
    }

    /// The name used by the XML and JSON encodings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Structure => "Structure",
            Self::Integer => "Integer",
            Self::LongInteger => "LongInteger",
            Self::BigInteger => "BigInteger",
            Self::Enumeration => "Enumeration",
            Self::Boolean => "Boolean",
            Self::TextString => "TextString",
            Self::ByteString => "ByteString",
            Self::DateTime => "DateTime",
            Self::Interval => "Interval",
            Self::DateTimeExtended => "DateTimeExtended",
        }
    }

    /// Parses an XML/JSON type name.
    pub fn from_name(s: &str) -> Option<Self> {
        [
            Self::Structure,
            Self::Integer,
            Self::LongInteger,
            Self::BigInteger,
            Self::Enumeration,
            Self::Boolean,
            Self::TextString,
            Self::ByteString,
            Self::DateTime,
            Self::Interval,
            Self::DateTimeExtended,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }
}

/// A Big Integer: big-endian two's complement bytes, always a non-zero
/// multiple of 8 bytes long (as the wire requires), so it cannot encode
/// invalid TTLV.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BigInt(Vec<u8>);

impl BigInt {
    /// Takes wire bytes; the length must be a non-zero multiple of 8.
    pub fn from_wire(bytes: Vec<u8>) -> Result<Self, Error> {
        if bytes.is_empty() || bytes.len() % 8 != 0 {
            return Err(Error::new(ErrorKind::BadLength {
                item_type: ItemType::BigInteger,
                length: bytes.len() as u32,
            }));
        }
        Ok(Self(bytes))
    }

    /// Sign-extends arbitrary big-endian two's complement bytes to a multiple of 8.
    pub fn from_be_bytes(bytes: &[u8]) -> Self {
        let neg = bytes.first().is_some_and(|b| b & 0x80 != 0);
        let len = bytes.len().max(1).div_ceil(8) * 8;
        let mut v = vec![if neg { 0xFF } else { 0 }; len - bytes.len()];
        v.extend_from_slice(bytes);
        Self(v)
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for BigInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BigInt({} bytes)", self.0.len())
    }
}

/// A typed TTLV value. Its `Debug` shows byte strings only by length, since
/// they may be key material.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// Children in order.
    Structure(Vec<Ttlv>),
    /// Integer.
    Integer(i32),
    /// Long Integer.
    LongInteger(i64),
    /// Big Integer.
    BigInteger(BigInt),
    /// Enumeration (open: unknown values round-trip).
    Enumeration(u32),
    /// Boolean.
    Boolean(bool),
    /// Text String.
    TextString(String),
    /// Byte String.
    ByteString(Vec<u8>),
    /// Date-Time, seconds since the epoch.
    DateTime(i64),
    /// Interval, seconds.
    Interval(u32),
    /// Date-Time Extended, microseconds since the epoch.
    DateTimeExtended(i64),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Structure(c) => write!(f, "Structure({} items)", c.len()),
            Value::Integer(v) => write!(f, "Integer({v})"),
            Value::LongInteger(v) => write!(f, "LongInteger({v})"),
            Value::BigInteger(b) => write!(f, "{b:?}"),
            Value::Enumeration(v) => write!(f, "Enumeration(0x{v:08X})"),
            Value::Boolean(v) => write!(f, "Boolean({v})"),
            Value::TextString(s) => write!(f, "TextString({} bytes)", s.len()),
            Value::ByteString(b) => write!(f, "ByteString({} bytes)", b.len()),
            Value::DateTime(v) => write!(f, "DateTime({v})"),
            Value::Interval(v) => write!(f, "Interval({v})"),
            Value::DateTimeExtended(v) => write!(f, "DateTimeExtended({v})"),
        }
    }
}

impl Value {
    /// The item type of this value.
    pub fn item_type(&self) -> ItemType {
        match self {
            Value::Structure(_) => ItemType::Structure,
            Value::Integer(_) => ItemType::Integer,
            Value::LongInteger(_) => ItemType::LongInteger,
            Value::BigInteger(_) => ItemType::BigInteger,
            Value::Enumeration(_) => ItemType::Enumeration,
            Value::Boolean(_) => ItemType::Boolean,
            Value::TextString(_) => ItemType::TextString,
            Value::ByteString(_) => ItemType::ByteString,
            Value::DateTime(_) => ItemType::DateTime,
            Value::Interval(_) => ItemType::Interval,
            Value::DateTimeExtended(_) => ItemType::DateTimeExtended,
        }
    }
}

/// One TTLV item.
#[derive(Clone, PartialEq, Eq)]
pub struct Ttlv {
    /// The tag.
    pub tag: Tag,
    /// The value.
    pub value: Value,
}

/// An empty structure with tag 0 (a placeholder for defaults).
impl Default for Ttlv {
    fn default() -> Self {
        Self {
            tag: Tag(0),
            value: Value::Structure(Vec::new()),
        }
    }
}

/// Debug goes through the redacting dump: key material never reaches a log.
impl std::fmt::Debug for Ttlv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::dump::dump(self))
    }
}

fn wrong(expected: ItemType, found: &Value) -> Error {
    Error::new(ErrorKind::WrongType {
        expected,
        found: found.item_type(),
    })
}

impl Ttlv {
    /// Builds an item.
    pub fn new(tag: Tag, value: Value) -> Self {
        Self { tag, value }
    }
    /// A structure.
    pub fn structure(tag: Tag, children: Vec<Ttlv>) -> Self {
        Self::new(tag, Value::Structure(children))
    }
    /// An Integer.
    pub fn int(tag: Tag, v: i32) -> Self {
        Self::new(tag, Value::Integer(v))
    }
    /// A Long Integer.
    pub fn long(tag: Tag, v: i64) -> Self {
        Self::new(tag, Value::LongInteger(v))
    }
    /// An Enumeration.
    pub fn enumeration(tag: Tag, v: impl Into<u32>) -> Self {
        Self::new(tag, Value::Enumeration(v.into()))
    }
    /// A Boolean.
    pub fn boolean(tag: Tag, v: bool) -> Self {
        Self::new(tag, Value::Boolean(v))
    }
    /// A Text String.
    pub fn text(tag: Tag, v: impl Into<String>) -> Self {
        Self::new(tag, Value::TextString(v.into()))
    }
    /// A Byte String.
    pub fn bytes(tag: Tag, v: impl Into<Vec<u8>>) -> Self {
        Self::new(tag, Value::ByteString(v.into()))
    }
    /// A Date-Time.
    pub fn date_time(tag: Tag, v: i64) -> Self {
        Self::new(tag, Value::DateTime(v))
    }
    /// An Interval.
    pub fn interval(tag: Tag, v: u32) -> Self {
        Self::new(tag, Value::Interval(v))
    }

    /// The item type.
    pub fn item_type(&self) -> ItemType {
        self.value.item_type()
    }

    /// The children of a structure (an error for other types).
    pub fn children(&self) -> Result<&[Ttlv], Error> {
        match &self.value {
            Value::Structure(c) => Ok(c),
            v => Err(wrong(ItemType::Structure, v).within(self.tag)),
        }
    }

    /// The first child with `tag`, if this is a structure holding one.
    pub fn child(&self, tag: Tag) -> Option<&Ttlv> {
        match &self.value {
            Value::Structure(c) => c.iter().find(|t| t.tag == tag),
            _ => None,
        }
    }

    /// The first child with `tag`, or a Missing error.
    pub fn required(&self, tag: Tag) -> Result<&Ttlv, Error> {
        self.child(tag)
            .ok_or_else(|| Error::missing(tag).within(self.tag))
    }

    /// Every child with `tag`.
    pub fn children_with(&self, tag: Tag) -> impl Iterator<Item = &Ttlv> {
        let c: &[Ttlv] = match &self.value {
            Value::Structure(c) => c,
            _ => &[],
        };
        c.iter().filter(move |t| t.tag == tag)
    }

    /// Integer value.
    pub fn as_int(&self) -> Result<i32, Error> {
        match self.value {
            Value::Integer(v) => Ok(v),
            ref v => Err(wrong(ItemType::Integer, v).within(self.tag)),
        }
    }
    /// Long Integer value.
    pub fn as_long(&self) -> Result<i64, Error> {
        match self.value {
            Value::LongInteger(v) => Ok(v),
            ref v => Err(wrong(ItemType::LongInteger, v).within(self.tag)),
        }
    }
    /// Enumeration value.
    pub fn as_enum(&self) -> Result<u32, Error> {
        match self.value {
            Value::Enumeration(v) => Ok(v),
            ref v => Err(wrong(ItemType::Enumeration, v).within(self.tag)),
        }
    }
    /// Boolean value.
    pub fn as_bool(&self) -> Result<bool, Error> {
        match self.value {
            Value::Boolean(v) => Ok(v),
            ref v => Err(wrong(ItemType::Boolean, v).within(self.tag)),
        }
    }
    /// Text String value.
    pub fn as_text(&self) -> Result<&str, Error> {
        match &self.value {
            Value::TextString(v) => Ok(v),
            v => Err(wrong(ItemType::TextString, v).within(self.tag)),
        }
    }
    /// Byte String value.
    pub fn as_bytes(&self) -> Result<&[u8], Error> {
        match &self.value {
            Value::ByteString(v) => Ok(v),
            v => Err(wrong(ItemType::ByteString, v).within(self.tag)),
        }
    }
    /// Date-Time value (seconds).
    pub fn as_date_time(&self) -> Result<i64, Error> {
        match self.value {
            Value::DateTime(v) => Ok(v),
            ref v => Err(wrong(ItemType::DateTime, v).within(self.tag)),
        }
    }
    /// Interval value.
    pub fn as_interval(&self) -> Result<u32, Error> {
        match self.value {
            Value::Interval(v) => Ok(v),
            ref v => Err(wrong(ItemType::Interval, v).within(self.tag)),
        }
    }

    /// Encodes to a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, super::EncodeError> {
        let mut e = super::Encoder::with_capacity(256);
        e.item(self)?;
        Ok(e.into_bytes())
    }

    /// Decodes exactly one item from `bytes` under `limits`.
    pub fn from_bytes(bytes: &[u8], limits: &super::Limits) -> Result<Self, Error> {
        super::decode(bytes, limits)
    }
}
