//! `kmipctl keys`: list, show, create, activate, revoke, rotate and destroy
//! managed objects.
//!
//! Revoke and destroy are guarded: a key vCenter tagged (`x-Product`) or
//! that anyone fetched within `--recent-days` is refused unless `--force`
//! and a typed confirmation, because destroying (or revoking) a key vCenter
//! uses locks the virtual machines for good.

use super::output::{attr_text, date, progress, table};
use super::{exit, vendor, Conn, Exit};
use anyhow::{bail, Context};
use clap::Subcommand;
use kmip::codec::Interval;
use kmip::messages::attributes::{struct_value, Attribute, Link, TemplateAttribute};
use kmip::messages::payloads::*;
use kmip::messages::RequestPayload as P;
use kmip::messages::ResponsePayload as R;
use kmip::tables::{
    CryptographicAlgorithm, CryptographicUsageMask, NameType, ObjectType, Operation, ResultStatus,
    RevocationReasonCode, State, Tag,
};
use kmip::{Ctx, ProtocolVersion, Ttlv, Value};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, IsTerminal, Write};

use crate::client::Client;
use crate::ops::admin::{entries, op, tag};

/// Objects per Locate page.
pub const DEFAULT_PAGE: usize = 1000;
/// Get Attributes items per message.
const ATTR_BATCH: usize = 200;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List objects, newest first, with filters.
    #[command(
        after_help = "Examples:\n  kmipctl keys list --dev ./kmipd-dev\n  kmipctl keys list --dev ./kmipd-dev --state active --attr x-Component=\"Virtual Machine\"\n  kmipctl keys list --dev ./kmipd-dev --created-after 2024-01-01 --created-before -30d --json\n  kmipctl keys list --dev ./kmipd-dev --group default --type symmetric-key --ids-only\n\nPages through Locate (Offset Items) so 100,000+ objects list in bounded memory per page.\nColumns: id, name (Name or x-Name), component (x-Component), state, created (Initial Date), last used (last Get)."
    )]
    List {
        #[command(flatten)]
        conn: Conn,
        /// State: pre-active, active, deactivated, compromised, destroyed, destroyed-compromised.
        #[arg(long)]
        state: Option<String>,
        /// Owner group (the group of the identity that created the object).
        #[arg(long)]
        group: Option<String>,
        /// Object type: symmetric-key, secret-data, certificate, private-key, public-key, ...
        #[arg(long = "type", value_name = "TYPE")]
        object_type: Option<String>,
        /// Custom attribute filter, NAME=VALUE (repeatable; all must match).
        #[arg(long, value_name = "NAME=VALUE")]
        attr: Vec<String>,
        /// Created at or after this date (RFC 3339, YYYY-MM-DD, -30d).
        #[arg(long, value_name = "DATE", allow_hyphen_values = true)]
        created_after: Option<String>,
        /// Created at or before this date (RFC 3339, YYYY-MM-DD, -30d).
        #[arg(long, value_name = "DATE", allow_hyphen_values = true)]
        created_before: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Objects fetched per Locate page.
        #[arg(long, default_value_t = DEFAULT_PAGE, hide = true)]
        page_size: usize,
        /// Print identifiers only (no attribute fetch: fastest).
        #[arg(long)]
        ids_only: bool,
        /// JSON output (one array).
        #[arg(long)]
        json: bool,
    },
    /// Show every attribute and link of an object (never its material unless --reveal).
    #[command(
        after_help = "Examples:\n  kmipctl keys show 0b6a…  --dev ./kmipd-dev\n  kmipctl keys show 0b6a…  --dev ./kmipd-dev --json\n  kmipctl keys show 0b6a…  --dev ./kmipd-dev --reveal     # admin only, audited"
    )]
    Show {
        #[command(flatten)]
        conn: Conn,
        /// Unique Identifier.
        id: String,
        /// Also print the key material (hex). Admin only; recorded in the audit log.
        #[arg(long)]
        reveal: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Create a symmetric key.
    #[command(
        after_help = "Examples:\n  kmipctl keys create --dev ./kmipd-dev --name backup-key --bits 256\n  kmipctl keys create --dev ./kmipd-dev --name db --attr x-Owner=dba --activate\n\nPrints the new key's identifier."
    )]
    Create {
        #[command(flatten)]
        conn: Conn,
        /// Name attribute.
        #[arg(long)]
        name: Option<String>,
        /// Algorithm: aes, 3des, hmac-sha256, hmac-sha512.
        #[arg(long, default_value = "aes")]
        algorithm: String,
        /// Length in bits.
        #[arg(long, default_value_t = 256)]
        bits: i32,
        /// Object Group attribute.
        #[arg(long)]
        object_group: Option<String>,
        /// Custom attribute, x-NAME=VALUE (repeatable).
        #[arg(long, value_name = "NAME=VALUE")]
        attr: Vec<String>,
        /// Activate at once.
        #[arg(long)]
        activate: bool,
    },
    /// Activate a Pre-Active key.
    #[command(after_help = "Example:\n  kmipctl keys activate 0b6a… --dev ./kmipd-dev")]
    Activate {
        #[command(flatten)]
        conn: Conn,
        /// Unique Identifier.
        id: String,
    },
    /// Revoke a key (guarded like destroy).
    #[command(
        after_help = "Examples:\n  kmipctl keys revoke 0b6a… --reason cessation-of-operation --dev ./kmipd-dev\n  kmipctl keys revoke 0b6a… --reason key-compromise --message \"laptop stolen\" --force --confirm 0b6a… --dev ./kmipd-dev\n\nKey Compromise makes the key Compromised; other reasons make an Active key Deactivated.\nRefused (exit 3) when vCenter tagged the key (x-Product) or it was fetched within --recent-days, unless --force and a typed confirmation."
    )]
    Revoke {
        #[command(flatten)]
        conn: Conn,
        /// Unique Identifier.
        id: String,
        /// Reason: unspecified, key-compromise, ca-compromise, affiliation-changed, superseded, cessation-of-operation, privilege-withdrawn.
        #[arg(long)]
        reason: String,
        /// Revocation message.
        #[arg(long)]
        message: Option<String>,
        #[command(flatten)]
        guard: Guard,
    },
    /// Replace a key (KMIP Re-key): a new key with the old one's attributes and Replaced/Replacement links.
    #[command(
        after_help = "Examples:\n  kmipctl keys rotate 0b6a… --dev ./kmipd-dev\n  kmipctl keys rotate 0b6a… --deactivate-old +30d --dev ./kmipd-dev\n  kmipctl keys rotate 0b6a… --pre-active --dev ./kmipd-dev\n\nPrints the replacement's identifier. The replacement is Active at once unless --pre-active\n(its Activation Date is then set a century ahead: activate it with `kmipctl keys activate`).\n--deactivate-old sets the old key's Deactivation Date: it turns Deactivated then."
    )]
    Rotate {
        #[command(flatten)]
        conn: Conn,
        /// Unique Identifier of the key to replace.
        id: String,
        /// When the old key deactivates (RFC 3339, YYYY-MM-DD, now, +30d).
        #[arg(long, value_name = "DATE", allow_hyphen_values = true)]
        deactivate_old: Option<String>,
        /// Leave the replacement Pre-Active.
        #[arg(long)]
        pre_active: bool,
    },
    /// Destroy a key's material (metadata stays). Guarded.
    #[command(
        after_help = "Examples:\n  kmipctl keys destroy 0b6a… --dev ./kmipd-dev\n  kmipctl keys destroy 0b6a… --force --dev ./kmipd-dev            # asks you to type the id\n  kmipctl keys destroy 0b6a… --force --confirm 0b6a… --dev ./kmipd-dev\n\nRefused (exit 3) when vCenter tagged the key (x-Product) or it was fetched within --recent-days (default 30),\nunless --force and a typed confirmation: destroying a key vCenter uses locks its virtual machines for good.\nAn Active key must be revoked first."
    )]
    Destroy {
        #[command(flatten)]
        conn: Conn,
        /// Unique Identifier.
        id: String,
        #[command(flatten)]
        guard: Guard,
    },
}

/// The guard on destroy and revoke.
#[derive(Debug, Clone, clap::Args)]
pub struct Guard {
    /// Go ahead although the key is in use (still asks for confirmation).
    #[arg(long)]
    force: bool,
    /// The key's identifier, typed again, instead of the interactive prompt.
    #[arg(long, value_name = "ID")]
    confirm: Option<String>,
    /// A key fetched within this many days counts as in use.
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    recent_days: i64,
}

fn algorithm(s: &str) -> anyhow::Result<CryptographicAlgorithm> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "aes" => CryptographicAlgorithm::AES,
        "3des" => CryptographicAlgorithm::V_3DES,
        "hmac-sha1" => CryptographicAlgorithm::HMAC_SHA1,
        "hmac-sha256" => CryptographicAlgorithm::HMAC_SHA256,
        "hmac-sha384" => CryptographicAlgorithm::HMAC_SHA384,
        "hmac-sha512" => CryptographicAlgorithm::HMAC_SHA512,
        other => bail!("unknown algorithm {other:?}: aes, 3des, hmac-sha256, hmac-sha512"),
    })
}

fn state_of(s: &str) -> anyhow::Result<State> {
    Ok(match s.to_ascii_lowercase().replace(['_', ' '], "-").as_str() {
        "pre-active" | "preactive" => State::PRE_ACTIVE,
        "active" => State::ACTIVE,
        "deactivated" => State::DEACTIVATED,
        "compromised" => State::COMPROMISED,
        "destroyed" => State::DESTROYED,
        "destroyed-compromised" => State::DESTROYED_COMPROMISED,
        other => bail!("unknown state {other:?}: pre-active, active, deactivated, compromised, destroyed, destroyed-compromised"),
    })
}

fn object_type_of(s: &str) -> anyhow::Result<ObjectType> {
    Ok(match s.to_ascii_lowercase().replace(['_', ' '], "-").as_str() {
        "symmetric-key" | "key" => ObjectType::SYMMETRIC_KEY,
        "secret-data" | "secret" => ObjectType::SECRET_DATA,
        "certificate" => ObjectType::CERTIFICATE,
        "private-key" => ObjectType::PRIVATE_KEY,
        "public-key" => ObjectType::PUBLIC_KEY,
        "opaque" | "opaque-object" => ObjectType::OPAQUE_OBJECT,
        "split-key" => ObjectType::SPLIT_KEY,
        other => match ObjectType::from_name(other) {
            Some(t) => t,
            None => bail!("unknown object type {other:?}: symmetric-key, secret-data, certificate, private-key, public-key, opaque"),
        },
    })
}

fn reason_of(s: &str) -> anyhow::Result<RevocationReasonCode> {
    Ok(match s.to_ascii_lowercase().replace(['_', ' '], "-").as_str() {
        "unspecified" => RevocationReasonCode::UNSPECIFIED,
        "key-compromise" => RevocationReasonCode::KEY_COMPROMISE,
        "ca-compromise" => RevocationReasonCode::CA_COMPROMISE,
        "affiliation-changed" => RevocationReasonCode::AFFILIATION_CHANGED,
        "superseded" => RevocationReasonCode::SUPERSEDED,
        "cessation-of-operation" => RevocationReasonCode::CESSATION_OF_OPERATION,
        "privilege-withdrawn" => RevocationReasonCode::PRIVILEGE_WITHDRAWN,
        other => bail!("unknown reason {other:?}: unspecified, key-compromise, ca-compromise, affiliation-changed, superseded, cessation-of-operation, privilege-withdrawn"),
    })
}

fn custom_attr(a: &str) -> anyhow::Result<Attribute> {
    let (n, v) = a
        .split_once('=')
        .with_context(|| format!("--attr {a:?}: give NAME=VALUE"))?;
    let n = n.trim();
    if !kmip::messages::attributes::is_custom(n) {
        bail!("--attr {n:?}: only custom attributes (x-…, y-…) are given this way");
    }
    Ok(Attribute::new(
        n,
        Value::TextString(v.trim_matches('"').to_owned()),
    ))
}

fn name_value(n: &str) -> Value {
    struct_value(
        &kmip::messages::attributes::Name {
            name_value: n.to_owned(),
            name_type: NameType::UNINTERPRETED_TEXT_STRING,
        },
        Ctx::new(ProtocolVersion::V1_4),
    )
}

/// What kmipctl shows of an object.
#[derive(Debug, Default, Clone)]
struct Info {
    attributes: Vec<Attribute>,
    owner: Option<String>,
    group: Option<String>,
    last_fetched: Option<i64>,
}

impl Info {
    fn text(&self, name: &str) -> Option<String> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(attr_text)
    }
    fn date(&self, name: &str) -> Option<i64> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.date_time())
    }
    fn name(&self) -> Option<String> {
        self.attributes
            .iter()
            .find(|a| a.name == "Name")
            .and_then(|a| match &a.value {
                Value::Structure(c) => c
                    .iter()
                    .find(|t| t.tag == Tag::NAME_VALUE)
                    .and_then(|t| t.as_text().ok())
                    .map(str::to_owned),
                _ => None,
            })
            .or_else(|| self.text("x-Name"))
    }
    fn links(&self) -> Vec<(String, String)> {
        self.attributes
            .iter()
            .filter(|a| a.name == "Link")
            .filter_map(|a| {
                let l: Link = kmip::messages::attributes::from_value(
                    &a.value,
                    Ctx::new(ProtocolVersion::V1_4),
                )
                .ok()?;
                Some((
                    l.link_type.name().unwrap_or("Link").to_owned(),
                    l.linked_object_identifier,
                ))
            })
            .collect()
    }
}

/// Every attribute of each id (batched), plus owner, group and last fetch.
async fn infos(c: &mut Client, ids: &[String]) -> anyhow::Result<BTreeMap<String, Info>> {
    let mut out: BTreeMap<String, Info> = BTreeMap::new();
    for chunk in ids.chunks(ATTR_BATCH) {
        let items = c
            .batch(
                chunk
                    .iter()
                    .map(|id| {
                        (
                            Operation::GET_ATTRIBUTES,
                            P::GetAttributes(GetAttributesRequest {
                                unique_identifier: Some(id.clone()),
                                ..Default::default()
                            }),
                        )
                    })
                    .collect(),
            )
            .await?;
        for item in items {
            if item.result_status != ResultStatus::SUCCESS {
                continue;
            }
            if let Some(R::GetAttributes(r)) = item.payload {
                out.entry(r.unique_identifier).or_default().attributes = r.attributes_1x;
            }
        }
    }
    for chunk in ids.chunks(crate::ops::usage::MAX_IDS) {
        let fields = chunk
            .iter()
            .map(|id| Ttlv::text(tag::OBJECT, id.clone()))
            .collect();
        let r = vendor(c, op::OBJECT_INFO, fields).await?;
        for (id, v) in entries(&r) {
            let i = out.entry(id).or_default();
            for (k, f) in entries(&v) {
                match k.as_str() {
                    "owner" => i.owner = f.as_text().ok().map(str::to_owned),
                    "group" => i.group = f.as_text().ok().map(str::to_owned),
                    "last_fetched" => i.last_fetched = f.as_long().ok(),
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

fn info_json(id: &str, i: &Info) -> serde_json::Value {
    json!({
        "id": id,
        "name": i.name(),
        "component": i.text("x-Component"),
        "state": i.text("State"),
        "object_type": i.text("Object Type"),
        "created": i.date("Initial Date").map(kmip::time::format_rfc3339),
        "last_used": i.last_fetched.map(kmip::time::format_rfc3339),
        "owner": i.owner,
        "group": i.group,
    })
}

/// Runs a keys command.
pub async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            conn,
            name,
            algorithm: alg,
            bits,
            object_group,
            attr,
            activate,
        } => {
            let alg = algorithm(&alg)?;
            let mut attrs = vec![
                Attribute::new("Cryptographic Algorithm", Value::Enumeration(alg.0)),
                Attribute::new("Cryptographic Length", Value::Integer(bits)),
                Attribute::new(
                    "Cryptographic Usage Mask",
                    Value::Integer(
                        (CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT).0
                            as i32,
                    ),
                ),
            ];
            if let Some(n) = name {
                attrs.push(Attribute::new("Name", name_value(&n)));
            }
            if let Some(g) = object_group {
                attrs.push(Attribute::new("Object Group", Value::TextString(g)));
            }
            for a in &attr {
                attrs.push(custom_attr(a)?);
            }
            let mut c = conn.connect().await?;
            let r = c
                .call(
                    Operation::CREATE,
                    P::Create(CreateRequest {
                        object_type: ObjectType::SYMMETRIC_KEY,
                        template_attribute: Some(TemplateAttribute {
                            names: vec![],
                            attributes: attrs,
                        }),
                        ..Default::default()
                    }),
                )
                .await?;
            let R::Create(r) = r else {
                bail!("unexpected response to Create")
            };
            if activate {
                c.call(
                    Operation::ACTIVATE,
                    P::Activate(IdRequest {
                        unique_identifier: Some(r.unique_identifier.clone()),
                    }),
                )
                .await?;
            }
            println!("{}", r.unique_identifier);
        }
        KeysCommand::List {
            conn,
            state,
            group,
            object_type,
            attr,
            created_after,
            created_before,
            limit,
            page_size,
            ids_only,
            json,
        } => {
            let now = super::now();
            let mut filters = Vec::new();
            if let Some(s) = state {
                filters.push(Attribute::new("State", Value::Enumeration(state_of(&s)?.0)));
            }
            if let Some(t) = object_type {
                filters.push(Attribute::new(
                    "Object Type",
                    Value::Enumeration(object_type_of(&t)?.0),
                ));
            }
            for a in &attr {
                filters.push(custom_attr(a)?);
            }
            if created_after.is_some() || created_before.is_some() {
                let lo = created_after
                    .map(|d| super::parse_when(&d, now))
                    .transpose()?
                    .unwrap_or(0);
                let hi = created_before
                    .map(|d| super::parse_when(&d, now))
                    .transpose()?
                    .unwrap_or(i64::from(i32::MAX) * 4);
                // Two instances of a date attribute make a range in Locate.
                filters.push(Attribute::new("Initial Date", Value::DateTime(lo)));
                filters.push(Attribute::new("Initial Date", Value::DateTime(hi)));
            }
            let page_size = page_size.clamp(1, 100_000);
            let mut c = conn.connect().await?;
            let mut seen = HashSet::new();
            let mut rows: Vec<(String, Info)> = Vec::new();
            let mut offset = 0usize;
            let mut bar: Option<indicatif::ProgressBar> = None;
            loop {
                let want = match limit {
                    Some(l) if rows.len() >= l => break,
                    _ => page_size,
                };
                let r = c
                    .call(
                        Operation::LOCATE,
                        P::Locate(LocateRequest {
                            maximum_items: Some(want as i32),
                            offset_items: Some(offset as i32),
                            attributes_1x: filters.clone(),
                            ..Default::default()
                        }),
                    )
                    .await?;
                let R::Locate(r) = r else {
                    bail!("unexpected response to Locate")
                };
                let total = r.located_items.map(|n| n.max(0) as u64);
                let b = bar.get_or_insert_with(|| progress(total.unwrap_or(0), "listing"));
                let n = r.unique_identifiers.len();
                offset += n;
                // New objects sort first and shift the pages: skip repeats.
                let ids: Vec<String> = r
                    .unique_identifiers
                    .into_iter()
                    .filter(|id| seen.insert(id.clone()))
                    .collect();
                if ids_only && group.is_none() {
                    rows.extend(ids.into_iter().map(|id| (id, Info::default())));
                } else {
                    let mut got = infos(&mut c, &ids).await?;
                    for id in ids {
                        let i = got.remove(&id).unwrap_or_default();
                        if let Some(g) = &group {
                            if i.group.as_deref() != Some(g.as_str()) {
                                continue;
                            }
                        }
                        rows.push((id, i));
                    }
                }
                b.set_position(offset as u64);
                if n < want || total.is_some_and(|t| offset as u64 >= t) {
                    break;
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if let Some(l) = limit {
                rows.truncate(l);
            }
            if json {
                let v: Vec<serde_json::Value> = if ids_only {
                    rows.iter().map(|(id, _)| json!(id)).collect()
                } else {
                    rows.iter().map(|(id, i)| info_json(id, i)).collect()
                };
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if ids_only {
                for (id, _) in &rows {
                    println!("{id}");
                }
            } else {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|(id, i)| {
                        vec![
                            id.clone(),
                            i.name().unwrap_or_else(|| "-".into()),
                            i.text("x-Component").unwrap_or_else(|| "-".into()),
                            i.text("State").unwrap_or_else(|| "-".into()),
                            date(i.date("Initial Date")),
                            date(i.last_fetched),
                        ]
                    })
                    .collect();
                table(
                    &["ID", "NAME", "COMPONENT", "STATE", "CREATED", "LAST USED"],
                    &cells,
                );
            }
        }
        KeysCommand::Show {
            conn,
            id,
            reveal,
            json,
        } => {
            let mut c = conn.connect().await?;
            let mut got = infos(&mut c, std::slice::from_ref(&id)).await?;
            let i = got
                .remove(&id)
                .filter(|i| !i.attributes.is_empty())
                .ok_or_else(|| Exit::error(exit::FAILED, format!("object {id} not found")))?;
            let material = if reveal {
                let r = vendor(
                    &mut c,
                    op::REVEAL,
                    vec![Ttlv::text(tag::OBJECT, id.clone())],
                )
                .await?;
                let e = entries(&r);
                let m = e
                    .iter()
                    .find(|(n, _)| n == "material")
                    .and_then(|(_, v)| v.as_bytes().ok())
                    .map(hex::encode)
                    .context("Reveal answered without material")?;
                Some(zeroize::Zeroizing::new(m))
            } else {
                None
            };
            if json {
                let mut v = info_json(&id, &i);
                v["attributes"] = i
                    .attributes
                    .iter()
                    .map(|a| json!({"name": a.name, "index": a.index, "value": attr_text(a)}))
                    .collect();
                v["links"] = i
                    .links()
                    .iter()
                    .map(|(t, to)| json!({"type": t, "id": to}))
                    .collect();
                if let Some(m) = &material {
                    v["material_hex"] = json!(m.as_str());
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let mut rows: Vec<Vec<String>> = i
                    .attributes
                    .iter()
                    .map(|a| {
                        let n = match a.index {
                            Some(ix) if ix > 0 => format!("{}[{ix}]", a.name),
                            _ => a.name.clone(),
                        };
                        vec![n, attr_text(a)]
                    })
                    .collect();
                rows.push(vec!["(owner)".into(), i.owner.clone().unwrap_or_default()]);
                rows.push(vec!["(group)".into(), i.group.clone().unwrap_or_default()]);
                rows.push(vec!["(last fetched)".into(), date(i.last_fetched)]);
                if let Some(m) = &material {
                    rows.push(vec!["(material, hex)".into(), m.to_string()]);
                }
                table(&["ATTRIBUTE", "VALUE"], &rows);
                let links = i.links();
                if !links.is_empty() {
                    println!();
                    table(
                        &["LINK", "OBJECT"],
                        &links
                            .into_iter()
                            .map(|(t, to)| vec![t, to])
                            .collect::<Vec<_>>(),
                    );
                }
            }
        }
        KeysCommand::Activate { conn, id } => {
            let mut c = conn.connect().await?;
            c.call(
                Operation::ACTIVATE,
                P::Activate(IdRequest {
                    unique_identifier: Some(id.clone()),
                }),
            )
            .await?;
            println!("{id} activated");
        }
        KeysCommand::Revoke {
            conn,
            id,
            reason,
            message,
            guard,
        } => {
            let code = reason_of(&reason)?;
            let mut c = conn.connect().await?;
            check_guard(&mut c, &id, &guard, "revoke").await?;
            c.call(
                Operation::REVOKE,
                P::Revoke(RevokeRequest {
                    unique_identifier: Some(id.clone()),
                    revocation_reason: kmip::messages::attributes::RevocationReason {
                        revocation_reason_code: code,
                        revocation_message: message,
                    },
                    compromise_occurrence_date: None,
                }),
            )
            .await?;
            println!("{id} revoked");
        }
        KeysCommand::Rotate {
            conn,
            id,
            deactivate_old,
            pre_active,
        } => {
            let when = deactivate_old
                .map(|d| super::parse_when(&d, super::now()))
                .transpose()?;
            let mut c = conn.connect().await?;
            let r = c
                .call(
                    Operation::RE_KEY,
                    P::ReKey(ReKeyRequest {
                        unique_identifier: Some(id.clone()),
                        // Offset 0: the replacement's Activation Date is now.
                        // Without an Offset a KMIP Re-key copies the old
                        // key's dates (an Active key's replacement would be
                        // Active), so --pre-active puts the Activation Date
                        // a century away: Pre-Active until `keys activate`.
                        offset: Some(Interval(if pre_active { PRE_ACTIVE_OFFSET } else { 0 })),
                        ..Default::default()
                    }),
                )
                .await?;
            let R::ReKey(r) = r else {
                bail!("unexpected response to Re-key")
            };
            if let Some(t) = when {
                set_attribute(&mut c, &id, Attribute::new("Deactivation Date", Value::DateTime(t)))
                    .await
                    .with_context(|| {
                        format!(
                            "the replacement {} was made, but the old key's Deactivation Date was not set",
                            r.unique_identifier
                        )
                    })?;
            }
            println!("{}", r.unique_identifier);
        }
        KeysCommand::Destroy { conn, id, guard } => {
            let mut c = conn.connect().await?;
            check_guard(&mut c, &id, &guard, "destroy").await?;
            c.call(
                Operation::DESTROY,
                P::Destroy(IdRequest {
                    unique_identifier: Some(id.clone()),
                }),
            )
            .await?;
            println!("{id} destroyed");
        }
    }
    Ok(())
}

/// The Re-key Offset of `keys rotate --pre-active`: 100 years (seconds).
const PRE_ACTIVE_OFFSET: u32 = 3_155_760_000;

/// Adds `a`, or modifies it when the object has it already.
async fn set_attribute(c: &mut Client, id: &str, a: Attribute) -> anyhow::Result<()> {
    let r = c
        .call(
            Operation::GET_ATTRIBUTES,
            P::GetAttributes(GetAttributesRequest {
                unique_identifier: Some(id.to_owned()),
                attribute_names: vec![a.name.clone()],
                ..Default::default()
            }),
        )
        .await?;
    let has = matches!(&r, R::GetAttributes(g) if !g.attributes_1x.is_empty());
    if has {
        c.call(
            Operation::MODIFY_ATTRIBUTE,
            P::ModifyAttribute(ModifyAttributeRequest {
                unique_identifier: Some(id.to_owned()),
                attribute: Some(a),
                ..Default::default()
            }),
        )
        .await?;
    } else {
        c.call(
            Operation::ADD_ATTRIBUTE,
            P::AddAttribute(AddAttributeRequest {
                unique_identifier: Some(id.to_owned()),
                attribute: Some(a),
                ..Default::default()
            }),
        )
        .await?;
    }
    Ok(())
}

/// Why a key counts as in use, if it does.
fn in_use(i: &Info, recent_days: i64, now: i64) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(p) = i.text("x-Product") {
        let comp = i
            .text("x-Component")
            .map(|c| format!(", {c}"))
            .unwrap_or_default();
        let name = i
            .text("x-Name")
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        why.push(format!(
            "it carries vCenter's tags (x-Product={p:?}{comp}{name})"
        ));
    }
    if let Some(t) = i.last_fetched {
        if now - t < recent_days * 86_400 {
            why.push(format!(
                "it was fetched {} (within {recent_days} days)",
                kmip::time::format_rfc3339(t)
            ));
        }
    }
    why
}

/// Refuses `what` on a key in use unless `--force` and a typed confirmation.
async fn check_guard(c: &mut Client, id: &str, g: &Guard, what: &str) -> anyhow::Result<()> {
    let mut got = infos(c, &[id.to_owned()]).await?;
    let Some(i) = got.remove(id).filter(|i| !i.attributes.is_empty()) else {
        // Let the server give its own Item Not Found.
        return Ok(());
    };
    let why = in_use(&i, g.recent_days, super::now());
    if why.is_empty() {
        return Ok(());
    }
    let reasons = why.join("; ");
    if !g.force {
        return Err(Exit::error(
            exit::REFUSED,
            format!(
                "refusing to {what} {id}: {reasons}. A key vCenter uses locks its virtual machines for good once it is gone. Use --force with a typed confirmation if you are sure."
            ),
        ));
    }
    let typed = match &g.confirm {
        Some(t) => t.clone(),
        None if std::io::stdin().is_terminal() => {
            eprintln!("{id}: {reasons}.");
            eprint!("Type the key's identifier to {what} it anyway: ");
            std::io::stderr().flush().ok();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_owned()
        }
        None => {
            return Err(Exit::error(
                exit::REFUSED,
                format!("refusing to {what} {id}: {reasons}; --force needs --confirm {id} when not run from a terminal"),
            ))
        }
    };
    if typed != id {
        return Err(Exit::error(
            exit::REFUSED,
            format!("confirmation does not match {id}: nothing was done"),
        ));
    }
    Ok(())
}
