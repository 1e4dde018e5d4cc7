//! Create, Register and Re-key: new objects, their server-set attributes,
//! their wrapped content and their initial lifecycle state.

use super::attributes::{check_client_settable, request_attributes};
use super::OpCtx;
use crate::errors::{OpError, OpResult};
use crate::model::{names, ManagedObject};
use kmip::messages::attributes::{struct_value, Attribute, Link};
use kmip::messages::objects::{KeyBlock, KeyValue, Object, SecretData, SymmetricKey};
use kmip::messages::payloads::{
    CreateRequest, CreateResponse, ReKeyRequest, ReKeyResponse, RegisterRequest, RegisterResponse,
};
use kmip::tables::{
    CryptographicAlgorithm, KeyFormatType, LinkType, ObjectType, SecretDataType, State, Tag,
};
use kmip::{Ttlv, Value};
use rand::RngCore;
use zeroize::Zeroizing;

/// Byte length of a new symmetric key of `alg` and `bits`, or why not.
fn key_len(alg: CryptographicAlgorithm, bits: i32) -> OpResult<usize> {
    let ok = match alg {
        CryptographicAlgorithm::AES => matches!(bits, 128 | 192 | 256),
        CryptographicAlgorithm::V_3DES => matches!(bits, 112 | 168 | 192),
        CryptographicAlgorithm::HMAC_SHA1
        | CryptographicAlgorithm::HMAC_SHA224
        | CryptographicAlgorithm::HMAC_SHA256
        | CryptographicAlgorithm::HMAC_SHA384
        | CryptographicAlgorithm::HMAC_SHA512 => (64..=4096).contains(&bits) && bits % 8 == 0,
        other => {
            return Err(OpError::FeatureNotSupported(format!(
                "kmipd cannot generate {other} keys (AES, 3DES, HMAC-SHA1..512)"
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

/// Builds a new object's metadata from the client's attributes and the
/// server-set ones; the state follows the Activation Date.
fn new_object(
    ctx: &OpCtx<'_>,
    object_type: ObjectType,
    client: Vec<Attribute>,
) -> OpResult<ManagedObject> {
    let mut o = ManagedObject {
        id: new_id(),
        object_type,
        owner: ctx.caller.identity.clone(),
        group: ctx.caller.group.clone(),
        revision: 0,
        attributes: Vec::new(),
        material: None,
        archived: false,
    };
    for mut a in client {
        let i = o.next_index(&a.name);
        a.index = Some(i);
        o.attributes.push(a);
    }
    o.set(names::UNIQUE_IDENTIFIER, Value::TextString(o.id.clone()));
    o.set(names::OBJECT_TYPE, Value::Enumeration(object_type.0));
    o.set(names::INITIAL_DATE, Value::DateTime(ctx.now));
    o.set(names::ORIGINAL_CREATION_DATE, Value::DateTime(ctx.now));
    o.set(names::FRESH, Value::Boolean(true));
    let state = match o.date(names::ACTIVATION_DATE) {
        Some(d) if d <= ctx.now => State::ACTIVE,
        _ => State::PRE_ACTIVE,
    };
    o.set(names::STATE, Value::Enumeration(state.0));
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
fn derive_from_content(o: &mut ManagedObject, object: &Object) {
    if let Some(d) = digest(object) {
        o.set(names::DIGEST, d);
    }
    if object.key_block().is_some() {
        o.set(names::LEASE_TIME, Value::Interval(super::misc::LEASE_SECS));
    }
}

fn symmetric_key(alg: CryptographicAlgorithm, bits: i32, key: &[u8]) -> Object {
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
    let attrs = request_attributes(ctx, p.template_attribute.as_ref(), p.attributes.as_ref())?;
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
            let o = new_object(ctx, p.object_type, attrs)?;
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
            (obj, new_object(ctx, p.object_type, attrs)?)
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
    let mut attrs = request_attributes(ctx, p.template_attribute.as_ref(), p.attributes.as_ref())?;
    for a in &attrs {
        check_client_settable(&a.name, true)?;
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
            return Err(OpError::MissingData(
                "the Key Block has no Key Value".into(),
            ));
        }
    }
    if let Object::Certificate(c) = &object {
        attrs.push(Attribute::new(
            names::CERTIFICATE_TYPE,
            Value::Enumeration(c.certificate_type.0),
        ));
    }
    let mut o = new_object(ctx, p.object_type, attrs)?;
    // A registered object was made elsewhere: it is not Fresh.
    o.set(names::FRESH, Value::Boolean(false));
    derive_from_content(&mut o, &object);
    o.material = Some(ctx.protect(&o.id, &object).await?);
    ctx.save(None, &mut o).await?;
    Ok(RegisterResponse {
        unique_identifier: o.id,
        template_attribute: None,
    })
}

/// Attributes a Re-key copies from the old key to the new one.
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

/// Re-key: a replacement symmetric key with the old one's attributes,
/// Replaced/Replacement links, and dates moved by the Offset.
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
    let content = ctx.content(&old).await?;
    let kb = content
        .key_block()
        .ok_or_else(|| OpError::Internal("key without key block".into()))?;
    let alg = kb
        .cryptographic_algorithm
        .unwrap_or(CryptographicAlgorithm::AES);
    let bits = kb.cryptographic_length.unwrap_or(256);
    let extra = request_attributes(ctx, p.template_attribute.as_ref(), p.attributes.as_ref())?;
    for a in &extra {
        check_client_settable(&a.name, true)?;
    }
    let mut attrs: Vec<Attribute> = old
        .attributes
        .iter()
        .filter(|a| carried_over(a))
        .cloned()
        .collect();
    for a in extra {
        attrs.retain(|x| x.name != a.name || kmip::messages::attributes::is_custom(&a.name));
        attrs.push(a);
    }
    if let Some(offset) = p.offset {
        let activation = ctx.now + offset.0 as i64;
        attrs.push(Attribute::new(
            names::ACTIVATION_DATE,
            Value::DateTime(activation),
        ));
        if let Some(old_act) = old.date(names::ACTIVATION_DATE) {
            for n in [
                names::PROCESS_START_DATE,
                names::PROTECT_STOP_DATE,
                names::DEACTIVATION_DATE,
            ] {
                if let Some(d) = old.date(n) {
                    attrs.push(Attribute::new(
                        n,
                        Value::DateTime(activation + (d - old_act)),
                    ));
                }
            }
        }
    }
    let mut key = Zeroizing::new(vec![0u8; key_len(alg, bits)?]);
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut new = new_object(ctx, ObjectType::SYMMETRIC_KEY, attrs)?;
    new.group = old.group.clone();
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
    new.material = Some(
        ctx.protect(&new.id, &symmetric_key(alg, bits, &key))
            .await?,
    );
    let mut updated = old.clone();
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
