//! Fuzzes `recovery::check_segment_image`: the scan that decides, after a
//! crash, how much of the active segment is kept.
//!
//! Besides "never panics", it checks that the kept prefix lies inside the
//! image, and that recovery is stable: the store zeroes everything after
//! `valid_end`, so scanning that zeroed image again must keep exactly the
//! same bytes and batches and find nothing torn. If it did not, a crash
//! right after a recovery could lose or resurrect data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockd_logstore::recovery;

fuzz_target!(|data: &[u8]| {
    let Ok(out) = recovery::check_segment_image(data) else {
        return;
    };
    let end = usize::try_from(out.valid_end).unwrap_or(usize::MAX);
    assert!(
        end <= data.len(),
        "valid_end {end} past the image ({} bytes)",
        data.len()
    );
    let mut cut = data[..end].to_vec();
    cut.resize(data.len(), 0);
    let again = recovery::check_segment_image(&cut).expect("a recovered image must scan");
    assert_eq!(
        again.valid_end, out.valid_end,
        "second recovery keeps a different prefix"
    );
    assert_eq!(again.max_seq, out.max_seq, "second recovery applies different batches");
    assert_eq!(again.torn, None, "the recovered image still looks torn");
});
