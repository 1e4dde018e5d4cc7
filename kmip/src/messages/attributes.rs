//! Attributes: the 1.x Attribute (name, index, value) and Template-Attribute
//! model, and the 2.x Attributes structure with Vendor Attributes, behind one
//! typed [`Attribute`].
//!
//! An attribute's value type is selected by its name ([`expected_type`]);
//! custom attributes (`x-…`, `y-…`) may carry any TTLV type. In 2.x a
//! standard attribute is an item tagged with the attribute's own tag and a
//! custom one a Vendor Attribute (a structure tagged Attribute holding
//! Vendor Identification, Attribute Name and Attribute Value); [`Attribute`] converts between the two.

use crate::codec::{Ctx, Field, Result, Single};
use crate::tables::Tag;
use crate::ttlv::{Error, ErrorKind, ItemType, Ttlv, Value};

/// One attribute instance.
#[derive(Clone, PartialEq)]
pub struct Attribute {
    /// The attribute name as in KMIP 1.x (`"Cryptographic Algorithm"`, `"x-Product"`).
    pub name: String,
    /// The Attribute Index (1.x); `None` means index 0 / unspecified.
    pub index: Option<i32>,
    /// The value; structures keep their children.
    pub value: Value,
}

impl Default for Attribute {
    fn default() -> Self {
        Self {
            name: String::new(),
            index: None,
            value: Value::Structure(Vec::new()),
        }
    }
}

impl std::fmt::Debug for Attribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attribute")
            .field("name", &self.name)
            .field("index", &self.index)
            .field("value", &self.value)
            .finish()
    }
}

/// Whether `name` is a custom (client or server defined) attribute.
pub fn is_custom(name: &str) -> bool {
    name.starts_with("x-")
        || name.starts_with("y-")
        || name.starts_with("X-")
        || name.starts_with("Y-")
}

/// The item type the specification gives the value of a standard attribute.
pub fn expected_type(name: &str) -> Option<ItemType> {
    use ItemType::*;
    Some(match name {
        "Unique Identifier"
        | "Operation Policy Name"
        | "Object Group"
        | "Contact Information"
        | "Description"
        | "Comment"
        | "PKCS#12 Friendly Name" => TextString,
        "Name"
        | "Key Value Location"
        | "Certificate Identifier"
        | "Certificate Issuer"
        | "Certificate Subject"
        | "Cryptographic Parameters"
        | "Cryptographic Domain Parameters"
        | "Digest"
        | "Usage Limits"
        | "Revocation Reason"
        | "Link"
        | "Application Specific Information"
        | "X.509 Certificate Identifier"
        | "X.509 Certificate Subject"
        | "X.509 Certificate Issuer"
        | "Alternative Name"
        | "Random Number Generator" => Structure,
        "Object Type"
        | "Cryptographic Algorithm"
        | "Certificate Type"
        | "State"
        | "Digital Signature Algorithm"
        | "Key Format Type" => Enumeration,
        "Cryptographic Length" | "Certificate Length" | "Cryptographic Usage Mask" => Integer,
        "Lease Time" => Interval,
        "Initial Date"
        | "Activation Date"
        | "Process Start Date"
        | "Protect Stop Date"
        | "Deactivation Date"
        | "Destroy Date"
        | "Compromise Occurrence Date"
        | "Compromise Date"
        | "Archive Date"
        | "Last Change Date"
        | "Original Creation Date" => DateTime,
        "Fresh" | "Key Value Present" | "Sensitive" | "Always Sensitive" | "Extractable"
        | "Never Extractable" => Boolean,
        _ => return None,
    })
}

fn check_type(name: &str, value: &Value) -> Result<()> {
    if let Some(t) = expected_type(name) {
        if value.item_type() != t {
            return Err(Error::new(ErrorKind::WrongType {
                expected: t,
                found: value.item_type(),
            })
            .within(Tag::ATTRIBUTE_VALUE));
        }
    }
    Ok(())
}

impl Attribute {
    /// A new attribute with index 0.
    pub fn new(name: impl Into<String>, value: Value) -> Self {
        Self {
            name: name.into(),
            index: None,
            value,
        }
    }

    /// The Text String value, if it is one.
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Value::TextString(s) => Some(s),
            _ => None,
        }
    }

    /// The Enumeration value, if it is one.
    pub fn enumeration(&self) -> Option<u32> {
        match self.value {
            Value::Enumeration(v) => Some(v),
            _ => None,
        }
    }

    /// The Integer value, if it is one.
    pub fn integer(&self) -> Option<i32> {
        match self.value {
            Value::Integer(v) => Some(v),
            _ => None,
        }
    }

    /// The Date-Time value, if it is one.
    pub fn date_time(&self) -> Option<i64> {
        match self.value {
            Value::DateTime(v) => Some(v),
            _ => None,
        }
    }

    /// The 2.x item tag of a standard attribute.
    pub fn tag_2x(&self) -> Option<Tag> {
        if is_custom(&self.name) {
            return None;
        }
        Tag::from_name(&self.name)
    }

    /// Decodes a 1.x `Attribute` structure.
    pub fn decode_1x(item: &Ttlv) -> Result<Self> {
        let mut name = None;
        let mut index = None;
        let mut value = None;
        for c in item.children()? {
            match c.tag {
                Tag::ATTRIBUTE_NAME if name.is_none() => name = Some(c.as_text()?.to_owned()),
                Tag::ATTRIBUTE_INDEX if index.is_none() => index = Some(c.as_int()?),
                Tag::ATTRIBUTE_VALUE if value.is_none() => value = Some(c.value.clone()),
                t => return Err(Error::new(ErrorKind::Unexpected(t)).within(item.tag)),
            }
        }
        let name = name.ok_or_else(|| Error::missing(Tag::ATTRIBUTE_NAME).within(item.tag))?;
        // The value may be absent in requests that only name an attribute
        // (Delete Attribute 1.x); keep an empty structure then.
        let value = value.unwrap_or(Value::Structure(Vec::new()));
        if !matches!(&value, Value::Structure(c) if c.is_empty()) {
            check_type(&name, &value).map_err(|e| e.within(item.tag))?;
        }
        Ok(Self { name, index, value })
    }

    /// Encodes as a 1.x `Attribute` structure.
    pub fn encode_1x(&self, tag: Tag) -> Ttlv {
        let mut c = vec![Ttlv::text(Tag::ATTRIBUTE_NAME, self.name.clone())];
        if let Some(i) = self.index {
            c.push(Ttlv::int(Tag::ATTRIBUTE_INDEX, i));
        }
        c.push(Ttlv::new(Tag::ATTRIBUTE_VALUE, self.value.clone()));
        Ttlv::structure(tag, c)
    }

    /// Decodes one item of a 2.x Attributes structure.
    pub fn decode_2x(item: &Ttlv) -> Result<Self> {
        if item.tag == Tag::ATTRIBUTE {
            let vendor = item.required(Tag::VENDOR_IDENTIFICATION)?.as_text()?;
            let name = item.required(Tag::ATTRIBUTE_NAME)?.as_text()?;
            let value = item.required(Tag::ATTRIBUTE_VALUE)?.value.clone();
            let name = if vendor == "x" || vendor == "y" {
                format!("{vendor}-{name}")
            } else {
                format!("{vendor}:{name}")
            };
            return Ok(Self {
                name,
                index: None,
                value,
            });
        }
        let name = item.tag.name().ok_or_else(|| {
            Error::new(ErrorKind::InvalidValue(format!(
                "unknown attribute tag {}",
                item.tag
            )))
        })?;
        check_type(name, &item.value)?;
        Ok(Self {
            name: name.to_owned(),
            index: None,
            value: item.value.clone(),
        })
    }

    /// Encodes as one item of a 2.x Attributes structure.
    pub fn encode_2x(&self) -> Ttlv {
        match self.tag_2x() {
            Some(tag) => Ttlv::new(tag, self.value.clone()),
            None => {
                let (vendor, name) = match self.name.split_once('-') {
                    Some((v, n)) if is_custom(&self.name) => (v, n),
                    _ => self.name.split_once(':').unwrap_or(("x", &self.name)),
                };
                Ttlv::structure(
                    Tag::ATTRIBUTE,
                    vec![
                        Ttlv::text(Tag::VENDOR_IDENTIFICATION, vendor),
                        Ttlv::text(Tag::ATTRIBUTE_NAME, name),
                        Ttlv::new(Tag::ATTRIBUTE_VALUE, self.value.clone()),
                    ],
                )
            }
        }
    }
}

/// `Attribute` in a 1.x message; in a 2.x message it stands for one item of
/// an Attributes structure, so typed payloads can keep one field.
impl Field for Attribute {
    fn decode(item: &Ttlv, ctx: Ctx) -> Result<Self> {
        let vendor = item.tag == Tag::ATTRIBUTE && item.child(Tag::VENDOR_IDENTIFICATION).is_some();
        if !ctx.version.is_2x() || (item.tag == Tag::ATTRIBUTE && !vendor) {
            Self::decode_1x(item)
        } else {
            Self::decode_2x(item)
        }
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        self.encode_1x(tag)
    }
}
impl Single for Attribute {}

/// The 2.x Attributes structure (also used, retagged, for Common/Private/
/// Public Key Attributes).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes(pub Vec<Attribute>);

impl Field for Attributes {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        item.children()?
            .iter()
            .map(|c| Attribute::decode_2x(c).map_err(|e| e.within(item.tag)))
            .collect::<Result<Vec<_>>>()
            .map(Attributes)
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv::structure(tag, self.0.iter().map(Attribute::encode_2x).collect())
    }
}
impl Single for Attributes {}

crate::kmip_struct! {
    /// The 1.x Template-Attribute (also Common/Private/Public Key Template-Attribute).
    pub struct TemplateAttribute {
        /// Template names (deprecated in 1.3).
        names: Vec<Name> = NAME,
        /// Attributes.
        attributes: Vec<Attribute> = ATTRIBUTE,
    }
}

crate::kmip_struct! {
    /// The Name attribute's value.
    pub struct Name {
        /// The name.
        name_value: String = NAME_VALUE,
        /// Uninterpreted Text String or URI.
        name_type: crate::tables::NameType = NAME_TYPE,
    }
}

crate::kmip_struct! {
    /// The Key Value Location attribute's value (1.2+): where the Key Value
    /// of an object registered without one is kept.
    pub struct KeyValueLocation {
        /// The location: an HSM label, a PKCS#11 URI, ...
        key_value_location_value: String = KEY_VALUE_LOCATION_VALUE,
        /// Uninterpreted Text String or URI.
        key_value_location_type: crate::tables::KeyValueLocationType = KEY_VALUE_LOCATION_TYPE,
    }
}

crate::kmip_struct! {
    /// The Link attribute's value.
    pub struct Link {
        /// The kind of link.
        link_type: crate::tables::LinkType = LINK_TYPE,
        /// The linked object.
        linked_object_identifier: String = LINKED_OBJECT_IDENTIFIER,
    }
}

crate::kmip_struct! {
    /// The Revocation Reason attribute's value and Revoke's argument.
    pub struct RevocationReason {
        /// The reason code.
        revocation_reason_code: crate::tables::RevocationReasonCode = REVOCATION_REASON_CODE,
        /// Free text.
        revocation_message: Option<String> = REVOCATION_MESSAGE,
    }
}

crate::kmip_struct! {
    /// An Attribute Reference (2.x Get Attributes selector for vendor attributes).
    pub struct AttributeReference {
        /// Vendor.
        vendor_identification: String = VENDOR_IDENTIFICATION,
        /// Name.
        attribute_name: String = ATTRIBUTE_NAME,
    }
}

/// Converts a typed structure to an attribute value.
pub fn struct_value<T: Field>(v: &T, ctx: Ctx) -> Value {
    v.encode(Tag::ATTRIBUTE_VALUE, ctx).value
}

/// Reads a typed structure out of an attribute value.
pub fn from_value<T: Field>(v: &Value, ctx: Ctx) -> Result<T> {
    T::decode(&Ttlv::new(Tag::ATTRIBUTE_VALUE, v.clone()), ctx)
}
