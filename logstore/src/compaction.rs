//! Compaction: rewrite the live records of the oldest sealed segments into
//! fresh segments and swap them in through the manifest.
//!
//! It always takes a *prefix* of the sealed segments in manifest order and
//! puts its output at the front of the list. Everything the output holds is
//! therefore older than everything after it, which makes two things simple:
//! tombstones in the prefix can be dropped (nothing older survives outside
//! it), and a record the writer overwrites while compaction runs is replayed
//! in the right order after a crash (the stale copy comes first). In memory,
//! a copied record moves only if the index still points at the original.
//!
//! Crash safety: output files are fsynced before the manifest names them;
//! until then they are orphans that the next open deletes. After the swap,
//! inputs are obsolete and deleted after the grace period (or at next open).

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::index::Loc;
use crate::manifest::SegmentEntry;
use crate::record::{self, Decoded, Kind, FLAG_BATCH_END};
use crate::segment::{SegmentFile, SEGMENT_HEADER_LEN};
use crate::shared::Shared;
use crate::writer::Msg;
use crate::{Error, Result};

/// Copies at most this much before flushing the output buffer.
const FLUSH_BYTES: usize = 1 << 20;

struct Move {
    key: Vec<u8>,
    old: Loc,
    new: Loc,
}

/// Picks how many leading sealed segments to compact. `force` takes them
/// all; otherwise the longest prefix that is at least half garbage, if it
/// meets the segment-count and reclaim thresholds.
fn choose(shared: &Shared, sealed: &[SegmentEntry], force: bool) -> usize {
    let state = shared.state.read();
    let mut best = (0usize, 0u64);
    let (mut total, mut live) = (0u64, 0u64);
    for (i, s) in sealed.iter().enumerate() {
        total += s.sealed_len.unwrap_or(0).saturating_sub(SEGMENT_HEADER_LEN);
        live += state.index.live_bytes(s.id);
        let garbage = total.saturating_sub(live);
        if garbage * 2 >= total && garbage >= best.1 {
            best = (i + 1, garbage);
        }
    }
    if force {
        return sealed.len();
    }
    let (k, garbage) = best;
    if k >= shared.opts.compaction_min_segments && garbage >= shared.opts.compaction_min_reclaim {
        k
    } else {
        0
    }
}

/// Runs one compaction pass; returns how many input segments it replaced.
pub(crate) fn compact(shared: &Shared, writer: &Sender<Msg>, force: bool) -> Result<usize> {
    let _guard = shared.exclusive.lock();
    shared.check_writable()?;
    let sealed: Vec<SegmentEntry> = {
        let m = shared.manifest.lock();
        m.segments.iter().filter(|s| s.sealed_len.is_some()).copied().collect()
    };
    let k = choose(shared, &sealed, force);
    if k == 0 {
        return Ok(0);
    }
    let inputs = &sealed[..k];
    let started = Instant::now();
    let mut out = Output::new(shared);
    let mut moves = Vec::new();
    for input in inputs {
        let seg = shared.state.read().segments.get(&input.id).cloned();
        let seg = seg.ok_or_else(|| Error::Invalid(format!("segment {} vanished during compaction", input.id)))?;
        let bytes = seg
            .mapped()
            .ok_or_else(|| Error::Invalid("compaction input is not sealed".into()))?;
        let end = input.sealed_len.unwrap_or(0) as usize;
        let mut at = SEGMENT_HEADER_LEN as usize;
        while at < end {
            let rec = match record::decode(&bytes[at..end]) {
                Ok(Decoded::Record(r)) => r,
                Ok(Decoded::End) => break,
                Err(e) => return Err(Error::corrupt(&seg.path, at as u64, e.to_string())),
            };
            let len = rec.encoded_len();
            if rec.kind != Kind::Delete {
                let current = shared.state.read().index.get(rec.key);
                if let Some(old) = current.filter(|l| l.seg == input.id && l.off == at as u64) {
                    let new = out.append(&bytes[at..at + len], old)?;
                    moves.push(Move {
                        key: rec.key.to_vec(),
                        old,
                        new,
                    });
                }
            }
            at += len;
            out.throttle(len, started);
        }
    }
    let outputs = out.finish()?;
    // The liveness checks above used the index, which also holds applied
    // but not yet synced writes. Make those durable before the inputs stop
    // being part of the log, or a crash could lose both the dropped durable
    // version and its unsynced successor.
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    writer.send(Msg::Barrier(tx)).map_err(|_| Error::Closed)?;
    rx.recv().map_err(|_| Error::Closed)??;
    swap(shared, writer, inputs, outputs, moves)?;
    tracing::info!(
        inputs = k,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "compaction swapped segments"
    );
    Ok(k)
}

fn swap(
    shared: &Shared,
    writer: &Sender<Msg>,
    inputs: &[SegmentEntry],
    outputs: Vec<(Arc<SegmentFile>, u64)>,
    moves: Vec<Move>,
) -> Result<()> {
    let is_input = |id: u32| inputs.iter().any(|s| s.id == id);
    let old_snapshot = {
        let mut m = shared.manifest.lock();
        let mut next = m.clone();
        let mut segments: Vec<SegmentEntry> = outputs
            .iter()
            .map(|(s, len)| SegmentEntry {
                id: s.id,
                sealed_len: Some(*len),
            })
            .collect();
        segments.extend(next.segments.iter().copied().filter(|s| !is_input(s.id)));
        next.segments = segments;
        // Dropped tombstones may have carried the highest sequence numbers.
        next.seq_floor = next.seq_floor.max(shared.state.read().index.applied.seq);
        let old = next.snapshot.take();
        next.next_id = shared.next_id.load(Ordering::Relaxed);
        if let Err(e) = next.store(&shared.dir) {
            // The rename may or may not have happened, so the manifest on
            // disk may name the outputs: keep every file and stop writing;
            // the next open sorts out which ones are referenced.
            shared.poison(format!("compaction manifest swap failed: {e}"));
            return Err(e);
        }
        *m = next;
        old
    };
    {
        let mut state = shared.state.write();
        for (s, _) in &outputs {
            state.segments.insert(s.id, Arc::clone(s));
        }
        for mv in &moves {
            state.index.relocate(&mv.key, mv.old, mv.new);
        }
        for s in inputs {
            state.segments.remove(&s.id);
            state.index.forget_segment(s.id);
        }
    }
    for s in inputs {
        shared.bury(crate::fsutil::in_dir(&shared.dir, &crate::segment::file_name(s.id)));
    }
    if let Some(old) = old_snapshot {
        shared.bury(crate::checkpoint::path(&shared.dir, old.id));
    }
    // The old checkpoint pointed into the inputs; write a fresh one so the
    // next open stays fast.
    crate::maintenance::checkpoint_locked(shared, writer)
}

/// The segment files compaction writes into.
struct Output<'a> {
    shared: &'a Shared,
    done: Vec<(Arc<SegmentFile>, u64)>,
    current: Option<(Arc<SegmentFile>, u64)>,
    buf: Vec<u8>,
    copied: u64,
}

impl<'a> Output<'a> {
    fn new(shared: &'a Shared) -> Self {
        Output {
            shared,
            done: Vec::new(),
            current: None,
            buf: Vec::new(),
            copied: 0,
        }
    }

    /// Appends a copy of `rec` (flagged as a whole batch) and returns its
    /// new location.
    fn append(&mut self, rec: &[u8], old: Loc) -> Result<Loc> {
        let size = self.shared.opts.segment_size;
        let pending = self.buf.len() as u64;
        let roll = match &self.current {
            None => true,
            Some((_, pos)) => *pos + pending > SEGMENT_HEADER_LEN && *pos + pending + rec.len() as u64 > size,
        };
        if roll {
            self.seal_current()?;
            let id =
                u32::try_from(self.shared.alloc_id()).map_err(|_| Error::Invalid("segment ids exhausted".into()))?;
            let seg = SegmentFile::create(&self.shared.dir, id, size)?;
            self.current = Some((Arc::new(seg), SEGMENT_HEADER_LEN));
        }
        let Some((seg, pos)) = &self.current else {
            return Err(Error::Invalid("compaction output missing".into()));
        };
        let off = *pos + self.buf.len() as u64;
        let start = self.buf.len();
        self.buf.extend_from_slice(rec);
        let flags = old.flags | FLAG_BATCH_END;
        if flags != old.flags {
            record::reflag(&mut self.buf[start..], flags);
        }
        let new = Loc {
            seg: seg.id,
            off,
            flags,
            ..old
        };
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(new)
    }

    fn flush(&mut self) -> Result<()> {
        if let Some((seg, pos)) = &mut self.current {
            seg.file()
                .write_all_at(&self.buf, *pos)
                .map_err(|e| Error::io("write", &seg.path, e))?;
            *pos += self.buf.len() as u64;
            self.copied += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    fn seal_current(&mut self) -> Result<()> {
        self.flush()?;
        if let Some((seg, len)) = self.current.take() {
            seg.file()
                .sync_data()
                .map_err(|e| Error::io("fdatasync", &seg.path, e))?;
            seg.seal()?;
            self.done.push((seg, len));
        }
        Ok(())
    }

    /// Sleeps as needed to keep read+write traffic under the configured
    /// bytes per second. Background pacing only; never on the commit path.
    fn throttle(&self, _just_read: usize, started: Instant) {
        let rate = self.shared.opts.compaction_throttle;
        if rate == 0 {
            return;
        }
        let bytes = self.copied + self.buf.len() as u64;
        let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
        let spent = started.elapsed();
        if due > spent {
            std::thread::sleep(due - spent);
        }
    }

    fn finish(mut self) -> Result<Vec<(Arc<SegmentFile>, u64)>> {
        self.seal_current()?;
        if !self.done.is_empty() {
            crate::fsutil::fsync_dir(&self.shared.dir)?;
        }
        Ok(std::mem::take(&mut self.done))
    }
}

impl Drop for Output<'_> {
    fn drop(&mut self) {
        // Only reached with files still listed on an error path: they were
        // never named by the manifest, so remove them now.
        for (seg, _) in self.done.drain(..).chain(self.current.take()) {
            let _ = std::fs::remove_file(&seg.path);
        }
    }
}
