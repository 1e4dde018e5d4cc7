//! Create Split Key and Join Split Key (KMIP 1.2+), and the checks on a
//! Split Key object that Register applies. The arithmetic is in
//! [`crate::sharing`].
//!
//! Each part is a managed object of type Split Key like any other: its own
//! Unique Identifier, attributes and content wrapped under the master key.
//! Create Split Key stores every part in one transaction (all or none),
//! returns the identifiers in Key Part Identifier order and leaves the ID
//! Placeholder at part 1. Parts carry a Parent Link to the object that was
//! split (when an existing one was) and Previous/Next Links to their
//! neighbours, so any part leads to the others.
//!
//! Supported methods: XOR (threshold = parts) and Polynomial Sharing
//! GF(2^8). Polynomial Sharing GF(2^16) and Prime Field are refused with
//! Feature Not Supported. Joining fewer parts than the threshold is a
//! Cryptographic Failure, as the OASIS TC-SJ cases expect.

use super::attributes::{check_client_settable, request_attributes};
use super::create::{derive_from_content, key_len, new_object, Origin};
use super::OpCtx;
use crate::errors::{OpError, OpResult};
use crate::model::{names, ManagedObject};
use crate::sharing::{self, SharingError, MAX_PARTS};
use kmip::messages::attributes::{struct_value, Attribute, Link};
use kmip::messages::objects::{KeyBlock, KeyValue, Object, SecretData, SplitKey};
use kmip::messages::payloads::{
    CreateSplitKeyRequest, CreateSplitKeyResponse, JoinSplitKeyRequest, JoinSplitKeyResponse,
};
use kmip::tables::{
    CryptographicAlgorithm, KeyFormatType, LinkType, ObjectType, SecretDataType, SplitKeyMethod,
    Tag,
};
use kmip::{Ttlv, Value};
use rand::RngCore;
use zeroize::Zeroizing;

impl From<SharingError> for OpError {
    fn from(e: SharingError) -> Self {
        OpError::InvalidField(e.to_string())
    }
}

/// Refuses the methods kmipd does not implement.
fn supported(method: SplitKeyMethod) -> OpResult<()> {
    match method {
        SplitKeyMethod::XOR | SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_8 => Ok(()),
        other => Err(OpError::FeatureNotSupported(format!(
            "Split Key Method {other} is not supported; kmipd splits with XOR and \
             Polynomial Sharing GF (2^8)"
        ))),
    }
}

/// The split parameters of a Split Key object or a request: counts in
/// range, XOR needing every part, Prime Field Size only with Prime Field.
pub fn check_parameters(
    parts: i32,
    threshold: i32,
    method: SplitKeyMethod,
    prime_field_size: bool,
) -> OpResult<(usize, usize)> {
    let n = usize::try_from(parts)
        .ok()
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| {
            OpError::InvalidField(format!(
                "Split Key Parts is {parts}; it must be 1 to {MAX_PARTS}"
            ))
        })?;
    let k = usize::try_from(threshold)
        .ok()
        .filter(|k| (1..=n).contains(k))
        .ok_or_else(|| {
            OpError::InvalidField(format!(
                "Split Key Threshold is {threshold}; it must be 1 to Split Key Parts ({parts})"
            ))
        })?;
    if method == SplitKeyMethod::XOR && k != n {
        return Err(OpError::InvalidField(format!(
            "XOR needs every part: Split Key Threshold ({threshold}) must equal Split Key \
             Parts ({parts})"
        )));
    }
    if prime_field_size != (method == SplitKeyMethod::POLYNOMIAL_SHARING_PRIME_FIELD) {
        return Err(OpError::InvalidField(
            "Prime Field Size goes with, and only with, Polynomial Sharing Prime Field".into(),
        ));
    }
    Ok((n, k))
}

/// The checks Register applies to a Split Key object: its parameters, and a
/// Key Part Identifier among 1..=Split Key Parts.
pub fn check_split_key(sk: &SplitKey) -> OpResult<()> {
    check_parameters(
        sk.split_key_parts,
        sk.split_key_threshold,
        sk.split_key_method,
        sk.prime_field_size.is_some(),
    )?;
    if !(1..=sk.split_key_parts).contains(&sk.key_part_identifier) {
        return Err(OpError::InvalidField(format!(
            "Key Part Identifier is {}; it must be 1 to Split Key Parts ({})",
            sk.key_part_identifier, sk.split_key_parts
        )));
    }
    Ok(())
}

/// The bytes of a Key Block's Key Material, when it is in clear and a Byte
/// String.
fn material(kb: &KeyBlock, what: &str) -> OpResult<Zeroizing<Vec<u8>>> {
    match &kb.key_value {
        Some(KeyValue::Plain { key_material, .. }) => key_material
            .as_bytes()
            .map(|b| Zeroizing::new(b.to_vec()))
            .map_err(|_| {
                OpError::InvalidField(format!(
                    "{what} has structured Key Material ({}); only byte strings are split and joined",
                    kb.key_format_type
                ))
            }),
        Some(KeyValue::Wrapped(_)) => Err(OpError::InvalidField(format!(
            "{what} is wrapped; it cannot be split or joined"
        ))),
        None => Err(OpError::KeyValueNotPresent(format!("{what} has no Key Value"))),
    }
}

fn link(ctx: &OpCtx<'_>, o: &mut ManagedObject, t: LinkType, to: &str) {
    let i = o.next_index(names::LINK);
    o.attributes.push(Attribute {
        name: names::LINK.into(),
        index: Some(i),
        value: struct_value(
            &Link {
                link_type: t,
                linked_object_identifier: to.to_owned(),
            },
            ctx.ctx(),
        ),
    });
}

/// Replaces every instance of `name` in `attrs` with one value.
fn put(attrs: &mut Vec<Attribute>, name: &str, value: Value) {
    attrs.retain(|a| a.name != name);
    attrs.push(Attribute::new(name, value));
}

/// Create Split Key: splits the object named by the Unique Identifier (a
/// Symmetric Key or Secret Data), or a new symmetric key generated from the
/// request's Cryptographic Algorithm and Length, into Split Key objects.
/// The parts take the request's attributes; the split object's own
/// Cryptographic Algorithm and Length take precedence over the request's.
pub async fn create_split_key(
    ctx: &OpCtx<'_>,
    p: &CreateSplitKeyRequest,
) -> OpResult<CreateSplitKeyResponse> {
    if p.object_type != ObjectType::SPLIT_KEY {
        return Err(OpError::InvalidField(format!(
            "Create Split Key makes Split Keys, not {}",
            p.object_type
        )));
    }
    supported(p.split_key_method)?;
    let (n, k) = check_parameters(
        p.split_key_parts,
        p.split_key_threshold,
        p.split_key_method,
        p.prime_field_size.is_some(),
    )?;
    let mut attrs =
        request_attributes(ctx, p.template_attribute.as_ref(), p.attributes.as_ref()).await?;
    for a in &attrs {
        check_client_settable(&a.name, true)?;
    }
    // The secret and the Key Block fields the parts copy.
    // The object split, whose tenant group, credential principal and
    // Operation Policy Name its parts keep (the parts are the key).
    let mut source: Option<ManagedObject> = None;
    let (secret, format, alg, bits) = match &p.unique_identifier {
        Some(id) => {
            let o = ctx.load_online(id)?;
            source = Some(o.clone());
            if o.is_destroyed() {
                return Err(OpError::Destroyed(format!("object {id} is destroyed")));
            }
            if !matches!(
                o.object_type,
                ObjectType::SYMMETRIC_KEY | ObjectType::SECRET_DATA
            ) {
                return Err(OpError::FeatureNotSupported(format!(
                    "kmipd splits Symmetric Keys and Secret Data, not {}",
                    o.object_type
                )));
            }
            let content = ctx.content(&o).await?;
            let kb = content
                .key_block()
                .ok_or_else(|| OpError::Internal(format!("object {id} has no Key Block")))?;
            let secret = material(kb, &format!("object {id}"))?;
            (
                secret,
                kb.key_format_type,
                kb.cryptographic_algorithm,
                kb.cryptographic_length,
            )
        }
        None => {
            let find = |n: &str| attrs.iter().find(|a| a.name == n);
            let alg = find(names::CRYPTOGRAPHIC_ALGORITHM)
                .and_then(|a| a.enumeration())
                .map(CryptographicAlgorithm)
                .ok_or_else(|| {
                    OpError::MissingData(
                        "Cryptographic Algorithm is required to generate the key to split".into(),
                    )
                })?;
            let bits = find(names::CRYPTOGRAPHIC_LENGTH)
                .and_then(|a| a.integer())
                .ok_or_else(|| {
                    OpError::MissingData(
                        "Cryptographic Length is required to generate the key to split".into(),
                    )
                })?;
            let mut key = Zeroizing::new(vec![0u8; key_len(alg, bits)?]);
            rand::rngs::OsRng.fill_bytes(&mut key);
            (key, KeyFormatType::RAW, Some(alg), Some(bits))
        }
    };
    if let Some(alg) = alg {
        put(
            &mut attrs,
            names::CRYPTOGRAPHIC_ALGORITHM,
            Value::Enumeration(alg.0),
        );
    }
    if let Some(bits) = bits {
        put(
            &mut attrs,
            names::CRYPTOGRAPHIC_LENGTH,
            Value::Integer(bits),
        );
    }
    check_work(secret.len(), n, k)?;
    let shares = super::batch::blocking_section(|| match p.split_key_method {
        SplitKeyMethod::XOR => sharing::split_xor(&secret, n, &mut rand::rngs::OsRng),
        _ => sharing::split_gf256(&secret, n, k, &mut rand::rngs::OsRng),
    })?;
    drop(secret);
    let mut objects = Vec::with_capacity(n);
    for (i, share) in shares.iter().enumerate() {
        let part = Object::SplitKey(SplitKey {
            split_key_parts: p.split_key_parts,
            // i < n <= 255.
            key_part_identifier: i as i32 + 1,
            split_key_threshold: p.split_key_threshold,
            split_key_method: p.split_key_method,
            prime_field_size: None,
            key_block: KeyBlock {
                key_format_type: format,
                key_value: Some(KeyValue::Plain {
                    key_material: Ttlv::bytes(Tag::KEY_MATERIAL, share.to_vec()),
                    attributes: Vec::new(),
                }),
                cryptographic_algorithm: alg,
                cryptographic_length: bits,
                ..Default::default()
            },
        });
        let mut o = new_object(ctx, ObjectType::SPLIT_KEY, attrs.clone(), Origin::Generated)?;
        if let Some(src) = &source {
            inherit(&mut o, src);
        }
        derive_from_content(&mut o, &part);
        objects.push((o, part));
    }
    drop(shares);
    let ids: Vec<String> = objects.iter().map(|(o, _)| o.id.clone()).collect();
    for (i, (o, part)) in objects.iter_mut().enumerate() {
        if let Some(parent) = &p.unique_identifier {
            link(ctx, o, LinkType::PARENT_LINK, parent);
        }
        if i > 0 {
            link(ctx, o, LinkType::PREVIOUS_LINK, &ids[i - 1]);
        }
        if i + 1 < n {
            link(ctx, o, LinkType::NEXT_LINK, &ids[i + 1]);
        }
        o.material = Some(ctx.protect(&o.id, part).await?);
    }
    ctx.save_all(objects.iter_mut().map(|(o, _)| (None, o)).collect())
        .await?;
    Ok(CreateSplitKeyResponse {
        unique_identifiers: ids,
        template_attribute: None,
    })
}

/// Longest secret kmipd splits or joins: keys and seeds are short, and the
/// work grows with length × parts × threshold.
pub const MAX_SECRET_LEN: usize = 1024;

/// Most GF(2^8) multiplications one split or join may cost (about 30 ms).
const MAX_WORK: usize = 1 << 22;

fn check_work(len: usize, parts: usize, threshold: usize) -> OpResult<()> {
    if len > MAX_SECRET_LEN || len.saturating_mul(parts).saturating_mul(threshold) > MAX_WORK {
        return Err(OpError::InvalidField(format!(
            "a {len}-byte secret in {parts} parts with threshold {threshold} is more than kmipd \
             splits (secrets up to {MAX_SECRET_LEN} bytes, length × parts × threshold up to \
             {MAX_WORK})"
        )));
    }
    Ok(())
}

/// What a part or a joined key keeps of the object it comes from: its
/// tenant group, its credential principal and its Operation Policy Name,
/// so splitting never moves a key out of reach of its owners' rules.
fn inherit(o: &mut ManagedObject, from: &ManagedObject) {
    o.group = from.group.clone();
    o.creator = from.creator.clone();
    if let Some(a) = from.first(names::OPERATION_POLICY_NAME) {
        o.set(names::OPERATION_POLICY_NAME, a.value.clone());
    }
}

/// A loaded part: its split parameters and Key Material.
struct Part {
    id: String,
    sk: SplitKey,
    bytes: Zeroizing<Vec<u8>>,
}

/// Join Split Key: rebuilds a Symmetric Key or Secret Data from at least
/// Split Key Threshold parts of one split and registers it as a new object.
pub async fn join_split_key(
    ctx: &OpCtx<'_>,
    p: &JoinSplitKeyRequest,
) -> OpResult<JoinSplitKeyResponse> {
    match p.object_type {
        ObjectType::SYMMETRIC_KEY if p.secret_data_type.is_some() => {
            return Err(OpError::InvalidField(
                "Secret Data Type applies to Secret Data, not Symmetric Keys".into(),
            ))
        }
        ObjectType::SYMMETRIC_KEY | ObjectType::SECRET_DATA => {}
        other => {
            return Err(OpError::InvalidField(format!(
                "Join Split Key makes Symmetric Keys and Secret Data, not {other}"
            )))
        }
    }
    if p.unique_identifiers.is_empty() {
        return Err(OpError::MissingData(
            "Join Split Key needs the Unique Identifiers of the parts".into(),
        ));
    }
    if p.unique_identifiers.len() > MAX_PARTS {
        return Err(OpError::InvalidField(format!(
            "{} parts given; a split has at most {MAX_PARTS}",
            p.unique_identifiers.len()
        )));
    }
    for (i, id) in p.unique_identifiers.iter().enumerate() {
        if p.unique_identifiers[..i].contains(id) {
            return Err(OpError::InvalidField(format!("part {id} is given twice")));
        }
    }
    let mut attrs =
        request_attributes(ctx, p.template_attribute.as_ref(), p.attributes.as_ref()).await?;
    for a in &attrs {
        check_client_settable(&a.name, true)?;
    }
    let mut parts = Vec::with_capacity(p.unique_identifiers.len());
    // The parts' tenant group, principal and policy, which the joined key
    // keeps: parts of different tenants or principals are not one split.
    let mut origin: Option<ManagedObject> = None;
    for id in &p.unique_identifiers {
        let o = ctx.load_online(id)?;
        match &origin {
            None => origin = Some(o.clone()),
            Some(first) if first.group != o.group || first.creator != o.creator => {
                return Err(OpError::InvalidField(format!(
                    "parts {} and {id} belong to different groups or principals",
                    first.id
                )))
            }
            Some(_) => {}
        }
        if o.object_type != ObjectType::SPLIT_KEY {
            return Err(OpError::IllegalOperation(format!(
                "object {id} is a {}, not a Split Key",
                o.object_type
            )));
        }
        if o.is_destroyed() {
            return Err(OpError::Destroyed(format!("object {id} is destroyed")));
        }
        let Object::SplitKey(sk) = ctx.content(&o).await? else {
            return Err(OpError::Internal(format!(
                "object {id} holds no Split Key content"
            )));
        };
        let bytes = material(&sk.key_block, &format!("part {id}"))?;
        parts.push(Part {
            id: id.clone(),
            sk,
            bytes,
        });
    }
    // Every part must be of one split.
    let first = &parts[0].sk;
    supported(first.split_key_method)?;
    let (n, k) = check_parameters(
        first.split_key_parts,
        first.split_key_threshold,
        first.split_key_method,
        first.prime_field_size.is_some(),
    )?;
    for (i, part) in parts.iter().enumerate() {
        let sk = &part.sk;
        if sk.split_key_parts != first.split_key_parts
            || sk.split_key_threshold != first.split_key_threshold
            || sk.split_key_method != first.split_key_method
            || sk.prime_field_size != first.prime_field_size
            || sk.key_block.key_format_type != first.key_block.key_format_type
        {
            return Err(OpError::InvalidField(format!(
                "part {} is not of the same split as part {} (parts, threshold, method or \
                 key format differ)",
                part.id, parts[0].id
            )));
        }
        let x = sk.key_part_identifier;
        if !(1..=first.split_key_parts).contains(&x) {
            return Err(OpError::InvalidField(format!(
                "part {} has Key Part Identifier {x}, outside 1 to {n}",
                part.id
            )));
        }
        // Two parts with one identifier come from two splits (XOR would
        // otherwise join them into a wrong key).
        if let Some(other) = parts[..i].iter().find(|p| p.sk.key_part_identifier == x) {
            return Err(OpError::InvalidField(format!(
                "parts {} and {} are both Key Part {x}: they are not of one split",
                other.id, part.id
            )));
        }
    }
    if parts.len() < k {
        return Err(OpError::Cryptographic(format!(
            "{} part(s) given; this split needs at least {k} of its {n}",
            parts.len()
        )));
    }
    check_work(parts[0].bytes.len(), parts.len(), k)?;
    let secret = match first.split_key_method {
        SplitKeyMethod::XOR => {
            let refs: Vec<&[u8]> = parts.iter().map(|p| p.bytes.as_slice()).collect();
            sharing::join_xor(&refs)?
        }
        _ => {
            let shares: Vec<(u8, &[u8])> = parts
                .iter()
                // Checked above: 1 <= identifier <= parts <= 255.
                .map(|p| (p.sk.key_part_identifier as u8, p.bytes.as_slice()))
                .collect();
            sharing::join_gf256(&shares)?
        }
    };
    // The parts' own algorithm and length, when they carry them.
    let part_alg = parts
        .iter()
        .find_map(|p| p.sk.key_block.cryptographic_algorithm);
    let part_bits = parts
        .iter()
        .find_map(|p| p.sk.key_block.cryptographic_length);
    drop(parts);
    let object = match p.object_type {
        ObjectType::SYMMETRIC_KEY => {
            let find = |n: &str| attrs.iter().find(|a| a.name == n);
            let alg = find(names::CRYPTOGRAPHIC_ALGORITHM)
                .and_then(|a| a.enumeration())
                .map(CryptographicAlgorithm)
                .or(part_alg)
                .ok_or_else(|| {
                    OpError::MissingData(
                        "Cryptographic Algorithm is required for the joined Symmetric Key".into(),
                    )
                })?;
            let actual_bits = i32::try_from(secret.len() * 8)
                .map_err(|_| OpError::InvalidField("the joined key is too long".into()))?;
            let bits = find(names::CRYPTOGRAPHIC_LENGTH)
                .and_then(|a| a.integer())
                .or(part_bits)
                .unwrap_or(actual_bits);
            // 3DES-112 is 16 bytes; other lengths are whole bytes.
            let want = match key_len(alg, bits) {
                Ok(len) => Some(len),
                Err(OpError::FeatureNotSupported(_)) => {
                    (bits > 0 && bits % 8 == 0).then_some(bits as usize / 8)
                }
                Err(e) => return Err(e),
            };
            if want != Some(secret.len()) {
                return Err(OpError::InvalidField(format!(
                    "the joined key is {actual_bits} bits; a {bits}-bit {alg} key was asked for"
                )));
            }
            put(
                &mut attrs,
                names::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(alg.0),
            );
            put(
                &mut attrs,
                names::CRYPTOGRAPHIC_LENGTH,
                Value::Integer(bits),
            );
            super::create::symmetric_key(alg, bits, &secret)
        }
        _ => Object::SecretData(SecretData {
            secret_data_type: p.secret_data_type.unwrap_or(SecretDataType::SEED),
            key_block: KeyBlock {
                key_format_type: KeyFormatType::OPAQUE,
                key_value: Some(KeyValue::Plain {
                    key_material: Ttlv::bytes(Tag::KEY_MATERIAL, secret.to_vec()),
                    attributes: Vec::new(),
                }),
                ..Default::default()
            },
        }),
    };
    drop(secret);
    let mut o = new_object(ctx, p.object_type, attrs, Origin::Generated)?;
    if let Some(src) = &origin {
        inherit(&mut o, src);
    }
    derive_from_content(&mut o, &object);
    o.material = Some(ctx.protect(&o.id, &object).await?);
    ctx.save(None, &mut o).await?;
    Ok(JoinSplitKeyResponse {
        unique_identifier: o.id,
        template_attribute: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::create::register;
    use crate::ops::get::get;
    use crate::ops::test_support::TestServer;
    use kmip::messages::attributes::{from_value, TemplateAttribute};
    use kmip::messages::payloads::{GetRequest, RegisterRequest};
    use kmip::tables::{Operation, ResultReason, State};
    use kmip::ProtocolVersion;

    const V: ProtocolVersion = ProtocolVersion::V1_2;
    const KEY: &str = "0102030405060708090A0B0C0D0E0F10";

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn template(attrs: Vec<Attribute>) -> Option<TemplateAttribute> {
        Some(TemplateAttribute {
            names: Vec::new(),
            attributes: attrs,
        })
    }

    fn aes(bits: i32) -> Vec<Attribute> {
        vec![
            Attribute::new(
                names::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(CryptographicAlgorithm::AES.0),
            ),
            Attribute::new(names::CRYPTOGRAPHIC_LENGTH, Value::Integer(bits)),
        ]
    }

    async fn register_key(ctx: &OpCtx<'_>, key: &[u8]) -> String {
        let mut p = RegisterRequest {
            object_type: ObjectType::SYMMETRIC_KEY,
            ..Default::default()
        };
        p.set_object(crate::ops::create::symmetric_key(
            CryptographicAlgorithm::AES,
            key.len() as i32 * 8,
            key,
        ));
        register(ctx, &p).await.unwrap().unique_identifier
    }

    async fn register_part(ctx: &OpCtx<'_>, sk: SplitKey) -> OpResult<String> {
        let mut p = RegisterRequest {
            object_type: ObjectType::SPLIT_KEY,
            ..Default::default()
        };
        p.set_object(Object::SplitKey(sk));
        Ok(register(ctx, &p).await?.unique_identifier)
    }

    fn oasis_part(x: i32, hex: &str) -> SplitKey {
        SplitKey {
            split_key_parts: 4,
            key_part_identifier: x,
            split_key_threshold: 2,
            split_key_method: SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_8,
            prime_field_size: None,
            key_block: KeyBlock {
                key_format_type: KeyFormatType::RAW,
                key_value: Some(KeyValue::Plain {
                    key_material: Ttlv::bytes(Tag::KEY_MATERIAL, h(hex)),
                    attributes: Vec::new(),
                }),
                ..Default::default()
            },
        }
    }

    async fn fetch(ctx: &OpCtx<'_>, id: &str) -> Object {
        let r = get(
            ctx,
            &GetRequest {
                unique_identifier: Some(id.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        r.object().unwrap()
    }

    async fn join(
        ctx: &OpCtx<'_>,
        ids: &[&String],
        object_type: ObjectType,
        attrs: Vec<Attribute>,
    ) -> OpResult<Vec<u8>> {
        let r = join_split_key(
            ctx,
            &JoinSplitKeyRequest {
                object_type,
                unique_identifiers: ids.iter().map(|s| s.to_string()).collect(),
                template_attribute: template(attrs),
                ..Default::default()
            },
        )
        .await?;
        let o = fetch(ctx, &r.unique_identifier).await;
        Ok(o.key_block()
            .unwrap()
            .key_value
            .as_ref()
            .unwrap()
            .key_bytes()
            .unwrap()
            .to_vec())
    }

    fn split_req(
        id: Option<&str>,
        n: i32,
        k: i32,
        method: SplitKeyMethod,
    ) -> CreateSplitKeyRequest {
        CreateSplitKeyRequest {
            object_type: ObjectType::SPLIT_KEY,
            unique_identifier: id.map(str::to_owned),
            split_key_parts: n,
            split_key_threshold: k,
            split_key_method: method,
            ..Default::default()
        }
    }

    fn links(o: &ManagedObject) -> Vec<(LinkType, String)> {
        o.all(names::LINK)
            .map(|a| {
                let l: Link = from_value(&a.value, Ctx::new(V)).unwrap();
                (l.link_type, l.linked_object_identifier)
            })
            .collect()
    }

    use kmip::Ctx;

    #[tokio::test]
    async fn split_an_existing_key_then_join_every_threshold_subset() {
        let t = TestServer::new();
        let ctx = t.ctx(V);
        let key = register_key(&ctx, &h(KEY)).await;
        let r = create_split_key(
            &ctx,
            &split_req(Some(&key), 5, 3, SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_8),
        )
        .await
        .unwrap();
        let ids = r.unique_identifiers;
        assert_eq!(ids.len(), 5);
        for (i, id) in ids.iter().enumerate() {
            let Object::SplitKey(sk) = fetch(&ctx, id).await else {
                panic!("part {id} is not a Split Key")
            };
            assert_eq!(
                (
                    sk.split_key_parts,
                    sk.key_part_identifier,
                    sk.split_key_threshold
                ),
                (5, i as i32 + 1, 3)
            );
            assert_eq!(
                sk.split_key_method,
                SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_8
            );
            assert_eq!(sk.key_block.key_format_type, KeyFormatType::RAW);
            assert_eq!(
                sk.key_block.cryptographic_algorithm,
                Some(CryptographicAlgorithm::AES)
            );
            assert_eq!(sk.key_block.cryptographic_length, Some(128));
            let share = sk
                .key_block
                .key_value
                .as_ref()
                .unwrap()
                .key_bytes()
                .unwrap();
            assert_eq!(share.len(), 16);
            assert_ne!(share, h(KEY).as_slice());
            // Stored like every object: Pre-Active, with its own attributes,
            // linked to the split key and its neighbours.
            let o = ctx.load(id).unwrap();
            assert_eq!(o.object_type, ObjectType::SPLIT_KEY);
            assert_eq!(o.stored_state(), State::PRE_ACTIVE);
            assert!(o.material.is_some());
            let l = links(&o);
            assert!(l.contains(&(LinkType::PARENT_LINK, key.clone())));
            assert_eq!(
                l.iter()
                    .any(|x| *x == (LinkType::PREVIOUS_LINK, ids[i.max(1) - 1].clone())),
                i > 0
            );
            assert_eq!(
                l.iter()
                    .any(|x| *x == (LinkType::NEXT_LINK, ids[(i + 1).min(4)].clone())),
                i < 4
            );
        }
        // Every 3-subset (and larger) joins to the key; pairs do not.
        for mask in 1u32..32 {
            let subset: Vec<&String> = (0..5)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| &ids[i])
                .collect();
            let r = join(&ctx, &subset, ObjectType::SYMMETRIC_KEY, aes(128)).await;
            if subset.len() >= 3 {
                assert_eq!(r.unwrap(), h(KEY), "subset {mask:#b}");
            } else {
                let e = r.unwrap_err();
                assert_eq!(e.reason(V), ResultReason::CRYPTOGRAPHIC_FAILURE, "{e}");
            }
        }
    }

    #[tokio::test]
    async fn split_a_generated_key_with_xor() {
        let t = TestServer::new();
        let ctx = t.ctx(V);
        let mut p = split_req(None, 3, 3, SplitKeyMethod::XOR);
        p.template_attribute = template(aes(256));
        let ids = create_split_key(&ctx, &p).await.unwrap().unique_identifiers;
        assert_eq!(ids.len(), 3);
        // Created parts carry the request's attributes.
        let o = ctx.load(&ids[0]).unwrap();
        assert_eq!(
            o.first(names::CRYPTOGRAPHIC_LENGTH)
                .and_then(|a| a.integer()),
            Some(256)
        );
        assert!(links(&o).iter().all(|(t, _)| *t != LinkType::PARENT_LINK));
        let all: Vec<&String> = ids.iter().collect();
        let key = join(&ctx, &all, ObjectType::SYMMETRIC_KEY, Vec::new())
            .await
            .unwrap();
        assert_eq!(key.len(), 32);
        // Joined again in another order: the same key.
        let rev: Vec<&String> = ids.iter().rev().collect();
        assert_eq!(
            join(&ctx, &rev, ObjectType::SYMMETRIC_KEY, Vec::new())
                .await
                .unwrap(),
            key
        );
        let e = join(&ctx, &all[..2], ObjectType::SYMMETRIC_KEY, Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::Cryptographic(_)), "{e:?}");
    }

    #[tokio::test]
    async fn registered_oasis_parts_join_to_the_literal_key() {
        // TC-SJ-3-12: parts registered by the client, joined 1 and 3.
        let t = TestServer::new();
        let ctx = t.ctx(V);
        let parts = [
            "66C46A7754F94DE420C7B1A7FFF5EC56",
            "CF93D1E2A7E593CD5B8D6247F4E5D49C",
            "A855B891F61AD9217240D8EC061E37DA",
            "803DBAD55CDD329FAD19D99AE2C5A415",
        ];
        let mut ids = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            ids.push(
                register_part(&ctx, oasis_part(i as i32 + 1, p))
                    .await
                    .unwrap(),
            );
        }
        let key = join(
            &ctx,
            &[&ids[0], &ids[2]],
            ObjectType::SYMMETRIC_KEY,
            aes(128),
        )
        .await
        .unwrap();
        assert_eq!(key, h(KEY));
        // The parts carry no algorithm: a Symmetric Key needs one from the request.
        let e = join(
            &ctx,
            &[&ids[1], &ids[3]],
            ObjectType::SYMMETRIC_KEY,
            Vec::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, OpError::MissingData(_)), "{e:?}");
        // ... and the length must be the key's.
        let e = join(
            &ctx,
            &[&ids[1], &ids[3]],
            ObjectType::SYMMETRIC_KEY,
            aes(256),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, OpError::InvalidField(_)), "{e:?}");
        // As Secret Data, with its type.
        let r = join_split_key(
            &ctx,
            &JoinSplitKeyRequest {
                object_type: ObjectType::SECRET_DATA,
                unique_identifiers: vec![ids[3].clone(), ids[1].clone()],
                secret_data_type: Some(SecretDataType::PASSWORD),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let Object::SecretData(sd) = fetch(&ctx, &r.unique_identifier).await else {
            panic!("not Secret Data")
        };
        assert_eq!(sd.secret_data_type, SecretDataType::PASSWORD);
        assert_eq!(sd.key_block.key_value.unwrap().key_bytes().unwrap(), h(KEY));
        // One part alone: below the threshold.
        let e = join(&ctx, &[&ids[2]], ObjectType::SYMMETRIC_KEY, aes(128))
            .await
            .unwrap_err();
        assert_eq!(e.reason(V), ResultReason::CRYPTOGRAPHIC_FAILURE);
    }

    #[tokio::test]
    async fn bad_requests_get_their_result_reasons() {
        let t = TestServer::new();
        let ctx = t.ctx(V);
        let key = register_key(&ctx, &h(KEY)).await;
        let gf8 = SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_8;
        let reason = |r: OpResult<CreateSplitKeyResponse>| r.unwrap_err().reason(V);
        let cases = [
            (
                split_req(Some(&key), 3, 4, gf8),
                ResultReason::INVALID_FIELD,
            ),
            (
                split_req(Some(&key), 3, 0, gf8),
                ResultReason::INVALID_FIELD,
            ),
            (
                split_req(Some(&key), 0, 0, gf8),
                ResultReason::INVALID_FIELD,
            ),
            (
                split_req(Some(&key), 256, 2, gf8),
                ResultReason::INVALID_FIELD,
            ),
            (
                split_req(Some(&key), 3, 2, SplitKeyMethod::XOR),
                ResultReason::INVALID_FIELD,
            ),
            (
                split_req(Some(&key), 3, 2, SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_16),
                ResultReason::FEATURE_NOT_SUPPORTED,
            ),
            (
                split_req(
                    Some(&key),
                    3,
                    2,
                    SplitKeyMethod::POLYNOMIAL_SHARING_PRIME_FIELD,
                ),
                ResultReason::FEATURE_NOT_SUPPORTED,
            ),
            (
                split_req(Some("nope"), 3, 2, gf8),
                ResultReason::ITEM_NOT_FOUND,
            ),
            // A new key needs its algorithm and length.
            (split_req(None, 3, 2, gf8), ResultReason::MISSING_DATA),
        ];
        for (req, want) in cases {
            assert_eq!(reason(create_split_key(&ctx, &req).await), want, "{req:?}");
        }
        let mut wrong_type = split_req(Some(&key), 3, 2, gf8);
        wrong_type.object_type = ObjectType::SYMMETRIC_KEY;
        assert_eq!(
            reason(create_split_key(&ctx, &wrong_type).await),
            ResultReason::INVALID_FIELD
        );
        // Nothing was stored by the refused requests: only the key exists.
        assert_eq!(
            t.server.catalog.get(&key).unwrap().map(|o| o.id),
            Some(key.clone())
        );

        // Join: parts of two different splits, duplicates, non-parts.
        let a = create_split_key(&ctx, &split_req(Some(&key), 3, 2, gf8))
            .await
            .unwrap()
            .unique_identifiers;
        let b = create_split_key(&ctx, &split_req(Some(&key), 4, 2, gf8))
            .await
            .unwrap()
            .unique_identifiers;
        let e = join(&ctx, &[&a[0], &b[1]], ObjectType::SYMMETRIC_KEY, aes(128))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::InvalidField(_)), "{e:?}");
        // Same parameters, same Key Part Identifier, two splits.
        let x1 = create_split_key(&ctx, &split_req(Some(&key), 2, 2, SplitKeyMethod::XOR))
            .await
            .unwrap()
            .unique_identifiers;
        let x2 = create_split_key(&ctx, &split_req(Some(&key), 2, 2, SplitKeyMethod::XOR))
            .await
            .unwrap()
            .unique_identifiers;
        let e = join(&ctx, &[&x1[0], &x2[0]], ObjectType::SYMMETRIC_KEY, aes(128))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::InvalidField(_)), "{e:?}");
        let e = join(&ctx, &[&a[0], &a[0]], ObjectType::SYMMETRIC_KEY, aes(128))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::InvalidField(_)), "{e:?}");
        let e = join(&ctx, &[&a[0], &key], ObjectType::SYMMETRIC_KEY, aes(128))
            .await
            .unwrap_err();
        assert_eq!(e.reason(V), ResultReason::ILLEGAL_OPERATION);
        let e = join(&ctx, &[], ObjectType::SYMMETRIC_KEY, aes(128))
            .await
            .unwrap_err();
        assert_eq!(e.reason(V), ResultReason::MISSING_DATA);
        let e = join(&ctx, &[&a[0], &a[1]], ObjectType::SPLIT_KEY, Vec::new())
            .await
            .unwrap_err();
        assert_eq!(e.reason(V), ResultReason::INVALID_FIELD);
        let many: Vec<String> = (0..=MAX_PARTS).map(|i| format!("id{i}")).collect();
        let e = join_split_key(
            &ctx,
            &JoinSplitKeyRequest {
                object_type: ObjectType::SYMMETRIC_KEY,
                unique_identifiers: many,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(e.reason(V), ResultReason::INVALID_FIELD);

        // Register refuses Split Keys whose numbers do not hold together.
        for (x, n, k) in [(0, 4, 2), (5, 4, 2), (1, 4, 5), (1, 0, 0)] {
            let mut sk = oasis_part(x, "66C46A7754F94DE420C7B1A7FFF5EC56");
            sk.split_key_parts = n;
            sk.split_key_threshold = k;
            let e = register_part(&ctx, sk).await.unwrap_err();
            assert!(matches!(e, OpError::InvalidField(_)), "{x} {n} {k}: {e:?}");
        }
    }

    #[tokio::test]
    async fn destroyed_parts_cannot_be_joined() {
        let t = TestServer::new();
        let ctx = t.ctx(V);
        let key = register_key(&ctx, &h(KEY)).await;
        let ids = create_split_key(
            &ctx,
            &split_req(Some(&key), 2, 2, SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_8),
        )
        .await
        .unwrap()
        .unique_identifiers;
        crate::ops::lifecycle::destroy(
            &ctx,
            &kmip::messages::payloads::IdRequest {
                unique_identifier: Some(ids[1].clone()),
            },
        )
        .await
        .unwrap();
        let e = join(
            &ctx,
            &[&ids[0], &ids[1]],
            ObjectType::SYMMETRIC_KEY,
            aes(128),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, OpError::Destroyed(_)), "{e:?}");
        // Splitting a destroyed key is refused the same way.
        crate::ops::lifecycle::destroy(
            &ctx,
            &kmip::messages::payloads::IdRequest {
                unique_identifier: Some(key.clone()),
            },
        )
        .await
        .unwrap();
        let e = create_split_key(
            &ctx,
            &split_req(Some(&key), 2, 2, SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_8),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, OpError::Destroyed(_)), "{e:?}");
    }

    #[tokio::test]
    async fn batch_dispatches_both_and_sets_the_id_placeholder_to_part_1() {
        use kmip::messages::payloads::{RequestPayload, ResponsePayload};
        use kmip::messages::{RequestBatchItem, RequestHeader, RequestMessage, ResponseMessage};
        use kmip::tables::ResultStatus;
        let t = TestServer::new();
        let key = register_key(&t.ctx(V), &h(KEY)).await;
        let item = |operation, payload| RequestBatchItem {
            operation,
            ephemeral: None,
            unique_batch_item_id: None,
            payload,
            message_extension: None,
        };
        let msg = RequestMessage {
            header: RequestHeader {
                protocol_version: V,
                batch_count: 2,
                ..Default::default()
            },
            items: vec![
                item(
                    Operation::CREATE_SPLIT_KEY,
                    RequestPayload::CreateSplitKey(split_req(
                        Some(&key),
                        3,
                        2,
                        SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_8,
                    )),
                ),
                // No Unique Identifier: the ID Placeholder, part 1.
                item(Operation::GET, RequestPayload::Get(GetRequest::default())),
            ],
        };
        let bytes = msg.to_ttlv().to_bytes().unwrap();
        let limits = kmip::Limits::default();
        let out =
            crate::ops::batch::handle(&t.server, Some(&t.caller), &bytes, &limits, Vec::new())
                .await;
        let resp = ResponseMessage::from_bytes(&out, &limits).unwrap();
        assert!(
            resp.items
                .iter()
                .all(|i| i.result_status == ResultStatus::SUCCESS),
            "{resp:?}"
        );
        let Some(ResponsePayload::CreateSplitKey(c)) = &resp.items[0].payload else {
            panic!("{resp:?}")
        };
        let Some(ResponsePayload::Get(g)) = &resp.items[1].payload else {
            panic!("{resp:?}")
        };
        assert_eq!(g.unique_identifier, c.unique_identifiers[0]);
        assert_eq!(g.split_key.as_ref().unwrap().key_part_identifier, 1);

        // Join in a batch of its own, then Get the joined key by placeholder.
        let msg = RequestMessage {
            header: RequestHeader {
                protocol_version: V,
                batch_count: 2,
                ..Default::default()
            },
            items: vec![
                item(
                    Operation::JOIN_SPLIT_KEY,
                    RequestPayload::JoinSplitKey(JoinSplitKeyRequest {
                        object_type: ObjectType::SYMMETRIC_KEY,
                        unique_identifiers: c.unique_identifiers[1..].to_vec(),
                        ..Default::default()
                    }),
                ),
                item(Operation::GET, RequestPayload::Get(GetRequest::default())),
            ],
        };
        let bytes = msg.to_ttlv().to_bytes().unwrap();
        let out =
            crate::ops::batch::handle(&t.server, Some(&t.caller), &bytes, &limits, Vec::new())
                .await;
        let resp = ResponseMessage::from_bytes(&out, &limits).unwrap();
        let Some(ResponsePayload::Get(g)) = &resp.items[1].payload else {
            panic!("{resp:?}")
        };
        let sk = g.symmetric_key.as_ref().unwrap();
        assert_eq!(
            sk.key_block
                .key_value
                .as_ref()
                .unwrap()
                .key_bytes()
                .unwrap(),
            h(KEY)
        );
    }

    #[test]
    fn query_lists_split_operations_from_1_2() {
        use crate::ops::query::query;
        use kmip::messages::payloads::QueryRequest;
        use kmip::tables::QueryFunction;
        let t = TestServer::new();
        let p = QueryRequest {
            query_functions: vec![QueryFunction::QUERY_OPERATIONS],
        };
        for (v, listed) in [
            (ProtocolVersion::V1_1, false),
            (ProtocolVersion::V1_2, true),
            (ProtocolVersion::V2_0, true),
        ] {
            let ops = query(&t.ctx(v), &p).operations;
            assert_eq!(ops.contains(&Operation::CREATE_SPLIT_KEY), listed, "{v:?}");
            assert_eq!(ops.contains(&Operation::JOIN_SPLIT_KEY), listed, "{v:?}");
        }
    }

    #[test]
    fn roles_that_create_may_split_and_join() {
        use crate::access::Caller;
        use crate::config::Role;
        let t = TestServer::new();
        let as_role = |role: Role| Caller {
            role,
            ..t.caller.clone()
        };
        for op in [Operation::CREATE_SPLIT_KEY, Operation::JOIN_SPLIT_KEY] {
            for (role, ok) in [
                (Role::Admin, true),
                (Role::Vcenter, true),
                (Role::Host, false),
                (Role::Auditor, false),
            ] {
                assert_eq!(
                    t.server.policy.may_run(&as_role(role), op).is_ok(),
                    ok,
                    "{role:?} {op:?}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tenancy_tests {
    use super::*;
    use crate::access::Caller;
    use crate::config::Role;
    use crate::ops::create::register;
    use crate::ops::test_support::TestServer;
    use kmip::tables::CryptographicUsageMask as M;
    use kmip::ProtocolVersion;

    fn caller(role: Role, group: &str) -> Caller {
        Caller {
            identity: format!("{role}-{group}"),
            role,
            group: group.into(),
            peer: "127.0.0.1:1".parse().unwrap(),
            credential: None,
        }
    }

    #[tokio::test]
    async fn parts_and_joined_keys_stay_in_the_split_keys_group() {
        let t = TestServer::new();
        let (admin_a, admin_b) = (caller(Role::Admin, "a"), caller(Role::Admin, "b"));
        let v = ProtocolVersion::V1_2;
        let b = OpCtx::new(&t.server, &admin_b, v, t.server.clock.now());
        let p = TestServer::register_request(
            CryptographicAlgorithm::AES,
            &[7u8; 16],
            M::ENCRYPT.0,
            None,
            Vec::new(),
        );
        let key = register(&b, &p).await.unwrap().unique_identifier;
        // An admin of group a splits group b's key: the parts are b's.
        let a = OpCtx::new(&t.server, &admin_a, v, t.server.clock.now());
        let r = create_split_key(
            &a,
            &CreateSplitKeyRequest {
                object_type: ObjectType::SPLIT_KEY,
                unique_identifier: Some(key.clone()),
                split_key_parts: 3,
                split_key_threshold: 2,
                split_key_method: SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_8,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        for id in &r.unique_identifiers {
            assert_eq!(t.server.catalog.get(id).unwrap().unwrap().group, "b");
        }
        // A vcenter caller of group a cannot reach them...
        let vc = caller(Role::Vcenter, "a");
        let vca = OpCtx::new(&t.server, &vc, v, t.server.clock.now());
        let join = JoinSplitKeyRequest {
            object_type: ObjectType::SYMMETRIC_KEY,
            unique_identifiers: r.unique_identifiers[..2].to_vec(),
            ..Default::default()
        };
        assert!(matches!(
            join_split_key(&vca, &join).await,
            Err(OpError::NotFound(_))
        ));
        // ...and what the admin joins is b's too.
        let joined = join_split_key(&a, &join).await.unwrap().unique_identifier;
        assert_eq!(t.server.catalog.get(&joined).unwrap().unwrap().group, "b");
        // Parts of two groups are not one split.
        let mut mixed = r.unique_identifiers[..1].to_vec();
        let other = register(&a, &p).await.unwrap().unique_identifier;
        let r2 = create_split_key(
            &a,
            &CreateSplitKeyRequest {
                object_type: ObjectType::SPLIT_KEY,
                unique_identifier: Some(other),
                split_key_parts: 3,
                split_key_threshold: 2,
                split_key_method: SplitKeyMethod::POLYNOMIAL_SHARING_GF_2_8,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        mixed.push(r2.unique_identifiers[1].clone());
        let e = join_split_key(
            &a,
            &JoinSplitKeyRequest {
                object_type: ObjectType::SYMMETRIC_KEY,
                unique_identifiers: mixed,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, OpError::InvalidField(_)), "{e:?}");
    }

    #[test]
    fn the_work_of_a_split_is_bounded() {
        assert!(check_work(32, 255, 255).is_ok());
        assert!(check_work(MAX_SECRET_LEN + 1, 2, 2).is_err());
        assert!(check_work(1024, 255, 255).is_err());
        assert!(check_work(usize::MAX, usize::MAX, 2).is_err());
    }
}
