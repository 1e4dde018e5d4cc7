//! The admin key lifecycle at every protocol version, and restart
//! persistence on the sled store with the software master key.

use kmip::ProtocolVersion;
use kmipd_tests::flows::{admin_lifecycle, restart_persistence};
use kmipd_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lifecycle_at_every_version() {
    let server = TestServer::start().await.unwrap();
    let mut ids = Vec::new();
    for v in ProtocolVersion::SUPPORTED {
        ids.push(admin_lifecycle(&server, v).await);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), ProtocolVersion::SUPPORTED.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_survive_a_restart() {
    let mut server = TestServer::start().await.unwrap();
    restart_persistence(&mut server).await;
    // Twice: the second start reuses everything the first one made.
    restart_persistence(&mut server).await;
}
