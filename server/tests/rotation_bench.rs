//! Rotation throughput, in one run: keys re-wrapped per second on the
//! software backend and on SoftHSM2, and SoftHSM2's raw unwrap+wrap rate
//! (bare C_Decrypt + C_Encrypt with CKM_AES_GCM, one session per thread),
//! with the ratios. Ignored by default (it wants a release build):
//!
//! ```sh
//! cargo test --release -p kmipd-server --test rotation_bench -- --ignored --nocapture
//! ```
//!
//! `KMIPD_BENCH_KEYS` (default 100000) and `KMIPD_BENCH_HSM_KEYS` (default
//! 20000) set the number of keys.

mod rotation_support;
#[path = "../../hsm/tests/common/softhsm.rs"]
mod softhsm;

use kmipd_hsm::{KeyProtector, Pkcs11Protector, SoftwareProtector};
use kmipd_server::jobs::{self, rotation, JobState};
use kmipd_server::store::{Backend, MemoryBackend, SledBackend};
use rotation_support as support;
use std::sync::Arc;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Populates `n` keys, rotates, and returns keys re-wrapped per second.
async fn rotate_rate(
    label: &str,
    backend: Arc<dyn Backend>,
    protector: Arc<dyn KeyProtector>,
    n: usize,
    dir: &std::path::Path,
) -> f64 {
    let (server, _) = support::server(dir, backend, protector);
    let t = Instant::now();
    support::populate(&server, n).await;
    eprintln!("{label}: populated {n} keys in {:.1?}", t.elapsed());
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let from = server.protector.current_version();
    let t = Instant::now();
    let job = rotation::start(&server, "bench").await.unwrap();
    let r = jobs::run_pending(&server, &rotation::Options::default(), &rx)
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(r, jobs::Idle::NoWork);
    let j = jobs::get(&server, job.id).unwrap().unwrap();
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.done, n as u64);
    assert_eq!(rotation::count_under(&server, from).unwrap(), 0);
    let rate = n as f64 / took.as_secs_f64();
    eprintln!("{label}: re-wrapped {n} keys in {took:.2?}: {rate:.0} keys/s");
    rate
}

/// Bare SoftHSM2 unwrap + wrap (decrypt + encrypt) per second on `threads`
/// threads, one logged-in session each, on the protector's current key.
fn raw_softhsm_rate(p: &Pkcs11Protector, threads: usize, per_thread: usize) -> f64 {
    use kmipd_hsm::blob::associated_data;
    use kmipd_hsm::cryptoki::mechanism::aead::GcmParams;
    use kmipd_hsm::cryptoki::mechanism::Mechanism;
    use kmipd_hsm::cryptoki::object::{Attribute, ObjectClass};
    use kmipd_hsm::cryptoki::session::UserType;
    use kmipd_hsm::cryptoki::types::AuthPin;
    let ctx = kmipd_hsm::pkcs11::module(&softhsm::token().module).unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == softhsm::TOKEN_LABEL)
        .unwrap();
    let version = p.current_version();
    let label = p.key_label(version);
    let id = b"key-00000001";
    let aad = associated_data(kmipd_hsm::Algorithm::Aes256Gcm, version, id).unwrap();
    // About the size of a stored symmetric key object's content.
    let plain = vec![0x42u8; 80];
    let start = std::sync::Barrier::new(threads);
    let t = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (ctx, label, aad, plain, start) = (&ctx, &label, &aad, &plain, &start);
                s.spawn(move || {
                    let session = ctx.open_ro_session(slot).unwrap();
                    let _ = session.login(UserType::User, Some(&AuthPin::from(softhsm::USER_PIN)));
                    let key = session
                        .find_objects(&[
                            Attribute::Class(ObjectClass::SECRET_KEY),
                            Attribute::Label(label.clone().into_bytes()),
                        ])
                        .unwrap()[0];
                    let mut iv = [7u8; 12];
                    let ct = session
                        .encrypt(
                            &Mechanism::AesGcm(GcmParams::new(&mut iv, aad, 128.into()).unwrap()),
                            key,
                            plain,
                        )
                        .unwrap();
                    start.wait();
                    let t = Instant::now();
                    for _ in 0..per_thread {
                        let pt = session
                            .decrypt(
                                &Mechanism::AesGcm(
                                    GcmParams::new(&mut iv, aad, 128.into()).unwrap(),
                                ),
                                key,
                                &ct,
                            )
                            .unwrap();
                        let c2 = session
                            .encrypt(
                                &Mechanism::AesGcm(
                                    GcmParams::new(&mut iv, aad, 128.into()).unwrap(),
                                ),
                                key,
                                &pt,
                            )
                            .unwrap();
                        assert_eq!(c2.len(), ct.len());
                    }
                    t.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    });
    (threads * per_thread) as f64 / t.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn rotation_rates() {
    let n = env("KMIPD_BENCH_KEYS", 100_000);
    let n_hsm = env("KMIPD_BENCH_HSM_KEYS", 20_000);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let dir = tempfile::tempdir().unwrap();

    let software: Arc<dyn KeyProtector> =
        Arc::new(SoftwareProtector::create(dir.path().join("master.keys")).unwrap());
    let sled: Arc<dyn Backend> = Arc::new(SledBackend::open(&dir.path().join("store")).unwrap());
    let sw_sled = rotate_rate("software+sled", sled, software.clone(), n, dir.path()).await;
    let d2 = tempfile::tempdir().unwrap();
    let software2: Arc<dyn KeyProtector> =
        Arc::new(SoftwareProtector::create(d2.path().join("master.keys")).unwrap());
    let sw_mem = rotate_rate(
        "software+memory",
        Arc::new(MemoryBackend::new()),
        software2,
        n,
        d2.path(),
    )
    .await;

    let hsm = Arc::new(Pkcs11Protector::open(&softhsm::config("rotation-bench")).unwrap());
    let d3 = tempfile::tempdir().unwrap();
    let sled3: Arc<dyn Backend> = Arc::new(SledBackend::open(&d3.path().join("store")).unwrap());
    let hsm_rate = rotate_rate("softhsm2+sled", sled3, hsm.clone(), n_hsm, d3.path()).await;
    let per = (n_hsm / cores).max(1000);
    let raw1 = raw_softhsm_rate(&hsm, 1, per);
    let raw_n = raw_softhsm_rate(&hsm, cores, per);
    eprintln!();
    eprintln!("| measure | rate |");
    eprintln!("|---|---:|");
    eprintln!("| software backend + sled, keys re-wrapped/s | {sw_sled:.0} |");
    eprintln!("| software backend + memory store, keys re-wrapped/s | {sw_mem:.0} |");
    eprintln!("| SoftHSM2 + sled, keys re-wrapped/s | {hsm_rate:.0} |");
    eprintln!("| raw SoftHSM2 unwrap+wrap/s, 1 thread | {raw1:.0} |");
    eprintln!("| raw SoftHSM2 unwrap+wrap/s, {cores} threads | {raw_n:.0} |");
    eprintln!(
        "ratios: rotation on SoftHSM2 / raw 1 thread = {:.2}; / raw {cores} threads = {:.2}",
        hsm_rate / raw1,
        hsm_rate / raw_n
    );
}
