//! The policy scheduler with a fake clock (no sleeping): master key
//! rotation every N days, cryptoperiods (re-key, links, deactivation after
//! the grace period), date-driven state transitions; and the refusals of
//! master-key retirement, and pause / resume of a rotation job.

mod rotation_support;

use kmip::tables::State;
use kmip::Value;
use kmipd_hsm::{KeyProtector, SoftwareProtector};
use kmipd_server::config::{Cryptoperiod, PoliciesConfig};
use kmipd_server::jobs::scheduler::Scheduler;
use kmipd_server::jobs::{self, rotation, Idle, JobState};
use kmipd_server::model::names;
use kmipd_server::state::Server;
use kmipd_server::store::{MemoryBackend, Transaction};
use rotation_support as support;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const DAY: i64 = 86_400;

fn setup() -> (
    tempfile::TempDir,
    Arc<Server>,
    Arc<kmipd_server::state::FakeClock>,
) {
    let dir = tempfile::tempdir().unwrap();
    let protector: Arc<dyn KeyProtector> =
        Arc::new(SoftwareProtector::create(dir.path().join("master.keys")).unwrap());
    let (server, clock) = support::server(dir.path(), Arc::new(MemoryBackend::new()), protector);
    (dir, server, clock)
}

fn policies() -> PoliciesConfig {
    PoliciesConfig {
        state_transitions: false,
        ..Default::default()
    }
}

async fn run_jobs(server: &Arc<Server>) -> Idle {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    jobs::run_pending(server, &rotation::Options::default(), &rx)
        .await
        .unwrap()
}

async fn put(server: &Server, o: &kmipd_server::model::ManagedObject) {
    let mut t = Transaction::new();
    let old = server.catalog.get(&o.id).unwrap();
    server.catalog.stage_put(&mut t, old.as_ref(), o);
    server.catalog.commit(&t).await.unwrap();
}

fn audit_lines(dir: &std::path::Path) -> String {
    // The audit thread writes asynchronously.
    std::thread::sleep(Duration::from_millis(200));
    std::fs::read_to_string(dir.join("audit.log")).unwrap_or_default()
}

#[tokio::test]
async fn master_key_rotates_every_n_days() {
    let (dir, server, clock) = setup();
    support::populate(&server, 50).await;
    let s = Scheduler::new(
        server.clone(),
        PoliciesConfig {
            rotate_master_key: Some(Duration::from_secs(30 * DAY as u64)),
            ..policies()
        },
    );
    let t0 = support::T0;
    assert_eq!(
        s.tick(t0).await.rotation_started,
        None,
        "the period starts now"
    );
    assert_eq!(s.tick(t0 + 29 * DAY).await.rotation_started, None);
    clock.0.store(t0 + 30 * DAY, Ordering::SeqCst);
    let r = s.tick(t0 + 30 * DAY).await;
    assert_eq!(r.rotation_started, Some(1), "{r:?}");
    assert_eq!(server.protector.current_version(), 2);
    // One job at a time: still unfinished, so no second one.
    assert_eq!(s.tick(t0 + 90 * DAY).await.rotation_started, None);
    assert_eq!(run_jobs(&server).await, Idle::NoWork);
    assert_eq!(rotation::count_under(&server, 2).unwrap(), 50);
    assert_eq!(s.tick(t0 + 31 * DAY).await.rotation_started, None);
    clock.0.store(t0 + 60 * DAY, Ordering::SeqCst);
    assert_eq!(s.tick(t0 + 60 * DAY).await.rotation_started, Some(2));
    assert_eq!(run_jobs(&server).await, Idle::NoWork);
    assert_eq!(rotation::count_under(&server, 3).unwrap(), 50);
    let audit = audit_lines(dir.path());
    assert_eq!(
        audit.matches("kmipd Policy Master Rotate").count(),
        2,
        "{audit}"
    );
    assert_eq!(audit.matches("kmipd Master Rotation").count(), 2, "{audit}");
}

#[tokio::test]
async fn cryptoperiod_rekeys_links_and_deactivates_after_grace() {
    let (dir, server, _clock) = setup();
    let ids = support::populate(&server, 3).await;
    // One key of another product: never touched.
    let mut other = support::object("other", server.protector.as_ref(), support::T0);
    other.set("x-Product", Value::TextString("Something Else".into()));
    put(&server, &other).await;
    let s = Scheduler::new(
        server.clone(),
        PoliciesConfig {
            state_transitions: true,
            cryptoperiods: vec![Cryptoperiod {
                name: "vsphere".into(),
                matches: vec![("x-Product".into(), "VMware vSphere".into())],
                rekey_after: Duration::from_secs(365 * DAY as u64),
                grace: Duration::from_secs(30 * DAY as u64),
            }],
            ..policies()
        },
    );
    let t0 = support::T0;
    assert!(s.tick(t0 + 364 * DAY).await.rekeyed.is_empty());
    let now = t0 + 365 * DAY;
    let r = s.tick(now).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.rekeyed.len(), 3, "{r:?}");
    for (old_id, new_id) in &r.rekeyed {
        assert!(ids.contains(old_id));
        let old = server.catalog.get(old_id).unwrap().unwrap();
        let new = server.catalog.get(new_id).unwrap().unwrap();
        assert_eq!(
            old.stored_state(),
            State::ACTIVE,
            "usable during the grace period"
        );
        assert_eq!(old.date(names::DEACTIVATION_DATE), Some(now + 30 * DAY));
        assert_eq!(new.stored_state(), State::ACTIVE);
        assert_eq!(
            new.first("x-Product").and_then(|a| a.text()),
            Some("VMware vSphere")
        );
        let links = |o: &kmipd_server::model::ManagedObject| -> Vec<String> {
            o.all(names::LINK)
                .filter_map(|a| match &a.value {
                    Value::Structure(c) => {
                        c.iter().find_map(|t| t.as_text().ok().map(str::to_owned))
                    }
                    _ => None,
                })
                .collect()
        };
        assert!(
            links(&old).contains(new_id),
            "Replacement link on the old key"
        );
        assert!(links(&new).contains(old_id), "Replaced link on the new key");
    }
    // Replaced keys are not re-keyed again; the new ones are too young.
    assert!(s.tick(now + DAY).await.rekeyed.is_empty());
    // After the grace period the old keys are Deactivated (persisted).
    let r = s.tick(now + 30 * DAY).await;
    let deactivated: Vec<_> = r
        .transitions
        .iter()
        .filter(|(_, from, to)| *from == State::ACTIVE && *to == State::DEACTIVATED)
        .map(|(id, _, _)| id.clone())
        .collect();
    assert_eq!(deactivated.len(), 3, "{r:?}");
    for id in &deactivated {
        assert_eq!(
            server.catalog.get(id).unwrap().unwrap().stored_state(),
            State::DEACTIVATED
        );
    }
    let o = server.catalog.get("other").unwrap().unwrap();
    assert_eq!(o.stored_state(), State::ACTIVE);
    assert!(o.first(names::LINK).is_none());
    let audit = audit_lines(dir.path());
    assert_eq!(audit.matches("kmipd Policy Re-key").count(), 3, "{audit}");
    assert_eq!(
        audit.matches("kmipd Policy State Transition").count(),
        3,
        "{audit}"
    );
}

#[tokio::test]
async fn cryptoperiods_are_off_by_default() {
    let (_dir, server, _clock) = setup();
    support::populate(&server, 2).await;
    let s = Scheduler::new(server.clone(), PoliciesConfig::default());
    let r = s.tick(support::T0 + 10_000 * DAY).await;
    assert!(
        r.rekeyed.is_empty() && r.rotation_started.is_none(),
        "{r:?}"
    );
}

#[tokio::test]
async fn date_driven_transitions_are_persisted_and_audited() {
    let (dir, server, _clock) = setup();
    let t0 = support::T0;
    let mut o = support::object("dated", server.protector.as_ref(), t0);
    o.set(names::STATE, Value::Enumeration(State::PRE_ACTIVE.0));
    o.set(names::ACTIVATION_DATE, Value::DateTime(t0 + 10 * DAY));
    o.set(names::PROCESS_START_DATE, Value::DateTime(t0 + 5 * DAY));
    o.set(names::PROTECT_STOP_DATE, Value::DateTime(t0 + 15 * DAY));
    o.set(names::DEACTIVATION_DATE, Value::DateTime(t0 + 20 * DAY));
    put(&server, &o).await;
    let s = Scheduler::new(server.clone(), PoliciesConfig::default());
    let state = || server.catalog.get("dated").unwrap().unwrap().stored_state();
    let in_index = |st: State| {
        server
            .catalog
            .ids_where(kmipd_server::catalog::field::STATE, &st.0.to_string())
            .unwrap()
            .contains(&"dated".to_owned())
    };

    let r = s.tick(t0 + DAY).await;
    assert!(
        r.transitions.is_empty() && r.dates_passed.is_empty(),
        "{r:?}"
    );
    let r = s.tick(t0 + 5 * DAY).await;
    assert_eq!(
        r.dates_passed,
        vec![("dated".to_owned(), names::PROCESS_START_DATE)]
    );
    assert_eq!(state(), State::PRE_ACTIVE);
    let r = s.tick(t0 + 10 * DAY).await;
    assert_eq!(
        r.transitions,
        vec![("dated".to_owned(), State::PRE_ACTIVE, State::ACTIVE)]
    );
    assert!(r.dates_passed.is_empty(), "each date reported once: {r:?}");
    assert_eq!(state(), State::ACTIVE);
    assert!(in_index(State::ACTIVE) && !in_index(State::PRE_ACTIVE));
    let o = server.catalog.get("dated").unwrap().unwrap();
    assert_eq!(o.date(names::LAST_CHANGE_DATE), Some(t0 + 10 * DAY));
    let r = s.tick(t0 + 15 * DAY).await;
    assert_eq!(
        r.dates_passed,
        vec![("dated".to_owned(), names::PROTECT_STOP_DATE)]
    );
    let r = s.tick(t0 + 25 * DAY).await;
    assert_eq!(
        r.transitions,
        vec![("dated".to_owned(), State::ACTIVE, State::DEACTIVATED)]
    );
    assert!(in_index(State::DEACTIVATED));
    assert!(s.tick(t0 + 26 * DAY).await.transitions.is_empty());
    let audit = audit_lines(dir.path());
    assert_eq!(
        audit.matches("kmipd Policy State Transition").count(),
        2,
        "{audit}"
    );
    assert_eq!(
        audit.matches("kmipd Policy Date Passed").count(),
        2,
        "{audit}"
    );

    // Off: nothing is persisted.
    let (_d2, server2, _) = setup();
    let mut o = support::object("x", server2.protector.as_ref(), t0);
    o.set(names::DEACTIVATION_DATE, Value::DateTime(t0 + DAY));
    put(&server2, &o).await;
    let off = Scheduler::new(server2.clone(), policies());
    assert!(off.tick(t0 + 2 * DAY).await.transitions.is_empty());
    assert_eq!(
        server2.catalog.get("x").unwrap().unwrap().stored_state(),
        State::ACTIVE
    );
}

#[tokio::test]
async fn retire_refusals_pause_and_resume() {
    let (_dir, server, _clock) = setup();
    support::populate(&server, 3000).await;
    let refused = |e: jobs::JobError| e.to_string();
    let e = refused(rotation::retire(&server, 1).await.unwrap_err());
    assert!(e.contains("current"), "{e}");

    let job = rotation::start(&server, "admin").await.unwrap();
    let e = refused(rotation::start(&server, "admin").await.unwrap_err());
    assert!(e.contains("job 1"), "one job at a time: {e}");
    jobs::pause(&server, job.id).await.unwrap();
    assert_eq!(run_jobs(&server).await, Idle::Paused);
    let e = refused(rotation::retire(&server, 1).await.unwrap_err());
    assert!(e.contains("paused"), "{e}");
    let e = refused(rotation::retire(&server, 2).await.unwrap_err());
    assert!(e.contains("current"), "{e}");
    assert_eq!(rotation::count_under(&server, 1).unwrap(), 3000);

    jobs::resume(&server, job.id).await.unwrap();
    assert_eq!(run_jobs(&server).await, Idle::NoWork);
    let j = jobs::get(&server, job.id).unwrap().unwrap();
    assert_eq!((j.state, j.done), (JobState::Completed, 3000));
    let e = refused(jobs::pause(&server, job.id).await.unwrap_err());
    assert!(e.contains("completed"), "{e}");

    // An object still under version 1 (say, restored from a backup): refused.
    // An object the index still counts under version 1 (say, restored from
    // an old backup): refused.
    let mut legacy = support::object("legacy", server.protector.as_ref(), support::T0);
    legacy.material.as_mut().unwrap().master_version = 1;
    put(&server, &legacy).await;
    let e = refused(rotation::retire(&server, 1).await.unwrap_err());
    assert!(e.contains("1 objects are still wrapped"), "{e}");
    let mut t = Transaction::new();
    server.catalog.stage_put(&mut t, Some(&legacy), &{
        let mut l = legacy.clone();
        l.material.as_mut().unwrap().master_version = 2;
        l
    });
    server.catalog.commit(&t).await.unwrap();
    rotation::retire(&server, 1).await.unwrap();
    let versions = rotation::versions(&server).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert!(versions[0].current && versions[0].version == 2);
    assert_eq!(versions[0].objects, 3001);
    let e = refused(rotation::retire(&server, 1).await.unwrap_err());
    assert!(!e.is_empty());
}
