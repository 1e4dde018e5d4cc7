//! `kmipctl certs ...`: clap definitions and the runner.
//!
//! The server crate's `kmipctl` embeds [`CertsCommand`] as a subcommand and calls [`run`]:
//!
//! ```ignore
//! #[derive(clap::Subcommand)]
//! enum Top {
//!     /// Certificates and trust with vCenter
//!     #[command(subcommand)]
//!     Certs(kmipd_certs::cli::CertsCommand),
//! }
//! // ...
//! Top::Certs(cmd) => std::process::exit(kmipd_certs::cli::run_and_report(cmd)),
//! ```
//!
//! Exit codes: 0 success; 1 `lint` found errors; 2 usage error (clap) or failure (I/O,
//! invalid input, ...). [`run`] returns `Ok(0)`/`Ok(1)` and `Err` on failure, which the caller
//! reports and turns into 2; [`run_and_report`] does exactly that.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::inspect::Purpose;
use crate::keys::KeyType;
use crate::role::{ClientName, Role};

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: `lint` found at least one error.
pub const EXIT_LINT_ERRORS: i32 = 1;
/// Exit code: usage error or failure.
pub const EXIT_FAILURE: i32 = 2;

/// The PKI directory a command works on.
#[derive(Debug, Clone, Args)]
pub struct PkiDir {
    /// PKI directory (ca.crt, server.crt, pins.txt, trusted-cas/ ...)
    /// [default: ./kmipd-dev/certs]
    #[arg(long, value_name = "DIR", conflicts_with = "dev")]
    pub dir: Option<PathBuf>,
    /// A kmipd data directory; works on DATA_DIR/certs, the PKI of `kmipd --dev DATA_DIR`
    #[arg(long, value_name = "DATA_DIR")]
    pub dev: Option<PathBuf>,
}

impl PkiDir {
    /// The directory to work on.
    pub fn resolve(&self) -> PathBuf {
        match (&self.dir, &self.dev) {
            (Some(dir), _) => dir.clone(),
            (None, Some(data)) => data.join("certs"),
            (None, None) => PathBuf::from("./kmipd-dev/certs"),
        }
    }
}

/// Where the CA key's passphrase comes from (never a command-line literal).
#[derive(Debug, Clone, Default, Args)]
pub struct CaKeyArgs {
    /// File whose first line is the CA key's passphrase (ca.key is then an encrypted
    /// PKCS#8 file); without it, the KMIPD_CA_PASSPHRASE environment variable is used
    /// if set
    #[arg(long, value_name = "FILE")]
    pub ca_passphrase_file: Option<PathBuf>,
}

impl CaKeyArgs {
    /// The passphrase from the file, else from `KMIPD_CA_PASSPHRASE`, else none.
    pub fn passphrase(&self) -> anyhow::Result<Option<crate::CaPassphrase>> {
        Ok(crate::CaPassphrase::from_file_or_env(
            self.ca_passphrase_file.as_deref(),
        )?)
    }
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::new(s).map_err(|e| e.to_string())
}

fn parse_client_name(s: &str) -> Result<ClientName, String> {
    ClientName::new(s).map_err(|e| e.to_string())
}

fn parse_dns(s: &str) -> Result<String, String> {
    crate::net::check_dns_name(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// `kmipctl certs` subcommands.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum CertsCommand {
    /// Create the CA (or reuse the existing one) and the KMS server certificate
    #[command(after_help = "\
Without --dns, the DNS names are localhost and this machine's host name; without --ip, the
IP addresses are all local addresses. vCenter is often configured with the KMS address, so
include the address vCenter will use.

Examples:
  kmipctl certs init --dev /var/lib/kmipd
  kmipctl certs init --dir /etc/kmipd/certs --dns kms.example.com --ip 192.0.2.10
  kmipctl certs init --dir /etc/kmipd/certs --dns kms.example.com --ip 192.0.2.10 --force
  kmipctl certs init --key-type ecdsa-p256 --ca-key-type ecdsa-p384 --days 365
  kmipctl certs init --dir /etc/kmipd/certs --ca-passphrase-file /media/usb/ca.pass

With --ca-passphrase-file FILE (or KMIPD_CA_PASSPHRASE in the environment) a new CA key is
written as an encrypted PKCS#8 file (PBES2: scrypt, AES-256-CBC; `openssl pkey -passin`
reads it), and an existing encrypted CA key is opened with it. Every command that signs
(init, issue-client, sign-csr) then needs the same passphrase; kmipd itself never reads
ca.key, so it can live offline between uses.

Then in the vSphere Client (Key Providers > the provider > Make vCenter Trust KMS), upload
ca.crt, or let vCenter fetch and trust server.crt.")]
    Init {
        /// The PKI directory
        #[command(flatten)]
        dir: PkiDir,
        /// DNS name for the server certificate (repeat or comma-separate)
        #[arg(long, value_name = "NAME", value_delimiter = ',', value_parser = parse_dns)]
        dns: Vec<String>,
        /// IP address for the server certificate (repeat or comma-separate)
        #[arg(long, value_name = "ADDR", value_delimiter = ',')]
        ip: Vec<IpAddr>,
        /// Server key type
        #[arg(long, value_enum, default_value_t = KeyType::Rsa2048)]
        key_type: KeyType,
        /// CA key type (only when a new CA is created)
        #[arg(long, value_enum, default_value_t = KeyType::Rsa2048)]
        ca_key_type: KeyType,
        /// Server certificate validity in days
        #[arg(long, value_name = "DAYS", default_value_t = 825)]
        days: u32,
        /// CA validity in days (only when a new CA is created)
        #[arg(long, value_name = "DAYS", default_value_t = 3650)]
        ca_days: u32,
        /// Replace an existing server certificate and key
        #[arg(long)]
        force: bool,
        /// The CA key's passphrase
        #[command(flatten)]
        ca_key: CaKeyArgs,
    },
    /// Issue a client certificate and its PKCS#8 key (vCenter: "Upload certificate and private key")
    #[command(after_help = "\
Writes DIR/NAME.crt and DIR/NAME.key (PKCS#8 PEM, mode 0600). The certificate has
CN=NAME, OU=kmipd-role:ROLE and EKU clientAuth, signed by the CA of DIR.

Examples:
  kmipctl certs issue-client vcenter --role vcenter --dev /var/lib/kmipd
  kmipctl certs issue-client alice --role admin --dir /etc/kmipd/certs --key-type ecdsa-p256
  kmipctl certs issue-client vc02 --role vcenter --ca-passphrase-file /media/usb/ca.pass

Then in the vSphere Client (Make KMS trust vCenter > KMS certificate and private key), upload
NAME.crt and NAME.key.")]
    IssueClient {
        /// Client name: the certificate's CN and the file names
        #[arg(value_parser = parse_client_name)]
        name: ClientName,
        /// Role given to the client
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The PKI directory
        #[command(flatten)]
        dir: PkiDir,
        /// Key type
        #[arg(long, value_enum, default_value_t = KeyType::Rsa2048)]
        key_type: KeyType,
        /// Validity in days
        #[arg(long, value_name = "DAYS", default_value_t = 825)]
        days: u32,
        /// Replace existing files
        #[arg(long)]
        force: bool,
        /// The CA key's passphrase (when ca.key is encrypted)
        #[command(flatten)]
        ca_key: CaKeyArgs,
    },
    /// Sign a certificate signing request with the CA (vCenter: "New Certificate Signing Request")
    #[command(after_help = "\
Verifies the CSR's signature, keeps its subject and public key, adds EKU clientAuth and signs
it with the CA of DIR. The certificate is also recorded in DIR/pins.txt with its role. FILE
may be - for standard input.

Examples:
  kmipctl certs sign-csr vcenter.csr --role vcenter --dev /var/lib/kmipd --out vcenter-signed.crt
  pbpaste | kmipctl certs sign-csr - --role vcenter > vcenter-signed.crt
  kmipctl certs sign-csr vc.csr --role vcenter --ca-passphrase-file /media/usb/ca.pass -o vc.crt

Then in the vSphere Client (Make KMS trust vCenter > New Certificate Signing Request), upload
the signed certificate.")]
    SignCsr {
        /// The CSR (PEM or DER), - for standard input
        file: PathBuf,
        /// Role given to the certificate
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The PKI directory
        #[command(flatten)]
        dir: PkiDir,
        /// Validity in days
        #[arg(long, value_name = "DAYS", default_value_t = 825)]
        days: u32,
        /// Write the certificate here instead of standard output
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The CA key's passphrase (when ca.key is encrypted)
        #[command(flatten)]
        ca_key: CaKeyArgs,
    },
    /// Trust one certificate by its SHA-256 fingerprint (vCenter's self-signed certificate)
    #[command(after_help = "\
Pins the first certificate of FILE: it is accepted as a client certificate by its fingerprint
alone, even with CA:TRUE and without EKU, as vCenter's self-signed certificate is. Pinning the
same certificate again updates its role and name.

Examples:
  kmipctl certs pin vcenter-selfsigned.pem --role vcenter --dev /var/lib/kmipd
  kmipctl certs pin vc01.pem --role vcenter --name vc01.example.com --dir /etc/kmipd/certs")]
    Pin {
        /// PEM certificate to pin
        file: PathBuf,
        /// Role given to the certificate
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Label in the pin list [default: the certificate's CN]
        #[arg(long)]
        name: Option<String>,
        /// The PKI directory
        #[command(flatten)]
        dir: PkiDir,
    },
    /// Trust a CA (vCenter's root CA): every client certificate it signs gets ROLE
    #[command(after_help = "\
Copies each CA certificate of FILE to DIR/trusted-cas/ROLE/. Certificates without
basicConstraints CA:TRUE are refused (pin them instead).

Examples:
  kmipctl certs trust-ca vmca-root.pem --role vcenter --dev /var/lib/kmipd")]
    TrustCa {
        /// PEM file with one or more CA certificates
        file: PathBuf,
        /// Role given to the certificates this CA signs
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The PKI directory
        #[command(flatten)]
        dir: PkiDir,
    },
    /// Print subject, SANs, EKU, keyUsage, key, validity and fingerprint of each certificate
    #[command(after_help = "\
Examples:
  kmipctl certs show /var/lib/kmipd/certs/server.crt
  kmipctl certs show vcenter.pem --json")]
    Show {
        /// PEM file with one or more certificates
        file: PathBuf,
        /// Print JSON (an array, one object per certificate)
        #[arg(long)]
        json: bool,
    },
    /// Check a certificate for what vCenter, ESXi or kmipd will reject
    #[command(after_help = "\
Checks the first certificate of FILE. Errors: expired, not yet valid, RSA under 2048 bits,
SHA-1/MD5 signature, EKU without clientAuth (client) or serverAuth (server), server keyUsage
without digitalSignature, CA without CA:TRUE or keyCertSign. Warnings: expiry within 30 days,
server certificate without an IP SAN, without SANs, or RSA without keyEncipherment.
Exit code: 0 no errors (warnings allowed), 1 errors found, 2 the file could not be read.

Examples:
  kmipctl certs lint vcenter.pem --purpose client
  kmipctl certs lint /var/lib/kmipd/certs/server.crt --purpose server --json")]
    Lint {
        /// PEM certificate to check
        file: PathBuf,
        /// What the certificate is for [default: server if its EKU lists serverAuth, else client]
        #[arg(long, value_enum)]
        purpose: Option<Purpose>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Runs a command, printing to standard output. `Ok` carries the exit code (0, or 1 when
/// `lint` found errors); `Err` is a failure the caller should print and exit 2 for.
pub fn run(cmd: CertsCommand) -> anyhow::Result<i32> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_to(cmd, &mut out)
}

/// [`run`], then prints an error as `error: ...` on standard error; returns the exit code.
pub fn run_and_report(cmd: CertsCommand) -> i32 {
    match run(cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_FAILURE
        }
    }
}

fn read_input(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))
    }
}

/// [`run`] writing to `out` (for tests).
pub fn run_to(cmd: CertsCommand, out: &mut dyn Write) -> anyhow::Result<i32> {
    match cmd {
        CertsCommand::Init {
            dir,
            dns,
            ip,
            key_type,
            ca_key_type,
            days,
            ca_days,
            force,
            ca_key,
        } => {
            let dir = dir.resolve();
            let ca_passphrase = ca_key.passphrase()?;
            let o = crate::pki::init_ca_and_server(
                &dir,
                &crate::pki::InitOptions {
                    key_type,
                    ca_key_type,
                    dns,
                    ips: ip,
                    validity_days: days,
                    ca_validity_days: ca_days,
                    force,
                    ca_passphrase,
                },
            )?;
            if o.ca_created {
                writeln!(out, "Created CA          {}", o.ca_cert.display())?;
                writeln!(out, "CA key (keep safe)  {}", o.ca_key.display())?;
                if o.ca_key_encrypted {
                    writeln!(
                        out,
                        "CA key encryption   PKCS#8 PBES2 (scrypt, AES-256-CBC)"
                    )?;
                }
            } else {
                writeln!(out, "Using existing CA   {}", o.ca_cert.display())?;
            }
            writeln!(out, "Server certificate  {}", o.server_cert.display())?;
            writeln!(out, "Server key          {}", o.server_key.display())?;
            writeln!(out, "SANs                {}", o.sans.join(", "))?;
            writeln!(out, "SHA-256             {}", o.server_fingerprint)?;
            Ok(EXIT_OK)
        }
        CertsCommand::IssueClient {
            name,
            role,
            dir,
            key_type,
            days,
            force,
            ca_key,
        } => {
            let pass = ca_key.passphrase()?;
            let f = crate::pki::issue_client_with(
                &dir.resolve(),
                &name,
                &role,
                key_type,
                days,
                force,
                pass.as_ref(),
            )?;
            writeln!(out, "Certificate  {}", f.cert_path.display())?;
            writeln!(out, "Private key  {}", f.key_path.display())?;
            writeln!(out, "Role         {role}")?;
            writeln!(out, "SHA-256      {}", f.issued.fingerprint_hex())?;
            Ok(EXIT_OK)
        }
        CertsCommand::SignCsr {
            file,
            role,
            dir,
            days,
            out: out_file,
            ca_key,
        } => {
            let pass = ca_key.passphrase()?;
            let csr = read_input(&file)?;
            let signed =
                crate::pki::sign_csr_with(&dir.resolve(), &csr, &role, days, pass.as_ref())?;
            match out_file {
                Some(path) => {
                    crate::fsutil::write_atomic(
                        &path,
                        signed.issued.cert_pem.as_bytes(),
                        crate::fsutil::PUBLIC_MODE,
                        true,
                    )?;
                    writeln!(out, "Certificate  {}", path.display())?;
                    writeln!(out, "Subject      {}", signed.pin.name)?;
                    writeln!(out, "Role         {role} (recorded in pins.txt)")?;
                    writeln!(out, "SHA-256      {}", signed.issued.fingerprint_hex())?;
                }
                None => {
                    out.write_all(signed.issued.cert_pem.as_bytes())?;
                    eprintln!(
                        "signed {} for role {role}, {}",
                        signed.pin.name,
                        signed.pin.fingerprint_str()
                    );
                }
            }
            Ok(EXIT_OK)
        }
        CertsCommand::Pin {
            file,
            role,
            name,
            dir,
        } => {
            let dir = dir.resolve();
            let pin = crate::trust::pin(&dir, &file, &role, name.as_deref())?;
            writeln!(
                out,
                "Pinned {} role={} name={}",
                pin.fingerprint_str(),
                pin.role,
                pin.name
            )?;
            writeln!(out, "in     {}", dir.join(crate::layout::PINS).display())?;
            Ok(EXIT_OK)
        }
        CertsCommand::TrustCa { file, role, dir } => {
            let cas = crate::trust::trust_ca(&dir.resolve(), &file, &role)?;
            for ca in cas {
                writeln!(out, "Trusted CA {} for role {}", ca.subject, ca.role)?;
                writeln!(out, "  file     {}", ca.path.display())?;
                writeln!(out, "  SHA-256  {}", hex::encode(ca.fingerprint))?;
            }
            Ok(EXIT_OK)
        }
        CertsCommand::Show { file, json } => {
            let infos = crate::inspect::show(&file)?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &infos)?;
                writeln!(out)?;
            } else {
                for (i, info) in infos.iter().enumerate() {
                    if i > 0 {
                        writeln!(out)?;
                    }
                    writeln!(out, "{info}")?;
                }
            }
            Ok(EXIT_OK)
        }
        CertsCommand::Lint {
            file,
            purpose,
            json,
        } => {
            let report = crate::inspect::lint(&file, purpose)?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &report)?;
                writeln!(out)?;
            } else {
                let purpose = match report.purpose {
                    Purpose::Client => "client",
                    Purpose::Server => "server",
                    Purpose::Ca => "ca",
                };
                writeln!(
                    out,
                    "{} ({purpose}): {}",
                    file.display(),
                    report.info.subject
                )?;
                if report.findings.is_empty() {
                    writeln!(out, "no findings")?;
                }
                for f in &report.findings {
                    writeln!(out, "{f}")?;
                }
            }
            Ok(if report.has_errors() {
                EXIT_LINT_ERRORS
            } else {
                EXIT_OK
            })
        }
    }
}
