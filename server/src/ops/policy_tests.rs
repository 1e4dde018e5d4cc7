//! KMIP's "default" Operation Policy through whole request messages: the
//! credential in the header names the principal, Create records it, and
//! every later operation and Locate applies [`crate::access::check_operation_policy`].

use super::batch;
use super::test_support::TestServer;
use crate::access::DEFAULT_OPERATION_POLICY;
use crate::model::names;
use kmip::messages::attributes::{Attribute, TemplateAttribute};
use kmip::messages::payloads::{
    CreateRequest, GetAttributeListRequest, GetRequest, IdRequest, LocateRequest, ReKeyRequest,
    RequestPayload as P, ResponsePayload as R,
};
use kmip::messages::{
    Authentication, Credential, RequestBatchItem, RequestHeader, RequestMessage, ResponseMessage,
};
use kmip::tables::{
    BatchErrorContinuationOption, CryptographicAlgorithm, ObjectType, Operation, ResultReason,
    ResultStatus,
};
use kmip::{Limits, ProtocolVersion, Value};

fn user(name: &str) -> Option<Credential> {
    Some(Credential::UsernamePassword {
        username: name.into(),
        password: Some("password1".into()),
    })
}

fn device(serial: &str, id: &str, network: &str) -> Option<Credential> {
    Some(Credential::Device {
        device_serial_number: Some(serial.into()),
        password: Some("secret".into()),
        device_identifier: Some(id.into()),
        network_identifier: Some(network.into()),
        machine_identifier: None,
        media_identifier: None,
    })
}

/// Sends one request message through the batch loop as the test server's
/// (admin) certificate, with `credential` in the header and Batch Error
/// Continuation Option Continue.
async fn send(
    t: &TestServer,
    credential: Option<Credential>,
    items: Vec<(Operation, P)>,
) -> Vec<(ResultStatus, Option<ResultReason>, Option<R>)> {
    let header = RequestHeader {
        protocol_version: ProtocolVersion::V1_1,
        authentication: credential.map(|c| Authentication {
            credentials: vec![c],
        }),
        batch_error_continuation_option: Some(BatchErrorContinuationOption::CONTINUE),
        batch_count: items.len() as i32,
        ..Default::default()
    };
    let msg = RequestMessage {
        header,
        items: items
            .into_iter()
            .map(|(operation, payload)| RequestBatchItem {
                operation,
                ephemeral: None,
                unique_batch_item_id: None,
                payload,
                message_extension: None,
            })
            .collect(),
    };
    let bytes = msg.to_ttlv().to_bytes().unwrap();
    let out = batch::handle(
        &t.server,
        Some(&t.caller),
        &bytes,
        &Limits::default(),
        Vec::new(),
    )
    .await;
    ResponseMessage::from_bytes(&out, &Limits::default())
        .unwrap()
        .items
        .into_iter()
        .map(|i| (i.result_status, i.result_reason, i.payload))
        .collect()
}

fn create(policy: Option<&str>) -> (Operation, P) {
    let mut attributes = vec![
        Attribute::new(
            names::CRYPTOGRAPHIC_ALGORITHM,
            Value::Enumeration(CryptographicAlgorithm::AES.0),
        ),
        Attribute::new(names::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
        Attribute::new("x-case", Value::TextString("policy".into())),
    ];
    if let Some(p) = policy {
        attributes.push(Attribute::new(
            names::OPERATION_POLICY_NAME,
            Value::TextString(p.into()),
        ));
    }
    (
        Operation::CREATE,
        P::Create(CreateRequest {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: Some(TemplateAttribute {
                names: Vec::new(),
                attributes,
            }),
            ..Default::default()
        }),
    )
}

async fn created(t: &TestServer, credential: Option<Credential>, policy: Option<&str>) -> String {
    match send(t, credential, vec![create(policy)]).await.remove(0) {
        (ResultStatus::SUCCESS, _, Some(R::Create(c))) => c.unique_identifier,
        other => panic!("create failed: {other:?}"),
    }
}

fn get(id: &str) -> (Operation, P) {
    (
        Operation::GET,
        P::Get(GetRequest {
            unique_identifier: Some(id.into()),
            ..Default::default()
        }),
    )
}

fn attribute_list(id: &str) -> (Operation, P) {
    (
        Operation::GET_ATTRIBUTE_LIST,
        P::GetAttributeList(GetAttributeListRequest {
            unique_identifier: Some(id.into()),
        }),
    )
}

fn activate(id: &str) -> (Operation, P) {
    let r = IdRequest {
        unique_identifier: Some(id.into()),
    };
    (Operation::ACTIVATE, P::Activate(r))
}

fn destroy(id: &str) -> (Operation, P) {
    let r = IdRequest {
        unique_identifier: Some(id.into()),
    };
    (Operation::DESTROY, P::Destroy(r))
}

fn locate_case() -> (Operation, P) {
    (
        Operation::LOCATE,
        P::Locate(LocateRequest {
            attributes_1x: vec![Attribute::new("x-case", Value::TextString("policy".into()))],
            ..Default::default()
        }),
    )
}

fn locate_all() -> (Operation, P) {
    (Operation::LOCATE, P::Locate(LocateRequest::default()))
}

fn located(r: &(ResultStatus, Option<ResultReason>, Option<R>)) -> Vec<String> {
    match r {
        (ResultStatus::SUCCESS, _, Some(R::Locate(l))) => l.unique_identifiers.clone(),
        other => panic!("locate failed: {other:?}"),
    }
}

fn ok(r: &(ResultStatus, Option<ResultReason>, Option<R>)) -> bool {
    r.0 == ResultStatus::SUCCESS
}

fn denied(r: &(ResultStatus, Option<ResultReason>, Option<R>)) -> bool {
    r.0 == ResultStatus::OPERATION_FAILED
        && r.1 == Some(ResultReason::PERMISSION_DENIED)
        && r.2.is_none()
}

#[tokio::test]
async fn another_credential_is_refused_the_creators_default_policy_key() {
    let t = TestServer::new();
    let id = created(&t, user("Fred"), Some(DEFAULT_OPERATION_POLICY)).await;
    // The creator's principal is stored with the object.
    let stored = t.server.catalog.get(&id).unwrap().unwrap();
    assert_eq!(stored.creator.as_deref(), Some("user:Fred"));

    // The creator may read it.
    let r = send(&t, user("Fred"), vec![get(&id), attribute_list(&id)]).await;
    assert!(r.iter().all(ok), "{r:?}");
    // Another principal over the same certificate may not (TC-111).
    let r = send(&t, user("Barney"), vec![get(&id), attribute_list(&id)]).await;
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(denied), "{r:?}");
    // Nor change or destroy it.
    let r = send(&t, user("Barney"), vec![activate(&id), destroy(&id)]).await;
    assert!(r.iter().all(denied), "{r:?}");
    // Locate does not find it for Barney, with or without a filter, but does for Fred.
    let r = send(&t, user("Barney"), vec![locate_case(), locate_all()]).await;
    assert!(!located(&r[0]).contains(&id) && !located(&r[1]).contains(&id));
    let r = send(&t, user("Fred"), vec![locate_case(), locate_all()]).await;
    assert!(located(&r[0]).contains(&id) && located(&r[1]).contains(&id));
    // Without a credential the certificate decides (vCenter sends one on
    // some operations only): the admin certificate sees and reads it.
    let r = send(&t, None, vec![get(&id), locate_case(), locate_all()]).await;
    assert!(ok(&r[0]), "{r:?}");
    assert!(located(&r[1]).contains(&id) && located(&r[2]).contains(&id));
    // The creator destroys it.
    let r = send(&t, user("Fred"), vec![destroy(&id)]).await;
    assert!(ok(&r[0]), "{r:?}");
}

#[tokio::test]
async fn objects_without_the_default_policy_are_shared_as_before() {
    let t = TestServer::new();
    for policy in [None, Some("some-other-policy")] {
        let id = created(&t, user("Fred"), policy).await;
        let r = send(&t, user("Barney"), vec![get(&id), attribute_list(&id)]).await;
        assert!(r.iter().all(ok), "{policy:?}: {r:?}");
    }
    // A default-policy key created without a credential has no creator principal.
    let id = created(&t, None, Some(DEFAULT_OPERATION_POLICY)).await;
    assert_eq!(t.server.catalog.get(&id).unwrap().unwrap().creator, None);
    let r = send(&t, user("Barney"), vec![get(&id)]).await;
    assert!(ok(&r[0]), "{r:?}");
}

#[tokio::test]
async fn device_credentials_name_the_device() {
    let t = TestServer::new();
    let id = created(
        &t,
        device("serNum123456", "devID2233", "netID9000"),
        Some(DEFAULT_OPERATION_POLICY),
    )
    .await;
    // The same device, even from another network, may read it (TC-112).
    let r = send(
        &t,
        device("serNum123456", "devID2233", "netID7"),
        vec![get(&id)],
    )
    .await;
    assert!(ok(&r[0]), "{r:?}");
    // Another device may not.
    let r = send(
        &t,
        device("serNum101010", "devID4444", "netID9"),
        vec![get(&id), attribute_list(&id)],
    )
    .await;
    assert!(r.iter().all(denied), "{r:?}");
}

#[tokio::test]
async fn a_replacement_key_stays_reserved_to_the_creator() {
    let t = TestServer::new();
    let id = created(&t, user("Fred"), Some(DEFAULT_OPERATION_POLICY)).await;
    // Re-keyed by a request without a credential (as kmipd's scheduler does).
    let r = send(
        &t,
        None,
        vec![(
            Operation::RE_KEY,
            P::ReKey(ReKeyRequest {
                unique_identifier: Some(id.clone()),
                ..Default::default()
            }),
        )],
    )
    .await;
    let new = match &r[0] {
        (ResultStatus::SUCCESS, _, Some(R::ReKey(k))) => k.unique_identifier.clone(),
        other => panic!("re-key failed: {other:?}"),
    };
    let r = send(&t, user("Barney"), vec![get(&new)]).await;
    assert!(denied(&r[0]), "{r:?}");
    let r = send(&t, user("Fred"), vec![get(&new)]).await;
    assert!(ok(&r[0]), "{r:?}");
}

#[tokio::test]
async fn an_oversized_credential_identity_is_refused() {
    let t = TestServer::new();
    let long = "x".repeat(crate::access::MAX_PRINCIPAL_LEN + 1);
    let r = send(
        &t,
        user(&long),
        vec![create(Some(DEFAULT_OPERATION_POLICY))],
    )
    .await;
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].0, r[0].1),
        (
            ResultStatus::OPERATION_FAILED,
            Some(ResultReason::INVALID_FIELD)
        )
    );
    // Nothing was created.
    let r = send(&t, None, vec![locate_case()]).await;
    assert!(located(&r[0]).is_empty());
}

#[tokio::test]
async fn the_audit_names_the_principal_never_the_password() {
    let mut t = TestServer::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    t.server.audit = crate::audit::Audit::to_file(&path).unwrap();
    let id = created(&t, user("Fred"), Some(DEFAULT_OPERATION_POLICY)).await;
    send(&t, None, vec![get(&id)]).await;
    // The audit thread writes in the background.
    let mut text = String::new();
    for _ in 0..200 {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(r#""identity":"tester (user:Fred)""#),
        "{text}"
    );
    assert!(lines[1].contains(r#""identity":"tester""#), "{text}");
    assert!(!text.contains("password1"), "{text}");
}

/// One request with Asynchronous Indicator set, as the admin certificate
/// with `credential`; the whole response batch items.
async fn send_async(
    t: &TestServer,
    credential: Option<Credential>,
    operation: Operation,
    payload: P,
) -> kmip::messages::ResponseBatchItem {
    let msg = RequestMessage {
        header: RequestHeader {
            protocol_version: ProtocolVersion::V1_2,
            authentication: credential.map(|c| Authentication {
                credentials: vec![c],
            }),
            asynchronous_indicator: Some(true),
            batch_count: 1,
            ..Default::default()
        },
        items: vec![RequestBatchItem {
            operation,
            ephemeral: None,
            unique_batch_item_id: None,
            payload,
            message_extension: None,
        }],
    };
    let bytes = msg.to_ttlv().to_bytes().unwrap();
    let out = batch::handle(
        &t.server,
        Some(&t.caller),
        &bytes,
        &Limits::default(),
        Vec::new(),
    )
    .await;
    ResponseMessage::from_bytes(&out, &Limits::default())
        .unwrap()
        .items
        .remove(0)
}

#[tokio::test]
async fn asynchronous_operations_run_under_the_requests_principal() {
    use kmip::messages::payloads::PollRequest;
    let t = TestServer::new();
    let id = created(&t, user("Fred"), Some(DEFAULT_OPERATION_POLICY)).await;
    // Barney's Archive of Fred's key is accepted for later...
    let archive = P::Archive(IdRequest {
        unique_identifier: Some(id.clone()),
    });
    let r = send_async(&t, user("Barney"), Operation::ARCHIVE, archive).await;
    assert_eq!(r.result_status, ResultStatus::OPERATION_PENDING);
    let value = r
        .asynchronous_correlation_value
        .expect("a correlation value");
    let poll = || {
        P::Poll(PollRequest {
            asynchronous_correlation_value: value.clone(),
        })
    };
    // ...is not Fred's to poll...
    let r = send_async(&t, user("Fred"), Operation::POLL, poll()).await;
    assert_eq!(r.result_reason, Some(ResultReason::ITEM_NOT_FOUND), "{r:?}");
    // ...and runs as Barney: refused by the default Operation Policy.
    let r = send_async(&t, user("Barney"), Operation::POLL, poll()).await;
    assert_eq!(r.result_status, ResultStatus::OPERATION_FAILED, "{r:?}");
    assert_eq!(r.result_reason, Some(ResultReason::PERMISSION_DENIED));
    let o = t.server.catalog.get(&id).unwrap().unwrap();
    assert!(!o.archived, "Barney's Archive did not happen");
}
