//! Protocol robustness over the wire: batch semantics, the ID Placeholder,
//! Maximum Response Size, Message Extensions, version-correct encodings
//! and absent attributes.

use kmip::codec::Bytes;
use kmip::messages::payloads::{AddAttributeRequest, RequestPayload, ResponsePayload};
use kmip::messages::{MessageExtension, RequestMessage, ResponseMessage};
use kmip::tables::{BatchErrorContinuationOption, Operation, ResultReason, ResultStatus, State};
use kmip::{ProtocolVersion, Ttlv, Value};
use kmipd_tests::flows::{create_payload, state_request};
use kmipd_tests::*;
use tokio_rustls::client::TlsStream;

struct Conn(TlsStream<tokio::net::TcpStream>);

impl Conn {
    async fn open(server: &TestServer) -> Self {
        let cfg = tls_client(
            &server.ca_certs(),
            Some(load_pair(&server.pki.vcenter_cert, &server.pki.vcenter_key)),
            TlsVersion::Tls13,
        );
        Conn(tls_connect(server.addr(), cfg).await.unwrap())
    }
    async fn raw(&mut self, m: &RequestMessage) -> Vec<u8> {
        roundtrip(&mut self.0, &encode(m)).await.unwrap()
    }
    async fn send(&mut self, m: &RequestMessage) -> ResponseMessage {
        decode_response(&self.raw(m).await)
    }
    async fn create(&mut self) -> String {
        let r = self
            .send(&request(
                ProtocolVersion::V1_1,
                vec![item(Operation::CREATE, vcenter_create())],
            ))
            .await;
        created_id(ok_payload(&r.items[0]))
    }
}

fn add(id: Option<&str>, name: &str, value: &str) -> RequestPayload {
    RequestPayload::AddAttribute(AddAttributeRequest {
        unique_identifier: id.map(str::to_owned),
        attribute: Some(kmip::messages::attributes::Attribute::new(
            name,
            Value::TextString(value.into()),
        )),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stop_continue_and_id_placeholder() {
    let server = TestServer::start().await.unwrap();
    let mut c = Conn::open(&server).await;
    let id = c.create().await;

    // Three Add Attribute items in one message: three answers, in order.
    let r = c
        .send(&request(
            ProtocolVersion::V1_1,
            vec![
                qlkc_item(
                    Operation::ADD_ATTRIBUTE,
                    add(Some(&id), "x-Identifier", "u-1"),
                    1,
                ),
                qlkc_item(
                    Operation::ADD_ATTRIBUTE,
                    add(Some(&id), "x-Component", "ESXi Server"),
                    2,
                ),
                qlkc_item(
                    Operation::ADD_ATTRIBUTE,
                    add(Some(&id), "x-Name", "10.0.0.5"),
                    3,
                ),
            ],
        ))
        .await;
    assert_eq!(r.header.batch_count, 3);
    assert_eq!(r.items.len(), 3);
    for (n, (i, want)) in r
        .items
        .iter()
        .zip(["x-Identifier", "x-Component", "x-Name"])
        .enumerate()
    {
        let mut bid = b"QLKC".to_vec();
        bid.extend_from_slice(&(n as u32 + 1).to_le_bytes());
        assert_eq!(i.unique_batch_item_id, Some(Bytes(bid)));
        match ok_payload(i) {
            ResponsePayload::AddAttribute(a) => {
                assert_eq!(a.unique_identifier, id);
                assert_eq!(a.attribute.as_ref().unwrap().name, want);
            }
            other => panic!("{other:?}"),
        }
    }

    // Stop (and the default, which is Stop) vs Continue.
    let three = |opt: Option<BatchErrorContinuationOption>| {
        let mut m = request(
            ProtocolVersion::V1_1,
            vec![
                qlkc_item(Operation::GET, get(&id), 1),
                qlkc_item(Operation::GET, get("no-such-key"), 2),
                qlkc_item(
                    Operation::GET_ATTRIBUTES,
                    get_attributes(&id, &["State"]),
                    3,
                ),
            ],
        );
        m.header.batch_error_continuation_option = opt;
        m
    };
    for opt in [None, Some(BatchErrorContinuationOption::STOP)] {
        let r = c.send(&three(opt)).await;
        assert_eq!(r.items.len(), 2, "{opt:?}: processing stops at the failure");
        assert_eq!(r.header.batch_count, 2);
        assert_eq!(r.items[0].result_status, ResultStatus::SUCCESS);
        assert_eq!(r.items[1].result_status, ResultStatus::OPERATION_FAILED);
        assert_eq!(r.items[1].result_reason, Some(ResultReason::ITEM_NOT_FOUND));
    }
    let r = c
        .send(&three(Some(BatchErrorContinuationOption::CONTINUE)))
        .await;
    assert_eq!(r.items.len(), 3);
    assert_eq!(r.items[0].result_status, ResultStatus::SUCCESS);
    assert_eq!(r.items[1].result_reason, Some(ResultReason::ITEM_NOT_FOUND));
    assert_eq!(r.items[2].result_status, ResultStatus::SUCCESS);

    // ID Placeholder: Create, then Activate and Add Attribute without an id.
    for v in [ProtocolVersion::V1_1, ProtocolVersion::V2_0] {
        let r = c
            .send(&request(
                v,
                vec![
                    item(Operation::CREATE, create_payload(v)),
                    item(Operation::ACTIVATE, id_payload(None)),
                    item(Operation::ADD_ATTRIBUTE, add(None, "x-Name", "placeholder")),
                ],
            ))
            .await;
        assert_eq!(r.items.len(), 3, "{v}");
        let new = created_id(ok_payload(&r.items[0]));
        match ok_payload(&r.items[1]) {
            ResponsePayload::Activate(a) => assert_eq!(a.unique_identifier, new),
            other => panic!("{other:?}"),
        }
        ok_payload(&r.items[2]);
        let r = c
            .send(&request(
                v,
                vec![item(Operation::GET_ATTRIBUTES, state_request(&new, v))],
            ))
            .await;
        assert_eq!(
            attributes(ok_payload(&r.items[0]))[0].enumeration(),
            Some(State::ACTIVE.0)
        );
    }
    // Without a preceding id, the placeholder is missing: a failure, not a crash.
    let r = c
        .send(&request(
            ProtocolVersion::V1_1,
            vec![item(Operation::ACTIVATE, id_payload(None))],
        ))
        .await;
    assert_eq!(r.items[0].result_status, ResultStatus::OPERATION_FAILED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maximum_response_size_and_message_extensions() {
    let server = TestServer::start().await.unwrap();
    let mut c = Conn::open(&server).await;
    let id = c.create().await;

    let mut m = request(
        ProtocolVersion::V1_1,
        vec![qlkc_item(Operation::GET, get(&id), 9)],
    );
    m.header.maximum_response_size = Some(100);
    let raw = c.raw(&m).await;
    let r = decode_response(&raw);
    assert_eq!(r.items[0].result_status, ResultStatus::OPERATION_FAILED);
    assert_eq!(
        r.items[0].result_reason,
        Some(ResultReason::RESPONSE_TOO_LARGE)
    );
    assert!(r.items[0].payload.is_none());
    assert!(r.items[0].unique_batch_item_id.is_some());
    // The key never left in the failed answer.
    assert!(raw.len() < 400);
    // Large enough: the key comes back.
    m.header.maximum_response_size = Some(4096);
    let r = c.send(&m).await;
    assert_eq!(key_bytes(ok_payload(&r.items[0])).len(), 32);

    let ext = |critical: bool| MessageExtension {
        vendor_identification: "com.example.unknown".into(),
        criticality_indicator: critical,
        vendor_extension: Ttlv::structure(kmip::Tag::VENDOR_EXTENSION, vec![]),
    };
    let mut it = item(Operation::GET, get(&id));
    it.message_extension = Some(ext(true));
    let r = c
        .send(&request(ProtocolVersion::V1_1, vec![it.clone()]))
        .await;
    assert_eq!(r.items[0].result_status, ResultStatus::OPERATION_FAILED);
    assert_eq!(
        r.items[0].result_reason,
        Some(ResultReason::FEATURE_NOT_SUPPORTED)
    );
    assert!(r.items[0].payload.is_none());
    it.message_extension = Some(ext(false));
    let r = c.send(&request(ProtocolVersion::V1_1, vec![it])).await;
    assert_eq!(key_bytes(ok_payload(&r.items[0])).len(), 32);
}

const ATTRIBUTES_TAG: [u8; 3] = [0x42, 0x01, 0x25];

fn has_tag(bytes: &[u8], tag: [u8; 3]) -> bool {
    // Every TTLV item starts at an 8-byte boundary.
    bytes.chunks(8).any(|c| c.len() >= 3 && c[..3] == tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_x_requests_never_get_two_x_structures() {
    let server = TestServer::start().await.unwrap();
    let mut c = Conn::open(&server).await;
    let id = c.create().await;
    c.send(&request(
        ProtocolVersion::V1_1,
        vec![item(
            Operation::ADD_ATTRIBUTE,
            add(Some(&id), "x-Vendor", "VMware, Inc."),
        )],
    ))
    .await;
    for v in [
        ProtocolVersion::V1_0,
        ProtocolVersion::V1_1,
        ProtocolVersion::V1_2,
        ProtocolVersion::V1_4,
    ] {
        // All attributes, and named ones including a custom one.
        for names in [
            &[][..],
            &["State", "x-Vendor", "Cryptographic Algorithm"][..],
        ] {
            let raw = c
                .raw(&request(
                    v,
                    vec![item(Operation::GET_ATTRIBUTES, get_attributes(&id, names))],
                ))
                .await;
            let r = decode_response(&raw);
            assert_eq!(r.header.protocol_version, v);
            let a = attributes(ok_payload(&r.items[0]));
            assert!(a.len() >= names.len().max(3), "{v}: {a:?}");
            assert!(
                !has_tag(&raw, ATTRIBUTES_TAG),
                "{v}: 2.x Attributes in a 1.x response"
            );
            match ok_payload(&r.items[0]) {
                ResponsePayload::GetAttributes(g) => assert!(g.attributes.is_none()),
                other => panic!("{other:?}"),
            }
        }
    }
    // The check can fail: at 2.0 the same request is answered with Attributes.
    let raw = c
        .raw(&request(
            ProtocolVersion::V2_0,
            vec![item(Operation::GET_ATTRIBUTES, get_attributes(&id, &[]))],
        ))
        .await;
    assert!(has_tag(&raw, ATTRIBUTES_TAG));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_attribute_is_success_with_only_the_identifier() {
    let server = TestServer::start().await.unwrap();
    let mut c = Conn::open(&server).await;
    let id = c.create().await;
    for v in [ProtocolVersion::V1_1, ProtocolVersion::V1_4] {
        for name in [
            "x-Product_Version",
            "Name",
            "Object Group",
            "Activation Date",
        ] {
            let raw = c
                .raw(&request(
                    v,
                    vec![qlkc_item(
                        Operation::GET_ATTRIBUTES,
                        get_attributes(&id, &[name]),
                        1,
                    )],
                ))
                .await;
            let r = decode_response(&raw);
            match ok_payload(&r.items[0]) {
                ResponsePayload::GetAttributes(g) => {
                    assert_eq!(g.unique_identifier, id);
                    assert!(g.attributes_1x.is_empty(), "{name}: {:?}", g.attributes_1x);
                    assert!(g.attributes.is_none());
                }
                other => panic!("{other:?}"),
            }
            // The payload holds exactly one item: the identifier.
            let tree = kmip::ttlv::decode(&raw, &kmip::Limits::default()).unwrap();
            let payload = tree
                .child(kmip::Tag::BATCH_ITEM)
                .and_then(|b| b.child(kmip::Tag::RESPONSE_PAYLOAD))
                .unwrap();
            assert_eq!(payload.children().unwrap().len(), 1);
        }
    }
    // At 2.0 the Attributes structure is present but empty (required there).
    let r = c
        .send(&request(
            ProtocolVersion::V2_0,
            vec![item(
                Operation::GET_ATTRIBUTES,
                RequestPayload::GetAttributes(kmip::messages::payloads::GetAttributesRequest {
                    unique_identifier: Some(id.clone()),
                    attribute_names: vec![],
                    attribute_references: vec![Ttlv::structure(
                        kmip::Tag::ATTRIBUTE_REFERENCE,
                        vec![
                            Ttlv::text(kmip::Tag::VENDOR_IDENTIFICATION, "x"),
                            Ttlv::text(kmip::Tag::ATTRIBUTE_NAME, "Product_Version"),
                        ],
                    )],
                }),
            )],
        ))
        .await;
    match ok_payload(&r.items[0]) {
        ResponsePayload::GetAttributes(g) => {
            assert_eq!(g.unique_identifier, id);
            assert!(g.attributes.as_ref().is_none_or(|a| a.0.is_empty()));
        }
        other => panic!("{other:?}"),
    }
}
