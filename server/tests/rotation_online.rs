//! Online master-key rotation of many keys (100,000 by default) on the
//! software backend and the sled store, while clients read keys through the
//! operation path and a writer keeps changing some of them: no read fails,
//! no write is lost, and every key ends under the new master key version
//! with its Last Change Date untouched.
//!
//! `KMIPD_ROTATION_KEYS` overrides the number of keys.

mod rotation_support;

use kmip::Value;
use kmipd_hsm::{KeyProtector, SoftwareProtector};
use kmipd_server::jobs::{self, rotation, JobState};
use kmipd_server::model::names;
use kmipd_server::ops::OpCtx;
use kmipd_server::store::SledBackend;
use rand::Rng;
use rotation_support as support;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn key_count() -> usize {
    std::env::var("KMIPD_ROTATION_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_many_keys_while_clients_read_and_write() {
    let n = key_count();
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SledBackend::open(&dir.path().join("store")).unwrap());
    let protector: Arc<dyn KeyProtector> =
        Arc::new(SoftwareProtector::create(dir.path().join("master.keys")).unwrap());
    let (server, _clock) = support::server(dir.path(), backend, protector.clone());
    let t = Instant::now();
    let ids = Arc::new(support::populate(&server, n).await);
    eprintln!("populated {n} keys in {:.1?}", t.elapsed());
    assert_eq!(rotation::count_under(&server, 1).unwrap(), n as u64);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = jobs::spawn(server.clone(), rotation::Options::default(), stop_rx);

    // Readers: random keys through load + unwrap (cache included), checked.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (server, ids, stop, reads) = (server.clone(), ids.clone(), stop.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let caller = support::admin();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = rand::thread_rng().gen_range(0..ids.len());
                if let Err(e) = support::read_and_check(&server, &caller, &ids[i]).await {
                    failures.push(e);
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    // A writer: adds an attribute to random keys (a change that keeps the
    // old wrapped content), under the object's lock like every operation.
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (server, ids, stop, writes) =
            (server.clone(), ids.clone(), stop.clone(), writes.clone());
        tokio::spawn(async move {
            let caller = support::admin();
            let mut touched = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let id = ids[rand::thread_rng().gen_range(0..ids.len())].clone();
                let ctx = OpCtx::new(
                    &server,
                    &caller,
                    kmip::ProtocolVersion::V1_1,
                    server.clock.now() + 1,
                );
                {
                    let _g = server.lock(&id).await;
                    let old = ctx.load(&id).unwrap();
                    let mut new = old.clone();
                    new.set("x-Touched", Value::TextString("yes".into()));
                    ctx.save(Some(&old), &mut new).await.unwrap();
                }
                touched.push(id);
                writes.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            touched
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let t = Instant::now();
    let reads_before = reads.load(Ordering::Relaxed);
    let job = rotation::start(&server, "test").await.unwrap();
    assert_eq!(job.target_version, Some(2));
    assert_eq!(
        server.protector.current_version(),
        2,
        "new writes use v2 at once"
    );
    let done = loop {
        let j = jobs::get(&server, job.id).unwrap().unwrap();
        if j.state == JobState::Completed {
            break j;
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "rotation too slow: {j:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = t.elapsed();
    let reads_during = reads.load(Ordering::Relaxed) - reads_before;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for r in readers {
        failures.extend(r.await.unwrap());
    }
    let touched = writer.await.unwrap();
    let _ = stop_tx.send(true);
    runner.await.unwrap();
    eprintln!(
        "rotated {n} keys in {took:.1?} ({:.0} keys/s) with {reads_during} reads and {} writes during it",
        n as f64 / took.as_secs_f64(),
        writes.load(Ordering::Relaxed)
    );

    assert!(
        failures.is_empty(),
        "{} reads failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(reads_during > 0, "clients read during the rotation");
    assert_eq!(done.total, n as u64);
    assert_eq!(done.done, n as u64, "{done:?}");
    assert_eq!(done.failed_count, 0);
    assert_eq!(rotation::count_under(&server, 1).unwrap(), 0);
    assert_eq!(rotation::count_under(&server, 2).unwrap(), n as u64);

    // Every record: under v2, the same Last Change Date unless a writer
    // changed it, revision moved on; the writer's changes all kept.
    let touched: std::collections::HashSet<String> = touched.into_iter().collect();
    let mut seen = 0;
    server
        .catalog
        .for_each(&mut |o| {
            seen += 1;
            let m = o.material.as_ref().unwrap();
            assert_eq!(m.master_version, 2, "{}", o.id);
            assert_eq!(
                kmipd_hsm::WrappedKey::from_bytes(&m.wrapped)
                    .unwrap()
                    .master_version(),
                2
            );
            assert!(o.revision >= 2, "{} revision {}", o.id, o.revision);
            if touched.contains(&o.id) {
                assert!(o.first("x-Touched").is_some(), "write to {} lost", o.id);
            } else {
                assert_eq!(
                    o.date(names::LAST_CHANGE_DATE),
                    Some(support::T0),
                    "{}",
                    o.id
                );
            }
            true
        })
        .unwrap();
    assert_eq!(seen, n);
    // A sample read back through the operation path.
    let caller = support::admin();
    for i in (0..n).step_by((n / 2000).max(1)) {
        support::read_and_check(&server, &caller, &ids[i])
            .await
            .unwrap();
    }
    // And the old version can go.
    rotation::retire(&server, 1).await.unwrap();
    for i in (0..n).step_by((n / 500).max(1)) {
        server.cache.evict(&ids[i]);
        support::read_and_check(&server, &caller, &ids[i])
            .await
            .unwrap();
    }
}
