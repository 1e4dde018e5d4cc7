//! Interoperability: the PyKMIP 0.11 client (installed into `.venv` by
//! scripts/test.sh; `KMIPD_TEST_PYTHON` overrides) runs the key lifecycle
//! against kmipd at KMIP 1.0, 1.1, 1.2, 1.4 and 2.0 with the admin and the
//! vcenter certificates.

use kmipd_tests::flows::pykmip_lifecycle;
use kmipd_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pykmip_lifecycle_at_every_version() {
    let server = TestServer::start().await.unwrap();
    pykmip_lifecycle(&server).await;
}
