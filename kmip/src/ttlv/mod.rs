//! TTLV primitives: the item model, a strict reader, a back-filling writer
//! and the frame header check used before a message body is read.
//!
//! The reader checks every length against the bytes remaining and against
//! [`Limits`] before anything is allocated; padding must be zero, text must be
//! UTF-8, lengths must match the item type and trailing bytes are an error.
//! Errors carry the byte offset and the tag path.

mod error;
mod frame;
mod reader;
mod value;
mod writer;

pub use error::{Error, ErrorKind};
pub use frame::{check_header, FrameHeader, HEADER_LEN};
pub use reader::{decode, Limits};
pub use value::{BigInt, ItemType, Ttlv, Value};
pub use writer::{EncodeError, Encoder};
