//! Large values streamed through blob files, and at-rest encryption.

mod common;

use std::io::Read;

use common::*;
use lockd_logstore::{Batch, EncryptionOptions, Error, IoMode, LogStore, Options};

/// A deterministic byte stream that never holds more than one buffer.
struct Pattern {
    left: u64,
    state: u64,
}

impl Pattern {
    fn new(len: u64, seed: u64) -> Self {
        Pattern {
            left: len,
            state: seed | 1,
        }
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Whole 8-byte words only (except at the very end), so the stream
        // is the same however the reader sizes its buffers.
        let mut n = (buf.len() as u64).min(self.left) as usize;
        if n >= 8 {
            n -= n % 8;
        }
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.copy_from_slice(&self.state.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn digest(mut r: impl Read) -> (u64, u32) {
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).expect("read");
        if n == 0 {
            return (total, h.finalize());
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
}

fn encrypted(key: u8, snappy: bool) -> Options {
    Options {
        encryption: Some(EncryptionOptions {
            root_key: [key; 32],
            snappy,
        }),
        ..small_opts(IoMode::Sync)
    }
}

#[test]
fn a_128_mib_value_streams_in_and_out() {
    let len = 128u64 << 20;
    let want = digest(Pattern::new(len, 42));
    for opts in [small_opts(IoMode::Sync), encrypted(7, false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::open(dir.path(), opts.clone()).expect("open");
        let blob = store.write_blob(&mut Pattern::new(len, 42), len).expect("write blob");
        let mut b = Batch::new();
        b.put_blob("big", blob).put("small", "beside it");
        store.commit(b).expect("commit");
        let entry = store.get(b"big").expect("get").expect("present");
        assert_eq!(entry.value.len(), len);
        assert_eq!(digest(entry.value.reader().expect("reader")), want);
        drop(store);
        let store = LogStore::open(dir.path(), opts).expect("reopen");
        let entry = store.get(b"big").expect("get").expect("present after reopen");
        assert_eq!(digest(entry.value.reader().expect("reader")), want);
        assert_eq!(value(&store, "small").as_deref(), Some("beside it"));
    }
}

#[test]
fn blob_sources_must_match_their_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("open");
    assert!(matches!(
        store.write_blob(&mut Pattern::new(10, 1), 11),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        store.write_blob(&mut Pattern::new(12, 1), 11),
        Err(Error::Invalid(_))
    ));
    let blobs = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .expect("rd")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "blob"))
            })
            .count()
    };
    assert_eq!(blobs(dir.path()), 0, "failed uploads leave no file");
    let uncommitted = store.write_blob(&mut Pattern::new(100, 1), 100).expect("blob");
    assert_eq!(blobs(dir.path()), 1);
    drop(uncommitted);
    assert_eq!(blobs(dir.path()), 0, "a blob never committed is removed");
    // A blob replaced by a later value is deleted once its grace is over.
    let b1 = store.write_blob(&mut Pattern::new(100, 1), 100).expect("blob");
    let mut b = Batch::new();
    b.put_blob("k", b1);
    store.commit(b).expect("commit");
    store.commit(put("k", "small now")).expect("commit");
    store.purge_obsolete_files();
    assert_eq!(blobs(dir.path()), 0, "superseded blob reclaimed");
    assert_eq!(value(&store, "k").as_deref(), Some("small now"));
}

#[test]
fn encrypted_values_hide_plaintext_and_survive_reopen() {
    for snappy in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::open(dir.path(), encrypted(1, snappy)).expect("open");
        let secret = "TOP-SECRET-PAYLOAD-".repeat(20);
        store.commit(put("secret", &secret)).expect("commit");
        let data = "BLOBSECRET".repeat(300_000);
        let len = data.len();
        let blob = store
            .write_blob(&mut std::io::Cursor::new(data), len as u64)
            .expect("blob");
        let mut b = Batch::new();
        b.put_blob("blob", blob);
        store.commit(b).expect("commit");
        drop(store);
        for e in std::fs::read_dir(dir.path()).expect("read_dir") {
            let bytes = std::fs::read(e.expect("entry").path()).expect("read");
            assert!(
                !bytes.windows(10).any(|w| w == b"TOP-SECRET" || w == b"BLOBSECRET"),
                "plaintext on disk"
            );
        }
        let store = LogStore::open(dir.path(), encrypted(1, snappy)).expect("reopen");
        assert_eq!(value(&store, "secret"), Some(secret));
        let blob = store
            .get(b"blob")
            .expect("get")
            .expect("blob")
            .value
            .to_bytes()
            .expect("decrypt");
        assert_eq!(blob.len(), len);
    }
}

#[test]
fn wrong_or_missing_key_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(LogStore::open(dir.path(), encrypted(1, false)).expect("open"));
    let err = LogStore::open(dir.path(), encrypted(2, false)).expect_err("wrong key");
    assert!(matches!(err, Error::KeyMismatch(_)), "{err}");
    assert!(err.to_string().contains("different root key"));
    let err = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect_err("no key");
    assert!(err.to_string().contains("no root key"), "{err}");
    let plain = tempfile::tempdir().expect("tempdir");
    drop(LogStore::open(plain.path(), small_opts(IoMode::Sync)).expect("open"));
    let err = LogStore::open(plain.path(), encrypted(1, false)).expect_err("key on plain store");
    assert!(err.to_string().contains("without encryption"), "{err}");
}

#[test]
fn tampered_ciphertext_is_an_integrity_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(dir.path(), encrypted(3, false)).expect("open");
    store.commit(put("k", &"v".repeat(200))).expect("commit");
    drop(store);
    // Flip a byte inside the ciphertext and re-seal the record's CRC, as a
    // deliberate attacker (not bit rot) would.
    let seg = active_segment(dir.path());
    let mut bytes = std::fs::read(&seg).expect("read");
    let rec = 32;
    let klen = u16::from_le_bytes([bytes[rec + 12], bytes[rec + 13]]) as usize;
    let vlen = u32::from_le_bytes([bytes[rec + 16], bytes[rec + 17], bytes[rec + 18], bytes[rec + 19]]) as usize;
    bytes[rec + 20 + klen + vlen / 2] ^= 1;
    let crc = crc32fast::hash(&bytes[rec + 4..rec + 20 + klen + vlen]);
    bytes[rec..rec + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).expect("write");
    let store = LogStore::open(dir.path(), encrypted(3, false)).expect("open");
    let err = store.get(b"k").expect_err("tampered");
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
}

#[test]
fn blob_ids_are_not_reused_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(dir.path(), small_opts(IoMode::Sync)).expect("open");
    for i in 0..3 {
        let blob = store.write_blob(&mut Pattern::new(1000, i), 1000).expect("blob");
        let mut b = Batch::new();
        b.put_blob(format!("b{i}"), blob);
        store.commit(b).expect("commit");
    }
    // Crash: the manifest's next-id predates these blob files.
    std::mem::forget(store);
    let copy = copy_store(dir.path());
    let store = LogStore::open(copy.path(), small_opts(IoMode::Sync)).expect("reopen");
    let blob = store
        .write_blob(&mut Pattern::new(1000, 9), 1000)
        .expect("a fresh id, not an existing file");
    let mut b = Batch::new();
    b.put_blob("b9", blob);
    store.commit(b).expect("commit");
    for i in 0..3 {
        let v = store.get(format!("b{i}").as_bytes()).expect("get").expect("present");
        assert_eq!(digest(v.value.reader().expect("reader")), digest(Pattern::new(1000, i)));
    }
}
