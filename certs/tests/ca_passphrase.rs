//! The passphrase-protected CA key: `init --ca-passphrase-file` writes an encrypted PKCS#8
//! `ca.key` that openssl reads; issue-client, sign-csr and init reusing the CA need the same
//! passphrase (file or KMIPD_CA_PASSPHRASE), refuse a wrong one or none with a clear error,
//! and kmipd's dev PKI check never needs the CA key.

mod common;

use std::path::Path;

use clap::Parser;
use common::{fast_init, openssl};
use kmipd_certs::cli::{run_to, CertsCommand, EXIT_OK};
use kmipd_certs::{
    init_ca_and_server, issue_client, issue_client_with, sign_csr_with, CaPassphrase, ClientName,
    Error, InitOptions, KeyType, Role,
};

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: CertsCommand,
}

fn run(args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["kmipctl-certs"];
    all.extend(args);
    let mut out = Vec::new();
    let code = run_to(Cli::try_parse_from(all).unwrap().cmd, &mut out)?;
    assert_eq!(code, EXIT_OK);
    Ok(String::from_utf8(out).unwrap())
}

fn pass(s: &str) -> CaPassphrase {
    CaPassphrase::new(s.as_bytes().to_vec()).unwrap()
}

fn role(r: &str) -> Role {
    Role::new(r).unwrap()
}

fn name(n: &str) -> ClientName {
    ClientName::new(n).unwrap()
}

fn init_encrypted(dir: &Path, key_type: KeyType, passphrase: &str) {
    let o = init_ca_and_server(
        dir,
        &InitOptions {
            ca_key_type: key_type,
            ca_passphrase: Some(pass(passphrase)),
            ..fast_init()
        },
    )
    .unwrap();
    assert!(o.ca_created && o.ca_key_encrypted);
}

fn csr_pem() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "vcenter-csr");
    params.serialize_request(&key).unwrap().pem().unwrap()
}

#[test]
fn encrypted_ca_key_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init_encrypted(dir, KeyType::EcdsaP256, "correct horse battery staple");
    let key = std::fs::read_to_string(dir.join("ca.key")).unwrap();
    assert!(
        key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
        "{key}"
    );
    assert!(!key.contains("-----BEGIN PRIVATE KEY-----"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let p = pass("correct horse battery staple");
    // Signing with the passphrase: a client certificate, a CSR, a new server certificate.
    let f = issue_client_with(
        dir,
        &name("vc01"),
        &role("vcenter"),
        KeyType::EcdsaP256,
        30,
        false,
        Some(&p),
    )
    .unwrap();
    assert!(f.cert_path.exists());
    let signed = sign_csr_with(dir, csr_pem().as_bytes(), &role("vcenter"), 30, Some(&p)).unwrap();
    assert!(signed.issued.cert_pem.contains("BEGIN CERTIFICATE"));
    let again = init_ca_and_server(
        dir,
        &InitOptions {
            force: true,
            ca_passphrase: Some(p.clone()),
            ..fast_init()
        },
    )
    .unwrap();
    assert!(!again.ca_created && !again.ca_key_encrypted);
    // Reusing the CA leaves its key as it was: still encrypted.
    assert_eq!(std::fs::read_to_string(dir.join("ca.key")).unwrap(), key);
    // Debug never shows the passphrase.
    assert!(!format!("{p:?}").contains("horse"));
}

#[test]
fn wrong_or_missing_passphrase_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init_encrypted(dir, KeyType::EcdsaP256, "right");
    let wrong = pass("wrong");

    let e = issue_client_with(
        dir,
        &name("a"),
        &role("admin"),
        KeyType::EcdsaP256,
        30,
        false,
        Some(&wrong),
    )
    .unwrap_err();
    assert!(matches!(e, Error::WrongPassphrase { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("ca.key") && msg.contains("wrong passphrase"),
        "{msg}"
    );
    assert!(!dir.join("a.crt").exists() && !dir.join("a.key").exists());

    let e = sign_csr_with(
        dir,
        csr_pem().as_bytes(),
        &role("vcenter"),
        30,
        Some(&wrong),
    )
    .unwrap_err();
    assert!(matches!(e, Error::WrongPassphrase { .. }), "{e:?}");

    // No passphrase at all: says how to give one.
    let e = issue_client(
        dir,
        &name("b"),
        &role("admin"),
        KeyType::EcdsaP256,
        30,
        false,
    )
    .unwrap_err();
    assert!(matches!(e, Error::PassphraseRequired { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("encrypted")
            && msg.contains("--ca-passphrase-file")
            && msg.contains("KMIPD_CA_PASSPHRASE"),
        "{msg}"
    );
    let e = init_ca_and_server(
        dir,
        &InitOptions {
            force: true,
            ..fast_init()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::PassphraseRequired { .. }), "{e:?}");

    // An empty passphrase is refused outright.
    assert!(CaPassphrase::new(Vec::new()).is_err());
    let empty = dir.join("empty.pass");
    std::fs::write(&empty, "\n").unwrap();
    assert!(CaPassphrase::from_file(&empty).is_err());
}

#[test]
fn openssl_reads_the_encrypted_ca_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The default CA key type (RSA-2048), as `kmipctl certs init` makes it.
    init_encrypted(dir, KeyType::Rsa2048, "s3cret passphrase");
    std::fs::write(dir.join("ca.pass"), "s3cret passphrase\n").unwrap();
    std::fs::write(dir.join("bad.pass"), "not it\n").unwrap();
    let from_key = openssl(
        dir,
        &[
            "pkey",
            "-in",
            "ca.key",
            "-passin",
            "file:ca.pass",
            "-pubout",
        ],
    );
    let from_cert = openssl(dir, &["x509", "-in", "ca.crt", "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert, "the key is the CA certificate's");
    let info = openssl(dir, &["asn1parse", "-in", "ca.key"]);
    for want in [":PBES2", ":scrypt", ":aes-256-cbc"] {
        assert!(info.contains(want), "{want} missing:\n{info}");
    }
    let out = std::process::Command::new("openssl")
        .args([
            "pkey",
            "-in",
            "ca.key",
            "-passin",
            "file:bad.pass",
            "-noout",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "openssl must refuse the wrong passphrase"
    );

    // And the reverse: keys openssl encrypted (scrypt, as docs/vcenter.md suggests for an
    // existing CA key; PBKDF2-SHA256) open here.
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "server.key",
            "-out",
            "server-scrypt.key",
            "-v2",
            "aes-256-cbc",
            "-scrypt",
            "-passout",
            "file:ca.pass",
        ],
    );
    let k = kmipd_certs::PrivateKey::from_pem_file_with(
        &dir.join("server-scrypt.key"),
        Some(&pass("s3cret passphrase")),
    )
    .unwrap();
    assert_eq!(
        k.public_key_spki(),
        kmipd_certs::PrivateKey::from_pem_file(&dir.join("server.key"))
            .unwrap()
            .public_key_spki()
    );
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "server.key",
            "-out",
            "server-enc.key",
            "-v2",
            "aes-256-cbc",
            "-v2prf",
            "hmacWithSHA256",
            "-passout",
            "file:ca.pass",
        ],
    );
    let k = kmipd_certs::PrivateKey::from_pem_file_with(
        &dir.join("server-enc.key"),
        Some(&pass("s3cret passphrase")),
    )
    .unwrap();
    assert_eq!(
        k.public_key_spki(),
        kmipd_certs::PrivateKey::from_pem_file(&dir.join("server.key"))
            .unwrap()
            .public_key_spki()
    );
}

#[test]
fn cli_takes_the_passphrase_from_a_file_or_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("pki");
    let d = d.to_str().unwrap();
    let pass_file = tmp.path().join("ca.pass");
    std::fs::write(&pass_file, "from a file\r\n").unwrap();
    let pf = pass_file.to_str().unwrap();
    let out = run(&[
        "init",
        "--dir",
        d,
        "--key-type",
        "ecdsa-p256",
        "--ca-key-type",
        "ecdsa-p256",
        "--dns",
        "kms.example.test",
        "--ip",
        "127.0.0.1",
        "--ca-passphrase-file",
        pf,
    ])
    .unwrap();
    assert!(out.contains("CA key encryption"), "{out}");
    run(&[
        "issue-client",
        "vc01",
        "--role",
        "vcenter",
        "--dir",
        d,
        "--key-type",
        "ecdsa-p256",
        "--ca-passphrase-file",
        pf,
    ])
    .unwrap();
    let csr = tmp.path().join("vc.csr");
    std::fs::write(&csr, csr_pem()).unwrap();
    let signed = tmp.path().join("vc.crt");
    run(&[
        "sign-csr",
        csr.to_str().unwrap(),
        "--role",
        "vcenter",
        "--dir",
        d,
        "--ca-passphrase-file",
        pf,
        "--out",
        signed.to_str().unwrap(),
    ])
    .unwrap();
    assert!(signed.exists());
    // Without a passphrase: refused, naming both ways to give one.
    let err = run(&[
        "issue-client",
        "vc02",
        "--role",
        "vcenter",
        "--dir",
        d,
        "--key-type",
        "ecdsa-p256",
    ])
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("KMIPD_CA_PASSPHRASE"),
        "{err:#}"
    );
    // From the environment (the only test in this binary that sets it).
    std::env::set_var(kmipd_certs::CA_PASSPHRASE_ENV, "from a file");
    let r = run(&[
        "issue-client",
        "vc02",
        "--role",
        "vcenter",
        "--dir",
        d,
        "--key-type",
        "ecdsa-p256",
    ]);
    std::env::remove_var(kmipd_certs::CA_PASSPHRASE_ENV);
    r.unwrap();
    // No command-line literal exists.
    assert!(Cli::try_parse_from(["k", "init", "--dir", d, "--ca-passphrase", "x"]).is_err());
}

#[test]
fn dev_pki_does_not_need_the_ca_key() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = kmipd_certs::DevPkiOptions {
        key_type: KeyType::EcdsaP256,
        ca_key_type: KeyType::EcdsaP256,
        ..Default::default()
    };
    let p = kmipd_certs::ensure_dev_pki(tmp.path(), &opts).unwrap();
    // Taken offline: the PKI is still complete for the server.
    std::fs::remove_file(&p.ca_key).unwrap();
    kmipd_certs::ensure_dev_pki(tmp.path(), &opts).unwrap();
}
