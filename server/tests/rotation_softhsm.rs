//! Master-key rotation with the master keys in SoftHSM2 (a throwaway token
//! of this test process, see hsm/tests/common/softhsm.rs): the new version
//! is generated in the token, every key is re-wrapped by the token, reads
//! keep working, and the old version is destroyed in the token once no key
//! uses it. A test binary of its own: PKCS#11 initialises once per process.

mod rotation_support;
#[path = "../../hsm/tests/common/softhsm.rs"]
mod softhsm;

use kmipd_hsm::{KeyProtector, Pkcs11Protector};
use kmipd_server::jobs::{self, rotation, Idle, JobState};
use kmipd_server::store::SledBackend;
use rotation_support as support;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_on_softhsm2() {
    let n = 3000;
    let hsm = Arc::new(Pkcs11Protector::open(&softhsm::config("rotation")).unwrap());
    let protector: Arc<dyn KeyProtector> = hsm.clone();
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SledBackend::open(&dir.path().join("store")).unwrap());
    let (server, _) = support::server(dir.path(), backend, protector);
    let ids = support::populate(&server, n).await;
    let caller = support::admin();

    let job = rotation::start(&server, "admin").await.unwrap();
    assert_eq!(job.target_version, Some(2));
    assert_eq!(hsm.key_label(2), "t-rotation-v2", "generated in the token");
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let reader = {
        let (server, ids) = (server.clone(), ids.clone());
        tokio::spawn(async move {
            let caller = support::admin();
            for id in ids.iter().step_by(7) {
                support::read_and_check(&server, &caller, id).await.unwrap();
            }
        })
    };
    let r = jobs::run_pending(&server, &rotation::Options::default(), &rx)
        .await
        .unwrap();
    reader.await.unwrap();
    assert_eq!(r, Idle::NoWork);
    let j = jobs::get(&server, job.id).unwrap().unwrap();
    assert_eq!(
        (j.state, j.done, j.failed_count),
        (JobState::Completed, n as u64, 0)
    );
    assert_eq!(rotation::count_under(&server, 1).unwrap(), 0);

    rotation::retire(&server, 1).await.unwrap();
    let held: Vec<u32> = hsm.versions().unwrap().iter().map(|v| v.version).collect();
    assert_eq!(held, vec![2], "version 1 destroyed in the token");
    server.cache.evict_master_version(1);
    for id in ids.iter().step_by(3) {
        server.cache.evict(id);
        support::read_and_check(&server, &caller, id).await.unwrap();
    }
}
