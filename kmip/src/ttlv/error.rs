//! Decoding errors with their location: byte offset (for wire decoding) and
//! the path of tags from the root to the failing item.

use super::ItemType;
use crate::tables::Tag;
use std::fmt;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Fewer bytes remain than the item needs.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The item type byte is not a KMIP type.
    UnknownType(u8),
    /// The length does not fit the item type.
    BadLength {
        /// The type.
        item_type: ItemType,
        /// The length given.
        length: u32,
    },
    /// Padding bytes are not zero.
    NonZeroPadding,
    /// A Text String is not UTF-8.
    InvalidUtf8,
    /// A Boolean is neither 0 nor 1.
    InvalidBoolean,
    /// Bytes remain after the item.
    TrailingBytes(usize),
    /// Nesting is deeper than the limit.
    TooDeep(usize),
    /// More items than the limit.
    TooManyItems(usize),
    /// The message is larger than the limit.
    TooLarge {
        /// Claimed or actual size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The message does not start with a structure of an expected tag.
    BadFrame(&'static str),
    /// An item has the wrong type for its tag.
    WrongType {
        /// Expected type.
        expected: ItemType,
        /// Found type.
        found: ItemType,
    },
    /// A required field is missing.
    Missing(Tag),
    /// A field appears where it is not allowed.
    Unexpected(Tag),
    /// A value is out of range or otherwise invalid.
    InvalidValue(String),
    /// Not supported in the message's protocol version.
    Unsupported(String),
}

/// A decoding error, with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The byte offset in the input, for wire decoding.
    pub offset: Option<usize>,
    /// Tags from the root to the item that failed.
    pub path: Vec<Tag>,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl Error {
    /// An error without location; callers add the path as it unwinds.
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            offset: None,
            path: Vec::new(),
            kind,
        }
    }

    /// An error at a byte offset.
    pub fn at(offset: usize, path: &[Tag], kind: ErrorKind) -> Self {
        Self {
            offset: Some(offset),
            path: path.to_vec(),
            kind,
        }
    }

    /// Prepends a tag to the path (used while unwinding typed decoding).
    pub fn within(mut self, tag: Tag) -> Self {
        self.path.insert(0, tag);
        self
    }

    /// Shorthand for a missing required field.
    pub fn missing(tag: Tag) -> Self {
        Self::new(ErrorKind::Missing(tag))
    }

    /// Shorthand for an invalid value.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidValue(msg.into()))
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Truncated { needed, available } => {
                write!(f, "truncated: {needed} bytes needed, {available} available")
            }
            ErrorKind::UnknownType(t) => write!(f, "unknown item type 0x{t:02X}"),
            ErrorKind::BadLength { item_type, length } => {
                write!(f, "length {length} is invalid for {item_type:?}")
            }
            ErrorKind::NonZeroPadding => f.write_str("padding bytes are not zero"),
            ErrorKind::InvalidUtf8 => f.write_str("text string is not valid UTF-8"),
            ErrorKind::InvalidBoolean => f.write_str("boolean value is neither 0 nor 1"),
            ErrorKind::TrailingBytes(n) => write!(f, "{n} trailing bytes after the message"),
            ErrorKind::TooDeep(l) => write!(f, "nesting deeper than {l} levels"),
            ErrorKind::TooManyItems(l) => write!(f, "more than {l} items"),
            ErrorKind::TooLarge { size, limit } => {
                write!(f, "message of {size} bytes exceeds the limit of {limit}")
            }
            ErrorKind::BadFrame(why) => write!(f, "bad message frame: {why}"),
            ErrorKind::WrongType { expected, found } => {
                write!(f, "expected {expected:?}, found {found:?}")
            }
            ErrorKind::Missing(t) => write!(f, "missing required field {t}"),
            ErrorKind::Unexpected(t) => write!(f, "unexpected field {t}"),
            ErrorKind::InvalidValue(m) => write!(f, "invalid value: {m}"),
            ErrorKind::Unsupported(m) => write!(f, "not supported: {m}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if !self.path.is_empty() {
            f.write_str(" at ")?;
            for (i, t) in self.path.iter().enumerate() {
                if i > 0 {
                    f.write_str("/")?;
                }
                write!(f, "{t}")?;
            }
        }
        if let Some(o) = self.offset {
            write!(f, " (byte {o})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
