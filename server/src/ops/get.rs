//! Get: an object's content in the stored or a requested Key Format Type.
//!
//! Get works on Pre-Active keys (vCenter fetches before it activates) and is
//! not gated on usage mask bits, a Name, or Extractable/Sensitive.

use super::OpCtx;
use crate::errors::{OpError, OpResult};
use crate::model::{names, ManagedObject};
use kmip::codec::{Bytes, Ctx, Field};
use kmip::messages::objects::{KeyValue, KeyWrappingData, KeyWrappingSpecification, Object};
use kmip::messages::payloads::{GetRequest, GetResponse};
use kmip::tables::{
    BlockCipherMode, CryptographicAlgorithm, CryptographicUsageMask, EncodingOption, KeyFormatType,
    ObjectType, State, Tag, WrappingMethod,
};
use kmip::{ProtocolVersion, Ttlv};

/// Converts a Key Block between Raw and Transparent Symmetric Key.
fn convert(object: &mut Object, want: KeyFormatType) -> OpResult<()> {
    let is_symmetric = matches!(object, Object::SymmetricKey(_));
    let Some(kb) = object.key_block_mut() else {
        return Err(OpError::KeyFormatNotSupported(
            "this object has no Key Block".into(),
        ));
    };
    if kb.key_format_type == want {
        return Ok(());
    }
    let key_material = match &mut kb.key_value {
        Some(KeyValue::Plain { key_material, .. }) => key_material,
        Some(KeyValue::Wrapped(_)) => {
            return Err(OpError::KeyFormatNotSupported(
                "a wrapped key cannot change format".into(),
            ))
        }
        None => {
            return Err(OpError::KeyValueNotPresent(
                "the key was registered without its Key Value: kmipd cannot convert it".into(),
            ))
        }
    };
    match (kb.key_format_type, want) {
        (KeyFormatType::RAW, KeyFormatType::TRANSPARENT_SYMMETRIC_KEY) if is_symmetric => {
            let key = key_material.as_bytes()?.to_vec();
            *key_material = Ttlv::structure(Tag::KEY_MATERIAL, vec![Ttlv::bytes(Tag::KEY, key)]);
        }
        (KeyFormatType::TRANSPARENT_SYMMETRIC_KEY, KeyFormatType::RAW) if is_symmetric => {
            let key = key_material
                .child(Tag::KEY)
                .ok_or_else(|| OpError::Internal("transparent key without Key".into()))?
                .as_bytes()?
                .to_vec();
            *key_material = Ttlv::bytes(Tag::KEY_MATERIAL, key);
        }
        (have, want) => {
            return Err(OpError::KeyFormatNotSupported(format!(
                "cannot convert {have} to {want}"
            )))
        }
    }
    kb.key_format_type = want;
    Ok(())
}

/// Get.
pub async fn get(ctx: &OpCtx<'_>, p: &GetRequest) -> OpResult<GetResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let o = ctx.load_online(&id)?;
    if o.is_destroyed() {
        return Err(OpError::Destroyed(format!("object {id} is destroyed")));
    }
    let mut object = ctx.content(&o).await?;
    let metadata_only = object.key_block().is_some_and(|kb| kb.key_value.is_none());
    if metadata_only && ctx.version < ProtocolVersion::V1_2 {
        // A KMIP 1.0/1.1 Key Block always has a Key Value: such a client
        // cannot be given a metadata-only key (registered in 1.2+).
        return Err(OpError::KeyValueNotPresent(format!(
            "object {id} was registered without its Key Value"
        )));
    }
    if let Some(want) = p.key_format_type {
        convert(&mut object, want)?;
    }
    if let Some(spec) = &p.key_wrapping_specification {
        wrap(ctx, &o, &mut object, spec).await?;
    }
    if o.first(names::FRESH)
        .is_some_and(|a| a.value == kmip::Value::Boolean(true))
    {
        // The first time an object is served it stops being Fresh (KMIP 1.1+).
        let _guard = ctx.server.lock(&o.id).await;
        let old = ctx.load(&o.id)?;
        if old
            .first(names::FRESH)
            .is_some_and(|a| a.value == kmip::Value::Boolean(true))
        {
            let mut new = old.clone();
            new.set(names::FRESH, kmip::Value::Boolean(false));
            ctx.save(Some(&old), &mut new).await?;
        }
    }
    let mut r = GetResponse {
        object_type: o.object_type,
        unique_identifier: o.id.clone(),
        ..Default::default()
    };
    r.set_object(object);
    // In memory; written to the store at most once per object per hour.
    ctx.server
        .admin
        .fetches
        .note(&ctx.server.catalog, &o.id, ctx.now);
    // Round-robin of object groups' default members moves past it.
    ctx.server.groups.retrieved(&ctx.caller.group, &o);
    Ok(r)
}

/// Wraps the Key Value with another managed AES key (NIST SP 800-38F key
/// wrap, RFC 3394, or with padding, RFC 5649), as a Key Wrapping
/// Specification asks: the whole Key Value in TTLV encoding by default, or
/// the bare Key Material with Encoding Option "No Encoding".
async fn wrap(
    ctx: &OpCtx<'_>,
    o: &ManagedObject,
    object: &mut Object,
    spec: &KeyWrappingSpecification,
) -> OpResult<()> {
    if spec.wrapping_method != WrappingMethod::ENCRYPT
        || spec.mac_signature_key_information.is_some()
    {
        return Err(OpError::FeatureNotSupported(
            "only the Encrypt wrapping method is supported".into(),
        ));
    }
    let eki = spec.encryption_key_information.as_ref().ok_or_else(|| {
        OpError::MissingData("Encryption Key Information is required to wrap".into())
    })?;
    let wk = ctx.load_online(&eki.unique_identifier)?;
    if wk.object_type != ObjectType::SYMMETRIC_KEY {
        return Err(OpError::IllegalOperation(
            "the wrapping key must be a symmetric key".into(),
        ));
    }
    if wk.stored_state() != State::ACTIVE {
        return Err(OpError::WrongState(format!(
            "wrapping key {} is not Active",
            wk.id
        )));
    }
    if let Some(mask) = wk
        .first(names::CRYPTOGRAPHIC_USAGE_MASK)
        .and_then(|a| a.integer())
    {
        if mask as u32 & CryptographicUsageMask::WRAP_KEY.0 == 0 {
            return Err(OpError::PermissionDenied(format!(
                "key {} does not allow Wrap Key",
                wk.id
            )));
        }
    }
    let wk_content = ctx.content(&wk).await?;
    let kb = wk_content
        .key_block()
        .ok_or_else(|| OpError::Internal("wrapping key without key block".into()))?;
    if kb.cryptographic_algorithm != Some(CryptographicAlgorithm::AES) {
        return Err(OpError::IllegalOperation(
            "the wrapping key must be an AES key".into(),
        ));
    }
    let kek = match kb.key_value.as_ref() {
        None => {
            return Err(OpError::KeyValueNotPresent(format!(
                "wrapping key {} was registered without its Key Value",
                wk.id
            )))
        }
        Some(v) => zeroize::Zeroizing::new(
            v.key_bytes()
                .ok_or_else(|| {
                    OpError::IllegalOperation(format!(
                        "wrapping key {} has no raw key material",
                        wk.id
                    ))
                })?
                .to_vec(),
        ),
    };
    let mode = eki
        .cryptographic_parameters
        .as_ref()
        .and_then(|p| p.block_cipher_mode)
        .unwrap_or(BlockCipherMode::NISTKEYWRAP);
    let encoding = spec
        .encoding_option
        .unwrap_or(EncodingOption::TTLV_ENCODING);
    let target = object
        .key_block_mut()
        .ok_or_else(|| OpError::IllegalOperation("this object has no Key Block to wrap".into()))?;
    let (key_material, attributes) = match &mut target.key_value {
        Some(KeyValue::Plain {
            key_material,
            attributes,
        }) => (key_material, attributes),
        Some(KeyValue::Wrapped(_)) => {
            return Err(OpError::IllegalOperation(
                "the key is already wrapped".into(),
            ))
        }
        None => {
            return Err(OpError::KeyValueNotPresent(format!(
                "object {} was registered without its Key Value: there is nothing to wrap",
                o.id
            )))
        }
    };
    for n in &spec.attribute_names {
        attributes.extend(o.all(n).cloned());
    }
    let plain = zeroize::Zeroizing::new(match encoding {
        EncodingOption::NO_ENCODING => key_material.as_bytes()?.to_vec(),
        _ => KeyValue::Plain {
            key_material: key_material.clone(),
            attributes: attributes.clone(),
        }
        .encode(Tag::KEY_VALUE, Ctx::new(ctx.version))
        .to_bytes()
        .map_err(|e| OpError::Internal(e.to_string()))?,
    });
    let wrapped = aes_key_wrap(&kek, &plain, mode)?;
    target.key_value = Some(KeyValue::Wrapped(Bytes(wrapped)));
    target.key_wrapping_data = Some(KeyWrappingData {
        wrapping_method: WrappingMethod::ENCRYPT,
        encryption_key_information: Some(eki.clone()),
        encoding_option: spec.encoding_option,
        ..Default::default()
    });
    Ok(())
}

/// AES key wrap of `data` under `kek` in `mode`.
pub fn aes_key_wrap(kek: &[u8], data: &[u8], mode: BlockCipherMode) -> OpResult<Vec<u8>> {
    let padded = match mode {
        BlockCipherMode::NISTKEYWRAP => false,
        BlockCipherMode::AESKEYWRAPPADDING => true,
        other => {
            return Err(OpError::FeatureNotSupported(format!(
                "key wrapping with {other} is not supported"
            )))
        }
    };
    let fail = |e: aes_kw::Error| OpError::Cryptographic(format!("key wrap failed: {e}"));
    fn run<A>(kek: &[u8], data: &[u8], padded: bool) -> Result<Vec<u8>, aes_kw::Error>
    where
        A: aes::cipher::BlockCipher
            + aes::cipher::BlockEncrypt
            + aes::cipher::BlockDecrypt
            + aes::cipher::KeyInit,
        A: aes::cipher::BlockSizeUser<BlockSize = aes::cipher::consts::U16>,
    {
        let k = aes_kw::Kek::<A>::new(aes::cipher::generic_array::GenericArray::from_slice(kek));
        if padded {
            k.wrap_with_padding_vec(data)
        } else {
            k.wrap_vec(data)
        }
    }
    match kek.len() {
        16 => run::<aes::Aes128>(kek, data, padded).map_err(fail),
        24 => run::<aes::Aes192>(kek, data, padded).map_err(fail),
        32 => run::<aes::Aes256>(kek, data, padded).map_err(fail),
        n => Err(OpError::IllegalOperation(format!(
            "a {n}-byte key cannot wrap"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3394_vector() {
        let kek = hex::decode("000102030405060708090A0B0C0D0E0F").unwrap();
        let data = hex::decode("00112233445566778899AABBCCDDEEFF").unwrap();
        let w = aes_key_wrap(&kek, &data, BlockCipherMode::NISTKEYWRAP).unwrap();
        assert_eq!(
            hex::encode_upper(w),
            "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"
        );
    }

    #[test]
    fn rfc5649_vector() {
        let kek = hex::decode("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8").unwrap();
        let data = hex::decode("466f7250617369").unwrap();
        let w = aes_key_wrap(&kek, &data, BlockCipherMode::AESKEYWRAPPADDING).unwrap();
        assert_eq!(hex::encode(w), "afbeb0f07dfbf5419200f2ccb50bb24f");
    }

    #[test]
    fn other_modes_and_sizes_are_refused() {
        assert!(matches!(
            aes_key_wrap(&[0; 32], &[0; 16], BlockCipherMode::CBC),
            Err(OpError::FeatureNotSupported(_))
        ));
        assert!(matches!(
            aes_key_wrap(&[0; 20], &[0; 16], BlockCipherMode::NISTKEYWRAP),
            Err(OpError::IllegalOperation(_))
        ));
    }

    /// KMIP 1.1/1.2, 2.1.5-2.1.6: without an Encoding Option the wrapped Key
    /// Value is the TTLV-encoded Key Value structure, carrying the attributes
    /// the Key Wrapping Specification names; No Encoding wraps the bare Key
    /// Material. TC-142-11/12 expect the bare material wrapped while sending
    /// no Encoding Option, which this test pins down as a file error.
    #[tokio::test]
    async fn wrapping_with_attribute_names_wraps_the_ttlv_key_value() {
        use crate::ops::create::register;
        use crate::ops::test_support::TestServer;
        use kmip::messages::objects::EncryptionKeyInformation;
        use kmip::tables::CryptographicUsageMask as M;

        let kek = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let dek = hex::decode("00112233445566778899aabbccddeeff").unwrap();
        // The Key Value TC-142 expects (RFC 3394, 4.1).
        let tc142 = hex::decode("1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5").unwrap();
        let t = TestServer::new();
        let ctx = t.ctx(ProtocolVersion::V1_2);
        let reg = |key: &[u8], mask: u32, active: bool| {
            TestServer::register_request(
                CryptographicAlgorithm::AES,
                key,
                mask,
                active.then_some(ctx.now),
                Vec::new(),
            )
        };
        let kek_id = register(&ctx, &reg(&kek, M::WRAP_KEY.0, true))
            .await
            .unwrap()
            .unique_identifier;
        let mask = M::ENCRYPT.0 | M::DECRYPT.0;
        let dek_id = register(&ctx, &reg(&dek, mask, false))
            .await
            .unwrap()
            .unique_identifier;
        let get_wrapped = |encoding: Option<EncodingOption>| GetRequest {
            unique_identifier: Some(dek_id.clone()),
            key_wrapping_specification: Some(KeyWrappingSpecification {
                wrapping_method: WrappingMethod::ENCRYPT,
                encryption_key_information: Some(EncryptionKeyInformation {
                    unique_identifier: kek_id.clone(),
                    cryptographic_parameters: None,
                }),
                attribute_names: vec![names::CRYPTOGRAPHIC_USAGE_MASK.into()],
                encoding_option: encoding,
                ..Default::default()
            }),
            ..Default::default()
        };
        let unwrap = |w: &[u8]| {
            aes_kw::KekAes128::new(aes::cipher::generic_array::GenericArray::from_slice(&kek))
                .unwrap_vec(w)
                .unwrap()
        };
        // What TC-142's recording server wrapped: the bare 16-byte material.
        assert_eq!(unwrap(&tc142), dek);

        // No Encoding Option: the TTLV Key Value with the named attribute.
        let r = get(&ctx, &get_wrapped(None)).await.unwrap();
        let o = r.object().unwrap();
        let kb = o.key_block().unwrap();
        let Some(KeyValue::Wrapped(w)) = &kb.key_value else {
            panic!("not wrapped: {kb:?}");
        };
        assert_ne!(w.0, tc142);
        let kwd = kb.key_wrapping_data.as_ref().unwrap();
        assert_eq!(kwd.encoding_option, None, "absent means TTLV encoded");
        let plain = unwrap(&w.0);
        let item = kmip::ttlv::decode(&plain, &kmip::Limits::default()).unwrap();
        assert_eq!(item.tag, Tag::KEY_VALUE);
        let kv = KeyValue::decode(&item, Ctx::new(ProtocolVersion::V1_2)).unwrap();
        assert_eq!(kv.key_bytes(), Some(&dek[..]));
        let KeyValue::Plain { attributes, .. } = kv else {
            unreachable!()
        };
        assert_eq!(attributes.len(), 1);
        assert_eq!(attributes[0].name, names::CRYPTOGRAPHIC_USAGE_MASK);
        assert_eq!(attributes[0].integer(), Some(mask as i32));

        // No Encoding: the bare material, as TC-141 expects, announced in
        // the Key Wrapping Data.
        let r = get(&ctx, &get_wrapped(Some(EncodingOption::NO_ENCODING)))
            .await
            .unwrap();
        let o = r.object().unwrap();
        let kb = o.key_block().unwrap();
        assert_eq!(kb.key_value, Some(KeyValue::Wrapped(Bytes(tc142.clone()))));
        assert_eq!(
            kb.key_wrapping_data.as_ref().unwrap().encoding_option,
            Some(EncodingOption::NO_ENCODING)
        );
    }
}
