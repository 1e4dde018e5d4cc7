//! Shared by the `cli_*` tests: kmipd in dev mode started in-process on
//! 127.0.0.1:0 in a temporary directory (ECDSA certificates, for speed),
//! and the built `kmipctl`/`kmipd` binaries run against it.
#![allow(dead_code)]

use kmipd_server::app::{self, Running};
use kmipd_server::client::{Client, ClientConfig};
use kmipd_server::state::{Clock, FakeClock};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A running dev-mode kmipd.
pub struct Dev {
    pub dir: tempfile::TempDir,
    pub running: Running,
    pub addr: String,
    pub clock: Option<Arc<FakeClock>>,
}

impl Dev {
    /// Starts kmipd in dev mode (system clock).
    pub async fn start() -> Dev {
        Self::start_with(None).await
    }

    /// Starts kmipd in dev mode with a settable clock at `t`.
    pub async fn start_at(t: i64) -> Dev {
        Self::start_with(Some(Arc::new(FakeClock(t.into())))).await
    }

    async fn start_with(clock: Option<Arc<FakeClock>>) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, clock).await
    }

    /// Starts kmipd on an existing (possibly restored) data directory.
    pub async fn start_in(dir: tempfile::TempDir, clock: Option<Arc<FakeClock>>) -> Dev {
        let (mut cfg, _) = kmipd_server::dev::prepare(dir.path(), true).unwrap();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        let running = app::start(&cfg, clock.clone().map(|c| c as Arc<dyn Clock>))
            .await
            .unwrap();
        let addr = running.addr.to_string();
        Dev {
            dir,
            running,
            addr,
            clock,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    pub fn set_time(&self, t: i64) {
        self.clock.as_ref().unwrap().0.store(t, Ordering::SeqCst);
    }

    /// A KMIP client with the `admin` or `vcenter` identity.
    pub async fn client(&self, who: &str) -> Client {
        let c = self.certs();
        let cfg = ClientConfig::from_files(
            &self.addr,
            &c.join("ca.crt"),
            &c.join(format!("{who}.crt")),
            &c.join(format!("{who}.key")),
        )
        .unwrap();
        Client::connect(&cfg).await.unwrap()
    }

    /// Runs kmipctl as the admin (connection through KMIP_* variables).
    pub async fn kmipctl(&self, args: &[&str]) -> Run {
        self.kmipctl_as("admin", args).await
    }

    /// Runs kmipctl with the given identity's certificate.
    pub async fn kmipctl_as(&self, who: &str, args: &[&str]) -> Run {
        let c = self.certs();
        let env = vec![
            ("KMIP_SERVER".to_owned(), self.addr.clone()),
            ("KMIP_CA".to_owned(), path_str(&c.join("ca.crt"))),
            (
                "KMIP_CERT".to_owned(),
                path_str(&c.join(format!("{who}.crt"))),
            ),
            (
                "KMIP_KEY".to_owned(),
                path_str(&c.join(format!("{who}.key"))),
            ),
        ];
        run_bin(env!("CARGO_BIN_EXE_kmipctl"), args, env).await
    }

    /// Polls the audit log until `pred` holds (the writer is a thread).
    pub async fn audit_until(&self, pred: impl Fn(&str) -> bool) -> String {
        let p = self.path().join("audit.log");
        for _ in 0..100 {
            let s = std::fs::read_to_string(&p).unwrap_or_default();
            if pred(&s) {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("audit log never satisfied the condition");
    }
}

pub fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// A finished process.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout.trim()
    }
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code, want,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs a binary off the runtime (the server in this process must keep serving).
pub async fn run_bin(bin: &str, args: &[&str], env: Vec<(String, String)>) -> Run {
    let bin = bin.to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out: Output = tokio::task::spawn_blocking(move || {
        let mut c = std::process::Command::new(bin);
        c.args(&args)
            .env_remove("KMIP_SERVER")
            .env_remove("KMIP_CA")
            .env_remove("KMIP_CERT")
            .env_remove("KMIP_KEY")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    })
    .await
    .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn kmipd(args: &[&str]) -> Run {
    run_bin(env!("CARGO_BIN_EXE_kmipd"), args, vec![]).await
}
