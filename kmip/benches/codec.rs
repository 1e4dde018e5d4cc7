//! Decode and encode of vCenter's Get request and response (from the 7.0.3
//! capture in `tests/vectors/`) and of a Locate response with 1,000 Unique
//! Identifiers (built here), ours against the `kmip-ttlv` crate on the same
//! bytes in the same run.
//!
//! Ours is measured twice: the generic tree (`ttlv::decode` / `Encoder`) and
//! the typed messages (`RequestMessage` / `ResponseMessage`). `kmip-ttlv`
//! decodes only into serde types, so the minimal serde structs for these
//! three messages are defined below (its deserialize and serialize sides
//! want differently shaped types, hence two sets).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use kmip::messages::{RequestMessage, ResponseMessage};
use kmip::tables::Tag;
use kmip::ttlv::{decode, Encoder, Limits, Ttlv};
use std::time::Duration;

/// The first Get request and its response in the vCenter capture.
fn vcenter_get() -> (Vec<u8>, Vec<u8>) {
    let text = include_str!("../tests/vectors/vcenter-7.0.3.txt");
    let msgs: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| l.starts_with('>') || l.starts_with('<'))
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(|h| hex::decode(h).expect("hex"))
        .collect();
    // Operation Get: 42005C 05 00000004 0000000A.
    let get_op = hex::decode("42005c05000000040000000a").expect("hex");
    let i = msgs
        .iter()
        .position(|m| m[..3] == [0x42, 0x00, 0x78] && m.windows(12).any(|w| w == get_op))
        .expect("a Get request in the capture");
    (msgs[i].clone(), msgs[i + 1].clone())
}

/// A Locate response (KMIP 1.1) carrying 1,000 Unique Identifiers.
fn locate_response() -> Vec<u8> {
    let ids = (0..1000).map(|i| {
        Ttlv::text(
            Tag::UNIQUE_IDENTIFIER,
            format!("{:08x}-0000-4000-8000-{i:012}", i),
        )
    });
    let msg = Ttlv::structure(
        Tag::RESPONSE_MESSAGE,
        vec![
            Ttlv::structure(
                Tag::RESPONSE_HEADER,
                vec![
                    Ttlv::structure(
                        Tag::PROTOCOL_VERSION,
                        vec![
                            Ttlv::int(Tag::PROTOCOL_VERSION_MAJOR, 1),
                            Ttlv::int(Tag::PROTOCOL_VERSION_MINOR, 1),
                        ],
                    ),
                    Ttlv::date_time(Tag::TIME_STAMP, 1_743_675_720),
                    Ttlv::int(Tag::BATCH_COUNT, 1),
                ],
            ),
            Ttlv::structure(
                Tag::BATCH_ITEM,
                vec![
                    Ttlv::enumeration(Tag::OPERATION, 0x08u32),
                    Ttlv::enumeration(Tag::RESULT_STATUS, 0u32),
                    Ttlv::structure(Tag::RESPONSE_PAYLOAD, ids.collect()),
                ],
            ),
        ],
    );
    msg.to_bytes().expect("encodes")
}

/// kmip-ttlv's view of the messages: deserialize side (named fields, renamed
/// by tag) and serialize side (tuple structs renamed by tag).
mod theirs {
    use serde::de::{Deserializer, Visitor};
    use serde::{Deserialize, Serialize};

    /// A Byte String: kmip-ttlv reads them through `deserialize_byte_buf`.
    #[derive(Debug)]
    pub struct Bytes(pub Vec<u8>);

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    impl Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x420069")]
    pub struct ProtocolVersion {
        #[serde(rename = "0x42006A")]
        pub major: i32,
        #[serde(rename = "0x42006B")]
        pub minor: i32,
    }

    #[derive(Debug, Deserialize, Serialize, Clone, Copy)]
    #[serde(rename = "0x42005C")]
    pub enum Operation {
        #[serde(rename = "0x00000008")]
        Locate,
        #[serde(rename = "0x0000000A")]
        Get,
    }

    #[derive(Debug, Deserialize, Serialize, Clone, Copy)]
    #[serde(rename = "0x42007F")]
    pub enum ResultStatus {
        #[serde(rename = "0x00000000")]
        Success,
    }

    #[derive(Debug, Deserialize, Serialize, Clone, Copy)]
    #[serde(rename = "0x420057")]
    pub enum ObjectType {
        #[serde(rename = "0x00000002")]
        SymmetricKey,
    }

    #[derive(Debug, Deserialize, Serialize, Clone, Copy)]
    #[serde(rename = "0x420042")]
    pub enum KeyFormatType {
        #[serde(rename = "0x00000001")]
        Raw,
    }

    #[derive(Debug, Deserialize, Serialize, Clone, Copy)]
    #[serde(rename = "0x420028")]
    pub enum CryptographicAlgorithm {
        #[serde(rename = "0x00000003")]
        Aes,
    }

    // --- Get request.
    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x420078")]
    pub struct GetRequest {
        pub header: RequestHeader,
        pub items: Vec<GetRequestItem>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x420077")]
    pub struct RequestHeader {
        pub version: ProtocolVersion,
        #[serde(rename = "0x42000D")]
        pub batch_count: i32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x42000F")]
    pub struct GetRequestItem {
        pub operation: Operation,
        #[serde(rename = "0x420093")]
        pub batch_item_id: Bytes,
        pub payload: GetRequestPayload,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x420079")]
    pub struct GetRequestPayload {
        #[serde(rename = "0x420094")]
        pub unique_identifier: String,
    }

    // --- Get response.
    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x42007B")]
    pub struct GetResponse {
        pub header: ResponseHeader,
        pub items: Vec<GetResponseItem>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x42007A")]
    pub struct ResponseHeader {
        pub version: ProtocolVersion,
        #[serde(rename = "0x420092")]
        pub time_stamp: i64,
        #[serde(rename = "0x42000D")]
        pub batch_count: i32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x42000F")]
    pub struct GetResponseItem {
        pub operation: Operation,
        #[serde(rename = "0x420093")]
        pub batch_item_id: Bytes,
        pub status: ResultStatus,
        pub payload: GetResponsePayload,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x42007C")]
    pub struct GetResponsePayload {
        pub object_type: ObjectType,
        #[serde(rename = "0x420094")]
        pub unique_identifier: String,
        pub key: SymmetricKey,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x42008F")]
    pub struct SymmetricKey {
        pub key_block: KeyBlock,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x420040")]
    pub struct KeyBlock {
        pub format: KeyFormatType,
        pub value: KeyValue,
        pub algorithm: CryptographicAlgorithm,
        #[serde(rename = "0x42002A")]
        pub length: i32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x420045")]
    pub struct KeyValue {
        #[serde(rename = "0x420043")]
        pub material: Bytes,
    }

    // --- Locate response.
    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x42007B")]
    pub struct LocateResponse {
        pub header: ResponseHeader,
        pub items: Vec<LocateResponseItem>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x42000F")]
    pub struct LocateResponseItem {
        pub operation: Operation,
        pub status: ResultStatus,
        pub payload: LocateResponsePayload,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "0x42007C")]
    pub struct LocateResponsePayload {
        #[serde(rename = "0x420094")]
        pub ids: Vec<String>,
    }

    // --- Serialize side.
    #[derive(Serialize)]
    #[serde(rename = "Transparent:0x42006A")]
    pub struct Major(pub i32);
    #[derive(Serialize)]
    #[serde(rename = "Transparent:0x42006B")]
    pub struct Minor(pub i32);
    #[derive(Serialize)]
    #[serde(rename = "0x420069")]
    pub struct SVersion(pub Major, pub Minor);
    #[derive(Serialize)]
    #[serde(rename = "Transparent:0x42000D")]
    pub struct BatchCount(pub i32);
    #[derive(Serialize)]
    #[serde(rename = "Transparent:0x420092")]
    pub struct TimeStamp(pub u64);
    #[derive(Serialize)]
    #[serde(rename = "Transparent:0x420093")]
    pub struct BatchItemId(pub Bytes);
    #[derive(Serialize)]
    #[serde(rename = "Transparent:0x420094")]
    pub struct UniqueIdentifier(pub String);
    #[derive(Serialize)]
    #[serde(rename = "Transparent:0x42002A")]
    pub struct Length(pub i32);
    #[derive(Serialize)]
    #[serde(rename = "Transparent:0x420043")]
    pub struct Material(pub Bytes);

    #[derive(Serialize)]
    #[serde(rename = "0x420078")]
    pub struct SGetRequest(pub SRequestHeader, pub Vec<SGetRequestItem>);
    #[derive(Serialize)]
    #[serde(rename = "0x420077")]
    pub struct SRequestHeader(pub SVersion, pub BatchCount);
    #[derive(Serialize)]
    #[serde(rename = "0x42000F")]
    pub struct SGetRequestItem(pub Operation, pub BatchItemId, pub SGetRequestPayload);
    #[derive(Serialize)]
    #[serde(rename = "0x420079")]
    pub struct SGetRequestPayload(pub UniqueIdentifier);

    #[derive(Serialize)]
    #[serde(rename = "0x42007B")]
    pub struct SGetResponse(pub SResponseHeader, pub Vec<SGetResponseItem>);
    #[derive(Serialize)]
    #[serde(rename = "0x42007A")]
    pub struct SResponseHeader(pub SVersion, pub TimeStamp, pub BatchCount);
    #[derive(Serialize)]
    #[serde(rename = "0x42000F")]
    pub struct SGetResponseItem(
        pub Operation,
        pub BatchItemId,
        pub ResultStatus,
        pub SGetResponsePayload,
    );
    #[derive(Serialize)]
    #[serde(rename = "0x42007C")]
    pub struct SGetResponsePayload(pub ObjectType, pub UniqueIdentifier, pub SSymmetricKey);
    #[derive(Serialize)]
    #[serde(rename = "0x42008F")]
    pub struct SSymmetricKey(pub SKeyBlock);
    #[derive(Serialize)]
    #[serde(rename = "0x420040")]
    pub struct SKeyBlock(
        pub KeyFormatType,
        pub SKeyValue,
        pub CryptographicAlgorithm,
        pub Length,
    );
    #[derive(Serialize)]
    #[serde(rename = "0x420045")]
    pub struct SKeyValue(pub Material);

    #[derive(Serialize)]
    #[serde(rename = "0x42007B")]
    pub struct SLocateResponse(pub SResponseHeader, pub Vec<SLocateResponseItem>);
    #[derive(Serialize)]
    #[serde(rename = "0x42000F")]
    pub struct SLocateResponseItem(pub Operation, pub ResultStatus, pub SLocatePayload);
    #[derive(Serialize)]
    #[serde(rename = "0x42007C")]
    pub struct SLocatePayload(pub Vec<UniqueIdentifier>);

    pub fn version(v: &ProtocolVersion) -> SVersion {
        SVersion(Major(v.major), Minor(v.minor))
    }

    impl GetRequest {
        pub fn to_ser(&self) -> SGetRequest {
            let i = &self.items[0];
            SGetRequest(
                SRequestHeader(
                    version(&self.header.version),
                    BatchCount(self.header.batch_count),
                ),
                vec![SGetRequestItem(
                    i.operation,
                    BatchItemId(Bytes(i.batch_item_id.0.clone())),
                    SGetRequestPayload(UniqueIdentifier(i.payload.unique_identifier.clone())),
                )],
            )
        }
    }

    impl GetResponse {
        pub fn to_ser(&self) -> SGetResponse {
            let i = &self.items[0];
            let kb = &i.payload.key.key_block;
            SGetResponse(
                SResponseHeader(
                    version(&self.header.version),
                    TimeStamp(self.header.time_stamp as u64),
                    BatchCount(self.header.batch_count),
                ),
                vec![SGetResponseItem(
                    i.operation,
                    BatchItemId(Bytes(i.batch_item_id.0.clone())),
                    i.status,
                    SGetResponsePayload(
                        i.payload.object_type,
                        UniqueIdentifier(i.payload.unique_identifier.clone()),
                        SSymmetricKey(SKeyBlock(
                            kb.format,
                            SKeyValue(Material(Bytes(kb.value.material.0.clone()))),
                            kb.algorithm,
                            Length(kb.length),
                        )),
                    ),
                )],
            )
        }
    }

    impl LocateResponse {
        pub fn to_ser(&self) -> SLocateResponse {
            let i = &self.items[0];
            SLocateResponse(
                SResponseHeader(
                    version(&self.header.version),
                    TimeStamp(self.header.time_stamp as u64),
                    BatchCount(self.header.batch_count),
                ),
                vec![SLocateResponseItem(
                    i.operation,
                    i.status,
                    SLocatePayload(
                        i.payload
                            .ids
                            .iter()
                            .map(|s| UniqueIdentifier(s.clone()))
                            .collect(),
                    ),
                )],
            )
        }
    }
}

fn limits() -> Limits {
    Limits {
        max_message_size: 1 << 22,
        ..Limits::default()
    }
}

/// Checks that both codecs understand the bytes and re-encode them exactly,
/// so the benchmark compares like with like.
fn sanity(get_req: &[u8], get_resp: &[u8], locate: &[u8]) {
    let l = limits();
    for b in [get_req, get_resp, locate] {
        assert_eq!(
            decode(b, &l)
                .expect("ours decodes")
                .to_bytes()
                .expect("encodes"),
            b
        );
    }
    let r: theirs::GetRequest = kmip_ttlv::from_slice(get_req).expect("kmip-ttlv: Get request");
    assert_eq!(
        kmip_ttlv::to_vec(&r.to_ser()).expect("kmip-ttlv encodes"),
        get_req
    );
    let r: theirs::GetResponse = kmip_ttlv::from_slice(get_resp).expect("kmip-ttlv: Get response");
    assert_eq!(
        kmip_ttlv::to_vec(&r.to_ser()).expect("kmip-ttlv encodes"),
        get_resp
    );
    let r: theirs::LocateResponse = kmip_ttlv::from_slice(locate).expect("kmip-ttlv: Locate");
    assert_eq!(r.items[0].payload.ids.len(), 1000);
    assert_eq!(
        kmip_ttlv::to_vec(&r.to_ser()).expect("kmip-ttlv encodes"),
        locate
    );
    assert_eq!(
        RequestMessage::from_bytes(get_req, &l)
            .expect("typed")
            .to_ttlv()
            .to_bytes()
            .ok()
            .as_deref(),
        Some(get_req)
    );
    assert_eq!(
        ResponseMessage::from_bytes(get_resp, &l)
            .expect("typed")
            .to_ttlv()
            .to_bytes()
            .ok()
            .as_deref(),
        Some(get_resp)
    );
    assert_eq!(
        ResponseMessage::from_bytes(locate, &l)
            .expect("typed")
            .to_ttlv()
            .to_bytes()
            .ok()
            .as_deref(),
        Some(locate)
    );
}

fn bench(c: &mut Criterion) {
    let (get_req, get_resp) = vcenter_get();
    let locate = locate_response();
    sanity(&get_req, &get_resp, &locate);
    let l = limits();

    let mut g = c.benchmark_group("decode");
    for (name, bytes) in [
        ("get_request", &get_req),
        ("get_response", &get_resp),
        ("locate_1000", &locate),
    ] {
        g.bench_with_input(BenchmarkId::new("kmipd_tree", name), bytes, |b, x| {
            b.iter(|| decode(black_box(x), &l).expect("decodes"))
        });
        if name == "get_request" {
            g.bench_with_input(BenchmarkId::new("kmipd_typed", name), bytes, |b, x| {
                b.iter(|| RequestMessage::from_bytes(black_box(x), &l).expect("decodes"))
            });
        } else {
            g.bench_with_input(BenchmarkId::new("kmipd_typed", name), bytes, |b, x| {
                b.iter(|| ResponseMessage::from_bytes(black_box(x), &l).expect("decodes"))
            });
        }
        g.bench_with_input(
            BenchmarkId::new("kmip_ttlv", name),
            bytes,
            |b, x| match name {
                "get_request" => b.iter(|| {
                    kmip_ttlv::from_slice::<theirs::GetRequest>(black_box(x)).expect("decodes")
                }),
                "get_response" => b.iter(|| {
                    kmip_ttlv::from_slice::<theirs::GetResponse>(black_box(x)).expect("decodes")
                }),
                _ => b.iter(|| {
                    kmip_ttlv::from_slice::<theirs::LocateResponse>(black_box(x)).expect("decodes")
                }),
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("encode");
    let trees = [
        ("get_request", decode(&get_req, &l).expect("decodes")),
        ("get_response", decode(&get_resp, &l).expect("decodes")),
        ("locate_1000", decode(&locate, &l).expect("decodes")),
    ];
    let mut buf = Vec::with_capacity(1 << 16);
    for (name, tree) in &trees {
        g.bench_with_input(BenchmarkId::new("kmipd_tree", name), tree, |b, t| {
            b.iter(|| {
                let mut e = Encoder::from_buffer(std::mem::take(&mut buf));
                e.item(black_box(t)).expect("encodes");
                buf = e.into_bytes();
            })
        });
    }
    let req = RequestMessage::from_bytes(&get_req, &l).expect("typed");
    g.bench_function(BenchmarkId::new("kmipd_typed", "get_request"), |b| {
        b.iter(|| black_box(&req).to_ttlv().to_bytes().expect("encodes"))
    });
    for (name, bytes) in [("get_response", &get_resp), ("locate_1000", &locate)] {
        let m = ResponseMessage::from_bytes(bytes, &l).expect("typed");
        g.bench_function(BenchmarkId::new("kmipd_typed", name), |b| {
            b.iter(|| black_box(&m).to_ttlv().to_bytes().expect("encodes"))
        });
    }
    let r = kmip_ttlv::from_slice::<theirs::GetRequest>(&get_req)
        .expect("decodes")
        .to_ser();
    g.bench_function(BenchmarkId::new("kmip_ttlv", "get_request"), |b| {
        b.iter(|| kmip_ttlv::to_vec(black_box(&r)).expect("encodes"))
    });
    let r = kmip_ttlv::from_slice::<theirs::GetResponse>(&get_resp)
        .expect("decodes")
        .to_ser();
    g.bench_function(BenchmarkId::new("kmip_ttlv", "get_response"), |b| {
        b.iter(|| kmip_ttlv::to_vec(black_box(&r)).expect("encodes"))
    });
    let r = kmip_ttlv::from_slice::<theirs::LocateResponse>(&locate)
        .expect("decodes")
        .to_ser();
    g.bench_function(BenchmarkId::new("kmip_ttlv", "locate_1000"), |b| {
        b.iter(|| kmip_ttlv::to_vec(black_box(&r)).expect("encodes"))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
