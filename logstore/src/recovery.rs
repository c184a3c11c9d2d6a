//! Rebuilding the index on open.
//!
//! Recovery loads the checkpoint named in the manifest (if any), then
//! replays the segments written after it in manifest order. A batch is
//! applied only once its last record (the one flagged `BATCH_END`) is read,
//! so a batch torn by a crash disappears whole. In the active (last)
//! segment, the first bad or incomplete record marks the torn tail: the log
//! is cut back to the end of the last whole batch. Anywhere else a bad
//! record is corruption and opening fails, naming file and offset: skipping
//! it would silently lose acknowledged data.

use std::path::Path;

use crate::index::Loc;
use crate::record::{self, Decoded, Kind, FLAG_BATCH_END};
use crate::segment::SEGMENT_HEADER_LEN;
use crate::{Error, Result};

/// How a segment scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Offset just past the last whole batch.
    pub valid_end: u64,
    /// Highest sequence number applied.
    pub max_seq: u64,
    /// For the active segment: where and why the log was cut.
    pub torn: Option<(u64, String)>,
}

/// One record handed to the caller of [`scan_segment`]: `None` location for
/// a delete.
pub(crate) type Apply<'a> = dyn FnMut(&[u8], Option<Loc>) + 'a;

/// Scans the records of one segment image `buf` from `start`.
///
/// `sealed_len` is `Some` for a sealed segment (whose every byte up to that
/// length must be whole batches) and `None` for the active one (which may
/// end in a torn batch and then zeros).
pub(crate) fn scan_segment(
    buf: &[u8],
    seg: u32,
    start: u64,
    sealed_len: Option<u64>,
    path: &Path,
    apply: &mut Apply<'_>,
) -> Result<ScanOutcome> {
    let limit = match sealed_len {
        Some(len) if len as usize > buf.len() => {
            return Err(Error::corrupt(
                path,
                buf.len() as u64,
                format!("sealed length {len} exceeds the file"),
            ));
        }
        Some(len) => len as usize,
        None => buf.len(),
    };
    let mut at = start as usize;
    let mut batch_start = at;
    let mut batch: Vec<(&[u8], Option<Loc>)> = Vec::new();
    let mut max_seq = 0u64;
    let torn = loop {
        if at >= limit {
            break None;
        }
        let reason = match record::decode(&buf[at..limit]) {
            Ok(Decoded::Record(r)) => {
                let len = r.encoded_len();
                let loc = match r.kind {
                    Kind::Delete => None,
                    kind => {
                        let blob = if kind == Kind::BlobPut {
                            match crate::blob::parse_descriptor(r.value) {
                                Some((id, _)) => id,
                                None => break Some((at as u64, "malformed blob descriptor".to_string())),
                            }
                        } else {
                            0
                        };
                        Some(Loc {
                            seg,
                            off: at as u64,
                            len: len as u32,
                            seq: r.seq,
                            kind,
                            flags: r.flags,
                            blob,
                        })
                    }
                };
                batch.push((r.key, loc));
                at += len;
                if r.flags & FLAG_BATCH_END != 0 {
                    for (k, l) in batch.drain(..) {
                        apply(k, l);
                    }
                    max_seq = max_seq.max(r.seq);
                    batch_start = at;
                }
                continue;
            }
            Ok(Decoded::End) => {
                if batch.is_empty() {
                    break None;
                }
                "batch without its final record".to_string()
            }
            Err(e) => e.to_string(),
        };
        break Some((at as u64, reason));
    };
    if torn.is_none() && !batch.is_empty() {
        let reason = "batch without its final record".to_string();
        return finish(sealed_len, path, batch_start, max_seq, Some((at as u64, reason)));
    }
    finish(sealed_len, path, batch_start, max_seq, torn)
}

fn finish(
    sealed_len: Option<u64>,
    path: &Path,
    batch_start: usize,
    max_seq: u64,
    torn: Option<(u64, String)>,
) -> Result<ScanOutcome> {
    match (sealed_len, torn) {
        (Some(_), Some((off, reason))) => Err(Error::corrupt(path, off, reason)),
        (Some(len), None) if batch_start as u64 != len => Err(Error::corrupt(
            path,
            batch_start as u64,
            format!("sealed segment ends at {batch_start}, manifest says {len}"),
        )),
        (_, torn) => Ok(ScanOutcome {
            valid_end: batch_start as u64,
            max_seq,
            torn,
        }),
    }
}

/// Checks a whole segment image the way recovery would treat it as the
/// active segment, without a store around it. The fuzzer drives this; it
/// must return (never panic) for any input.
pub fn check_segment_image(buf: &[u8]) -> Result<ScanOutcome> {
    let mut n = 0usize;
    let start = SEGMENT_HEADER_LEN.min(buf.len() as u64);
    scan_segment(buf, 1, start, None, Path::new("<image>"), &mut |_, _| n += 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode_unsealed, seal};

    fn image(batches: &[&[(&str, Option<&str>)]]) -> Vec<u8> {
        let mut buf = vec![0u8; SEGMENT_HEADER_LEN as usize];
        for (i, batch) in batches.iter().enumerate() {
            for (j, (k, v)) in batch.iter().enumerate() {
                let flags = if j + 1 == batch.len() { FLAG_BATCH_END } else { 0 };
                let start = buf.len();
                match v {
                    Some(v) => encode_unsealed(&mut buf, Kind::Put, flags, k.as_bytes(), v.as_bytes()),
                    None => encode_unsealed(&mut buf, Kind::Delete, flags, k.as_bytes(), b""),
                }
                seal(&mut buf[start..], i as u64 + 1);
            }
        }
        buf
    }

    fn replay(buf: &[u8], sealed: Option<u64>) -> Result<(ScanOutcome, Vec<String>)> {
        let mut seen = Vec::new();
        let out = scan_segment(buf, 1, SEGMENT_HEADER_LEN, sealed, Path::new("seg"), &mut |k, l| {
            seen.push(format!(
                "{}{}",
                String::from_utf8_lossy(k),
                if l.is_some() { "+" } else { "-" }
            ))
        })?;
        Ok((out, seen))
    }

    #[test]
    fn whole_batches_apply_torn_batch_is_dropped() {
        let mut buf = image(&[&[("a", Some("1")), ("b", Some("2"))], &[("a", None), ("c", Some("3"))]]);
        let full = buf.len() as u64;
        buf.extend_from_slice(&[0u8; 100]);
        let (out, seen) = replay(&buf, None).expect("replays");
        assert_eq!(seen, ["a+", "b+", "a-", "c+"]);
        assert_eq!((out.valid_end, out.max_seq, out.torn.clone()), (full, 2, None));
        // Cut inside the last record of batch 2: batch 2 disappears whole.
        let cut = full as usize - 3;
        let mut torn = buf[..cut].to_vec();
        torn.extend_from_slice(&[0u8; 10]);
        let (out, seen) = replay(&torn, None).expect("replays");
        assert_eq!(seen, ["a+", "b+"]);
        assert!(out.torn.is_some());
        assert_eq!(out.max_seq, 1);
        // The same damage in a sealed segment is an error naming the offset.
        let err = replay(&torn, Some(cut as u64)).expect_err("sealed corruption");
        assert!(err.to_string().contains("corrupt data in seg at offset"), "{err}");
    }

    #[test]
    fn sealed_length_must_match() {
        let buf = image(&[&[("a", Some("1"))]]);
        let len = buf.len() as u64;
        assert!(replay(&buf, Some(len)).is_ok());
        assert!(replay(&buf, Some(len - 1)).is_err());
        assert!(replay(&buf, Some(len + 1)).is_err());
    }

    #[test]
    fn image_check_survives_garbage() {
        for n in 0..200usize {
            let junk: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let _ = check_segment_image(&junk);
        }
    }
}
