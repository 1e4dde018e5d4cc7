//! The generic test suite every [`KeyProtector`] backend must pass.
//!
//! Each check takes a fresh protector (its own key file, or its own master
//! key labels in the shared test token) with at least one master key.
//! `generic_suite!(factory)` expands to one `#[test]` per check, where
//! `factory(name)` opens a protector private to the test `name`.

#![allow(dead_code)]

use std::sync::Arc;

use kmipd_hsm::blob::{MAX_IDENTITY_LEN, MAX_PLAINTEXT_LEN};
use kmipd_hsm::{BackendKind, Error, Health, KeyProtector, WrappedKey};
use rand::RngCore;

/// Expands to one `#[test]` per check of the suite.
#[macro_export]
macro_rules! generic_suite {
    ($factory:path) => {
        $crate::generic_suite!(@tests $factory;
            round_trips, identity_binding, wrong_master_version, wrong_backend,
            every_corrupted_byte_is_refused, truncated_blobs_are_refused,
            concurrent_use, versions_lifecycle, old_blobs_open_after_rotation,
            health_is_ok, limits, debug_reveals_nothing);
    };
    (@tests $factory:path; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let p = $factory(stringify!($name));
                common::suite::$name(&*p);
            }
        )*
    };
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// Re-encodes `w` with bytes `range` replaced.
fn patched(w: &WrappedKey, offset: usize, bytes: &[u8]) -> Result<WrappedKey, Error> {
    let mut b = w.to_bytes();
    b[offset..offset + bytes.len()].copy_from_slice(bytes);
    WrappedKey::from_bytes(&b)
}

pub fn round_trips(p: &dyn KeyProtector) {
    for len in [1, 16, 24, 32, 64, 1000, MAX_PLAINTEXT_LEN] {
        let key = random(len);
        let w = p.protect(b"object-1", &key).unwrap();
        assert_eq!(w.backend(), p.backend());
        assert_eq!(w.master_version(), p.current_version());
        assert_eq!(w.plaintext_len(), len);
        assert_eq!(w.ciphertext().len(), len + 16);
        if len >= 16 {
            assert_ne!(
                &w.ciphertext()[..len],
                &key[..],
                "ciphertext equals plaintext"
            );
        }
        let decoded = WrappedKey::from_bytes(&w.to_bytes()).unwrap();
        assert_eq!(decoded, w);
        assert_eq!(&p.unprotect(b"object-1", &decoded).unwrap()[..], &key[..]);
        // Fresh IV every time: the same key sealed twice differs.
        let again = p.protect(b"object-1", &key).unwrap();
        assert_ne!(again.iv(), w.iv());
        assert_ne!(again.ciphertext(), w.ciphertext());
    }
}

pub fn identity_binding(p: &dyn KeyProtector) {
    let key = random(32);
    let w = p.protect(b"abc", &key).unwrap();
    assert_eq!(&p.unprotect(b"abc", &w).unwrap()[..], &key[..]);
    for other in [&b"abd"[..], b"ab", b"abcd", b"", b"ABC"] {
        assert!(
            matches!(p.unprotect(other, &w), Err(Error::IntegrityFailure)),
            "opened under {other:?}"
        );
    }
    // The empty identity is an identity like any other.
    let w = p.protect(b"", &key).unwrap();
    assert_eq!(&p.unprotect(b"", &w).unwrap()[..], &key[..]);
    assert!(matches!(
        p.unprotect(b"\0", &w),
        Err(Error::IntegrityFailure)
    ));
    let long = vec![7u8; MAX_IDENTITY_LEN];
    let w = p.protect(&long, &key).unwrap();
    assert_eq!(&p.unprotect(&long, &w).unwrap()[..], &key[..]);
}

pub fn wrong_master_version(p: &dyn KeyProtector) {
    let key = random(32);
    let w = p.protect(b"id", &key).unwrap();
    let v = w.master_version();
    let unknown = patched(&w, 4, &(v + 1000).to_be_bytes()).unwrap();
    assert!(matches!(
        p.unprotect(b"id", &unknown),
        Err(Error::UnknownVersion { version }) if version == v + 1000
    ));
    // Relabelled to an existing version: the key differs and the version is
    // in the associated data, so authentication fails.
    let newer = p.new_version().unwrap();
    let relabelled = patched(&w, 4, &newer.to_be_bytes()).unwrap();
    assert!(matches!(
        p.unprotect(b"id", &relabelled),
        Err(Error::IntegrityFailure)
    ));
    let w2 = p.protect(b"id", &key).unwrap();
    let relabelled = patched(&w2, 4, &v.to_be_bytes()).unwrap();
    assert!(matches!(
        p.unprotect(b"id", &relabelled),
        Err(Error::IntegrityFailure)
    ));
    assert!(matches!(
        patched(&w, 4, &0u32.to_be_bytes()),
        Err(Error::Malformed { .. })
    ));
}

pub fn wrong_backend(p: &dyn KeyProtector) {
    let w = p.protect(b"id", &random(32)).unwrap();
    for other in [BackendKind::Software, BackendKind::Pkcs11] {
        if other == p.backend() {
            continue;
        }
        let moved = patched(&w, 3, &[other.id()]).unwrap();
        assert!(matches!(
            p.unprotect(b"id", &moved),
            Err(Error::WrongBackend { expected, found }) if expected == p.backend() && found == other
        ));
    }
}

pub fn every_corrupted_byte_is_refused(p: &dyn KeyProtector) {
    let key = random(32);
    let w = p.protect(b"id", &key).unwrap();
    let bytes = w.to_bytes();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            let opened = WrappedKey::from_bytes(&b).and_then(|w| p.unprotect(b"id", &w));
            assert!(opened.is_err(), "byte {i} ^ {mask:#x} still opens");
        }
    }
    assert_eq!(&p.unprotect(b"id", &w).unwrap()[..], &key[..]);
}

pub fn truncated_blobs_are_refused(p: &dyn KeyProtector) {
    let w = p.protect(b"id", &random(64)).unwrap();
    let bytes = w.to_bytes();
    for n in 0..bytes.len() {
        assert!(matches!(
            WrappedKey::from_bytes(&bytes[..n]),
            Err(Error::Malformed { .. })
        ));
    }
    // Cut ciphertext with a consistent length field: parses, fails to open.
    for cut in [1usize, 16, 47] {
        let keep = bytes.len() - cut;
        let mut b = bytes[..keep].to_vec();
        let ct_len = (keep - 25) as u32;
        b[21..25].copy_from_slice(&ct_len.to_be_bytes());
        let w = WrappedKey::from_bytes(&b).unwrap();
        assert!(
            matches!(p.unprotect(b"id", &w), Err(Error::IntegrityFailure)),
            "cut {cut}"
        );
    }
}

pub fn concurrent_use(p: &dyn KeyProtector) {
    const THREADS: usize = 8;
    const OPS: usize = 100;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..OPS {
                        let id = format!("thread-{t}-object-{i}");
                        let key = random(32);
                        let w = p.protect(id.as_bytes(), &key).unwrap();
                        assert_eq!(&p.unprotect(id.as_bytes(), &w).unwrap()[..], &key[..]);
                        kept.push((id, key, w));
                    }
                    kept
                })
            })
            .collect();
        let all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(all.len(), THREADS * OPS);
        // Every blob still opens afterwards, and only under its own identity.
        for (n, (id, key, w)) in all.iter().enumerate() {
            assert_eq!(&p.unprotect(id.as_bytes(), w).unwrap()[..], &key[..]);
            let (other_id, _, _) = &all[(n + 1) % all.len()];
            assert!(p.unprotect(other_id.as_bytes(), w).is_err());
        }
    });
}

pub fn versions_lifecycle(p: &dyn KeyProtector) {
    let v0 = p.current_version();
    assert!(v0 >= 1);
    let listed = p.versions().unwrap();
    assert_eq!(
        listed.last().map(|i| (i.version, i.current)),
        Some((v0, true))
    );
    assert_eq!(listed.iter().filter(|i| i.current).count(), 1);

    let v1 = p.new_version().unwrap();
    assert!(v1 > v0);
    assert_eq!(p.current_version(), v1);
    let v2 = p.new_version().unwrap();
    assert!(v2 > v1);
    let listed = p.versions().unwrap();
    let numbers: Vec<u32> = listed.iter().map(|i| i.version).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    assert!(numbers.ends_with(&[v1, v2]) && numbers.contains(&v0));
    assert_eq!(
        listed
            .iter()
            .filter(|i| i.current)
            .map(|i| i.version)
            .collect::<Vec<_>>(),
        vec![v2]
    );
    let labels: std::collections::HashSet<_> = listed.iter().map(|i| &i.label).collect();
    assert_eq!(labels.len(), listed.len(), "labels are distinct");

    assert!(matches!(p.retire_version(v2), Err(Error::RetireCurrent { version }) if version == v2));
    assert!(matches!(
        p.retire_version(v2 + 100),
        Err(Error::UnknownVersion { .. })
    ));
    p.retire_version(v1).unwrap();
    assert!(matches!(
        p.retire_version(v1),
        Err(Error::UnknownVersion { .. })
    ));
    assert!(!p.versions().unwrap().iter().any(|i| i.version == v1));
    assert_eq!(p.current_version(), v2);
    // A new version after a retirement never reuses a number in use.
    let v3 = p.new_version().unwrap();
    assert!(v3 > v2);
}

pub fn old_blobs_open_after_rotation(p: &dyn KeyProtector) {
    let key = random(32);
    let old = p.protect(b"id", &key).unwrap();
    let v_old = old.master_version();
    let v_new = p.new_version().unwrap();
    let new = p.protect(b"id", &key).unwrap();
    assert_eq!(new.master_version(), v_new);
    assert_eq!(&p.unprotect(b"id", &old).unwrap()[..], &key[..]);
    // Re-wrapping moves a blob to the current version; then the old version
    // can go, and blobs left under it become unreadable.
    let moved = kmipd_hsm::rewrap(p, p, &old, b"id").unwrap();
    assert_eq!(moved.master_version(), v_new);
    p.retire_version(v_old).unwrap();
    assert!(matches!(
        p.unprotect(b"id", &old),
        Err(Error::UnknownVersion { version }) if version == v_old
    ));
    assert_eq!(&p.unprotect(b"id", &moved).unwrap()[..], &key[..]);
    assert_eq!(&p.unprotect(b"id", &new).unwrap()[..], &key[..]);
}

pub fn health_is_ok(p: &dyn KeyProtector) {
    assert_eq!(p.health(), Health::Ok);
    assert!(p.health().is_serving());
}

pub fn limits(p: &dyn KeyProtector) {
    assert!(matches!(
        p.protect(b"id", b""),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        p.protect(b"id", &vec![0; MAX_PLAINTEXT_LEN + 1]),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        p.protect(&vec![0; MAX_IDENTITY_LEN + 1], b"key"),
        Err(Error::InvalidInput { .. })
    ));
    let w = p.protect(b"id", b"key").unwrap();
    assert!(matches!(
        p.unprotect(&vec![0; MAX_IDENTITY_LEN + 1], &w),
        Err(Error::InvalidInput { .. })
    ));
}

pub fn debug_reveals_nothing(p: &dyn KeyProtector) {
    let key = [0x5au8; 32];
    let w = p.protect(b"id", &key).unwrap();
    let opened = p.unprotect(b"id", &w).unwrap();
    for text in [format!("{p:?}"), format!("{w:?}")] {
        assert!(!text.contains("5a5a") && !text.contains("90, 90"), "{text}");
    }
    assert_eq!(&opened[..], &key[..]);
}

/// Opens a protector from a factory result, for the suite's callers.
pub type Factory = fn(&str) -> Arc<dyn KeyProtector>;
