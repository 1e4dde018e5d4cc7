//! The tag, enumeration and mask tables against the specification facts.
//!
//! When `KMIP_SPEC_DIR` is set (CI points it at the shared KMIP 1.4 / 2.0
//! JSON tables), every tag, enumeration value and mask bit in those files and
//! in our own `tools/kmip-2.1-additions.json` must be in our tables with the
//! same name and number. Known values and name round trips are always checked.

use kmip::tables::{
    all_enums, normalize_name, CryptographicUsageMask, NameTable, ObjectType, Operation,
    ProtectionStorageMask, ResultReason, StorageStatusMask, Tag, TAGS,
};
use kmip::xml;
use serde_json::Value as J;
use std::path::{Path, PathBuf};

fn num(v: &J) -> u32 {
    match v {
        J::String(s) => u32::from_str_radix(s.trim_start_matches("0x"), 16)
            .unwrap_or_else(|_| panic!("bad hex {s}")),
        J::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()).expect("u32"),
        other => panic!("not a number: {other}"),
    }
}

fn enum_table(name: &str) -> Option<&'static NameTable> {
    all_enums().iter().map(|d| d.table).find(|t| t.name == name)
}

fn mask_table(name: &str) -> Option<&'static NameTable> {
    [
        CryptographicUsageMask::TABLE,
        StorageStatusMask::TABLE,
        ProtectionStorageMask::TABLE,
    ]
    .into_iter()
    .find(|t| t.name == name)
}

/// Checks one JSON file; returns the number of facts compared.
fn check_file(path: &Path, errors: &mut Vec<String>) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let doc: J = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let file = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut n = 0;
    for (name, v) in doc["tags"].as_object().expect("tags object") {
        n += 1;
        let v = num(v);
        match Tag(v).name() {
            Some(ours) if normalize_name(ours) == normalize_name(name) => {}
            // Two spec names for one number: ours must still parse this one.
            Some(_) if Tag::from_name(name) == Some(Tag(v)) => {}
            other => errors.push(format!("{file}: tag {name} 0x{v:06X}: ours {other:?}")),
        }
        if Tag::from_name(name) != Some(Tag(v)) {
            errors.push(format!(
                "{file}: tag name {name:?} parses to {:?}",
                Tag::from_name(name)
            ));
        }
    }
    for (kind, key) in [("enum", "enums"), ("mask", "masks")] {
        for e in doc[key].as_array().expect("array") {
            let ename = e["name"].as_str().expect("name");
            let table = if kind == "enum" {
                enum_table(ename)
            } else {
                mask_table(ename)
            };
            let Some(table) = table else {
                errors.push(format!("{file}: no {kind} table {ename:?}"));
                continue;
            };
            for (vname, v) in e["values"].as_object().into_iter().flatten() {
                n += 1;
                let v = num(v);
                match table.name_of(v) {
                    Some(ours) if normalize_name(ours) == normalize_name(vname) => {}
                    Some(_) if table.value_of(vname) == Some(v) => {}
                    other => {
                        errors.push(format!("{file}: {ename} {vname} 0x{v:08X}: ours {other:?}"))
                    }
                }
            }
        }
    }
    n
}

#[test]
fn tables_match_the_specification_files() {
    let mut files: Vec<PathBuf> =
        vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/kmip-2.1-additions.json")];
    match std::env::var_os("KMIP_SPEC_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            files.push(dir.join("kmip-1.4-tags-enums.json"));
            files.push(dir.join("kmip-2.0-additions.json"));
        }
        None => println!("KMIP_SPEC_DIR is not set: only the 2.1 additions were compared"),
    }
    let mut errors = Vec::new();
    let mut facts = 0;
    for f in &files {
        facts += check_file(f, &mut errors);
    }
    println!("{facts} facts compared from {} files", files.len());
    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn known_values() {
    assert_eq!(Tag::ACTIVATION_DATE, Tag(0x420001));
    assert_eq!(Tag::REQUEST_MESSAGE, Tag(0x420078));
    assert_eq!(Tag::RESPONSE_MESSAGE, Tag(0x42007B));
    assert_eq!(Tag::UNIQUE_IDENTIFIER, Tag(0x420094));
    assert_eq!(Tag::ATTRIBUTES, Tag(0x420125));
    assert_eq!(Tag::OBJECT_GROUPS, Tag(0x420166));
    assert_eq!(Tag::ASYNCHRONOUS_CORRELATION_VALUES, Tag(0x420176));
    assert_eq!(
        Tag::from_name("Cryptographic Usage Mask"),
        Some(Tag(0x42002C))
    );
    assert_eq!(
        Tag::from_name("CryptographicUsageMask"),
        Some(Tag(0x42002C))
    );
    assert_eq!(Tag::from_name("0x540001"), Some(Tag(0x540001)));
    assert!(Tag(0x540001).is_extension() && Tag(0x540001).name().is_none());
    assert_eq!(ObjectType::SYMMETRIC_KEY, ObjectType(2));
    assert_eq!(Operation::GET, Operation(0x0A));
    assert_eq!(Operation::DISCOVER_VERSIONS, Operation(0x1E));
    assert_eq!(Operation::PING, Operation(0x3B));
    assert_eq!(ResultReason::ITEM_NOT_FOUND, ResultReason(1));
    assert_eq!(CryptographicUsageMask::ENCRYPT.0, 0x04);
    assert_eq!(CryptographicUsageMask::DECRYPT.0, 0x08);
    assert_eq!(
        Operation::from_name("DiscoverVersions"),
        Some(Operation::DISCOVER_VERSIONS)
    );
    assert_eq!(Operation(0x8000_0001).name(), None);
}

#[test]
fn every_tag_name_round_trips() {
    for (v, name) in TAGS.entries {
        let t = Tag::from_name(name).unwrap_or_else(|| panic!("{name} does not parse"));
        // Names that normalise alike resolve to the first (lowest) number.
        assert_eq!(
            normalize_name(t.name().expect("named")),
            normalize_name(name),
            "{name}"
        );
        if t.0 == *v {
            let elem = xml::element_name(t).expect("named");
            assert_eq!(Tag::from_name(&elem), Some(t), "XML element {elem}");
        }
        assert_eq!(
            Tag(*v).name().map(normalize_name),
            Some(normalize_name(name))
        );
    }
}

#[test]
fn every_enum_value_round_trips() {
    let mut checked = 0;
    for def in all_enums() {
        let t = def.table;
        for (v, name) in t.entries {
            assert!(t.name_of(*v).is_some(), "{}: 0x{v:08X}", t.name);
            let back = t
                .value_of(name)
                .unwrap_or_else(|| panic!("{}: {name}", t.name));
            // The first value wins when two names normalise alike.
            assert_eq!(
                t.name_of(back).map(normalize_name),
                Some(normalize_name(name))
            );
            let xml_name = xml::value_name(name);
            assert_eq!(
                t.value_of(&xml_name),
                Some(back),
                "{}: XML name {xml_name}",
                t.name
            );
            checked += 1;
        }
    }
    assert!(checked > 700, "only {checked} enumeration values");
}
