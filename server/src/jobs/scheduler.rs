//! The policy scheduler: a timer with jitter that calls [`Scheduler::tick`]
//! with the server clock's time. Every policy is evaluated by `tick(now)`
//! alone, so tests drive it with a fake clock and never sleep.
//!
//! Policies (see `[policies]` in the configuration):
//!
//! * **master key rotation** every N days, counted from the last rotation
//!   job (or from the first tick that saw the policy); skipped while another
//!   job is unfinished (one job at a time);
//! * **cryptoperiods**: Active symmetric keys whose custom attributes match,
//!   older than `rekey_after` (from the Activation Date, else the Initial
//!   Date) and not yet replaced, are re-keyed (Re-key with Offset 0: the
//!   replacement is Active at once and linked Replaced/Replacement); the old
//!   key gets a Deactivation Date `grace` later;
//! * **state transitions**: objects whose Activation or Deactivation Date
//!   has passed get their new State persisted (reads already see it, the
//!   index and Locate by State need it stored); Process Start and Protect
//!   Stop Dates change no State in KMIP and are audited as they pass.
//!
//! Every change is audited as `kmipd-scheduler`.

use super::{audit, rotation, SCHEDULER_IDENTITY};
use crate::access::Caller;
use crate::catalog::field;
use crate::config::{PoliciesConfig, Role};
use crate::model::{names, ManagedObject};
use crate::ops::OpCtx;
use crate::state::Server;
use crate::store::{Table, Transaction};
use kmip::codec::Interval;
use kmip::messages::payloads::ReKeyRequest;
use kmip::tables::{LinkType, ObjectType, State, Tag};
use kmip::{ProtocolVersion, Value};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const ANCHOR_KEY: &[u8] = b"policy/master-rotation-anchor";
const LAST_TICK_KEY: &[u8] = b"policy/last-tick";

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// The rotation job started, if any.
    pub rotation_started: Option<u64>,
    /// (old id, replacement id) of keys re-keyed by a cryptoperiod.
    pub rekeyed: Vec<(String, String)>,
    /// (id, from, to) of persisted state transitions.
    pub transitions: Vec<(String, State, State)>,
    /// (id, date name) of Process Start / Protect Stop dates that passed.
    pub dates_passed: Vec<(String, &'static str)>,
    /// Problems (also logged); the next tick tries again.
    pub errors: Vec<String>,
}

/// Evaluates the policies of one server.
#[derive(Debug, Clone)]
pub struct Scheduler {
    server: Arc<Server>,
    policies: PoliciesConfig,
}

fn read_i64(server: &Server, key: &[u8]) -> Option<i64> {
    let v = server.catalog.backend().get(Table::Jobs, key).ok()??;
    std::str::from_utf8(&v).ok()?.parse().ok()
}

async fn write_i64(server: &Server, key: &[u8], v: i64) -> crate::store::Result<()> {
    let mut txn = Transaction::new();
    txn.put(Table::Jobs, key.to_vec(), v.to_string().into_bytes());
    server.catalog.commit(&txn).await
}

fn has_replacement(o: &ManagedObject) -> bool {
    o.all(names::LINK).any(|a| match &a.value {
        Value::Structure(c) => c.iter().any(|t| {
            t.tag == Tag::LINK_TYPE && t.as_enum().ok() == Some(LinkType::REPLACEMENT_OBJECT_LINK.0)
        }),
        _ => false,
    })
}

impl Scheduler {
    /// A scheduler for `server` with `policies`.
    pub fn new(server: Arc<Server>, policies: PoliciesConfig) -> Self {
        Self { server, policies }
    }

    fn caller(group: &str) -> Caller {
        Caller {
            identity: SCHEDULER_IDENTITY.into(),
            role: Role::Admin,
            group: group.to_owned(),
            peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            credential: None,
        }
    }

    /// Evaluates every policy at `now` (seconds since the epoch).
    pub async fn tick(&self, now: i64) -> TickReport {
        let mut report = TickReport::default();
        if let Err(e) = self.master_rotation(now, &mut report).await {
            report.errors.push(format!("master key rotation: {e}"));
        }
        for cp in &self.policies.cryptoperiods {
            if let Err(e) = self.cryptoperiod(cp, now, &mut report).await {
                report
                    .errors
                    .push(format!("cryptoperiod {:?}: {e}", cp.name));
            }
        }
        if self.policies.state_transitions {
            if let Err(e) = self.transitions(now, &mut report).await {
                report.errors.push(format!("state transitions: {e}"));
            }
        }
        for e in &report.errors {
            tracing::error!(error = %e, "policy failed; retried at the next check");
        }
        report
    }

    async fn master_rotation(&self, now: i64, report: &mut TickReport) -> anyhow::Result<()> {
        let Some(period) = self.policies.rotate_master_key else {
            return Ok(());
        };
        let s = &self.server;
        let jobs = super::list(s)?;
        if jobs.iter().any(super::JobRecord::unfinished) {
            return Ok(());
        }
        let last = jobs
            .iter()
            .filter(|j| j.kind == super::JobKind::MasterRotate)
            .map(|j| j.created)
            .max();
        let last = match last.or_else(|| read_i64(s, ANCHOR_KEY)) {
            Some(t) => t,
            None => {
                // The policy starts counting now.
                write_i64(s, ANCHOR_KEY, now).await?;
                now
            }
        };
        if now - last < period.as_secs() as i64 {
            return Ok(());
        }
        let job = rotation::start(s, SCHEDULER_IDENTITY).await?;
        audit(
            s,
            SCHEDULER_IDENTITY,
            "kmipd Policy Master Rotate",
            Some(format!("job {}", job.id)),
            &format!(
                "started: version {} -> {}",
                job.base_version,
                job.target_version.unwrap_or(0)
            ),
        );
        report.rotation_started = Some(job.id);
        Ok(())
    }

    async fn cryptoperiod(
        &self,
        cp: &crate::config::Cryptoperiod,
        now: i64,
        report: &mut TickReport,
    ) -> anyhow::Result<()> {
        let s = &self.server;
        let Some((name, value)) = cp.matches.first() else {
            return Ok(());
        };
        let ids = s
            .catalog
            .ids_where(&format!("{}{name}", field::CUSTOM_PREFIX), value)?;
        for id in ids {
            let Some(mut o) = s.catalog.get(&id)? else {
                continue;
            };
            o.advance_state(now);
            let matches = cp
                .matches
                .iter()
                .all(|(n, v)| o.all(n).any(|a| a.text() == Some(v.as_str())));
            let born = o
                .date(names::ACTIVATION_DATE)
                .or_else(|| o.date(names::INITIAL_DATE));
            // An Activation Date is client-set and may be anywhere in i64.
            let due = born.is_some_and(|b| {
                now.saturating_sub(b) >= i64::try_from(cp.rekey_after.as_secs()).unwrap_or(i64::MAX)
            });
            if !matches
                || o.object_type != ObjectType::SYMMETRIC_KEY
                || o.archived
                // Metadata-only keys (KMIP 1.2) have no value to re-key.
                || o.key_value_absent()
                || o.stored_state() != State::ACTIVE
                || has_replacement(&o)
                || !due
            {
                continue;
            }
            let caller = Self::caller(&o.group);
            let ctx = OpCtx::new(s, &caller, ProtocolVersion::V1_4, now);
            let request = ReKeyRequest {
                unique_identifier: Some(id.clone()),
                offset: Some(Interval(0)),
                template_attribute: None,
                attributes: None,
                protection_storage_masks: None,
            };
            let new_id = match crate::ops::create::rekey(&ctx, &request).await {
                Ok(r) => r.unique_identifier,
                Err(e) => {
                    report.errors.push(format!("re-key of {id}: {e}"));
                    continue;
                }
            };
            audit(
                s,
                SCHEDULER_IDENTITY,
                "kmipd Policy Re-key",
                Some(id.clone()),
                &format!("replaced by {new_id} (cryptoperiod {})", cp.name),
            );
            // The old key stays usable for the grace period.
            let deactivate = now + cp.grace.as_secs() as i64;
            {
                let _guard = s.lock(&id).await;
                if let Some(old) = s.catalog.get(&id)? {
                    let mut new = old.clone();
                    if new
                        .date(names::DEACTIVATION_DATE)
                        .is_none_or(|d| d > deactivate)
                    {
                        new.set(names::DEACTIVATION_DATE, Value::DateTime(deactivate));
                        ctx.save(Some(&old), &mut new).await?;
                    }
                }
            }
            audit(
                s,
                SCHEDULER_IDENTITY,
                "kmipd Policy Deactivation Date",
                Some(id.clone()),
                &format!("set to {}", kmip::time::format_rfc3339(deactivate)),
            );
            report.rekeyed.push((id, new_id));
        }
        Ok(())
    }

    async fn transitions(&self, now: i64, report: &mut TickReport) -> anyhow::Result<()> {
        let s = self.server.clone();
        let since = read_i64(&s, LAST_TICK_KEY).unwrap_or(i64::MIN);
        // One pass over the objects off the runtime: those whose state is
        // due to change, and the usage dates that passed since the last tick.
        type Found = (Vec<String>, Vec<(String, &'static str)>);
        let (due, passed): Found = tokio::task::spawn_blocking(move || {
            let mut due = Vec::new();
            let mut passed = Vec::new();
            s.catalog.for_each(&mut |mut o| {
                for n in [names::PROCESS_START_DATE, names::PROTECT_STOP_DATE] {
                    if o.date(n).is_some_and(|d| d > since && d <= now) {
                        passed.push((o.id.clone(), n));
                    }
                }
                if !o.archived && o.advance_state(now) {
                    due.push(o.id);
                }
                true
            })?;
            Ok::<_, crate::store::StoreError>((due, passed))
        })
        .await??;
        let s = &self.server;
        for id in due {
            let _guard = s.lock(&id).await;
            let Some(old) = s.catalog.get(&id)? else {
                continue;
            };
            let mut new = old.clone();
            if !new.advance_state(now) {
                continue;
            }
            let caller = Self::caller(&old.group);
            let ctx = OpCtx::new(s, &caller, ProtocolVersion::V1_4, now);
            ctx.save(Some(&old), &mut new).await?;
            s.cache.evict(&id);
            let (from, to) = (old.stored_state(), new.stored_state());
            audit(
                s,
                SCHEDULER_IDENTITY,
                "kmipd Policy State Transition",
                Some(id.clone()),
                &format!("{from} -> {to}"),
            );
            report.transitions.push((id, from, to));
        }
        for (id, n) in passed {
            audit(
                s,
                SCHEDULER_IDENTITY,
                "kmipd Policy Date Passed",
                Some(id.clone()),
                n,
            );
            report.dates_passed.push((id, n));
        }
        write_i64(s, LAST_TICK_KEY, now).await?;
        Ok(())
    }

    /// Runs `tick` every check interval plus up to 10 % jitter (so that a
    /// cluster's nodes do not all wake together), until `shutdown`.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let base = self.policies.check_interval;
                let jitter = rand::thread_rng().gen_range(0.0..0.1);
                let wait = base + Duration::from_secs_f64(base.as_secs_f64() * jitter);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                let report = self.tick(self.server.clock.now()).await;
                if report.rotation_started.is_some() {
                    self.server.jobs.wake();
                }
            }
        })
    }
}
