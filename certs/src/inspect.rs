//! `show` and `lint`: what a certificate says, and what vCenter, ESXi or kmipd will reject.

use std::fmt;
use std::path::Path;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;
use x509_parser::public_key::PublicKey;

use crate::error::{Error, Result};
use crate::pem::{fingerprint_hex, load_certs};
use crate::trust::role_from_subject;

/// What `kmipctl certs show` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Subject, RFC 4514 style.
    pub subject: String,
    /// Issuer, RFC 4514 style.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// Subject alternative names as `DNS:x`, `IP:x`, `email:x`, `URI:x`.
    pub subject_alt_names: Vec<String>,
    /// Extended key usages (`serverAuth`, `clientAuth`, ... or dotted OIDs); `None` when the
    /// extension is absent (any use).
    pub extended_key_usage: Option<Vec<String>>,
    /// Key usages (`digitalSignature`, ...); `None` when the extension is absent.
    pub key_usage: Option<Vec<String>>,
    /// `RSA`, `ECDSA`, `Ed25519`, `DSA` or the algorithm OID.
    pub key_type: String,
    /// Key size in bits (0 if unknown).
    pub key_bits: usize,
    /// The curve of an ECDSA key (`P-256`, `P-384`, `P-521` or an OID).
    pub curve: Option<String>,
    /// Signature algorithm (`sha256WithRSAEncryption`, `ecdsa-with-SHA256`, ... or an OID).
    pub signature_algorithm: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Whole days from "now" to the end of validity (negative once expired).
    pub days_left: i64,
    /// SHA-256 of the DER, hex.
    pub fingerprint_sha256: String,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// Subject equals issuer and the certificate's own key verifies its signature.
    pub self_signed: bool,
    /// Role from `OU=kmipd-role:<role>`, for certificates issued by kmipd.
    pub kmipd_role: Option<String>,
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: &Option<Vec<String>>| match v {
            Some(v) if v.is_empty() => "(empty)".to_owned(),
            Some(v) => v.join(", "),
            None => "(absent)".to_owned(),
        };
        writeln!(f, "Subject:             {}", self.subject)?;
        writeln!(f, "Issuer:              {}", self.issuer)?;
        writeln!(f, "Serial:              {}", self.serial)?;
        let sans = if self.subject_alt_names.is_empty() {
            "(none)".to_owned()
        } else {
            self.subject_alt_names.join(", ")
        };
        writeln!(f, "Subject alt names:   {sans}")?;
        writeln!(f, "Extended key usage:  {}", opt(&self.extended_key_usage))?;
        writeln!(f, "Key usage:           {}", opt(&self.key_usage))?;
        let curve = self
            .curve
            .as_ref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        writeln!(
            f,
            "Key:                 {} {} bits{curve}",
            self.key_type, self.key_bits
        )?;
        writeln!(f, "Signature algorithm: {}", self.signature_algorithm)?;
        writeln!(f, "Not before:          {}", self.not_before)?;
        writeln!(
            f,
            "Not after:           {} ({} days left)",
            self.not_after, self.days_left
        )?;
        writeln!(
            f,
            "CA:                  {}",
            if self.is_ca { "yes" } else { "no" }
        )?;
        writeln!(
            f,
            "Self-signed:         {}",
            if self.self_signed { "yes" } else { "no" }
        )?;
        if let Some(role) = &self.kmipd_role {
            writeln!(f, "kmipd role:          {role}")?;
        }
        write!(
            f,
            "SHA-256 fingerprint: {}",
            colon_hex(&self.fingerprint_sha256)
        )
    }
}

fn colon_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| Error::parse("certificate", e))?;
    if !rest.is_empty() {
        return Err(Error::parse(
            "certificate",
            "trailing bytes after the certificate",
        ));
    }
    Ok(cert)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Describes a DER certificate; `now` gives `days_left`.
pub fn cert_info(der: &[u8], now: OffsetDateTime) -> Result<CertInfo> {
    let cert = parse(der)?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            sans.push(match name {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => format!(
                        "IP:{}",
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())
                    ),
                    16 => format!(
                        "IP:{}",
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())
                    ),
                    _ => format!("IP:{}", hex::encode(b)),
                },
                GeneralName::RFC822Name(e) => format!("email:{e}"),
                GeneralName::URI(u) => format!("URI:{u}"),
                other => format!("{other:?}"),
            });
        }
    }
    let eku = cert
        .extended_key_usage()
        .map_err(|e| Error::parse("extended key usage", e))?
        .map(|ext| {
            let e = ext.value;
            let mut v = Vec::new();
            for (set, name) in [
                (e.any, "anyExtendedKeyUsage"),
                (e.server_auth, "serverAuth"),
                (e.client_auth, "clientAuth"),
                (e.code_signing, "codeSigning"),
                (e.email_protection, "emailProtection"),
                (e.time_stamping, "timeStamping"),
                (e.ocsp_signing, "OCSPSigning"),
            ] {
                if set {
                    v.push(name.to_owned());
                }
            }
            v.extend(e.other.iter().map(|o| o.to_id_string()));
            v
        });
    let ku = cert
        .key_usage()
        .map_err(|e| Error::parse("key usage", e))?
        .map(|ext| {
            let k = ext.value;
            [
                (k.digital_signature(), "digitalSignature"),
                (k.non_repudiation(), "nonRepudiation"),
                (k.key_encipherment(), "keyEncipherment"),
                (k.data_encipherment(), "dataEncipherment"),
                (k.key_agreement(), "keyAgreement"),
                (k.key_cert_sign(), "keyCertSign"),
                (k.crl_sign(), "cRLSign"),
                (k.encipher_only(), "encipherOnly"),
                (k.decipher_only(), "decipherOnly"),
            ]
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, n)| (*n).to_owned())
            .collect()
        });
    let (key_type, key_bits, curve) = key_description(&cert);
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    let self_signed =
        cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok();
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex::encode(cert.raw_serial()),
        subject_alt_names: sans,
        extended_key_usage: eku,
        key_usage: ku,
        key_type,
        key_bits,
        curve,
        signature_algorithm: signature_name(&cert.signature_algorithm.algorithm.to_id_string()),
        not_before: rfc3339(not_before),
        not_after: rfc3339(not_after),
        days_left: (not_after - now).whole_days(),
        fingerprint_sha256: fingerprint_hex(der),
        is_ca: cert.is_ca(),
        self_signed,
        kmipd_role: role_from_subject(&cert).map(|r| r.to_string()),
    })
}

/// Describes every certificate of a PEM file, in order.
pub fn show(file: &Path) -> Result<Vec<CertInfo>> {
    let now = OffsetDateTime::now_utc();
    load_certs(file)?
        .iter()
        .map(|c| cert_info(c, now))
        .collect()
}

fn key_description(cert: &X509Certificate<'_>) -> (String, usize, Option<String>) {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let bits = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
    match alg.as_str() {
        "1.2.840.113549.1.1.1" => {
            // x509-parser counts modulus bytes; report the real bit length.
            let bits = match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
                _ => bits,
            };
            ("RSA".into(), bits, None)
        }
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| match oid.to_id_string().as_str() {
                    "1.2.840.10045.3.1.7" => "P-256".to_owned(),
                    "1.3.132.0.34" => "P-384".to_owned(),
                    "1.3.132.0.35" => "P-521".to_owned(),
                    other => other.to_owned(),
                });
            let bits = match curve.as_deref() {
                Some("P-256") => 256,
                Some("P-384") => 384,
                Some("P-521") => 521,
                _ => bits,
            };
            ("ECDSA".into(), bits, curve)
        }
        "1.3.101.112" => ("Ed25519".into(), 256, None),
        "1.2.840.10040.4.1" => ("DSA".into(), bits, None),
        other => (other.to_owned(), bits, None),
    }
}

fn modulus_bits(modulus: &[u8]) -> usize {
    let trimmed: &[u8] = {
        let start = modulus
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(modulus.len());
        &modulus[start..]
    };
    match trimmed.first() {
        Some(&b) => (trimmed.len() - 1) * 8 + (8 - b.leading_zeros() as usize),
        None => 0,
    }
}

fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10040.4.3" => "dsa-with-SHA1",
        "1.3.101.112" => "Ed25519",
        other => other,
    }
    .to_owned()
}

fn weak_signature(name: &str) -> bool {
    matches!(
        name,
        "md2WithRSAEncryption"
            | "md5WithRSAEncryption"
            | "sha1WithRSAEncryption"
            | "ecdsa-with-SHA1"
            | "dsa-with-SHA1"
    )
}

/// What a certificate is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// A client certificate presented to kmipd (vCenter's, an admin's).
    Client,
    /// kmipd's server certificate, as vCenter checks it.
    Server,
    /// A CA certificate to trust or to sign with.
    Ca,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Works, but is known to cause trouble in some set-ups.
    Warning,
    /// Will be rejected (by vCenter, ESXi or kmipd).
    Error,
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// Stable identifier, e.g. `no-client-auth`.
    pub code: &'static str,
    /// Explanation for the administrator.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{sev}[{}]: {}", self.code, self.message)
    }
}

/// The purpose `lint` assumes when none is given: `server` when EKU lists serverAuth, else
/// `client` (lint a CA with an explicit `ca`).
pub fn guess_purpose(info: &CertInfo) -> Purpose {
    match &info.extended_key_usage {
        Some(eku) if eku.iter().any(|e| e == "serverAuth") => Purpose::Server,
        _ => Purpose::Client,
    }
}

/// How close to expiry a certificate must be for a warning.
pub const EXPIRY_WARNING: Duration = Duration::days(30);

/// Checks a DER certificate for a purpose at time `now`.
///
/// Errors: expired, not yet valid, RSA under 2048 bits, MD5/SHA-1 signature; client: EKU
/// present without clientAuth (kmipd, like most TLS stacks, rejects it; an absent EKU is
/// accepted and not reported); server: EKU present without serverAuth, keyUsage present
/// without digitalSignature; CA: not CA:TRUE, keyUsage present without keyCertSign.
/// Warnings: expiry within 30 days; server: no IP SAN (vCenter is often configured with an
/// address), no SAN at all, RSA key without keyEncipherment.
pub fn lint_der(der: &[u8], purpose: Purpose, now: OffsetDateTime) -> Result<Vec<Finding>> {
    let info = cert_info(der, now)?;
    let cert = parse(der)?;
    let mut out = Vec::new();
    let mut push = |severity, code, message: String| {
        out.push(Finding {
            severity,
            code,
            message,
        })
    };
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    if now > not_after {
        push(
            Severity::Error,
            "expired",
            format!("expired on {}", info.not_after),
        );
    } else if not_after - now < EXPIRY_WARNING {
        push(
            Severity::Warning,
            "expires-soon",
            format!(
                "expires on {} ({} days left)",
                info.not_after, info.days_left
            ),
        );
    }
    if now < not_before {
        push(
            Severity::Error,
            "not-yet-valid",
            format!("not valid before {}", info.not_before),
        );
    }
    if info.key_type == "RSA" && info.key_bits < 2048 {
        push(
            Severity::Error,
            "rsa-too-small",
            format!(
                "RSA key of {} bits: vCenter and kmipd need at least 2048",
                info.key_bits
            ),
        );
    }
    if weak_signature(&info.signature_algorithm) {
        push(
            Severity::Error,
            "weak-signature",
            format!(
                "signed with {}: SHA-1 and MD5 signatures are rejected",
                info.signature_algorithm
            ),
        );
    }
    let eku_has = |name: &str| {
        info.extended_key_usage
            .as_ref()
            .map(|v| v.iter().any(|e| e == name || e == "anyExtendedKeyUsage"))
    };
    let ku_has = |name: &str| info.key_usage.as_ref().map(|v| v.iter().any(|k| k == name));
    match purpose {
        Purpose::Client => {
            if eku_has("clientAuth") == Some(false) {
                push(
                    Severity::Error,
                    "no-client-auth",
                    "extended key usage is present but lacks clientAuth: the TLS handshake \
                     will be refused (a certificate without the extension would be accepted)"
                        .into(),
                );
            }
        }
        Purpose::Server => {
            if eku_has("serverAuth") == Some(false) {
                push(
                    Severity::Error,
                    "no-server-auth",
                    "extended key usage is present but lacks serverAuth: vCenter refuses the \
                     KMS certificate"
                        .into(),
                );
            }
            if ku_has("digitalSignature") == Some(false) {
                push(
                    Severity::Error,
                    "no-digital-signature",
                    "key usage lacks digitalSignature, which ECDHE key exchange needs".into(),
                );
            }
            if info.key_type == "RSA" && ku_has("keyEncipherment") == Some(false) {
                push(
                    Severity::Warning,
                    "no-key-encipherment",
                    "RSA key usage lacks keyEncipherment, part of vCenter's known-good profile"
                        .into(),
                );
            }
            if info.subject_alt_names.is_empty() {
                push(
                    Severity::Warning,
                    "no-san",
                    "no subject alternative name: clients that check names will fail".into(),
                );
            } else if !info.subject_alt_names.iter().any(|s| s.starts_with("IP:")) {
                push(
                    Severity::Warning,
                    "no-ip-san",
                    "no IP address in the SANs: vCenter configured with the KMS address will \
                     refuse the certificate"
                        .into(),
                );
            }
        }
        Purpose::Ca => {
            if !info.is_ca {
                push(
                    Severity::Error,
                    "not-ca",
                    "basicConstraints CA:TRUE is absent: this certificate cannot sign others \
                     (to trust it as a single certificate, pin it)"
                        .into(),
                );
            }
            if ku_has("keyCertSign") == Some(false) {
                push(
                    Severity::Error,
                    "no-key-cert-sign",
                    "key usage lacks keyCertSign: certificates it signed will not verify".into(),
                );
            }
        }
    }
    Ok(out)
}

/// The result of linting one certificate of a file.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    /// The certificate.
    pub info: CertInfo,
    /// The purpose checked.
    pub purpose: Purpose,
    /// The findings, errors first.
    pub findings: Vec<Finding>,
}

impl LintReport {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// Lints the first certificate of a PEM file (the leaf of a chain file); `purpose` `None`
/// means [`guess_purpose`].
pub fn lint(file: &Path, purpose: Option<Purpose>) -> Result<LintReport> {
    let now = OffsetDateTime::now_utc();
    let cert = crate::pem::load_cert(file)?;
    let info = cert_info(&cert, now)?;
    let purpose = purpose.unwrap_or_else(|| guess_purpose(&info));
    let mut findings = lint_der(&cert, purpose, now)?;
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(LintReport {
        info,
        purpose,
        findings,
    })
}
