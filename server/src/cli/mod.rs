//! `kmipctl`: the administrator's CLI. Every command that talks to kmipd
//! does so over KMIP and mutual TLS with an admin identity: `--dev DIR`
//! (the certificates `kmipd --dev` made there) or `--server/--ca/--cert/--key`
//! and their `KMIP_*` environment variables.
//!
//! Exit codes: 0 success; 1 the server refused or the operation failed;
//! 2 usage, connection or local error.

pub mod keys;

use crate::client::{Client, ClientConfig};
use anyhow::bail;
use clap::{Args, Parser, Subcommand};
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
    Keys(keys::KeysCommand),
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
    /// The client configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<ClientConfig> {
        if let Some(dir) = &self.dev {
            return ClientConfig::dev(dir, self.server.as_deref().unwrap_or("127.0.0.1:5696"));
        }
        match (&self.server, &self.ca, &self.cert, &self.key) {
            (Some(s), Some(ca), Some(cert), Some(key)) => ClientConfig::from_files(s, ca, cert, key),
            _ => bail!("say how to reach kmipd: --dev DIR, or --server, --ca, --cert and --key (or KMIP_SERVER, KMIP_CA, KMIP_CERT, KMIP_KEY)"),
        }
    }

    /// Connects to kmipd.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(&self.config()?).await
    }
}

/// Runs the CLI; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Certs(c) => kmipd_certs::cli::run_and_report(c).clamp(0, 255) as u8,
        Command::Keys(k) => match keys::run(k).await {
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
