//! Asynchronous operations: Operation Pending, Poll and Cancel.
//!
//! Policy. KMIP lets the server decide which operations it answers
//! asynchronously when a request's header allows it (Asynchronous
//! Indicator true). kmipd does so for the operations of [`ASYNCHRONOUS`] —
//! Locate (a scan of the catalog that can be long), Archive and Recover (the
//! operations the specification describes as possibly slow) — and only for
//! the last item of a batch, so no later item depends on its ID Placeholder.
//! Every other operation, and every item of a request without the indicator,
//! is answered synchronously, as before.
//!
//! Such an item is answered at once with Result Status Operation Pending and
//! an Asynchronous Correlation Value (16 random bytes, unguessable). The
//! operation is then run in the background by [`spawn`]'s worker, one at a
//! time in arrival order, or started by the caller's Poll if the worker has
//! not started it yet (in a task of its own, so that a Poll abandoned by its
//! client or its deadline never leaves it half run; a panic ends the entry
//! as a General Failure). A Locate for a fresh group member is always
//! answered synchronously: it may make one (on-demand object groups).
//! Poll answers with the original operation's response,
//! exactly as a synchronous answer would have been (its Operation is the
//! original one); while the operation still runs, Poll waits up to
//! [`Bounds::wait`] (2 s), then answers Operation Pending without a payload.
//! A state-changing operation is durable before its result is stored, so no
//! Poll announces a success that a crash could lose.
//!
//! Cancel answers with a Cancellation Result:
//! - Canceled: the operation had not started (it never will), or it reads
//!   only (Locate) and its result had not been delivered: the result is
//!   discarded, and nothing it did remains.
//! - Completed / Failed: a state-changing operation had finished (with
//!   success / with a failure), or a Locate's result was already delivered.
//! - Unable to Cancel: a state-changing operation still runs after
//!   [`Bounds::wait`]; its outcome is for a later Poll or Cancel.
//! - Unavailable: no such operation of the caller's is known.
//!
//! Bounds. Pending operations live in memory (a restart forgets them: Poll
//! then answers Item Not Found, like any unknown value) in a table capped in
//! entries, in entries per caller and in bytes ([`Bounds`]). Results are kept
//! for [`Bounds::ttl`] seconds after they are ready, so a client that lost a
//! Poll's response can poll again; a request nothing has started within
//! that time after it was queued is forgotten too. When a new request would
//! exceed a cap, kmipd simply answers it synchronously: the client allowed
//! an asynchronous reply, it did not require one, so a flood of asynchronous
//! requests costs no memory beyond the caps. A Locate result larger than
//! [`Bounds::result_bytes`] (or than the byte budget left) is replaced by a
//! Response Too Large failure.
//!
//! Identity. Only the identity that started an operation (same identity
//! name, role and group, and the same credential principal, under which it
//! also runs) may Poll or Cancel it; the per-caller cap counts by
//! certificate, whatever principals it names; to anyone else the value is
//! unknown (Item Not Found, Unavailable), exactly as a value never issued.

use super::batch::{self, Answer};
use super::OpCtx;
use crate::access::Caller;
use crate::errors::{OpError, OpResult};
use crate::state::Server;
use kmip::codec::{Bytes, Field};
use kmip::messages::payloads::{CancelResponse, RequestPayload, ResponsePayload};
use kmip::messages::{RequestBatchItem, ResponseBatchItem};
use kmip::tables::{CancellationResult, Operation, ResultReason, ResultStatus, Tag};
use kmip::{Ctx, ProtocolVersion};
use rand::RngCore;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// Whether an asynchronous operation changes stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only: cancelling it discards its result.
    ReadOnly,
    /// Changes objects: once started it runs to its end.
    Changes,
}

/// The operations kmipd answers asynchronously when the client allows it.
pub const ASYNCHRONOUS: &[(Operation, Effect)] = &[
    (Operation::LOCATE, Effect::ReadOnly),
    (Operation::ARCHIVE, Effect::Changes),
    (Operation::RECOVER, Effect::Changes),
];

/// Results up to this size are kept even when the byte budget is spent
/// (Archive and Recover answer with an identifier: their outcome is never
/// dropped); their number is bounded by the entry caps.
const SMALL_RESULT: usize = 1024;

/// The effect of `op` if kmipd answers it asynchronously.
pub fn effect(op: Operation) -> Option<Effect> {
    ASYNCHRONOUS.iter().find(|(o, _)| *o == op).map(|(_, e)| *e)
}

/// Caps of the pending table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Entries in all.
    pub total: usize,
    /// Entries of one caller.
    pub per_caller: usize,
    /// Bytes of stored requests and results (TTLV size) in all.
    pub bytes: usize,
    /// Bytes of one result.
    pub result_bytes: usize,
    /// Seconds a result (or an unstarted request) is kept.
    pub ttl: i64,
    /// How long Poll and Cancel wait for a running operation before
    /// answering that it is still pending (well below the request deadline).
    pub wait: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            total: 1024,
            per_caller: 64,
            bytes: 16 << 20,
            result_bytes: 1 << 20,
            ttl: 600,
            wait: Duration::from_secs(2),
        }
    }
}

/// An Asynchronous Correlation Value.
type Key = [u8; 16];

enum Stage {
    /// Waiting for the worker or a Poll.
    Queued(Box<RequestBatchItem>),
    /// Being run; `discard` when a Cancel withdrew a read-only operation.
    Running { discard: bool },
    /// Finished: the response a synchronous request would have had.
    Done(Box<ResponseBatchItem>),
}

struct Entry {
    /// The caller qualified by its credential principal (Poll and Cancel).
    owner: Caller,
    /// The certificate's caller: the per-caller cap counts by it, since
    /// principals are labels a certificate holder chooses.
    certificate: Caller,
    /// The credential principal it runs under (the default Operation Policy).
    principal: Option<String>,
    version: ProtocolVersion,
    operation: Operation,
    effect: Effect,
    placeholder: Option<String>,
    stage: Stage,
    /// Bytes charged to the budget (the request while queued, the result once done).
    weight: usize,
    /// Whether a Poll has returned the result.
    delivered: bool,
    /// When it is forgotten (not while running).
    expires: i64,
}

#[derive(Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    /// Queued entries in arrival order.
    queue: VecDeque<Key>,
    bytes: usize,
}

impl Table {
    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.bytes -= e.weight;
        if matches!(e.stage, Stage::Queued(_)) {
            self.queue.retain(|k| k != key);
        }
        Some(e)
    }

    fn purge(&mut self, now: i64) {
        let expired: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| !matches!(e.stage, Stage::Running { .. }) && e.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            self.remove(&k);
        }
    }

    /// The caller's entry under `key`; anyone else's is not there.
    fn own(&mut self, owner: &Caller, key: &Key) -> Option<&mut Entry> {
        self.entries
            .get_mut(key)
            .filter(|e| same_owner(&e.owner, owner))
            // A withdrawn Locate that is finishing is already gone.
            .filter(|e| !matches!(e.stage, Stage::Running { discard: true }))
    }
}

/// Whom an operation belongs to: the caller, its identity qualified by the
/// request's credential principal (as the audit names it), so that two
/// principals behind one certificate do not see each other's operations.
fn owner_of(ctx: &OpCtx<'_>) -> Caller {
    qualify(ctx.caller, ctx.principal.as_deref())
}

fn qualify(caller: &Caller, principal: Option<&str>) -> Caller {
    let mut owner = caller.clone();
    if let Some(p) = principal {
        owner.identity = format!("{} ({p})", owner.identity);
    }
    owner
}

fn same_owner(a: &Caller, b: &Caller) -> bool {
    a.identity == b.identity && a.role == b.role && a.group == b.group
}

/// An operation taken from the table to be run.
struct Claim {
    key: Key,
    owner: Caller,
    principal: Option<String>,
    version: ProtocolVersion,
    placeholder: Option<String>,
    item: Box<RequestBatchItem>,
}

/// What a Poll finds.
enum View {
    Unknown,
    Queued,
    Running,
    Done(Box<ResponseBatchItem>),
}

/// What a Cancel does.
enum Withdraw {
    Result(CancellationResult),
    /// A state-changing operation is running: wait for its end.
    Wait,
}

/// The table of pending asynchronous operations, shared by all connections.
pub struct Pending {
    bounds: Bounds,
    table: Mutex<Table>,
    /// Bumped whenever an operation finishes (Poll and Cancel wait on it).
    finished: watch::Sender<u64>,
    /// Wakes the worker when an operation is queued.
    wake: Notify,
    /// The server, once [`spawn`] started the worker: a Poll that claims a
    /// queued operation runs it in a task of its own, which finishes it even
    /// if the Poll's request is abandoned (its deadline, a closed connection).
    server: std::sync::OnceLock<std::sync::Weak<Server>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entries, bytes) = self
            .table
            .lock()
            .map(|t| (t.entries.len(), t.bytes))
            .unwrap_or_default();
        f.debug_struct("Pending")
            .field("bounds", &self.bounds)
            .field("entries", &entries)
            .field("bytes", &bytes)
            .finish()
    }
}

impl Default for Pending {
    fn default() -> Self {
        Self::new(Bounds::default())
    }
}

impl Pending {
    /// An empty table with these caps.
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            table: Mutex::new(Table::default()),
            finished: watch::channel(0).0,
            wake: Notify::new(),
            server: std::sync::OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Nothing panics while holding the lock; a poisoned lock still holds
        // a consistent table.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of entries (metrics, tests).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `item` for `owner` and returns its correlation value, or
    /// `None` when a cap is reached (the caller then runs it synchronously).
    fn submit(
        &self,
        caller: &Caller,
        principal: Option<String>,
        version: ProtocolVersion,
        item: &RequestBatchItem,
        placeholder: Option<String>,
        now: i64,
    ) -> Option<Key> {
        let effect = effect(item.operation)?;
        let weight = weight(&item.encode(Tag::BATCH_ITEM, Ctx::new(version)));
        let mut t = self.lock();
        t.purge(now);
        let owner = qualify(caller, principal.as_deref());
        let mine = t
            .entries
            .values()
            .filter(|e| same_owner(&e.certificate, caller))
            .count();
        if t.entries.len() >= self.bounds.total
            || mine >= self.bounds.per_caller
            || t.bytes + weight > self.bounds.bytes
        {
            return None;
        }
        let mut key = [0u8; 16];
        loop {
            rand::rngs::OsRng.fill_bytes(&mut key);
            if !t.entries.contains_key(&key) {
                break;
            }
        }
        t.entries.insert(
            key,
            Entry {
                owner,
                certificate: caller.clone(),
                principal,
                version,
                operation: item.operation,
                effect,
                placeholder,
                stage: Stage::Queued(Box::new(item.clone())),
                weight,
                delivered: false,
                expires: now + self.bounds.ttl,
            },
        );
        t.bytes += weight;
        t.queue.push_back(key);
        drop(t);
        self.wake.notify_one();
        Some(key)
    }

    /// Takes a queued operation to run: `key`'s, or else the oldest.
    fn claim(&self, key: Option<&Key>) -> Option<Claim> {
        let mut t = self.lock();
        let queued = |t: &Table, k: &Key| {
            matches!(t.entries.get(k).map(|e| &e.stage), Some(Stage::Queued(_)))
        };
        let key = match key {
            Some(k) if queued(&t, k) => {
                t.queue.retain(|q| q != k);
                *k
            }
            Some(_) => return None,
            None => loop {
                let k = t.queue.pop_front()?;
                if queued(&t, &k) {
                    break k;
                }
            },
        };
        let e = t.entries.get_mut(&key)?;
        let Stage::Queued(item) =
            std::mem::replace(&mut e.stage, Stage::Running { discard: false })
        else {
            return None;
        };
        let freed = std::mem::take(&mut e.weight);
        let claim = Claim {
            key,
            owner: e.owner.clone(),
            principal: e.principal.clone(),
            version: e.version,
            placeholder: e.placeholder.clone(),
            item,
        };
        t.bytes -= freed;
        Some(claim)
    }

    /// Stores the response of a claimed operation and wakes its waiters.
    fn finish(&self, key: &Key, mut resp: ResponseBatchItem, now: i64) {
        let mut t = self.lock();
        let (discard, version, operation) = match t.entries.get(key) {
            Some(e) => (
                matches!(e.stage, Stage::Running { discard: true }),
                e.version,
                e.operation,
            ),
            None => return,
        };
        if discard {
            t.remove(key);
        } else {
            let budget_left = self.bounds.bytes.saturating_sub(t.bytes);
            let mut w = weight(&resp.encode(Tag::BATCH_ITEM, Ctx::new(version)));
            if w > SMALL_RESULT && (w > self.bounds.result_bytes || w > budget_left) {
                resp = ResponseBatchItem::failure(
                    Some(operation),
                    None,
                    ResultStatus::OPERATION_FAILED,
                    ResultReason::RESPONSE_TOO_LARGE,
                    format!(
                        "the result ({w} bytes) is larger than kmipd keeps for asynchronous \
                         replies; repeat the request synchronously or with Maximum Items"
                    ),
                );
                w = weight(&resp.encode(Tag::BATCH_ITEM, Ctx::new(version)));
            }
            t.bytes += w;
            if let Some(e) = t.entries.get_mut(key) {
                e.stage = Stage::Done(Box::new(resp));
                e.weight = w;
                e.expires = now + self.bounds.ttl;
            }
        }
        drop(t);
        self.finished.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// What `owner`'s Poll of `key` finds; a result found is marked delivered.
    fn view(&self, owner: &Caller, key: &Key, now: i64) -> View {
        let mut t = self.lock();
        t.purge(now);
        let Some(e) = t.own(owner, key) else {
            return View::Unknown;
        };
        match &e.stage {
            Stage::Queued(_) => View::Queued,
            Stage::Running { .. } => View::Running,
            Stage::Done(r) => {
                let r = r.clone();
                e.delivered = true;
                View::Done(r)
            }
        }
    }

    /// The operation of `owner`'s entry `key` (for a Pending answer).
    fn operation(&self, owner: &Caller, key: &Key) -> Option<Operation> {
        self.lock().own(owner, key).map(|e| e.operation)
    }

    /// Withdraws `owner`'s operation `key` where it can (see the module docs).
    fn withdraw(&self, owner: &Caller, key: &Key, now: i64) -> Withdraw {
        let mut t = self.lock();
        t.purge(now);
        let Some(e) = t.own(owner, key) else {
            return Withdraw::Result(CancellationResult::UNAVAILABLE);
        };
        let outcome = match (&e.stage, e.effect) {
            (Stage::Queued(_), _) => None,
            (Stage::Running { .. }, Effect::ReadOnly) => {
                e.stage = Stage::Running { discard: true };
                return Withdraw::Result(CancellationResult::CANCELED);
            }
            (Stage::Running { .. }, Effect::Changes) => return Withdraw::Wait,
            (Stage::Done(_), Effect::ReadOnly) if !e.delivered => None,
            (Stage::Done(r), _) => Some(if r.result_status == ResultStatus::SUCCESS {
                CancellationResult::COMPLETED
            } else {
                CancellationResult::FAILED
            }),
        };
        match outcome {
            Some(r) => Withdraw::Result(r),
            None => {
                t.remove(key);
                Withdraw::Result(CancellationResult::CANCELED)
            }
        }
    }
}

fn weight(t: &kmip::Ttlv) -> usize {
    // A response that does not encode is not stored whatever its size.
    t.to_bytes().map(|b| b.len()).unwrap_or(usize::MAX / 2)
}

fn key_of(v: &Bytes) -> Option<Key> {
    v.0.as_slice().try_into().ok()
}

/// Answers Poll and Cancel, and queues an item that may be deferred
/// (`defer`: the request allows asynchronous replies and this is its last
/// item) when its operation is one of [`ASYNCHRONOUS`]. `None`: the item is
/// to be run synchronously.
pub(crate) async fn intercept(
    ctx: &mut OpCtx<'_>,
    item: &RequestBatchItem,
    defer: bool,
) -> Option<Answer> {
    let r = match &item.payload {
        RequestPayload::Poll(p) => poll(ctx, item, &p.asynchronous_correlation_value).await,
        RequestPayload::Cancel(p) => cancel(ctx, item, &p.asynchronous_correlation_value).await,
        // A Locate for a fresh group member may make one (on-demand
        // groups): it changes state, so it is answered synchronously.
        RequestPayload::Locate(l)
            if l.object_group_member
                == Some(kmip::tables::ObjectGroupMember::GROUP_MEMBER_FRESH) =>
        {
            return None
        }
        _ if defer && effect(item.operation).is_some() => {
            // A request kmipd would refuse anyway is refused synchronously.
            batch::admit(ctx, item).ok()?;
            let key = ctx.server.pending.submit(
                ctx.caller,
                ctx.principal.clone(),
                ctx.version,
                item,
                ctx.placeholder.clone(),
                ctx.now,
            )?;
            return Some(Answer {
                resp: pending_item(item.operation, item, key),
                object: batch::request_id(item),
                outcome: "pending".to_owned(),
            });
        }
        _ => return None,
    };
    Some(r.unwrap_or_else(|e| batch::failed(ctx.version, item, &e)))
}

fn pending_item(operation: Operation, item: &RequestBatchItem, key: Key) -> ResponseBatchItem {
    ResponseBatchItem {
        operation: Some(operation),
        unique_batch_item_id: item.unique_batch_item_id.clone(),
        result_status: ResultStatus::OPERATION_PENDING,
        result_reason: None,
        result_message: None,
        asynchronous_correlation_value: Some(Bytes(key.to_vec())),
        payload: None,
        message_extension: None,
    }
}

fn unknown() -> OpError {
    OpError::NotFound("no asynchronous operation of yours has this correlation value".into())
}

/// Poll: the original operation's response once it is ready (running it
/// now if nothing has started it), else Operation Pending after [`Bounds::wait`].
async fn poll(ctx: &mut OpCtx<'_>, item: &RequestBatchItem, value: &Bytes) -> OpResult<Answer> {
    batch::admit(ctx, item)?;
    let key = key_of(value).ok_or_else(unknown)?;
    let pending = &ctx.server.pending;
    let deadline = tokio::time::Instant::now() + pending.bounds.wait;
    loop {
        let mut finished = pending.finished.subscribe();
        match pending.view(&owner_of(ctx), &key, ctx.server.clock.now()) {
            View::Unknown => return Err(unknown()),
            View::Queued => {
                if let Some(claim) = pending.claim(Some(&key)) {
                    match pending.server.get().and_then(std::sync::Weak::upgrade) {
                        // Its own task: it ends even if this Poll is dropped.
                        Some(server) => drop(tokio::spawn(run_guarded(server, claim))),
                        // No worker (unit tests): run it here.
                        None => run(ctx.server, claim).await,
                    }
                }
            }
            View::Running => {
                let woke = tokio::time::timeout_at(deadline, finished.changed()).await;
                if woke.is_err() {
                    let op = pending
                        .operation(&owner_of(ctx), &key)
                        .ok_or_else(unknown)?;
                    return Ok(Answer {
                        resp: pending_item(op, item, key),
                        object: None,
                        outcome: "pending".to_owned(),
                    });
                }
            }
            View::Done(mut resp) => {
                resp.unique_batch_item_id = item.unique_batch_item_id.clone();
                let object = match &resp.payload {
                    Some(p) if resp.result_status == ResultStatus::SUCCESS => {
                        let id = batch::payload_id(p);
                        if id.is_some() {
                            ctx.placeholder = id.clone();
                        }
                        id
                    }
                    _ => None,
                };
                let outcome = match resp.result_reason {
                    Some(r) => r.name().unwrap_or("failure").to_owned(),
                    None => "success".to_owned(),
                };
                return Ok(Answer {
                    resp: *resp,
                    object,
                    outcome,
                });
            }
        }
    }
}

/// Cancel: withdraws the caller's pending operation where it can.
async fn cancel(ctx: &mut OpCtx<'_>, item: &RequestBatchItem, value: &Bytes) -> OpResult<Answer> {
    batch::admit(ctx, item)?;
    let pending = &ctx.server.pending;
    let deadline = tokio::time::Instant::now() + pending.bounds.wait;
    let result = match key_of(value) {
        None => CancellationResult::UNAVAILABLE,
        Some(key) => loop {
            let mut finished = pending.finished.subscribe();
            match pending.withdraw(&owner_of(ctx), &key, ctx.server.clock.now()) {
                Withdraw::Result(r) => break r,
                Withdraw::Wait => {
                    if tokio::time::timeout_at(deadline, finished.changed())
                        .await
                        .is_err()
                    {
                        break CancellationResult::UNABLE_TO_CANCEL;
                    }
                }
            }
        },
    };
    Ok(Answer {
        resp: ResponseBatchItem::success(
            item.operation,
            item.unique_batch_item_id.clone(),
            Some(ResponsePayload::Cancel(CancelResponse {
                asynchronous_correlation_value: value.clone(),
                cancellation_result: result,
            })),
        ),
        object: None,
        outcome: result.name().unwrap_or("cancel").to_owned(),
    })
}

/// Runs a claimed operation as its owner, records it like any other item,
/// and stores its response.
async fn run(server: &Server, claim: Claim) {
    let started = Instant::now();
    let now = server.clock.now();
    let mut ctx = OpCtx::new(server, &claim.owner, claim.version, now);
    ctx.placeholder = claim.placeholder.clone();
    ctx.principal = claim.principal.clone();
    ctx.operation = Some(claim.item.operation);
    let answer = batch::execute(&mut ctx, &claim.item).await;
    batch::record(
        server,
        &claim.owner,
        &claim.owner.identity,
        now,
        claim.item.operation,
        &answer,
        started,
    );
    server
        .pending
        .finish(&claim.key, answer.resp, server.clock.now());
}

/// Runs a claim in a task of its own; if it panics, the entry still ends
/// (Operation Failed, General Failure) rather than staying Running forever.
async fn run_guarded(server: Arc<Server>, claim: Claim) {
    let key = claim.key;
    let operation = claim.item.operation;
    let batch_id = claim.item.unique_batch_item_id.clone();
    let s = server.clone();
    if tokio::spawn(async move { run(&s, claim).await })
        .await
        .is_err()
    {
        tracing::error!(?operation, "an asynchronous operation failed internally");
        server.pending.finish(
            &key,
            ResponseBatchItem::failure(
                Some(operation),
                batch_id,
                ResultStatus::OPERATION_FAILED,
                kmip::tables::ResultReason::GENERAL_FAILURE,
                "the operation failed internally",
            ),
            server.clock.now(),
        );
    }
}

/// Starts the worker that runs queued asynchronous operations, one at a
/// time in arrival order, until `shutdown` (an operation under way ends
/// first; queued ones are forgotten with the rest of the table).
pub fn spawn(
    server: Arc<Server>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let _ = server.pending.server.set(Arc::downgrade(&server));
    tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let woken = server.pending.wake.notified();
            while let Some(claim) = server.pending.claim(None) {
                run_guarded(server.clone(), claim).await;
                if *shutdown.borrow() {
                    return;
                }
            }
            tokio::select! {
                _ = woken => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;
    use crate::ops::test_support::TestServer;
    use kmip::messages::payloads::IdRequest;
    use kmip::messages::ResponseMessage;
    use kmip::Limits;

    fn caller(identity: &str) -> Caller {
        Caller {
            identity: identity.into(),
            role: Role::Admin,
            group: "default".into(),
            peer: "127.0.0.1:1".parse().unwrap(),
            credential: None,
        }
    }

    fn archive(id: &str) -> RequestBatchItem {
        RequestBatchItem {
            operation: Operation::ARCHIVE,
            ephemeral: None,
            unique_batch_item_id: None,
            payload: RequestPayload::Archive(IdRequest {
                unique_identifier: Some(id.into()),
            }),
            message_extension: None,
        }
    }

    fn locate() -> RequestBatchItem {
        RequestBatchItem {
            operation: Operation::LOCATE,
            ephemeral: None,
            unique_batch_item_id: None,
            payload: RequestPayload::Locate(Default::default()),
            message_extension: None,
        }
    }

    fn ok(op: Operation) -> ResponseBatchItem {
        ResponseBatchItem::success(op, None, None)
    }

    fn submit(p: &Pending, who: &Caller, item: &RequestBatchItem, now: i64) -> Option<Key> {
        p.submit(who, None, ProtocolVersion::V1_2, item, None, now)
    }

    /// Runs `key` to its end with `resp` as its outcome.
    fn complete(p: &Pending, key: &Key, resp: ResponseBatchItem, now: i64) {
        let c = p.claim(Some(key)).expect("queued");
        assert_eq!(c.key, *key);
        p.finish(key, resp, now);
    }

    fn outcome(w: Withdraw) -> CancellationResult {
        match w {
            Withdraw::Result(r) => r,
            Withdraw::Wait => panic!("expected a result, got Wait"),
        }
    }

    #[test]
    fn only_the_listed_operations_are_deferred() {
        let p = Pending::default();
        let a = caller("a");
        let get = RequestBatchItem {
            operation: Operation::GET,
            payload: RequestPayload::Get(Default::default()),
            ..locate()
        };
        assert!(submit(&p, &a, &get, 0).is_none());
        assert!(p.is_empty());
        assert_eq!(effect(Operation::LOCATE), Some(Effect::ReadOnly));
        assert_eq!(effect(Operation::ARCHIVE), Some(Effect::Changes));
        assert_eq!(effect(Operation::RECOVER), Some(Effect::Changes));
        assert_eq!(effect(Operation::DESTROY), None);
    }

    #[test]
    fn correlation_values_are_random_and_distinct() {
        let p = Pending::default();
        let a = caller("a");
        let k1 = submit(&p, &a, &locate(), 0).unwrap();
        let k2 = submit(&p, &a, &locate(), 0).unwrap();
        assert_ne!(k1, k2);
        assert_ne!(k1, [0u8; 16]);
    }

    #[test]
    fn caps_bound_entries_per_caller_and_in_all() {
        let p = Pending::new(Bounds {
            total: 3,
            per_caller: 2,
            ..Bounds::default()
        });
        let (a, b) = (caller("a"), caller("b"));
        assert!(submit(&p, &a, &locate(), 0).is_some());
        assert!(submit(&p, &a, &locate(), 0).is_some());
        // A's third runs synchronously; B still has room, then the table is full.
        assert!(submit(&p, &a, &locate(), 0).is_none());
        assert!(submit(&p, &b, &locate(), 0).is_some());
        assert!(submit(&p, &b, &locate(), 0).is_none());
        assert_eq!(p.len(), 3);
        // A finished, withdrawn operation frees its place.
        let k = p.lock().entries.keys().next().copied().unwrap();
        let owner = p.lock().entries[&k].owner.clone();
        assert_eq!(
            outcome(p.withdraw(&owner, &k, 0)),
            CancellationResult::CANCELED
        );
        assert!(submit(&p, &caller("c"), &locate(), 0).is_some());
    }

    #[test]
    fn the_per_caller_cap_counts_the_certificate_whatever_the_principal() {
        let p = Pending::new(Bounds {
            per_caller: 2,
            ..Bounds::default()
        });
        let a = caller("a");
        for user in ["user:1", "user:2"] {
            let k = p.submit(
                &a,
                Some(user.into()),
                ProtocolVersion::V1_2,
                &locate(),
                None,
                0,
            );
            assert!(k.is_some());
        }
        // A third principal of the same certificate gets no more room.
        let k = p.submit(
            &a,
            Some("user:3".into()),
            ProtocolVersion::V1_2,
            &locate(),
            None,
            0,
        );
        assert!(k.is_none());
        assert!(submit(&p, &caller("b"), &locate(), 0).is_some());
    }

    #[test]
    fn the_byte_budget_bounds_requests_and_results() {
        let p = Pending::new(Bounds {
            bytes: 100,
            ..Bounds::default()
        });
        let a = caller("a");
        let big = archive(&"x".repeat(200));
        assert!(submit(&p, &a, &big, 0).is_none());
        let k = submit(&p, &a, &archive("id"), 0).unwrap();
        assert!(p.lock().bytes > 0);
        // The request's bytes are released when it starts.
        p.claim(Some(&k)).unwrap();
        assert_eq!(p.lock().bytes, 0);

        // A large result beyond the per-result cap becomes Response Too Large.
        let p = Pending::new(Bounds {
            result_bytes: 2000,
            ..Bounds::default()
        });
        let k = submit(&p, &a, &locate(), 0).unwrap();
        let ids: Vec<String> = (0..100).map(|i| format!("object-{i:040}")).collect();
        let big = ResponseBatchItem::success(
            Operation::LOCATE,
            None,
            Some(ResponsePayload::Locate(
                kmip::messages::payloads::LocateResponse {
                    located_items: None,
                    unique_identifiers: ids,
                },
            )),
        );
        complete(&p, &k, big, 0);
        let View::Done(r) = p.view(&a, &k, 0) else {
            panic!("not done")
        };
        assert_eq!(r.result_reason, Some(ResultReason::RESPONSE_TOO_LARGE));
        assert!(p.lock().bytes < 2000);
    }

    #[test]
    fn results_and_unstarted_requests_expire() {
        let p = Pending::new(Bounds {
            ttl: 10,
            ..Bounds::default()
        });
        let a = caller("a");
        let k = submit(&p, &a, &archive("id"), 100).unwrap();
        complete(&p, &k, ok(Operation::ARCHIVE), 105);
        assert!(matches!(p.view(&a, &k, 114), View::Done(_)));
        // Polling again within the TTL returns the result again.
        assert!(matches!(p.view(&a, &k, 114), View::Done(_)));
        assert!(matches!(p.view(&a, &k, 115), View::Unknown));
        assert!(p.is_empty());
        // A queued request nobody ran is forgotten as well.
        let k = submit(&p, &a, &locate(), 200).unwrap();
        assert!(matches!(p.view(&a, &k, 209), View::Queued));
        assert!(matches!(p.view(&a, &k, 210), View::Unknown));
        assert!(p.claim(None).is_none());
        assert_eq!(p.lock().bytes, 0);
    }

    #[test]
    fn a_running_operation_does_not_expire() {
        let p = Pending::new(Bounds {
            ttl: 10,
            ..Bounds::default()
        });
        let a = caller("a");
        let k = submit(&p, &a, &archive("id"), 0).unwrap();
        p.claim(Some(&k)).unwrap();
        assert!(matches!(p.view(&a, &k, 1000), View::Running));
        p.finish(&k, ok(Operation::ARCHIVE), 1000);
        assert!(matches!(p.view(&a, &k, 1009), View::Done(_)));
    }

    #[test]
    fn only_the_owner_sees_its_operations() {
        let p = Pending::default();
        let a = caller("a");
        let k = submit(&p, &a, &locate(), 0).unwrap();
        let others = [
            caller("b"),
            Caller {
                role: Role::Auditor,
                ..a.clone()
            },
            Caller {
                group: "other".into(),
                ..a.clone()
            },
        ];
        for o in &others {
            assert!(matches!(p.view(o, &k, 0), View::Unknown));
            assert!(p.operation(o, &k).is_none());
            assert_eq!(
                outcome(p.withdraw(o, &k, 0)),
                CancellationResult::UNAVAILABLE
            );
        }
        // Another connection of the same identity is the owner.
        let same = Caller {
            peer: "10.0.0.9:4444".parse().unwrap(),
            ..a.clone()
        };
        assert!(matches!(p.view(&same, &k, 0), View::Queued));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn cancel_answers_by_stage_and_effect() {
        let p = Pending::default();
        let a = caller("a");
        let unknown = [7u8; 16];
        assert_eq!(
            outcome(p.withdraw(&a, &unknown, 0)),
            CancellationResult::UNAVAILABLE
        );

        // Not started: canceled, never runs, gone.
        let k = submit(&p, &a, &archive("id"), 0).unwrap();
        assert_eq!(outcome(p.withdraw(&a, &k, 0)), CancellationResult::CANCELED);
        assert!(p.claim(None).is_none());
        assert!(matches!(p.view(&a, &k, 0), View::Unknown));

        // A state-changing operation under way runs to its end.
        let k = submit(&p, &a, &archive("id"), 0).unwrap();
        p.claim(Some(&k)).unwrap();
        assert!(matches!(p.withdraw(&a, &k, 0), Withdraw::Wait));
        p.finish(&k, ok(Operation::ARCHIVE), 0);
        assert_eq!(
            outcome(p.withdraw(&a, &k, 0)),
            CancellationResult::COMPLETED
        );
        // ... and stays pollable.
        assert!(matches!(p.view(&a, &k, 0), View::Done(_)));

        // Finished with a failure.
        let k = submit(&p, &a, &archive("id"), 0).unwrap();
        let failure = ResponseBatchItem::failure(
            Some(Operation::ARCHIVE),
            None,
            ResultStatus::OPERATION_FAILED,
            ResultReason::ITEM_NOT_FOUND,
            "gone",
        );
        complete(&p, &k, failure, 0);
        assert_eq!(outcome(p.withdraw(&a, &k, 0)), CancellationResult::FAILED);

        // A Locate under way: withdrawn, its result discarded on arrival.
        let k = submit(&p, &a, &locate(), 0).unwrap();
        p.claim(Some(&k)).unwrap();
        assert_eq!(outcome(p.withdraw(&a, &k, 0)), CancellationResult::CANCELED);
        assert!(matches!(p.view(&a, &k, 0), View::Unknown));
        p.finish(&k, ok(Operation::LOCATE), 0);
        assert!(!p.lock().entries.contains_key(&k));

        // A finished Locate nobody polled: canceled (nothing of it remains).
        let k = submit(&p, &a, &locate(), 0).unwrap();
        complete(&p, &k, ok(Operation::LOCATE), 0);
        assert_eq!(outcome(p.withdraw(&a, &k, 0)), CancellationResult::CANCELED);
        assert!(matches!(p.view(&a, &k, 0), View::Unknown));

        // A Locate whose result was delivered: completed.
        let k = submit(&p, &a, &locate(), 0).unwrap();
        complete(&p, &k, ok(Operation::LOCATE), 0);
        assert!(matches!(p.view(&a, &k, 0), View::Done(_)));
        assert_eq!(
            outcome(p.withdraw(&a, &k, 0)),
            CancellationResult::COMPLETED
        );
    }

    #[test]
    fn debug_shows_counts_only() {
        let p = Pending::default();
        submit(&p, &caller("a"), &archive("secret-id"), 0).unwrap();
        let d = format!("{p:?}");
        assert!(d.contains("entries: 1"), "{d}");
        assert!(!d.contains("secret-id"), "{d}");
    }

    // --- Through the batch loop, as a client sees it. ---

    const V: &str = r#"<ProtocolVersion><ProtocolVersionMajor type="Integer" value="1"/>
        <ProtocolVersionMinor type="Integer" value="2"/></ProtocolVersion>"#;

    fn message(asynchronous: bool, items: &[String]) -> Vec<u8> {
        let flag = if asynchronous {
            r#"<AsynchronousIndicator type="Boolean" value="true"/>"#
        } else {
            ""
        };
        let xml = format!(
            r#"<RequestMessage><RequestHeader>{V}{flag}<BatchCount type="Integer" value="{}"/>
               </RequestHeader>{}</RequestMessage>"#,
            items.len(),
            items.concat()
        );
        kmip::xml::from_xml(&xml).unwrap().to_bytes().unwrap()
    }

    fn item(op: &str, payload: &str) -> String {
        format!(
            r#"<BatchItem><Operation type="Enumeration" value="{op}"/>
               <RequestPayload>{payload}</RequestPayload></BatchItem>"#
        )
    }

    fn by_name(name: &str) -> String {
        item(
            "Locate",
            &format!(
                r#"<Attribute><AttributeName type="TextString" value="Name"/><AttributeValue>
                   <NameValue type="TextString" value="{name}"/>
                   <NameType type="Enumeration" value="UninterpretedTextString"/>
                   </AttributeValue></Attribute>"#
            ),
        )
    }

    fn with_value(op: &str, key: &[u8]) -> String {
        item(
            op,
            &format!(
                r#"<AsynchronousCorrelationValue type="ByteString" value="{}"/>"#,
                hex::encode(key)
            ),
        )
    }

    fn id_item(op: &str, id: &str) -> String {
        item(
            op,
            &format!(r#"<UniqueIdentifier type="TextString" value="{id}"/>"#),
        )
    }

    async fn send(server: &Server, who: &Caller, req: Vec<u8>) -> Vec<ResponseBatchItem> {
        let out = batch::handle(server, Some(who), &req, &Limits::default(), Vec::new()).await;
        ResponseMessage::from_bytes(&out, &Limits::default())
            .unwrap()
            .items
    }

    async fn create_named(server: &Server, who: &Caller, name: &str) -> String {
        let create = item(
            "Create",
            &format!(
                r#"<ObjectType type="Enumeration" value="SymmetricKey"/><TemplateAttribute>
                <Attribute><AttributeName type="TextString" value="Cryptographic Algorithm"/>
                  <AttributeValue type="Enumeration" value="AES"/></Attribute>
                <Attribute><AttributeName type="TextString" value="Cryptographic Length"/>
                  <AttributeValue type="Integer" value="128"/></Attribute>
                <Attribute><AttributeName type="TextString" value="Cryptographic Usage Mask"/>
                  <AttributeValue type="Integer" value="12"/></Attribute>
                <Attribute><AttributeName type="TextString" value="Name"/><AttributeValue>
                  <NameValue type="TextString" value="{name}"/>
                  <NameType type="Enumeration" value="UninterpretedTextString"/>
                </AttributeValue></Attribute></TemplateAttribute>"#
            ),
        );
        let r = send(server, who, message(false, &[create])).await;
        match &r[0].payload {
            Some(ResponsePayload::Create(c)) => c.unique_identifier.clone(),
            other => panic!("create: {other:?}"),
        }
    }

    fn pending_value(r: &ResponseBatchItem, op: Operation) -> Vec<u8> {
        assert_eq!(r.result_status, ResultStatus::OPERATION_PENDING, "{r:?}");
        assert_eq!(r.operation, Some(op));
        assert!(r.payload.is_none());
        let v = r.asynchronous_correlation_value.clone().unwrap().0;
        assert_eq!(v.len(), 16);
        v
    }

    fn cancellation(r: &ResponseBatchItem) -> CancellationResult {
        assert_eq!(r.operation, Some(Operation::CANCEL));
        match &r.payload {
            Some(ResponsePayload::Cancel(c)) => c.cancellation_result,
            other => panic!("cancel: {other:?}"),
        }
    }

    #[tokio::test]
    async fn locate_poll_and_cancel_through_the_batch_loop() {
        let t = TestServer::new();
        let id = create_named(&t.server, &t.caller, "async-key").await;

        // Without the indicator Locate answers at once.
        let r = send(
            &t.server,
            &t.caller,
            message(false, &[by_name("async-key")]),
        )
        .await;
        assert_eq!(r[0].result_status, ResultStatus::SUCCESS);

        // With it: Operation Pending, then Poll returns the Locate's answer.
        let r = send(&t.server, &t.caller, message(true, &[by_name("async-key")])).await;
        let key = pending_value(&r[0], Operation::LOCATE);
        // Another identity cannot see it, neither by Poll nor by Cancel.
        let stranger = Caller {
            identity: "stranger".into(),
            ..t.caller.clone()
        };
        let r = send(
            &t.server,
            &stranger,
            message(false, &[with_value("Poll", &key)]),
        )
        .await;
        assert_eq!(r[0].result_status, ResultStatus::OPERATION_FAILED);
        assert_eq!(r[0].result_reason, Some(ResultReason::ITEM_NOT_FOUND));
        let r = send(
            &t.server,
            &stranger,
            message(false, &[with_value("Cancel", &key)]),
        )
        .await;
        assert_eq!(cancellation(&r[0]), CancellationResult::UNAVAILABLE);

        for _ in 0..2 {
            let r = send(
                &t.server,
                &t.caller,
                message(false, &[with_value("Poll", &key)]),
            )
            .await;
            assert_eq!(r[0].operation, Some(Operation::LOCATE));
            assert_eq!(r[0].result_status, ResultStatus::SUCCESS);
            assert!(r[0].asynchronous_correlation_value.is_none());
            match &r[0].payload {
                Some(ResponsePayload::Locate(l)) => {
                    assert_eq!(l.unique_identifiers, std::slice::from_ref(&id))
                }
                other => panic!("poll: {other:?}"),
            }
        }
        // Delivered: a Cancel now reports it completed.
        let r = send(
            &t.server,
            &t.caller,
            message(false, &[with_value("Cancel", &key)]),
        )
        .await;
        assert_eq!(cancellation(&r[0]), CancellationResult::COMPLETED);

        // A second asynchronous Locate, cancelled before anyone polls it.
        let r = send(&t.server, &t.caller, message(true, &[by_name("async-key")])).await;
        let key = pending_value(&r[0], Operation::LOCATE);
        let r = send(
            &t.server,
            &t.caller,
            message(false, &[with_value("Cancel", &key)]),
        )
        .await;
        assert_eq!(cancellation(&r[0]), CancellationResult::CANCELED);
        match &r[0].payload {
            Some(ResponsePayload::Cancel(c)) => {
                assert_eq!(c.asynchronous_correlation_value.0, key)
            }
            other => panic!("cancel: {other:?}"),
        }
        let r = send(
            &t.server,
            &t.caller,
            message(false, &[with_value("Poll", &key)]),
        )
        .await;
        assert_eq!(r[0].result_reason, Some(ResultReason::ITEM_NOT_FOUND));

        // Values never issued, of any length.
        for v in [vec![0u8; 16], vec![1, 2, 3]] {
            let r = send(
                &t.server,
                &t.caller,
                message(false, &[with_value("Poll", &v)]),
            )
            .await;
            assert_eq!(r[0].result_reason, Some(ResultReason::ITEM_NOT_FOUND));
            let r = send(
                &t.server,
                &t.caller,
                message(false, &[with_value("Cancel", &v)]),
            )
            .await;
            assert_eq!(cancellation(&r[0]), CancellationResult::UNAVAILABLE);
        }
        assert!(t.server.pending.len() <= 1);
    }

    #[tokio::test]
    async fn only_the_last_item_of_a_batch_is_deferred() {
        let t = TestServer::new();
        let id = create_named(&t.server, &t.caller, "batch-key").await;
        let r = send(
            &t.server,
            &t.caller,
            message(true, &[by_name("batch-key"), by_name("batch-key")]),
        )
        .await;
        assert_eq!(r[0].result_status, ResultStatus::SUCCESS);
        pending_value(&r[1], Operation::LOCATE);
        // Operations kmipd does not defer answer at once.
        let r = send(&t.server, &t.caller, message(true, &[id_item("Get", &id)])).await;
        assert_eq!(r[0].result_status, ResultStatus::SUCCESS);
    }

    #[tokio::test]
    async fn a_full_table_answers_synchronously() {
        let mut t = TestServer::new();
        t.server.pending = Pending::new(Bounds {
            per_caller: 1,
            ..Bounds::default()
        });
        create_named(&t.server, &t.caller, "full-key").await;
        let r = send(&t.server, &t.caller, message(true, &[by_name("full-key")])).await;
        pending_value(&r[0], Operation::LOCATE);
        let r = send(&t.server, &t.caller, message(true, &[by_name("full-key")])).await;
        assert_eq!(r[0].result_status, ResultStatus::SUCCESS);
        assert_eq!(t.server.pending.len(), 1);
    }

    #[tokio::test]
    async fn archive_is_durable_before_poll_reports_it() {
        let t = TestServer::new();
        let id = create_named(&t.server, &t.caller, "archive-key").await;
        let r = send(
            &t.server,
            &t.caller,
            message(true, &[id_item("Archive", &id)]),
        )
        .await;
        let key = pending_value(&r[0], Operation::ARCHIVE);
        // Not run yet (no worker in this test): the object is online.
        assert!(!t.server.catalog.get(&id).unwrap().unwrap().archived);
        let r = send(
            &t.server,
            &t.caller,
            message(false, &[with_value("Poll", &key)]),
        )
        .await;
        assert_eq!(r[0].operation, Some(Operation::ARCHIVE));
        assert_eq!(r[0].result_status, ResultStatus::SUCCESS);
        assert!(t.server.catalog.get(&id).unwrap().unwrap().archived);
        let r = send(&t.server, &t.caller, message(false, &[id_item("Get", &id)])).await;
        assert_eq!(r[0].result_reason, Some(ResultReason::OBJECT_ARCHIVED));
        let r = send(
            &t.server,
            &t.caller,
            message(false, &[with_value("Cancel", &key)]),
        )
        .await;
        assert_eq!(cancellation(&r[0]), CancellationResult::COMPLETED);

        // A role that may not Archive is refused at once, not queued.
        let host = Caller {
            role: Role::Host,
            ..t.caller.clone()
        };
        let r = send(&t.server, &host, message(true, &[id_item("Recover", &id)])).await;
        assert_eq!(r[0].result_reason, Some(ResultReason::PERMISSION_DENIED));
        assert_eq!(t.server.pending.len(), 1);

        // A failing operation's failure is what Poll returns.
        let r = send(
            &t.server,
            &t.caller,
            message(true, &[id_item("Archive", "no-such-id")]),
        )
        .await;
        let key = pending_value(&r[0], Operation::ARCHIVE);
        let r = send(
            &t.server,
            &t.caller,
            message(false, &[with_value("Poll", &key)]),
        )
        .await;
        assert_eq!(r[0].operation, Some(Operation::ARCHIVE));
        assert_eq!(r[0].result_reason, Some(ResultReason::ITEM_NOT_FOUND));
        let r = send(
            &t.server,
            &t.caller,
            message(false, &[with_value("Cancel", &key)]),
        )
        .await;
        assert_eq!(cancellation(&r[0]), CancellationResult::FAILED);
    }

    #[tokio::test]
    async fn poll_and_cancel_of_a_running_operation_wait_then_answer() {
        let mut t = TestServer::new();
        t.server.pending = Pending::new(Bounds {
            wait: Duration::from_millis(50),
            ..Bounds::default()
        });
        let id = create_named(&t.server, &t.caller, "running-key").await;
        let r = send(
            &t.server,
            &t.caller,
            message(true, &[id_item("Archive", &id)]),
        )
        .await;
        let key = pending_value(&r[0], Operation::ARCHIVE);
        // As if the worker had started it.
        let claim = t.server.pending.claim(None).unwrap();
        let r = send(
            &t.server,
            &t.caller,
            message(false, &[with_value("Poll", &key)]),
        )
        .await;
        assert_eq!(pending_value(&r[0], Operation::ARCHIVE), key);
        let r = send(
            &t.server,
            &t.caller,
            message(false, &[with_value("Cancel", &key)]),
        )
        .await;
        assert_eq!(cancellation(&r[0]), CancellationResult::UNABLE_TO_CANCEL);
        run(&t.server, claim).await;
        let r = send(
            &t.server,
            &t.caller,
            message(false, &[with_value("Poll", &key)]),
        )
        .await;
        assert_eq!(r[0].result_status, ResultStatus::SUCCESS);
        assert!(t.server.catalog.get(&id).unwrap().unwrap().archived);

        // A Poll waiting for a running operation answers when it ends.
        t.server.pending = Pending::new(Bounds {
            wait: Duration::from_secs(30),
            ..Bounds::default()
        });
        let r = send(
            &t.server,
            &t.caller,
            message(true, &[id_item("Recover", &id)]),
        )
        .await;
        let key = pending_value(&r[0], Operation::RECOVER);
        let claim = t.server.pending.claim(None).unwrap();
        let started = Instant::now();
        let ((), r) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                run(&t.server, claim).await
            },
            send(
                &t.server,
                &t.caller,
                message(false, &[with_value("Poll", &key)])
            )
        );
        assert_eq!(r[0].operation, Some(Operation::RECOVER));
        assert_eq!(r[0].result_status, ResultStatus::SUCCESS);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!t.server.catalog.get(&id).unwrap().unwrap().archived);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_poll_does_not_strand_the_operation_it_started() {
        let (server, owner, _dir) = TestServer::new().into_parts();
        let server = Arc::new(server);
        // The worker is stopped at once: only the Poll below starts the
        // operation (spawn still hands the table its server).
        let (_stop, rx) = watch::channel(true);
        spawn(server.clone(), rx).await.unwrap();
        let id = create_named(&server, &owner, "abandoned-key").await;
        let r = send(&server, &owner, message(true, &[id_item("Archive", &id)])).await;
        let value = pending_value(&r[0], Operation::ARCHIVE);
        // The Poll claims the Archive and is dropped before it can finish
        // (a request deadline, a closed connection).
        let poll = send(
            &server,
            &owner,
            message(false, &[with_value("Poll", &value)]),
        );
        let _ = tokio::time::timeout(Duration::ZERO, poll).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = send(
                &server,
                &owner,
                message(false, &[with_value("Poll", &value)]),
            )
            .await;
            if r[0].result_status == ResultStatus::SUCCESS {
                assert_eq!(r[0].operation, Some(Operation::ARCHIVE));
                break;
            }
            assert_eq!(r[0].result_status, ResultStatus::OPERATION_PENDING, "{r:?}");
            assert!(std::time::Instant::now() < deadline, "stuck Running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(server.catalog.get(&id).unwrap().unwrap().archived);
    }

    #[tokio::test]
    async fn the_worker_runs_operations_nobody_polls() {
        let (server, owner, _dir) = TestServer::new().into_parts();
        let server = Arc::new(server);
        let (stop, rx) = watch::channel(false);
        let worker = spawn(server.clone(), rx);
        let id = create_named(&server, &owner, "worker-key").await;
        let r = send(&server, &owner, message(true, &[id_item("Archive", &id)])).await;
        pending_value(&r[0], Operation::ARCHIVE);
        // Fire and forget: the archive happens without a Poll.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !server.catalog.get(&id).unwrap().unwrap().archived {
            assert!(
                std::time::Instant::now() < deadline,
                "the worker did not run it"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        worker.await.unwrap();
    }
}
