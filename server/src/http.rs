//! A minimal HTTP/1.1 listener for Prometheus `/metrics` and `/healthz`
//! (store and HSM reachable), on its own address.

use crate::catalog::field;
use crate::state::Server;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Objects by state, from the state index.
pub fn objects_by_state(server: &Server) -> Vec<(String, u64)> {
    use kmip::tables::State;
    [
        State::PRE_ACTIVE,
        State::ACTIVE,
        State::DEACTIVATED,
        State::COMPROMISED,
        State::DESTROYED,
        State::DESTROYED_COMPROMISED,
    ]
    .iter()
    .map(|s| {
        let n = server
            .catalog
            .ids_where(field::STATE, &s.0.to_string())
            .map(|v| v.len() as u64)
            .unwrap_or(0);
        (s.name().unwrap_or("unknown").to_owned(), n)
    })
    .collect()
}

/// Health: the store answers and the key protector serves.
pub fn health(server: &Server) -> (bool, String) {
    let store_ok = server
        .catalog
        .backend()
        .get(crate::store::Table::Meta, b"schema_version")
        .is_ok();
    let hsm = server.protector.health();
    let ok = store_ok && hsm.is_serving();
    (
        ok,
        format!(
            "store: {}\nhsm: {:?}\n",
            if store_ok { "ok" } else { "unavailable" },
            hsm
        ),
    )
}

/// Serves until shutdown.
pub async fn serve(
    listener: TcpListener,
    server: Arc<Server>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (mut s, _) = tokio::select! {
            a = listener.accept() => match a { Ok(x) => x, Err(_) => continue },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let server = server.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/");
            let server2 = server.clone();
            let (status, body) = match path {
                "/metrics" => {
                    let body = tokio::task::spawn_blocking(move || {
                        let states = objects_by_state(&server2);
                        server2.metrics.render(&states)
                    })
                    .await
                    .unwrap_or_default();
                    ("200 OK", body)
                }
                "/healthz" => {
                    let (ok, body) = tokio::task::spawn_blocking(move || health(&server2))
                        .await
                        .unwrap_or((false, String::new()));
                    (
                        if ok {
                            "200 OK"
                        } else {
                            "503 Service Unavailable"
                        },
                        body,
                    )
                }
                _ => ("404 Not Found", "not found\n".to_owned()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        });
    }
}
