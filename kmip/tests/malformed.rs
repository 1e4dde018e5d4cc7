//! Hostile and broken TTLV: each case gives the exact error kind at the exact
//! byte offset, and nothing panics. The hex is written by hand; spaces
//! separate tag | type | length | value.

use kmip::tables::Tag;
use kmip::ttlv::{check_header, decode, ErrorKind, ItemType, Limits, HEADER_LEN};

fn bytes(hex: &str) -> Vec<u8> {
    let h: String = hex.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    ::hex::decode(h).expect("test hex")
}

/// Decodes under `limits` and checks the error's kind and offset.
fn expect_with(limits: &Limits, hex: &str, kind: ErrorKind, offset: usize) {
    let input = bytes(hex);
    match decode(&input, limits) {
        Ok(t) => panic!("{hex}: decoded {t:?}, expected {kind:?}"),
        Err(e) => {
            assert_eq!(e.kind, kind, "{hex}: {e}");
            assert_eq!(e.offset, Some(offset), "{hex}: {e}");
        }
    }
}

fn expect(hex: &str, kind: ErrorKind, offset: usize) {
    expect_with(&Limits::default(), hex, kind, offset)
}

fn bad_len(item_type: ItemType, length: u32) -> ErrorKind {
    ErrorKind::BadLength { item_type, length }
}

#[test]
fn truncated_header_and_value() {
    expect(
        "420020 02 0000",
        ErrorKind::Truncated {
            needed: 8,
            available: 6,
        },
        0,
    );
    expect(
        "",
        ErrorKind::Truncated {
            needed: 8,
            available: 0,
        },
        0,
    );
    // Integer: 4 value bytes of the 8 (value + padding) present.
    expect(
        "420020 02 00000004 00000008",
        ErrorKind::Truncated {
            needed: 8,
            available: 4,
        },
        8,
    );
    // Long Integer with 7 of 8 bytes.
    expect(
        "420020 03 00000008 00000000000000",
        ErrorKind::Truncated {
            needed: 8,
            available: 7,
        },
        8,
    );
    // Text String "abc" without its padding.
    expect(
        "420055 07 00000003 616263",
        ErrorKind::Truncated {
            needed: 8,
            available: 3,
        },
        8,
    );
    // A structure whose child runs past the structure's own length.
    expect(
        "420069 01 00000008 42006A 02 00000004 00000001 00000000",
        ErrorKind::Truncated {
            needed: 8,
            available: 0,
        },
        16,
    );
}

#[test]
fn wrong_lengths_for_fixed_types() {
    expect(
        "420020 02 00000008 0000000800000000",
        bad_len(ItemType::Integer, 8),
        4,
    );
    expect(
        "420020 03 00000004 0000000800000000",
        bad_len(ItemType::LongInteger, 4),
        4,
    );
    expect(
        "42005C 05 00000008 0000000A00000000",
        bad_len(ItemType::Enumeration, 8),
        4,
    );
    expect(
        "420008 06 00000004 0000000100000000",
        bad_len(ItemType::Boolean, 4),
        4,
    );
    expect(
        "420092 09 00000004 0000000100000000",
        bad_len(ItemType::DateTime, 4),
        4,
    );
    expect(
        "420049 0A 00000008 0000000100000000",
        bad_len(ItemType::Interval, 8),
        4,
    );
    expect(
        "420092 0B 00000010 00000000000000010000000000000001",
        bad_len(ItemType::DateTimeExtended, 16),
        4,
    );
    // Big Integers are a non-zero multiple of 8 bytes.
    expect("420052 04 00000000", bad_len(ItemType::BigInteger, 0), 4);
    expect(
        "420052 04 0000000C 000000000000000100000000",
        bad_len(ItemType::BigInteger, 12),
        4,
    );
}

#[test]
fn absurd_lengths_do_not_allocate() {
    let huge = ErrorKind::Truncated {
        needed: 0xFFFF_FFF8,
        available: 8,
    };
    expect("420055 07 FFFFFFF8 6162630000000000", huge.clone(), 8);
    expect("420043 08 FFFFFFF8 6162630000000000", huge.clone(), 8);
    expect("420078 01 FFFFFFF8 6162630000000000", huge, 8);
    // 0xFFFFFFFF rounds up to 2^32 bytes with padding.
    expect(
        "420043 08 FFFFFFFF 6162630000000000",
        ErrorKind::Truncated {
            needed: 0x1_0000_0000,
            available: 8,
        },
        8,
    );
    expect(
        "420052 04 FFFFFFF8 0000000000000001",
        ErrorKind::Truncated {
            needed: 0xFFFF_FFF8,
            available: 8,
        },
        8,
    );
}

#[test]
fn padding_must_be_zero() {
    expect(
        "420020 02 00000004 00000008 00000001",
        ErrorKind::NonZeroPadding,
        12,
    );
    expect(
        "420055 07 00000003 616263 0000000001",
        ErrorKind::NonZeroPadding,
        11,
    );
    expect(
        "420043 08 00000001 FF 01000000000000",
        ErrorKind::NonZeroPadding,
        9,
    );
}

#[test]
fn nesting_and_item_limits() {
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    // Three nested structures: the third is at depth 3, at offset 16.
    expect_with(
        &limits,
        "420078 01 00000010 420077 01 00000008 420069 01 00000000",
        ErrorKind::TooDeep(3),
        16,
    );
    // Default limit: 40 nested structures; the 32nd starts at 31 * 8.
    let deep: String = (0..40)
        .map(|i| format!("420078 01 {:08X} ", (39 - i) * 8))
        .collect();
    expect(&deep, ErrorKind::TooDeep(32), 31 * 8);

    let limits = Limits {
        max_items: 3,
        ..Limits::default()
    };
    // A structure with three Integers is four items; the fourth starts at 40.
    let three = "420069 01 00000030 \
        42006A 02 00000004 00000001 00000000 \
        42006B 02 00000004 00000001 00000000 \
        42006B 02 00000004 00000001 00000000";
    expect_with(&limits, three, ErrorKind::TooManyItems(3), 40);
    let limits = Limits {
        max_message_size: 16,
        ..Limits::default()
    };
    expect_with(
        &limits,
        three,
        ErrorKind::TooLarge {
            size: 56,
            limit: 16,
        },
        0,
    );
}

#[test]
fn text_boolean_and_types() {
    expect(
        "420055 07 00000002 FFFE000000000000",
        ErrorKind::InvalidUtf8,
        8,
    );
    // An overlong encoding of '/' is not UTF-8 either.
    expect(
        "420055 07 00000002 C0AF000000000000",
        ErrorKind::InvalidUtf8,
        8,
    );
    expect(
        "420008 06 00000008 0000000000000002",
        ErrorKind::InvalidBoolean,
        8,
    );
    expect(
        "420008 06 00000008 0100000000000000",
        ErrorKind::InvalidBoolean,
        8,
    );
    expect(
        "420020 0C 00000004 0000000800000000",
        ErrorKind::UnknownType(0x0C),
        3,
    );
    expect(
        "420020 00 00000004 0000000800000000",
        ErrorKind::UnknownType(0x00),
        3,
    );
    expect(
        "420020 FF 00000004 0000000800000000",
        ErrorKind::UnknownType(0xFF),
        3,
    );
}

#[test]
fn trailing_bytes() {
    expect(
        "420020 02 00000004 00000008 00000000 00",
        ErrorKind::TrailingBytes(1),
        16,
    );
    expect(
        "420020 02 00000004 00000008 00000000 420020 02 00000004 00000008 00000000",
        ErrorKind::TrailingBytes(16),
        16,
    );
}

#[test]
fn errors_carry_the_tag_path() {
    let input = bytes(
        "420078 01 00000020 420077 01 00000018 420069 01 00000010 42006A 06 00000008 0000000000000003",
    );
    let e = decode(&input, &Limits::default()).expect_err("bad boolean");
    assert_eq!(e.kind, ErrorKind::InvalidBoolean);
    assert_eq!(e.offset, Some(32));
    assert_eq!(
        e.path,
        vec![
            Tag::REQUEST_MESSAGE,
            Tag::REQUEST_HEADER,
            Tag::PROTOCOL_VERSION,
            Tag::PROTOCOL_VERSION_MAJOR
        ]
    );
}

#[test]
fn frame_header_checks() {
    let limits = Limits::default();
    let h = |hex: &str| -> [u8; HEADER_LEN] { bytes(hex).try_into().expect("8 bytes") };
    let ok = check_header(&h("420078 01 00000060"), &limits).expect("request header");
    assert_eq!((ok.tag, ok.body_len), (Tag::REQUEST_MESSAGE, 0x60));
    let ok = check_header(&h("42007B 01 00000170"), &limits).expect("response header");
    assert_eq!((ok.tag, ok.body_len), (Tag::RESPONSE_MESSAGE, 0x170));

    let cases = [
        (
            "420077 01 00000060",
            ErrorKind::BadFrame("not a Request or Response Message"),
            0,
        ),
        (
            "540078 01 00000060",
            ErrorKind::BadFrame("not a Request or Response Message"),
            0,
        ),
        (
            "420078 02 00000004",
            ErrorKind::BadFrame("message is not a structure"),
            3,
        ),
        (
            "420078 01 00000061",
            ErrorKind::BadFrame("length is not a multiple of 8"),
            4,
        ),
        (
            "420078 01 FFFFFFF8",
            ErrorKind::TooLarge {
                size: 0xFFFF_FFF8 + 8,
                limit: limits.max_message_size,
            },
            4,
        ),
    ];
    for (hex, kind, offset) in cases {
        let e = check_header(&h(hex), &limits).expect_err(hex);
        assert_eq!((e.kind, e.offset), (kind, Some(offset)), "{hex}");
    }
}

/// A real message from the vCenter capture, cut at every length and with
/// every single byte changed: the decoder returns, it never panics, and a
/// changed message that still decodes re-encodes to itself.
#[test]
fn every_truncation_and_byte_flip_is_handled() {
    let text = include_str!("vectors/vcenter-7.0.3.txt");
    let line = text
        .lines()
        .find(|l| l.starts_with('<'))
        .expect("a response");
    let msg = bytes(line.split_whitespace().nth(2).expect("hex"));
    let limits = Limits::default();
    assert!(decode(&msg, &limits).is_ok());
    for n in 0..msg.len() {
        assert!(
            decode(&msg[..n], &limits).is_err(),
            "prefix of {n} bytes decoded"
        );
    }
    for i in 0..msg.len() {
        for x in [0x01u8, 0x80, 0xFF] {
            let mut m = msg.clone();
            m[i] ^= x;
            if let Ok(t) = decode(&m, &limits) {
                assert_eq!(t.to_bytes().expect("encodes"), m, "byte {i} ^ {x:#04x}");
            }
        }
    }
}
