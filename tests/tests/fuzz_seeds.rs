//! The seed corpus of the fuzz targets (`fuzz/seeds/`) is built here from
//! the logstore's own encoder and checked in, so that `fuzz/smoke.sh` needs
//! no extra build step and the seeds cannot silently go stale: if the
//! record format changes, this test fails until they are regenerated with
//!
//! ```sh
//! LOCKD_WRITE_FUZZ_SEEDS=1 cargo test -p lockd-tests --test fuzz_seeds
//! ```
//!
//! Starting from valid records matters: with only random bytes the fuzzer
//! would need to guess a CRC32 before it ever reached the code behind the
//! checksum check.

use std::path::{Path, PathBuf};

use lockd_logstore::record::{self, Decoded, Kind, FLAG_BATCH_END, FLAG_COMPRESSED, FLAG_ENCRYPTED};
use lockd_logstore::recovery;

/// Length of a segment's file header; record scanning starts after it.
const SEGMENT_HEADER_LEN: usize = 32;

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds")
}

/// One sealed record as the writer thread would put it on disk.
fn sealed(kind: Kind, flags: u8, key: &[u8], value: &[u8], seq: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    record::encode_unsealed(&mut buf, kind, flags, key, value);
    record::seal(&mut buf, seq);
    buf
}

/// A segment header like the store writes (magic, version, id, CRC32); the
/// image check skips it, but a realistic one keeps seeds recognisable.
fn segment_header(id: u32) -> Vec<u8> {
    let mut h = vec![0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(b"LOCKDSEG");
    h[8..12].copy_from_slice(&1u32.to_le_bytes());
    h[12..16].copy_from_slice(&id.to_le_bytes());
    let crc = crc32(&h[0..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Bitwise CRC-32 (IEEE), the checksum of segment headers.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The seeds: `(target, file name, bytes)`.
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let put = sealed(Kind::Put, FLAG_BATCH_END, b"ns/key/state", br#"{"version":1}"#, 7);
    let delete = sealed(Kind::Delete, FLAG_BATCH_END, b"ns/key/meta", b"", 8);
    let flagged = sealed(Kind::Put, FLAG_ENCRYPTED | FLAG_COMPRESSED, b"q/1", &[0x5a; 40], 9);

    let mut image = segment_header(1);
    image.extend(sealed(Kind::Put, 0, b"a", b"1", 1));
    image.extend(sealed(Kind::Put, FLAG_BATCH_END, b"b", b"2", 1));
    image.extend(sealed(Kind::Delete, 0, b"a", b"", 2));
    image.extend(sealed(Kind::Put, FLAG_BATCH_END, b"c", b"three", 2));
    let whole = image.len();
    image.resize(whole + 64, 0);

    // The same log with its last batch torn half-way through a record.
    let mut torn = image[..whole - 4].to_vec();
    torn.resize(whole + 64, 0);

    vec![
        ("record_decode", "put", put),
        ("record_decode", "delete", delete),
        ("record_decode", "flagged", flagged),
        ("segment_recovery", "two-batches", image),
        ("segment_recovery", "torn-tail", torn),
    ]
}

/// The seeds are what the logstore itself accepts, so they exercise the
/// paths behind the checksum.
#[test]
fn seeds_are_valid_input() {
    for (target, name, bytes) in seeds() {
        match target {
            "record_decode" => {
                let Ok(Decoded::Record(r)) = record::decode(&bytes) else {
                    panic!("seed {name} does not decode");
                };
                assert_eq!(r.encoded_len(), bytes.len(), "seed {name}");
            }
            _ => {
                let out = recovery::check_segment_image(&bytes).expect("image scans");
                let torn = name == "torn-tail";
                assert_eq!(out.torn.is_some(), torn, "seed {name}: {out:?}");
                assert_eq!(out.max_seq, if torn { 1 } else { 2 }, "seed {name}");
            }
        }
    }
}

/// The checked-in files match what the current encoder produces.
#[test]
fn checked_in_seeds_are_current() {
    let write = std::env::var_os("LOCKD_WRITE_FUZZ_SEEDS").is_some();
    for (target, name, bytes) in seeds() {
        let path = seeds_dir().join(target).join(name);
        if write {
            std::fs::create_dir_all(path.parent().expect("seed dir")).expect("create seed dir");
            std::fs::write(&path, &bytes).expect("write seed");
            continue;
        }
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "{} is missing or stale: regenerate with LOCKD_WRITE_FUZZ_SEEDS=1 cargo test -p lockd-tests --test fuzz_seeds",
            path.display()
        );
    }
}
