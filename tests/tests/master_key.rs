//! kmipd refuses to start when its master key does not open the store's
//! keys (a software `master.key` replaced by another), naming the master
//! key version, rather than failing every Get; with the right key back it
//! serves every key. The SoftHSM2 counterpart is in softhsm.rs.

use kmip::tables::Operation;
use kmipd_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_software_master_key_is_refused_at_start() {
    let mut server = TestServer::start().await.unwrap();
    let mut ids = Vec::new();
    {
        let mut c = server.connect(&server.vcenter()).await.unwrap();
        for _ in 0..4 {
            ids.push(created_id(
                &c.call(Operation::CREATE, vcenter_create()).await.unwrap(),
            ));
        }
    }
    server.stop().await;
    let key_file = server.data_dir.join("master.key");
    let saved = std::fs::read(&key_file).unwrap();
    // Another master key, also version 1 (create_if_missing makes one).
    std::fs::remove_file(&key_file).unwrap();
    let err = kmipd_server::app::start(&server.config, None)
        .await
        .expect_err("kmipd must not start under another master key");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("master key version 1") && msg.contains("does not open the store's keys"),
        "{msg}"
    );
    assert!(key_file.exists(), "the new key file was created");

    // The right key back: every key reads.
    std::fs::write(&key_file, &saved).unwrap();
    server.restart().await.expect("the right key starts");
    let mut c = server.connect(&server.vcenter()).await.unwrap();
    for id in &ids {
        assert_eq!(
            key_bytes(&c.call(Operation::GET, get(id)).await.unwrap()).len(),
            32
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_starts_under_any_master_key() {
    let mut server = TestServer::start().await.unwrap();
    server.stop().await;
    std::fs::remove_file(server.data_dir.join("master.key")).unwrap();
    server.restart().await.expect("nothing to open: starts");
}
