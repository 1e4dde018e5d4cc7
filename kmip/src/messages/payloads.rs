//! Request and response payloads of the operations, one typed structure
//! each, selected by the batch item's Operation.
//!
//! Fields of both protocol generations are declared side by side (1.x
//! Template-Attribute and Attribute Name, 2.x Attributes and Attribute
//! Reference); which ones a message carries follows its version. Operations
//! not modelled here travel as [`RequestPayload::Other`] and round-trip as
//! they came.

use super::attributes::{Attribute, Attributes, RevocationReason, TemplateAttribute};
use super::objects::{
    Certificate, CryptographicParameters, KeyWrappingSpecification, Object, OpaqueObject, PgpKey,
    PrivateKey, PublicKey, SecretData, SplitKey, SymmetricKey, Template,
};
use crate::codec::{Bytes, Ctx, DateTime, Field, Interval, ProtocolVersion, Result, Single};
use crate::tables::{
    CancellationResult, CryptographicUsageMask, KeyCompressionType, KeyFormatType, KeyWrapType,
    ObjectGroupMember, ObjectType, Operation, QueryFunction, SecretDataType, SplitKeyMethod,
    StorageStatusMask, Tag, ValidityIndicator,
};
use crate::ttlv::{Error, Ttlv};

impl Field for ProtocolVersion {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        let major = item.required(Tag::PROTOCOL_VERSION_MAJOR)?.as_int()?;
        let minor = item.required(Tag::PROTOCOL_VERSION_MINOR)?.as_int()?;
        if item.children()?.len() != 2 {
            return Err(Error::invalid("Protocol Version has extra fields").within(item.tag));
        }
        Ok(ProtocolVersion { major, minor })
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv::structure(
            tag,
            vec![
                Ttlv::int(Tag::PROTOCOL_VERSION_MAJOR, self.major),
                Ttlv::int(Tag::PROTOCOL_VERSION_MINOR, self.minor),
            ],
        )
    }
}
impl Single for ProtocolVersion {}

/// A 2.x New Attribute / Current Attribute: a structure holding one attribute item.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttributeHolder(pub Attribute);

impl Field for AttributeHolder {
    fn decode(item: &Ttlv, _: Ctx) -> Result<Self> {
        match item.children()? {
            [one] => Attribute::decode_2x(one)
                .map(AttributeHolder)
                .map_err(|e| e.within(item.tag)),
            _ => Err(Error::invalid("expected exactly one attribute").within(item.tag)),
        }
    }
    fn encode(&self, tag: Tag, _: Ctx) -> Ttlv {
        Ttlv::structure(tag, vec![self.0.encode_2x()])
    }
}
impl Single for AttributeHolder {}

macro_rules! object_fields {
    ($name:ident { $($extra:tt)* }) => {
        crate::kmip_struct! {
            /// Payload carrying a managed object.
            pub struct $name {
                $($extra)*
                /// Symmetric Key.
                symmetric_key: Option<SymmetricKey> = SYMMETRIC_KEY,
                /// Public Key.
                public_key: Option<PublicKey> = PUBLIC_KEY,
                /// Private Key.
                private_key: Option<PrivateKey> = PRIVATE_KEY,
                /// Split Key.
                split_key: Option<SplitKey> = SPLIT_KEY,
                /// Template.
                template: Option<Template> = TEMPLATE,
                /// Secret Data.
                secret_data: Option<SecretData> = SECRET_DATA,
                /// Opaque Object.
                opaque_object: Option<OpaqueObject> = OPAQUE_OBJECT,
                /// Certificate.
                certificate: Option<Certificate> = CERTIFICATE,
                /// PGP Key (1.2+).
                pgp_key: Option<PgpKey> = PGP_KEY,
            }
        }

        impl $name {
            /// The object carried, if exactly one is present.
            pub fn object(&self) -> Option<Object> {
                let mut all = [
                    self.symmetric_key.clone().map(Object::SymmetricKey),
                    self.public_key.clone().map(Object::PublicKey),
                    self.private_key.clone().map(Object::PrivateKey),
                    self.split_key.clone().map(Object::SplitKey),
                    self.template.clone().map(Object::Template),
                    self.secret_data.clone().map(Object::SecretData),
                    self.opaque_object.clone().map(Object::OpaqueObject),
                    self.certificate.clone().map(Object::Certificate),
                    self.pgp_key.clone().map(Object::PgpKey),
                ]
                .into_iter()
                .flatten();
                let first = all.next();
                if all.next().is_some() { None } else { first }
            }

            /// Puts `object` in its field.
            pub fn set_object(&mut self, object: Object) {
                match object {
                    Object::SymmetricKey(o) => self.symmetric_key = Some(o),
                    Object::PublicKey(o) => self.public_key = Some(o),
                    Object::PrivateKey(o) => self.private_key = Some(o),
                    Object::SplitKey(o) => self.split_key = Some(o),
                    Object::Template(o) => self.template = Some(o),
                    Object::SecretData(o) => self.secret_data = Some(o),
                    Object::OpaqueObject(o) => self.opaque_object = Some(o),
                    Object::Certificate(o) => self.certificate = Some(o),
                    Object::PgpKey(o) => self.pgp_key = Some(o),
                }
            }
        }
    };
}

crate::kmip_struct! {
    /// Discover Versions request.
    pub struct DiscoverVersionsRequest {
        /// Versions the client offers, preferred first.
        protocol_versions: Vec<ProtocolVersion> = PROTOCOL_VERSION,
    }
}
crate::kmip_struct! {
    /// Discover Versions response.
    pub struct DiscoverVersionsResponse {
        /// Versions both sides speak, the server's preference first.
        protocol_versions: Vec<ProtocolVersion> = PROTOCOL_VERSION,
    }
}
crate::kmip_struct! {
    /// Query request.
    pub struct QueryRequest {
        /// What to report.
        query_functions: Vec<QueryFunction> = QUERY_FUNCTION,
    }
}
crate::kmip_struct! {
    /// Query response.
    pub struct QueryResponse {
        /// Operations supported.
        operations: Vec<Operation> = OPERATION,
        /// Object types supported.
        object_types: Vec<ObjectType> = OBJECT_TYPE,
        /// Vendor.
        vendor_identification: Option<String> = VENDOR_IDENTIFICATION,
        /// Server information (vendor specific structure).
        server_information: Option<Ttlv> = SERVER_INFORMATION,
        /// Application namespaces.
        application_namespaces: Vec<String> = APPLICATION_NAMESPACE,
        /// Extensions (1.1+).
        extension_information: Vec<Ttlv> = EXTENSION_INFORMATION,
        /// Attestation types (1.2+).
        attestation_types: Vec<crate::tables::AttestationType> = ATTESTATION_TYPE,
        /// RNG parameters (1.3+).
        rng_parameters: Vec<Ttlv> = RNG_PARAMETERS,
        /// Profiles (1.3+).
        profile_information: Vec<Ttlv> = PROFILE_INFORMATION,
        /// Validations (1.3+).
        validation_information: Vec<Ttlv> = VALIDATION_INFORMATION,
        /// Capabilities (1.3+).
        capability_information: Vec<Ttlv> = CAPABILITY_INFORMATION,
        /// Client registration methods (1.3+).
        client_registration_methods: Vec<crate::tables::ClientRegistrationMethod> = CLIENT_REGISTRATION_METHOD,
        /// Defaults (2.0).
        defaults_information: Option<Ttlv> = DEFAULTS_INFORMATION,
        /// Protection storage masks (2.0).
        protection_storage_masks: Option<Ttlv> = PROTECTION_STORAGE_MASKS,
    }
}
crate::kmip_struct! {
    /// Create request.
    pub struct CreateRequest {
        /// What to create.
        object_type: ObjectType = OBJECT_TYPE,
        /// 1.x attributes.
        template_attribute: Option<TemplateAttribute> = TEMPLATE_ATTRIBUTE,
        /// 2.x attributes.
        attributes: Option<Attributes> = ATTRIBUTES,
        /// 2.x protection storage masks.
        protection_storage_masks: Option<Ttlv> = PROTECTION_STORAGE_MASKS,
    }
}
crate::kmip_struct! {
    /// Create response.
    pub struct CreateResponse {
        /// What was created.
        object_type: ObjectType = OBJECT_TYPE,
        /// Its identifier.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Attributes the server set implicitly (1.x).
        template_attribute: Option<TemplateAttribute> = TEMPLATE_ATTRIBUTE,
    }
}
crate::kmip_struct! {
    /// Create Key Pair request.
    pub struct CreateKeyPairRequest {
        /// 1.x common attributes.
        common_template_attribute: Option<TemplateAttribute> = COMMON_TEMPLATE_ATTRIBUTE,
        /// 1.x private key attributes.
        private_key_template_attribute: Option<TemplateAttribute> = PRIVATE_KEY_TEMPLATE_ATTRIBUTE,
        /// 1.x public key attributes.
        public_key_template_attribute: Option<TemplateAttribute> = PUBLIC_KEY_TEMPLATE_ATTRIBUTE,
        /// 2.x common attributes.
        common_attributes: Option<Attributes> = COMMON_ATTRIBUTES,
        /// 2.x private key attributes.
        private_key_attributes: Option<Attributes> = PRIVATE_KEY_ATTRIBUTES,
        /// 2.x public key attributes.
        public_key_attributes: Option<Attributes> = PUBLIC_KEY_ATTRIBUTES,
        /// 2.x masks.
        common_protection_storage_masks: Option<Ttlv> = COMMON_PROTECTION_STORAGE_MASKS,
        /// 2.x masks.
        private_protection_storage_masks: Option<Ttlv> = PRIVATE_PROTECTION_STORAGE_MASKS,
        /// 2.x masks.
        public_protection_storage_masks: Option<Ttlv> = PUBLIC_PROTECTION_STORAGE_MASKS,
    }
}
crate::kmip_struct! {
    /// Create Key Pair response.
    pub struct CreateKeyPairResponse {
        /// Private key.
        private_key_unique_identifier: String = PRIVATE_KEY_UNIQUE_IDENTIFIER,
        /// Public key.
        public_key_unique_identifier: String = PUBLIC_KEY_UNIQUE_IDENTIFIER,
        /// Implicit private key attributes (1.x).
        private_key_template_attribute: Option<TemplateAttribute> = PRIVATE_KEY_TEMPLATE_ATTRIBUTE,
        /// Implicit public key attributes (1.x).
        public_key_template_attribute: Option<TemplateAttribute> = PUBLIC_KEY_TEMPLATE_ATTRIBUTE,
    }
}
object_fields!(RegisterRequest {
    /// Object type.
    object_type: ObjectType = OBJECT_TYPE,
    /// 1.x attributes.
    template_attribute: Option<TemplateAttribute> = TEMPLATE_ATTRIBUTE,
    /// 2.x attributes.
    attributes: Option<Attributes> = ATTRIBUTES,
    /// 2.x protection storage masks.
    protection_storage_masks: Option<Ttlv> = PROTECTION_STORAGE_MASKS,
});
crate::kmip_struct! {
    /// Register response.
    pub struct RegisterResponse {
        /// Identifier.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Implicit attributes (1.x).
        template_attribute: Option<TemplateAttribute> = TEMPLATE_ATTRIBUTE,
    }
}
crate::kmip_struct! {
    /// Re-key request.
    pub struct ReKeyRequest {
        /// Key to replace (ID Placeholder when absent).
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Offset of the new key's dates.
        offset: Option<Interval> = OFFSET,
        /// 1.x attributes.
        template_attribute: Option<TemplateAttribute> = TEMPLATE_ATTRIBUTE,
        /// 2.x attributes.
        attributes: Option<Attributes> = ATTRIBUTES,
        /// 2.x masks.
        protection_storage_masks: Option<Ttlv> = PROTECTION_STORAGE_MASKS,
    }
}
crate::kmip_struct! {
    /// Re-key response.
    pub struct ReKeyResponse {
        /// The replacement.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Implicit attributes (1.x).
        template_attribute: Option<TemplateAttribute> = TEMPLATE_ATTRIBUTE,
    }
}
crate::kmip_struct! {
    /// Locate request.
    pub struct LocateRequest {
        /// At most this many identifiers.
        maximum_items: Option<i32> = MAXIMUM_ITEMS,
        /// Skip this many (1.3+).
        offset_items: Option<i32> = OFFSET_ITEMS,
        /// Online/archived (1.1+).
        storage_status_mask: Option<StorageStatusMask> = STORAGE_STATUS_MASK,
        /// Fresh/default group member (1.1+).
        object_group_member: Option<ObjectGroupMember> = OBJECT_GROUP_MEMBER,
        /// 1.x filters.
        attributes_1x: Vec<Attribute> = ATTRIBUTE,
        /// 2.x filters.
        attributes: Option<Attributes> = ATTRIBUTES,
    }
}
crate::kmip_struct! {
    /// Locate response.
    pub struct LocateResponse {
        /// Total matches (1.3+).
        located_items: Option<i32> = LOCATED_ITEMS,
        /// Matches.
        unique_identifiers: Vec<String> = UNIQUE_IDENTIFIER,
    }
}
crate::kmip_struct! {
    /// Check request.
    pub struct CheckRequest {
        /// Object.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Usage count.
        usage_limits_count: Option<i64> = USAGE_LIMITS_COUNT,
        /// Intended usage.
        cryptographic_usage_mask: Option<CryptographicUsageMask> = CRYPTOGRAPHIC_USAGE_MASK,
        /// Lease wanted.
        lease_time: Option<Interval> = LEASE_TIME,
    }
}
crate::kmip_struct! {
    /// Check response.
    pub struct CheckResponse {
        /// Object.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Usage count that failed.
        usage_limits_count: Option<i64> = USAGE_LIMITS_COUNT,
        /// Usage that failed.
        cryptographic_usage_mask: Option<CryptographicUsageMask> = CRYPTOGRAPHIC_USAGE_MASK,
        /// Lease that failed.
        lease_time: Option<Interval> = LEASE_TIME,
    }
}
crate::kmip_struct! {
    /// Get request.
    pub struct GetRequest {
        /// Object.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Wanted format.
        key_format_type: Option<KeyFormatType> = KEY_FORMAT_TYPE,
        /// Wrapped or not (1.4).
        key_wrap_type: Option<KeyWrapType> = KEY_WRAP_TYPE,
        /// Compression.
        key_compression_type: Option<KeyCompressionType> = KEY_COMPRESSION_TYPE,
        /// Wrap on the way out.
        key_wrapping_specification: Option<KeyWrappingSpecification> = KEY_WRAPPING_SPECIFICATION,
    }
}
object_fields!(GetResponse {
    /// Object type.
    object_type: ObjectType = OBJECT_TYPE,
    /// Identifier.
    unique_identifier: String = UNIQUE_IDENTIFIER,
});
crate::kmip_struct! {
    /// Get Attributes request.
    pub struct GetAttributesRequest {
        /// Object.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// 1.x names (none: all).
        attribute_names: Vec<String> = ATTRIBUTE_NAME,
        /// 2.x references (none: all).
        attribute_references: Vec<Ttlv> = ATTRIBUTE_REFERENCE,
    }
}
crate::kmip_struct! {
    /// Get Attributes response.
    pub struct GetAttributesResponse {
        /// Object.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// 1.x attributes.
        attributes_1x: Vec<Attribute> = ATTRIBUTE,
        /// 2.x attributes.
        attributes: Option<Attributes> = ATTRIBUTES,
    }
}
crate::kmip_struct! {
    /// Get Attribute List request.
    pub struct GetAttributeListRequest {
        /// Object.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
    }
}
crate::kmip_struct! {
    /// Get Attribute List response.
    pub struct GetAttributeListResponse {
        /// Object.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// 1.x names.
        attribute_names: Vec<String> = ATTRIBUTE_NAME,
        /// 2.x references.
        attribute_references: Vec<Ttlv> = ATTRIBUTE_REFERENCE,
    }
}
crate::kmip_struct! {
    /// Add Attribute request.
    pub struct AddAttributeRequest {
        /// Object.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// 1.x attribute.
        attribute: Option<Attribute> = ATTRIBUTE,
        /// 2.x attribute.
        new_attribute: Option<AttributeHolder> = NEW_ATTRIBUTE,
    }
}
crate::kmip_struct! {
    /// Add/Modify/Delete Attribute response.
    pub struct AttributeChangeResponse {
        /// Object.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// 1.x: the attribute as stored (with its index).
        attribute: Option<Attribute> = ATTRIBUTE,
    }
}
crate::kmip_struct! {
    /// Modify Attribute request.
    pub struct ModifyAttributeRequest {
        /// Object.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// 1.x attribute (name, index, new value).
        attribute: Option<Attribute> = ATTRIBUTE,
        /// 2.x current value.
        current_attribute: Option<AttributeHolder> = CURRENT_ATTRIBUTE,
        /// 2.x new value.
        new_attribute: Option<AttributeHolder> = NEW_ATTRIBUTE,
    }
}
crate::kmip_struct! {
    /// Delete Attribute request.
    pub struct DeleteAttributeRequest {
        /// Object.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// 1.x name.
        attribute_name: Option<String> = ATTRIBUTE_NAME,
        /// 1.x index.
        attribute_index: Option<i32> = ATTRIBUTE_INDEX,
        /// 2.x value to delete.
        current_attribute: Option<AttributeHolder> = CURRENT_ATTRIBUTE,
        /// 2.x reference.
        attribute_reference: Option<Ttlv> = ATTRIBUTE_REFERENCE,
    }
}
crate::kmip_struct! {
    /// Set Attribute request (2.x).
    pub struct SetAttributeRequest {
        /// Object.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Value.
        new_attribute: AttributeHolder = NEW_ATTRIBUTE,
    }
}
crate::kmip_struct! {
    /// A payload with only an optional Unique Identifier (Activate, Destroy,
    /// Archive, Recover, Obtain Lease and Get Attribute List requests).
    pub struct IdRequest {
        /// Object (ID Placeholder when absent).
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
    }
}
crate::kmip_struct! {
    /// A payload with only the Unique Identifier.
    pub struct IdResponse {
        /// Object.
        unique_identifier: String = UNIQUE_IDENTIFIER,
    }
}
crate::kmip_struct! {
    /// Obtain Lease response.
    pub struct ObtainLeaseResponse {
        /// Object.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Lease.
        lease_time: Interval = LEASE_TIME,
        /// Last change.
        last_change_date: DateTime = LAST_CHANGE_DATE,
    }
}
crate::kmip_struct! {
    /// Get Usage Allocation request.
    pub struct GetUsageAllocationRequest {
        /// Object.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Units wanted.
        usage_limits_count: Option<i64> = USAGE_LIMITS_COUNT,
    }
}
crate::kmip_struct! {
    /// Revoke request.
    pub struct RevokeRequest {
        /// Object.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Why.
        revocation_reason: RevocationReason = REVOCATION_REASON,
        /// When the compromise happened.
        compromise_occurrence_date: Option<DateTime> = COMPROMISE_OCCURRENCE_DATE,
    }
}
crate::kmip_struct! {
    /// Encrypt request.
    pub struct EncryptRequest {
        /// Key.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Parameters.
        cryptographic_parameters: Option<CryptographicParameters> = CRYPTOGRAPHIC_PARAMETERS,
        /// Plaintext.
        data: Option<Bytes> = DATA,
        /// IV.
        iv_counter_nonce: Option<Bytes> = IV_COUNTER_NONCE,
        /// Streaming correlation (1.3+).
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
        /// Streaming start (1.3+).
        init_indicator: Option<bool> = INIT_INDICATOR,
        /// Streaming end (1.3+).
        final_indicator: Option<bool> = FINAL_INDICATOR,
        /// AEAD additional data (1.4).
        authenticated_encryption_additional_data: Option<Bytes> = AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA,
    }
}
crate::kmip_struct! {
    /// Encrypt response.
    pub struct EncryptResponse {
        /// Key.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Ciphertext.
        data: Option<Bytes> = DATA,
        /// IV.
        iv_counter_nonce: Option<Bytes> = IV_COUNTER_NONCE,
        /// Streaming correlation.
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
        /// AEAD tag (1.4).
        authenticated_encryption_tag: Option<Bytes> = AUTHENTICATED_ENCRYPTION_TAG,
    }
}
crate::kmip_struct! {
    /// Decrypt request.
    pub struct DecryptRequest {
        /// Key.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Parameters.
        cryptographic_parameters: Option<CryptographicParameters> = CRYPTOGRAPHIC_PARAMETERS,
        /// Ciphertext.
        data: Option<Bytes> = DATA,
        /// IV.
        iv_counter_nonce: Option<Bytes> = IV_COUNTER_NONCE,
        /// Streaming correlation.
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
        /// Streaming start.
        init_indicator: Option<bool> = INIT_INDICATOR,
        /// Streaming end.
        final_indicator: Option<bool> = FINAL_INDICATOR,
        /// AEAD additional data.
        authenticated_encryption_additional_data: Option<Bytes> = AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA,
        /// AEAD tag.
        authenticated_encryption_tag: Option<Bytes> = AUTHENTICATED_ENCRYPTION_TAG,
    }
}
crate::kmip_struct! {
    /// Decrypt response.
    pub struct DecryptResponse {
        /// Key.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Plaintext.
        data: Option<Bytes> = DATA,
        /// Streaming correlation.
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
    }
}
crate::kmip_struct! {
    /// Sign request.
    pub struct SignRequest {
        /// Key.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Parameters.
        cryptographic_parameters: Option<CryptographicParameters> = CRYPTOGRAPHIC_PARAMETERS,
        /// Data.
        data: Option<Bytes> = DATA,
        /// Pre-hashed data (1.4).
        digested_data: Option<Bytes> = DIGESTED_DATA,
        /// Streaming correlation.
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
        /// Streaming start.
        init_indicator: Option<bool> = INIT_INDICATOR,
        /// Streaming end.
        final_indicator: Option<bool> = FINAL_INDICATOR,
    }
}
crate::kmip_struct! {
    /// Sign response.
    pub struct SignResponse {
        /// Key.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Signature.
        signature_data: Option<Bytes> = SIGNATURE_DATA,
        /// Streaming correlation.
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
    }
}
crate::kmip_struct! {
    /// Signature Verify request.
    pub struct SignatureVerifyRequest {
        /// Key.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Parameters.
        cryptographic_parameters: Option<CryptographicParameters> = CRYPTOGRAPHIC_PARAMETERS,
        /// Data.
        data: Option<Bytes> = DATA,
        /// Pre-hashed data.
        digested_data: Option<Bytes> = DIGESTED_DATA,
        /// Signature.
        signature_data: Option<Bytes> = SIGNATURE_DATA,
        /// Streaming correlation.
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
        /// Streaming start.
        init_indicator: Option<bool> = INIT_INDICATOR,
        /// Streaming end.
        final_indicator: Option<bool> = FINAL_INDICATOR,
    }
}
crate::kmip_struct! {
    /// Signature Verify response.
    pub struct SignatureVerifyResponse {
        /// Key.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Verdict.
        validity_indicator: Option<ValidityIndicator> = VALIDITY_INDICATOR,
        /// Recovered data.
        data: Option<Bytes> = DATA,
        /// Streaming correlation.
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
    }
}
crate::kmip_struct! {
    /// MAC request.
    pub struct MacRequest {
        /// Key.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Parameters.
        cryptographic_parameters: Option<CryptographicParameters> = CRYPTOGRAPHIC_PARAMETERS,
        /// Data.
        data: Option<Bytes> = DATA,
        /// Streaming correlation.
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
        /// Streaming start.
        init_indicator: Option<bool> = INIT_INDICATOR,
        /// Streaming end.
        final_indicator: Option<bool> = FINAL_INDICATOR,
    }
}
crate::kmip_struct! {
    /// MAC response.
    pub struct MacResponse {
        /// Key.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// MAC.
        mac_data: Option<Bytes> = MAC_DATA,
        /// Streaming correlation.
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
    }
}
crate::kmip_struct! {
    /// MAC Verify request.
    pub struct MacVerifyRequest {
        /// Key.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// Parameters.
        cryptographic_parameters: Option<CryptographicParameters> = CRYPTOGRAPHIC_PARAMETERS,
        /// Data.
        data: Option<Bytes> = DATA,
        /// MAC to check.
        mac_data: Option<Bytes> = MAC_DATA,
        /// Streaming correlation.
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
        /// Streaming start.
        init_indicator: Option<bool> = INIT_INDICATOR,
        /// Streaming end.
        final_indicator: Option<bool> = FINAL_INDICATOR,
    }
}
crate::kmip_struct! {
    /// MAC Verify response.
    pub struct MacVerifyResponse {
        /// Key.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Verdict.
        validity_indicator: ValidityIndicator = VALIDITY_INDICATOR,
        /// Streaming correlation.
        correlation_value: Option<Bytes> = CORRELATION_VALUE,
    }
}
crate::kmip_struct! {
    /// RNG Retrieve request.
    pub struct RngRetrieveRequest {
        /// Bytes wanted.
        data_length: i32 = DATA_LENGTH,
    }
}
crate::kmip_struct! {
    /// RNG Retrieve response.
    pub struct RngRetrieveResponse {
        /// Random bytes.
        data: Bytes = DATA,
    }
}
crate::kmip_struct! {
    /// RNG Seed request (1.3+).
    pub struct RngSeedRequest {
        /// Seed offered by the client.
        data: Bytes = DATA,
    }
}
crate::kmip_struct! {
    /// RNG Seed response.
    pub struct RngSeedResponse {
        /// How many bytes of the seed the server used.
        data_length: i32 = DATA_LENGTH,
    }
}
crate::kmip_struct! {
    /// Poll request.
    pub struct PollRequest {
        /// Pending operation.
        asynchronous_correlation_value: Bytes = ASYNCHRONOUS_CORRELATION_VALUE,
    }
}
crate::kmip_struct! {
    /// Cancel request.
    pub struct CancelRequest {
        /// Pending operation.
        asynchronous_correlation_value: Bytes = ASYNCHRONOUS_CORRELATION_VALUE,
    }
}
crate::kmip_struct! {
    /// Cancel response.
    pub struct CancelResponse {
        /// Pending operation.
        asynchronous_correlation_value: Bytes = ASYNCHRONOUS_CORRELATION_VALUE,
        /// Outcome.
        cancellation_result: CancellationResult = CANCELLATION_RESULT,
    }
}

crate::kmip_struct! {
    /// Create Split Key request (1.2+): split a new key, or the existing
    /// object named by the Unique Identifier, into Split Key objects.
    pub struct CreateSplitKeyRequest {
        /// Always Split Key.
        object_type: ObjectType = OBJECT_TYPE,
        /// The object to split; none: the server generates a key.
        unique_identifier: Option<String> = UNIQUE_IDENTIFIER,
        /// N: how many parts.
        split_key_parts: i32 = SPLIT_KEY_PARTS,
        /// M: how many parts rebuild the key.
        split_key_threshold: i32 = SPLIT_KEY_THRESHOLD,
        /// How the key is split.
        split_key_method: SplitKeyMethod = SPLIT_KEY_METHOD,
        /// The prime of Polynomial Sharing Prime Field.
        prime_field_size: Option<crate::ttlv::BigInt> = PRIME_FIELD_SIZE,
        /// 1.x attributes of the parts.
        template_attribute: Option<TemplateAttribute> = TEMPLATE_ATTRIBUTE,
        /// 2.x attributes of the parts.
        attributes: Option<Attributes> = ATTRIBUTES,
        /// 2.x protection storage masks.
        protection_storage_masks: Option<Ttlv> = PROTECTION_STORAGE_MASKS,
    }
}
crate::kmip_struct! {
    /// Create Split Key response: the parts, in Key Part Identifier order.
    pub struct CreateSplitKeyResponse {
        /// One identifier per part.
        unique_identifiers: Vec<String> = UNIQUE_IDENTIFIER,
        /// Implicit attributes (1.x).
        template_attribute: Option<TemplateAttribute> = TEMPLATE_ATTRIBUTE,
    }
}
crate::kmip_struct! {
    /// Join Split Key request (1.2+): rebuild an object from Split Keys.
    pub struct JoinSplitKeyRequest {
        /// Symmetric Key or Secret Data.
        object_type: ObjectType = OBJECT_TYPE,
        /// The parts to join.
        unique_identifiers: Vec<String> = UNIQUE_IDENTIFIER,
        /// The Secret Data Type of a Secret Data result.
        secret_data_type: Option<SecretDataType> = SECRET_DATA_TYPE,
        /// 1.x attributes of the result.
        template_attribute: Option<TemplateAttribute> = TEMPLATE_ATTRIBUTE,
        /// 2.x attributes of the result.
        attributes: Option<Attributes> = ATTRIBUTES,
        /// 2.x protection storage masks.
        protection_storage_masks: Option<Ttlv> = PROTECTION_STORAGE_MASKS,
    }
}
crate::kmip_struct! {
    /// Join Split Key response.
    pub struct JoinSplitKeyResponse {
        /// The joined object.
        unique_identifier: String = UNIQUE_IDENTIFIER,
        /// Implicit attributes (1.x).
        template_attribute: Option<TemplateAttribute> = TEMPLATE_ATTRIBUTE,
    }
}

macro_rules! payload_enum {
    ($(#[$doc:meta])* $enum:ident { $($op:ident => $var:ident($ty:ty),)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        #[allow(missing_docs)]
        // Payloads are built once per batch item and moved, never copied in
        // bulk; boxing the large ones would add an allocation per request.
        #[allow(clippy::large_enum_variant)]
        pub enum $enum {
            $($var($ty),)*
            /// An operation not modelled here, kept as it came.
            Other(Ttlv),
        }

        impl $enum {
            /// Decodes the payload item of `op`.
            pub fn decode(op: Operation, item: &Ttlv, ctx: Ctx) -> Result<Self> {
                Ok(match op {
                    $(Operation::$op => $enum::$var(<$ty as Field>::decode(item, ctx)?),)*
                    _ => $enum::Other(item.clone()),
                })
            }

            /// Encodes under `tag` (Request Payload or Response Payload).
            pub fn encode(&self, tag: Tag, ctx: Ctx) -> Ttlv {
                match self {
                    $($enum::$var(p) => p.encode(tag, ctx),)*
                    $enum::Other(t) => Ttlv { tag, value: t.value.clone() },
                }
            }
        }
    };
}

payload_enum!(
    /// A typed request payload.
    RequestPayload {
        DISCOVER_VERSIONS => DiscoverVersions(DiscoverVersionsRequest),
        QUERY => Query(QueryRequest),
        CREATE => Create(CreateRequest),
        CREATE_KEY_PAIR => CreateKeyPair(CreateKeyPairRequest),
        REGISTER => Register(RegisterRequest),
        RE_KEY => ReKey(ReKeyRequest),
        LOCATE => Locate(LocateRequest),
        CHECK => Check(CheckRequest),
        GET => Get(GetRequest),
        GET_ATTRIBUTES => GetAttributes(GetAttributesRequest),
        GET_ATTRIBUTE_LIST => GetAttributeList(GetAttributeListRequest),
        ADD_ATTRIBUTE => AddAttribute(AddAttributeRequest),
        MODIFY_ATTRIBUTE => ModifyAttribute(ModifyAttributeRequest),
        DELETE_ATTRIBUTE => DeleteAttribute(DeleteAttributeRequest),
        SET_ATTRIBUTE => SetAttribute(SetAttributeRequest),
        OBTAIN_LEASE => ObtainLease(IdRequest),
        GET_USAGE_ALLOCATION => GetUsageAllocation(GetUsageAllocationRequest),
        ACTIVATE => Activate(IdRequest),
        REVOKE => Revoke(RevokeRequest),
        DESTROY => Destroy(IdRequest),
        ARCHIVE => Archive(IdRequest),
        RECOVER => Recover(IdRequest),
        ENCRYPT => Encrypt(EncryptRequest),
        DECRYPT => Decrypt(DecryptRequest),
        MAC => Mac(MacRequest),
        MAC_VERIFY => MacVerify(MacVerifyRequest),
        SIGN => Sign(SignRequest),
        SIGNATURE_VERIFY => SignatureVerify(SignatureVerifyRequest),
        RNG_RETRIEVE => RngRetrieve(RngRetrieveRequest),
        RNG_SEED => RngSeed(RngSeedRequest),
        POLL => Poll(PollRequest),
        CANCEL => Cancel(CancelRequest),
        CREATE_SPLIT_KEY => CreateSplitKey(CreateSplitKeyRequest),
        JOIN_SPLIT_KEY => JoinSplitKey(JoinSplitKeyRequest),
    }
);

payload_enum!(
    /// A typed response payload.
    ResponsePayload {
        DISCOVER_VERSIONS => DiscoverVersions(DiscoverVersionsResponse),
        QUERY => Query(QueryResponse),
        CREATE => Create(CreateResponse),
        CREATE_KEY_PAIR => CreateKeyPair(CreateKeyPairResponse),
        REGISTER => Register(RegisterResponse),
        RE_KEY => ReKey(ReKeyResponse),
        LOCATE => Locate(LocateResponse),
        CHECK => Check(CheckResponse),
        GET => Get(GetResponse),
        GET_ATTRIBUTES => GetAttributes(GetAttributesResponse),
        GET_ATTRIBUTE_LIST => GetAttributeList(GetAttributeListResponse),
        ADD_ATTRIBUTE => AddAttribute(AttributeChangeResponse),
        MODIFY_ATTRIBUTE => ModifyAttribute(AttributeChangeResponse),
        DELETE_ATTRIBUTE => DeleteAttribute(AttributeChangeResponse),
        SET_ATTRIBUTE => SetAttribute(IdResponse),
        OBTAIN_LEASE => ObtainLease(ObtainLeaseResponse),
        GET_USAGE_ALLOCATION => GetUsageAllocation(IdResponse),
        ACTIVATE => Activate(IdResponse),
        REVOKE => Revoke(IdResponse),
        DESTROY => Destroy(IdResponse),
        ARCHIVE => Archive(IdResponse),
        RECOVER => Recover(IdResponse),
        ENCRYPT => Encrypt(EncryptResponse),
        DECRYPT => Decrypt(DecryptResponse),
        MAC => Mac(MacResponse),
        MAC_VERIFY => MacVerify(MacVerifyResponse),
        SIGN => Sign(SignResponse),
        SIGNATURE_VERIFY => SignatureVerify(SignatureVerifyResponse),
        RNG_RETRIEVE => RngRetrieve(RngRetrieveResponse),
        RNG_SEED => RngSeed(RngSeedResponse),
        CANCEL => Cancel(CancelResponse),
        CREATE_SPLIT_KEY => CreateSplitKey(CreateSplitKeyResponse),
        JOIN_SPLIT_KEY => JoinSplitKey(JoinSplitKeyResponse),
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::attributes::Attribute;
    use crate::ttlv::Value;

    fn round_trip<P: Field + PartialEq + std::fmt::Debug>(p: &P, tag: Tag, v: ProtocolVersion) {
        let ctx = Ctx::new(v);
        let t = p.encode(tag, ctx);
        let bytes = t.to_bytes().expect("encodes");
        let back = crate::ttlv::decode(&bytes, &crate::ttlv::Limits::default()).expect("decodes");
        assert_eq!(&P::decode(&back, ctx).expect("typed decode"), p, "{v:?}");
    }

    #[test]
    fn create_split_key_payloads_round_trip_in_1x_and_2x() {
        let one_x = CreateSplitKeyRequest {
            object_type: ObjectType::SPLIT_KEY,
            unique_identifier: Some("k1".into()),
            split_key_parts: 5,
            split_key_threshold: 3,
            split_key_method: SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_8,
            template_attribute: Some(TemplateAttribute {
                names: Vec::new(),
                attributes: vec![Attribute::new("Cryptographic Length", Value::Integer(128))],
            }),
            ..Default::default()
        };
        round_trip(&one_x, Tag::REQUEST_PAYLOAD, ProtocolVersion::V1_2);
        let two_x = CreateSplitKeyRequest {
            template_attribute: None,
            attributes: Some(Attributes(vec![Attribute::new(
                "Cryptographic Length",
                Value::Integer(256),
            )])),
            prime_field_size: Some(crate::ttlv::BigInt::from_be_bytes(&[0x01, 0x01])),
            split_key_method: SplitKeyMethod::POLYNOMIAL_SHARING_PRIME_FIELD,
            ..one_x.clone()
        };
        round_trip(&two_x, Tag::REQUEST_PAYLOAD, ProtocolVersion::V2_0);
        let resp = CreateSplitKeyResponse {
            unique_identifiers: vec!["a".into(), "b".into(), "c".into()],
            template_attribute: None,
        };
        round_trip(&resp, Tag::RESPONSE_PAYLOAD, ProtocolVersion::V1_2);
        // The identifiers keep their order on the wire.
        let t = resp.encode(Tag::RESPONSE_PAYLOAD, Ctx::new(ProtocolVersion::V1_2));
        let ids: Vec<_> = t
            .children()
            .unwrap()
            .iter()
            .map(|c| c.as_text().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn join_split_key_payloads_round_trip_and_dispatch() {
        let req = JoinSplitKeyRequest {
            object_type: ObjectType::SECRET_DATA,
            unique_identifiers: vec!["p1".into(), "p3".into()],
            secret_data_type: Some(SecretDataType::PASSWORD),
            ..Default::default()
        };
        round_trip(&req, Tag::REQUEST_PAYLOAD, ProtocolVersion::V1_2);
        round_trip(&req, Tag::REQUEST_PAYLOAD, ProtocolVersion::V2_1);
        let resp = JoinSplitKeyResponse {
            unique_identifier: "joined".into(),
            template_attribute: None,
        };
        round_trip(&resp, Tag::RESPONSE_PAYLOAD, ProtocolVersion::V1_2);
        // The batch item's Operation selects the typed payload.
        let ctx = Ctx::new(ProtocolVersion::V1_2);
        let item = req.encode(Tag::REQUEST_PAYLOAD, ctx);
        match RequestPayload::decode(Operation::JOIN_SPLIT_KEY, &item, ctx).unwrap() {
            RequestPayload::JoinSplitKey(p) => assert_eq!(p, req),
            other => panic!("{other:?}"),
        }
        // A Create Split Key request without its required fields is refused.
        let bare = Ttlv::structure(
            Tag::REQUEST_PAYLOAD,
            vec![Ttlv::enumeration(Tag::OBJECT_TYPE, ObjectType::SPLIT_KEY.0)],
        );
        assert!(RequestPayload::decode(Operation::CREATE_SPLIT_KEY, &bare, ctx).is_err());
    }
}
