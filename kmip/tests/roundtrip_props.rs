//! Property tests: random TTLV trees round-trip unchanged through the binary
//! encoding, the XML encoding and the JSON encoding.

use kmip::tables::Tag;
use kmip::ttlv::{decode, BigInt, Limits, Ttlv, Value};
use kmip::{json, xml};
use proptest::prelude::*;

/// Named tags (some with enumeration or mask tables, which change how XML
/// and JSON write values), an Attribute Name/Value pair and unnamed tags.
fn tag() -> impl Strategy<Value = Tag> {
    prop_oneof![
        Just(Tag::UNIQUE_IDENTIFIER),
        Just(Tag::OPERATION),
        Just(Tag::OBJECT_TYPE),
        Just(Tag::CRYPTOGRAPHIC_ALGORITHM),
        Just(Tag::CRYPTOGRAPHIC_USAGE_MASK),
        Just(Tag::STORAGE_STATUS_MASK),
        Just(Tag::ATTRIBUTE_NAME),
        Just(Tag::ATTRIBUTE_VALUE),
        Just(Tag::KEY_MATERIAL),
        Just(Tag::ACTIVATION_DATE),
        (0x54_0000u32..0x54_0010).prop_map(Tag),
        (0x42_0177u32..0x42_0180).prop_map(Tag),
    ]
}

/// Text that XML 1.0 can carry (it has no way to write most control characters).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~\t\n\r\u{a0}-\u{2ff}\u{4e00}-\u{4e20}]{0,24}",
        Just("Cryptographic Algorithm".to_owned()),
        Just("Cryptographic Usage Mask".to_owned()),
        Just("$NOW".to_owned()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(Value::Integer),
        any::<i64>().prop_map(Value::LongInteger),
        proptest::collection::vec(any::<u8>(), 1..40)
            .prop_map(|b| Value::BigInteger(BigInt::from_be_bytes(&b))),
        any::<u32>().prop_map(Value::Enumeration),
        (0u32..8).prop_map(Value::Enumeration),
        any::<bool>().prop_map(Value::Boolean),
        text().prop_map(Value::TextString),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::ByteString),
        any::<i64>().prop_map(Value::DateTime),
        (0i64..4_102_444_800).prop_map(Value::DateTime),
        any::<u32>().prop_map(Value::Interval),
        any::<i64>().prop_map(Value::DateTimeExtended),
        (0i64..4_102_444_800_000_000).prop_map(Value::DateTimeExtended),
    ]
}

fn tree() -> impl Strategy<Value = Ttlv> {
    let leaf = (tag(), leaf()).prop_map(|(tag, value)| Ttlv { tag, value });
    leaf.prop_recursive(4, 48, 6, |inner| {
        (tag(), proptest::collection::vec(inner, 0..6)).prop_map(|(tag, c)| Ttlv::structure(tag, c))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn binary_round_trip(t in tree()) {
        let bytes = t.to_bytes().expect("encodes");
        prop_assert_eq!(bytes.len() % 8, 0);
        let back = decode(&bytes, &Limits::default()).expect("decodes");
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(back.to_bytes().expect("encodes"), bytes);
    }

    #[test]
    fn xml_round_trip(t in tree()) {
        let x = xml::to_xml(&t);
        let back = xml::from_xml(&x);
        prop_assert!(back.is_ok(), "{:?}\n{}", back, x);
        prop_assert_eq!(back.expect("checked"), t, "{}", x);
    }

    #[test]
    fn json_round_trip(t in tree()) {
        let j = json::to_json_string(&t);
        let back = json::from_json_str(&j);
        prop_assert!(back.is_ok(), "{:?}\n{}", back, j);
        prop_assert_eq!(back.expect("checked"), t, "{}", j);
    }
}
