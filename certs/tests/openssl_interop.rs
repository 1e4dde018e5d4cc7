//! Certificates and CSRs made by the real `openssl` command: CSR signing, pinning vCenter's
//! style of self-signed certificate, trusting a foreign CA, and lint findings.

mod common;

use std::path::Path;

use common::{der, fast_init, openssl, openssl_dated, openssl_self_signed};
use kmipd_certs::{
    init_ca_and_server, lint, load_trust, pin, sign_csr, trust_ca, Error, Purpose, Role, Severity,
};
use x509_parser::prelude::*;

fn role(r: &str) -> Role {
    Role::new(r).unwrap()
}

fn codes(file: &Path, purpose: Purpose) -> Vec<(Severity, &'static str)> {
    lint(file, Some(purpose))
        .unwrap()
        .findings
        .iter()
        .map(|f| (f.severity, f.code))
        .collect()
}

#[test]
fn sign_openssl_csr_like_vcenter() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let o = init_ca_and_server(&pki, &fast_init()).unwrap();
    // vCenter's CSR: RSA-2048, a full subject, requested SAN and keyUsage extensions.
    openssl(
        tmp.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "vc.key",
            "-out",
            "vc.csr",
            "-subj",
            "/C=US/ST=California/L=Palo Alto/O=VMware/OU=vCenter/CN=vc01.example.test",
            "-addext",
            "subjectAltName=DNS:vc01.example.test",
            "-addext",
            "keyUsage=digitalSignature,keyEncipherment",
        ],
    );
    let csr = std::fs::read(tmp.path().join("vc.csr")).unwrap();
    let signed = sign_csr(&pki, &csr, &role("vcenter"), 365).unwrap();
    std::fs::write(tmp.path().join("vc.crt"), &signed.issued.cert_pem).unwrap();

    // openssl accepts the chain and sees clientAuth.
    let ca = o.ca_cert.to_str().unwrap();
    let verify = openssl(
        tmp.path(),
        &["verify", "-CAfile", ca, "-purpose", "sslclient", "vc.crt"],
    );
    assert!(verify.contains("vc.crt: OK"), "{verify}");
    // Subject kept byte for byte, and the certificate fits vCenter's private key.
    let csr_subject = openssl(tmp.path(), &["req", "-in", "vc.csr", "-noout", "-subject"]);
    let crt_subject = openssl(tmp.path(), &["x509", "-in", "vc.crt", "-noout", "-subject"]);
    assert_eq!(
        csr_subject.trim().trim_start_matches("subject="),
        crt_subject.trim().trim_start_matches("subject=")
    );
    let from_key = openssl(tmp.path(), &["pkey", "-in", "vc.key", "-pubout"]);
    let from_crt = openssl(tmp.path(), &["x509", "-in", "vc.crt", "-noout", "-pubkey"]);
    assert_eq!(from_key, from_crt);
    let (_, cert) = parse_x509_certificate(&signed.issued.cert_der).unwrap();
    openssl(
        tmp.path(),
        &[
            "req",
            "-in",
            "vc.csr",
            "-outform",
            "DER",
            "-out",
            "vc.csr.der",
        ],
    );
    let raw = std::fs::read(tmp.path().join("vc.csr.der")).unwrap();
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&raw).unwrap();
    assert_eq!(
        cert.subject().as_raw(),
        req.certification_request_info.subject.as_raw()
    );
    // DER input works too, and the role is recorded.
    let again = sign_csr(&pki, &raw, &role("vcenter"), 365).unwrap();
    let trust = load_trust(&pki).unwrap();
    assert_eq!(trust.pins.len(), 2);
    assert_eq!(
        trust.role_for(&again.issued.cert_der),
        Some(role("vcenter"))
    );
    // Our own lint is happy with it as a client certificate.
    assert!(codes(&tmp.path().join("vc.crt"), Purpose::Client).is_empty());
}

#[test]
fn tampered_openssl_csr_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca_and_server(tmp.path(), &fast_init()).unwrap();
    openssl(
        tmp.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "vc.key",
            "-outform",
            "DER",
            "-out",
            "vc.der",
            "-subj",
            "/O=VMware/CN=vc01.example.test",
        ],
    );
    let mut der = std::fs::read(tmp.path().join("vc.der")).unwrap();
    let at = der.windows(4).position(|w| w == b"vc01").unwrap();
    der[at] = b'x';
    let err = sign_csr(tmp.path(), &der, &role("vcenter"), 30).unwrap_err();
    assert!(matches!(err, Error::CsrSignature), "{err:?}");
}

#[test]
fn pin_openssl_self_signed_ca_true_without_eku() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let crt = openssl_self_signed(
        tmp.path(),
        "vcenter-self",
        "rsa:2048",
        &["-addext", "basicConstraints=critical,CA:TRUE"],
    );
    let info = kmipd_certs::show(&crt).unwrap().remove(0);
    assert!(info.is_ca && info.self_signed && info.extended_key_usage.is_none());

    let p = pin(&pki, &crt, &role("vcenter"), None).unwrap();
    let openssl_fp = openssl(
        tmp.path(),
        &[
            "x509",
            "-in",
            "vcenter-self.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let openssl_hex: String = openssl_fp
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(hex::encode(p.fingerprint), openssl_hex);
    assert_eq!(p.name, "vcenter-self");
    let line = std::fs::read_to_string(pki.join("pins.txt")).unwrap();
    assert!(
        line.contains(&format!(
            "sha256:{openssl_hex} role=vcenter name=vcenter-self"
        )),
        "{line}"
    );

    let trust = load_trust(&pki).unwrap();
    let leaf = der(&crt);
    assert_eq!(trust.role_for(&leaf), Some(role("vcenter")));
    assert_eq!(
        trust
            .pin(&kmipd_certs::fingerprint_sha256(&leaf))
            .unwrap()
            .cert
            .as_deref(),
        Some(&leaf[..])
    );
    // Accepted as a client certificate by lint: CA:TRUE and no EKU are fine.
    assert!(codes(&crt, Purpose::Client).is_empty());

    // Pinning again changes the role in place, without a second line.
    pin(&pki, &crt, &role("admin"), Some("vc01 (self-signed)")).unwrap();
    let trust = load_trust(&pki).unwrap();
    assert_eq!(trust.pins.len(), 1);
    assert_eq!(trust.pins[0].role, role("admin"));
    assert_eq!(trust.pins[0].name, "vc01 (self-signed)");
}

#[test]
fn trust_openssl_ca_gives_its_role_to_its_leaves() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    openssl_self_signed(
        tmp.path(),
        "vmca",
        "rsa:2048",
        &["-subj", "/O=VMware/CN=VMCA root"],
    );
    openssl(
        tmp.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=vc01.example.test",
        ],
    );
    openssl(
        tmp.path(),
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "vmca.crt",
            "-CAkey",
            "vmca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            "leaf.crt",
        ],
    );
    let cas = trust_ca(&pki, &tmp.path().join("vmca.crt"), &role("vcenter")).unwrap();
    assert_eq!(cas.len(), 1);
    assert!(cas[0].path.starts_with(pki.join("trusted-cas/vcenter")));
    let trust = load_trust(&pki).unwrap();
    assert_eq!(trust.trusted_cas.len(), 1);
    assert_eq!(trust.ca_roots().len(), 1);
    assert_eq!(
        trust.role_for(&der(&tmp.path().join("leaf.crt"))),
        Some(role("vcenter"))
    );

    // Same CA for another role: refused. A leaf is not a CA: refused.
    let err = trust_ca(&pki, &tmp.path().join("vmca.crt"), &role("admin")).unwrap_err();
    assert!(matches!(err, Error::Inconsistent { .. }), "{err:?}");
    let err = trust_ca(&pki, &tmp.path().join("leaf.crt"), &role("vcenter")).unwrap_err();
    assert!(matches!(err, Error::NotCa { .. }), "{err:?}");
    // Idempotent for the same role.
    trust_ca(&pki, &tmp.path().join("vmca.crt"), &role("vcenter")).unwrap();
    assert_eq!(load_trust(&pki).unwrap().trusted_cas.len(), 1);
}

#[test]
fn lint_rsa_1024_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let crt = openssl_self_signed(tmp.path(), "small", "rsa:1024", &[]);
    let info = kmipd_certs::show(&crt).unwrap().remove(0);
    assert_eq!((info.key_type.as_str(), info.key_bits), ("RSA", 1024));
    assert!(codes(&crt, Purpose::Client).contains(&(Severity::Error, "rsa-too-small")));
}

#[test]
fn lint_sha1_signature_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let crt = openssl_self_signed(tmp.path(), "sha1", "rsa:2048", &["-sha1"]);
    let info = kmipd_certs::show(&crt).unwrap().remove(0);
    assert_eq!(info.signature_algorithm, "sha1WithRSAEncryption");
    assert_eq!(
        codes(&crt, Purpose::Client),
        [(Severity::Error, "weak-signature")]
    );
}

#[test]
fn lint_expired_and_not_yet_valid_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let old = openssl_dated(tmp.path(), "old", "20200101000000Z", "20200201000000Z");
    assert_eq!(codes(&old, Purpose::Client), [(Severity::Error, "expired")]);
    let future = openssl_dated(tmp.path(), "future", "20990101000000Z", "20991231000000Z");
    assert_eq!(
        codes(&future, Purpose::Client),
        [(Severity::Error, "not-yet-valid")]
    );
}

#[test]
fn lint_expiring_soon_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let crt = openssl_self_signed(tmp.path(), "soon", "rsa:2048", &["-days", "10"]);
    let report = lint(&crt, Some(Purpose::Client)).unwrap();
    assert!(!report.has_errors());
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].code, "expires-soon");
    assert_eq!(report.findings[0].severity, Severity::Warning);
}

#[test]
fn lint_client_without_client_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let crt = openssl_self_signed(
        tmp.path(),
        "srvonly",
        "rsa:2048",
        &["-addext", "extendedKeyUsage=serverAuth"],
    );
    assert_eq!(
        codes(&crt, Purpose::Client),
        [(Severity::Error, "no-client-auth")]
    );
    // Without an explicit purpose a serverAuth certificate is linted as a server one.
    let report = lint(&crt, None).unwrap();
    assert_eq!(report.purpose, Purpose::Server);
}

#[test]
fn lint_server_without_ip_san_or_server_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let crt = openssl_self_signed(
        tmp.path(),
        "dnsonly",
        "rsa:2048",
        &[
            "-addext",
            "subjectAltName=DNS:kms.example.test",
            "-addext",
            "extendedKeyUsage=serverAuth,clientAuth",
            "-addext",
            "keyUsage=digitalSignature,keyEncipherment",
        ],
    );
    assert_eq!(
        codes(&crt, Purpose::Server),
        [(Severity::Warning, "no-ip-san")]
    );
    let client_only = openssl_self_signed(
        tmp.path(),
        "clientonly",
        "rsa:2048",
        &["-addext", "extendedKeyUsage=clientAuth"],
    );
    assert_eq!(
        codes(&client_only, Purpose::Server),
        [
            (Severity::Error, "no-server-auth"),
            (Severity::Warning, "no-san")
        ]
    );
}

#[test]
fn lint_our_own_certificates_is_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let o = init_ca_and_server(tmp.path(), &fast_init()).unwrap();
    assert!(codes(&o.server_cert, Purpose::Server).is_empty());
    assert!(codes(&o.ca_cert, Purpose::Ca).is_empty());
    assert_eq!(
        codes(&o.server_cert, Purpose::Ca),
        [
            (Severity::Error, "not-ca"),
            (Severity::Error, "no-key-cert-sign")
        ]
    );
}
