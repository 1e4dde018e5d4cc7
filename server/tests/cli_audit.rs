//! `kmipctl audit verify` and `kmipctl audit tail` end to end, tampering
//! with a real audit log (a record changed, removed, reordered), and the
//! size rotation that continues the chain across files.

mod cli_support;

use cli_support::{path_str, Dev};
use kmipd_server::audit::{self, Audit, Event};
use std::path::{Path, PathBuf};

fn write_lines(p: &Path, lines: &[&str]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(p, s).unwrap();
}

async fn dev_with_log() -> (Dev, Vec<String>) {
    let dev = Dev::start().await;
    for _ in 0..4 {
        dev.kmipctl(&["keys", "create", "--activate"]).await.ok();
    }
    let log = dev.audit_until(|s| s.lines().count() >= 8).await;
    let lines = log.lines().map(str::to_owned).collect();
    (dev, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_detects_changed_removed_and_reordered_records() {
    let (dev, lines) = dev_with_log().await;
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let dir = dev.path().join("tamper");
    std::fs::create_dir_all(&dir).unwrap();

    let intact = dir.join("intact.log");
    write_lines(&intact, &lines);
    let out = dev
        .kmipctl(&["audit", "verify", &path_str(&intact)])
        .await
        .ok()
        .to_owned();
    assert!(out.contains("intact") && out.contains("head "), "{out}");
    let j = dev
        .kmipctl(&["audit", "verify", &path_str(&intact), "--json"])
        .await
        .json();
    assert_eq!(j["valid"], true);
    assert_eq!(j["records"].as_u64().unwrap() as usize, lines.len());

    // Changed: a record's result rewritten.
    let changed = dir.join("changed.log");
    let mut v = lines.clone();
    let edited = v[3].replace("\"result\":\"success\"", "\"result\":\"Item Not Found\"");
    assert_ne!(edited, v[3]);
    v[3] = &edited;
    write_lines(&changed, &v);
    let r = dev.kmipctl(&["audit", "verify", &path_str(&changed)]).await;
    r.code(4);
    assert!(r.stderr.contains("record 3 was changed"), "{}", r.stderr);

    // Changed: identity rewritten.
    let who = dir.join("who.log");
    let mut v = lines.clone();
    let edited = v[2].replace("\"identity\":\"admin\"", "\"identity\":\"vcenter\"");
    assert_ne!(edited, v[2]);
    v[2] = &edited;
    write_lines(&who, &v);
    dev.kmipctl(&["audit", "verify", &path_str(&who)])
        .await
        .code(4);

    // Removed: a record in the middle.
    let removed = dir.join("removed.log");
    let mut v = lines.clone();
    v.remove(4);
    write_lines(&removed, &v);
    let r = dev.kmipctl(&["audit", "verify", &path_str(&removed)]).await;
    r.code(4);
    assert!(r.stderr.contains("removed"), "{}", r.stderr);

    // Removed: the first record.
    let head = dir.join("head.log");
    write_lines(&head, &lines[1..]);
    let r = dev.kmipctl(&["audit", "verify", &path_str(&head)]).await;
    r.code(4);
    assert!(r.stderr.contains("starts at record 1"), "{}", r.stderr);
    // ...which --partial accepts (older files pruned on purpose).
    dev.kmipctl(&["audit", "verify", &path_str(&head), "--partial"])
        .await
        .ok();

    // Reordered: two records swapped.
    let reordered = dir.join("reordered.log");
    let mut v = lines.clone();
    v.swap(5, 6);
    write_lines(&reordered, &v);
    let r = dev
        .kmipctl(&["audit", "verify", &path_str(&reordered)])
        .await;
    r.code(4);
    assert!(r.stderr.contains("removed") || r.stderr.contains("reordered"));
    let j = dev
        .kmipctl(&["audit", "verify", &path_str(&reordered), "--json"])
        .await;
    j.code(4);
    assert_eq!(j.json()["valid"], false);

    // --dev finds the live log.
    dev.kmipctl(&["audit", "verify", "--dev", &path_str(dev.path())])
        .await
        .ok();
    dev.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tail_prints_the_last_records() {
    let (dev, lines) = dev_with_log().await;
    let r = dev
        .kmipctl(&[
            "audit",
            "tail",
            "--dev",
            &path_str(dev.path()),
            "-n",
            "3",
            "--json",
        ])
        .await;
    let out = r.ok();
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 3);
    for l in &got {
        let rec: audit::Record = serde_json::from_str(l).unwrap();
        assert!(lines.iter().any(|x| x.contains(&rec.hash)));
    }
    let text = dev
        .kmipctl(&["audit", "tail", &path_str(&dev.path().join("audit.log"))])
        .await
        .ok()
        .to_owned();
    assert!(text.contains("Create") && text.contains("admin"), "{text}");
    dev.running.shutdown().await;
}

fn ev(i: usize) -> Event {
    Event {
        time: 1_700_000_000 + i as i64,
        identity: "admin".into(),
        peer: "127.0.0.1:1".into(),
        operation: "Get".into(),
        object: Some(format!("key-{i}")),
        result: "success".into(),
    }
}

async fn wait_records(files: impl Fn() -> Vec<PathBuf>, n: u64) -> Vec<PathBuf> {
    for _ in 0..200 {
        let f = files();
        if let Ok(v) = audit::verify_files(&f, true, true) {
            if v.records == n {
                return f;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the audit writer never caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_size_continues_the_chain_across_files() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("audit.log");
    let all = {
        let path = path.clone();
        move || {
            let mut v = audit::rotated_files(&path);
            v.push(path.clone());
            v
        }
    };
    let a = Audit::to_file_with(&path, 1500).unwrap();
    for i in 0..40 {
        a.record(ev(i));
    }
    let files = wait_records(&all, 40).await;
    assert!(files.len() > 3, "rotated into {} files", files.len());
    for f in &files {
        assert!(std::fs::metadata(f).unwrap().len() <= 1500 + 400);
    }
    drop(a);
    // A restarted writer picks up the chain (also when the current file is empty).
    std::fs::rename(&path, d.path().join("audit.log.999999999999")).unwrap();
    let b = Audit::to_file_with(&path, 1500).unwrap();
    for i in 40..45 {
        b.record(ev(i));
    }
    let files = wait_records(&all, 45).await;
    // kmipctl checks them in any order.
    let mut args: Vec<String> = vec!["audit".into(), "verify".into()];
    args.extend(files.iter().rev().map(|p| path_str(p)));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = cli_support::run_bin(env!("CARGO_BIN_EXE_kmipctl"), &argv, vec![]).await;
    assert!(r.ok().contains("45 records"), "{}", r.stdout);
    // A whole rotated file gone is a removal.
    let missing: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, p)| p.clone())
        .collect();
    let e = audit::verify_files(&missing, true, true).unwrap_err();
    assert!(e.problem.contains("removed"), "{}", e.problem);
}
