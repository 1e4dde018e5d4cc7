//! Locate: objects matching every attribute filter, served from the
//! secondary indexes where a filter is indexed, with Maximum Items, Offset
//! Items, Storage Status Mask and Object Group Member.

use super::OpCtx;
use crate::access::check_operation_policy;
use crate::catalog::field;
use crate::errors::OpResult;
use crate::model::{names, ManagedObject};
use kmip::messages::attributes::{is_custom, Attribute, TemplateAttribute};
use kmip::messages::payloads::{CreateRequest, LocateRequest, LocateResponse};
use kmip::tables::{ObjectGroupMember, ObjectType, Operation, StorageStatusMask, Tag};
use kmip::{ProtocolVersion, Value};

/// The index (field, value) that narrows a filter, if any.
fn indexed(a: &Attribute) -> Option<(String, String)> {
    Some(match a.name.as_str() {
        names::OBJECT_TYPE => (field::OBJECT_TYPE.into(), a.enumeration()?.to_string()),
        names::STATE => (field::STATE.into(), a.enumeration()?.to_string()),
        names::OBJECT_GROUP => (field::OBJECT_GROUP.into(), a.text()?.to_owned()),
        names::NAME => (field::NAME.into(), name_value(&a.value)?.to_owned()),
        // Longer custom values are not indexed (catalog::index_entries):
        // such a filter is checked on the records instead.
        n if is_custom(n) => {
            let v = a
                .text()
                .filter(|v| v.len() <= crate::catalog::MAX_INDEXED_VALUE)?;
            (format!("{}{n}", field::CUSTOM_PREFIX), v.to_owned())
        }
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
    // Object Group Member orders group members oldest first; for the
    // default member, round-robin from the member a Get last retrieved.
    // The position is tracked only once members were found (page()).
    let order = match p.object_group_member {
        None => Order::NewestFirst,
        Some(m) if m == ObjectGroupMember::GROUP_MEMBER_DEFAULT => Order::Default {
            group: filters
                .iter()
                .find(|f| f.name == names::OBJECT_GROUP)
                .and_then(|f| f.text()),
        },
        Some(_) => Order::Members,
    };
    if filters.is_empty() && !fresh_only && ctx.principal.is_none() {
        // Everything the caller may see: served from the indexes alone, so
        // paging through 100,000 keys does not decode every record per page.
        // (A request with a credential principal reads the records: the
        // "default" Operation Policy hides other principals' objects.)
        let found = unfiltered(ctx, mask)?;
        return Ok(page(ctx, p, found, order));
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
        // Locate is reserved to the creator like Get (KMIP 1.x, Default
        // Operation Policy): another principal's objects are not found.
        if check_operation_policy(&o, ctx.principal.as_deref(), Some(Operation::LOCATE)).is_err() {
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
            found.push((o.created, o.id));
        }
    }
    Ok(page(ctx, p, found, order))
}

/// Locate, and for a fresh member of a configured on-demand group that has
/// none left, a new member made as the caller's Create would make it
/// (KMIP 1.1: a server may create a fresh object as a consequence of the
/// Locate). Only when the request asks for nothing else the new key would
/// not match, and only for callers allowed to Create.
pub async fn locate_or_make(ctx: &mut OpCtx<'_>, p: &LocateRequest) -> OpResult<LocateResponse> {
    let found = super::batch::blocking_section(|| locate(ctx, p))?;
    if !found.unique_identifiers.is_empty()
        || p.object_group_member != Some(ObjectGroupMember::GROUP_MEMBER_FRESH)
        || p.offset_items.is_some_and(|o| o > 0)
        || p.maximum_items.is_some_and(|m| m < 0)
        // A new key is on-line: a Locate of archived objects would never
        // find the one it made.
        || p.storage_status_mask
            .is_some_and(|m| !m.contains(StorageStatusMask::ON_LINE_STORAGE))
    {
        return Ok(found);
    }
    let mut filters: Vec<&Attribute> = p.attributes_1x.iter().collect();
    if let Some(a) = &p.attributes {
        filters.extend(a.0.iter());
    }
    let groups: Vec<&str> = filters
        .iter()
        .filter(|f| f.name == names::OBJECT_GROUP)
        .filter_map(|f| f.text())
        .collect();
    let [group] = groups.as_slice() else {
        return Ok(found);
    };
    let Some(pool) = ctx.server.groups.pool(group).cloned() else {
        return Ok(found);
    };
    let made_would_match = filters.iter().all(|f| match f.name.as_str() {
        names::OBJECT_GROUP => true,
        names::OBJECT_TYPE => f.enumeration() == Some(ObjectType::SYMMETRIC_KEY.0),
        names::CRYPTOGRAPHIC_ALGORITHM => f.enumeration() == Some(pool.algorithm.0),
        names::CRYPTOGRAPHIC_LENGTH => f.integer() == Some(pool.length),
        _ => false,
    });
    if !made_would_match
        || ctx
            .server
            .policy
            .may_run(ctx.caller, kmip::tables::Operation::CREATE)
            .is_err()
    {
        return Ok(found);
    }
    let template = TemplateAttribute {
        names: Vec::new(),
        attributes: vec![
            Attribute::new(
                names::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(pool.algorithm.0),
            ),
            Attribute::new(names::CRYPTOGRAPHIC_LENGTH, Value::Integer(pool.length)),
            Attribute::new(
                names::CRYPTOGRAPHIC_USAGE_MASK,
                Value::Integer(pool.usage as i32),
            ),
            Attribute::new(names::OBJECT_GROUP, Value::TextString(pool.name.clone())),
        ],
    };
    let made = super::create::create(
        ctx,
        &CreateRequest {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: Some(template),
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(
        group = %pool.name,
        id = %made.unique_identifier,
        identity = %ctx.caller.identity,
        "made a fresh member of an on-demand object group"
    );
    Ok(LocateResponse {
        located_items: (ctx.version >= ProtocolVersion::V1_3
            && (p.maximum_items.is_some() || p.offset_items.is_some()))
        .then_some(1),
        unique_identifiers: vec![made.unique_identifier],
    })
}

/// How Locate orders its matches.
#[derive(Debug, Clone, Copy)]
enum Order<'a> {
    /// Newest first (the identifier breaks ties, so paging is stable).
    NewestFirst,
    /// Object Group Member Fresh: oldest first.
    Members,
    /// Object Group Member Default: oldest first, rotated past the member
    /// of `group` a Get last retrieved (groups.rs).
    Default { group: Option<&'a str> },
}

/// Objects the caller may see, not destroyed, in the storage the mask asks
/// for, with their creation stamps: from the creation, group, state and
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

/// Orders the matches (by creation stamp) and applies Offset Items and
/// Maximum Items.
fn page(
    ctx: &OpCtx<'_>,
    p: &LocateRequest,
    mut found: Vec<(i64, String)>,
    order: Order<'_>,
) -> LocateResponse {
    match order {
        Order::NewestFirst => found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1))),
        Order::Members => crate::groups::order_members(&mut found, None),
        Order::Default { group } => {
            let after = match group {
                Some(g) if !found.is_empty() => ctx.server.groups.track(&ctx.caller.group, g),
                _ => None,
            };
            crate::groups::order_members(&mut found, after)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ObjectGroupConfig, Role};
    use crate::ops::test_support::TestServer;
    use kmip::messages::payloads::GetRequest;
    use kmip::messages::{RequestBatchItem, RequestHeader, RequestMessage, ResponseMessage};
    use kmip::tables::{CryptographicAlgorithm, Operation, ResultReason, ResultStatus};

    async fn member(t: &TestServer, group: &str) -> String {
        let ctx = t.ctx(ProtocolVersion::V1_1);
        let p = CreateRequest {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: Some(TemplateAttribute {
                names: Vec::new(),
                attributes: vec![
                    Attribute::new(
                        names::CRYPTOGRAPHIC_ALGORITHM,
                        Value::Enumeration(CryptographicAlgorithm::AES.0),
                    ),
                    Attribute::new(names::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
                    Attribute::new(names::OBJECT_GROUP, Value::TextString(group.into())),
                ],
            }),
            ..Default::default()
        };
        super::super::create::create(&ctx, &p)
            .await
            .unwrap()
            .unique_identifier
    }

    fn group_request(group: &str, member: ObjectGroupMember) -> LocateRequest {
        LocateRequest {
            maximum_items: Some(1),
            object_group_member: Some(member),
            attributes_1x: vec![Attribute::new(
                names::OBJECT_GROUP,
                Value::TextString(group.into()),
            )],
            ..Default::default()
        }
    }

    async fn locate_one(t: &TestServer, p: &LocateRequest) -> Option<String> {
        let mut ctx = t.ctx(ProtocolVersion::V1_1);
        let mut r = locate_or_make(&mut ctx, p).await.unwrap();
        assert!(r.unique_identifiers.len() <= 1);
        r.unique_identifiers.pop()
    }

    async fn get(t: &TestServer, id: &str) {
        let ctx = t.ctx(ProtocolVersion::V1_1);
        let p = GetRequest {
            unique_identifier: Some(id.into()),
            ..Default::default()
        };
        super::super::get::get(&ctx, &p).await.unwrap();
    }

    #[tokio::test]
    async fn fresh_members_are_served_oldest_first_even_within_one_second() {
        // The fake clock stands still: all three are made in the same second.
        let t = TestServer::new();
        let ids = [
            member(&t, "g").await,
            member(&t, "g").await,
            member(&t, "g").await,
        ];
        member(&t, "other").await;
        let fresh = group_request("g", ObjectGroupMember::GROUP_MEMBER_FRESH);
        for id in &ids {
            assert_eq!(locate_one(&t, &fresh).await.as_deref(), Some(id.as_str()));
            get(&t, id).await; // no longer fresh
        }
        assert_eq!(locate_one(&t, &fresh).await, None, "no fresh member left");
        // Without Object Group Member, Locate stays newest first.
        let mut all = fresh.clone();
        all.object_group_member = None;
        assert_eq!(locate_one(&t, &all).await.as_deref(), Some(ids[2].as_str()));
    }

    #[tokio::test]
    async fn the_default_member_goes_round_robin_as_gets_retrieve_them() {
        let t = TestServer::new();
        let ids = [
            member(&t, "rr").await,
            member(&t, "rr").await,
            member(&t, "rr").await,
        ];
        let default = group_request("rr", ObjectGroupMember::GROUP_MEMBER_DEFAULT);
        let mut served = Vec::new();
        for _ in 0..4 {
            let id = locate_one(&t, &default).await.unwrap();
            get(&t, &id).await;
            served.push(id);
        }
        assert_eq!(
            served,
            [
                ids[0].clone(),
                ids[1].clone(),
                ids[2].clone(),
                ids[0].clone()
            ]
        );
        // A group with no member the caller sees is not tracked: clients
        // cannot grow the positions with names of their choosing.
        let before = t.server.groups.tracked();
        let none = group_request("no-such-group", ObjectGroupMember::GROUP_MEMBER_DEFAULT);
        assert_eq!(locate_one(&t, &none).await, None);
        assert_eq!(t.server.groups.tracked(), before);
        // Locate alone does not move it; only a Get does.
        assert_eq!(
            locate_one(&t, &default).await.as_deref(),
            Some(ids[1].as_str())
        );
        assert_eq!(
            locate_one(&t, &default).await.as_deref(),
            Some(ids[1].as_str())
        );
    }

    fn pool(name: &str) -> ObjectGroupConfig {
        ObjectGroupConfig {
            name: name.into(),
            algorithm: CryptographicAlgorithm::AES,
            length: 256,
            usage: 0x0C,
        }
    }

    #[tokio::test]
    async fn on_demand_groups_make_a_fresh_member_when_none_is_left() {
        let mut t = TestServer::new();
        t.server.groups = crate::groups::Groups::new(vec![pool("default")]);
        let fresh = group_request("default", ObjectGroupMember::GROUP_MEMBER_FRESH);
        let made = locate_one(&t, &fresh).await.expect("a member is made");
        let o = t.ctx(ProtocolVersion::V1_1).load(&made).unwrap();
        assert_eq!(
            o.first(names::OBJECT_GROUP).and_then(|a| a.text()),
            Some("default")
        );
        assert_eq!(
            o.first(names::CRYPTOGRAPHIC_LENGTH)
                .and_then(|a| a.integer()),
            Some(256)
        );
        assert_eq!(
            o.first(names::FRESH).map(|a| a.value.clone()),
            Some(Value::Boolean(true))
        );
        assert!(o.material.is_some(), "stored with its wrapped key");
        // Still fresh (no Get yet): found, not made again.
        assert_eq!(locate_one(&t, &fresh).await, Some(made.clone()));
        get(&t, &made).await;
        let next = locate_one(&t, &fresh).await.expect("another one is made");
        assert_ne!(next, made);

        // Nothing is made for an unconfigured group, for filters the new key
        // would not match, for Default members, or for callers that may not
        // Create.
        let count = || t.server.catalog.all_ids().unwrap().len();
        let before = count();
        let other = group_request("elsewhere", ObjectGroupMember::GROUP_MEMBER_FRESH);
        assert_eq!(locate_one(&t, &other).await, None);
        get(&t, &next).await;
        let mut named = fresh.clone();
        named.attributes_1x.push(Attribute::new(
            names::CRYPTOGRAPHIC_LENGTH,
            Value::Integer(128),
        ));
        assert_eq!(locate_one(&t, &named).await, None);
        let mut archived = fresh.clone();
        archived.storage_status_mask = Some(StorageStatusMask::ARCHIVAL_STORAGE);
        assert_eq!(locate_one(&t, &archived).await, None);
        let default = group_request("default", ObjectGroupMember::GROUP_MEMBER_DEFAULT);
        assert!(locate_one(&t, &default).await.is_some(), "existing members");
        assert_eq!(count(), before);
        t.caller.role = Role::Auditor;
        assert_eq!(locate_one(&t, &fresh).await, None);
        assert_eq!(count(), before, "an auditor's Locate makes nothing");
    }

    #[tokio::test]
    async fn custom_values_too_long_for_the_index_are_still_found() {
        let t = TestServer::new();
        let ctx = t.ctx(ProtocolVersion::V1_1);
        let long = "v".repeat(crate::catalog::MAX_INDEXED_VALUE + 100);
        let mut ids = Vec::new();
        for value in [long.clone(), "short".to_owned()] {
            let p = CreateRequest {
                object_type: ObjectType::SYMMETRIC_KEY,
                template_attribute: Some(TemplateAttribute {
                    names: Vec::new(),
                    attributes: vec![
                        Attribute::new(
                            names::CRYPTOGRAPHIC_ALGORITHM,
                            Value::Enumeration(CryptographicAlgorithm::AES.0),
                        ),
                        Attribute::new(names::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
                        Attribute::new("x-note", Value::TextString(value)),
                    ],
                }),
                ..Default::default()
            };
            let r = super::super::create::create(&ctx, &p).await.unwrap();
            ids.push(r.unique_identifier);
        }
        let by = |v: &str| LocateRequest {
            attributes_1x: vec![Attribute::new("x-note", Value::TextString(v.into()))],
            ..Default::default()
        };
        let r = locate(&ctx, &by(&long)).unwrap();
        assert_eq!(r.unique_identifiers, vec![ids[0].clone()]);
        let r = locate(&ctx, &by("short")).unwrap();
        assert_eq!(r.unique_identifiers, vec![ids[1].clone()]);
    }

    #[tokio::test]
    async fn an_item_after_a_locate_that_found_nothing_gets_item_not_found() {
        let t = TestServer::new();
        let item = |operation, payload| RequestBatchItem {
            operation,
            ephemeral: None,
            unique_batch_item_id: None,
            payload,
            message_extension: None,
        };
        let msg = RequestMessage {
            header: RequestHeader {
                protocol_version: ProtocolVersion::V1_1,
                batch_count: 2,
                ..Default::default()
            },
            items: vec![
                item(
                    Operation::LOCATE,
                    kmip::messages::payloads::RequestPayload::Locate(group_request(
                        "empty",
                        ObjectGroupMember::GROUP_MEMBER_FRESH,
                    )),
                ),
                item(
                    Operation::GET,
                    kmip::messages::payloads::RequestPayload::Get(GetRequest::default()),
                ),
            ],
        };
        let bytes = msg.to_ttlv().to_bytes().unwrap();
        let out = super::super::batch::handle(
            &t.server,
            Some(&t.caller),
            &bytes,
            &kmip::Limits::default(),
            Vec::new(),
        )
        .await;
        let r = ResponseMessage::from_bytes(&out, &kmip::Limits::default()).unwrap();
        assert_eq!(r.items[0].result_status, ResultStatus::SUCCESS);
        assert_eq!(r.items[1].result_status, ResultStatus::OPERATION_FAILED);
        assert_eq!(r.items[1].result_reason, Some(ResultReason::ITEM_NOT_FOUND));
    }
}
