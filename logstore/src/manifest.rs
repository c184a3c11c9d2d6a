//! The manifest: which segment files are live, in replay order, and which
//! index checkpoint to start recovery from.
//!
//! It is a short text file rewritten whole and crash-atomically (temp file,
//! fsync, rename, fsync dir) whenever the segment set changes: a roll, a
//! compaction swap, a new checkpoint. A CRC line at the end catches a
//! damaged file. The format is in `docs/logstore-format.md`.

use std::path::Path;

use crate::fsutil;
use crate::{Error, Result};

pub(crate) const FILE: &str = "MANIFEST";
const HEADER: &str = "lockd-logstore manifest 1";

/// One live segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentEntry {
    pub id: u32,
    /// Length of valid data for a sealed segment; `None` for the active one.
    pub sealed_len: Option<u64>,
}

/// Where recovery may start: a checkpoint of the index taken when the log
/// ended at `offset` in segment `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotRef {
    pub id: u32,
    pub segment: u32,
    pub offset: u64,
}

/// Parsed manifest content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Next file id to hand out (segments, snapshots and blobs share it).
    pub next_id: u64,
    /// Every sequence number handed out so far is at most this one, even
    /// if compaction has since dropped the records that carried them
    /// (tombstones), so recovery never hands a number out twice.
    pub seq_floor: u64,
    /// Root-key verifier when values are encrypted.
    pub encryption: Option<String>,
    pub snapshot: Option<SnapshotRef>,
    /// Live segments in replay order; the last one is active.
    pub segments: Vec<SegmentEntry>,
}

impl Manifest {
    pub(crate) fn encode(&self) -> String {
        let mut s = format!("{HEADER}\nnext-id {}\nseq-floor {}\n", self.next_id, self.seq_floor);
        match &self.encryption {
            Some(v) => s.push_str(&format!("encryption {v}\n")),
            None => s.push_str("encryption none\n"),
        }
        match &self.snapshot {
            Some(r) => s.push_str(&format!("snapshot {} {} {}\n", r.id, r.segment, r.offset)),
            None => s.push_str("snapshot none\n"),
        }
        for seg in &self.segments {
            match seg.sealed_len {
                Some(len) => s.push_str(&format!("segment {} sealed {len}\n", seg.id)),
                None => s.push_str(&format!("segment {} active\n", seg.id)),
            }
        }
        let crc = crc32fast::hash(s.as_bytes());
        s.push_str(&format!("crc32 {crc:08x}\n"));
        s
    }

    pub(crate) fn decode(text: &str, path: &Path) -> Result<Manifest> {
        let bad = |line: usize, why: &str| Error::corrupt(path, line as u64, format!("manifest line {line}: {why}"));
        let body_end = text.rfind("crc32 ").ok_or_else(|| bad(0, "missing crc32 line"))?;
        let want = u32::from_str_radix(text[body_end + 6..].trim(), 16).map_err(|_| bad(0, "bad crc32 value"))?;
        if crc32fast::hash(&text.as_bytes()[..body_end]) != want {
            return Err(bad(0, "checksum mismatch"));
        }
        let mut m = Manifest {
            next_id: 0,
            seq_floor: 0,
            encryption: None,
            snapshot: None,
            segments: Vec::new(),
        };
        for (i, line) in text[..body_end].lines().enumerate() {
            let n = i + 1;
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            let num = |w: &str| w.parse::<u64>().map_err(|_| bad(n, "bad number"));
            match words.as_slice() {
                [] => {}
                _ if i == 0 => {
                    if line != HEADER {
                        return Err(bad(n, "not a lockd-logstore manifest (or an unknown version)"));
                    }
                }
                ["next-id", v] => m.next_id = num(v)?,
                ["seq-floor", v] => m.seq_floor = num(v)?,
                ["encryption", "none"] => m.encryption = None,
                ["encryption", v] => m.encryption = Some((*v).to_string()),
                ["snapshot", "none"] => m.snapshot = None,
                ["snapshot", id, seg, off] => {
                    m.snapshot = Some(SnapshotRef {
                        id: num(id)? as u32,
                        segment: num(seg)? as u32,
                        offset: num(off)?,
                    })
                }
                ["segment", id, "active"] => m.segments.push(SegmentEntry {
                    id: num(id)? as u32,
                    sealed_len: None,
                }),
                ["segment", id, "sealed", len] => m.segments.push(SegmentEntry {
                    id: num(id)? as u32,
                    sealed_len: Some(num(len)?),
                }),
                _ => return Err(bad(n, "unrecognised line")),
            }
        }
        let active = m.segments.iter().filter(|s| s.sealed_len.is_none()).count();
        if m.segments.is_empty() || active != 1 || m.segments.last().and_then(|s| s.sealed_len).is_some() {
            return Err(bad(0, "segment list must end with exactly one active segment"));
        }
        Ok(m)
    }

    pub(crate) fn load(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Manifest::decode(&text, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    pub(crate) fn store(&self, dir: &Path) -> Result<()> {
        fsutil::write_atomic(dir, FILE, self.encode().as_bytes())
    }

    pub(crate) fn active(&self) -> SegmentEntry {
        // decode() and every writer keep the list non-empty.
        self.segments.last().copied().unwrap_or(SegmentEntry {
            id: 0,
            sealed_len: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_and_crc() {
        let m = Manifest {
            next_id: 9,
            seq_floor: 77,
            encryption: Some("abcd".into()),
            snapshot: Some(SnapshotRef {
                id: 8,
                segment: 3,
                offset: 4096,
            }),
            segments: vec![
                SegmentEntry {
                    id: 1,
                    sealed_len: Some(100),
                },
                SegmentEntry {
                    id: 3,
                    sealed_len: None,
                },
            ],
        };
        let text = m.encode();
        assert_eq!(Manifest::decode(&text, Path::new("M")).expect("decodes"), m);
        let damaged = text.replacen("segment 1", "segment 2", 1);
        assert!(Manifest::decode(&damaged, Path::new("M")).is_err());
    }
}
