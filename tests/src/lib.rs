//! End-to-end test support for kmipd: an in-process server on
//! 127.0.0.1:0 over real mutual TLS, with a development PKI (ECDSA P-256,
//! fast to generate), a software or PKCS#11 master key and the sled store in
//! a temporary directory; client configurations for its identities; raw
//! TLS connections and frame helpers; typed message builders.
#![forbid(unsafe_code)]

use anyhow::{bail, Context};
use kmip::messages::attributes::{Attribute, TemplateAttribute};
use kmip::messages::payloads::{
    CreateRequest, GetAttributesRequest, GetRequest, IdRequest, RequestPayload, ResponsePayload,
};
use kmip::messages::{
    RequestBatchItem, RequestHeader, RequestMessage, ResponseBatchItem, ResponseMessage,
};
use kmip::tables::{CryptographicAlgorithm, ObjectType, Operation, ResultStatus};
use kmip::ttlv::{check_header, HEADER_LEN};
use kmip::{Limits, ProtocolVersion, Value};
use kmipd_server::app::{start, Running};
use kmipd_server::client::{Client, ClientConfig};
use kmipd_server::config::Config;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub use kmipd_certs::DevPkiPaths;

pub mod flows;

/// Every network wait of the tests is bounded by this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A kmipd running in-process in a temporary data directory.
#[derive(Debug)]
pub struct TestServer {
    /// The data directory (removed on drop unless the server was made with [`TestServer::start_in`]).
    pub dir: Option<tempfile::TempDir>,
    /// The data directory path.
    pub data_dir: PathBuf,
    /// The configuration it was started with.
    pub config: Config,
    /// The certificates of the dev PKI.
    pub pki: DevPkiPaths,
    running: Option<Running>,
}

/// The configuration of a test server in `data_dir`: `kmipd --dev` with
/// ECDSA certificates, listening on 127.0.0.1:0 with metrics on 127.0.0.1:0.
pub fn test_config(data_dir: &Path) -> anyhow::Result<(Config, DevPkiPaths)> {
    let (mut config, pki) = kmipd_server::dev::prepare(data_dir, true)?;
    config.server.listen = "127.0.0.1:0".parse()?;
    config.metrics_listen = Some("127.0.0.1:0".parse()?);
    // Short deadlines keep misbehaving-client tests fast.
    config.server.handshake_timeout = Duration::from_secs(5);
    config.server.shutdown_grace = Duration::from_secs(5);
    config.log.audit_file = Some(config.server.data_dir.join("audit.log"));
    Ok((config, pki))
}

impl TestServer {
    /// Starts a server with the default test configuration.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` has changed the test configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("kmipd-e2e-").tempdir()?;
        let mut s = Self::start_in(dir.path(), adjust).await?;
        s.dir = Some(dir);
        Ok(s)
    }

    /// Starts a server in an existing directory (kept after the server ends).
    pub async fn start_in(dir: &Path, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let (mut config, pki) = test_config(dir)?;
        adjust(&mut config);
        let running = start(&config, None).await.context("starting kmipd")?;
        Ok(Self {
            dir: None,
            data_dir: config.server.data_dir.clone(),
            config,
            pki,
            running: Some(running),
        })
    }

    /// The running server.
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("server is running")
    }

    /// The KMIP address.
    pub fn addr(&self) -> SocketAddr {
        self.running().addr
    }

    /// `127.0.0.1:port` for [`ClientConfig`].
    pub fn server_name(&self) -> String {
        format!("127.0.0.1:{}", self.addr().port())
    }

    /// Stops the server and waits until its store is closed.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            // `Running::shutdown` returns once the store is closed.
            tokio::time::timeout(IO_TIMEOUT, r.shutdown())
                .await
                .expect("shutdown finishes");
        }
    }

    /// Stops and starts again on the same data directory and configuration
    /// (a new port). No retry: the store is closed when `stop` returns.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let mut config = self.config.clone();
        config.server.listen = "127.0.0.1:0".parse()?;
        self.running = Some(start(&config, None).await.context("restarting kmipd")?);
        Ok(())
    }

    /// Client configuration of the `admin` identity.
    pub fn admin(&self) -> ClientConfig {
        self.identity("admin")
    }

    /// Client configuration of the `vcenter` identity.
    pub fn vcenter(&self) -> ClientConfig {
        self.identity("vcenter")
    }

    /// Client configuration of a certificate `<pki>/<name>.crt` and `.key`.
    pub fn identity(&self, name: &str) -> ClientConfig {
        ClientConfig::from_files(
            &self.server_name(),
            &self.pki.ca_cert,
            &self.pki.dir.join(format!("{name}.crt")),
            &self.pki.dir.join(format!("{name}.key")),
        )
        .expect("client certificate loads")
    }

    /// Connects with a client configuration (bounded in time).
    pub async fn connect(&self, cfg: &ClientConfig) -> anyhow::Result<Client> {
        let mut c = tokio::time::timeout(IO_TIMEOUT, Client::connect(cfg))
            .await
            .context("connect timed out")??;
        c.version = ProtocolVersion::V1_1;
        Ok(c)
    }

    /// The server's CA certificates (what clients verify the server with).
    pub fn ca_certs(&self) -> Vec<CertificateDer<'static>> {
        kmipd_certs::load_certs(&self.pki.ca_cert).expect("CA loads")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            // Not awaited: the runtime of the test ends with it.
            drop(r);
        }
    }
}

// ---- TLS connections ------------------------------------------------------

/// TLS protocol versions a raw client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.3 only.
    Tls13,
    /// TLS 1.2 only.
    Tls12,
}

/// A rustls client configuration trusting `ca`, presenting `cert` (chain
/// and key) when given.
pub fn tls_client(
    ca: &[CertificateDer<'static>],
    cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    version: TlsVersion,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots.add(c.clone()).expect("CA certificate");
    }
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
        TlsVersion::Tls12 => &[&rustls::version::TLS12],
    };
    let b = rustls::ClientConfig::builder_with_provider(kmipd_server::tls::provider())
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots);
    Arc::new(match cert {
        Some((chain, key)) => b
            .with_client_auth_cert(chain, key)
            .expect("client certificate"),
        None => b.with_no_client_auth(),
    })
}

/// A rustls client configuration that presents `cert` signed with an
/// unrelated `key` (no consistency check: the server must catch it).
pub fn tls_client_mismatched(
    ca: &[CertificateDer<'static>],
    cert: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    version: TlsVersion,
) -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct Fixed(Arc<rustls::sign::CertifiedKey>);
    impl rustls::client::ResolvesClientCert for Fixed {
        fn resolve(
            &self,
            _: &[&[u8]],
            _: &[rustls::SignatureScheme],
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
        fn has_certs(&self) -> bool {
            true
        }
    }
    let provider = kmipd_server::tls::provider();
    let signer = provider
        .key_provider
        .load_private_key(key)
        .expect("private key loads");
    let ck = Arc::new(rustls::sign::CertifiedKey::new(cert, signer));
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots.add(c.clone()).expect("CA certificate");
    }
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
        TlsVersion::Tls12 => &[&rustls::version::TLS12],
    };
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(Fixed(ck))),
    )
}

/// Loads a PEM certificate chain and key.
pub fn load_pair(
    cert: &Path,
    key: &Path,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        kmipd_certs::load_certs(cert).expect("certificate loads"),
        kmipd_certs::load_private_key(key).expect("key loads"),
    )
}

/// Opens a TCP connection and completes a TLS handshake (from the client's
/// point of view) with `cfg`.
pub async fn tls_connect(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    tokio::time::timeout(
        IO_TIMEOUT,
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))?
}

/// Reads one TTLV message (header checked against 64 MiB).
pub async fn read_frame<S: AsyncReadExt + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    s.read_exact(&mut header).await?;
    let limits = Limits {
        max_message_size: 64 << 20,
        ..Limits::default()
    };
    let frame = check_header(&header, &limits)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let mut body = header.to_vec();
    body.resize(HEADER_LEN + frame.body_len, 0);
    s.read_exact(&mut body[HEADER_LEN..]).await?;
    Ok(body)
}

/// Sends raw bytes and reads one raw response message (bounded in time).
pub async fn roundtrip<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    s: &mut S,
    bytes: &[u8],
) -> std::io::Result<Vec<u8>> {
    tokio::time::timeout(IO_TIMEOUT, async {
        s.write_all(bytes).await?;
        s.flush().await?;
        read_frame(s).await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no response in time"))?
}

/// Waits until the peer closes the connection (EOF or reset), failing if
/// it sends anything or stays open past the deadline.
pub async fn expect_closed<S: AsyncReadExt + Unpin>(s: &mut S) -> anyhow::Result<()> {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(IO_TIMEOUT, s.read(&mut buf)).await {
        Err(_) => bail!("connection still open after {IO_TIMEOUT:?}"),
        Ok(Ok(0)) | Ok(Err(_)) => Ok(()),
        Ok(Ok(n)) => bail!("server sent {n} bytes instead of closing"),
    }
}

/// What happened to a connection attempt followed by one request.
#[derive(Debug)]
pub enum Probe {
    /// The client saw the handshake fail (the message says why).
    HandshakeFailed(String),
    /// The handshake completed for the client, then the server refused the
    /// connection (a TLS alert or a close) instead of answering.
    RefusedAfterHandshake(String),
    /// The server answered the request.
    Answered(ResponseMessage),
}

/// Connects with `cfg`, sends a Discover Versions and a Query, and reports
/// what happened.
pub async fn probe(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> Probe {
    let mut s = match tls_connect(addr, cfg).await {
        Ok(s) => s,
        Err(e) => return Probe::HandshakeFailed(e.to_string()),
    };
    let msg = request(
        ProtocolVersion::V1_1,
        vec![item(
            Operation::GET_ATTRIBUTES,
            RequestPayload::GetAttributes(GetAttributesRequest {
                unique_identifier: Some("no-such-object".into()),
                attribute_names: vec!["State".into()],
                ..Default::default()
            }),
        )],
    );
    match roundtrip(&mut s, &encode(&msg)).await {
        Ok(bytes) => Probe::Answered(
            ResponseMessage::from_bytes(&bytes, &Limits::default()).expect("response decodes"),
        ),
        Err(e) => Probe::RefusedAfterHandshake(e.to_string()),
    }
}

// ---- messages ----------------------------------------------------------------

/// A request message of `version` with `items` (Batch Count set).
pub fn request(version: ProtocolVersion, items: Vec<RequestBatchItem>) -> RequestMessage {
    RequestMessage {
        header: RequestHeader {
            protocol_version: version,
            batch_count: items.len() as i32,
            ..Default::default()
        },
        items,
    }
}

/// A batch item without a Unique Batch Item ID.
pub fn item(operation: Operation, payload: RequestPayload) -> RequestBatchItem {
    RequestBatchItem {
        operation,
        ephemeral: None,
        unique_batch_item_id: None,
        payload,
        message_extension: None,
    }
}

/// A batch item with vCenter's `QLKC` + little-endian counter batch item ID.
pub fn qlkc_item(operation: Operation, payload: RequestPayload, n: u32) -> RequestBatchItem {
    let mut id = b"QLKC".to_vec();
    id.extend_from_slice(&n.to_le_bytes());
    RequestBatchItem {
        unique_batch_item_id: Some(kmip::codec::Bytes(id)),
        ..item(operation, payload)
    }
}

/// Encodes a request.
pub fn encode(msg: &RequestMessage) -> Vec<u8> {
    msg.to_ttlv().to_bytes().expect("request encodes")
}

/// Decodes a response.
pub fn decode_response(bytes: &[u8]) -> ResponseMessage {
    ResponseMessage::from_bytes(bytes, &Limits::default()).expect("response decodes")
}

/// vCenter's Create: AES-256, Encrypt|Decrypt, nothing else (1.x template).
pub fn vcenter_create() -> RequestPayload {
    RequestPayload::Create(CreateRequest {
        object_type: ObjectType::SYMMETRIC_KEY,
        template_attribute: Some(TemplateAttribute {
            names: vec![],
            attributes: vec![
                Attribute::new(
                    "Cryptographic Algorithm",
                    Value::Enumeration(CryptographicAlgorithm::AES.0),
                ),
                Attribute::new("Cryptographic Usage Mask", Value::Integer(12)),
                Attribute::new("Cryptographic Length", Value::Integer(256)),
            ],
        }),
        ..Default::default()
    })
}

/// Get by id.
pub fn get(id: &str) -> RequestPayload {
    RequestPayload::Get(GetRequest {
        unique_identifier: Some(id.into()),
        ..Default::default()
    })
}

/// Get Attributes of one named attribute (1.x).
pub fn get_attributes(id: &str, names: &[&str]) -> RequestPayload {
    RequestPayload::GetAttributes(GetAttributesRequest {
        unique_identifier: Some(id.into()),
        attribute_names: names.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    })
}

/// A payload with only an optional Unique Identifier (Activate, Destroy…).
pub fn id_payload(id: Option<&str>) -> RequestPayload {
    RequestPayload::Activate(IdRequest {
        unique_identifier: id.map(str::to_owned),
    })
}

/// A successful item's payload, or a panic naming the failure.
pub fn ok_payload(item: &ResponseBatchItem) -> &ResponsePayload {
    assert_eq!(
        item.result_status,
        ResultStatus::SUCCESS,
        "{:?} failed: {:?} {:?}",
        item.operation,
        item.result_reason,
        item.result_message
    );
    item.payload
        .as_ref()
        .expect("successful item has a payload")
}

/// The raw key bytes of a Get response.
pub fn key_bytes(p: &ResponsePayload) -> Vec<u8> {
    match p {
        ResponsePayload::Get(g) => g
            .object()
            .and_then(|o| {
                o.key_block()
                    .and_then(|kb| kb.key_value.as_ref())
                    .and_then(|kv| kv.key_bytes().map(<[u8]>::to_vec))
            })
            .expect("Get response carries key bytes"),
        other => panic!("not a Get response: {other:?}"),
    }
}

/// The 1.x attributes of a Get Attributes response.
pub fn attributes(p: &ResponsePayload) -> Vec<Attribute> {
    match p {
        ResponsePayload::GetAttributes(g) => {
            let mut v = g.attributes_1x.clone();
            if let Some(a) = &g.attributes {
                v.extend(a.0.iter().cloned());
            }
            v
        }
        other => panic!("not a Get Attributes response: {other:?}"),
    }
}

/// The Unique Identifier of a Create response.
pub fn created_id(p: &ResponsePayload) -> String {
    match p {
        ResponsePayload::Create(c) => c.unique_identifier.clone(),
        other => panic!("not a Create response: {other:?}"),
    }
}

// ---- external tools -------------------------------------------------------

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The Python interpreter with PyKMIP 0.11: `KMIPD_TEST_PYTHON`, else
/// `<workspace>/.venv/bin/python`; a missing one fails the test.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KMIPD_TEST_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "KMIPD_TEST_PYTHON={} does not exist; run scripts/test.sh, which installs PyKMIP 0.11 into .venv",
            p.display()
        );
        return p;
    }
    let p = workspace_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "no Python with PyKMIP 0.11: set KMIPD_TEST_PYTHON or run scripts/test.sh, which installs it into {}",
        p.display()
    );
    p
}

/// Runs a command to completion, failing with its output when it fails.
pub fn run(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `openssl` with `args` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    run(std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args))
}
