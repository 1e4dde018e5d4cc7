//! Get: an object's content in the stored or a requested Key Format Type.
//!
//! Get works on Pre-Active keys (vCenter fetches before it activates) and is
//! not gated on usage mask bits, a Name, or Extractable/Sensitive.

use super::OpCtx;
use crate::errors::{OpError, OpResult};
use kmip::messages::objects::{KeyValue, Object};
use kmip::messages::payloads::{GetRequest, GetResponse};
use kmip::tables::{KeyFormatType, State, Tag};
use kmip::Ttlv;

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
    let Some(KeyValue::Plain { key_material, .. }) = &mut kb.key_value else {
        return Err(OpError::KeyFormatNotSupported(
            "a wrapped key cannot change format".into(),
        ));
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
    let state = o.stored_state();
    if state == State::DESTROYED || state == State::DESTROYED_COMPROMISED || o.material.is_none() {
        return Err(OpError::KeyValueNotPresent(format!(
            "object {id} is destroyed"
        )));
    }
    if p.key_wrapping_specification.is_some() {
        return Err(OpError::FeatureNotSupported(
            "key wrapping on Get is not supported yet; keys travel inside mutual TLS".into(),
        ));
    }
    let mut object = ctx.content(&o).await?;
    if let Some(want) = p.key_format_type {
        convert(&mut object, want)?;
    }
    let mut r = GetResponse {
        object_type: o.object_type,
        unique_identifier: o.id.clone(),
        ..Default::default()
    };
    r.set_object(object);
    Ok(r)
}
