//! SIGKILL in the middle of a master-key rotation: the real `kmipd` binary
//! re-wraps keys (rate-limited so that the kill lands mid-job), is killed,
//! restarted, and the job resumes by itself and completes; every key is
//! then under the new version and opens to its original value.

mod rotation_support;

use kmip::messages::payloads::{GetRequest, RequestPayload, ResponsePayload};
use kmip::tables::Operation;
use kmip::Ttlv;
use kmipd_hsm::{KeyProtector, SoftwareProtector, WrappedKey};
use kmipd_server::cli::jobs::{fetch, JobView};
use kmipd_server::cli::master::parse_versions;
use kmipd_server::cli::vendor;
use kmipd_server::client::{Client, ClientConfig};
use kmipd_server::ops::admin::{op, tag};
use kmipd_server::store::{Backend, SledBackend, Table};
use rotation_support as support;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn key_count() -> usize {
    std::env::var("KMIPD_ROTATION_KILL_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn write_config(dir: &Path, rate: Option<u64>) -> std::path::PathBuf {
    let mut text = format!(
        "[server]\ndata_dir = {:?}\nlisten = \"127.0.0.1:0\"\n\n[hsm]\nbackend = \"software\"\nkey_file = \"master.key\"\n\n[store]\nbackend = \"sled\"\n",
        dir.display().to_string()
    );
    if let Some(r) = rate {
        text.push_str(&format!("\n[policies]\nrotation_max_keys_per_sec = {r}\n"));
    }
    let path = dir.join("kmipd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts kmipd and returns it with the address it serves on.
fn start(config: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmipd"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kmipd");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("kmipd exited before serving").unwrap();
        if let Some(a) = line.split("serving KMIP on ").nth(1) {
            break a.trim().to_owned();
        }
    };
    // Keep draining stdout so kmipd never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

async fn job(c: &mut Client) -> JobView {
    fetch(c).await.unwrap().into_iter().next().expect("a job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_rotation_then_resume() {
    let n = key_count();
    let tmp = tempfile::tempdir().unwrap();
    let (_, _pki) = kmipd_server::dev::prepare(tmp.path(), true).unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    // The master key and the keys, written straight into the store.
    {
        let protector: Arc<dyn KeyProtector> =
            Arc::new(SoftwareProtector::create(dir.join("master.key")).unwrap());
        let backend = Arc::new(SledBackend::open(&dir.join("store")).unwrap());
        let (server, _) = support::server(&dir, backend, protector);
        support::populate(&server, n).await;
    }
    // Let sled's files close.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Rate-limited so that the kill lands in the middle (about 4 s of work).
    let rate = (n as u64 / 4).max(100);
    let (mut kmipd, addr) = start(&write_config(&dir, Some(rate)));
    let cfg = ClientConfig::dev(&dir, &addr).unwrap();
    let mut c = Client::connect(&cfg).await.unwrap();
    vendor(&mut c, op::MASTER_ROTATE, vec![]).await.unwrap();
    let t = Instant::now();
    let before_kill = loop {
        let j = job(&mut c).await;
        assert_eq!(j.state, "running", "{j:?}");
        if j.done * 4 >= j.total && j.total > 0 {
            break j;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "{j:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    kmipd.kill().unwrap(); // SIGKILL
    kmipd.wait().unwrap();
    assert!(
        before_kill.done < before_kill.total,
        "killed mid-rotation: {before_kill:?}"
    );
    eprintln!("killed at {}/{}", before_kill.done, before_kill.total);

    // Restart without the rate limit: the job resumes by itself.
    let (mut kmipd, addr) = start(&write_config(&dir, None));
    let cfg = ClientConfig::dev(&dir, &addr).unwrap();
    let mut c = Client::connect(&cfg).await.unwrap();
    let t = Instant::now();
    let done = loop {
        let j = job(&mut c).await;
        if j.state == "completed" {
            break j;
        }
        assert!(t.elapsed() < Duration::from_secs(300), "{j:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("resumed and completed in {:.1?}: {done:?}", t.elapsed());
    assert_eq!(done.resumes, 1, "{done:?}");
    assert_eq!(done.total, n as u64);
    assert_eq!(done.done, n as u64, "each key counted once: {done:?}");
    assert_eq!(done.failed, 0);
    assert_eq!(done.target_version, Some(2));

    // Keys read back over KMIP (a sample).
    for i in (0..n).step_by((n / 50).max(1)) {
        let id = support::id_of(i);
        let r = c
            .call(
                Operation::GET,
                RequestPayload::Get(GetRequest {
                    unique_identifier: Some(id.clone()),
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
        let ResponsePayload::Get(g) = r else {
            panic!("not a Get response")
        };
        let obj = g.object().unwrap();
        let kb = obj.key_block().unwrap();
        let Some(kmip::messages::objects::KeyValue::Plain { key_material, .. }) = &kb.key_value
        else {
            panic!("no key")
        };
        assert_eq!(
            key_material.as_bytes().unwrap(),
            support::key_of(&id).as_slice()
        );
    }
    // kmipctl master list / retire over KMIP.
    let versions = parse_versions(&vendor(&mut c, op::MASTER_LIST, vec![]).await.unwrap());
    let count = |v: u64| versions.iter().find(|x| x.version == v).map(|x| x.objects);
    assert_eq!(
        (count(1), count(2)),
        (Some(0), Some(n as u64)),
        "{versions:?}"
    );
    let e = vendor(&mut c, op::MASTER_RETIRE, vec![Ttlv::long(tag::NUMBER, 2)])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("current"), "{e}");
    vendor(&mut c, op::MASTER_RETIRE, vec![Ttlv::long(tag::NUMBER, 1)])
        .await
        .unwrap();
    drop(c);
    kmipd.kill().unwrap();
    kmipd.wait().unwrap();

    // Every key: under version 2 in the store, and it opens (version 1 is gone).
    let protector = SoftwareProtector::open(dir.join("master.key")).unwrap();
    let backend = SledBackend::open(&dir.join("store")).unwrap();
    let mut seen = 0;
    backend
        .scan(Table::Objects, b"", &mut |k, v| {
            let id = String::from_utf8_lossy(k).into_owned();
            let o = kmipd_server::catalog::decode_record(&id, v).unwrap();
            let m = o.material.unwrap();
            assert_eq!(m.master_version, 2, "{id}");
            let w = WrappedKey::from_bytes(&m.wrapped).unwrap();
            protector.unprotect(id.as_bytes(), &w).unwrap();
            seen += 1;
            true
        })
        .unwrap();
    assert_eq!(seen, n);
}
