//! The server's state-document ingest (`compact_in_place`) on arbitrary
//! bytes: it must never panic, what it accepts must be the same JSON value
//! as the input with no whitespace left outside strings, and what a JSON
//! parser accepts (within the nesting limit) it must accept too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockd_net::server::json::compact_in_place;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    let original: Result<serde_json::Value, _> = serde_json::from_slice(data);
    match compact_in_place(&mut buf) {
        Ok(n) => {
            let compacted = &buf[..n];
            // Grammar only: numbers like 1E7777 are valid JSON that a Value
            // cannot hold.
            serde_json::from_slice::<serde::de::IgnoredAny>(compacted).expect("compacted output must still be JSON");
            if let Ok(original) = &original {
                let value: serde_json::Value = serde_json::from_slice(compacted).expect("same value parses again");
                assert_eq!(&value, original, "compaction changed the value");
            }
            let mut again = compacted.to_vec();
            assert_eq!(compact_in_place(&mut again), Ok(n), "compaction is not idempotent");
        }
        Err(_) => {
            // serde_json's Value parser stops at 128 levels, below the ingest
            // limit, so anything it parses must be accepted.
            assert!(
                original.is_err(),
                "valid JSON refused: {:?}",
                String::from_utf8_lossy(data)
            );
        }
    }
});
