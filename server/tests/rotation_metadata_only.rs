//! Master-key rotation and backup of a store that holds metadata-only keys
//! (KMIP 1.2: registered without their Key Value): their stored content is
//! the Key Block without a Key Value, re-wrapped like any other object, and
//! they stay metadata-only afterwards while ordinary keys keep their value.

mod rotation_support;

use kmip::messages::attributes::{Attribute, TemplateAttribute};
use kmip::messages::objects::{KeyBlock, KeyValue, Object, SymmetricKey};
use kmip::messages::payloads::{GetRequest, RegisterRequest};
use kmip::tables::{CryptographicAlgorithm, KeyFormatType, ObjectType, Tag};
use kmip::{ProtocolVersion, Ttlv, Value};
use kmipd_hsm::{KeyProtector, SoftwareProtector};
use kmipd_server::jobs::{self, rotation, Idle, JobState};
use kmipd_server::model::names;
use kmipd_server::ops::{backup, OpCtx};
use kmipd_server::store::{Backend, MemoryBackend, Table};
use rotation_support as support;
use std::sync::Arc;

fn register_request(key: Option<&[u8]>) -> RegisterRequest {
    let mut p = RegisterRequest {
        object_type: ObjectType::SYMMETRIC_KEY,
        template_attribute: Some(TemplateAttribute {
            names: Vec::new(),
            attributes: vec![Attribute::new(
                names::KEY_VALUE_LOCATION,
                Value::Structure(vec![
                    Ttlv::text(Tag::KEY_VALUE_LOCATION_VALUE, "HSM-12345"),
                    Ttlv::enumeration(Tag::KEY_VALUE_LOCATION_TYPE, 1u32),
                ]),
            )],
        }),
        ..Default::default()
    };
    p.set_object(Object::SymmetricKey(SymmetricKey {
        key_block: KeyBlock {
            key_format_type: KeyFormatType::RAW,
            key_value: key.map(|k| KeyValue::Plain {
                key_material: Ttlv::bytes(Tag::KEY_MATERIAL, k.to_vec()),
                attributes: Vec::new(),
            }),
            cryptographic_algorithm: Some(CryptographicAlgorithm::AES),
            cryptographic_length: Some(128),
            ..Default::default()
        },
    }));
    p
}

async fn key_value(ctx: &OpCtx<'_>, id: &str) -> Option<KeyValue> {
    let p = GetRequest {
        unique_identifier: Some(id.to_owned()),
        ..Default::default()
    };
    let r = kmipd_server::ops::get::get(ctx, &p).await.expect("get");
    r.object()
        .expect("object")
        .key_block()
        .expect("key block")
        .key_value
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_backup_carry_metadata_only_keys() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(MemoryBackend::new());
    let protector: Arc<dyn KeyProtector> =
        Arc::new(SoftwareProtector::create(dir.path().join("master.keys")).unwrap());
    let (server, _clock) = support::server(dir.path(), backend.clone(), protector);
    let caller = support::admin();
    let ctx = OpCtx::new(&server, &caller, ProtocolVersion::V1_2, server.clock.now());
    let mut mdo = Vec::new();
    let mut full = Vec::new();
    for i in 0..5u8 {
        let r = kmipd_server::ops::create::register(&ctx, &register_request(None))
            .await
            .expect("register metadata-only");
        mdo.push(r.unique_identifier);
        let r = kmipd_server::ops::create::register(&ctx, &register_request(Some(&[i; 16])))
            .await
            .expect("register with value");
        full.push(r.unique_identifier);
    }
    // Read once, so the cache holds the content under version 1.
    for id in &mdo {
        assert!(key_value(&ctx, id).await.is_none());
    }
    assert_eq!(rotation::count_under(&server, 1).unwrap(), 10);

    let job = rotation::start(&server, "test").await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let idle = jobs::run_pending(&server, &rotation::Options::default(), &rx)
        .await
        .unwrap();
    assert_eq!(idle, Idle::NoWork);
    let done = jobs::get(&server, job.id).unwrap().unwrap();
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    assert_eq!(done.failed_count, 0, "{done:?}");
    assert_eq!(rotation::count_under(&server, 1).unwrap(), 0);
    assert_eq!(rotation::count_under(&server, 2).unwrap(), 10);

    for id in &mdo {
        let o = ctx.load(id).unwrap();
        assert!(o.key_value_absent(), "{id} is still metadata-only");
        assert_eq!(o.material.as_ref().unwrap().master_version, 2);
        assert!(key_value(&ctx, id).await.is_none());
    }
    for (i, id) in full.iter().enumerate() {
        let v = key_value(&ctx, id).await.expect("a key value");
        assert_eq!(v.key_bytes(), Some(&[i as u8; 16][..]));
    }

    // A backup of the store parses, metadata-only records included.
    let mut entries = Vec::new();
    for t in Table::ALL {
        backend
            .scan(t, b"", &mut |k, v| {
                entries.push((t, k.to_vec(), v.to_vec()));
                true
            })
            .unwrap();
    }
    let file = backup::encode(&entries, server.clock.now(), "memory");
    let parsed = backup::parse(&file).expect("backup parses");
    assert_eq!(parsed.manifest.master_key_versions, [2]);
    assert_eq!(parsed.manifest.entries["objects"], 10);
}
