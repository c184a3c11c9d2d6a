//! Compaction: reclaims space, keeps every live record, drops deleted keys
//! for good, and never loses a write that races it.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use lockd_logstore::{Batch, IoMode, LogStore, Options};

fn dir_bytes(dir: &std::path::Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

#[test]
fn compaction_reclaims_and_keeps_live_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("open");
    for round in 0..20 {
        for k in 0..50 {
            store
                .commit(put(&format!("k{k}"), &format!("r{round}-{k}-{}", "x".repeat(40))))
                .expect("commit");
        }
    }
    let mut b = Batch::new();
    for k in 0..10 {
        b.delete(format!("k{k}"));
    }
    store.commit(b).expect("commit");
    let before = segment_files(dir.path()).len();
    let n = store.compact_now().expect("compact");
    assert!(n >= 2, "compacted {n} segments");
    store.purge_obsolete_files();
    let after = segment_files(dir.path()).len();
    assert!(after < before / 2, "segments {before} -> {after}");
    let check = |store: &LogStore| {
        for k in 0..10 {
            assert_eq!(
                value(store, &format!("k{k}")),
                None,
                "deleted key k{k} must stay deleted"
            );
        }
        for k in 10..50 {
            assert_eq!(
                value(store, &format!("k{k}")),
                Some(format!("r19-{k}-{}", "x".repeat(40)))
            );
        }
        assert_eq!(store.stats().keys, 40);
    };
    check(&store);
    drop(store);
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("reopen");
    check(&store);
    assert!(dir_bytes(dir.path()) > 0);
}

#[test]
fn compaction_racing_writers_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let compactor = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                runs += store.compact_now().expect("compact");
                store.purge_obsolete_files();
            }
            runs
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut model = BTreeMap::new();
                for i in 0..600u32 {
                    let key = format!("t{t}/k{}", i % 37);
                    if i % 11 == 0 {
                        let mut b = Batch::new();
                        b.delete(key.clone());
                        store.commit(b).expect("commit");
                        model.remove(&key);
                    } else {
                        let v = format!("{t}-{i}-{}", "y".repeat((i % 50) as usize));
                        store.commit(put(&key, &v)).expect("commit");
                        model.insert(key, v);
                    }
                }
                model
            })
        })
        .collect();
    let mut model = BTreeMap::new();
    for w in writers {
        model.extend(w.join().expect("writer"));
    }
    stop.store(true, Ordering::Relaxed);
    let runs = compactor.join().expect("compactor");
    assert!(runs > 0, "compaction actually ran while writers wrote");
    let verify = |store: &LogStore| {
        let all: BTreeMap<String, String> = store
            .scan(b"", None, usize::MAX)
            .expect("scan")
            .into_iter()
            .map(|e| {
                (
                    String::from_utf8(e.key.to_vec()).expect("utf8"),
                    String::from_utf8(e.value.to_bytes().expect("bytes").to_vec()).expect("utf8"),
                )
            })
            .collect();
        assert_eq!(all, model);
    };
    verify(&store);
    drop(store);
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("reopen");
    verify(&store);
}

#[test]
fn background_compaction_runs_on_its_timer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        compaction: true,
        compaction_interval: std::time::Duration::from_millis(50),
        compaction_min_segments: 2,
        compaction_min_reclaim: 1,
        ..small_opts(IoMode::Sync)
    };
    let store = LogStore::open(dir.path(), opts).expect("open");
    for i in 0..2000 {
        store.commit(put("same-key", &format!("{i:0>40}"))).expect("commit");
    }
    let peak = segment_files(dir.path()).len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while segment_files(dir.path()).len() > 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "background compaction never shrank {peak} segments"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(value(&store, "same-key"), Some(format!("{:0>40}", 1999)));
}
