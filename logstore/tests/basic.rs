//! Everyday behaviour through the public API, on both write paths.

mod common;

use common::*;
use lockd_logstore::{Batch, Error, IoMode, LogStore, Options};

#[test]
fn put_get_delete_scan_and_reopen() {
    for io in io_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::open(dir.path(), small_opts(io)).expect("open");
        assert_eq!(
            store.io_path().to_string(),
            if io == IoMode::Uring {
                "io_uring"
            } else {
                "pwritev+fdatasync"
            }
        );
        let s1 = store.commit(put("a/1", "one")).expect("commit");
        let mut b = Batch::new();
        b.put("a/2", "two").put("a/3", "three").put("b/1", "bee");
        let s2 = store.commit(b).expect("commit");
        assert!(s2 > s1, "sequence numbers grow");
        let mut b = Batch::new();
        b.delete("a/2").put("a/1", "uno");
        let s3 = store.commit(b).expect("commit");
        assert_eq!(value(&store, "a/1").as_deref(), Some("uno"));
        assert_eq!(store.get(b"a/1").expect("get").expect("a/1").seq, s3);
        assert_eq!(value(&store, "a/2"), None);
        let keys: Vec<_> = store
            .scan(b"a/", None, 10)
            .expect("scan")
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, [&b"a/1"[..], &b"a/3"[..]]);
        let after: Vec<_> = store
            .scan_keys(b"", Some(b"a/3"), 10)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(after, [&b"b/1"[..]]);
        drop(store);

        let store = LogStore::open(dir.path(), small_opts(io)).expect("reopen");
        assert_eq!(value(&store, "a/1").as_deref(), Some("uno"));
        assert_eq!(value(&store, "a/2"), None);
        assert_eq!(value(&store, "b/1").as_deref(), Some("bee"));
        let s4 = store.commit(put("c", "sea")).expect("commit");
        assert!(s4 > s3, "sequence continues upward after reopen");
    }
}

#[test]
fn many_writers_many_segments() {
    for io in io_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(LogStore::open(dir.path(), small_opts(io)).expect("open"));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = std::sync::Arc::clone(&store);
                std::thread::spawn(move || {
                    let mut seqs = Vec::new();
                    for i in 0..200 {
                        seqs.push(
                            store
                                .commit(put(&format!("t{t}/k{}", i % 50), &format!("{t}:{i}")))
                                .expect("commit"),
                        );
                    }
                    seqs
                })
            })
            .collect();
        for t in threads {
            let seqs = t.join().expect("thread");
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "one writer's commits are ordered");
        }
        let files = segment_files(dir.path());
        assert!(files.len() >= 3, "segments rolled: {files:?}");
        let stats = store.stats();
        assert_eq!(stats.keys, 8 * 50);
        drop(store);
        let store = LogStore::open(dir.path(), small_opts(io)).expect("reopen");
        for t in 0..8 {
            for k in 0..50 {
                assert_eq!(value(&store, &format!("t{t}/k{k}")), Some(format!("{t}:{}", 150 + k)));
            }
        }
    }
}

#[test]
fn second_open_of_a_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("open");
    let err = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect_err("locked");
    assert!(matches!(err, Error::Locked(_)), "{err}");
    assert!(err.to_string().contains("locked by another process"));
    drop(store);
    LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("free again");
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        max_inline_value: 100,
        ..small_opts(IoMode::Sync)
    };
    let store = LogStore::open(dir.path(), opts).expect("open");
    assert!(matches!(store.commit(Batch::new()), Err(Error::Invalid(_))));
    let mut b = Batch::new();
    b.put("ok", "1").put("", "empty key");
    assert!(matches!(store.commit(b), Err(Error::Invalid(_))));
    let mut b = Batch::new();
    b.put("ok", "1").put("big", vec![0u8; 101]);
    assert!(matches!(store.commit(b), Err(Error::Invalid(_))));
    let mut b = Batch::new();
    b.put(vec![b'k'; 70_000], "too long a key");
    assert!(matches!(store.commit(b), Err(Error::Invalid(_))));
    assert_eq!(value(&store, "ok"), None, "a refused batch leaves nothing behind");
    assert!(LogStore::open(
        tempfile::tempdir().expect("t").path(),
        Options {
            segment_size: 10,
            ..Options::default()
        }
    )
    .is_err());
}

#[test]
fn non_durable_commit_is_visible_and_survives_a_clean_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("open");
    store
        .commit_nondurable_may_lose_on_crash(put("soft", "1"))
        .expect("commit");
    assert_eq!(value(&store, "soft").as_deref(), Some("1"));
    store.sync().expect("sync");
    drop(store);
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("reopen");
    assert_eq!(value(&store, "soft").as_deref(), Some("1"));
}

#[test]
fn checkpoint_bounds_replay_and_matches_full_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("open");
    for i in 0..300 {
        store
            .commit(put(&format!("k{}", i % 40), &format!("v{i}")))
            .expect("commit");
    }
    store.checkpoint().expect("checkpoint");
    for i in 300..320 {
        store
            .commit(put(&format!("k{}", i % 40), &format!("v{i}")))
            .expect("commit");
    }
    let mut b = Batch::new();
    b.delete("k0");
    store.commit(b).expect("commit");
    // Simulate a crash: no clean close, so no final checkpoint.
    std::mem::forget(store);
    let m = std::fs::read_to_string(dir.path().join("MANIFEST")).expect("manifest");
    assert!(!m.contains("snapshot none"), "manifest names the checkpoint:\n{m}");
    // The directory lock belongs to the leaked handle of this process; a
    // copy of the directory stands in for the restarted process.
    let copy = copy_store(dir.path());
    let store = LogStore::open(copy.path(), small_opts(IoMode::Sync)).expect("reopen");
    assert_eq!(value(&store, "k0"), None);
    for i in 1..40 {
        let last = (0..320).filter(|j| j % 40 == i).max().expect("some");
        assert_eq!(value(&store, &format!("k{i}")), Some(format!("v{last}")));
    }
}

#[test]
fn a_store_can_be_used_and_dropped_inside_an_async_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("open");
        store.commit_async(put("k", "v")).await.expect("commit");
        store
            .commit_nondurable_async_may_lose_on_crash(put("k2", "v"))
            .await
            .expect("commit");
        // Drop runs the shutdown checkpoint, which waits on the writer: it
        // must not trip tokio's "cannot block inside a runtime" check.
        drop(store);
    });
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("reopen");
    assert_eq!(value(&store, "k2").as_deref(), Some("v"));
}
