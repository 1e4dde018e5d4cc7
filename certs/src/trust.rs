//! What kmipd trusts for client authentication, on disk, and how roles are found.
//!
//! Three sources, all under the PKI directory (see [`crate::layout`]):
//!
//! 1. **kmipd's own CA** (`ca.crt`). Certificates from `issue-client` carry their role in the
//!    subject as `OU=kmipd-role:<role>` ([`crate::ROLE_OU_PREFIX`]).
//! 2. **The pin list** `pins.txt`: leaf certificates trusted by their SHA-256 fingerprint
//!    alone, each with a role. This is vCenter's self-signed client certificate (which may be
//!    `CA:TRUE` without EKU, so a chain verifier rejects it). `sign-csr` also records the
//!    certificate it signs here, because the CSR's subject is kept as is and so cannot carry
//!    the role. The format, one pin per line:
//!
//!    ```text
//!    # comments and blank lines are ignored
//!    sha256:<64 lowercase hex digits> role=<role> name=<free text to the end of the line>
//!    ```
//!
//!    A copy of each pinned certificate is kept as `pinned/<hex>.crt` (for expiry checks);
//!    the line alone is enough to trust the certificate.
//! 3. **Trusted foreign CAs** (vCenter's root CA, VMCA): `trusted-cas/<role>/<stem>.crt`,
//!    one PEM certificate per file, the folder name being the role given to every client
//!    certificate that CA signs. A CA is trusted for one role only.
//!
//! [`load_trust`] reads all three; [`TrustStore::role_for`] maps a client leaf to its role.
//! Chain validation itself (signatures up to a root, validity, EKU) is the server's verifier's
//! job; `role_for` only decides which role a certificate gets.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::X509Certificate;

use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, PUBLIC_MODE};
use crate::issue::ROLE_OU_PREFIX;
use crate::layout;
use crate::pem::{cert_to_pem, fingerprint_sha256, load_certs};
use crate::role::Role;

/// A pinned leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// SHA-256 of the certificate's DER.
    pub fingerprint: [u8; 32],
    /// The role it is given.
    pub role: Role,
    /// A label: the CN when pinned by kmipctl.
    pub name: String,
    /// The certificate itself, when its copy in `pinned/` exists.
    pub cert: Option<CertificateDer<'static>>,
}

impl Pin {
    /// `sha256:<hex>`
    pub fn fingerprint_str(&self) -> String {
        format!("sha256:{}", hex::encode(self.fingerprint))
    }

    fn to_line(&self) -> String {
        let name: String = self
            .name
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        format!(
            "{} role={} name={}",
            self.fingerprint_str(),
            self.role,
            name
        )
    }
}

/// A trusted foreign CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCa {
    /// The role of every client certificate it signs.
    pub role: Role,
    /// Its file.
    pub path: PathBuf,
    /// SHA-256 of its DER.
    pub fingerprint: [u8; 32],
    /// Its subject, for display.
    pub subject: String,
    /// The certificate.
    pub cert: CertificateDer<'static>,
}

/// Everything kmipd trusts for client authentication, as read by [`load_trust`].
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    /// kmipd's own CA (`ca.crt`), if there is one.
    pub own_ca: Option<CertificateDer<'static>>,
    /// Trusted foreign CAs.
    pub trusted_cas: Vec<TrustedCa>,
    /// Pinned leaves.
    pub pins: Vec<Pin>,
}

impl TrustStore {
    /// The pin with this fingerprint.
    pub fn pin(&self, fingerprint: &[u8; 32]) -> Option<&Pin> {
        self.pins.iter().find(|p| &p.fingerprint == fingerprint)
    }

    /// Roots for a chain verifier: the own CA and the trusted foreign CAs.
    pub fn ca_roots(&self) -> Vec<CertificateDer<'static>> {
        self.own_ca
            .iter()
            .cloned()
            .chain(self.trusted_cas.iter().map(|c| c.cert.clone()))
            .collect()
    }

    /// The role of a client leaf certificate, in this order: its pin; the role of the trusted
    /// foreign CA whose key signed it; `OU=kmipd-role:<role>` if kmipd's own CA signed it.
    /// `None` when none applies. Only the direct issuer is considered, and signatures are
    /// checked, but validity dates and EKU are not (that is the chain verifier's job).
    pub fn role_for(&self, leaf: &[u8]) -> Option<Role> {
        if let Some(pin) = self.pin(&fingerprint_sha256(leaf)) {
            return Some(pin.role.clone());
        }
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
        for ca in &self.trusted_cas {
            if signed_by(&cert, &ca.cert) {
                return Some(ca.role.clone());
            }
        }
        let own = self.own_ca.as_ref()?;
        if signed_by(&cert, own) {
            return role_from_subject(&cert);
        }
        None
    }
}

fn signed_by(cert: &X509Certificate<'_>, ca_der: &[u8]) -> bool {
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca_der) else {
        return false;
    };
    cert.issuer().as_raw() == ca.subject().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// The role in a certificate's `OU=kmipd-role:<role>`, if any.
pub fn role_from_subject(cert: &X509Certificate<'_>) -> Option<Role> {
    cert.subject()
        .iter_organizational_unit()
        .filter_map(|ou| ou.as_str().ok())
        .find_map(|ou| ou.strip_prefix(ROLE_OU_PREFIX))
        .and_then(|r| Role::new(r).ok())
}

/// Reads the trust configuration of a PKI directory. Missing files and folders mean "nothing
/// of that kind"; unreadable or malformed ones are errors (a server reloading should keep its
/// previous configuration then).
pub fn load_trust(dir: &Path) -> Result<TrustStore> {
    let ca_path = dir.join(layout::CA_CERT);
    let own_ca = if ca_path.exists() {
        Some(crate::pem::load_cert(&ca_path)?)
    } else {
        None
    };
    let mut pins = read_pins(dir)?;
    for pin in &mut pins {
        let copy = pinned_copy_path(dir, &pin.fingerprint);
        if copy.exists() {
            let cert = crate::pem::load_cert(&copy)?;
            if fingerprint_sha256(&cert) != pin.fingerprint {
                return Err(Error::Inconsistent {
                    path: copy,
                    detail: "fingerprint differs from its file name and pin".into(),
                });
            }
            pin.cert = Some(cert);
        }
    }
    Ok(TrustStore {
        own_ca,
        trusted_cas: read_trusted_cas(dir)?,
        pins,
    })
}

fn pins_path(dir: &Path) -> PathBuf {
    dir.join(layout::PINS)
}

fn pinned_copy_path(dir: &Path, fingerprint: &[u8; 32]) -> PathBuf {
    dir.join(layout::PINNED_DIR)
        .join(format!("{}.crt", hex::encode(fingerprint)))
}

/// Parses one pin-list line; `Ok(None)` for blanks and comments.
fn parse_pin_line(line: &str) -> std::result::Result<Option<Pin>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut rest = line;
    let mut next = || {
        let t = rest.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let (tok, r) = t.split_at(end);
        rest = r;
        tok
    };
    let fp = next()
        .strip_prefix("sha256:")
        .ok_or("expected sha256:<hex> first")?;
    let bytes = hex::decode(fp).map_err(|_| "fingerprint is not hex")?;
    let fingerprint: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "fingerprint must be 32 bytes (64 hex digits)")?;
    let role = next().strip_prefix("role=").ok_or("expected role=<role>")?;
    let role = Role::new(role).map_err(|e| e.to_string())?;
    let rest = rest.trim_start();
    let name = if rest.is_empty() {
        String::new()
    } else {
        rest.strip_prefix("name=")
            .ok_or("expected name=<text> after role")?
            .trim_end()
            .to_owned()
    };
    Ok(Some(Pin {
        fingerprint,
        role,
        name,
        cert: None,
    }))
}

fn read_pins(dir: &Path) -> Result<Vec<Pin>> {
    let path = pins_path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let mut pins: Vec<Pin> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |detail: String| Error::PinList {
            path: path.clone(),
            line: i + 1,
            detail,
        };
        if let Some(pin) = parse_pin_line(line).map_err(err)? {
            if pins.iter().any(|p| p.fingerprint == pin.fingerprint) {
                return Err(err("fingerprint listed twice".into()));
            }
            pins.push(pin);
        }
    }
    Ok(pins)
}

const PINS_HEADER: &str = "\
# kmipd pin list: client certificates trusted by their SHA-256 fingerprint.
# One per line: sha256:<hex> role=<role> name=<text>
# Written by `kmipctl certs pin` and `kmipctl certs sign-csr`; edits by hand are fine.
";

/// Adds or updates (same fingerprint: new role and name) a pin, keeping the other lines
/// and comments as they are, and stores a copy of the certificate in `pinned/`.
pub(crate) fn record_pin(
    dir: &Path,
    cert: &CertificateDer<'_>,
    role: &Role,
    name: &str,
) -> Result<Pin> {
    let pin = Pin {
        fingerprint: fingerprint_sha256(cert),
        role: role.clone(),
        name: name.to_owned(),
        cert: Some(cert.clone().into_owned()),
    };
    // Validate what is there before rewriting it.
    read_pins(dir)?;
    let path = pins_path(dir);
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PINS_HEADER.to_owned(),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let mut out = String::with_capacity(old.len() + 128);
    let mut replaced = false;
    for line in old.lines() {
        let same = matches!(parse_pin_line(line), Ok(Some(p)) if p.fingerprint == pin.fingerprint);
        if same {
            replaced = true;
            out.push_str(&pin.to_line());
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if !replaced {
        let _ = writeln!(out, "{}", pin.to_line());
    }
    write_atomic(
        &pinned_copy_path(dir, &pin.fingerprint),
        cert_to_pem(cert).as_bytes(),
        PUBLIC_MODE,
        true,
    )?;
    write_atomic(&path, out.as_bytes(), PUBLIC_MODE, true)?;
    Ok(pin)
}

/// Pins the first certificate of a PEM file (vCenter's self-signed client certificate) for a
/// role. `name` defaults to the certificate's CN (or its whole subject).
///
/// Any well-formed certificate is accepted: `CA:TRUE` and absent EKU are expected from
/// vCenter. Run [`crate::lint`] to see what else may be wrong with it.
pub fn pin(dir: &Path, cert_file: &Path, role: &Role, name: Option<&str>) -> Result<Pin> {
    let cert = crate::pem::load_cert(cert_file)?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(&cert).map_err(|e| Error::parse("certificate", e))?;
    let label = match name {
        Some(n) => n.to_owned(),
        None => display_name(&parsed),
    };
    record_pin(dir, &cert, role, &label)
}

/// The CN of a certificate, or its whole subject when it has none.
pub(crate) fn display_name(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok().map(str::to_owned))
        .unwrap_or_else(|| cert.subject().to_string())
}

/// Trusts the CA certificate(s) of a PEM file for a role: each is copied to
/// `trusted-cas/<role>/<stem>.crt`. All must be CA certificates (basicConstraints CA:TRUE);
/// otherwise nothing is written. A CA already trusted for another role is an error.
pub fn trust_ca(dir: &Path, file: &Path, role: &Role) -> Result<Vec<TrustedCa>> {
    let certs = load_certs(file)?;
    let existing = read_trusted_cas(dir)?;
    let mut planned = Vec::new();
    for cert in certs {
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| Error::parse("certificate", e))?;
        if !parsed.is_ca() {
            return Err(Error::NotCa {
                path: file.to_owned(),
            });
        }
        let fingerprint = fingerprint_sha256(&cert);
        if let Some(other) = existing
            .iter()
            .find(|c| c.fingerprint == fingerprint && &c.role != role)
        {
            return Err(Error::Inconsistent {
                path: other.path.clone(),
                detail: format!(
                    "this CA is already trusted for role {}; remove that file first",
                    other.role
                ),
            });
        }
        let stem: String = display_name(&parsed)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let path = dir
            .join(layout::TRUSTED_CAS_DIR)
            .join(role.as_str())
            .join(format!("{stem}-{}.crt", &hex::encode(fingerprint)[..16]));
        planned.push(TrustedCa {
            role: role.clone(),
            path,
            fingerprint,
            subject: parsed.subject().to_string(),
            cert,
        });
    }
    for ca in &planned {
        write_atomic(
            &ca.path,
            cert_to_pem(&ca.cert).as_bytes(),
            PUBLIC_MODE,
            true,
        )?;
    }
    Ok(planned)
}

fn read_trusted_cas(dir: &Path) -> Result<Vec<TrustedCa>> {
    let root = dir.join(layout::TRUSTED_CAS_DIR);
    let roles = match std::fs::read_dir(&root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&root, e)),
    };
    let mut out = Vec::new();
    let mut role_dirs: Vec<PathBuf> = Vec::new();
    for entry in roles {
        let entry = entry.map_err(|e| Error::io(&root, e))?;
        if entry
            .file_type()
            .map_err(|e| Error::io(entry.path(), e))?
            .is_dir()
        {
            role_dirs.push(entry.path());
        }
    }
    role_dirs.sort();
    for role_dir in role_dirs {
        let role_name = role_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let role = Role::new(&role_name).map_err(|_| Error::Inconsistent {
            path: role_dir.clone(),
            detail: "folder name is not a valid role".into(),
        })?;
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(&role_dir).map_err(|e| Error::io(&role_dir, e))? {
            let path = entry.map_err(|e| Error::io(&role_dir, e))?.path();
            let ext = path.extension().and_then(|e| e.to_str());
            if matches!(ext, Some("crt" | "pem")) {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            for cert in load_certs(&path)? {
                let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
                    .map_err(|e| Error::parse("certificate", e))?;
                out.push(TrustedCa {
                    role: role.clone(),
                    path: path.clone(),
                    fingerprint: fingerprint_sha256(&cert),
                    subject: parsed.subject().to_string(),
                    cert,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_lines() {
        let fp = "ab".repeat(32);
        let p = parse_pin_line(&format!("sha256:{fp} role=vcenter name=vc 01.example"))
            .unwrap()
            .unwrap();
        assert_eq!(p.role.as_str(), "vcenter");
        assert_eq!(p.name, "vc 01.example");
        assert_eq!(parse_pin_line(&p.to_line()).unwrap().unwrap(), p);
        assert!(parse_pin_line("   # x").unwrap().is_none());
        assert!(parse_pin_line("").unwrap().is_none());
        assert!(parse_pin_line(&format!("sha256:{fp}")).is_err());
        assert!(parse_pin_line("sha256:abcd role=x").is_err());
        assert!(parse_pin_line(&format!("sha1:{fp} role=x")).is_err());
        assert!(parse_pin_line(&format!("sha256:{fp} role=bad/role")).is_err());
        let no_name = parse_pin_line(&format!("sha256:{fp} role=r"))
            .unwrap()
            .unwrap();
        assert_eq!(no_name.name, "");
    }
}
