//! Connection handling under vCenter's status polls, misbehaving clients and
//! a boot storm of ESXi hosts sharing one certificate.

use kmip::messages::payloads::{DiscoverVersionsRequest, RequestPayload, ResponsePayload};
use kmip::tables::{Operation, ResultReason, ResultStatus, State};
use kmip::ProtocolVersion;
use kmipd_tests::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn vcenter_tls(server: &TestServer) -> Arc<rustls::ClientConfig> {
    tls_client(
        &server.ca_certs(),
        Some(load_pair(&server.pki.vcenter_cert, &server.pki.vcenter_key)),
        TlsVersion::Tls13,
    )
}

/// A client doing Get in a loop until `stop`; returns the number of Gets.
fn keep_getting(
    server: &TestServer,
    id: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let cfg = server.vcenter();
    tokio::spawn(async move {
        let mut c = kmipd_server::client::Client::connect(&cfg)
            .await
            .expect("getter connects");
        let mut n = 0u64;
        let want = key_bytes(&c.call(Operation::GET, get(&id)).await.expect("get"));
        while !stop.load(Ordering::Relaxed) {
            let p = tokio::time::timeout(IO_TIMEOUT, c.call(Operation::GET, get(&id)))
                .await
                .expect("get in time")
                .expect("get succeeds while others misbehave");
            assert_eq!(key_bytes(&p), want);
            n += 1;
        }
        n
    })
}

async fn create_key(server: &TestServer) -> String {
    let mut c = server.connect(&server.vcenter()).await.unwrap();
    created_id(&c.call(Operation::CREATE, vcenter_create()).await.unwrap())
}

fn dv(versions: Vec<ProtocolVersion>, header: ProtocolVersion, n: Option<u32>) -> Vec<u8> {
    let payload = RequestPayload::DiscoverVersions(DiscoverVersionsRequest {
        protocol_versions: versions,
    });
    let it = match n {
        Some(n) => qlkc_item(Operation::DISCOVER_VERSIONS, payload, n),
        None => item(Operation::DISCOVER_VERSIONS, payload),
    };
    encode(&request(header, vec![it]))
}

fn versions_of(r: &kmip::messages::ResponseMessage) -> Vec<ProtocolVersion> {
    match ok_payload(&r.items[0]) {
        ResponsePayload::DiscoverVersions(d) => d.protocol_versions.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_polls_do_not_disturb_other_clients() {
    let server = TestServer::start().await.unwrap();
    let id = create_key(&server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let getter = keep_getting(&server, id, stop.clone());
    let cfg = vcenter_tls(&server);
    let started = Instant::now();
    let polls = 100;
    let mut tasks = tokio::task::JoinSet::new();
    // Four pollers in parallel, 25 status checks each.
    for p in 0..4 {
        let cfg = cfg.clone();
        let addr = server.addr();
        tasks.spawn(async move {
            for _ in 0..polls / 4 {
                // 1. Read the server certificate: handshake, then close.
                let mut s = tls_connect(addr, cfg.clone()).await.expect("handshake");
                s.shutdown().await.ok();
                drop(s);
                // 2. Discover Versions twice.
                let mut s = tls_connect(addr, cfg.clone()).await.expect("handshake");
                let r = decode_response(
                    &roundtrip(&mut s, &dv(vec![], ProtocolVersion::V1_1, None))
                        .await
                        .unwrap(),
                );
                assert_eq!(r.header.protocol_version, ProtocolVersion::V1_1);
                assert_eq!(versions_of(&r), ProtocolVersion::SUPPORTED.to_vec());
                let r = decode_response(
                    &roundtrip(&mut s, &dv(vec![], ProtocolVersion::V1_1, Some(p + 1)))
                        .await
                        .unwrap(),
                );
                assert_eq!(r.header.protocol_version, ProtocolVersion::V1_1);
                assert_eq!(versions_of(&r), ProtocolVersion::SUPPORTED.to_vec());
                let mut id = b"QLKC".to_vec();
                id.extend_from_slice(&(p + 1).to_le_bytes());
                assert_eq!(r.items[0].unique_batch_item_id.as_ref().unwrap().0, id);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("poller");
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let gets = getter.await.expect("getter");
    assert!(gets > 0, "the other client made progress");
    assert!(
        elapsed < Duration::from_secs(30),
        "{polls} polls took {elapsed:?}"
    );
    // Connections that closed after the handshake are not failures.
    let failures = server.running().server.metrics.handshake_failures();
    assert!(
        failures.values().all(|n| *n == 0),
        "handshake failures recorded: {failures:?}"
    );
    assert_eq!(
        server
            .running()
            .server
            .metrics
            .accepted
            .load(Ordering::Relaxed),
        2 + 2 * polls as u64,
        "every connection was accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_versions_negotiates() {
    let server = TestServer::start().await.unwrap();
    let mut s = tls_connect(server.addr(), vcenter_tls(&server))
        .await
        .unwrap();
    // The client's list, in the client's order, intersected with the server's.
    let r = decode_response(
        &roundtrip(
            &mut s,
            &dv(
                vec![
                    ProtocolVersion { major: 3, minor: 0 },
                    ProtocolVersion::V1_2,
                    ProtocolVersion::V2_0,
                ],
                ProtocolVersion::V1_2,
                Some(7),
            ),
        )
        .await
        .unwrap(),
    );
    assert_eq!(r.header.protocol_version, ProtocolVersion::V1_2);
    let v = versions_of(&r);
    assert!(!v.is_empty());
    assert!(v
        .iter()
        .all(|x| [ProtocolVersion::V1_2, ProtocolVersion::V2_0].contains(x)));
    assert!(!v.contains(&ProtocolVersion { major: 3, minor: 0 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_clients_are_shrugged_off() {
    let server = TestServer::start().await.unwrap();
    let id = create_key(&server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let getter = keep_getting(&server, id.clone(), stop.clone());
    let ca = server.ca_certs();

    // No client certificate (vCenter 6.5): the handshake completes, the first
    // request is answered Authentication Not Successful, at TLS 1.3 and 1.2.
    for v in [TlsVersion::Tls13, TlsVersion::Tls12] {
        match probe(server.addr(), tls_client(&ca, None, v)).await {
            Probe::Answered(r) => {
                assert_eq!(r.items.len(), 1);
                assert_eq!(r.items[0].result_status, ResultStatus::OPERATION_FAILED);
                assert_eq!(
                    r.items[0].result_reason,
                    Some(ResultReason::AUTHENTICATION_NOT_SUCCESSFUL)
                );
                assert!(r.items[0].payload.is_none());
            }
            other => panic!("{v:?} without a certificate: {other:?}"),
        }
    }

    // Garbage after the handshake: the connection is closed.
    let vc = vcenter_tls(&server);
    for garbage in [
        b"GET / HTTP/1.1\r\nHost: kms\r\n\r\n".to_vec(),
        vec![0xff; 64],
        // A Request Message header claiming a Text String type.
        hex::decode("42007807000000080000000000000000").unwrap(),
    ] {
        let mut s = tls_connect(server.addr(), vc.clone()).await.unwrap();
        s.write_all(&garbage).await.unwrap();
        s.flush().await.unwrap();
        expect_closed(&mut s).await.unwrap();
    }

    // A well-framed message with a garbage body: Invalid Message, and the
    // connection stays usable.
    let mut s = tls_connect(server.addr(), vc.clone()).await.unwrap();
    let bad = hex::decode("42007801000000104200770100000008420069010000000000").unwrap();
    let bad = bad[..24].to_vec();
    let r = decode_response(&roundtrip(&mut s, &bad).await.unwrap());
    assert_eq!(r.items[0].result_status, ResultStatus::OPERATION_FAILED);
    assert_eq!(
        r.items[0].result_reason,
        Some(ResultReason::INVALID_MESSAGE)
    );
    let r = decode_response(
        &roundtrip(
            &mut s,
            &encode(&request(
                ProtocolVersion::V1_1,
                vec![item(Operation::GET, get(&id))],
            )),
        )
        .await
        .unwrap(),
    );
    assert_eq!(key_bytes(ok_payload(&r.items[0])).len(), 32);

    // Plain TCP garbage (not TLS): closed, at most a TLS alert comes back.
    for garbage in [b"hello kmipd\r\n".repeat(40), vec![0u8; 512]] {
        let mut t = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        t.write_all(&garbage).await.unwrap();
        let mut got = Vec::new();
        let r = tokio::time::timeout(IO_TIMEOUT, t.read_to_end(&mut got)).await;
        assert!(r.is_ok(), "plain TCP garbage: connection left open");
        assert!(
            got.is_empty() || (got[0] == 0x15 && got.len() <= 16),
            "plain TCP garbage answered with {got:02x?}"
        );
    }

    // A header claiming a 2 GiB body: closed at once, the body never read.
    for len in [0x8000_0000u32, 0xffff_fff8, (1 << 20) + 8] {
        let mut s = tls_connect(server.addr(), vc.clone()).await.unwrap();
        let mut h = vec![0x42, 0x00, 0x78, 0x01];
        h.extend_from_slice(&len.to_be_bytes());
        s.write_all(&h).await.unwrap();
        s.flush().await.unwrap();
        let t = Instant::now();
        expect_closed(&mut s).await.unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "length {len:#x}: close took {:?}",
            t.elapsed()
        );
    }

    // A client that stalls in the middle of the handshake does not block others.
    let staller = tokio::net::TcpStream::connect(server.addr()).await.unwrap();

    // Still serving: the getter never failed, and a new client works.
    stop.store(true, Ordering::Relaxed);
    assert!(getter.await.expect("getter") > 0);
    let mut c = server.connect(&server.vcenter()).await.unwrap();
    let a = attributes(
        &c.call(Operation::GET_ATTRIBUTES, get_attributes(&id, &["State"]))
            .await
            .unwrap(),
    );
    assert_eq!(a[0].enumeration(), Some(State::PRE_ACTIVE.0));
    drop(staller);
    let failures = server.running().server.metrics.handshake_failures();
    assert!(
        failures.get("not_tls").copied().unwrap_or(0) >= 2,
        "plain TCP garbage counted as not_tls: {failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_esxi_hosts_fetch_one_key() {
    let server = TestServer::start().await.unwrap();
    let id = create_key(&server).await;
    let cfg = vcenter_tls(&server);
    let done = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut hosts = tokio::task::JoinSet::new();
    for h in 0..64u32 {
        let (cfg, id, addr, barrier, done) = (
            cfg.clone(),
            id.clone(),
            server.addr(),
            barrier.clone(),
            done.clone(),
        );
        hosts.spawn(async move {
            let mut s = tls_connect(addr, cfg).await.expect("host handshake");
            // All 64 connected before any asks.
            barrier.wait().await;
            let r = decode_response(
                &roundtrip(&mut s, &dv(vec![], ProtocolVersion::V1_1, None))
                    .await
                    .unwrap(),
            );
            assert_eq!(versions_of(&r), ProtocolVersion::SUPPORTED.to_vec());
            let r = decode_response(
                &roundtrip(
                    &mut s,
                    &encode(&request(
                        ProtocolVersion::V1_1,
                        vec![qlkc_item(Operation::GET, get(&id), h)],
                    )),
                )
                .await
                .unwrap(),
            );
            let key = key_bytes(ok_payload(&r.items[0]));
            let r = decode_response(
                &roundtrip(
                    &mut s,
                    &encode(&request(
                        ProtocolVersion::V1_1,
                        vec![qlkc_item(
                            Operation::GET_ATTRIBUTES,
                            get_attributes(&id, &["State"]),
                            h + 1000,
                        )],
                    )),
                )
                .await
                .unwrap(),
            );
            let a = attributes(ok_payload(&r.items[0]));
            assert_eq!(a[0].enumeration(), Some(State::PRE_ACTIVE.0));
            done.fetch_add(1, Ordering::Relaxed);
            key
        });
    }
    let mut keys = Vec::new();
    while let Some(k) = hosts.join_next().await {
        keys.push(k.expect("host"));
    }
    assert_eq!(done.load(Ordering::Relaxed), 64);
    assert_eq!(keys.len(), 64);
    assert_eq!(keys[0].len(), 32);
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "hosts got different keys"
    );
}
