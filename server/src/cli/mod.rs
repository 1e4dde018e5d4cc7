//! `kmipctl`: the administrator's CLI. Every command that talks to kmipd
//! does so over KMIP and mutual TLS with an admin identity: `--dev DIR`
//! (the certificates `kmipd --dev` made there) or `--server/--ca/--cert/--key`
//! and their `KMIP_*` environment variables. What standard KMIP lacks
//! (status, backup, reveal, last-fetched times) goes through kmipd's
//! vendor-defined operations ([`crate::ops::admin`]), audited like the rest.
//!
//! Exit codes ([`exit`]): 0 success; 1 the server refused or the operation
//! failed; 2 usage, connection or local error; 3 a guard refused (destroy
//! or revoke of a key in use); 4 verification found damage (backup, audit).

pub mod audit;
pub mod backup;
pub mod conformance;
pub mod jobs;
pub mod keys;
pub mod master;
pub mod output;
pub mod status;

use crate::client::{Client, ClientConfig};
use anyhow::{bail, Context};
use clap::{Args, CommandFactory, Parser, Subcommand};
use kmip::messages::RequestPayload;
use kmip::messages::ResponsePayload;
use kmip::tables::{Operation, Tag};
use kmip::Ttlv;
use std::path::PathBuf;

/// Exit codes.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The server refused or the operation failed.
    pub const FAILED: u8 = 1;
    /// Usage, connection or local error.
    pub const USAGE: u8 = 2;
    /// A guard refused (the key is in use by vCenter or was fetched recently).
    pub const REFUSED: u8 = 3;
    /// Verification found damage (backup checksum, audit chain).
    pub const INVALID: u8 = 4;
}

const EXIT_CODES: &str = "Exit codes: 0 success; 1 the server refused or the operation failed; 2 usage, connection or local error; 3 a guard refused; 4 verification found damage.";

/// An error that carries its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// Exit code (see [`exit`]).
    pub code: u8,
    /// What to tell the user.
    pub message: String,
}

impl Exit {
    /// An error with `code`.
    pub fn error(code: u8, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code,
            message: message.into(),
        })
    }
}

/// kmipctl: manage kmipd's keys, backups, audit trail and certificates.
#[derive(Debug, Parser)]
#[command(
    name = "kmipctl",
    version,
    after_help = "Examples:\n  kmipctl status --dev ./kmipd-dev\n  kmipctl keys create --dev ./kmipd-dev --name backup-key --activate\n  kmipctl keys list --dev ./kmipd-dev --attr x-Component=\"Virtual Machine\" --json\n  kmipctl backup kmipd.backup --dev ./kmipd-dev\n  kmipctl audit verify kmipd-dev/audit.log*\n  kmipctl certs issue-client vcenter01 --role vcenter --dev ./kmipd-dev\n  kmipctl completions bash > /etc/bash_completion.d/kmipctl\n\nConnection: --dev DIR, or --server/--ca/--cert/--key (KMIP_SERVER, KMIP_CA, KMIP_CERT, KMIP_KEY).\nExit codes: 0 success; 1 the server refused or the operation failed; 2 usage, connection or local error; 3 a guard refused; 4 verification found damage."
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
    /// Take a consistent online backup, or verify one (`backup verify FILE`).
    Backup(backup::BackupArgs),
    /// Verify and read the hash-chained audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Server status: version, uptime, objects, HSM, certificates, jobs.
    Status(status::StatusArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  kmipctl completions bash > /etc/bash_completion.d/kmipctl\n  kmipctl completions zsh > \"${fpath[1]}/_kmipctl\"\n  kmipctl completions fish > ~/.config/fish/completions/kmipctl.fish"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Master key: rotate (re-wrap every key online), list versions, retire an old one.
    #[command(subcommand)]
    Master(master::MasterCommand),
    /// Background jobs: status, watch, pause, resume.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Replay OASIS KMIP XML test cases against a KMIP server.
    #[command(subcommand)]
    Conformance(conformance::ConformanceCommand),
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

    /// The `--dev` directory, if given.
    pub fn dev_dir(&self) -> Option<&std::path::Path> {
        self.dev.as_deref()
    }
}

/// Runs one of kmipd's vendor operations with `fields` as the request
/// payload; returns the response payload.
pub async fn vendor(c: &mut Client, op: Operation, fields: Vec<Ttlv>) -> anyhow::Result<Ttlv> {
    let r = c
        .call(
            op,
            RequestPayload::Other(Ttlv::structure(Tag::REQUEST_PAYLOAD, fields)),
        )
        .await?;
    match r {
        ResponsePayload::Other(t) => Ok(t),
        // Any payload re-encodes to its TTLV.
        other => Ok(other.encode(Tag::RESPONSE_PAYLOAD, kmip::Ctx::new(c.version))),
    }
}

/// The exit code for an error, and the message with a hint when one helps.
fn report(e: &anyhow::Error) -> (u8, String) {
    let text = format!("{e:#}");
    if let Some(x) = e.downcast_ref::<Exit>() {
        return (x.code, text);
    }
    if text.contains("server closed the connection") || text.contains("connection reset") {
        return (
            exit::USAGE,
            format!("{text}\nhint: kmipd closed the connection; it may have refused this client's certificate (is it issued by a CA kmipd trusts, with a role?)"),
        );
    }
    if text.contains(" failed: ") {
        let hint = if text.contains("Permission Denied") || text.contains("may not run") {
            "\nhint: this identity's role lacks the permission; kmipctl needs an admin certificate"
        } else {
            ""
        };
        return (exit::FAILED, format!("{text}{hint}"));
    }
    (exit::USAGE, text)
}

fn finish(r: anyhow::Result<()>) -> u8 {
    match r {
        Ok(()) => exit::OK,
        Err(e) => {
            let (code, text) = report(&e);
            eprintln!("kmipctl: {text}");
            code
        }
    }
}

/// Runs the CLI; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Certs(c) => kmipd_certs::cli::run_and_report(c).clamp(0, 255) as u8,
        Command::Keys(k) => finish(keys::run(k).await),
        Command::Backup(b) => finish(backup::run(b).await),
        Command::Audit(a) => finish(audit::run(a).await),
        Command::Status(s) => finish(status::run(s).await),
        Command::Master(m) => finish(master::run(m).await),
        Command::Jobs(j) => finish(jobs::run(j).await),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "kmipctl", &mut std::io::stdout());
            exit::OK
        }
        Command::Conformance(c) => conformance::run(c).await.unwrap_or_else(|e| {
            eprintln!("kmipctl: {e:#}");
            exit::USAGE
        }),
    }
}

/// Parses a date: RFC 3339 (`2024-05-01T00:00:00Z`), a day (`2024-05-01`,
/// midnight UTC), `now`, or a relative `+30d` / `-12h` / `90m` from now.
pub fn parse_when(s: &str, now: i64) -> anyhow::Result<i64> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(t) = kmip::time::parse_rfc3339(s) {
        return Ok(t);
    }
    if let Some(t) = kmip::time::parse_rfc3339(&format!("{s}T00:00:00Z")) {
        return Ok(t);
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => (1, s),
    };
    let unit = rest.chars().last().context("empty date")?;
    let n: i64 = rest[..rest.len() - unit.len_utf8()]
        .parse()
        .with_context(|| format!("{s:?} is not a date (RFC 3339, YYYY-MM-DD, now, +30d, -12h)"))?;
    let secs = match unit {
        'd' => 86_400,
        'h' => 3600,
        'm' => 60,
        's' => 1,
        _ => bail!("{s:?} is not a date (RFC 3339, YYYY-MM-DD, now, +30d, -12h)"),
    };
    Ok(now + sign * n * secs)
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Text that explains the exit codes, for `after_help`.
pub fn exit_codes_help() -> &'static str {
    EXIT_CODES
}
