//! A small KMIP client over mutual TLS, for `kmipctl` and the tests.

use anyhow::{bail, Context};
use kmip::messages::payloads::{RequestPayload, ResponsePayload};
use kmip::messages::{
    RequestBatchItem, RequestHeader, RequestMessage, ResponseBatchItem, ResponseMessage,
};
use kmip::tables::{Operation, ResultStatus};
use kmip::ttlv::{check_header, HEADER_LEN};
use kmip::{Limits, ProtocolVersion};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port`.
    pub server: String,
    /// CA certificate(s) that sign the server certificate.
    pub ca: Vec<CertificateDer<'static>>,
    /// Client certificate chain.
    pub cert: Vec<CertificateDer<'static>>,
    /// Client key.
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl ClientConfig {
    /// Loads PEM files.
    pub fn from_files(server: &str, ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            server: server.to_owned(),
            ca: kmipd_certs::load_certs(ca).with_context(|| format!("CA {}", ca.display()))?,
            cert: kmipd_certs::load_certs(cert)
                .with_context(|| format!("certificate {}", cert.display()))?,
            key: Arc::new(
                kmipd_certs::load_private_key(key)
                    .with_context(|| format!("key {}", key.display()))?,
            ),
        })
    }

    /// The admin identity of a `kmipd --dev` data directory.
    pub fn dev(dir: &Path, server: &str) -> anyhow::Result<Self> {
        let c = dir.join("certs");
        Self::from_files(
            server,
            &c.join("ca.crt"),
            &c.join("admin.crt"),
            &c.join("admin.key"),
        )
    }

    fn rustls(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        for c in &self.ca {
            roots.add(c.clone())?;
        }
        let cfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.cert.clone(), self.key.clone_key())?;
        Ok(Arc::new(cfg))
    }
}

/// A connection.
#[derive(Debug)]
pub struct Client {
    stream: TlsStream<TcpStream>,
    /// Protocol version of requests.
    pub version: ProtocolVersion,
    limits: Limits,
}

impl Client {
    /// Connects and handshakes.
    pub async fn connect(cfg: &ClientConfig) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(&cfg.server)
            .await
            .with_context(|| format!("cannot reach kmipd at {}", cfg.server))?;
        tcp.set_nodelay(true)?;
        let host = cfg
            .server
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&cfg.server);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())?;
        let stream = tokio_rustls::TlsConnector::from(cfg.rustls()?)
            .connect(name, tcp)
            .await
            .context("TLS handshake failed (is the server certificate signed by the CA given, and is this client's certificate trusted?)")?;
        Ok(Self {
            stream,
            version: ProtocolVersion::V1_4,
            limits: Limits {
                max_message_size: 64 << 20,
                ..Limits::default()
            },
        })
    }

    /// Sends raw bytes and reads one raw response message.
    pub async fn roundtrip_bytes(&mut self, request: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.stream.write_all(request).await?;
        self.stream.flush().await?;
        let mut header = [0u8; HEADER_LEN];
        self.stream
            .read_exact(&mut header)
            .await
            .context("server closed the connection")?;
        let frame = check_header(&header, &self.limits)?;
        let mut body = header.to_vec();
        body.resize(HEADER_LEN + frame.body_len, 0);
        self.stream.read_exact(&mut body[HEADER_LEN..]).await?;
        Ok(body)
    }

    /// Sends a message and decodes the response.
    pub async fn send(&mut self, msg: &RequestMessage) -> anyhow::Result<ResponseMessage> {
        let bytes = msg.to_ttlv().to_bytes()?;
        let resp = self.roundtrip_bytes(&bytes).await?;
        Ok(ResponseMessage::from_bytes(&resp, &self.limits)?)
    }

    /// Runs a batch of payloads in one message.
    pub async fn batch(
        &mut self,
        payloads: Vec<(Operation, RequestPayload)>,
    ) -> anyhow::Result<Vec<ResponseBatchItem>> {
        let items: Vec<RequestBatchItem> = payloads
            .into_iter()
            .map(|(operation, payload)| RequestBatchItem {
                operation,
                ephemeral: None,
                unique_batch_item_id: None,
                payload,
                message_extension: None,
            })
            .collect();
        let msg = RequestMessage {
            header: RequestHeader {
                protocol_version: self.version,
                batch_count: items.len() as i32,
                ..Default::default()
            },
            items,
        };
        Ok(self.send(&msg).await?.items)
    }

    /// Runs one operation; a failure becomes an error naming the reason.
    pub async fn call(
        &mut self,
        op: Operation,
        payload: RequestPayload,
    ) -> anyhow::Result<ResponsePayload> {
        let mut items = self.batch(vec![(op, payload)]).await?;
        let item = items.pop().context("empty response")?;
        if item.result_status != ResultStatus::SUCCESS {
            bail!(
                "{} failed: {} ({})",
                op.name().unwrap_or("operation"),
                item.result_message.unwrap_or_default(),
                item.result_reason
                    .and_then(|r| r.name())
                    .unwrap_or("no reason")
            );
        }
        item.payload.context("response without payload")
    }
}
