//! The PKCS#11 backend against a real SoftHSM2 token: the generic suite,
//! the master key's attributes, configuration failures, and moving a store
//! between backends.

mod common;

use std::sync::Arc;

use common::softhsm;
use kmipd_hsm::cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use kmipd_hsm::cryptoki::session::UserType;
use kmipd_hsm::cryptoki::types::AuthPin;
use kmipd_hsm::{
    rewrap, BackendKind, Error, HsmConfig, KeyProtector, Pkcs11Protector, SoftwareProtector,
};

fn factory(name: &str) -> Arc<dyn KeyProtector> {
    Arc::new(Pkcs11Protector::open(&softhsm::config(name)).unwrap())
}

generic_suite!(factory);

#[test]
fn master_key_is_sensitive_and_never_extractable() {
    let p = Pkcs11Protector::open(&softhsm::config("attributes")).unwrap();
    let label = p.key_label(p.current_version());
    assert_eq!(label, "t-attributes-v1");

    // Inspect the key through our own session on the same module.
    let ctx = kmipd_hsm::pkcs11::module(&softhsm::token().module).unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == softhsm::TOKEN_LABEL)
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    // The protector's sessions already logged the application in.
    let _ = session.login(UserType::User, Some(&AuthPin::from(softhsm::USER_PIN)));
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.clone().into_bytes()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "exactly one key labelled {label}");
    let key = found[0];

    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::AlwaysSensitive,
                AttributeType::Local,
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::ValueLen,
                AttributeType::Wrap,
                AttributeType::Unwrap,
                AttributeType::Derive,
                AttributeType::Sign,
                AttributeType::Id,
            ],
        )
        .unwrap();
    for expected in [
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::NeverExtractable(true),
        Attribute::AlwaysSensitive(true),
        Attribute::Local(true),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::ValueLen(32.into()),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Sign(false),
        Attribute::Id(vec![0, 0, 0, 1]),
    ] {
        assert!(
            attrs.contains(&expected),
            "missing {expected:?} in {attrs:?}"
        );
    }

    // The value cannot be read.
    let info = session
        .get_attribute_info(key, &[AttributeType::Value])
        .unwrap();
    assert!(
        matches!(info.as_slice(), [AttributeInfo::Sensitive]),
        "{info:?}"
    );
    let read = session.get_attributes(key, &[AttributeType::Value]);
    assert!(
        !matches!(&read, Ok(a) if a.iter().any(|a| matches!(a, Attribute::Value(_)))),
        "CKA_VALUE was readable"
    );
    // And the key cannot be made extractable afterwards.
    assert!(session
        .update_attributes(key, &[Attribute::Extractable(true)])
        .is_err());
}

#[test]
fn wrapped_keys_move_between_backends_only_by_rewrap() {
    let hsm = factory("move");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let soft = SoftwareProtector::create(dir.path().join("keys")).unwrap();
    let key = [3u8; 32];

    let from_soft = soft.protect(b"obj", &key).unwrap();
    assert!(matches!(
        hsm.unprotect(b"obj", &from_soft),
        Err(Error::WrongBackend {
            expected: BackendKind::Pkcs11,
            found: BackendKind::Software
        })
    ));
    let to_hsm = rewrap(&soft, &*hsm, &from_soft, b"obj").unwrap();
    assert_eq!(to_hsm.backend(), BackendKind::Pkcs11);
    assert_eq!(&hsm.unprotect(b"obj", &to_hsm).unwrap()[..], &key[..]);
    assert!(matches!(
        soft.unprotect(b"obj", &to_hsm),
        Err(Error::WrongBackend { .. })
    ));
    let back = rewrap(&*hsm, &soft, &to_hsm, b"obj").unwrap();
    assert_eq!(&soft.unprotect(b"obj", &back).unwrap()[..], &key[..]);
    // Rewrap keeps the identity binding.
    assert!(rewrap(&soft, &*hsm, &from_soft, b"other").is_err());
}

#[test]
fn a_second_protector_sees_the_same_keys() {
    let a = factory("shared");
    let w = a.protect(b"id", &[9; 24]).unwrap();
    let b = factory("shared");
    assert_eq!(b.current_version(), a.current_version());
    assert_eq!(&b.unprotect(b"id", &w).unwrap()[..], &[9; 24]);
    // A rotation by one is seen by the other when it lists or opens.
    let v = a.new_version().unwrap();
    let w2 = a.protect(b"id", &[8; 24]).unwrap();
    assert_eq!(&b.unprotect(b"id", &w2).unwrap()[..], &[8; 24]);
    assert_eq!(b.versions().unwrap().last().unwrap().version, v);
    assert_eq!(b.current_version(), v);
}

#[test]
fn missing_master_key_is_an_error_unless_asked_to_create() {
    let mut c = softhsm::config("absent");
    c.create_if_missing = false;
    let err = Pkcs11Protector::open(&c).unwrap_err();
    assert!(
        matches!(&err, Error::Config { reason } if reason.contains("t-absent-v")),
        "{err}"
    );
}

#[test]
fn unknown_token_label_is_reported() {
    let mut c = softhsm::config("label");
    c.token_label = "no-such-token".into();
    assert!(matches!(
        Pkcs11Protector::open(&c),
        Err(Error::TokenNotFound { label }) if label == "no-such-token"
    ));
}

#[test]
fn pin_sources() {
    // A PIN file works when owner-only, is refused otherwise.
    let mut c = softhsm::config("pinfile");
    c.pin_env = None;
    c.pin_file = Some(softhsm::pin_file("pin-ok", softhsm::USER_PIN, 0o600));
    Pkcs11Protector::open(&c).unwrap();
    let loose = softhsm::pin_file("pin-loose", softhsm::USER_PIN, 0o644);
    c.pin_file = Some(loose.clone());
    assert!(matches!(
        Pkcs11Protector::open(&c),
        Err(Error::InsecurePermissions { path, mode: 0o644 }) if path == loose
    ));
    let mut c = softhsm::config("pinenv");
    c.pin_env = Some("KMIPD_TEST_UNSET_PIN_VARIABLE".into());
    assert!(matches!(
        Pkcs11Protector::open(&c),
        Err(Error::Config { .. })
    ));
}

#[test]
fn open_from_toml_config() {
    softhsm::token();
    let text = format!(
        "backend = \"pkcs11\"\nmodule = \"{}\"\ntoken_label = \"{}\"\npin_env = \"{}\"\nkey_label_prefix = \"t-toml-v\"\nsessions = 2\ntimeout_ms = 10000\ncreate_if_missing = true\n",
        softhsm::token().module.display(),
        softhsm::TOKEN_LABEL,
        softhsm::PIN_ENV
    );
    let config: HsmConfig = toml::from_str(&text).unwrap();
    let p = kmipd_hsm::open(&config).unwrap();
    assert_eq!(p.backend(), BackendKind::Pkcs11);
    let w = p.protect(b"id", b"secret").unwrap();
    assert_eq!(&p.unprotect(b"id", &w).unwrap()[..], b"secret");
}
