//! Helpers shared by the integration tests: running the real `openssl` command and making a
//! fast (ECDSA) PKI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kmipd_certs::{InitOptions, KeyType};

/// Runs `openssl` with `args` in `cwd`; panics with the command's output on failure. A
/// missing openssl fails the test: these tests exist to check interoperability with it.
pub fn openssl(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}): install it (Debian: apt-get install openssl)")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed certificate made by `openssl req -x509`; returns the certificate's path.
pub fn openssl_self_signed(cwd: &Path, stem: &str, newkey: &str, extra: &[&str]) -> PathBuf {
    let key = format!("{stem}.key");
    let crt = format!("{stem}.crt");
    let mut args = vec![
        "req", "-x509", "-newkey", newkey, "-nodes", "-keyout", &key, "-out", &crt,
    ];
    let subj = format!("/CN={stem}");
    if !extra.contains(&"-subj") {
        args.extend(["-subj", &subj]);
    }
    if !extra.contains(&"-days") {
        args.extend(["-days", "365"]);
    }
    args.extend(extra);
    openssl(cwd, &args);
    cwd.join(crt)
}

/// A self-signed certificate with explicit validity dates (`YYYYMMDDHHMMSSZ`), made by
/// `openssl ca -selfsign` (openssl 3.0's `req` and `x509` cannot set dates).
pub fn openssl_dated(cwd: &Path, stem: &str, start: &str, end: &str) -> PathBuf {
    let ca_dir = cwd.join(format!("{stem}-ca"));
    std::fs::create_dir_all(ca_dir.join("newcerts")).unwrap();
    std::fs::write(ca_dir.join("index.txt"), "").unwrap();
    std::fs::write(ca_dir.join("serial"), "01\n").unwrap();
    std::fs::write(
        ca_dir.join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = ./index.txt\nnew_certs_dir = ./newcerts\n\
         serial = ./serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n\
         [p]\ncommonName = supplied\n",
    )
    .unwrap();
    let subj = format!("/CN={stem}");
    openssl(
        &ca_dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "k.pem",
            "-subj",
            &subj,
            "-out",
            "r.csr",
        ],
    );
    let out = cwd.join(format!("{stem}.crt"));
    let out_s = out.to_str().unwrap().to_owned();
    openssl(
        &ca_dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-selfsign",
            "-keyfile",
            "k.pem",
            "-in",
            "r.csr",
            "-startdate",
            start,
            "-enddate",
            end,
            "-notext",
            "-out",
            &out_s,
        ],
    );
    out
}

/// `init` options with ECDSA keys (RSA generation is slow in debug builds).
pub fn fast_init() -> InitOptions {
    InitOptions {
        key_type: KeyType::EcdsaP256,
        ca_key_type: KeyType::EcdsaP256,
        dns: vec!["kms.example.test".into()],
        ips: vec!["127.0.0.1".parse().unwrap(), "192.0.2.10".parse().unwrap()],
        ..InitOptions::default()
    }
}

/// DER of the first certificate of a PEM file.
pub fn der(path: &Path) -> Vec<u8> {
    kmipd_certs::load_cert(path).unwrap().to_vec()
}
