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
    // The versions run side by side, each on its own server: TC-92-11 and
    // TC-92-12 wait two minutes each (`repeat` rule) for a Deactivation Date.
    let runs: Vec<_> = ["v1.0", "v1.1", "v1.2", "v1.3"]
        .into_iter()
        .map(|v| {
            let d = PathBuf::from(&dir).join(v);
            let work = tmp.path().join(v);
            let expected = expected.clone();
            tokio::spawn(async move { run_version(v, &d, &work, &expected).await })
        })
        .collect();
    let mut results = Vec::new();
    for run in runs {
        let (lines, r) = run.await.expect("a version's run completes");
        for line in lines {
            println!("{line}");
        }
        results.extend(r);
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

/// Runs one version directory against its own fresh kmipd; returns the
/// lines to print and the results, in file order.
async fn run_version(
    v: &str,
    dir: &Path,
    work: &Path,
    expected: &ExpectedFailures,
) -> (Vec<String>, Vec<conformance::FileResult>) {
    let files = conformance::collect(&[dir.to_owned()]).expect("corpus readable");
    assert!(!files.is_empty(), "no test cases under {}", dir.display());
    let (running, client) = start_kmipd(work).await;
    let mut session = conformance::Session::default();
    let mut lines = Vec::new();
    let mut results = Vec::new();
    for (path, name) in &files {
        let name = format!("{v}/{name}");
        let r = conformance::run_file_in(&mut session, &client, path, &name, false).await;
        let mut line = r.line();
        if let (false, Some(reason)) = (r.passed, expected.reason(&name)) {
            line.push_str(&format!(" (expected: {reason})"));
        }
        lines.push(line);
        results.push(r);
    }
    tokio::time::timeout(Duration::from_secs(20), running.shutdown())
        .await
        .expect("kmipd stops");
    (lines, results)
}

/// A fresh in-process kmipd (dev PKI with ECDSA certificates, memory store,
/// 127.0.0.1:0) and the admin client configuration for it.
async fn start_kmipd(work: &Path) -> (kmipd_server::app::Running, ClientConfig) {
    let (mut config, pki) =
        kmipd_server::dev::prepare(work, true).expect("dev PKI and configuration");
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.metrics_listen = None;
    config.store = StoreConfig::Memory;
    config.server.shutdown_grace = Duration::from_secs(2);
    // TC-151 asks for a fresh member of the group "default" and expects
    // the server to have one, or to make one: dev mode's on-demand group.
    assert!(config.object_groups.iter().any(|g| g.name == "default"));
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
    (running, client)
}

const V11: &str = r#"<ProtocolVersion><ProtocolVersionMajor type="Integer" value="1"/><ProtocolVersionMinor type="Integer" value="1"/></ProtocolVersion>"#;

fn state_step(expected: &str) -> String {
    format!(
        r#"<RequestMessage><RequestHeader>{V11}<BatchCount type="Integer" value="1"/></RequestHeader>
<BatchItem><Operation type="Enumeration" value="GetAttributes"/><RequestPayload>
<UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_0"/>
<AttributeName type="TextString" value="State"/></RequestPayload></BatchItem></RequestMessage>
<ResponseMessage><ResponseHeader>{V11}<TimeStamp type="DateTime" value="$NOW"/><BatchCount type="Integer" value="1"/></ResponseHeader>
<BatchItem><Operation type="Enumeration" value="GetAttributes"/><ResultStatus type="Enumeration" value="Success"/>
<ResponsePayload><UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_0"/>
<Attribute><AttributeName type="TextString" value="State"/><AttributeValue type="Enumeration" value="{expected}"/></Attribute>
</ResponsePayload></BatchItem></ResponseMessage>
"#
    )
}

/// A file in the shape of TC-92: a key that deactivates 3 s after it is
/// made, and a Get Attributes repeated until its State shows it.
fn repeat_case(marker: &str) -> String {
    format!(
        r#"<KMIP>
# TIME 0
<RequestMessage><RequestHeader>{V11}<BatchCount type="Integer" value="1"/></RequestHeader>
<BatchItem><Operation type="Enumeration" value="Create"/><RequestPayload>
<ObjectType type="Enumeration" value="SymmetricKey"/><TemplateAttribute>
<Attribute><AttributeName type="TextString" value="Cryptographic Algorithm"/><AttributeValue type="Enumeration" value="AES"/></Attribute>
<Attribute><AttributeName type="TextString" value="Cryptographic Length"/><AttributeValue type="Integer" value="128"/></Attribute>
<Attribute><AttributeName type="TextString" value="Activation Date"/><AttributeValue type="DateTime" value="$NOW-10"/></Attribute>
<Attribute><AttributeName type="TextString" value="Deactivation Date"/><AttributeValue type="DateTime" value="$NOW+3"/></Attribute>
</TemplateAttribute></RequestPayload></BatchItem></RequestMessage>
<ResponseMessage><ResponseHeader>{V11}<TimeStamp type="DateTime" value="$NOW"/><BatchCount type="Integer" value="1"/></ResponseHeader>
<BatchItem><Operation type="Enumeration" value="Create"/><ResultStatus type="Enumeration" value="Success"/>
<ResponsePayload><ObjectType type="Enumeration" value="SymmetricKey"/><UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_0"/></ResponsePayload></BatchItem></ResponseMessage>
# TIME 1
{marker}
{active}
# TIME 2
{deactivated}
</KMIP>
"#,
        active = state_step("Active"),
        deactivated = state_step("Deactivated"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_markers_send_a_step_again_until_the_answer_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (running, client) = start_kmipd(tmp.path()).await;
    let marked = tmp.path().join("marked.xml");
    std::fs::write(
        &marked,
        repeat_case("# [REPEAT] until GetAttributes response shows State changed to Deactivated"),
    )
    .expect("write");
    let started = std::time::Instant::now();
    let r = conformance::run_file(&client, &marked, "marked.xml").await;
    assert!(r.passed, "{}", r.line());
    assert!(r.rules_applied.contains(&"repeat"), "{:?}", r.rules_applied);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it waited for the Deactivation Date"
    );
    // Without the marker the same file fails at once, on the State.
    let plain = tmp.path().join("plain.xml");
    std::fs::write(&plain, repeat_case("")).expect("write");
    let r = conformance::run_file(&client, &plain, "plain.xml").await;
    assert!(!r.passed);
    assert_eq!(r.step, Some(3), "{}", r.line());
    let d = r.difference.expect("a difference");
    assert!(d.path.ends_with("AttributeValue"), "{d:?}");
    assert_eq!(d.expected, "\"Deactivated\"");
    tokio::time::timeout(Duration::from_secs(20), running.shutdown())
        .await
        .expect("kmipd stops");
}
