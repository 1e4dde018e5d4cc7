//! The suite again with the master key in SoftHSM2: the vCenter replay,
//! the lifecycle (in-process and PyKMIP) and restart persistence.
//!
//! A process initialises PKCS#11 once, and SoftHSM2 reads SOFTHSM2_CONF at
//! that moment, so this binary creates one throwaway token in a temporary
//! directory before any test opens it; each test uses its own master key
//! label prefix. SoftHSM2 must be installed (scripts/test.sh does it): the
//! tests fail without it.

use kmip::ProtocolVersion;
use kmipd_hsm::{HsmConfig, Pkcs11Config};
use kmipd_tests::flows::{admin_lifecycle, pykmip_lifecycle, restart_persistence, vcenter_replay};
use kmipd_tests::TestServer;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const TOKEN_LABEL: &str = "kmipd-e2e";
const PIN_ENV: &str = "KMIPD_E2E_HSM_PIN";
const USER_PIN: &str = "4711-e2e";
const SO_PIN: &str = "87654321";

struct Token {
    module: PathBuf,
    _dir: tempfile::TempDir,
}

static TOKEN: OnceLock<Token> = OnceLock::new();

fn token() -> &'static Token {
    TOKEN.get_or_init(|| {
        let module = std::env::var_os("KMIPD_TEST_PKCS11_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"));
        assert!(
            module.exists(),
            "SoftHSM2 module {} is missing: run scripts/test.sh (it installs softhsm2) \
             or set KMIPD_TEST_PKCS11_MODULE",
            module.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("kmipd-e2e-softhsm-")
            .tempdir()
            .expect("token directory");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        // Before the first C_Initialize of this process (this runs first).
        std::env::set_var("SOFTHSM2_CONF", &conf);
        std::env::set_var(PIN_ENV, USER_PIN);
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", TOKEN_LABEL])
            .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
            .output()
            .unwrap_or_else(|e| {
                panic!("softhsm2-util cannot be run ({e}): run scripts/test.sh, which installs SoftHSM2")
            });
        assert!(
            out.status.success(),
            "softhsm2-util --init-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Token { module, _dir: dir }
    })
}

fn hsm(name: &str) -> HsmConfig {
    let t = token();
    let mut c = Pkcs11Config::new(&t.module, TOKEN_LABEL);
    c.pin_env = Some(PIN_ENV.into());
    c.key_label_prefix = format!("e2e-{name}-v");
    c.sessions = Some(2);
    c.create_if_missing = true;
    HsmConfig::Pkcs11(c)
}

async fn start(name: &str) -> TestServer {
    let h = hsm(name);
    let s = TestServer::start_with(|c| c.hsm = h).await.unwrap();
    assert!(
        !s.data_dir.join("master.key").exists(),
        "no software master key when the HSM holds it"
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_vcenter_703_capture_replays() {
    let server = start("replay").await;
    let report = vcenter_replay(&server).await;
    assert_eq!(report.compared, 54);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_lifecycle_in_process_and_pykmip() {
    let server = start("lifecycle").await;
    for v in [
        ProtocolVersion::V1_1,
        ProtocolVersion::V1_4,
        ProtocolVersion::V2_0,
    ] {
        admin_lifecycle(&server, v).await;
    }
    pykmip_lifecycle(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_keys_survive_a_restart() {
    let mut server = start("restart").await;
    restart_persistence(&mut server).await;
    restart_persistence(&mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_master_key_is_required_to_read_keys() {
    // A store written under one HSM master key, opened with another key of
    // the same version number (another key label prefix on the same token):
    // kmipd refuses to start and says why, rather than starting and failing
    // every Get with an internal error (docs/hsm.md, "The wrong master key").
    let mut server = start("owner").await;
    restart_persistence(&mut server).await;
    server.stop().await;
    let mut other = server.config.clone();
    other.hsm = hsm("stranger");
    other.server.listen = "127.0.0.1:0".parse().unwrap();
    let err = kmipd_server::app::start(&other, None)
        .await
        .expect_err("kmipd must not start under another master key");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("master key version 1") && msg.contains("does not open the store's keys"),
        "the error names the version and the cause: {msg}"
    );
    assert!(msg.contains("pkcs11"), "and the backend: {msg}");
    // The store is untouched: the right key still reads every key.
    server
        .restart()
        .await
        .expect("restart with the owner's key");
    let mut c = server.connect(&server.vcenter()).await.unwrap();
    let ids = match c
        .call(
            kmip::tables::Operation::LOCATE,
            kmip::messages::payloads::RequestPayload::Locate(Default::default()),
        )
        .await
        .unwrap()
    {
        kmip::messages::ResponsePayload::Locate(l) => l.unique_identifiers,
        other => panic!("{other:?}"),
    };
    assert!(ids.len() >= 5, "{ids:?}");
    for id in &ids {
        kmipd_tests::key_bytes(
            &c.call(kmip::tables::Operation::GET, kmipd_tests::get(id))
                .await
                .unwrap(),
        );
    }
}
