//! `ensure_dev_pki`: creation, reuse, refusal to overwrite, file modes, certificate profiles.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kmipd_certs::{ensure_dev_pki, DevPkiOptions, Error, KeyType};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

fn fast_opts() -> DevPkiOptions {
    DevPkiOptions {
        key_type: KeyType::EcdsaP256,
        ca_key_type: KeyType::EcdsaP256,
        host_name: Some("kms.example.test".into()),
        ..DevPkiOptions::default()
    }
}

fn pem_der(path: &Path) -> Vec<u8> {
    kmipd_certs::load_cert(path).unwrap().to_vec()
}

#[test]
fn creates_then_reuses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/certs");
    let first = ensure_dev_pki(&dir, &fast_opts()).unwrap();
    assert!(first.created);
    for name in [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "admin.crt",
        "admin.key",
        "vcenter.crt",
        "vcenter.key",
    ] {
        assert!(dir.join(name).is_file(), "{name} missing");
    }
    let before = std::fs::read(&first.server_cert).unwrap();
    let second = ensure_dev_pki(&dir, &fast_opts()).unwrap();
    assert!(!second.created);
    assert_eq!(first.server_cert, second.server_cert);
    assert_eq!(before, std::fs::read(&second.server_cert).unwrap());
    // Leftover temporary files would be a bug of the atomic writes.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().starts_with(".kmipd-tmp"),
            "{name:?}"
        );
    }
}

#[test]
fn key_files_are_0600_pkcs8() {
    let tmp = tempfile::tempdir().unwrap();
    let p = ensure_dev_pki(tmp.path(), &fast_opts()).unwrap();
    for key in [&p.ca_key, &p.server_key, &p.admin_key, &p.vcenter_key] {
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
        let text = std::fs::read_to_string(key).unwrap();
        assert!(
            text.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{text:.40}"
        );
        kmipd_certs::load_private_key(key).unwrap();
    }
    let mode = std::fs::metadata(&p.server_cert)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn missing_file_is_an_error_not_an_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let p = ensure_dev_pki(tmp.path(), &fast_opts()).unwrap();
    let ca_before = std::fs::read(&p.ca_cert).unwrap();
    std::fs::remove_file(&p.admin_key).unwrap();
    let err = ensure_dev_pki(tmp.path(), &fast_opts()).unwrap_err();
    match &err {
        Error::Incomplete { missing, .. } => assert_eq!(missing, &vec!["admin.key".to_string()]),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("admin.key"));
    assert_eq!(ca_before, std::fs::read(&p.ca_cert).unwrap());
}

#[test]
fn mismatched_key_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = ensure_dev_pki(tmp.path(), &fast_opts()).unwrap();
    std::fs::copy(&p.admin_key, &p.vcenter_key).unwrap();
    let err = ensure_dev_pki(tmp.path(), &fast_opts()).unwrap_err();
    assert!(matches!(err, Error::Inconsistent { .. }), "{err:?}");
    assert!(err.to_string().contains("vcenter.key"), "{err}");
}

#[test]
fn foreign_leaf_is_an_error() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let pa = ensure_dev_pki(a.path(), &fast_opts()).unwrap();
    let pb = ensure_dev_pki(b.path(), &fast_opts()).unwrap();
    std::fs::copy(&pb.server_cert, &pa.server_cert).unwrap();
    std::fs::copy(&pb.server_key, &pa.server_key).unwrap();
    let err = ensure_dev_pki(a.path(), &fast_opts()).unwrap_err();
    assert!(err.to_string().contains("not signed by the CA"), "{err}");
}

fn check_server_cert(der: &[u8], rsa: bool) {
    let (_, cert) = parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for n in &san.general_names {
        match n {
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    assert!(dns.contains(&"localhost".to_string()), "{dns:?}");
    assert!(dns.contains(&"kms.example.test".to_string()), "{dns:?}");
    assert!(ips.contains(&vec![127, 0, 0, 1]), "{ips:?}");
    let mut v6 = vec![0u8; 15];
    v6.push(1);
    assert!(ips.contains(&v6), "{ips:?}");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature());
    assert_eq!(ku.key_encipherment(), rsa);
    assert!(!cert.is_ca());
    match cert.public_key().parsed().unwrap() {
        PublicKey::RSA(k) => {
            assert!(rsa);
            assert_eq!(k.key_size(), 2048);
        }
        PublicKey::EC(_) => assert!(!rsa),
        other => panic!("unexpected key {other:?}"),
    }
}

#[test]
fn profiles_ecdsa() {
    let tmp = tempfile::tempdir().unwrap();
    let p = ensure_dev_pki(tmp.path(), &fast_opts()).unwrap();
    check_server_cert(&pem_der(&p.server_cert), false);

    let ca_der = pem_der(&p.ca_cert);
    let (_, ca) = parse_x509_certificate(&ca_der).unwrap();
    assert!(ca.is_ca());
    let ku = ca.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());

    for (file, cn) in [(&p.admin_cert, "admin"), (&p.vcenter_cert, "vcenter")] {
        let der = pem_der(file);
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        let got_cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(got_cn.as_str().unwrap(), cn);
        let ou = cert.subject().iter_organizational_unit().next().unwrap();
        assert_eq!(ou.as_str().unwrap(), format!("kmipd-role:{cn}"));
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature());
        cert.verify_signature(Some(ca.public_key())).unwrap();
    }
}

#[test]
fn profiles_rsa_default() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = DevPkiOptions {
        host_name: Some("kms.example.test".into()),
        ..DevPkiOptions::default()
    };
    assert_eq!(opts.key_type, KeyType::Rsa2048);
    let p = ensure_dev_pki(tmp.path(), &opts).unwrap();
    check_server_cert(&pem_der(&p.server_cert), true);
    // A rustls-style load of the key works.
    let key = kmipd_certs::load_private_key(&p.server_key).unwrap();
    assert!(matches!(key, rustls_pki_types::PrivateKeyDer::Pkcs8(_)));
}
