//! The software backend: the generic suite, plus what only a key file has
//! (permissions, persistence, atomic rewrites).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use kmipd_hsm::{Error, HsmConfig, KeyProtector, SoftwareConfig, SoftwareProtector};

fn key_file(name: &str) -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(name)
        // Under target/tmp: kept for post-mortems, cleaned with the target.
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir")
        .keep();
    dir.join("master.keys")
}

fn factory(name: &str) -> Arc<dyn KeyProtector> {
    Arc::new(SoftwareProtector::create(key_file(name)).unwrap())
}

generic_suite!(factory);

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn created_file_is_owner_only_and_not_overwritten() {
    let path = key_file("create");
    let p = SoftwareProtector::create(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(p.current_version(), 1);
    let before = fs::read(&path).unwrap();
    assert!(matches!(
        SoftwareProtector::create(&path),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists
    ));
    assert_eq!(fs::read(&path).unwrap(), before);
    p.new_version().unwrap();
    assert_eq!(mode(&path), 0o600, "rewrite keeps the mode");
    let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("master.keys")]);
}

#[test]
fn group_or_world_readable_key_file_is_refused() {
    let path = key_file("mode");
    drop(SoftwareProtector::create(&path).unwrap());
    for bad in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&path, fs::Permissions::from_mode(bad)).unwrap();
        let err = SoftwareProtector::open(&path).unwrap_err();
        assert!(
            matches!(&err, Error::InsecurePermissions { path: p, mode } if *p == path && *mode == bad),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("{bad:04o}")), "{msg}");
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    SoftwareProtector::open(&path).unwrap();
}

#[test]
fn health_reports_a_loosened_key_file() {
    let path = key_file("health");
    let p = SoftwareProtector::create(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(p.health(), kmipd_hsm::Health::Degraded { .. }));
}

#[test]
fn reopen_sees_rotations_and_retirements() {
    let path = key_file("reopen");
    let p = SoftwareProtector::create(&path).unwrap();
    let key = [42u8; 32];
    let w1 = p.protect(b"a", &key).unwrap();
    let v2 = p.new_version().unwrap();
    let w2 = p.protect(b"a", &key).unwrap();
    let v3 = p.new_version().unwrap();
    p.retire_version(v2).unwrap();
    drop(p);

    let p = SoftwareProtector::open(&path).unwrap();
    assert_eq!(p.current_version(), v3);
    let versions: Vec<u32> = p.versions().unwrap().iter().map(|i| i.version).collect();
    assert_eq!(versions, vec![1, v3]);
    assert_eq!(&p.unprotect(b"a", &w1).unwrap()[..], &key[..]);
    assert!(matches!(
        p.unprotect(b"a", &w2),
        Err(Error::UnknownVersion { .. })
    ));
}

#[test]
fn two_key_files_do_not_open_each_others_blobs() {
    let a = factory("a");
    let b = factory("b");
    let w = a.protect(b"id", &[1; 32]).unwrap();
    assert_eq!(w.master_version(), 1);
    assert!(matches!(
        b.unprotect(b"id", &w),
        Err(Error::IntegrityFailure)
    ));
}

#[test]
fn corrupt_key_file_is_refused_with_its_line() {
    let path = key_file("corrupt");
    drop(SoftwareProtector::create(&path).unwrap());
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace("key 1 ", "key 1 zz")).unwrap();
    let err = SoftwareProtector::open(&path).unwrap_err();
    assert!(matches!(err, Error::KeyFile { line: 4, .. }), "{err:?}");
}

#[test]
fn open_from_config() {
    let path = key_file("config");
    let config = HsmConfig::Software(SoftwareConfig {
        key_file: path.clone(),
        create_if_missing: false,
    });
    assert!(matches!(kmipd_hsm::open(&config), Err(Error::Io { .. })));
    let config = HsmConfig::Software(SoftwareConfig {
        key_file: path.clone(),
        create_if_missing: true,
    });
    let p = kmipd_hsm::open(&config).unwrap();
    let w = p.protect(b"id", b"k").unwrap();
    // Opening again uses the existing file rather than replacing it.
    let again = kmipd_hsm::open(&config).unwrap();
    assert_eq!(&again.unprotect(b"id", &w).unwrap()[..], b"k");
}
