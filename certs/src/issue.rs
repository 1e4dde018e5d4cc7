//! Certificate profiles and the CA that signs them.
//!
//! Profiles (what vCenter is known to accept):
//! - CA: `CA:TRUE, pathlen:0` (critical), keyUsage `keyCertSign, cRLSign` (critical).
//! - Server: SANs as given, EKU `serverAuth, clientAuth`, keyUsage `digitalSignature` plus
//!   `keyEncipherment` for RSA keys (RFC 5480 forbids keyEncipherment on EC keys, and TLS
//!   with ECDHE never uses it).
//! - Client: `CN=<name>, OU=kmipd-role:<role>`, EKU `clientAuth`, keyUsage `digitalSignature`.
//! - Signed CSR: the request's subject and public key unchanged (requested extensions are
//!   ignored: the CA decides), EKU `clientAuth`, keyUsage `digitalSignature`.
//!
//! All issued certificates get a random 127-bit serial number, subject and authority key
//! identifiers, and a `notBefore` five minutes in the past to absorb clock skew.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{KeyType, PrivateKey};
use crate::pem::{cert_to_pem, fingerprint_hex};
use crate::role::{ClientName, Role};

/// Prefix of the OU attribute that records a client certificate's role: `OU=kmipd-role:vcenter`.
pub const ROLE_OU_PREFIX: &str = "kmipd-role:";

/// Skew allowance: issued certificates are valid from this long before "now".
const BACKDATE: Duration = Duration::minutes(5);

/// A certificate just issued, with its private key when kmipd generated the key.
///
/// `Debug` never prints the key.
pub struct IssuedCert {
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 PEM private key, when kmipd generated it (not for a signed CSR).
    pub key_pem: Option<Zeroizing<String>>,
}

impl IssuedCert {
    /// Lowercase hex SHA-256 fingerprint of the certificate.
    pub fn fingerprint_hex(&self) -> String {
        fingerprint_hex(&self.cert_der)
    }
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("fingerprint", &self.fingerprint_hex())
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A CA able to sign: its certificate and its private key.
///
/// `Debug` never prints the key.
pub struct Ca {
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &fingerprint_hex(&self.cert_der))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Parameters of a new CA.
#[derive(Debug, Clone)]
pub struct CaOptions {
    /// The CA's key type.
    pub key_type: KeyType,
    /// The CA's CN.
    pub common_name: String,
    /// Validity in days.
    pub validity_days: u32,
}

/// Parameters of a server certificate.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The server key's type.
    pub key_type: KeyType,
    /// The CN; the first DNS name is a good choice.
    pub common_name: String,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
    /// Validity in days.
    pub validity_days: u32,
}

impl Ca {
    /// Generates a new self-signed CA. Returns the CA and its PKCS#8 PEM key.
    pub fn generate(opts: &CaOptions, now: OffsetDateTime) -> Result<(Ca, Zeroizing<String>)> {
        let key = PrivateKey::generate(opts.key_type)?;
        let mut params = base_params(now, opts.validity_days);
        params.distinguished_name = dn_with(&[
            (DnType::OrganizationName, "kmipd"),
            (DnType::CommonName, &opts.common_name),
        ]);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key.key_pair)?;
        let key_pem = key.to_pkcs8_pem();
        let ca = Ca::from_parts(cert.der().clone(), key)?;
        Ok((ca, key_pem))
    }

    /// Builds a CA from its certificate and key, checking that they belong together.
    pub fn from_parts(cert_der: CertificateDer<'static>, key: PrivateKey) -> Result<Ca> {
        check_key_matches(&cert_der, &key, Path::new("<ca certificate>"))?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key.key_pair)?;
        Ok(Ca { cert_der, issuer })
    }

    /// Loads a CA from a PEM certificate file and a PKCS#8 PEM key file.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Ca> {
        Self::load_with(cert_path, key_path, None)
    }

    /// Loads a CA whose key may be an encrypted PKCS#8 file (see [`crate::CaPassphrase`]).
    pub fn load_with(
        cert_path: &Path,
        key_path: &Path,
        passphrase: Option<&crate::CaPassphrase>,
    ) -> Result<Ca> {
        let cert_der = crate::pem::load_cert(cert_path)?;
        let key = PrivateKey::from_pem_file_with(key_path, passphrase)?;
        check_key_matches(&cert_der, &key, key_path)?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key.key_pair)?;
        Ok(Ca { cert_der, issuer })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        cert_to_pem(&self.cert_der)
    }

    /// Issues a server certificate with a new key.
    pub fn issue_server(&self, opts: &ServerOptions, now: OffsetDateTime) -> Result<IssuedCert> {
        let key = PrivateKey::generate(opts.key_type)?;
        let mut params = leaf_params(now, opts.validity_days);
        params.distinguished_name = dn_with(&[
            (DnType::OrganizationName, "kmipd"),
            (DnType::CommonName, &opts.common_name),
        ]);
        params.subject_alt_names = san_list(&opts.dns, &opts.ips)?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if opts.key_type.is_rsa() {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        let cert = params.signed_by(&key.key_pair, &self.issuer)?;
        Ok(issued(cert.der().clone(), Some(key.to_pkcs8_pem())))
    }

    /// Issues a client certificate `CN=<name>, OU=kmipd-role:<role>` with a new key.
    pub fn issue_client(
        &self,
        name: &ClientName,
        role: &Role,
        key_type: KeyType,
        validity_days: u32,
        now: OffsetDateTime,
    ) -> Result<IssuedCert> {
        let key = PrivateKey::generate(key_type)?;
        let mut params = leaf_params(now, validity_days);
        let ou = format!("{ROLE_OU_PREFIX}{role}");
        params.distinguished_name = dn_with(&[
            (DnType::OrganizationName, "kmipd"),
            (DnType::OrganizationalUnitName, &ou),
            (DnType::CommonName, name.as_str()),
        ]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key.key_pair, &self.issuer)?;
        Ok(issued(cert.der().clone(), Some(key.to_pkcs8_pem())))
    }

    /// Signs a PEM or DER certificate signing request as a client certificate.
    ///
    /// The CSR's signature is verified first ([`Error::CsrSignature`] if it does not verify).
    /// The subject and the public key are kept as they are; requested extensions are
    /// ignored; the certificate gets EKU clientAuth and keyUsage digitalSignature.
    pub fn sign_csr(
        &self,
        csr: &[u8],
        validity_days: u32,
        now: OffsetDateTime,
    ) -> Result<IssuedCert> {
        let der = csr_der(csr)?;
        let (rest, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der)
                .map_err(|e| Error::parse("certificate signing request", e))?;
        if !rest.is_empty() {
            return Err(Error::parse(
                "certificate signing request",
                "trailing bytes after the request",
            ));
        }
        req.verify_signature().map_err(|_| Error::CsrSignature)?;
        let info = &req.certification_request_info;
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
            .map_err(|e| Error::UnsupportedKey(format!("CSR public key: {e}")))?;
        let mut params = leaf_params(now, validity_days);
        params.distinguished_name = dn_from_x509(&info.subject)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&public_key, &self.issuer)?;
        Ok(issued(cert.der().clone(), None))
    }
}

fn issued(cert_der: CertificateDer<'static>, key_pem: Option<Zeroizing<String>>) -> IssuedCert {
    IssuedCert {
        cert_pem: cert_to_pem(&cert_der),
        cert_der,
        key_pem,
    }
}

/// Accepts PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`) or raw DER.
fn csr_der(csr: &[u8]) -> Result<Vec<u8>> {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    if csr.first() == Some(&0x30) {
        return Ok(csr.to_vec());
    }
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(csr) {
        match item {
            Ok((SectionKind::Csr, der)) => return Ok(der),
            Ok(_) => continue,
            Err(e) => {
                return Err(Error::parse(
                    "certificate signing request",
                    format!("{e:?}"),
                ));
            }
        }
    }
    // `NEW CERTIFICATE REQUEST` (old Netscape/Microsoft label) is not a SectionKind.
    let text = String::from_utf8_lossy(csr);
    let begin = "-----BEGIN NEW CERTIFICATE REQUEST-----";
    if text.contains(begin) {
        let normalized = text
            .replace(begin, "-----BEGIN CERTIFICATE REQUEST-----")
            .replace(
                "-----END NEW CERTIFICATE REQUEST-----",
                "-----END CERTIFICATE REQUEST-----",
            );
        return csr_der(normalized.as_bytes());
    }
    Err(Error::parse(
        "certificate signing request",
        "no CERTIFICATE REQUEST PEM section and not DER",
    ))
}

/// Copies an X.509 name into rcgen's model, keeping order and string types. rcgen holds one
/// value per attribute type and one attribute per RDN; a subject it cannot hold is refused
/// rather than silently changed.
fn dn_from_x509(name: &x509_parser::x509::X509Name<'_>) -> Result<DistinguishedName> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let mut dn = DistinguishedName::new();
    let mut seen = Vec::new();
    let unsupported = |detail: String| Error::CsrSubject { detail };
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(unsupported("multi-valued or empty RDN".into()));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| unsupported("attribute type OID too large".into()))?
            .collect();
        let ty = DnType::from_oid(&oid);
        if seen.contains(&ty) {
            return Err(unsupported(format!(
                "attribute {} appears more than once",
                attr.attr_type()
            )));
        }
        seen.push(ty.clone());
        let data = attr.attr_value().data;
        let text = || {
            std::str::from_utf8(data)
                .map_err(|_| unsupported("attribute value is not valid text".into()))
        };
        let value = match attr.attr_value().header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(text()?.try_into()?),
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into()?),
            Tag::T61String => DnValue::TeletexString(text()?.try_into()?),
            Tag::BmpString => {
                DnValue::BmpString(rcgen::string::BmpString::from_utf16be(data.to_vec())?)
            }
            Tag::UniversalString => DnValue::UniversalString(
                rcgen::string::UniversalString::from_utf32be(data.to_vec())?,
            ),
            other => return Err(unsupported(format!("attribute value type {other:?}"))),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

fn dn_with(attrs: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in attrs {
        dn.push(ty.clone(), *value);
    }
    dn
}

fn base_params(now: OffsetDateTime, validity_days: u32) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(validity_days));
    params.serial_number = Some(random_serial());
    params
}

fn leaf_params(now: OffsetDateTime, validity_days: u32) -> CertificateParams {
    let mut params = base_params(now, validity_days);
    params.use_authority_key_identifier_extension = true;
    params
}

/// 16 random bytes, first bit cleared so the INTEGER is positive without padding.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // never a leading zero byte, so the encoding is minimal
    SerialNumber::from_slice(&bytes)
}

fn san_list(dns: &[String], ips: &[IpAddr]) -> Result<Vec<SanType>> {
    let mut sans = Vec::new();
    for name in dns {
        crate::net::check_dns_name(name)?;
        let value =
            rcgen::string::Ia5String::try_from(name.as_str()).map_err(|e| Error::InvalidSan {
                value: name.clone(),
                reason: e.to_string(),
            })?;
        let san = SanType::DnsName(value);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    for ip in ips {
        let san = SanType::IpAddress(*ip);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

/// Errors unless the certificate's public key is the key's public half.
pub(crate) fn check_key_matches(cert_der: &[u8], key: &PrivateKey, key_path: &Path) -> Result<()> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::parse("certificate", e))?;
    if cert.public_key().raw != key.public_key_spki().as_slice() {
        return Err(Error::Inconsistent {
            path: key_path.to_owned(),
            detail: "private key does not match the certificate's public key".into(),
        });
    }
    Ok(())
}

/// Errors unless `cert_der` carries a valid signature by `ca_der`'s key.
pub(crate) fn check_issued_by(cert_der: &[u8], ca_der: &[u8], cert_path: &Path) -> Result<()> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::parse("certificate", e))?;
    let (_, ca) =
        x509_parser::parse_x509_certificate(ca_der).map_err(|e| Error::parse("certificate", e))?;
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| Error::Inconsistent {
            path: cert_path.to_owned(),
            detail: "certificate is not signed by the CA".into(),
        })
}
