//! The on-disk record: a fixed 24-byte header, the key, the value.
//!
//! Byte layout (little endian), documented with a diagram in
//! `docs/logstore-format.md`:
//!
//! ```text
//! 0      4      12      14    15     16       20
//! | crc32 | seq  | klen | kind | flags | vlen | key … | value … |
//! ```
//!
//! The CRC covers everything after itself (header rest, key and value), so a
//! torn write anywhere in the record is caught. A header of all zero bytes is
//! the clean end of a preallocated segment.

use crc32fast::Hasher;

/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 20;
/// Longest key a record can carry.
pub const MAX_KEY_LEN: usize = u16::MAX as usize;

/// What a record does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The value bytes follow inline.
    Put = 1,
    /// The key is deleted; no value.
    Delete = 2,
    /// The value lives in a blob file; the inline bytes are its descriptor.
    BlobPut = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Put),
            2 => Some(Kind::Delete),
            3 => Some(Kind::BlobPut),
            _ => None,
        }
    }
}

/// Record flag: the last record of an atomic batch. Replay applies a batch
/// only once it has seen this flag, so a batch torn half-way is dropped whole.
pub const FLAG_BATCH_END: u8 = 1;
/// Record flag: the value is encrypted (see `crypto`).
pub const FLAG_ENCRYPTED: u8 = 2;
/// Record flag: the value was snappy-compressed before any encryption.
pub const FLAG_COMPRESSED: u8 = 4;
const KNOWN_FLAGS: u8 = FLAG_BATCH_END | FLAG_ENCRYPTED | FLAG_COMPRESSED;

/// A decoded record borrowing its bytes from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Sequence number of the batch that wrote the record.
    pub seq: u64,
    /// Put, delete or blob put.
    pub kind: Kind,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// The key.
    pub key: &'a [u8],
    /// The stored value bytes (possibly compressed/encrypted, or a blob
    /// descriptor).
    pub value: &'a [u8],
}

impl RecordRef<'_> {
    /// Total encoded length of this record.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.key.len() + self.value.len()
    }
}

/// Why bytes did not decode as a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or the lengths it announces.
    Truncated,
    /// The header names an unknown kind or flag, or impossible lengths.
    BadHeader(&'static str),
    /// The checksum does not match the bytes.
    BadChecksum,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("record truncated"),
            DecodeError::BadHeader(why) => write!(f, "bad record header: {why}"),
            DecodeError::BadChecksum => f.write_str("record checksum mismatch"),
        }
    }
}

/// Outcome of decoding at one position.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record.
    Record(RecordRef<'a>),
    /// An all-zero header: the unwritten, preallocated end of a segment.
    End,
}

/// Appends one record to `out` with a zero sequence and no checksum; the
/// writer thread fills both in with [`seal`] once it assigns the sequence.
pub fn encode_unsealed(out: &mut Vec<u8>, kind: Kind, flags: u8, key: &[u8], value: &[u8]) {
    debug_assert!(key.len() <= MAX_KEY_LEN);
    debug_assert!(value.len() <= u32::MAX as usize);
    out.extend_from_slice(&[0u8; 12]);
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.push(kind as u8);
    out.push(flags);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Stamps `seq` into the record at the start of `rec` and sets its checksum.
/// `rec` must be exactly one encoded record.
pub fn seal(rec: &mut [u8], seq: u64) {
    rec[4..12].copy_from_slice(&seq.to_le_bytes());
    let crc = checksum(&rec[4..]);
    rec[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// Sets the flags byte of an encoded record and recomputes its checksum.
pub fn reflag(rec: &mut [u8], flags: u8) {
    rec[15] = flags;
    let crc = checksum(&rec[4..]);
    rec[0..4].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(bytes: &[u8]) -> u32 {
    let mut h = Hasher::new();
    h.update(bytes);
    h.finalize()
}

/// Length of the encoded record starting at `buf`, read from its header
/// without checking anything else. `None` if the header is incomplete.
pub fn peek_len(buf: &[u8]) -> Option<usize> {
    let h = buf.get(..HEADER_LEN)?;
    let klen = u16::from_le_bytes([h[12], h[13]]) as usize;
    let vlen = u32::from_le_bytes([h[16], h[17], h[18], h[19]]) as usize;
    Some(HEADER_LEN + klen + vlen)
}

/// Decodes the record at the start of `buf`. Never panics, whatever the
/// bytes: this is the function the fuzzer drives.
pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let Some(h) = buf.get(..HEADER_LEN) else {
        return if buf.iter().all(|b| *b == 0) && !buf.is_empty() {
            Ok(Decoded::End)
        } else {
            Err(DecodeError::Truncated)
        };
    };
    if h.iter().all(|b| *b == 0) {
        return Ok(Decoded::End);
    }
    let crc = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&h[4..12]);
    let seq = u64::from_le_bytes(seq_bytes);
    let kind = Kind::from_u8(h[14]).ok_or(DecodeError::BadHeader("unknown record kind"))?;
    let flags = h[15];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::BadHeader("unknown flag bits"));
    }
    let total = peek_len(buf).ok_or(DecodeError::Truncated)?;
    let klen = u16::from_le_bytes([h[12], h[13]]) as usize;
    if klen == 0 {
        return Err(DecodeError::BadHeader("empty key"));
    }
    if kind == Kind::Delete && total != HEADER_LEN + klen {
        return Err(DecodeError::BadHeader("delete record carries a value"));
    }
    let body = buf.get(..total).ok_or(DecodeError::Truncated)?;
    if checksum(&body[4..]) != crc {
        return Err(DecodeError::BadChecksum);
    }
    Ok(Decoded::Record(RecordRef {
        seq,
        kind,
        flags,
        key: &body[HEADER_LEN..HEADER_LEN + klen],
        value: &body[HEADER_LEN + klen..],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(kind: Kind, flags: u8, key: &[u8], value: &[u8], seq: u64) -> Vec<u8> {
        let mut v = Vec::new();
        encode_unsealed(&mut v, kind, flags, key, value);
        seal(&mut v, seq);
        v
    }

    #[test]
    fn round_trip() {
        let buf = sealed(Kind::Put, FLAG_BATCH_END, b"k1", b"hello", 42);
        assert_eq!(buf.len(), HEADER_LEN + 7);
        let Decoded::Record(r) = decode(&buf).expect("decodes") else {
            panic!("expected a record")
        };
        assert_eq!((r.seq, r.kind, r.flags), (42, Kind::Put, FLAG_BATCH_END));
        assert_eq!((r.key, r.value), (&b"k1"[..], &b"hello"[..]));
        assert_eq!(r.encoded_len(), buf.len());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let buf = sealed(Kind::Put, 0, b"key", b"value-bytes", 7);
        for i in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(
                !matches!(decode(&b), Ok(Decoded::Record(_))),
                "flip of bit {i} went unnoticed"
            );
        }
    }

    #[test]
    fn truncation_and_zero_tail() {
        let buf = sealed(Kind::Delete, 0, b"gone", b"", 1);
        for cut in 1..buf.len() {
            assert_eq!(decode(&buf[..cut]), Err(DecodeError::Truncated), "cut {cut}");
        }
        assert_eq!(decode(&[0u8; 64]), Ok(Decoded::End));
        assert_eq!(decode(&[0u8; 3]), Ok(Decoded::End));
        assert_eq!(decode(&[]), Err(DecodeError::Truncated));
    }

    #[test]
    fn reflag_keeps_record_valid() {
        let mut buf = sealed(Kind::Put, 0, b"k", b"v", 9);
        reflag(&mut buf, FLAG_BATCH_END);
        let Ok(Decoded::Record(r)) = decode(&buf) else {
            panic!("reflagged record must decode")
        };
        assert_eq!(r.flags, FLAG_BATCH_END);
    }
}
