//! Fuzzes `record::decode`, the parser every byte read back from a segment
//! goes through (recovery, compaction, reads).
//!
//! Beyond "never panics" (libFuzzer reports any panic or sanitizer error),
//! it checks what callers rely on: a decoded record lies inside the input
//! (recovery advances by `encoded_len()`; a length past the buffer would
//! make it skip or re-read bytes), the header's own length agrees, and the
//! result does not depend on bytes after the record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockd_logstore::record::{self, Decoded, Kind};

fuzz_target!(|data: &[u8]| {
    let Ok(Decoded::Record(rec)) = record::decode(data) else {
        return;
    };
    let len = rec.encoded_len();
    assert!(
        len <= data.len(),
        "record of {len} bytes decoded from {} bytes",
        data.len()
    );
    assert_eq!(
        record::peek_len(data),
        Some(len),
        "header length disagrees with the decoded record"
    );
    assert!(!rec.key.is_empty(), "decoded a record with an empty key");
    if rec.kind == Kind::Delete {
        assert!(rec.value.is_empty(), "decoded a delete carrying a value");
    }
    match record::decode(&data[..len]) {
        Ok(Decoded::Record(again)) => assert_eq!(again, rec, "decoding depends on bytes after the record"),
        other => panic!("the record alone does not decode: {other:?}"),
    }
});
