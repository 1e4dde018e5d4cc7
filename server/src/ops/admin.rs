//! kmipd's own administrative operations, carried over KMIP as
//! vendor-defined operations (Operation values 0x8000_0000 and up) with
//! payloads under kmipd's extension tags (0x5401xx). `kmipctl` uses them so
//! that administration goes through the server, its authentication and its
//! audit trail, never through a side door into the store.
//!
//! Only the `admin` role may run them (and, in lockdown, only from the
//! configured addresses). Each family lives in its own module.

use super::OpCtx;
use crate::config::Role;
use crate::errors::{OpError, OpResult};
use kmip::tables::Operation;
use kmip::Ttlv;

/// Vendor-defined operation codes.
pub mod op {
    use kmip::tables::Operation;
    /// Server status (version, uptime, objects by state, HSM, certificates, jobs).
    pub const STATUS: Operation = Operation(0x8000_0001);
    /// A consistent online snapshot of the store (material stays wrapped).
    pub const BACKUP: Operation = Operation(0x8000_0002);
    /// Start a master-key rotation job.
    pub const MASTER_ROTATE: Operation = Operation(0x8000_0003);
    /// Retire a master key version no object uses.
    pub const MASTER_RETIRE: Operation = Operation(0x8000_0004);
    /// Master key versions and their object counts.
    pub const MASTER_LIST: Operation = Operation(0x8000_0005);
    /// Status of background jobs.
    pub const JOBS_STATUS: Operation = Operation(0x8000_0006);
    /// Pause a job.
    pub const JOBS_PAUSE: Operation = Operation(0x8000_0007);
    /// Resume a job.
    pub const JOBS_RESUME: Operation = Operation(0x8000_0008);
    /// Read an object's content for `kmipctl keys show --reveal` (audited).
    pub const REVEAL: Operation = Operation(0x8000_0009);
    /// Owner, group and last-fetched time of objects (`kmipctl keys list/show/destroy`).
    pub const OBJECT_INFO: Operation = Operation(0x8000_0010);

    /// Display names for logs and audit.
    pub fn name(o: Operation) -> Option<&'static str> {
        Some(match o {
            STATUS => "kmipd Status",
            BACKUP => "kmipd Backup",
            MASTER_ROTATE => "kmipd Master Rotate",
            MASTER_RETIRE => "kmipd Master Retire",
            MASTER_LIST => "kmipd Master List",
            JOBS_STATUS => "kmipd Jobs Status",
            JOBS_PAUSE => "kmipd Jobs Pause",
            JOBS_RESUME => "kmipd Jobs Resume",
            REVEAL => "kmipd Reveal",
            OBJECT_INFO => "kmipd Object Info",
            _ => return None,
        })
    }
}

/// kmipd's extension tags for admin payloads (0x5401xx).
pub mod tag {
    use kmip::tables::Tag;
    /// Generic text field.
    pub const TEXT: Tag = Tag(0x540101);
    /// Generic integer field.
    pub const NUMBER: Tag = Tag(0x540102);
    /// A key/value entry (structure of NAME and VALUE).
    pub const ENTRY: Tag = Tag(0x540103);
    /// Entry name.
    pub const NAME: Tag = Tag(0x540104);
    /// Entry value (any type).
    pub const VALUE: Tag = Tag(0x540105);
    /// Opaque bytes (backups).
    pub const BLOB: Tag = Tag(0x540106);
    /// Job identifier.
    pub const JOB: Tag = Tag(0x540107);
    /// Object identifier (Reveal, Object Info).
    pub const OBJECT: Tag = Tag(0x540108);
    /// Byte offset (Backup chunks).
    pub const OFFSET: Tag = Tag(0x540109);
}

/// Server-side state of the admin operations, one per server.
#[derive(Debug, Default)]
pub struct AdminState {
    /// Last Get time of each object (for the destroy guard and `keys list`).
    pub fetches: super::usage::FetchTracker,
    /// Backups taken and not yet fully downloaded.
    pub backups: super::backup::Pending,
    /// The TLS state, for certificate expiry in status (set by `app::start`).
    pub tls: std::sync::OnceLock<std::sync::Arc<crate::tls::Reloadable>>,
}

/// Whether `op` is one of kmipd's vendor operations.
pub fn is_admin(op: Operation) -> bool {
    op.0 >= 0x8000_0000
}

/// Runs a vendor operation; the payload is the raw Request Payload.
pub async fn run(ctx: &mut OpCtx<'_>, op: Operation, payload: &Ttlv) -> OpResult<Ttlv> {
    if ctx.caller.role != Role::Admin {
        return Err(OpError::PermissionDenied(
            "kmipd administrative operations need the admin role".into(),
        ));
    }
    match op {
        op::STATUS => Ok(super::status::status(ctx)),
        op::MASTER_ROTATE => super::rotation::rotate(ctx).await,
        op::MASTER_RETIRE => super::rotation::retire(ctx, payload).await,
        op::MASTER_LIST => super::rotation::list(ctx).await,
        op::JOBS_STATUS => super::rotation::status(ctx),
        op::JOBS_PAUSE => super::rotation::pause_resume(ctx, payload, true).await,
        op::JOBS_RESUME => super::rotation::pause_resume(ctx, payload, false).await,
        op::BACKUP => super::backup::backup(ctx, payload).await,
        op::REVEAL => super::reveal::reveal(ctx, payload).await,
        op::OBJECT_INFO => super::usage::object_info(ctx, payload),
        _ => Err(OpError::OperationNotSupported(format!(
            "vendor operation 0x{:08X} is not supported",
            op.0
        ))),
    }
}

/// Builds an ENTRY structure.
pub fn entry(name: &str, value: Ttlv) -> Ttlv {
    Ttlv::structure(
        tag::ENTRY,
        vec![
            Ttlv::text(tag::NAME, name),
            Ttlv {
                tag: tag::VALUE,
                value: value.value,
            },
        ],
    )
}

/// The text of the first child `tag` of a payload.
pub fn text_of(payload: &Ttlv, t: kmip::tables::Tag) -> Option<String> {
    payload
        .child(t)
        .and_then(|v| v.as_text().ok())
        .map(str::to_owned)
}

/// Reads ENTRY structures into (name, item) pairs.
pub fn entries(payload: &Ttlv) -> Vec<(String, Ttlv)> {
    payload
        .children_with(tag::ENTRY)
        .filter_map(|e| {
            let n = e.child(tag::NAME)?.as_text().ok()?.to_owned();
            let v = e.child(tag::VALUE)?.clone();
            Some((n, v))
        })
        .collect()
}
