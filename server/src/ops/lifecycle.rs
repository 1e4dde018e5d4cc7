//! Activate, Revoke, Destroy, Archive and Recover: the lifecycle state
//! machine of KMIP (Pre-Active → Active → Deactivated; Compromised from any
//! live state; Destroyed and Destroyed Compromised, with metadata kept).

use super::OpCtx;
use crate::errors::{OpError, OpResult};
use crate::model::names;
use kmip::messages::attributes::struct_value;
use kmip::messages::payloads::{IdRequest, IdResponse, RevokeRequest};
use kmip::tables::{RevocationReasonCode, State};
use kmip::Value;

/// Activate: Pre-Active → Active.
pub async fn activate(ctx: &OpCtx<'_>, p: &IdRequest) -> OpResult<IdResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let _guard = ctx.server.lock(&id).await;
    let old = ctx.load_online(&id)?;
    let state = old.stored_state();
    if state != State::PRE_ACTIVE {
        return Err(OpError::WrongState(format!(
            "object {id} is {state}, not Pre-Active"
        )));
    }
    let mut new = old.clone();
    new.set(names::STATE, Value::Enumeration(State::ACTIVE.0));
    new.set(names::ACTIVATION_DATE, Value::DateTime(ctx.now));
    ctx.save(Some(&old), &mut new).await?;
    Ok(IdResponse {
        unique_identifier: id,
    })
}

/// Revoke: Key Compromise or CA Compromise → Compromised (with Compromise
/// Date); other reasons → Deactivated.
pub async fn revoke(ctx: &OpCtx<'_>, p: &RevokeRequest) -> OpResult<IdResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let _guard = ctx.server.lock(&id).await;
    let old = ctx.load_online(&id)?;
    let state = old.stored_state();
    let compromise = matches!(
        p.revocation_reason.revocation_reason_code,
        RevocationReasonCode::KEY_COMPROMISE | RevocationReasonCode::CA_COMPROMISE
    );
    let mut new = old.clone();
    if compromise {
        if matches!(
            state,
            State::DESTROYED | State::DESTROYED_COMPROMISED | State::COMPROMISED
        ) {
            let next = if state == State::DESTROYED {
                State::DESTROYED_COMPROMISED
            } else {
                state
            };
            new.set(names::STATE, Value::Enumeration(next.0));
        } else {
            new.set(names::STATE, Value::Enumeration(State::COMPROMISED.0));
        }
        new.set(names::COMPROMISE_DATE, Value::DateTime(ctx.now));
        let occurred = p.compromise_occurrence_date.map(|d| d.0).unwrap_or(ctx.now);
        new.set(names::COMPROMISE_OCCURRENCE_DATE, Value::DateTime(occurred));
    } else {
        if state != State::ACTIVE {
            return Err(OpError::WrongState(format!(
                "object {id} is {state}: only Active objects are deactivated by Revoke"
            )));
        }
        new.set(names::STATE, Value::Enumeration(State::DEACTIVATED.0));
        new.set(names::DEACTIVATION_DATE, Value::DateTime(ctx.now));
    }
    new.set(
        names::REVOCATION_REASON,
        struct_value(&p.revocation_reason, ctx.ctx()),
    );
    ctx.save(Some(&old), &mut new).await?;
    Ok(IdResponse {
        unique_identifier: id,
    })
}

/// Destroy: erases the content, keeps the metadata. Active objects must be
/// revoked first.
pub async fn destroy(ctx: &OpCtx<'_>, p: &IdRequest) -> OpResult<IdResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let _guard = ctx.server.lock(&id).await;
    let old = ctx.load(&id)?;
    let state = old.stored_state();
    let next = match state {
        State::ACTIVE => {
            return Err(OpError::WrongState(format!(
                "object {id} is Active: revoke it before destroying it"
            )))
        }
        State::COMPROMISED => State::DESTROYED_COMPROMISED,
        State::DESTROYED | State::DESTROYED_COMPROMISED => {
            return Err(OpError::WrongState(format!(
                "object {id} is already destroyed"
            )))
        }
        _ => State::DESTROYED,
    };
    let mut new = old.clone();
    new.material = None;
    new.set(names::STATE, Value::Enumeration(next.0));
    new.set(names::DESTROY_DATE, Value::DateTime(ctx.now));
    ctx.save(Some(&old), &mut new).await?;
    ctx.server.cache.evict(&id);
    Ok(IdResponse {
        unique_identifier: id,
    })
}

/// Archive: takes the object offline.
pub async fn archive(ctx: &OpCtx<'_>, p: &IdRequest) -> OpResult<IdResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let _guard = ctx.server.lock(&id).await;
    let old = ctx.load(&id)?;
    let mut new = old.clone();
    new.archived = true;
    new.set(names::ARCHIVE_DATE, Value::DateTime(ctx.now));
    ctx.save(Some(&old), &mut new).await?;
    Ok(IdResponse {
        unique_identifier: id,
    })
}

/// Recover: brings an archived object back online.
pub async fn recover(ctx: &OpCtx<'_>, p: &IdRequest) -> OpResult<IdResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let _guard = ctx.server.lock(&id).await;
    let old = ctx.load(&id)?;
    let mut new = old.clone();
    new.archived = false;
    new.remove(names::ARCHIVE_DATE);
    ctx.save(Some(&old), &mut new).await?;
    Ok(IdResponse {
        unique_identifier: id,
    })
}
