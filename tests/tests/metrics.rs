//! Prometheus `/metrics` and `/healthz` over HTTP on the metrics listener:
//! requests by operation and result, latency histograms, handshake failures
//! by cause, open connections, objects by state, certificate expiry days;
//! `/healthz` reports the store and the HSM.

use kmip::tables::Operation;
use kmipd_tests::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// GET `path`: (status code, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    tokio::time::timeout(IO_TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: kmipd\r\nAccept: */*\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8(buf).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("Content-Length")
            .parse()
            .unwrap();
        assert_eq!(len, body.len(), "Content-Length matches the body");
        (status, body.to_owned())
    })
    .await
    .expect("HTTP answer in time")
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.rsplit_once(' ').filter(|(s, _)| *s == series))
        .map(|(_, v)| v.parse().unwrap())
}

async fn scrape(server: &TestServer) -> String {
    let addr = server.running().metrics_addr.expect("metrics listener");
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_failures_connections_objects_and_expiry() {
    let server = TestServer::start().await.unwrap();
    let mut c = server.connect(&server.vcenter()).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(created_id(
            &c.call(Operation::CREATE, vcenter_create()).await.unwrap(),
        ));
    }
    c.call(Operation::ACTIVATE, id_payload(Some(&ids[0])))
        .await
        .unwrap();
    for id in &ids {
        c.call(Operation::GET, get(id)).await.unwrap();
    }
    c.call(Operation::GET, get("no-such-key"))
        .await
        .unwrap_err();

    // Handshake failures of three causes.
    {
        // Connect and close at once.
        drop(TcpStream::connect(server.addr()).await.unwrap());
        // Not TLS at all.
        let mut s = TcpStream::connect(server.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let _ = expect_closed(&mut s).await;
        // A certificate of a CA kmipd does not trust.
        let other = tempfile::tempdir().unwrap();
        let stranger = kmipd_certs::ensure_dev_pki(
            other.path(),
            &kmipd_certs::DevPkiOptions {
                key_type: kmipd_certs::KeyType::EcdsaP256,
                ca_key_type: kmipd_certs::KeyType::EcdsaP256,
                ..Default::default()
            },
        )
        .unwrap();
        let cfg = tls_client(
            &server.ca_certs(),
            Some(load_pair(&stranger.vcenter_cert, &stranger.vcenter_key)),
            TlsVersion::Tls13,
        );
        assert!(!matches!(
            probe(server.addr(), cfg).await,
            Probe::Answered(_)
        ));
    }

    // Two more open connections besides `c`.
    let extra = [
        server.connect(&server.vcenter()).await.unwrap(),
        server.connect(&server.admin()).await.unwrap(),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(&server).await;
        let causes = [
            "closed_during_handshake",
            "not_tls",
            "certificate_untrusted",
        ];
        // Failed handshakes leave the open-connection gauge a moment after
        // they are counted.
        if sample(&text, "kmipd_connections_open") == Some(3.0)
            && causes.iter().all(|c| {
                sample(
                    &text,
                    &format!("kmipd_handshake_failures_total{{cause=\"{c}\"}}"),
                ) >= Some(1.0)
            })
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "handshake failures not counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let get = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(
        get("kmipd_requests_total{operation=\"Create\",result=\"success\"}"),
        3.0
    );
    assert_eq!(
        get("kmipd_requests_total{operation=\"Get\",result=\"success\"}"),
        3.0
    );
    assert_eq!(
        get("kmipd_requests_total{operation=\"Get\",result=\"Item Not Found\"}"),
        1.0
    );
    assert_eq!(
        get("kmipd_requests_total{operation=\"Activate\",result=\"success\"}"),
        1.0
    );
    assert_eq!(
        get("kmipd_request_duration_milliseconds_count{operation=\"Get\"}"),
        4.0
    );
    assert_eq!(
        get("kmipd_request_duration_milliseconds_bucket{operation=\"Create\",le=\"+Inf\"}"),
        3.0
    );
    assert_eq!(get("kmipd_connections_open"), 3.0);
    assert_eq!(get("kmipd_objects{state=\"Pre-Active\"}"), 2.0);
    assert_eq!(get("kmipd_objects{state=\"Active\"}"), 1.0);
    assert_eq!(get("kmipd_objects{state=\"Destroyed\"}"), 0.0);
    assert!(get("kmipd_hsm_call_duration_milliseconds_count") >= 3.0);
    assert_eq!(get("kmipd_hsm_errors_total"), 0.0);
    // Certificate expiry from the start (the dev server certificate: 825 days).
    let server_days = text
        .lines()
        .find(|l| l.starts_with("kmipd_certificate_expiry_days{kind=\"server\""))
        .unwrap_or_else(|| panic!("no server certificate expiry in\n{text}"));
    let days: f64 = server_days.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((800.0..=826.0).contains(&days), "{server_days}");
    assert!(
        text.contains("kmipd_certificate_expiry_days{kind=\"ca\""),
        "{text}"
    );

    // Closed connections leave the gauge.
    drop(extra);
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(&server).await;
        if sample(&text, "kmipd_connections_open") == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connections still counted open:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_store_and_hsm() {
    let server = TestServer::start().await.unwrap();
    let addr = server.running().metrics_addr.expect("metrics listener");
    let (status, body) = http_get(addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("store: ok"), "{body}");
    assert!(body.contains("hsm: Ok"), "{body}");
    let (status, _) = http_get(addr, "/nothing-here").await;
    assert_eq!(status, 404);
    // The KMIP side is untouched by scrapes.
    let mut c = server.connect(&server.vcenter()).await.unwrap();
    c.call(Operation::CREATE, vcenter_create()).await.unwrap();
}
