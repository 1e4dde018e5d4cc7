//! The 8-byte message header, checked before the body is read.

use super::{Error, ErrorKind, ItemType, Limits};
use crate::tables::Tag;

/// Length of a TTLV item header.
pub const HEADER_LEN: usize = 8;

/// A validated message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The message tag (Request Message or Response Message).
    pub tag: Tag,
    /// The body length that follows the header.
    pub body_len: usize,
}

/// Checks the first 8 bytes of a message: a Request or Response Message
/// structure whose length is a multiple of 8 and whose total size is within
/// `limits.max_message_size`. Only then may the caller read (and allocate
/// for) the body.
pub fn check_header(h: &[u8; HEADER_LEN], limits: &Limits) -> Result<FrameHeader, Error> {
    let tag = Tag(u32::from_be_bytes([0, h[0], h[1], h[2]]));
    if tag != Tag::REQUEST_MESSAGE && tag != Tag::RESPONSE_MESSAGE {
        return Err(Error::at(
            0,
            &[],
            ErrorKind::BadFrame("not a Request or Response Message"),
        ));
    }
    if h[3] != ItemType::Structure as u8 {
        return Err(Error::at(
            3,
            &[tag],
            ErrorKind::BadFrame("message is not a structure"),
        ));
    }
    let body_len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if body_len % 8 != 0 {
        return Err(Error::at(
            4,
            &[tag],
            ErrorKind::BadFrame("length is not a multiple of 8"),
        ));
    }
    let size = body_len + HEADER_LEN;
    if size > limits.max_message_size {
        return Err(Error::at(
            4,
            &[tag],
            ErrorKind::TooLarge {
                size,
                limit: limits.max_message_size,
            },
        ));
    }
    Ok(FrameHeader { tag, body_len })
}
