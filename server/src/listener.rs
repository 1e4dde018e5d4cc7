//! The KMIP listener: accept, TLS handshake under a deadline, then one task
//! per connection reading framed messages (the 8-byte header is checked
//! against the size limit before the body is read) and answering them in
//! order, with idle and per-request deadlines and graceful shutdown.
//!
//! Failed handshakes, clients that connect and close, and garbage bytes cost
//! only their own task; a connection cap protects memory.

use crate::access::Caller;
use crate::ops::batch;
use crate::state::Server;
use crate::tls::{cert_facts, Reloadable};
use kmip::ttlv::{check_header, HEADER_LEN};
use kmip::Limits;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// Listener limits and deadlines.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// Concurrent connections.
    pub max_connections: usize,
    /// TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// Idle deadline waiting for the next request.
    pub idle_timeout: Duration,
    /// Deadline to read a body and answer it.
    pub request_timeout: Duration,
    /// Time in-flight requests get at shutdown.
    pub shutdown_grace: Duration,
    /// Decoding limits.
    pub limits: Limits,
}

/// Serves until `shutdown` turns true, then finishes in-flight requests
/// (up to the grace period) and returns.
pub async fn serve(
    listener: TcpListener,
    server: Arc<Server>,
    tls: Arc<Reloadable>,
    opts: ListenerOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let opts = Arc::new(opts);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            server.metrics.handshake_failure("connection_limit");
            tracing::warn!(%peer, "connection limit reached; closing");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        server.metrics.accepted.fetch_add(1, Ordering::Relaxed);
        let (server, tls, opts, shutdown) =
            (server.clone(), tls.clone(), opts.clone(), shutdown.clone());
        tokio::spawn(async move {
            server.metrics.connections.fetch_add(1, Ordering::Relaxed);
            connection(tcp, peer, &server, &tls, &opts, shutdown).await;
            server.metrics.connections.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    // Wait for connections to finish their current request.
    let all = opts.max_connections as u32;
    let _ = tokio::time::timeout(opts.shutdown_grace, slots.acquire_many(all)).await;
}

fn handshake_cause(e: &std::io::Error) -> &'static str {
    use rustls::{CertificateError as C, Error as R};
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return "closed_during_handshake";
    }
    // tokio-rustls wraps the rustls error: classify by its value, since the
    // text changes between rustls versions (0.23 says "certificate expired:
    // verification time …" for ExpiredContext) and webpki's CaUsedAsEndEntity
    // (an unpinned self-signed vCenter certificate) has no telling name.
    if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<R>()) {
        return match r {
            R::NoCertificatesPresented => "no_client_certificate",
            R::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => "certificate_expired",
            R::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
                "certificate_not_yet_valid"
            }
            R::InvalidCertificate(_) => "certificate_untrusted",
            R::PeerIncompatible(_) => "incompatible",
            R::InvalidMessage(_) => "not_tls",
            _ => "other",
        };
    }
    let s = e.to_string();
    if s.contains("CertificateRequired") || s.contains("NoCertificatesPresented") {
        "no_client_certificate"
    } else if s.contains("PeerIncompatible")
        || s.contains("NoCipherSuitesInCommon")
        || s.contains("protocol version")
    {
        "incompatible"
    } else if s.contains("CorruptMessage")
        || s.contains("InvalidMessage")
        || s.contains("received corrupt message")
    {
        "not_tls"
    } else {
        "other"
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    server: &Server,
    tls: &Reloadable,
    opts: &ListenerOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let state = tls.current();
    let acceptor = tokio_rustls::TlsAcceptor::from(state.config.clone());
    let mut stream = match tokio::time::timeout(opts.handshake_timeout, acceptor.accept(tcp)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let cause = handshake_cause(&e);
            server.metrics.handshake_failure(cause);
            tracing::debug!(%peer, cause, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            server.metrics.handshake_failure("timeout");
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let caller: Option<Caller> = {
        let (_, conn) = stream.get_ref();
        match conn.peer_certificates().and_then(|c| c.first()) {
            None => None,
            Some(leaf) => {
                let facts = cert_facts(&state, leaf.as_ref());
                match server.policy.identify(&facts, peer) {
                    Ok(c) => Some(c),
                    Err(why) => {
                        tracing::warn!(%peer, cn = ?facts.cn, %why, "client certificate refused");
                        server.metrics.handshake_failure("no_role");
                        None
                    }
                }
            }
        }
    };
    drop(state);
    let mut body: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let mut header = [0u8; HEADER_LEN];
        let first = tokio::select! {
            r = tokio::time::timeout(opts.idle_timeout, stream.read_exact(&mut header)) => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match first {
            Ok(Ok(_)) => {}
            // A clean close, a reset, or idle too long: the connection ends.
            Ok(Err(_)) | Err(_) => return,
        }
        let frame = match check_header(&header, &opts.limits) {
            Ok(f) => f,
            Err(e) => {
                // Framing is lost: no way to find the next message. Close.
                tracing::debug!(%peer, error = %e, "bad message header; closing");
                return;
            }
        };
        let answered = tokio::time::timeout(opts.request_timeout, async {
            body.clear();
            body.extend_from_slice(&header);
            body.resize(HEADER_LEN + frame.body_len, 0);
            stream.read_exact(&mut body[HEADER_LEN..]).await?;
            let buf = std::mem::take(&mut out);
            let response = batch::handle(server, caller.as_ref(), &body, &opts.limits, buf).await;
            if response.is_empty() {
                return Err(std::io::Error::other("response could not be encoded"));
            }
            stream.write_all(&response).await?;
            stream.flush().await?;
            out = response;
            Ok::<(), std::io::Error>(())
        })
        .await;
        match answered {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection ended");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "request timed out; closing");
                return;
            }
        }
        // Keep memory bounded after an unusually large message.
        if body.capacity() > 1 << 20 {
            body = Vec::with_capacity(4096);
        }
        if out.capacity() > 1 << 20 {
            out = Vec::with_capacity(4096);
        }
    }
}
