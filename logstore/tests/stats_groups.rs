//! `Stats::groups` counts group writes: one per commit when commits come one
//! at a time, fewer than commits when concurrent ones share an fdatasync.

use std::sync::Arc;

use lockd_logstore::{Batch, LogStore, Options};

fn put(store: &LogStore, key: String) {
    let mut b = Batch::new();
    b.put(key, "v");
    store.commit(b).expect("commit");
}

#[test]
fn sequential_commits_are_one_group_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(dir.path(), Options::default()).expect("open");
    assert_eq!(store.stats().groups, 0);
    for i in 0..5 {
        put(&store, format!("k{i}"));
    }
    assert_eq!(store.stats().groups, 5);
    assert_eq!(store.stats().last_seq, 5);
}

#[test]
fn concurrent_commits_never_count_more_groups_than_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(LogStore::open(dir.path(), Options::default()).expect("open"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || (0..50).for_each(|i| put(&store, format!("t{t}/{i}"))))
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    let s = store.stats();
    assert_eq!(s.last_seq, 400);
    assert!((1..=400).contains(&s.groups), "{s:?}");
}
