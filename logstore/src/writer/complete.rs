//! The completion thread: applies written groups to the index and wakes
//! their callers, in write order, while the writer thread already writes
//! and syncs the next group.
//!
//! Waking callers costs a system call each; done on the writer thread it
//! left the disk idle between fsyncs (measured: about half of the writer's
//! time at 64 concurrent committers). Here it overlaps with the next
//! fdatasync instead. A caller is still woken only after its group is both
//! durable and visible in the index.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{BarrierReply, WriteRequest};
use crate::index::{Loc, Position};
use crate::record::{Kind, HEADER_LEN};
use crate::shared::Shared;

/// A group the writer has put on disk.
pub(crate) struct Written {
    pub group: Vec<WriteRequest>,
    pub barriers: Vec<BarrierReply>,
    /// Segment and offset the group starts at.
    pub seg: u32,
    pub base: u64,
    pub first_seq: u64,
    /// Log position just after the group.
    pub position: Position,
    /// Whether everything up to `position` has been fdatasynced.
    pub durable_now: bool,
}

enum Job {
    Complete(Written),
    /// Reply once every earlier job is done.
    Drain(SyncSender<()>),
}

pub(crate) struct Completer {
    tx: Sender<Job>,
    handle: JoinHandle<()>,
}

impl Completer {
    pub(crate) fn start(shared: Arc<Shared>) -> std::io::Result<Completer> {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("logstore-complete".into())
            .spawn(move || run(&shared, rx))?;
        Ok(Completer { tx, handle })
    }

    pub(crate) fn hand_over(&self, written: Written) {
        if let Err(mpsc::SendError(Job::Complete(w))) = self.tx.send(Job::Complete(written)) {
            // The thread died (a panic): callers must not wait forever.
            super::fail_all(w.group, w.barriers, || "completion thread stopped".to_string());
        }
    }

    /// Waits until every group handed over so far is applied. The writer
    /// calls this before sealing a segment, so that a sealed segment's
    /// records are all in the index before the compactor may look at it.
    pub(crate) fn drain(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.tx.send(Job::Drain(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    pub(crate) fn finish(self) {
        drop(self.tx);
        let _ = self.handle.join();
    }
}

fn run(shared: &Shared, rx: Receiver<Job>) {
    // Blobs superseded by writes that are not yet durable: deleted only once
    // a later fdatasync makes the supersession stick.
    let mut unsynced_garbage = Vec::new();
    for job in rx {
        let w = match job {
            Job::Complete(w) => w,
            Job::Drain(ack) => {
                let _ = ack.send(());
                continue;
            }
        };
        unsynced_garbage.extend(apply(shared, &w));
        if w.durable_now {
            for blob in unsynced_garbage.drain(..) {
                shared.bury(crate::blob::path(&shared.dir, blob));
            }
        }
        for (i, mut req) in w.group.into_iter().enumerate() {
            for b in &mut req.blobs {
                b.committed = true;
            }
            let _ = req.done.send(Ok(w.first_seq + i as u64));
        }
        for b in w.barriers {
            let _ = b.send(Ok(w.position));
        }
    }
}

/// Applies a written group to the index; returns blobs it made garbage.
fn apply(shared: &Shared, w: &Written) -> Vec<u64> {
    let mut superseded = Vec::new();
    let mut state = shared.state.write();
    let mut at = w.base;
    for (i, req) in w.group.iter().enumerate() {
        let seq = w.first_seq + i as u64;
        for op in &req.ops {
            let rec = &req.buf[op.at as usize..(op.at + op.len) as usize];
            let klen = u16::from_le_bytes([rec[12], rec[13]]) as usize;
            let key = &rec[HEADER_LEN..HEADER_LEN + klen];
            let kind = match rec[14] {
                1 => Kind::Put,
                3 => Kind::BlobPut,
                _ => Kind::Delete,
            };
            let loc = (kind != Kind::Delete).then_some(Loc {
                seg: w.seg,
                off: at + op.at as u64,
                len: op.len,
                seq,
                kind,
                flags: rec[15],
                blob: op.blob,
            });
            if let Some(old) = state.index.apply(key, loc) {
                if old.kind == Kind::BlobPut && Some(old.blob) != loc.map(|l| l.blob) {
                    superseded.push(old.blob);
                }
            }
        }
        at += req.buf.len() as u64;
    }
    state.index.applied = w.position;
    superseded
}
