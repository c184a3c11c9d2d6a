//! The maintenance thread: deletes obsolete files once their grace period
//! is over, writes index checkpoints as the log grows, and runs compaction
//! on its timer. Everything here is off the commit path.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::checkpoint as ckpt;
use crate::manifest::SnapshotRef;
use crate::shared::Shared;
use crate::writer::Msg;
use crate::{Error, Result};

pub(crate) struct Maintenance {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

impl Maintenance {
    pub(crate) fn start(shared: Arc<Shared>, writer: Sender<Msg>) -> Result<Maintenance> {
        let (stop, stopped) = mpsc::channel();
        let dir = shared.dir.clone();
        let handle = std::thread::Builder::new()
            .name("logstore-maint".into())
            .spawn(move || run(shared, writer, stopped))
            .map_err(|e| Error::io("spawn maintenance thread", dir, e))?;
        Ok(Maintenance { stop, handle })
    }

    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

fn run(shared: Arc<Shared>, writer: Sender<Msg>, stopped: Receiver<()>) {
    let tick = Duration::from_millis(200).min(shared.opts.compaction_interval);
    let mut next_compaction = Instant::now() + shared.opts.compaction_interval;
    loop {
        match stopped.recv_timeout(tick) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if shared.check_writable().is_err() {
            continue;
        }
        shared.reap(false);
        let every = shared.opts.snapshot_every_bytes;
        if every > 0 && shared.since_checkpoint.load(Ordering::Relaxed) >= every {
            if let Err(e) = checkpoint(&shared, &writer) {
                tracing::warn!(error = %e, "index checkpoint failed");
            }
        }
        if shared.opts.compaction && Instant::now() >= next_compaction {
            next_compaction = Instant::now() + shared.opts.compaction_interval;
            match crate::compaction::compact(&shared, &writer, false) {
                Ok(0) => {}
                Ok(n) => tracing::info!(segments = n, "compaction finished"),
                Err(e) => tracing::warn!(error = %e, "compaction failed"),
            }
        }
    }
}

/// Writes a checkpoint of the index and points the manifest at it.
pub(crate) fn checkpoint(shared: &Shared, writer: &Sender<Msg>) -> Result<()> {
    let _guard = shared.exclusive.lock();
    checkpoint_locked(shared, writer)
}

/// [`checkpoint`] for callers already holding `shared.exclusive`.
pub(crate) fn checkpoint_locked(shared: &Shared, writer: &Sender<Msg>) -> Result<()> {
    let written = shared.since_checkpoint.load(Ordering::Relaxed);
    let index = shared.state.read().index.clone();
    // Everything up to the copied position must be durable before a
    // checkpoint may point past it (non-durable commits included).
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    writer.send(Msg::Barrier(tx)).map_err(|_| Error::Closed)?;
    rx.recv().map_err(|_| Error::Closed)??;
    let id = u32::try_from(shared.alloc_id()).map_err(|_| Error::Invalid("file ids exhausted".into()))?;
    crate::fsutil::write_atomic(&shared.dir, &ckpt::file_name(id), &ckpt::encode(&index))?;
    let old = {
        let mut m = shared.manifest.lock();
        if !m.segments.iter().any(|s| s.id == index.applied.seg) {
            drop(m);
            shared.bury(ckpt::path(&shared.dir, id));
            return Err(Error::Invalid("checkpoint raced a segment swap".into()));
        }
        let mut next = m.clone();
        let old = next.snapshot.replace(SnapshotRef {
            id,
            segment: index.applied.seg,
            offset: index.applied.off,
        });
        next.next_id = shared.next_id.load(Ordering::Relaxed);
        next.store(&shared.dir)?;
        *m = next;
        old
    };
    if let Some(old) = old {
        shared.bury(ckpt::path(&shared.dir, old.id));
    }
    let _ = shared
        .since_checkpoint
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(written))
        });
    tracing::debug!(keys = index.len(), id, "index checkpoint written");
    Ok(())
}
