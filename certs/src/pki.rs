//! The operations of `kmipctl certs` on a PKI directory: `init`, `issue-client`, `sign-csr`.
//! (`pin` and `trust-ca` are in [`crate::trust`], `show` and `lint` in [`crate::inspect`].)

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::fsutil::{ensure_dir, write_atomic, KEY_MODE, PUBLIC_MODE};
use crate::issue::{Ca, CaOptions, IssuedCert, ServerOptions};
use crate::keys::KeyType;
use crate::layout;
use crate::passphrase::CaPassphrase;
use crate::role::{ClientName, Role};
use crate::trust::{display_name, record_pin, Pin};

/// Options of [`init_ca_and_server`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Server key type (RSA-2048 by default).
    pub key_type: KeyType,
    /// CA key type, used only when a CA is created (RSA-2048 by default).
    pub ca_key_type: KeyType,
    /// DNS SANs; empty means `localhost` and this machine's host name.
    pub dns: Vec<String>,
    /// IP SANs; empty means every local address (loopback included, link-local excluded).
    pub ips: Vec<IpAddr>,
    /// Server certificate validity, days.
    pub validity_days: u32,
    /// CA validity, days.
    pub ca_validity_days: u32,
    /// Replace an existing server certificate and key.
    pub force: bool,
    /// Passphrase of the CA key: a new CA key is written encrypted with it, an existing
    /// encrypted one is opened with it.
    pub ca_passphrase: Option<CaPassphrase>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            key_type: KeyType::Rsa2048,
            ca_key_type: KeyType::Rsa2048,
            dns: Vec::new(),
            ips: Vec::new(),
            validity_days: 825,
            ca_validity_days: 3650,
            force: false,
            ca_passphrase: None,
        }
    }
}

/// What [`init_ca_and_server`] did.
#[derive(Debug, Clone)]
pub struct InitOutcome {
    /// Whether a new CA was created (false: the existing one signed the server certificate).
    pub ca_created: bool,
    /// `ca.crt`
    pub ca_cert: PathBuf,
    /// `ca.key`
    pub ca_key: PathBuf,
    /// Whether a CA key created now was written encrypted.
    pub ca_key_encrypted: bool,
    /// `server.crt`
    pub server_cert: PathBuf,
    /// `server.key`
    pub server_key: PathBuf,
    /// The server certificate's SANs, as `DNS:name` / `IP:address`.
    pub sans: Vec<String>,
    /// SHA-256 fingerprint (hex) of the server certificate.
    pub server_fingerprint: String,
}

/// Creates the CA (unless `ca.crt` and `ca.key` exist, then it is reused) and a server
/// certificate signed by it, in `dir`.
///
/// An existing `server.crt`/`server.key` is an error unless `opts.force`; with `force` both
/// are replaced atomically (a running kmipd picks them up on reload). Half a CA (`ca.crt`
/// without `ca.key` or the reverse) is an error.
pub fn init_ca_and_server(dir: &Path, opts: &InitOptions) -> Result<InitOutcome> {
    let now = OffsetDateTime::now_utc();
    ensure_dir(dir)?;
    let ca_cert = dir.join(layout::CA_CERT);
    let ca_key = dir.join(layout::CA_KEY);
    let server_cert = dir.join(layout::SERVER_CERT);
    let server_key = dir.join(layout::SERVER_KEY);
    if !opts.force {
        for p in [&server_cert, &server_key] {
            if p.exists() {
                return Err(Error::AlreadyExists { path: p.clone() });
            }
        }
    }
    let host = crate::net::host_name();
    let (ca, ca_created) = match (ca_cert.exists(), ca_key.exists()) {
        (true, true) => (
            Ca::load_with(&ca_cert, &ca_key, opts.ca_passphrase.as_ref())?,
            false,
        ),
        (false, false) => {
            let (ca, key_pem) = Ca::generate(
                &CaOptions {
                    key_type: opts.ca_key_type,
                    common_name: format!("kmipd CA {}", host.as_deref().unwrap_or("localhost")),
                    validity_days: opts.ca_validity_days,
                },
                now,
            )?;
            let key_pem = match &opts.ca_passphrase {
                Some(p) => crate::passphrase::encrypt_pkcs8_pem(&key_pem, p)?,
                None => key_pem,
            };
            write_atomic(&ca_key, key_pem.as_bytes(), KEY_MODE, false)?;
            write_atomic(&ca_cert, ca.cert_pem().as_bytes(), PUBLIC_MODE, false)?;
            (ca, true)
        }
        (has_cert, _) => {
            let (present, missing) = if has_cert {
                (layout::CA_CERT, layout::CA_KEY)
            } else {
                (layout::CA_KEY, layout::CA_CERT)
            };
            return Err(Error::Incomplete {
                dir: dir.to_owned(),
                missing: vec![missing.into()],
                present: vec![present.into()],
            });
        }
    };
    let dns = if opts.dns.is_empty() {
        let mut d = vec!["localhost".to_owned()];
        d.extend(host.clone());
        d
    } else {
        opts.dns.clone()
    };
    let ips = if opts.ips.is_empty() {
        crate::net::local_addresses()
    } else {
        opts.ips.clone()
    };
    let common_name = dns
        .iter()
        .find(|d| d.as_str() != "localhost")
        .or(dns.first())
        .cloned()
        .or_else(|| ips.first().map(|ip| ip.to_string()))
        .unwrap_or_else(|| "kmipd".into());
    let issued = ca.issue_server(
        &ServerOptions {
            key_type: opts.key_type,
            common_name,
            dns: dns.clone(),
            ips: ips.clone(),
            validity_days: opts.validity_days,
        },
        now,
    )?;
    write_pair(&server_cert, &server_key, &issued, opts.force)?;
    let sans = dns
        .iter()
        .map(|d| format!("DNS:{d}"))
        .chain(ips.iter().map(|ip| format!("IP:{ip}")))
        .collect();
    Ok(InitOutcome {
        ca_created,
        ca_key_encrypted: ca_created && opts.ca_passphrase.is_some(),
        ca_cert,
        ca_key,
        server_cert,
        server_key,
        sans,
        server_fingerprint: issued.fingerprint_hex(),
    })
}

/// Writes key then certificate (the server watches the certificate).
fn write_pair(cert: &Path, key: &Path, issued: &IssuedCert, overwrite: bool) -> Result<()> {
    if let Some(k) = &issued.key_pem {
        write_atomic(key, k.as_bytes(), KEY_MODE, overwrite)?;
    }
    write_atomic(cert, issued.cert_pem.as_bytes(), PUBLIC_MODE, overwrite)
}

fn load_ca(dir: &Path, passphrase: Option<&CaPassphrase>) -> Result<Ca> {
    let cert = dir.join(layout::CA_CERT);
    let key = dir.join(layout::CA_KEY);
    for (p, name) in [(&cert, layout::CA_CERT), (&key, layout::CA_KEY)] {
        if !p.exists() {
            return Err(Error::NoCa {
                dir: dir.to_owned(),
                missing: name,
            });
        }
    }
    Ca::load_with(&cert, &key, passphrase)
}

/// A client certificate written by [`issue_client`].
#[derive(Debug)]
pub struct ClientFiles {
    /// `<dir>/<name>.crt`
    pub cert_path: PathBuf,
    /// `<dir>/<name>.key` (PKCS#8 PEM, 0600)
    pub key_path: PathBuf,
    /// The certificate and key.
    pub issued: IssuedCert,
}

/// Issues a client certificate `CN=<name>, OU=kmipd-role:<role>` (EKU clientAuth) and a new
/// PKCS#8 key, signed by the CA of `dir`, written to `<dir>/<name>.crt` and `<dir>/<name>.key`:
/// the pair vCenter's "Upload certificate and private key" takes. Existing files are an error
/// unless `force`.
pub fn issue_client(
    dir: &Path,
    name: &ClientName,
    role: &Role,
    key_type: KeyType,
    validity_days: u32,
    force: bool,
) -> Result<ClientFiles> {
    issue_client_with(dir, name, role, key_type, validity_days, force, None)
}

/// [`issue_client`] with the CA key's passphrase, when it is encrypted.
pub fn issue_client_with(
    dir: &Path,
    name: &ClientName,
    role: &Role,
    key_type: KeyType,
    validity_days: u32,
    force: bool,
    ca_passphrase: Option<&CaPassphrase>,
) -> Result<ClientFiles> {
    let ca = load_ca(dir, ca_passphrase)?;
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    if !force {
        for p in [&cert_path, &key_path] {
            if p.exists() {
                return Err(Error::AlreadyExists { path: p.clone() });
            }
        }
    }
    let issued = ca.issue_client(
        name,
        role,
        key_type,
        validity_days,
        OffsetDateTime::now_utc(),
    )?;
    write_pair(&cert_path, &key_path, &issued, force)?;
    Ok(ClientFiles {
        cert_path,
        key_path,
        issued,
    })
}

/// A CSR signed by [`sign_csr`].
#[derive(Debug)]
pub struct SignedCsr {
    /// The certificate (no key: the requester has it).
    pub issued: IssuedCert,
    /// The pin recorded for it, which carries its role.
    pub pin: Pin,
}

/// Signs a CSR (PEM or DER) with the CA of `dir` as a client certificate for `role`: vCenter's
/// "New Certificate Signing Request" flow.
///
/// The CSR's signature must verify; its subject and public key are kept; the certificate gets
/// EKU clientAuth. Because the subject is kept, the role cannot be written into it: the
/// certificate is recorded in the pin list with its role instead (see [`crate::trust`]).
pub fn sign_csr(dir: &Path, csr: &[u8], role: &Role, validity_days: u32) -> Result<SignedCsr> {
    sign_csr_with(dir, csr, role, validity_days, None)
}

/// [`sign_csr`] with the CA key's passphrase, when it is encrypted.
pub fn sign_csr_with(
    dir: &Path,
    csr: &[u8],
    role: &Role,
    validity_days: u32,
    ca_passphrase: Option<&CaPassphrase>,
) -> Result<SignedCsr> {
    let ca = load_ca(dir, ca_passphrase)?;
    let issued = ca.sign_csr(csr, validity_days, OffsetDateTime::now_utc())?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&issued.cert_der)
        .map_err(|e| Error::parse("certificate", e))?;
    let name = display_name(&parsed);
    let pin = record_pin(dir, &issued.cert_der, role, &name)?;
    Ok(SignedCsr { issued, pin })
}
