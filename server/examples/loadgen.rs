//! Load generator for side-by-side benchmarks (docs/benchmarks.md).
//!
//! Client: runs a KMIP pattern against any server for a fixed time from N
//! concurrent workers and prints operations per second and latency
//! percentiles as one JSON line:
//!
//! ```text
//! loadgen client --server 127.0.0.1:5696 --ca ca.crt --cert c.crt --key c.key \
//!         --pattern vcenter-get --id KEY --workers 16 --seconds 10
//! ```
//!
//! Patterns: `handshake` (connect, handshake, close), `dv` (new connection,
//! Discover Versions), `vcenter-get` (new connection, DV, Get, Get
//! Attributes(State), as vCenter and ESXi hosts do), `get` (Get on a
//! persistent connection), `create` (Create on a persistent connection).
//!
//! Bare: `loadgen bare --listen ADDR --cert ... --key ... --ca ...` is a
//! mutual-TLS server that answers every message with a fixed response and
//! does nothing else: the bare cost of TLS and framing on this machine, the
//! floor kmipd is compared against.

use kmip::messages::attributes::{Attribute, TemplateAttribute};
use kmip::messages::payloads::{
    CreateRequest, DiscoverVersionsRequest, GetAttributesRequest, GetRequest,
};
use kmip::messages::RequestPayload as P;
use kmip::tables::{CryptographicAlgorithm, ObjectType, Operation};
use kmip::Value;
use kmipd_server::client::{Client, ClientConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.get(1).map(String::as_str) {
        Some("client") => rt.block_on(client(&args)),
        Some("bare") => rt.block_on(bare(&args)),
        _ => anyhow::bail!("usage: loadgen client|bare ... (see the source's header)"),
    }
}

async fn one(
    cfg: &ClientConfig,
    pattern: &str,
    id: &Option<String>,
    conn: &mut Option<Client>,
) -> anyhow::Result<()> {
    let dv = || P::DiscoverVersions(DiscoverVersionsRequest::default());
    match pattern {
        "handshake" => {
            let c = Client::connect(cfg).await?;
            drop(c);
        }
        "dv" => {
            let mut c = Client::connect(cfg).await?;
            c.version = kmip::ProtocolVersion::V1_1;
            c.call(Operation::DISCOVER_VERSIONS, dv()).await?;
        }
        "vcenter-get" => {
            let mut c = Client::connect(cfg).await?;
            c.version = kmip::ProtocolVersion::V1_1;
            c.call(Operation::DISCOVER_VERSIONS, dv()).await?;
            let uid = id.clone();
            c.call(
                Operation::GET,
                P::Get(GetRequest {
                    unique_identifier: uid.clone(),
                    ..Default::default()
                }),
            )
            .await?;
            c.call(
                Operation::GET_ATTRIBUTES,
                P::GetAttributes(GetAttributesRequest {
                    unique_identifier: uid,
                    attribute_names: vec!["State".into()],
                    ..Default::default()
                }),
            )
            .await?;
        }
        "get" | "create" => {
            if conn.is_none() {
                let mut c = Client::connect(cfg).await?;
                c.version = kmip::ProtocolVersion::V1_1;
                *conn = Some(c);
            }
            let c = conn
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("no connection"))?;
            if pattern == "get" {
                c.call(
                    Operation::GET,
                    P::Get(GetRequest {
                        unique_identifier: id.clone(),
                        ..Default::default()
                    }),
                )
                .await?;
            } else {
                c.call(
                    Operation::CREATE,
                    P::Create(CreateRequest {
                        object_type: ObjectType::SYMMETRIC_KEY,
                        template_attribute: Some(TemplateAttribute {
                            names: vec![],
                            attributes: vec![
                                Attribute::new(
                                    "Cryptographic Algorithm",
                                    Value::Enumeration(CryptographicAlgorithm::AES.0),
                                ),
                                Attribute::new("Cryptographic Length", Value::Integer(256)),
                                Attribute::new("Cryptographic Usage Mask", Value::Integer(12)),
                            ],
                        }),
                        ..Default::default()
                    }),
                )
                .await?;
            }
        }
        other => anyhow::bail!("unknown pattern {other}"),
    }
    Ok(())
}

async fn client(args: &[String]) -> anyhow::Result<()> {
    let need = |n: &str| arg(args, n).ok_or_else(|| anyhow::anyhow!("{n} is required"));
    let cfg = Arc::new(ClientConfig::from_files(
        &need("--server")?,
        need("--ca")?.as_ref(),
        need("--cert")?.as_ref(),
        need("--key")?.as_ref(),
    )?);
    let pattern = arg(args, "--pattern").unwrap_or_else(|| "vcenter-get".into());
    let id = arg(args, "--id");
    let workers: usize = arg(args, "--workers")
        .map(|w| w.parse())
        .transpose()?
        .unwrap_or(8);
    let seconds: u64 = arg(args, "--seconds")
        .map(|w| w.parse())
        .transpose()?
        .unwrap_or(10);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Vec::<u32>::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (cfg, pattern, id, stop, ok, errors, lat) = (
            cfg.clone(),
            pattern.clone(),
            id.clone(),
            stop.clone(),
            ok.clone(),
            errors.clone(),
            lat.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match one(&cfg, &pattern, &id, &mut conn).await {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        mine.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("loadgen: {e:#}");
                        }
                        conn = None;
                    }
                }
            }
            lat.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = lat.lock().unwrap_or_else(|p| p.into_inner()).clone();
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "{{\"pattern\":\"{pattern}\",\"workers\":{workers},\"ops\":{},\"errors\":{},\"ops_per_sec\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
        ok.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}

/// A mutual-TLS server answering every message with a fixed response.
async fn bare(args: &[String]) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let need = |n: &str| arg(args, n).ok_or_else(|| anyhow::anyhow!("{n} is required"));
    let chain = kmipd_certs::load_certs(need("--cert")?.as_ref())?;
    let key = kmipd_certs::load_private_key(need("--key")?.as_ref())?;
    let mut roots = rustls::RootCertStore::empty();
    for c in kmipd_certs::load_certs(need("--ca")?.as_ref())? {
        roots.add(c)?;
    }
    let provider = kmipd_server::tls::provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(16_384);
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(need("--listen")?).await?;
    // A fixed, valid KMIP response: one successful Discover Versions item.
    let canned = kmip::messages::ResponseMessage {
        header: kmip::messages::ResponseHeader {
            protocol_version: kmip::ProtocolVersion::V1_1,
            time_stamp: kmip::codec::DateTime(0),
            batch_count: 1,
            ..Default::default()
        },
        items: vec![kmip::messages::ResponseBatchItem::success(
            Operation::DISCOVER_VERSIONS,
            None,
            Some(kmip::messages::ResponsePayload::DiscoverVersions(
                kmip::messages::payloads::DiscoverVersionsResponse {
                    protocol_versions: vec![kmip::ProtocolVersion::V1_1],
                },
            )),
        )],
    }
    .to_ttlv()
    .to_bytes()?;
    println!("bare TLS server on {}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let acceptor = acceptor.clone();
        let canned = canned.clone();
        tokio::spawn(async move {
            let Ok(mut s) = acceptor.accept(tcp).await else {
                return;
            };
            let mut header = [0u8; 8];
            let mut body = Vec::new();
            while s.read_exact(&mut header).await.is_ok() {
                let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
                if len > 1 << 20 {
                    return;
                }
                body.resize(len, 0);
                if s.read_exact(&mut body).await.is_err() || s.write_all(&canned).await.is_err() {
                    return;
                }
            }
        });
    }
}
