//! `kmipctl certs` as the server's kmipctl embeds it: parsing, output, exit codes.

mod common;

use clap::{CommandFactory, Parser};
use common::openssl_self_signed;
use kmipd_certs::cli::{run_to, CertsCommand, EXIT_LINT_ERRORS, EXIT_OK};

/// What the server's `kmipctl certs` looks like.
#[derive(Debug, Parser)]
#[command(name = "kmipctl-certs")]
struct Cli {
    #[command(subcommand)]
    cmd: CertsCommand,
}

fn parse(args: &[&str]) -> CertsCommand {
    let mut all = vec!["kmipctl-certs"];
    all.extend(args);
    Cli::try_parse_from(all).unwrap().cmd
}

fn run(args: &[&str]) -> (i32, String) {
    let mut out = Vec::new();
    let code = run_to(parse(args), &mut out).unwrap();
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn clap_definitions_are_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn dir_and_dev_conflict() {
    let err = Cli::try_parse_from(["k", "init", "--dir", "a", "--dev", "b"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    let err = Cli::try_parse_from(["k", "issue-client", "x", "--role", "bad role"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
}

#[test]
fn full_flow_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    let (code, out) = run(&[
        "init",
        "--dev",
        data_s,
        "--key-type",
        "ecdsa-p256",
        "--ca-key-type",
        "ecdsa-p256",
        "--dns",
        "kms.example.test",
        "--ip",
        "127.0.0.1,192.0.2.1",
    ]);
    assert_eq!(code, EXIT_OK);
    assert!(out.contains("Created CA"), "{out}");
    assert!(out.contains("IP:192.0.2.1"), "{out}");
    let pki = data.join("certs");
    assert!(pki.join("server.crt").is_file());

    let (code, out) = run(&[
        "issue-client",
        "vcenter",
        "--role",
        "vcenter",
        "--dev",
        data_s,
        "--key-type",
        "ecdsa-p256",
    ]);
    assert_eq!(code, EXIT_OK, "{out}");
    assert!(pki.join("vcenter.key").is_file());

    // sign-csr with --out
    let (csr, _key) = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "vc-csr");
        (p.serialize_request(&key).unwrap().pem().unwrap(), key)
    };
    std::fs::write(tmp.path().join("vc.csr"), csr).unwrap();
    let signed = tmp.path().join("vc-signed.crt");
    let (code, out) = run(&[
        "sign-csr",
        tmp.path().join("vc.csr").to_str().unwrap(),
        "--role",
        "vcenter",
        "--dir",
        pki.to_str().unwrap(),
        "--out",
        signed.to_str().unwrap(),
    ]);
    assert_eq!(code, EXIT_OK, "{out}");
    assert!(out.contains("recorded in pins.txt"), "{out}");

    // show --json on a bundle of two certificates
    let bundle = tmp.path().join("bundle.pem");
    let mut text = std::fs::read_to_string(&signed).unwrap();
    text.push_str(&std::fs::read_to_string(pki.join("ca.crt")).unwrap());
    std::fs::write(&bundle, text).unwrap();
    let (code, out) = run(&["show", bundle.to_str().unwrap(), "--json"]);
    assert_eq!(code, EXIT_OK);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["subject"], "CN=vc-csr");
    assert_eq!(arr[0]["extended_key_usage"][0], "clientAuth");
    assert_eq!(arr[1]["is_ca"], true);

    let (code, out) = run(&["show", pki.join("server.crt").to_str().unwrap()]);
    assert_eq!(code, EXIT_OK);
    assert!(out.contains("DNS:kms.example.test"), "{out}");
    assert!(out.contains("SHA-256 fingerprint:"), "{out}");

    // lint: clean server certificate
    let (code, out) = run(&["lint", pki.join("server.crt").to_str().unwrap()]);
    assert_eq!(code, EXIT_OK, "{out}");
    assert!(
        out.contains("(server)") && out.contains("no findings"),
        "{out}"
    );
}

#[test]
fn lint_exit_code_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let crt = openssl_self_signed(tmp.path(), "weak", "rsa:1024", &["-sha1"]);
    let (code, out) = run(&["lint", crt.to_str().unwrap(), "--purpose", "client"]);
    assert_eq!(code, EXIT_LINT_ERRORS, "{out}");
    assert!(out.contains("error[rsa-too-small]"), "{out}");
    assert!(out.contains("error[weak-signature]"), "{out}");
    let (code, out) = run(&["lint", crt.to_str().unwrap(), "--json"]);
    assert_eq!(code, EXIT_LINT_ERRORS);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["purpose"], "client");
    assert_eq!(v["findings"][0]["severity"], "error");
}

#[test]
fn pin_and_trust_ca_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let pki_s = pki.to_str().unwrap();
    let crt = openssl_self_signed(
        tmp.path(),
        "vc-self",
        "rsa:2048",
        &["-addext", "basicConstraints=critical,CA:TRUE"],
    );
    let (code, out) = run(&[
        "pin",
        crt.to_str().unwrap(),
        "--role",
        "vcenter",
        "--dir",
        pki_s,
    ]);
    assert_eq!(code, EXIT_OK);
    assert!(out.starts_with("Pinned sha256:"), "{out}");
    let (code, out) = run(&[
        "trust-ca",
        crt.to_str().unwrap(),
        "--role",
        "vcenter",
        "--dir",
        pki_s,
    ]);
    assert_eq!(code, EXIT_OK);
    assert!(out.contains("trusted-cas/vcenter/"), "{out}");
}

#[test]
fn failures_are_errors_for_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.pem");
    let mut out = Vec::new();
    let err = run_to(parse(&["show", missing.to_str().unwrap()]), &mut out).unwrap_err();
    assert!(format!("{err:#}").contains("nope.pem"), "{err:#}");
    let err = run_to(
        parse(&[
            "issue-client",
            "a",
            "--role",
            "admin",
            "--dir",
            tmp.path().to_str().unwrap(),
        ]),
        &mut out,
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("kmipctl certs init"), "{err:#}");
}

#[test]
fn default_dir_and_dev_resolution() {
    match parse(&["pin", "x.pem", "--role", "r"]) {
        CertsCommand::Pin { dir, .. } => {
            assert_eq!(dir.resolve(), std::path::Path::new("./kmipd-dev/certs"))
        }
        other => panic!("{other:?}"),
    }
    match parse(&["pin", "x.pem", "--role", "r", "--dev", "/var/lib/kmipd"]) {
        CertsCommand::Pin { dir, .. } => {
            assert_eq!(dir.resolve(), std::path::Path::new("/var/lib/kmipd/certs"))
        }
        other => panic!("{other:?}"),
    }
}
