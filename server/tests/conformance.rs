//! The OASIS KMIP test cases (v1.0–v1.3, `$KMIP_TESTCASES_DIR`) against an
//! in-process kmipd, judged by `conformance/expected-failures.txt`: the
//! test fails on any failure not listed there *and* on any listed file that
//! passes now (so the list only shrinks).
//!
//! Each version directory runs against a fresh kmipd (dev PKI with ECDSA
//! certificates, memory store, 127.0.0.1:0) as the `admin` identity, its
//! files in order on one server: some files build on an earlier one
//! (TL-M-3 reads the key TL-M-2 wrote), and the versions reuse names.
//!
//! Without the variable the test says the corpus was not run and passes; CI
//! (`scripts/test.sh`, `.ci/run`) sets it.

use kmipd_server::client::ClientConfig;
use kmipd_server::config::StoreConfig;
use kmipd_server::conformance::{self, ExpectedFailures, Verdict};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oasis_test_cases_against_kmipd() {
    let Some(dir) = std::env::var_os("KMIP_TESTCASES_DIR") else {
        println!("KMIP_TESTCASES_DIR is not set: the OASIS test cases were NOT run against kmipd");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let list = root.join("conformance/expected-failures.txt");
    let expected = ExpectedFailures::parse(
        &std::fs::read_to_string(&list).expect("conformance/expected-failures.txt is readable"),
    )
    .expect("the expected-failures list parses");
    let tmp = tempfile::Builder::new()
        .prefix("kmipd-conformance-")
        .tempdir()
        .expect("tempdir");
    let mut results = Vec::new();
    for v in ["v1.0", "v1.1", "v1.2", "v1.3"] {
        let d = PathBuf::from(&dir).join(v);
        let files = conformance::collect(std::slice::from_ref(&d)).expect("corpus readable");
        assert!(!files.is_empty(), "no test cases under {}", d.display());
        let (mut config, pki) =
            kmipd_server::dev::prepare(tmp.path(), true).expect("dev PKI and configuration");
        config.server.listen = "127.0.0.1:0".parse().expect("address");
        config.metrics_listen = None;
        config.store = StoreConfig::Memory;
        config.server.shutdown_grace = Duration::from_secs(2);
        let running = kmipd_server::app::start(&config, None)
            .await
            .expect("kmipd starts");
        let client = ClientConfig::from_files(
            &format!("127.0.0.1:{}", running.addr.port()),
            &pki.ca_cert,
            &pki.admin_cert,
            &pki.admin_key,
        )
        .expect("client certificate loads");
        let mut session = conformance::Session::default();
        for (path, name) in &files {
            let name = format!("{v}/{name}");
            let r = conformance::run_file_in(&mut session, &client, path, &name, false).await;
            let mut line = r.line();
            if let (false, Some(reason)) = (r.passed, expected.reason(&name)) {
                line.push_str(&format!(" (expected: {reason})"));
            }
            println!("{line}");
            results.push(r);
        }
        tokio::time::timeout(Duration::from_secs(20), running.shutdown())
            .await
            .expect("kmipd stops");
    }
    let v = Verdict::judge(&results, &expected);
    println!("{} passed, {} failed", v.passed, v.failed);
    for f in &v.unexpected_failures {
        println!("UNEXPECTED FAILURE {f} (fix it, or list it with a reason)");
    }
    for f in &v.now_passing {
        println!("NOW PASSES {f}: remove it from conformance/expected-failures.txt");
    }
    assert!(
        v.ok(),
        "{} unexpected failures, {} listed files now pass (see the output)",
        v.unexpected_failures.len(),
        v.now_passing.len()
    );
}
