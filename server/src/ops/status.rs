//! kmipd Status: version, start time and uptime, protocol versions, objects
//! by state, key protection backend and health, master key version, the
//! expiry of every certificate kmipd serves or trusts, and background jobs.
//!
//! The payload is a flat list of ENTRY (name, value) pairs so that old
//! clients show what they do not know yet: names are dotted
//! (`objects.Active`, `certificate.server`, `jobs.<key>`).

use super::admin::entry;
use super::OpCtx;
use crate::store::Table;
use kmip::tables::Tag;
use kmip::{ProtocolVersion, Ttlv};

/// Builds the status payload.
pub fn status(ctx: &OpCtx<'_>) -> Ttlv {
    let s = ctx.server;
    let uptime = s.started.elapsed().as_secs() as i64;
    let mut c = vec![
        entry("version", Ttlv::text(Tag(0), env!("CARGO_PKG_VERSION"))),
        entry("uptime_secs", Ttlv::long(Tag(0), uptime)),
        entry("started", Ttlv::date_time(Tag(0), ctx.now - uptime)),
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
    if let Some(tls) = s.admin.tls.get() {
        for e in &tls.current().expiries {
            c.push(entry(
                &format!("certificate.{}", e.kind),
                Ttlv::text(
                    Tag(0),
                    format!(
                        "{} expires {}",
                        e.name,
                        kmip::time::format_rfc3339(e.not_after)
                    ),
                ),
            ));
        }
    }
    // Jobs keep their state in the Jobs table; their owners define the
    // value. Status lists the keys and sizes so a running job is visible.
    let mut jobs = Vec::new();
    let _ = s.catalog.backend().scan(Table::Jobs, b"", &mut |k, v| {
        jobs.push((String::from_utf8_lossy(k).into_owned(), v.len()));
        jobs.len() < 100
    });
    c.push(entry("jobs.count", Ttlv::long(Tag(0), jobs.len() as i64)));
    for (k, len) in jobs {
        c.push(entry(
            &format!("jobs.{k}"),
            Ttlv::text(Tag(0), format!("{len} bytes of state")),
        ));
    }
    Ttlv::structure(Tag::RESPONSE_PAYLOAD, c)
}
