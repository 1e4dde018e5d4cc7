//! kmipd Status: version, uptime, protocol versions, objects by state, key
//! protection backend and health, master key version.

use super::admin::entry;
use super::OpCtx;
use kmip::tables::Tag;
use kmip::{ProtocolVersion, Ttlv};

/// Builds the status payload.
pub fn status(ctx: &OpCtx<'_>) -> Ttlv {
    let s = ctx.server;
    let mut c = vec![
        entry("version", Ttlv::text(Tag(0), env!("CARGO_PKG_VERSION"))),
        entry(
            "uptime_secs",
            Ttlv::long(Tag(0), s.started.elapsed().as_secs() as i64),
        ),
        entry(
            "kmip_versions",
            Ttlv::text(
                Tag(0),
                ProtocolVersion::SUPPORTED
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ),
        entry(
            "hsm_backend",
            Ttlv::text(Tag(0), format!("{:?}", s.protector.backend())),
        ),
        entry(
            "hsm_health",
            Ttlv::text(Tag(0), format!("{:?}", s.protector.health())),
        ),
        entry(
            "master_key_version",
            Ttlv::long(Tag(0), s.protector.current_version() as i64),
        ),
        entry("store", Ttlv::text(Tag(0), s.catalog.backend().name())),
    ];
    for (state, n) in crate::http::objects_by_state(s) {
        c.push(entry(
            &format!("objects.{state}"),
            Ttlv::long(Tag(0), n as i64),
        ));
    }
    Ttlv::structure(Tag::RESPONSE_PAYLOAD, c)
}
