//! Write failures: a full disk or a failed fdatasync must reach the
//! callers of the failing batch, must not be acknowledged, and must stop the
//! store from accepting further writes until it is reopened.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::writer::io::Sink;
use crate::{Batch, Error, IoMode, LogStore, Options};

fn opts() -> Options {
    Options {
        io: IoMode::Sync,
        compaction: false,
        ..Options::default()
    }
}

fn put(k: &str, v: &str) -> Batch {
    let mut b = Batch::new();
    b.put(k.to_string(), v.to_string());
    b
}

fn failing_store(dir: &std::path::Path) -> (LogStore, Arc<AtomicI32>) {
    let errno = Arc::new(AtomicI32::new(0));
    let cell = Arc::clone(&errno);
    let store = LogStore::open_wrapped(dir, opts(), move |s| Sink::Faulty(Box::new(s), cell)).expect("open");
    (store, errno)
}

#[test]
fn disk_full_fails_the_batch_and_poisons_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, errno) = failing_store(dir.path());
    store.commit(put("a", "1")).expect("healthy commit");
    errno.store(libc::ENOSPC, Ordering::SeqCst);
    let err = store.commit(put("b", "2")).expect_err("must fail");
    assert!(err.is_no_space(), "{err}");
    assert!(
        store.get(b"b").expect("read").is_none(),
        "failed batch must not be visible"
    );
    errno.store(0, Ordering::SeqCst);
    assert!(
        matches!(store.commit(put("c", "3")), Err(Error::Poisoned(_))),
        "writes refused after failure"
    );
    assert_eq!(
        &store
            .get(b"a")
            .expect("read")
            .expect("a")
            .value
            .to_bytes()
            .expect("bytes")[..],
        b"1"
    );
    drop(store);
    let store = LogStore::open(dir.path(), opts()).expect("reopen");
    assert!(store.get(b"b").expect("read").is_none());
    store.commit(put("c", "3")).expect("writable after reopen");
}

#[test]
fn fsync_error_is_never_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, errno) = failing_store(dir.path());
    errno.store(libc::EIO, Ordering::SeqCst);
    let err = store.commit(put("x", "1")).expect_err("must fail");
    assert!(
        matches!(err, Error::Poisoned(ref m) if m.contains("Input/output error")),
        "{err}"
    );
    assert!(store.get(b"x").expect("read").is_none());
    assert!(store.sync().is_err(), "barrier refused too");
}

#[test]
fn every_durable_commit_is_covered_by_an_fdatasync_before_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let syncs = Arc::new(AtomicU64::new(0));
    let cell = Arc::clone(&syncs);
    let store =
        LogStore::open_wrapped(dir.path(), opts(), move |s| Sink::CountingSyncs(Box::new(s), cell)).expect("open");
    for i in 0..5 {
        let before = syncs.load(Ordering::SeqCst);
        store.commit(put(&format!("k{i}"), "v")).expect("commit");
        assert_eq!(
            syncs.load(Ordering::SeqCst),
            before + 1,
            "commit {i} returned without its fdatasync"
        );
    }
    store
        .commit_nondurable_may_lose_on_crash(put("soft", "v"))
        .expect("commit");
    assert_eq!(
        syncs.load(Ordering::SeqCst),
        5,
        "the non-durable commit skips fdatasync"
    );
    store.sync().expect("sync");
    assert_eq!(syncs.load(Ordering::SeqCst), 6, "sync flushes the non-durable write");
}

#[test]
fn the_manifest_sequence_floor_is_never_undercut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(dir.path(), opts()).expect("open");
    store.commit(put("a", "1")).expect("commit");
    drop(store);
    // A compaction that dropped the tombstones of batches up to 1000 leaves
    // only this floor behind.
    let mut m = crate::manifest::Manifest::load(dir.path())
        .expect("load")
        .expect("manifest");
    m.seq_floor = 1000;
    m.snapshot = None;
    m.store(dir.path()).expect("store");
    let store = LogStore::open(dir.path(), opts()).expect("reopen");
    assert_eq!(store.commit(put("b", "2")).expect("commit"), 1001);
}
