//! `kmipctl backup`, `kmipctl backup verify` and `kmipd restore` end to
//! end: a backup taken under concurrent load restores into a new directory
//! with every object and attribute, no Re-key torn in half, and a kmipd
//! started on it serves the same key material.

mod cli_support;

use cli_support::{kmipd, path_str, Dev};
use kmip::messages::attributes::{Attribute, TemplateAttribute};
use kmip::messages::payloads::*;
use kmip::messages::{RequestPayload as P, ResponsePayload as R};
use kmip::tables::{ObjectType, Operation};
use kmip::Value;
use kmipd_server::catalog::decode_record;
use kmipd_server::client::Client;
use kmipd_server::ops::backup;
use kmipd_server::store::{Backend, SledBackend, Table};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

async fn create(c: &mut Client, tag: &str) -> String {
    let r = c
        .call(
            Operation::CREATE,
            P::Create(CreateRequest {
                object_type: ObjectType::SYMMETRIC_KEY,
                template_attribute: Some(TemplateAttribute {
                    names: vec![],
                    attributes: vec![
                        Attribute::new("Cryptographic Algorithm", Value::Enumeration(3)),
                        Attribute::new("Cryptographic Length", Value::Integer(256)),
                        Attribute::new("Cryptographic Usage Mask", Value::Integer(12)),
                        Attribute::new("x-Load", Value::TextString(tag.into())),
                    ],
                }),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let R::Create(r) = r else { panic!() };
    r.unique_identifier
}

async fn key_bytes(c: &mut Client, id: &str) -> Vec<u8> {
    let r = c
        .call(
            Operation::GET,
            P::Get(GetRequest {
                unique_identifier: Some(id.into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let R::Get(g) = r else { panic!() };
    let o = g.object().unwrap();
    o.key_block()
        .unwrap()
        .key_value
        .as_ref()
        .unwrap()
        .key_bytes()
        .unwrap()
        .to_vec()
}

fn dump(b: &dyn Backend) -> Vec<(Table, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for t in Table::ALL {
        b.scan(t, b"", &mut |k, v| {
            out.push((t, k.to_vec(), v.to_vec()));
            true
        })
        .unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 6)]
async fn backup_under_load_restores_every_object_and_attribute() {
    let dev = Dev::start().await;
    let mut admin = dev.client("admin").await;
    let mut before_load = Vec::new();
    for i in 0..30 {
        let id = create(&mut admin, &format!("pre-{i}")).await;
        if i % 3 == 0 {
            admin
                .call(
                    Operation::ACTIVATE,
                    P::Activate(IdRequest {
                        unique_identifier: Some(id.clone()),
                    }),
                )
                .await
                .unwrap();
        }
        before_load.push(id);
    }
    // Load: creates, attribute changes and Re-keys (two records per
    // transaction) on four connections while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut load = Vec::new();
    for w in 0..4 {
        let stop = stop.clone();
        let acked = acked.clone();
        let mut c = dev.client("admin").await;
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = create(&mut c, &format!("w{w}-{n}")).await;
                acked.lock().unwrap().insert(id.clone());
                let r = c
                    .call(
                        Operation::RE_KEY,
                        P::ReKey(ReKeyRequest {
                            unique_identifier: Some(id.clone()),
                            ..Default::default()
                        }),
                    )
                    .await
                    .unwrap();
                let R::ReKey(r) = r else { panic!() };
                acked.lock().unwrap().insert(r.unique_identifier);
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let acked_before_backup: HashSet<String> = acked.lock().unwrap().clone();
    let file = dev.path().join("snap.backup");
    let out = dev.kmipctl(&["backup", &path_str(&file), "--json"]).await;
    let j = out.json();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut made = 0;
    for l in load {
        made += l.await.unwrap();
    }
    assert!(made > 0, "the load ran");
    assert!(!acked_before_backup.is_empty());
    let objects_in_backup = j["manifest"]["entries"]["objects"].as_u64().unwrap();
    assert!(objects_in_backup >= (before_load.len() + acked_before_backup.len()) as u64);

    // Refuses to overwrite.
    dev.kmipctl(&["backup", &path_str(&file)]).await.code(2);
    // Verifies.
    let v = dev
        .kmipctl(&["backup", "verify", &path_str(&file), "--json"])
        .await
        .json();
    assert_eq!(v["valid"], true);

    // Restore into a new directory.
    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    kmipd(&[
        "restore",
        &path_str(&file),
        "--data-dir",
        &path_str(&target),
    ])
    .await
    .ok();
    let parsed = backup::parse(&std::fs::read(&file).unwrap()).unwrap();
    let store = SledBackend::open(&target.join("store")).unwrap();
    let restored_entries = dump(&store);
    // Every entry of every table came back, byte for byte.
    assert_eq!(restored_entries, parsed.entries);
    let objects: BTreeMap<String, _> = restored_entries
        .iter()
        .filter(|(t, _, _)| *t == Table::Objects)
        .map(|(_, k, v)| {
            let id = String::from_utf8(k.clone()).unwrap();
            let o = decode_record(&id, v).unwrap();
            (id, o)
        })
        .collect();
    // Everything acknowledged before the backup started is in it.
    for id in before_load.iter().chain(acked_before_backup.iter()) {
        assert!(objects.contains_key(id), "{id} missing from the backup");
    }
    // Objects the load never touched are identical to the live ones,
    // every attribute and the wrapped material.
    for id in &before_load {
        let live = dev.running.server.catalog.get(id).unwrap().unwrap();
        assert_eq!(&objects[id], &live, "{id} differs");
    }
    // No Re-key is torn: each Replacement link points at an object in the
    // backup that links back, and vice versa.
    let link = |o: &kmipd_server::model::ManagedObject, kind: &str| -> Option<String> {
        o.all("Link").find_map(|a| match &a.value {
            Value::Structure(c) => {
                let t = c.iter().find(|t| t.tag == kmip::Tag::LINK_TYPE)?;
                let name = kmip::tables::LinkType(t.as_enum().ok()?).name()?;
                (name == kind).then(|| {
                    c.iter()
                        .find(|t| t.tag == kmip::Tag::LINKED_OBJECT_IDENTIFIER)
                        .and_then(|t| t.as_text().ok())
                        .unwrap()
                        .to_owned()
                })
            }
            _ => None,
        })
    };
    let mut rekeys = 0;
    for (id, o) in &objects {
        if let Some(new) = link(o, "Replacement Object Link") {
            let n = objects
                .get(&new)
                .unwrap_or_else(|| panic!("torn Re-key: {new} missing"));
            assert_eq!(
                link(n, "Replaced Object Link").as_deref(),
                Some(id.as_str())
            );
            rekeys += 1;
        }
        if let Some(old) = link(o, "Replaced Object Link") {
            let p = objects
                .get(&old)
                .unwrap_or_else(|| panic!("torn Re-key: {old} missing"));
            assert_eq!(
                link(p, "Replacement Object Link").as_deref(),
                Some(id.as_str())
            );
        }
    }
    assert!(rekeys > 0, "the backup caught some Re-keys");
    drop(store);

    // kmipd on the restored directory (same master key) serves the same keys.
    std::fs::copy(dev.path().join("master.key"), target.join("master.key")).unwrap();
    let certs = target.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    for f in std::fs::read_dir(dev.certs()).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), certs.join(f.file_name())).unwrap();
        }
    }
    let moved = tempfile::TempDir::new_in(restored.path()).unwrap();
    std::fs::remove_dir(moved.path()).unwrap();
    std::fs::rename(&target, moved.path()).unwrap();
    let second = Dev::start_in(moved, None).await;
    let mut c2 = second.client("admin").await;
    for id in before_load.iter().take(5) {
        assert_eq!(
            key_bytes(&mut admin, id).await,
            key_bytes(&mut c2, id).await
        );
    }
    let listed = second
        .kmipctl(&["keys", "list", "--attr", "x-Load=pre-7", "--json"])
        .await
        .json();
    assert_eq!(listed[0]["id"], before_load[7].as_str());
    second.running.shutdown().await;
    dev.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_and_restore_refuse_damage_and_non_empty_directories() {
    let dev = Dev::start().await;
    for _ in 0..3 {
        dev.kmipctl(&["keys", "create"]).await.ok();
    }
    let file = dev.path().join("b.backup");
    dev.kmipctl(&["backup", &path_str(&file)]).await.ok();
    let text = dev
        .kmipctl(&["backup", "verify", &path_str(&file)])
        .await
        .ok()
        .to_owned();
    assert!(
        text.contains("valid kmipd backup") && text.contains("Pre-Active"),
        "{text}"
    );

    let bytes = std::fs::read(&file).unwrap();
    // One byte changed in the body.
    let mut changed = bytes.clone();
    let i = changed.len() / 2;
    changed[i] ^= 0x01;
    let bad = dev.path().join("changed.backup");
    std::fs::write(&bad, &changed).unwrap();
    let r = dev.kmipctl(&["backup", "verify", &path_str(&bad)]).await;
    r.code(4);
    assert!(r.stderr.contains("damaged"), "{}", r.stderr);
    // Cut short.
    let cut = dev.path().join("cut.backup");
    std::fs::write(&cut, &bytes[..bytes.len() - 200]).unwrap();
    dev.kmipctl(&["backup", "verify", &path_str(&cut)])
        .await
        .code(4);
    // kmipd restore refuses damage too, and leaves nothing behind.
    let dest = dev.path().join("restore-here");
    let r = kmipd(&["restore", &path_str(&bad), "--data-dir", &path_str(&dest)]).await;
    assert_ne!(r.code, 0);
    assert!(!dest.exists());
    // A non-empty directory is refused and left alone.
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("keep.txt"), "x").unwrap();
    let r = kmipd(&["restore", &path_str(&file), "--data-dir", &path_str(&dest)]).await;
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    // An empty one is fine.
    let empty = dev.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    kmipd(&["restore", &path_str(&file), "--data-dir", &path_str(&empty)])
        .await
        .ok();
    dev.running.shutdown().await;
}
