//! Create, Register and Re-key: new objects, their server-set attributes,
//! their wrapped content and their initial lifecycle state.

use super::attributes::{check_client_settable, request_attributes, template_own_attributes};
use super::OpCtx;
use crate::errors::{OpError, OpResult};
use crate::model::{names, usage_limits, ManagedObject};
use kmip::messages::attributes::{struct_value, Attribute, Link};
use kmip::messages::objects::{KeyBlock, KeyValue, Object, SecretData, SymmetricKey};
use kmip::messages::payloads::{
    CreateRequest, CreateResponse, ReKeyRequest, ReKeyResponse, RegisterRequest, RegisterResponse,
};
use kmip::tables::{
    CryptographicAlgorithm, KeyFormatType, LinkType, ObjectType, SecretDataType, State, Tag,
};
use kmip::{ProtocolVersion, Ttlv, Value};
use rand::RngCore;
use zeroize::Zeroizing;

/// Byte length of a new symmetric key of `alg` and `bits`, or why not.
pub(super) fn key_len(alg: CryptographicAlgorithm, bits: i32) -> OpResult<usize> {
    let ok = match alg {
        CryptographicAlgorithm::AES => matches!(bits, 128 | 192 | 256),
        CryptographicAlgorithm::V_3DES => matches!(bits, 112 | 168 | 192),
        // SKIPJACK has one key size, 80 bits (SKFF-O-1..3).
        CryptographicAlgorithm::SKIPJACK => bits == 80,
        CryptographicAlgorithm::HMAC_SHA1
        | CryptographicAlgorithm::HMAC_SHA224
        | CryptographicAlgorithm::HMAC_SHA256
        | CryptographicAlgorithm::HMAC_SHA384
        | CryptographicAlgorithm::HMAC_SHA512 => (64..=4096).contains(&bits) && bits % 8 == 0,
        other => {
            return Err(OpError::FeatureNotSupported(format!(
                "kmipd cannot generate {other} keys (AES, 3DES, SKIPJACK, HMAC-SHA1..512)"
            )))
        }
    };
    if !ok {
        return Err(OpError::InvalidField(format!(
            "{bits} is not a valid length for {alg}"
        )));
    }
    Ok(match (alg, bits) {
        (CryptographicAlgorithm::V_3DES, 112) => 16,
        (CryptographicAlgorithm::V_3DES, _) => 24,
        _ => (bits / 8) as usize,
    })
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Where a new object's content comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// Generated here (Create, Re-key, Create and Join Split Key): its
    /// Original Creation Date is now.
    Generated,
    /// Registered by a client: made elsewhere, at a time only the client
    /// knows (KMIP 1.2+: the client may give an Original Creation Date;
    /// the server sets it implicitly only for objects it generates).
    Registered,
}

/// Builds a new object's metadata from the client's attributes and the
/// server-set ones; the state follows the Activation Date.
pub(super) fn new_object(
    ctx: &OpCtx<'_>,
    object_type: ObjectType,
    client: Vec<Attribute>,
    origin: Origin,
) -> OpResult<ManagedObject> {
    let mut o = ManagedObject {
        id: new_id(),
        object_type,
        owner: ctx.caller.identity.clone(),
        group: ctx.caller.group.clone(),
        creator: ctx.principal.clone(),
        revision: 0,
        attributes: Vec::new(),
        material: None,
        archived: false,
        created: crate::model::creation_stamp(ctx.now),
    };
    for mut a in client {
        let i = o.next_index(&a.name);
        a.index = Some(i);
        o.attributes.push(a);
    }
    o.set(names::UNIQUE_IDENTIFIER, Value::TextString(o.id.clone()));
    o.set(names::OBJECT_TYPE, Value::Enumeration(object_type.0));
    o.set(names::INITIAL_DATE, Value::DateTime(ctx.now));
    if origin == Origin::Generated {
        o.set(names::ORIGINAL_CREATION_DATE, Value::DateTime(ctx.now));
    }
    if o.first(names::FRESH).is_none() {
        o.set(names::FRESH, Value::Boolean(true));
    }
    // Pre-Active, then whatever its dates make it now (an Activation Date
    // in the past: Active; a Deactivation Date in the past: Deactivated).
    o.set(names::STATE, Value::Enumeration(State::PRE_ACTIVE.0));
    o.advance_state(ctx.now);
    Ok(o)
}

/// The Digest attribute of an object's content: SHA-256 of the Key Material
/// (its bytes, or the TTLV encoding of a Transparent structure), of the
/// certificate or of the opaque value, with the Key Format Type it was
/// computed in (1.1+; dropped from 1.0 responses).
pub fn digest(object: &Object) -> Option<Value> {
    use sha2::{Digest, Sha256};
    let (bytes, format) = match object {
        Object::Certificate(c) => (c.certificate_value.0.clone(), None),
        Object::OpaqueObject(o) => (o.opaque_data_value.0.clone(), None),
        other => {
            let kb = other.key_block()?;
            let Some(KeyValue::Plain { key_material, .. }) = &kb.key_value else {
                return None;
            };
            let bytes = match key_material.as_bytes() {
                Ok(b) => b.to_vec(),
                Err(_) => key_material.to_bytes().ok()?,
            };
            (bytes, Some(kb.key_format_type))
        }
    };
    let mut c = vec![
        Ttlv::enumeration(
            Tag::HASHING_ALGORITHM,
            kmip::tables::HashingAlgorithm::SHA_256.0,
        ),
        Ttlv::bytes(Tag::DIGEST_VALUE, Sha256::digest(&bytes).to_vec()),
    ];
    if let Some(f) = format {
        c.push(Ttlv::enumeration(Tag::KEY_FORMAT_TYPE, f.0));
    }
    Some(Value::Structure(c))
}

/// Sets the attributes kmipd derives from the content: Digest, and the
/// Lease Time of keys.
pub(super) fn derive_from_content(o: &mut ManagedObject, object: &Object) {
    if let Some(d) = digest(object) {
        o.set(names::DIGEST, d);
    }
    if object.key_block().is_some() {
        o.set(names::LEASE_TIME, Value::Interval(super::misc::LEASE_SECS));
    }
}

pub(crate) fn symmetric_key(alg: CryptographicAlgorithm, bits: i32, key: &[u8]) -> Object {
    Object::SymmetricKey(SymmetricKey {
        key_block: KeyBlock {
            key_format_type: KeyFormatType::RAW,
            key_value: Some(KeyValue::Plain {
                key_material: Ttlv::bytes(Tag::KEY_MATERIAL, key.to_vec()),
                attributes: Vec::new(),
            }),
            cryptographic_algorithm: Some(alg),
            cryptographic_length: Some(bits),
            ..Default::default()
        },
    })
}

/// Create: a symmetric key (AES, 3DES, HMAC) or Secret Data, generated here.
pub async fn create(ctx: &OpCtx<'_>, p: &CreateRequest) -> OpResult<CreateResponse> {
    let attrs =
        request_attributes(ctx, p.template_attribute.as_ref(), p.attributes.as_ref()).await?;
    for a in &attrs {
        check_client_settable(&a.name, true)?;
    }
    let (object, mut o) = match p.object_type {
        ObjectType::SYMMETRIC_KEY => {
            let find = |n: &str| attrs.iter().find(|a| a.name == n);
            let alg = find(names::CRYPTOGRAPHIC_ALGORITHM)
                .and_then(|a| a.enumeration())
                .map(CryptographicAlgorithm)
                .ok_or_else(|| {
                    OpError::MissingData("Cryptographic Algorithm is required".into())
                })?;
            let bits = find(names::CRYPTOGRAPHIC_LENGTH)
                .and_then(|a| a.integer())
                .ok_or_else(|| OpError::MissingData("Cryptographic Length is required".into()))?;
            let mut key = Zeroizing::new(vec![0u8; key_len(alg, bits)?]);
            rand::rngs::OsRng.fill_bytes(&mut key);
            let o = new_object(ctx, p.object_type, attrs, Origin::Generated)?;
            (symmetric_key(alg, bits, &key), o)
        }
        ObjectType::SECRET_DATA => {
            let mut secret = Zeroizing::new(vec![0u8; 32]);
            rand::rngs::OsRng.fill_bytes(&mut secret);
            let obj = Object::SecretData(SecretData {
                secret_data_type: SecretDataType::SEED,
                key_block: KeyBlock {
                    key_format_type: KeyFormatType::OPAQUE,
                    key_value: Some(KeyValue::Plain {
                        key_material: Ttlv::bytes(Tag::KEY_MATERIAL, secret.to_vec()),
                        attributes: Vec::new(),
                    }),
                    ..Default::default()
                },
            });
            (
                obj,
                new_object(ctx, p.object_type, attrs, Origin::Generated)?,
            )
        }
        other => {
            return Err(OpError::InvalidField(format!(
                "Create makes Symmetric Keys and Secret Data, not {other}"
            )))
        }
    };
    derive_from_content(&mut o, &object);
    o.material = Some(ctx.protect(&o.id, &object).await?);
    ctx.save(None, &mut o).await?;
    Ok(CreateResponse {
        object_type: p.object_type,
        unique_identifier: o.id,
        template_attribute: None,
    })
}

/// Register: a client-supplied object of any type kmipd stores.
pub async fn register(ctx: &OpCtx<'_>, p: &RegisterRequest) -> OpResult<RegisterResponse> {
    let mut attrs =
        request_attributes(ctx, p.template_attribute.as_ref(), p.attributes.as_ref()).await?;
    for a in &attrs {
        // The Original Creation Date of a registered object is the client's
        // to give (it was made elsewhere); of a generated one, the server's.
        if a.name != names::ORIGINAL_CREATION_DATE {
            check_client_settable(&a.name, true)?;
        }
    }
    let object = p
        .object()
        .ok_or_else(|| OpError::MissingData("Register needs exactly one object".into()))?;
    if object.object_type() != p.object_type {
        return Err(OpError::InvalidField(format!(
            "Object Type {} does not match the object given ({})",
            p.object_type,
            object.object_type()
        )));
    }
    if let Some(kb) = object.key_block() {
        let has = |attrs: &[Attribute], n: &str| attrs.iter().any(|a| a.name == n);
        if let (Some(alg), false) = (
            kb.cryptographic_algorithm,
            has(&attrs, names::CRYPTOGRAPHIC_ALGORITHM),
        ) {
            attrs.push(Attribute::new(
                names::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(alg.0),
            ));
        }
        if let (Some(len), false) = (
            kb.cryptographic_length,
            has(&attrs, names::CRYPTOGRAPHIC_LENGTH),
        ) {
            attrs.push(Attribute::new(
                names::CRYPTOGRAPHIC_LENGTH,
                Value::Integer(len),
            ));
        }
        if kb.key_value.is_none() {
            // KMIP 1.2 metadata-only object: the Key Value is kept elsewhere
            // (a Key Value Location may say where). KMIP 1.0 and 1.1 require
            // the Key Value.
            if ctx.version < ProtocolVersion::V1_2 {
                return Err(OpError::MissingData(
                    "the Key Block has no Key Value (KMIP 1.2+ registers metadata-only keys)"
                        .into(),
                ));
            }
            if kb.key_wrapping_data.is_some() {
                return Err(OpError::InvalidField(
                    "Key Wrapping Data without a Key Value".into(),
                ));
            }
            // Set by the server only (KMIP 1.2, Key Value Present).
            attrs.push(Attribute::new(
                names::KEY_VALUE_PRESENT,
                Value::Boolean(false),
            ));
        }
    }
    if let Object::Template(t) = &object {
        // A Template's Name names the Template object itself (KMIP 1.x,
        // 2.2.6); its other attributes wait in it for the objects created
        // with it.
        attrs.extend(template_own_attributes(&t.attributes));
    }
    if let Object::SplitKey(sk) = &object {
        super::split::check_split_key(sk)?;
    }
    if let Object::Certificate(c) = &object {
        attrs.push(Attribute::new(
            names::CERTIFICATE_TYPE,
            Value::Enumeration(c.certificate_type.0),
        ));
    }
    let client_fresh = attrs.iter().any(|a| a.name == names::FRESH);
    let mut o = new_object(ctx, p.object_type, attrs, Origin::Registered)?;
    // A registered object was made elsewhere: it is not Fresh unless the
    // client says so (KMIP 1.1: Fresh may be set when an object is registered).
    if !client_fresh {
        o.set(names::FRESH, Value::Boolean(false));
    }
    derive_from_content(&mut o, &object);
    o.material = Some(ctx.protect(&o.id, &object).await?);
    ctx.save(None, &mut o).await?;
    Ok(RegisterResponse {
        unique_identifier: o.id,
        template_attribute: None,
    })
}

/// Attributes a Re-key does not copy from the existing key (KMIP 1.x,
/// 4.4 "Re-key", the Re-key attribute requirements): identity and
/// lifecycle stamps are the new key's own, Destroy/Compromise dates and the
/// Revocation Reason are not set, the Link points to the existing key only,
/// the Digest is recomputed, the dates follow the Offset rule and the
/// Usage Limits and Name are handled on their own.
fn carried_over(a: &Attribute) -> bool {
    !matches!(
        a.name.as_str(),
        names::UNIQUE_IDENTIFIER
            | names::STATE
            | names::INITIAL_DATE
            | names::LAST_CHANGE_DATE
            | names::ORIGINAL_CREATION_DATE
            | names::ACTIVATION_DATE
            | names::PROCESS_START_DATE
            | names::PROTECT_STOP_DATE
            | names::DEACTIVATION_DATE
            | names::DESTROY_DATE
            | names::COMPROMISE_DATE
            | names::COMPROMISE_OCCURRENCE_DATE
            | names::REVOCATION_REASON
            | names::ARCHIVE_DATE
            | names::LINK
            | names::FRESH
            | names::DIGEST
            | names::LEASE_TIME
            | names::USAGE_LIMITS
    )
}

/// The dates of the replacement key (KMIP 1.x, 4.4): without an Offset the
/// Activation, Process Start, Protect Stop and Deactivation Dates are copied
/// from the existing key; with one, the Activation Date is the new key's
/// Initial Date plus the Offset and the others keep their distance to the
/// Activation Date (CT2 = CT1 + (AT2 - AT1), TT2 = TT1 + (AT2 - AT1),
/// DT2 = DT1 + (AT2 - AT1)). An existing key without an Activation Date
/// has its other dates copied as they are.
fn replacement_dates(old: &ManagedObject, now: i64, offset: Option<i64>) -> Vec<Attribute> {
    const SHIFTED: [&str; 3] = [
        names::PROCESS_START_DATE,
        names::PROTECT_STOP_DATE,
        names::DEACTIVATION_DATE,
    ];
    let mut out = Vec::new();
    let date = |n: &str, d: i64| Attribute::new(n, Value::DateTime(d));
    match offset {
        None => {
            for n in std::iter::once(names::ACTIVATION_DATE).chain(SHIFTED) {
                if let Some(d) = old.date(n) {
                    out.push(date(n, d));
                }
            }
        }
        Some(offset) => {
            // The old key's dates are client-set and may be anywhere in
            // i64: saturate rather than overflow.
            let activation = now.saturating_add(offset);
            out.push(date(names::ACTIVATION_DATE, activation));
            let shift = old
                .date(names::ACTIVATION_DATE)
                .map_or(0, |old_act| activation.saturating_sub(old_act));
            for n in SHIFTED {
                if let Some(d) = old.date(n) {
                    out.push(date(n, d.saturating_add(shift)));
                }
            }
        }
    }
    out
}

/// Re-key (KMIP 1.x, 4.4): a replacement symmetric key with the existing
/// key's attributes (the request's own override them), its dates per the
/// Offset rule, its Name(s) taken over from the existing key (which loses
/// them, so Locate by name finds the replacement), its Usage Limits Count
/// reset to the Total, Replaced/Replacement links, and a state that follows
/// its dates. The existing key keeps its state.
pub async fn rekey(ctx: &OpCtx<'_>, p: &ReKeyRequest) -> OpResult<ReKeyResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let _guard = ctx.server.lock(&id).await;
    let old = ctx.load_online(&id)?;
    if old.object_type != ObjectType::SYMMETRIC_KEY {
        return Err(OpError::IllegalOperation(
            "Re-key applies to symmetric keys".into(),
        ));
    }
    let state = old.stored_state();
    if state == State::DESTROYED || state == State::DESTROYED_COMPROMISED {
        return Err(OpError::WrongState(format!("object {id} is destroyed")));
    }
    if old.key_value_absent() {
        // The key is kept elsewhere: a replacement generated here would not
        // replace it there.
        return Err(OpError::KeyValueNotPresent(format!(
            "key {id} was registered without its Key Value; it cannot be re-keyed"
        )));
    }
    let content = ctx.content(&old).await?;
    let kb = content
        .key_block()
        .ok_or_else(|| OpError::Internal("key without key block".into()))?;
    let alg = kb
        .cryptographic_algorithm
        .unwrap_or(CryptographicAlgorithm::AES);
    let bits = kb.cryptographic_length.unwrap_or(256);
    let extra =
        request_attributes(ctx, p.template_attribute.as_ref(), p.attributes.as_ref()).await?;
    for a in &extra {
        check_client_settable(&a.name, true)?;
    }
    let mut attrs: Vec<Attribute> = old
        .attributes
        .iter()
        .filter(|a| carried_over(a))
        .cloned()
        .collect();
    if let Some(v) = old
        .first(names::USAGE_LIMITS)
        .and_then(|a| usage_limits::reset(&a.value))
    {
        attrs.push(Attribute::new(names::USAGE_LIMITS, v));
    }
    attrs.extend(replacement_dates(
        &old,
        ctx.now,
        p.offset.map(|o| i64::from(o.0)),
    ));
    // The request's attributes replace every inherited instance of theirs.
    for a in &extra {
        attrs.retain(|x| x.name != a.name);
    }
    attrs.extend(extra);
    let mut key = Zeroizing::new(vec![0u8; key_len(alg, bits)?]);
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut new = new_object(ctx, ObjectType::SYMMETRIC_KEY, attrs, Origin::Generated)?;
    new.group = old.group.clone();
    // The replacement stays reserved to the existing key's creator, even
    // when a credential-less request (or kmipd's scheduler) re-keys it.
    if old.creator.is_some() {
        new.creator = old.creator.clone();
    }
    let link = |t: LinkType, to: &str| {
        struct_value(
            &Link {
                link_type: t,
                linked_object_identifier: to.to_owned(),
            },
            ctx.ctx(),
        )
    };
    let i = new.next_index(names::LINK);
    new.attributes.push(Attribute {
        name: names::LINK.into(),
        index: Some(i),
        value: link(LinkType::REPLACED_OBJECT_LINK, &old.id),
    });
    let object = symmetric_key(alg, bits, &key);
    derive_from_content(&mut new, &object);
    new.material = Some(ctx.protect(&new.id, &object).await?);
    let mut updated = old.clone();
    // "As the replacement key takes over the name attribute of the existing
    // key": all Name attributes are removed from the existing key.
    updated.remove(names::NAME);
    let i = updated.next_index(names::LINK);
    updated.attributes.push(Attribute {
        name: names::LINK.into(),
        index: Some(i),
        value: link(LinkType::REPLACEMENT_OBJECT_LINK, &new.id),
    });
    ctx.save_all(vec![(Some(&old), &mut updated), (None, &mut new)])
        .await?;
    Ok(ReKeyResponse {
        unique_identifier: new.id,
        template_attribute: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_dates_survive_extreme_client_dates() {
        let mut old = ManagedObject {
            id: "k".into(),
            object_type: ObjectType::SYMMETRIC_KEY,
            owner: "o".into(),
            group: "g".into(),
            creator: None,
            revision: 1,
            attributes: Vec::new(),
            material: None,
            archived: false,
            created: 0,
        };
        old.set(names::ACTIVATION_DATE, Value::DateTime(i64::MIN));
        old.set(names::DEACTIVATION_DATE, Value::DateTime(i64::MAX));
        let out = replacement_dates(&old, 1_700_000_000, Some(3600));
        let get = |n: &str| out.iter().find(|a| a.name == n).and_then(|a| a.date_time());
        assert_eq!(get(names::ACTIVATION_DATE), Some(1_700_003_600));
        assert_eq!(get(names::DEACTIVATION_DATE), Some(i64::MAX));
    }

    #[tokio::test]
    async fn register_of_oversized_content_is_invalid_field() {
        use crate::ops::test_support::TestServer;
        use kmip::codec::Bytes;
        use kmip::messages::objects::OpaqueObject;
        use kmip::tables::OpaqueDataType;
        let t = TestServer::new();
        let ctx = t.ctx(kmip::ProtocolVersion::V1_4);
        let mut p = RegisterRequest {
            object_type: ObjectType::OPAQUE_OBJECT,
            ..Default::default()
        };
        p.set_object(Object::OpaqueObject(OpaqueObject {
            opaque_data_type: OpaqueDataType(0x8000_0001),
            opaque_data_value: Bytes(vec![7; kmipd_hsm::blob::MAX_PLAINTEXT_LEN]),
        }));
        let e = register(&ctx, &p).await.unwrap_err();
        assert!(matches!(e, OpError::InvalidField(_)), "{e:?}");
    }

    /// Metadata-only objects (KMIP 1.2): a key registered without its Key
    /// Value, with a Key Value Location.
    mod metadata_only {
        use super::*;
        use crate::ops::test_support::TestServer;
        use kmip::messages::attributes::TemplateAttribute;
        use kmip::messages::objects::{EncryptionKeyInformation, KeyWrappingSpecification};
        use kmip::messages::payloads::{GetRequest, LocateRequest};
        use kmip::tables::{KeyValueLocationType, WrappingMethod};

        fn location(value: &str, t: KeyValueLocationType) -> Attribute {
            Attribute::new(
                names::KEY_VALUE_LOCATION,
                Value::Structure(vec![
                    Ttlv::text(Tag::KEY_VALUE_LOCATION_VALUE, value),
                    Ttlv::enumeration(Tag::KEY_VALUE_LOCATION_TYPE, t.0),
                ]),
            )
        }

        fn aes_block(key: Option<&[u8]>) -> Object {
            Object::SymmetricKey(SymmetricKey {
                key_block: KeyBlock {
                    key_format_type: KeyFormatType::RAW,
                    key_value: key.map(|k| KeyValue::Plain {
                        key_material: Ttlv::bytes(Tag::KEY_MATERIAL, k.to_vec()),
                        attributes: Vec::new(),
                    }),
                    cryptographic_algorithm: Some(CryptographicAlgorithm::AES),
                    cryptographic_length: Some(128),
                    ..Default::default()
                },
            })
        }

        fn request(key: Option<&[u8]>, attributes: Vec<Attribute>) -> RegisterRequest {
            let mut p = RegisterRequest {
                object_type: ObjectType::SYMMETRIC_KEY,
                template_attribute: Some(TemplateAttribute {
                    names: Vec::new(),
                    attributes,
                }),
                ..Default::default()
            };
            p.set_object(aes_block(key));
            p
        }

        async fn register_mdo(t: &TestServer) -> String {
            let ctx = t.ctx(ProtocolVersion::V1_2);
            let p = request(
                None,
                vec![location(
                    "HSM-12345",
                    KeyValueLocationType::UNINTERPRETED_TEXT_STRING,
                )],
            );
            register(&ctx, &p).await.unwrap().unique_identifier
        }

        fn get_req(id: &str) -> GetRequest {
            GetRequest {
                unique_identifier: Some(id.to_owned()),
                ..Default::default()
            }
        }

        #[tokio::test]
        async fn register_sets_key_value_present_false_and_get_returns_no_key_value() {
            let t = TestServer::new();
            let id = register_mdo(&t).await;
            let ctx = t.ctx(ProtocolVersion::V1_2);
            let o = ctx.load(&id).unwrap();
            assert!(o.key_value_absent());
            assert_eq!(
                o.first(names::KEY_VALUE_PRESENT).map(|a| a.value.clone()),
                Some(Value::Boolean(false))
            );
            assert_eq!(o.all(names::KEY_VALUE_LOCATION).count(), 1);
            // Made elsewhere, at a time only the client knows; no digest of
            // a value kmipd never saw.
            assert!(o.first(names::ORIGINAL_CREATION_DATE).is_none());
            assert!(o.first(names::DIGEST).is_none());
            let r = crate::ops::get::get(&ctx, &get_req(&id)).await.unwrap();
            let obj = r.object().unwrap();
            let kb = obj.key_block().unwrap();
            assert!(kb.key_value.is_none());
            assert_eq!(kb.cryptographic_length, Some(128));
            // A 1.0/1.1 Key Block always has a Key Value.
            let e = crate::ops::get::get(&t.ctx(ProtocolVersion::V1_1), &get_req(&id))
                .await
                .unwrap_err();
            assert!(matches!(e, OpError::KeyValueNotPresent(_)), "{e:?}");
            assert_eq!(
                e.reason(ProtocolVersion::V1_1),
                kmip::tables::ResultReason::ITEM_NOT_FOUND
            );
            // Converting the (absent) value is refused the same way.
            let mut p = get_req(&id);
            p.key_format_type = Some(KeyFormatType::TRANSPARENT_SYMMETRIC_KEY);
            let e = crate::ops::get::get(&ctx, &p).await.unwrap_err();
            assert_eq!(
                e.reason(ProtocolVersion::V1_2),
                kmip::tables::ResultReason::KEY_VALUE_NOT_PRESENT
            );
        }

        #[tokio::test]
        async fn a_key_with_its_value_gets_no_key_value_present_and_keeps_its_creation_date() {
            let t = TestServer::new();
            let ctx = t.ctx(ProtocolVersion::V1_2);
            let p = request(
                Some(&[7; 16]),
                vec![Attribute::new(
                    names::ORIGINAL_CREATION_DATE,
                    Value::DateTime(38_520),
                )],
            );
            let id = register(&ctx, &p).await.unwrap().unique_identifier;
            let o = ctx.load(&id).unwrap();
            assert!(!o.key_value_absent());
            assert!(o.first(names::KEY_VALUE_PRESENT).is_none());
            assert_eq!(o.date(names::ORIGINAL_CREATION_DATE), Some(38_520));
            // Create still stamps its own keys' Original Creation Date and
            // refuses a client's.
            let c = CreateRequest {
                object_type: ObjectType::SYMMETRIC_KEY,
                template_attribute: Some(TemplateAttribute {
                    names: Vec::new(),
                    attributes: vec![
                        Attribute::new(
                            names::CRYPTOGRAPHIC_ALGORITHM,
                            Value::Enumeration(CryptographicAlgorithm::AES.0),
                        ),
                        Attribute::new(names::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
                    ],
                }),
                ..Default::default()
            };
            let id = create(&ctx, &c).await.unwrap().unique_identifier;
            assert_eq!(
                ctx.load(&id).unwrap().date(names::ORIGINAL_CREATION_DATE),
                Some(ctx.now)
            );
            let mut c2 = c.clone();
            c2.template_attribute
                .as_mut()
                .unwrap()
                .attributes
                .push(Attribute::new(
                    names::ORIGINAL_CREATION_DATE,
                    Value::DateTime(1),
                ));
            let e = create(&ctx, &c2).await.unwrap_err();
            assert!(matches!(e, OpError::ReadOnlyAttribute(_)), "{e:?}");
        }

        #[tokio::test]
        async fn register_rules() {
            let t = TestServer::new();
            // KMIP 1.1 requires the Key Value.
            let e = register(&t.ctx(ProtocolVersion::V1_1), &request(None, Vec::new()))
                .await
                .unwrap_err();
            assert!(matches!(e, OpError::MissingData(_)), "{e:?}");
            let ctx = t.ctx(ProtocolVersion::V1_2);
            // Key Value Present is the server's.
            let e = register(
                &ctx,
                &request(
                    None,
                    vec![Attribute::new(
                        names::KEY_VALUE_PRESENT,
                        Value::Boolean(false),
                    )],
                ),
            )
            .await
            .unwrap_err();
            assert!(matches!(e, OpError::ReadOnlyAttribute(_)), "{e:?}");
            // A Key Value Location needs a value and a known type.
            for bad in [
                location("", KeyValueLocationType::URI),
                location("x", KeyValueLocationType(9)),
                location(
                    &"u".repeat(crate::ops::attributes::MAX_KEY_VALUE_LOCATION + 1),
                    KeyValueLocationType::URI,
                ),
                Attribute::new(
                    names::KEY_VALUE_LOCATION,
                    Value::Structure(vec![Ttlv::text(Tag::KEY_VALUE_LOCATION_VALUE, "x")]),
                ),
            ] {
                let e = register(&ctx, &request(None, vec![bad])).await.unwrap_err();
                assert!(matches!(e, OpError::InvalidField(_)), "{e:?}");
            }
            // A Key Value Location may be given several times (URI and label).
            let p = request(
                None,
                vec![
                    location("pkcs11:token=T;object=K", KeyValueLocationType::URI),
                    location("HSM-1", KeyValueLocationType::UNINTERPRETED_TEXT_STRING),
                ],
            );
            let id = register(&ctx, &p).await.unwrap().unique_identifier;
            let o = ctx.load(&id).unwrap();
            let idx: Vec<_> = o.all(names::KEY_VALUE_LOCATION).map(|a| a.index).collect();
            assert_eq!(idx, [Some(0), Some(1)]);
        }

        #[tokio::test]
        async fn locate_by_key_value_present() {
            let t = TestServer::new();
            let mdo = register_mdo(&t).await;
            let ctx = t.ctx(ProtocolVersion::V1_2);
            let full = register(&ctx, &request(Some(&[1; 16]), Vec::new()))
                .await
                .unwrap()
                .unique_identifier;
            let find = |b: bool| {
                let p = LocateRequest {
                    attributes_1x: vec![Attribute::new(
                        names::KEY_VALUE_PRESENT,
                        Value::Boolean(b),
                    )],
                    ..Default::default()
                };
                crate::ops::locate::locate(&ctx, &p)
                    .unwrap()
                    .unique_identifiers
            };
            assert_eq!(find(false), vec![mdo]);
            assert_eq!(find(true), vec![full]);
        }

        #[tokio::test]
        async fn operations_that_need_the_value_are_refused() {
            let t = TestServer::new();
            let mdo = register_mdo(&t).await;
            let ctx = t.ctx(ProtocolVersion::V1_2);
            // An active AES wrapping key with its value.
            let mut p = request(
                Some(&[2; 16]),
                vec![
                    Attribute::new(
                        names::CRYPTOGRAPHIC_USAGE_MASK,
                        Value::Integer(kmip::tables::CryptographicUsageMask::WRAP_KEY.0 as i32),
                    ),
                    Attribute::new(names::ACTIVATION_DATE, Value::DateTime(ctx.now - 10)),
                ],
            );
            let kek = register(&ctx, &p).await.unwrap().unique_identifier;
            let wrap_with = |kek: &str| KeyWrappingSpecification {
                wrapping_method: WrappingMethod::ENCRYPT,
                encryption_key_information: Some(EncryptionKeyInformation {
                    unique_identifier: kek.to_owned(),
                    cryptographic_parameters: None,
                }),
                ..Default::default()
            };
            let not_present = |e: OpError| {
                assert_eq!(
                    e.reason(ProtocolVersion::V1_2),
                    kmip::tables::ResultReason::KEY_VALUE_NOT_PRESENT,
                    "{e:?}"
                )
            };
            // Get of the metadata-only key, wrapped: nothing to wrap.
            let mut g = get_req(&mdo);
            g.key_wrapping_specification = Some(wrap_with(&kek));
            not_present(crate::ops::get::get(&ctx, &g).await.unwrap_err());
            // A metadata-only wrapping key (Active, Wrap Key) cannot wrap.
            p = request(
                None,
                vec![
                    Attribute::new(
                        names::CRYPTOGRAPHIC_USAGE_MASK,
                        Value::Integer(kmip::tables::CryptographicUsageMask::WRAP_KEY.0 as i32),
                    ),
                    Attribute::new(names::ACTIVATION_DATE, Value::DateTime(ctx.now - 10)),
                ],
            );
            let mdo_kek = register(&ctx, &p).await.unwrap().unique_identifier;
            let full = register(&ctx, &request(Some(&[3; 16]), Vec::new()))
                .await
                .unwrap()
                .unique_identifier;
            let mut g = get_req(&full);
            g.key_wrapping_specification = Some(wrap_with(&mdo_kek));
            not_present(crate::ops::get::get(&ctx, &g).await.unwrap_err());
            // The same Get with the real KEK works.
            g.key_wrapping_specification = Some(wrap_with(&kek));
            crate::ops::get::get(&ctx, &g).await.unwrap();
            // Re-key: a replacement made here would not replace the key
            // kept elsewhere.
            let r = ReKeyRequest {
                unique_identifier: Some(mdo.clone()),
                ..Default::default()
            };
            not_present(rekey(&ctx, &r).await.unwrap_err());
            // kmipctl keys show --reveal has nothing to show.
            let reveal = Ttlv::structure(
                Tag::REQUEST_PAYLOAD,
                vec![Ttlv::text(crate::ops::admin::tag::OBJECT, mdo.clone())],
            );
            not_present(crate::ops::reveal::reveal(&ctx, &reveal).await.unwrap_err());
            // Destroy works (Pre-Active: no Activation Date).
            crate::ops::lifecycle::destroy(
                &ctx,
                &kmip::messages::payloads::IdRequest {
                    unique_identifier: Some(mdo.clone()),
                },
            )
            .await
            .unwrap();
            assert!(ctx.load(&mdo).unwrap().material.is_none());
        }
    }
}
