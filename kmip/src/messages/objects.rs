//! Managed objects: Symmetric Key, Secret Data, Opaque Object, Public and
//! Private Key, Certificate, Split Key, Template; the Key Block with its Key
//! Value and Key Wrapping Data.
//!
//! Key Material is kept as an item: a Byte String for Raw, Opaque, PKCS#1,
//! PKCS#8, X.509 and ECPrivateKey formats, a structure for the Transparent
//! formats. Its `Debug` never shows it.

use super::attributes::{Attribute, Attributes};
use crate::codec::{Bytes, Ctx, Field, Result, Single};
use crate::tables::{
    BlockCipherMode, CertificateType, CryptographicAlgorithm, DigitalSignatureAlgorithm,
    EncodingOption, HashingAlgorithm, KeyCompressionType, KeyFormatType, KeyRoleType,
    MaskGenerator, ObjectType, OpaqueDataType, PaddingMethod, SecretDataType, SplitKeyMethod, Tag,
    WrappingMethod,
};
use crate::ttlv::{Error, ErrorKind, Ttlv, Value};

/// The Key Value of a Key Block: in clear, or wrapped (a Byte String).
#[derive(Clone, PartialEq)]
pub enum KeyValue {
    /// Key Material and the attributes carried with it.
    Plain {
        /// Key Material: a Byte String or a Transparent structure.
        key_material: Ttlv,
        /// Attributes in the Key Value (1.x Attribute*, 2.x Attributes).
        attributes: Vec<Attribute>,
    },
    /// The encrypted Key Value.
    Wrapped(Bytes),
}

impl std::fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyValue::Plain { attributes, .. } => {
                write!(
                    f,
                    "KeyValue::Plain(<redacted>, {} attributes)",
                    attributes.len()
                )
            }
            KeyValue::Wrapped(b) => write!(f, "KeyValue::Wrapped({} bytes)", b.0.len()),
        }
    }
}

impl Default for KeyValue {
    fn default() -> Self {
        KeyValue::Wrapped(Bytes::default())
    }
}

impl KeyValue {
    /// Raw key bytes, when the Key Material is a Byte String.
    pub fn key_bytes(&self) -> Option<&[u8]> {
        match self {
            KeyValue::Plain { key_material, .. } => key_material.as_bytes().ok(),
            KeyValue::Wrapped(_) => None,
        }
    }
}

impl Field for KeyValue {
    fn decode(item: &Ttlv, ctx: Ctx) -> Result<Self> {
        match &item.value {
            Value::ByteString(b) => Ok(KeyValue::Wrapped(Bytes(b.clone()))),
            Value::Structure(children) => {
                let mut key_material = None;
                let mut attributes = Vec::new();
                for c in children {
                    match c.tag {
                        Tag::KEY_MATERIAL if key_material.is_none() => {
                            key_material = Some(c.clone())
                        }
                        Tag::ATTRIBUTE => attributes.push(Attribute::decode_1x(c)?),
                        Tag::ATTRIBUTES => attributes.extend(Attributes::decode(c, ctx)?.0),
                        t => return Err(Error::new(ErrorKind::Unexpected(t)).within(item.tag)),
                    }
                }
                let key_material = key_material
                    .ok_or_else(|| Error::missing(Tag::KEY_MATERIAL).within(item.tag))?;
                Ok(KeyValue::Plain {
                    key_material,
                    attributes,
                })
            }
            _ => {
                Err(Error::invalid("Key Value must be a structure or byte string").within(item.tag))
            }
        }
    }
    fn encode(&self, tag: Tag, ctx: Ctx) -> Ttlv {
        match self {
            KeyValue::Wrapped(b) => Ttlv::bytes(tag, b.0.clone()),
            KeyValue::Plain {
                key_material,
                attributes,
            } => {
                let mut c = vec![key_material.clone()];
                if ctx.version.is_2x() {
                    if !attributes.is_empty() {
                        c.push(Attributes(attributes.clone()).encode(Tag::ATTRIBUTES, ctx));
                    }
                } else {
                    c.extend(attributes.iter().map(|a| a.encode_1x(Tag::ATTRIBUTE)));
                }
                Ttlv::structure(tag, c)
            }
        }
    }
}
impl Single for KeyValue {}

crate::kmip_struct! {
    /// Cryptographic Parameters.
    pub struct CryptographicParameters {
        /// Block cipher mode.
        block_cipher_mode: Option<BlockCipherMode> = BLOCK_CIPHER_MODE,
        /// Padding.
        padding_method: Option<PaddingMethod> = PADDING_METHOD,
        /// Hash.
        hashing_algorithm: Option<HashingAlgorithm> = HASHING_ALGORITHM,
        /// Key role.
        key_role_type: Option<KeyRoleType> = KEY_ROLE_TYPE,
        /// Signature algorithm (1.2+).
        digital_signature_algorithm: Option<DigitalSignatureAlgorithm> = DIGITAL_SIGNATURE_ALGORITHM,
        /// Algorithm (1.2+).
        cryptographic_algorithm: Option<CryptographicAlgorithm> = CRYPTOGRAPHIC_ALGORITHM,
        /// Random IV (1.2+).
        random_iv: Option<bool> = RANDOM_IV,
        /// IV length (1.2+).
        iv_length: Option<i32> = IV_LENGTH,
        /// Tag length (1.2+).
        tag_length: Option<i32> = TAG_LENGTH,
        /// Fixed field length (1.2+).
        fixed_field_length: Option<i32> = FIXED_FIELD_LENGTH,
        /// Invocation field length (1.2+).
        invocation_field_length: Option<i32> = INVOCATION_FIELD_LENGTH,
        /// Counter length (1.2+).
        counter_length: Option<i32> = COUNTER_LENGTH,
        /// Initial counter value (1.2+).
        initial_counter_value: Option<i32> = INITIAL_COUNTER_VALUE,
        /// Salt length (1.4).
        salt_length: Option<i32> = SALT_LENGTH,
        /// Mask generator (1.4).
        mask_generator: Option<MaskGenerator> = MASK_GENERATOR,
        /// Mask generator hash (1.4).
        mask_generator_hashing_algorithm: Option<HashingAlgorithm> = MASK_GENERATOR_HASHING_ALGORITHM,
        /// P source (1.4).
        p_source: Option<Bytes> = P_SOURCE,
        /// Trailer field (1.4).
        trailer_field: Option<i32> = TRAILER_FIELD,
    }
}

crate::kmip_struct! {
    /// Encryption Key Information (key wrapping).
    pub struct EncryptionKeyInformation {
        /// The wrapping key.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Parameters.
        cryptographic_parameters: Option<CryptographicParameters> = CRYPTOGRAPHIC_PARAMETERS,
    }
}

crate::kmip_struct! {
    /// MAC/Signature Key Information (key wrapping).
    pub struct MacSignatureKeyInformation {
        /// The MAC or signing key.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Parameters.
        cryptographic_parameters: Option<CryptographicParameters> = CRYPTOGRAPHIC_PARAMETERS,
    }
}

crate::kmip_struct! {
    /// Key Wrapping Data in a Key Block.
    pub struct KeyWrappingData {
        /// Method.
        wrapping_method: WrappingMethod = WRAPPING_METHOD,
        /// Encryption key.
        encryption_key_information: Option<EncryptionKeyInformation> = ENCRYPTION_KEY_INFORMATION,
        /// MAC/signature key.
        mac_signature_key_information: Option<MacSignatureKeyInformation> = MAC_SIGNATURE_KEY_INFORMATION,
        /// MAC or signature.
        mac_signature: Option<Bytes> = MAC_SIGNATURE,
        /// IV/counter/nonce.
        iv_counter_nonce: Option<Bytes> = IV_COUNTER_NONCE,
        /// Encoding (1.1+).
        encoding_option: Option<EncodingOption> = ENCODING_OPTION,
    }
}

crate::kmip_struct! {
    /// Key Wrapping Specification (Get, Export).
    pub struct KeyWrappingSpecification {
        /// Method.
        wrapping_method: WrappingMethod = WRAPPING_METHOD,
        /// Encryption key.
        encryption_key_information: Option<EncryptionKeyInformation> = ENCRYPTION_KEY_INFORMATION,
        /// MAC/signature key.
        mac_signature_key_information: Option<MacSignatureKeyInformation> = MAC_SIGNATURE_KEY_INFORMATION,
        /// Attributes to wrap with the key.
        attribute_names: Vec<String> = ATTRIBUTE_NAME,
        /// Encoding (1.1+).
        encoding_option: Option<EncodingOption> = ENCODING_OPTION,
    }
}

crate::kmip_struct! {
    /// Key Block.
    pub struct KeyBlock {
        /// Format of the Key Material.
        key_format_type: KeyFormatType = KEY_FORMAT_TYPE,
        /// Compression (EC).
        key_compression_type: Option<KeyCompressionType> = KEY_COMPRESSION_TYPE,
        /// The value.
        key_value: Option<KeyValue> = KEY_VALUE,
        /// Algorithm.
        cryptographic_algorithm: Option<CryptographicAlgorithm> = CRYPTOGRAPHIC_ALGORITHM,
        /// Length in bits.
        cryptographic_length: Option<i32> = CRYPTOGRAPHIC_LENGTH,
        /// Wrapping, when the Key Value is wrapped.
        key_wrapping_data: Option<KeyWrappingData> = KEY_WRAPPING_DATA,
    }
}

crate::kmip_struct! {
    /// Symmetric Key.
    pub struct SymmetricKey {
        /// Key Block.
        key_block: KeyBlock = KEY_BLOCK,
    }
}

crate::kmip_struct! {
    /// Public Key.
    pub struct PublicKey {
        /// Key Block.
        key_block: KeyBlock = KEY_BLOCK,
    }
}

crate::kmip_struct! {
    /// Private Key.
    pub struct PrivateKey {
        /// Key Block.
        key_block: KeyBlock = KEY_BLOCK,
    }
}

crate::kmip_struct! {
    /// Secret Data.
    pub struct SecretData {
        /// Kind of secret.
        secret_data_type: SecretDataType = SECRET_DATA_TYPE,
        /// Key Block.
        key_block: KeyBlock = KEY_BLOCK,
    }
}

crate::kmip_struct! {
    /// Split Key.
    pub struct SplitKey {
        /// Parts.
        split_key_parts: i32 = SPLIT_KEY_PARTS,
        /// This part.
        key_part_identifier: i32 = KEY_PART_IDENTIFIER,
        /// Threshold.
        split_key_threshold: i32 = SPLIT_KEY_THRESHOLD,
        /// Method.
        split_key_method: SplitKeyMethod = SPLIT_KEY_METHOD,
        /// Prime field size.
        prime_field_size: Option<crate::ttlv::BigInt> = PRIME_FIELD_SIZE,
        /// Key Block.
        key_block: KeyBlock = KEY_BLOCK,
    }
}

impl Field for crate::ttlv::BigInt {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        match &item.value {
            Value::BigInteger(b) => Ok(b.clone()),
            v => Err(Error::new(ErrorKind::WrongType {
                expected: crate::ttlv::ItemType::BigInteger,
                found: v.item_type(),
            })
            .within(item.tag)),
        }
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv::new(tag, Value::BigInteger(self.clone()))
    }
}
impl Single for crate::ttlv::BigInt {}

crate::kmip_struct! {
    /// Certificate.
    pub struct Certificate {
        /// X.509 or PGP.
        certificate_type: CertificateType = CERTIFICATE_TYPE,
        /// DER bytes.
        certificate_value: Bytes = CERTIFICATE_VALUE,
    }
}

crate::kmip_struct! {
    /// Opaque Object.
    pub struct OpaqueObject {
        /// Kind.
        opaque_data_type: OpaqueDataType = OPAQUE_DATA_TYPE,
        /// Bytes.
        opaque_data_value: Bytes = OPAQUE_DATA_VALUE,
    }
}

crate::kmip_struct! {
    /// PGP Key (1.2+).
    pub struct PgpKey {
        /// PGP key version.
        pgp_key_version: i32 = PGP_KEY_VERSION,
        /// Key Block.
        key_block: KeyBlock = KEY_BLOCK,
    }
}

crate::kmip_struct! {
    /// Template (1.x, deprecated in 1.3).
    pub struct Template {
        /// Attributes.
        attributes: Vec<Attribute> = ATTRIBUTE,
    }
}

/// Any managed object, selected by Object Type.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// Symmetric Key.
    SymmetricKey(SymmetricKey),
    /// Public Key.
    PublicKey(PublicKey),
    /// Private Key.
    PrivateKey(PrivateKey),
    /// Secret Data.
    SecretData(SecretData),
    /// Split Key.
    SplitKey(SplitKey),
    /// Certificate.
    Certificate(Certificate),
    /// Opaque Object.
    OpaqueObject(OpaqueObject),
    /// Template.
    Template(Template),
    /// PGP Key.
    PgpKey(PgpKey),
}

impl Object {
    /// The Object Type of this object.
    pub fn object_type(&self) -> ObjectType {
        match self {
            Object::SymmetricKey(_) => ObjectType::SYMMETRIC_KEY,
            Object::PublicKey(_) => ObjectType::PUBLIC_KEY,
            Object::PrivateKey(_) => ObjectType::PRIVATE_KEY,
            Object::SecretData(_) => ObjectType::SECRET_DATA,
            Object::SplitKey(_) => ObjectType::SPLIT_KEY,
            Object::Certificate(_) => ObjectType::CERTIFICATE,
            Object::OpaqueObject(_) => ObjectType::OPAQUE_OBJECT,
            Object::Template(_) => ObjectType::TEMPLATE,
            Object::PgpKey(_) => ObjectType::PGP_KEY,
        }
    }

    /// The tag of this object in a payload.
    pub fn tag(&self) -> Tag {
        object_tag(self.object_type()).unwrap_or(Tag::SYMMETRIC_KEY)
    }

    /// The Key Block, for key-like objects.
    pub fn key_block(&self) -> Option<&KeyBlock> {
        match self {
            Object::SymmetricKey(k) => Some(&k.key_block),
            Object::PublicKey(k) => Some(&k.key_block),
            Object::PrivateKey(k) => Some(&k.key_block),
            Object::SecretData(k) => Some(&k.key_block),
            Object::SplitKey(k) => Some(&k.key_block),
            Object::PgpKey(k) => Some(&k.key_block),
            _ => None,
        }
    }

    /// Mutable Key Block, for key-like objects.
    pub fn key_block_mut(&mut self) -> Option<&mut KeyBlock> {
        match self {
            Object::SymmetricKey(k) => Some(&mut k.key_block),
            Object::PublicKey(k) => Some(&mut k.key_block),
            Object::PrivateKey(k) => Some(&mut k.key_block),
            Object::SecretData(k) => Some(&mut k.key_block),
            Object::SplitKey(k) => Some(&mut k.key_block),
            Object::PgpKey(k) => Some(&mut k.key_block),
            _ => None,
        }
    }

    /// Decodes the object item of `object_type`.
    pub fn decode(object_type: ObjectType, item: &Ttlv, ctx: Ctx) -> Result<Self> {
        Ok(match object_type {
            ObjectType::SYMMETRIC_KEY => Object::SymmetricKey(Field::decode(item, ctx)?),
            ObjectType::PUBLIC_KEY => Object::PublicKey(Field::decode(item, ctx)?),
            ObjectType::PRIVATE_KEY => Object::PrivateKey(Field::decode(item, ctx)?),
            ObjectType::SECRET_DATA => Object::SecretData(Field::decode(item, ctx)?),
            ObjectType::SPLIT_KEY => Object::SplitKey(Field::decode(item, ctx)?),
            ObjectType::CERTIFICATE => Object::Certificate(Field::decode(item, ctx)?),
            ObjectType::OPAQUE_OBJECT => Object::OpaqueObject(Field::decode(item, ctx)?),
            ObjectType::TEMPLATE => Object::Template(Field::decode(item, ctx)?),
            ObjectType::PGP_KEY => Object::PgpKey(Field::decode(item, ctx)?),
            t => {
                return Err(
                    Error::new(ErrorKind::Unsupported(format!("object type {t}"))).within(item.tag),
                )
            }
        })
    }

    /// Encodes under its own tag.
    pub fn encode(&self, ctx: Ctx) -> Ttlv {
        let tag = self.tag();
        match self {
            Object::SymmetricKey(o) => o.encode(tag, ctx),
            Object::PublicKey(o) => o.encode(tag, ctx),
            Object::PrivateKey(o) => o.encode(tag, ctx),
            Object::SecretData(o) => o.encode(tag, ctx),
            Object::SplitKey(o) => o.encode(tag, ctx),
            Object::Certificate(o) => o.encode(tag, ctx),
            Object::OpaqueObject(o) => o.encode(tag, ctx),
            Object::Template(o) => o.encode(tag, ctx),
            Object::PgpKey(o) => o.encode(tag, ctx),
        }
    }
}

/// The payload tag of each object type.
pub fn object_tag(t: ObjectType) -> Option<Tag> {
    Some(match t {
        ObjectType::SYMMETRIC_KEY => Tag::SYMMETRIC_KEY,
        ObjectType::PUBLIC_KEY => Tag::PUBLIC_KEY,
        ObjectType::PRIVATE_KEY => Tag::PRIVATE_KEY,
        ObjectType::SECRET_DATA => Tag::SECRET_DATA,
        ObjectType::SPLIT_KEY => Tag::SPLIT_KEY,
        ObjectType::CERTIFICATE => Tag::CERTIFICATE,
        ObjectType::OPAQUE_OBJECT => Tag::OPAQUE_OBJECT,
        ObjectType::TEMPLATE => Tag::TEMPLATE,
        ObjectType::PGP_KEY => Tag::PGP_KEY,
        _ => return None,
    })
}

/// The object type of a payload tag.
pub fn object_type_of_tag(tag: Tag) -> Option<ObjectType> {
    [
        ObjectType::SYMMETRIC_KEY,
        ObjectType::PUBLIC_KEY,
        ObjectType::PRIVATE_KEY,
        ObjectType::SECRET_DATA,
        ObjectType::SPLIT_KEY,
        ObjectType::CERTIFICATE,
        ObjectType::OPAQUE_OBJECT,
        ObjectType::TEMPLATE,
        ObjectType::PGP_KEY,
    ]
    .into_iter()
    .find(|t| object_tag(*t) == Some(tag))
}
