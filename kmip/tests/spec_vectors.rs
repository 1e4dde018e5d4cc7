//! The TTLV encoding examples of the KMIP 1.x specification (section 9.1.2,
//! "Examples"), transcribed by hand: each value encodes to exactly these
//! bytes and the bytes decode to exactly this value. All use tag 0x420020
//! except the structure, whose children use 0x420004 and 0x420005.

use kmip::tables::Tag;
use kmip::ttlv::{decode, BigInt, Limits, Ttlv, Value};

fn bytes(hex: &str) -> Vec<u8> {
    let h: String = hex.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    ::hex::decode(h).expect("test hex")
}

fn check(name: &str, item: Ttlv, hex: &str) {
    let want = bytes(hex);
    assert_eq!(item.to_bytes().expect("encodes"), want, "{name}: encoding");
    assert_eq!(
        decode(&want, &Limits::default()).expect("decodes"),
        item,
        "{name}: decoding"
    );
}

const T: Tag = Tag(0x420020);

#[test]
fn specification_examples() {
    check(
        "Integer 8",
        Ttlv::int(T, 8),
        "42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00",
    );
    check(
        "Long Integer 123456789000000000",
        Ttlv::long(T, 123_456_789_000_000_000),
        "42 00 20 | 03 | 00 00 00 08 | 01 B6 9B 4B A5 74 92 00",
    );
    check(
        "Big Integer 1234567890000000000000000000",
        Ttlv::new(
            T,
            Value::BigInteger(BigInt::from_be_bytes(&bytes(
                "03 FD 35 EB 6B C2 DF 46 18 08 00 00",
            ))),
        ),
        "42 00 20 | 04 | 00 00 00 10 | 00 00 00 00 03 FD 35 EB 6B C2 DF 46 18 08 00 00",
    );
    check(
        "Enumeration 255",
        Ttlv::enumeration(T, 255u32),
        "42 00 20 | 05 | 00 00 00 04 | 00 00 00 FF 00 00 00 00",
    );
    check(
        "Boolean True",
        Ttlv::boolean(T, true),
        "42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 01",
    );
    check(
        "Text String \"Hello World\"",
        Ttlv::text(T, "Hello World"),
        "42 00 20 | 07 | 00 00 00 0B | 48 65 6C 6C 6F 20 57 6F 72 6C 64 00 00 00 00 00",
    );
    check(
        "Byte String 01 02 03",
        Ttlv::bytes(T, vec![1, 2, 3]),
        "42 00 20 | 08 | 00 00 00 03 | 01 02 03 00 00 00 00 00",
    );
    check(
        "Date-Time Friday, March 14, 2008, 11:56:40 GMT",
        Ttlv::date_time(T, 1_205_495_800),
        "42 00 20 | 09 | 00 00 00 08 | 00 00 00 00 47 DA 67 F8",
    );
    check(
        "Interval 10 days",
        Ttlv::interval(T, 10 * 24 * 3600),
        "42 00 20 | 0A | 00 00 00 04 | 00 0D 2F 00 00 00 00 00",
    );
    check(
        "Structure of Enumeration 254 and Integer 255",
        Ttlv::structure(
            T,
            vec![
                Ttlv::enumeration(Tag(0x420004), 254u32),
                Ttlv::int(Tag(0x420005), 255),
            ],
        ),
        "42 00 20 | 01 | 00 00 00 20 | 42 00 04 | 05 | 00 00 00 04 | 00 00 00 FE 00 00 00 00 \
         | 42 00 05 | 02 | 00 00 00 04 | 00 00 00 FF 00 00 00 00",
    );
}

/// The same Date-Time in the XML encoding's ISO 8601 form.
#[test]
fn date_time_example_in_xml() {
    let x = kmip::xml::to_xml(&Ttlv::date_time(Tag::ACTIVATION_DATE, 1_205_495_800));
    assert!(
        x.contains(r#"<ActivationDate type="DateTime" value="2008-03-14T11:56:40+00:00"/>"#),
        "{x}"
    );
    assert_eq!(
        kmip::xml::from_xml(&x).expect("reads back"),
        Ttlv::date_time(Tag::ACTIVATION_DATE, 1_205_495_800)
    );
}
