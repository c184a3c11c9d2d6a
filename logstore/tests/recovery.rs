//! Damage on disk: torn tails are cut back to the last whole batch, bit
//! rot anywhere else refuses to open and says where.

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use lockd_logstore::{Batch, Error, IoMode, LogStore};

fn fill(dir: &std::path::Path, batches: usize) {
    let store = LogStore::open(dir, small_opts(IoMode::Sync)).expect("open");
    for i in 0..batches {
        let mut b = Batch::new();
        b.put(format!("k{i}"), format!("value-{i}")).put("last", format!("{i}"));
        store.commit(b).expect("commit");
    }
    // Leave without a clean close's checkpoint so reopen replays the log.
    std::mem::forget(store);
}

fn flip(path: &std::path::Path, offset: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read");
    b[0] ^= 0x40;
    f.write_all_at(&b, offset).expect("write");
}

/// Opens a copy of `dir`: the leaked handle above still holds the original's
/// lock, as a crashed process would not.
fn reopen(dir: &std::path::Path) -> (tempfile::TempDir, lockd_logstore::Result<LogStore>) {
    let copy = copy_store(dir);
    let r = LogStore::open(copy.path(), small_opts(IoMode::Sync));
    (copy, r)
}

#[test]
fn torn_tail_at_every_cut_point_of_the_last_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 30);
    let active = active_segment(dir.path());
    let end = data_end(&active);
    // The last batch is two records: header 20 + "k29" + "value-29" and
    // header 20 + "last" + "29" = 57 bytes. Every cut inside it drops it whole.
    let last_batch = (20 + 3 + 8) + (20 + 4 + 2);
    for cut in end - last_batch + 1..end {
        let work = copy_store(dir.path());
        let seg = work.path().join(active.file_name().expect("name"));
        let f = std::fs::OpenOptions::new().write(true).open(&seg).expect("open");
        f.write_all_at(&vec![0u8; end - cut], cut as u64).expect("zero tail");
        drop(f);
        let store = LogStore::open(work.path(), small_opts(IoMode::Sync)).expect("torn tail recovers");
        assert_eq!(value(&store, "last").as_deref(), Some("28"), "cut at {cut}");
        assert_eq!(value(&store, "k28").as_deref(), Some("value-28"));
        assert_eq!(value(&store, "k29"), None, "no half batch (cut at {cut})");
        // The store keeps working after the cut, and the cut is permanent.
        store.commit(put("after", "cut")).expect("commit");
        drop(store);
        let store = LogStore::open(work.path(), small_opts(IoMode::Sync)).expect("reopen");
        assert_eq!(value(&store, "after").as_deref(), Some("cut"));
    }
}

#[test]
fn bit_flip_in_the_active_segment_truncates_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 30);
    let active = active_segment(dir.path());
    let end = data_end(&active) as u64;
    flip(&active, end - 5);
    let (_copy, store) = reopen(dir.path());
    let store = store.expect("recovers by truncation");
    assert_eq!(value(&store, "last").as_deref(), Some("28"));
    assert_eq!(value(&store, "k29"), None);
}

#[test]
fn bit_flip_in_a_sealed_segment_fails_open_with_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 2000);
    let sealed = sealed_segments(dir.path());
    assert!(!sealed.is_empty(), "test needs a sealed segment");
    let (path, len) = &sealed[0];
    flip(path, len / 2);
    let (_copy, result) = reopen(dir.path());
    let err = result.expect_err("sealed corruption must not be skipped");
    let Error::Corrupt { path: bad, offset, .. } = &err else {
        panic!("expected Corrupt, got {err}")
    };
    assert_eq!(bad.file_name(), path.file_name(), "{err}");
    assert!(
        *offset <= len / 2 && *offset + 64 > len / 2,
        "offset {offset} near the flip at {}",
        len / 2
    );
}

#[test]
fn damaged_manifest_is_an_error_not_an_empty_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 5);
    let m = dir.path().join("MANIFEST");
    let text = std::fs::read_to_string(&m).expect("read").replace("next-id", "next-jd");
    std::fs::write(&m, text).expect("write");
    let (_copy, result) = reopen(dir.path());
    let err = result.expect_err("damaged manifest");
    assert!(err.to_string().contains("MANIFEST"), "{err}");
    std::fs::remove_file(&m).expect("rm");
    let (_copy, result) = reopen(dir.path());
    let err = result.expect_err("missing manifest with segments present");
    assert!(err.to_string().contains("refusing to start empty"), "{err}");
}

#[test]
fn damaged_checkpoint_falls_back_to_full_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("open");
    for i in 0..50 {
        store.commit(put(&format!("k{i}"), "v")).expect("commit");
    }
    drop(store); // clean close writes a checkpoint
    let ckpt = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "ckpt"))
        .expect("checkpoint file");
    flip(&ckpt, 40);
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("open despite bad checkpoint");
    assert_eq!(store.stats().keys, 50);
}
