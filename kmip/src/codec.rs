//! Typed decoding and encoding over the TTLV tree.
//!
//! KMIP decides a field's meaning from its tag and its siblings, so typed
//! structures are read from a decoded [`Ttlv`] tree rather than through serde.
//! [`Field`] converts one item; [`kmip_struct!`] declares a structure whose
//! fields are read in any order (strictly: an unknown tag is an error) and
//! written in declaration order, which is the specification's order.

use crate::tables::Tag;
use crate::ttlv::{Error, ErrorKind, ItemType, Ttlv, Value};

/// The protocol version a message is decoded and encoded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    /// Major.
    pub major: i32,
    /// Minor.
    pub minor: i32,
}

impl ProtocolVersion {
    /// KMIP 1.0.
    pub const V1_0: Self = Self { major: 1, minor: 0 };
    /// KMIP 1.1.
    pub const V1_1: Self = Self { major: 1, minor: 1 };
    /// KMIP 1.2.
    pub const V1_2: Self = Self { major: 1, minor: 2 };
    /// KMIP 1.3.
    pub const V1_3: Self = Self { major: 1, minor: 3 };
    /// KMIP 1.4.
    pub const V1_4: Self = Self { major: 1, minor: 4 };
    /// KMIP 2.0.
    pub const V2_0: Self = Self { major: 2, minor: 0 };
    /// KMIP 2.1.
    pub const V2_1: Self = Self { major: 2, minor: 1 };
    /// Every version this codec speaks, newest first (Discover Versions order).
    pub const SUPPORTED: [Self; 7] = [
        Self::V2_1,
        Self::V2_0,
        Self::V1_4,
        Self::V1_3,
        Self::V1_2,
        Self::V1_1,
        Self::V1_0,
    ];

    /// Whether messages of this version use the KMIP 2.x structures.
    pub fn is_2x(self) -> bool {
        self.major >= 2
    }
}

impl Default for ProtocolVersion {
    fn default() -> Self {
        Self::V1_0
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Context of a conversion: the message's protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    /// The protocol version.
    pub version: ProtocolVersion,
}

impl Ctx {
    /// A context for `version`.
    pub fn new(version: ProtocolVersion) -> Self {
        Self { version }
    }
}

/// Result of typed decoding.
pub type Result<T> = std::result::Result<T, Error>;

/// One typed field: decoded from an item, encoded into an item of a tag.
pub trait Field: Sized {
    /// Decodes from `item`.
    fn decode(item: &Ttlv, ctx: Ctx) -> Result<Self>;
    /// Encodes as an item tagged `tag`.
    fn encode(&self, tag: Tag, ctx: Ctx) -> Ttlv;
}

fn wrong(item: &Ttlv, expected: ItemType) -> Error {
    Error::new(ErrorKind::WrongType {
        expected,
        found: item.item_type(),
    })
    .within(item.tag)
}

impl Field for String {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        item.as_text().map(str::to_owned)
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv::text(tag, self.clone())
    }
}

impl Field for i32 {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        item.as_int()
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv::int(tag, *self)
    }
}

impl Field for i64 {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        item.as_long()
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv::long(tag, *self)
    }
}

impl Field for bool {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        item.as_bool()
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv::boolean(tag, *self)
    }
}

/// Bytes of a Byte String (opaque: Unique Batch Item IDs, nonces, data).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Field for Bytes {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        item.as_bytes().map(|b| Bytes(b.to_vec()))
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv::bytes(tag, self.0.clone())
    }
}

/// A Date-Time in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DateTime(pub i64);

impl Field for DateTime {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        match item.value {
            Value::DateTime(v) => Ok(DateTime(v)),
            // A 2.x Date-Time Extended read where a Date-Time is modelled.
            Value::DateTimeExtended(us) => Ok(DateTime(us.div_euclid(1_000_000))),
            _ => Err(wrong(item, ItemType::DateTime)),
        }
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv::date_time(tag, self.0)
    }
}

/// An Interval in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Interval(pub u32);

impl Field for Interval {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        item.as_interval().map(Interval)
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv::interval(tag, self.0)
    }
}

/// Any item kept as it is (vendor extensions, unmodelled structures).
impl Field for Ttlv {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        Ok(item.clone())
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv {
            tag,
            value: self.value.clone(),
        }
    }
}

/// How many times a field may occur: exactly once, at most once, any number.
pub trait Occurs: Sized {
    /// Starts empty.
    fn empty() -> Option<Self>;
    /// Absorbs one occurrence.
    fn absorb(slot: &mut Option<Self>, item: &Ttlv, ctx: Ctx) -> Result<()>;
    /// Finishes; `tag` names a missing required field.
    fn finish(slot: Option<Self>, tag: Tag) -> Result<Self>;
    /// Appends the items of this field.
    fn emit(&self, tag: Tag, ctx: Ctx, out: &mut Vec<Ttlv>);
}

/// Marker for single-valued field types, so `Option` and `Vec` can wrap them.
pub trait Single: Field {}

impl<T: Single> Occurs for T {
    fn empty() -> Option<Self> {
        None
    }
    fn absorb(slot: &mut Option<Self>, item: &Ttlv, ctx: Ctx) -> Result<()> {
        if slot.is_some() {
            return Err(Error::new(ErrorKind::Unexpected(item.tag)));
        }
        *slot = Some(T::decode(item, ctx)?);
        Ok(())
    }
    fn finish(slot: Option<Self>, tag: Tag) -> Result<Self> {
        slot.ok_or_else(|| Error::missing(tag))
    }
    fn emit(&self, tag: Tag, ctx: Ctx, out: &mut Vec<Ttlv>) {
        out.push(self.encode(tag, ctx));
    }
}

impl<T: Single> Occurs for Option<T> {
    fn empty() -> Option<Self> {
        Some(None)
    }
    fn absorb(slot: &mut Option<Self>, item: &Ttlv, ctx: Ctx) -> Result<()> {
        match slot {
            Some(Some(_)) => Err(Error::new(ErrorKind::Unexpected(item.tag))),
            _ => {
                *slot = Some(Some(T::decode(item, ctx)?));
                Ok(())
            }
        }
    }
    fn finish(slot: Option<Self>, _: Tag) -> Result<Self> {
        Ok(slot.flatten())
    }
    fn emit(&self, tag: Tag, ctx: Ctx, out: &mut Vec<Ttlv>) {
        if let Some(v) = self {
            out.push(v.encode(tag, ctx));
        }
    }
}

impl<T: Single> Occurs for Vec<T> {
    fn empty() -> Option<Self> {
        Some(Vec::new())
    }
    fn absorb(slot: &mut Option<Self>, item: &Ttlv, ctx: Ctx) -> Result<()> {
        slot.get_or_insert_with(Vec::new)
            .push(T::decode(item, ctx)?);
        Ok(())
    }
    fn finish(slot: Option<Self>, _: Tag) -> Result<Self> {
        Ok(slot.unwrap_or_default())
    }
    fn emit(&self, tag: Tag, ctx: Ctx, out: &mut Vec<Ttlv>) {
        for v in self {
            out.push(v.encode(tag, ctx));
        }
    }
}

impl Single for String {}
impl Single for i32 {}
impl Single for i64 {}
impl Single for bool {}
impl Single for Bytes {}
impl Single for DateTime {}
impl Single for Interval {}
impl Single for Ttlv {}

/// Declares a KMIP structure with typed fields. Each field names its tag;
/// its Rust type decides cardinality (`T`, `Option<T>`, `Vec<T>`).
#[macro_export]
macro_rules! kmip_struct {
    ($(#[$doc:meta])* pub struct $name:ident {
        $($(#[$fdoc:meta])* $field:ident : $ty:ty = $tag:ident,)*
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl $crate::codec::Field for $name {
            fn decode(item: &$crate::ttlv::Ttlv, ctx: $crate::codec::Ctx)
                -> $crate::codec::Result<Self> {
                #[allow(unused_imports)]
                use $crate::codec::Occurs;
                $(let mut $field = <$ty as Occurs>::empty();)*
                for child in item.children()? {
                    match child.tag {
                        $($crate::tables::Tag::$tag => {
                            <$ty as Occurs>::absorb(&mut $field, child, ctx)
                                .map_err(|e| e.within(item.tag))?
                        })*
                        other => {
                            return Err($crate::ttlv::Error::new(
                                $crate::ttlv::ErrorKind::Unexpected(other),
                            ).within(item.tag))
                        }
                    }
                }
                Ok(Self {
                    $($field: <$ty as Occurs>::finish($field, $crate::tables::Tag::$tag)
                        .map_err(|e| e.within(item.tag))?,)*
                })
            }

            fn encode(&self, tag: $crate::tables::Tag, ctx: $crate::codec::Ctx)
                -> $crate::ttlv::Ttlv {
                #[allow(unused_imports)]
                use $crate::codec::Occurs;
                #[allow(unused_mut)]
                let mut out = Vec::new();
                $(self.$field.emit($crate::tables::Tag::$tag, ctx, &mut out);)*
                $crate::ttlv::Ttlv::structure(tag, out)
            }
        }
        impl $crate::codec::Single for $name {}
    };
}
