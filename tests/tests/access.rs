//! Lockdown mode and per-role source allowlists (`[access] lockdown`,
//! `admin_from`, `allow_from`), end to end: clients connect from 127.0.0.1
//! or 127.0.0.2 (the whole 127.0.0.0/8 is loopback on Linux) by binding the
//! client socket before connecting.

use kmip::messages::payloads::RequestPayload;
use kmip::messages::ResponseMessage;
use kmip::tables::{Operation, ResultReason, ResultStatus};
use kmip::ProtocolVersion;
use kmipd_server::config::Role;
use kmipd_tests::*;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpSocket;
use tokio_rustls::client::TlsStream;

const HOME: &str = "127.0.0.1";
const ELSEWHERE: &str = "127.0.0.2";

/// A mutual-TLS connection from `source` as `name` (a dev identity).
async fn connect_from(
    server: &TestServer,
    source: &str,
    name: &str,
) -> TlsStream<tokio::net::TcpStream> {
    let dir = &server.pki.dir;
    let cfg = tls_client(
        &server.ca_certs(),
        Some(load_pair(
            &dir.join(format!("{name}.crt")),
            &dir.join(format!("{name}.key")),
        )),
        TlsVersion::Tls13,
    );
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    let tcp = tokio::time::timeout(IO_TIMEOUT, sock.connect(server.addr()))
        .await
        .expect("connect in time")
        .expect("connect");
    assert_eq!(tcp.local_addr().unwrap().ip().to_string(), source);
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio::time::timeout(
        IO_TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::clone(&cfg)).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake")
}

async fn call(
    s: &mut TlsStream<tokio::net::TcpStream>,
    op: Operation,
    payload: RequestPayload,
) -> ResponseMessage {
    let msg = request(ProtocolVersion::V1_1, vec![item(op, payload)]);
    decode_response(&roundtrip(s, &encode(&msg)).await.expect("answered"))
}

fn refused(r: &ResponseMessage, reason: ResultReason, what: &str) -> String {
    let it = &r.items[0];
    assert_eq!(
        it.result_status,
        ResultStatus::OPERATION_FAILED,
        "{what}: {it:?}"
    );
    assert_eq!(it.result_reason, Some(reason), "{what}: {it:?}");
    it.result_message.clone().unwrap_or_default()
}

fn host_cert(server: &TestServer) {
    kmipd_certs::issue_client(
        &server.pki.dir,
        &kmipd_certs::ClientName::new("esxi01").unwrap(),
        &kmipd_certs::Role::new("host").unwrap(),
        kmipd_certs::KeyType::EcdsaP256,
        30,
        false,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockdown_accepts_admin_operations_only_from_admin_from() {
    let server = TestServer::start_with(|c| {
        c.access.lockdown = true;
        c.access.admin_from = vec![format!("{HOME}/32").parse().unwrap()];
    })
    .await
    .unwrap();

    // From a listed address: admin operations work.
    let mut home = connect_from(&server, HOME, "admin").await;
    let r = call(&mut home, Operation::CREATE, vcenter_create()).await;
    let id = created_id(ok_payload(&r.items[0]));
    ok_payload(&call(&mut home, Operation::GET, get(&id)).await.items[0]);

    // From elsewhere: Permission Denied, and the message says why.
    let mut away = connect_from(&server, ELSEWHERE, "admin").await;
    for (op, payload) in [
        (Operation::CREATE, vcenter_create()),
        (Operation::GET, get(&id)),
        (Operation::DESTROY, id_payload(Some(&id))),
    ] {
        let msg = refused(
            &call(&mut away, op, payload).await,
            ResultReason::PERMISSION_DENIED,
            "admin from elsewhere",
        );
        assert!(msg.contains("lockdown"), "{msg}");
    }
    // Discover Versions and Query stay open (status checks).
    let r = call(
        &mut away,
        Operation::DISCOVER_VERSIONS,
        RequestPayload::DiscoverVersions(Default::default()),
    )
    .await;
    ok_payload(&r.items[0]);
    // The key was not destroyed.
    ok_payload(&call(&mut home, Operation::GET, get(&id)).await.items[0]);

    // Lockdown concerns the admin role only: vCenter works from anywhere.
    let mut vc = connect_from(&server, ELSEWHERE, "vcenter").await;
    let r = call(&mut vc, Operation::CREATE, vcenter_create()).await;
    let vid = created_id(ok_payload(&r.items[0]));
    ok_payload(&call(&mut vc, Operation::GET, get(&vid)).await.items[0]);

    // The refusals are audited as such.
    let audit = std::fs::read_to_string(server.data_dir.join("audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains(ELSEWHERE) && l.contains("Permission Denied")),
        "no audit record of the refusal:\n{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_from_restricts_a_role_to_its_networks() {
    let server = TestServer::start_with(|c| {
        c.access.allow_from = vec![
            (Role::Host, vec![format!("{HOME}/32").parse().unwrap()]),
            (Role::Vcenter, vec!["127.0.0.0/8".parse().unwrap()]),
        ];
    })
    .await
    .unwrap();
    host_cert(&server);
    let mut vc = connect_from(&server, ELSEWHERE, "vcenter").await;
    let r = call(&mut vc, Operation::CREATE, vcenter_create()).await;
    let id = created_id(ok_payload(&r.items[0]));

    // The host role from its network: Get works.
    let mut host = connect_from(&server, HOME, "esxi01").await;
    assert_eq!(
        key_bytes(ok_payload(
            &call(&mut host, Operation::GET, get(&id)).await.items[0]
        ))
        .len(),
        32
    );
    // The same certificate from elsewhere is refused, on every operation.
    let mut away = connect_from(&server, ELSEWHERE, "esxi01").await;
    let msg = refused(
        &call(&mut away, Operation::GET, get(&id)).await,
        ResultReason::AUTHENTICATION_NOT_SUCCESSFUL,
        "host from elsewhere",
    );
    assert!(
        msg.contains("address"),
        "the message hints at the address: {msg}"
    );
    // The operator sees it in the handshake failure counts.
    let failures = server.running().server.metrics.handshake_failures();
    assert!(
        failures.get("no_role").copied().unwrap_or(0) >= 1,
        "{failures:?}"
    );

    // A role without an allowlist (admin) is accepted from anywhere.
    let mut admin = connect_from(&server, ELSEWHERE, "admin").await;
    ok_payload(&call(&mut admin, Operation::GET, get(&id)).await.items[0]);
}
