//! The managed object as kmipd keeps it: identity, ownership, attributes in
//! clear and the object's content (key material included) only in wrapped
//! form, and the lifecycle state machine with its date-driven transitions.

use kmip::messages::attributes::Attribute;
use kmip::tables::{ObjectType, State};
use kmip::Value;

/// Attribute names kmipd maintains itself.
pub mod names {
    #![allow(missing_docs)]
    pub const UNIQUE_IDENTIFIER: &str = "Unique Identifier";
    pub const OBJECT_TYPE: &str = "Object Type";
    pub const STATE: &str = "State";
    pub const NAME: &str = "Name";
    pub const OBJECT_GROUP: &str = "Object Group";
    pub const CRYPTOGRAPHIC_ALGORITHM: &str = "Cryptographic Algorithm";
    pub const CRYPTOGRAPHIC_LENGTH: &str = "Cryptographic Length";
    pub const CRYPTOGRAPHIC_USAGE_MASK: &str = "Cryptographic Usage Mask";
    pub const CRYPTOGRAPHIC_PARAMETERS: &str = "Cryptographic Parameters";
    pub const INITIAL_DATE: &str = "Initial Date";
    pub const ACTIVATION_DATE: &str = "Activation Date";
    pub const PROCESS_START_DATE: &str = "Process Start Date";
    pub const PROTECT_STOP_DATE: &str = "Protect Stop Date";
    pub const DEACTIVATION_DATE: &str = "Deactivation Date";
    pub const DESTROY_DATE: &str = "Destroy Date";
    pub const COMPROMISE_DATE: &str = "Compromise Date";
    pub const COMPROMISE_OCCURRENCE_DATE: &str = "Compromise Occurrence Date";
    pub const REVOCATION_REASON: &str = "Revocation Reason";
    pub const ARCHIVE_DATE: &str = "Archive Date";
    pub const LAST_CHANGE_DATE: &str = "Last Change Date";
    pub const LINK: &str = "Link";
    pub const LEASE_TIME: &str = "Lease Time";
    pub const USAGE_LIMITS: &str = "Usage Limits";
    pub const FRESH: &str = "Fresh";
    pub const DIGEST: &str = "Digest";
    pub const CERTIFICATE_TYPE: &str = "Certificate Type";
    pub const ORIGINAL_CREATION_DATE: &str = "Original Creation Date";
    pub const OPERATION_POLICY_NAME: &str = "Operation Policy Name";
    pub const KEY_VALUE_PRESENT: &str = "Key Value Present";
    pub const KEY_VALUE_LOCATION: &str = "Key Value Location";
}

/// Wrapped content of an object: the object's TTLV under the master key.
#[derive(Clone, PartialEq, Eq)]
pub struct Material {
    /// The `kmipd_hsm` wrapped blob.
    pub wrapped: Vec<u8>,
    /// Master key version it is wrapped under (also inside the blob; kept
    /// here so rotation and audits can scan without parsing).
    pub master_version: u32,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Material(v{}, {} bytes wrapped)",
            self.master_version,
            self.wrapped.len()
        )
    }
}

/// A managed object.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedObject {
    /// Unique Identifier.
    pub id: String,
    /// Object Type.
    pub object_type: ObjectType,
    /// The identity that created it.
    pub owner: String,
    /// The group it belongs to (the creator's group).
    pub group: String,
    /// The credential principal of the request that created it (`user:NAME`
    /// or `device:...`, see [`crate::access::principal`]), when that request
    /// carried a credential; the KMIP "default" Operation Policy reserves
    /// the object to it.
    pub creator: Option<String>,
    /// Incremented on every change.
    pub revision: u64,
    /// Every attribute instance, server-maintained ones included.
    pub attributes: Vec<Attribute>,
    /// The wrapped content; `None` once destroyed.
    pub material: Option<Material>,
    /// Archived objects are offline until recovered.
    pub archived: bool,
    /// Creation order: nanoseconds since the epoch, unique and increasing
    /// within a process ([`creation_stamp`]). Orders the fresh and default
    /// members of an object group, where the Initial Date's one-second
    /// resolution would tie.
    pub created: i64,
}

/// The creation stamp of an object made at `now` (seconds): `now` in
/// nanoseconds plus the system clock's fraction of a second, and always
/// above the last stamp this process handed out, so two objects made in
/// the same second still have an order.
pub fn creation_stamp(now: i64) -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(i64::MIN);
    let fraction = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::from(d.subsec_nanos()));
    let want = now.saturating_mul(1_000_000_000).saturating_add(fraction);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = want.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

impl ManagedObject {
    /// Every instance of attribute `name`, in index order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Attribute> + 'a {
        self.attributes.iter().filter(move |a| a.name == name)
    }

    /// The first instance of attribute `name`.
    pub fn first(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Replaces every instance of `name` with one value (index 0).
    pub fn set(&mut self, name: &str, value: Value) {
        self.attributes.retain(|a| a.name != name);
        self.attributes.push(Attribute {
            name: name.to_owned(),
            index: Some(0),
            value,
        });
    }

    /// Removes every instance of `name`.
    pub fn remove(&mut self, name: &str) {
        self.attributes.retain(|a| a.name != name);
    }

    /// A Date-Time attribute.
    pub fn date(&self, name: &str) -> Option<i64> {
        self.first(name).and_then(|a| a.date_time())
    }

    /// Whether the object was registered without its Key Value (a KMIP 1.2
    /// metadata-only object: Key Value Present is false). Its stored content
    /// is the Key Block without a Key Value.
    pub fn key_value_absent(&self) -> bool {
        self.first(names::KEY_VALUE_PRESENT)
            .is_some_and(|a| a.value == Value::Boolean(false))
    }

    /// Destroyed (or Destroyed Compromised), or its content gone: nothing
    /// of its value can be served or used.
    pub fn is_destroyed(&self) -> bool {
        matches!(
            self.stored_state(),
            State::DESTROYED | State::DESTROYED_COMPROMISED
        ) || self.material.is_none()
    }

    /// The stored State attribute.
    pub fn stored_state(&self) -> State {
        self.first(names::STATE)
            .and_then(|a| a.enumeration())
            .map(State)
            .unwrap_or(State::ACTIVE)
    }

    /// Applies the date-driven transitions due at `now`; returns whether the
    /// state changed (the caller persists the change).
    pub fn advance_state(&mut self, now: i64) -> bool {
        let before = self.stored_state();
        let mut state = before;
        let due = |d: Option<i64>| d.is_some_and(|d| d <= now);
        if state == State::PRE_ACTIVE && due(self.date(names::ACTIVATION_DATE)) {
            state = State::ACTIVE;
        }
        if (state == State::ACTIVE || state == State::PRE_ACTIVE)
            && due(self.date(names::DEACTIVATION_DATE))
        {
            state = State::DEACTIVATED;
        }
        if state != before {
            self.set(names::STATE, Value::Enumeration(state.0));
            true
        } else {
            false
        }
    }

    /// The next free Attribute Index of `name`.
    pub fn next_index(&self, name: &str) -> i32 {
        self.all(name)
            .filter_map(|a| a.index)
            .max()
            .map_or(0, |m| m + 1)
            .max(
                // Instances stored without an index count as index 0.
                if self.all(name).any(|a| a.index.is_none()) {
                    1
                } else {
                    0
                },
            )
    }
}

/// The Usage Limits attribute (KMIP 1.x, 3.21): Usage Limits Total and Unit
/// set by the client, Usage Limits Count (what is left) kept by the server.
pub mod usage_limits {
    use kmip::tables::Tag;
    use kmip::{Ttlv, Value};

    /// The (total, count, unit) of a Usage Limits value.
    pub fn parts(v: &Value) -> Option<(i64, Option<i64>, u32)> {
        let Value::Structure(c) = v else { return None };
        let get = |t: Tag| c.iter().find(|x| x.tag == t);
        let total = get(Tag::USAGE_LIMITS_TOTAL)?.as_long().ok()?;
        let count = get(Tag::USAGE_LIMITS_COUNT).and_then(|x| x.as_long().ok());
        let unit = get(Tag::USAGE_LIMITS_UNIT)?.as_enum().ok()?;
        Some((total, count, unit))
    }

    /// A Usage Limits value in the specification's field order.
    pub fn value(total: i64, count: i64, unit: u32) -> Value {
        Value::Structure(vec![
            Ttlv::long(Tag::USAGE_LIMITS_TOTAL, total),
            Ttlv::long(Tag::USAGE_LIMITS_COUNT, count),
            Ttlv::enumeration(Tag::USAGE_LIMITS_UNIT, unit),
        ])
    }

    /// A client's Usage Limits as stored: the Count starts at the Total
    /// ("the server SHALL set the Usage Limits Count to the Usage Limits
    /// Total when the attribute is set"); `None` when Total or Unit is
    /// missing or the numbers are negative.
    pub fn from_client(v: &Value) -> Option<Value> {
        let (total, count, unit) = parts(v)?;
        let count = count.unwrap_or(total);
        (total >= 0 && (0..=total).contains(&count)).then(|| value(total, count, unit))
    }

    /// The replacement key's Usage Limits on Re-key: the Total copied, the
    /// Count reset to the Total.
    pub fn reset(v: &Value) -> Option<Value> {
        let (total, _, unit) = parts(v)?;
        Some(value(total, total, unit))
    }
}
