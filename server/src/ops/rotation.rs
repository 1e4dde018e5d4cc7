//! kmipd Master Rotate / Retire / List and Jobs Status / Pause / Resume:
//! the vendor operations behind `kmipctl master` and `kmipctl jobs`.
//!
//! Payloads are ENTRY lists (see [`super::admin::entry`]); each job is a
//! JOB structure of entries, newest first.

use super::admin::{entry, tag};
use super::OpCtx;
use crate::errors::{OpError, OpResult};
use crate::jobs::{self, rotation, JobRecord, JobSummary};
use kmip::tables::Tag;
use kmip::Ttlv;

fn text(v: impl Into<String>) -> Ttlv {
    Ttlv::text(Tag(0), v.into())
}

fn long(v: u64) -> Ttlv {
    Ttlv::long(Tag(0), v.min(i64::MAX as u64) as i64)
}

/// The entries describing a job.
pub fn job_entries(j: &JobRecord, rate: Option<f64>) -> Ttlv {
    let mut c = vec![
        entry("id", long(j.id)),
        entry("kind", text(j.kind.to_string())),
        entry("state", text(j.state.to_string())),
        entry("base_version", long(j.base_version as u64)),
        entry("total", long(j.total)),
        entry("done", long(j.done)),
        entry("failed", long(j.failed_count)),
        entry("requested_by", text(j.requested_by.clone())),
        entry("created", Ttlv::date_time(Tag(0), j.created)),
        entry("updated", Ttlv::date_time(Tag(0), j.updated)),
        entry("resumes", long(j.resumes as u64)),
    ];
    if let Some(t) = j.target_version {
        c.push(entry("target_version", long(t as u64)));
    }
    if let Some(f) = j.finished {
        c.push(entry("finished", Ttlv::date_time(Tag(0), f)));
    }
    if let Some(m) = &j.message {
        c.push(entry("message", text(m.clone())));
    }
    if let Some(r) = rate {
        // Objects per second, times 1000 (TTLV has no float).
        c.push(entry("rate_milli", long((r * 1000.0) as u64)));
    }
    for id in &j.failed {
        c.push(entry("failed_id", text(id.clone())));
    }
    Ttlv::structure(tag::JOB, c)
}

fn number(payload: &Ttlv, what: &str) -> OpResult<u64> {
    let v = payload
        .child(tag::NUMBER)
        .ok_or_else(|| OpError::MissingData(format!("the {what} is missing")))?;
    let n = v
        .as_long()
        .or_else(|_| v.as_int().map(i64::from))
        .map_err(|_| OpError::InvalidField(format!("the {what} must be a number")))?;
    u64::try_from(n).map_err(|_| OpError::InvalidField(format!("the {what} must be positive")))
}

/// kmipd Master Rotate: starts a rotation job; answers with the job.
pub async fn rotate(ctx: &OpCtx<'_>) -> OpResult<Ttlv> {
    let job = rotation::start(ctx.server, &ctx.caller.identity).await?;
    Ok(Ttlv::structure(
        Tag::RESPONSE_PAYLOAD,
        vec![job_entries(&job, None)],
    ))
}

/// kmipd Master Retire: payload NUMBER = version.
pub async fn retire(ctx: &OpCtx<'_>, payload: &Ttlv) -> OpResult<Ttlv> {
    let version = u32::try_from(number(payload, "master key version")?)
        .map_err(|_| OpError::InvalidField("master key version out of range".into()))?;
    rotation::retire(ctx.server, version).await?;
    jobs::audit(
        ctx.server,
        &ctx.caller.identity,
        "kmipd Master Retired",
        Some(format!("master key version {version}")),
        "success",
    );
    Ok(Ttlv::structure(
        Tag::RESPONSE_PAYLOAD,
        vec![entry("retired", long(version as u64))],
    ))
}

/// kmipd Master List: one ENTRY "version" structure per version.
pub async fn list(ctx: &OpCtx<'_>) -> OpResult<Ttlv> {
    let versions = rotation::versions(ctx.server).await?;
    let c = versions
        .into_iter()
        .map(|v| {
            Ttlv::structure(
                tag::ENTRY,
                vec![
                    entry("version", long(v.version as u64)),
                    entry("current", Ttlv::boolean(Tag(0), v.current)),
                    entry("held", Ttlv::boolean(Tag(0), v.held)),
                    entry("label", text(v.label)),
                    entry("objects", long(v.objects)),
                ],
            )
        })
        .collect();
    Ok(Ttlv::structure(Tag::RESPONSE_PAYLOAD, c))
}

/// kmipd Jobs Status: every job, newest first (at most 20).
pub fn status(ctx: &OpCtx<'_>) -> OpResult<Ttlv> {
    let jobs: Vec<JobSummary> = jobs::summary(ctx.server).map_err(OpError::from)?;
    Ok(Ttlv::structure(
        Tag::RESPONSE_PAYLOAD,
        jobs.iter()
            .map(|j| job_entries(&j.record, j.rate))
            .collect(),
    ))
}

/// kmipd Jobs Pause / Resume: payload NUMBER = job id.
pub async fn pause_resume(ctx: &OpCtx<'_>, payload: &Ttlv, pause: bool) -> OpResult<Ttlv> {
    let id = number(payload, "job number")?;
    let job = if pause {
        jobs::pause(ctx.server, id).await?
    } else {
        jobs::resume(ctx.server, id).await?
    };
    Ok(Ttlv::structure(
        Tag::RESPONSE_PAYLOAD,
        vec![job_entries(&job, None)],
    ))
}
