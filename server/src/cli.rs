//! `kmipctl`: the administrator's CLI. Every command that talks to kmipd
//! does so over KMIP and mutual TLS with an admin identity: `--dev DIR`
//! (the certificates `kmipd --dev` made there) or `--server/--ca/--cert/--key`
//! and their `KMIP_*` environment variables.
//!
//! Exit codes: 0 success; 1 the server refused or the operation failed;
//! 2 usage, connection or local error.

use crate::client::{Client, ClientConfig};
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use kmip::messages::attributes::{Attribute, TemplateAttribute};
use kmip::messages::payloads::*;
use kmip::messages::RequestPayload as P;
use kmip::messages::ResponsePayload as R;
use kmip::tables::{
    CryptographicAlgorithm, CryptographicUsageMask, Operation, RevocationReasonCode,
};
use kmip::Value;
use std::path::PathBuf;

/// kmipctl: manage kmipd's keys and certificates.
#[derive(Debug, Parser)]
#[command(
    name = "kmipctl",
    version,
    after_help = "Examples:\n  kmipctl keys create --dev ./kmipd-dev\n  kmipctl keys list --dev ./kmipd-dev --json\n  kmipctl certs issue-client vcenter01 --role vcenter --dev ./kmipd-dev\n\nExit codes: 0 success, 1 refused or failed, 2 usage or connection error."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Certificates and trust with vCenter (works on files).
    #[command(subcommand)]
    Certs(kmipd_certs::cli::CertsCommand),
    /// Keys and other managed objects (talks to kmipd).
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// How to reach kmipd.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Use the admin certificates that `kmipd --dev` made in DIR (server 127.0.0.1:5696).
    #[arg(long, value_name = "DIR")]
    dev: Option<PathBuf>,
    /// Server address host:port.
    #[arg(long, env = "KMIP_SERVER")]
    server: Option<String>,
    /// CA certificate of the server (PEM).
    #[arg(long, env = "KMIP_CA")]
    ca: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long, env = "KMIP_CERT")]
    cert: Option<PathBuf>,
    /// Client key (PEM, PKCS#8).
    #[arg(long, env = "KMIP_KEY")]
    key: Option<PathBuf>,
}

impl Conn {
    fn config(&self) -> anyhow::Result<ClientConfig> {
        if let Some(dir) = &self.dev {
            return ClientConfig::dev(dir, self.server.as_deref().unwrap_or("127.0.0.1:5696"));
        }
        match (&self.server, &self.ca, &self.cert, &self.key) {
            (Some(s), Some(ca), Some(cert), Some(key)) => ClientConfig::from_files(s, ca, cert, key),
            _ => bail!("say how to reach kmipd: --dev DIR, or --server, --ca, --cert and --key (or KMIP_SERVER, KMIP_CA, KMIP_CERT, KMIP_KEY)"),
        }
    }

    async fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(&self.config()?).await
    }
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
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

/// Runs the CLI; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Certs(c) => kmipd_certs::cli::run_and_report(c).clamp(0, 255) as u8,
        Command::Keys(k) => match keys(k).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("kmipctl: {e:#}");
                if format!("{e:#}").contains(" failed: ") {
                    1
                } else {
                    2
                }
            }
        },
    }
}

async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
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
