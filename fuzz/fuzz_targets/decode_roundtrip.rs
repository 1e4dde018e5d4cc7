//! Decode → encode → decode must give the same tree, and since the reader is
//! strict (exact lengths, zero padding, no trailing bytes) the re-encoding
//! must also be byte-identical to the accepted input.
#![no_main]

use kmip::ttlv::{decode, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(first) = decode(data, &limits) else {
        return;
    };
    let bytes = first.to_bytes().expect("a decoded tree always re-encodes");
    assert_eq!(bytes, data, "re-encoding differs from the accepted input");
    let second = decode(&bytes, &limits).expect("our own encoding decodes");
    assert_eq!(first, second);
});
