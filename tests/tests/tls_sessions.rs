//! TLS session resumption over mutual TLS: a second connection from the same
//! rustls client configuration resumes (TLS 1.3 tickets, TLS 1.2 session
//! ids and tickets), the resumed connection keeps the client's identity, and
//! a TLS reload (new trust) forces full handshakes again.

use kmip::tables::Operation;
use kmip::ProtocolVersion;
use kmipd_tests::*;
use rustls::client::{Resumption, Tls12Resumption};
use rustls::HandshakeKind;
use std::sync::Arc;

async fn create_key(server: &TestServer) -> String {
    let mut c = server.connect(&server.vcenter()).await.unwrap();
    created_id(&c.call(Operation::CREATE, vcenter_create()).await.unwrap())
}

fn vcenter_cfg(server: &TestServer, version: TlsVersion) -> rustls::ClientConfig {
    (*tls_client(
        &server.ca_certs(),
        Some(load_pair(&server.pki.vcenter_cert, &server.pki.vcenter_key)),
        version,
    ))
    .clone()
}

/// Connects, checks the handshake kind, and Gets `id` as vCenter (the
/// resumed session must still carry the client certificate's identity).
/// Reading the response also takes in TLS 1.3 tickets sent after the
/// handshake.
async fn connect_and_get(
    server: &TestServer,
    cfg: &Arc<rustls::ClientConfig>,
    id: &str,
) -> HandshakeKind {
    let mut s = tls_connect(server.addr(), cfg.clone())
        .await
        .expect("handshake");
    let kind = s.get_ref().1.handshake_kind().expect("handshake done");
    let msg = request(ProtocolVersion::V1_1, vec![item(Operation::GET, get(id))]);
    let r = decode_response(&roundtrip(&mut s, &encode(&msg)).await.expect("answer"));
    assert_eq!(key_bytes(ok_payload(&r.items[0])).len(), 32);
    kind
}

async fn resumes(server: &TestServer, cfg: rustls::ClientConfig, what: &str) {
    let id = create_key(server).await;
    let cfg = Arc::new(cfg);
    assert_eq!(
        connect_and_get(server, &cfg, &id).await,
        HandshakeKind::Full,
        "{what}: first connection"
    );
    for n in 2..=4 {
        assert_eq!(
            connect_and_get(server, &cfg, &id).await,
            HandshakeKind::Resumed,
            "{what}: connection {n} should resume"
        );
    }
    // A reload builds a new session cache and ticket key: sessions made
    // under the old trust do not resume.
    server.running().tls.reload().expect("reload");
    assert_eq!(
        connect_and_get(server, &cfg, &id).await,
        HandshakeKind::Full,
        "{what}: first connection after a reload"
    );
    assert_eq!(
        connect_and_get(server, &cfg, &id).await,
        HandshakeKind::Resumed,
        "{what}: resumes again after the reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_resumes_with_tickets() {
    let server = TestServer::start().await.unwrap();
    resumes(&server, vcenter_cfg(&server, TlsVersion::Tls13), "TLS 1.3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_resumes_with_session_ids() {
    let server = TestServer::start().await.unwrap();
    let mut cfg = vcenter_cfg(&server, TlsVersion::Tls12);
    // No ticket extension: the server's session-id cache must do it.
    cfg.resumption =
        Resumption::in_memory_sessions(64).tls12_resumption(Tls12Resumption::SessionIdOnly);
    resumes(&server, cfg, "TLS 1.2 session id").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_resumes_with_tickets() {
    let server = TestServer::start().await.unwrap();
    let mut cfg = vcenter_cfg(&server, TlsVersion::Tls12);
    cfg.resumption =
        Resumption::in_memory_sessions(64).tls12_resumption(Tls12Resumption::SessionIdOrTickets);
    resumes(&server, cfg, "TLS 1.2 ticket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_without_a_certificate_stays_unauthenticated() {
    // A client without a certificate resumes too, and is still refused.
    let server = TestServer::start().await.unwrap();
    let id = create_key(&server).await;
    let cfg = tls_client(&server.ca_certs(), None, TlsVersion::Tls13);
    for n in 0..2 {
        let mut s = tls_connect(server.addr(), cfg.clone()).await.unwrap();
        let kind = s.get_ref().1.handshake_kind().unwrap();
        assert_eq!(
            kind,
            if n == 0 {
                HandshakeKind::Full
            } else {
                HandshakeKind::Resumed
            }
        );
        let msg = request(ProtocolVersion::V1_1, vec![item(Operation::GET, get(&id))]);
        let r = decode_response(&roundtrip(&mut s, &encode(&msg)).await.unwrap());
        assert_eq!(
            r.items[0].result_reason,
            Some(kmip::tables::ResultReason::AUTHENTICATION_NOT_SUCCESSFUL),
            "{:?}",
            r.items[0]
        );
    }
}
