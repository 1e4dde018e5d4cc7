//! `kmipctl status`, help texts, completions and error reporting end to end.

mod cli_support;

use cli_support::{path_str, run_bin, Dev};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_shows_server_objects_hsm_certificates_and_jobs() {
    let dev = Dev::start().await;
    dev.kmipctl(&["keys", "create", "--activate"]).await.ok();
    dev.kmipctl(&["keys", "create"]).await.ok();
    let j = dev.kmipctl(&["status", "--json"]).await.json();
    assert_eq!(j["version"], env!("CARGO_PKG_VERSION"));
    assert!(j["uptime_secs"].as_i64().unwrap() >= 0);
    assert!(j["kmip_versions"].as_str().unwrap().contains("1.1"));
    assert_eq!(j["objects.Active"], 1);
    assert_eq!(j["objects.Pre-Active"], 1);
    assert!(j["hsm_backend"].is_string());
    assert!(j["hsm_health"].is_string());
    assert!(j["master_key_version"].as_i64().unwrap() >= 1);
    assert!(
        j["certificate.server"]
            .as_str()
            .unwrap()
            .contains("expires"),
        "{j}"
    );
    assert!(j["certificate.ca"].is_string());
    assert!(j["jobs.count"].is_number());
    let text = dev
        .kmipctl(&["status", "--dev", &path_str(dev.path())])
        .await
        .ok()
        .to_owned();
    for want in [
        "version",
        "uptime",
        "objects Active",
        "hsm backend",
        "certificate.server",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    // The status call is audited under its name.
    dev.audit_until(|s| s.contains("kmipd Status")).await;
    dev.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_has_help_with_examples() {
    let commands: &[&[&str]] = &[
        &[],
        &["keys", "list"],
        &["keys", "show"],
        &["keys", "create"],
        &["keys", "activate"],
        &["keys", "revoke"],
        &["keys", "rotate"],
        &["keys", "destroy"],
        &["backup"],
        &["backup", "verify"],
        &["audit", "verify"],
        &["audit", "tail"],
        &["status"],
        &["completions"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let r = run_bin(env!("CARGO_BIN_EXE_kmipctl"), &args, vec![]).await;
        let out = r.ok();
        assert!(
            out.contains("Example"),
            "{c:?} --help has no example:\n{out}"
        );
    }
    let r = run_bin(env!("CARGO_BIN_EXE_kmipd"), &["restore", "--help"], vec![]).await;
    assert!(r.ok().contains("Example"));
    let top = run_bin(env!("CARGO_BIN_EXE_kmipctl"), &["--help"], vec![]).await;
    assert!(top.ok().contains("Exit codes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let r = run_bin(
            env!("CARGO_BIN_EXE_kmipctl"),
            &["completions", shell],
            vec![],
        )
        .await;
        let out = r.ok();
        assert!(
            out.contains("kmipctl") && out.contains("destroy"),
            "{shell}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_are_clear_and_exit_codes_documented() {
    let dev = Dev::start().await;
    // Usage error: clap's exit 2.
    run_bin(
        env!("CARGO_BIN_EXE_kmipctl"),
        &["keys", "frobnicate"],
        vec![],
    )
    .await
    .code(2);
    // No connection given.
    let r = run_bin(env!("CARGO_BIN_EXE_kmipctl"), &["status"], vec![]).await;
    r.code(2);
    assert!(r.stderr.contains("--dev DIR"), "{}", r.stderr);
    // Unreachable server.
    let r = run_bin(
        env!("CARGO_BIN_EXE_kmipctl"),
        &[
            "status",
            "--dev",
            &path_str(dev.path()),
            "--server",
            "127.0.0.1:1",
        ],
        vec![],
    )
    .await;
    r.code(2);
    assert!(r.stderr.contains("cannot reach kmipd"), "{}", r.stderr);
    // A role without permission: exit 1 and a hint.
    let r = dev.kmipctl_as("vcenter", &["status"]).await;
    r.code(1);
    assert!(r.stderr.contains("admin"), "{}", r.stderr);
    // A missing object: exit 1.
    dev.kmipctl(&["keys", "show", "no-such-key"]).await.code(1);
    dev.running.shutdown().await;
}
