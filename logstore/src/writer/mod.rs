//! The single writer: group commit from natural backpressure.
//!
//! One OS thread owns the active segment. It blocks for the first request,
//! then takes every request that queued up meanwhile (up to
//! `commit_max_ops` operations and `commit_max_bytes`), writes them with
//! one submission and one fdatasync, applies them to the index and only
//! then completes their callers. Requests that arrive while that fsync is in
//! flight wait in the channel and form the next group — no timers, no
//! sleeps: the slower the disk, the larger the groups.

mod complete;
pub(crate) mod io;

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::index::Position;
use crate::manifest::SegmentEntry;
use crate::record;
use crate::segment::{SegmentFile, SEGMENT_HEADER_LEN};
use crate::shared::Shared;
use crate::{Error, Result};
use complete::{Completer, Written};
use io::Sink;

/// One operation inside an encoded batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    /// Offset of the record inside the batch buffer.
    pub at: u32,
    pub len: u32,
    pub blob: u64,
}

/// An encoded, not yet sequenced, atomic batch.
pub(crate) struct WriteRequest {
    pub buf: Vec<u8>,
    pub ops: Vec<Op>,
    /// Blob files the batch references; kept only if the batch commits.
    pub blobs: Vec<crate::blob::Blob>,
    pub durable: bool,
    pub done: oneshot::Sender<Result<u64>>,
}

/// Where a barrier's answer goes. Barriers are only awaited by blocking
/// callers (sync, checkpoint, shutdown), which may run inside an async
/// runtime (a store dropped at the end of `async main`), so this is a std
/// channel rather than one that refuses to block there.
pub(crate) type BarrierReply = std::sync::mpsc::SyncSender<Result<Position>>;

pub(crate) enum Msg {
    Write(WriteRequest),
    /// Make everything written so far durable and report the position.
    Barrier(BarrierReply),
}

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub active: Arc<SegmentFile>,
    pub pos: u64,
    pub next_seq: u64,
    pub sink: Sink,
    /// Bytes written since the last fdatasync (non-durable groups).
    pub unsynced: bool,
}

impl Writer {
    /// Runs until every sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        // A ring set up for a single issuer belongs to the thread that built
        // it: open() only probed, the working ring is built here.
        if self.sink.path() == io::IoPath::Uring {
            match Sink::uring() {
                Ok(ring) => self.sink = ring,
                Err(e) => {
                    tracing::warn!(error = %e, "io_uring setup on the writer thread failed: using pwritev + fdatasync");
                    self.sink = Sink::Sync;
                }
            }
        }
        let completer = match Completer::start(std::sync::Arc::clone(&self.shared)) {
            Ok(c) => c,
            Err(e) => {
                self.shared.poison(format!("cannot start the completion thread: {e}"));
                for msg in rx {
                    match msg {
                        Msg::Write(req) => fail_all(vec![req], Vec::new(), || e.to_string()),
                        Msg::Barrier(tx) => fail_all(Vec::new(), vec![tx], || e.to_string()),
                    }
                }
                return;
            }
        };
        let max_ops = self.shared.opts.commit_max_ops;
        let max_bytes = self.shared.opts.commit_max_bytes;
        let mut pending: Option<Msg> = None;
        loop {
            let first = match pending.take() {
                Some(m) => m,
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            let mut group = Vec::new();
            let mut barriers = Vec::new();
            let (mut ops, mut bytes) = (0usize, 0usize);
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Barrier(tx) => barriers.push(tx),
                    Msg::Write(req) => {
                        if !group.is_empty() && (ops + req.ops.len() > max_ops || bytes + req.buf.len() > max_bytes) {
                            pending = Some(Msg::Write(req));
                            break;
                        }
                        ops += req.ops.len();
                        bytes += req.buf.len();
                        group.push(req);
                    }
                }
                match rx.try_recv() {
                    Ok(m) => next = Some(m),
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => {}
                }
            }
            self.commit_group(group, barriers, &completer);
        }
        if self.unsynced {
            if let Err(e) = self.active.file().sync_data() {
                self.shared
                    .poison(format!("final fdatasync of {}: {e}", self.active.path.display()));
            }
        }
        completer.finish();
    }

    fn commit_group(&mut self, mut group: Vec<WriteRequest>, barriers: Vec<BarrierReply>, completer: &Completer) {
        if let Err(e) = self.shared.check_writable() {
            fail_all(group, barriers, || e.to_string());
            return;
        }
        let bytes: u64 = group.iter().map(|r| r.buf.len() as u64).sum();
        let durable = !barriers.is_empty() || group.iter().any(|r| r.durable);
        if !group.is_empty() && self.pos > SEGMENT_HEADER_LEN && self.pos + bytes > self.shared.opts.segment_size {
            completer.drain();
            if let Err(e) = self.roll() {
                let msg = e.to_string();
                self.shared.poison(format!("segment roll failed: {msg}"));
                fail_all(group, barriers, || msg.clone());
                return;
            }
        }
        let first_seq = self.next_seq;
        for (i, req) in group.iter_mut().enumerate() {
            let seq = first_seq + i as u64;
            for op in &req.ops {
                record::seal(&mut req.buf[op.at as usize..(op.at + op.len) as usize], seq);
            }
        }
        let slices: Vec<&[u8]> = group.iter().map(|r| &r.buf[..]).collect();
        let sync = durable && (self.unsynced || !group.is_empty());
        if let Err(e) = self.sink.write(self.active.file(), self.pos, &slices, sync) {
            if self.sink.path() == io::IoPath::Uring {
                // A failed ring submission may leave writes in flight that
                // still read these buffers: never free them (this path
                // poisons the store, so it happens at most once).
                for req in &mut group {
                    std::mem::forget(std::mem::take(&mut req.buf));
                }
            }
            let msg = format!("{} at offset {}: {e}", self.active.path.display(), self.pos);
            self.shared.poison(msg.clone());
            fail_all(group, barriers, || msg.clone());
            return;
        }
        if sync {
            self.unsynced = false;
        } else if !group.is_empty() {
            self.unsynced = true;
        }
        if !group.is_empty() {
            self.shared.groups.fetch_add(1, Ordering::Relaxed);
        }
        self.next_seq += group.len() as u64;
        let base = self.pos;
        self.pos += bytes;
        self.shared.since_checkpoint.fetch_add(bytes, Ordering::Relaxed);
        let position = Position {
            seg: self.active.id,
            off: self.pos,
            seq: self.next_seq.saturating_sub(1),
        };
        completer.hand_over(Written {
            group,
            barriers,
            seg: self.active.id,
            base,
            first_seq,
            position,
            durable_now: !self.unsynced,
        });
    }

    /// Seals the active segment and starts a new one.
    fn roll(&mut self) -> Result<()> {
        if self.unsynced {
            self.active
                .file()
                .sync_data()
                .map_err(|e| Error::io("fdatasync", &self.active.path, e))?;
            self.unsynced = false;
        }
        let id = u32::try_from(self.shared.alloc_id()).map_err(|_| Error::Invalid("segment ids exhausted".into()))?;
        let seg = Arc::new(SegmentFile::create(
            &self.shared.dir,
            id,
            self.shared.opts.segment_size,
        )?);
        crate::fsutil::fsync_dir(&self.shared.dir)?;
        // Map the old segment before the manifest calls it sealed: the
        // compactor takes sealed segments from the manifest and reads them
        // through their map.
        self.active.seal()?;
        {
            let mut m = self.shared.manifest.lock();
            let mut next = m.clone();
            if let Some(last) = next.segments.last_mut() {
                last.sealed_len = Some(self.pos);
            }
            next.segments.push(SegmentEntry { id, sealed_len: None });
            next.seq_floor = next.seq_floor.max(self.next_seq.saturating_sub(1));
            next.next_id = self.shared.next_id.load(Ordering::Relaxed);
            next.store(&self.shared.dir)?;
            *m = next;
        }
        self.shared.state.write().segments.insert(id, Arc::clone(&seg));
        tracing::debug!(sealed = self.active.id, len = self.pos, new = id, "segment rolled");
        self.active = seg;
        self.pos = SEGMENT_HEADER_LEN;
        Ok(())
    }
}

pub(crate) fn fail_all(group: Vec<WriteRequest>, barriers: Vec<BarrierReply>, reason: impl Fn() -> String) {
    for req in group {
        let _ = req.done.send(Err(Error::Poisoned(reason())));
    }
    for b in barriers {
        let _ = b.send(Err(Error::Poisoned(reason())));
    }
}
