//! vCenter end to end: the 7.0.3 capture replayed byte for byte, and the
//! 8.0.1 flows (credentials on some operations only) from typed messages.

use kmip::tables::{Operation, ResultReason, ResultStatus};
use kmipd_server::config::{IdentityConfig, IdentityMatch, Role};
use kmipd_tests::flows::{credential, vcenter_801_flow, vcenter_replay, VcenterConn};
use kmipd_tests::*;
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcenter_703_capture_replays() {
    let server = TestServer::start().await.unwrap();
    let report = vcenter_replay(&server).await;
    // Every message but the four failed tagging batches of PyKMIP.
    assert_eq!(report.compared, 58 - 4);
}

fn vcenter_client(server: &TestServer) -> std::sync::Arc<rustls::ClientConfig> {
    tls_client(
        &server.ca_certs(),
        Some(load_pair(&server.pki.vcenter_cert, &server.pki.vcenter_key)),
        TlsVersion::Tls13,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcenter_801_flows_with_and_without_credentials() {
    let server = TestServer::start().await.unwrap();
    let cfg = vcenter_client(&server);
    // No credential configured: accepted with one and without one.
    let (vm1, host1) = vcenter_801_flow(
        server.addr(),
        cfg.clone(),
        Some(credential("administrator@vsphere.local", "anything")),
    )
    .await;
    let (vm2, host2) = vcenter_801_flow(server.addr(), cfg.clone(), None).await;
    // vCenter's keys carry no Operation Policy Name, so the credential they
    // were created with does not reserve them: another KMS user (the admin
    // changed it in vCenter) still reads every key.
    let mut c = VcenterConn::open(
        server.addr(),
        cfg,
        Some(credential("another-user@vsphere.local", "x")),
    )
    .await;
    for id in [&vm1, &host1, &vm2, &host2] {
        c.ok(true, vec![(Operation::GET, get(id))]).await;
    }
    let mut all = vec![vm1, host1, vm2, host2];
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_password_is_checked_when_sent() {
    let hash: [u8; 32] = Sha256::digest(b"s3cret-Passw0rd").into();
    let server = TestServer::start_with(|c| {
        c.identities.push(IdentityConfig {
            name: "vcenter".into(),
            matcher: IdentityMatch::Cn("vcenter".into()),
            role: Role::Vcenter,
            group: c.access.default_group.clone(),
            credential: Some(("kmip-user".into(), hash)),
        })
    })
    .await
    .unwrap();
    let cfg = vcenter_client(&server);
    // Right password on Create/Get/GetAttributes(State)/Activate, none elsewhere.
    vcenter_801_flow(
        server.addr(),
        cfg.clone(),
        Some(credential("kmip-user", "s3cret-Passw0rd")),
    )
    .await;
    // Wrong password, wrong user: Authentication Not Successful, nothing created.
    for (user, pass) in [("kmip-user", "wrong"), ("someone-else", "s3cret-Passw0rd")] {
        let mut c =
            VcenterConn::open(server.addr(), cfg.clone(), Some(credential(user, pass))).await;
        let r = c
            .send(true, vec![(Operation::CREATE, vcenter_create())])
            .await;
        assert_eq!(r.items[0].result_status, ResultStatus::OPERATION_FAILED);
        assert_eq!(
            r.items[0].result_reason,
            Some(ResultReason::AUTHENTICATION_NOT_SUCCESSFUL)
        );
        assert!(r.items[0].payload.is_none());
        // The same connection without the credential still works.
        let p = c
            .ok(false, vec![(Operation::CREATE, vcenter_create())])
            .await;
        let id = created_id(&p[0]);
        let r = c.send(true, vec![(Operation::GET, get(&id))]).await;
        assert_eq!(
            r.items[0].result_reason,
            Some(ResultReason::AUTHENTICATION_NOT_SUCCESSFUL)
        );
    }
}
