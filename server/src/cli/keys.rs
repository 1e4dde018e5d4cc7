//! `kmipctl keys`: create, list, show, activate and revoke managed objects.

use super::Conn;
use anyhow::{bail, Context};
use clap::Subcommand;
use kmip::messages::attributes::{Attribute, TemplateAttribute};
use kmip::messages::payloads::*;
use kmip::messages::RequestPayload as P;
use kmip::messages::ResponsePayload as R;
use kmip::tables::{
    CryptographicAlgorithm, CryptographicUsageMask, Operation, RevocationReasonCode,
};
use kmip::Value;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a symmetric key.
    #[command(
        after_help = "Example:\n  kmipctl keys create --dev ./kmipd-dev --name backup-key --bits 256"
    )]
    Create {
        #[command(flatten)]
        conn: Conn,
        /// Name attribute.
        #[arg(long)]
        name: Option<String>,
        /// Algorithm: aes, 3des, hmac-sha256.
        #[arg(long, default_value = "aes")]
        algorithm: String,
        /// Length in bits.
        #[arg(long, default_value_t = 256)]
        bits: i32,
        /// Activate at once.
        #[arg(long)]
        activate: bool,
    },
    /// List objects (newest first).
    #[command(
        after_help = "Example:\n  kmipctl keys list --dev ./kmipd-dev --attr x-Component=\"Virtual Machine\" --json"
    )]
    List {
        #[command(flatten)]
        conn: Conn,
        /// Filter on a custom attribute, NAME=VALUE.
        #[arg(long)]
        attr: Vec<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<i32>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show every attribute of an object.
    Show {
        #[command(flatten)]
        conn: Conn,
        /// Unique Identifier.
        id: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Activate a Pre-Active key.
    Activate {
        #[command(flatten)]
        conn: Conn,
        /// Unique Identifier.
        id: String,
    },
    /// Revoke a key.
    Revoke {
        #[command(flatten)]
        conn: Conn,
        /// Unique Identifier.
        id: String,
        /// Reason: unspecified, key-compromise, superseded, cessation-of-operation.
        #[arg(long, default_value = "cessation-of-operation")]
        reason: String,
    },
}

fn attr_text(a: &Attribute) -> String {
    match &a.value {
        Value::TextString(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::LongInteger(i) => i.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::DateTime(d) => kmip::time::format_rfc3339(*d),
        Value::Interval(i) => format!("{i}s"),
        Value::Enumeration(e) => {
            kmip::tables::enum_for_tag(kmip::Tag::from_name(&a.name).unwrap_or(kmip::Tag(0)))
                .and_then(|t| t.name_of(*e))
                .map(str::to_owned)
                .unwrap_or_else(|| format!("0x{e:08X}"))
        }
        Value::Structure(c) => c
            .iter()
            .map(|t| match &t.value {
                Value::TextString(s) => s.clone(),
                Value::Enumeration(e) => kmip::tables::enum_for_tag(t.tag)
                    .and_then(|x| x.name_of(*e))
                    .unwrap_or("?")
                    .to_owned(),
                _ => "…".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::ByteString(b) => format!("<{} bytes>", b.len()),
        Value::BigInteger(_) | Value::DateTimeExtended(_) => "…".to_owned(),
    }
}

/// Runs a keys command.
pub async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            conn,
            name,
            algorithm,
            bits,
            activate,
        } => {
            let alg = match algorithm.to_ascii_lowercase().as_str() {
                "aes" => CryptographicAlgorithm::AES,
                "3des" => CryptographicAlgorithm::V_3DES,
                "hmac-sha256" => CryptographicAlgorithm::HMAC_SHA256,
                "hmac-sha512" => CryptographicAlgorithm::HMAC_SHA512,
                other => bail!("unknown algorithm {other:?}: aes, 3des, hmac-sha256, hmac-sha512"),
            };
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
                attrs.push(Attribute::new(
                    "Name",
                    kmip::messages::attributes::struct_value(
                        &kmip::messages::attributes::Name {
                            name_value: n,
                            name_type: kmip::tables::NameType::UNINTERPRETED_TEXT_STRING,
                        },
                        kmip::Ctx::new(kmip::ProtocolVersion::V1_4),
                    ),
                ));
            }
            let mut c = conn.connect().await?;
            let r = c
                .call(
                    Operation::CREATE,
                    P::Create(CreateRequest {
                        object_type: kmip::tables::ObjectType::SYMMETRIC_KEY,
                        template_attribute: Some(TemplateAttribute {
                            names: vec![],
                            attributes: attrs,
                        }),
                        ..Default::default()
                    }),
                )
                .await?;
            let R::Create(r) = r else {
                bail!("unexpected response")
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
            attr,
            limit,
            json,
        } => {
            let mut filters = Vec::new();
            for a in attr {
                let (n, v) = a.split_once('=').context("--attr takes NAME=VALUE")?;
                filters.push(Attribute::new(
                    n,
                    Value::TextString(v.trim_matches('"').to_owned()),
                ));
            }
            let mut c = conn.connect().await?;
            let r = c
                .call(
                    Operation::LOCATE,
                    P::Locate(LocateRequest {
                        maximum_items: limit,
                        attributes_1x: filters,
                        ..Default::default()
                    }),
                )
                .await?;
            let R::Locate(r) = r else {
                bail!("unexpected response")
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&r.unique_identifiers)?);
            } else {
                for id in &r.unique_identifiers {
                    println!("{id}");
                }
            }
        }
        KeysCommand::Show { conn, id, json } => {
            let mut c = conn.connect().await?;
            let r = c
                .call(
                    Operation::GET_ATTRIBUTES,
                    P::GetAttributes(GetAttributesRequest {
                        unique_identifier: Some(id),
                        ..Default::default()
                    }),
                )
                .await?;
            let R::GetAttributes(r) = r else {
                bail!("unexpected response")
            };
            if json {
                let m: Vec<(String, String)> = r
                    .attributes_1x
                    .iter()
                    .map(|a| (a.name.clone(), attr_text(a)))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                for a in &r.attributes_1x {
                    println!("{:<28} {}", a.name, attr_text(a));
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
        KeysCommand::Revoke { conn, id, reason } => {
            let code = match reason.as_str() {
                "unspecified" => RevocationReasonCode::UNSPECIFIED,
                "key-compromise" => RevocationReasonCode::KEY_COMPROMISE,
                "superseded" => RevocationReasonCode::SUPERSEDED,
                "cessation-of-operation" => RevocationReasonCode::CESSATION_OF_OPERATION,
                other => bail!("unknown reason {other:?}"),
            };
            let mut c = conn.connect().await?;
            c.call(
                Operation::REVOKE,
                P::Revoke(RevokeRequest {
                    unique_identifier: Some(id.clone()),
                    revocation_reason: kmip::messages::attributes::RevocationReason {
                        revocation_reason_code: code,
                        revocation_message: None,
                    },
                    compromise_occurrence_date: None,
                }),
            )
            .await?;
            println!("{id} revoked");
        }
    }
    Ok(())
}
