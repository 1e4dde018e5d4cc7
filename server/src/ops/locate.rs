//! Locate: objects matching every attribute filter, served from the
//! secondary indexes where a filter is indexed, with Maximum Items, Offset
//! Items, Storage Status Mask and Object Group Member.

use super::OpCtx;
use crate::catalog::field;
use crate::errors::OpResult;
use crate::model::{names, ManagedObject};
use kmip::messages::attributes::{is_custom, Attribute};
use kmip::messages::payloads::{LocateRequest, LocateResponse};
use kmip::tables::{ObjectGroupMember, ObjectType, StorageStatusMask, Tag};
use kmip::{ProtocolVersion, Value};

/// The index (field, value) that narrows a filter, if any.
fn indexed(a: &Attribute) -> Option<(String, String)> {
    Some(match a.name.as_str() {
        names::OBJECT_TYPE => (field::OBJECT_TYPE.into(), a.enumeration()?.to_string()),
        names::STATE => (field::STATE.into(), a.enumeration()?.to_string()),
        names::OBJECT_GROUP => (field::OBJECT_GROUP.into(), a.text()?.to_owned()),
        names::NAME => (field::NAME.into(), name_value(&a.value)?.to_owned()),
        n if is_custom(n) => (format!("{}{n}", field::CUSTOM_PREFIX), a.text()?.to_owned()),
        _ => return None,
    })
}

fn name_value(v: &Value) -> Option<&str> {
    match v {
        Value::Structure(c) => c.iter().find(|t| t.tag == Tag::NAME_VALUE)?.as_text().ok(),
        _ => None,
    }
}

const DATE_NAMES: &[&str] = &[
    names::INITIAL_DATE,
    names::ACTIVATION_DATE,
    names::PROCESS_START_DATE,
    names::PROTECT_STOP_DATE,
    names::DEACTIVATION_DATE,
    names::DESTROY_DATE,
    names::COMPROMISE_DATE,
    names::COMPROMISE_OCCURRENCE_DATE,
    names::ARCHIVE_DATE,
    names::LAST_CHANGE_DATE,
    names::ORIGINAL_CREATION_DATE,
];

/// Whether objects of type `t` have a Key Block (and so a Key Value).
fn has_key_block(t: ObjectType) -> bool {
    matches!(
        t,
        ObjectType::SYMMETRIC_KEY
            | ObjectType::PUBLIC_KEY
            | ObjectType::PRIVATE_KEY
            | ObjectType::SPLIT_KEY
            | ObjectType::SECRET_DATA
            | ObjectType::PGP_KEY
    )
}

/// Key Value Present as a Locate filter: the server records it (false) only
/// for a key registered without its Key Value, so a key without the
/// attribute has its Key Value (true); an object without a Key Block
/// (certificate, opaque object, template) matches neither.
fn key_value_present(o: &ManagedObject) -> Option<bool> {
    if !has_key_block(o.object_type) {
        return None;
    }
    Some(!o.key_value_absent())
}

fn matches(o: &ManagedObject, filters: &[Attribute]) -> bool {
    let mut i = 0;
    while i < filters.len() {
        let f = &filters[i];
        if f.name == names::KEY_VALUE_PRESENT {
            let want = match f.value {
                Value::Boolean(b) => Some(b),
                _ => None,
            };
            if want.is_none() || key_value_present(o) != want {
                return false;
            }
            i += 1;
            continue;
        }
        if DATE_NAMES.contains(&f.name.as_str()) {
            // Two instances of a date attribute give a range.
            let range: Vec<i64> = filters
                .iter()
                .filter(|g| g.name == f.name)
                .filter_map(|g| g.date_time())
                .collect();
            let (lo, hi) = match range.as_slice() {
                [one] => (*one, *one),
                [a, b, ..] => ((*a).min(*b), (*a).max(*b)),
                [] => return false,
            };
            if !o
                .all(&f.name)
                .filter_map(|a| a.date_time())
                .any(|d| d >= lo && d <= hi)
            {
                return false;
            }
            i += 1;
            continue;
        }
        let ok = o.all(&f.name).any(|a| match f.name.as_str() {
            names::NAME => {
                let want = &f.value;
                match (want, &a.value) {
                    (Value::Structure(w), Value::Structure(h)) => w.iter().all(|wt| h.contains(wt)),
                    _ => false,
                }
            }
            names::CRYPTOGRAPHIC_USAGE_MASK => match (f.integer(), a.integer()) {
                (Some(w), Some(h)) => h & w == w,
                _ => false,
            },
            _ => a.value == f.value,
        });
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// Locate.
pub fn locate(ctx: &OpCtx<'_>, p: &LocateRequest) -> OpResult<LocateResponse> {
    let mut filters: Vec<Attribute> = p.attributes_1x.clone();
    if let Some(a) = &p.attributes {
        filters.extend(a.0.iter().cloned());
    }
    let catalog = &ctx.server.catalog;
    let mask = p
        .storage_status_mask
        .unwrap_or(StorageStatusMask::ON_LINE_STORAGE);
    let fresh_only = p.object_group_member == Some(ObjectGroupMember::GROUP_MEMBER_FRESH);
    if filters.is_empty() && !fresh_only {
        // Everything the caller may see: served from the indexes alone, so
        // paging through 100,000 keys does not decode every record per page.
        let found = unfiltered(ctx, mask)?;
        return Ok(page(ctx, p, found));
    }
    let candidates = match filters.iter().find_map(indexed) {
        Some((f, v)) => catalog.ids_where(&f, &v)?,
        None if ctx.caller.role != crate::config::Role::Admin => {
            catalog.ids_where(field::GROUP, &ctx.caller.group)?
        }
        None => catalog.all_ids()?,
    };
    let mut found: Vec<(i64, String)> = Vec::new();
    for id in candidates {
        let Some(mut o) = catalog.get(&id)? else {
            continue;
        };
        if !ctx.server.policy.may_see(ctx.caller, &o.group) {
            continue;
        }
        o.advance_state(ctx.now);
        let storage_ok = if o.archived {
            mask.contains(StorageStatusMask::ARCHIVAL_STORAGE)
        } else {
            mask.contains(StorageStatusMask::ON_LINE_STORAGE)
        };
        if !storage_ok {
            continue;
        }
        if fresh_only
            && o.first(names::FRESH)
                .map(|a| a.value == Value::Boolean(true))
                != Some(true)
        {
            continue;
        }
        // A destroyed object keeps only its metadata (KMIP 1.x, Destroy):
        // it is found only when the client asks for that State.
        let destroyed = matches!(
            o.stored_state(),
            kmip::tables::State::DESTROYED | kmip::tables::State::DESTROYED_COMPROMISED
        );
        if destroyed && !filters.iter().any(|f| f.name == names::STATE) {
            continue;
        }
        if matches(&o, &filters) {
            found.push((o.date(names::INITIAL_DATE).unwrap_or(0), o.id));
        }
    }
    Ok(page(ctx, p, found))
}

/// Objects the caller may see, not destroyed, in the storage the mask asks
/// for, with their Initial Date: from the creation, group, state and
/// archive indexes, without decoding a record.
fn unfiltered(ctx: &OpCtx<'_>, mask: StorageStatusMask) -> OpResult<Vec<(i64, String)>> {
    use kmip::tables::State;
    use std::collections::HashSet;
    let catalog = &ctx.server.catalog;
    let mut hidden: HashSet<String> = HashSet::new();
    for s in [State::DESTROYED, State::DESTROYED_COMPROMISED] {
        hidden.extend(catalog.ids_where(field::STATE, &s.0.to_string())?);
    }
    let archived: HashSet<String> = catalog
        .ids_where(field::ARCHIVED, "1")?
        .into_iter()
        .collect();
    let group: Option<HashSet<String>> = if ctx.caller.role == crate::config::Role::Admin {
        None
    } else {
        Some(
            catalog
                .ids_where(field::GROUP, &ctx.caller.group)?
                .into_iter()
                .collect(),
        )
    };
    let online = mask.contains(StorageStatusMask::ON_LINE_STORAGE);
    let offline = mask.contains(StorageStatusMask::ARCHIVAL_STORAGE);
    Ok(catalog
        .scan_field(field::CREATED)?
        .into_iter()
        .filter(|(_, id)| !hidden.contains(id))
        .filter(|(_, id)| group.as_ref().is_none_or(|g| g.contains(id)))
        .filter(|(_, id)| {
            if archived.contains(id) {
                offline
            } else {
                online
            }
        })
        .map(|(date, id)| (date.parse().unwrap_or(0), id))
        .collect())
}

/// Most identifiers in one Locate response: about 500 KB of TTLV. A client
/// with more matches pages with Offset Items; Located Items (1.3+) tells it
/// how many there are.
pub const LOCATE_MAX: usize = 10_000;

/// Orders the matches newest first (the identifier breaks ties, so paging
/// is stable) and applies Offset Items and Maximum Items.
fn page(ctx: &OpCtx<'_>, p: &LocateRequest, mut found: Vec<(i64, String)>) -> LocateResponse {
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let total = found.len();
    let offset = p.offset_items.unwrap_or(0).max(0) as usize;
    let max = p
        .maximum_items
        .filter(|m| *m > 0)
        .map(|m| m as usize)
        .unwrap_or(usize::MAX)
        .min(LOCATE_MAX);
    let unique_identifiers = found
        .into_iter()
        .skip(offset)
        .take(max)
        .map(|(_, id)| id)
        .collect();
    LocateResponse {
        // Located Items (1.3+) is optional ("a server MAY elect to omit
        // this value"): it matters to a client that pages, so it is sent
        // when the request limits or offsets the results, or when kmipd's
        // own cap cut the answer short.
        located_items: (ctx.version >= ProtocolVersion::V1_3
            && (p.maximum_items.is_some() || p.offset_items.is_some() || total > LOCATE_MAX))
            .then_some(i32::try_from(total).unwrap_or(i32::MAX)),
        unique_identifiers,
    }
}
