//! Model-based property test: random batches of puts and deletes, with
//! reopens, checkpoints and compactions at random points, must always
//! leave the store equal to a plain in-memory map.

mod common;

use std::collections::BTreeMap;

use common::*;
use lockd_logstore::{Batch, IoMode, LogStore};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
}

#[derive(Debug, Clone)]
enum Step {
    Commit(Vec<Op>),
    Reopen,
    /// Reopen without a clean close (no final checkpoint), like a crash
    /// after every acknowledged commit reached the disk.
    Crash,
    Checkpoint,
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..24, proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(k, v)| Op::Put(k, v)),
        1 => (0u8..24).prop_map(Op::Delete),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => proptest::collection::vec(op(), 1..6).prop_map(Step::Commit),
        1 => Just(Step::Reopen),
        1 => Just(Step::Crash),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Compact),
    ]
}

fn key(k: u8) -> String {
    format!("key/{k:02}")
}

fn assert_matches(store: &LogStore, model: &BTreeMap<String, Vec<u8>>) {
    let got: BTreeMap<String, Vec<u8>> = store
        .scan(b"", None, usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|e| {
            (
                String::from_utf8(e.key.to_vec()).expect("utf8"),
                e.value.to_bytes().expect("value").to_vec(),
            )
        })
        .collect();
    assert_eq!(&got, model);
    for (k, v) in model {
        assert_eq!(
            &store
                .get(k.as_bytes())
                .expect("get")
                .expect("present")
                .value
                .to_bytes()
                .expect("v")[..],
            &v[..]
        );
    }
}

/// Crash stand-in: leak the handle (nothing runs at close) and continue on
/// a copy of the directory, since the leaked handle keeps its lock.
fn crash(store: LogStore, dir: tempfile::TempDir) -> (LogStore, tempfile::TempDir) {
    std::mem::forget(store);
    let copy = copy_store(dir.path());
    // The leaked handle's idle threads do not mind its directory going away.
    drop(dir);
    let store = LogStore::open(copy.path(), small_opts(IoMode::Sync)).expect("reopen after crash");
    (store, copy)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_behaves_like_a_map(steps in proptest::collection::vec(step(), 1..60)) {
        let mut dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("open");
        let mut model = BTreeMap::new();
        let mut last_seq = 0;
        for step in steps {
            match step {
                Step::Commit(ops) => {
                    let mut b = Batch::new();
                    for op in &ops {
                        match op {
                            Op::Put(k, v) => { b.put(key(*k), v.clone()); }
                            Op::Delete(k) => { b.delete(key(*k)); }
                        }
                    }
                    let seq = store.commit(b).expect("commit");
                    prop_assert!(seq > last_seq);
                    last_seq = seq;
                    for op in ops {
                        match op {
                            Op::Put(k, v) => { model.insert(key(k), v); }
                            Op::Delete(k) => { model.remove(&key(k)); }
                        }
                    }
                }
                Step::Reopen => {
                    drop(store);
                    store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("reopen");
                }
                Step::Crash => {
                    let (s, d) = crash(store, dir);
                    store = s;
                    dir = d;
                }
                Step::Checkpoint => store.checkpoint().expect("checkpoint"),
                Step::Compact => {
                    store.compact_now().expect("compact");
                    store.purge_obsolete_files();
                }
            }
            assert_matches(&store, &model);
        }
        let (store, _dir) = crash(store, dir);
        assert_matches(&store, &model);
        prop_assert!(store.stats().last_seq >= last_seq);
    }
}
