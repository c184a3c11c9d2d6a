//! Index checkpoints: the whole index written to one file, so that recovery
//! replays only the log written after it instead of every segment.
//!
//! Layout: magic `LOCKDCKP`, version, the log position it matches (segment,
//! offset, highest sequence), the entry count, the entries, and a CRC32 of
//! everything before it. A checkpoint is derived data: if it is damaged,
//! recovery replays the full log instead.

use std::path::{Path, PathBuf};

use crate::index::{Index, Loc, Position};
use crate::record::Kind;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"LOCKDCKP";
const VERSION: u32 = 1;

pub(crate) fn file_name(id: u32) -> String {
    format!("{id:08}.ckpt")
}

pub(crate) fn parse_name(name: &str) -> Option<u32> {
    name.strip_suffix(".ckpt")?.parse().ok()
}

pub(crate) fn encode(index: &Index) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + index.len() * 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&index.applied.seg.to_le_bytes());
    out.extend_from_slice(&index.applied.off.to_le_bytes());
    out.extend_from_slice(&index.applied.seq.to_le_bytes());
    out.extend_from_slice(&(index.len() as u64).to_le_bytes());
    for (key, loc) in index.iter() {
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&loc.seg.to_le_bytes());
        out.extend_from_slice(&loc.off.to_le_bytes());
        out.extend_from_slice(&loc.len.to_le_bytes());
        out.extend_from_slice(&loc.seq.to_le_bytes());
        out.push(loc.kind as u8);
        out.push(loc.flags);
        out.extend_from_slice(&loc.blob.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

pub(crate) fn decode(buf: &[u8], path: &Path) -> Result<Index> {
    let bad = |why: &str| Error::corrupt(path, 0, format!("checkpoint: {why}"));
    if buf.len() < 4 {
        return Err(bad("too short"));
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(bad("checksum mismatch"));
    }
    let mut c = Cursor { buf: body, at: 0 };
    let short = || bad("truncated");
    if c.take(8) != Some(MAGIC) || c.u32() != Some(VERSION) {
        return Err(bad("unknown magic or version"));
    }
    let applied = Position {
        seg: c.u32().ok_or_else(short)?,
        off: c.u64().ok_or_else(short)?,
        seq: c.u64().ok_or_else(short)?,
    };
    let count = c.u64().ok_or_else(short)?;
    let mut index = Index::default();
    for _ in 0..count {
        let klen = c.u16().ok_or_else(short)? as usize;
        let key = c.take(klen).ok_or_else(short)?;
        let seg = c.u32().ok_or_else(short)?;
        let off = c.u64().ok_or_else(short)?;
        let len = c.u32().ok_or_else(short)?;
        let seq = c.u64().ok_or_else(short)?;
        let kind = match c.take(1).ok_or_else(short)?[0] {
            1 => Kind::Put,
            3 => Kind::BlobPut,
            _ => return Err(bad("bad entry kind")),
        };
        let flags = c.take(1).ok_or_else(short)?[0];
        let blob = c.u64().ok_or_else(short)?;
        index.apply(
            key,
            Some(Loc {
                seg,
                off,
                len,
                seq,
                kind,
                flags,
                blob,
            }),
        );
    }
    if c.at != body.len() {
        return Err(bad("trailing bytes"));
    }
    index.applied = applied;
    Ok(index)
}

pub(crate) fn path(dir: &Path, id: u32) -> PathBuf {
    dir.join(file_name(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut ix = Index::default();
        for i in 0..100u32 {
            let loc = Loc {
                seg: i % 3,
                off: 32 + i as u64,
                len: 40,
                seq: i as u64,
                kind: Kind::Put,
                flags: 1,
                blob: 0,
            };
            ix.apply(format!("key{i}").as_bytes(), Some(loc));
        }
        ix.applied = Position {
            seg: 2,
            off: 999,
            seq: 100,
        };
        let bytes = encode(&ix);
        let back = decode(&bytes, Path::new("c")).expect("decodes");
        assert_eq!(back.applied, ix.applied);
        assert_eq!(back.iter().count(), 100);
        assert_eq!(back.get(b"key7"), ix.get(b"key7"));
        let mut bad = bytes.clone();
        bad[40] ^= 0x10;
        assert!(decode(&bad, Path::new("c")).is_err());
        assert!(decode(&bytes[..bytes.len() - 1], Path::new("c")).is_err());
    }
}
