//! Check, Obtain Lease, Get Usage Allocation and RNG Retrieve.

use super::OpCtx;
use crate::errors::{OpError, OpResult};
use crate::model::names;
use kmip::codec::{Bytes, DateTime, Interval};
use kmip::messages::payloads::{
    CheckRequest, CheckResponse, GetUsageAllocationRequest, IdRequest, IdResponse,
    ObtainLeaseResponse, RngRetrieveRequest, RngRetrieveResponse,
};
use kmip::tables::State;
use rand::RngCore;

/// The lease kmipd grants (seconds).
pub const LEASE_SECS: u32 = 3600;

/// Check: the object exists, is visible and allows the usage asked for.
pub async fn check(ctx: &OpCtx<'_>, p: &CheckRequest) -> OpResult<CheckResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let o = ctx.load_online(&id)?;
    if let Some(want) = p.cryptographic_usage_mask {
        let have = o
            .first(names::CRYPTOGRAPHIC_USAGE_MASK)
            .and_then(|a| a.integer())
            .unwrap_or(0) as u32;
        if have & want.0 != want.0 {
            return Err(OpError::IllegalOperation(format!(
                "object {id} does not allow the requested cryptographic usage"
            )));
        }
    }
    Ok(CheckResponse {
        unique_identifier: id,
        ..Default::default()
    })
}

/// Obtain Lease: granted on Active objects.
pub fn obtain_lease(ctx: &OpCtx<'_>, p: &IdRequest) -> OpResult<ObtainLeaseResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let o = ctx.load_online(&id)?;
    if o.stored_state() != State::ACTIVE {
        return Err(OpError::WrongState(format!(
            "object {id} is {}, not Active",
            o.stored_state()
        )));
    }
    Ok(ObtainLeaseResponse {
        unique_identifier: id,
        lease_time: Interval(LEASE_SECS),
        last_change_date: DateTime(o.date(names::LAST_CHANGE_DATE).unwrap_or(ctx.now)),
    })
}

/// Get Usage Allocation: granted on Active objects.
pub fn get_usage_allocation(
    ctx: &OpCtx<'_>,
    p: &GetUsageAllocationRequest,
) -> OpResult<IdResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let o = ctx.load_online(&id)?;
    if o.stored_state() != State::ACTIVE {
        return Err(OpError::WrongState(format!(
            "object {id} is {}, not Active",
            o.stored_state()
        )));
    }
    if p.usage_limits_count.is_some_and(|c| c <= 0) {
        return Err(OpError::InvalidField(
            "Usage Limits Count must be positive".into(),
        ));
    }
    Ok(IdResponse {
        unique_identifier: id,
    })
}

/// Largest RNG Retrieve answered.
pub const RNG_MAX: i32 = 65_536;

/// RNG Retrieve.
pub fn rng_retrieve(p: &RngRetrieveRequest) -> OpResult<RngRetrieveResponse> {
    if !(1..=RNG_MAX).contains(&p.data_length) {
        return Err(OpError::InvalidField(format!(
            "Data Length must be 1..={RNG_MAX}"
        )));
    }
    let mut data = vec![0u8; p.data_length as usize];
    rand::rngs::OsRng.fill_bytes(&mut data);
    Ok(RngRetrieveResponse { data: Bytes(data) })
}
