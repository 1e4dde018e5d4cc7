//! Operations: the batch loop ([`batch`]) and one module per operation
//! family, each a function from a typed request payload to a typed response
//! payload or an [`OpError`].
//!
//! [`OpCtx`] carries what every operation needs: the server, the caller,
//! the request's credential principal, the batch item's operation, the
//! request's protocol version, the time and the ID Placeholder.

pub mod admin;
pub mod attributes;
pub mod backup;
pub mod batch;
pub mod create;
pub mod crypto;
pub mod get;
pub mod lifecycle;
pub mod locate;
pub mod misc;
pub mod pending;
pub mod query;
pub mod reveal;
pub mod rotation;
pub mod split;
pub mod status;
pub mod usage;

#[cfg(test)]
mod policy_tests;

use crate::access::Caller;
use crate::errors::{OpError, OpResult};
use crate::model::{names, ManagedObject, Material};
use crate::state::Server;
use crate::store::Transaction;
use kmip::messages::objects::Object;
use kmip::tables::{Operation, State};
use kmip::{Ctx, Limits, ProtocolVersion, Value};
use kmipd_hsm::WrappedKey;
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroizing;

/// Context of one batch item.
#[derive(Debug)]
pub struct OpCtx<'a> {
    /// Server state.
    pub server: &'a Server,
    /// The authenticated caller.
    pub caller: &'a Caller,
    /// The principal the request's credential names
    /// ([`crate::access::principal`]), if it carries one.
    pub principal: Option<String>,
    /// The batch item's operation; `None` for kmipd's own jobs.
    pub operation: Option<Operation>,
    /// Protocol version of the request.
    pub version: ProtocolVersion,
    /// Request time (seconds).
    pub now: i64,
    /// The ID Placeholder: the last Unique Identifier a batch item produced.
    pub placeholder: Option<String>,
    /// The last batch item was a Locate that found nothing: an item after
    /// it that names no object gets Item Not Found (TC-152), not Missing
    /// Data.
    pub located_nothing: bool,
}

impl<'a> OpCtx<'a> {
    /// A context without credential principal, operation or ID Placeholder
    /// (the batch loop sets them per request and item).
    pub fn new(server: &'a Server, caller: &'a Caller, version: ProtocolVersion, now: i64) -> Self {
        Self {
            server,
            caller,
            principal: None,
            operation: None,
            version,
            now,
            placeholder: None,
            located_nothing: false,
        }
    }

    /// The codec context of this request.
    pub fn ctx(&self) -> Ctx {
        Ctx::new(self.version)
    }

    /// The object id named by the request, or the ID Placeholder.
    pub fn target(&self, id: &Option<String>) -> OpResult<String> {
        if id.is_none() && self.located_nothing {
            return Err(OpError::NotFound(
                "no Unique Identifier, and the Locate before it found no object".into(),
            ));
        }
        id.clone()
            .or_else(|| self.placeholder.clone())
            .ok_or_else(|| {
                OpError::MissingData("no Unique Identifier and no ID Placeholder".into())
            })
    }

    /// Loads an object the caller may see (its group: Item Not Found
    /// otherwise) and that the object's Operation Policy lets this request's
    /// principal run this operation on (Permission Denied otherwise), with
    /// date-driven state applied.
    pub fn load(&self, id: &str) -> OpResult<ManagedObject> {
        let mut o = self
            .server
            .catalog
            .get(id)?
            .filter(|o| self.server.policy.may_see(self.caller, &o.group))
            .ok_or_else(|| OpError::NotFound(format!("object {id} not found")))?;
        crate::access::check_operation_policy(&o, self.principal.as_deref(), self.operation)?;
        o.advance_state(self.now);
        Ok(o)
    }

    /// Loads an object that must be online (not archived).
    pub fn load_online(&self, id: &str) -> OpResult<ManagedObject> {
        let o = self.load(id)?;
        if o.archived {
            return Err(OpError::Archived(format!(
                "object {id} is archived; recover it first"
            )));
        }
        Ok(o)
    }

    /// Stores `new` (replacing `old`), durable before return.
    pub async fn save(&self, old: Option<&ManagedObject>, new: &mut ManagedObject) -> OpResult<()> {
        self.save_all(vec![(old, new)]).await
    }

    /// Stores several objects in one atomic transaction, durable before return.
    pub async fn save_all(
        &self,
        changes: Vec<(Option<&ManagedObject>, &mut ManagedObject)>,
    ) -> OpResult<()> {
        let mut txn = Transaction::new();
        for (old, new) in changes {
            new.revision = old.map_or(0, |o| o.revision) + 1;
            new.set(names::LAST_CHANGE_DATE, Value::DateTime(self.now));
            self.server.catalog.stage_put(&mut txn, old, new);
            self.server.cache.evict(&new.id);
        }
        self.server.catalog.commit(&txn).await?;
        Ok(())
    }

    /// Wraps an object's content under the current master key, off the runtime.
    pub async fn protect(&self, id: &str, object: &Object) -> OpResult<Material> {
        let plain = Zeroizing::new(
            object
                .encode(Ctx::new(ProtocolVersion::V1_4))
                .to_bytes()
                .map_err(|e| OpError::InvalidField(e.to_string()))?,
        );
        // The protector refuses more than this; that is the client's
        // object being too large (Invalid Field), not an internal failure.
        if plain.len() > kmipd_hsm::blob::MAX_PLAINTEXT_LEN {
            return Err(OpError::InvalidField(format!(
                "the object's content is {} bytes; kmipd stores at most {}",
                plain.len(),
                kmipd_hsm::blob::MAX_PLAINTEXT_LEN
            )));
        }
        let protector = self.server.protector.clone();
        let identity = id.as_bytes().to_vec();
        let started = Instant::now();
        let r = hsm_call(tokio::task::spawn_blocking(move || {
            protector.protect(&identity, &plain)
        }))
        .await?;
        self.server.metrics.hsm_call(started.elapsed(), r.is_ok());
        let w = r?;
        Ok(Material {
            master_version: w.master_version(),
            wrapped: w.to_bytes(),
        })
    }

    /// The decoded content of an object, from the cache or unwrapped off the runtime.
    pub async fn content(&self, o: &ManagedObject) -> OpResult<Object> {
        let m = o.material.as_ref().ok_or_else(|| {
            OpError::KeyValueNotPresent(format!("object {} has no key value", o.id))
        })?;
        let plain = match self.server.cache.get(&o.id, o.revision) {
            Some(p) => p,
            None => {
                let w = WrappedKey::from_bytes(&m.wrapped)?;
                let protector = self.server.protector.clone();
                let identity = o.id.as_bytes().to_vec();
                let started = Instant::now();
                let r = hsm_call(tokio::task::spawn_blocking(move || {
                    protector.unprotect(&identity, &w)
                }))
                .await?;
                self.server.metrics.hsm_call(started.elapsed(), r.is_ok());
                let p = Arc::new(r?);
                self.server
                    .cache
                    .put(&o.id, o.revision, m.master_version, p.clone());
                p
            }
        };
        let t = kmip::ttlv::decode(&plain, &Limits::default())
            .map_err(|e| OpError::Internal(format!("stored content of {}: {e}", o.id)))?;
        Object::decode(o.object_type, &t, Ctx::new(ProtocolVersion::V1_4))
            .map_err(|e| OpError::Internal(format!("stored content of {}: {e}", o.id)))
    }
}

/// How long a request waits for one key-protection call. The PKCS#11
/// backend bounds only the wait for a session; a call stuck inside an HSM
/// cannot be cancelled, so the request gives up here instead.
pub const HSM_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

async fn hsm_call<T>(task: tokio::task::JoinHandle<T>) -> OpResult<T> {
    match tokio::time::timeout(HSM_CALL_TIMEOUT, task).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(OpError::Internal(format!("key protection task: {e}"))),
        Err(_) => Err(OpError::Internal("key protection call timed out".into())),
    }
}

/// Whether `state` permits using the object's key value for protection.
pub fn is_active(state: State) -> bool {
    state == State::ACTIVE
}

/// A server over a memory store and a software master key, for unit tests
/// of operations.
#[cfg(test)]
pub(crate) mod test_support {
    use super::OpCtx;
    use crate::access::{AccessPolicy, Caller};
    use crate::catalog::Catalog;
    use crate::config::{AccessConfig, Role};
    use crate::keycache::KeyCache;
    use crate::state::{FakeClock, Server};
    use crate::store::MemoryBackend;
    use kmip::ProtocolVersion;
    use std::sync::Arc;

    /// The server, its temporary master key directory and an admin caller.
    pub struct TestServer {
        pub server: Server,
        pub caller: Caller,
        _dir: tempfile::TempDir,
    }

    impl TestServer {
        pub fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let protector =
                kmipd_hsm::SoftwareProtector::create(dir.path().join("master.key")).unwrap();
            let access = AccessConfig {
                default_group: "default".into(),
                lockdown: false,
                admin_from: Vec::new(),
                allow_from: Vec::new(),
            };
            let clock = FakeClock::default();
            clock
                .0
                .store(1_700_000_000, std::sync::atomic::Ordering::SeqCst);
            let server = Server::new(
                Catalog::open(Arc::new(MemoryBackend::new())).unwrap(),
                Arc::new(protector),
                KeyCache::new(true, 100, std::time::Duration::from_secs(60)),
                AccessPolicy::new(Vec::new(), access),
                Arc::new(clock),
                crate::audit::Audit::to_log(),
                "kmipd test".into(),
            );
            let caller = Caller {
                identity: "tester".into(),
                role: Role::Admin,
                group: "default".into(),
                peer: "127.0.0.1:1".parse().unwrap(),
                credential: None,
            };
            Self {
                server,
                caller,
                _dir: dir,
            }
        }

        /// The server, the caller and the directory to keep, for tests that
        /// need the server in an `Arc` (background tasks).
        pub fn into_parts(self) -> (Server, Caller, tempfile::TempDir) {
            (self.server, self.caller, self._dir)
        }

        /// A Register request for a raw symmetric `key` of `alg` with a
        /// Cryptographic Usage Mask, Active since an hour before `now` when
        /// `active`, and `extra` template attributes.
        pub fn register_request(
            alg: kmip::tables::CryptographicAlgorithm,
            key: &[u8],
            mask: u32,
            active: Option<i64>,
            extra: Vec<kmip::messages::attributes::Attribute>,
        ) -> kmip::messages::payloads::RegisterRequest {
            use crate::model::names;
            use kmip::messages::attributes::{Attribute, TemplateAttribute};
            use kmip::Value;
            let mut attributes = vec![Attribute::new(
                names::CRYPTOGRAPHIC_USAGE_MASK,
                Value::Integer(mask as i32),
            )];
            if let Some(now) = active {
                attributes.push(Attribute::new(
                    names::ACTIVATION_DATE,
                    Value::DateTime(now - 3600),
                ));
            }
            attributes.extend(extra);
            let mut p = kmip::messages::payloads::RegisterRequest {
                object_type: kmip::tables::ObjectType::SYMMETRIC_KEY,
                template_attribute: Some(TemplateAttribute {
                    names: Vec::new(),
                    attributes,
                }),
                ..Default::default()
            };
            p.set_object(crate::ops::create::symmetric_key(
                alg,
                8 * key.len() as i32,
                key,
            ));
            p
        }

        pub fn ctx(&self, version: ProtocolVersion) -> OpCtx<'_> {
            OpCtx::new(&self.server, &self.caller, version, self.server.clock.now())
        }
    }
}
