//! kmipd Reveal: an object's content for `kmipctl keys show --reveal`.
//!
//! Admin only (checked in [`super::admin::run`]), and audited twice: the
//! batch loop records the operation like any other, and Reveal itself
//! records a `kmipd Reveal: material disclosed` event naming the object,
//! so a disclosure stands out in the trail. The material never reaches
//! the server's log.

use super::admin::{entry, tag, text_of};
use super::OpCtx;
use crate::audit::Event;
use crate::errors::{OpError, OpResult};
use kmip::messages::objects::KeyValue;
use kmip::tables::Tag;
use kmip::{Ctx, ProtocolVersion, Ttlv};

/// Reveal: request OBJECT (id); response entries `object_type`,
/// `key_format_type`, `algorithm`, `length` when known, and `material`
/// (the raw key bytes, or the object's TTLV encoding when it has no raw key).
pub async fn reveal(ctx: &OpCtx<'_>, payload: &Ttlv) -> OpResult<Ttlv> {
    let id = text_of(payload, tag::OBJECT)
        .ok_or_else(|| OpError::MissingData("Reveal needs the object's identifier".into()))?;
    let o = ctx.load_online(&id)?;
    if o.is_destroyed() {
        return Err(OpError::KeyValueNotPresent(format!(
            "object {id} is destroyed"
        )));
    }
    if o.key_value_absent() {
        return Err(OpError::KeyValueNotPresent(format!(
            "object {id} was registered without its Key Value"
        )));
    }
    let object = ctx.content(&o).await?;
    let mut c = vec![entry(
        "object_type",
        Ttlv::text(Tag(0), o.object_type.to_string()),
    )];
    let raw = match object.key_block() {
        Some(kb) => {
            c.push(entry(
                "key_format_type",
                Ttlv::text(Tag(0), kb.key_format_type.to_string()),
            ));
            if let Some(a) = kb.cryptographic_algorithm {
                c.push(entry("algorithm", Ttlv::text(Tag(0), a.to_string())));
            }
            if let Some(l) = kb.cryptographic_length {
                c.push(entry("length", Ttlv::int(Tag(0), l)));
            }
            kb.key_value
                .as_ref()
                .and_then(KeyValue::key_bytes)
                .map(<[u8]>::to_vec)
        }
        None => None,
    };
    let material = match raw {
        Some(b) => b,
        None => object
            .encode(Ctx::new(ProtocolVersion::V1_4))
            .to_bytes()
            .map_err(|e| OpError::Internal(format!("encoding object {id}: {e}")))?,
    };
    c.push(entry("material", Ttlv::bytes(tag::BLOB, material)));
    ctx.server.audit.record(Event {
        time: ctx.now,
        identity: ctx.caller.identity.clone(),
        peer: ctx.caller.peer.to_string(),
        operation: "kmipd Reveal: material disclosed".into(),
        object: Some(id),
        result: "success".into(),
    });
    Ok(Ttlv::structure(Tag::RESPONSE_PAYLOAD, c))
}
