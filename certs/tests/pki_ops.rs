//! init, issue-client, sign-csr (rcgen CSRs), pins, trusted CAs and role lookup.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{der, fast_init};
use kmipd_certs::{
    init_ca_and_server, issue_client, load_trust, sign_csr, ClientName, Error, KeyType, Role,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

fn role(r: &str) -> Role {
    Role::new(r).unwrap()
}

#[test]
fn init_writes_ca_and_server_with_requested_sans() {
    let tmp = tempfile::tempdir().unwrap();
    let o = init_ca_and_server(tmp.path(), &fast_init()).unwrap();
    assert!(o.ca_created);
    assert_eq!(
        o.sans,
        ["DNS:kms.example.test", "IP:127.0.0.1", "IP:192.0.2.10"]
    );
    let server = der(&o.server_cert);
    let (_, cert) = parse_x509_certificate(&server).unwrap();
    let names: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(ip) => format!("{ip:?}"),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        ["kms.example.test", "[127, 0, 0, 1]", "[192, 0, 2, 10]"]
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let ca = der(&o.ca_cert);
    let (_, ca) = parse_x509_certificate(&ca).unwrap();
    cert.verify_signature(Some(ca.public_key())).unwrap();
    let mode = std::fs::metadata(&o.ca_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(o.server_fingerprint, kmipd_certs::fingerprint_hex(&server));
}

#[test]
fn init_again_needs_force_and_keeps_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let first = init_ca_and_server(tmp.path(), &fast_init()).unwrap();
    let ca_before = std::fs::read(&first.ca_cert).unwrap();
    let server_before = std::fs::read(&first.server_cert).unwrap();
    let err = init_ca_and_server(tmp.path(), &fast_init()).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(server_before, std::fs::read(&first.server_cert).unwrap());

    let mut opts = fast_init();
    opts.force = true;
    opts.ips.push("198.51.100.7".parse().unwrap());
    let second = init_ca_and_server(tmp.path(), &opts).unwrap();
    assert!(!second.ca_created);
    assert_eq!(ca_before, std::fs::read(&second.ca_cert).unwrap());
    assert_ne!(server_before, std::fs::read(&second.server_cert).unwrap());
    assert!(second.sans.contains(&"IP:198.51.100.7".to_string()));
}

#[test]
fn init_defaults_to_local_names_and_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = kmipd_certs::InitOptions {
        key_type: KeyType::EcdsaP384,
        ca_key_type: KeyType::EcdsaP256,
        ..Default::default()
    };
    let o = init_ca_and_server(tmp.path(), &opts).unwrap();
    assert!(
        o.sans.contains(&"DNS:localhost".to_string()),
        "{:?}",
        o.sans
    );
    assert!(o.sans.contains(&"IP:127.0.0.1".to_string()), "{:?}", o.sans);
    assert!(o.sans.contains(&"IP:::1".to_string()), "{:?}", o.sans);
    let info = kmipd_certs::show(&o.server_cert).unwrap().remove(0);
    assert_eq!(info.curve.as_deref(), Some("P-384"));
    assert_eq!(info.key_usage, Some(vec!["digitalSignature".to_string()]));
}

#[test]
fn half_a_ca_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = init_ca_and_server(tmp.path(), &fast_init()).unwrap();
    std::fs::remove_file(&o.ca_key).unwrap();
    let mut opts = fast_init();
    opts.force = true;
    let err = init_ca_and_server(tmp.path(), &opts).unwrap_err();
    assert!(matches!(err, Error::Incomplete { .. }), "{err:?}");
}

#[test]
fn issue_client_writes_pair_with_role() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca_and_server(tmp.path(), &fast_init()).unwrap();
    let name = ClientName::new("vc01").unwrap();
    let f = issue_client(
        tmp.path(),
        &name,
        &role("vcenter"),
        KeyType::EcdsaP256,
        30,
        false,
    )
    .unwrap();
    assert_eq!(f.cert_path, tmp.path().join("vc01.crt"));
    let mode = std::fs::metadata(&f.key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key = std::fs::read_to_string(&f.key_path).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    let info = kmipd_certs::show(&f.cert_path).unwrap().remove(0);
    assert_eq!(info.kmipd_role.as_deref(), Some("vcenter"));
    assert_eq!(
        info.extended_key_usage,
        Some(vec!["clientAuth".to_string()])
    );
    assert!(info.subject.contains("CN=vc01"), "{}", info.subject);
    assert!(
        info.days_left >= 29 && info.days_left <= 30,
        "{}",
        info.days_left
    );
    // The role is found through kmipd's own CA.
    let trust = load_trust(tmp.path()).unwrap();
    assert_eq!(trust.role_for(&der(&f.cert_path)), Some(role("vcenter")));
    // Not twice without --force.
    let err = issue_client(
        tmp.path(),
        &name,
        &role("admin"),
        KeyType::EcdsaP256,
        30,
        false,
    )
    .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }));
    // Debug never shows the key.
    let dbg = format!("{f:?}");
    assert!(
        !dbg.contains("PRIVATE KEY") && dbg.contains("redacted"),
        "{dbg}"
    );
}

#[test]
fn issue_client_needs_a_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let err = issue_client(
        tmp.path(),
        &ClientName::new("a").unwrap(),
        &role("admin"),
        KeyType::EcdsaP256,
        30,
        false,
    )
    .unwrap_err();
    assert!(matches!(err, Error::NoCa { .. }), "{err:?}");
}

#[test]
fn names_and_roles_are_validated() {
    assert!(ClientName::new("ca").is_err());
    assert!(ClientName::new("../x").is_err());
    assert!(ClientName::new(".hidden").is_err());
    assert!(ClientName::new("vc-01.example").is_ok());
    assert!(Role::new("").is_err());
    assert!(Role::new("a b").is_err());
    assert!(Role::new("vcenter").is_ok());
}

fn rcgen_csr(cn: &str) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["vc01.example.test".into()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "VMware");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let csr = params.serialize_request(&key).unwrap();
    (csr.pem().unwrap(), key)
}

#[test]
fn sign_rcgen_csr_keeps_subject_and_key_and_pins_role() {
    let tmp = tempfile::tempdir().unwrap();
    let o = init_ca_and_server(tmp.path(), &fast_init()).unwrap();
    let (csr_pem, key) = rcgen_csr("vcenter-csr");
    let signed = sign_csr(tmp.path(), csr_pem.as_bytes(), &role("vcenter"), 90).unwrap();
    assert!(signed.issued.key_pem.is_none());
    let (_, cert) = parse_x509_certificate(&signed.issued.cert_der).unwrap();
    let csr_der = rustls_pki_types::pem::PemObject::from_pem_slice(csr_pem.as_bytes())
        .map(|d: rustls_pki_types::CertificateSigningRequestDer<'_>| d.as_ref().to_vec())
        .unwrap();
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&csr_der).unwrap();
    assert_eq!(
        cert.subject().as_raw(),
        req.certification_request_info.subject.as_raw()
    );
    assert_eq!(
        cert.public_key().raw,
        req.certification_request_info.subject_pki.raw
    );
    use rcgen::PublicKeyData;
    assert_eq!(
        cert.public_key().raw,
        key.subject_public_key_info().as_slice()
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let ca = der(&o.ca_cert);
    let (_, ca) = parse_x509_certificate(&ca).unwrap();
    cert.verify_signature(Some(ca.public_key())).unwrap();

    assert_eq!(signed.pin.name, "vcenter-csr");
    let trust = load_trust(tmp.path()).unwrap();
    assert_eq!(trust.pins.len(), 1);
    assert!(trust.pins[0].cert.is_some());
    assert_eq!(
        trust.role_for(&signed.issued.cert_der),
        Some(role("vcenter"))
    );
}

#[test]
fn tampered_csr_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca_and_server(tmp.path(), &fast_init()).unwrap();
    let (csr_pem, _key) = rcgen_csr("vcenter-csr");
    let mut der: Vec<u8> = rustls_pki_types::pem::PemObject::from_pem_slice(csr_pem.as_bytes())
        .map(|d: rustls_pki_types::CertificateSigningRequestDer<'_>| d.as_ref().to_vec())
        .unwrap();
    // Change one letter of the CN: still a well-formed CSR, but the signature no longer fits.
    let at = der
        .windows(b"vcenter-csr".len())
        .position(|w| w == b"vcenter-csr")
        .unwrap();
    der[at] = b'V';
    let err = sign_csr(tmp.path(), &der, &role("vcenter"), 90).unwrap_err();
    assert!(matches!(err, Error::CsrSignature), "{err:?}");
    // Nothing was pinned.
    assert!(load_trust(tmp.path()).unwrap().pins.is_empty());
    // Garbage is a parse error, not a panic.
    let err = sign_csr(tmp.path(), b"hello", &role("vcenter"), 90).unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err:?}");
}

#[test]
fn unknown_leaf_has_no_role() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca_and_server(tmp.path(), &fast_init()).unwrap();
    let other = tempfile::tempdir().unwrap();
    let o = init_ca_and_server(other.path(), &fast_init()).unwrap();
    let trust = load_trust(tmp.path()).unwrap();
    assert_eq!(trust.role_for(&der(&o.server_cert)), None);
    assert_eq!(trust.ca_roots().len(), 1);
}

#[test]
fn malformed_pin_list_is_reported_with_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("pins.txt"),
        format!(
            "# ok\nsha256:{} role=vcenter name=x\nsha256:zz role=a\n",
            "00".repeat(32)
        ),
    )
    .unwrap();
    let err = load_trust(tmp.path()).unwrap_err();
    match err {
        Error::PinList { line, .. } => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
}
