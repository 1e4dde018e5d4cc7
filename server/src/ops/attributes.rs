//! Get Attributes, Get Attribute List, Add, Modify, Delete and Set
//! Attribute, and the rules on which attributes clients may set and which
//! exist in which protocol version.

use super::OpCtx;
use crate::errors::{OpError, OpResult};
use crate::model::{names, ManagedObject};
use kmip::messages::attributes::{
    is_custom, Attribute, Attributes, KeyValueLocation, Name, TemplateAttribute,
};
use kmip::messages::objects::Object;
use kmip::messages::payloads::{
    AddAttributeRequest, AttributeChangeResponse, DeleteAttributeRequest, GetAttributeListRequest,
    GetAttributeListResponse, GetAttributesRequest, GetAttributesResponse, IdResponse,
    ModifyAttributeRequest, SetAttributeRequest,
};
use kmip::tables::{ObjectType, State, Tag};
use kmip::{ProtocolVersion, Ttlv};
use std::collections::{HashMap, HashSet};

/// Most attribute instances one object may hold: every change rewrites the
/// whole record, so an unbounded list would make each write slower and let
/// one client grow a record without limit.
pub const MAX_ATTRIBUTES: usize = 1024;

/// Attributes only the server sets.
const SERVER_ONLY: &[&str] = &[
    names::UNIQUE_IDENTIFIER,
    names::OBJECT_TYPE,
    names::STATE,
    names::INITIAL_DATE,
    names::LAST_CHANGE_DATE,
    names::DESTROY_DATE,
    names::COMPROMISE_DATE,
    names::COMPROMISE_OCCURRENCE_DATE,
    names::REVOCATION_REASON,
    names::ARCHIVE_DATE,
    names::LEASE_TIME,
    names::DIGEST,
    names::ORIGINAL_CREATION_DATE,
    names::CERTIFICATE_TYPE,
    "Certificate Length",
    "Certificate Identifier",
    "Certificate Subject",
    "Certificate Issuer",
    "X.509 Certificate Identifier",
    "X.509 Certificate Subject",
    "X.509 Certificate Issuer",
    "Digital Signature Algorithm",
    // Set by the server when an object is registered without its Key Value
    // (KMIP 1.2); never specified by a client, never modified.
    names::KEY_VALUE_PRESENT,
    "Always Sensitive",
    "Never Extractable",
];

/// Attributes that may be set when an object is created but not changed later.
const CREATE_ONLY: &[&str] = &[
    names::CRYPTOGRAPHIC_ALGORITHM,
    names::CRYPTOGRAPHIC_LENGTH,
    "Cryptographic Domain Parameters",
    names::CRYPTOGRAPHIC_USAGE_MASK,
    // A client may register a key as Fresh (TC-152); only Get clears it.
    names::FRESH,
];

/// Attributes with several instances.
fn multi_valued(name: &str) -> bool {
    is_custom(name)
        || matches!(
            name,
            names::NAME
                | names::OBJECT_GROUP
                | names::LINK
                | "Application Specific Information"
                | "Cryptographic Parameters"
                | "Alternative Name"
                | names::DIGEST
                | names::KEY_VALUE_LOCATION
        )
}

/// The protocol version that introduced an attribute (1.0 for the rest).
fn introduced(name: &str) -> ProtocolVersion {
    match name {
        names::FRESH => ProtocolVersion::V1_1,
        "Alternative Name"
        | names::KEY_VALUE_PRESENT
        | names::KEY_VALUE_LOCATION
        | names::ORIGINAL_CREATION_DATE => ProtocolVersion::V1_2,
        "Random Number Generator" => ProtocolVersion::V1_3,
        "PKCS#12 Friendly Name"
        | "Description"
        | "Comment"
        | "Sensitive"
        | "Always Sensitive"
        | "Extractable"
        | "Never Extractable" => ProtocolVersion::V1_4,
        _ => ProtocolVersion::V1_0,
    }
}

/// Whether attribute `name` exists in protocol version `v`.
pub fn exists_in(name: &str, v: ProtocolVersion) -> bool {
    if v.is_2x() {
        // 2.x dropped these 1.x attributes.
        return !matches!(
            name,
            "Certificate Identifier"
                | "Certificate Subject"
                | "Certificate Issuer"
                | "Operation Policy Name"
        );
    }
    introduced(name) <= v
}

/// Refuses attributes a client may not set (`at_create`: Create/Register time).
pub fn check_client_settable(name: &str, at_create: bool) -> OpResult<()> {
    if name.is_empty() {
        return Err(OpError::InvalidField("empty attribute name".into()));
    }
    if SERVER_ONLY.contains(&name) || (!at_create && CREATE_ONLY.contains(&name)) {
        return Err(OpError::ReadOnlyAttribute(format!(
            "attribute {name:?} is set by the server"
        )));
    }
    if !is_custom(name)
        && kmip::messages::attributes::expected_type(name).is_none()
        && Tag::from_name(name).is_none()
    {
        return Err(OpError::InvalidField(format!("unknown attribute {name:?}")));
    }
    Ok(())
}

/// Attributes of a Template that apply to the Template object itself, not
/// to the objects created with it (KMIP 1.x, 2.2.6 "Template").
const TEMPLATE_OWN: &[&str] = &[
    names::UNIQUE_IDENTIFIER,
    names::OBJECT_TYPE,
    names::NAME,
    names::INITIAL_DATE,
    names::ARCHIVE_DATE,
    names::LAST_CHANGE_DATE,
];

/// Splits the attributes of a Template being registered: the Names (which
/// name the Template object, so that a Template-Attribute can reference
/// it and Locate finds it) and the rest (kept in the Template, applied to
/// the objects created with it).
pub fn template_own_attributes(template: &[Attribute]) -> Vec<Attribute> {
    template
        .iter()
        .filter(|a| a.name == names::NAME)
        .cloned()
        .collect()
}

/// The live Template object named `name`, visible to the caller.
async fn named_template(ctx: &OpCtx<'_>, name: &Name) -> OpResult<Vec<Attribute>> {
    let ids = ctx
        .server
        .catalog
        .ids_where(crate::catalog::field::NAME, &name.name_value)?;
    let mut found = Vec::new();
    for id in ids {
        let Ok(o) = ctx.load_online(&id) else {
            continue;
        };
        let live = !matches!(
            o.stored_state(),
            State::DESTROYED | State::DESTROYED_COMPROMISED
        );
        if o.object_type == ObjectType::TEMPLATE && live && o.material.is_some() {
            found.push(o);
        }
    }
    let o = match found.as_slice() {
        [one] => one,
        [] => {
            return Err(OpError::NotFound(format!(
                "no Template named {:?}",
                name.name_value
            )))
        }
        _ => {
            return Err(OpError::InvalidField(format!(
                "{} Templates are named {:?}",
                found.len(),
                name.name_value
            )))
        }
    };
    match ctx.content(o).await? {
        Object::Template(t) => Ok(t
            .attributes
            .into_iter()
            .filter(|a| !TEMPLATE_OWN.contains(&a.name.as_str()))
            .collect()),
        _ => Err(OpError::Internal(format!(
            "stored content of Template {} is not a Template",
            o.id
        ))),
    }
}

/// Adds `layer` over `out`: a single-instance attribute named in `layer`
/// replaces the one in `out`; instances of a multi-instance attribute
/// (Name, Object Group, custom attributes, ...) are added after those of
/// the template, as further indexes (the TC-312-12 key gets the template's
/// `x-ID` at index 0 and the request's at index 1).
fn overlay(out: &mut Vec<Attribute>, layer: Vec<Attribute>) {
    out.retain(|a| multi_valued(&a.name) || !layer.iter().any(|l| l.name == a.name));
    out.extend(layer);
}

/// The attributes of a 1.x Template-Attribute or a 2.x Attributes
/// structure. Templates named in a Template-Attribute (KMIP 1.0-1.2;
/// deprecated in 1.3) apply first, in order, a later one overriding an
/// earlier one; the request's own attributes override them all (KMIP 1.x,
/// 2.1.8 "Template-Attribute Structures").
pub async fn request_attributes(
    ctx: &OpCtx<'_>,
    template: Option<&TemplateAttribute>,
    attributes: Option<&Attributes>,
) -> OpResult<Vec<Attribute>> {
    let mut out = Vec::new();
    if let Some(t) = template {
        for name in &t.names {
            let layer = named_template(ctx, name).await?;
            overlay(&mut out, layer);
        }
        overlay(&mut out, t.attributes.clone());
    }
    if let Some(a) = attributes {
        overlay(&mut out, a.0.clone());
    }
    if out.len() > MAX_ATTRIBUTES / 2 {
        return Err(OpError::InvalidField(format!(
            "{} attributes: at most {} may be given when an object is made",
            out.len(),
            MAX_ATTRIBUTES / 2
        )));
    }
    for a in &mut out {
        a.index = None;
        normalize(a)?;
    }
    Ok(out)
}

/// Longest Key Value Location Value kmipd keeps (a PKCS#11 URI or an HSM
/// label fits many times over).
pub const MAX_KEY_VALUE_LOCATION: usize = 4096;

/// Brings a client-set attribute into its stored form: a Usage Limits
/// gets its Usage Limits Count (the Total, at first); a Key Value Location
/// must hold a value and a known Key Value Location Type.
pub fn normalize(a: &mut Attribute) -> OpResult<()> {
    if a.name == names::KEY_VALUE_LOCATION {
        let bad = |why: &str| OpError::InvalidField(format!("Key Value Location: {why}"));
        let l: KeyValueLocation =
            kmip::messages::attributes::from_value(&a.value, kmip::Ctx::new(ProtocolVersion::V1_2))
                .map_err(|e| bad(&e.to_string()))?;
        if l.key_value_location_type.name().is_none() {
            return Err(bad("unknown Key Value Location Type"));
        }
        if l.key_value_location_value.is_empty()
            || l.key_value_location_value.len() > MAX_KEY_VALUE_LOCATION
        {
            return Err(bad(&format!(
                "the value must have 1 to {MAX_KEY_VALUE_LOCATION} bytes"
            )));
        }
    }
    if a.name == names::USAGE_LIMITS {
        a.value = crate::model::usage_limits::from_client(&a.value).ok_or_else(|| {
            OpError::InvalidField(
                "Usage Limits needs a Usage Limits Total and Unit (Count at most the Total)".into(),
            )
        })?;
    }
    Ok(())
}

/// The attributes of `o` that exist in `v`, in kmipd's canonical order:
/// custom `x-`/`y-` attributes first in the order they were added, then the
/// identity attributes (Unique Identifier, Object Type, Cryptographic
/// Algorithm, Cryptographic Length), then the others by name; instances of
/// one attribute by index. KMIP leaves the order open; a stable one makes
/// responses reproducible (it is the order of the OASIS reference server).
fn visible(o: &ManagedObject, v: ProtocolVersion) -> Vec<&Attribute> {
    const FIRST: [&str; 4] = [
        names::UNIQUE_IDENTIFIER,
        names::OBJECT_TYPE,
        names::CRYPTOGRAPHIC_ALGORITHM,
        names::CRYPTOGRAPHIC_LENGTH,
    ];
    let mut out: Vec<(usize, &Attribute)> = o
        .attributes
        .iter()
        .enumerate()
        .filter(|(_, a)| exists_in(&a.name, v))
        .collect();
    let key = |(pos, a): &(usize, &Attribute)| {
        if is_custom(&a.name) {
            // The first instance's position keeps one attribute's instances together.
            let first = o
                .attributes
                .iter()
                .position(|x| x.name == a.name)
                .unwrap_or(*pos);
            (0, first, String::new(), a.index.unwrap_or(0))
        } else {
            match FIRST.iter().position(|f| *f == a.name) {
                Some(r) => (1, r, String::new(), a.index.unwrap_or(0)),
                None => (2, 0, a.name.clone(), a.index.unwrap_or(0)),
            }
        }
    };
    out.sort_by_key(key);
    out.into_iter().map(|(_, a)| a).collect()
}

fn for_response(a: &Attribute, v: ProtocolVersion) -> Attribute {
    let mut a = a.clone();
    if v.is_2x() || a.index == Some(0) {
        // 1.x: index 0 may be omitted; 2.x has no Attribute Index.
        a.index = if v.is_2x() {
            None
        } else {
            a.index.filter(|i| *i != 0)
        };
    }
    // KMIP 1.0's Digest has no Key Format Type.
    if v == ProtocolVersion::V1_0 && a.name == names::DIGEST {
        if let kmip::Value::Structure(c) = &mut a.value {
            c.retain(|t| t.tag != Tag::KEY_FORMAT_TYPE);
        }
    }
    a
}

/// Get Attributes: the named attributes (all when none are named). An
/// absent attribute is simply not returned: success with only the
/// identifier, as vCenter expects before it adds its tags.
pub fn get_attributes(
    ctx: &OpCtx<'_>,
    p: &GetAttributesRequest,
) -> OpResult<GetAttributesResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let o = ctx.load(&id)?;
    let mut wanted: Vec<String> = p.attribute_names.clone();
    for r in &p.attribute_references {
        wanted.push(reference_name(r)?);
    }
    let v = ctx.version;
    // Named attributes come back in the order the client named them (each
    // name once, every instance of it), as clients pair them up that way;
    // without names, every attribute in the object's order.
    let selected: Vec<Attribute> = if wanted.is_empty() {
        visible(&o, v)
            .into_iter()
            .map(|a| for_response(a, v))
            .collect()
    } else {
        // A message may name tens of thousands of attributes: group the
        // object's instances by name once and dedupe with a set, so the
        // work is linear rather than names x names (or names x instances)
        // on the runtime's thread.
        let mut by_name: HashMap<&str, Vec<&Attribute>> = HashMap::new();
        for a in visible(&o, v) {
            by_name.entry(a.name.as_str()).or_default().push(a);
        }
        let mut seen: HashSet<&str> = HashSet::new();
        let mut out = Vec::new();
        for name in &wanted {
            if !seen.insert(name.as_str()) {
                // KMIP 1.1 made a repeated Attribute Name an error (TC-171);
                // 1.0 clients get each attribute once.
                if v >= ProtocolVersion::V1_1 {
                    return Err(OpError::InvalidMessage(format!(
                        "Attribute Name specified more than once: {name}"
                    )));
                }
                continue;
            }
            if let Some(instances) = by_name.get(name.as_str()) {
                out.extend(instances.iter().map(|a| for_response(a, v)));
            }
        }
        out
    };
    let mut r = GetAttributesResponse {
        unique_identifier: o.id.clone(),
        ..Default::default()
    };
    if v.is_2x() {
        r.attributes = Some(Attributes(selected));
    } else {
        r.attributes_1x = selected;
    }
    Ok(r)
}

/// A 2.x Attribute Reference: an Enumeration naming a tag, or a vendor
/// (Vendor Identification, Attribute Name) structure.
fn reference_name(r: &Ttlv) -> OpResult<String> {
    if let Ok(tag) = r.as_enum() {
        return Tag(tag)
            .name()
            .map(str::to_owned)
            .ok_or_else(|| OpError::InvalidField(format!("unknown attribute tag 0x{tag:06X}")));
    }
    let vendor = r
        .child(Tag::VENDOR_IDENTIFICATION)
        .and_then(|v| v.as_text().ok());
    let name = r.child(Tag::ATTRIBUTE_NAME).and_then(|v| v.as_text().ok());
    match (vendor, name) {
        (Some(v), Some(n)) if v == "x" || v == "y" => Ok(format!("{v}-{n}")),
        (Some(v), Some(n)) => Ok(format!("{v}:{n}")),
        _ => Err(OpError::InvalidField(
            "Attribute Reference must name a tag or a vendor attribute".into(),
        )),
    }
}

/// Get Attribute List: the names of the attributes the object has.
pub fn get_attribute_list(
    ctx: &OpCtx<'_>,
    p: &GetAttributeListRequest,
) -> OpResult<GetAttributeListResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let o = ctx.load(&id)?;
    let mut names: Vec<String> = Vec::new();
    for a in visible(&o, ctx.version) {
        if !names.contains(&a.name) {
            names.push(a.name.clone());
        }
    }
    let mut r = GetAttributeListResponse {
        unique_identifier: o.id.clone(),
        ..Default::default()
    };
    if ctx.version.is_2x() {
        r.attribute_references = names
            .iter()
            .map(|n| match Tag::from_name(n).filter(|_| !is_custom(n)) {
                Some(t) => Ttlv::enumeration(Tag::ATTRIBUTE_REFERENCE, t.0),
                None => {
                    Attribute::new(n.clone(), kmip::Value::TextString(String::new())).encode_2x()
                }
            })
            .map(|mut t| {
                t.tag = Tag::ATTRIBUTE_REFERENCE;
                if let kmip::Value::Structure(c) = &mut t.value {
                    c.retain(|x| x.tag != Tag::ATTRIBUTE_VALUE);
                }
                t
            })
            .collect();
    } else {
        r.attribute_names = names;
    }
    Ok(r)
}

fn the_attribute(
    one: &Option<Attribute>,
    holder: Option<&kmip::messages::payloads::AttributeHolder>,
) -> OpResult<Attribute> {
    one.clone()
        .or_else(|| holder.map(|h| h.0.clone()))
        .ok_or_else(|| OpError::MissingData("no attribute given".into()))
}

fn refuse_if_destroyed_material(o: &ManagedObject, name: &str) -> OpResult<()> {
    let s = o.stored_state();
    if (s == State::DESTROYED || s == State::DESTROYED_COMPROMISED) && !is_custom(name) {
        return Err(OpError::WrongState(format!("object {} is destroyed", o.id)));
    }
    Ok(())
}

/// Checks rules for dates that depend on the lifecycle state.
fn check_date_change(o: &ManagedObject, name: &str) -> OpResult<()> {
    let s = o.stored_state();
    match name {
        names::ACTIVATION_DATE if s != State::PRE_ACTIVE => Err(OpError::WrongState(format!(
            "the Activation Date can change only while Pre-Active (object is {s})"
        ))),
        _ => Ok(()),
    }
}

/// The first steps every attribute change shares: the client may set the
/// attribute, its value is normalised, the object is locked and loaded
/// online, is not destroyed, and its lifecycle allows a change of the date.
/// The guard keeps the object locked until the change is saved.
async fn begin_change<'s>(
    ctx: &OpCtx<'s>,
    id: &str,
    a: &mut Attribute,
) -> OpResult<(tokio::sync::MutexGuard<'s, ()>, ManagedObject)> {
    check_client_settable(&a.name, false)?;
    normalize(a)?;
    let guard = ctx.server.lock(id).await;
    let old = ctx.load_online(id)?;
    refuse_if_destroyed_material(&old, &a.name)?;
    check_date_change(&old, &a.name)?;
    Ok((guard, old))
}

/// Add Attribute: a new instance (custom and multi-valued attributes get
/// the next index); a single-valued attribute that exists is refused.
pub async fn add_attribute(
    ctx: &OpCtx<'_>,
    p: &AddAttributeRequest,
) -> OpResult<AttributeChangeResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let mut a = the_attribute(&p.attribute, p.new_attribute.as_ref())?;
    let (_guard, old) = begin_change(ctx, &id, &mut a).await?;
    if !multi_valued(&a.name) && old.first(&a.name).is_some() {
        return Err(OpError::IllegalOperation(format!(
            "attribute {:?} already exists and is single-valued",
            a.name
        )));
    }
    if old.attributes.len() >= MAX_ATTRIBUTES {
        return Err(OpError::IllegalOperation(format!(
            "object {id} holds the maximum of {MAX_ATTRIBUTES} attribute instances"
        )));
    }
    let mut new = old.clone();
    a.index = Some(new.next_index(&a.name));
    new.attributes.push(a.clone());
    ctx.save(Some(&old), &mut new).await?;
    Ok(AttributeChangeResponse {
        unique_identifier: id,
        attribute: (!ctx.version.is_2x()).then(|| for_response(&a, ctx.version)),
    })
}

/// The position in `o.attributes` of instance `index` of attribute `name`:
/// Index Out of Bounds when the attribute exists without that instance,
/// Invalid Field when the object lacks the attribute.
fn instance_position(o: &ManagedObject, name: &str, index: i32) -> OpResult<usize> {
    o.attributes
        .iter()
        .position(|x| x.name == name && x.index.unwrap_or(0) == index)
        .ok_or_else(|| {
            if o.first(name).is_some() {
                OpError::IndexOutOfBounds(format!("no instance {index} of {name:?}"))
            } else {
                OpError::InvalidField(format!("object {} has no attribute {name:?}", o.id))
            }
        })
}

/// Modify Attribute: replaces the instance at the given index (1.x) or
/// the instance equal to Current Attribute (2.x), or the only instance.
pub async fn modify_attribute(
    ctx: &OpCtx<'_>,
    p: &ModifyAttributeRequest,
) -> OpResult<AttributeChangeResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let mut a = the_attribute(&p.attribute, p.new_attribute.as_ref())?;
    let (_guard, old) = begin_change(ctx, &id, &mut a).await?;
    let mut new = old.clone();
    let pos = match &p.current_attribute {
        // The settable check above covers only the New Attribute's name: a
        // Current Attribute of another name (State, Unique Identifier, a
        // create-only attribute) would otherwise have its value replaced.
        Some(cur) if cur.0.name != a.name => {
            return Err(OpError::InvalidField(format!(
                "Current Attribute {:?} and New Attribute {:?} differ",
                cur.0.name, a.name
            )))
        }
        Some(cur) => new
            .attributes
            .iter()
            .position(|x| x.name == cur.0.name && x.value == cur.0.value)
            .ok_or_else(|| {
                OpError::InvalidField(format!("no instance of {:?} with that value", a.name))
            })?,
        None => instance_position(&old, &a.name, a.index.unwrap_or(0))?,
    };
    new.attributes[pos].value = a.value.clone();
    let stored = new.attributes[pos].clone();
    ctx.save(Some(&old), &mut new).await?;
    Ok(AttributeChangeResponse {
        unique_identifier: id,
        attribute: (!ctx.version.is_2x()).then(|| for_response(&stored, ctx.version)),
    })
}

/// Delete Attribute: removes the instance at the index (default 0), or the
/// instance equal to Current Attribute, or every instance named by an
/// Attribute Reference.
pub async fn delete_attribute(
    ctx: &OpCtx<'_>,
    p: &DeleteAttributeRequest,
) -> OpResult<AttributeChangeResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let name = match (
        &p.attribute_name,
        &p.current_attribute,
        &p.attribute_reference,
    ) {
        (Some(n), _, _) => n.clone(),
        (None, Some(c), _) => c.0.name.clone(),
        (None, None, Some(r)) => reference_name(r)?,
        _ => return Err(OpError::MissingData("no attribute named".into())),
    };
    if SERVER_ONLY.contains(&name.as_str()) || CREATE_ONLY.contains(&name.as_str()) {
        return Err(OpError::ReadOnlyAttribute(format!(
            "attribute {name:?} cannot be deleted"
        )));
    }
    let _guard = ctx.server.lock(&id).await;
    let old = ctx.load_online(&id)?;
    refuse_if_destroyed_material(&old, &name)?;
    let mut new = old.clone();
    let removed: Vec<Attribute> = match (&p.current_attribute, &p.attribute_reference) {
        (Some(c), _) => {
            let pos = new
                .attributes
                .iter()
                .position(|x| x.name == name && x.value == c.0.value)
                .ok_or_else(|| {
                    OpError::InvalidField(format!("no instance of {name:?} with that value"))
                })?;
            vec![new.attributes.remove(pos)]
        }
        (None, Some(_)) => {
            let all: Vec<Attribute> = new.all(&name).cloned().collect();
            new.remove(&name);
            all
        }
        (None, None) => {
            let pos = instance_position(&old, &name, p.attribute_index.unwrap_or(0))?;
            vec![new.attributes.remove(pos)]
        }
    };
    if removed.is_empty() {
        return Err(OpError::InvalidField(format!(
            "object {id} has no attribute {name:?}"
        )));
    }
    ctx.save(Some(&old), &mut new).await?;
    Ok(AttributeChangeResponse {
        unique_identifier: id,
        attribute: (!ctx.version.is_2x()).then(|| for_response(&removed[0], ctx.version)),
    })
}

/// Set Attribute (2.x): sets a single-valued attribute, replacing its value.
pub async fn set_attribute(ctx: &OpCtx<'_>, p: &SetAttributeRequest) -> OpResult<IdResponse> {
    let id = ctx.target(&p.unique_identifier)?;
    let mut a = p.new_attribute.0.clone();
    // A read-only attribute is refused as such before its arity is looked at.
    check_client_settable(&a.name, false)?;
    if multi_valued(&a.name) {
        return Err(OpError::IllegalOperation(format!(
            "attribute {:?} is multi-valued: use Add or Modify Attribute",
            a.name
        )));
    }
    // As Add and Modify do: among the checks, a client's Usage Limits Count
    // may not exceed its Total (or be negative).
    let (_guard, old) = begin_change(ctx, &id, &mut a).await?;
    let mut new = old.clone();
    new.set(&a.name, a.value);
    ctx.save(Some(&old), &mut new).await?;
    Ok(IdResponse {
        unique_identifier: id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_support::TestServer;
    use kmip::messages::payloads::{AttributeHolder, CreateRequest};
    use kmip::tables::{CryptographicAlgorithm, ObjectType};
    use kmip::Value;

    async fn new_key(t: &TestServer) -> String {
        let ctx = t.ctx(ProtocolVersion::V2_0);
        let p = CreateRequest {
            object_type: ObjectType::SYMMETRIC_KEY,
            attributes: Some(Attributes(vec![
                Attribute::new(
                    names::CRYPTOGRAPHIC_ALGORITHM,
                    Value::Enumeration(CryptographicAlgorithm::AES.0),
                ),
                Attribute::new(names::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
                Attribute::new("x-tag", Value::TextString("a".into())),
            ])),
            ..Default::default()
        };
        crate::ops::create::create(&ctx, &p)
            .await
            .unwrap()
            .unique_identifier
    }

    #[tokio::test]
    async fn modify_cannot_rewrite_another_attribute_through_current_attribute() {
        let t = TestServer::new();
        let id = new_key(&t).await;
        let ctx = t.ctx(ProtocolVersion::V2_0);
        // Current Attribute names State; New Attribute is a settable custom one.
        let p = ModifyAttributeRequest {
            unique_identifier: Some(id.clone()),
            current_attribute: Some(AttributeHolder(Attribute::new(
                names::STATE,
                Value::Enumeration(State::PRE_ACTIVE.0),
            ))),
            new_attribute: Some(AttributeHolder(Attribute::new(
                "x-tag",
                Value::Enumeration(State::ACTIVE.0),
            ))),
            ..Default::default()
        };
        let e = modify_attribute(&ctx, &p).await.unwrap_err();
        assert!(matches!(e, OpError::InvalidField(_)), "{e:?}");
        let o = ctx.load(&id).unwrap();
        assert_eq!(o.stored_state(), State::PRE_ACTIVE);
        // The same attribute on both sides still works.
        let p = ModifyAttributeRequest {
            unique_identifier: Some(id.clone()),
            current_attribute: Some(AttributeHolder(Attribute::new(
                "x-tag",
                Value::TextString("a".into()),
            ))),
            new_attribute: Some(AttributeHolder(Attribute::new(
                "x-tag",
                Value::TextString("b".into()),
            ))),
            ..Default::default()
        };
        modify_attribute(&ctx, &p).await.unwrap();
        let o = ctx.load(&id).unwrap();
        assert_eq!(o.first("x-tag").unwrap().text(), Some("b"));
    }

    #[tokio::test]
    async fn attribute_instances_per_object_are_bounded() {
        let t = TestServer::new();
        let id = new_key(&t).await;
        let ctx = t.ctx(ProtocolVersion::V1_4);
        let mut refused = None;
        for i in 0..MAX_ATTRIBUTES + 10 {
            let p = AddAttributeRequest {
                unique_identifier: Some(id.clone()),
                attribute: Some(Attribute::new("x-many", Value::TextString(i.to_string()))),
                ..Default::default()
            };
            if let Err(e) = add_attribute(&ctx, &p).await {
                refused = Some((i, e));
                break;
            }
        }
        let (at, e) = refused.expect("the cap is enforced");
        assert!(matches!(e, OpError::IllegalOperation(_)), "{e:?}");
        assert_eq!(ctx.load(&id).unwrap().attributes.len(), MAX_ATTRIBUTES);
        assert!(at < MAX_ATTRIBUTES);
    }

    #[tokio::test]
    async fn get_attributes_keeps_the_named_order_once_each() {
        let t = TestServer::new();
        let id = new_key(&t).await;
        // KMIP 1.1+ refuses a name given twice.
        let twice = GetAttributesRequest {
            unique_identifier: Some(id.clone()),
            attribute_names: vec![names::OBJECT_TYPE.into(), names::OBJECT_TYPE.into()],
            ..Default::default()
        };
        let e = get_attributes(&t.ctx(ProtocolVersion::V1_1), &twice).unwrap_err();
        assert!(matches!(e, OpError::InvalidMessage(_)), "{e:?}");
        // 1.0 answers each attribute once, in the order named.
        let ctx = t.ctx(ProtocolVersion::V1_0);
        let mut names_wanted: Vec<String> = (0..20_000).map(|i| format!("x-none-{i}")).collect();
        names_wanted.extend(
            [
                "x-tag",
                names::CRYPTOGRAPHIC_LENGTH,
                "x-tag",
                names::OBJECT_TYPE,
            ]
            .map(String::from),
        );
        let p = GetAttributesRequest {
            unique_identifier: Some(id),
            attribute_names: names_wanted,
            ..Default::default()
        };
        let r = get_attributes(&ctx, &p).unwrap();
        let got: Vec<&str> = r.attributes_1x.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            got,
            ["x-tag", names::CRYPTOGRAPHIC_LENGTH, names::OBJECT_TYPE]
        );
    }

    #[tokio::test]
    async fn set_attribute_normalizes_usage_limits() {
        use kmip::messages::payloads::SetAttributeRequest;
        let t = TestServer::new();
        let id = new_key(&t).await;
        let ctx = t.ctx(ProtocolVersion::V2_0);
        let limits = |total: i64, count: i64| {
            Value::Structure(vec![
                Ttlv::long(Tag::USAGE_LIMITS_TOTAL, total),
                Ttlv::long(Tag::USAGE_LIMITS_COUNT, count),
                Ttlv::enumeration(Tag::USAGE_LIMITS_UNIT, 1u32),
            ])
        };
        let set = |v: Value| SetAttributeRequest {
            unique_identifier: Some(id.clone()),
            new_attribute: AttributeHolder(Attribute::new(names::USAGE_LIMITS, v)),
        };
        let e = set_attribute(&ctx, &set(limits(10, 1_000_000)))
            .await
            .unwrap_err();
        assert!(matches!(e, OpError::InvalidField(_)), "{e:?}");
        set_attribute(&ctx, &set(limits(10, 4))).await.unwrap();
        let o = ctx.load(&id).unwrap();
        let (total, count, _) =
            crate::model::usage_limits::parts(&o.first(names::USAGE_LIMITS).unwrap().value)
                .unwrap();
        assert_eq!((total, count), (10, Some(4)));
    }
}
