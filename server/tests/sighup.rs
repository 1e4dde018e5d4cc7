//! The real `kmipd` binary reloads its server certificate on SIGHUP without
//! dropping an established connection, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::{CertificateDer, ServerName};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection as the dev `vcenter` identity, handshake complete.
fn connect(addr: &str, ca: &Path) -> Tls {
    let dir = ca.parent().unwrap();
    let chain = kmipd_certs::load_certs(&dir.join("vcenter.crt")).unwrap();
    let key = kmipd_certs::load_private_key(&dir.join("vcenter.key")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in kmipd_certs::load_certs(ca).unwrap() {
        roots.add(c).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(kmipd_server::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("handshake");
    }
    tls
}

fn leaf(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// Discover Versions answered.
fn discover_versions(tls: &mut Tls) {
    use kmip::messages::payloads::RequestPayload;
    use kmip::messages::{RequestBatchItem, RequestHeader, RequestMessage};
    let msg = RequestMessage {
        header: RequestHeader {
            protocol_version: kmip::ProtocolVersion::V1_1,
            batch_count: 1,
            ..Default::default()
        },
        items: vec![RequestBatchItem {
            operation: kmip::tables::Operation::DISCOVER_VERSIONS,
            ephemeral: None,
            unique_batch_item_id: None,
            payload: RequestPayload::DiscoverVersions(Default::default()),
            message_extension: None,
        }],
    };
    tls.write_all(&msg.to_ttlv().to_bytes().unwrap()).unwrap();
    tls.flush().unwrap();
    let mut header = [0u8; 8];
    tls.read_exact(&mut header).unwrap();
    let len = u32::from_be_bytes(header[4..8].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len];
    tls.read_exact(&mut body).unwrap();
    let mut all = header.to_vec();
    all.extend(body);
    let r = kmip::messages::ResponseMessage::from_bytes(&all, &kmip::Limits::default()).unwrap();
    assert_eq!(
        r.items[0].result_status,
        kmip::tables::ResultStatus::SUCCESS
    );
}

fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(st.success());
}

#[test]
fn sighup_reloads_the_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_kmipd"))
            .args(["--dev", "--ecdsa", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kmipd starts"),
    );
    let pid = child.0.id();
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("kmipd prints its address")
            .expect("stdout");
        if let Some(a) = line.split("serving KMIP on ").nth(1) {
            break a.trim().to_owned();
        }
    };
    // Keep draining stdout so kmipd never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let pki = dir.path().join("certs");
    let ca = pki.join("ca.crt");
    let (crt, key) = (pki.join("server.crt"), pki.join("server.key"));

    let mut established = connect(&addr, &ca);
    let old = leaf(&established);
    discover_versions(&mut established);

    let times = (
        std::fs::metadata(&crt).unwrap().modified().unwrap(),
        std::fs::metadata(&key).unwrap().modified().unwrap(),
    );
    kmipd_certs::init_ca_and_server(
        &pki,
        &kmipd_certs::InitOptions {
            key_type: kmipd_certs::KeyType::EcdsaP256,
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            force: true,
            ..Default::default()
        },
    )
    .unwrap();
    let new = kmipd_certs::load_certs(&crt).unwrap()[0].clone();
    assert_ne!(old, new);
    // The file watch compares modification times: put the old ones back so
    // only SIGHUP can make kmipd switch.
    set_mtime(&crt, times.0);
    set_mtime(&key, times.1);
    assert_eq!(leaf(&connect(&addr, &ca)), old);

    signal(pid, "-HUP");
    let started = Instant::now();
    while leaf(&connect(&addr, &ca)) != new {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "SIGHUP did not reload the server certificate"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The connection made before the reload still works, and so does a new one.
    discover_versions(&mut established);
    discover_versions(&mut connect(&addr, &ca));

    signal(pid, "-TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "kmipd did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
