//! The KMIP codec: TTLV primitives, the tag and enumeration tables, typed
//! KMIP 1.0–2.1 messages, the XML and JSON encodings of TTLV and a redacting
//! dump. No I/O, no clock: time is always an argument.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod dump;
pub mod json;
pub mod messages;
pub mod tables;
pub mod time;
pub mod ttlv;
pub mod xml;

pub use codec::{Ctx, ProtocolVersion};
pub use tables::Tag;
pub use ttlv::{Error, ItemType, Limits, Ttlv, Value};
