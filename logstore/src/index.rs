//! The in-memory index: key → where its latest record lives.
//!
//! Values stay on disk; the index holds only locations, so memory grows with
//! the number of keys, not with the data. It also keeps the live byte count
//! of every segment, which is what the compactor uses to find garbage.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use crate::record::Kind;

/// Where one live record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub seg: u32,
    pub off: u64,
    /// Encoded record length (header + key + value).
    pub len: u32,
    pub seq: u64,
    pub kind: Kind,
    pub flags: u8,
    /// Blob file id for `Kind::BlobPut`, 0 otherwise.
    pub blob: u64,
}

/// A position in the log: the end of the last applied group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Position {
    pub seg: u32,
    pub off: u64,
    /// Highest sequence number at or before this position.
    pub seq: u64,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Index {
    map: BTreeMap<Box<[u8]>, Loc>,
    live: HashMap<u32, u64>,
    pub applied: Position,
}

impl Index {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<Loc> {
        self.map.get(key).copied()
    }

    /// Applies one record: `Some(loc)` for a put, `None` for a delete.
    /// Returns the location it replaced, so its blob can be reclaimed.
    pub(crate) fn apply(&mut self, key: &[u8], loc: Option<Loc>) -> Option<Loc> {
        let old = match loc {
            Some(loc) => {
                *self.live.entry(loc.seg).or_default() += loc.len as u64;
                match self.map.get_mut(key) {
                    Some(slot) => Some(std::mem::replace(slot, loc)),
                    None => {
                        self.map.insert(key.into(), loc);
                        None
                    }
                }
            }
            None => self.map.remove(key),
        };
        if let Some(old) = old {
            if let Some(live) = self.live.get_mut(&old.seg) {
                *live = live.saturating_sub(old.len as u64);
            }
        }
        old
    }

    /// Moves `key` to `new` only if it still sits at `old` (a compaction
    /// copy must not clobber a write that raced it). Returns whether it did.
    pub(crate) fn relocate(&mut self, key: &[u8], old: Loc, new: Loc) -> bool {
        match self.map.get_mut(key) {
            Some(slot) if *slot == old => {
                *slot = new;
                if let Some(live) = self.live.get_mut(&old.seg) {
                    *live = live.saturating_sub(old.len as u64);
                }
                *self.live.entry(new.seg).or_default() += new.len as u64;
                true
            }
            _ => false,
        }
    }

    /// Live bytes of a segment.
    pub(crate) fn live_bytes(&self, seg: u32) -> u64 {
        self.live.get(&seg).copied().unwrap_or(0)
    }

    pub(crate) fn forget_segment(&mut self, seg: u32) {
        self.live.remove(&seg);
    }

    /// Keys (with locations) in key order that start with `prefix` and sort
    /// after `start_after`.
    pub(crate) fn scan(&self, prefix: &[u8], start_after: Option<&[u8]>, limit: usize) -> Vec<(Box<[u8]>, Loc)> {
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        self.map
            .range::<[u8], _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, l)| (k.clone(), *l))
            .collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &Loc)> {
        self.map.iter().map(|(k, l)| (&**k, l))
    }

    pub(crate) fn blob_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.map.values().filter(|l| l.kind == Kind::BlobPut).map(|l| l.blob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(seg: u32, off: u64, len: u32, seq: u64) -> Loc {
        Loc {
            seg,
            off,
            len,
            seq,
            kind: Kind::Put,
            flags: 0,
            blob: 0,
        }
    }

    #[test]
    fn apply_tracks_live_bytes() {
        let mut ix = Index::default();
        assert_eq!(ix.apply(b"a", Some(loc(1, 32, 100, 1))), None);
        assert_eq!(ix.apply(b"b", Some(loc(1, 132, 50, 1))), None);
        assert_eq!(ix.live_bytes(1), 150);
        assert_eq!(ix.apply(b"a", Some(loc(2, 32, 70, 2))), Some(loc(1, 32, 100, 1)));
        assert_eq!((ix.live_bytes(1), ix.live_bytes(2)), (50, 70));
        assert_eq!(ix.apply(b"b", None), Some(loc(1, 132, 50, 1)));
        assert_eq!(ix.live_bytes(1), 0);
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn relocate_is_conditional() {
        let mut ix = Index::default();
        ix.apply(b"k", Some(loc(1, 32, 10, 1)));
        assert!(ix.relocate(b"k", loc(1, 32, 10, 1), loc(5, 32, 10, 1)));
        assert!(!ix.relocate(b"k", loc(1, 32, 10, 1), loc(6, 32, 10, 1)));
        assert_eq!(ix.get(b"k"), Some(loc(5, 32, 10, 1)));
        assert_eq!((ix.live_bytes(1), ix.live_bytes(5)), (0, 10));
    }

    #[test]
    fn scan_prefix_start_after_limit() {
        let mut ix = Index::default();
        for k in ["a/1", "a/2", "a/3", "b/1", "a"] {
            ix.apply(k.as_bytes(), Some(loc(1, 0, 1, 1)));
        }
        let keys = |v: Vec<(Box<[u8]>, Loc)>| {
            v.into_iter()
                .map(|(k, _)| String::from_utf8(k.into()).unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(ix.scan(b"a/", None, 10)), ["a/1", "a/2", "a/3"]);
        assert_eq!(keys(ix.scan(b"a/", Some(b"a/1"), 10)), ["a/2", "a/3"]);
        assert_eq!(keys(ix.scan(b"a/", Some(b"0"), 2)), ["a/1", "a/2"]);
        assert_eq!(keys(ix.scan(b"", Some(b"a/3"), 10)), ["b/1"]);
    }
}
