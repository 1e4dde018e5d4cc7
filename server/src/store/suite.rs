//! One generic test suite that every storage backend passes, including a
//! model-based test: random operations against the backend and a BTreeMap
//! side by side, with close-and-reopen steps.

use super::{Backend, MemoryBackend, SledBackend, Table, Transaction};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

fn scan_all(b: &dyn Backend, table: Table, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v = Vec::new();
    b.scan(table, prefix, &mut |k, val| {
        v.push((k.to_vec(), val.to_vec()));
        true
    })
    .expect("scan");
    v
}

fn basic(b: &dyn Backend) {
    assert_eq!(b.get(Table::Objects, b"a").unwrap(), None);
    let mut t = Transaction::new();
    t.put(Table::Objects, b"a".to_vec(), b"1".to_vec());
    t.put(Table::Objects, b"ab".to_vec(), b"2".to_vec());
    t.put(Table::Index, b"a".to_vec(), b"idx".to_vec());
    t.put(Table::Objects, b"b".to_vec(), b"3".to_vec());
    b.commit(&t).unwrap();
    assert_eq!(b.get(Table::Objects, b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        b.get(Table::Index, b"a").unwrap(),
        Some(b"idx".to_vec()),
        "tables are separate"
    );
    assert_eq!(
        scan_all(b, Table::Objects, b"a"),
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"ab".to_vec(), b"2".to_vec())
        ]
    );
    assert_eq!(scan_all(b, Table::Objects, b"").len(), 3);
    // Early stop.
    let mut n = 0;
    b.scan(Table::Objects, b"", &mut |_, _| {
        n += 1;
        false
    })
    .unwrap();
    assert_eq!(n, 1);
    let mut t = Transaction::new();
    t.delete(Table::Objects, b"a".to_vec());
    t.put(Table::Objects, b"b".to_vec(), b"4".to_vec());
    t.delete(Table::Objects, b"zz".to_vec());
    b.commit(&t).unwrap();
    assert_eq!(b.get(Table::Objects, b"a").unwrap(), None);
    assert_eq!(b.get(Table::Objects, b"b").unwrap(), Some(b"4".to_vec()));
    b.flush().unwrap();
}

#[test]
fn memory_backend_basic() {
    basic(&MemoryBackend::new());
}

#[test]
fn sled_backend_basic() {
    let d = tempfile::tempdir().unwrap();
    basic(&SledBackend::open(d.path()).unwrap());
}

#[test]
fn sled_survives_reopen_after_flush() {
    let d = tempfile::tempdir().unwrap();
    {
        let b = SledBackend::open(d.path()).unwrap();
        let mut t = Transaction::new();
        t.put(Table::Objects, b"k".to_vec(), b"v".to_vec());
        b.commit(&t).unwrap();
        b.flush().unwrap();
    }
    let b = SledBackend::open(d.path()).unwrap();
    assert_eq!(b.get(Table::Objects, b"k").unwrap(), Some(b"v".to_vec()));
}

#[derive(Debug, Clone)]
enum Step {
    Put(u8, u8, u8),
    Delete(u8, u8),
    Batch(Vec<(u8, u8, Option<u8>)>),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..3, 0u8..16, any::<u8>()).prop_map(|(t, k, v)| Step::Put(t, k, v)),
        2 => (0u8..3, 0u8..16).prop_map(|(t, k)| Step::Delete(t, k)),
        2 => proptest::collection::vec((0u8..3, 0u8..16, proptest::option::of(any::<u8>())), 1..6).prop_map(Step::Batch),
        1 => Just(Step::Reopen),
    ]
}

fn table(i: u8) -> Table {
    [Table::Objects, Table::Index, Table::Meta][i as usize % 3]
}

fn run_model(steps: &[Step], mut open: impl FnMut() -> Arc<dyn Backend>) {
    let mut model: BTreeMap<(Table, Vec<u8>), Vec<u8>> = BTreeMap::new();
    let mut b = open();
    for s in steps {
        let mut t = Transaction::new();
        match s {
            Step::Put(tb, k, v) => t.put(table(*tb), vec![*k], vec![*v]),
            Step::Delete(tb, k) => t.delete(table(*tb), vec![*k]),
            Step::Batch(ops) => {
                for (tb, k, v) in ops {
                    match v {
                        Some(v) => t.put(table(*tb), vec![*k], vec![*v]),
                        None => t.delete(table(*tb), vec![*k]),
                    }
                }
            }
            Step::Reopen => {
                b.flush().unwrap();
                drop(b);
                b = open();
                continue;
            }
        }
        b.commit(&t).unwrap();
        for c in &t.changes {
            match c {
                super::Change::Put { table, key, value } => {
                    model.insert((*table, key.clone()), value.clone());
                }
                super::Change::Delete { table, key } => {
                    model.remove(&(*table, key.clone()));
                }
            }
        }
        for tb in 0..3 {
            let got = scan_all(b.as_ref(), table(tb), b"");
            let want: Vec<(Vec<u8>, Vec<u8>)> = model
                .iter()
                .filter(|((t, _), _)| *t == table(tb))
                .map(|((_, k), v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(got, want);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn memory_matches_model(steps in proptest::collection::vec(step(), 1..40)) {
        let shared: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        // Memory "reopen" keeps the same instance: nothing is lost in-process.
        run_model(&steps, || shared.clone());
    }

    #[test]
    fn sled_matches_model_across_reopens(steps in proptest::collection::vec(step(), 1..40)) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().to_owned();
        run_model(&steps, || Arc::new(SledBackend::open(&path).unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_groups_concurrent_writers() {
    let d = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(SledBackend::open(d.path()).unwrap());
    let gc = Arc::new(super::GroupCommit::new(backend.clone()));
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let gc = gc.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Transaction::new();
            t.put(Table::Objects, i.to_be_bytes().to_vec(), b"x".to_vec());
            gc.commit_durable(&t).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(scan_all(backend.as_ref(), Table::Objects, b"").len(), 200);
    // Concurrent writers share flushes.
    assert!(
        gc.flushes() < 200,
        "{} flushes for 200 writes",
        gc.flushes()
    );
    assert!(gc.flushes() >= 1);
}
