//! Identifiers minted by the server (API.md §0.4).
//!
//! Lease and transaction ids are xids because lockd clients store, log and echo them and some
//! validate their shape (acquire rejects a `txn_id` that is not an xid); server-generated keys,
//! queue message ids and attachment ids are UUIDv7. Both are time-ordered, which keeps log
//! records and storage listings roughly chronological.
//!
//! The xid is hand-rolled (about forty lines) rather than taken from the `xid` crate: the
//! format is tiny and fixed, and this avoids a dependency whose machine-id probing we do not
//! need to match byte for byte (the machine/pid bytes are opaque to every client).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// base32hex alphabet, lowercase, as used by xid (`rs/xid` in lockd).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
/// Length of an encoded xid: 12 bytes = 96 bits in 5-bit characters, 4 padding bits at the end.
const XID_LEN: usize = 20;

struct XidSource {
    machine: [u8; 3],
    pid: [u8; 2],
    counter: AtomicU32,
}

fn source() -> &'static XidSource {
    static SOURCE: OnceLock<XidSource> = OnceLock::new();
    SOURCE.get_or_init(|| XidSource {
        machine: machine_id(),
        pid: (std::process::id() as u16).to_be_bytes(),
        // xid starts its counter at a random value so restarts within one second do not collide.
        counter: AtomicU32::new(random_u32()),
    })
}

fn random_u32() -> u32 {
    getrandom::u32().unwrap_or_else(|_| {
        // No OS randomness (should not happen on Linux): the clock's nanoseconds still differ
        // between process starts, which is all the counter seed is for.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    })
}

/// Three bytes identifying the host, like xid's hash of the platform machine id; a stable
/// value keeps ids of one host distinguishable from another's in shared storage.
fn machine_id() -> [u8; 3] {
    let seed = [
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/proc/sys/kernel/hostname",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .map(|s| s.trim().to_owned())
    .find(|s| !s.is_empty());
    let hash = match seed {
        // FNV-1a: any stable hash will do, the bytes are opaque.
        Some(s) => s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }),
        None => u64::from(random_u32()),
    };
    let b = hash.to_be_bytes();
    [b[0], b[1], b[2]]
}

/// Mints a new xid (`[0-9a-v]{20}`): 4-byte big-endian unix seconds, 3-byte machine id,
/// 2-byte pid and a 3-byte counter that starts at a random value and increments per id, so
/// ids minted in the same second by this process sort in creation order (until the 24-bit
/// counter wraps).
pub fn new_xid() -> String {
    let src = source();
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let count = src.counter.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    let mut id = [0u8; 12];
    id[..4].copy_from_slice(&(secs as u32).to_be_bytes());
    id[4..7].copy_from_slice(&src.machine);
    id[7..9].copy_from_slice(&src.pid);
    id[9..].copy_from_slice(&count[1..]);
    encode_xid(&id)
}

/// True when `s` is an xid that lockd's parser (`xid.FromString`, rs/xid ≥ 1.5) accepts:
/// exactly 20 characters of lowercase `[0-9a-v]` whose 4 trailing padding bits are zero, so
/// the last character is `0` or `g`. Uppercase is rejected (rs/xid's table is lowercase only);
/// the all-zero id `00000000000000000000` parses and is accepted, as in lockd.
pub fn is_xid(s: &str) -> bool {
    decode_xid(s).is_some()
}

/// Mints a UUIDv7 in canonical form (36 chars, lowercase hex with dashes) for server-generated
/// keys, queue message ids and attachment ids. The `uuid` crate's shared context makes ids of
/// one process strictly increasing even within a millisecond.
pub fn new_uuid_v7() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

fn encode_xid(id: &[u8; 12]) -> String {
    let mut value = id.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b)) << 4;
    let mut out = [0u8; XID_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 0x1f) as usize];
        value >>= 5;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

fn decode_xid(s: &str) -> Option<[u8; 12]> {
    if s.len() != XID_LEN {
        return None;
    }
    let mut value = 0u128;
    for b in s.bytes() {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'v' => b - b'a' + 10,
            _ => return None,
        };
        value = (value << 5) | u128::from(digit);
    }
    if value & 0xf != 0 {
        return None;
    }
    let bytes = (value >> 4).to_be_bytes();
    let mut id = [0u8; 12];
    id.copy_from_slice(&bytes[4..]);
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn counter(id: &[u8; 12]) -> u32 {
        u32::from_be_bytes([0, id[9], id[10], id[11]])
    }

    fn seconds(id: &[u8; 12]) -> u32 {
        u32::from_be_bytes([id[0], id[1], id[2], id[3]])
    }

    #[test]
    fn rs_xid_reference_vector() {
        // From rs/xid's own tests: time 1300816219, machine 60f486, pid e428, counter 4271561.
        let id = [0x4d, 0x88, 0xe1, 0x5b, 0x60, 0xf4, 0x86, 0xe4, 0x28, 0x41, 0x2d, 0xc9];
        assert_eq!(encode_xid(&id), "9m4e2mr0ui3e8a215n4g");
        let back = decode_xid("9m4e2mr0ui3e8a215n4g").expect("valid");
        assert_eq!(back, id);
        assert_eq!((seconds(&back), counter(&back)), (1_300_816_219, 4_271_561));
        assert!(is_xid("c5v9d0sl70b3m3q8ndg0"), "example from API.md");
    }

    #[test]
    fn format_of_new_xids() {
        for _ in 0..1000 {
            let x = new_xid();
            assert_eq!(x.len(), 20, "{x}");
            assert!(
                x.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)),
                "{x}"
            );
            assert!(x.ends_with('0') || x.ends_with('g'), "{x}");
            assert!(is_xid(&x), "{x}");
        }
    }

    #[test]
    fn new_xid_carries_now_and_a_stable_origin() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as u32;
        let a = decode_xid(&new_xid()).expect("valid");
        let b = decode_xid(&new_xid()).expect("valid");
        let after = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as u32;
        assert!((before..=after).contains(&seconds(&a)));
        assert_eq!(a[4..9], b[4..9], "machine id and pid are fixed per process");
        assert_eq!(a[7..9], (std::process::id() as u16).to_be_bytes());
    }

    #[test]
    fn xids_are_unique() {
        let ids: HashSet<String> = (0..100_000).map(|_| new_xid()).collect();
        assert_eq!(ids.len(), 100_000);
    }

    #[test]
    fn xids_in_sequence_are_ordered() {
        // Other tests mint xids concurrently, so consecutive ids of this thread may skip counter
        // values, but the counter must always move forward (modulo its 24-bit wrap).
        let ids: Vec<[u8; 12]> = (0..10_000).map(|_| decode_xid(&new_xid()).expect("valid")).collect();
        for pair in ids.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(seconds(a) <= seconds(b), "time went backwards");
            let step = counter(b).wrapping_sub(counter(a)) & 0xff_ffff;
            assert!((1..1 << 23).contains(&step), "counter step {step}");
            if seconds(a) == seconds(b) && counter(b) > counter(a) {
                assert!(encode_xid(a) < encode_xid(b), "same second must sort by creation");
            }
        }
    }

    #[test]
    fn round_trip() {
        let samples: [[u8; 12]; 4] = [[0; 12], [0xff; 12], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [0x80; 12]];
        for id in samples {
            let s = encode_xid(&id);
            assert!(is_xid(&s), "{s}");
            assert_eq!(decode_xid(&s), Some(id), "{s}");
        }
        for _ in 0..1000 {
            let s = new_xid();
            let id = decode_xid(&s).expect("valid");
            assert_eq!(encode_xid(&id), s);
        }
        assert_eq!(encode_xid(&[0; 12]), "00000000000000000000");
        assert_eq!(encode_xid(&[0xff; 12]), "vvvvvvvvvvvvvvvvvvvg");
    }

    #[test]
    fn is_xid_rejections() {
        let valid = "c5v9d0sl70b3m3q8ndg0";
        let cases = [
            "",
            "c5v9d0sl70b3m3q8ndg",     // 19 chars
            "c5v9d0sl70b3m3q8ndg00",   // 21 chars
            "C5V9D0SL70B3M3Q8NDG0",    // uppercase
            "c5v9d0sl70b3m3q8ndw0",    // 'w' is outside base32hex
            "c5v9d0sl70b3m3q8nd-0",    // punctuation
            "c5v9d0sl70b3m3q8ndg1",    // padding bit set
            "c5v9d0sl70b3m3q8ndgh",    // padding bits set
            "c5v9d0sl70b3m3q8né0",     // 20 bytes but not 20 ASCII chars
            " c5v9d0sl70b3m3q8ndg0",   // no trimming
            "0190a0b2-7c1d-7f3e-8a9b", // a UUID prefix
        ];
        assert!(is_xid(valid));
        for s in cases {
            assert!(!is_xid(s), "{s:?}");
        }
        assert!(is_xid("00000000000000000000"));
        assert!(is_xid("vvvvvvvvvvvvvvvvvvvg"));
    }

    #[test]
    fn uuid_v7_format_and_order() {
        let mut prev = String::new();
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let u = new_uuid_v7();
            assert_eq!(u.len(), 36, "{u}");
            for (i, b) in u.bytes().enumerate() {
                if [8, 13, 18, 23].contains(&i) {
                    assert_eq!(b, b'-', "{u}");
                } else {
                    assert!(b.is_ascii_digit() || (b'a'..=b'f').contains(&b), "{u}");
                }
            }
            assert_eq!(&u[14..15], "7", "version nibble: {u}");
            assert!("89ab".contains(&u[19..20]), "variant: {u}");
            let parsed = uuid::Uuid::parse_str(&u).expect("parses");
            assert_eq!(parsed.get_version_num(), 7);
            assert!(u > prev, "not increasing: {prev} then {u}");
            assert!(seen.insert(u.clone()));
            prev = u;
        }
    }
}
