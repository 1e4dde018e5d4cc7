//! Check, Obtain Lease, Get Usage Allocation and RNG Retrieve.

use super::OpCtx;
use crate::errors::{OpError, OpResult};
use crate::model::{names, usage_limits, ManagedObject};
use kmip::codec::{Bytes, DateTime, Interval};
use kmip::messages::payloads::{
    CheckRequest, CheckResponse, GetUsageAllocationRequest, IdRequest, IdResponse,
    ObtainLeaseResponse, RngRetrieveRequest, RngRetrieveResponse, RngSeedRequest, RngSeedResponse,
};
use kmip::tables::State;
use rand::RngCore;

/// The lease kmipd grants (seconds).
pub const LEASE_SECS: u32 = 3600;

/// What is left of an object's Usage Limits, if it has any.
fn usage_left(o: &ManagedObject) -> Option<i64> {
    let (total, count, _) = usage_limits::parts(&o.first(names::USAGE_LIMITS)?.value)?;
    Some(count.unwrap_or(total))
}

/// Check: the object exists, is visible and allows the usage asked for,
/// and its Usage Limits allow the count asked for.
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
    if let (Some(want), Some(left)) = (p.usage_limits_count, usage_left(&o)) {
        if want > left {
            return Err(OpError::PermissionDenied(format!(
                "object {id} has {left} of its usage limit left"
            )));
        }
    }
    Ok(CheckResponse {
        unique_identifier: id,
        ..Default::default()
    })
}

/// Obtain Lease (KMIP 1.x, 4.20): granted on Active objects only ("if the
/// server determines that a new lease SHALL NOT be issued ... the server
/// SHALL respond with an error"). The lease is the object's Lease Time,
/// but never runs past its Protect Stop or Deactivation Date: a client
/// must not use the key beyond them on the strength of a lease.
pub fn obtain_lease(ctx: &OpCtx<'_>, p: &IdRequest) -> OpResult<ObtainLeaseResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let o = ctx.load_online(&id)?;
    let state = o.stored_state();
    if state != State::ACTIVE {
        return Err(OpError::PermissionDenied(format!(
            "object {id} is {state}: no lease is given"
        )));
    }
    Ok(ObtainLeaseResponse {
        unique_identifier: id,
        lease_time: Interval(lease_for(&o, ctx.now)),
        last_change_date: DateTime(o.date(names::LAST_CHANGE_DATE).unwrap_or(ctx.now)),
    })
}

/// The lease an Active object gets at `now`: its Lease Time (kmipd's
/// [`LEASE_SECS`] when it has none), bounded by the time left before its
/// Protect Stop and Deactivation Dates.
pub fn lease_for(o: &ManagedObject, now: i64) -> u32 {
    let lease = o
        .first(names::LEASE_TIME)
        .and_then(|a| match a.value {
            kmip::Value::Interval(i) => Some(i64::from(i)),
            _ => None,
        })
        .unwrap_or(i64::from(LEASE_SECS));
    [names::PROTECT_STOP_DATE, names::DEACTIVATION_DATE]
        .iter()
        .filter_map(|n| o.date(n))
        // Dates are client-set and may be anywhere in i64: no overflow.
        .map(|d| d.saturating_sub(now).max(0))
        .fold(lease, i64::min)
        .clamp(0, i64::from(u32::MAX)) as u32
}

/// Get Usage Allocation (KMIP 1.x, 4.21): takes the requested count from
/// the object's Usage Limits Count; refused (Permission Denied) when less
/// is left, or when the object is not Active or past its Protect Stop Date.
pub async fn get_usage_allocation(
    ctx: &OpCtx<'_>,
    p: &GetUsageAllocationRequest,
) -> OpResult<IdResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let want = p.usage_limits_count.unwrap_or(0);
    if want <= 0 {
        return Err(OpError::InvalidField(
            "Usage Limits Count must be positive".into(),
        ));
    }
    let _guard = ctx.server.lock(&id).await;
    let old = ctx.load_online(&id)?;
    let state = old.stored_state();
    if state != State::ACTIVE {
        return Err(OpError::WrongState(format!(
            "object {id} is {state}, not Active"
        )));
    }
    if old
        .date(names::PROTECT_STOP_DATE)
        .is_some_and(|d| d <= ctx.now)
    {
        return Err(OpError::PermissionDenied(format!(
            "object {id} is past its Protect Stop Date"
        )));
    }
    let Some((total, count, unit)) = old
        .first(names::USAGE_LIMITS)
        .and_then(|a| usage_limits::parts(&a.value))
    else {
        // No Usage Limits: nothing to account.
        return Ok(IdResponse {
            unique_identifier: id,
        });
    };
    let left = count.unwrap_or(total);
    if want > left {
        return Err(OpError::PermissionDenied(format!(
            "unable to allocate {want}: {left} left of the usage limit of object {id}"
        )));
    }
    let mut new = old.clone();
    new.set(
        names::USAGE_LIMITS,
        usage_limits::value(total, left - want, unit),
    );
    ctx.save(Some(&old), &mut new).await?;
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

/// RNG Seed (KMIP 1.3): kmipd draws every random byte from the operating
/// system's CSPRNG and lets no client seed it, so the seed is accepted and
/// none of it is used (Data Length 0, which the specification allows: the
/// server reports how much of the seed it used).
pub fn rng_seed(p: &RngSeedRequest) -> OpResult<RngSeedResponse> {
    if p.data.0.is_empty() {
        return Err(OpError::InvalidField("RNG Seed needs Data".into()));
    }
    Ok(RngSeedResponse { data_length: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmip::tables::ObjectType;
    use kmip::Value;

    #[test]
    fn rng_seed_uses_none_of_the_seed() {
        let r = rng_seed(&RngSeedRequest {
            data: kmip::codec::Bytes(vec![7; 32]),
        })
        .unwrap();
        assert_eq!(r.data_length, 0);
        assert!(rng_seed(&RngSeedRequest::default()).is_err());
    }

    #[test]
    fn lease_survives_extreme_client_dates() {
        let mut o = ManagedObject {
            id: "k".into(),
            object_type: ObjectType::SYMMETRIC_KEY,
            owner: "o".into(),
            group: "g".into(),
            creator: None,
            revision: 1,
            attributes: Vec::new(),
            material: None,
            archived: false,
            created: 0,
        };
        o.set(names::DEACTIVATION_DATE, Value::DateTime(i64::MIN));
        assert_eq!(lease_for(&o, 1_700_000_000), 0);
        o.set(names::DEACTIVATION_DATE, Value::DateTime(i64::MAX));
        assert_eq!(lease_for(&o, -1_700_000_000), LEASE_SECS);
    }
}
