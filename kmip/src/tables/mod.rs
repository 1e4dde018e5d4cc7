//! KMIP tags, enumerations and bit masks, each defined once (number and
//! specification name) in one table.
//!
//! The tables generate typed constants (`Tag::ACTIVATION_DATE`,
//! `ObjectType::SYMMETRIC_KEY`), names for display and parsing from names, as
//! the XML and JSON encodings need. Every type is an open newtype over the wire
//! number, so vendor extension tags (`0x54xxxx`) and unknown enumeration values
//! round-trip unchanged.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// Normalises a specification name for lookups: the XML encoding writes names
/// with spaces removed (`SymmetricKey`), the JSON encoding and humans with them.
/// Comparison ignores every non-alphanumeric character and ASCII case.
pub fn normalize_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A name table: `(number, spec name)` pairs sorted by number.
#[derive(Debug)]
pub struct NameTable {
    /// Name of the enumeration or `"Tag"`.
    pub name: &'static str,
    /// `(value, spec name)`, sorted by value.
    pub entries: &'static [(u32, &'static str)],
}

/// Compares two names as [`normalize_name`] would, without allocating.
fn same_name(a: &str, b: &str) -> bool {
    let mut x = a.chars().filter(|c| c.is_ascii_alphanumeric());
    let mut y = b.chars().filter(|c| c.is_ascii_alphanumeric());
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) if p.eq_ignore_ascii_case(&q) => {}
            _ => return false,
        }
    }
}

impl NameTable {
    #[doc(hidden)]
    pub const fn new(name: &'static str, entries: &'static [(u32, &'static str)]) -> Self {
        Self { name, entries }
    }

    /// The specification name of `value`, if the table knows it.
    pub fn name_of(&self, value: u32) -> Option<&'static str> {
        self.entries
            .binary_search_by_key(&value, |(v, _)| *v)
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|(_, n)| *n)
    }

    /// The number for a name in any of the accepted spellings.
    /// The first (lowest) value wins when two names normalise alike.
    pub fn value_of(&self, name: &str) -> Option<u32> {
        self.entries
            .iter()
            .find(|(_, n)| same_name(n, name))
            .map(|(v, _)| *v)
    }
}

/// The KMIP item tag: a 3-byte number (`0x42xxxx` standard, `0x54xxxx` extension).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u32);

impl Tag {
    /// Whether this is a vendor extension tag (`0x54xxxx`).
    pub fn is_extension(self) -> bool {
        self.0 >> 16 == 0x54
    }

    /// The specification name, for known tags.
    pub fn name(self) -> Option<&'static str> {
        TAGS.name_of(self.0)
    }

    /// Parses a tag from its name (any spacing) or from `0x42xxxx` hex.
    pub fn from_name(name: &str) -> Option<Tag> {
        if let Some(hex) = name.strip_prefix("0x").or_else(|| name.strip_prefix("0X")) {
            return u32::from_str_radix(hex, 16)
                .ok()
                .filter(|v| *v <= 0xFF_FFFF)
                .map(Tag);
        }
        static BY_NAME: OnceLock<HashMap<String, u32>> = OnceLock::new();
        BY_NAME
            .get_or_init(|| {
                let mut m = HashMap::with_capacity(TAGS.entries.len());
                for (v, n) in TAGS.entries {
                    m.entry(normalize_name(n)).or_insert(*v);
                }
                m
            })
            .get(&normalize_name(name))
            .copied()
            .map(Tag)
    }

    /// The XML element name: the spec name without spaces, or `0x42xxxx`
    /// hex for unknown tags (the XML encoding writes those as `tag="0x..."`).
    pub fn xml_name(self) -> Option<String> {
        self.name()
            .map(|n| n.chars().filter(|c| !c.is_whitespace()).collect())
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "0x{:06X}", self.0),
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

macro_rules! define_tags {
    ($($ident:ident = $val:expr, $name:expr;)*) => {
        #[allow(missing_docs)]
        impl Tag {
            $(pub const $ident: Tag = Tag($val);)*
        }
        static TAG_ENTRIES: &[(u32, &str)] = &[$(($val, $name)),*];
        /// Every known tag, sorted by number.
        pub static TAGS: NameTable = NameTable::new("Tag", TAG_ENTRIES);
    };
}

/// Description of one enumeration or mask table, for generic (name-based)
/// encodings that only know the tag of an item.
#[derive(Debug)]
pub struct EnumDef {
    /// Names and values.
    pub table: &'static NameTable,
    /// Tags whose Enumeration (or Integer, for masks) values use this table.
    pub tags: &'static [Tag],
}

macro_rules! define_enum {
    ($(#[$doc:meta])* $ty:ident, $name:expr, tags [$($tag:ident),*] {
        $($ident:ident = $val:expr, $vname:expr;)*
    }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $ty(pub u32);

        #[allow(missing_docs)]
        impl $ty {
            $(pub const $ident: $ty = $ty($val);)*
            /// The value/name table of this enumeration.
            pub const TABLE: &'static NameTable = &{
                const E: &[(u32, &str)] = &[$(($val, $vname)),*];
                NameTable::new($name, E)
            };
            /// The tags that carry this enumeration.
            pub const TAGS: &'static [Tag] = &[$(Tag::$tag),*];

            /// The specification name of this value, if known.
            pub fn name(self) -> Option<&'static str> {
                Self::TABLE.name_of(self.0)
            }
            /// Parses a value from its name (any spacing).
            pub fn from_name(name: &str) -> Option<Self> {
                Self::TABLE.value_of(name).map($ty)
            }
        }

        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{n}"),
                    None => write!(f, "{}(0x{:08X})", stringify!($ty), self.0),
                }
            }
        }
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(self, f)
            }
        }
        impl From<u32> for $ty {
            fn from(v: u32) -> Self { $ty(v) }
        }
        impl crate::codec::Field for $ty {
            fn decode(item: &crate::ttlv::Ttlv, _: crate::codec::Ctx) -> crate::codec::Result<Self> {
                item.as_enum().map($ty)
            }
            fn encode(&self, tag: Tag, _: crate::codec::Ctx) -> crate::ttlv::Ttlv {
                crate::ttlv::Ttlv::enumeration(tag, self.0)
            }
        }
        impl crate::codec::Single for $ty {}
        impl From<$ty> for u32 {
            fn from(v: $ty) -> u32 { v.0 }
        }
    };
}

macro_rules! define_mask {
    ($(#[$doc:meta])* $ty:ident, $name:expr, tags [$($tag:ident),*] {
        $($ident:ident = $val:expr, $vname:expr;)*
    }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $ty(pub u32);

        #[allow(missing_docs)]
        impl $ty {
            $(pub const $ident: $ty = $ty($val);)*
            /// The bit/name table of this mask.
            pub const TABLE: &'static NameTable = &{
                const E: &[(u32, &str)] = &[$(($val, $vname)),*];
                NameTable::new($name, E)
            };
            /// The tags that carry this mask.
            pub const TAGS: &'static [Tag] = &[$(Tag::$tag),*];

            /// Whether every bit of `other` is set in `self`.
            pub fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
        }
        impl crate::codec::Field for $ty {
            fn decode(item: &crate::ttlv::Ttlv, _: crate::codec::Ctx) -> crate::codec::Result<Self> {
                item.as_int().map(|v| $ty(v as u32))
            }
            fn encode(&self, tag: Tag, _: crate::codec::Ctx) -> crate::ttlv::Ttlv {
                crate::ttlv::Ttlv::int(tag, self.0 as i32)
            }
        }
        impl crate::codec::Single for $ty {}
        impl ::std::ops::BitOr for $ty {
            type Output = $ty;
            fn bitor(self, o: $ty) -> $ty { $ty(self.0 | o.0) }
        }
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&mask_to_names(Self::TABLE, self.0, "|"))
            }
        }
    };
}

/// Renders mask bits as names joined by `sep`; unknown bits as hex.
pub fn mask_to_names(table: &NameTable, bits: u32, sep: &str) -> String {
    let mut parts = Vec::new();
    let mut rest = bits;
    for (v, n) in table.entries {
        if *v != 0 && bits & v == *v {
            parts.push((*n).to_string());
            rest &= !v;
        }
    }
    if rest != 0 || parts.is_empty() {
        parts.push(format!("0x{rest:08X}"));
    }
    parts.join(sep)
}

/// Parses mask names separated by spaces or `|` (the XML encoding writes
/// `"Decrypt Encrypt"` with the names' own spaces removed), or hex.
pub fn mask_from_names(table: &NameTable, text: &str) -> Option<u32> {
    let mut bits = 0u32;
    let mut any = false;
    for word in text
        .split(|c: char| c == '|' || c.is_whitespace())
        .filter(|w| !w.is_empty())
    {
        any = true;
        if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
            bits |= u32::from_str_radix(hex, 16).ok()?;
        } else {
            bits |= table.value_of(word)?;
        }
    }
    any.then_some(bits)
}

include!("generated.rs");

/// Every enumeration table, for generic encodings that only know an item's tag.
pub fn enum_for_tag(tag: Tag) -> Option<&'static NameTable> {
    static MAP: OnceLock<HashMap<Tag, &'static NameTable>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut m = HashMap::new();
        for def in all_enums() {
            for t in def.tags {
                m.entry(*t).or_insert(def.table);
            }
        }
        m
    })
    .get(&tag)
    .copied()
}

/// The mask table for a tag whose Integer value is a bit mask.
pub fn mask_for_tag(tag: Tag) -> Option<&'static NameTable> {
    [
        CryptographicUsageMask::TAGS,
        StorageStatusMask::TAGS,
        ProtectionStorageMask::TAGS,
    ]
    .iter()
    .zip([
        CryptographicUsageMask::TABLE,
        StorageStatusMask::TABLE,
        ProtectionStorageMask::TABLE,
    ])
    .find(|(tags, _)| tags.contains(&tag))
    .map(|(_, t)| t)
}
