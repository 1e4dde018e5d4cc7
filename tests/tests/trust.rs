//! vCenter's four trust methods end to end over mutual TLS against a
//! running kmipd, with certificates made by openssl as well as by kmipd,
//! and the rejections: unpinned self-signed, expired, not yet valid, wrong
//! CA, wrong key for the certificate. A new pin is picked up without a
//! restart.

use kmip::tables::{Operation, ResultReason, ResultStatus};
use kmipd_certs::{ClientName, KeyType, Role};
use kmipd_tests::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

fn role(r: &str) -> Role {
    Role::new(r).unwrap()
}

/// `openssl req` options for a new P-256 key without a passphrase.
const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// A self-signed certificate as vCenter makes it: CA:TRUE, no EKU.
fn openssl_self_signed(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let subj = format!("/CN={cn}");
    let mut args = vec!["req", "-x509"];
    args.extend(EC);
    args.extend([
        "-keyout",
        &key,
        "-out",
        &crt,
        "-subj",
        &subj,
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
    ]);
    openssl(dir, &args);
    let text =
        String::from_utf8(openssl(dir, &["x509", "-in", &crt, "-noout", "-text"]).stdout).unwrap();
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(!text.contains("Extended Key Usage"), "{text}");
    (dir.join(crt), dir.join(key))
}

/// A leaf signed by an openssl CA, with `ext` as its extensions.
fn openssl_leaf(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) -> (PathBuf, PathBuf) {
    let (crt, key, csr, extf) = (
        format!("{name}.crt"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&extf), ext).unwrap();
    let subj = format!("/CN={cn}");
    let mut args = vec!["req", "-new"];
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
    openssl(dir, &args);
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "30",
            "-extfile",
            &extf,
        ],
    );
    (dir.join(crt), dir.join(key))
}

fn pair(crt: &Path, key: &Path) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    load_pair(crt, key)
}

/// The client works: Create and Get as the vcenter role.
async fn works(server: &TestServer, crt: &Path, key: &Path) {
    for v in [TlsVersion::Tls13, TlsVersion::Tls12] {
        let cfg = tls_client(&server.ca_certs(), Some(pair(crt, key)), v);
        let mut s = tls_connect(server.addr(), cfg).await.expect("handshake");
        let r = decode_response(
            &roundtrip(
                &mut s,
                &encode(&request(
                    kmip::ProtocolVersion::V1_1,
                    vec![item(Operation::CREATE, vcenter_create())],
                )),
            )
            .await
            .expect("answered"),
        );
        let id = created_id(ok_payload(&r.items[0]));
        let r = decode_response(
            &roundtrip(
                &mut s,
                &encode(&request(
                    kmip::ProtocolVersion::V1_1,
                    vec![item(Operation::GET, get(&id))],
                )),
            )
            .await
            .unwrap(),
        );
        assert_eq!(key_bytes(ok_payload(&r.items[0])).len(), 32, "{v:?}");
    }
}

/// The certificate is refused. At TLS 1.2 the handshake fails with an
/// alert; at TLS 1.3 the client's side of the handshake completes and the
/// server's alert arrives instead of the first response. Either way no
/// KMIP answer comes back, and the server counts the failure under `cause`.
async fn refused(
    server: &TestServer,
    cfg: impl Fn(TlsVersion) -> Arc<rustls::ClientConfig>,
    cause: &str,
    alert: &str,
) {
    let before = server
        .running()
        .server
        .metrics
        .handshake_failures()
        .get(cause)
        .copied()
        .unwrap_or(0);
    match probe(server.addr(), cfg(TlsVersion::Tls12)).await {
        Probe::HandshakeFailed(e) => assert!(e.contains(alert), "TLS 1.2: {e}"),
        other => panic!("TLS 1.2 ({cause}): expected a failed handshake, got {other:?}"),
    }
    match probe(server.addr(), cfg(TlsVersion::Tls13)).await {
        Probe::RefusedAfterHandshake(e) => assert!(e.contains(alert), "TLS 1.3: {e}"),
        other => panic!("TLS 1.3 ({cause}): expected a refusal after the handshake, got {other:?}"),
    }
    // The server side records the cause (after its task notices).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = server
            .running()
            .server
            .metrics
            .handshake_failures()
            .get(cause)
            .copied()
            .unwrap_or(0);
        if now >= before + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "handshake failures {cause}: {:?}",
            server.running().server.metrics.handshake_failures()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn with_cert(
    server: &TestServer,
    crt: &Path,
    key: &Path,
) -> impl Fn(TlsVersion) -> Arc<rustls::ClientConfig> {
    let ca = server.ca_certs();
    let (crt, key) = (crt.to_owned(), key.to_owned());
    move |v| tls_client(&ca, Some(pair(&crt, &key)), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csr_signed_by_kmipd_ca() {
    let server = TestServer::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut args = vec!["req", "-new"];
    args.extend(EC);
    args.extend([
        "-keyout",
        "vc.key",
        "-out",
        "vc.csr",
        "-subj",
        "/C=US/O=VMware/OU=vCenter/CN=vcsa.example.com",
    ]);
    openssl(work.path(), &args);
    let csr = std::fs::read(work.path().join("vc.csr")).unwrap();
    let signed = kmipd_certs::sign_csr(&server.pki.dir, &csr, &role("vcenter"), 365).unwrap();
    std::fs::write(work.path().join("vc.crt"), &signed.issued.cert_pem).unwrap();
    // openssl agrees that the certificate is signed by kmipd's CA.
    let ca = server.pki.ca_cert.to_str().unwrap().to_owned();
    openssl(
        work.path(),
        &["verify", "-CAfile", &ca, "-purpose", "sslclient", "vc.crt"],
    );
    server.running().tls.reload().unwrap();
    works(
        &server,
        &work.path().join("vc.crt"),
        &work.path().join("vc.key"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_certificate_and_key() {
    let server = TestServer::start().await.unwrap();
    let files = kmipd_certs::issue_client(
        &server.pki.dir,
        &ClientName::new("vcsa-01").unwrap(),
        &role("vcenter"),
        KeyType::EcdsaP256,
        365,
        false,
    )
    .unwrap();
    // The key file is PKCS#8 PEM, as vCenter's upload takes it.
    let key = std::fs::read_to_string(&files.key_path).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    works(&server, &files.cert_path, &files.key_path).await;
    // A host-role certificate reads but cannot create.
    let host = kmipd_certs::issue_client(
        &server.pki.dir,
        &ClientName::new("esxi-07").unwrap(),
        &role("host"),
        KeyType::EcdsaP256,
        365,
        false,
    )
    .unwrap();
    let cfg = tls_client(
        &server.ca_certs(),
        Some(pair(&host.cert_path, &host.key_path)),
        TlsVersion::Tls13,
    );
    let mut s = tls_connect(server.addr(), cfg).await.unwrap();
    let r = decode_response(
        &roundtrip(
            &mut s,
            &encode(&request(
                kmip::ProtocolVersion::V1_1,
                vec![item(Operation::CREATE, vcenter_create())],
            )),
        )
        .await
        .unwrap(),
    );
    assert_eq!(r.items[0].result_status, ResultStatus::OPERATION_FAILED);
    assert_eq!(
        r.items[0].result_reason,
        Some(ResultReason::PERMISSION_DENIED)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_self_signed_vcenter_certificate_and_live_reload() {
    let server = TestServer::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let (crt, key) = openssl_self_signed(work.path(), "vcsa", "vcsa.example.com");
    // Not pinned yet: refused.
    refused(
        &server,
        with_cert(&server, &crt, &key),
        "certificate_untrusted",
        "alert",
    )
    .await;
    // Pinned: kmipd notices the changed pin list by itself, no restart,
    // no explicit reload.
    let pinned = Instant::now();
    kmipd_certs::pin(&server.pki.dir, &crt, &role("vcenter"), None).unwrap();
    let deadline = pinned + Duration::from_secs(8);
    loop {
        match probe(
            server.addr(),
            with_cert(&server, &crt, &key)(TlsVersion::Tls13),
        )
        .await
        {
            Probe::Answered(_) => break,
            other => assert!(
                Instant::now() < deadline,
                "pin not picked up after {:?}: {other:?}",
                pinned.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        pinned.elapsed() < Duration::from_secs(5),
        "{:?}",
        pinned.elapsed()
    );
    works(&server, &crt, &key).await;
    // The same subject with another key is not the pinned certificate.
    let other = tempfile::tempdir().unwrap();
    let (crt2, key2) = openssl_self_signed(other.path(), "vcsa", "vcsa.example.com");
    refused(
        &server,
        with_cert(&server, &crt2, &key2),
        "certificate_untrusted",
        "alert",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_foreign_ca() {
    let server = TestServer::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut args = vec!["req", "-x509"];
    args.extend(EC);
    args.extend([
        "-keyout",
        "root.key",
        "-out",
        "root.crt",
        "-subj",
        "/O=VMware/CN=vCenter Root CA",
        "-days",
        "365",
    ]);
    openssl(w, &args);
    let client_ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n";
    let (crt, key) = openssl_leaf(w, "root", "vc", "vcsa.example.com", client_ext);
    let (noeku_crt, noeku_key) = openssl_leaf(
        w,
        "root",
        "vc-noeku",
        "vcsa2.example.com",
        "basicConstraints=CA:FALSE\n",
    );
    let (srv_crt, srv_key) = openssl_leaf(
        w,
        "root",
        "vc-server",
        "vcsa3.example.com",
        "extendedKeyUsage=serverAuth\n",
    );
    // Before trust: unknown CA.
    refused(
        &server,
        with_cert(&server, &crt, &key),
        "certificate_untrusted",
        "alert",
    )
    .await;
    kmipd_certs::trust_ca(&server.pki.dir, &w.join("root.crt"), &role("vcenter")).unwrap();
    server.running().tls.reload().unwrap();
    works(&server, &crt, &key).await;
    // No EKU at all is accepted (vCenter certificates often have none).
    works(&server, &noeku_crt, &noeku_key).await;
    // An EKU without clientAuth is not a client certificate.
    refused(
        &server,
        with_cert(&server, &srv_crt, &srv_key),
        "certificate_untrusted",
        "alert",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_certificates() {
    let server = TestServer::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let ca = kmipd_certs::Ca::load(&server.pki.ca_cert, &server.pki.ca_key).unwrap();
    let write = |name: &str, when: OffsetDateTime| {
        let issued = ca
            .issue_client(
                &ClientName::new(name).unwrap(),
                &role("vcenter"),
                KeyType::EcdsaP256,
                1,
                when,
            )
            .unwrap();
        let (crt, key) = (w.join(format!("{name}.crt")), w.join(format!("{name}.key")));
        std::fs::write(&crt, &issued.cert_pem).unwrap();
        std::fs::write(&key, issued.key_pem.as_ref().unwrap().as_bytes()).unwrap();
        (crt, key)
    };
    let now = OffsetDateTime::now_utc();
    // Expired (valid for one day, ten days ago).
    let (crt, key) = write("expired", now - time::Duration::days(10));
    refused(
        &server,
        with_cert(&server, &crt, &key),
        "certificate_expired",
        "CertificateExpired",
    )
    .await;
    // Not yet valid (from ten days ahead).
    let (crt, key) = write("future", now + time::Duration::days(10));
    refused(
        &server,
        with_cert(&server, &crt, &key),
        "certificate_not_yet_valid",
        "alert",
    )
    .await;
    // Signed by a CA kmipd does not trust.
    let mut args = vec!["req", "-x509"];
    args.extend(EC);
    args.extend([
        "-keyout",
        "rogue.key",
        "-out",
        "rogue.crt",
        "-subj",
        "/CN=Rogue CA",
        "-days",
        "30",
    ]);
    openssl(w, &args);
    let (crt, key) = openssl_leaf(
        w,
        "rogue",
        "rogue-leaf",
        "vcenter",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    refused(
        &server,
        with_cert(&server, &crt, &key),
        "certificate_untrusted",
        "UnknownCA",
    )
    .await;
    // kmipd's own vcenter certificate with another key (admin's).
    let ca_certs = server.ca_certs();
    let (vc_cert, _) = pair(&server.pki.vcenter_cert, &server.pki.vcenter_key);
    let admin_key = server.pki.admin_key.clone();
    refused(
        &server,
        move |v| {
            tls_client_mismatched(
                &ca_certs,
                vc_cert.clone(),
                kmipd_certs::load_private_key(&admin_key).unwrap(),
                v,
            )
        },
        // The CertificateVerify signature does not match the certificate.
        "certificate_untrusted",
        "alert",
    )
    .await;
    // And the genuine certificates still work.
    works(&server, &server.pki.vcenter_cert, &server.pki.vcenter_key).await;
}
