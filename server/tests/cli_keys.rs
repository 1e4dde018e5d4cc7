//! `kmipctl keys` end to end against kmipd in dev mode: create, list (with
//! filters and paging), show (attributes, links, reveal), activate, revoke,
//! rotate, destroy and its guard, and last-fetched tracking.

mod cli_support;

use cli_support::Dev;
use kmip::messages::attributes::Attribute;
use kmip::messages::payloads::*;
use kmip::messages::RequestPayload as P;
use kmip::tables::Operation;
use kmip::Value;
use kmipd_server::store::Table;

async fn tag_like_vcenter(dev: &Dev, id: &str) {
    let mut c = dev.client("vcenter").await;
    for (n, v) in [
        ("x-Product", "VMware vSphere"),
        ("x-Vendor", "VMware, Inc."),
        ("x-Component", "Virtual Machine"),
        ("x-Name", "vm-042"),
    ] {
        c.call(
            Operation::ADD_ATTRIBUTE,
            P::AddAttribute(AddAttributeRequest {
                unique_identifier: Some(id.into()),
                attribute: Some(Attribute::new(n, Value::TextString(v.into()))),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    }
}

async fn get_key(dev: &Dev, who: &str, id: &str) {
    let mut c = dev.client(who).await;
    c.call(
        Operation::GET,
        P::Get(GetRequest {
            unique_identifier: Some(id.into()),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_show_list_activate_revoke() {
    let dev = Dev::start().await;
    let a = dev
        .kmipctl(&["keys", "create", "--name", "alpha", "--attr", "x-Team=db"])
        .await
        .ok()
        .to_owned();
    let b = dev
        .kmipctl(&["keys", "create", "--name", "beta", "--activate"])
        .await
        .ok()
        .to_owned();
    // Created by vCenter: no Name, tagged with x-Name.
    let v = dev.kmipctl(&["keys", "create"]).await.ok().to_owned();
    tag_like_vcenter(&dev, &v).await;

    let show = dev.kmipctl(&["keys", "show", &a]).await;
    let out = show.ok();
    for want in [
        "alpha",
        "x-Team",
        "Pre-Active",
        "AES",
        "Encrypt|Decrypt",
        "(group)",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }
    let j = dev.kmipctl(&["keys", "show", &a, "--json"]).await.json();
    assert_eq!(j["name"], "alpha");
    assert_eq!(j["state"], "Pre-Active");
    assert_eq!(j["group"], "default");
    assert!(j.get("material_hex").is_none());

    // The table: id, name or x-Name, component, state, created, last used.
    let table = dev.kmipctl(&["keys", "list"]).await.ok().to_owned();
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("LAST USED"));
    for id in [&a, &b, &v] {
        assert!(table.contains(id.as_str()), "{table}");
    }
    let vrow = table.lines().find(|l| l.contains(&v)).unwrap();
    assert!(
        vrow.contains("vm-042") && vrow.contains("Virtual Machine"),
        "{vrow}"
    );

    let ids = |j: serde_json::Value| -> Vec<String> {
        j.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let active = dev
        .kmipctl(&["keys", "list", "--state", "active", "--json"])
        .await;
    assert_eq!(ids(active.json()), vec![b.clone()]);
    let vm = dev
        .kmipctl(&[
            "keys",
            "list",
            "--attr",
            "x-Component=\"Virtual Machine\"",
            "--json",
        ])
        .await;
    assert_eq!(ids(vm.json()), vec![v.clone()]);
    let typed = dev
        .kmipctl(&[
            "keys",
            "list",
            "--type",
            "symmetric-key",
            "--group",
            "default",
            "--json",
        ])
        .await;
    assert_eq!(ids(typed.json()).len(), 3);
    let other_group = dev
        .kmipctl(&["keys", "list", "--group", "nobody", "--json"])
        .await;
    assert!(ids(other_group.json()).is_empty());
    let future = dev
        .kmipctl(&["keys", "list", "--created-after", "+1d", "--json"])
        .await;
    assert!(ids(future.json()).is_empty());
    let past = dev
        .kmipctl(&[
            "keys",
            "list",
            "--created-before",
            "+1d",
            "--created-after",
            "-1d",
            "--json",
        ])
        .await;
    assert_eq!(ids(past.json()).len(), 3);

    dev.kmipctl(&["keys", "activate", &a]).await.ok();
    dev.kmipctl(&[
        "keys",
        "revoke",
        &a,
        "--reason",
        "superseded",
        "--message",
        "test",
    ])
    .await
    .ok();
    let j = dev.kmipctl(&["keys", "show", &a, "--json"]).await.json();
    assert_eq!(j["state"], "Deactivated");
    // Activating it again is refused by the server: exit 1.
    dev.kmipctl(&["keys", "activate", &a]).await.code(1);
    dev.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_pages_through_locate_offsets() {
    let dev = Dev::start().await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            dev.kmipctl(&["keys", "create", "--name", &format!("k{i}")])
                .await
                .ok()
                .to_owned(),
        );
    }
    let r = dev
        .kmipctl(&["keys", "list", "--page-size", "2", "--json"])
        .await
        .json();
    let mut got: Vec<String> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    made.sort();
    assert_eq!(got, made);
    let only = dev
        .kmipctl(&["keys", "list", "--page-size", "3", "--ids-only"])
        .await
        .ok()
        .lines()
        .count();
    assert_eq!(only, 7);
    let limited = dev
        .kmipctl(&["keys", "list", "--page-size", "2", "--limit", "3", "--json"])
        .await
        .json();
    assert_eq!(limited.as_array().unwrap().len(), 3);
    dev.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotate_links_and_deactivates_the_old_key() {
    let dev = Dev::start().await;
    let old = dev
        .kmipctl(&[
            "keys",
            "create",
            "--name",
            "r",
            "--attr",
            "x-Team=a",
            "--activate",
        ])
        .await
        .ok()
        .to_owned();
    let new = dev
        .kmipctl(&["keys", "rotate", &old, "--deactivate-old", "+30d"])
        .await
        .ok()
        .to_owned();
    assert_ne!(old, new);
    let n = dev.kmipctl(&["keys", "show", &new, "--json"]).await.json();
    assert_eq!(n["state"], "Active");
    assert_eq!(n["name"], "r");
    assert!(n["links"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["type"] == "Replaced Object Link" && l["id"] == old.as_str()));
    let o = dev.kmipctl(&["keys", "show", &old, "--json"]).await.json();
    assert!(o["links"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["type"] == "Replacement Object Link" && l["id"] == new.as_str()));
    assert!(o["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "Deactivation Date"));
    let text = dev.kmipctl(&["keys", "show", &old]).await.ok().to_owned();
    assert!(text.contains("LINK") && text.contains(&new));
    // --pre-active leaves the replacement Pre-Active.
    let third = dev
        .kmipctl(&["keys", "rotate", &new, "--pre-active"])
        .await
        .ok()
        .to_owned();
    let t = dev
        .kmipctl(&["keys", "show", &third, "--json"])
        .await
        .json();
    assert_eq!(t["state"], "Pre-Active");
    dev.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reveal_is_admin_only_and_audited() {
    let dev = Dev::start().await;
    let id = dev.kmipctl(&["keys", "create"]).await.ok().to_owned();
    let plain = dev.kmipctl(&["keys", "show", &id]).await.ok().to_owned();
    assert!(!plain.contains("material"), "{plain}");
    let j = dev
        .kmipctl(&["keys", "show", &id, "--reveal", "--json"])
        .await
        .json();
    let hex = j["material_hex"].as_str().unwrap();
    assert_eq!(hex.len(), 64, "AES-256 key");
    // The same bytes a Get returns.
    let mut c = dev.client("admin").await;
    let r = c
        .call(
            Operation::GET,
            P::Get(GetRequest {
                unique_identifier: Some(id.clone()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let kmip::messages::ResponsePayload::Get(g) = r else {
        panic!()
    };
    let obj = g.object().unwrap();
    let key = obj
        .key_block()
        .unwrap()
        .key_value
        .as_ref()
        .unwrap()
        .key_bytes()
        .unwrap()
        .to_vec();
    assert_eq!(hex, ::hex::encode(key));
    let log = dev
        .audit_until(|s| s.contains("kmipd Reveal: material disclosed"))
        .await;
    let line = log
        .lines()
        .find(|l| l.contains("material disclosed"))
        .unwrap();
    assert!(line.contains(&id) && line.contains("admin"), "{line}");
    assert!(
        !log.contains(hex),
        "material must never reach the audit log"
    );
    // vCenter's identity may not reveal (nor run any kmipd admin operation).
    let r = dev
        .kmipctl_as("vcenter", &["keys", "show", &id, "--reveal"])
        .await;
    r.code(1);
    assert!(r.stderr.contains("admin"), "{}", r.stderr);
    dev.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn destroy_guard_refuses_keys_in_use() {
    let dev = Dev::start().await;
    // Tagged by vCenter.
    let tagged = dev.kmipctl(&["keys", "create"]).await.ok().to_owned();
    tag_like_vcenter(&dev, &tagged).await;
    let r = dev.kmipctl(&["keys", "destroy", &tagged]).await;
    r.code(3);
    assert!(r.stderr.contains("x-Product"), "{}", r.stderr);
    // --force alone, without a terminal: still refused.
    dev.kmipctl(&["keys", "destroy", &tagged, "--force"])
        .await
        .code(3);
    // A wrong confirmation: refused.
    let r = dev
        .kmipctl(&["keys", "destroy", &tagged, "--force", "--confirm", "nope"])
        .await;
    r.code(3);
    assert!(r.stderr.contains("does not match"));
    // Revoke is guarded the same way.
    dev.kmipctl(&["keys", "activate", &tagged]).await.ok();
    dev.kmipctl(&["keys", "revoke", &tagged, "--reason", "superseded"])
        .await
        .code(3);
    let j = dev
        .kmipctl(&["keys", "show", &tagged, "--json"])
        .await
        .json();
    assert_eq!(j["state"], "Active", "nothing happened");
    dev.kmipctl(&[
        "keys",
        "revoke",
        &tagged,
        "--reason",
        "superseded",
        "--force",
        "--confirm",
        &tagged,
    ])
    .await
    .ok();
    dev.kmipctl(&["keys", "destroy", &tagged, "--force", "--confirm", &tagged])
        .await
        .ok();
    let j = dev
        .kmipctl(&["keys", "show", &tagged, "--json"])
        .await
        .json();
    assert_eq!(j["state"], "Destroyed");

    // Fetched recently (by a host, untagged).
    let fetched = dev.kmipctl(&["keys", "create"]).await.ok().to_owned();
    get_key(&dev, "vcenter", &fetched).await;
    let r = dev.kmipctl(&["keys", "destroy", &fetched]).await;
    r.code(3);
    assert!(r.stderr.contains("fetched"), "{}", r.stderr);
    let last = dev
        .kmipctl(&["keys", "show", &fetched, "--json"])
        .await
        .json();
    assert!(last["last_used"].is_string(), "{last}");
    // Within 0 days nothing counts as recent.
    dev.kmipctl(&["keys", "destroy", &fetched, "--recent-days", "0"])
        .await
        .ok();

    // Neither tagged nor fetched: destroyed without ceremony.
    let idle = dev.kmipctl(&["keys", "create"]).await.ok().to_owned();
    dev.kmipctl(&["keys", "destroy", &idle]).await.ok();
    // An Active key must be revoked first: the server says so (exit 1).
    let active = dev
        .kmipctl(&["keys", "create", "--activate"])
        .await
        .ok()
        .to_owned();
    let r = dev.kmipctl(&["keys", "destroy", &active]).await;
    r.code(1);
    assert!(r.stderr.contains("revoke"), "{}", r.stderr);
    dev.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_fetched_is_written_at_most_hourly() {
    let t0 = 1_700_000_000;
    let dev = Dev::start_at(t0).await;
    let id = dev.kmipctl(&["keys", "create"]).await.ok().to_owned();
    let stored = || {
        dev.running
            .server
            .catalog
            .backend()
            .get(Table::Meta, format!("last_get/{id}").as_bytes())
            .unwrap()
            .map(|v| i64::from_be_bytes(v.try_into().unwrap()))
    };
    assert_eq!(stored(), None);
    get_key(&dev, "vcenter", &id).await;
    assert_eq!(stored(), Some(t0));
    // Later Gets within the hour stay in memory only...
    dev.set_time(t0 + 600);
    get_key(&dev, "vcenter", &id).await;
    assert_eq!(stored(), Some(t0));
    // ...but are what kmipctl shows.
    let j = dev.kmipctl(&["keys", "show", &id, "--json"]).await.json();
    assert_eq!(j["last_used"], kmip::time::format_rfc3339(t0 + 600));
    dev.set_time(t0 + 3600 + 1);
    get_key(&dev, "vcenter", &id).await;
    assert_eq!(stored(), Some(t0 + 3601));
    dev.running.shutdown().await;
}
