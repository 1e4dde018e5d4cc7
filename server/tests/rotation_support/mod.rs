//! Shared by the rotation tests: an in-process server (no listener) over a
//! chosen store and key protector, objects written straight through the
//! catalog (fast), and reads through the operation path (OpCtx).

#![allow(dead_code)]

use kmip::messages::attributes::Attribute;
use kmip::messages::objects::{KeyBlock, KeyValue, Object, SymmetricKey};
use kmip::tables::{CryptographicAlgorithm, KeyFormatType, ObjectType, State, Tag};
use kmip::{Ctx, ProtocolVersion, Ttlv, Value};
use kmipd_hsm::KeyProtector;
use kmipd_server::access::{AccessPolicy, Caller};
use kmipd_server::audit::Audit;
use kmipd_server::catalog::Catalog;
use kmipd_server::config::{AccessConfig, Role};
use kmipd_server::keycache::KeyCache;
use kmipd_server::model::{names, ManagedObject, Material};
use kmipd_server::ops::OpCtx;
use kmipd_server::state::{Clock, FakeClock, Server};
use kmipd_server::store::{Backend, Transaction};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A fixed start time: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600;

/// A server over `backend` and `protector`, with a fake clock at `T0` and
/// the audit trail in `dir/audit.log`.
pub fn server(
    dir: &Path,
    backend: Arc<dyn Backend>,
    protector: Arc<dyn KeyProtector>,
) -> (Arc<Server>, Arc<FakeClock>) {
    let clock = Arc::new(FakeClock(T0.into()));
    let access = AccessConfig {
        default_group: "default".into(),
        lockdown: false,
        admin_from: Vec::new(),
        allow_from: Vec::new(),
    };
    let server = Server::new(
        Catalog::open(backend).expect("catalog"),
        protector,
        KeyCache::new(true, 100_000, Duration::from_secs(300)),
        AccessPolicy::new(Vec::new(), access),
        clock.clone() as Arc<dyn Clock>,
        Audit::to_file(&dir.join("audit.log")).expect("audit"),
        "kmipd-test".into(),
    );
    (Arc::new(server), clock)
}

/// The key of test object `id` (derived from the id, so a read can check it).
pub fn key_of(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

/// The id of test object `i`.
pub fn id_of(i: usize) -> String {
    format!("key-{i:08}")
}

fn content(id: &str) -> Vec<u8> {
    Object::SymmetricKey(SymmetricKey {
        key_block: KeyBlock {
            key_format_type: KeyFormatType::RAW,
            key_value: Some(KeyValue::Plain {
                key_material: Ttlv::bytes(Tag::KEY_MATERIAL, key_of(id)),
                attributes: Vec::new(),
            }),
            cryptographic_algorithm: Some(CryptographicAlgorithm::AES),
            cryptographic_length: Some(256),
            ..Default::default()
        },
    })
    .encode(Ctx::new(ProtocolVersion::V1_4))
    .to_bytes()
    .expect("encode")
}

/// A vCenter-like AES-256 key, Active, tagged like vSphere tags its keys.
pub fn object(id: &str, protector: &dyn KeyProtector, now: i64) -> ManagedObject {
    let mut o = ManagedObject {
        id: id.to_owned(),
        object_type: ObjectType::SYMMETRIC_KEY,
        owner: "vcenter".into(),
        group: "default".into(),
        creator: None,
        revision: 1,
        attributes: Vec::new(),
        material: None,
        archived: false,
        created: kmipd_server::model::creation_stamp(now),
    };
    o.set(names::UNIQUE_IDENTIFIER, Value::TextString(id.to_owned()));
    o.set(
        names::OBJECT_TYPE,
        Value::Enumeration(ObjectType::SYMMETRIC_KEY.0),
    );
    o.set(
        names::CRYPTOGRAPHIC_ALGORITHM,
        Value::Enumeration(CryptographicAlgorithm::AES.0),
    );
    o.set(names::CRYPTOGRAPHIC_LENGTH, Value::Integer(256));
    o.set(names::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(12));
    o.set(names::INITIAL_DATE, Value::DateTime(now));
    o.set(names::ACTIVATION_DATE, Value::DateTime(now));
    o.set(names::LAST_CHANGE_DATE, Value::DateTime(now));
    o.set(names::STATE, Value::Enumeration(State::ACTIVE.0));
    for (n, v) in [
        ("x-Product", "VMware vSphere"),
        ("x-Vendor", "VMware, Inc."),
        ("x-Component", "Virtual Machine"),
    ] {
        o.attributes.push(Attribute {
            name: n.into(),
            index: Some(0),
            value: Value::TextString(v.into()),
        });
    }
    let w = protector
        .protect(id.as_bytes(), &content(id))
        .expect("protect");
    o.material = Some(Material {
        master_version: w.master_version(),
        wrapped: w.to_bytes(),
    });
    o
}

/// Writes `n` objects straight through the catalog, in transactions of
/// 1000, wrapping on every core. Returns their ids.
pub async fn populate(server: &Arc<Server>, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(id_of).collect();
    let now = server.clock.now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for chunk in ids.chunks(10_000) {
        let per = chunk.len().div_ceil(threads);
        let mut tasks = Vec::new();
        for part in chunk.chunks(per) {
            let part = part.to_vec();
            let server = server.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                let mut txns = Vec::new();
                for sub in part.chunks(1000) {
                    let mut t = Transaction::new();
                    for id in sub {
                        let o = object(id, server.protector.as_ref(), now);
                        server.catalog.stage_put(&mut t, None, &o);
                    }
                    txns.push(t);
                }
                txns
            }));
        }
        for t in tasks {
            for txn in t.await.expect("populate task") {
                server.catalog.commit(&txn).await.expect("commit");
            }
        }
    }
    ids
}

/// An admin caller.
pub fn admin() -> Caller {
    Caller {
        identity: "admin".into(),
        role: Role::Admin,
        group: "default".into(),
        peer: "127.0.0.1:1".parse().expect("addr"),
        credential: None,
    }
}

/// Reads object `id` through the operation path (load + unwrap through the
/// cache) and checks its key.
pub async fn read_and_check(server: &Server, caller: &Caller, id: &str) -> Result<(), String> {
    let ctx = OpCtx::new(server, caller, ProtocolVersion::V1_1, server.clock.now());
    let o = ctx.load(id).map_err(|e| format!("load {id}: {e}"))?;
    let c = ctx
        .content(&o)
        .await
        .map_err(|e| format!("content {id}: {e}"))?;
    let kb = c.key_block().ok_or("no key block")?;
    match &kb.key_value {
        Some(KeyValue::Plain { key_material, .. }) => {
            if key_material.as_bytes().map_err(|e| e.to_string())? == key_of(id).as_slice() {
                Ok(())
            } else {
                Err(format!("{id}: wrong key"))
            }
        }
        _ => Err(format!("{id}: no plain key")),
    }
}
