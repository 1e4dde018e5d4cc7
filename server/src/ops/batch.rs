//! The message loop: decode a request, check its header, run its batch
//! items in order with the ID Placeholder and the Batch Error Continuation
//! Option, and encode the response in the request's protocol version.
//! The header's credentials are checked ([`check_credential`]) and name the
//! request's principal ([`crate::access::principal`]).

use super::OpCtx;
use crate::access::{check_credential, Caller};
use crate::audit::Event;
use crate::errors::{OpError, OpResult};
use crate::state::Server;
use kmip::codec::DateTime;
use kmip::messages::payloads::{RequestPayload, ResponsePayload};
use kmip::messages::{
    Credential, RequestBatchItem, RequestMessage, ResponseBatchItem, ResponseHeader,
    ResponseMessage,
};
use kmip::tables::{BatchErrorContinuationOption, Operation, ResultReason, ResultStatus};
use kmip::{Limits, ProtocolVersion, Ttlv};
use std::time::Instant;

/// Vendor Identification of message extensions kmipd understands (none yet
/// carry meaning; non-critical ones from anyone are ignored).
pub const OWN_EXTENSION_VENDOR: &str = "kmipd";

fn response(version: ProtocolVersion, now: i64, items: Vec<ResponseBatchItem>) -> ResponseMessage {
    ResponseMessage {
        header: ResponseHeader {
            protocol_version: version,
            time_stamp: DateTime(now),
            batch_count: items.len() as i32,
            ..Default::default()
        },
        items,
    }
}

/// A response with one failed item, for messages that could not be decoded.
pub fn error_response(
    version: ProtocolVersion,
    now: i64,
    reason: ResultReason,
    msg: &str,
) -> ResponseMessage {
    response(
        version,
        now,
        vec![ResponseBatchItem::failure(
            None,
            None,
            ResultStatus::OPERATION_FAILED,
            reason,
            msg,
        )],
    )
}

/// The version a response uses for a request of `v`: the same when kmipd
/// speaks it, otherwise the highest version of the same major (or 1.0).
pub fn answer_version(v: ProtocolVersion) -> ProtocolVersion {
    if ProtocolVersion::SUPPORTED.contains(&v) {
        return v;
    }
    ProtocolVersion::SUPPORTED
        .iter()
        .copied()
        .find(|s| s.major == v.major && s.minor <= v.minor)
        .unwrap_or(ProtocolVersion::V1_0)
}

/// Handles one request message given as bytes; `caller` is `None` when the
/// client presented no certificate. Returns the encoded response.
pub async fn handle(
    server: &Server,
    caller: Option<&Caller>,
    bytes: &[u8],
    limits: &Limits,
    out: Vec<u8>,
) -> Vec<u8> {
    let now = server.clock.now();
    let msg = match decode(bytes, limits) {
        Ok(m) => m,
        Err((version, message)) => {
            tracing::debug!(peer = ?caller.map(|c| c.peer), %message, "undecodable request");
            let r = error_response(version, now, ResultReason::INVALID_MESSAGE, &message);
            return encode(&r, out);
        }
    };
    let version = msg.header.protocol_version;
    if !ProtocolVersion::SUPPORTED.contains(&version) {
        let r = error_response(
            answer_version(version),
            now,
            if version.is_2x() {
                ResultReason::UNSUPPORTED_PROTOCOL_VERSION
            } else {
                ResultReason::INVALID_MESSAGE
            },
            &format!("protocol version {version} is not supported"),
        );
        return encode(&r, out);
    }
    let items = run(server, caller, &msg, now).await;
    let mut r = response(version, now, items);
    r.header.client_correlation_value = msg.header.client_correlation_value.clone();
    r.header.server_correlation_value = msg.header.server_correlation_value.clone();
    let bytes = encode(&r, out);
    match msg.header.maximum_response_size {
        Some(max) if max >= 0 && bytes.len() > max as usize => {
            let items = msg
                .items
                .iter()
                .map(|i| {
                    ResponseBatchItem::failure(
                        Some(i.operation),
                        i.unique_batch_item_id.clone(),
                        ResultStatus::OPERATION_FAILED,
                        ResultReason::RESPONSE_TOO_LARGE,
                        format!(
                            "response of {} bytes exceeds the Maximum Response Size {max}",
                            bytes.len()
                        ),
                    )
                })
                .collect();
            encode(&response(version, now, items), bytes)
        }
        _ => bytes,
    }
}

fn decode(bytes: &[u8], limits: &Limits) -> Result<RequestMessage, (ProtocolVersion, String)> {
    let tree =
        kmip::ttlv::decode(bytes, limits).map_err(|e| (ProtocolVersion::V1_0, e.to_string()))?;
    RequestMessage::from_ttlv(&tree).map_err(|e| {
        let v = RequestMessage::peek_version(&tree)
            .map(answer_version)
            .unwrap_or(ProtocolVersion::V1_0);
        (v, e.to_string())
    })
}

fn encode(r: &ResponseMessage, out: Vec<u8>) -> Vec<u8> {
    // Responses are built from bounded values; a failure here would be a bug,
    // answered with an empty buffer that makes the connection close.
    r.encode_into(out).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot encode a response");
        Vec::new()
    })
}

async fn run(
    server: &Server,
    caller: Option<&Caller>,
    msg: &RequestMessage,
    now: i64,
) -> Vec<ResponseBatchItem> {
    let version = msg.header.protocol_version;
    let fail_all = |reason: ResultReason, text: &str| {
        msg.items
            .iter()
            .map(|i| {
                ResponseBatchItem::failure(
                    Some(i.operation),
                    i.unique_batch_item_id.clone(),
                    ResultStatus::OPERATION_FAILED,
                    reason,
                    text,
                )
            })
            .collect::<Vec<_>>()
    };
    let Some(caller) = caller else {
        return fail_all(
            ResultReason::AUTHENTICATION_NOT_SUCCESSFUL,
            "a client certificate with a role is required: none was sent, or it is not accepted from this address",
        );
    };
    if msg.header.batch_count as usize != msg.items.len() {
        return fail_all(
            ResultReason::INVALID_MESSAGE,
            "Batch Count does not match the batch items",
        );
    }
    let mut principal = None;
    if let Some(auth) = &msg.header.authentication {
        for c in &auth.credentials {
            if let Credential::UsernamePassword { username, password } = c {
                if let Err(e) = check_credential(caller, username, password.as_deref()) {
                    return fail_all(e.reason(version), &e.client_message());
                }
            }
        }
        principal = match crate::access::principal(&auth.credentials) {
            Ok(p) => p,
            Err(e) => return fail_all(e.reason(version), &e.client_message()),
        };
    }
    let option = msg
        .header
        .batch_error_continuation_option
        .unwrap_or(BatchErrorContinuationOption::STOP);
    if option == BatchErrorContinuationOption::UNDO && msg.items.len() > 1 {
        return fail_all(
            ResultReason::FEATURE_NOT_SUPPORTED,
            "Batch Error Continuation Option Undo is not supported; use Stop or Continue",
        );
    }
    // The audit names the credential's principal with the certificate's identity.
    let audit_identity = match &principal {
        Some(p) => format!("{} ({p})", caller.identity),
        None => caller.identity.clone(),
    };
    let mut ctx = OpCtx::new(server, caller, version, now);
    ctx.principal = principal;
    // Only a batch's last item may be answered asynchronously: no later item
    // can then depend on its ID Placeholder (ops/pending.rs).
    let asynchronous = msg.header.asynchronous_indicator == Some(true);
    let mut out = Vec::with_capacity(msg.items.len());
    for (n, item) in msg.items.iter().enumerate() {
        let started = Instant::now();
        let defer = asynchronous && n + 1 == msg.items.len();
        ctx.operation = Some(item.operation);
        let answer = match super::pending::intercept(&mut ctx, item, defer).await {
            Some(a) => {
                ctx.located_nothing = false;
                a
            }
            None => execute(&mut ctx, item).await,
        };
        record(
            server,
            caller,
            &audit_identity,
            now,
            item.operation,
            &answer,
            started,
        );
        let failed = answer.resp.result_status == ResultStatus::OPERATION_FAILED;
        out.push(answer.resp);
        if failed && option == BatchErrorContinuationOption::STOP {
            break;
        }
    }
    out
}

/// One batch item's response, with what the audit trail records of it.
pub(crate) struct Answer {
    /// The response batch item.
    pub resp: ResponseBatchItem,
    /// The Unique Identifier the item produced or named.
    pub object: Option<String>,
    /// `success`, `pending` or the Result Reason's name.
    pub outcome: String,
}

/// Runs one batch item to completion and answers it; a success that names
/// an object sets the ID Placeholder.
pub(crate) async fn execute(ctx: &mut OpCtx<'_>, item: &RequestBatchItem) -> Answer {
    let result = run_item(ctx, item).await;
    ctx.located_nothing = matches!(
        &result,
        Ok(ResponsePayload::Locate(r)) if r.unique_identifiers.is_empty()
    );
    match result {
        Ok(payload) => {
            let id = payload_id(&payload);
            if let Some(id) = &id {
                ctx.placeholder = Some(id.clone());
            }
            Answer {
                resp: ResponseBatchItem::success(
                    item.operation,
                    item.unique_batch_item_id.clone(),
                    Some(payload),
                ),
                object: id,
                outcome: "success".to_owned(),
            }
        }
        Err(e) => failed(ctx.version, item, &e),
    }
}

/// The answer to an item that failed with `e`.
pub(crate) fn failed(version: ProtocolVersion, item: &RequestBatchItem, e: &OpError) -> Answer {
    if let OpError::Internal(detail) = e {
        tracing::error!(operation = ?item.operation, %detail, "operation failed internally");
    }
    let reason = e.reason(version);
    Answer {
        resp: ResponseBatchItem::failure(
            Some(item.operation),
            item.unique_batch_item_id.clone(),
            e.status(),
            reason,
            e.client_message(),
        ),
        object: request_id(item),
        outcome: reason.name().unwrap_or("failure").to_owned(),
    }
}

/// Counts an answered item in the metrics and writes its audit record
/// (`identity`: the caller's, with its credential principal if any).
pub(crate) fn record(
    server: &Server,
    caller: &Caller,
    identity: &str,
    now: i64,
    operation: Operation,
    answer: &Answer,
    started: Instant,
) {
    let op_name = operation
        .name()
        .or_else(|| super::admin::op::name(operation))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{operation:?}"));
    server.metrics.request(
        operation.0,
        answer.resp.result_reason.map(|r| r.0),
        started.elapsed(),
    );
    if operation != Operation::DISCOVER_VERSIONS {
        server.audit.record(Event {
            time: now,
            identity: identity.to_owned(),
            peer: caller.peer.to_string(),
            operation: op_name,
            object: answer.object.clone(),
            result: answer.outcome.clone(),
        });
    }
}

/// What every item passes before it runs: critical message extensions must
/// be understood, and the caller's role must allow the operation.
pub(crate) fn admit(ctx: &OpCtx<'_>, item: &RequestBatchItem) -> OpResult<()> {
    if let Some(ext) = &item.message_extension {
        if ext.criticality_indicator && ext.vendor_identification != OWN_EXTENSION_VENDOR {
            return Err(OpError::FeatureNotSupported(format!(
                "critical message extension of vendor {:?} is not understood",
                ext.vendor_identification
            )));
        }
    }
    ctx.server.policy.may_run(ctx.caller, item.operation)
}

async fn run_item(ctx: &mut OpCtx<'_>, item: &RequestBatchItem) -> OpResult<ResponsePayload> {
    admit(ctx, item)?;
    use super::{
        attributes as a, create as c, get as g, lifecycle as l, locate as lo, misc as m, query as q,
    };
    use RequestPayload as P;
    use ResponsePayload as R;
    Ok(match &item.payload {
        P::DiscoverVersions(p) => R::DiscoverVersions(q::discover_versions(p)),
        P::Query(p) => R::Query(q::query(ctx, p)),
        P::Create(p) => R::Create(c::create(ctx, p).await?),
        P::Register(p) => R::Register(c::register(ctx, p).await?),
        P::ReKey(p) => R::ReKey(c::rekey(ctx, p).await?),
        P::Get(p) => R::Get(g::get(ctx, p).await?),
        P::GetAttributes(p) => R::GetAttributes(a::get_attributes(ctx, p)?),
        P::GetAttributeList(p) => R::GetAttributeList(a::get_attribute_list(ctx, p)?),
        P::AddAttribute(p) => R::AddAttribute(a::add_attribute(ctx, p).await?),
        P::ModifyAttribute(p) => R::ModifyAttribute(a::modify_attribute(ctx, p).await?),
        P::DeleteAttribute(p) => R::DeleteAttribute(a::delete_attribute(ctx, p).await?),
        P::SetAttribute(p) => R::SetAttribute(a::set_attribute(ctx, p).await?),
        P::Locate(p) => R::Locate(lo::locate_or_make(ctx, p).await?),
        P::Activate(p) => R::Activate(l::activate(ctx, p).await?),
        P::Revoke(p) => R::Revoke(l::revoke(ctx, p).await?),
        P::Destroy(p) => R::Destroy(l::destroy(ctx, p).await?),
        P::Archive(p) => R::Archive(l::archive(ctx, p).await?),
        P::Recover(p) => R::Recover(l::recover(ctx, p).await?),
        P::Check(p) => R::Check(m::check(ctx, p).await?),
        P::ObtainLease(p) => R::ObtainLease(m::obtain_lease(ctx, p)?),
        P::GetUsageAllocation(p) => R::GetUsageAllocation(m::get_usage_allocation(ctx, p).await?),
        P::RngRetrieve(p) => R::RngRetrieve(m::rng_retrieve(p)?),
        P::RngSeed(p) => R::RngSeed(m::rng_seed(p)?),
        P::CreateSplitKey(p) => R::CreateSplitKey(super::split::create_split_key(ctx, p).await?),
        P::JoinSplitKey(p) => R::JoinSplitKey(super::split::join_split_key(ctx, p).await?),
        P::Encrypt(p) => R::Encrypt(super::crypto::encrypt(ctx, p).await?),
        P::Decrypt(p) => R::Decrypt(super::crypto::decrypt(ctx, p).await?),
        P::Other(t) if super::admin::is_admin(item.operation) => {
            R::Other(super::admin::run(ctx, item.operation, t).await?)
        }
        // Answered by ops/pending.rs before an item gets here.
        P::Poll(_) | P::Cancel(_) => {
            return Err(OpError::Internal(
                "Poll and Cancel are answered by the pending table".into(),
            ))
        }
        _ => {
            return Err(OpError::OperationNotSupported(format!(
                "operation {} is not supported",
                item.operation.name().unwrap_or("(unknown)")
            )))
        }
    })
}

/// Runs store-scanning work (Locate reads indexes and may decode many
/// records) while telling a multi-threaded runtime to move this worker's
/// other tasks elsewhere, so other connections are not stalled behind it.
/// On a current-thread runtime (some tests) it simply runs.
pub(super) fn blocking_section<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The Unique Identifier a successful payload produced or named.
pub(crate) fn payload_id(p: &ResponsePayload) -> Option<String> {
    use ResponsePayload as R;
    Some(match p {
        R::Create(r) => r.unique_identifier.clone(),
        R::Register(r) => r.unique_identifier.clone(),
        R::ReKey(r) => r.unique_identifier.clone(),
        R::Get(r) => r.unique_identifier.clone(),
        R::GetAttributes(r) => r.unique_identifier.clone(),
        R::GetAttributeList(r) => r.unique_identifier.clone(),
        R::AddAttribute(r) | R::ModifyAttribute(r) | R::DeleteAttribute(r) => {
            r.unique_identifier.clone()
        }
        R::Activate(r)
        | R::Revoke(r)
        | R::Destroy(r)
        | R::Archive(r)
        | R::Recover(r)
        | R::SetAttribute(r)
        | R::GetUsageAllocation(r) => r.unique_identifier.clone(),
        R::Check(r) => r.unique_identifier.clone(),
        R::ObtainLease(r) => r.unique_identifier.clone(),
        R::Encrypt(r) => r.unique_identifier.clone(),
        R::Decrypt(r) => r.unique_identifier.clone(),
        R::Locate(r) if r.unique_identifiers.len() == 1 => r.unique_identifiers[0].clone(),
        // The ID Placeholder is the part whose Key Part Identifier is 1.
        R::CreateSplitKey(r) => r.unique_identifiers.first()?.clone(),
        R::JoinSplitKey(r) => r.unique_identifier.clone(),
        _ => return None,
    })
}

/// The Unique Identifier a request named, for the audit of failures.
pub(crate) fn request_id(item: &RequestBatchItem) -> Option<String> {
    let t: Ttlv = item.payload.encode(
        kmip::Tag::REQUEST_PAYLOAD,
        kmip::Ctx::new(ProtocolVersion::V1_4),
    );
    t.child(kmip::Tag::UNIQUE_IDENTIFIER)
        .and_then(|u| u.as_text().ok())
        .map(str::to_owned)
}
