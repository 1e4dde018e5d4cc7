//! The conformance runner against a server that is not kmipd: the PyKMIP
//! 0.11 server (installed into .venv by scripts/test.sh), with ECDSA P-256
//! certificates (PyKMIP offers rustls no usable suite with RSA). Files PyKMIP
//! is known to pass must pass, and one it is known to fail must fail with a
//! difference, not a runner error. Needs the OASIS corpus through
//! KMIP_TESTCASES_DIR, like the other corpus tests.

use kmipd_server::client::ClientConfig;
use kmipd_server::conformance;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// PyKMIP's server in a process group of its own: it forks a worker that
/// outlives its parent, so the whole group is killed, or the worker stays
/// behind holding its port after the test.
struct Server(Child);

impl Server {
    fn group_alive(pid: u32) -> bool {
        Command::new("kill")
            .args(["-0", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // PyKMIP takes up to 20 s to stop on SIGTERM; this is a throwaway.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

fn pykmip_server() -> PathBuf {
    let python = std::env::var_os("KMIPD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    let server = python.with_file_name("pykmip-server");
    assert!(
        server.exists(),
        "{} not found: run scripts/test.sh, which installs PyKMIP 0.11 into .venv",
        server.display()
    );
    server
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_works_against_pykmip_server() {
    let Some(cases) = std::env::var_os("KMIP_TESTCASES_DIR").map(PathBuf::from) else {
        println!("KMIP_TESTCASES_DIR is not set: the OASIS corpus was not run against PyKMIP");
        return;
    };
    let exe = pykmip_server();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, pki) = kmipd_server::dev::prepare(tmp.path(), true).expect("ECDSA dev PKI");
    let port = free_port();
    std::fs::create_dir_all(tmp.path().join("policies")).expect("policy dir");
    let conf = tmp.path().join("server.conf");
    std::fs::write(
        &conf,
        format!(
            "[server]\nhostname=127.0.0.1\nport={port}\ncertificate_path={}\nkey_path={}\nca_path={}\n\
             auth_suite=TLS1.2\npolicy_path={}\nenable_tls_client_auth=True\nlogging_level=WARNING\n\
             database_path={}\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca_cert.display(),
            tmp.path().join("policies").display(),
            tmp.path().join("pykmip.db").display(),
        ),
    )
    .expect("config written");
    let server = Server(
        Command::new(&exe)
            .process_group(0)
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(tmp.path().join("server.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pykmip-server starts"),
    );
    let client = ClientConfig::from_files(
        &format!("127.0.0.1:{port}"),
        &pki.ca_cert,
        &pki.vcenter_cert,
        &pki.vcenter_key,
    )
    .expect("client certificate");
    // PyKMIP needs a few seconds to listen.
    let deadline = Instant::now() + Duration::from_secs(60);
    while kmipd_server::client::Client::connect(&client)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "PyKMIP's server did not start; see {}",
            tmp.path().join("server.log").display()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut session = conformance::Session::default();
    for name in [
        "v1.0/TC_311_10_Create_Destroy.xml",
        "v1.0/SKFF_M_1_10_SymmetricKeyFoundryBasic_1.xml",
    ] {
        let r =
            conformance::run_file_in(&mut session, &client, &cases.join(name), name, false).await;
        println!("{}", r.line());
        assert!(r.passed, "PyKMIP passes {name}: {}", r.line());
    }
    // PyKMIP keeps no Digest and answers Get Attributes differently: a
    // difference the runner must report as such.
    let name = "v1.0/SKLC_M_1_10_SymmetricKeyLifecycle_1.xml";
    let r = conformance::run_file_in(&mut session, &client, &cases.join(name), name, false).await;
    println!("{}", r.line());
    assert!(!r.passed);
    assert!(
        r.error.is_none(),
        "a runner error instead of a difference: {}",
        r.line()
    );
    assert!(r.difference.is_some() && r.step.is_some(), "{}", r.line());
    // Nothing of PyKMIP's stays behind.
    let pid = server.0.id();
    assert!(Server::group_alive(pid));
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Server::group_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "PyKMIP's processes outlive the test"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
