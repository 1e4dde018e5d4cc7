//! The end-to-end flows shared by the software and the SoftHSM2 test
//! binaries: the vCenter 7.0.3 replay, the 8.0.1 typed flows, the admin
//! lifecycle and restart persistence.

use crate::*;
use kmip::messages::payloads::{AddAttributeRequest, LocateRequest, RevokeRequest};
use kmip::messages::{Authentication, Credential};
use kmip::tables::{ResultReason, State, Tag};
use kmip::Ttlv;
use std::collections::HashMap;
use tokio::io::AsyncWriteExt;

/// The transcribed vCenter 7.0.3 capture.
pub const VCENTER_703: &str = include_str!("../../kmip/tests/vectors/vcenter-7.0.3.txt");

/// One line of a transcribed capture.
#[derive(Debug, Clone)]
pub struct Line {
    /// `>` (request) or `<` (response).
    pub request: bool,
    /// Session (one TLS connection of the capture).
    pub session: String,
    /// The whole TTLV message.
    pub bytes: Vec<u8>,
}

/// Parses a transcribed capture.
pub fn parse_capture(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut p = l.split_whitespace();
            let dir = p.next().expect("direction");
            Line {
                request: dir == ">",
                session: p.next().expect("session").to_owned(),
                bytes: hex::decode(p.next().expect("hex")).expect("hex"),
            }
        })
        .collect()
}

fn walk(t: &mut Ttlv, f: &mut impl FnMut(&mut Ttlv)) {
    f(t);
    if let Value::Structure(children) = &mut t.value {
        for c in children {
            walk(c, f);
        }
    }
}

fn operation_of(item: &Ttlv) -> Option<Operation> {
    item.child(Tag::OPERATION)
        .and_then(|o| o.as_enum().ok())
        .map(Operation)
}

/// What a replayed session learnt and checked.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Captured identifier → kmipd's.
    pub ids: HashMap<String, String>,
    /// Messages compared byte for byte after normalisation.
    pub compared: usize,
    /// Add Attribute items PyKMIP failed and kmipd answered with success.
    pub add_attributes_fixed: usize,
}

/// Normalises a response tree: time stamps and date-times to 0, kmipd's
/// identifiers back to the captured ones, key material to zeros of the
/// same length, Vendor Identification to a fixed text; the supported
/// versions of a Discover Versions response are checked and then replaced
/// by the captured list; the vendor-specific Server Information of a Query
/// response is dropped.
fn normalise(t: &mut Ttlv, reverse: &HashMap<String, String>, captured_versions: Option<&[Ttlv]>) {
    walk(t, &mut |n| {
        if let Value::Structure(c) = &mut n.value {
            c.retain(|x| x.tag != Tag::SERVER_INFORMATION);
        }
    });
    walk(t, &mut |n| match (&n.tag, &mut n.value) {
        (_, Value::DateTime(v)) => *v = 0,
        (&Tag::UNIQUE_IDENTIFIER, Value::TextString(s)) => {
            if let Some(orig) = reverse.get(s.as_str()) {
                *s = orig.clone();
            }
        }
        (&Tag::KEY_MATERIAL, Value::ByteString(b)) => b.iter_mut().for_each(|x| *x = 0),
        (&Tag::VENDOR_IDENTIFICATION, Value::TextString(s)) => *s = "<vendor>".into(),
        _ => {}
    });
    if let Value::Structure(items) = &mut t.value {
        for item in items.iter_mut().filter(|i| i.tag == Tag::BATCH_ITEM) {
            if operation_of(item) != Some(Operation::DISCOVER_VERSIONS) {
                continue;
            }
            if let Value::Structure(fields) = &mut item.value {
                for f in fields.iter_mut().filter(|f| f.tag == Tag::RESPONSE_PAYLOAD) {
                    if let Some(v) = captured_versions {
                        f.value = Value::Structure(v.to_vec());
                    }
                }
            }
        }
    }
}

fn dv_versions(t: &Ttlv) -> Option<Vec<Ttlv>> {
    let item = t.children().ok()?.iter().find(|i| {
        i.tag == Tag::BATCH_ITEM && operation_of(i) == Some(Operation::DISCOVER_VERSIONS)
    })?;
    Some(item.child(Tag::RESPONSE_PAYLOAD)?.children().ok()?.to_vec())
}

/// Replays the vCenter 7.0.3 capture against `server` as the vcenter
/// identity: one connection per captured session, requests in captured
/// order, identifiers substituted, each response compared with the captured
/// one after normalisation; where PyKMIP failed Add Attribute, kmipd must
/// succeed, and a final Get Attributes must return the added attributes.
pub async fn vcenter_replay(server: &TestServer) -> ReplayReport {
    let lines = parse_capture(VCENTER_703);
    assert_eq!(lines.len(), 116, "the capture has 116 messages");
    let limits = Limits::default();
    let vcenter = tls_client(
        &server.ca_certs(),
        Some(load_pair(&server.pki.vcenter_cert, &server.pki.vcenter_key)),
        TlsVersion::Tls13,
    );
    let mut conns: HashMap<String, TlsStream<TcpStream>> = HashMap::new();
    let mut report = ReplayReport::default();
    let mut pending: HashMap<String, (Vec<u8>, RequestMessage)> = HashMap::new();
    let mut added: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let supported: Vec<Ttlv> = ProtocolVersion::SUPPORTED
        .iter()
        .map(|v| {
            use kmip::codec::Field;
            v.encode(Tag::PROTOCOL_VERSION, kmip::Ctx::new(ProtocolVersion::V1_1))
        })
        .collect();
    for (n, line) in lines.iter().enumerate() {
        if line.request {
            // Substitute the identifiers the captured server returned.
            let msg = RequestMessage::from_bytes(&line.bytes, &limits).expect("request decodes");
            let mut tree = msg.to_ttlv();
            let mut substituted = false;
            walk(&mut tree, &mut |t| {
                if t.tag == Tag::UNIQUE_IDENTIFIER {
                    if let Value::TextString(s) = &mut t.value {
                        let new = report.ids.get(s.as_str()).unwrap_or_else(|| {
                            panic!("message {n}: identifier {s:?} used before it was created")
                        });
                        *s = new.clone();
                        substituted = true;
                    }
                }
            });
            let bytes = if substituted {
                tree.to_bytes().expect("encodes")
            } else {
                // Nothing to substitute: vCenter's exact bytes.
                assert_eq!(tree.to_bytes().unwrap(), line.bytes);
                line.bytes.clone()
            };
            if !conns.contains_key(&line.session) {
                let s = tls_connect(server.addr(), vcenter.clone())
                    .await
                    .expect("vcenter connects");
                conns.insert(line.session.clone(), s);
            }
            let s = conns.get_mut(&line.session).unwrap();
            s.write_all(&bytes).await.expect("send");
            s.flush().await.expect("flush");
            pending.insert(line.session.clone(), (bytes, msg));
            continue;
        }
        let (sent, req) = pending
            .remove(&line.session)
            .unwrap_or_else(|| panic!("message {n}: response without request"));
        let s = conns.get_mut(&line.session).unwrap();
        let got = tokio::time::timeout(IO_TIMEOUT, read_frame(s))
            .await
            .expect("response in time")
            .expect("response");
        let got_tree = kmip::ttlv::decode(&got, &limits).expect("kmipd's response decodes");
        let got_msg = ResponseMessage::from_ttlv(&got_tree).expect("typed response");
        // kmipd's own bytes survive the typed codec unchanged.
        assert_eq!(
            hex::encode(got_msg.to_ttlv().to_bytes().unwrap()),
            hex::encode(&got),
            "message {n}: kmipd's response does not round-trip"
        );
        let want_msg = ResponseMessage::from_bytes(&line.bytes, &limits).expect("captured");
        assert_eq!(
            got_msg.header.protocol_version, req.header.protocol_version,
            "message {n}: answered in another version"
        );
        assert_eq!(got_msg.items.len(), req.items.len(), "message {n}: items");
        // Unique Batch Item IDs echoed byte for byte.
        for (i, (g, r)) in got_msg.items.iter().zip(&req.items).enumerate() {
            assert_eq!(
                g.unique_batch_item_id, r.unique_batch_item_id,
                "message {n} item {i}: batch item id not echoed"
            );
            if let Some(id) = &r.unique_batch_item_id {
                let raw = id.0.as_slice();
                assert!(
                    got.windows(raw.len() + 8)
                        .any(|w| w[8..] == *raw && w[..3] == [0x42, 0x00, 0x93]),
                    "message {n}: batch item id bytes not in the response"
                );
            }
        }
        let pykmip_failed = want_msg
            .items
            .iter()
            .any(|i| i.result_status != ResultStatus::SUCCESS);
        if pykmip_failed {
            // PyKMIP has no Add Attribute; kmipd must do it.
            for (i, (g, r)) in got_msg.items.iter().zip(&req.items).enumerate() {
                assert_eq!(r.operation, Operation::ADD_ATTRIBUTE);
                assert_eq!(g.operation, Some(Operation::ADD_ATTRIBUTE));
                let RequestPayload::AddAttribute(AddAttributeRequest {
                    unique_identifier: Some(id),
                    attribute: Some(a),
                    ..
                }) = &r.payload
                else {
                    panic!("message {n} item {i}: not a 1.x Add Attribute")
                };
                let id = &report.ids[id];
                match ok_payload(g) {
                    ResponsePayload::AddAttribute(resp) => {
                        assert_eq!(&resp.unique_identifier, id);
                        let back = resp.attribute.as_ref().expect("1.x echoes the attribute");
                        assert_eq!(back.name, a.name);
                        assert_eq!(back.value, a.value);
                    }
                    other => panic!("message {n}: {other:?}"),
                }
                added
                    .entry(id.clone())
                    .or_default()
                    .push((a.name.clone(), a.text().expect("x- text").to_owned()));
                report.add_attributes_fixed += 1;
            }
            continue;
        }
        // Identifiers the captured server created.
        for (g, w) in got_msg.items.iter().zip(&want_msg.items) {
            if let (Some(ResponsePayload::Create(gc)), Some(ResponsePayload::Create(wc))) =
                (&g.payload, &w.payload)
            {
                assert!(
                    report
                        .ids
                        .insert(wc.unique_identifier.clone(), gc.unique_identifier.clone())
                        .is_none(),
                    "captured id reused"
                );
            }
        }
        let reverse: HashMap<String, String> = report
            .ids
            .iter()
            .map(|(k, v)| (v.clone(), k.clone()))
            .collect();
        let want_tree = kmip::ttlv::decode(&line.bytes, &limits).unwrap();
        let captured_versions = dv_versions(&want_tree);
        if captured_versions.is_some() {
            let mine = dv_versions(&got_tree).expect("kmipd answers Discover Versions");
            let offered = match &req.items[0].payload {
                RequestPayload::DiscoverVersions(d) => d.protocol_versions.clone(),
                _ => vec![],
            };
            assert!(offered.is_empty(), "vCenter offers no versions");
            assert_eq!(mine, supported, "message {n}: the full version list");
        }
        let mut g = got_tree.clone();
        let mut w = want_tree;
        normalise(&mut g, &reverse, captured_versions.as_deref());
        normalise(&mut w, &HashMap::new(), captured_versions.as_deref());
        assert_eq!(
            hex::encode(g.to_bytes().unwrap()),
            hex::encode(w.to_bytes().unwrap()),
            "message {n} (session {}): response differs from the capture after normalisation\nkmipd: {g:?}\ncaptured: {w:?}\nsent: {}",
            line.session,
            hex::encode(&sent)
        );
        report.compared += 1;
    }
    assert!(pending.is_empty(), "unanswered requests");
    assert_eq!(report.ids.len(), 2, "the capture creates two keys");
    assert_eq!(
        report.add_attributes_fixed, 12,
        "four three-item tagging batches"
    );
    // The tags are stored and returned.
    let mut c = server.connect(&server.vcenter()).await.expect("connect");
    for (id, attrs) in &added {
        for (name, value) in attrs {
            let items = c
                .batch(vec![(
                    Operation::GET_ATTRIBUTES,
                    get_attributes(id, &[name]),
                )])
                .await
                .expect("get attributes");
            let got = attributes(ok_payload(&items[0]));
            assert_eq!(got.len(), 1, "{name} on {id}");
            assert_eq!(got[0].name, *name);
            assert_eq!(got[0].text(), Some(value.as_str()));
        }
    }
    // Both keys were activated by the replay.
    for id in report.ids.values() {
        let items = c
            .batch(vec![(
                Operation::GET_ATTRIBUTES,
                get_attributes(id, &["State"]),
            )])
            .await
            .unwrap();
        let a = attributes(ok_payload(&items[0]));
        assert_eq!(a[0].enumeration(), Some(State::ACTIVE.0));
    }
    report
}

/// vCenter 8.0.1's credential: Username and Password.
pub fn credential(user: &str, password: &str) -> Authentication {
    Authentication {
        credentials: vec![Credential::UsernamePassword {
            username: user.into(),
            password: Some(password.into()),
        }],
    }
}

/// One vCenter connection of the 8.0.1 pattern: Discover Versions (empty,
/// no batch id), then single-item messages at KMIP 1.1 with QLKC ids,
/// the credential only on Create, Get, Get Attributes(State) and Activate.
#[derive(Debug)]
pub struct VcenterConn {
    stream: TlsStream<TcpStream>,
    counter: u32,
    auth: Option<Authentication>,
}

impl VcenterConn {
    /// Connects and runs the opening Discover Versions.
    pub async fn open(
        addr: SocketAddr,
        cfg: Arc<rustls::ClientConfig>,
        auth: Option<Authentication>,
    ) -> Self {
        let stream = tls_connect(addr, cfg).await.expect("connect");
        let mut c = Self {
            stream,
            counter: 0,
            auth,
        };
        let dv = request(
            ProtocolVersion::V1_1,
            vec![item(
                Operation::DISCOVER_VERSIONS,
                RequestPayload::DiscoverVersions(Default::default()),
            )],
        );
        let r = decode_response(&roundtrip(&mut c.stream, &encode(&dv)).await.expect("DV"));
        match ok_payload(&r.items[0]) {
            ResponsePayload::DiscoverVersions(d) => {
                assert_eq!(d.protocol_versions, ProtocolVersion::SUPPORTED.to_vec())
            }
            other => panic!("{other:?}"),
        }
        c
    }

    /// Sends one or more items in one message; `authenticated` adds the credential.
    pub async fn send(
        &mut self,
        authenticated: bool,
        payloads: Vec<(Operation, RequestPayload)>,
    ) -> ResponseMessage {
        let mut items = Vec::new();
        let mut ids = Vec::new();
        for (op, p) in payloads {
            self.counter += 1;
            let it = qlkc_item(op, p, self.counter);
            ids.push(it.unique_batch_item_id.clone());
            items.push(it);
        }
        let mut msg = request(ProtocolVersion::V1_1, items);
        if authenticated {
            msg.header.authentication = self.auth.clone();
        }
        let bytes = roundtrip(&mut self.stream, &encode(&msg))
            .await
            .expect("response");
        let r = decode_response(&bytes);
        assert_eq!(r.header.protocol_version, ProtocolVersion::V1_1);
        assert_eq!(r.items.len(), ids.len());
        for (i, id) in r.items.iter().zip(ids) {
            assert_eq!(i.unique_batch_item_id, id, "batch item id echoed");
        }
        assert!(
            !bytes.windows(3).any(|w| w == [0x42, 0x01, 0x25]),
            "a 1.1 response carries a 2.x Attributes structure"
        );
        r
    }

    /// Sends and requires success of every item.
    pub async fn ok(
        &mut self,
        authenticated: bool,
        payloads: Vec<(Operation, RequestPayload)>,
    ) -> Vec<ResponsePayload> {
        let r = self.send(authenticated, payloads).await;
        r.items.iter().map(|i| ok_payload(i).clone()).collect()
    }
}

fn add_attr(id: &str, name: &str, value: &str) -> (Operation, RequestPayload) {
    (
        Operation::ADD_ATTRIBUTE,
        RequestPayload::AddAttribute(AddAttributeRequest {
            unique_identifier: Some(id.into()),
            attribute: Some(Attribute::new(name, Value::TextString(value.into()))),
            ..Default::default()
        }),
    )
}

async fn tag(
    addr: SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
    auth: &Option<Authentication>,
    id: &str,
    tags: [(&str, &str); 3],
) {
    let mut c = VcenterConn::open(addr, cfg.clone(), auth.clone()).await;
    for (name, _) in tags {
        let p = c
            .ok(
                false,
                vec![(Operation::GET_ATTRIBUTES, get_attributes(id, &[name]))],
            )
            .await;
        match &p[0] {
            ResponsePayload::GetAttributes(g) => {
                assert_eq!(g.unique_identifier, id);
                assert!(g.attributes_1x.is_empty() && g.attributes.is_none());
            }
            other => panic!("{other:?}"),
        }
    }
    let p = c
        .ok(
            false,
            tags.iter().map(|(n, v)| add_attr(id, n, v)).collect(),
        )
        .await;
    assert_eq!(p.len(), 3);
}

async fn get_and_activate(
    addr: SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
    auth: &Option<Authentication>,
    id: &str,
) -> Vec<u8> {
    let mut c = VcenterConn::open(addr, cfg.clone(), auth.clone()).await;
    let key = key_bytes(&c.ok(true, vec![(Operation::GET, get(id))]).await[0]);
    assert_eq!(key.len(), 32);
    let st = c
        .ok(
            true,
            vec![(Operation::GET_ATTRIBUTES, get_attributes(id, &["State"]))],
        )
        .await;
    assert_eq!(
        attributes(&st[0])[0].enumeration(),
        Some(State::PRE_ACTIVE.0)
    );
    c.ok(true, vec![(Operation::ACTIVATE, id_payload(Some(id)))])
        .await;
    key
}

/// vCenter 8.0.1's "encrypt a VM" flow (connections A to H of vcenter.md)
/// from typed messages, with `auth` on the operations that carry it.
/// Returns the VM key and host key identifiers.
pub async fn vcenter_801_flow(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    auth: Option<Authentication>,
) -> (String, String) {
    let create = |auth: Option<Authentication>| {
        let cfg = cfg.clone();
        async move {
            let mut c = VcenterConn::open(addr, cfg, auth).await;
            let p = c
                .ok(true, vec![(Operation::CREATE, vcenter_create())])
                .await;
            created_id(&p[0])
        }
    };
    let product = [
        ("x-Product_Version", "8.0.1 build-21560480"),
        ("x-Vendor", "VMware, Inc."),
        ("x-Product", "VMware vSphere"),
    ];
    let vm = create(auth.clone()).await; // A
    tag(addr, &cfg, &auth, &vm, product).await; // B
    let host = create(auth.clone()).await; // C
    get_and_activate(addr, &cfg, &auth, &host).await; // D
    tag(addr, &cfg, &auth, &host, product).await; // E
    tag(
        addr,
        &cfg,
        &auth,
        &host,
        [
            ("x-Identifier", "4c4c4544-0042-3510-8052-b4c04f4e4d32"),
            ("x-Component", "ESXi Server"),
            ("x-Name", "10.0.0.21"),
        ],
    )
    .await; // F
    get_and_activate(addr, &cfg, &auth, &vm).await; // G
    tag(
        addr,
        &cfg,
        &auth,
        &vm,
        [
            ("x-Identifier", "5009a2b1-6f4e-2c1d-9a0b-3e2f1d0c9b8a"),
            ("x-Component", "Virtual Machine"),
            ("x-Name", "win2022-db01"),
        ],
    )
    .await; // H
            // Everything is there.
    let mut c = VcenterConn::open(addr, cfg.clone(), None).await;
    for (id, component) in [(&vm, "Virtual Machine"), (&host, "ESXi Server")] {
        let p = c
            .ok(
                false,
                vec![(
                    Operation::GET_ATTRIBUTES,
                    get_attributes(id, &["x-Component", "x-Vendor", "State"]),
                )],
            )
            .await;
        let a = attributes(&p[0]);
        let find = |n: &str| a.iter().find(|x| x.name == n).cloned();
        assert_eq!(find("x-Component").unwrap().text(), Some(component));
        assert_eq!(find("x-Vendor").unwrap().text(), Some("VMware, Inc."));
        assert_eq!(find("State").unwrap().enumeration(), Some(State::ACTIVE.0));
    }
    (vm, host)
}

/// The admin lifecycle over the in-process client at `version`: create,
/// get, get attributes, activate, locate, revoke, destroy. Returns the
/// created identifier.
pub async fn admin_lifecycle(server: &TestServer, version: ProtocolVersion) -> String {
    let mut c = server.connect(&server.admin()).await.expect("connect");
    c.version = version;
    let p = c
        .call(Operation::CREATE, create_payload(version))
        .await
        .expect("create");
    let id = created_id(&p);
    let key = key_bytes(&c.call(Operation::GET, get(&id)).await.expect("get"));
    assert_eq!(key.len(), 32);
    let st = c
        .call(Operation::GET_ATTRIBUTES, state_request(&id, version))
        .await
        .expect("get attributes");
    assert_eq!(attributes(&st)[0].enumeration(), Some(State::PRE_ACTIVE.0));
    c.call(Operation::ACTIVATE, id_payload(Some(&id)))
        .await
        .expect("activate");
    let found = c
        .call(
            Operation::LOCATE,
            RequestPayload::Locate(LocateRequest::default()),
        )
        .await
        .expect("locate");
    match found {
        ResponsePayload::Locate(l) => assert!(l.unique_identifiers.contains(&id)),
        other => panic!("{other:?}"),
    }
    // An active key cannot be destroyed.
    let items = c
        .batch(vec![(
            Operation::DESTROY,
            RequestPayload::Destroy(IdRequest {
                unique_identifier: Some(id.clone()),
            }),
        )])
        .await
        .unwrap();
    assert_eq!(items[0].result_status, ResultStatus::OPERATION_FAILED);
    // Wrong Key Lifecycle State exists from KMIP 2.0; 1.x says Permission Denied.
    let want = if version.is_2x() {
        ResultReason::WRONG_KEY_LIFECYCLE_STATE
    } else {
        ResultReason::PERMISSION_DENIED
    };
    assert_eq!(items[0].result_reason, Some(want), "{version}");
    c.call(
        Operation::REVOKE,
        RequestPayload::Revoke(RevokeRequest {
            unique_identifier: Some(id.clone()),
            revocation_reason: kmip::messages::attributes::RevocationReason {
                revocation_reason_code: kmip::tables::RevocationReasonCode::CESSATION_OF_OPERATION,
                revocation_message: None,
            },
            compromise_occurrence_date: None,
        }),
    )
    .await
    .expect("revoke");
    c.call(
        Operation::DESTROY,
        RequestPayload::Destroy(IdRequest {
            unique_identifier: Some(id.clone()),
        }),
    )
    .await
    .expect("destroy");
    let st = c
        .call(Operation::GET_ATTRIBUTES, state_request(&id, version))
        .await
        .expect("metadata kept");
    assert_eq!(attributes(&st)[0].enumeration(), Some(State::DESTROYED.0));
    let items = c.batch(vec![(Operation::GET, get(&id))]).await.unwrap();
    assert_eq!(items[0].result_status, ResultStatus::OPERATION_FAILED);
    id
}

/// A Create of AES-256 in the attribute form of `version`.
pub fn create_payload(version: ProtocolVersion) -> RequestPayload {
    if version.is_2x() {
        let RequestPayload::Create(mut c) = vcenter_create() else {
            unreachable!()
        };
        let t = c.template_attribute.take().unwrap();
        c.attributes = Some(kmip::messages::attributes::Attributes(t.attributes));
        RequestPayload::Create(c)
    } else {
        vcenter_create()
    }
}

/// Get Attributes(State) in the form of `version`.
pub fn state_request(id: &str, version: ProtocolVersion) -> RequestPayload {
    if version.is_2x() {
        RequestPayload::GetAttributes(GetAttributesRequest {
            unique_identifier: Some(id.into()),
            attribute_names: vec![],
            attribute_references: vec![Ttlv::enumeration(Tag::ATTRIBUTE_REFERENCE, Tag::STATE.0)],
        })
    } else {
        get_attributes(id, &["State"])
    }
}

/// Creates keys with custom attributes, restarts the server on the same
/// data directory and checks that keys, attributes and key bytes survived.
pub async fn restart_persistence(server: &mut TestServer) {
    let mut keys = Vec::new();
    {
        let mut c = server.connect(&server.vcenter()).await.unwrap();
        for i in 0..5 {
            let id = created_id(&c.call(Operation::CREATE, vcenter_create()).await.unwrap());
            let bytes = key_bytes(&c.call(Operation::GET, get(&id)).await.unwrap());
            c.call(
                Operation::ADD_ATTRIBUTE,
                add_attr(&id, "x-Name", &format!("vm-{i}")).1,
            )
            .await
            .unwrap();
            if i % 2 == 0 {
                c.call(Operation::ACTIVATE, id_payload(Some(&id)))
                    .await
                    .unwrap();
            }
            keys.push((id, bytes, i));
        }
    }
    server.restart().await.expect("restart");
    let mut c = server.connect(&server.vcenter()).await.unwrap();
    for (id, bytes, i) in &keys {
        let got = key_bytes(&c.call(Operation::GET, get(id)).await.unwrap());
        assert_eq!(&got, bytes, "key {id} changed across the restart");
        let a = attributes(
            &c.call(
                Operation::GET_ATTRIBUTES,
                get_attributes(id, &["x-Name", "State", "Cryptographic Length"]),
            )
            .await
            .unwrap(),
        );
        let find = |n: &str| a.iter().find(|x| x.name == n).cloned().unwrap();
        assert_eq!(find("x-Name").text(), Some(format!("vm-{i}").as_str()));
        let want = if i % 2 == 0 {
            State::ACTIVE
        } else {
            State::PRE_ACTIVE
        };
        assert_eq!(find("State").enumeration(), Some(want.0));
        assert_eq!(find("Cryptographic Length").integer(), Some(256));
    }
    // And the restarted server still creates keys.
    let id = created_id(&c.call(Operation::CREATE, vcenter_create()).await.unwrap());
    assert!(keys.iter().all(|(k, _, _)| *k != id), "identifier reused");
}

/// The KMIP versions PyKMIP runs the lifecycle at.
pub const PYKMIP_VERSIONS: [&str; 5] = ["1.0", "1.1", "1.2", "1.4", "2.0"];

/// Runs the PyKMIP driver (tests/python/pykmip_lifecycle.py) with the
/// certificate `identity` in `mode` ("admin" or "vcenter") at every version
/// of [`PYKMIP_VERSIONS`], off the runtime; returns its JSON lines.
pub async fn pykmip(server: &TestServer, identity: &str, mode: &str) -> Vec<String> {
    let script = workspace_root().join("tests/python/pykmip_lifecycle.py");
    let pki = &server.pki.dir;
    let mut cmd = std::process::Command::new(python());
    cmd.arg(&script)
        .arg("127.0.0.1")
        .arg(server.addr().port().to_string())
        .arg(pki.join(format!("{identity}.crt")))
        .arg(pki.join(format!("{identity}.key")))
        .arg(&server.pki.ca_cert)
        .arg(mode)
        .args(PYKMIP_VERSIONS);
    // The server runs on this runtime; the client blocks another thread.
    let out = tokio::task::spawn_blocking(move || run(&mut cmd))
        .await
        .expect("PyKMIP driver");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// PyKMIP's full lifecycle as admin and create/get/activate as vcenter,
/// at every version, checked.
pub async fn pykmip_lifecycle(server: &TestServer) {
    let admin = pykmip(server, "admin", "admin").await;
    assert_eq!(admin.len(), PYKMIP_VERSIONS.len(), "{admin:?}");
    for (line, v) in admin.iter().zip(PYKMIP_VERSIONS) {
        assert!(line.contains(&format!("\"version\": \"{v}\"")), "{line}");
        assert!(line.contains("\"ok\": true"), "{line}");
        assert!(line.contains("get_destroyed"), "{line}");
    }
    let vcenter = pykmip(server, "vcenter", "vcenter").await;
    assert_eq!(vcenter.len(), PYKMIP_VERSIONS.len(), "{vcenter:?}");
    // The vcenter identity's keys are there, and active.
    let mut c = server.connect(&server.admin()).await.unwrap();
    for line in &vcenter {
        assert!(line.contains("\"ok\": true"), "{line}");
        let id = line
            .split("\"id\": \"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("id in the output");
        let a = attributes(
            &c.call(Operation::GET_ATTRIBUTES, get_attributes(id, &["State"]))
                .await
                .unwrap(),
        );
        assert_eq!(a[0].enumeration(), Some(State::ACTIVE.0));
    }
}
