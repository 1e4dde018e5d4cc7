//! Live reload of a new server certificate (`kmipctl certs init --force`):
//! new connections see it within a few seconds by the file watch, or at once
//! after `Running::tls.reload()` (what SIGHUP does); established connections
//! keep working; a certificate that does not load leaves the old one in
//! force.

use kmip::messages::payloads::RequestPayload;
use kmip::tables::Operation;
use kmip::ProtocolVersion;
use kmipd_certs::{InitOptions, KeyType};
use kmipd_tests::*;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

fn vcenter_tls(server: &TestServer) -> Arc<rustls::ClientConfig> {
    tls_client(
        &server.ca_certs(),
        Some(load_pair(&server.pki.vcenter_cert, &server.pki.vcenter_key)),
        TlsVersion::Tls13,
    )
}

/// Replaces server.crt and server.key with a new pair from the same CA.
fn new_server_certificate(server: &TestServer) -> CertificateDer<'static> {
    kmipd_certs::init_ca_and_server(
        &server.pki.dir,
        &InitOptions {
            key_type: KeyType::EcdsaP256,
            ca_key_type: KeyType::EcdsaP256,
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            validity_days: 90,
            force: true,
            ..Default::default()
        },
    )
    .expect("new server certificate");
    kmipd_certs::load_certs(&server.pki.server_cert).unwrap()[0].clone()
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// The server certificate a new connection is served (after a full
/// handshake that the server accepts: Discover Versions answered).
async fn served(server: &TestServer) -> CertificateDer<'static> {
    // A fresh client config each time: no resumption across the change.
    let mut s = tls_connect(server.addr(), vcenter_tls(server))
        .await
        .expect("handshake");
    let leaf = s.get_ref().1.peer_certificates().expect("server chain")[0].clone();
    let msg = request(
        ProtocolVersion::V1_1,
        vec![item(
            Operation::DISCOVER_VERSIONS,
            RequestPayload::DiscoverVersions(Default::default()),
        )],
    );
    let r = decode_response(&roundtrip(&mut s, &encode(&msg)).await.expect("answer"));
    ok_payload(&r.items[0]);
    leaf
}

async fn get_works(c: &mut kmipd_server::client::Client, id: &str) {
    let p = tokio::time::timeout(IO_TIMEOUT, c.call(Operation::GET, get(id)))
        .await
        .expect("in time")
        .expect("Get on an established connection");
    assert_eq!(key_bytes(&p).len(), 32);
}

fn expiry_days(server: &TestServer) -> f64 {
    let text = server.running().server.metrics.render(&[]);
    let line = text
        .lines()
        .find(|l| l.starts_with("kmipd_certificate_expiry_days{kind=\"server\""))
        .unwrap_or_else(|| panic!("no server expiry metric in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_server_certificate_is_picked_up_by_the_file_watch() {
    let server = TestServer::start().await.unwrap();
    let old = served(&server).await;
    let mut established = server.connect(&server.vcenter()).await.unwrap();
    let id = created_id(
        &established
            .call(Operation::CREATE, vcenter_create())
            .await
            .unwrap(),
    );
    let new = new_server_certificate(&server);
    assert_ne!(old, new);
    let started = Instant::now();
    loop {
        if served(&server).await == new {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "new server certificate not served after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The watch polls every two seconds.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The connection made before the change still works.
    get_works(&mut established, &id).await;
    // The expiry metric follows the new certificate (90 days).
    expiry_follows(&server).await;
}

/// The server certificate's expiry metric shows the new 90 days within a
/// few seconds (the watcher publishes after any reload, SIGHUP's too).
async fn expiry_follows(server: &TestServer) {
    let started = Instant::now();
    loop {
        let days = expiry_days(server);
        if (88.0..=90.0).contains(&days) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "expiry metric still {days} days"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_the_new_certificate_at_once() {
    let server = TestServer::start().await.unwrap();
    let old = served(&server).await;
    let mut established = server.connect(&server.vcenter()).await.unwrap();
    let id = created_id(
        &established
            .call(Operation::CREATE, vcenter_create())
            .await
            .unwrap(),
    );
    let (crt_t, key_t) = (
        mtime(&server.pki.server_cert),
        mtime(&server.pki.server_key),
    );
    let new = new_server_certificate(&server);
    // Same modification times as before: the file watch sees no change, so
    // only the explicit reload can switch.
    set_mtime(&server.pki.server_cert, crt_t);
    set_mtime(&server.pki.server_key, key_t);
    assert_eq!(served(&server).await, old, "nothing reloads on its own");
    server.running().tls.reload().expect("reload");
    assert_eq!(served(&server).await, new, "served at once after reload");
    get_works(&mut established, &id).await;
    // A new connection with the new certificate does real work too.
    let mut c = server.connect(&server.vcenter()).await.unwrap();
    get_works(&mut c, &id).await;
    expiry_follows(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_certificate_keeps_the_old_one_in_force() {
    let server = TestServer::start().await.unwrap();
    let old = served(&server).await;
    let good = std::fs::read(&server.pki.server_cert).unwrap();
    std::fs::write(&server.pki.server_cert, b"not a certificate\n").unwrap();
    let err = server
        .running()
        .tls
        .reload()
        .expect_err("a broken server.crt must not load");
    assert!(
        err.to_string().contains("server.crt"),
        "the error names the file: {err}"
    );
    assert_eq!(served(&server).await, old);
    // The file watch tries too (and fails) without disturbing clients.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(served(&server).await, old);
    // A key that does not belong to the certificate is refused as well.
    std::fs::write(&server.pki.server_cert, &good).unwrap();
    std::fs::copy(&server.pki.vcenter_key, &server.pki.server_key).unwrap();
    assert!(
        server.running().tls.reload().is_err(),
        "server.key of another certificate must not load"
    );
    assert_eq!(served(&server).await, old);
}
