//! Helpers shared by the logstore integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use lockd_logstore::{Batch, IoMode, LogStore, Options};

/// Small segments so that rolls, sealing and compaction happen in tests.
pub fn small_opts(io: IoMode) -> Options {
    Options {
        io,
        segment_size: 16 * 1024,
        compaction: false,
        delete_grace: std::time::Duration::ZERO,
        compaction_throttle: 0,
        ..Options::default()
    }
}

/// The io modes a test should cover: always `Sync`; `Uring` when this
/// machine has it (and always when LOCKD_REQUIRE_URING is set, so CI cannot
/// quietly lose coverage of the ring path).
pub fn io_modes() -> Vec<IoMode> {
    let mut modes = vec![IoMode::Sync];
    let dir = tempfile::tempdir().expect("tempdir");
    match LogStore::open(
        dir.path(),
        Options {
            io: IoMode::Uring,
            ..small_opts(IoMode::Uring)
        },
    ) {
        Ok(_) => modes.push(IoMode::Uring),
        Err(e) if std::env::var_os("LOCKD_REQUIRE_URING").is_some() => panic!("io_uring required: {e}"),
        Err(e) => eprintln!("io_uring unavailable, covering the sync path only: {e}"),
    }
    modes
}

pub fn put(k: &str, v: &str) -> Batch {
    let mut b = Batch::new();
    b.put(k.to_string(), v.to_string());
    b
}

pub fn value(store: &LogStore, k: &str) -> Option<String> {
    store
        .get(k.as_bytes())
        .expect("get")
        .map(|e| String::from_utf8(e.value.to_bytes().expect("bytes").to_vec()).expect("utf8"))
}

/// Segment files in `dir`, sorted by name.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// The active segment according to the manifest.
pub fn active_segment(dir: &Path) -> PathBuf {
    let m = std::fs::read_to_string(dir.join("MANIFEST")).expect("manifest");
    let id: u32 = m
        .lines()
        .find_map(|l| l.strip_prefix("segment ").and_then(|r| r.strip_suffix(" active")))
        .expect("active line")
        .parse()
        .expect("id");
    dir.join(format!("{id:08}.seg"))
}

/// Sealed segments with their sealed lengths, in manifest order.
pub fn sealed_segments(dir: &Path) -> Vec<(PathBuf, u64)> {
    let m = std::fs::read_to_string(dir.join("MANIFEST")).expect("manifest");
    m.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["segment", id, "sealed", len] => Some((
                    dir.join(format!("{:08}.seg", id.parse::<u32>().ok()?)),
                    len.parse().ok()?,
                )),
                _ => None,
            }
        })
        .collect()
}

/// Offset just past the last non-zero byte of a segment file.
pub fn data_end(path: &Path) -> usize {
    let bytes = std::fs::read(path).expect("read");
    bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1)
}

/// What a restarted process finds after a crash: a copy of the store
/// directory without its lock file (a leaked handle in this process still
/// holds the original's lock; a killed process would not).
pub fn copy_store(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), copy.path().join(e.file_name())).expect("copy");
        }
    }
    copy
}
