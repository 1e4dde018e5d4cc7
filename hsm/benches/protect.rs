//! Protect + unprotect of a 32-byte key, per backend, in one run:
//!
//! * `software`: the key-file backend (aes-gcm in process);
//! * `pkcs11-softhsm2`: the PKCS#11 backend on a SoftHSM2 token, through
//!   its worker pool, timeouts and handle cache;
//! * `raw-softhsm2`: the baseline, bare `C_Encrypt` + `C_Decrypt` with
//!   `CKM_AES_GCM` on one session with the same key, IV size and AAD, so
//!   the cost of the backend's machinery is the ratio of the two.
//!
//! Run with `cargo bench -p kmipd-hsm`; needs SoftHSM2 like the tests.

#[path = "../tests/common/softhsm.rs"]
mod softhsm;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kmipd_hsm::blob::associated_data;
use kmipd_hsm::cryptoki::mechanism::aead::GcmParams;
use kmipd_hsm::cryptoki::mechanism::Mechanism;
use kmipd_hsm::cryptoki::object::{Attribute, ObjectClass};
use kmipd_hsm::cryptoki::session::UserType;
use kmipd_hsm::cryptoki::types::AuthPin;
use kmipd_hsm::{Algorithm, KeyProtector, Pkcs11Protector, SoftwareProtector};

const KEY: [u8; 32] = [0x42; 32];
const IDENTITY: &[u8] = b"6f1c0a52-3c4e-4bde-9d1a-5be1d5b0a9e2";

fn round_trip(p: &dyn KeyProtector) {
    let w = p.protect(IDENTITY, black_box(&KEY)).expect("protect");
    let k = p.unprotect(IDENTITY, &w).expect("unprotect");
    assert_eq!(k.len(), 32);
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("protect+unprotect 32-byte key");
    group.throughput(Throughput::Elements(1));

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let software = SoftwareProtector::create(dir.path().join("master.keys")).expect("key file");
    group.bench_function("software", |b| b.iter(|| round_trip(&software)));

    let config = softhsm::config("bench");
    let pkcs11 = Pkcs11Protector::open(&config).expect("open SoftHSM2 token");
    group.bench_function("pkcs11-softhsm2", |b| b.iter(|| round_trip(&pkcs11)));

    // The same key, used directly on one logged-in session.
    let ctx = kmipd_hsm::pkcs11::module(&softhsm::token().module).expect("module");
    let slot = ctx
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| ctx.get_token_info(*s).expect("token info").label() == softhsm::TOKEN_LABEL)
        .expect("test token");
    let session = ctx.open_ro_session(slot).expect("session");
    let _ = session.login(UserType::User, Some(&AuthPin::from(softhsm::USER_PIN)));
    let version = pkcs11.current_version();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(pkcs11.key_label(version).into_bytes()),
        ])
        .expect("find key")[0];
    let aad = associated_data(Algorithm::Aes256Gcm, version, IDENTITY).expect("aad");
    group.bench_function("raw-softhsm2", |b| {
        b.iter(|| {
            let mut iv = [7u8; 12];
            let ct = session
                .encrypt(
                    &Mechanism::AesGcm(GcmParams::new(&mut iv, &aad, 128.into()).expect("params")),
                    key,
                    black_box(&KEY),
                )
                .expect("encrypt");
            let pt = session
                .decrypt(
                    &Mechanism::AesGcm(GcmParams::new(&mut iv, &aad, 128.into()).expect("params")),
                    key,
                    &ct,
                )
                .expect("decrypt");
            assert_eq!(pt.len(), 32);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
