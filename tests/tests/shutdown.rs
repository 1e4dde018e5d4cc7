//! `Running::shutdown` returns once the store is closed: the same process
//! can start a server on the same data directory at once, with no retry,
//! even while a client was connected and had just written.

use kmip::tables::Operation;
use kmipd_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_store_so_a_restart_needs_no_retry() {
    let mut server = TestServer::start().await.unwrap();
    let mut ids = Vec::new();
    for round in 0..4 {
        // A connected client that has just written (a group-commit flush
        // happened moments ago) and stays connected across the shutdown.
        let mut c = server.connect(&server.vcenter()).await.unwrap();
        ids.push(created_id(
            &c.call(Operation::CREATE, vcenter_create()).await.unwrap(),
        ));
        let started = std::time::Instant::now();
        server.stop().await;
        // sled's lock is free on return (probed directly: SledBackend::open
        // would wait for it).
        let db = std::fs::File::open(server.data_dir.join("store").join("db")).unwrap();
        fs2::FileExt::try_lock_exclusive(&db)
            .unwrap_or_else(|e| panic!("round {round}: store still locked after shutdown: {e}"));
        fs2::FileExt::unlock(&db).unwrap();
        drop(db);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "shutdown took {:?}",
            started.elapsed()
        );
        drop(c);
        server.restart().await.expect("restart without retry");
        let mut c = server.connect(&server.vcenter()).await.unwrap();
        for id in &ids {
            key_bytes(&c.call(Operation::GET, get(id)).await.unwrap());
        }
    }
}
